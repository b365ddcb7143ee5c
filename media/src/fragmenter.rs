//! The "package" stage's pure core: turns timeline-stamped access units into whole fragments on
//! the grid of docs/design/timeline.md, *The grid*.
//!
//! - The decode time of an access unit is derived from its index, never accumulated:
//!   `frame_ts(k, timescale)` for video frame `k`, `1024·j` for AAC frame `j` (the audio
//!   timescale is the sample rate).
//! - Fragment `n` collects the AUs whose fragment index is `n` ([`Grid::fragment_index`] for
//!   video, [`Grid::audio_fragment_index`] for audio). It is closed and returned when the first
//!   AU of a later fragment arrives, or by [`Fragmenter::flush`]. Sequence numbers strictly
//!   increase: an AU of a fragment already closed is dropped.
//! - A video fragment starts with a keyframe: AUs of a fragment before its first keyframe are
//!   dropped and counted (the partial fragment after start-up is skipped unless it starts with a
//!   keyframe). With [`Fragmenter::require_grid_start`], a fragment must also begin on its first
//!   grid index (`n·g·F`, or `j_n`), so a box that starts mid-fragment never emits a fragment that
//!   differs from its twin's fragment of the same sequence number.
//! - A sample lasts until the next sample's decode time, so a hole inside a fragment is absorbed
//!   by the sample before it. A fragment closed by a later AU is whole on the grid: its last
//!   sample lasts to the fragment's grid end, so AUs lost at a fragment's end (an encoder queue
//!   that overflowed, counted upstream) hold the last picture instead of leaving a hole in the
//!   timeline that the origin would have to publish as a discontinuity in that track alone (seen
//!   in e2e_origin: 3 frames lost before an IDR gave a 2.9 s segment in the video playlists and
//!   none in the audio one, and hls.js never started). A fragment closed by [`Fragmenter::flush`]
//!   (shutdown, new codec parameters) ends its last sample after the nominal duration (one
//!   frame, or 1024).
//! - Indices must increase; a non-increasing index is dropped and counted. Nothing here panics.

use crate::timeline::{AAC_FRAME_SAMPLES, Grid};
use crate::track::Sample;

/// One whole fragment of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment index `n` on the grid; identical on both boxes of a pair.
    pub sequence: u64,
    /// At least one sample, in decode order.
    pub samples: Vec<Sample>,
    /// Built (at least partly) from slate frames during an input loss.
    pub filler: bool,
}

impl Fragment {
    /// Decode time of the first sample (0 for an empty fragment).
    pub fn base_dts(&self) -> u64 {
        self.samples.first().map_or(0, |s| s.dts)
    }

    /// Sum of the sample durations, in the track timescale.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Counters of a [`Fragmenter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmenterStats {
    /// Fragments returned.
    pub fragments: u64,
    /// Samples in the fragments returned.
    pub samples: u64,
    /// All AUs dropped: the sum of the three counters below.
    pub dropped_samples: u64,
    /// Video AUs of a fragment before its first keyframe.
    pub dropped_before_keyframe: u64,
    /// AUs of a fragment that was already closed (after a flush) or that did not start on its
    /// grid index with `require_grid_start`.
    pub dropped_partial: u64,
    /// AUs whose index did not increase.
    pub dropped_out_of_order: u64,
    /// Fragments whose last sample was held past one frame to the fragment's grid end (AUs
    /// lost before the next fragment, upstream).
    pub held_at_end: u64,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Video { timescale: u32 },
    Audio { sample_rate: u32 },
}

#[derive(Debug)]
struct Open {
    sequence: u64,
    samples: Vec<Sample>,
    /// Index of the last sample.
    last_index: u64,
    filler: bool,
}

/// Cuts one track's AUs into fragments. See the module docs for the rules.
#[derive(Debug)]
pub struct Fragmenter {
    grid: Grid,
    kind: Kind,
    require_grid_start: bool,
    open: Option<Open>,
    last_index: Option<u64>,
    /// Highest sequence number closed so far.
    closed_through: Option<u64>,
    stats: FragmenterStats,
}

impl Fragmenter {
    /// A video fragmenter; decode times in units of `timescale` (90 000 by default).
    pub fn video(grid: Grid, timescale: u32) -> Self {
        Self::new(grid, Kind::Video { timescale })
    }

    /// An AAC fragmenter; the timescale is `sample_rate`.
    pub fn audio(grid: Grid, sample_rate: u32) -> Self {
        Self::new(grid, Kind::Audio { sample_rate })
    }

    fn new(grid: Grid, kind: Kind) -> Self {
        Self {
            grid,
            kind,
            require_grid_start: false,
            open: None,
            last_index: None,
            closed_through: None,
            stats: FragmenterStats::default(),
        }
    }

    /// Only start a fragment on its first grid index (`n·g·F` for video, `j_n` for audio);
    /// AUs of a fragment entered later (start-up mid-fragment, a hole at its start) are
    /// dropped and counted as partial. Off by default.
    pub fn require_grid_start(mut self, yes: bool) -> Self {
        self.require_grid_start = yes;
        self
    }

    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Units per second of the decode times.
    pub fn timescale(&self) -> u32 {
        match self.kind {
            Kind::Video { timescale } => timescale,
            Kind::Audio { sample_rate } => sample_rate,
        }
    }

    /// Decode time of index `index` (video frame `k` or AAC frame `j`), saturating.
    pub fn dts(&self, index: u64) -> u64 {
        match self.kind {
            Kind::Video { timescale } => self.grid.rate().frame_ts(index, timescale),
            Kind::Audio { .. } => index.saturating_mul(AAC_FRAME_SAMPLES),
        }
    }

    /// The fragment that index `index` belongs to.
    pub fn fragment_of(&self, index: u64) -> u64 {
        match self.kind {
            Kind::Video { .. } => self.grid.fragment_index(index),
            Kind::Audio { sample_rate } => self.grid.audio_fragment_index(index, sample_rate),
        }
    }

    /// First grid index of fragment `n`.
    pub fn fragment_start_index(&self, n: u64) -> u64 {
        match self.kind {
            Kind::Video { .. } => self.grid.fragment_start_frame(n),
            Kind::Audio { sample_rate } => self.grid.audio_fragment_start_frame(n, sample_rate),
        }
    }

    /// Adds one AU. `index` is the video frame index `k` or the AAC frame index `j`. Returns
    /// the fragment this AU closed, if any. For audio every AU is a sync sample and `keyframe`
    /// is ignored.
    pub fn push(
        &mut self,
        index: u64,
        keyframe: bool,
        cts_offset: i32,
        data: Vec<u8>,
        filler: bool,
    ) -> Option<Fragment> {
        if self.last_index.is_some_and(|last| index <= last) {
            self.drop_au(|s| &mut s.dropped_out_of_order);
            return None;
        }
        self.last_index = Some(index);
        let n = self.fragment_of(index);
        if self.closed_through.is_some_and(|c| n <= c) {
            self.drop_au(|s| &mut s.dropped_partial);
            return None;
        }
        let dts = self.dts(index);
        let keyframe = keyframe || matches!(self.kind, Kind::Audio { .. });
        let sample = Sample {
            dts,
            duration: 0,
            cts_offset,
            keyframe,
            data,
        };

        if let Some(open) = self.open.as_mut()
            && open.sequence == n
        {
            if let Some(prev) = open.samples.last_mut() {
                prev.duration = clamp_u32(dts.saturating_sub(prev.dts));
            }
            open.samples.push(sample);
            open.last_index = index;
            open.filler |= filler;
            return None;
        }

        let closed = self.open.take().map(|open| self.close(open, Some(dts)));
        if !keyframe {
            self.drop_au(|s| &mut s.dropped_before_keyframe);
        } else if self.require_grid_start && index != self.fragment_start_index(n) {
            self.drop_au(|s| &mut s.dropped_partial);
        } else {
            self.open = Some(Open {
                sequence: n,
                samples: vec![sample],
                last_index: index,
                filler,
            });
        }
        closed
    }

    /// Closes and returns the open fragment, if any (shutdown, input loss). Later AUs of the
    /// same fragment are dropped, so a sequence number is never returned twice.
    pub fn flush(&mut self) -> Option<Fragment> {
        let open = self.open.take()?;
        Some(self.close(open, None))
    }

    pub fn stats(&self) -> FragmenterStats {
        self.stats
    }

    fn drop_au(&mut self, counter: impl FnOnce(&mut FragmenterStats) -> &mut u64) {
        let c = counter(&mut self.stats);
        *c = c.saturating_add(1);
        self.stats.dropped_samples = self.stats.dropped_samples.saturating_add(1);
    }

    /// Nominal duration of the sample at `index`: one frame (exact on the grid, so the sum of
    /// a fragment's durations is the grid's), or 1024 samples.
    fn nominal_duration(&self, index: u64) -> u64 {
        self.dts(index.saturating_add(1))
            .saturating_sub(self.dts(index))
    }

    fn close(&mut self, mut open: Open, next_dts: Option<u64>) -> Fragment {
        let end = match next_dts {
            // The closing AU belongs to a later fragment, so it is at or past this one's end.
            Some(next) => self
                .dts(self.fragment_start_index(open.sequence.saturating_add(1)))
                .min(next),
            None => self
                .dts(open.last_index)
                .saturating_add(self.nominal_duration(open.last_index)),
        };
        if let Some(last) = open.samples.last_mut() {
            last.duration = clamp_u32(end.saturating_sub(last.dts));
            if u64::from(last.duration) > self.nominal_duration(open.last_index) {
                self.stats.held_at_end = self.stats.held_at_end.saturating_add(1);
            }
        }
        self.closed_through = Some(open.sequence);
        self.stats.fragments = self.stats.fragments.saturating_add(1);
        let count = u64::try_from(open.samples.len()).unwrap_or(u64::MAX);
        self.stats.samples = self.stats.samples.saturating_add(count);
        Fragment {
            sequence: open.sequence,
            samples: open.samples,
            filler: open.filler,
        }
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{FrameRate, NS_PER_SEC};

    fn grid(rate: &str, gop_ns: u64) -> Grid {
        Grid::new(FrameRate::parse(rate).unwrap(), gop_ns).unwrap()
    }

    /// Pushes video frames `ks` with an IDR on every GOP start; collects closed fragments.
    fn push_video(f: &mut Fragmenter, ks: impl IntoIterator<Item = u64>) -> Vec<Fragment> {
        let g = f.grid();
        ks.into_iter()
            .filter_map(|k| f.push(k, g.is_gop_start(k), 0, k.to_be_bytes().to_vec(), false))
            .collect()
    }

    #[test]
    fn ten_seconds_at_30fps_one_gop_per_fragment() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        let mut out = push_video(&mut f, 0..300);
        out.extend(f.flush());
        assert_eq!(out.len(), 5);
        for (n, frag) in out.iter().enumerate() {
            let n = n as u64;
            assert_eq!(frag.sequence, n);
            assert_eq!(frag.samples.len(), 60);
            assert!(frag.samples[0].keyframe);
            assert!(frag.samples[1..].iter().all(|s| !s.keyframe));
            assert_eq!(frag.base_dts(), n * 60 * 3000);
            assert!(frag.samples.iter().all(|s| s.duration == 3000));
            assert_eq!(frag.duration(), 180_000);
            assert!(!frag.filler);
        }
        let s = f.stats();
        assert_eq!((s.fragments, s.samples, s.dropped_samples), (5, 300, 0));
    }

    #[test]
    fn epoch_indices_at_ntsc_rate() {
        // 2026, 30000/1001, 2.002 s GOPs, two GOPs per fragment: dts = k·3003 exactly.
        let g = grid("30000/1001", 2_002_000_000)
            .with_fragment_gops(2)
            .unwrap();
        let k0 = g.fragment_start_frame(884_000_000);
        let mut f = Fragmenter::video(g, 90_000);
        let out = push_video(&mut f, k0..k0 + 241);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].sequence, 884_000_000);
        assert_eq!(out[1].sequence, 884_000_001);
        assert_eq!(out[0].base_dts(), k0 * 3003);
        assert_eq!(out[0].duration(), 120 * 3003);
        assert!(out[1].samples[60].keyframe);
        assert_eq!(out[0].base_dts() + out[0].duration(), out[1].base_dts());
    }

    #[test]
    fn start_mid_gop_drops_the_partial() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        // Start at frame 100 of fragment 1 (frames 60..120), without a keyframe.
        let out = push_video(&mut f, 100..200);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sequence, 2);
        assert_eq!(out[0].base_dts(), 120 * 3000);
        assert_eq!(out[0].samples.len(), 60);
        let s = f.stats();
        assert_eq!((s.dropped_before_keyframe, s.dropped_samples), (20, 20));
        assert_eq!(f.flush().map(|fr| fr.sequence), Some(3));
    }

    #[test]
    fn keyframe_mid_fragment_starts_it_unless_grid_start_required() {
        // An encoder whose first output (frame 100) is an IDR off the grid.
        let au = |f: &mut Fragmenter, k: u64| {
            f.push(k, k == 100 || k.is_multiple_of(60), 0, vec![], false)
        };
        let mut lax = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        let out: Vec<_> = (100..181).filter_map(|k| au(&mut lax, k)).collect();
        assert_eq!(out[0].sequence, 1);
        assert_eq!(out[0].samples.len(), 20);
        assert_eq!(out[0].base_dts(), 100 * 3000);

        let mut strict =
            Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000).require_grid_start(true);
        let out: Vec<_> = (100..181).filter_map(|k| au(&mut strict, k)).collect();
        assert_eq!(out[0].sequence, 2);
        assert_eq!(out[0].base_dts(), 120 * 3000);
        let s = strict.stats();
        assert_eq!(
            (
                s.dropped_partial,
                s.dropped_before_keyframe,
                s.dropped_samples
            ),
            (1, 19, 20)
        );
    }

    #[test]
    fn gap_inside_a_fragment_is_absorbed_by_the_previous_sample() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        // Frames 10..=14 missing (a stall the timeline re-anchored across).
        let mut out = push_video(&mut f, (0..10).chain(15..60));
        out.extend(push_video(&mut f, [60]));
        assert_eq!(out.len(), 1);
        let frag = &out[0];
        assert_eq!(frag.samples.len(), 55);
        assert_eq!(frag.samples[9].dts, 9 * 3000);
        assert_eq!(frag.samples[9].duration, 6 * 3000);
        assert_eq!(frag.samples[10].dts, 15 * 3000);
        assert_eq!(frag.duration(), 180_000);
        assert_eq!(frag.samples.last().unwrap().duration, 3000);
    }

    #[test]
    fn frames_lost_at_a_fragment_end_are_held_so_it_stays_whole() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        // Frames 57..=59 lost before the IDR of fragment 1 (an encoder queue overflow).
        let out = push_video(&mut f, (0..57).chain([60]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples.last().unwrap().duration, 4 * 3000);
        assert_eq!(out[0].duration(), 180_000);
        assert_eq!(f.stats().held_at_end, 1);
        // Fragment 1 ends at frame 110; the next AU is the IDR of fragment 3 (fragment 2 lost
        // whole): fragment 1 still covers its grid span, the hole is fragment 2 alone.
        let out = push_video(&mut f, (61..=110).chain([180]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].base_dts(), 180_000);
        assert_eq!(out[0].duration(), 180_000);
        assert_eq!(f.stats().held_at_end, 2);
    }

    #[test]
    fn a_flushed_fragment_ends_one_frame_after_its_last() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        push_video(&mut f, 0..=50);
        let frag = f.flush().unwrap();
        assert_eq!(frag.samples.last().unwrap().duration, 3000);
        assert_eq!(frag.duration(), 51 * 3000);
        assert_eq!(f.stats().held_at_end, 0);
    }

    #[test]
    fn non_increasing_indices_are_dropped_and_counted() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        push_video(&mut f, 0..10);
        assert!(f.push(9, false, 0, vec![], false).is_none());
        assert!(f.push(3, true, 0, vec![], false).is_none());
        push_video(&mut f, 10..60);
        let frag = f.flush().unwrap();
        assert_eq!(frag.samples.len(), 60);
        assert!(frag.samples.windows(2).all(|w| w[1].dts > w[0].dts));
        assert_eq!(f.stats().dropped_out_of_order, 2);
        assert_eq!(f.stats().dropped_samples, 2);
    }

    #[test]
    fn flush_then_same_fragment_never_repeats_a_sequence() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        push_video(&mut f, 0..20);
        let flushed = f.flush().unwrap();
        assert_eq!((flushed.sequence, flushed.samples.len()), (0, 20));
        assert_eq!(flushed.samples.last().unwrap().duration, 3000);
        assert!(f.flush().is_none());
        // Input returns inside fragment 0: dropped; fragment 1 proceeds.
        let mut out = push_video(&mut f, 25..121);
        assert_eq!(f.stats().dropped_partial, 35);
        assert_eq!(out.len(), 1);
        assert_eq!(out.remove(0).sequence, 1);
    }

    #[test]
    fn filler_and_cts_offsets_carry_through() {
        let mut f = Fragmenter::video(grid("30/1", 2 * NS_PER_SEC), 90_000);
        for k in 0..60 {
            assert!(f.push(k, k == 0, 6000, vec![1, 2], k == 30).is_none());
        }
        assert!(f.push(60, true, -3000, vec![], false).is_some_and(|fr| {
            fr.filler
                && fr
                    .samples
                    .iter()
                    .all(|s| s.cts_offset == 6000 && s.data == [1, 2])
        }));
        let next = f.flush().unwrap();
        assert!(!next.filler);
        assert_eq!(next.samples[0].cts_offset, -3000);
    }

    #[test]
    fn audio_fragments_at_48k_follow_j_n_and_are_contiguous() {
        let g = grid("30/1", 2 * NS_PER_SEC);
        let rate = 48_000;
        let mut f = Fragmenter::audio(g, rate);
        // Start in 2026 on fragment n0's first AAC frame and run for 20 fragments.
        let n0 = 885_000_000u64;
        let j0 = g.audio_fragment_start_frame(n0, rate);
        let j_end = g.audio_fragment_start_frame(n0 + 20, rate);
        let mut out: Vec<Fragment> = (j0..=j_end)
            .filter_map(|j| f.push(j, false, 0, vec![0; 4], false))
            .collect();
        assert_eq!(out.len(), 20);
        for (i, frag) in out.iter().enumerate() {
            let n = n0 + i as u64;
            let jn = g.audio_fragment_start_frame(n, rate);
            let jn1 = g.audio_fragment_start_frame(n + 1, rate);
            assert_eq!(frag.sequence, n);
            assert_eq!(frag.base_dts(), jn * 1024);
            assert_eq!(frag.samples.len() as u64, jn1 - jn);
            assert!(
                frag.samples
                    .iter()
                    .all(|s| s.duration == 1024 && s.keyframe)
            );
            assert_eq!(frag.base_dts() + frag.duration(), jn1 * 1024);
            // Audio starts at or after the video fragment start, by less than one AAC frame.
            let video_start_samples = u128::from(g.fragment_start_ns(n)) * u128::from(rate);
            let audio_start = u128::from(frag.base_dts()) * u128::from(NS_PER_SEC);
            assert!(audio_start >= video_start_samples);
            assert!(audio_start - video_start_samples < 1024 * u128::from(NS_PER_SEC));
        }
        // 2 s at 48 kHz is 93.75 AAC frames: fragments alternate between 93 and 94 frames.
        let mut lens: Vec<usize> = out.iter().map(|f| f.samples.len()).collect();
        lens.sort_unstable();
        lens.dedup();
        assert_eq!(lens, [93, 94]);
        assert_eq!(f.stats().dropped_samples, 0);
        out.clear();
    }

    #[test]
    fn audio_partial_start_kept_or_dropped() {
        let g = grid("30/1", 2 * NS_PER_SEC);
        let mut lax = Fragmenter::audio(g, 44_100);
        let mut strict = Fragmenter::audio(g, 44_100).require_grid_start(true);
        let j1 = g.audio_fragment_start_frame(1, 44_100);
        let j2 = g.audio_fragment_start_frame(2, 44_100);
        for f in [&mut lax, &mut strict] {
            for j in j1 + 10..=j2 {
                if let Some(frag) = f.push(j, true, 0, vec![], false) {
                    assert_eq!(frag.sequence, 1);
                    assert_eq!(frag.base_dts(), (j1 + 10) * 1024);
                }
            }
        }
        assert_eq!(lax.stats().fragments, 1);
        assert_eq!(strict.stats().fragments, 0);
        assert_eq!(strict.stats().dropped_partial, j2 - j1 - 10);
    }

    #[test]
    fn ten_mhz_timescale_at_ntsc_sums_exactly() {
        // Smooth ingest: 10 MHz, where a 30000/1001 frame is 333 666.67 units.
        let g = grid("30000/1001", 2_002_000_000);
        let mut f = Fragmenter::video(g, 10_000_000);
        let out = push_video(&mut f, 0..61);
        assert_eq!(out[0].duration(), 20_020_000);
        let mut d: Vec<u32> = out[0].samples.iter().map(|s| s.duration).collect();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d, [333_666, 333_667]);
    }

    #[test]
    fn extreme_indices_do_not_panic() {
        let g = grid("30/1", 2 * NS_PER_SEC);
        for mut f in [
            Fragmenter::video(g, u32::MAX),
            Fragmenter::audio(g, 0),
            Fragmenter::audio(g, 1),
        ] {
            for idx in [0, 1, u64::MAX - 1, u64::MAX, 5] {
                let _ = f.push(idx, true, i32::MIN, vec![], true);
            }
            let _ = f.flush();
        }
    }
}
