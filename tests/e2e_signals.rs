//! Ad signals on a running daemon (issue #13, docs/design/signals.md): `POST /splice` with the
//! control token; the splice frame is an IDR in every rendition (ffprobe) while the fragment
//! grid stays put; every media playlist and the MPD carry the SCTE-35 section, and so do the
//! video segments of the origin and of the CMAF ingest push, as `emsg` boxes (read with
//! mp4-atom); bad requests get 4xx with a reason and change nothing. Every frame carries its
//! epoch time as a drop-frame timecode, read by ffprobe. A TS feed's SCTE-35 and CEA-608
//! captions pass into every rendition.

mod common;
mod peers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const TOKEN: &str = "splice-test-token-0123456789";

fn config(dir: &Path, origin: u16, control: u16, ingest: u16, rtmp: u16) -> std::path::PathBuf {
    let path = config_without_outputs(dir, origin, control);
    let text = std::fs::read_to_string(&path).expect("config");
    let text = format!(
        "{text}\n[[output]]\nname = \"cmaf\"\nprotocol = \"cmaf\"\nprimary = \"http://127.0.0.1:{ingest}/cm\"\nevent_track = true\n\n[[output]]\nname = \"smooth\"\nprotocol = \"smooth\"\nprimary = \"http://127.0.0.1:{ingest}/sm\"\nrenditions = [\"180p\"]\n\n[[output]]\nname = \"rtmp\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:{rtmp}/live\"\nstream = \"cam\"\nrenditions = [\"240p\"]\n"
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// The small config with the control token, and only the origin.
fn config_without_outputs(dir: &Path, origin: u16, control: u16) -> std::path::PathBuf {
    let path = small_config(dir, "signals", origin, control);
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).expect("token");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace(
        &format!("listen = \"127.0.0.1:{control}\""),
        &format!(
            "listen = \"127.0.0.1:{control}\"\ntoken_file = \"{}\"",
            token.display()
        ),
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// The `emsg` boxes among the top-level boxes of `data` (a segment: `styp`, `prft`, `emsg`s,
/// `moof`, `mdat`, and again), decoded by mp4-atom.
fn emsgs(data: &[u8]) -> Vec<mp4_atom::Emsg> {
    use mp4_atom::Decode;
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if size < 8 || size > rest.len() {
            break;
        }
        if &rest[4..8] == b"emsg" {
            out.push(mp4_atom::Emsg::decode(&mut &rest[..size]).expect("mp4-atom reads the emsg"));
        }
        rest = &rest[size..];
    }
    out
}

/// What the test wants of every `emsg` that carries the splice.
fn assert_splice_emsg(where_: &str, e: &mp4_atom::Emsg, pts: u64, id: u32, section: &[u8]) {
    assert_eq!(e.scheme_id_uri, "urn:scte:scte35:2013:bin", "{where_}");
    assert_eq!(e.timescale, 90_000, "{where_}");
    assert_eq!(
        e.presentation_time,
        mp4_atom::EmsgTimestamp::Absolute(pts),
        "{where_}"
    );
    assert_eq!(e.event_duration, 900_000, "{where_}: 10 s");
    assert_eq!(e.id, id, "{where_}");
    assert_eq!(e.message_data, section, "{where_}: the section");
}

/// The top-level boxes of `data` of type `kind`, each without its 8-byte header.
fn boxes<'a>(data: &'a [u8], kind: &[u8; 4]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if size < 8 || size > rest.len() {
            break;
        }
        if &rest[4..8] == kind {
            out.push(&rest[8..size]);
        }
        rest = &rest[size..];
    }
    out
}

/// An `emib` (ISO/IEC 23001-18 §6.1) of a timed-metadata sample, read field by field.
#[derive(Debug)]
struct Emib {
    delta: i64,
    duration: u32,
    id: u32,
    scheme: String,
    data: Vec<u8>,
}

/// The `emib`s of a timed-metadata segment (its samples are the `mdat`'s boxes).
fn emibs(segment: &[u8]) -> Vec<Emib> {
    let mut out = Vec::new();
    for mdat in boxes(segment, b"mdat") {
        for b in boxes(mdat, b"emib") {
            // version/flags, reserved, then the fields.
            let delta = i64::from_be_bytes(b[8..16].try_into().expect("delta"));
            let duration = u32::from_be_bytes(b[16..20].try_into().expect("duration"));
            let id = u32::from_be_bytes(b[20..24].try_into().expect("id"));
            let mut strings = b[24..].splitn(3, |c| *c == 0);
            let scheme = String::from_utf8_lossy(strings.next().unwrap_or_default()).into_owned();
            let _value = strings.next();
            let data = strings.next().unwrap_or_default().to_vec();
            out.push(Emib {
                delta,
                duration,
                id,
                scheme,
                data,
            });
        }
    }
    out
}

/// The CMAF timed-metadata track and the Smooth sparse track carry the splice: the section,
/// its id and duration, at its time (DASH-IF ingest §6.6 / Azure timed metadata §2.2).
fn assert_event_tracks(rx: &peers::Receiver, pts: u64, frame: u64, section: &[u8]) {
    let cmaf = wait_for(
        "the CMAF timed-metadata track's emib at the splice",
        Duration::from_secs(20),
        || {
            let all: Vec<Emib> = rx
                .requests()
                .into_iter()
                .filter(|r| r.path.contains("/cm/Streams(scte35)"))
                .flat_map(|r| emibs(&r.body))
                .collect();
            all.iter().any(|e| e.delta == 0).then_some(all)
        },
    );
    for e in &cmaf {
        assert_eq!(e.scheme, "urn:scte:scte35:2013:bin", "{e:?}");
        assert_eq!((e.id, e.duration), (frame as u32, 900_000), "{e:?}");
        assert_eq!(e.data, section, "{e:?}");
    }
    let header = rx
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/cm/Streams(scte35)"))
        .expect("the timed-metadata track");
    assert!(
        header.body.windows(4).any(|w| w == b"evte") && !boxes(&header.body, b"moov").is_empty(),
        "its first object is a CMAF header with an evte sample entry"
    );
    // Smooth: every stream names the sparse track; its own POST carries the message 4 s
    // ahead of the splice (tfxd at the arrival time, the delta to the splice in the record).
    for r in rx
        .requests()
        .iter()
        .filter(|r| r.path.contains("/sm/Streams("))
    {
        let text = String::from_utf8_lossy(&r.body);
        if !text.contains("<smil") {
            continue;
        }
        assert!(
            text.contains("<textstream src=\"Streams(scte35)\"")
                && text.contains("parentTrackName")
                && text.contains("manifestOutput"),
            "{}: {text}",
            r.path
        );
    }
    let sparse = wait_for("the sparse fragment", Duration::from_secs(20), || {
        rx.requests()
            .into_iter()
            .filter(|r| r.path.contains("/sm/Streams(scte35)") && r.complete)
            .find(|r| !boxes(&r.body, b"moof").is_empty())
    });
    let mdat = boxes(&sparse.body, b"mdat")[0];
    let word = |i: usize| u32::from_be_bytes(mdat[i..i + 4].try_into().expect("u32"));
    assert_eq!(word(0), 1, "message version");
    assert_eq!(word(4), frame as u32, "message id");
    assert_eq!(
        word(8),
        40_000_000,
        "4 s at 10 MHz from arrival to the splice"
    );
    assert_eq!(&mdat[12..], section, "the section");
    let moof = boxes(&sparse.body, b"moof")[0];
    let traf = boxes(moof, b"traf")[0];
    let tfdt = boxes(traf, b"tfdt")[0];
    let arrival = u64::from_be_bytes(tfdt[4..12].try_into().expect("tfdt"));
    assert_eq!(arrival, pts * 1000 / 9 - 40_000_000, "arrival, 10 MHz");
}

fn unhex(hex: &str) -> Vec<u8> {
    let hex = hex.trim_start_matches("0x");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn post(control: u16, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut req = client
        .post(format!("http://127.0.0.1:{control}/splice"))
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.send().expect("POST /splice answered");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn splices(control: u16) -> Vec<serde_json::Value> {
    get_json(&format!("http://127.0.0.1:{control}/splices"))
        .and_then(|v| v["splices"].as_array().cloned())
        .expect("GET /splices")
}

/// Plays the origin page at `url` in headless Chromium for 4 s (tests/browser/play.mjs) and
/// returns its report.
fn play_in_chromium(url: &str) -> serde_json::Value {
    let dir = repo_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser (scripts/test does it)"
    );
    let out = Command::new("node")
        .args(["play.mjs", "--url", url, "--seconds", "4"])
        .current_dir(&dir)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    assert!(
        report["ok"] == true,
        "chromium: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// The listed segment (named by its 90 kHz start) that holds `pts`, once the next one is
/// listed too (so it is whole).
fn segment_holding(playlist: &str, pts: u64) -> Option<String> {
    let listed: Vec<(u64, String)> = playlist_segments(playlist)
        .into_iter()
        .filter_map(|u| Some((u.trim_end_matches(".m4s").parse().ok()?, u)))
        .collect();
    listed
        .windows(2)
        .find(|w| w[0].0 <= pts && pts < w[1].0)
        .map(|w| w[0].1.clone())
}

/// `rendition`'s media playlist and the segment that holds `pts`, once both are listed.
fn splice_segment(d: &Daemon, rendition: &str, pts: u64) -> (String, String) {
    let url = d.url(&format!("/live/{rendition}/index.m3u8"));
    wait_for(
        &format!("{rendition}: the segment with the splice"),
        Duration::from_secs(40),
        || {
            let text = get_text(&url)?;
            let segment = segment_holding(&text, pts)?;
            Some((text, segment))
        },
    )
}

/// Key frames (pts in 90 kHz) of one HLS segment with its init.
fn key_frames(dir: &Path, init: &[u8], segment: &[u8]) -> Vec<u64> {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, [init, segment].concat()).expect("write");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_frames"])
        .args(["-show_entries", "frame=pts,key_frame", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // A frame with captions has a side-data field after these two.
            let mut fields = l.split(',');
            let (key, pts) = (fields.next()?, fields.next()?);
            (key == "1").then(|| pts.trim().parse().ok()).flatten()
        })
        .collect()
}

#[test]
fn a_splice_is_an_idr_in_every_rendition_and_a_daterange_in_every_playlist() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (origin, control, ingest, rtmp) = (free_port(), free_port(), free_port(), free_port());
    let rx = peers::Receiver::start(ingest);
    // The RTMP server is ffprobe itself: it reads the whole publish and then prints the
    // stream's tags, where FFmpeg's FLV reader puts the string fields of an `onCuePoint`.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}/live/cam_240p"))
        .args([
            "-count_packets",
            "-show_entries",
            "format_tags",
            "-of",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffprobe");
    let cfg = config(dir.path(), origin, control, ingest, rtmp);
    let mut d = Daemon::start(&cfg, origin, dir.path().join("daemon.log"));
    wait_for("the origin", Duration::from_secs(30), || {
        get_text(&d.url("/live/240p/index.m3u8")).filter(|t| t.contains(".m4s"))
    });

    // Refusals first: each is 4xx with a reason and schedules nothing.
    let (status, body) = post(control, r#"{"kind":"out"}"#, None);
    assert_eq!(status, 401, "{body}");
    for (req, want, says) in [
        ("{", 400, "not JSON"),
        (r#"{"kind":"out","colour":"red"}"#, 400, "unknown field"),
        (
            r#"{"kind":"out","at":"2020-01-01T00:00:00Z"}"#,
            409,
            "not ahead",
        ),
        (
            r#"{"kind":"cancel","event_id":99}"#,
            404,
            "no pending event 99",
        ),
        (r#"{"kind":"out","duration":"0s"}"#, 422, "more than 0"),
    ] {
        let (status, body) = post(control, req, Some(TOKEN));
        assert_eq!(status, want, "{req}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{req}: {error}");
    }
    assert!(splices(control).is_empty(), "a refusal scheduled something");

    // A break 6 s ahead, at a time off the GOP grid (mid-GOP), for 10 s.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let at_ms = (now_ms / 1000 + 6) * 1000 + 433;
    let at = twincast_media::hls::program_date_time(at_ms * 1_000_000);
    let (status, s) = post(
        control,
        &format!(r#"{{"kind":"out","event_id":7,"duration":"10s","at":"{at}"}}"#),
        Some(TOKEN),
    );
    assert_eq!(status, 202, "{s}");
    let frame = s["frame"].as_u64().expect("frame");
    assert_eq!(
        frame,
        (at_ms * 30).div_ceil(1000),
        "the first frame at or after the time"
    );
    assert_ne!(frame % 30, 0, "the test wants a splice inside a GOP");
    let (status, body) = post(
        control,
        &format!(r#"{{"kind":"out","event_id":7,"at":"{at}"}}"#),
        Some(TOKEN),
    );
    assert_eq!(status, 409, "a second out for a pending event: {body}");
    let hex = s["scte35_hex"].as_str().expect("hex").to_string();
    let section = unhex(&hex);
    let pts = frame * 3000; // 90 kHz at 30 fps

    for rendition in ["240p", "180p"] {
        // The segment that holds the splice frame, once listed.
        let (text, segment) = splice_segment(&d, rendition, pts);
        let tag = format!(
            "#EXT-X-DATERANGE:ID=\"splice-7-{frame}\",START-DATE=\"{at}\",PLANNED-DURATION=10.000,SCTE35-OUT={hex}"
        );
        assert!(text.contains(&tag), "{rendition}: no {tag} in\n{text}");
        let init = get_ok(&d.url(&format!("/live/{rendition}/init.mp4"))).expect("init");
        let data = get_ok(&d.url(&format!("/live/{rendition}/{segment}"))).expect("segment");
        // The segment announces the splice in-band too.
        let start: u64 = segment.trim_end_matches(".m4s").parse().expect("start");
        // Its 1 s fragments that start at or before the splice carry the emsg, once each.
        let in_band = emsgs(&data);
        let want = ((pts - start) / 90_000 + 1) as usize;
        assert_eq!(
            in_band.len(),
            want,
            "{rendition}: emsgs of segment {segment}"
        );
        for e in &in_band {
            assert_splice_emsg(rendition, e, pts, frame as u32, &section);
        }
        let keys = key_frames(dir.path(), &init, &data);
        // One IDR on each GOP start (1 s) of the segment, and one on the splice frame.
        let mut want: Vec<u64> = (0..)
            .map(|g| start + g * 90_000)
            .take_while(|t| keys.last().is_some_and(|l| t <= l))
            .collect();
        want.push(pts);
        want.sort_unstable();
        assert_eq!(keys, want, "{rendition}: IDRs of segment {segment}");
    }
    // The CMAF ingest push: every video fragment that starts at most 4 s before the splice
    // and not after it carries its emsg (1 s fragments: four of them); audio carries none.
    let lead_starts = pts / 90_000 - (pts - 4 * 90_000).div_ceil(90_000) + 1;
    assert_eq!(lead_starts, 4);
    let pushed = |track: &str| -> Vec<mp4_atom::Emsg> {
        let path = format!("/cm/Streams({track})");
        rx.requests()
            .into_iter()
            .filter(|r| r.path.contains(&path))
            .flat_map(|r| emsgs(&r.body))
            .collect()
    };
    for track in ["240p", "180p"] {
        let found = wait_for(
            &format!("{track}: the pushed fragments up to the splice"),
            Duration::from_secs(20),
            || Some(pushed(track)).filter(|f| f.len() >= 4),
        );
        assert_eq!(found.len(), 4, "{track}: {found:?}");
        for e in &found {
            assert_splice_emsg(&format!("cmaf {track}"), e, pts, frame as u32, &section);
        }
    }
    assert!(pushed("audio").is_empty(), "audio fragments carry no emsg");
    assert_event_tracks(&rx, pts, frame, &section);
    let audio = wait_for(
        "the audio playlist's CUE-OUT",
        Duration::from_secs(20),
        || {
            get_text(&d.url("/live/audio/index.m3u8"))
                .filter(|t| t.contains("#EXT-X-CUE-OUT:10.000"))
        },
    );
    assert!(
        audio.contains(&format!("ID=\"splice-7-{frame}\"")),
        "{audio}"
    );
    // DASH: the Period's EventStream holds the section at the splice's absolute 90 kHz time.
    let mpd = get_text(&d.url("/live/manifest.mpd")).expect("MPD");
    let b64 = s["scte35_base64"].as_str().expect("base64");
    let event = format!(
        "<Event presentationTime=\"{pts}\" id=\"{}\" duration=\"900000\"><Signal xmlns=\"http://www.scte.org/schemas/35/2016\"><Binary>{b64}</Binary></Signal></Event>",
        frame as u32
    );
    assert!(mpd.contains(&event), "no {event} in\n{mpd}");
    assert!(
        mpd.contains(
            "<EventStream schemeIdUri=\"urn:scte:scte35:2014:xml+bin\" timescale=\"90000\""
        ),
        "{mpd}"
    );
    let listed = splices(control);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let status = get_json(&format!("http://127.0.0.1:{control}/status")).expect("status");
    let signals = &status["signals"];
    assert_eq!(signals["scheduled"], 1, "{signals}");
    assert_eq!(signals["pending"], 0, "{signals}");
    assert_eq!(signals["conditioned_frames"], 1, "{signals}");
    assert_eq!(
        signals["refused_requests"], 6,
        "five refusals and the duplicate: {signals}"
    );
    let metrics = get_text(&format!("http://127.0.0.1:{control}/metrics")).expect("metrics");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("twincast_splice_conditioned_frames_total{") && l.ends_with(" 1")
        ),
        "{metrics}"
    );
    assert_eq!(listed[0]["scte35_hex"], hex.as_str());

    // hls.js, in headless Chromium, reads the DATERANGE while it plays the origin.
    let played = play_in_chromium(&d.url("/"));
    let want = serde_json::json!({
        "id": format!("splice-7-{frame}"),
        "start": at,
        "plannedDuration": 10,
        "scte35Out": hex,
    });
    assert!(
        played["dateRanges"]
            .as_array()
            .is_some_and(|r| r.contains(&want)),
        "hls.js did not read {want}: {played}"
    );

    // RTMP: the publish ends with the daemon; ffprobe then says what the cue points held.
    let status = d.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon exit: {status:?}"
    );
    let mut probe = probe;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while probe.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = probe.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = probe.wait_with_output().expect("ffprobe output");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: ffprobe said {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let tags = &json["format"]["tags"];
    assert_eq!(tags["cue"], b64, "the section, base64: {json}");
    assert_eq!(tags["type"], "scte35", "{json}");
    assert_eq!(tags["name"], "scte35", "{json}");
    assert_eq!(tags["id"], (frame as u32).to_string(), "{json}");
}

/// Sends an MPEG-TS file to `addr` over UDP (7 packets a datagram) at the pace of its PCR,
/// as a contribution encoder would: FFmpeg's own UDP output cannot be used, since its TS
/// writer does not keep an SCTE-35 stream.
fn send_paced(path: &Path, addr: std::net::SocketAddr) -> std::thread::JoinHandle<()> {
    let data = std::fs::read(path).expect("TS file");
    std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let start = std::time::Instant::now();
        let mut pcr0: Option<u64> = None;
        for group in data.chunks(7 * 188) {
            // The first PCR of the group (adaptation field with the PCR flag), 27 MHz.
            let pcr = group.chunks_exact(188).find_map(|p| {
                (p[0] == 0x47 && p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0).then(|| {
                    let b = &p[6..12];
                    let base = (u64::from(b[0]) << 25)
                        | (u64::from(b[1]) << 17)
                        | (u64::from(b[2]) << 9)
                        | (u64::from(b[3]) << 1)
                        | u64::from(b[4] >> 7);
                    let ext = (u64::from(b[4] & 1) << 8) | u64::from(b[5]);
                    base * 300 + ext
                })
            });
            if let Some(pcr) = pcr {
                let due = Duration::from_nanos((pcr - *pcr0.get_or_insert(pcr)) * 1000 / 27);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let _ = socket.send_to(group, addr);
        }
    })
}

#[test]
fn an_scte35_splice_in_a_udp_feed_lands_on_the_picture_it_names() {
    use twincast_media::scte35::{self, Command as Cmd, SpliceInfo, SpliceInsert};
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    // The feed, made by ffmpeg: picture N is a flat grey of luma 8·N mod 256, so a decoded
    // frame says which source picture it is; one GOP a second; AAC; CEA-608 captions on CC1,
    // "TWINCAST <s>" shown from each even second s (tests/common/captions.rs).
    let base = common::captions::captioned_ts(dir.path(), 32);
    assert!(
        common::captions::has_closed_captions(&base),
        "the feed has no captions"
    );
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
            base.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "ffprobe: {err}");
    let p0: u64 = out.trim().trim_end_matches(',').parse().expect("first PTS");
    // A break out on source picture 613 (mid-GOP) for 8 s, put in the feed 6 s ahead by
    // threefive's injector.
    const PICTURE: u64 = 613;
    let splice_pts = p0 + PICTURE * 3000;
    let section = SpliceInfo::new(Cmd::Insert(SpliceInsert::at(
        42,
        true,
        Some(splice_pts),
        Some(8 * 90_000),
    )))
    .to_bytes()
    .expect("section");
    let sidecar = dir.path().join("sidecar.txt");
    std::fs::write(
        &sidecar,
        format!(
            "{:.6},{}\n",
            (splice_pts - 6 * 90_000) as f64 / 90_000.0,
            scte35::base64(&section)
        ),
    )
    .expect("sidecar");
    let fed = dir.path().join("fed.ts");
    let inject = threefive_venv().join("bin/scte35inject");
    let (ok, out, err) = run(
        inject.to_str().expect("utf-8"),
        &[
            "-i",
            base.to_str().expect("utf-8"),
            "-s",
            sidecar.to_str().expect("utf-8"),
            "-o",
            fed.to_str().expect("utf-8"),
        ],
    );
    assert!(
        ok && format!("{out}{err}").contains("Inserted Cue"),
        "scte35inject: {out}{err}"
    );

    let (origin, control, udp) = (free_port(), free_port(), free_udp_port());
    let cfg = small_config_with_input(
        dir.path(),
        "passthrough",
        origin,
        control,
        &format!("kind = \"udp\"\nuri = \"udp://127.0.0.1:{udp}\"\naudio = \"input\""),
    );
    let mut d = Daemon::start(&cfg, origin, dir.path().join("daemon.log"));
    wait_for("the origin", Duration::from_secs(30), || {
        get_text(&d.url("/live/240p/index.m3u8")).filter(|t| t.contains(".m4s"))
    });
    let sender = send_paced(&fed, ([127, 0, 0, 1], udp).into());

    // The section is on the schedule as the box's own splice: event 42, 8 s, on a frame.
    let listed = d.wait_for("the passed-through splice", Duration::from_secs(30), || {
        splices(control).into_iter().find(|s| s["event_id"] == 42)
    });
    assert_eq!(listed["kind"], "out", "{listed}");
    assert_eq!(listed["duration_ms"], 8000, "{listed}");
    let status = get_json(&format!("http://127.0.0.1:{control}/status")).expect("status");
    assert_eq!(status["signals"]["passed_through_sections"], 1, "{status}");
    assert_eq!(status["signals"]["sections_not_passed"], 0, "{status}");
    let frame = listed["frame"].as_u64().expect("frame");
    let pts = frame * 3000;
    let hex = listed["scte35_hex"].as_str().expect("hex").to_string();
    let want_luma = (8 * PICTURE % 256) as f64;
    for rendition in ["240p", "180p"] {
        let (text, segment) = splice_segment(&d, rendition, pts);
        assert!(
            text.contains(&format!("SCTE35-OUT={hex}")),
            "{rendition}: no DATERANGE with the box's section in\n{text}"
        );
        let init = get_ok(&d.url(&format!("/live/{rendition}/init.mp4"))).expect("init");
        let data = get_ok(&d.url(&format!("/live/{rendition}/{segment}"))).expect("segment");
        assert!(
            key_frames(dir.path(), &init, &data).contains(&pts),
            "{rendition}: no IDR on the splice frame {pts}: {:?}",
            key_frames(dir.path(), &init, &data)
        );
        // The splice frame is the source picture the section named: its grey, not a
        // neighbour's (8 levels apart).
        let at = pts as f64 / 90_000.0;
        let lumas = frame_lumas(dir.path(), &init, &data);
        let (_, luma) = lumas
            .iter()
            .find(|(t, _)| (t - at).abs() < 0.005)
            .unwrap_or_else(|| panic!("{rendition}: no frame at {at} in {lumas:?}"));
        assert!(
            (luma - want_luma).abs() < 3.0,
            "{rendition}: the splice frame has luma {luma}, source picture {PICTURE} has {want_luma}"
        );
    }
    let _ = sender.join();
    assert_captions_passed_through(&d, control, dir.path());
}

/// The feed's CEA-608 captions are in every rendition (ffprobe), with their text and their
/// 2 s spacing to the frame (ffmpeg reads them back), and the manifests declare them.
fn assert_captions_passed_through(d: &Daemon, control: u16, dir: &Path) {
    let master = get_text(&d.url("/live/master.m3u8")).expect("master");
    assert!(
        master.contains("#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\"")
            && master.contains("INSTREAM-ID=\"CC1\"")
            && master.matches("CLOSED-CAPTIONS=\"cc\"").count() == 2,
        "{master}"
    );
    let mpd = get_text(&d.url("/live/manifest.mpd")).expect("mpd");
    assert!(
        mpd.contains(
            "<Accessibility schemeIdUri=\"urn:scte:dash:cc:cea-608:2015\" value=\"CC1\"/>"
        ),
        "{mpd}"
    );
    for rendition in ["240p", "180p"] {
        let playlist =
            get_text(&d.url(&format!("/live/{rendition}/index.m3u8"))).expect("playlist");
        let mut bytes = get_ok(&d.url(&format!("/live/{rendition}/init.mp4"))).expect("init");
        for segment in playlist_segments(&playlist) {
            bytes.extend(get_ok(&d.url(&format!("/live/{rendition}/{segment}"))).expect("segment"));
        }
        let file = dir.join(format!("{rendition}-all.mp4"));
        std::fs::write(&file, &bytes).expect("write");
        assert!(
            common::captions::has_closed_captions(&file),
            "{rendition}: ffprobe finds no captions"
        );
        let cues = common::captions::caption_cues(&file);
        let seconds: Vec<u32> = cues
            .iter()
            .filter_map(|(_, text)| text.strip_prefix("TWINCAST ")?.parse().ok())
            .collect();
        // Every caption from the first one the rendition had to the last one published, in
        // order, none lost or repeated (a cue shows once the next caption's erase comes).
        let first = *seconds
            .first()
            .unwrap_or_else(|| panic!("{rendition}: no cues {cues:?}"));
        let last = *seconds.last().unwrap_or(&first);
        let want: Vec<u32> = (first..=last).step_by(2).collect();
        assert!(
            seconds == want && want.len() >= 8,
            "{rendition}: cues {cues:?}"
        );
        // Each shown on its source picture: 2 s apart to the frame.
        for w in cues.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!((gap - 2.0).abs() < 0.005, "{rendition}: cues {cues:?}");
        }
    }
    let status = get_json(&format!("http://127.0.0.1:{control}/status")).expect("status");
    let captions = &status["signals"]["captions"];
    assert_eq!(captions["mode"], "passthrough", "{captions}");
    assert!(captions["frames"].as_u64() > Some(300), "{captions}");
    for t in status["tracks"].as_array().expect("tracks") {
        if t["kind"] == "video" {
            assert_eq!(t["units_without_captions"], 0, "{t}");
            assert!(t["units_with_captions"].as_u64() > Some(300), "{t}");
        }
    }
}

#[test]
fn a_pair_given_the_same_splice_writes_the_same_signal() {
    let _serial = serial();
    let dirs = [(); 2].map(|_| tempfile::tempdir().expect("tempdir"));
    let boxes: Vec<(Daemon, u16)> = dirs
        .iter()
        .map(|dir| {
            let (origin, control) = (free_port(), free_port());
            let cfg = config_without_outputs(dir.path(), origin, control);
            (
                Daemon::start(&cfg, origin, dir.path().join("daemon.log")),
                control,
            )
        })
        .collect();
    for (d, _) in &boxes {
        wait_for("the origin", Duration::from_secs(30), || {
            get_text(&d.url("/live/240p/index.m3u8")).filter(|t| t.contains(".m4s"))
        });
    }
    // What automation sends a pair: the same request with the same "at", to each box.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let at = twincast_media::hls::program_date_time(((now_ms / 1000 + 7) * 1000 + 617) * 1_000_000);
    let body = format!(r#"{{"kind":"out","event_id":9,"duration":"20s","at":"{at}"}}"#);
    let answers: Vec<serde_json::Value> = boxes
        .iter()
        .map(|(_, control)| {
            let (status, s) = post(*control, &body, Some(TOKEN));
            assert_eq!(status, 202, "{s}");
            s
        })
        .collect();
    for field in ["frame", "scte35_hex", "splice_time_ms"] {
        assert_eq!(answers[0][field], answers[1][field], "{field}: {answers:?}");
    }
    let pts = answers[0]["frame"].as_u64().expect("frame") * 3000;
    for rendition in ["240p", "180p"] {
        let seen: Vec<(Vec<String>, Vec<mp4_atom::Emsg>)> = boxes
            .iter()
            .map(|(d, _)| {
                let (text, segment) = splice_segment(d, rendition, pts);
                let signals = text
                    .lines()
                    .filter(|l| l.starts_with("#EXT-X-DATERANGE") || l.starts_with("#EXT-X-CUE"))
                    .map(str::to_string)
                    .collect();
                let data =
                    get_ok(&d.url(&format!("/live/{rendition}/{segment}"))).expect("segment");
                (signals, emsgs(&data))
            })
            .collect();
        assert!(!seen[0].0.is_empty() && !seen[0].1.is_empty(), "{seen:?}");
        assert_eq!(seen[0], seen[1], "{rendition}: the boxes' signals differ");
    }
    let events: Vec<Vec<String>> = boxes
        .iter()
        .map(|(d, _)| {
            let mpd = get_text(&d.url("/live/manifest.mpd")).expect("MPD");
            mpd.split("<Event ")
                .skip(1)
                .map(|e| e.split("</Event>").next().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    assert!(!events[0].is_empty(), "no DASH event");
    assert_eq!(events[0], events[1], "the boxes' DASH events differ");
}

/// Drop-frame labels of consecutive frames at 29.97, found by counting: from the day's first
/// frame, each frame takes the next label, and the labels `;00` and `;01` of every minute but
/// each tenth are never given (SMPTE 12M). This is the definition, not the daemon's formula.
struct DropFrameCount {
    hms_f: (u64, u64, u64, u64),
}

impl DropFrameCount {
    /// The label of the `n`-th frame of the day.
    fn at(n: u64) -> DropFrameCount {
        let mut c = DropFrameCount {
            hms_f: (0, 0, 0, 0),
        };
        for _ in 0..n {
            c.advance();
        }
        c
    }

    fn advance(&mut self) {
        let (mut h, mut m, mut s, mut f) = self.hms_f;
        f += 1;
        if f == 30 {
            (f, s) = (0, s + 1);
        }
        if s == 60 {
            (s, m) = (0, m + 1);
        }
        if m == 60 {
            (m, h) = (0, h + 1);
        }
        if s == 0 && f == 0 && m % 10 != 0 {
            f = 2;
        }
        self.hms_f = (h % 24, m, s, f);
    }

    fn label(&self) -> String {
        let (h, m, s, f) = self.hms_f;
        format!("{h:02}{m:02}{s:02}{f:02}")
    }
}

#[test]
fn every_frame_carries_its_epoch_time_as_a_drop_frame_timecode() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let (origin, control) = (free_port(), free_port());
    let path = small_config(dir.path(), "timecode", origin, control);
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("framerate = \"30/1\"", "framerate = \"30000/1001\"")
        .replace("gop = \"1s\"", "gop = \"1001ms\"");
    assert!(text.contains("30000/1001") && text.contains("1001ms"));
    // `timeline.timecode` is left out: "epoch" is the default.
    assert!(!text.contains("timecode ="));
    std::fs::write(&path, text).expect("config");
    let d = Daemon::start(&path, origin, dir.path().join("daemon.log"));
    for rendition in ["240p", "180p"] {
        let url = d.url(&format!("/live/{rendition}/index.m3u8"));
        let playlist = wait_for(
            &format!("{rendition}: two segments"),
            Duration::from_secs(40),
            || get_text(&url).filter(|t| playlist_segments(t).len() >= 2),
        );
        let segment = playlist_segments(&playlist).pop().expect("a segment");
        let get = |uri: &str| {
            get_ok(&d.url(&format!("/live/{rendition}/{uri}"))).expect("segment or init")
        };
        let file = dir.path().join(format!("{rendition}.mp4"));
        std::fs::write(&file, [get("init.mp4"), get(&segment)].concat()).expect("write");
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_frames"])
            .args([
                "-show_entries",
                "frame=pts:frame_tags=timecode",
                "-of",
                "csv=p=0",
            ])
            .arg(&file)
            .output()
            .expect("ffprobe runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // One line per frame (`pts,timecode`), then a line per side data.
        let frames: Vec<(u64, String)> = stdout
            .lines()
            .filter_map(|l| {
                let mut fields = l.split(',');
                let pts = fields.next()?.trim().parse().ok()?;
                Some((pts, fields.next().unwrap_or_default().trim().to_string()))
            })
            .collect();
        assert!(frames.len() >= 60, "{rendition}: {} frames", frames.len());
        // Frame k starts at k·1001/30000 s: pts (90 kHz) = 3003·k exactly.
        let k0 = frames[0].0 / 3003;
        let start_ns = u128::from(k0) * 1001 * 1_000_000_000 / 30_000;
        let midnight_ns = start_ns - start_ns % (86_400 * 1_000_000_000);
        let first_of_day = (midnight_ns * 30_000).div_ceil(1001 * 1_000_000_000) as u64;
        let mut count = DropFrameCount::at(k0 - first_of_day);
        for (i, (pts, tc)) in frames.iter().enumerate() {
            assert_eq!(*pts, (k0 + i as u64) * 3003, "{rendition}: frame {i}");
            let digits: String = tc.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(
                digits,
                count.label(),
                "{rendition}: frame {i} (pts {pts}) reads timecode {tc:?}"
            );
            count.advance();
        }
    }
}
