//! Double push against real peers on loopback: two nginx-rtmp processes (recording), the
//! in-suite HTTP ingest receiver (Smooth, CMAF), a stalling TCP proxy and a TLS proxy.
//! Faults: SIGKILL + restart of a peer, a receiver stopped and restarted, a proxy that stops
//! forwarding. Every check reads what the peers recorded.

mod common;
mod peers;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use peers::*;

/// The renditions of `common::small_config` and their sizes.
const RENDITIONS: [(&str, u32, u32); 2] = [("240p", 426, 240), ("180p", 320, 180)];
/// One frame at 30 fps, in ms, rounded up (FLV timestamps are whole ms).
const FRAME_MS: i64 = 34;
const KEY: &str = "s3cretKEY";
const PASSWORD: &str = "pa55word";

fn config_with(dir: &Path, name: &str, origin: u16, control: u16, outputs: &str) -> PathBuf {
    let path = small_config(dir, name, origin, control);
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(outputs);
    std::fs::write(&path, text).expect("config");
    path
}

fn key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("stream.key");
    std::fs::write(&p, format!("?key={KEY}\n")).expect("key");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn rtmp_output(name: &str, primary: u16, secondary: u16, key: &Path, scheme_host: &str) -> String {
    format!(
        "\n[[output]]\nname = \"{name}\"\nprotocol = \"rtmp\"\nprimary = \"{scheme_host}:{primary}/live\"\nsecondary = \"rtmp://127.0.0.1:{secondary}/live\"\nstream = \"cam\"\nkey_file = \"{}\"\n",
        key.display()
    )
}

/// Largest gap between consecutive timestamps.
fn max_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

fn assert_no_secret(d: &Daemon) {
    let log = d.log_text();
    assert!(
        !log.contains(KEY),
        "the stream key leaked into the log:\n{log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "a password leaked into the log:\n{log}"
    );
}

/// Segment numbers listed by the origin's media playlist of `track` are contiguous.
fn assert_origin_contiguous(d: &Daemon, track: &str) {
    let text = get_text(&d.url(&format!("/live/{track}/index.m3u8"))).expect("playlist");
    let numbers: Vec<u64> = playlist_segments(&text)
        .iter()
        .filter_map(|u| {
            let digits: String = u
                .chars()
                .rev()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.chars().rev().collect::<String>().parse().ok()
        })
        .collect();
    assert!(numbers.len() >= 3, "origin lists too few segments: {text}");
    let step = numbers[1] - numbers[0];
    for w in numbers.windows(2) {
        assert_eq!(
            w[1] - w[0],
            step,
            "a segment is missing from the origin: {text}"
        );
    }
    if text.contains("#EXT-X-GAP") {
        eprintln!("note: the origin marks a gap (capture, not publishing):\n{text}");
    }
}

/// Waits until every rendition has a recording on `peer` with at least `bytes` bytes.
fn wait_recordings(peer: &Nginx, bytes: u64, timeout: Duration) {
    wait_for("recordings of every rendition", timeout, || {
        RENDITIONS
            .iter()
            .all(|(r, _, _)| {
                peer.recordings(&format!("cam_{r}"))
                    .last()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .is_some_and(|m| m.len() >= bytes)
            })
            .then_some(())
    });
}

#[test]
fn rtmp_double_push_survives_a_primary_kill() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (p1, p2) = (free_port(), free_port());
    let mut primary = Nginx::start(&dir.path().join("a"), p1);
    let secondary = Nginx::start(&dir.path().join("b"), p2);
    let key = key_file(dir.path());
    let (origin, control) = (free_port(), free_port());
    let cfg = config_with(
        dir.path(),
        "rtmp",
        origin,
        control,
        &rtmp_output("cloud", p1, p2, &key, "rtmp://127.0.0.1"),
    );
    let mut d = Daemon::start(&cfg, origin, dir.path().join("daemon.log"));

    wait_recordings(&primary, 50_000, Duration::from_secs(45));
    wait_recordings(&secondary, 50_000, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));

    // Outage: SIGKILL, 10 s down, restart.
    let before: Vec<usize> = RENDITIONS
        .iter()
        .map(|(r, _, _)| primary.recordings(&format!("cam_{r}")).len())
        .collect();
    primary.kill();
    std::thread::sleep(Duration::from_secs(10));
    primary.restart();
    let back = Instant::now();
    let mut resume = Vec::new();
    for ((r, _, _), n) in RENDITIONS.iter().zip(&before) {
        let ok = wait_until(Duration::from_secs(15), || {
            primary.recordings(&format!("cam_{r}")).len() > *n
        });
        assert!(ok, "{r}: no new publish on the primary after its restart");
        resume.push(back.elapsed());
    }
    eprintln!("resume after restart: {resume:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_origin_contiguous(&d, "240p");
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon exit: {status:?}"
    );
    primary.kill();
    drop(secondary);

    for (r, w, h) in RENDITIONS {
        let stream = format!("cam_{r}");
        let sec = peers_files(&dir.path().join("b"), &stream);
        assert_eq!(sec.len(), 1, "{r}: one unbroken publish on the secondary");
        let facts = probe_flv(&sec[0]);
        assert_eq!(
            (facts.video_codec.as_str(), facts.width, facts.height),
            ("h264", w, h)
        );
        assert_eq!(
            facts.audio_codec, "aac",
            "{r}: audio travels in every rendition"
        );
        assert!(decodes(&sec[0]), "{r}: secondary recording decodes");
        assert!(
            facts.video_ms.len() > 300,
            "{r}: {} frames",
            facts.video_ms.len()
        );
        assert!(
            max_gap(&facts.video_ms) <= FRAME_MS,
            "{r}: hole of {} ms on the secondary",
            max_gap(&facts.video_ms)
        );
        let prim = peers_files(&dir.path().join("a"), &stream);
        assert!(prim.len() >= 2, "{r}: a new publish after the outage");
        let covered = align_on(&facts, &prim, w, h, r);
        // No hole: every frame of the secondary between the primary's first and last frame
        // is somewhere in the primary's recordings.
        let first = *covered.iter().next().expect("covered");
        let last = *covered.iter().next_back().expect("covered");
        let missing: Vec<usize> = (first..=last).filter(|i| !covered.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "{r}: the primary misses {} frame(s) across the outage (first at {:?})",
            missing.len(),
            missing.first()
        );
        assert!(
            last - first + 1 >= facts.video_ms.len() - 200,
            "{r}: the primary covers too little ({first}..={last} of {})",
            facts.video_ms.len()
        );
    }
    for t in &resume {
        assert!(*t < Duration::from_millis(2500), "resume took {t:?}");
    }
    assert_no_secret(&d);
}

fn peers_files(dir: &Path, stream: &str) -> Vec<PathBuf> {
    recordings_in(&dir.join("records"), stream)
}

/// Aligns each primary recording on the secondary's by frame sizes (nginx-rtmp writes every
/// recording zero-based from its first frame, so absolute times are not in the files) and
/// checks that both carry the same frames with the same timestamps. Returns the secondary
/// frame indexes the primary's recordings cover.
fn align_on(sec: &FlvFacts, prim: &[PathBuf], w: u32, h: u32, r: &str) -> BTreeSet<usize> {
    let mut covered = BTreeSet::new();
    for f in prim {
        let p = probe_flv(f);
        assert_eq!((p.width, p.height), (w, h), "{r}: size on the primary");
        if p.video_size.len() < 30 {
            continue; // a publish cut short by the kill
        }
        let k = 30;
        let j = (0..sec.video_size.len().saturating_sub(k))
            .find(|&j| sec.video_size[j..j + k] == p.video_size[..k])
            .unwrap_or_else(|| panic!("{r}: {} matches nothing on the secondary", f.display()));
        for (m, (ts, size)) in p.video_ms.iter().zip(&p.video_size).enumerate() {
            let Some(s_size) = sec.video_size.get(j + m) else {
                break; // the primary ran a little longer than the secondary
            };
            assert_eq!(size, s_size, "{r}: frame {m} of {} differs", f.display());
            assert_eq!(
                ts - p.video_ms[0],
                sec.video_ms[j + m] - sec.video_ms[j],
                "{r}: timestamps differ at frame {m} of {}",
                f.display()
            );
            covered.insert(j + m);
        }
    }
    covered
}
