//! Shared pieces of the drivers' tests: hand-built init segments and fragments, a task fed
//! straight into its backlog, and a small recording HTTP receiver.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twincast_media::{Codec, Sample, TrackInfo};

use super::backlog::Backlog;
use super::{
    AUDIO, CmafSpec, MAX_BACKLOG_BYTES, ProtocolSpec, RtmpSpec, Shared, SmoothSpec, Task, TaskSpec,
    Unit, collector,
};
use crate::config::{CmafProfile, HttpMethod, Protocol, RtmpTimestamps};
use crate::hub::{Hub, InitSegment, PackagedFragment};
use crate::status::{DestStatus, Registry};

/// A video init segment whose avcC ends with `tag` (so two of them differ).
pub fn video_init(tag: u8, width: u32, bitrate: u32) -> Arc<InitSegment> {
    let info = TrackInfo {
        id: 1,
        name: "v".into(),
        timescale: 90_000,
        codec: Codec::H264 {
            avcc: vec![
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, tag, 1, 0, 4, 0x68, 0xee, 0x3c,
                0x80,
            ],
            width,
            height: width * 9 / 16,
        },
        bitrate,
    };
    let bytes = Bytes::from(twincast_media::mp4::write_init(&info));
    Arc::new(InitSegment { info, bytes })
}

pub fn audio_init(asc: [u8; 2]) -> Arc<InitSegment> {
    let info = TrackInfo {
        id: 2,
        name: AUDIO.into(),
        timescale: 48_000,
        codec: Codec::Aac {
            asc: asc.to_vec(),
            sample_rate: 48_000,
            channels: 2,
        },
        bitrate: 128_000,
    };
    let bytes = Bytes::from(twincast_media::mp4::write_init(&info));
    Arc::new(InitSegment { info, bytes })
}

/// Fragment `seq` (one second from the epoch second `seq`, two samples) of a track with
/// `timescale`, written against `init`. Its bytes read `seg<seq>`.
pub fn fragment(
    seq: u64,
    timescale: u32,
    init: Option<&Arc<InitSegment>>,
) -> Arc<PackagedFragment> {
    fragment_with_bytes(seq, timescale, init, Bytes::from(format!("seg{seq}")))
}

/// [`fragment`] whose hub bytes are `bytes` (boxes an output reads, such as `emsg`s).
pub fn fragment_with_bytes(
    seq: u64,
    timescale: u32,
    init: Option<&Arc<InitSegment>>,
    bytes: Bytes,
) -> Arc<PackagedFragment> {
    let t = u64::from(timescale);
    let half = timescale / 2;
    let samples = (0..2u64)
        .map(|i| Sample {
            dts: seq * t + i * u64::from(half),
            duration: half,
            cts_offset: 0,
            keyframe: i == 0,
            data: vec![0, 0, 0, 2, 0x65, seq as u8],
        })
        .collect();
    Arc::new(PackagedFragment {
        sequence: seq,
        base_dts: seq * t,
        duration: t,
        timescale: twincast_media::Timescale::new(timescale).expect("non-zero"),
        sample_count: 2,
        filler: false,
        bytes,
        media_bytes: 12,
        samples: Arc::new(samples),
        init: init.cloned(),
    })
}

pub fn unit(
    main: Option<Arc<PackagedFragment>>,
    audio: Option<Arc<PackagedFragment>>,
) -> Arc<Unit> {
    Arc::new(collector::unit(main, audio))
}

pub fn spec(protocol: Protocol, url: &str, track: &str) -> TaskSpec {
    TaskSpec {
        output: "o".into(),
        dest: "primary",
        track: track.into(),
        url: url.into(),
        url_safe: url.into(),
        protocol: match protocol {
            Protocol::Rtmp => ProtocolSpec::Rtmp(rtmp_spec(track)),
            Protocol::Smooth => ProtocolSpec::Smooth(SmoothSpec {
                all_tracks: vec![track.into()],
                probe_every: None,
                sparse_parent: None,
            }),
            Protocol::Cmaf => ProtocolSpec::Cmaf(CmafSpec {
                method: HttpMethod::Post,
                profile: CmafProfile::Generic,
                events_of: None,
            }),
        },
        key: None,
        backlog: Duration::from_secs(30),
        stall: Duration::from_secs(2),
    }
}

/// The RTMP part of [`spec`]: no audio, stream `o_<track>`, epoch timestamps, 30 fps.
pub fn rtmp_spec(track: &str) -> RtmpSpec {
    RtmpSpec {
        audio: None,
        stream_name: format!("o_{track}"),
        timestamps: RtmpTimestamps::Epoch,
        frame_rate: 30.0,
    }
}

/// The Smooth part of a Smooth task's spec.
pub fn smooth_of(task: &Task) -> SmoothSpec {
    match &task.spec.protocol {
        ProtocolSpec::Smooth(s) => s.clone(),
        other => panic!("not a Smooth task: {other:?}"),
    }
}

/// The CMAF part of a CMAF task's spec.
pub fn cmaf_of(task: &Task) -> CmafSpec {
    match &task.spec.protocol {
        ProtocolSpec::Cmaf(s) => s.clone(),
        other => panic!("not a CMAF task: {other:?}"),
    }
}

/// A task on a hub with one track `v` whose current init is `hub_init`.
pub fn task(spec: TaskSpec, hub_init: &Arc<InitSegment>) -> Arc<Task> {
    let hub = Hub::for_test([spec.track.clone()]);
    if let Some(t) = hub.track(&spec.track) {
        t.set_init(hub_init.clone());
    }
    let keep_sent = if spec.protocol.protocol() == Protocol::Cmaf {
        0
    } else {
        2
    };
    let status = Registry::new().register(DestStatus::new(
        &spec.output,
        spec.dest,
        &spec.track,
        &spec.url_safe,
    ));
    Arc::new(Task {
        shared: Arc::new(Shared {
            backlog: Mutex::new(Backlog::new(keep_sent, spec.backlog, MAX_BACKLOG_BYTES)),
            notify: Notify::new(),
        }),
        spec,
        status,
        hub,
        cancel: CancellationToken::new(),
        last_logged_error: Mutex::new(None),
        header_switches: AtomicU64::new(0),
        budget_drops: AtomicU64::new(0),
    })
}

/// Puts a unit in the task's backlog as the collector would.
pub fn push(task: &Task, u: Arc<Unit>) {
    task.shared.lock().push(u);
    task.shared.notify.notify_one();
}

/// One request as the receiver saw it (the body grows while a chunked one streams).
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub conn: usize,
    pub method: String,
    pub path: String,
    pub chunked: bool,
    pub body: Vec<u8>,
    pub complete: bool,
}

/// A recording HTTP/1.1 receiver on 127.0.0.1: answers 200 to every request (503 to the
/// request numbers in `fail`; closes the connection without an answer after those in
/// `close`), keeps connections alive.
pub struct Receiver {
    pub port: u16,
    pub reqs: Arc<Mutex<Vec<Req>>>,
    pub fail: Arc<Mutex<Vec<usize>>>,
    pub close: Arc<Mutex<Vec<usize>>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(Mutex::new(Vec::new()));
        let close = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (r, f, cl, c) = (reqs.clone(), fail.clone(), close.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            let mut n = 0;
            while let Ok((s, _)) = listener.accept().await {
                let h = tokio::spawn(serve(s, n, r.clone(), f.clone(), cl.clone()));
                crate::sync::lock(&c).push(h);
                n += 1;
            }
        });
        Receiver {
            port,
            reqs,
            fail,
            close,
            conns,
            accept,
        }
    }

    pub fn requests(&self) -> Vec<Req> {
        crate::sync::lock(&self.reqs).clone()
    }

    /// Closes every open connection (the ingest restarts).
    pub fn drop_connections(&self) {
        for h in crate::sync::lock(&self.conns).drain(..) {
            h.abort();
        }
    }

    /// Waits until `f` holds for the requests so far (panics after 10 s).
    pub async fn wait_for(&self, what: &str, f: impl Fn(&[Req]) -> bool) {
        for _ in 0..1000 {
            if f(&self.requests()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen: Vec<String> = self
            .requests()
            .iter()
            .map(|r| {
                format!(
                    "conn {} {} {} {} bytes{}{}",
                    r.conn,
                    r.method,
                    r.path,
                    r.body.len(),
                    if r.chunked { " chunked" } else { "" },
                    if r.complete { "" } else { " (open)" }
                )
            })
            .collect();
        panic!("receiver: {what} never happened: {seen:#?}");
    }
}

async fn serve(
    mut s: tokio::net::TcpStream,
    conn: usize,
    reqs: Arc<Mutex<Vec<Req>>>,
    fail: Arc<Mutex<Vec<usize>>>,
    close: Arc<Mutex<Vec<usize>>>,
) {
    let mut buf = Vec::new();
    async fn more(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut tmp = [0u8; 8192];
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                Some(())
            }
        }
    }
    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }
    loop {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if more(&mut s, &mut buf).await.is_none() {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let mut req = Req {
            conn,
            method: first.next().unwrap_or("").into(),
            path: first.next().unwrap_or("").into(),
            ..Req::default()
        };
        let mut length = 0;
        for l in lines {
            let l = l.to_ascii_lowercase();
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                req.chunked = true;
            }
        }
        let idx = {
            let mut r = crate::sync::lock(&reqs);
            r.push(req.clone());
            r.len() - 1
        };
        if req.chunked {
            loop {
                let line = loop {
                    if let Some(i) = find(&buf, b"\r\n") {
                        break i;
                    }
                    if more(&mut s, &mut buf).await.is_none() {
                        return;
                    }
                };
                let size = std::str::from_utf8(&buf[..line])
                    .ok()
                    .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
                    .expect("chunk size");
                buf.drain(..line + 2);
                while buf.len() < size + 2 {
                    if more(&mut s, &mut buf).await.is_none() {
                        return;
                    }
                }
                if size > 0 {
                    crate::sync::lock(&reqs)[idx]
                        .body
                        .extend_from_slice(&buf[..size]);
                }
                buf.drain(..size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while buf.len() < length {
                if more(&mut s, &mut buf).await.is_none() {
                    return;
                }
            }
            crate::sync::lock(&reqs)[idx].body = buf.drain(..length).collect();
        }
        crate::sync::lock(&reqs)[idx].complete = true;
        if crate::sync::lock(&close).contains(&idx) {
            return;
        }
        let status = if crate::sync::lock(&fail).contains(&idx) {
            "503 Unavailable"
        } else {
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The top-level boxes of `data` (type, whole box), as far as they are complete.
pub fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = data.get(pos..pos + 8) {
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let Some(b) = data.get(pos..pos + size).filter(|_| size >= 8) else {
            break;
        };
        out.push(([h[4], h[5], h[6], h[7]], b));
        pos += size;
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
