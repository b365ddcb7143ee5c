//! What a source pipeline's appsinks lose, counted (ARCHITECTURE.md, the invariant on queues;
//! docs/design/data-path.md, *Queues and what they drop*).
//!
//! The appsinks of `build.rs` hold at most a few raw buffers and drop the oldest beyond
//! (`drop=true`), and their base sink discards what falls outside its segment; GStreamer 1.22
//! counts neither (appsink's `current-level-buffers` and `leaky-type` come with 1.28). So the
//! count is taken from both ends with the [`Ledger`] of `src/source.rs` (the network input's
//! decoders, `src/input/decode.rs`, count theirs with it too): a probe on the appsink's sink
//! pad counts every buffer that arrives, the new-sample callback counts every buffer it hands
//! to the `RawSink`, and the difference is what the sink lost.
//!
//! The count goes to the source's `buffers_dropped` (`/status` `input.sources[]`; the metric
//! `twincast_input_source_dropped_buffers_total` sums the sources), summed over the source's
//! lives, and a warning says so at most every [`WARN_EVERY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::status::SharedStatus;
use crate::source::Ledger;

/// Least time between two warnings about one appsink's losses.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(10);

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
