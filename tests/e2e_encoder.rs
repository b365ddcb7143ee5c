//! End-to-end: an encoder failure rebuilds the encoders and costs at most one fragment (issue
//! #9, docs/guide/troubleshooting.md "encoders failed").
//!
//! The failure is real GStreamer: the fault injector `TWINCAST_FAULT_ENCODER_ERROR_AFTER`
//! (src/capture/encoders/fault.rs) makes the first rendition's encoder post an element error on the
//! encoder pipeline's bus and stop producing, as a dying encoder does. ffprobe decodes what the
//! origin serves after the rebuild.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The fault fires this long after the encoders are built (a few segments are out by then).
const FAULT_AFTER: &str = "8s";
/// One segment = one fragment = one GOP of 1 s, in the 90 kHz video timescale.
const SEGMENT_TICKS: u64 = 90_000;

/// A track's timescale (ticks per second = per segment) and one frame in ticks.
#[derive(Clone, Copy)]
struct Ticks {
    second: u64,
    frame: u64,
}

const VIDEO: Ticks = Ticks {
    second: SEGMENT_TICKS,
    frame: 3_000,
};
/// 48 kHz, one AAC frame of 1024 samples.
const AUDIO: Ticks = Ticks {
    second: 48_000,
    frame: 1_024,
};

fn config(dir: &Path, name: &str, origin: u16, control: u16) -> std::path::PathBuf {
    let dvr_dir = dir.join(format!("dvr-{name}")).display().to_string();
    let text = format!(
        r#"
[encoder]
name = "{name}"

[input]
kind = "test"
audio = "test"
width = 320
height = 180
framerate = "30/1"

[timeline]
gop = "1s"

[[rendition]]
name = "180p"
width = 320
height = 180
bitrate_kbps = 250

[audio]
bitrate_kbps = 64

[origin]
listen = "127.0.0.1:{origin}"
dvr_window = "5m"
dvr_dir = "{dvr_dir}"
segment_fragments = 1

[control]
listen = "127.0.0.1:{control}"
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn status(control: u16) -> Option<serde_json::Value> {
    get_json(&format!("http://127.0.0.1:{control}/status"))
}

fn next_seq(control: u16) -> Option<u64> {
    status(control)?["tracks"][0]["next_sequence"].as_u64()
}

/// One media playlist entry: start in ticks (from its URI), duration in ticks, a gap or not.
#[derive(Debug)]
struct Entry {
    start: u64,
    duration: u64,
    gap: bool,
    uri: String,
    /// The EXT-X-MAP in force.
    init: String,
}

fn entries(text: &str, ticks: Ticks) -> Vec<Entry> {
    let mut out = Vec::new();
    let (mut duration, mut gap, mut init) = (0u64, false, String::new());
    for line in text.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = u.trim_end_matches('"').to_string();
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            let secs: f64 = d.trim_end_matches(',').parse().unwrap_or(0.0);
            duration = (secs * ticks.second as f64).round() as u64;
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let start = line
                .strip_suffix(".m4s")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("segment URI {line:?} is not <ticks>.m4s"));
            out.push(Entry {
                start,
                duration,
                gap,
                uri: line.to_string(),
                init: init.clone(),
            });
            gap = false;
        }
    }
    out
}

/// What the failure cost in the playlist: the 1 s slots with no segment of pictures (gap
/// entries and holes), the ticks not covered by pictures (a short segment counts its missing
/// part), and notes for the report.
fn losses(list: &[Entry], ticks: Ticks) -> (u64, u64, Vec<String>) {
    let live: Vec<&Entry> = list.iter().filter(|e| !e.gap).collect();
    let (Some(first), Some(last)) = (live.first(), live.last()) else {
        return (0, 0, Vec::new());
    };
    let slot = |t: u64| (t + ticks.second / 2) / ticks.second;
    let mut notes = Vec::new();
    let mut missing = 0;
    for w in live.windows(2) {
        let between = slot(w[1].start) - slot(w[0].start) - 1;
        if between > 0 {
            notes.push(format!("{between} slot(s) missing after {}", w[0].uri));
        }
        missing += between;
    }
    let span = last.start + last.duration - first.start;
    let covered: u64 = live.iter().map(|e| e.duration).sum();
    for e in &live[..live.len() - 1] {
        if e.duration + ticks.frame <= ticks.second {
            notes.push(format!("short {} ({} ticks)", e.uri, e.duration));
        }
    }
    (missing, span.saturating_sub(covered), notes)
}

/// Pictures ffprobe decodes from init + segment.
fn decoded_frames(dir: &Path, init: &[u8], segment: &[u8], name: &str) -> Option<u64> {
    let path = dir.join(name);
    std::fs::write(&path, [init, segment].concat()).ok()?;
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path.to_str()?,
        ],
    );
    assert!(ok, "ffprobe {name}: {err}");
    out.trim().parse().ok()
}

#[test]
fn an_encoder_failure_rebuilds_the_encoders_and_costs_at_most_one_fragment() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (origin, control) = (free_port(), free_port());
    let cfg = config(dir.path(), "box-encfail", origin, control);
    let mut daemon = Daemon::start_with_env(
        &cfg,
        origin,
        dir.path().join("d.log"),
        &[("TWINCAST_FAULT_ENCODER_ERROR_AFTER", FAULT_AFTER)],
    );
    let playlist = daemon.url("/live/180p/index.m3u8");
    wait_for("three segments", Duration::from_secs(20), || {
        (entries(&get_text(&playlist)?, VIDEO).len() >= 3).then_some(())
    });
    assert!(
        status(control).is_some_and(|s| s["input"]["encoder_rebuilds"] == 0),
        "the fault fired before the first segments"
    );

    // The fault fires; the daemon says so and rebuilds.
    wait_for("the encoder rebuild", Duration::from_secs(20), || {
        daemon.log_text().contains("encoders failed").then_some(())
    });
    let failed_at = Instant::now();
    let seq_at_failure = next_seq(control).expect("status after the failure");
    assert!(
        daemon.child.try_wait().ok().flatten().is_none(),
        "the daemon exited on an encoder failure"
    );
    wait_for(
        "fragments after the rebuild",
        Duration::from_secs(20),
        || (next_seq(control)? > seq_at_failure).then_some(()),
    );
    let recovered_after = failed_at.elapsed();
    wait_for(
        "five fragments after the rebuild",
        Duration::from_secs(20),
        || (next_seq(control)? >= seq_at_failure + 5).then_some(()),
    );

    let s = status(control).expect("status");
    assert_eq!(s["input"]["encoder_rebuilds"], 1, "{s}");
    let log = daemon.log_text();
    assert!(
        log.contains("rebuilding them (fed again from the next GOP start)"),
        "{log}"
    );
    assert!(
        log.contains("injected by TWINCAST_FAULT_ENCODER_ERROR_AFTER"),
        "{log}"
    );
    let rebuilt = log
        .lines()
        .find(|l| l.contains("encoders: rebuilt in"))
        .unwrap_or_else(|| panic!("no rebuild line:\n{log}"));
    eprintln!("{rebuilt}");

    // At most one 1 s slot missing around the failure; every segment that is there starts on
    // the grid.
    let text = get_text(&playlist).expect("playlist");
    let list = entries(&text, VIDEO);
    assert!(
        list.iter()
            .all(|e| e.start % SEGMENT_TICKS < 3_000
                || SEGMENT_TICKS - e.start % SEGMENT_TICKS < 3_000),
        "{text}"
    );
    let (missing, lost_ticks, notes) = losses(&list, VIDEO);
    let discontinuities = text.matches("#EXT-X-DISCONTINUITY\n").count();
    eprintln!(
        "encoder failure: {missing} fragment slot(s) missing, {:.3} s without pictures ({notes:?}), \
         {discontinuities} discontinuity tag(s), fragments again {recovered_after:?} after the \
         failure was logged",
        lost_ticks as f64 / 90_000.0
    );
    assert!(missing <= 1, "{missing} fragments lost: {notes:?}\n{text}");
    // At most one fragment plus the part of the one the failure cut short.
    assert!(lost_ticks < 2 * SEGMENT_TICKS, "{notes:?}\n{text}");
    assert!(discontinuities <= 1, "{text}");

    // Audio is rebuilt with the video (its encoder did not fail): the same bound.
    let audio = get_text(&daemon.url("/live/audio/index.m3u8")).expect("audio playlist");
    let (a_missing, a_lost, a_notes) = losses(&entries(&audio, AUDIO), AUDIO);
    eprintln!(
        "audio: {a_missing} slot(s) missing, {:.3} s without sound ({a_notes:?}), {} discontinuity tag(s)",
        a_lost as f64 / AUDIO.second as f64,
        audio.matches("#EXT-X-DISCONTINUITY\n").count()
    );
    assert!(a_missing <= 1, "{a_notes:?}\n{audio}");
    assert!(a_lost < 2 * AUDIO.second, "{a_notes:?}\n{audio}");

    // The segments after the one the failure cut (the new encoders' output) decode whole.
    let live: Vec<&Entry> = list.iter().filter(|e| !e.gap).collect();
    let cut = live[..live.len() - 1]
        .iter()
        .position(|e| e.duration + VIDEO.frame <= VIDEO.second)
        .map_or(0, |i| i + 1);
    let after = &live[cut.max(live.len().saturating_sub(4))..];
    assert!(after.len() >= 2, "{text}");
    for e in after {
        let seg = get_ok(&daemon.url(&format!("/live/180p/{}", e.uri))).expect("segment");
        let init = get_ok(&daemon.url(&format!("/live/180p/{}", e.init))).expect("init");
        let frames = decoded_frames(dir.path(), &init, &seg, &e.uri);
        assert!(
            frames.is_some_and(|n| n >= 29),
            "{}: {frames:?} pictures decoded\n{text}",
            e.uri
        );
    }
    assert!(daemon.stop().is_some_and(|s| s.success()));
}
