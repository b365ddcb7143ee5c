//! Connections for the publish drivers: TCP with a connect timeout, optional TLS (rustls with
//! the webpki roots plus an optional extra CA), and writes that fail when they make no
//! progress for the stall limit (design §3: 2× the fragment duration).

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// TCP connect timeout (design §3).
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
    let addr = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Err(_) => return Err(NetError::ConnectTimeout(addr, CONNECT_TIMEOUT)),
        Ok(Err(e)) => return Err(NetError::Connect(addr, e)),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(Box::new(tcp));
    }
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| NetError::ServerName(host.into()))?;
    let config = tls_config().map_err(|e| NetError::Tls(addr.clone(), io::Error::other(e)))?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Err(_) => Err(NetError::ConnectTimeout(addr, CONNECT_TIMEOUT)),
        Ok(Err(e)) => Err(NetError::Tls(addr, e)),
        Ok(Ok(s)) => Ok(Box::new(s)),
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
