//! The field console on the control listener (src/control/console/): headless Chromium opens
//! `GET /` while a double push runs with one destination down (the primary to nginx-rtmp with
//! its default settings, the secondary to a closed port), and sees the values update, events
//! arrive, a thumbnail from the origin and both destinations with their states; the screenshot is
//! kept as `target/artifacts/console-double-push.png`. Then the listener's limits and token:
//! `POST /reload` refused without the token and with a wrong one, accepted with it (and the
//! reload happens); the `/events` subscriber cap answers 503; the connection cap closes the
//! connection beyond it; a client that never finishes its headers is cut off.

mod common;
mod peers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// One cheap rendition (size does not matter here), a 2 s heartbeat so events come soon.
fn console_config(
    dir: &Path,
    origin: u16,
    control: u16,
    rtmp: u16,
    closed: u16,
) -> std::path::PathBuf {
    let dvr = dir.join("dvr").display().to_string();
    let token = dir.join("control-token").display().to_string();
    let text = format!(
        r#"
[encoder]
name = "hall-a"
pair = "main-hall"

[input]
kind = "test"
audio = "test"
width = 320
height = 180
framerate = "25/1"

[timeline]
gop = "1s"
fragment_gops = 1

[[rendition]]
name = "180p"
width = 320
height = 180
bitrate_kbps = 250

[audio]
bitrate_kbps = 64
sample_rate = 48000
channels = 2

[origin]
listen = "127.0.0.1:{origin}"
dvr_window = "5m"
dvr_dir = "{dvr}"

[control]
listen = "127.0.0.1:{control}"
heartbeat = "2s"
token_file = "{token}"

[[output]]
name = "cloud"
protocol = "rtmp"
primary = "rtmp://127.0.0.1:{rtmp}/live"
secondary = "rtmp://127.0.0.1:{closed}/live"
stream = "cam"
"#
    );
    let path = dir.join("console.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn post_reload(control: u16, token: Option<&str>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut req = client.post(format!("http://127.0.0.1:{control}/reload"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.send().expect("POST /reload answered");
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// True when the server closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(_) => return true,
        }
    }
    false
}

/// Some(true) when the server answered on `stream`, Some(false) when it closed it unanswered,
/// None when neither happened within `within`.
fn answer_or_close(stream: &mut TcpStream, within: Duration) -> Option<bool> {
    let _ = stream.set_read_timeout(Some(within));
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Some(false),
        Ok(_) => Some(true),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            None
        }
        Err(_) => Some(false),
    }
}

fn metric(control: u16, name: &str) -> Option<f64> {
    let text = get_text(&format!("http://127.0.0.1:{control}/metrics"))?;
    text.lines()
        .find(|l| l.starts_with(&format!("twincast_{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn console_shows_a_double_push_with_one_destination_down_and_the_listener_is_bounded() {
    let _serial = serial();
    assert!(
        repo_root()
            .join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm ci` in tests/browser (scripts/test does it)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (origin, control, rtmp, closed) = (free_port(), free_port(), free_port(), free_port());
    let nginx = peers::Nginx::start_default(&dir.path().join("nginx"), rtmp);
    let token = "4f1c7d2e9a-field-token";
    std::fs::write(dir.path().join("control-token"), format!("{token}\n")).expect("token");
    let config = console_config(dir.path(), origin, control, rtmp, closed);
    let daemon = Daemon::start(&config, origin, dir.path().join("daemon.log"));
    let status_url = format!("http://127.0.0.1:{control}/status");

    // The double push as the daemon reports it: primary publishing, secondary failing.
    wait_for(
        "primary publishing, secondary with an error",
        Duration::from_secs(60),
        || {
            let s = get_json(&status_url)?;
            let dests = s["outputs"][0]["destinations"].as_array()?.clone();
            let up = dests
                .iter()
                .any(|d| d["dest"] == "primary" && d["state"] == "publishing");
            let down = dests.iter().any(|d| {
                d["dest"] == "secondary"
                    && d["state"] != "publishing"
                    && d["last_error"].is_string()
            });
            (up && down && s["ready"] == true).then_some(())
        },
    );

    // The page, in Chromium.
    let shot = repo_root().join("target/artifacts/console-double-push.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg("console.mjs")
        .args([
            "--url",
            &format!("http://127.0.0.1:{control}/"),
            "--screenshot",
        ])
        .arg(&shot)
        .current_dir(repo_root().join("tests/browser"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "console in chromium: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("console.mjs JSON");
    assert_eq!(r["encoder"], "hall-a", "{r}");
    assert_eq!(r["ready"], "ready", "{r}");
    assert_eq!(r["input"], "live", "{r}");
    assert!(r["statusCount"].as_u64() >= Some(8), "{r}");
    assert!(r["events"].as_u64() >= Some(1), "{r}");
    assert!(r["thumbnails"].as_u64() >= Some(1), "{r}");
    assert!(
        r["thumbnail"]
            .as_str()
            .is_some_and(|s| s.starts_with("data:image/jpeg")),
        "{r}"
    );
    let rows = r["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|x| x["dest"] == "primary" && x["state"] == "publishing" && x["track"] != ""),
        "{r}"
    );
    assert!(
        rows.iter().any(|x| x["dest"] == "secondary"
            && x["state"] != "publishing"
            && x["error"].as_str().is_some_and(|e| !e.is_empty())),
        "{r}"
    );
    let tracks = r["tracks"].as_array().expect("tracks");
    assert!(
        tracks
            .iter()
            .any(|t| t["track"] == "180p" && t["fps"].as_f64() > Some(20.0)),
        "{r}"
    );
    assert!(
        tracks.iter().all(|t| t["chartPoints"].as_u64() >= Some(2)),
        "{r}"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    drop(nginx);

    // POST /reload: refused without the token and with a wrong one, accepted with it.
    let reloads = || get_json(&status_url).and_then(|s| s["config"]["reloads"].as_u64());
    let before = reloads().expect("reloads");
    let (code, body) = post_reload(control, None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let (code, body) = post_reload(control, Some("4f1c7d2e9a-field-tokeX"));
    assert_eq!(code, 401, "{body}");
    assert_eq!(reloads(), Some(before), "a refused reload must not reload");
    assert_eq!(
        metric(control, "control_unauthorized_requests_total"),
        Some(2.0)
    );
    let (code, body) = post_reload(control, Some(token));
    assert_eq!(code, 202, "{body}");
    wait_for("the requested reload", Duration::from_secs(10), || {
        (reloads()? == before + 1).then_some(())
    });
    assert!(
        !daemon.log_text().contains(token),
        "the token leaked into the log"
    );

    // /events: 16 subscribers at once; the 17th gets 503.
    let mut subscribers = Vec::new();
    for _ in 0..16 {
        let mut s = TcpStream::connect(("127.0.0.1", control)).expect("connect");
        write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let mut head = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.read_exact(&mut head).expect("event stream head");
        assert_eq!(&head, b"HTTP/1.1 200", "subscriber {}", subscribers.len());
        subscribers.push(s);
    }
    let (code, body) =
        http_get(&format!("http://127.0.0.1:{control}/events")).expect("17th /events answered");
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(metric(control, "control_event_subscribers"), Some(16.0));
    assert_eq!(
        metric(control, "control_refused_subscribers_total"),
        Some(1.0)
    );

    // Connections: at most 64 at once. With the 16 subscribers holding theirs, 49 more
    // connections each ask for /status: at most 48 are answered, and the rest are closed
    // unanswered (a connection from an earlier step that the server has not seen closed yet
    // can only take a slot, never add one).
    let mut more: Vec<TcpStream> = (0..49)
        .map(|_| TcpStream::connect(("127.0.0.1", control)).expect("connect"))
        .collect();
    let (mut answered, mut closed) = (0, 0);
    for s in &mut more {
        let _ = write!(s, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
        match answer_or_close(s, Duration::from_secs(5)) {
            Some(true) => answered += 1,
            Some(false) => closed += 1,
            None => {}
        }
    }
    assert!(
        answered <= 48 && closed >= 1,
        "answered {answered}, closed {closed}"
    );
    drop(more);
    drop(subscribers);
    wait_for(
        "a refused connection counted",
        Duration::from_secs(10),
        || (metric(control, "control_refused_connections_total")? >= 1.0).then_some(()),
    );

    // A client that never finishes its headers is cut off after the header timeout (10 s).
    let mut slow = TcpStream::connect(("127.0.0.1", control)).expect("connect");
    let _ = write!(slow, "GET /status HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(20)),
        "slow client kept"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(get_json(&status_url).is_some(), "the listener still serves");
}
