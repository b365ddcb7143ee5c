//! W of a sample from a source pipeline's appsink: its PTS on the realtime clock, less the
//! stream's lead over its arrival, or the arrival time when the timestamp is not believable.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::status::now_ns;

/// A capture time further than this from the system clock is not believed (a restarted
/// stream's timestamps): the arrival time stands in.
const MAX_CAPTURE_SKEW_NS: u64 = 2_000_000_000;

/// How far a source's timestamps run ahead of their arrival (an MPEG-TS stream's PTS lead the
/// PCR by the muxer's delay, 0.7 s with ffmpeg's defaults): the largest lead seen over the
/// last window (the picture that arrived earliest for its timestamp), so the pictures keep the
/// stream's own spacing (no arrival jitter) and none is placed in the future.
#[derive(Debug)]
pub(super) struct Lead {
    current: Option<u64>,
    window_max: u64,
    window_start: Instant,
}

/// The lead is re-estimated this often (from the largest lead of the window before).
const LEAD_WINDOW: Duration = Duration::from_secs(2);

impl Lead {
    pub(super) fn new() -> Self {
        Lead {
            current: None,
            window_max: 0,
            window_start: Instant::now(),
        }
    }

    /// `w` corrected by the lead, given the arrival time `now`.
    fn correct(&mut self, w: u64, now: u64) -> u64 {
        let ahead = w.saturating_sub(now);
        self.window_max = self.window_max.max(ahead);
        let mut current = *self.current.get_or_insert(ahead);
        if ahead > current {
            // Earlier than ever for its timestamp: the lead is at least this.
            current = ahead;
            self.current = Some(ahead);
        }
        if self.window_start.elapsed() >= LEAD_WINDOW {
            self.current = Some(self.window_max);
            self.window_max = 0;
            self.window_start = Instant::now();
        }
        // Never in the future, whatever the estimate.
        w.saturating_sub(current).min(now)
    }
}

/// W of a sample: base time + running time of its PTS less the stream's lead, or the arrival
/// time when the timestamp is missing or more than 2 s off.
pub(super) fn capture_time(sink: &gst_app::AppSink, sample: &gst::Sample, lead: &mut Lead) -> u64 {
    let now = now_ns();
    let w = (|| {
        let buffer = sample.buffer()?;
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        let running = segment.to_running_time(buffer.pts()?)?;
        Some((sink.base_time()? + running).nseconds())
    })();
    match w {
        Some(w) if w.abs_diff(now) < MAX_CAPTURE_SKEW_NS => lead.correct(w, now),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ahead_of_its_arrival_keeps_its_spacing_and_is_never_in_the_future() {
        let mut lead = Lead::new();
        let t0 = 1_796_000_000_000_000_000u64;
        // Timestamps 700 ms ahead of arrival, arrivals jittered by up to 20 ms.
        let mut out = Vec::new();
        for i in 0..30u64 {
            let w = t0 + i * 33_333_333 + 700_000_000;
            let now = t0 + i * 33_333_333 + (i % 3) * 10_000_000;
            let c = lead.correct(w, now);
            assert!(c <= now, "frame {i} in the future");
            out.push(c);
        }
        // The spacing is the stream's own: every step exactly one frame.
        assert!(out.windows(2).all(|p| p[1] - p[0] == 33_333_333), "{out:?}");
        // A stream that is not ahead is left alone.
        let mut lead = Lead::new();
        assert_eq!(lead.correct(t0, t0 + 5_000_000), t0);
    }
}
