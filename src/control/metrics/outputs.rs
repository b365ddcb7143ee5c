//! Per output destination (output, primary/secondary, track), and the shared publish budget.

use super::super::snapshot::Status;
use super::writer::{Writer, b};

/// A sample per destination of every output.
pub(super) fn destinations(w: &mut Writer, s: &Status) {
    let dests: Vec<_> = s.outputs.iter().flat_map(|o| &o.destinations).collect();
    w.family(
        "output_publishing_up",
        "gauge",
        "1 while the destination is publishing.",
    );
    for d in &dests {
        let labels = [
            ("output", d.output.as_str()),
            ("dest", d.dest),
            ("track", d.track.as_str()),
        ];
        w.sample(
            "output_publishing_up",
            &labels,
            b(d.state == crate::status::DestState::Publishing),
        );
    }
    type DestField = fn(&crate::status::DestStatus) -> u64;
    let dest_families: [(&str, &str, &str, DestField); 8] = [
        (
            "output_sent_bytes_total",
            "counter",
            "Bytes sent to the destination.",
            |d| d.bytes_sent,
        ),
        (
            "output_sent_fragments_total",
            "counter",
            "Fragments sent to the destination.",
            |d| d.fragments_sent,
        ),
        (
            "output_connect_attempts_total",
            "counter",
            "Connection attempts.",
            |d| d.attempts,
        ),
        (
            "output_backlog_bytes",
            "gauge",
            "Bytes waiting in the destination's backlog.",
            |d| d.backlog_bytes,
        ),
        (
            "output_backlog_fragments",
            "gauge",
            "Fragments waiting in the destination's backlog.",
            |d| d.backlog_fragments,
        ),
        (
            "output_dropped_fragments_total",
            "counter",
            "Whole fragments dropped because the backlog or the shared [publish] memory budget was full.",
            |d| d.dropped_fragments,
        ),
        (
            "output_resent_fragments_total",
            "counter",
            "Fragments sent again after a reconnect.",
            |d| d.resent_fragments,
        ),
        (
            "output_header_switches_total",
            "counter",
            "Headers sent again mid-session for new codec parameters (a reload rebuilt the encoder).",
            |d| d.header_switches,
        ),
    ];
    for (name, kind, help, get) in dest_families {
        w.family(name, kind, help);
        for d in &dests {
            let labels = [
                ("output", d.output.as_str()),
                ("dest", d.dest),
                ("track", d.track.as_str()),
            ];
            w.sample(name, &labels, get(d));
        }
    }
}

/// The `[publish] memory` budget: what the backlogs hold and the limit.
pub(super) fn memory(w: &mut Writer, s: &Status) {
    w.one(
        "publish_memory_bytes",
        "gauge",
        "Bytes every output's backlogs hold together.",
        s.publish.memory_used_bytes,
    );
    w.one(
        "publish_memory_limit_bytes",
        "gauge",
        "The shared [publish] memory budget of the backlogs.",
        s.publish.memory_limit_bytes,
    );
}
