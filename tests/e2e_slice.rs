//! End-to-end: the daemon with real GStreamer encoders, read back over HTTP and checked with
//! ffmpeg/ffprobe and an independent box parser. Daemons run one at a time.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Waits until every media playlist lists at least `n` segments; returns the playlists.
fn wait_segments(
    d: &Daemon,
    tracks: &[&str],
    n: usize,
    timeout: Duration,
) -> BTreeMap<String, String> {
    wait_for(&format!("{n} segments in every playlist"), timeout, || {
        let mut all = BTreeMap::new();
        for t in tracks {
            let text = get_text(&d.url(&format!("/live/{t}/index.m3u8")))?;
            if playlist_segments(&text).len() < n {
                return None;
            }
            all.insert(t.to_string(), text);
        }
        Some(all)
    })
}

/// An H.264 (+ AAC when `audio`) MP4 clip of `secs` seconds from an ffmpeg lavfi source.
fn make_clip(dir: &std::path::Path, video: &str, secs: u32, audio: bool) -> std::path::PathBuf {
    let file = dir.join("clip.mp4");
    let secs = secs.to_string();
    let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", video];
    if audio {
        args.extend([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-c:a",
            "aac",
            "-shortest",
        ]);
    }
    args.extend([
        "-t",
        &secs,
        "-c:v",
        "libx264",
        "-g",
        "25",
        file.to_str().unwrap(),
    ]);
    let (ok, _, err) = run("ffmpeg", &args);
    assert!(ok, "ffmpeg could not make the clip: {err}");
    file
}

/// init + segment bytes of one track's segment.
fn fetch_segment(d: &Daemon, track: &str, uri: &str) -> Vec<u8> {
    get_ok(&d.url(&format!("/live/{track}/{uri}"))).unwrap_or_else(|| panic!("GET {track}/{uri}"))
}

#[test]
fn shipped_config_serves_an_epoch_locked_ladder() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (op, cp) = (free_port(), free_port());
    let config = config_from_shipped(dir.path(), "shipped.toml", op, cp, &[]);
    let d = Daemon::start(&config, op, dir.path().join("daemon.log"));

    // The master playlist within 10 s of start.
    let master = wait_for("master playlist", Duration::from_secs(10), || {
        get_text(&d.url("/live/master.m3u8"))
    });
    for r in [
        "720p/index.m3u8",
        "480p/index.m3u8",
        "360p/index.m3u8",
        "RESOLUTION=1280x720",
        "CODECS=\"avc1.",
    ] {
        assert!(master.contains(r), "master lacks {r}:\n{master}");
    }
    assert!(master.contains("TYPE=AUDIO"), "no audio group:\n{master}");

    let tracks = ["720p", "480p", "360p", "audio"];
    let playlists = wait_segments(&d, &tracks, 2, Duration::from_secs(40));

    // ffmpeg reads the whole ladder through HLS for 10 s without an error.
    let url = d.url("/live/master.m3u8");
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v", "error", "-i", &url, "-map", "0", "-t", "10", "-f", "null", "-",
        ],
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg failed on the HLS ladder: {err}\n{}",
        d.log_text()
    );

    // Each rendition: configured size, bitrate within ±20 %, every fragment starts with an IDR
    // on the 2 s epoch grid, and all renditions agree on fragment start times.
    let mut starts_by_track: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (track, (w, h, kbps)) in [
        ("720p", (1280, 720, 3000)),
        ("480p", (854, 480, 1200)),
        ("360p", (640, 360, 600)),
    ] {
        let uris = playlist_segments(&playlists[track]);
        let init = fetch_segment(&d, track, "init.mp4");
        let seg = fetch_segment(&d, track, &uris[0]);
        let path = dir.path().join(format!("{track}.mp4"));
        std::fs::write(&path, [init.as_slice(), seg.as_slice()].concat()).unwrap();
        let p = path.to_str().unwrap();
        let (ok, out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,codec_name",
                "-of",
                "csv=p=0",
                p,
            ],
        );
        assert!(ok && err.is_empty(), "ffprobe {track}: {err}");
        assert_eq!(out.trim(), format!("h264,{w},{h}"), "{track} size");

        let frags = parse_segment(&seg, true);
        assert_eq!(
            frags.len(),
            3,
            "{track}: a 6 s segment holds three 2 s fragments"
        );
        for f in &frags {
            assert_eq!(
                f.tfdt % 180_000,
                0,
                "{track}: fragment at {} is not on the 2 s grid",
                f.tfdt
            );
            assert_eq!(
                u64::from(f.sequence),
                f.tfdt / 180_000 % (1 << 32),
                "{track}: sequence is n from the epoch"
            );
            assert_eq!(f.sample_count, 60, "{track}: 60 frames per 2 s fragment");
            assert!(
                f.durations.iter().all(|d| *d == 3000),
                "{track}: frame durations"
            );
            assert!(f.first_sample_sync, "{track}: first sample not marked sync");
            assert!(
                f.first_sample_nal_types.contains(&5),
                "{track}: first sample has no IDR: {:?}",
                f.first_sample_nal_types
            );
        }
        starts_by_track.insert(track, frags.iter().map(|f| f.tfdt).collect());

        // Bitrate from the media bytes of the window's segments.
        let mut bytes = 0usize;
        let mut secs = 0.0;
        for uri in &uris {
            let seg = fetch_segment(&d, track, uri);
            bytes += seg.len();
            secs += parse_segment(&seg, true)
                .iter()
                .map(|f| f.durations.iter().map(|d| *d as f64).sum::<f64>())
                .sum::<f64>()
                / 90_000.0;
        }
        let measured = bytes as f64 * 8.0 / secs / 1000.0;
        let ratio = measured / f64::from(kbps);
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{track}: {measured:.0} kbps vs {kbps} configured"
        );
    }
    // Same segment names (start times) in every rendition.
    let names: Vec<Vec<String>> = ["720p", "480p", "360p"]
        .iter()
        .map(|t| playlist_segments(&playlists[*t]))
        .collect();
    let first = names[0][0].clone();
    assert!(
        names.iter().all(|n| n.contains(&first)),
        "renditions disagree on segment names: {names:?}"
    );

    // Audio fragments follow the formula: fragment n starts at AAC frame ceil(n·2 s·48000/1024).
    let uris = playlist_segments(&playlists["audio"]);
    let seg = fetch_segment(&d, "audio", &uris[0]);
    for f in parse_segment(&seg, false) {
        let n = u64::from(f.sequence);
        let j_n = (n * 2 * 48_000).div_ceil(1024);
        let j_next = ((n + 1) * 2 * 48_000).div_ceil(1024);
        assert_eq!(f.tfdt, j_n * 1024, "audio fragment {n} start");
        assert_eq!(
            u64::from(f.sample_count),
            j_next - j_n,
            "audio fragment {n} frame count"
        );
        assert!(f.durations.iter().all(|d| *d == 1024));
    }

    let mut d = d;
    let status = d.stop().expect("daemon exits");
    assert!(status.success(), "exit status {status:?}\n{}", d.log_text());
}

#[test]
fn two_daemons_started_apart_cut_identical_segments() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (op_a, cp_a, op_b, cp_b) = (free_port(), free_port(), free_port(), free_port());
    let config_a = small_config(dir.path(), "box-a", op_a, cp_a);
    let a = Daemon::start(&config_a, op_a, dir.path().join("a.log"));
    std::thread::sleep(Duration::from_millis(1700)); // started "a second or more apart"
    let config_b = small_config(dir.path(), "box-b", op_b, cp_b);
    let b = Daemon::start(&config_b, op_b, dir.path().join("b.log"));

    let tracks = ["240p", "180p", "audio"];
    let pa = wait_segments(&a, &tracks, 3, Duration::from_secs(40));
    let pb = wait_segments(&b, &tracks, 3, Duration::from_secs(40));
    let mut compared = 0;
    for t in tracks {
        let sa = playlist_segments(&pa[t]);
        let sb = playlist_segments(&pb[t]);
        let common: Vec<&String> = sa.iter().filter(|s| sb.contains(s)).collect();
        assert!(
            common.len() >= 2,
            "{t}: boxes share too few segment names: {sa:?} vs {sb:?}"
        );
        // The same segment has the same media sequence number in both playlists.
        let msn_a = media_sequence(&pa[t]).unwrap()
            + sa.iter().position(|s| s == common[0]).unwrap() as u64;
        let msn_b = media_sequence(&pb[t]).unwrap()
            + sb.iter().position(|s| s == common[0]).unwrap() as u64;
        assert_eq!(msn_a, msn_b, "{t}: media sequence of {}", common[0]);
        for uri in common {
            let fa = parse_segment(&fetch_segment(&a, t, uri), t != "audio");
            let fb = parse_segment(&fetch_segment(&b, t, uri), t != "audio");
            let strip = |v: Vec<FragmentFacts>| -> Vec<(u32, u64, u32, Vec<u32>)> {
                v.into_iter()
                    .map(|f| (f.sequence, f.tfdt, f.sample_count, f.durations))
                    .collect()
            };
            assert_eq!(strip(fa), strip(fb), "{t}/{uri} differs between the boxes");
            compared += 1;
        }
    }
    assert!(compared >= 6, "compared only {compared} segments");
}

#[test]
fn file_input_loops_with_its_own_audio() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = make_clip(dir.path(), "testsrc2=size=640x360:rate=25", 4, true);
    let f = file.to_str().unwrap();
    let (op, cp) = (free_port(), free_port());
    let input = format!("kind = \"file\"\nuri = \"{f}\"\naudio = \"input\"");
    let config = small_config_with_input(dir.path(), "file", op, cp, &input);
    let d = Daemon::start(&config, op, dir.path().join("file.log"));
    // The first segment may be short: the file's audio starts up with the decoder, and the
    // timeline re-anchors once. After it, 4 segments of 3 s (the 4 s clip loops at least twice)
    // must follow each other with no discontinuity and no hole.
    let playlists = wait_segments(&d, &["240p", "audio"], 5, Duration::from_secs(75));
    for (track, text) in &playlists {
        let uris = playlist_segments(text);
        let after_first = text
            .split_once(uris[0].as_str())
            .map(|(_, rest)| rest)
            .unwrap_or("");
        assert!(
            !after_first
                .lines()
                .any(|l| l == "#EXT-X-DISCONTINUITY" || l.starts_with("#EXT-X-GAP")),
            "{track}: the loop broke the timeline:\n{text}"
        );
        let video = track != "audio";
        let mut expected_start = None;
        for uri in &uris[1..] {
            for f in parse_segment(&fetch_segment(&d, track, uri), video) {
                if let Some(start) = expected_start {
                    assert_eq!(
                        f.tfdt, start,
                        "{track}: hole before fragment {}",
                        f.sequence
                    );
                }
                expected_start =
                    Some(f.tfdt + f.durations.iter().map(|d| u64::from(*d)).sum::<u64>());
            }
        }
    }
    let url = d.url("/live/master.m3u8");
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v", "error", "-i", &url, "-map", "0", "-t", "4", "-f", "null", "-",
        ],
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg on the looped file: {err}\n{}",
        d.log_text()
    );
}

#[test]
fn sighup_with_a_new_source_rebuilds_capture_on_the_same_grid() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = make_clip(dir.path(), "testsrc2=size=640x360:rate=30", 3, false);
    let f = file.to_str().unwrap();
    let (op, cp) = (free_port(), free_port());
    let config = small_config(dir.path(), "switch", op, cp);
    let d = Daemon::start(&config, op, dir.path().join("switch.log"));
    let before = wait_segments(&d, &["240p"], 2, Duration::from_secs(40));
    let last_before = playlist_segments(&before["240p"]).last().cloned().unwrap();

    // Same grid, new source: the test pattern becomes the looped file (audio stays the tone).
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "kind = \"test\"",
        &format!("kind = \"file\"\nuri = \"{f}\""),
    );
    std::fs::write(&config, text).unwrap();
    let (ok, _, _) = run("kill", &["-HUP", &d.child.id().to_string()]);
    assert!(ok);
    wait_for(
        "the pipeline rebuild in the log",
        Duration::from_secs(20),
        || {
            d.log_text()
                .contains("pipeline rebuilt (file input")
                .then_some(())
        },
    );

    // Three more segments after the switch; every fragment stays on the 1 s grid, sequence numbers
    // keep counting from the epoch, and the new segments decode.
    let after = wait_for(
        "3 segments after the switch",
        Duration::from_secs(60),
        || {
            let text = get_text(&d.url("/live/240p/index.m3u8"))?;
            let uris = playlist_segments(&text);
            let pos = uris.iter().position(|u| *u == last_before)?;
            (uris.len() - pos > 3).then_some(uris[pos + 1..].to_vec())
        },
    );
    let init = fetch_segment(&d, "240p", "init.mp4");
    let mut last_kbps = 0.0;
    for uri in &after {
        let seg = fetch_segment(&d, "240p", uri);
        for frag in parse_segment(&seg, true) {
            assert_eq!(
                frag.tfdt % 90_000,
                0,
                "fragment {} left the grid",
                frag.sequence
            );
            assert_eq!(
                u64::from(frag.sequence),
                frag.tfdt / 90_000,
                "sequence is n from the epoch"
            );
            assert!(
                frag.first_sample_nal_types.contains(&5),
                "fragment {} does not start with an IDR",
                frag.sequence
            );
        }
        let secs: f64 = parse_segment(&seg, true)
            .iter()
            .map(|f| f.durations.iter().map(|d| f64::from(*d)).sum::<f64>() / 90_000.0)
            .sum();
        last_kbps = seg.len() as f64 * 8.0 / secs / 1000.0;
        let path = dir.path().join("after.mp4");
        std::fs::write(&path, [init.as_slice(), seg.as_slice()].concat()).unwrap();
        let (ok, _, err) = run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                path.to_str().unwrap(),
                "-f",
                "null",
                "-",
            ],
        );
        assert!(
            ok && err.trim().is_empty(),
            "segment {uri} after the switch does not decode: {err}"
        );
    }
    // The ladder is unchanged: 240p keeps its CBR rate across the switch.
    assert!(
        (320.0..=480.0).contains(&last_kbps),
        "240p runs at {last_kbps:.0} kbps after the reload, not 400\n{}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(!log.contains("capture failed"), "{log}");
    // A rebuilt capture still stops in order on SIGTERM.
    let mut d = d;
    let status = d.stop().expect("daemon exits");
    assert!(status.success(), "exit status {status:?}\n{}", d.log_text());
}

/// `(map URI, segment URI)` for every segment of a media playlist, in order.
fn segments_with_maps(playlist: &str) -> Vec<(String, String)> {
    let mut map = String::new();
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            map = rest.trim_end_matches('"').to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((map.clone(), line.to_string()));
        }
    }
    out
}

fn kbps_of(seg: &[u8]) -> f64 {
    let secs: f64 = parse_segment(seg, true)
        .iter()
        .map(|f| f.durations.iter().map(|d| f64::from(*d)).sum::<f64>() / 90_000.0)
        .sum();
    seg.len() as f64 * 8.0 / secs.max(0.001) / 1000.0
}

#[test]
fn sighup_with_a_new_bitrate_rebuilds_the_encoders_on_the_same_grid() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (op, cp) = (free_port(), free_port());
    let config = small_config(dir.path(), "ladder", op, cp);
    let d = Daemon::start(&config, op, dir.path().join("ladder.log"));
    let before = wait_segments(&d, &["240p", "180p"], 2, Duration::from_secs(40));
    let old_map = segments_with_maps(&before["240p"])[0].0.clone();

    // 240p: 400 → 1200 kbit/s. Same names, same grid: the encoders are rebuilt live.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("bitrate_kbps = 400", "bitrate_kbps = 1200"),
    )
    .unwrap();
    let (ok, _, _) = run("kill", &["-HUP", &d.child.id().to_string()]);
    assert!(ok);
    wait_for("the encoder rebuild", Duration::from_secs(20), || {
        let log = d.log_text();
        (log.contains("pipeline rebuilt") && log.contains("rendition 240p 426x240 1200 kbit/s"))
            .then_some(())
    });

    // The playlist switches init at a discontinuity and goes on; three segments of the new
    // version.
    let (playlist, listed) = wait_for(
        "3 segments with the new init",
        Duration::from_secs(60),
        || {
            let text = get_text(&d.url("/live/240p/index.m3u8"))?;
            let listed = segments_with_maps(&text);
            let first_map = listed.first()?.0.clone();
            let new = listed.iter().filter(|(m, _)| *m != first_map).count();
            (new >= 3).then_some((text, listed))
        },
    );
    let first_map = listed[0].0.clone();
    let change = listed
        .iter()
        .position(|(m, _)| *m != first_map)
        .expect("a new map");
    let new_map = listed[change].0.clone();
    assert!(
        new_map.starts_with("init-") && first_map != new_map && old_map != new_map,
        "{playlist}"
    );
    let change_line = format!("{}\n", listed[change].1);
    let head = &playlist[..playlist.find(&change_line).unwrap()];
    let last_disc = head.rfind("#EXT-X-DISCONTINUITY").expect("a discontinuity");
    assert!(
        head[last_disc..].contains("#EXT-X-MAP"),
        "the new map follows a discontinuity:\n{playlist}"
    );
    let old_init = fetch_segment(&d, "240p", &first_map);
    let new_init = fetch_segment(&d, "240p", &new_map);
    assert_ne!(
        old_init, new_init,
        "the new encoder brings new codec parameters"
    );
    // init.mp4 is the current version.
    assert_eq!(fetch_segment(&d, "240p", "init.mp4"), new_init);

    // Old segments decode with the old init, new ones with the new init; the new ones stay on
    // the grid with epoch sequence numbers and run at the new rate.
    let decode = |init: &[u8], seg: &[u8], name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, [init, seg].concat()).unwrap();
        let (ok, _, err) = run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                path.to_str().unwrap(),
                "-f",
                "null",
                "-",
            ],
        );
        assert!(ok && err.trim().is_empty(), "{name} does not decode: {err}");
    };
    let old_seg = fetch_segment(&d, "240p", &listed[change - 1].1);
    decode(&old_init, &old_seg, "old.mp4");
    // The rate from a whole segment: the one cut short by the rebuild is mostly its IDR.
    let old_kbps = kbps_of(&fetch_segment(&d, "240p", &listed[change - 2].1));
    let mut new_kbps = 0.0;
    for (_, uri) in &listed[change + 1..] {
        let seg = fetch_segment(&d, "240p", uri);
        decode(&new_init, &seg, "new.mp4");
        for frag in parse_segment(&seg, true) {
            assert_eq!(
                frag.tfdt % 90_000,
                0,
                "fragment {} left the grid",
                frag.sequence
            );
            assert_eq!(u64::from(frag.sequence), frag.tfdt / 90_000);
        }
        new_kbps = kbps_of(&seg);
    }
    assert!(
        (320.0..=480.0).contains(&old_kbps) && (960.0..=1440.0).contains(&new_kbps),
        "240p ran at {old_kbps:.0} kbit/s before and {new_kbps:.0} after (want 400 → 1200)"
    );
    // 180p did not change: one init for the whole window.
    let other = get_text(&d.url("/live/180p/index.m3u8")).unwrap();
    assert_eq!(other.matches("#EXT-X-MAP").count(), 1, "{other}");

    // A player reads across the switch: ffmpeg from two segments before it.
    let from_end = listed.len() - (change - 2);
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-live_start_index",
            &format!("-{from_end}"),
            "-i",
            &d.url("/live/240p/index.m3u8"),
            "-t",
            "8",
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg across the switch: {err}"
    );
    let mut d = d;
    let status = d.stop().expect("daemon exits");
    assert!(status.success(), "exit status {status:?}\n{}", d.log_text());
}
