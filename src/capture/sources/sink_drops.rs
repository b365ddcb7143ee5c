//! What a source pipeline's appsinks lose, counted (ARCHITECTURE.md, the invariant on queues;
//! docs/design/data-path.md, *Queues and what they drop*).
//!
//! The appsinks of `build.rs` hold at most a few raw buffers and drop the oldest beyond
//! (`drop=true`), and their base sink discards what falls outside its segment; GStreamer 1.22
//! counts neither (appsink's `current-level-buffers` and `leaky-type` come with 1.28). So the
//! count is taken from both ends: a probe on the appsink's sink pad counts every buffer that
//! arrives, the new-sample callback counts every buffer it hands to the `RawSink`, and the
//! difference is what the sink lost. Both run on the sink pad's streaming thread, the probe
//! before the sink's chain function, so when the callback runs for the n-th buffer exactly n
//! have arrived: the difference is exact, not a race. A loss is counted when the next buffer
//! is handed over (a source that stops sending has nothing more to lose).
//!
//! The count goes to the source's `buffers_dropped` (`/status` `input.sources[]`; the metric
//! `twincast_input_source_dropped_buffers_total` sums the sources), summed over the source's
//! lives, and a warning says so at most every [`WARN_EVERY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::status::SharedStatus;

/// Least time between two warnings about one appsink's losses.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(10);

/// Buffers in and buffers handed over, for one appsink of one life.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    handed: u64,
    lost: u64,
}

impl Ledger {
    /// One more buffer handed to the `RawSink`, `arrived` buffers having reached the sink pad
    /// so far (this one included); returns the buffers lost since the last call.
    pub(super) fn handed(&mut self, arrived: u64) -> u64 {
        self.handed += 1;
        let lost = arrived.saturating_sub(self.handed);
        let new = lost.saturating_sub(self.lost);
        self.lost = self.lost.max(lost);
        new
    }
}

/// Counts the buffers (and the buffers of buffer lists) that reach `pad`.
pub(super) fn count_arrivals(pad: &gst::Pad) -> Arc<AtomicU64> {
    let arrived = Arc::new(AtomicU64::new(0));
    let counter = arrived.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let n = match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => 1,
                Some(gst::PadProbeData::BufferList(list)) => list.len() as u64,
                _ => 0,
            };
            counter.fetch_add(n, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
    arrived
}

/// Where one source's appsink losses go: its status, summed over its lives.
#[derive(Clone)]
pub(super) struct SinkDrops {
    pub(super) status: SharedStatus,
}

/// One appsink's side of the count: its ledger and when it last warned.
pub(super) struct SinkCount {
    drops: SinkDrops,
    /// `video` or `audio`, for the warning.
    media: &'static str,
    arrived: Arc<AtomicU64>,
    ledger: Ledger,
    unsaid: u64,
    warned: Option<Instant>,
}

impl SinkCount {
    pub(super) fn new(drops: SinkDrops, media: &'static str, arrived: Arc<AtomicU64>) -> Self {
        SinkCount {
            drops,
            media,
            arrived,
            ledger: Ledger::default(),
            unsaid: 0,
            warned: None,
        }
    }

    /// A buffer was handed to the `RawSink`: counts what was lost before it.
    pub(super) fn handed(&mut self) {
        let lost = self.ledger.handed(self.arrived.load(Ordering::Relaxed));
        if lost == 0 {
            return;
        }
        let (role, kind, total) = {
            let mut s = crate::sync::lock(&self.drops.status);
            s.buffers_dropped += lost;
            (s.role, s.kind.clone(), s.buffers_dropped)
        };
        self.unsaid += lost;
        if self.warned.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        log::warn!(
            "{role} source {kind}: {} raw {} buffers lost in the source's appsink since the last warning (its queue full: an overloaded box; or outside its segment after a seek); {total} since start",
            self.unsaid,
            self.media,
        );
        self.unsaid = 0;
        self.warned = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_lost_while_every_buffer_is_handed_over() {
        let mut ledger = Ledger::default();
        for arrived in 1..=100 {
            assert_eq!(ledger.handed(arrived), 0);
        }
    }

    #[test]
    fn buffers_that_arrived_but_were_not_handed_over_are_counted_once() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.handed(1), 0);
        // Buffers 2..=4 arrived and were dropped; 5 is handed over.
        assert_eq!(ledger.handed(5), 3);
        // Counted once: the next buffers handed over add nothing.
        assert_eq!(ledger.handed(6), 0);
        assert_eq!(ledger.handed(7), 0);
        // A buffer list of 4 of which 1 reached the callback.
        assert_eq!(ledger.handed(11), 3);
    }
}
