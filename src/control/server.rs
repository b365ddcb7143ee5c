//! The control listener's connections: HTTP/1.1 (hyper) with the origin's limits
//! (src/origin/server.rs), so a browser left open or a misbehaving client cannot take the
//! box's only operations door.
//!
//! - Connections: at most [`MAX_CONNECTIONS`] at once; beyond that a new connection is closed at
//!   once and counted (`twincast_control_refused_connections_total`).
//! - Request headers: at most [`MAX_HEADER_BYTES`] and [`MAX_HEADERS`] fields, within
//!   [`HEADER_READ_TIMEOUT`] (which also closes idle keep-alive connections).
//! - `/events` subscribers: at most [`MAX_EVENT_SUBSCRIBERS`] (503 beyond, counted), fewer than
//!   the connection cap so `/status` always has room.
//! - The allow-list is checked per request (it follows reloads) by the router's middleware.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Ops;

/// Connections at once (a few consoles, `twincast status`, a Prometheus scraper).
pub const MAX_CONNECTIONS: usize = 64;
/// Clients following `/events` at once.
pub const MAX_EVENT_SUBSCRIBERS: usize = 16;
/// Request headers must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of request head (hyper's minimum read buffer is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Header fields per request.
pub const MAX_HEADERS: usize = 64;
/// Connections still open at shutdown get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Least time between two log lines about refused clients of one kind: a client that retries
/// in a loop must not write the journal full (journald's per-unit rate limit would then drop
/// the daemon's other lines too). Every refusal is still counted.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// Whether a refusal line is due at `now`, at most one every [`REFUSAL_LOG_EVERY`]; `last`
/// is when the previous line was written, and is moved on when one is due.
pub fn refusal_log_due(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

/// Serves `app` on `listener` until cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    ops: Arc<Ops>,
    cancel: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!("control: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ops.control_limits
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            if refusal_log_due(&mut last_refusal_log, Instant::now()) {
                log::warn!(
                    "control: connection limit reached ({MAX_CONNECTIONS} open); refusing {peer}"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(ConnectInfo(peer)))
                .into_service::<hyper::body::Incoming>(),
        );
        let builder = builder.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
                }
            }
        });
    }
}
