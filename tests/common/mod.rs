//! Shared harness for end-to-end tests: start the real daemon on free loopback ports, wait on
//! conditions with deadlines, fetch over HTTP, and read CMAF boxes with a small independent
//! parser (written from ISO/IEC 14496-12, not from our writer).
#![allow(dead_code)]

pub mod captions;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// End-to-end tests that start daemons run one at a time (a shipped-ladder daemon costs ~60 %
/// of a core; CI has two).
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free port on 127.0.0.1 (TCP and UDP, bound and released), never the same twice in one
/// test process, and below the kernel's ephemeral range (32768–60999 by default): there a
/// port a test hands to a peer that is down or restarting can be taken meanwhile as the
/// source port of one of the daemon's outgoing connections (even a connection to that very
/// port, a TCP self-connect), or handed out again by a later bind to port 0.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test process starts at its own offset (tests of different binaries never overlap
    // in time, but a leftover peer of an earlier one may still hold a port).
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A config file derived from the shipped one with other ports (and optional replacements).
pub fn config_from_shipped(
    dir: &Path,
    name: &str,
    origin_port: u16,
    control_port: u16,
    replace: &[(&str, &str)],
) -> PathBuf {
    let mut text =
        std::fs::read_to_string(repo_root().join("config/twincast.toml")).expect("shipped config");
    text = text.replace("127.0.0.1:8080", &format!("127.0.0.1:{origin_port}"));
    text = text.replace("127.0.0.1:9090", &format!("127.0.0.1:{control_port}"));
    for (from, to) in replace {
        assert!(text.contains(from), "config has no {from:?}");
        text = text.replace(from, to);
    }
    if !text.contains("dvr_dir") {
        let dvr_dir = dir.join(format!("dvr-{name}")).display().to_string();
        text = text.replace(
            "[origin]\n",
            &format!("[origin]\ndvr_dir = \"{dvr_dir}\"\n"),
        );
    }
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write config");
    path
}

/// The small ladder for tests where size does not matter: two renditions, cheap to encode.
pub const SMALL_LADDER: &str = r#"
[[rendition]]
name = "240p"
width = 426
height = 240
bitrate_kbps = 400

[[rendition]]
name = "180p"
width = 320
height = 180
bitrate_kbps = 250
"#;

/// `text` (a config) without the `[[rendition]]` named `name`, for tests where one rung of
/// [`SMALL_LADDER`] is enough.
pub fn without_rendition(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("[[rendition]]\nname = \"{name}\""))
        .unwrap_or_else(|| panic!("no {name} block"));
    let end = start
        + text[start..]
            .find("\n\n")
            .unwrap_or_else(|| panic!("no end of the {name} block"))
        + 2;
    let mut text = text.to_string();
    text.replace_range(start..end, "");
    text
}

/// Debian's libfaketime (`faketime`), to preload into the daemon; fails the test when it is
/// missing.
pub fn libfaketime() -> &'static str {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: scripts/install-deps installs Debian's faketime"
    );
    LIBFAKETIME
}

/// A config for a small, cheap daemon.
pub fn small_config(dir: &Path, name: &str, origin_port: u16, control_port: u16) -> PathBuf {
    small_config_with_input(
        dir,
        name,
        origin_port,
        control_port,
        "kind = \"test\"\naudio = \"test\"",
    )
}

/// A small config with other `[input]` lines (kind, uri, audio).
pub fn small_config_with_input(
    dir: &Path,
    name: &str,
    origin_port: u16,
    control_port: u16,
    input: &str,
) -> PathBuf {
    // The DVR tier lives in the test's directory, never in /var/lib.
    let dvr_dir = dir.join(format!("dvr-{name}")).display().to_string();
    let text = format!(
        r#"
[encoder]
name = "{name}"
pair = "test-pair"

[input]
{input}
width = 640
height = 360
framerate = "30/1"

[timeline]
gop = "1s"
fragment_gops = 1

{SMALL_LADDER}

[audio]
bitrate_kbps = 64
sample_rate = 48000
channels = 2

[origin]
listen = "127.0.0.1:{origin_port}"
dvr_window = "5m"
dvr_dir = "{dvr_dir}"

[control]
listen = "127.0.0.1:{control_port}"
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running daemon; SIGTERM and wait on drop.
pub struct Daemon {
    pub child: Child,
    pub origin: String,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, origin_port: u16, log: PathBuf) -> Daemon {
        Daemon::start_with_env(config, origin_port, log, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Like [`wait_for`], for a condition on this daemon: fails at once if the daemon exits,
    /// and a failure carries the exit status and the end of the daemon's log.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return v;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "waiting for {what}: {}\nthe daemon's log, last 60 of {} lines:\n{}",
                    match exited {
                        Some(status) => format!("the daemon exited ({status})"),
                        None => format!("timed out after {timeout:?}"),
                    },
                    log.lines().count(),
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// GET `url`: Some((status, body)) when the server answered.
pub fn http_get(url: &str) -> Option<(u16, Vec<u8>)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client.get(url).send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.bytes().ok()?.to_vec()))
}

pub fn get_ok(url: &str) -> Option<Vec<u8>> {
    match http_get(url) {
        Some((200, body)) => Some(body),
        _ => None,
    }
}

pub fn get_text(url: &str) -> Option<String> {
    get_ok(url).and_then(|b| String::from_utf8(b).ok())
}

/// Segment URIs of a media playlist, in order.
pub fn playlist_segments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

pub fn media_sequence(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What the test parser reads from one moof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentFacts {
    pub sequence: u32,
    pub tfdt: u64,
    pub sample_count: u32,
    pub durations: Vec<u32>,
    pub first_sample_sync: bool,
    /// First NAL unit types of the first sample (video only; empty for audio).
    pub first_sample_nal_types: Vec<u8>,
}

fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let (header, size) = if size == 1 {
            let s = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap()) as usize;
            (16, s)
        } else if size == 0 {
            (8, data.len() - pos)
        } else {
            (8, size)
        };
        assert!(
            size >= header && pos + size <= data.len(),
            "box {:?} overruns",
            String::from_utf8_lossy(&kind)
        );
        out.push((kind, &data[pos + header..pos + size]));
        pos += size;
    }
    assert_eq!(pos, data.len(), "trailing bytes after the last box");
    out
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Parses every moof/mdat pair in a segment.
pub fn parse_segment(data: &[u8], video: bool) -> Vec<FragmentFacts> {
    let top = boxes(data);
    let mut out = Vec::new();
    for (i, (kind, body)) in top.iter().enumerate() {
        if kind != b"moof" {
            continue;
        }
        let mut facts = FragmentFacts {
            sequence: 0,
            tfdt: 0,
            sample_count: 0,
            durations: vec![],
            first_sample_sync: false,
            first_sample_nal_types: vec![],
        };
        let mut first_size = 0usize;
        let mut data_offset = 0i64;
        for (k, b) in boxes(body) {
            match &k {
                b"mfhd" => facts.sequence = be32(b, 4),
                b"traf" => {
                    let mut default_flags = 0u32;
                    for (k2, b2) in boxes(b) {
                        match &k2 {
                            b"tfhd" => {
                                let flags = be32(b2, 0) & 0xff_ffff;
                                let mut at = 8;
                                for (bit, len) in [(1, 8), (2, 4), (8, 4), (0x10, 4)] {
                                    if flags & bit != 0 {
                                        at += len;
                                    }
                                }
                                if flags & 0x20 != 0 {
                                    default_flags = be32(b2, at);
                                }
                            }
                            b"tfdt" => {
                                facts.tfdt = if b2[0] == 1 {
                                    u64::from_be_bytes(b2[4..12].try_into().unwrap())
                                } else {
                                    u64::from(be32(b2, 4))
                                }
                            }
                            b"trun" => {
                                let flags = be32(b2, 0) & 0xff_ffff;
                                facts.sample_count = be32(b2, 4);
                                let mut at = 8;
                                if flags & 1 != 0 {
                                    data_offset = i64::from(be32(b2, at) as i32);
                                    at += 4;
                                }
                                let mut first_flags = None;
                                if flags & 4 != 0 {
                                    first_flags = Some(be32(b2, at));
                                    at += 4;
                                }
                                for s in 0..facts.sample_count {
                                    let mut sample_flags = default_flags;
                                    if flags & 0x100 != 0 {
                                        facts.durations.push(be32(b2, at));
                                        at += 4;
                                    }
                                    if flags & 0x200 != 0 {
                                        if s == 0 {
                                            first_size = be32(b2, at) as usize;
                                        }
                                        at += 4;
                                    }
                                    if flags & 0x400 != 0 {
                                        sample_flags = be32(b2, at);
                                        at += 4;
                                    }
                                    if flags & 0x800 != 0 {
                                        at += 4;
                                    }
                                    if s == 0 {
                                        let f = first_flags.unwrap_or(sample_flags);
                                        // sample_is_non_sync_sample is bit 16.
                                        facts.first_sample_sync = f & 0x1_0000 == 0;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if video {
            // data_offset is relative to the moof start (default-base-is-moof).
            let moof_start = top[..i].iter().map(|(_, b)| b.len() + 8).sum::<usize>();
            let start = moof_start + data_offset as usize;
            let sample = &data[start..start + first_size];
            let mut p = 0;
            while p + 4 < sample.len() {
                let len = be32(sample, p) as usize;
                facts.first_sample_nal_types.push(sample[p + 4] & 0x1f);
                p += 4 + len;
            }
        }
        out.push(facts);
    }
    out
}

/// Runs a command, returning (success, stdout, stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} could not run: {e} (run scripts/install-deps)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Daemon {
    /// Like [`Daemon::start`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(
        config: &Path,
        origin_port: u16,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_twincast"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start twincast");
        Daemon {
            child,
            origin: format!("http://127.0.0.1:{origin_port}"),
            log,
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }
}

/// Reads server-sent events from `url` (plain HTTP on loopback) until `stop` says so or the
/// timeout passes; returns (event, data) pairs.
pub fn read_sse(
    addr: &str,
    path: &str,
    timeout: Duration,
    mut stop: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    use std::io::{BufRead, BufReader};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for events");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send request");
    let mut reader = BufReader::new(stream);
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    let mut event = String::new();
    let mut line = String::new();
    while Instant::now() < deadline && !stop(&events) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                let l = line.trim_end();
                if let Some(e) = l.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    events.push((std::mem::take(&mut event), d.to_string()));
                }
            }
            Err(_) => continue,
        }
    }
    events
}

/// GET `url` from a given local address (allow-list tests bind clients to 127.0.0.x); the
/// status code when the server answered.
pub fn status_from(local: std::net::IpAddr, url: &str) -> Option<u16> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .local_address(local)
        .build()
        .ok()?;
    client.get(url).send().ok().map(|r| r.status().as_u16())
}

/// Resident set size of a process in KiB (Linux /proc).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free UDP port on 127.0.0.1 (bound and released; tests run serially).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// A test `$NOTIFY_SOCKET`: a unix datagram socket that records every message with the time it
/// arrived.
pub struct NotifySocket {
    pub path: PathBuf,
    messages: std::sync::Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        let messages = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), text));
            }
        });
        NotifySocket { path, messages }
    }

    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A UDP relay between a sender and the daemon that can be switched off (a pulled cable: the
/// sender keeps sending, nothing arrives) and on again; records when it forwarded the first
/// datagram after being switched on.
pub struct UdpRelay {
    pub listen_port: u16,
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    first_after_on: std::sync::Arc<Mutex<Option<std::time::SystemTime>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl UdpRelay {
    pub fn start(to_port: u16) -> UdpRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind relay");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("relay timeout");
        let listen_port = socket.local_addr().expect("relay address").port();
        let on = std::sync::Arc::new(AtomicBool::new(true));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let first_after_on = std::sync::Arc::new(Mutex::new(None));
        let (on2, stop2, first2) = (on.clone(), stop.clone(), first_after_on.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let to = format!("127.0.0.1:{to_port}");
            while !stop2.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if on2.load(Ordering::Relaxed) {
                    let mut first = first2.lock().unwrap_or_else(|e| e.into_inner());
                    if first.is_none() {
                        *first = Some(std::time::SystemTime::now());
                    }
                    drop(first);
                    let _ = socket.send_to(&buf[..n], &to);
                }
            }
        });
        UdpRelay {
            listen_port,
            on,
            first_after_on,
            stop,
        }
    }

    pub fn set_on(&self, on: bool) {
        if on {
            *self
                .first_after_on
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.on.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the first datagram after the last `set_on(true)` was forwarded.
    pub fn first_forwarded(&self) -> Option<std::time::SystemTime> {
        *self
            .first_after_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Decodes `init + segment` with ffprobe and returns each frame's (epoch seconds, mean luma).
pub fn frame_lumas(dir: &Path, init: &[u8], segment: &[u8]) -> Vec<(f64, f64)> {
    let path = dir.join("lumas.mp4");
    let mut bytes = init.to_vec();
    bytes.extend_from_slice(segment);
    std::fs::write(&path, bytes).expect("write segment file");
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("movie={},signalstats", path.display()),
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ],
    );
    assert!(ok, "ffprobe could not decode the segment: {err}");
    out.lines()
        .filter_map(|l| {
            let (t, y) = l.split_once(',')?;
            Some((t.trim().parse().ok()?, y.trim().parse().ok()?))
        })
        .collect()
}

/// Whether a CMAF segment's `styp` carries the brand `slat` (filler, DASH-IF ingest).
pub fn has_slate_brand(segment: &[u8]) -> bool {
    // styp is the first box: size(4) 'styp' major(4) minor(4) compatible brands…
    if segment.len() < 16 || &segment[4..8] != b"styp" {
        return false;
    }
    let size = u32::from_be_bytes([segment[0], segment[1], segment[2], segment[3]]) as usize;
    let end = size.min(segment.len());
    segment[16..end].chunks_exact(4).any(|b| b == b"slat")
}

/// GET `url` as JSON.
pub fn get_json(url: &str) -> Option<serde_json::Value> {
    get_ok(url).and_then(|b| serde_json::from_slice(&b).ok())
}

/// A loopback UDP port p with p+1 free too (RTP and its RTCP).
pub fn free_udp_pair() -> u16 {
    for _ in 0..100 {
        let Ok(a) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(p) = a.local_addr().map(|a| a.port()) else {
            continue;
        };
        if p < 65535 && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free UDP ports on loopback");
}

/// xorshift64: deterministic per seed (tests print the seed so a failure can be replayed).
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock (never 0).
    pub fn from_clock() -> Rng {
        Rng(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The network of a pair: datagrams to `listen` (and `listen + 1`, RTCP) go to box A's port at once
/// and to box B's port after 0–15 ms of random jitter (docs/design/platform.md, *Checking a pair*:
/// the two boxes' paths differ). With `keep_order` the jitter never reorders (plain MPEG-TS over
/// UDP has nothing to repair order with); without it packets overtake each other (the RTP reorder
/// window repairs that). Without `rtcp` the relay does not carry `listen + 1` (an RTP feed whose
/// sender reports are lost on the way). Stops when dropped.
pub struct JitterRelay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl JitterRelay {
    pub fn start(
        listen: u16,
        a: u16,
        b: u16,
        seed: u64,
        keep_order: bool,
        rtcp: bool,
    ) -> JitterRelay {
        use std::cmp::Reverse;
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for off in [0u16, 1].into_iter().take(if rtcp { 2 } else { 1 }) {
            let rx = std::net::UdpSocket::bind(("127.0.0.1", listen + off)).expect("relay port");
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("relay sender");
            let to_a = std::net::SocketAddr::from(([127, 0, 0, 1], a + off));
            let to_b = std::net::SocketAddr::from(([127, 0, 0, 1], b + off));
            let stop = stop.clone();
            let mut rng = Rng(seed ^ (u64::from(off) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            threads.push(std::thread::spawn(move || {
                // Datagrams for B by due time (then arrival order).
                let mut due: std::collections::BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> =
                    std::collections::BinaryHeap::new();
                let mut buf = vec![0u8; 9000];
                let (mut n, mut last_due) = (0u64, Instant::now());
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    while let Some(Reverse((at, _, _))) = due.peek() {
                        if *at > now {
                            break;
                        }
                        if let Some(Reverse((_, _, bytes))) = due.pop() {
                            let _ = tx.send_to(&bytes, to_b);
                        }
                    }
                    let wait = due
                        .peek()
                        .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
                        .unwrap_or(Duration::from_millis(50))
                        .max(Duration::from_micros(200));
                    let _ = rx.set_read_timeout(Some(wait));
                    if let Ok(len) = rx.recv(&mut buf) {
                        let _ = tx.send_to(&buf[..len], to_a);
                        let mut at = Instant::now() + Duration::from_micros(rng.next() % 15_001);
                        if keep_order {
                            at = at.max(last_due);
                        }
                        last_due = at;
                        n += 1;
                        due.push(Reverse((at, n, buf[..len].to_vec())));
                    }
                }
            }));
        }
        JitterRelay { stop, threads }
    }
}

impl Drop for JitterRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// threefive's version: pinned, so a new release cannot change what the tests read.
pub const THREEFIVE: &str = "threefive==3.1.5";

/// A venv under target/ with the PyPI `threefive` package (the independent SCTE-35 parser and
/// MPEG-TS injector of the signal tests), created once.
pub fn threefive_venv() -> PathBuf {
    let venv = repo_root().join("target/threefive-venv");
    let marker = venv.join(".installed-3.1.5");
    if !marker.exists() {
        let (ok, _, err) = run("python3", &["-m", "venv", venv.to_str().expect("utf-8")]);
        assert!(ok, "python3 -m venv: {err}");
        let pip = venv.join("bin/pip");
        let (ok, out, err) = run(
            pip.to_str().expect("utf-8"),
            &["install", "--quiet", THREEFIVE],
        );
        assert!(ok, "pip install {THREEFIVE}: {out}{err}");
        std::fs::write(&marker, "").expect("marker");
    }
    venv
}
