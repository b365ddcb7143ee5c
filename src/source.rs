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

use gstreamer as gst;

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
