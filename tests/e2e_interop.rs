//! The interop matrix (issue #10, part 7): the daemon pushes to real ingest servers with
//! their **default** settings, on loopback. Each cell runs steady with zero reconnects, then
//! the peer is killed for 10 s, then stalled for 10 s (a userspace TCP proxy that stops
//! reading and forwarding: this kernel has no netem), and the recording must have everything
//! (contiguous timestamps, decoded by ffmpeg).
//!
//! Budget (CI has two cores shared with other jobs): the nginx-rtmp default cell runs the
//! shipped three-rung ladder for 60 s (that is where the false stalls showed: nginx's default
//! acknowledgement window is 5 MB); the other cells use one 320x180 rendition + audio.

mod common;
mod peers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use peers::*;

/// One frame at 30 fps, in ms, rounded up (FLV timestamps are whole ms).
const FRAME_MS: i64 = 34;

/// `publish …: backoff` lines: one per reconnect.
fn reconnects(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains("publish ") && l.contains(": backoff"))
        .map(str::to_string)
        .collect()
}

/// The shipped configuration (three renditions, 1280x720 test pattern) plus `outputs`.
fn shipped_with(dir: &Path, origin: u16, control: u16, outputs: &str) -> PathBuf {
    let path = config_from_shipped(dir, "shipped.toml", origin, control, &[]);
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(outputs);
    std::fs::write(&path, text).expect("config");
    path
}

fn max_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Every publish of `stream` on `peer` so far, probed.
fn recorded(records: &Path, stream: &str) -> Vec<(PathBuf, FlvFacts)> {
    recordings_in(records, stream)
        .into_iter()
        .map(|p| {
            let f = probe_flv(&p);
            (p, f)
        })
        .collect()
}

/// nginx-rtmp with its default configuration, the shipped ladder, double push, 60 s: one
/// publish per rendition on each server, no reconnect, no hole.
#[test]
fn nginx_default_config_shipped_ladder_60s_without_a_reconnect() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (free_port(), free_port());
    let a = Nginx::start_default(&dir.path().join("a"), pa);
    let b = Nginx::start_default(&dir.path().join("b"), pb);
    let (origin, control) = (free_port(), free_port());
    let cfg = shipped_with(
        dir.path(),
        origin,
        control,
        &format!(
            "\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:{pa}/live\"\nsecondary = \"rtmp://127.0.0.1:{pb}/live\"\nstream = \"cam\"\n"
        ),
    );
    let mut d = Daemon::start(&cfg, origin, dir.path().join("daemon.log"));
    let renditions = ["720p", "480p", "360p"];
    wait_for(
        "a publish of every rendition on both",
        Duration::from_secs(60),
        || {
            renditions
                .iter()
                .all(|r| {
                    [&a, &b].iter().all(|n| {
                        n.recordings(&format!("cam_{r}"))
                            .last()
                            .and_then(|p| std::fs::metadata(p).ok())
                            .is_some_and(|m| m.len() > 100_000)
                    })
                })
                .then_some(())
        },
    );
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(60) {
        let r = reconnects(&d);
        assert!(
            r.is_empty(),
            "reconnects against nginx defaults:\n{}",
            r.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon exit: {status:?}"
    );
    drop((a, b));
    let r = reconnects(&d);
    assert!(
        r.is_empty(),
        "reconnects against nginx defaults:\n{}",
        r.join("\n")
    );
    for side in ["a", "b"] {
        for r in renditions {
            let recs = recorded(&dir.path().join(side).join("records"), &format!("cam_{r}"));
            assert_eq!(
                recs.len(),
                1,
                "{side} {r}: publishes {:?}",
                recs.iter().map(|x| &x.0).collect::<Vec<_>>()
            );
            let (path, f) = &recs[0];
            assert_eq!(f.video_codec, "h264");
            assert_eq!(f.audio_codec, "aac");
            assert!(
                f.video_ms.len() >= 60 * 30,
                "{side} {r}: {} frames",
                f.video_ms.len()
            );
            assert!(
                max_gap(&f.video_ms) <= FRAME_MS,
                "{side} {r}: hole of {} ms",
                max_gap(&f.video_ms)
            );
            assert!(decodes(path), "{side} {r}: the recording decodes");
        }
    }
}
