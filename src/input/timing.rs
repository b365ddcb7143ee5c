//! Sender timing: the capture time W of each picture of a network feed (`Timing`;
//! docs/design/timeline.md, *Where W comes from*).
//!
//! # The policy
//!
//! Two boxes of a pair receive the same feed at different instants (their network paths differ
//! by 0–15 ms of jitter, and they start at random moments). The encoder side gives a picture the
//! frame index `k = round(W·N/D)` and then keeps counting (`twincast_media::timeline`), so the
//! boxes agree on every picture exactly when they agree on W for the picture each anchors on.
//! Anything taken from the local clock per picture would carry the jitter into W; so W never
//! does: **W = PTS + O**, with the stream's own 64-bit PTS (the 33-bit wrap unfolded by
//! [`Unwrap33`]) and one offset O per feed, fixed when the feed starts and kept. The PTS gives
//! the phase of every picture (identical on both boxes, as they decode the same bytes); O gives
//! only the coarse position, and it is chosen so that both boxes pick the same O:
//!
//! - **RTCP (`Timing::Rtcp`)**: O = (S − PTS), where S is the sender's wall clock of the RTP
//!   packet that carried a picture's PES header, mapped through the latest sender report.
//!   Every term comes from the sender, so O depends on no local clock. It is used only when
//!   every picture of the anchor set that has a sender time (among them at least
//!   [`MIN_AGREEING`] keyframes) gives the same value: that is a sender whose RTP timestamps
//!   follow the PES PTS exactly, and then every picture gives the same ns whichever a box
//!   starts from. Otherwise PTS timing is used. A muxer that fills RTP packets across pictures
//!   stamps a picture's packet with another picture's time: ffmpeg's `rtp_mpegts` does
//!   (measured: S − PTS spread over ±0.7 s across pictures), so ffmpeg feeds get PTS timing.
//!   Only keyframes were compared at first; but ffmpeg's keyframes agree most of the time and
//!   not always, so a box that saw the sender start and a box that joined later chose
//!   differently in 4 of 5 pairs (tests/e2e_pair.rs with `TWINCAST_PAIR_FEED=rtp`): every
//!   picture is compared since. Residual risk: a sender whose pictures agree for a whole
//!   anchor set on one box and not on the other (a rare misstamp) can still make the boxes
//!   choose differently; the pair check shows it, and `input.timing` differs between them.
//! - **PTS (`Timing::Pts`)**: O = Q·floor(min over the anchor set of (arrival − DTS) / Q), with
//!   Q = [`PTS_QUANTUM_NS`] (1 s). The minimum strips the one-sided network jitter (a late
//!   packet only adds), DTS rather than PTS because senders pace by decode order (B-frames move
//!   PTS by frames); quantising to a whole second absorbs what remains (the two boxes' different
//!   path delays, a few ms). Rounding to the frame grid instead (Q = one frame) splits the pair
//!   whenever the two estimates straddle a half-frame boundary: with 15 ms of spread and 33 ms
//!   frames that is nearly every second start. With Q = 1 s the boxes split only if their
//!   estimates straddle a whole second: probability ≈ spread / Q (≈ 0.5 % for 5 ms), and then
//!   they differ by exactly one second, which the pair check shows at once. `floor` keeps W at
//!   or before the arrival (lag 0..1 s), so W is never in the future.
//!
//! The 64-bit PTS each box unfolds starts from whatever 33-bit value it saw first, so two boxes
//! that started on either side of a wrap differ by 2^33 ticks (95 443.717 688 s, not a whole
//! number of seconds: quantising would then split them). So the policy first puts the PTS into
//! one canonical wrap period, the one that brings the first picture's PTS nearest to its arrival
//! (`m = round((arrival − pts) / 2^33 ticks)`); boxes could disagree on m only if their arrival
//! differed by half a wrap period (13 h).
//!
//! The anchor set runs from the first picture (or the first after a discontinuity) until a
//! keyframe has been seen and [`MIN_SAMPLES`] pictures are in it, or [`MAX_SAMPLES`] pictures;
//! pictures before the first keyframe cannot be decoded anyway, so this costs no picture. An RTP
//! input waits for two keyframes with sender-report times up to [`SR_WAIT_NS`] (12 s, longer
//! than any compliant RTCP interval, so two boxes make the same choice), then falls back to PTS
//! timing (`input.timing = "pts"`); it does not wait when the sender reports came but carry no
//! wall clock (see `MAX_SENDER_SKEW_NS` in `src/input/frontend.rs`).
//!
//! Where it can still split, and what is done:
//! - Near a whole second (PTS timing): see above; counted nowhere (a box cannot know), visible as
//!   a 1 s offset between the pair.
//! - Drift (PTS timing): if the sender's clock drifts against the local one, the lag
//!   `arrival − W` walks; O is kept (W stays the sender's time, both boxes keep agreeing) until
//!   the lag leaves `[−DRIFT_LIMIT, Q + DRIFT_LIMIT]`, then O moves by whole seconds (counted
//!   in `reanchors`). The two boxes cross that limit at slightly different pictures, so they
//!   disagree by 1 s for the time the drift takes to cover their path difference (at 10 ppm and
//!   5 ms: ~8 minutes, once every ~1.4 days). A sender locked to NTP/PTP never drifts that far.
//! - A discontinuity (PTS jumps against the arrival clock by more than [`DISCONTINUITY_NS`]:
//!   a sender restart, a splice of another stream) starts a new anchor set; both boxes see the
//!   same jump in the same bytes, so they re-anchor on the same picture.

use crate::source::Timing;

/// The coarse step of the PTS-timing offset.
pub const PTS_QUANTUM_NS: i64 = 1_000_000_000;
/// Lag beyond the quantum band that moves the PTS-timing offset (drift).
pub const DRIFT_LIMIT_NS: i64 = 1_000_000_000;
/// A PTS (or PCR) step that differs from the arrival step by more than this is a discontinuity.
pub const DISCONTINUITY_NS: i64 = 1_000_000_000;
/// Sender offsets (RTCP) closer than this are the same offset (the ns rounding of ticks).
pub const SAME_NS: i64 = 2;
/// Keyframes with sender times an RTCP-timed anchor set holds at least (every picture in it
/// must give the same sender offset).
pub const MIN_AGREEING: usize = 2;
/// Pictures in the anchor set at least (once a keyframe is in it).
pub const MIN_SAMPLES: usize = 8;
/// Pictures in the anchor set at most (keyframe or not, sender report or not): 5 s at 30 fps,
/// room for two keyframes of a 2 s GOP; older ones leave the set.
pub const MAX_SAMPLES: usize = 150;
/// How long an RTP input waits for sender reports before PTS timing (RFC 3550 §6.2: the RTCP
/// interval is at least 5 s, randomised up to 1.5 times). Two boxes must make the same choice,
/// so this is longer than any compliant sender's interval.
pub const SR_WAIT_NS: u64 = 12_000_000_000;

const TICKS_33: u64 = 1 << 33;

/// Unfolds a 33-bit 90 kHz counter (PTS, DTS, PCR base) into a 64-bit one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unwrap33 {
    last: Option<(u64, i64)>,
}

impl Unwrap33 {
    /// The 64-bit value of `raw` nearest the last one unwrapped, without taking it as the new
    /// last one (a time that is not the stream's own, such as an SCTE-35 splice time);
    /// `None` before the first.
    pub fn nearest(&self, raw: u64) -> Option<i64> {
        let mut probe = *self;
        probe.last?;
        Some(probe.unwrap(raw).0)
    }

    /// The 64-bit value of `raw` (the one nearest the previous value) and the step from it.
    pub fn unwrap(&mut self, raw: u64) -> (i64, i64) {
        let raw = raw & (TICKS_33 - 1);
        let (ext, step) = match self.last {
            None => (raw as i64, 0),
            Some((last_raw, last_ext)) => {
                let mut d = (raw.wrapping_sub(last_raw) & (TICKS_33 - 1)) as i64;
                if d >= (TICKS_33 / 2) as i64 {
                    d -= TICKS_33 as i64;
                }
                (last_ext + d, d)
            }
        };
        self.last = Some((raw, ext));
        (ext, step)
    }
}

/// 90 kHz ticks to nanoseconds (exact for any tick count that is a whole number of ns... and
/// floor otherwise, the same on every box).
pub fn ticks_to_ns(ticks: i64) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / 90_000) as i64
}

/// Tells a discontinuity from a gap in reception: a clock step against the arrival step.
#[derive(Clone, Copy, Debug, Default)]
pub struct JumpDetector {
    last: Option<(i64, u64)>,
}

impl JumpDetector {
    /// True when `ns` (a stream clock) moved more than [`DISCONTINUITY_NS`] away from what the
    /// arrival clock moved since the previous call.
    pub fn jumped(&mut self, ns: i64, arrival_ns: u64) -> bool {
        let j = self.last.is_some_and(|(last, last_arrival)| {
            let stream = ns - last;
            let local = arrival_ns as i64 - last_arrival as i64;
            (stream - local).abs() > DISCONTINUITY_NS
        });
        self.last = Some((ns, arrival_ns));
        j
    }
}

/// What the policy knows of one picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// 64-bit PTS in 90 kHz ticks (from [`Unwrap33`]).
    pub pts: i64,
    /// 64-bit DTS in ticks (the PTS when the stream has none).
    pub dts: i64,
    /// Local arrival of the packet that carried the PES header (ns since the epoch).
    pub arrival_ns: u64,
    /// The sender's wall clock of that packet (RTCP), when known.
    pub sender_ns: Option<u64>,
    pub keyframe: bool,
}

/// Counters of the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimingCounters {
    /// Anchors taken (the first, and one after each discontinuity).
    pub anchors: u64,
    /// Whole-second moves of the PTS-timing offset (drift).
    pub reanchors: u64,
}

#[derive(Clone, Debug)]
enum State {
    Collecting {
        set: Vec<Sample>,
        keyframe: bool,
        /// Arrival of the first picture of the set.
        since_ns: Option<u64>,
    },
    Anchored {
        offset_ns: i64,
        timing: Timing,
    },
}

/// The offset O of `W = PTS + O` for one feed (see the module docs for the policy).
#[derive(Clone, Debug)]
pub struct SenderTiming {
    rtcp_possible: bool,
    /// Ticks added to the unfolded PTS to put it into the canonical wrap period.
    shift: Option<i64>,
    state: State,
    counters: TimingCounters,
}

impl SenderTiming {
    /// `rtcp_possible`: the feed may carry sender reports (RTP), so the anchor waits for one.
    pub fn new(rtcp_possible: bool) -> Self {
        SenderTiming {
            rtcp_possible,
            shift: None,
            state: State::Collecting {
                set: Vec::new(),
                keyframe: false,
                since_ns: None,
            },
            counters: TimingCounters::default(),
        }
    }

    /// Which timing W comes from, once anchored.
    pub fn timing(&self) -> Option<Timing> {
        match self.state {
            State::Anchored { timing, .. } => Some(timing),
            State::Collecting { .. } => None,
        }
    }

    pub fn counters(&self) -> TimingCounters {
        self.counters
    }

    /// The offset O, once anchored.
    pub fn offset_ns(&self) -> Option<i64> {
        match self.state {
            State::Anchored { offset_ns, .. } => Some(offset_ns),
            State::Collecting { .. } => None,
        }
    }

    /// W of a 64-bit stream time in ticks (any elementary stream of the program), once
    /// anchored; `None` also for a W before the epoch.
    pub fn wall_ns(&self, pts: i64) -> Option<u64> {
        let o = self.offset_ns()?;
        let c = self.canonical_ns(pts)?;
        u64::try_from(c.checked_add(o)?).ok()
    }

    /// A 64-bit stream time in the canonical wrap period, in ns, a quarter tick late.
    ///
    /// The quarter tick: a PTS phase can sit exactly on a half frame (1500 ticks at 30 fps),
    /// and then the ns rounding of each tick count (1 tick = 11 111.1 ns) would put some
    /// pictures just below the half frame and some on it, so two boxes anchoring on different
    /// pictures would round apart. A quarter tick later no frame boundary of a rate that is a
    /// whole number of ticks or half ticks (every broadcast rate, 23.976 to 60) is within a
    /// quarter tick of a PTS.
    fn canonical_ns(&self, ticks: i64) -> Option<i64> {
        let t = i128::from(ticks.checked_add(self.shift?)?);
        i64::try_from((t * 4 + 1) * 1_000_000_000 / 360_000).ok()
    }

    /// The feed's sender reports turned out not to carry a wall clock: anchor without them.
    pub fn no_sender_clock(&mut self) {
        self.rtcp_possible = false;
    }

    /// Starts a new anchor set (a discontinuity).
    pub fn restart(&mut self) {
        self.shift = None;
        self.state = State::Collecting {
            set: Vec::new(),
            keyframe: false,
            since_ns: None,
        };
    }

    /// Takes one picture; afterwards [`wall_ns`](Self::wall_ns) answers if anchored.
    pub fn observe(&mut self, mut s: Sample) {
        let shift = *self
            .shift
            .get_or_insert_with(|| canonical_shift(s.dts, s.arrival_ns));
        s.pts = s.pts.saturating_add(shift);
        s.dts = s.dts.saturating_add(shift);
        match &mut self.state {
            State::Collecting {
                set,
                keyframe,
                since_ns,
            } => {
                let since = *since_ns.get_or_insert(s.arrival_ns);
                if set.len() >= MAX_SAMPLES {
                    set.remove(0);
                }
                set.push(s);
                *keyframe |= s.keyframe;
                let with_sr = set
                    .iter()
                    .filter(|x| x.keyframe && x.sender_ns.is_some())
                    .count();
                let ready = (*keyframe && set.len() >= MIN_SAMPLES) || set.len() >= MAX_SAMPLES;
                let waited = s.arrival_ns.saturating_sub(since) >= SR_WAIT_NS;
                let sr_ready = !self.rtcp_possible || with_sr >= MIN_AGREEING || waited;
                if ready && sr_ready {
                    let (offset_ns, timing) = anchor(set);
                    self.state = State::Anchored { offset_ns, timing };
                    self.counters.anchors += 1;
                }
            }
            State::Anchored { offset_ns, timing } => {
                if *timing == Timing::Pts {
                    let lag = s.arrival_ns as i64 - (ticks_to_ns(s.dts) + *offset_ns);
                    if !(-DRIFT_LIMIT_NS..PTS_QUANTUM_NS + DRIFT_LIMIT_NS).contains(&lag) {
                        *offset_ns += lag.div_euclid(PTS_QUANTUM_NS) * PTS_QUANTUM_NS;
                        self.counters.reanchors += 1;
                    }
                }
            }
        }
    }
}

/// Ticks that move `ticks` (a 64-bit stream time seen at `arrival_ns`) into the canonical wrap
/// period: the one whose value is nearest the arrival.
fn canonical_shift(ticks: i64, arrival_ns: u64) -> i64 {
    let raw = ticks.rem_euclid(TICKS_33 as i64);
    let period_ns = i128::from(TICKS_33) * 1_000_000_000 / 90_000;
    let d = i128::from(arrival_ns) - i128::from(ticks_to_ns(raw));
    let m = (d + period_ns / 2).div_euclid(period_ns) as i64;
    m * TICKS_33 as i64 + raw - ticks
}

/// O and the timing it came from, for a finished anchor set (canonical ticks).
fn anchor(set: &[Sample]) -> (i64, Timing) {
    // Every picture with a sender time, not only the keyframes (see the module docs).
    let rtcp: Vec<i64> = set
        .iter()
        .filter_map(|s| Some(s.sender_ns? as i64 - ticks_to_ns(s.pts)))
        .collect();
    let keyframes = set
        .iter()
        .filter(|s| s.keyframe && s.sender_ns.is_some())
        .count();
    if let (Some(&lo), Some(&hi)) = (rtcp.iter().min(), rtcp.iter().max())
        && keyframes >= MIN_AGREEING
        && hi - lo <= SAME_NS
    {
        return (lo, Timing::Rtcp);
    }
    let lag = set
        .iter()
        .map(|s| s.arrival_ns as i64 - ticks_to_ns(s.dts))
        .min()
        .unwrap_or(0);
    (lag.div_euclid(PTS_QUANTUM_NS) * PTS_QUANTUM_NS, Timing::Pts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twincast_media::timeline::{FrameAssign, FrameRate, VideoTimeline};

    const FRAME_TICKS: i64 = 3000; // 30 fps at 90 kHz
    const MS: i64 = 1_000_000;

    /// A deterministic pseudo-random sequence (xorshift), so the tests are repeatable.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A feed: picture p has PTS `pts0 + p·frame` (33-bit), keyframes every 30, sent at
    /// `send0 + p·frame` on the sender's clock.
    struct Feed {
        pts0: u64,
        send0_ns: i64,
    }

    impl Feed {
        fn pts_raw(&self, p: u64) -> u64 {
            (self.pts0 + p * FRAME_TICKS as u64) & (TICKS_33 - 1)
        }
        fn send_ns(&self, p: u64) -> i64 {
            self.send0_ns + ticks_to_ns(p as i64 * FRAME_TICKS)
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// One box: receives from picture `start` on with `delay + jitter` and returns the frame
    /// index the encoder-side timeline gives each picture.
    fn run_box(
        feed: &Feed,
        start: u64,
        count: u64,
        delay_ns: i64,
        jitter_ms: u64,
        rng: &mut Rng,
        rtcp: bool,
        drift_ppm: i64,
    ) -> Vec<(u64, u64)> {
        let mut timing = SenderTiming::new(rtcp);
        let mut unwrap = Unwrap33::default();
        let mut tl = VideoTimeline::new(FrameRate::new(30, 1).unwrap());
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for p in start..start + count {
            let (ext, _) = unwrap.unwrap(feed.pts_raw(p));
            let send = feed.send_ns(p);
            let local = send + send * drift_ppm / 1_000_000;
            let arrival =
                (local + delay_ns + (rng.below(jitter_ms * 1000 + 1) as i64) * 1000) as u64;
            // A sender whose RTP timestamps follow the PES PTS (the uneven sender is
            // `an_unevenly_stamping_sender_gets_pts_timing_on_every_box`).
            let stamp = send;
            timing.observe(Sample {
                pts: ext,
                dts: ext,
                arrival_ns: arrival,
                sender_ns: rtcp.then_some(stamp as u64),
                keyframe: p % 30 == 0,
            });
            pending.push((p, ext));
            if timing.timing().is_some() {
                for (q, pts) in pending.drain(..) {
                    let w = timing.wall_ns(pts).unwrap();
                    let FrameAssign::Frame { k, .. } = tl.assign(w) else {
                        panic!("picture {q} dropped by the timeline");
                    };
                    out.push((q, k));
                }
            }
        }
        out
    }

    /// Pictures both boxes indexed, and the constant index difference between them (a split
    /// is always a whole, constant number of frames for the whole run).
    fn compare(a: &[(u64, u64)], b: &[(u64, u64)]) -> (usize, i64) {
        let mut n = 0;
        let mut diff = None;
        for (p, k) in b {
            if let Some((_, ka)) = a.iter().find(|(q, _)| q == p) {
                let d = *k as i64 - *ka as i64;
                assert_eq!(
                    *diff.get_or_insert(d),
                    d,
                    "picture {p}: the difference changed"
                );
                n += 1;
            }
        }
        (n, diff.unwrap_or(0))
    }

    fn agree(a: &[(u64, u64)], b: &[(u64, u64)]) -> usize {
        let (n, d) = compare(a, b);
        assert_eq!(d, 0, "the boxes disagree by {d} frames");
        n
    }

    #[test]
    fn unwrap_crosses_the_33_bit_wrap_both_ways() {
        let mut u = Unwrap33::default();
        let near = TICKS_33 - 3000;
        assert_eq!(u.unwrap(near), (near as i64, 0));
        assert_eq!(u.unwrap(1500), (TICKS_33 as i64 + 1500, 4500));
        assert_eq!(u.unwrap(TICKS_33 - 100), (TICKS_33 as i64 - 100, -1600));
        // A huge value is masked to 33 bits, never a panic.
        let _ = u.unwrap(u64::MAX);
    }

    #[test]
    fn jump_detector_tells_a_gap_from_a_discontinuity() {
        let mut j = JumpDetector::default();
        assert!(!j.jumped(0, 1_000));
        // 5 s without reception, and the stream moved 5 s: a gap.
        assert!(!j.jumped(5_000 * MS, 1_000 + 5_000 * MS as u64));
        // The stream moved 10 s in 33 ms: a discontinuity.
        assert!(j.jumped(15_000 * MS, 1_000 + 5_033 * MS as u64));
    }

    #[test]
    fn pts_timing_gives_both_boxes_the_same_index_under_jitter_and_start_offsets() {
        // Box B's path is 7 ms longer and jitters 0–15 ms; both start at random pictures.
        // The policy splits only when the two estimates straddle a whole second: the expected
        // rate is the estimates' spread over 1 s (< 1 %), and a split is exactly 30 frames.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let runs = 1000;
        let mut splits = 0;
        for run in 0..runs {
            let feed = Feed {
                pts0: rng.below(TICKS_33),
                send0_ns: 1_764_000_000_000_000_000 + rng.below(10_000_000_000) as i64,
            };
            let a = run_box(&feed, rng.below(60), 200, 2 * MS, 0, &mut rng, false, 0);
            let b = run_box(&feed, rng.below(60), 200, 9 * MS, 15, &mut rng, false, 0);
            let (common, diff) = compare(&a, &b);
            assert!(common > 100, "run {run}: {common} common pictures");
            if diff != 0 {
                assert_eq!(diff.abs(), 30, "run {run}: a split is one whole second");
                splits += 1;
            }
        }
        assert!(splits * 50 <= runs, "{splits} of {runs} runs split");
    }

    #[test]
    fn frame_rounding_of_the_arrival_would_split_often() {
        // The reason for the 1 s quantum: the same runs with O rounded to one frame.
        let mut rng = Rng(3);
        let mut splits = 0;
        for _ in 0..200 {
            let (a, b) = (2 * MS, 9 * MS + rng.below(15 * MS as u64) as i64);
            let x = rng.below(1_000_000_000) as i64;
            let frame = 33_333_333;
            if (x + a).div_euclid(frame) != (x + b).div_euclid(frame) {
                splits += 1;
            }
        }
        assert!(splits > 40, "{splits}");
    }

    #[test]
    fn rtcp_timing_is_exact_and_independent_of_the_start() {
        let mut rng = Rng(42);
        for _ in 0..100 {
            let feed = Feed {
                pts0: rng.below(TICKS_33),
                send0_ns: 1_764_000_000_000_000_000 + rng.below(10_000_000_000) as i64,
            };
            let a = run_box(&feed, rng.below(90), 300, 2 * MS, 0, &mut rng, true, 0);
            let b = run_box(&feed, rng.below(90), 300, 40 * MS, 15, &mut rng, true, 0);
            assert!(agree(&a, &b) > 200);
            let mut t = SenderTiming::new(true);
            for p in 0..40 {
                let pts = feed.pts_raw(p) as i64;
                t.observe(Sample {
                    pts,
                    dts: pts,
                    arrival_ns: feed.send_ns(p) as u64 + 5_000_000,
                    sender_ns: Some(feed.send_ns(p) as u64),
                    keyframe: p % 30 == 0,
                });
            }
            assert_eq!(t.timing(), Some(Timing::Rtcp));
            // The sender's time, a quarter tick (2 778 ns) late.
            let w = t.wall_ns(feed.pts_raw(0) as i64).unwrap();
            assert!(w.abs_diff(feed.send0_ns as u64 + 2_778) <= 1, "{w}");
        }
    }

    #[test]
    fn an_unevenly_stamping_sender_gets_pts_timing_on_every_box() {
        let feed = Feed {
            pts0: 126_000,
            send0_ns: 1_764_000_000_000_000_000,
        };
        // Like ffmpeg's rtp_mpegts: small pictures often carry the next picture's time, and
        // keyframes agree with each other most of the time (every fifth one is off here).
        let run = |start: u64, seed: u64| {
            let mut rng = Rng(seed);
            let mut t = SenderTiming::new(true);
            let mut p = start;
            while t.timing().is_none() && p < start + 600 {
                let pts = feed.pts_raw(p) as i64;
                let key = p.is_multiple_of(30);
                let off = if key {
                    if (p / 30).is_multiple_of(5) {
                        33 * MS
                    } else {
                        0
                    }
                } else if rng.below(2) == 0 {
                    33 * MS
                } else {
                    0
                };
                t.observe(Sample {
                    pts,
                    dts: pts,
                    arrival_ns: feed.send_ns(p) as u64 + 3_000_000 + rng.below(5 * MS as u64),
                    sender_ns: Some((feed.send_ns(p) + off) as u64),
                    keyframe: key,
                });
                p += 1;
            }
            t.timing()
        };
        for (start, seed) in [(0, 3), (35, 5), (61, 7), (95, 11), (150, 13)] {
            assert_eq!(
                run(start, seed),
                Some(Timing::Pts),
                "box starting at {start}"
            );
        }
    }

    #[test]
    fn the_pts_wrap_inside_a_run_changes_nothing() {
        let mut rng = Rng(7);
        // 2 s before the 33-bit wrap.
        let feed = Feed {
            pts0: TICKS_33 - 60 * FRAME_TICKS as u64,
            send0_ns: 1_764_000_000_000_000_000,
        };
        let a = run_box(&feed, 0, 200, MS, 0, &mut rng, false, 0);
        for w in a.windows(2) {
            assert_eq!(
                w[1].1,
                w[0].1 + 1,
                "consecutive indices across the wrap: {w:?}"
            );
        }
        let b = run_box(&feed, 70, 130, 9 * MS, 15, &mut rng, false, 0);
        assert_eq!(agree(&a, &b), 130);
    }

    #[test]
    fn w_lags_arrival_by_less_than_the_quantum() {
        let mut t = SenderTiming::new(false);
        for p in 0..MIN_SAMPLES as i64 {
            let pts = 90_000 + p * FRAME_TICKS;
            t.observe(Sample {
                pts,
                dts: pts,
                arrival_ns: (1_764_000_000_123_000_000 + ticks_to_ns(pts)) as u64,
                sender_ns: None,
                keyframe: p == 0,
            });
        }
        assert_eq!(t.timing(), Some(Timing::Pts));
        let w = t.wall_ns(90_000).unwrap();
        let arrival = 1_764_000_000_123_000_000 + ticks_to_ns(90_000) as u64;
        assert!(w <= arrival && arrival - w < PTS_QUANTUM_NS as u64);
    }

    #[test]
    fn rtp_waits_for_a_sender_report_then_falls_back_to_pts() {
        let mut t = SenderTiming::new(true);
        // 12 s at 30 fps.
        for p in 0..=360i64 {
            assert_eq!(t.timing(), None, "picture {p}");
            let pts = p * FRAME_TICKS;
            t.observe(Sample {
                pts,
                dts: pts,
                arrival_ns: 1_764_000_000_000_000_000 + ticks_to_ns(pts) as u64,
                sender_ns: None,
                keyframe: p == 0,
            });
        }
        assert_eq!(t.timing(), Some(Timing::Pts));
    }

    #[test]
    fn drift_keeps_the_offset_until_the_limit_then_moves_by_whole_seconds() {
        let mut t = SenderTiming::new(false);
        let base = 1_764_000_000_000_000_000i64;
        // Local clock runs 100 ppm fast against the sender: the lag grows 0.1 ms per second.
        let mut first = None;
        let mut moved_at = None;
        for p in 0..(30 * 40_000i64) {
            let pts = p * FRAME_TICKS;
            let pts_ns = ticks_to_ns(pts);
            let arrival = base + pts_ns + pts_ns / 10_000;
            t.observe(Sample {
                pts,
                dts: pts,
                arrival_ns: arrival as u64,
                sender_ns: None,
                keyframe: p % 60 == 0,
            });
            let Some(o) = t.offset_ns() else { continue };
            let o0 = *first.get_or_insert(o);
            if o != o0 && moved_at.is_none() {
                moved_at = Some(p);
                assert_eq!((o - o0) % PTS_QUANTUM_NS, 0);
            }
        }
        // The lag starts in [0, 1 s) and reaches Q + limit = 2 s after 10 000..20 000 s.
        let p = moved_at.expect("the offset moved");
        assert!(
            (30 * 10_000..30 * 20_001).contains(&p),
            "moved at picture {p}"
        );
        // Then the lag restarts near 0 and takes 20 000 s to the limit again.
        assert_eq!(t.counters().reanchors, 2);
    }

    #[test]
    fn a_restart_re_anchors() {
        let mut t = SenderTiming::new(false);
        let obs = |t: &mut SenderTiming, pts: i64, arrival: i64| {
            t.observe(Sample {
                pts,
                dts: pts,
                arrival_ns: arrival as u64,
                sender_ns: None,
                keyframe: true,
            })
        };
        for p in 0..8 {
            obs(&mut t, p * 3000, 5_000_000 * MS + p * 33 * MS);
        }
        let o1 = t.offset_ns().unwrap();
        t.restart();
        assert_eq!(t.wall_ns(0), None);
        for p in 0..8 {
            obs(&mut t, 777_000 + p * 3000, 5_000_300 * MS + p * 33 * MS);
        }
        assert_eq!(t.counters().anchors, 2);
        assert_ne!(t.offset_ns().unwrap(), o1);
    }
}
