//! The origin's listener: HTTP/1.1 (hyper) with every resource bounded.
//!
//! - Connections: at most `max_connections` at once; beyond that a new connection is closed at
//!   once and counted (the kernel backlog never grows without bound behind a full server).
//! - Request headers: at most `MAX_HEADER_BYTES` (hyper answers 431 beyond), at most
//!   `MAX_HEADERS` fields, and they must arrive within `header_read_timeout` (which also closes
//!   idle keep-alive connections): a slow client cannot hold a connection forever.
//! - Bodies are never read (GET/HEAD/OPTIONS only).
//! - The allow-list is checked per connection; a denied client gets 403 on every request,
//!   counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Origin;
use super::http::{Body, forbidden, handle};

/// Bytes of request head a client may send (hyper's minimum read buffer is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Header fields per request.
pub const MAX_HEADERS: usize = 64;
/// After a burst of at least this many concurrent connections, memory is handed back to the OS
/// once they are gone.
const TRIM_AFTER_BURST: usize = 256;
/// "Once they are gone": fewer connections than this (players keep a few open).
const QUIET_CONNECTIONS: usize = 16;
/// Connections still open at shutdown get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Binds the listener (errors here are start-up errors).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves until cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    origin: Arc<Origin>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(origin.settings().max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(origin.settings().header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut last_refusal_log: Option<std::time::Instant> = None;
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!(target: "origin", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            origin
                .counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_refusal_log = Some(std::time::Instant::now());
                log::warn!(target: "origin", "connection limit reached; refusing {peer}");
            }
            drop(stream);
            continue;
        };
        origin.counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let allowed = origin.allows(peer);
        let origin = origin.clone();
        let builder = builder.clone();
        let cancel = cancel.clone();
        let now_active = active.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now_active, Ordering::Relaxed);
        let gauge = ConnectionGauge {
            active: active.clone(),
            peak: peak.clone(),
        };
        tokio::spawn(connection(
            stream,
            origin,
            allowed,
            builder,
            cancel,
            (gauge, permit),
        ));
    }
    Ok(())
}

/// Serves one accepted connection until the client closes it or the origin stops (with a
/// short grace for the requests under way). `held` (the gauge, then the permit) is released
/// when the connection ends, in that order.
async fn connection(
    stream: tokio::net::TcpStream,
    origin: Arc<Origin>,
    allowed: bool,
    builder: Arc<http1::Builder>,
    cancel: CancellationToken,
    held: (ConnectionGauge, OwnedSemaphorePermit),
) {
    let _held = held;
    let service = service_fn(move |req: Request<Incoming>| {
        let origin = origin.clone();
        async move {
            origin.counters.requests.fetch_add(1, Ordering::Relaxed);
            if !allowed {
                origin.counters.denied.fetch_add(1, Ordering::Relaxed);
                return Ok::<Response<Body>, Infallible>(forbidden());
            }
            Ok(handle(&origin, &req).await)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// Counts a live connection; the last one of a burst returns freed heap memory to the OS, so a
/// flood of connections does not leave the process's RSS raised (glibc keeps freed chunks).
struct ConnectionGauge {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        let left = self.active.fetch_sub(1, Ordering::Relaxed) - 1;
        if left < QUIET_CONNECTIONS
            && self.peak.load(Ordering::Relaxed) >= TRIM_AFTER_BURST
            && self.peak.swap(left, Ordering::Relaxed) >= TRIM_AFTER_BURST
        {
            let _ = std::thread::Builder::new()
                .name("origin-trim".into())
                .spawn(release_free_memory);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap structures under its locks; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
