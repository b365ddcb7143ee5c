//! The supervisor every source runs under: `supervise` around `run_once`, the shape of the
//! publish tasks (docs/design/publish.md), with backoff, `state`, `last_error` and `restarts`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sink_drops::SinkDrops;
use super::status::{
    NetworkCounters, SharedStatus, SourceStatus, TIMING_PENDING, now_ns, set_state,
};
use crate::config::InputKind;
use crate::source::Timing;

/// First wait after a failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between attempts for a source that connects to a server (`rtsp`): a refused
/// connect costs the server nothing, and a camera or server that comes back is on air within
/// this wait plus its SETUP/PLAY and first keyframe instead of up to [`MAX_BACKOFF`]
/// (docs/guide/troubleshooting.md, *input source <kind>: <error>; retrying in <ms> ms*).
pub const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// A run this long resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(10);
/// The same error again within this long is logged at debug level (`last_error` and `restarts`
/// in `/status` still show every attempt); a new error, or the same one after this long, is a
/// warning again. A server that is away for a day does not write a warning every second.
pub const REPEAT_WARN: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its stop flag while waiting.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// What one life (`run_once`) of a source sees of its supervisor.
pub struct SourceLife<'a> {
    stop: &'a AtomicBool,
    status: &'a SharedStatus,
    after_failure: bool,
    pub(super) role: &'a str,
    pub(super) kind: &'a str,
}

impl SourceLife<'_> {
    /// The supervisor wants the source to end: return `Ok(())` soon.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The source runs (it receives or decodes): `state = "running"`.
    pub fn running(&self) {
        set_state(self.status, "running");
        if self.after_failure {
            log::info!(state = "running"; "{} source {}: running again", self.role, self.kind);
        }
    }

    /// How the source takes W, once it knows (`None`: not yet, `input.timing = "pending"`).
    pub fn set_timing(&self, timing: Option<Timing>) {
        let text = timing.map_or(TIMING_PENDING, Timing::as_str);
        let mut s = crate::sync::lock(self.status);
        if s.timing != text {
            if timing.is_some() {
                log::info!(timing = text; "{} source {}: timing {text}", self.role, self.kind);
            }
            s.timing = text;
        }
    }

    /// A network source's counters (already summed over its lives); what its decoders'
    /// appsinks lost is its `buffers_dropped`, as for the other sources.
    pub fn set_counters(&self, counters: NetworkCounters) {
        let mut s = crate::sync::lock(self.status);
        s.buffers_dropped = counters.decoder_dropped;
        s.counters = Some(counters);
    }

    /// Where this source's appsinks count what they lose (src/capture/sources/sink_drops.rs).
    pub(super) fn sink_drops(&self) -> SinkDrops {
        SinkDrops {
            status: self.status.clone(),
        }
    }
}

/// One life of a source: hand media to its [`RawSink`] until [`SourceLife::stopped`] (then
/// `Ok`) or a failure (`Err` with a reason an operator can act on; it becomes `last_error`).
/// Any source — a GStreamer pipeline here, the RTP/MPEG-TS front end in Rust — runs under the
/// same supervisor with [`spawn_source`].
///
/// [`RawSink`]: crate::source::RawSink
pub type RunOnce = Box<dyn FnMut(&SourceLife) -> Result<(), String> + Send + 'static>;

/// A supervised source; stopping joins its thread (and its pipeline goes to NULL).
pub struct Supervised {
    pub status: SharedStatus,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `run_once` under a supervisor thread (backoff, `state`, `last_error`, `restarts`) until
/// the returned handle is stopped. `role` is `input`, `backup` or `audio`; `timing` says how the
/// source takes W (`input.timing` in `/status`; `None` until the source calls
/// [`SourceLife::set_timing`]).
pub fn spawn_source(
    role: &'static str,
    kind: String,
    timing: Option<Timing>,
    mut run_once: RunOnce,
) -> Supervised {
    let status = Arc::new(Mutex::new(SourceStatus {
        role,
        kind: kind.clone(),
        state: "starting",
        since_ns: now_ns(),
        last_error: None,
        restarts: 0,
        timing: timing.map_or(TIMING_PENDING, Timing::as_str),
        counters: None,
        buffers_dropped: 0,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (status, stop) = (status.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("src-{role}"))
            .spawn(move || supervise(role, &kind, &mut run_once, &status, &stop))
    };
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!("{role} source: cannot start its thread: {e}");
            None
        }
    };
    Supervised {
        status,
        stop,
        thread,
    }
}

/// `run_once` until stopped, with backoff between failures.
fn supervise(
    role: &'static str,
    kind: &str,
    run_once: &mut RunOnce,
    status: &SharedStatus,
    stop: &AtomicBool,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failed = false;
    let mut warned: Option<(String, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        set_state(status, "starting");
        let started = Instant::now();
        let life = SourceLife {
            stop,
            status,
            after_failure: failed,
            role,
            kind,
        };
        match run_once(&life) {
            Ok(()) => break,
            Err(e) => {
                if started.elapsed() >= STABLE_RUN {
                    backoff = MIN_BACKOFF;
                }
                if repeat_is_quiet(warned.as_ref(), &e, Instant::now()) {
                    log::debug!(
                        state = "backoff", error = e.as_str();
                        "{role} source {kind}: {e} again; retrying in {} ms",
                        backoff.as_millis()
                    );
                } else {
                    log::warn!(
                        state = "backoff", error = e.as_str();
                        "{role} source {kind}: {e}; retrying in {} ms",
                        backoff.as_millis()
                    );
                    warned = Some((e.clone(), Instant::now()));
                }
                {
                    let mut s = crate::sync::lock(status);
                    s.last_error = Some(e);
                    s.restarts += 1;
                }
                set_state(status, "backoff");
                failed = true;
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                }
                backoff = next_backoff(kind, backoff);
            }
        }
    }
    set_state(status, "stopped");
}

/// The wait after `backoff`: doubled, up to [`RECONNECT_BACKOFF`] for `rtsp` and
/// [`MAX_BACKOFF`] for every other kind.
fn next_backoff(kind: &str, backoff: Duration) -> Duration {
    let cap = if kind == InputKind::Rtsp.as_str() {
        RECONNECT_BACKOFF
    } else {
        MAX_BACKOFF
    };
    (backoff * 2).min(cap)
}

/// Whether the failure `e` at `now` repeats the last warned one within [`REPEAT_WARN`].
fn repeat_is_quiet(warned: Option<&(String, Instant)>, e: &str, now: Instant) -> bool {
    warned.is_some_and(|(last, at)| last == e && now.saturating_duration_since(*at) < REPEAT_WARN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_source_shows_its_decoders_appsink_losses_as_buffers_dropped() {
        let status = Arc::new(Mutex::new(SourceStatus {
            role: "input",
            kind: "rtp".into(),
            state: "running",
            since_ns: 0,
            last_error: None,
            restarts: 0,
            timing: "rtcp",
            counters: None,
            buffers_dropped: 0,
        }));
        let stop = AtomicBool::new(false);
        let life = SourceLife {
            stop: &stop,
            status: &status,
            after_failure: false,
            role: "input",
            kind: "rtp",
        };
        life.set_counters(NetworkCounters {
            decoder_dropped: 9,
            ..Default::default()
        });
        let s = crate::sync::lock(&status);
        assert_eq!(s.buffers_dropped, 9);
        assert_eq!(s.counters.map(|c| c.decoder_dropped), Some(9));
    }

    #[test]
    fn an_rtsp_source_retries_at_least_every_second_and_the_others_every_five() {
        let waits = |kind: &str| {
            let mut b = MIN_BACKOFF;
            let mut out = vec![b];
            for _ in 0..5 {
                b = next_backoff(kind, b);
                out.push(b);
            }
            out.iter().map(Duration::as_millis).collect::<Vec<_>>()
        };
        assert_eq!(waits("rtsp"), [500, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(waits("file"), [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(waits("v4l2"), [500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn the_same_error_again_is_a_warning_only_once_a_minute() {
        let t0 = Instant::now();
        let warned = ("source: Could not open resource".to_string(), t0);
        // Nothing warned yet: warn.
        assert!(!repeat_is_quiet(None, &warned.0, t0));
        // The same error a second later: quiet.
        let later = t0 + Duration::from_secs(1);
        assert!(repeat_is_quiet(Some(&warned), &warned.0, later));
        // Another error: warn.
        assert!(!repeat_is_quiet(Some(&warned), "source: Not Found", later));
        // The same error after a minute: warn again.
        assert!(!repeat_is_quiet(Some(&warned), &warned.0, t0 + REPEAT_WARN));
    }

    #[test]
    fn a_failing_source_is_retried_with_backoff_and_reports_its_error() {
        let mut lives = 0u32;
        let mut handle = spawn_source(
            "input",
            "rtsp".into(),
            Some(Timing::Arrival),
            Box::new(move |life: &SourceLife| {
                lives += 1;
                if lives <= 2 {
                    return Err(format!("connection refused ({lives})"));
                }
                life.running();
                while !life.stopped() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let s = handle.status.lock().unwrap().clone();
            if s.state == "running" || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.state, "running");
        assert_eq!(status.restarts, 2);
        assert_eq!(status.last_error.as_deref(), Some("connection refused (2)"));
        handle.stop();
        assert_eq!(handle.status.lock().unwrap().state, "stopped");
    }
}
