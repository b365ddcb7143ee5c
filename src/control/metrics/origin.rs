//! The origin: its window per track, the disk tier, requests served.

use super::super::snapshot::Status;
use super::writer::Writer;

/// The DVR window of each track.
pub(super) fn tracks(w: &mut Writer, s: &Status) {
    w.family(
        "origin_window_segments",
        "gauge",
        "Segments in the origin window.",
    );
    for t in &s.origin.tracks {
        w.sample("origin_window_segments", &[("track", &t.name)], t.segments);
    }
    w.family(
        "origin_ram_bytes",
        "gauge",
        "Bytes of the origin window held in RAM.",
    );
    for t in &s.origin.tracks {
        w.sample("origin_ram_bytes", &[("track", &t.name)], t.ram_bytes);
    }
    w.family(
        "origin_window_seconds",
        "gauge",
        "Duration the origin window covers.",
    );
    for t in &s.origin.tracks {
        w.sample(
            "origin_window_seconds",
            &[("track", &t.name)],
            t.window_ms as f64 / 1000.0,
        );
    }
}

/// The origin's totals: disk, requests, bytes.
pub(super) fn totals(w: &mut Writer, s: &Status) {
    let o = &s.origin;
    let origin_families: [(&str, &str, &str, u64); 9] = [
        (
            "origin_disk_bytes",
            "gauge",
            "Bytes of the DVR disk tier.",
            o.disk_bytes,
        ),
        (
            "origin_disk_errors_total",
            "counter",
            "DVR disk write/list errors.",
            o.disk_errors,
        ),
        (
            "origin_disk_evicted_segments_total",
            "counter",
            "DVR segment files deleted to stay under dvr_max_bytes (the oldest of any track first).",
            o.disk_evicted,
        ),
        (
            "origin_disk_read_errors_total",
            "counter",
            "DVR disk reads that failed.",
            o.disk_read_errors,
        ),
        (
            "origin_requests_total",
            "counter",
            "HTTP requests to the origin.",
            o.requests,
        ),
        (
            "origin_denied_requests_total",
            "counter",
            "Origin requests refused by the allow-list.",
            o.denied_requests,
        ),
        (
            "origin_connections_total",
            "counter",
            "Connections accepted by the origin.",
            o.connections,
        ),
        (
            "origin_refused_connections_total",
            "counter",
            "Connections refused at the connection limit.",
            o.connections_refused,
        ),
        (
            "origin_lagged_fragments_total",
            "counter",
            "Fragments the origin missed by falling behind.",
            o.fragments_lagged,
        ),
    ];
    for (name, kind, help, value) in origin_families {
        w.one(name, kind, help, value);
    }
}
