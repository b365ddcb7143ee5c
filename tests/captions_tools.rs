//! The captioned test feed (tests/common/captions.rs) and its reader check each other: a TS
//! feed made with GStreamer and ffmpeg carries CEA-608 captions that ffmpeg's own decoder reads
//! back at the times and with the texts the feed was made with, on pictures in source order.

mod common;

use common::captions::{
    FPS, caption_cues, caption_schedule, captioned_ts, decoded_lumas, has_closed_captions,
    parse_srt, pattern_luma,
};
use std::time::Instant;

#[test]
fn a_captioned_feed_made_with_gstreamer_and_ffmpeg_reads_back() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let ts = captioned_ts(dir.path(), 6);
    let made = t0.elapsed();

    assert!(
        has_closed_captions(&ts),
        "ffprobe finds no closed captions in {}",
        ts.display()
    );

    let cues = caption_cues(&ts);
    println!("cues of the 6 s feed: {cues:?}");
    let texts: Vec<&str> = cues.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["TWINCAST 0", "TWINCAST 2", "TWINCAST 4"],
        "{cues:?}"
    );
    let schedule = caption_schedule(6);
    assert_eq!(cues.len(), schedule.len(), "{schedule:?}");
    for ((start, text), (shown, _)) in cues.iter().zip(&schedule) {
        assert!(
            (start - shown).abs() < 0.2,
            "{text:?} starts at {start} s, shown from {shown} s"
        );
    }
    // From the second even second on, a caption shows on the first frame of its second (the
    // first one needs 11 frames to load: 0.367 s).
    for (start, text) in &cues[1..] {
        let second: f64 = text
            .strip_prefix("TWINCAST ")
            .and_then(|s| s.parse().ok())
            .expect("TWINCAST <second>");
        assert!((start - second).abs() < 0.2, "{text:?} starts at {start} s");
    }
    assert!(
        (cues[0].0 - 11.0 / f64::from(FPS)).abs() < 0.2,
        "{:?} starts at {} s",
        cues[0].1,
        cues[0].0
    );

    // The pictures in source order: picture N is flat at luma 8·N (two lossy encodes of a flat
    // picture stay within a step or two).
    let lumas = decoded_lumas(&ts);
    assert_eq!(lumas.len(), 6 * FPS as usize, "decoded frames");
    for (n, y) in lumas.iter().take(32).enumerate() {
        let want = f64::from(pattern_luma(n as u64));
        assert!((y - want).abs() < 2.0, "frame {n}: luma {y}, want {want}");
    }

    // A path that needs escaping in a lavfi graph reads the same.
    let odd = dir.path().join("we'ird, [dir]; a\\b:c");
    std::fs::create_dir(&odd).expect("odd directory");
    let odd_ts = odd.join("feed: 'x', [y].ts");
    std::fs::copy(&ts, &odd_ts).expect("copy the feed");
    assert_eq!(caption_cues(&odd_ts), cues);

    println!(
        "made the feed in {made:?}; everything in {:?}",
        t0.elapsed()
    );
}

#[test]
fn srt_from_ffmpeg_parses_into_cues() {
    let srt = "1\r\n00:00:00,367 --> 00:00:01,000\r\n{\\an7}<font face=\"Monospace\">TWINCAST 0</font>\r\n\r\n\
               2\r\n01:02:03,450 --> 01:02:04,000\r\nTWO\r\nLINES\r\n\r\n";
    let cues = parse_srt(srt);
    let ms: Vec<(i64, &str)> = cues
        .iter()
        .map(|(t, text)| ((t * 1000.0).round() as i64, text.as_str()))
        .collect();
    assert_eq!(ms, [(367, "TWINCAST 0"), (3_723_450, "TWO\nLINES")]);
}

/// `TWINCAST_CAPTIONED_FEED=<dir> cargo test --test captions_tools -- --ignored`: writes the
/// 32 s captioned TS feed into `<dir>` (`captioned.ts`) for a check by hand, e.g. sent to a
/// daemon's `udp` input with ffmpeg and read back from its origin with
/// `ffmpeg -f lavfi -i "movie=http://…/live/240p/index.m3u8[out0+subcc]" -map 0:1 out.srt`.
#[test]
#[ignore]
fn write_a_captioned_feed() {
    let Some(dir) = std::env::var_os("TWINCAST_CAPTIONED_FEED") else {
        return;
    };
    let ts = captioned_ts(std::path::Path::new(&dir), 32);
    println!("{}", ts.display());
}
