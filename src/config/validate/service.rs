//! `[encoder]`, `[origin]`, `[control]` and `[publish]`: who this box is and what it serves.

use std::time::Duration;

use super::Checker;
use crate::config::duration::format_duration;
use crate::config::spans::KeyPath;

/// Legal DVR window.
pub const DVR_WINDOW: (Duration, Duration) =
    (Duration::from_secs(5 * 60), Duration::from_secs(25 * 3600));
/// Legal heartbeat interval.
pub const HEARTBEAT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// Smallest on-disk DVR bound.
pub const MIN_DVR_MAX_BYTES: u64 = 1 << 20;
/// Longest `origin.dvr_ram`: an hour of segments in RAM is already more than live players read.
pub const DVR_RAM_MAX: Duration = Duration::from_secs(3600);
/// Smallest `publish.memory` (a few fragments of a small ladder).
pub const MIN_PUBLISH_MEMORY: u64 = 1 << 20;
/// Smallest `origin.dvr_ram_max_bytes` (one large segment).
pub const MIN_DVR_RAM_MAX_BYTES: u64 = 1 << 20;

impl Checker<'_, '_, '_, '_> {
    pub(super) fn encoder(&mut self) {
        let s = KeyPath::key("encoder");
        for (key, value) in [
            ("name", &self.c.encoder.name),
            ("pair", &self.c.encoder.pair),
        ] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                self.err(
                    &s.join(key),
                    "must be a non-empty name without control characters".into(),
                );
            }
        }
        let state_dir = self.c.encoder.state_dir.as_ref();
        if let Some(dir) = state_dir.filter(|d| !d.is_absolute()) {
            self.err(
                &s.join("state_dir"),
                format!("\"{}\" must be an absolute path", dir.display()),
            );
        }
    }

    pub(super) fn publish(&mut self) {
        let m = self.c.publish.memory;
        if m < MIN_PUBLISH_MEMORY {
            self.err(
                &KeyPath::key("publish").join("memory"),
                format!("{m} bytes is too small (legal values: {MIN_PUBLISH_MEMORY} or more, e.g. \"192MiB\")"),
            );
        }
    }

    pub(super) fn origin(&mut self) {
        let s = KeyPath::key("origin");
        let o = &self.c.origin;
        self.duration_in(&s.join("dvr_window"), o.dvr_window, DVR_WINDOW);
        if o.segment_fragments == Some(0) {
            self.err(
                &s.join("segment_fragments"),
                "0 is not legal (legal values: 1 or more; omit for the GOP rule)".into(),
            );
        }
        if let Some(dir) = o.dvr_dir.as_ref().filter(|d| !d.is_absolute()) {
            self.err(
                &s.join("dvr_dir"),
                format!("\"{}\" must be an absolute path", dir.display()),
            );
        }
        if o.dvr_max_bytes < MIN_DVR_MAX_BYTES {
            self.err(&s.join("dvr_max_bytes"), format!("{} bytes is too small (legal values: {MIN_DVR_MAX_BYTES} or more, e.g. \"2GiB\")", o.dvr_max_bytes));
        }
        if o.dvr_ram > o.dvr_window.min(DVR_RAM_MAX) {
            self.err(
                &s.join("dvr_ram"),
                format!(
                    "{} is out of range (legal values: 0s..={}, and at most dvr_window)",
                    format_duration(o.dvr_ram),
                    format_duration(DVR_RAM_MAX)
                ),
            );
        }
        if o.dvr_ram_max_bytes < MIN_DVR_RAM_MAX_BYTES {
            self.err(
                &s.join("dvr_ram_max_bytes"),
                format!(
                    "{} bytes is too small (legal values: {MIN_DVR_RAM_MAX_BYTES} or more, e.g. \"64MiB\")",
                    o.dvr_ram_max_bytes
                ),
            );
        }
    }

    pub(super) fn control(&mut self) {
        let s = KeyPath::key("control");
        let ctl = &self.c.control;
        self.duration_in(&s.join("heartbeat"), ctl.heartbeat, HEARTBEAT);
        let (a, b) = (self.c.origin.listen, ctl.listen);
        let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
        if a.port() == b.port() && a.port() != 0 && overlap && !self.tainted(&["origin.listen"]) {
            self.err(
                &s.join("listen"),
                format!("{b} conflicts with origin.listen {a} (legal values: a different port)"),
            );
        }
    }
}
