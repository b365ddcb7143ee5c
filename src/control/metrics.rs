//! `GET /metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Naming scheme (one for every metric): `twincast_<name>_<unit>[_total]`, where `<unit>` is a
//! base unit (`bytes`, `seconds`, `bits_per_second`, `frames_per_second`) or the counted thing
//! (`frames`, `fragments`, `units`, `requests`, `connections`, `errors`), `_total` marks
//! counters, and 0/1 gauges end in an adjective (`_up`, `_locked`, `_synchronised`). Every
//! series of a daemon carries `encoder` and `pair` labels so a pair's two boxes sit side by side.

use std::fmt::Write;

use std::sync::atomic::Ordering;

use super::snapshot::Status;

/// The control listener's own figures (not part of `/status`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ControlFigures {
    pub denied_requests: u64,
    pub refused_connections: u64,
    pub refused_subscribers: u64,
    pub unauthorized_requests: u64,
    pub subscribers: usize,
    pub lagged_events: u64,
}

impl ControlFigures {
    pub fn of(ops: &super::Ops) -> ControlFigures {
        let c = &ops.control_limits;
        ControlFigures {
            denied_requests: ops.denied.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            refused_subscribers: c.refused_subscribers.load(Ordering::Relaxed),
            unauthorized_requests: c.unauthorized.load(Ordering::Relaxed),
            subscribers: c.subscribers.load(Ordering::Relaxed),
            lagged_events: c.lagged_events.load(Ordering::Relaxed),
        }
    }
}

struct Writer {
    out: String,
    base: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP twincast_{name} {help}");
        let _ = writeln!(self.out, "# TYPE twincast_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut l = self.base.clone();
        for (k, v) in labels {
            let _ = write!(l, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.out, "twincast_{name}{{{l}}} {value}");
    }

    /// A family with one sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn b(v: bool) -> u8 {
    u8::from(v)
}

type NetField = fn(&crate::capture::sources::NetworkCounters) -> u64;

/// The network inputs' front-end counters (`input.sources[].counters`), one series per source
/// role (`input`, `backup`), and how each takes W.
fn input_counters(w: &mut Writer, s: &Status) {
    let net: Vec<_> = s
        .input
        .sources
        .iter()
        .filter_map(|x| x.counters.map(|c| (x.role, x.timing, c)))
        .collect();
    if net.is_empty() {
        return;
    }
    w.family(
        "input_timing_info",
        "gauge",
        "How a network input takes the frame time W (arrival, rtcp, pts; pending before its feed is anchored).",
    );
    for (role, timing, _) in &net {
        w.sample(
            "input_timing_info",
            &[("source", role), ("timing", timing)],
            1,
        );
    }
    let families: [(&str, &str, NetField); 16] = [
        (
            "input_datagrams_total",
            "Datagrams received by a network input.",
            |c| c.datagrams,
        ),
        (
            "input_received_bytes_total",
            "Bytes received by a network input.",
            |c| c.bytes,
        ),
        (
            "input_lost_packets_total",
            "RTP packets lost (gaps not filled within the reorder window).",
            |c| c.lost,
        ),
        (
            "input_reordered_packets_total",
            "RTP packets received out of order and put back.",
            |c| c.reordered,
        ),
        (
            "input_duplicated_packets_total",
            "RTP packets received twice (dropped).",
            |c| c.duplicated,
        ),
        (
            "input_late_packets_total",
            "RTP packets that came after their slot was released (dropped).",
            |c| c.late,
        ),
        (
            "input_malformed_packets_total",
            "Datagrams or TS packets dropped as malformed.",
            |c| c.malformed,
        ),
        (
            "input_cc_errors_total",
            "MPEG-TS continuity-counter errors.",
            |c| c.cc_errors,
        ),
        (
            "input_pcr_discontinuities_total",
            "PCR discontinuities.",
            |c| c.pcr_discontinuities,
        ),
        (
            "input_pts_discontinuities_total",
            "PTS discontinuities (the feed re-anchored).",
            |c| c.pts_discontinuities,
        ),
        (
            "input_scte35_sections_total",
            "SCTE-35 sections received.",
            |c| c.scte35_sections,
        ),
        (
            "input_rtcp_reports_total",
            "RTCP sender reports received.",
            |c| c.rtcp_reports,
        ),
        (
            "input_dropped_es_units_total",
            "Elementary-stream units dropped by the front end.",
            |c| c.units_dropped,
        ),
        (
            "input_decoder_overflow_units_total",
            "Units dropped because a decoder was behind.",
            |c| c.decoder_overflow,
        ),
        (
            "input_decoder_errors_total",
            "Decoder errors of a network input.",
            |c| c.decoder_errors,
        ),
        (
            "input_decoded_frames_total",
            "Pictures decoded by a network input.",
            |c| c.pictures,
        ),
    ];
    for (name, help, field) in families {
        w.family(name, "counter", help);
        for (role, _, c) in &net {
            w.sample(name, &[("source", role)], field(c));
        }
    }
}

/// Renders every metric of a status snapshot.
pub fn render(s: &Status, control: &ControlFigures) -> String {
    let mut w = Writer {
        out: String::new(),
        base: format!(
            "encoder=\"{}\",pair=\"{}\"",
            escape(&s.encoder.name),
            escape(&s.encoder.pair)
        ),
    };
    w.family("build_info", "gauge", "Version of the running daemon.");
    w.sample("build_info", &[("version", s.encoder.version)], 1);
    w.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.encoder.uptime_s,
    );
    w.one(
        "ready_up",
        "gauge",
        "1 once every track has cut its first fragment and the origin listens.",
        b(s.ready),
    );
    w.one(
        "clock_synchronised",
        "gauge",
        "1 when the kernel reports the system clock synchronised.",
        b(s.clock.is_some_and(|c| c.synchronised)),
    );
    w.one(
        "clock_estimated_error_seconds",
        "gauge",
        "Estimated error of the system clock (kernel esterror).",
        s.clock
            .map(|c| c.estimated_error_us as f64 / 1e6)
            .unwrap_or(f64::NAN),
    );
    w.one(
        "pair_locked",
        "gauge",
        "1 when the clock is synchronised well under half a frame.",
        b(s.pair_locked),
    );
    w.one(
        "input_up",
        "gauge",
        "1 while the encoders get the primary input's pictures (0 on slate or backup).",
        b(s.input.state == "live"),
    );
    w.one(
        "input_slate_frames_total",
        "counter",
        "Frames fed from the slate because the input was lost.",
        s.input.slate_frames,
    );
    w.one(
        "input_late_frames_total",
        "counter",
        "Source pictures that arrived after their frame was fed.",
        s.input.frames_late,
    );
    w.one(
        "input_source_restarts_total",
        "counter",
        "Source pipelines rebuilt after an error or an end of stream.",
        s.input.sources.iter().map(|x| x.restarts).sum::<u64>(),
    );
    w.one(
        "input_source_dropped_buffers_total",
        "counter",
        "Raw buffers that reached a source pipeline's appsinks and were not handed to the grid feed.",
        s.input.sources.iter().map(|x| x.buffers_dropped).sum::<u64>(),
    );
    input_counters(&mut w, s);
    w.one(
        "input_backup_active",
        "gauge",
        "1 while the backup input feeds the encoders.",
        b(s.input.source == "backup"),
    );
    w.one(
        "input_source_switches_total",
        "counter",
        "Switches between the primary and the backup input.",
        s.input.source_switches,
    );
    w.one(
        "encoder_rebuilds_total",
        "counter",
        "Encoder pipelines rebuilt after an error.",
        s.input.encoder_rebuilds,
    );
    w.one(
        "input_frames_total",
        "counter",
        "Raw frames that entered the timeline.",
        s.input.frames_in,
    );
    w.one(
        "input_dropped_frames_total",
        "counter",
        "Raw frames dropped by the timeline.",
        s.input.frames_dropped,
    );
    w.one(
        "timeline_reanchors_total",
        "counter",
        "Times the timeline re-anchored across a gap.",
        s.input.reanchors,
    );
    w.one(
        "grid_skipped_frames_total",
        "counter",
        "Frames the grid clock skipped because it fell more than a second behind.",
        s.input.grid_skipped,
    );
    w.one(
        "encoder_dropped_frames_total",
        "counter",
        "Video frames the encoders did not take because their queue was full.",
        s.input.frames_not_encoded,
    );
    w.one(
        "encoder_dropped_audio_frames_total",
        "counter",
        "AAC frames of raw audio the encoder did not take because its queue was full.",
        s.input.audio_frames_not_encoded,
    );
    w.one(
        "capture_dropped_units_total",
        "counter",
        "Encoded units dropped because the packager queue was full.",
        s.input.units_dropped,
    );
    w.one(
        "capture_untimed_units_total",
        "counter",
        "Encoded buffers without a usable time (no PTS, before their segment), dropped.",
        s.input.units_untimed,
    );

    type TrackField = fn(&super::snapshot::TrackInfo) -> String;
    let track_families: [(&str, &str, &str, TrackField); 9] = [
        (
            "track_bits_per_second",
            "gauge",
            "Media bitrate over the last fragments.",
            |t| t.bitrate_bps.to_string(),
        ),
        (
            "track_frames_per_second",
            "gauge",
            "Frames (AAC frames for audio) per second over the last fragments.",
            |t| t.fps.to_string(),
        ),
        (
            "track_last_timestamp_seconds",
            "gauge",
            "End of the last fragment, seconds since the epoch.",
            |t| format!("{:.3}", t.last_time_ns as f64 / 1e9),
        ),
        ("track_fragments_total", "counter", "Fragments cut.", |t| {
            t.fragments.to_string()
        }),
        (
            "track_units_total",
            "counter",
            "Encoded access units packaged.",
            |t| t.units.to_string(),
        ),
        (
            "track_media_bytes_total",
            "counter",
            "Media bytes packaged (without box overhead).",
            |t| t.media_bytes.to_string(),
        ),
        (
            "track_discontinuities_total",
            "counter",
            "Breaks in the fragment sequence.",
            |t| t.discontinuities.to_string(),
        ),
        (
            "track_dropped_units_total",
            "counter",
            "Encoded units the packager could not place in a fragment.",
            |t| t.dropped_units.to_string(),
        ),
        (
            "track_lagged_fragments_total",
            "counter",
            "Fragments the track's figures missed by falling behind (the fragments were not lost).",
            |t| t.fragments_lagged.to_string(),
        ),
    ];
    for (name, kind, help, get) in track_families {
        w.family(name, kind, help);
        for t in &s.tracks {
            w.sample(name, &[("track", &t.name)], get(t));
        }
    }

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
    let o = &s.origin;
    let origin_families: [(&str, &str, &str, u64); 8] = [
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
    w.one(
        "config_reloads_total",
        "counter",
        "Configurations reloaded on SIGHUP.",
        s.config.reloads,
    );
    w.one(
        "config_rejected_reloads_total",
        "counter",
        "Reloads rejected because the new file was invalid.",
        s.config.reload_failures,
    );
    w.one(
        "control_denied_requests_total",
        "counter",
        "Control requests refused by the allow-list.",
        control.denied_requests,
    );
    w.one(
        "control_refused_connections_total",
        "counter",
        "Control connections closed at once because the connection limit was reached.",
        control.refused_connections,
    );
    w.one(
        "control_refused_subscribers_total",
        "counter",
        "/events requests refused (503) because the subscriber limit was reached.",
        control.refused_subscribers,
    );
    w.one(
        "control_unauthorized_requests_total",
        "counter",
        "Requests that change state refused for want of the control token.",
        control.unauthorized_requests,
    );
    w.one(
        "control_event_subscribers",
        "gauge",
        "Clients following /events now.",
        control.subscribers,
    );
    w.one(
        "control_lagged_events_total",
        "counter",
        "Events /events readers missed by falling behind (summed over readers).",
        control.lagged_events,
    );
    // Labels carry URLs and error texts: no registered secret leaves (src/secrets.rs).
    crate::secrets::redact_owned(w.out)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use crate::capture::CaptureStats;
    use crate::hub::Hub;
    use crate::notify::Notifier;
    use crate::origin::{Origin, OriginSettings};
    use crate::package::Packager;
    use crate::publish::Budget;
    use crate::status::{DestState, DestStatus, Registry};

    #[test]
    fn escapes_label_values() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// `/metrics` of a daemon built from the shipped configuration and one RTMP output with two
    /// registered destinations, every value that depends on the wall clock masked.
    fn rendered() -> String {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("config/twincast.toml");
        let mut text = std::fs::read_to_string(&path).expect("shipped config");
        text.push_str(
            "[[output]]\nname = \"cdn\"\nprotocol = \"rtmp\"\n\
             primary = \"rtmp://127.0.0.1/app\"\nsecondary = \"rtmp://127.0.0.2/app\"\n",
        );
        let config = crate::config::parse_str(&text, &path)
            .expect("valid")
            .config;
        let grid = crate::daemon::grid_of(&config).expect("grid");
        let specs = crate::daemon::track_specs(&config);
        let tracks = specs
            .iter()
            .map(|s| (s.name(), s.clock().expect("timescale")));
        let hub = Hub::new(tracks);
        let packager = Packager::new(grid, specs, hub.clone());
        let registry = Registry::new();
        for (dest, state) in [
            ("primary", DestState::Publishing),
            ("secondary", DestState::Backoff),
        ] {
            let handle =
                registry.register(DestStatus::new("cdn", dest, "720p", "rtmp://127.0.0.1/app"));
            handle.update(|d| {
                d.state = state;
                d.attempts = 3;
                d.resent_fragments = 2;
            });
        }
        let origin = Origin::new(
            OriginSettings::from_config(&config.origin, &grid, Path::new("/nonexistent")),
            &hub,
        );
        let ops = super::super::Ops::new(super::super::OpsParts {
            publish_budget: Budget::new(config.publish.memory),
            config,
            config_path: path,
            grid,
            capture: Arc::new(CaptureStats::default()),
            counters: packager.counters.clone(),
            hub,
            registry,
            origin,
            notifier: Arc::new(Notifier::from_env()),
        });
        let text = super::render(&super::super::snapshot::status(&ops), &Default::default());
        text.lines()
            .map(|l| match l.rsplit_once(' ') {
                Some((series, _)) if !l.starts_with('#') && series.contains("uptime_seconds") => {
                    format!("{series} <uptime>")
                }
                Some((series, _)) if !l.starts_with('#') && series.contains("twincast_clock_") => {
                    format!("{series} <clock>")
                }
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect()
    }

    /// The exposition did not change when `metrics.rs` was split into sections: every family,
    /// help text, label and value in the same order as before (`src/control/golden/metrics.txt`,
    /// written at commit 830800b). `TWINCAST_BLESS_GOLDEN=1` writes it again, only for an
    /// intended change of the output.
    #[test]
    fn the_exposition_matches_the_golden_text() {
        let golden =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/control/golden/metrics.txt");
        let text = rendered();
        if std::env::var_os("TWINCAST_BLESS_GOLDEN").is_some() {
            std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
            std::fs::write(&golden, &text).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden).expect("golden file");
        assert!(text.lines().count() > 100, "{text}");
        if text != want {
            let first = text
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(text.lines().count().min(want.lines().count()));
            panic!(
                "line {}: now {:?}, golden {:?}",
                first + 1,
                text.lines().nth(first),
                want.lines().nth(first)
            );
        }
    }
}
