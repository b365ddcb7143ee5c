//! `twincast status`: reads `GET /status` from the control listener and prints it for a person
//! (or raw with `--json`). A tiny HTTP/1.1 GET over a plain socket: the control listener is
//! local, and the CLI should not need an HTTP client stack.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

/// sysexits EX_UNAVAILABLE: the daemon does not answer.
const EX_UNAVAILABLE: u8 = crate::exit::EX_UNAVAILABLE;
/// The whole exchange (connect, request, the complete answer) must end within this: a peer
/// that trickles bytes cannot keep the command waiting.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read: a `/status` document is a few KiB even with many outputs, so
/// more means the address is not a twincast control listener (or it misbehaves).
pub const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// Where the control listener is: `--control`, else the config file's `[control] listen`,
/// else the default.
pub fn control_address(explicit: Option<SocketAddr>, config: &Path) -> SocketAddr {
    if let Some(addr) = explicit {
        return addr;
    }
    match crate::config::load(config) {
        Ok(loaded) => loaded.config.control.listen,
        Err(_) => crate::config::DEFAULT_CONTROL_LISTEN,
    }
}

/// GET `path` from `addr`; the body on a 200. At most [`MAX_ANSWER_BYTES`], all within
/// [`TIMEOUT`].
pub fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    get_within(addr, path, TIMEOUT, MAX_ANSWER_BYTES)
}

fn get_within(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    max_bytes: u64,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot reach the control listener at {addr}: {e}"))?;
    // What is left of the deadline (never zero: a zero timeout would mean none).
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_write_timeout(Some(left)).ok();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("control listener at {addr}: {e}"))?;
    let raw = read_answer(&stream, addr, deadline, timeout, max_bytes)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("control listener at {addr}: malformed answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200 ") {
        return Err(format!(
            "control listener at {addr} answered {status_line:?}: {}",
            String::from_utf8_lossy(body).trim()
        ));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The whole answer, up to the peer's close: at most `max_bytes` (read through
/// `Read::take`, so one byte more is never buffered) and all of it before `deadline` (each
/// read waits only for what is left of it).
fn read_answer(
    stream: &TcpStream,
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    let too_slow = || {
        format!(
            "control listener at {addr}: no complete answer within {} ms",
            timeout.as_millis()
        )
    };
    let mut limited = stream.take(max_bytes + 1);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_slow());
        }
        // A zero timeout would mean "wait for ever"; `left` is never zero here.
        stream.set_read_timeout(Some(left)).ok();
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(too_slow());
            }
            Err(e) => return Err(format!("control listener at {addr}: {e}")),
        }
    }
    if raw.len() as u64 > max_bytes {
        return Err(format!(
            "control listener at {addr}: the answer exceeds {} MiB; is this the twincast control listener?",
            max_bytes >> 20
        ));
    }
    Ok(raw)
}

/// A chunked body (RFC 9112 §7.1), de-framed on bytes: a chunk may end inside a UTF-8
/// character, so the text is made only from the whole body (public for the fuzz target
/// `status_dechunk`). Stops at the last chunk or at the first malformed size line.
pub fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut rest = body;
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..i]);
        let size = size.split(';').next().unwrap_or("");
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let data = &rest[i + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = &data[n..];
        while let Some(r) = rest.strip_prefix(b"\r\n") {
            rest = r;
        }
    }
    out
}

/// The `status` subcommand.
pub fn status_cli(explicit: Option<SocketAddr>, config: &Path, json: bool) -> ExitCode {
    let addr = control_address(explicit, config);
    let body = match get(addr, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("twincast status: {e} (is the daemon running? systemctl status twincast)");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    if json {
        print!("{body}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(v) => {
            print!("{}", render(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twincast status: the control listener at {addr} sent invalid JSON: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// The readable form of a status document: one block per section, in this order.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    header(&mut out, v);
    clock(&mut out, v);
    input(&mut out, v);
    tracks(&mut out, v);
    outputs(&mut out, v);
    publish(&mut out, v);
    origin(&mut out, v);
    config(&mut out, v);
    out.push_str(&format!("summary: {}\n", s(v, "summary")));
    out
}

/// "hall-a (pair main)  twincast 0.1.0  up 1h01m  ready".
fn header(out: &mut String, v: &Value) {
    let enc = &v["encoder"];
    out.push_str(&format!(
        "{} (pair {})  twincast {}  up {}  {}\n",
        s(enc, "name"),
        s(enc, "pair"),
        s(enc, "version"),
        human_duration(n(enc, "uptime_s")),
        if v["ready"].as_bool() == Some(true) {
            "ready"
        } else {
            "starting"
        }
    ));
}

/// The kernel clock discipline and the pair lock, on one line.
fn clock(out: &mut String, v: &Value) {
    let clock = match v.get("clock").filter(|c| !c.is_null()) {
        Some(c) => format!(
            "{}, estimated error {:.3} ms",
            if c["synchronised"].as_bool() == Some(true) {
                "synchronised"
            } else {
                "NOT synchronised"
            },
            c["estimated_error_us"].as_i64().unwrap_or(0) as f64 / 1000.0
        ),
        None => "unknown (adjtimex failed)".to_string(),
    };
    let lock = if v["pair_locked"].as_bool() == Some(true) {
        "pair lock OK"
    } else {
        "NO pair lock"
    };
    out.push_str(&format!("clock:  {clock}; {lock}\n"));
}

/// The input line, then one line per supervised source (and its network counters).
fn input(out: &mut String, v: &Value) {
    let enc = &v["encoder"];
    let input = &v["input"];
    let state = match s(input, "state") {
        "slate" => format!("LOST (slate since {})", s(input, "since")),
        other => other.to_string(),
    };
    out.push_str(&format!(
        "input:  {} {}  grid {} fps, gop {} ms  frames {} dropped {} reanchors {}\n",
        s(input, "kind"),
        state,
        s(enc, "framerate"),
        n(enc, "gop_ms"),
        n(input, "frames_in"),
        n(input, "frames_dropped"),
        n(input, "reanchors"),
    ));
    for src in input["sources"].as_array().into_iter().flatten() {
        source(out, src);
    }
}

fn source(out: &mut String, src: &Value) {
    let error = src["last_error"]
        .as_str()
        .map(|e| format!("  last error: {e}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "  source {} {}: {}  timing {}  restarts {}{error}\n",
        s(src, "role"),
        s(src, "kind"),
        s(src, "state"),
        s(src, "timing"),
        n(src, "restarts"),
    ));
    let c = &src["counters"];
    if c.is_object() {
        out.push_str(&format!(
            "    packets lost {} reordered {} duplicated {} late {}  malformed {}  cc errors {}  PCR/PTS discontinuities {}/{}\n",
            n(c, "lost"),
            n(c, "reordered"),
            n(c, "duplicated"),
            n(c, "late"),
            n(c, "malformed"),
            n(c, "cc_errors"),
            n(c, "pcr_discontinuities"),
            n(c, "pts_discontinuities"),
        ));
    }
}

fn tracks(out: &mut String, v: &Value) {
    out.push_str("tracks:\n");
    for t in v["tracks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<8} {:<5} {:>6.2} fps {:>6} kbit/s  next seq {:<8} discontinuities {}\n",
            s(t, "name"),
            s(t, "kind"),
            t["fps"].as_f64().unwrap_or(0.0),
            n(t, "bitrate_bps") / 1000,
            n(t, "next_sequence"),
            n(t, "discontinuities"),
        ));
    }
}

/// Every output, each URL under it and each publisher task of that URL under the URL.
fn outputs(out: &mut String, v: &Value) {
    let outputs = v["outputs"].as_array().cloned().unwrap_or_default();
    if outputs.is_empty() {
        out.push_str("outputs: none configured\n");
    } else {
        out.push_str("outputs:\n");
    }
    for o in &outputs {
        out.push_str(&format!("  {} ({})\n", s(o, "name"), s(o, "protocol")));
        let urls = [
            ("primary", o.get("primary")),
            ("secondary", o.get("secondary")),
        ];
        for (dest, url) in urls {
            let Some(url) = url.and_then(Value::as_str) else {
                continue;
            };
            out.push_str(&format!("    {dest:<9} {url}\n"));
            let dests = o["destinations"].as_array().cloned().unwrap_or_default();
            let mine: Vec<&Value> = dests.iter().filter(|d| s(d, "dest") == dest).collect();
            if mine.is_empty() {
                out.push_str("      (no publisher task)\n");
            }
            for d in mine {
                destination(out, d);
            }
        }
    }
}

/// One publisher task (URL × track).
fn destination(out: &mut String, d: &Value) {
    out.push_str(&format!(
        "      {:<8} {:<11} tries {:<3} sent {:<10} backlog {} / {}  dropped {}  resent {}{}\n",
        s(d, "track"),
        s(d, "state"),
        n(d, "attempts"),
        human_bytes(n(d, "bytes_sent")),
        n(d, "backlog_fragments"),
        human_bytes(n(d, "backlog_bytes")),
        n(d, "dropped_fragments"),
        n(d, "resent_fragments"),
        d.get("last_error")
            .and_then(Value::as_str)
            .map(|e| format!("  last error: {e}"))
            .unwrap_or_default(),
    ));
}

/// The `[publish] memory` budget; no line when the document has no figures.
fn publish(out: &mut String, v: &Value) {
    if let Some(p) = v.get("publish").filter(|p| p.is_object()) {
        out.push_str(&format!(
            "publish memory: {} of {} ([publish] memory)\n",
            human_bytes(n(p, "memory_used_bytes")),
            human_bytes(n(p, "memory_limit_bytes")),
        ));
    }
}

/// The origin's address, window and segments, and its disk tier when it has one.
fn origin(out: &mut String, v: &Value) {
    let origin = &v["origin"];
    let tracks = origin["tracks"].as_array().cloned().unwrap_or_default();
    let segments: Vec<String> = tracks
        .iter()
        .map(|t| format!("{} {}", s(t, "name"), n(t, "segments")))
        .collect();
    out.push_str(&format!(
        "origin: http://{}/live/master.m3u8  DVR window {}  segments: {}\n",
        s(origin, "listen"),
        human_duration(n(origin, "dvr_window_s")),
        segments.join(", ")
    ));
    if origin["disk_enabled"].as_bool() == Some(true) {
        out.push_str(&format!(
            "        disk {} in {} files, {} errors; requests {} (denied {})\n",
            human_bytes(n(origin, "disk_bytes")),
            n(origin, "disk_files"),
            n(origin, "disk_errors"),
            n(origin, "requests"),
            n(origin, "denied_requests"),
        ));
    }
}

/// The config file, its reloads and the accepted changes that wait for a restart.
fn config(out: &mut String, v: &Value) {
    let config = &v["config"];
    out.push_str(&format!(
        "config: {}  reloads {} (rejected {})\n",
        s(config, "path"),
        n(config, "reloads"),
        n(config, "reload_failures")
    ));
    if let Some(pending) = config["restart_needed"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let names: Vec<&str> = pending.iter().filter_map(Value::as_str).collect();
        out.push_str(&format!(
            "        restart needed to apply: {}\n",
            names.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer on 127.0.0.1 that answers `head` and then writes `chunk` every `pause` until the
    /// client goes away; returns its address.
    fn endless_peer(head: &'static [u8], chunk: usize, pause: Duration) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        std::thread::spawn(move || {
            let Ok((mut peer, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = peer.read(&mut request);
            let data = vec![b'x'; chunk];
            let _ = peer.write_all(head);
            while peer.write_all(&data).is_ok() {
                std::thread::sleep(pause);
            }
        });
        addr
    }

    /// `get_within` on a thread: its result, or a panic if it has not returned by `limit`.
    fn get_by(
        addr: SocketAddr,
        timeout: Duration,
        limit: Duration,
    ) -> (Result<String, String>, Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(get_within(addr, "/status", timeout, MAX_ANSWER_BYTES));
        });
        let result = rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("twincast status still reading after {limit:?}"));
        (result, started.elapsed())
    }

    #[test]
    fn an_answer_that_never_ends_is_cut_at_the_cap_and_names_the_address() {
        let addr = endless_peer(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
            64 * 1024,
            Duration::ZERO,
        );
        let (result, _) = get_by(addr, Duration::from_secs(15), Duration::from_secs(20));
        let e = result.expect_err("an endless answer is an error");
        assert!(e.contains(&addr.to_string()), "{e}");
        assert!(e.contains("exceeds 16 MiB"), "{e}");
    }

    #[test]
    fn a_whole_answer_within_the_bounds_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        std::thread::spawn(move || {
            if let Ok((mut peer, _)) = listener.accept() {
                let mut request = [0u8; 1024];
                let _ = peer.read(&mut request);
                let _ = peer.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                );
            }
        });
        let (result, _) = get_by(addr, TIMEOUT, Duration::from_secs(20));
        assert_eq!(result, Ok("{}".to_string()));
    }

    #[test]
    fn a_trickling_answer_ends_at_the_total_deadline() {
        // A byte every 50 ms: each read gets something long before a per-read timeout.
        let addr = endless_peer(b"HTTP/1.1 200 OK\r\n", 1, Duration::from_millis(50));
        let timeout = Duration::from_millis(600);
        let (result, took) = get_by(addr, timeout, Duration::from_secs(20));
        let e = result.expect_err("an unfinished answer is an error");
        assert!(e.contains(&addr.to_string()), "{e}");
        assert!(e.contains("no complete answer within 600 ms"), "{e}");
        assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        // A chunk boundary inside "…" (e2 80 a6): whole again once joined.
        let body = b"2\r\n\xe2\x80\r\n1;ext\r\n\xa6\r\n0\r\n\r\n";
        assert_eq!(String::from_utf8_lossy(&dechunk(body)), "…");
        assert_eq!(dechunk(b"5\r\nab"), b"");
    }

    #[test]
    fn renders_a_minimal_document() {
        let v: Value = serde_json::json!({
            "encoder": {"name": "hall-a", "pair": "main", "version": "0.1.0", "uptime_s": 3700},
            "ready": true,
            "clock": null,
            "outputs": [],
            "summary": "1 rendition 30 fps"
        });
        let text = render(&v);
        assert!(text.starts_with("hall-a (pair main)  twincast 0.1.0  up 1h01m  ready\n"));
        assert!(text.contains("outputs: none configured"));
        assert!(text.contains("summary: 1 rendition 30 fps"));
        assert!(
            !text.contains("publish memory"),
            "no line without the figures"
        );
    }

    #[test]
    fn renders_the_publish_memory_budget_on_one_line() {
        let v: Value = serde_json::json!({
            "encoder": {"name": "hall-a", "pair": "main", "version": "0.1.0", "uptime_s": 5},
            "outputs": [],
            "publish": {"memory_used_bytes": 3 << 20, "memory_limit_bytes": 192 << 20},
            "summary": ""
        });
        let text = render(&v);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("publish memory"))
            .collect();
        assert_eq!(
            lines,
            ["publish memory: 3.0 MiB of 192.0 MiB ([publish] memory)"]
        );
    }

    /// A status with every section and every optional line, to pin the whole text: the
    /// rendering is an interface (scripts read it), so a refactor must not change one byte.
    fn full_document() -> Value {
        serde_json::json!({
            "encoder": {"name": "hall-a", "pair": "main", "version": "0.1.0", "uptime_s": 93784,
                        "framerate": "30000/1001", "gop_ms": 2000},
            "ready": false,
            "clock": {"synchronised": true, "estimated_error_us": 1234},
            "pair_locked": true,
            "input": {
                "kind": "rtp", "state": "slate", "since": "2026-12-02T18:00:00.000Z",
                "frames_in": 1000, "frames_dropped": 3, "reanchors": 1,
                "sources": [
                    {"role": "input", "kind": "rtp", "state": "backoff", "timing": "rtcp",
                     "restarts": 2, "last_error": "socket closed",
                     "counters": {"lost": 5, "reordered": 4, "duplicated": 3, "late": 2,
                                  "malformed": 1, "cc_errors": 6, "pcr_discontinuities": 7,
                                  "pts_discontinuities": 8}},
                    {"role": "audio", "kind": "test", "state": "running", "timing": "arrival",
                     "restarts": 0, "last_error": null, "counters": null}
                ]
            },
            "tracks": [
                {"name": "720p", "kind": "video", "fps": 29.97, "bitrate_bps": 2_500_000,
                 "next_sequence": 42, "discontinuities": 1},
                {"name": "audio", "kind": "audio", "fps": 46.875, "bitrate_bps": 128_000,
                 "next_sequence": 43, "discontinuities": 0}
            ],
            "outputs": [
                {"name": "cloud", "protocol": "rtmp", "primary": "rtmp://a/live",
                 "secondary": "rtmp://b/live",
                 "destinations": [
                    {"dest": "primary", "track": "720p", "state": "publishing", "attempts": 1,
                     "bytes_sent": 5_000_000, "backlog_fragments": 2, "backlog_bytes": 300_000,
                     "dropped_fragments": 0, "resent_fragments": 1, "last_error": null},
                    {"dest": "primary", "track": "audio", "state": "backoff", "attempts": 3,
                     "bytes_sent": 900, "backlog_fragments": 0, "backlog_bytes": 0,
                     "dropped_fragments": 4, "resent_fragments": 0,
                     "last_error": "connection refused"}
                 ]},
                {"name": "smooth", "protocol": "smooth", "primary": "http://c/ingest",
                 "secondary": null, "destinations": []}
            ],
            "publish": {"memory_used_bytes": 300_900, "memory_limit_bytes": 192 << 20},
            "origin": {"listen": "0.0.0.0:8080", "dvr_window_s": 7200, "disk_enabled": true,
                       "disk_bytes": 3u64 << 30, "disk_files": 1800, "disk_errors": 0,
                       "requests": 12345, "denied_requests": 6,
                       "tracks": [{"name": "720p", "segments": 1800},
                                  {"name": "audio", "segments": 1799}]},
            "config": {"path": "/etc/twincast/twincast.toml", "reloads": 2, "reload_failures": 1,
                       "restart_needed": ["input.kind", "origin.listen"]},
            "summary": "1 rendition 30 fps, input lost (slate since 18:00:00 UTC)"
        })
    }

    #[test]
    fn renders_every_section_byte_for_byte() {
        let expected = concat!(
            "hall-a (pair main)  twincast 0.1.0  up 1d02h03m  starting\n",
            "clock:  synchronised, estimated error 1.234 ms; pair lock OK\n",
            "input:  rtp LOST (slate since 2026-12-02T18:00:00.000Z)  grid 30000/1001 fps, gop 2000 ms  frames 1000 dropped 3 reanchors 1\n",
            "  source input rtp: backoff  timing rtcp  restarts 2  last error: socket closed\n",
            "    packets lost 5 reordered 4 duplicated 3 late 2  malformed 1  cc errors 6  PCR/PTS discontinuities 7/8\n",
            "  source audio test: running  timing arrival  restarts 0\n",
            "tracks:\n",
            "  720p     video  29.97 fps   2500 kbit/s  next seq 42       discontinuities 1\n",
            "  audio    audio  46.88 fps    128 kbit/s  next seq 43       discontinuities 0\n",
            "outputs:\n",
            "  cloud (rtmp)\n",
            "    primary   rtmp://a/live\n",
            "      720p     publishing  tries 1   sent 4.8 MiB    backlog 2 / 293.0 KiB  dropped 0  resent 1\n",
            "      audio    backoff     tries 3   sent 900 B      backlog 0 / 0 B  dropped 4  resent 0  last error: connection refused\n",
            "    secondary rtmp://b/live\n",
            "      (no publisher task)\n",
            "  smooth (smooth)\n",
            "    primary   http://c/ingest\n",
            "      (no publisher task)\n",
            "publish memory: 293.8 KiB of 192.0 MiB ([publish] memory)\n",
            "origin: http://0.0.0.0:8080/live/master.m3u8  DVR window 2h00m  segments: 720p 1800, audio 1799\n",
            "        disk 3.0 GiB in 1800 files, 0 errors; requests 12345 (denied 6)\n",
            "config: /etc/twincast/twincast.toml  reloads 2 (rejected 1)\n",
            "        restart needed to apply: input.kind, origin.listen\n",
            "summary: 1 rendition 30 fps, input lost (slate since 18:00:00 UTC)\n",
        );
        assert_eq!(render(&full_document()), expected);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_duration(59), "0m59s");
        assert_eq!(human_duration(90061), "1d01h01m");
    }
}
