//! Epoch-locked timeline: which frame index a captured picture or AAC frame gets, and where the
//! GOP, fragment and audio-fragment boundaries fall (docs/design/timeline.md).
//!
//! # Policy
//!
//! - Media time is counted from 1970-01-01T00:00:00Z. Video frame `k` at rate N/D starts at
//!   `t_k = k·D/N` seconds; AAC frame `j` covers samples `[1024·j, 1024·(j+1))` of the epoch, so it
//!   starts at `1024·j / rate` seconds. Every value is recomputed from `k` or `j` with exact
//!   integer (u128) arithmetic; nothing is accumulated from deltas.
//! - The first frame with wall-clock capture time `W` gets the nearest index, `round(W/P)` where
//!   `P` is the frame period (ties round up).
//! - Each later frame gets the previous index plus one, as long as `W` is within ¾ of a frame of
//!   that frame's time `t_{k+1}`. Capture jitter below ¾ of a frame therefore never changes an
//!   index, so two boxes fed the same pictures assign the same indices even if their capture
//!   times differ by a few milliseconds. (Rounding every frame on its own turns jitter into
//!   duplicated and skipped indices.)
//! - When `W` is more than ¾ of a frame away from `t_{k+1}`, the timeline re-anchors to
//!   `round(W/P)`:
//!   - forward (a stall, an outage, or a source clock slower than the system clock): the index
//!     jumps, the frame is stamped `reanchored`, and the indices jumped over are counted as
//!     skipped;
//!   - behind (a source clock faster than the system clock, or the system clock stepped back):
//!     the nearest index is at or before the previous one, so the frame is **dropped** and
//!     counted. Indices never go backwards and never repeat. After a clock step back of `s`
//!     seconds frames are dropped for `s` seconds, until wall time catches up with the grid.
//! - The ¾-frame threshold gives hysteresis: after a drift-driven drop or skip the frame lands
//!   ¼ of a frame on the other side, so a slowly drifting source drops (or skips) one frame
//!   at a time, never oscillates.
//! - [`VideoTimeline::reset`] (input restart) makes the next frame anchor like a first frame, but
//!   still never below or on an index already given out.
//!
//! Both boxes of a redundant pair agree as long as their capture times for the same picture are
//! within ¾ of a frame of each other *and* the source's phase relative to the grid is not
//! within the jitter of half a frame at the first frame (where the first rounding could differ).
//! Downstream of the grid clock every frame is stamped exactly `t_k` (docs/design/timeline.md,
//! *The grid clock*), so an index recovered from those timestamps has no phase to round.

use thiserror::Error;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Samples per AAC frame.
pub const AAC_FRAME_SAMPLES: u64 = 1024;

/// Errors from building timeline values out of configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimelineError {
    #[error(
        "invalid frame rate {0:?}: expected \"N/D\" or \"N\" with non-zero integers, e.g. \"30/1\", \"30000/1001\", \"25\""
    )]
    InvalidFrameRate(String),
    #[error(
        "GOP of {gop_ns} ns is not a whole number of frames at {rate} fps (one frame is {num_ns}/{den} ns)"
    )]
    GopNotWholeFrames {
        gop_ns: u64,
        rate: FrameRate,
        num_ns: u128,
        den: u32,
    },
    #[error("GOP must be at least one frame long")]
    GopEmpty,
    #[error("fragment_gops must be at least 1 (got {0})")]
    FragmentGopsZero(u64),
    #[error("fragment of {gop_frames} × {fragment_gops} frames is too long")]
    FragmentTooLong { gop_frames: u64, fragment_gops: u64 },
}

/// `floor(x·m/d)` without overflow in the intermediate product, saturating the result at
/// `u64::MAX`. `d == 0` yields `u64::MAX`.
fn mul_div_floor(x: u64, m: u128, d: u128) -> u64 {
    if d == 0 {
        return u64::MAX;
    }
    let x = u128::from(x);
    let (q, r) = (x / d, x % d);
    // r < d, so r·m overflows only when d·m exceeds u128; fall back to saturation then.
    let hi = q.checked_mul(m);
    let lo = r.checked_mul(m).map(|p| p / d);
    match (hi, lo) {
        (Some(hi), Some(lo)) => hi.checked_add(lo).map_or(u64::MAX, saturate_u64),
        _ => u64::MAX,
    }
}

/// `ceil(x·m/d)`, same overflow behaviour as [`mul_div_floor`].
fn mul_div_ceil(x: u64, m: u128, d: u128) -> u64 {
    if d == 0 {
        return u64::MAX;
    }
    let x = u128::from(x);
    let (q, r) = (x / d, x % d);
    let hi = q.checked_mul(m);
    let lo = r.checked_mul(m).map(|p| p.div_ceil(d));
    match (hi, lo) {
        (Some(hi), Some(lo)) => hi.checked_add(lo).map_or(u64::MAX, saturate_u64),
        _ => u64::MAX,
    }
}

/// `round(x·m/d)`, ties up, same overflow behaviour as [`mul_div_floor`].
fn mul_div_round(x: u64, m: u128, d: u128) -> u64 {
    if d == 0 {
        return u64::MAX;
    }
    let x = u128::from(x);
    let (q, r) = (x / d, x % d);
    let hi = q.checked_mul(m);
    // round(r·m/d) = floor((2·r·m + d) / 2d)
    let lo = r
        .checked_mul(m)
        .and_then(|p| p.checked_mul(2))
        .and_then(|p| p.checked_add(d))
        .zip(d.checked_mul(2))
        .map(|(p, d2)| p / d2);
    match (hi, lo) {
        (Some(hi), Some(lo)) => hi.checked_add(lo).map_or(u64::MAX, saturate_u64),
        _ => u64::MAX,
    }
}

fn saturate_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// A frame rate N/D frames per second, both non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

impl FrameRate {
    /// A frame rate of `num/den` fps; `None` if either is zero.
    pub fn new(num: u32, den: u32) -> Option<Self> {
        (num != 0 && den != 0).then_some(Self { num, den })
    }

    /// Parses `"30/1"`, `"30000/1001"` or `"25"`.
    pub fn parse(s: &str) -> Result<Self, TimelineError> {
        let err = || TimelineError::InvalidFrameRate(s.to_owned());
        let t = s.trim();
        let (n, d) = match t.split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (t, "1"),
        };
        let num: u32 = n.parse().map_err(|_| err())?;
        let den: u32 = d.parse().map_err(|_| err())?;
        Self::new(num, den).ok_or_else(err)
    }

    pub fn num(&self) -> u32 {
        self.num
    }

    pub fn den(&self) -> u32 {
        self.den
    }

    /// Frames per second as a float (for manifests only; never for timing).
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Start of frame `k` in ns since the epoch: `floor(k·D·1e9/N)`, saturating.
    pub fn frame_time_ns(&self, k: u64) -> u64 {
        mul_div_floor(
            k,
            u128::from(self.den) * u128::from(NS_PER_SEC),
            u128::from(self.num),
        )
    }

    /// The frame index nearest to `ns`: `round(ns·N/(D·1e9))`, ties up.
    pub fn frame_index_nearest(&self, ns: u64) -> u64 {
        mul_div_round(
            ns,
            u128::from(self.num),
            u128::from(self.den) * u128::from(NS_PER_SEC),
        )
    }

    /// The first frame that starts at or after `ns`: `ceil(ns·N/(D·1e9))` (a splice point
    /// requested for time `ns`).
    pub fn frame_index_at_or_after(&self, ns: u64) -> u64 {
        mul_div_ceil(
            ns,
            u128::from(self.num),
            u128::from(self.den) * u128::from(NS_PER_SEC),
        )
    }

    /// Start of frame `k` in units of `timescale`: `floor(k·D·timescale/N)`, saturating. Exact
    /// whenever `D·timescale` is a multiple of `N` (30/1, 25 and 30000/1001 at 90 kHz).
    pub fn frame_ts(&self, k: u64, timescale: u32) -> u64 {
        mul_div_floor(
            k,
            u128::from(self.den) * u128::from(timescale),
            u128::from(self.num),
        )
    }

    /// One frame's period in ns as the exact rational `(D·1e9, N)`.
    fn period_ns(&self) -> (u128, u128) {
        (
            u128::from(self.den) * u128::from(NS_PER_SEC),
            u128::from(self.num),
        )
    }
}

impl std::fmt::Display for FrameRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// What the timeline decided for one captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAssign {
    /// Stamp the frame with index `k`. `reanchored` when the index did not simply follow the
    /// previous one (first frame after [`VideoTimeline::reset`], or a forward jump).
    Frame { k: u64, reanchored: bool },
    /// The frame's nearest index was already given out: drop it.
    Drop,
}

/// Counters of a timeline, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineCounters {
    /// Frames given an index.
    pub frames: u64,
    /// Forward re-anchors (stalls, outages, slow source clock), including after a reset.
    pub reanchors_forward: u64,
    /// Frames dropped because their nearest index was already given out.
    pub drops_behind: u64,
    /// Indices jumped over by forward re-anchors, in total.
    pub frames_skipped: u64,
    /// Calls to `reset`.
    pub resets: u64,
}

/// The shared keep-counting / re-anchor core of the video and audio timelines. The frame
/// period is the exact rational `period_num / period_den` nanoseconds.
#[derive(Debug, Clone)]
struct Ticker {
    period_num: u128,
    period_den: u128,
    /// Last index given out.
    last: Option<u64>,
    /// Next frame anchors like a first frame.
    anchor_next: bool,
    counters: TimelineCounters,
}

impl Ticker {
    fn new(period_num: u128, period_den: u128) -> Self {
        Self {
            period_num,
            period_den,
            last: None,
            anchor_next: true,
            counters: TimelineCounters::default(),
        }
    }

    fn nearest(&self, ns: u64) -> u64 {
        mul_div_round(ns, self.period_den, self.period_num)
    }

    /// Whether `ns` is within ¾ of a period of the start of frame `k`, compared exactly:
    /// `4·|ns·den − k·num| ≤ 3·num`.
    fn within_three_quarters(&self, ns: u64, k: u64) -> bool {
        let w = u128::from(ns).checked_mul(self.period_den);
        let t = u128::from(k).checked_mul(self.period_num);
        let (Some(w), Some(t)) = (w, t) else {
            return false;
        };
        let diff = w.abs_diff(t);
        match (diff.checked_mul(4), self.period_num.checked_mul(3)) {
            (Some(d4), Some(p3)) => d4 <= p3,
            _ => false,
        }
    }

    fn assign(&mut self, ns: u64) -> FrameAssign {
        if let Some(last) = self.last {
            let Some(next) = last.checked_add(1) else {
                // The index space is exhausted; never repeat an index.
                self.counters.drops_behind = self.counters.drops_behind.saturating_add(1);
                return FrameAssign::Drop;
            };
            if !self.anchor_next && self.within_three_quarters(ns, next) {
                return self.give(next, false);
            }
        }
        let k = self.nearest(ns);
        match self.last {
            Some(last) if k <= last => {
                self.counters.drops_behind = self.counters.drops_behind.saturating_add(1);
                FrameAssign::Drop
            }
            Some(last) => {
                self.counters.reanchors_forward = self.counters.reanchors_forward.saturating_add(1);
                self.counters.frames_skipped =
                    self.counters.frames_skipped.saturating_add(k - last - 1);
                self.give(k, true)
            }
            None => self.give(k, false),
        }
    }

    fn give(&mut self, k: u64, reanchored: bool) -> FrameAssign {
        self.last = Some(k);
        self.anchor_next = false;
        self.counters.frames = self.counters.frames.saturating_add(1);
        FrameAssign::Frame { k, reanchored }
    }

    fn reset(&mut self) {
        self.anchor_next = true;
        self.counters.resets = self.counters.resets.saturating_add(1);
    }
}

/// Assigns video frame indices from wall-clock capture times (see the module policy).
#[derive(Debug, Clone)]
pub struct VideoTimeline {
    rate: FrameRate,
    ticker: Ticker,
}

impl VideoTimeline {
    pub fn new(rate: FrameRate) -> Self {
        let (num, den) = rate.period_ns();
        Self {
            rate,
            ticker: Ticker::new(num, den),
        }
    }

    pub fn rate(&self) -> FrameRate {
        self.rate
    }

    /// Index for a frame captured at `capture_ns` (wall clock, ns since the epoch).
    pub fn assign(&mut self, capture_ns: u64) -> FrameAssign {
        self.ticker.assign(capture_ns)
    }

    /// The last index given out.
    pub fn last_index(&self) -> Option<u64> {
        self.ticker.last
    }

    /// Input restarted: the next frame anchors afresh (never below the last index given out).
    pub fn reset(&mut self) {
        self.ticker.reset();
    }

    pub fn counters(&self) -> TimelineCounters {
        self.ticker.counters
    }
}

/// Assigns AAC frame indices `j` (1024-sample frames on the epoch grid) from buffer timestamps,
/// with the same policy as video.
#[derive(Debug, Clone)]
pub struct AudioTimeline {
    sample_rate: u32,
    ticker: Ticker,
}

impl AudioTimeline {
    /// A timeline at `sample_rate` Hz. A zero rate (rejected by config validation) is taken
    /// as 1 Hz so that nothing here divides by zero.
    pub fn new(sample_rate: u32) -> Self {
        let sample_rate = sample_rate.max(1);
        let num = u128::from(AAC_FRAME_SAMPLES) * u128::from(NS_PER_SEC);
        Self {
            sample_rate,
            ticker: Ticker::new(num, u128::from(sample_rate)),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples to drop from the front of the first raw buffer (whose first sample is at
    /// `first_buffer_ns`) so that the first kept sample starts an AAC frame on the epoch grid,
    /// i.e. its epoch sample index `round(ns·rate/1e9)` is a multiple of 1024. In `0..1024`;
    /// 0 for a zero rate.
    pub fn samples_to_trim(first_buffer_ns: u64, sample_rate: u32) -> u64 {
        if sample_rate == 0 {
            return 0;
        }
        let s = mul_div_round(
            first_buffer_ns,
            u128::from(sample_rate),
            u128::from(NS_PER_SEC),
        );
        (AAC_FRAME_SAMPLES - s % AAC_FRAME_SAMPLES) % AAC_FRAME_SAMPLES
    }

    /// Start of AAC frame `j` in ns since the epoch, floored and saturating.
    pub fn frame_time_ns(&self, j: u64) -> u64 {
        mul_div_floor(j, self.ticker.period_num, self.ticker.period_den)
    }

    /// Index `j` for an AAC frame whose first sample is at `pts_ns` (ns since the epoch).
    ///
    /// When the policy drops the frame (its nearest index was already given out), this
    /// returns that nearest index anyway: it is at or below the last index given out, so a
    /// consumer that requires increasing indices (the [`Fragmenter`](crate::fragmenter::Fragmenter)
    /// does, and counts it) discards it. Use [`AudioTimeline::assign_frame`] to see the decision.
    pub fn assign(&mut self, pts_ns: u64) -> u64 {
        match self.ticker.assign(pts_ns) {
            FrameAssign::Frame { k, .. } => k,
            FrameAssign::Drop => self.ticker.nearest(pts_ns),
        }
    }

    /// Like [`AudioTimeline::assign`], with the decision: an index, or a drop.
    pub fn assign_frame(&mut self, pts_ns: u64) -> FrameAssign {
        self.ticker.assign(pts_ns)
    }

    pub fn last_index(&self) -> Option<u64> {
        self.ticker.last
    }

    pub fn reset(&mut self) {
        self.ticker.reset();
    }

    pub fn counters(&self) -> TimelineCounters {
        self.ticker.counters
    }
}

/// The GOP and fragment grid: GOPs of `gop_frames` frames starting at `k mod g == 0`; fragment
/// `n` covers frames `[n·g·F, (n+1)·g·F)`. Audio fragment `n` covers AAC frames `[j_n, j_{n+1})`
/// where `j_n` is the first AAC frame starting at or after the video fragment start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grid {
    /// The frame rate the grid counts in.
    pub rate: FrameRate,
    gop_ns: u64,
    gop_frames: u64,
    fragment_gops: u64,
    /// g·F, non-zero and without overflow.
    fragment_frames: u64,
}

impl Grid {
    /// A grid of GOPs lasting `gop_ns` and one GOP per fragment. Fails unless the GOP is a
    /// whole, non-zero number of frames (exact rational check).
    pub fn new(rate: FrameRate, gop_ns: u64) -> Result<Self, TimelineError> {
        let (pnum, pden) = rate.period_ns();
        // frames = gop_ns / (pnum/pden) = gop_ns·pden / pnum
        let scaled = u128::from(gop_ns) * pden;
        if !scaled.is_multiple_of(pnum) {
            return Err(TimelineError::GopNotWholeFrames {
                gop_ns,
                rate,
                num_ns: pnum,
                den: rate.num,
            });
        }
        let gop_frames = saturate_u64(scaled / pnum);
        if gop_frames == 0 {
            return Err(TimelineError::GopEmpty);
        }
        Ok(Self {
            rate,
            gop_ns,
            gop_frames,
            fragment_gops: 1,
            fragment_frames: gop_frames,
        })
    }

    /// The same grid with `fragment_gops` GOPs per fragment (≥ 1).
    pub fn with_fragment_gops(self, fragment_gops: u64) -> Result<Self, TimelineError> {
        if fragment_gops == 0 {
            return Err(TimelineError::FragmentGopsZero(fragment_gops));
        }
        let fragment_frames =
            self.gop_frames
                .checked_mul(fragment_gops)
                .ok_or(TimelineError::FragmentTooLong {
                    gop_frames: self.gop_frames,
                    fragment_gops,
                })?;
        Ok(Self {
            fragment_gops,
            fragment_frames,
            ..self
        })
    }

    pub fn rate(&self) -> FrameRate {
        self.rate
    }

    pub fn gop_frames(&self) -> u64 {
        self.gop_frames
    }

    pub fn fragment_gops(&self) -> u64 {
        self.fragment_gops
    }

    /// Frames per fragment, g·F.
    pub fn fragment_frames(&self) -> u64 {
        self.fragment_frames
    }

    pub fn gop_ns(&self) -> u64 {
        self.gop_ns
    }

    /// Whether frame `k` starts a GOP (an IDR is forced on it).
    pub fn is_gop_start(&self, k: u64) -> bool {
        k.is_multiple_of(self.gop_frames)
    }

    pub fn gop_index(&self, k: u64) -> u64 {
        k / self.gop_frames
    }

    /// The fragment `n` that frame `k` belongs to (its sequence number).
    pub fn fragment_index(&self, k: u64) -> u64 {
        k / self.fragment_frames
    }

    pub fn fragment_start_frame(&self, n: u64) -> u64 {
        n.saturating_mul(self.fragment_frames)
    }

    /// Start of fragment `n` in ns since the epoch (floored, saturating).
    pub fn fragment_start_ns(&self, n: u64) -> u64 {
        let (pnum, pden) = self.rate.period_ns();
        mul_div_floor(n, pnum * u128::from(self.fragment_frames), pden)
    }

    /// Nominal fragment duration in ns (exact: a GOP is a whole number of ns by construction).
    pub fn fragment_duration_ns(&self) -> u64 {
        self.gop_ns.saturating_mul(self.fragment_gops)
    }

    /// `j_n = ceil(fragment_start_time(n)·rate/1024)`: the first AAC frame of audio fragment `n`.
    /// A zero `sample_rate` gives 0.
    pub fn audio_fragment_start_frame(&self, n: u64, sample_rate: u32) -> u64 {
        if sample_rate == 0 {
            return 0;
        }
        // start(n) = n·gF·D/N s; j_n = ceil(n·gF·D·rate / (N·1024))
        let m =
            u128::from(self.fragment_frames) * u128::from(self.rate.den) * u128::from(sample_rate);
        let d = u128::from(self.rate.num) * u128::from(AAC_FRAME_SAMPLES);
        mul_div_ceil(n, m, d)
    }

    /// The audio fragment `n` with `j_n ≤ j < j_{n+1}`: `floor(1024·j·N / (gF·D·rate))`.
    /// A zero `sample_rate` gives 0.
    pub fn audio_fragment_index(&self, j: u64, sample_rate: u32) -> u64 {
        if sample_rate == 0 {
            return 0;
        }
        let m = u128::from(AAC_FRAME_SAMPLES) * u128::from(self.rate.num);
        let d = u128::from(self.fragment_frames)
            .checked_mul(u128::from(self.rate.den))
            .and_then(|v| v.checked_mul(u128::from(sample_rate)));
        // A denominator beyond u128 exceeds any numerator (< 2^106): every j is in fragment 0.
        d.map_or(0, |d| mul_div_floor(j, m, d))
    }
}

/// HLS fragments per segment for a GOP: GOP ≤ 3 s → 3, 3–5 s → 2, > 5 s → 1
/// (docs/design/timeline.md, *The grid*).
pub fn segment_fragments_for_gop(gop_ns: u64) -> u32 {
    if gop_ns <= 3 * NS_PER_SEC {
        3
    } else if gop_ns <= 5 * NS_PER_SEC {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* PRNG for jitter, so the tests need no `rand`.
    struct Prng(u64);

    impl Prng {
        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in `[-max, max]`.
        fn jitter(&mut self, max: u64) -> i64 {
            let span = 2 * max + 1;
            (self.next_u64() % span) as i64 - max as i64
        }
    }

    fn rate(s: &str) -> FrameRate {
        FrameRate::parse(s).unwrap()
    }

    fn add(ns: u64, j: i64) -> u64 {
        ns.checked_add_signed(j).unwrap()
    }

    /// 2026-03-01T12:00:00Z and 2100-01-01T00:00:00Z in ns.
    const Y2026: u64 = 1_772_366_400 * NS_PER_SEC;
    const Y2100: u64 = 4_102_444_800 * NS_PER_SEC;

    fn frame(a: FrameAssign) -> u64 {
        match a {
            FrameAssign::Frame { k, .. } => k,
            FrameAssign::Drop => panic!("unexpected drop"),
        }
    }

    #[test]
    fn parse_frame_rates() {
        assert_eq!(rate("30/1"), FrameRate::new(30, 1).unwrap());
        assert_eq!(rate("30000/1001"), FrameRate::new(30000, 1001).unwrap());
        assert_eq!(rate("25"), FrameRate::new(25, 1).unwrap());
        assert_eq!(rate(" 50 / 1 "), FrameRate::new(50, 1).unwrap());
        for bad in [
            "",
            "0",
            "30/0",
            "0/1",
            "x",
            "30/",
            "/1",
            "-30/1",
            "30.5",
            "1/2/3",
            "99999999999",
        ] {
            assert!(FrameRate::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rate("30000/1001").to_string(), "30000/1001");
    }

    #[test]
    fn frame_time_and_ts() {
        let r = rate("30000/1001");
        assert_eq!(r.frame_time_ns(0), 0);
        assert_eq!(r.frame_time_ns(1), 33_366_666);
        assert_eq!(r.frame_time_ns(30_000), 1001 * NS_PER_SEC);
        assert_eq!(r.frame_ts(1, 90_000), 3003);
        assert_eq!(r.frame_ts(7, 90_000), 7 * 3003);
        assert_eq!(rate("30/1").frame_ts(5, 90_000), 15_000);
        assert_eq!(rate("25").frame_ts(5, 90_000), 18_000);
        assert_eq!(r.frame_index_nearest(33_366_666), 1);
        assert_eq!(r.frame_index_nearest(16_683_333), 0);
        assert_eq!(r.frame_index_nearest(16_683_334), 1);
        // Saturation instead of overflow.
        assert_eq!(rate("1/4000000000").frame_time_ns(u64::MAX), u64::MAX);
        assert_eq!(rate("1/4000000000").frame_ts(u64::MAX, u32::MAX), u64::MAX);
        assert_eq!(rate("4000000000/1").frame_index_nearest(u64::MAX), u64::MAX);
        assert_eq!(rate("1/4").frame_index_nearest(u64::MAX), 4_611_686_018);
    }

    #[test]
    fn large_epochs_at_ntsc_rate() {
        let r = rate("30000/1001");
        for epoch in [Y2026, Y2100] {
            let k = r.frame_index_nearest(epoch);
            let t = r.frame_time_ns(k);
            assert!(t.abs_diff(epoch) <= 16_683_334, "{epoch}: k={k} t={t}");
            // frame_ts at 90 kHz is exactly k·3003.
            assert_eq!(r.frame_ts(k, 90_000), k * 3003);
            // Round trip through the nearest index.
            assert_eq!(r.frame_index_nearest(t), k);
            assert_eq!(r.frame_index_nearest(t + 1), k);
            let mut tl = VideoTimeline::new(r);
            for i in 0..1000 {
                let w = r.frame_time_ns(k + i) + 2_000_000;
                assert_eq!(frame(tl.assign(w)), k + i);
            }
        }
    }

    /// Capture times of frame `i` of a source whose frames land `phase_ns` after the grid.
    fn capture(r: FrameRate, k0: u64, i: u64, phase_ns: u64, jitter: i64) -> u64 {
        add(r.frame_time_ns(k0 + i) + phase_ns, jitter)
    }

    #[test]
    fn two_boxes_started_apart_agree_under_jitter() {
        for (rs, epoch) in [("30/1", Y2026), ("30000/1001", Y2026), ("25", Y2100)] {
            let r = rate(rs);
            let k0 = r.frame_index_nearest(epoch);
            let mut rng = Prng(0x1234_5678_9abc_def1);
            let mut a = VideoTimeline::new(r);
            let mut b = VideoTimeline::new(r);
            let mut ka = Vec::new();
            let mut kb = Vec::new();
            // Box B starts 137 frames later; both see the same pictures with ±5 ms jitter each.
            for i in 0..3000 {
                ka.push(frame(a.assign(capture(
                    r,
                    k0,
                    i,
                    3_000_000,
                    rng.jitter(5_000_000),
                ))));
                if i >= 137 {
                    kb.push(frame(b.assign(capture(
                        r,
                        k0,
                        i,
                        3_000_000,
                        rng.jitter(5_000_000),
                    ))));
                }
            }
            assert_eq!(&ka[137..], &kb[..], "{rs}");
            assert_eq!(ka[0], k0);
            assert!(ka.windows(2).all(|w| w[1] == w[0] + 1));
            assert_eq!(a.counters().reanchors_forward, 0);
            assert_eq!(b.counters().drops_behind, 0);
        }
    }

    #[test]
    fn jitter_up_to_seven_tenths_of_a_frame_never_changes_indices() {
        let r = rate("30000/1001");
        let period = r.frame_time_ns(3) / 3; // ~33.37 ms
        let max = period * 7 / 10;
        let k0 = r.frame_index_nearest(Y2026);
        let mut rng = Prng(42);
        let mut tl = VideoTimeline::new(r);
        // First frame on the grid; afterwards ±0.7 frame of jitter around each frame's time.
        assert_eq!(frame(tl.assign(r.frame_time_ns(k0))), k0);
        for i in 1..10_000 {
            let w = capture(r, k0, i, 0, rng.jitter(max));
            assert_eq!(
                tl.assign(w),
                FrameAssign::Frame {
                    k: k0 + i,
                    reanchored: false
                }
            );
        }
        assert_eq!(tl.counters().frames, 10_000);
        assert_eq!(
            tl.counters().reanchors_forward + tl.counters().drops_behind,
            0
        );
    }

    #[test]
    fn rounding_each_frame_would_not_agree() {
        // The policy matters: with the same ±0.7-frame jitter, per-frame rounding changes
        // indices. This guards the test above against being vacuous.
        let r = rate("30/1");
        let period = r.frame_time_ns(1);
        let mut rng = Prng(42);
        let k0 = r.frame_index_nearest(Y2026);
        let changed = (0..1000)
            .filter(|&i| {
                r.frame_index_nearest(capture(r, k0, i, 0, rng.jitter(period * 7 / 10))) != k0 + i
            })
            .count();
        assert!(changed > 100, "{changed}");
    }

    #[test]
    fn stall_reanchors_forward_and_counts_skipped() {
        let r = rate("30/1");
        let k0 = r.frame_index_nearest(Y2026);
        let mut tl = VideoTimeline::new(r);
        for i in 0..10 {
            frame(tl.assign(capture(r, k0, i, 1_000_000, 0)));
        }
        // 1 s stall: the next picture arrives 30 frames later than expected.
        let w = capture(r, k0, 10 + 30, 1_000_000, 0);
        assert_eq!(
            tl.assign(w),
            FrameAssign::Frame {
                k: k0 + 40,
                reanchored: true
            }
        );
        assert_eq!(frame(tl.assign(capture(r, k0, 41, 1_000_000, 0))), k0 + 41);
        let c = tl.counters();
        assert_eq!(c.reanchors_forward, 1);
        assert_eq!(c.frames_skipped, 30);
        assert_eq!(c.frames, 12);
    }

    #[test]
    fn clock_step_back_drops_rather_than_repeats() {
        let r = rate("30/1");
        let k0 = r.frame_index_nearest(Y2026);
        let mut tl = VideoTimeline::new(r);
        for i in 0..30 {
            frame(tl.assign(capture(r, k0, i, 0, 0)));
        }
        // The system clock steps back 200 ms (6 frames): frames are dropped until wall time
        // passes the last index again, then counting continues without a repeat.
        let mut got = Vec::new();
        for i in 30..60 {
            got.push(tl.assign(capture(r, k0, i - 6, 0, 0)));
        }
        let drops = got.iter().filter(|a| **a == FrameAssign::Drop).count();
        assert_eq!(drops, 6);
        let ks: Vec<u64> = got
            .into_iter()
            .filter_map(|a| match a {
                FrameAssign::Frame { k, .. } => Some(k),
                FrameAssign::Drop => None,
            })
            .collect();
        assert_eq!(ks.first(), Some(&(k0 + 30)));
        assert!(ks.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(tl.counters().drops_behind, 6);
        assert_eq!(tl.counters().reanchors_forward, 0);
    }

    #[test]
    fn drifting_source_drops_or_skips_one_frame_at_a_time() {
        let r = rate("30/1");
        let period = r.frame_time_ns(1) as i64;
        let k0 = r.frame_index_nearest(Y2026);
        // Source 1 % fast: each frame arrives 1 % early; then 1 % slow.
        for (ppm, expect_drops) in [(-10_000i64, true), (10_000, false)] {
            let mut tl = VideoTimeline::new(r);
            let mut last = None;
            for i in 0..3000i64 {
                let w = add(r.frame_time_ns(k0), i * (period + period * ppm / 1_000_000));
                if let FrameAssign::Frame { k, .. } = tl.assign(w) {
                    if let Some(l) = last {
                        assert!(k > l && k <= l + 2, "{l} -> {k}");
                    }
                    last = Some(k);
                }
            }
            let c = tl.counters();
            // 3000 frames × 1 % = 30 frames of drift.
            if expect_drops {
                assert!((29..=31).contains(&c.drops_behind), "{c:?}");
                assert_eq!(c.frames_skipped, 0);
            } else {
                assert!((29..=31).contains(&c.frames_skipped), "{c:?}");
                assert_eq!(c.reanchors_forward, c.frames_skipped);
                assert_eq!(c.drops_behind, 0);
            }
        }
    }

    #[test]
    fn reset_reanchors_but_never_repeats() {
        let r = rate("25");
        let k0 = r.frame_index_nearest(Y2026);
        let mut tl = VideoTimeline::new(r);
        for i in 0..5 {
            frame(tl.assign(capture(r, k0, i, 0, 0)));
        }
        tl.reset();
        // Restarted input whose first picture is 0.6 frame late: a plain keep-counting
        // timeline would call it k0+5; after a reset it anchors to the nearest index, k0+6.
        let w = r.frame_time_ns(k0 + 5) + r.frame_time_ns(1) * 6 / 10;
        assert_eq!(
            tl.assign(w),
            FrameAssign::Frame {
                k: k0 + 6,
                reanchored: true
            }
        );
        tl.reset();
        // A restart whose clock is behind: dropped, not repeated.
        assert_eq!(tl.assign(r.frame_time_ns(k0 + 2)), FrameAssign::Drop);
        assert_eq!(tl.last_index(), Some(k0 + 6));
        let c = tl.counters();
        assert_eq!((c.resets, c.frames_skipped, c.drops_behind), (2, 1, 1));
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for rs in ["1/1", "4294967295/1", "1/4294967295", "30000/1001"] {
            let r = rate(rs);
            let mut tl = VideoTimeline::new(r);
            for w in [0, 1, u64::MAX, u64::MAX - 1, 0, u64::MAX / 2, u64::MAX] {
                let _ = tl.assign(w);
            }
            let _ = r.frame_ts(u64::MAX, u32::MAX);
            if let Ok(g) = Grid::new(r, u64::MAX) {
                let _ = g.audio_fragment_start_frame(u64::MAX, u32::MAX);
                let _ = g.audio_fragment_index(u64::MAX, u32::MAX);
                let _ = g.fragment_start_ns(u64::MAX);
                let _ = g.fragment_duration_ns();
            }
        }
        let mut a = AudioTimeline::new(1);
        for w in [u64::MAX, 0, u64::MAX] {
            let _ = a.assign(w);
        }
        let mut zero = AudioTimeline::new(0);
        assert_eq!(zero.sample_rate(), 1);
        let _ = zero.assign(u64::MAX);
        assert_eq!(AudioTimeline::samples_to_trim(u64::MAX, 0), 0);
    }

    #[test]
    fn gop_must_be_whole_frames() {
        let ntsc = rate("30000/1001");
        assert!(matches!(
            Grid::new(ntsc, 2 * NS_PER_SEC),
            Err(TimelineError::GopNotWholeFrames { .. })
        ));
        let g = Grid::new(ntsc, 2_002_000_000).unwrap();
        assert_eq!(g.gop_frames(), 60);
        assert_eq!(g.fragment_duration_ns(), 2_002_000_000);
        assert_eq!(
            Grid::new(rate("30/1"), 2 * NS_PER_SEC)
                .unwrap()
                .gop_frames(),
            60
        );
        assert_eq!(
            Grid::new(rate("25"), 2 * NS_PER_SEC).unwrap().gop_frames(),
            50
        );
        assert!(Grid::new(rate("30/1"), 2 * NS_PER_SEC + 1).is_err());
        assert_eq!(Grid::new(rate("30/1"), 0), Err(TimelineError::GopEmpty));
        let e = Grid::new(ntsc, 2 * NS_PER_SEC).unwrap_err().to_string();
        assert!(e.contains("not a whole number of frames"), "{e}");
    }

    #[test]
    fn grid_indices() {
        let g = Grid::new(rate("30/1"), 2 * NS_PER_SEC)
            .unwrap()
            .with_fragment_gops(2)
            .unwrap();
        assert!(g.is_gop_start(0) && g.is_gop_start(60) && !g.is_gop_start(61));
        assert_eq!(g.gop_index(119), 1);
        assert_eq!(g.fragment_index(119), 0);
        assert_eq!(g.fragment_index(120), 1);
        assert_eq!(g.fragment_start_frame(3), 360);
        assert_eq!(g.fragment_start_ns(3), 12 * NS_PER_SEC);
        assert_eq!(g.fragment_duration_ns(), 4 * NS_PER_SEC);
        assert!(g.with_fragment_gops(0).is_err());
        assert!(g.with_fragment_gops(u64::MAX).is_err());
    }

    #[test]
    fn audio_grid_j_n_formula() {
        // 30/1, 2 s fragments at 48 kHz: start(n) = 2n s = 96000n samples = 93.75n frames.
        let g = Grid::new(rate("30/1"), 2 * NS_PER_SEC).unwrap();
        let j: Vec<u64> = (0..5)
            .map(|n| g.audio_fragment_start_frame(n, 48_000))
            .collect();
        assert_eq!(j, [0, 94, 188, 282, 375]);
        // 44.1 kHz: 88200n samples = 86.1328125n frames.
        let j: Vec<u64> = (0..4)
            .map(|n| g.audio_fragment_start_frame(n, 44_100))
            .collect();
        assert_eq!(j, [0, 87, 173, 259]);
        // In the year 2100 at 30000/1001: check against the definition with exact math.
        let ntsc = Grid::new(rate("30000/1001"), 2_002_000_000).unwrap();
        let n = Y2100 / 2_002_000_000;
        for rate in [48_000u32, 44_100] {
            let jn = ntsc.audio_fragment_start_frame(n, rate);
            // start(n) in samples = n·2.002·rate, exactly n·2002·rate/1000.
            let start_samples_x1000 = u128::from(n) * 2002 * u128::from(rate);
            let jn_exact = start_samples_x1000.div_ceil(1000 * 1024);
            assert_eq!(u128::from(jn), jn_exact);
        }
    }

    #[test]
    fn audio_fragments_are_contiguous_and_not_before_video() {
        let grids = [
            Grid::new(rate("30/1"), 2 * NS_PER_SEC).unwrap(),
            Grid::new(rate("30000/1001"), 2_002_000_000).unwrap(),
            Grid::new(rate("25"), 6 * NS_PER_SEC)
                .unwrap()
                .with_fragment_gops(3)
                .unwrap(),
        ];
        for g in grids {
            for rate in [48_000u32, 44_100, 32_000] {
                let n0 = g.fragment_index(g.rate().frame_index_nearest(Y2026));
                for n in n0..n0 + 200 {
                    let jn = g.audio_fragment_start_frame(n, rate);
                    let jn1 = g.audio_fragment_start_frame(n + 1, rate);
                    assert!(jn1 > jn);
                    // Audio fragment n starts at or after video fragment n, within one AAC frame.
                    let audio_start = u128::from(jn) * 1024 * u128::from(NS_PER_SEC);
                    let video_start = u128::from(g.fragment_start_ns(n)) * u128::from(rate);
                    assert!(audio_start >= video_start);
                    assert!(
                        audio_start
                            < video_start + 1024 * u128::from(NS_PER_SEC) + u128::from(rate)
                    );
                    // Every j in [j_n, j_{n+1}) maps back to n: contiguous, no overlap.
                    assert_eq!(g.audio_fragment_index(jn, rate), n);
                    assert_eq!(g.audio_fragment_index(jn1 - 1, rate), n);
                    assert_eq!(g.audio_fragment_index(jn1, rate), n + 1);
                }
            }
        }
    }

    #[test]
    fn audio_trim_lands_on_grid() {
        // 48 kHz: sample index of t is t·48000; trim to the next multiple of 1024.
        assert_eq!(AudioTimeline::samples_to_trim(0, 48_000), 0);
        let t = Y2026 + 123_456_789;
        let s = (u128::from(t) * 48_000).div_ceil(u128::from(NS_PER_SEC)) as u64; // not a tie
        let trim = AudioTimeline::samples_to_trim(t, 48_000);
        assert!(trim < 1024);
        assert_eq!((s + trim) % 1024, 0);
        // Exactly on a frame start: nothing to trim; one sample after: 1023.
        let j = 1_000_000u64;
        let on = j * 1024 * NS_PER_SEC / 48_000;
        assert_eq!(AudioTimeline::samples_to_trim(on, 48_000), 0);
        let next = (j * 1024 + 1) * NS_PER_SEC / 48_000 + 1;
        assert_eq!(AudioTimeline::samples_to_trim(next, 48_000), 1023);
        // 44.1 kHz in 2100.
        let t = Y2100 + 7_777_777;
        let trim = AudioTimeline::samples_to_trim(t, 44_100);
        let s = (u128::from(t) * 44_100 + u128::from(NS_PER_SEC) / 2) / u128::from(NS_PER_SEC);
        assert_eq!((s + u128::from(trim)) % 1024, 0);
    }

    #[test]
    fn audio_timeline_counts_and_reanchors() {
        let mut a = AudioTimeline::new(48_000);
        let j0 = 1_730_000_000u64;
        let mut rng = Prng(7);
        for i in 0..1000 {
            // ±5 ms of jitter on a 21.3 ms frame.
            let w = add(a.frame_time_ns(j0 + i), rng.jitter(5_000_000));
            assert_eq!(a.assign(w), j0 + i);
        }
        // A 100 ms gap in the input: re-anchor forward to the nearest frame (4.69 frames late),
        // skipping j0+1000..=j0+1004.
        let w = a.frame_time_ns(j0 + 1000) + 100_000_000;
        assert_eq!(
            a.assign_frame(w),
            FrameAssign::Frame {
                k: j0 + 1005,
                reanchored: true
            }
        );
        // Timestamps going back: dropped.
        assert_eq!(
            a.assign_frame(a.frame_time_ns(j0 + 1003)),
            FrameAssign::Drop
        );
        // The plain form returns the rejected (non-increasing) index.
        assert_eq!(a.assign(a.frame_time_ns(j0 + 1002)), j0 + 1002);
        let c = a.counters();
        assert_eq!((c.frames, c.frames_skipped, c.drops_behind), (1001, 5, 2));
    }

    #[test]
    fn segment_fragments_rule() {
        assert_eq!(segment_fragments_for_gop(1_000_000_000), 3);
        assert_eq!(segment_fragments_for_gop(2_002_000_000), 3);
        assert_eq!(segment_fragments_for_gop(3 * NS_PER_SEC), 3);
        assert_eq!(segment_fragments_for_gop(3 * NS_PER_SEC + 1), 2);
        assert_eq!(segment_fragments_for_gop(5 * NS_PER_SEC), 2);
        assert_eq!(segment_fragments_for_gop(5 * NS_PER_SEC + 1), 1);
        assert_eq!(segment_fragments_for_gop(10 * NS_PER_SEC), 1);
    }
}
