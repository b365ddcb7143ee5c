//! A redundant pair end to end through the pure stages: two boxes capture the same pictures and
//! audio with their own start instants and jitter, run timeline → fragmenter → HLS playlist,
//! and must produce the same fragments and the same playlist text for every common segment.

use twincast_media::fragmenter::{Fragment, Fragmenter};
use twincast_media::hls::{MediaPlaylist, SegmentEntry, segment_uri};
use twincast_media::timeline::{
    AudioTimeline, FrameAssign, FrameRate, Grid, NS_PER_SEC, VideoTimeline,
    segment_fragments_for_gop,
};

/// 2026-03-01T12:00:00Z in ns.
const EPOCH_2026: u64 = 1_772_366_400 * NS_PER_SEC;

/// xorshift64*: deterministic jitter without a `rand` dependency.
struct Prng(u64);

impl Prng {
    fn jitter(&mut self, max: u64) -> i64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * max + 1)) as i64 - max as i64
    }
}

struct Box {
    video: Vec<Fragment>,
    audio: Vec<Fragment>,
}

/// One box: captures frames `first..frames` of a source whose pictures land 4 ms after the
/// grid, with ±5 ms of jitter (video) and ±2 ms (audio buffers).
fn run_box(grid: Grid, rate: u32, first_ms: u64, seed: u64) -> Box {
    let fr = grid.rate;
    let k_base = grid.fragment_start_frame(grid.fragment_index(fr.frame_index_nearest(EPOCH_2026)));
    let mut rng = Prng(seed);

    let mut timeline = VideoTimeline::new(fr);
    let mut frag = Fragmenter::video(grid, 90_000).require_grid_start(true);
    let mut video = Vec::new();
    let start = fr.frame_time_ns(k_base) + first_ms * 1_000_000;
    for i in 0..1800u64 {
        let w =
            (fr.frame_time_ns(k_base + i) + 4_000_000).saturating_add_signed(rng.jitter(5_000_000));
        if w < start {
            continue;
        }
        let FrameAssign::Frame { k, .. } = timeline.assign(w) else {
            continue;
        };
        // The capture side forces an IDR on every GOP start.
        video.extend(frag.push(k, grid.is_gop_start(k), 0, k.to_le_bytes().to_vec(), false));
    }

    let mut at = AudioTimeline::new(rate);
    let mut afrag = Fragmenter::audio(grid, rate).require_grid_start(true);
    let mut audio = Vec::new();
    // The first raw buffer is trimmed onto the 1024-sample grid; then AAC frame m starts
    // 1024·m samples later (timestamps from the audio clock, with jitter).
    let trim = AudioTimeline::samples_to_trim(start, rate);
    let first_sample =
        (u128::from(start) * u128::from(rate)).div_ceil(u128::from(NS_PER_SEC)) as u64 + trim;
    for m in 0..2500u64 {
        let s = first_sample + m * 1024;
        let pts = (u128::from(s) * u128::from(NS_PER_SEC) / u128::from(rate)) as u64;
        let j = at.assign(pts.saturating_add_signed(rng.jitter(2_000_000)));
        audio.extend(afrag.push(j, true, 0, vec![j as u8], false));
    }
    Box { video, audio }
}

fn common<'a>(a: &'a [Fragment], b: &'a [Fragment]) -> Vec<(&'a Fragment, &'a Fragment)> {
    a.iter()
        .filter_map(|fa| {
            b.iter()
                .find(|fb| fb.sequence == fa.sequence)
                .map(|fb| (fa, fb))
        })
        .collect()
}

fn playlist(frags: &[Fragment], timescale: u32, per_segment: usize) -> String {
    // A segment = whole fragments; only segments whose first fragment is on a segment boundary.
    let segments: Vec<SegmentEntry> = frags
        .chunks(per_segment)
        .filter(|c| c.len() == per_segment && c[0].sequence % per_segment as u64 == 0)
        .map(|c| {
            let t = c[0].base_dts();
            let duration: u64 = c.iter().map(Fragment::duration).sum();
            SegmentEntry {
                uri: segment_uri(t),
                start_ns: (u128::from(t) * u128::from(NS_PER_SEC) / u128::from(timescale)) as u64,
                duration_secs: duration as f64 / f64::from(timescale),
                discontinuity: false,
                gap: false,
            }
        })
        .collect();
    let media_sequence = frags.first().map_or(0, |f| f.sequence / per_segment as u64);
    MediaPlaylist {
        media_sequence,
        independent_segments: true,
        segments,
        ..MediaPlaylist::default()
    }
    .render()
}

#[test]
fn two_boxes_agree_fragment_for_fragment() {
    for (rate, gop_ns) in [
        ("30/1", 2 * NS_PER_SEC),
        ("30000/1001", 2_002_000_000),
        ("25", 2 * NS_PER_SEC),
    ] {
        let grid = Grid::new(FrameRate::parse(rate).unwrap(), gop_ns).unwrap();
        for sample_rate in [48_000, 44_100] {
            let a = run_box(grid, sample_rate, 0, 1);
            let b = run_box(grid, sample_rate, 7_300, 2); // box B starts 7.3 s later

            let video = common(&a.video, &b.video);
            assert!(
                video.len() >= 20,
                "{rate}: {} common video fragments",
                video.len()
            );
            for (fa, fb) in &video {
                assert_eq!(fa, fb, "{rate} video fragment {}", fa.sequence);
                assert_eq!(fa.samples.len() as u64, grid.fragment_frames());
            }
            let audio = common(&a.audio, &b.audio);
            assert!(
                audio.len() >= 20,
                "{rate}/{sample_rate}: {} common audio fragments",
                audio.len()
            );
            for (fa, fb) in &audio {
                assert_eq!(
                    fa, fb,
                    "{rate}/{sample_rate} audio fragment {}",
                    fa.sequence
                );
                let n = fa.sequence;
                assert_eq!(
                    fa.base_dts(),
                    grid.audio_fragment_start_frame(n, sample_rate) * 1024
                );
            }
            // B's first fragment is a whole one: it started mid-fragment and skipped the partial.
            assert_eq!(b.video[0].samples.len() as u64, grid.fragment_frames());

            // Playlists over the fragments both boxes have are identical text.
            let per = segment_fragments_for_gop(gop_ns) as usize;
            let pick = |frags: &[Fragment], from: u64, to: u64| -> Vec<Fragment> {
                frags
                    .iter()
                    .filter(|f| (from..=to).contains(&f.sequence))
                    .cloned()
                    .collect()
            };
            let range = |x: &[Fragment], y: &[Fragment]| {
                let from = x[0]
                    .sequence
                    .max(y[0].sequence)
                    .next_multiple_of(per as u64);
                let to = x.last().unwrap().sequence.min(y.last().unwrap().sequence);
                (from, to)
            };
            let (from, to) = range(&a.video, &b.video);
            let pa = playlist(&pick(&a.video, from, to), 90_000, per);
            assert_eq!(pa, playlist(&pick(&b.video, from, to), 90_000, per));
            assert!(pa.matches(".m4s").count() >= 5, "{pa}");
            let (from, to) = range(&a.audio, &b.audio);
            let pa = playlist(&pick(&a.audio, from, to), sample_rate, per);
            assert_eq!(pa, playlist(&pick(&b.audio, from, to), sample_rate, per));
            assert!(pa.matches(".m4s").count() >= 5, "{pa}");
        }
    }
}
