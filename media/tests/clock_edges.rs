//! The clock's edges, in the pure core (issue #14, part 3):
//!
//! - the epoch grid over ten million frames at the NTSC rates, where rounding is worst: every
//!   frame time maps back to its index, and every audio fragment starts on its formula, at or
//!   after its video fragment and less than one AAC frame after it (so audio never slides off
//!   the video grid, however long the box runs). The instants where audio lags video the most
//!   are printed (`cargo test --test clock_edges -- --nocapture`): those are the times to run
//!   the daemon across.
//! - the epoch beyond 2^31 s (2038-01-19T03:14:08Z), beyond 2^32 s (2106-02-07T06:28:16Z) and
//!   across the NTP era rollover (2036-02-07T06:28:16Z): `tfdt`, `prft`, segment URLs and
//!   playlist dates, read back by an independent parser (mp4-atom) where they are boxes.

use mp4_atom::{Decode, Moof, Prft as PrftBox, Styp};
use twincast_media::hls::{program_date_time, segment_uri};
use twincast_media::mp4::fragment::{
    FragmentBrands, FragmentParams, Prft, ntp_from_unix_ns, write_fragment,
};
use twincast_media::timeline::{AAC_FRAME_SAMPLES, FrameRate, Grid, NS_PER_SEC};
use twincast_media::{Codec, Sample, TrackInfo};

/// Frames of the long run: 10^7 frames is 116 hours at 23.976 fps.
const FRAMES: u64 = 10_000_000;

/// A grid of one-GOP fragments with a GOP of `gop_frames` frames.
fn grid(num: u32, den: u32, gop_frames: u64) -> Grid {
    let rate = FrameRate::new(num, den).expect("rate");
    let gop_ns = gop_frames * u64::from(den) * NS_PER_SEC / u64::from(num);
    Grid::new(rate, gop_ns).expect("whole frames")
}

/// How far audio fragment `n` starts after video fragment `n`, exactly, in units of
/// `1/(rate·N)` s: `j_n·1024·N − n·F·D·rate` (one AAC frame is `1024·N` of them).
fn audio_lag(grid: &Grid, n: u64, sample_rate: u32) -> i128 {
    let r = grid.rate();
    let j = grid.audio_fragment_start_frame(n, sample_rate);
    i128::from(j) * i128::from(AAC_FRAME_SAMPLES) * i128::from(r.num())
        - i128::from(n)
            * i128::from(grid.fragment_frames())
            * i128::from(r.den())
            * i128::from(sample_rate)
}

/// Checks every frame and every fragment of the first [`FRAMES`] frames; returns the worst lag
/// of audio behind video as a fraction of an AAC frame, and the fragment where it happens.
fn check_long_run(grid: &Grid, sample_rate: u32) -> (f64, u64) {
    let rate = grid.rate();
    let mut last_ns = None;
    for k in 0..FRAMES {
        let ns = rate.frame_time_ns(k);
        assert!(
            last_ns.is_none_or(|l| ns > l),
            "{rate}: frame {k} not after {last_ns:?}"
        );
        assert_eq!(
            rate.frame_index_nearest(ns),
            k,
            "{rate}: frame {k} at {ns} ns"
        );
        last_ns = Some(ns);
    }
    // One AAC frame in the lag's units.
    let frame = i128::from(AAC_FRAME_SAMPLES) * i128::from(rate.num());
    let (mut worst, mut worst_n) = (0i128, 0u64);
    let mut previous_j = None;
    for n in 0..FRAMES / grid.fragment_frames() {
        let lag = audio_lag(grid, n, sample_rate);
        assert!(
            (0..frame).contains(&lag),
            "{rate} @ {sample_rate} Hz: audio fragment {n} starts {lag}/{frame} AAC frames from video"
        );
        let j = grid.audio_fragment_start_frame(n, sample_rate);
        assert_eq!(
            grid.audio_fragment_index(j, sample_rate),
            n,
            "{rate}: j_{n} = {j}"
        );
        if let Some(p) = previous_j {
            assert_eq!(
                grid.audio_fragment_index(j - 1, sample_rate),
                n - 1,
                "{rate}: j_{n} − 1"
            );
            // A fragment's audio frame count is its nominal length rounded up or down.
            let nominal = grid.fragment_duration_ns() as f64 * f64::from(sample_rate)
                / NS_PER_SEC as f64
                / AAC_FRAME_SAMPLES as f64;
            let count = (j - p) as f64;
            assert!(
                (count - nominal).abs() < 1.0,
                "{rate}: fragment {} has {count} AAC frames, nominal {nominal}",
                n - 1
            );
        }
        previous_j = Some(j);
        if lag > worst {
            (worst, worst_n) = (lag, n);
        }
    }
    (worst as f64 / frame as f64, worst_n)
}

#[test]
fn ten_million_frames_at_23_976_keep_audio_within_one_aac_frame_of_video() {
    for sample_rate in [48_000, 44_100] {
        let g = grid(24_000, 1001, 48);
        let (worst, n) = check_long_run(&g, sample_rate);
        println!(
            "23.976 fps, 48-frame GOP, {sample_rate} Hz: worst audio lag {worst:.6} AAC frame at fragment {n} ({})",
            program_date_time(g.fragment_start_ns(n))
        );
    }
}

#[test]
fn ten_million_frames_at_29_97_keep_audio_within_one_aac_frame_of_video() {
    for (gop, sample_rate) in [(60, 48_000), (30, 48_000), (60, 44_100)] {
        let g = grid(30_000, 1001, gop);
        let (worst, n) = check_long_run(&g, sample_rate);
        println!(
            "29.97 fps, {gop}-frame GOP, {sample_rate} Hz: worst audio lag {worst:.6} AAC frame at fragment {n} ({})",
            program_date_time(g.fragment_start_ns(n))
        );
    }
}

/// The same formulas at today's epoch and at the far edges: the fragment index of a real date
/// is ~10^9, and the lag stays in range for every fragment around it. 2^34 s (2514) is the last
/// power of two whose nanoseconds fit the u64 of every timestamp (which ends in 2554).
#[test]
fn audio_stays_on_its_formula_at_large_epochs() {
    for (num, den, gop) in [(24_000, 1001, 48), (30_000, 1001, 60), (60_000, 1001, 120)] {
        let g = grid(num, den, gop);
        let frame = i128::from(AAC_FRAME_SAMPLES) * i128::from(num);
        for epoch_s in [1_800_000_000u64, 1 << 31, NTP_ERA1_UNIX_S, 1 << 32, 1 << 34] {
            let n0 = g.fragment_index(g.rate().frame_index_nearest(epoch_s * NS_PER_SEC));
            for n in n0.saturating_sub(1000)..n0 + 1000 {
                let lag = audio_lag(&g, n, 48_000);
                assert!(
                    (0..frame).contains(&lag),
                    "{num}/{den} at {epoch_s} s: fragment {n}"
                );
                let j = g.audio_fragment_start_frame(n, 48_000);
                assert_eq!(g.audio_fragment_index(j, 48_000), n);
            }
        }
    }
}

/// 2036-02-07T06:28:16Z, where NTP's 32-bit seconds wrap (era 1).
const NTP_ERA1_UNIX_S: u64 = (1 << 32) - 2_208_988_800;

#[test]
fn playlist_dates_across_2038_2036_and_2106() {
    assert_eq!(
        program_date_time((1 << 31) * NS_PER_SEC),
        "2038-01-19T03:14:08.000Z"
    );
    assert_eq!(
        program_date_time(((1 << 31) - 1) * NS_PER_SEC + 999_000_000),
        "2038-01-19T03:14:07.999Z"
    );
    assert_eq!(
        program_date_time(NTP_ERA1_UNIX_S * NS_PER_SEC),
        "2036-02-07T06:28:16.000Z"
    );
    assert_eq!(
        program_date_time((1 << 32) * NS_PER_SEC),
        "2106-02-07T06:28:16.000Z"
    );
    // A leap day past 2^32 s.
    assert_eq!(
        program_date_time(4_359_916_800 * NS_PER_SEC),
        "2108-02-29T00:00:00.000Z"
    );
}

#[test]
fn segment_urls_are_the_full_64_bit_media_time() {
    let g = grid(30_000, 1001, 60);
    for epoch_s in [1u64 << 31, 1 << 32] {
        let k = g.rate().frame_index_nearest(epoch_s * NS_PER_SEC);
        let start = g.fragment_start_frame(g.fragment_index(k));
        let t = g.rate().frame_ts(start, 90_000);
        // 29.97 at 90 kHz is exactly 3003 ticks a frame.
        assert_eq!(t, start * 3003);
        assert!(t > u64::from(u32::MAX));
        assert_eq!(segment_uri(t), format!("{}.m4s", start * 3003));
    }
}

fn video_track() -> TrackInfo {
    TrackInfo {
        id: 1,
        name: "720p".into(),
        timescale: 90_000,
        bitrate: 3_000_000,
        codec: Codec::H264 {
            avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
            width: 1280,
            height: 720,
        },
    }
}

/// A fragment at `epoch_s`, read back: `tfdt` is the 64-bit media time and `prft` carries the
/// NTP time of the same instant (seconds modulo 2^32, NTP's era convention, RFC 5905 §6).
#[test]
fn tfdt_and_prft_beyond_2_31_and_2_32_seconds_and_across_the_ntp_era() {
    let g = grid(30_000, 1001, 60);
    for epoch_s in [1u64 << 31, NTP_ERA1_UNIX_S, (1 << 32) + 7] {
        let k = g.fragment_start_frame(
            g.fragment_index(g.rate().frame_index_nearest(epoch_s * NS_PER_SEC)),
        );
        let dts = g.rate().frame_ts(k, 90_000);
        let samples: Vec<Sample> = (0..60u64)
            .map(|i| Sample {
                dts: dts + i * 3003,
                duration: 3003,
                cts_offset: 0,
                keyframe: i == 0,
                data: vec![0, 0, 0, 2, if i == 0 { 0x65 } else { 0x41 }, 0x80],
            })
            .collect();
        let wall_ns = g.rate().frame_time_ns(k);
        let ntp = ntp_from_unix_ns(wall_ns);
        let bytes = write_fragment(
            &video_track(),
            &FragmentParams {
                sequence: g.fragment_index(k) as u32,
                samples: &samples,
                prft: Some(Prft {
                    ntp_timestamp: ntp,
                    media_time: dts,
                }),
                events: &[],
                brands: FragmentBrands::Normal,
            },
        );
        let mut data = &bytes[..];
        Styp::decode(&mut data).expect("styp");
        let prft = PrftBox::decode(&mut data).expect("prft");
        let moof = Moof::decode(&mut data).expect("moof");
        let tfdt = moof.traf[0].tfdt.as_ref().expect("tfdt");
        assert_eq!(tfdt.base_media_decode_time, dts, "{epoch_s} s");
        assert_eq!(prft.media_time, dts);
        let want_secs = (wall_ns / NS_PER_SEC + 2_208_988_800) % (1 << 32);
        assert_eq!(prft.ntp_timestamp >> 32, want_secs, "{epoch_s} s");
        let frac_ns = ((prft.ntp_timestamp & 0xffff_ffff) * NS_PER_SEC) >> 32;
        assert!(
            (wall_ns % NS_PER_SEC).abs_diff(frac_ns) <= 1,
            "{epoch_s} s: NTP fraction {frac_ns} ns"
        );
    }
    assert_eq!(ntp_from_unix_ns(NTP_ERA1_UNIX_S * NS_PER_SEC) >> 32, 0);
}
