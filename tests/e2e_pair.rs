//! End-to-end: the pair (issue #9 acceptance; docs/design/timeline.md, *The pair*). Two daemons on
//! one machine receive the same MPEG-TS feed from ffmpeg (default settings, a marked picture: the
//! mean luma of frame N is N·37 mod 256, so a picture one frame off differs by 37); box B's copy
//! goes through a relay that adds 0–15 ms of jitter, and B starts a random 0.3–3 s after A. For
//! every segment timestamp both origins serve, the decoded pictures must be the same pictures.
//!
//! The encoders of the two boxes run independently (rate control has a different history), so
//! the decoded bytes may differ by coding noise; the per-frame mean luma (signalstats YAVG)
//! tells pictures apart by 37 levels and coding noise moves it by well under one.
//!
//! In CI this runs three pairs: RTP with ffmpeg's sender reports, plain MPEG-TS over UDP (no
//! sender clock), RTP again. `scripts/pair-soak N` runs N pairs and prints how many agreed;
//! `TWINCAST_PAIR_RUNS` and `TWINCAST_PAIR_FEED` (`udp`, `rtp`, `rtp-no-rtcp`: RTP whose sender
//! reports are lost on the way, 12 s longer to anchor) choose the runs.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Fragments both boxes must cut on the live feed before the comparison.
const LIVE_FRAGMENTS: u64 = 7;
/// Segments that must be compared (both live) for a run to count.
const MIN_COMPARED: usize = 4;
/// Mean-luma difference that still is the same picture (one frame off is 37).
const SAME_PICTURE: f64 = 4.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// MPEG-TS over RTP with RTCP sender reports (ffmpeg `rtp_mpegts`).
    Rtp,
    /// The same, with the sender reports lost on the way (the relay carries only RTP).
    RtpNoRtcp,
    /// Plain MPEG-TS over UDP (ffmpeg `mpegts`), no sender wall clock.
    Udp,
}

fn config(dir: &Path, name: &str, origin: u16, control: u16, feed: Feed, port: u16) -> String {
    let (kind, uri) = match feed {
        Feed::Rtp | Feed::RtpNoRtcp => ("rtp", format!("rtp://127.0.0.1:{port}")),
        Feed::Udp => ("udp", format!("udp://127.0.0.1:{port}")),
    };
    let dvr_dir = dir.join(format!("dvr-{name}")).display().to_string();
    let text = format!(
        r#"
[encoder]
name = "{name}"
pair = "pair-test"

[input]
kind = "{kind}"
uri = "{uri}"
audio = "none"
width = 320
height = 180
framerate = "30/1"
slate_after = "500ms"

[timeline]
gop = "1s"

[[rendition]]
name = "180p"
width = 320
height = 180
bitrate_kbps = 250

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
    path.display().to_string()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg with its defaults (x264 preset medium, B-frames), the marked picture, a 1 s GOP,
/// paced in real time, until killed.
fn sender(feed: Feed, port: u16) -> Killed {
    let (format, url) = match feed {
        Feed::Rtp | Feed::RtpNoRtcp => ("rtp_mpegts", format!("rtp://127.0.0.1:{port}")),
        Feed::Udp => ("mpegts", format!("udp://127.0.0.1:{port}?pkt_size=1316")),
    };
    Killed(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i"])
            .arg("color=c=black:s=320x180:r=30,geq=lum='mod(N*37\\,256)':cb=128:cr=128")
            .args(["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-an"])
            .args(["-f", format, &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg (run scripts/install-deps)"),
    )
}

struct Node {
    daemon: Daemon,
    control: u16,
}

impl Node {
    fn start(dir: &Path, name: &str, feed: Feed, port: u16) -> Node {
        let (origin, control) = (free_port(), free_port());
        let cfg = config(dir, name, origin, control, feed, port);
        let daemon = Daemon::start(Path::new(&cfg), origin, dir.join(format!("{name}.log")));
        Node { daemon, control }
    }

    fn status(&self) -> Option<serde_json::Value> {
        get_json(&format!("http://127.0.0.1:{}/status", self.control))
    }

    fn next_sequence(&self) -> Option<u64> {
        self.status()?["tracks"][0]["next_sequence"].as_u64()
    }

    fn live(&self) -> bool {
        self.status().is_some_and(|s| s["input"]["state"] == "live")
    }

    fn segments(&self) -> Vec<String> {
        get_text(&self.daemon.url("/live/180p/index.m3u8"))
            .map(|t| playlist_segments(&t))
            .unwrap_or_default()
    }
}

/// What one pair run found.
struct Outcome {
    compared: usize,
    mismatches: Vec<String>,
    timing: (String, String),
}

fn pair_run(feed: Feed, rng: &mut Rng) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, relay_port) = (free_udp_pair(), free_udp_pair(), free_udp_pair());
    let a = Node::start(dir.path(), "box-a", feed, pa);
    let _relay = JitterRelay::start(
        relay_port,
        pa,
        pb,
        rng.next(),
        feed == Feed::Udp,
        feed == Feed::Rtp,
    );
    let _ff = sender(feed, relay_port);
    // B starts at a random instant (the scenario, not a wait for a condition).
    let offset = Duration::from_millis(300 + rng.next() % 2700);
    std::thread::sleep(offset);
    let b = Node::start(dir.path(), "box-b", feed, pb);
    for (name, bx) in [("A", &a), ("B", &b)] {
        wait_for(&format!("box {name} live"), Duration::from_secs(60), || {
            bx.live().then_some(())
        });
    }
    // next_sequence counts from the epoch once the first fragment is cut.
    let seq_b = wait_for("B's first fragment", Duration::from_secs(20), || {
        b.next_sequence().filter(|s| *s > 0)
    });
    wait_for("live fragments on both", Duration::from_secs(40), || {
        b.next_sequence()
            .is_some_and(|s| s >= seq_b + LIVE_FRAGMENTS)
            .then_some(())
    });
    let (sa, sb) = (a.status().expect("A status"), b.status().expect("B status"));
    let timing = (
        sa["input"]["timing"].as_str().unwrap_or("?").to_string(),
        sb["input"]["timing"].as_str().unwrap_or("?").to_string(),
    );
    eprintln!(
        "{feed:?}: B {} ms after A; timing A {} B {}; A late {} feed latency {} ms counters {}; B late {} feed latency {} ms counters {}",
        offset.as_millis(),
        timing.0,
        timing.1,
        sa["input"]["frames_late"],
        sa["input"]["feed_latency_ms"],
        sa["input"]["counters"],
        sb["input"]["frames_late"],
        sb["input"]["feed_latency_ms"],
        sb["input"]["counters"],
    );
    // Pictures late for the grid after the start (the first second of each box): the grid
    // clock's latency covers PTS timing's 0–1 s lag (src/input/timing.rs).
    let late = |s: &serde_json::Value| s["input"]["frames_late"].as_u64().unwrap_or(0);
    let (late_a, late_b) = (late(&sa), late(&sb));
    wait_for("one more live fragment", Duration::from_secs(10), || {
        b.next_sequence()
            .is_some_and(|s| s > seq_b + LIVE_FRAGMENTS)
            .then_some(())
    });
    let (la, lb) = (
        a.status().map_or(0, |s| late(&s)),
        b.status().map_or(0, |s| late(&s)),
    );
    eprintln!(
        "late pictures during the last fragment: A {} B {}",
        la - late_a,
        lb - late_b
    );

    let init = |bx: &Node| get_ok(&bx.daemon.url("/live/180p/init.mp4")).expect("init segment");
    let (init_a, init_b) = (init(&a), init(&b));
    let on_a = a.segments();
    let on_b = b.segments();
    // The first live segment of each box may start on a held or slate picture: not compared.
    let mut first_live_seen = [false, false];
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for uri in on_b.iter().filter(|u| on_a.contains(u)) {
        let get = |bx: &Node| get_ok(&bx.daemon.url(&format!("/live/180p/{uri}")));
        let (Some(seg_a), Some(seg_b)) = (get(&a), get(&b)) else {
            continue;
        };
        let slate = [has_slate_brand(&seg_a), has_slate_brand(&seg_b)];
        let mut skip = slate[0] || slate[1];
        for i in 0..2 {
            if !slate[i] && !first_live_seen[i] {
                first_live_seen[i] = true;
                skip = true;
            }
        }
        if skip {
            continue;
        }
        let fa = frame_lumas(dir.path(), &init_a, &seg_a);
        let fb = frame_lumas(dir.path(), &init_b, &seg_b);
        compared += 1;
        if fa.len() != fb.len() || fa.is_empty() {
            mismatches.push(format!(
                "{uri}: {} frames on A, {} on B",
                fa.len(),
                fb.len()
            ));
            continue;
        }
        if let Some((x, y)) = fa
            .iter()
            .zip(&fb)
            .find(|(x, y)| (x.0 - y.0).abs() > 0.001 || (x.1 - y.1).abs() > SAME_PICTURE)
        {
            mismatches.push(format!(
                "{uri}: at {:.3} s box A has mean luma {:.1}, box B at {:.3} s {:.1}",
                x.0, x.1, y.0, y.1
            ));
        }
    }
    assert!(a.daemon.log_text().len() < 1 << 20, "A logs too much");
    Outcome {
        compared,
        mismatches,
        timing,
    }
}

/// The runs: `TWINCAST_PAIR_RUNS` (default 3) of `TWINCAST_PAIR_FEED` (`udp`, `rtp`,
/// `rtp-no-rtcp`; default: RTP with sender reports and plain UDP in turn).
fn runs_wanted() -> Vec<Feed> {
    let n: usize = std::env::var("TWINCAST_PAIR_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only = std::env::var("TWINCAST_PAIR_FEED").ok();
    (0..n)
        .map(|i| match only.as_deref() {
            Some("udp") => Feed::Udp,
            Some("rtp") => Feed::Rtp,
            Some("rtp-no-rtcp") => Feed::RtpNoRtcp,
            _ if i % 2 == 1 => Feed::Udp,
            _ => Feed::Rtp,
        })
        .collect()
}

#[test]
fn two_daemons_on_one_feed_give_every_common_timestamp_the_same_picture() {
    let _serial = serial();
    let mut rng = Rng::from_clock();
    eprintln!("seed {}", rng.0);
    let runs = runs_wanted();
    let mut agreed = 0;
    let mut failures = Vec::new();
    for (i, feed) in runs.iter().enumerate() {
        let out = pair_run(*feed, &mut rng);
        eprintln!(
            "pair run {}: {feed:?}, {} segments compared, {} differ",
            i + 1,
            out.compared,
            out.mismatches.len()
        );
        if out.compared >= MIN_COMPARED && out.mismatches.is_empty() && out.timing.0 == out.timing.1
        {
            agreed += 1;
        } else {
            failures.push(format!(
                "run {} ({feed:?}, timing {:?}, {} compared): {:?}",
                i + 1,
                out.timing,
                out.compared,
                out.mismatches
            ));
        }
    }
    eprintln!("pair: {agreed} of {} runs agreed", runs.len());
    assert!(failures.is_empty(), "{failures:#?}");
}
