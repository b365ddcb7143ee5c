//! Connections for the publish drivers: TCP with a connect timeout, optional TLS (rustls with the
//! webpki roots plus an optional extra CA), and writes that fail when they make no progress for the
//! stall limit (docs/design/publish.md, *Stall detection*: 2× the fragment duration), judged by the
//! connection's TCP evidence (`tcp.rs`) where there is some.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::tcp::{SAMPLE_EVERY, Stalled, TcpProbe, Watch};

/// TCP connect timeout (docs/design/publish.md, *Stall detection*).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable naming a PEM file of extra CA certificates trusted for `rtmps://`
/// and `https://` ingest (next to the built-in web roots), e.g. a private test CA.
pub const EXTRA_CA_ENV: &str = "TWINCAST_EXTRA_CA_FILE";
/// Largest write handed to the socket at once, so progress is seen often.
const WRITE_SLICE: usize = 64 * 1024;

/// A byte stream: plain TCP or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Why a connection failed. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("connect to {0}: timed out after {1:?}")]
    ConnectTimeout(String, Duration),
    #[error("connect to {0}: {1}")]
    Connect(String, io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, io::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("send made no progress for {0:?} (stalled peer)")]
    Stalled(Duration),
    #[error("send: {0}")]
    Write(io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("read: {0}")]
    Read(io::Error),
    #[error("no answer within {0:?}")]
    ReadTimeout(Duration),
}

impl From<Stalled> for NetError {
    fn from(Stalled(limit): Stalled) -> Self {
        NetError::Stalled(limit)
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = std::env::var_os(EXTRA_CA_ENV) {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                match CertificateDer::pem_file_iter(&path) {
                    Ok(certs) => {
                        for cert in certs.flatten() {
                            if let Err(e) = roots.add(cert) {
                                log::warn!("{EXTRA_CA_ENV}: a certificate was not usable: {e}");
                            }
                        }
                    }
                    Err(e) => log::warn!("{EXTRA_CA_ENV}: cannot read {path:?}: {e}"),
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Connects to `host:port` within [`CONNECT_TIMEOUT`], with TLS when `tls`.
pub async fn connect(host: &str, port: u16, tls: bool) -> Result<BoxStream, NetError> {
    connect_watched(host, port, tls, Duration::from_secs(4))
        .await
        .map(|(s, _)| s)
}

/// [`connect`], with the publish socket options and a [`Watch`] on the connection's TCP
/// state that calls a stall after `stall` without progress.
pub async fn connect_watched(
    host: &str,
    port: u16,
    tls: bool,
    stall: Duration,
) -> Result<(BoxStream, Watch), NetError> {
    let addr = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Err(_) => return Err(NetError::ConnectTimeout(addr, CONNECT_TIMEOUT)),
        Ok(Err(e)) => return Err(NetError::Connect(addr, e)),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let watch = Watch::new(TcpProbe::new(&tcp, stall), stall);
    if !tls {
        return Ok((Box::new(tcp), watch));
    }
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| NetError::ServerName(host.into()))?;
    let config = tls_config().map_err(|e| NetError::Tls(addr.clone(), io::Error::other(e)))?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Err(_) => Err(NetError::ConnectTimeout(addr, CONNECT_TIMEOUT)),
        Ok(Err(e)) => Err(NetError::Tls(addr, e)),
        Ok(Ok(s)) => Ok((Box::new(s), watch)),
    }
}

/// Writes all of `data`, judging progress by the connection's TCP evidence while a write is
/// blocked (a peer that stops reading fails within the watch's limit even when the socket
/// still takes bytes). Units the peer read past meanwhile are added to `done`. Without TCP
/// evidence this is [`write_all_progress`].
pub async fn write_all_watched<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    watch: &mut Watch,
    done: &mut Vec<u64>,
) -> Result<(), NetError> {
    if !watch.has_evidence() {
        return write_all_progress(w, data, watch.limit()).await;
    }
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + WRITE_SLICE).min(data.len());
        // Cancelling a pending write is safe: it took nothing.
        tokio::select! {
            r = w.write(&data[pos..end]) => match r {
                Err(e) => return Err(NetError::Write(e)),
                Ok(0) => return Err(NetError::Closed),
                Ok(n) => pos += n,
            },
            _ = tick.tick() => done.extend(watch.check()?),
        }
    }
    loop {
        tokio::select! {
            r = w.flush() => return r.map_err(NetError::Write),
            _ = tick.tick() => done.extend(watch.check()?),
        }
    }
}

/// Writes all of `data`, failing when one write makes no progress within `stall`.
pub async fn write_all_progress<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    stall: Duration,
) -> Result<(), NetError> {
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + WRITE_SLICE).min(data.len());
        match tokio::time::timeout(stall, w.write(&data[pos..end])).await {
            Err(_) => return Err(NetError::Stalled(stall)),
            Ok(Err(e)) => return Err(NetError::Write(e)),
            Ok(Ok(0)) => return Err(NetError::Closed),
            Ok(Ok(n)) => pos += n,
        }
    }
    match tokio::time::timeout(stall, w.flush()).await {
        Err(_) => Err(NetError::Stalled(stall)),
        Ok(Err(e)) => Err(NetError::Write(e)),
        Ok(Ok(())) => Ok(()),
    }
}
