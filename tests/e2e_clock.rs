//! The system clock's edges while the daemon runs (docs/design/timeline.md, *Clock steps and
//! slews*), under libfaketime (Debian `faketime`) with `DONT_FAKE_MONOTONIC=1`, so only
//! `CLOCK_REALTIME`, the clock of record, moves:
//! - stepped forward 2 s, then back 2 s, then slewed (±5 %, faster than chrony's usual
//!   corrections): each step is counted in `/status` and `/metrics`, a slew is not, the
//!   timeline never repeats or reorders a segment, and the daemon keeps cutting fragments;
//! - the epoch beyond 2^31 s (2038-01-19T03:14:08Z) and beyond 2^32 s (2106-02-07T06:28:16Z):
//!   the origin's segment names, program dates, media sequence numbers and `tfdt` agree across
//!   the instant, read by the test's own parser and calendar.
//!
//! The clock is moved through `FAKETIME_TIMESTAMP_FILE`, which libfaketime reads again at most
//! once a second (`FAKETIME_CACHE_DURATION=1`); `FAKETIME_XRESET=1` makes a new speed start
//! from the current fake time instead of from process start.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

/// A one-rendition config (180p) with the test pattern.
fn tiny_config(dir: &Path, name: &str, origin_port: u16, control_port: u16) -> std::path::PathBuf {
    let config = small_config(dir, name, origin_port, control_port);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, without_rendition(&text, "240p")).expect("write config");
    config
}

fn input_field(status: &serde_json::Value, field: &str) -> i64 {
    status["input"][field]
        .as_i64()
        .unwrap_or_else(|| panic!("input.{field} in {status}"))
}

/// (media sequence, segment start in 90 kHz ticks, program date) of every segment listed.
fn listed(playlist: &str) -> Vec<(u64, u64, String)> {
    let mut seq = media_sequence(playlist).expect("EXT-X-MEDIA-SEQUENCE");
    let mut date = String::new();
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = d.to_string();
        } else if let Some(name) = line.strip_suffix(".m4s") {
            let ticks = name
                .parse()
                .unwrap_or_else(|_| panic!("segment name {line}"));
            out.push((seq, ticks, date.clone()));
            seq += 1;
        }
    }
    out
}

/// Segments never repeat, never go back, and their sequence numbers are consecutive.
fn assert_ordered(segments: &[(u64, u64, String)], what: &str) {
    for w in segments.windows(2) {
        assert!(
            w[1].0 == w[0].0 + 1 && w[1].1 > w[0].1,
            "{what}: segment {:?} after {:?}",
            w[1],
            w[0]
        );
    }
}

#[test]
fn system_clock_steps_are_counted_slews_are_not_and_the_timeline_never_goes_back() {
    let libfaketime = libfaketime();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (op, cp) = (free_port(), free_port());
    let config = tiny_config(dir.path(), "clock", op, cp);
    let clock = dir.path().join("faketime");
    let set_clock = |spec: &str| std::fs::write(&clock, format!("{spec}\n")).expect("faketime");
    set_clock("+0");
    let clock_path = clock.display().to_string();
    let mut d = Daemon::start_with_env(
        &config,
        op,
        dir.path().join("clock.log"),
        &[
            ("LD_PRELOAD", libfaketime),
            ("FAKETIME_TIMESTAMP_FILE", &clock_path),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_XRESET", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let status_url = format!("http://127.0.0.1:{cp}/status");
    let playlist_url = d.url("/live/180p/index.m3u8");
    let status = || get_json(&status_url);
    d.wait_for("three segments", Duration::from_secs(60), || {
        get_text(&playlist_url).filter(|p| playlist_segments(p).len() >= 3)
    });
    let before = status().expect("/status");
    assert_eq!(input_field(&before, "clock_steps_forward"), 0, "{before}");
    assert_eq!(input_field(&before, "clock_steps_back"), 0, "{before}");

    // Forward 2 s: counted, the frames in between skipped (counted), and the feed latency
    // not raised by the pictures that were captured before the step.
    set_clock("+2");
    let fwd = d.wait_for("the forward step counted", Duration::from_secs(15), || {
        status().filter(|s| input_field(s, "clock_steps_forward") == 1)
    });
    let step = input_field(&fwd, "clock_last_step_ms");
    assert!((1900..=2100).contains(&step), "forward step {step} ms");
    let skipped = input_field(&fwd, "grid_skipped") - input_field(&before, "grid_skipped");
    assert!(
        (30..=70).contains(&skipped),
        "skipped {skipped} frames: {fwd}"
    );
    let last = listed(&get_text(&playlist_url).expect("playlist"));
    let segments_after_forward =
        d.wait_for("a segment after the step", Duration::from_secs(30), || {
            let now = listed(&get_text(&playlist_url)?);
            (now.last() > last.last()).then_some(now)
        });
    assert_ordered(&segments_after_forward, "after the forward step");
    let latency = input_field(&status().expect("/status"), "feed_latency_ms");
    assert!(
        latency < 1000,
        "the step raised the feed latency to {latency} ms\n{}",
        d.log_text()
    );

    // Back 2 s: counted; the timeline waits for the clock instead of repeating a frame.
    set_clock("+0");
    let back = d.wait_for("the back step counted", Duration::from_secs(15), || {
        status().filter(|s| input_field(s, "clock_steps_back") == 1)
    });
    let step = input_field(&back, "clock_last_step_ms");
    assert!((-2100..=-1900).contains(&step), "back step {step} ms");
    let fed = input_field(&back, "grid_frames");
    d.wait_for(
        "frames fed again after the back step",
        Duration::from_secs(20),
        || status().filter(|s| input_field(s, "grid_frames") > fed + 60),
    );

    // Slews of ±5 % for 6 s each: the offset moves 300 ms in all, never fast enough to be
    // a step.
    set_clock("+0 x1.05");
    std::thread::sleep(Duration::from_secs(6));
    set_clock("+0 x0.95");
    std::thread::sleep(Duration::from_secs(6));
    let slewed = status().expect("/status");
    assert_eq!(input_field(&slewed, "clock_steps_forward"), 1, "{slewed}");
    assert_eq!(input_field(&slewed, "clock_steps_back"), 1, "{slewed}");

    // Fragments keep coming, and everything the origin lists is in order.
    let last = listed(&get_text(&playlist_url).expect("playlist"));
    let later = d.wait_for(
        "a new segment after the slews",
        Duration::from_secs(20),
        || {
            let now = listed(&get_text(&playlist_url)?);
            (now.last() > last.last()).then_some(now)
        },
    );
    assert_ordered(&later, "at the end");
    let metrics = get_text(&format!("http://127.0.0.1:{cp}/metrics")).expect("/metrics");
    for line in [
        "twincast_clock_steps_total{encoder=\"clock\",pair=\"test-pair\",direction=\"forward\"} 1",
        "twincast_clock_steps_total{encoder=\"clock\",pair=\"test-pair\",direction=\"back\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in /metrics:\n{metrics}");
    }
    let log = d.log_text();
    for said in [
        "the system clock stepped forward by 2000 ms",
        "(a clock step forward); skipping",
        "the system clock stepped back by",
    ] {
        assert!(log.contains(said), "the log does not say {said:?}:\n{log}");
    }
    assert!(d.stop().is_some_and(|s| s.success()), "{}", d.log_text());
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian), H. Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch ms of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn date_ms(date: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        date.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("program date {date}"))
    };
    assert!(
        date.len() == 24 && date.ends_with('Z'),
        "program date {date}"
    );
    let days = days_from_civil(n(0..4), n(5..7), n(8..10));
    let s = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    u64::try_from(s * 1000 + n(20..23)).expect("a date after 1970")
}

/// The daemon runs with its realtime clock `lead` before `instant` (epoch s) until the origin
/// lists segments from before it to after it; every listed segment must agree with itself.
fn across_the_instant(instant: u64, date: &str) {
    assert_eq!(date_ms(date), instant * 1000, "the test's calendar");
    let libfaketime = libfaketime();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (op, cp) = (free_port(), free_port());
    let config = tiny_config(dir.path(), "epoch", op, cp);
    let lead = 20;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let offset = format!("+{}", instant - lead - now);
    let mut d = Daemon::start_with_env(
        &config,
        op,
        dir.path().join("epoch.log"),
        &[
            ("LD_PRELOAD", libfaketime),
            ("FAKETIME", &offset),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let playlist_url = d.url("/live/180p/index.m3u8");
    let segments = d.wait_for(
        &format!("segments across {date}"),
        Duration::from_secs(90),
        || {
            let listed = listed(&get_text(&playlist_url)?);
            let first = listed.first()?.1 / 90_000;
            let last = listed.last()?.1 / 90_000;
            (first < instant && last > instant + 6).then_some(listed)
        },
    );
    assert_ordered(&segments, date);
    let mut crossed = false;
    for (seq, ticks, pdt) in &segments {
        // The name is the start in 90 kHz ticks since the epoch; the program date is the same
        // instant; the sequence number is the segment's index on the epoch grid (3 s segments).
        assert_eq!(date_ms(pdt), ticks / 90, "segment {ticks}: date {pdt}");
        assert_eq!(
            *seq,
            ticks / (3 * 90_000),
            "segment {ticks}: sequence {seq}"
        );
        crossed |= ticks / 90_000 >= instant;
        let data = get_ok(&d.url(&format!("/live/180p/{ticks}.m4s")))
            .unwrap_or_else(|| panic!("segment {ticks}"));
        let facts = parse_segment(&data, true);
        assert_eq!(
            facts.first().map(|f| f.tfdt),
            Some(*ticks),
            "tfdt of {ticks}"
        );
    }
    assert!(crossed, "no segment after {date}: {segments:?}");
    eprintln!(
        "across {date}: {} segments, {} to {}",
        segments.len(),
        segments[0].2,
        segments[segments.len() - 1].2
    );
    assert!(d.stop().is_some_and(|s| s.success()), "{}", d.log_text());
}

#[test]
fn epoch_beyond_2_31_seconds() {
    across_the_instant(1 << 31, "2038-01-19T03:14:08.000Z");
}

#[test]
fn epoch_beyond_2_32_seconds() {
    across_the_instant(1 << 32, "2106-02-07T06:28:16.000Z");
}
