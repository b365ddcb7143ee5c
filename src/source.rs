//! The seam between input sources and the encoders.
//!
//! A source (test pattern, camera, file, RTSP, the RTP/MPEG-TS front end, SRT, a backup input)
//! decodes its media and hands raw pictures and raw audio to a [`RawSink`], each with its capture
//! time W. The encoder side owns the epoch timeline (docs/design/timeline.md): it gives each
//! picture its frame index from W, and feeds the slate for the frames no source delivered. A source
//! can fail and be rebuilt without the encoders noticing more than missing pictures.
//!
//! It lives outside `capture` so that the network input (`src/input/`) and capture both depend
//! on it, not on each other. A source runs under the capture supervisor
//! (`capture::sources::spawn_source` with a `RunOnce`: backoff, `state`, `last_error` in
//! `/status`); the `RawSink` it is given is the grid feed of `capture/grid.rs`, whose policy is
//! in `capture/feed.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;

/// How a source knows the capture time W of its media; `input.timing` in `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// W is the local arrival (capture) time on this box's system clock.
    Arrival,
    /// W is the sender's wall clock from RTCP sender reports (NTP time ↔ RTP time).
    Rtcp,
    /// W's phase comes from the stream's own PTS (MPEG-TS without a sender wall clock); the
    /// local clock gives only the coarse position.
    Pts,
}

impl Timing {
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Arrival => "arrival",
            Timing::Rtcp => "rtcp",
            Timing::Pts => "pts",
        }
    }
}

/// Receives a source's decoded media. Never blocks the caller for long: a sink that cannot keep
/// up drops and counts.
///
/// - Video: raw I420 at the `[input]` width × height, one picture per buffer.
/// - Audio: raw S16LE interleaved at the `[audio]` sample rate and channel count.
///
/// `wall_ns` is W: nanoseconds since 1970-01-01T00:00:00Z at which the first picture element or
/// sample of the buffer was captured (on the sender's clock where the feed carries it).
pub trait RawSink: Send + Sync + 'static {
    fn video(&self, wall_ns: u64, buffer: gst::Buffer);
    fn audio(&self, wall_ns: u64, buffer: gst::Buffer);
}

/// Buffers in and buffers handed over, for one appsink of one life: what a source's appsink
/// lost is the difference (src/capture/sources/sink_drops.rs for the source pipelines,
/// src/input/decode.rs for a network input's decoders). GStreamer 1.22 counts neither the
/// buffers an appsink with `drop=true` drops nor those its base sink discards outside its
/// segment, so [`count_arrivals`] counts what reaches the sink pad and the new-sample
/// callback calls [`Ledger::handed`] for each buffer it hands over. Both run on the sink
/// pad's streaming thread, the probe before the sink's chain function, so when the callback
/// runs for the n-th buffer exactly n have arrived: the difference is exact, not a race. A
/// loss is counted when the next buffer is handed over (a source that stops sending has
/// nothing more to lose).
#[derive(Debug, Default)]
pub struct Ledger {
    handed: u64,
    lost: u64,
}

impl Ledger {
    /// One more buffer handed to the `RawSink`, `arrived` buffers having reached the sink pad
    /// so far (this one included); returns the buffers lost since the last call.
    pub fn handed(&mut self, arrived: u64) -> u64 {
        self.handed += 1;
        let lost = arrived.saturating_sub(self.handed);
        let new = lost.saturating_sub(self.lost);
        self.lost = self.lost.max(lost);
        new
    }
}

/// Counts the buffers (and the buffers of buffer lists) that reach `pad`.
pub fn count_arrivals(pad: &gst::Pad) -> Arc<AtomicU64> {
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

/// Test support for the appsink ledgers' tests (src/capture/sources/build.rs,
/// src/input/decode.rs): a raw 64×36 I420 feed whose first buffers end before the segment's
/// start, so the base sink discards them without rendering.
#[cfg(test)]
pub mod test_feed {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use gstreamer_app as gst_app;

    /// The feed's caps: 64×36 I420 at 10 fps.
    pub fn caps() -> gst::Caps {
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", 64i32)
            .field("height", 36i32)
            .field("framerate", gst::Fraction::new(10, 1))
            .build()
    }

    /// Links an appsrc to `first` (already in `pipeline`), plays, and pushes twelve 100 ms
    /// buffers in a segment that starts at 1 s: buffers 0..10 end before it, 10 and 11 are
    /// handed over. Returns once the pipeline reached EOS (and fails if it did not).
    pub fn across_the_segment_start(pipeline: &gst::Pipeline, first: &gst::Element) {
        let caps = caps();
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .handle_segment_change(true)
            .build();
        pipeline.add(&src).expect("add");
        src.link(first).expect("link");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_start(gst::ClockTime::from_seconds(1));
        for i in 0..12u64 {
            let mut buffer = gst::Buffer::with_size(64 * 36 * 3 / 2).expect("buffer");
            {
                let b = buffer.get_mut().expect("writable");
                b.set_pts(gst::ClockTime::from_mseconds(100 * i));
                b.set_duration(gst::ClockTime::from_mseconds(100));
            }
            let sample = gst::Sample::builder()
                .buffer(&buffer)
                .caps(&caps)
                .segment(&segment)
                .build();
            src.push_sample(&sample).expect("pushed");
        }
        src.end_of_stream().expect("eos");
        let bus = pipeline.bus().expect("bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let _ = pipeline.set_state(gst::State::Null);
        assert!(
            matches!(
                msg.as_ref().map(|m| m.view()),
                Some(gst::MessageView::Eos(_))
            ),
            "{msg:?}"
        );
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
