//! Real peers for the publish tests, all on 127.0.0.1: nginx with the RTMP module (recording
//! what it receives; its default configuration, or tuned to acknowledge every 64 KiB),
//! libavformat's RTMP server (`ffmpeg -listen 1`), Node-Media-Server from npm, an HTTP
//! ingest receiver that records request bodies as they arrive and can be stopped, restarted
//! and stalled, a TCP proxy that can stop forwarding, and a TLS-terminating proxy with a test
//! CA (for RTMPS).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// An nginx process with one RTMP application `live` that records every publish.
pub struct Nginx {
    pub port: u16,
    pub dir: PathBuf,
    pub records: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// nginx-rtmp tuned for the older publish tests: it acknowledges every 64 KiB received
    /// (its default is 5 MB). Kept as a second peer next to [`Nginx::start_default`]: a
    /// server that acknowledges often is the case where the publisher's RTMP
    /// acknowledgement witness can judge.
    pub fn start(dir: &Path, port: u16) -> Nginx {
        Nginx::start_with(dir, port, "chunk_size 4096;\n        ack_window 65536;")
    }

    /// nginx-rtmp with its default configuration (only the listener and a recording
    /// application): the way a new user runs it.
    pub fn start_default(dir: &Path, port: u16) -> Nginx {
        Nginx::start_with(dir, port, "")
    }

    fn start_with(dir: &Path, port: u16, server_lines: &str) -> Nginx {
        let records = dir.join("records");
        std::fs::create_dir_all(&records).expect("record dir");
        let conf = format!(
            r#"load_module {RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        {server_lines}
        application live {{
            live on;
            record all;
            record_path {records};
            record_unique on;
        }}
    }}
}}
"#,
            dir = dir.display(),
            records = records.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut n = Nginx {
            port,
            dir: dir.to_path_buf(),
            records,
            child: None,
        };
        n.restart();
        n
    }

    /// Starts nginx (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGKILL: the peer vanishes without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Recordings (`.flv`) of `stream`, oldest first.
    pub fn recordings(&self, stream: &str) -> Vec<PathBuf> {
        recordings_in(&self.records, stream)
    }
}

/// Recordings (`.flv`) of `stream` in an nginx record directory, oldest first.
pub fn recordings_in(records: &Path, stream: &str) -> Vec<PathBuf> {
    let prefix = format!("{stream}-");
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(records)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".flv"))
                })
                .map(|p| {
                    let t = std::fs::metadata(&p)
                        .and_then(|m| m.created().or_else(|_| m.modified()))
                        .unwrap_or(std::time::UNIX_EPOCH);
                    (t, p)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Video and audio packet times (ms) of an FLV file, read by ffprobe.
#[derive(Debug, Default, Clone)]
pub struct FlvFacts {
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub audio_codec: String,
    pub video_ms: Vec<i64>,
    /// Size of each video packet (same order as `video_ms`): a fingerprint of the frame.
    pub video_size: Vec<u64>,
    pub audio_ms: Vec<i64>,
}

pub fn probe_flv(path: &Path) -> FlvFacts {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
        ])
        .args([
            "-show_entries",
            "packet=codec_type,pts,size",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = FlvFacts::default();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        match cols.as_slice() {
            ["video", pts, size] => {
                if let (Ok(v), Ok(n)) = (pts.parse(), size.parse()) {
                    f.video_ms.push(v);
                    f.video_size.push(n);
                }
            }
            ["audio", pts, _] => {
                if let Ok(v) = pts.parse() {
                    f.audio_ms.push(v)
                }
            }
            [name, "video", w, h] => {
                f.video_codec = name.to_string();
                f.width = w.parse().unwrap_or(0);
                f.height = h.parse().unwrap_or(0);
            }
            [name, "audio", ..] => f.audio_codec = name.to_string(),
            _ => {}
        }
    }
    f
}

/// Aligns each primary recording on the secondary's by frame sizes (nginx-rtmp writes every
/// recording zero-based from its first frame, so absolute times are not in the files) and
/// checks that both carry the same frames with the same timestamps. Returns the secondary
/// frame indexes the primary's recordings cover.
pub fn align_on(sec: &FlvFacts, prim: &[PathBuf], w: u32, h: u32, r: &str) -> BTreeSet<usize> {
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

/// Decodes a file fully with ffmpeg; true when it reports no error.
pub fn decodes(path: &Path) -> bool {
    Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Body as received so far (de-chunked).
    pub body: Vec<u8>,
    pub complete: bool,
    pub chunked: bool,
    pub started: Instant,
    /// Connection number (requests on one keep-alive connection share it).
    pub conn: u64,
    /// The `mfhd` sequence number of every `moof` in the body, in order (filled by a counting
    /// receiver, [`Receiver::start_counting`], which keeps no body).
    pub sequences: Vec<u32>,
    scan: BoxScan,
}

/// Reads the top-level boxes of a body as it arrives, keeping only the `mfhd` sequence of each
/// `moof` (ISO/IEC 14496-12 §4.2 box header, §8.8.5 `mfhd`); everything else is skipped.
#[derive(Debug, Clone, Default)]
struct BoxScan {
    /// The start of the current box (its header, and for a `moof` its `mfhd`), up to 24 bytes.
    pending: Vec<u8>,
    /// Bytes of the current box still to skip.
    skip: u64,
}

/// The `moof` sequences of a body that arrives in `parts` (the counting receiver's scanner).
pub fn scan_sequences(parts: &[&[u8]]) -> Vec<u32> {
    let mut scan = BoxScan::default();
    let mut out = Vec::new();
    for part in parts {
        scan.feed(part, &mut out);
    }
    out
}

impl BoxScan {
    /// Header bytes to read before the box can be judged: 8, 16 with a 64-bit size, and the
    /// `mfhd` of a `moof` on top.
    fn header_len(&self) -> usize {
        let Some(h) = self.pending.get(..8) else {
            return 8;
        };
        let large = h[..4] == [0, 0, 0, 1];
        let moof = &h[4..8] == b"moof";
        (if large { 16 } else { 8 }) + if moof { 16 } else { 0 }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u32>) {
        loop {
            let n = data
                .len()
                .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            data = &data[n..];
            self.skip -= n as u64;
            if data.is_empty() {
                return;
            }
            let take = (self.header_len() - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            let header = self.header_len();
            if self.pending.len() < header {
                continue;
            }
            let size = match u32::from_be_bytes(self.pending[..4].try_into().unwrap()) {
                0 => u64::MAX,
                1 => u64::from_be_bytes(self.pending[8..16].try_into().unwrap()),
                n => u64::from(n),
            };
            if &self.pending[4..8] == b"moof" {
                let seq = &self.pending[header - 4..header];
                out.push(u32::from_be_bytes(seq.try_into().unwrap()));
            }
            self.skip = size.saturating_sub(header as u64);
            self.pending.clear();
        }
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Vec<Request>,
    /// Keep no bodies, only the `moof` sequence numbers (for hour-long runs).
    counting: bool,
    /// When the receiver last answered a request (on any connection).
    answered_at: Option<Instant>,
    conns: Vec<TcpStream>,
    next_conn: u64,
}

/// An HTTP/1.1 ingest receiver (Smooth and CMAF ingest).
pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<ReceiverState>>,
    running: Arc<AtomicBool>,
    pub stall: Arc<AtomicBool>,
    /// Status code answered to every request (200 normally).
    pub answer: Arc<Mutex<u16>>,
}

impl Receiver {
    /// A receiver that keeps no body, only each request's `moof` sequence numbers
    /// ([`Request::sequences`]): for the soak, whose hours of media would not fit in memory.
    pub fn start_counting(port: u16) -> Receiver {
        let r = Receiver::new(port);
        r.state.lock().unwrap().counting = true;
        r.restart();
        r
    }

    pub fn start(port: u16) -> Receiver {
        let r = Receiver::new(port);
        r.restart();
        r
    }

    fn new(port: u16) -> Receiver {
        Receiver {
            port,
            state: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
            stall: Arc::new(AtomicBool::new(false)),
            answer: Arc::new(Mutex::new(200)),
        }
    }

    pub fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let state = self.state.clone();
        let stall = self.stall.clone();
        let answer = self.answer.clone();
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let id = {
                            let mut st = state.lock().unwrap();
                            st.next_conn += 1;
                            if let Ok(c) = s.try_clone() {
                                st.conns.push(c);
                            }
                            st.next_conn
                        };
                        let (state, running, stall, answer) = (
                            state.clone(),
                            running.clone(),
                            stall.clone(),
                            answer.clone(),
                        );
                        std::thread::spawn(move || serve(s, id, state, running, stall, answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
    }

    /// Closes the listener and every connection (like a crashed server).
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        let mut st = self.state.lock().unwrap();
        for c in st.conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        drop(st);
        std::thread::sleep(Duration::from_millis(100));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// When the receiver last answered a request. With `stall` set it still answers what it
    /// had read already, so a stall begins for the publisher at the later of the two.
    pub fn answered_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().answered_at
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn epoch_ms(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn rx_trace(line: &str) {
    use std::io::Write as _;
    if let Some(path) = std::env::var_os("TWINCAST_RX_TRACE")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn serve(
    mut s: TcpStream,
    conn: u64,
    state: Arc<Mutex<ReceiverState>>,
    running: Arc<AtomicBool>,
    stall: Arc<AtomicBool>,
    answer: Arc<Mutex<u16>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let mut read_more = |s: &mut TcpStream, buf: &mut Vec<u8>| -> bool {
        while stall.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !running.load(Ordering::SeqCst) {
            return false;
        }
        let t0 = std::time::SystemTime::now();
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                rx_trace(&format!(
                    "{conn} {} {} {n}",
                    epoch_ms(t0),
                    epoch_ms(std::time::SystemTime::now())
                ));
                buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    };
    loop {
        // Head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !read_more(&mut s, &mut buf) {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        rx_trace(&format!(
            "{conn} HEAD {}",
            head.lines().next().unwrap_or("")
        ));
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let mut length = 0usize;
        let mut chunked = false;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                    _ => {}
                }
            }
        }
        let index = {
            let mut st = state.lock().unwrap();
            st.requests.push(Request {
                method,
                path,
                body: Vec::new(),
                complete: false,
                chunked,
                started: Instant::now(),
                conn,
                sequences: Vec::new(),
                scan: BoxScan::default(),
            });
            st.requests.len() - 1
        };
        let append = |data: &[u8]| {
            let mut st = state.lock().unwrap();
            let counting = st.counting;
            let r = &mut st.requests[index];
            if counting {
                r.scan.feed(data, &mut r.sequences);
            } else {
                r.body.extend_from_slice(data);
            }
        };
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if !read_more(&mut s, &mut buf) {
                        return;
                    }
                };
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16)
                        .unwrap_or(0);
                buf.drain(..line_end + 2);
                while buf.len() < size + 2 {
                    if !read_more(&mut s, &mut buf) {
                        return;
                    }
                }
                if size == 0 {
                    buf.drain(..2);
                    break;
                }
                append(&buf[..size]);
                buf.drain(..size + 2);
            }
        } else {
            while buf.len() < length {
                if !read_more(&mut s, &mut buf) {
                    return;
                }
            }
            append(&buf[..length]);
            buf.drain(..length);
        }
        let code = *answer.lock().unwrap();
        if !running.load(Ordering::SeqCst) {
            return;
        }
        state.lock().unwrap().requests[index].complete = true;
        let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
        if s.write_all(reply.as_bytes()).is_err() {
            return;
        }
        state.lock().unwrap().answered_at = Some(Instant::now());
    }
}

/// A TCP proxy that forwards to `target` until told to stop forwarding (then it neither
/// reads nor writes: a stalled peer).
pub struct Proxy {
    pub port: u16,
    pub forwarding: Arc<AtomicBool>,
    /// When bytes from the target (the server's answers: RTMP Acknowledgements, HTTP
    /// responses) were last passed on to the client.
    answered: Arc<Mutex<Option<Instant>>>,
}

impl Proxy {
    /// A TCP proxy on `port` to `target`. While `forwarding` is false nothing passes either
    /// way: what a direction had already read waits until forwarding resumes, so the stall
    /// starts the moment the flag is cleared.
    pub fn start(port: u16, target: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind proxy");
        let forwarding = Arc::new(AtomicBool::new(true));
        let answered = Arc::new(Mutex::new(None));
        let (fwd, ans) = (forwarding.clone(), answered.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                // While the target is down, a connect to it may pick the target's own port
                // as its source and connect to itself (TCP simultaneous open), which would
                // hold the port the restarted server needs.
                if server.local_addr().ok() == server.peer_addr().ok() {
                    continue;
                }
                for (mut from, mut to, answers) in [
                    (client.try_clone(), server.try_clone(), None),
                    (server.try_clone(), client.try_clone(), Some(ans.clone())),
                ]
                .into_iter()
                .filter_map(|(a, b, answers)| Some((a.ok()?, b.ok()?, answers)))
                {
                    let fwd = fwd.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 16 * 1024];
                        let hold = || {
                            while !fwd.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        };
                        loop {
                            hold();
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    hold();
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                    if let Some(a) = &answers {
                                        *a.lock().unwrap_or_else(|e| e.into_inner()) =
                                            Some(Instant::now());
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            port,
            forwarding,
            answered,
        }
    }

    /// When the server's bytes last reached the client.
    pub fn last_answer(&self) -> Option<Instant> {
        *self.answered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A test CA and a server certificate for "localhost" signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "twincast test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    TestCa {
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// A TLS-terminating proxy: TLS on `port` (certificate from `ca`), plain TCP to `target`.
pub fn tls_proxy(port: u16, target: u16, ca: &TestCa) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(ca.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.key_der.clone())),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind tls proxy");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                // A connect to itself (see [`Proxy::start`]) would hold the target's port.
                if server.local_addr().ok() == server.peer_addr().ok() {
                    return;
                }
                let _ = client.set_read_timeout(Some(Duration::from_millis(5)));
                let _ = server.set_read_timeout(Some(Duration::from_millis(5)));
                let mut tls = rustls::StreamOwned::new(conn, client);
                let mut server = server;
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let mut idle = true;
                    match tls.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            idle = false;
                            if server.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return,
                    }
                    match server.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            idle = false;
                            if tls.write_all(&buf[..n]).is_err() || tls.flush().is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return,
                    }
                    if idle {
                        std::thread::yield_now();
                    }
                }
            });
        }
    });
}

/// libavformat's RTMP server as a user runs it: `ffmpeg -listen 1 -i rtmp://… -c copy
/// out.flv`, defaults otherwise. It takes one publish and exits when it ends, so a
/// supervisor thread starts the next one (recording to the next file) until stopped.
pub struct FfmpegServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Arc<Mutex<Option<Child>>>,
    paused: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl FfmpegServer {
    pub fn start(dir: &Path, port: u16, stream: &str) -> FfmpegServer {
        std::fs::create_dir_all(dir).expect("ffmpeg dir");
        let s = FfmpegServer {
            port,
            dir: dir.to_path_buf(),
            child: Arc::default(),
            paused: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let (child, paused, stopped) = (s.child.clone(), s.paused.clone(), s.stopped.clone());
        let (dir, stream) = (dir.to_path_buf(), stream.to_string());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stopped.load(Ordering::SeqCst) {
                if paused.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                n += 1;
                let out = dir.join(format!("{stream}-{n:03}.flv"));
                // Its warnings (a non-monotonic timestamp it drops, say) go to a log beside
                // the recording.
                let log = std::fs::File::create(dir.join(format!("{stream}-{n:03}.log")))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null());
                let spawned = Command::new("ffmpeg")
                    .args(["-hide_banner", "-loglevel", "warning", "-listen", "1", "-i"])
                    .arg(format!("rtmp://127.0.0.1:{port}/live/{stream}"))
                    .args(["-c", "copy", "-y"])
                    .arg(&out)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn();
                let Ok(c) = spawned else { return };
                *child.lock().unwrap() = Some(c);
                loop {
                    let done = match child.lock().unwrap().as_mut() {
                        Some(c) => !matches!(c.try_wait(), Ok(None)),
                        None => true,
                    };
                    if done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == 0 {
                    let _ = std::fs::remove_file(&out);
                }
            }
        });
        // No readiness probe: a test connection would be the one publish it takes. The
        // daemon retries until it listens.
        s
    }

    /// Ends the running server (SIGTERM, SIGKILL after 5 s); no new one until
    /// [`FfmpegServer::restart`]. SIGTERM, not SIGKILL as for the other servers: ffmpeg
    /// holds seconds of media in its muxing queue and output buffer, which a SIGKILL throws
    /// away after the server had read it (no sender can resend what the server acknowledged
    /// reading further back than the two fragments the ingest specifications ask for).
    ///
    /// The child is taken out and signalled only while it has not been reaped (a zombie
    /// still holds its pid): a second `kill` of a reaped child's pid would signal whatever
    /// process got that pid since (seen: test runs of other suites ended by a SIGTERM).
    pub fn kill(&mut self) {
        self.paused.store(true, Ordering::SeqCst);
        let mut slot = self.child.lock().unwrap();
        if let Some(mut c) = slot.take() {
            if !matches!(c.try_wait(), Ok(None)) {
                return;
            }
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Recordings of `stream`, oldest first.
    pub fn recordings(&self, stream: &str) -> Vec<PathBuf> {
        let mut v = recordings_in(&self.dir, stream);
        v.sort();
        v
    }
}

impl Drop for FfmpegServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.kill();
    }
}

/// Where the npm peers of the tests live (installed from the lock file on first use).
pub fn npm_peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/npm")
}

/// `npm ci` in tests/peers/npm when its node_modules does not match the lock file.
pub fn npm_peers() -> PathBuf {
    static ONCE: Mutex<()> = Mutex::new(());
    let _once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = npm_peers_dir();
    let stamp = dir.join("node_modules/.twincast-lock");
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in {} failed", dir.display());
        std::fs::write(&stamp, &lock).expect("stamp");
    }
    dir
}

/// Starts of node-media-server before [`NodeMediaServer::restart`] gives up.
pub const NMS_STARTS: usize = 3;
/// How long one start of node-media-server may take to listen (node loads its modules
/// first: seconds on a loaded two-core box).
pub const NMS_LISTEN_WAIT: Duration = Duration::from_secs(20);

/// Node-Media-Server (npm `node-media-server`), a third RTMP server implementation, with
/// its shipped `bin/config.json` (defaults) and only the ports, the data directory and
/// automatic recording (its `--record-auto`, like nginx's `record all`) set on the command
/// line. Recordings: `<dir>/record/live/<stream>/<time>.flv`.
pub struct NodeMediaServer {
    pub port: u16,
    pub dir: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl NodeMediaServer {
    pub fn start(dir: &Path, port: u16, http_port: u16) -> NodeMediaServer {
        std::fs::create_dir_all(dir).expect("nms dir");
        let mut s = NodeMediaServer {
            port,
            dir: dir.to_path_buf(),
            http_port,
            child: None,
        };
        s.restart();
        s
    }

    /// Starts node-media-server (again) and waits until its RTMP port accepts a
    /// connection. A server that exits before it listens (a port of its other listeners
    /// taken meanwhile, a crash on a loaded box) is started again, up to
    /// [`NMS_STARTS`] times; one that neither listens nor exits within
    /// [`NMS_LISTEN_WAIT`] is killed and started again too. Panics with its log when no
    /// start listened.
    pub fn restart(&mut self) {
        let app = npm_peers().join("node_modules/node-media-server/bin/app.js");
        let mut tries = Vec::new();
        for _ in 0..NMS_STARTS {
            self.kill();
            let log_path = self.dir.join(format!(
                "nms-{}.log",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            let log = std::fs::File::create(&log_path).expect("nms log");
            let child = Command::new("node")
                .arg(&app)
                .args(["--bind", "127.0.0.1", "--rtmp-port"])
                .arg(self.port.to_string())
                .arg("--rtmps-port")
                .arg(free_port_here().to_string())
                .arg("--http-port")
                .arg(self.http_port.to_string())
                .arg("--https-port")
                .arg(free_port_here().to_string())
                .arg("--data-path")
                .arg(self.dir.join("data"))
                .arg("--record-path")
                .arg(self.dir.join("record"))
                .args(["--record-auto", "--no-admin"])
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start node-media-server");
            self.child = Some(child);
            let started = Instant::now();
            let outcome = loop {
                if let Some(c) = self.child.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    break format!("exited ({status}) before it listened");
                }
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                if started.elapsed() > NMS_LISTEN_WAIT {
                    break format!("did not listen within {NMS_LISTEN_WAIT:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprintln!(
                "node-media-server on port {}: {outcome}; log:\n{log}",
                self.port
            );
            tries.push(format!("{outcome}:\n{log}"));
        }
        panic!(
            "node-media-server did not listen on port {} in {NMS_STARTS} starts:\n{}",
            self.port,
            tries.join("\n")
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Recordings of `stream`, oldest first.
    pub fn recordings(&self, stream: &str) -> Vec<PathBuf> {
        let dir = self.dir.join("record/live").join(stream);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "flv"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for NodeMediaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port_here() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
