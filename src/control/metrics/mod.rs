//! `GET /metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Naming scheme (one for every metric): `twincast_<name>_<unit>[_total]`, where `<unit>` is a
//! base unit (`bytes`, `seconds`, `bits_per_second`, `frames_per_second`) or the counted thing
//! (`frames`, `fragments`, `units`, `requests`, `connections`, `errors`), `_total` marks
//! counters, and 0/1 gauges end in an adjective (`_up`, `_locked`, `_synchronised`). Every
//! series of a daemon carries `encoder` and `pair` labels so a pair's two boxes sit side by side.

use std::sync::atomic::Ordering;

use super::snapshot::Status;
use writer::Writer;

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

mod input;
mod origin;
mod outputs;
mod tracks;
mod writer;

/// Renders every metric of a status snapshot, section by section in a fixed order.
pub fn render(s: &Status, control: &ControlFigures) -> String {
    let mut w = Writer {
        out: String::new(),
        base: format!(
            "encoder=\"{}\",pair=\"{}\"",
            writer::escape(&s.encoder.name),
            writer::escape(&s.encoder.pair)
        ),
    };
    input::render(&mut w, s);
    tracks::render(&mut w, s);
    outputs::destinations(&mut w, s);
    origin::tracks(&mut w, s);
    outputs::memory(&mut w, s);
    origin::totals(&mut w, s);
    reloads_and_control(&mut w, s, control);
    signals(&mut w, s);
    // Labels carry URLs and error texts: no registered secret leaves (src/secrets.rs).
    crate::secrets::redact_owned(w.out)
}

/// The splice schedule (`POST /splice`).
fn signals(w: &mut Writer, s: &Status) {
    w.one(
        "splices_pending",
        "gauge",
        "Splices scheduled and still ahead of the encoders.",
        s.signals.pending as u64,
    );
    w.one(
        "splice_conditioned_frames_total",
        "counter",
        "IDRs forced on splice frames (every rendition cuts one on each).",
        s.signals.conditioned_frames,
    );
    w.one(
        "splice_refused_requests_total",
        "counter",
        "POST /splice requests refused as invalid or impossible (4xx, the token's refusals aside).",
        s.signals.refused_requests,
    );
    w.one(
        "splice_passed_through_sections_total",
        "counter",
        "SCTE-35 sections of the input that put a splice on the schedule (passthrough).",
        s.signals.passed_through_sections,
    );
    w.one(
        "splice_sections_not_passed_total",
        "counter",
        "SCTE-35 sections of the input that were not carried (see the log for why).",
        s.signals.sections_not_passed,
    );
    w.one(
        "captions_frames_total",
        "counter",
        "Frames fed with a source picture that carried closed captions.",
        s.signals.captions.frames,
    );
    w.one(
        "captions_not_carried_frames_total",
        "counter",
        "Source pictures whose closed captions were dropped (input.captions = \"none\").",
        s.signals.captions.frames_not_carried,
    );
}

/// Configuration reloads and the control listener's own figures.
fn reloads_and_control(w: &mut Writer, s: &Status, control: &ControlFigures) {
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
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use super::writer;
    use crate::capture::CaptureStats;
    use crate::hub::Hub;
    use crate::notify::Notifier;
    use crate::origin::{Origin, OriginSettings};
    use crate::package::Packager;
    use crate::publish::Budget;
    use crate::status::{DestState, DestStatus, Registry};

    #[test]
    fn escapes_label_values() {
        assert_eq!(writer::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
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
            signals: Arc::new(crate::signals::Signals::new(grid.rate())),
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
