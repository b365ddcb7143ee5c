//! Grid feeding: which picture and which audio samples the encoders get for each grid slot.
//!
//! Pure and synchronous (no GStreamer): the source side offers pictures and audio with their
//! capture time W; the grid clock asks for frame k (or AAC frame j) when its time has come.
//!
//! Policy (docs/design/timeline.md, *The grid clock*; docs/ref/config.md `slate_after`):
//! - A picture gets its index k from W by the video timeline (keep counting, re-anchor only
//!   when W is more than ¾ of a frame off). It waits in a small bounded map until the grid clock
//!   asks for k; a picture whose k was already fed is late and counted.
//! - Frame k is the source's picture k when one arrived ("live"); otherwise the last live
//!   picture again ("hold": a source slower than the grid, a short hiccup) while the last live
//!   picture is at most `slate_after` old; otherwise the slate. When pictures come back, the
//!   next frame is live again: the grid never moves, so both boxes of a pair switch on it.
//! - Audio samples are placed by their epoch sample index (keep counting within a tolerance, so
//!   capture jitter never shifts the audio) into a bounded window; AAC frame j takes samples
//!   `[1024·j, 1024·(j+1))`, silence where the source gave none.

use std::collections::{BTreeMap, VecDeque};

use twincast_media::timeline::{FrameAssign, FrameRate, VideoTimeline};
use twincast_media::{MediaTime, Rounding, Timescale};

/// Pictures waiting for their grid slot, at most. Two seconds at 30 fps: more than any
/// source's latency spread; beyond it the oldest is dropped and counted.
pub const MAX_PENDING_PICTURES: usize = 64;
/// Samples an AAC frame covers (ISO/IEC 14496-3, AAC-LC).
pub const AAC_FRAME_SAMPLES: u64 = 1024;
/// An audio buffer whose W is this close to where the previous one ended continues it
/// (capture jitter); farther, it is placed where W says (a gap or a new source).
pub const AUDIO_CONTINUITY_TOLERANCE_NS: u64 = 40_000_000;
/// The audio window holds at most this much ahead of the next AAC frame.
pub const MAX_AUDIO_WINDOW_NS: u64 = 2_000_000_000;

/// What the source side's offer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Waits for slot k.
    Queued { k: u64 },
    /// Slot k was already fed: too late.
    Late { k: u64 },
    /// The timeline already gave out this index (a source faster than the grid).
    Behind,
}

/// What the encoders get for one frame slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick<P> {
    /// The source's own picture for this slot.
    Live(P),
    /// The last live picture again (it is at most `slate_after` old).
    Hold(P),
    /// No picture for longer than `slate_after`: the slate.
    Slate,
}

impl<P> Pick<P> {
    pub fn is_slate(&self) -> bool {
        matches!(self, Pick::Slate)
    }
}

/// Counters of the video feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoFeedCounters {
    pub live: u64,
    pub held: u64,
    pub slate: u64,
    /// Pictures that arrived after their slot was fed.
    pub late: u64,
    /// Pictures whose index was already given out.
    pub behind: u64,
    /// Pictures dropped because too many were waiting.
    pub overflow: u64,
    /// Pictures whose index did not simply follow the previous one (a gap, a new source).
    pub reanchors: u64,
}

/// The video side of the grid feed; `P` is a picture (a refcounted buffer in the daemon).
#[derive(Debug)]
pub struct VideoFeed<P> {
    timeline: VideoTimeline,
    pending: BTreeMap<u64, P>,
    last_live: Option<(u64, P)>,
    /// Slots a live picture is held before the slate takes over.
    hold_frames: u64,
    /// The next slot the grid clock will ask for (None before the first).
    next_slot: Option<u64>,
    pub counters: VideoFeedCounters,
}

impl<P: Clone> VideoFeed<P> {
    /// `slate_after_ns`: how long the last live picture is held before the slate.
    pub fn new(rate: FrameRate, slate_after_ns: u64) -> Self {
        // ceil(slate_after · N / (D · 1e9)), exactly: at least one slot.
        let per_second = u128::from(rate.den()) * 1_000_000_000;
        let frames = (u128::from(slate_after_ns) * u128::from(rate.num())).div_ceil(per_second);
        let hold_frames = u64::try_from(frames).unwrap_or(u64::MAX).max(1);
        VideoFeed {
            timeline: VideoTimeline::new(rate),
            pending: BTreeMap::new(),
            last_live: None,
            hold_frames,
            next_slot: None,
            counters: VideoFeedCounters::default(),
        }
    }

    pub fn hold_frames(&self) -> u64 {
        self.hold_frames
    }

    /// A source picture captured at `wall_ns`.
    pub fn offer(&mut self, wall_ns: u64, picture: P) -> Offer {
        let k = match self.timeline.assign(wall_ns) {
            FrameAssign::Frame { k, reanchored } => {
                self.counters.reanchors += u64::from(reanchored);
                k
            }
            FrameAssign::Drop => {
                self.counters.behind += 1;
                return Offer::Behind;
            }
        };
        if self.next_slot.is_some_and(|next| k < next) {
            self.counters.late += 1;
            return Offer::Late { k };
        }
        self.pending.insert(k, picture);
        while self.pending.len() > MAX_PENDING_PICTURES {
            self.pending.pop_first();
            self.counters.overflow += 1;
        }
        Offer::Queued { k }
    }

    /// The picture for slot `k`; slots are asked for in increasing order.
    pub fn pick(&mut self, k: u64) -> Pick<P> {
        // Anything before k can no longer be fed (the clock skipped ahead).
        while let Some((&first, _)) = self.pending.first_key_value() {
            if first >= k {
                break;
            }
            self.pending.pop_first();
            self.counters.late += 1;
        }
        self.next_slot = Some(k.saturating_add(1));
        if let Some(p) = self.pending.remove(&k) {
            self.counters.live += 1;
            self.last_live = Some((k, p.clone()));
            return Pick::Live(p);
        }
        match &self.last_live {
            Some((lk, p)) if k.saturating_sub(*lk) <= self.hold_frames => {
                self.counters.held += 1;
                Pick::Hold(p.clone())
            }
            _ => {
                self.counters.slate += 1;
                // Release the picture: a slate of hours must not pin a decoder buffer.
                self.last_live = None;
                Pick::Slate
            }
        }
    }
}

/// Counters of the audio feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioFeedCounters {
    /// AAC frames handed out.
    pub frames: u64,
    /// AAC frames with no source sample at all (pure silence).
    pub silent_frames: u64,
    /// Source samples that arrived after their frame was handed out.
    pub late_samples: u64,
    /// Source samples dropped because they were too far ahead.
    pub overflow_samples: u64,
    /// Buffers placed where their W said rather than after the previous one.
    pub reanchors: u64,
}

/// One AAC frame's worth of raw samples for the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Epoch sample index of the first sample (a multiple of 1024).
    pub start_sample: u64,
    /// Interleaved samples, `1024 × bytes per sample frame`.
    pub data: Vec<u8>,
    /// Sample frames that came from the source (the rest is silence).
    pub source_samples: u64,
}

/// The audio side of the grid feed: raw interleaved samples by epoch sample index.
#[derive(Debug)]
pub struct AudioFeed {
    rate: Timescale,
    /// Bytes per sample frame (all channels).
    bpf: usize,
    /// Epoch sample index of `data[0]`.
    base: u64,
    data: VecDeque<u8>,
    /// Per sample frame: from the source (else silence).
    real: VecDeque<bool>,
    /// Where the previous source buffer ended.
    expected: Option<u64>,
    /// The first sample of the next AAC frame to hand out (None before the first).
    next_take: Option<u64>,
    max_samples: u64,
    tolerance_samples: u64,
    pub counters: AudioFeedCounters,
}

impl AudioFeed {
    pub fn new(rate: Timescale, bytes_per_frame: usize) -> Self {
        AudioFeed {
            rate,
            bpf: bytes_per_frame.max(1),
            base: 0,
            data: VecDeque::new(),
            real: VecDeque::new(),
            expected: None,
            next_take: None,
            max_samples: ns_to_samples(MAX_AUDIO_WINDOW_NS, rate),
            tolerance_samples: ns_to_samples(AUDIO_CONTINUITY_TOLERANCE_NS, rate),
            counters: AudioFeedCounters::default(),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate.hz()
    }

    /// Start of sample `s` in ns since the epoch.
    pub fn sample_time_ns(&self, s: u64) -> u64 {
        MediaTime::new(s, self.rate).as_nanos()
    }

    /// Interleaved samples whose first was captured at `wall_ns`.
    pub fn offer(&mut self, wall_ns: u64, bytes: &[u8]) {
        let n = (bytes.len() / self.bpf) as u64;
        if n == 0 {
            return;
        }
        let at = ns_to_samples(wall_ns, self.rate);
        let pos = match self.expected {
            Some(e) if e.abs_diff(at) <= self.tolerance_samples => e,
            Some(_) => {
                self.counters.reanchors += 1;
                at
            }
            None => at,
        };
        self.expected = Some(pos + n);
        if self.data.is_empty() {
            self.base = self.next_take.map_or(pos, |t| t.max(pos));
        }
        // Samples before the window start were already handed out (or precede the first).
        let skip = self.base.saturating_sub(pos).min(n);
        if skip > 0 && self.next_take.is_some() {
            self.counters.late_samples += skip;
        }
        if skip == n {
            return;
        }
        let first = pos + skip;
        let offset = first - self.base;
        if offset > self.max_samples {
            self.counters.overflow_samples += n - skip;
            return;
        }
        let end = offset + (n - skip);
        let len = self.real.len() as u64;
        if end > len {
            let grow = (end - len) as usize;
            self.data.resize(self.data.len() + grow * self.bpf, 0);
            self.real.resize(self.real.len() + grow, false);
        }
        let src = &bytes[skip as usize * self.bpf..n as usize * self.bpf];
        for (i, chunk) in src.chunks_exact(self.bpf).enumerate() {
            let slot = offset as usize + i;
            for (b, v) in chunk.iter().enumerate() {
                self.data[slot * self.bpf + b] = *v;
            }
            self.real[slot] = true;
        }
        // Bound the window: keep at most max_samples past its start.
        while self.real.len() as u64 > self.max_samples {
            let excess = self.real.len() - self.max_samples as usize;
            self.real.drain(..excess);
            self.data.drain(..excess * self.bpf);
            self.base += excess as u64;
            self.counters.overflow_samples += excess as u64;
        }
    }

    /// The AAC frame starting at epoch sample `start` (a multiple of 1024); frames are taken in
    /// increasing order.
    pub fn take(&mut self, start: u64) -> AudioFrame {
        let n = AAC_FRAME_SAMPLES;
        // Drop what lies before `start`.
        if self.base < start {
            let drop = ((start - self.base) as usize).min(self.real.len());
            self.real.drain(..drop);
            self.data.drain(..drop * self.bpf);
            self.base = start;
        }
        let mut out = vec![0u8; n as usize * self.bpf];
        let mut source_samples = 0;
        // The window may start after `start` (silence before it).
        let lead = self.base.saturating_sub(start).min(n);
        let available = (self.real.len() as u64).min(n - lead);
        for i in 0..available as usize {
            if self.real[i] {
                source_samples += 1;
                let dst = (lead as usize + i) * self.bpf;
                for b in 0..self.bpf {
                    out[dst + b] = self.data[i * self.bpf + b];
                }
            }
        }
        let consumed = available as usize;
        self.real.drain(..consumed);
        self.data.drain(..consumed * self.bpf);
        self.base = start + n;
        self.next_take = Some(start + n);
        self.counters.frames += 1;
        if source_samples == 0 {
            self.counters.silent_frames += 1;
        }
        AudioFrame {
            start_sample: start,
            data: out,
            source_samples,
        }
    }
}

/// `ns` in samples at `rate`, to the nearest (halves up).
fn ns_to_samples(ns: u64, rate: Timescale) -> u64 {
    MediaTime::from_nanos(ns, rate, Rounding::Nearest).ticks()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some frame index in 2026.
    const K0: u64 = 53_000_000_010;

    fn rate() -> FrameRate {
        FrameRate::new(30, 1).unwrap()
    }

    fn t(k: u64) -> u64 {
        rate().frame_time_ns(k)
    }

    #[test]
    fn live_then_hold_then_slate_then_live_on_the_same_grid() {
        let mut f: VideoFeed<u64> = VideoFeed::new(rate(), 500_000_000);
        assert_eq!(f.hold_frames(), 15);
        // Live pictures with capture jitter of a few ms.
        for k in K0..K0 + 30 {
            let jitter = (k % 3) * 3_000_000;
            assert_eq!(f.offer(t(k) + jitter, k), Offer::Queued { k });
            assert_eq!(f.pick(k), Pick::Live(k));
        }
        // The source stops: the last picture is held for 15 slots, then the slate.
        let last = K0 + 29;
        for k in K0 + 30..=K0 + 29 + 15 {
            assert_eq!(f.pick(k), Pick::Hold(last), "slot {k}");
        }
        for k in K0 + 45..K0 + 600 {
            assert_eq!(f.pick(k), Pick::Slate);
        }
        // It returns: live on the next slot whose picture arrived, same grid.
        let back = K0 + 600;
        assert_eq!(
            f.offer(t(back) + 1_000_000, back),
            Offer::Queued { k: back }
        );
        assert_eq!(f.pick(back), Pick::Live(back));
        assert_eq!(f.pick(back + 1), Pick::Hold(back));
        assert_eq!(f.counters.slate, 555);
        assert_eq!(f.counters.live, 31);
    }

    #[test]
    fn late_and_faster_sources_are_counted_not_fed() {
        let mut f: VideoFeed<u64> = VideoFeed::new(rate(), 500_000_000);
        assert_eq!(f.offer(t(K0), 1), Offer::Queued { k: K0 });
        assert_eq!(f.pick(K0), Pick::Live(1));
        assert_eq!(f.pick(K0 + 1), Pick::Hold(1));
        // The picture for K0+1 arrives after its slot was fed.
        assert_eq!(f.offer(t(K0 + 1), 2), Offer::Late { k: K0 + 1 });
        // A second picture close behind the first: its index was already given out.
        assert_eq!(f.offer(t(K0 + 2), 3), Offer::Queued { k: K0 + 2 });
        assert_eq!(f.offer(t(K0 + 2) + 5_000_000, 4), Offer::Behind);
        assert_eq!(f.pick(K0 + 2), Pick::Live(3));
        assert_eq!(f.counters.late, 1);
        assert_eq!(f.counters.behind, 1);
    }

    #[test]
    fn a_slower_source_is_held_between_its_pictures() {
        // 25 fps into a 30 fps grid, fed two frames behind the clock: one slot in six is a
        // hold, never a slate, and no picture is late.
        let mut f: VideoFeed<u64> = VideoFeed::new(rate(), 500_000_000);
        let mut fed = Vec::new();
        let start = t(K0);
        let latency = 2 * 33_333_333;
        let mut next_picture = 0u64;
        for k in K0..K0 + 60 {
            while start + next_picture * 40_000_000 <= t(k) + latency {
                f.offer(start + next_picture * 40_000_000, next_picture);
                next_picture += 1;
            }
            fed.push(f.pick(k));
        }
        assert!(fed.iter().all(|p| !p.is_slate()));
        assert_eq!(f.counters.late, 0);
        assert_eq!(f.counters.live + f.counters.held, 60);
        assert!((9..=11).contains(&f.counters.held), "{:?}", f.counters);
    }

    #[test]
    fn pending_is_bounded() {
        let mut f: VideoFeed<u64> = VideoFeed::new(rate(), 500_000_000);
        for k in K0..K0 + 100 {
            f.offer(t(k), k);
        }
        assert_eq!(f.counters.overflow, 100 - MAX_PENDING_PICTURES as u64);
        // The oldest went: slot K0 is no longer there.
        assert_eq!(f.pick(K0), Pick::Slate);
        assert_eq!(f.pick(K0 + 36), Pick::Live(K0 + 36));
    }

    /// Bytes of one mono S16 sample frame with value `v`.
    fn mono(v: i16, n: usize) -> Vec<u8> {
        std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect()
    }

    #[test]
    fn audio_lands_on_the_1024_grid_with_silence_in_holes() {
        let rate = 48_000;
        let mut a = AudioFeed::new(Timescale::new(rate).expect("non-zero"), 2);
        let j0: u64 = 2_484_375_000; // an AAC frame index in 2026
        let s0 = j0 * 1024;
        // Source buffers of 480 samples (10 ms) starting 100 samples into frame j0, jittered.
        let mut s = s0 + 100;
        for i in 0..10 {
            let jitter = if i % 2 == 1 { 300_000 } else { 0 };
            a.offer(a.sample_time_ns(s) + jitter, &mono(7, 480));
            s += 480;
        }
        let f0 = a.take(s0);
        assert_eq!(f0.start_sample, s0);
        assert_eq!(f0.source_samples, 924);
        assert_eq!(
            &f0.data[..200],
            &[0u8; 200][..],
            "silence before the source"
        );
        assert_eq!(&f0.data[200..204], &[7, 0, 7, 0]);
        let f1 = a.take(s0 + 1024);
        assert_eq!(f1.source_samples, 1024);
        // The source stops: pure silence, counted.
        assert_eq!(a.take(s0 + 2048).source_samples, 1024);
        assert_eq!(a.take(s0 + 3072).source_samples, 1024);
        // The source ended at s0 + 4900.
        assert_eq!(a.take(s0 + 4096).source_samples, 804);
        // Then it stops: pure silence, counted.
        let f5 = a.take(s0 + 5120);
        assert_eq!(f5.source_samples, 0);
        assert_eq!(f5.data, vec![0u8; 2048]);
        assert_eq!(a.counters.silent_frames, 1);
        assert_eq!(a.counters.reanchors, 0);
        // Samples for frames already handed out are late.
        a.offer(a.sample_time_ns(s0 + 5120), &mono(1, 100));
        assert_eq!(a.counters.late_samples, 100);
    }

    #[test]
    fn audio_window_is_bounded() {
        let mut a = AudioFeed::new(Timescale::new(48_000).expect("non-zero"), 4);
        let s0 = 1024 * 1_000_000;
        a.take(s0);
        // Ten seconds arrive at once, far ahead of the grid clock.
        for i in 0..100u64 {
            let at = s0 + 1024 + i * 4800;
            a.offer(a.sample_time_ns(at), &vec![1u8; 4800 * 4]);
        }
        assert!(a.counters.overflow_samples > 0);
        assert!(a.real.len() as u64 <= a.max_samples);
    }
}
