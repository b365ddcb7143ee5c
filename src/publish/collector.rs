//! The collector: moves fragments from the hub into one task's backlog, never waiting on
//! the session, and enforces the shared memory budget after each push.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::budget;
use super::task::{Task, Unit};
use crate::hub::PackagedFragment;

/// Collects fragments from the hub into the task's backlog; never waits on the session.
pub(super) async fn collect(task: Arc<Task>, budget: Arc<budget::Budget>) {
    let Some(main_hub) = task.hub.track(task.spec.source_track()) else {
        return;
    };
    let mut main_rx = main_hub.subscribe();
    let mut audio_rx = task
        .spec
        .protocol
        .paired_audio()
        .and_then(|a| task.hub.track(a))
        .map(|t| t.subscribe());
    collect_from(&task, &budget, &mut main_rx, audio_rx.as_mut()).await;
}

type Fragments = broadcast::Receiver<Arc<PackagedFragment>>;

/// The collector's loop: receive (pairing video with audio for RTMP), push into the backlog
/// under its own bounds and then the shared budget, count and log the drops.
async fn collect_from(
    task: &Task,
    budget: &budget::Budget,
    main_rx: &mut Fragments,
    mut audio_rx: Option<&mut Fragments>,
) {
    let mut pairing = Pairing::default();
    let mut drops = Drops::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let has_audio = audio_rx.is_some();
    loop {
        let mut lost = 0u64;
        let mut ready: Vec<Unit> = Vec::new();
        tokio::select! {
            _ = task.cancel.cancelled() => return,
            _ = tick.tick() => {}
            r = main_rx.recv() => match r {
                Ok(f) => {
                    if has_audio {
                        pairing.video(f, &mut ready);
                    } else {
                        ready.push(unit(Some(f), None));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = async {
                match audio_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(f) => pairing.audio(f, &mut ready),
                Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                Err(broadcast::error::RecvError::Closed) => audio_rx = None,
            },
        }
        if !ready.is_empty() {
            drops.pending += push(task, budget, ready, drops.lag_total);
        }
        drops.budget(task, budget);
        drops.lagged(task, lost);
        drops.log_backlog_full(task);
    }
}

/// Pushes `ready` into the backlog (its own bounds may drop), updates `/status`, wakes the
/// session and enforces the shared budget; returns how many units the backlog dropped.
fn push(task: &Task, budget: &budget::Budget, ready: Vec<Unit>, lag_total: u64) -> u64 {
    let (dropped, len, held, total) = {
        let mut b = task.shared.lock();
        let mut d = 0;
        for u in ready {
            d += b.push(Arc::new(u));
        }
        (d, b.unsent() as u64, b.bytes(), b.dropped)
    };
    task.status.update(|s| {
        s.backlog_fragments = len;
        s.backlog_bytes = held;
        s.dropped_fragments = total + lag_total;
    });
    task.shared.notify.notify_one();
    // The shared budget, after this task's own bounds (it may drop from any task).
    budget.enforce();
    dropped
}

/// The collector's drop counts: what the hub's broadcast skipped (lagged), and the logs of
/// the backlog's and the budget's drops, aggregated at most once a second.
struct Drops {
    /// Dropped since the last "backlog full" line.
    pending: u64,
    /// Every fragment the broadcast skipped, for `dropped_fragments`.
    lag_total: u64,
    last_drop_log: Instant,
    /// Dropped by the budget since its last line.
    budget_pending: u64,
    last_budget_log: Instant,
}

impl Drops {
    fn new() -> Drops {
        Drops {
            pending: 0,
            lag_total: 0,
            last_drop_log: Instant::now() - Duration::from_secs(2),
            budget_pending: 0,
            last_budget_log: Instant::now() - Duration::from_secs(2),
        }
    }

    /// What the shared budget dropped from this task, logged at most once a second.
    fn budget(&mut self, task: &Task, budget: &budget::Budget) {
        self.budget_pending += task.budget_drops.swap(0, Ordering::Relaxed);
        if self.budget_pending > 0 && self.last_budget_log.elapsed() >= Duration::from_secs(1) {
            let spec = &task.spec;
            let budget_pending = self.budget_pending;
            log::warn!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
                "publish {} {} {}: memory budget ([publish] memory = {} MiB) reached, dropped {budget_pending} whole fragment(s) of this destination (the furthest behind)",
                spec.output, spec.dest, spec.track, budget.limit() >> 20
            );
            let total = task.shared.lock().dropped;
            task.status
                .update(|s| s.dropped_fragments = total + self.lag_total);
            self.budget_pending = 0;
            self.last_budget_log = Instant::now();
        }
    }

    /// `lost` fragments the broadcast skipped (this task's collector fell behind the hub).
    fn lagged(&mut self, task: &Task, lost: u64) {
        if lost > 0 {
            self.pending += lost;
            self.lag_total += lost;
            let total = task.shared.lock().dropped;
            let lag_total = self.lag_total;
            task.status
                .update(|s| s.dropped_fragments = total + lag_total);
        }
    }

    /// The "backlog full" line, at most once a second.
    fn log_backlog_full(&mut self, task: &Task) {
        if self.pending > 0 && self.last_drop_log.elapsed() >= Duration::from_secs(1) {
            let spec = &task.spec;
            let drops_pending = self.pending;
            log::warn!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
                "publish {} {} {}: backlog full, dropped {drops_pending} whole fragment(s)",
                spec.output, spec.dest, spec.track
            );
            self.pending = 0;
            self.last_drop_log = Instant::now();
        }
    }
}

/// A backlog unit of the main fragment and its paired audio one; it lasts as long as the
/// main fragment (the audio one when the main one was lost), each in its own timescale.
pub(super) fn unit(
    main: Option<Arc<PackagedFragment>>,
    audio: Option<Arc<PackagedFragment>>,
) -> Unit {
    let duration = main
        .as_ref()
        .or(audio.as_ref())
        .map_or(Duration::ZERO, |f| f.span().as_duration());
    Unit {
        seq: main.as_ref().or(audio.as_ref()).map_or(0, |f| f.sequence),
        bytes: main.as_ref().map_or(0, |f| f.bytes.len() as u64)
            + audio.as_ref().map_or(0, |f| f.bytes.len() as u64),
        duration,
        main,
        audio,
    }
}

/// A video fragment and the audio fragment with the same number, as far as they arrived.
type Pair = (Option<Arc<PackagedFragment>>, Option<Arc<PackagedFragment>>);

/// Pairs video fragment n with audio fragment n (RTMP carries both in one publish). A unit is
/// released when both halves are there, or when a later fragment shows the other half is
/// not coming (dropped upstream).
#[derive(Default)]
struct Pairing {
    pending: std::collections::BTreeMap<u64, Pair>,
    max_seen: u64,
}

/// Pending pairs kept at most (a bound, not a tuning knob).
const MAX_PENDING_PAIRS: usize = 4;

impl Pairing {
    fn video(&mut self, f: Arc<PackagedFragment>, ready: &mut Vec<Unit>) {
        self.max_seen = self.max_seen.max(f.sequence);
        let seq = f.sequence;
        self.pending.entry(seq).or_default().0 = Some(f);
        self.release(ready);
    }

    fn audio(&mut self, f: Arc<PackagedFragment>, ready: &mut Vec<Unit>) {
        self.max_seen = self.max_seen.max(f.sequence);
        let seq = f.sequence;
        self.pending.entry(seq).or_default().1 = Some(f);
        self.release(ready);
    }

    fn release(&mut self, ready: &mut Vec<Unit>) {
        while let Some((&seq, pair)) = self.pending.first_key_value() {
            let complete = pair.0.is_some() && pair.1.is_some();
            if !(complete || seq + 1 < self.max_seen || self.pending.len() > MAX_PENDING_PAIRS) {
                return;
            }
            if let Some((_, (v, a))) = self.pending.pop_first() {
                ready.push(unit(v, a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(seq: u64) -> Arc<PackagedFragment> {
        Arc::new(PackagedFragment {
            sequence: seq,
            base_dts: seq * 90_000,
            duration: 90_000,
            timescale: crate::package::VIDEO_CLOCK,
            sample_count: 30,
            filler: false,
            bytes: bytes::Bytes::from_static(b"xx"),
            media_bytes: 2,
            samples: Arc::new(Vec::new()),
            init: None,
        })
    }

    #[test]
    fn pairing_releases_complete_pairs_and_gives_up_on_lost_halves() {
        let mut p = Pairing::default();
        let mut ready = Vec::new();
        p.video(frag(1), &mut ready);
        assert!(ready.is_empty());
        p.audio(frag(1), &mut ready);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].main.is_some() && ready[0].audio.is_some());
        ready.clear();
        // Audio 2 lost upstream: video 2 goes alone once fragment 4 shows up.
        p.video(frag(2), &mut ready);
        p.video(frag(3), &mut ready);
        p.audio(frag(3), &mut ready);
        assert!(ready.is_empty(), "3 waits behind 2");
        p.video(frag(4), &mut ready);
        let seqs: Vec<u64> = ready.iter().map(|u| u.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert!(ready[0].audio.is_none());
    }
}
