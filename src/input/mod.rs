//! The network front end (issue #9 parts 3–4): MPEG-TS over RTP (SMPTE 2022-1 without FEC,
//! RTCP sender reports on the next port) or plain MPEG-TS over UDP, unicast or multicast,
//! received by tokio, reordered, demultiplexed and timed in Rust (`frontend.rs`, no I/O), decoded
//! by a small GStreamer pipeline (`decode.rs`) and handed to a [`RawSink`] with the sender's
//! time W (`timing.rs` has the policy).
//!
//! ```text
//! UDP socket(s) ─► FrontEnd: rtp.rs (parse, reorder) ─► ts.rs (PAT/PMT/PES/PCR/SCTE-35)
//!                            rtcp.rs (SR: NTP ↔ RTP) ─► timing.rs (W = PTS + O)
//!              ─► decode.rs: appsrc → parse → decode → convert/scale → appsink ─► RawSink
//! ```
//!
//! [`NetworkSource`] owns one receive thread (a current-thread tokio runtime, so it runs the same
//! whatever the caller's runtime) and the decode pipeline; [`NetworkSource::stop`] ends both.

pub mod decode;
pub mod frontend;
pub mod rtcp;
pub mod rtp;
pub mod srt;
pub mod timing;
pub mod ts;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

pub use crate::config::input_uri::Transport;
use crate::config::input_uri::parse_uri;
use crate::config::{AudioInput, Config, InputKind};
use crate::source::{RawSink, Timing};

pub use decode::{DecodeCounters, DecodeFormat};
pub use frontend::{EsUnit, FrontEnd, FrontEndCounters, SpliceAt};
pub use ts::EsKind;

/// Receive buffer asked of the kernel per socket: a 10 Mbit/s feed's 400 ms burst. The kernel
/// caps it at `net.core.rmem_max` (Debian: 208 KiB) unless raised.
pub const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Largest datagram read (a jumbo frame).
const MAX_DATAGRAM: usize = 9000;
/// How often the counters are published to [`NetworkSource::counters`].
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Why a network input could not start.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("input uri {0:?} is not rtp://ADDRESS:PORT or udp://ADDRESS:PORT")]
    Uri(String),
    #[error("input kind \"{0}\" is not a network input")]
    Kind(InputKind),
    #[error("cannot receive on {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("network input decoders: {0}")]
    Decode(String),
    #[error("SRT input: {0}")]
    Srt(String),
    #[error("network input thread: {0}")]
    Thread(std::io::Error),
}

/// What a network input needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    pub transport: Transport,
    /// Address to receive on: a local address (or 0.0.0.0 / ::) or a multicast group.
    pub addr: SocketAddr,
    /// RTP reorder window.
    pub latency: Duration,
    pub format: DecodeFormat,
}

impl NetworkConfig {
    /// From `[input]` (kind `rtp` or `udp`, uri `rtp://…` or `udp://…`, latency, width/height,
    /// audio)
    /// and `[audio]`.
    pub fn from_config(config: &Config) -> Result<Self, InputError> {
        let input = &config.input;
        // Kind `rtp` with a `udp://` uri is plain MPEG-TS (configs written before kind `udp`).
        if !matches!(input.kind, InputKind::Rtp | InputKind::Udp) {
            return Err(InputError::Kind(input.kind));
        }
        let uri = input.uri.as_deref().unwrap_or_default();
        let (transport, addr) = parse_uri(uri).ok_or_else(|| InputError::Uri(uri.into()))?;
        Ok(NetworkConfig {
            transport,
            addr,
            latency: input.latency,
            format: decode_format(config),
        })
    }
}

/// What the decoders make, from `[input]` width/height/audio and `[audio]`.
fn decode_format(config: &Config) -> DecodeFormat {
    DecodeFormat {
        width: config.input.width,
        height: config.input.height,
        audio: (config.input.audio == AudioInput::Input)
            .then_some((config.audio.sample_rate, config.audio.channels)),
    }
}

/// Everything the status page reads of a network input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputCounters {
    pub front: FrontEndCounters,
    pub pictures: u64,
    pub audio_buffers: u64,
    /// Units dropped because a decoder was behind.
    pub decoder_overflow: u64,
    /// Decoded buffers the decoders' appsinks did not hand over (src/input/decode.rs).
    pub decoder_dropped: u64,
    pub decoder_errors: u64,
    /// The last decoder error, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    counters: Mutex<InputCounters>,
    timing: Mutex<Option<Timing>>,
    scte35: Mutex<Vec<(Vec<u8>, SpliceAt)>>,
    /// Sections dropped from `scte35` because nobody took them.
    scte35_dropped: AtomicU64,
}

impl Shared {
    /// Copies the front end's counters, timing and SCTE-35 sections out for the readers.
    fn publish(&self, fe: &mut FrontEnd, extra_malformed: u64) {
        let sections = fe.take_scte35();
        if !sections.is_empty() {
            let mut s = crate::sync::lock(&self.scte35);
            s.extend(sections);
            let excess = s.len().saturating_sub(ts::SCTE35_QUEUE);
            s.drain(..excess);
            self.scte35_dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        {
            let mut c = crate::sync::lock(&self.counters);
            c.front = fe.counters();
            c.front.malformed += extra_malformed;
            c.front.scte35_dropped += self.scte35_dropped.load(Ordering::Relaxed);
        }
        *crate::sync::lock(&self.timing) = fe.timing();
    }

    /// Records why the input stopped working (read by the status page through `counters()`).
    fn fail(&self, why: String) {
        crate::sync::lock(&self.counters).last_error = Some(why);
    }
}

/// A running network input.
pub struct NetworkSource {
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The RTP/UDP socket's address (`None` for SRT).
    local_addr: Option<SocketAddr>,
    srt: Option<Arc<srt::SrtPipeline>>,
}

/// Called with every unit the front end hands out (the decoders, or a bench that only counts).
pub type UnitHandler = Box<dyn FnMut(EsUnit) + Send>;

impl NetworkSource {
    /// Starts receiving, decoding and feeding `sink` from the `[input]` config: `rtp://` and
    /// `udp://` uris receive on a socket, `srt://` through GStreamer's srtsrc.
    pub fn start(config: &Config, sink: Arc<dyn RawSink>) -> Result<Self, InputError> {
        let uri = config.input.uri.as_deref().unwrap_or_default();
        if config.input.kind == InputKind::Srt || uri.starts_with("srt://") {
            let parsed = srt::parse_uri(uri).map_err(InputError::Srt)?;
            let creds = std::env::var_os("CREDENTIALS_DIRECTORY");
            let pass = srt::resolve_passphrase(
                config.input.passphrase_file.as_deref(),
                creds.as_deref().map(std::path::Path::new),
            )
            .map_err(InputError::Srt)?;
            return Self::start_srt(&parsed, pass.as_deref(), decode_format(config), sink);
        }
        Self::start_with(&NetworkConfig::from_config(config)?, sink)
    }

    /// An SRT input (caller or listener) from a parsed uri and the passphrase, if any.
    pub fn start_srt(
        uri: &srt::SrtUri,
        passphrase: Option<&str>,
        format: DecodeFormat,
        sink: Arc<dyn RawSink>,
    ) -> Result<Self, InputError> {
        let decode_counters = Arc::new(DecodeCounters::default());
        let decoders = Arc::new(
            decode::Decoders::start(format, sink, decode_counters.clone())
                .map_err(InputError::Decode)?,
        );
        let shared = Arc::new(Shared::default());
        let pipeline = Arc::new(srt::SrtPipeline::start(
            uri,
            passphrase,
            decoders.clone(),
            shared.clone(),
        )?);
        let mut source = NetworkSource {
            cancel: CancellationToken::new(),
            thread: None,
            shared,
            local_addr: None,
            srt: Some(pipeline),
        };
        source.attach_decoders(decoders, decode_counters)?;
        Ok(source)
    }

    /// As [`start`](Self::start), from an explicit [`NetworkConfig`].
    pub fn start_with(cfg: &NetworkConfig, sink: Arc<dyn RawSink>) -> Result<Self, InputError> {
        let decode_counters = Arc::new(DecodeCounters::default());
        let decoders = Arc::new(
            decode::Decoders::start(cfg.format, sink, decode_counters.clone())
                .map_err(InputError::Decode)?,
        );
        let d = decoders.clone();
        let mut source = Self::start_units(cfg, Box::new(move |u| d.push(u)))?;
        source.attach_decoders(decoders, decode_counters)?;
        Ok(source)
    }

    /// Receives and hands every elementary-stream unit to `handler`, without decoding.
    pub fn start_units(cfg: &NetworkConfig, handler: UnitHandler) -> Result<Self, InputError> {
        let rtp = bind(cfg.addr)?;
        let local_addr = rtp.local_addr().map_err(|source| InputError::Socket {
            addr: cfg.addr,
            source,
        })?;
        let rtcp = match cfg.transport {
            Transport::Rtp => {
                let addr = SocketAddr::new(cfg.addr.ip(), local_addr.port().wrapping_add(1));
                Some(bind(addr)?)
            }
            Transport::Udp => None,
        };
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared::default());
        let latency = match cfg.transport {
            Transport::Rtp => Some(cfg.latency.as_nanos().min(u128::from(u64::MAX)) as u64),
            Transport::Udp => None,
        };
        let (c, s) = (cancel.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("net-input".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(receive(rtp, rtcp, latency, handler, c, s)),
                    Err(e) => s.fail(format!("no tokio runtime for the receive thread: {e}")),
                }
            })
            .map_err(InputError::Thread)?;
        Ok(NetworkSource {
            cancel,
            thread: Some(thread),
            shared,
            local_addr: Some(local_addr),
            srt: None,
        })
    }

    fn attach_decoders(
        &mut self,
        decoders: Arc<decode::Decoders>,
        counters: Arc<DecodeCounters>,
    ) -> Result<(), InputError> {
        let shared = self.shared.clone();
        let cancel = self.cancel.clone();
        let srt = self.srt.clone();
        // A small watcher: decode counters and errors into the shared counters until stopped.
        std::thread::Builder::new()
            .name("net-input-dec".into())
            .spawn(move || {
                while !cancel.is_cancelled() {
                    let mut err = decoders.take_error();
                    if let Some(e) = srt.as_ref().and_then(|p| p.take_error(Duration::ZERO)) {
                        err = Some(e);
                    }
                    {
                        let mut c = crate::sync::lock(&shared.counters);
                        c.pictures = counters.pictures.load(Ordering::Relaxed);
                        c.audio_buffers = counters.audio_buffers.load(Ordering::Relaxed);
                        c.decoder_overflow = counters.overflow.load(Ordering::Relaxed);
                        c.decoder_dropped = counters.sink_dropped.load(Ordering::Relaxed);
                        c.decoder_errors = counters.errors.load(Ordering::Relaxed);
                        if err.is_some() {
                            c.last_error = err;
                        }
                    }
                    std::thread::sleep(PUBLISH_EVERY);
                }
                decoders.stop();
            })
            .map(drop)
            .map_err(InputError::Thread)
    }

    /// The address the RTP (or UDP) socket is bound to (`None` for SRT).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Where W comes from (`input.timing`), once the feed has been anchored.
    pub fn timing(&self) -> Option<Timing> {
        *crate::sync::lock(&self.shared.timing)
    }

    /// The counters (published every 100 ms).
    pub fn counters(&self) -> InputCounters {
        crate::sync::lock(&self.shared.counters).clone()
    }

    /// SCTE-35 sections received since the last call, with the W of their splice time (at
    /// most 64 kept; the rest counted).
    pub fn take_scte35(&self) -> Vec<(Vec<u8>, SpliceAt)> {
        std::mem::take(&mut *crate::sync::lock(&self.shared.scte35))
    }

    /// Stops receiving and decoding; returns when the receive thread has ended.
    pub fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(p) = &self.srt {
            p.stop();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NetworkSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A UDP socket for `addr` (a multicast group is joined on every interface), non-blocking.
fn bind(addr: SocketAddr) -> Result<StdUdpSocket, InputError> {
    let err = |source| InputError::Socket { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    let multicast = addr.ip().is_multicast();
    if multicast {
        socket.set_reuse_address(true).map_err(err)?;
    }
    // The kernel may grant less (net.core.rmem_max); what it grants is enough for a LAN feed.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER_BYTES);
    let bind_addr = match (multicast, addr.ip()) {
        (true, IpAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()),
        (true, IpAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port()),
        _ => addr,
    };
    socket.bind(&bind_addr.into()).map_err(err)?;
    match addr.ip() {
        IpAddr::V4(g) if multicast => socket
            .join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED)
            .map_err(err)?,
        IpAddr::V6(g) if multicast => socket.join_multicast_v6(&g, 0).map_err(err)?,
        _ => {}
    }
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn recv_opt(sock: &Option<tokio::net::UdpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match sock {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// The receive loop: sockets → front end → handler, until cancelled.
async fn receive(
    rtp: StdUdpSocket,
    rtcp: Option<StdUdpSocket>,
    latency_ns: Option<u64>,
    mut handler: UnitHandler,
    cancel: CancellationToken,
    shared: Arc<Shared>,
) {
    let (rtp, rtcp) = match (
        tokio::net::UdpSocket::from_std(rtp),
        rtcp.map(tokio::net::UdpSocket::from_std).transpose(),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return shared.fail(format!("socket: {e}")),
    };
    let is_rtp = latency_ns.is_some();
    let mut fe = FrontEnd::new(latency_ns);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut cbuf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    let mut recv_errors = 0u64;
    loop {
        let wait = fe
            .deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(now_ns())))
            .unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_secs(1));
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = rtp.recv(&mut buf) => match r {
                Ok(n) if is_rtp => fe.push_rtp(now_ns(), &buf[..n], &mut out),
                Ok(n) => fe.push_udp(now_ns(), &buf[..n], &mut out),
                Err(_) => recv_errors += 1,
            },
            r = recv_opt(&rtcp, &mut cbuf) => match r {
                Ok(n) => fe.push_rtcp(&cbuf[..n]),
                Err(_) => recv_errors += 1,
            },
            _ = tokio::time::sleep(wait) => fe.poll(now_ns(), &mut out),
            _ = publish.tick() => shared.publish(&mut fe, recv_errors),
        }
        for unit in out.drain(..) {
            handler(unit);
        }
    }
    shared.publish(&mut fe, recv_errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scte35_sections_nobody_takes_are_dropped_and_counted() {
        let mut w = ts::tests::TsWriter::new();
        let mut fe = FrontEnd::new(None);
        let shared = Shared::default();
        let mut out = Vec::new();
        fe.push_udp(now_ns(), &w.psi(), &mut out);
        let sc = [
            0xfc, 0x30, 0x11, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let extra = 6;
        let sent = ts::SCTE35_QUEUE + extra;
        for _ in 0..sent {
            fe.push_udp(now_ns(), &w.scte35(&sc[..16]), &mut out);
            shared.publish(&mut fe, 0);
        }
        let c = crate::sync::lock(&shared.counters).front;
        assert_eq!(c.scte35_sections, sent as u64);
        assert_eq!(c.scte35_dropped, extra as u64, "{c:?}");
        assert_eq!(crate::sync::lock(&shared.scte35).len(), ts::SCTE35_QUEUE);
    }

    #[test]
    fn receives_plain_ts_on_loopback_and_stops() {
        let cfg = NetworkConfig {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
            latency: Duration::from_millis(50),
            format: DecodeFormat {
                width: 320,
                height: 180,
                audio: None,
            },
        };
        let mut src = NetworkSource::start_units(&cfg, Box::new(|_| {})).unwrap();
        let to = src.local_addr().unwrap();
        let tx = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            tx.send_to(&[0x47; 188], to).unwrap();
            if src.counters().front.datagrams > 0 || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(src.counters().front.datagrams > 0);
        src.stop();
    }
}
