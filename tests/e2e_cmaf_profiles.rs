//! CMAF ingest receiver profiles end to end (docs/guide/publishing.md, *CMAF ingest receiver
//! profiles*): the real daemon with one 320x180 rendition plus audio pushes two `cmaf` outputs,
//! `elemental-inference` and `unified`, to the suite's HTTP ingest receiver, which goes away
//! for a few seconds in the middle. What the receiver recorded is read with the suite's own
//! box parser (tests/common): every connection opens with the CMAF header at the profile's
//! header path, every segment sits at the profile's segment path, for Elemental Inference
//! `Segment(<n>)` with n the segment's own `mfhd` sequence number, and the fragments are
//! contiguous (`mfhd` +1, `tfdt` without a gap) across the outage.

mod common;
#[path = "peers/fmp4.rs"]
mod fmp4;
mod peers;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use fmp4::*;
use peers::*;

/// Elemental Inference's fixed stream names (one video, one audio).
const EI_VIDEO: &str = "/ei/Streams(default-video.cmfv)";
const EI_AUDIO: &str = "/ei/Streams(default-audio.cmfa)";
/// Unified Origin: `Streams(<track>.<cmfv|cmfa>)` under the `.isml` publishing point.
const UO_VIDEO: &str = "/uo/ch1/ch1.isml/Streams(180p.cmfv)";
const UO_AUDIO: &str = "/uo/ch1/ch1.isml/Streams(audio.cmfa)";

/// Complete segment requests (not headers) whose path starts with `prefix`.
fn segments(rx: &Receiver, prefix: &str) -> usize {
    rx.requests()
        .iter()
        .filter(|r| r.complete && r.path.starts_with(prefix) && r.body.get(4..8) == Some(b"styp"))
        .count()
}

/// Checks the Elemental Inference track under `prefix`: the header at
/// `<prefix>/InitializationSegment` first on every connection, each segment at
/// `<prefix>/Segment(<its mfhd>)`. Returns the fragments.
fn check_elemental(reqs: &[Request], prefix: &str, video: bool) -> Vec<Frag> {
    let header = format!("{prefix}/InitializationSegment");
    let mut conns = BTreeSet::new();
    let mut all = Vec::new();
    let mine: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.complete && r.path.starts_with(prefix))
        .collect();
    assert!(!mine.is_empty(), "{prefix}: nothing received");
    for r in mine {
        assert_eq!(r.method, "POST", "{}", r.path);
        let first = whole_boxes(&r.body).first().map(|(k, _)| *k);
        if conns.insert(r.conn) {
            assert_eq!(
                r.path, header,
                "{prefix}: a connection opens with the CMAF header at its path"
            );
        }
        if r.path == header {
            assert_eq!(first, Some(*b"ftyp"), "{header}: the body is a CMAF header");
            continue;
        }
        assert_eq!(first, Some(*b"styp"), "{}: the body is a segment", r.path);
        let frags = frags_of(&r.body, video);
        assert_eq!(frags.len(), 1, "{}: one moof per segment", r.path);
        assert_eq!(
            r.path,
            format!("{prefix}/Segment({})", frags[0].seq),
            "the segment's path names its own mfhd sequence number"
        );
        all.extend(frags);
    }
    all
}

#[test]
fn elemental_inference_and_unified_paths() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let rx = Receiver::start(port);
    let (origin, control) = (free_port(), free_port());
    let cfg = small_config(dir.path(), "profiles", origin, control);
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&format!(
        r#"
[[output]]
name = "ei"
protocol = "cmaf"
profile = "elemental-inference"
primary = "http://127.0.0.1:{port}/ei"
renditions = ["180p"]

[[output]]
name = "uo"
protocol = "cmaf"
profile = "unified"
primary = "http://127.0.0.1:{port}/uo/ch1/ch1.isml"
renditions = ["180p"]
"#
    ));
    std::fs::write(&cfg, text).expect("config");
    let (ok, out, err) = run(
        env!("CARGO_BIN_EXE_twincast"),
        &["check-config", &cfg.display().to_string()],
    );
    assert!(ok, "check-config: {out}{err}");
    assert!(!err.contains("warning"), "no warning expected: {err}");

    let mut d = Daemon::start(&cfg, origin, dir.path().join("daemon.log"));
    let prefixes = [EI_VIDEO, EI_AUDIO, UO_VIDEO, UO_AUDIO];
    let enough = |n: usize| prefixes.iter().all(|p| segments(&rx, p) >= n);
    wait_for("6 segments per track", Duration::from_secs(60), || {
        enough(6).then_some(())
    });

    // The receiver goes away (every connection closed) for a few seconds, then comes back:
    // the header again at its path, then exactly the segments without a 2xx.
    rx.stop();
    let before: Vec<usize> = prefixes.iter().map(|p| segments(&rx, p)).collect();
    std::thread::sleep(Duration::from_secs(3));
    rx.restart();
    wait_for(
        "segments after the restart",
        Duration::from_secs(30),
        || {
            prefixes
                .iter()
                .zip(&before)
                .all(|(p, n)| segments(&rx, p) >= n + 6)
                .then_some(())
        },
    );
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon exit: {status:?}"
    );

    let reqs = rx.requests();
    // Nothing went anywhere else (no other rendition, no generic `Streams(180p)`).
    for r in &reqs {
        assert!(
            prefixes.iter().any(|p| r.path.starts_with(p)),
            "unexpected path {}",
            r.path
        );
    }
    for (prefix, video) in [(EI_VIDEO, true), (EI_AUDIO, false)] {
        let frags = check_elemental(&reqs, prefix, video);
        assert_contiguous(&frags, prefix);
        let unique: BTreeSet<u32> = frags.iter().map(|f| f.seq).collect();
        let dups = frags.len() - unique.len();
        assert!(
            dups <= 1,
            "{prefix}: {dups} acknowledged segments sent again"
        );
        let last = reqs
            .iter()
            .rfind(|r| r.complete && r.path.starts_with(prefix));
        let styp_has_lmsg = |r: &Request| {
            whole_boxes(&r.body)
                .first()
                .is_some_and(|(k, b)| k == b"styp" && b.windows(4).any(|w| w == b"lmsg"))
        };
        assert!(
            last.is_some_and(styp_has_lmsg),
            "{prefix}: the last segment carries lmsg"
        );
        eprintln!(
            "{prefix}: {} segments, mfhd {}..={}",
            frags.len(),
            frags.iter().map(|f| f.seq).min().unwrap_or(0),
            frags.iter().map(|f| f.seq).max().unwrap_or(0)
        );
    }
    for (prefix, track, video) in [(UO_VIDEO, "180p", true), (UO_AUDIO, "audio", false)] {
        let mine: Vec<&Request> = reqs.iter().filter(|r| r.path == prefix).collect();
        let (frags, dups, lmsg) = check_cmaf(&mine, track, video);
        assert_contiguous(&frags, prefix);
        assert!(
            dups <= 1,
            "{prefix}: {dups} acknowledged segments sent again"
        );
        assert!(lmsg, "{prefix}: the last segment carries lmsg");
        eprintln!("{prefix}: {} segments", frags.len());
    }
}
