//! Control listener and operations loops (design §5).
//!
//! - `GET /status` — JSON ([`snapshot::Status`]).
//! - `GET /metrics` — Prometheus text ([`metrics`]: `twincast_<name>_<unit>[_total]`).
//! - `GET /events` — server-sent events ([`events::Event`]): a heartbeat per track every
//!   `[control] heartbeat`, output connected/disconnected, input lost/restored, config reloaded.
//!
//! The listener is on `[control] listen` (loopback by default) behind the `[control] allow`
//! list (empty: anyone who can reach the listener; refused requests get 403 and are counted).
//!
//! Besides the listener this module runs the operations loop (one tick a second: input
//! lost/restored, output transitions, heartbeats, `STATUS=`), readiness (`READY=1`) and the
//! watchdog (`WATCHDOG=1` only on fresh progress, see [`crate::notify::Freshness`]; slate
//! frames are progress: docs/guide/troubleshooting.md).

pub mod client;
pub mod clock;
pub mod events;
pub mod metrics;
pub mod snapshot;
pub mod state;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{self, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::AllowEntry;
use crate::notify::{Freshness, Progress};
use crate::status::DestState;

pub use events::Event;
pub use state::{Ops, OpsParts};

/// Ticks of the operations loop.
const TICK: Duration = Duration::from_secs(1);
/// Input is "lost" after this long without a frame at the least (or `slate_after`, if longer).
const MIN_INPUT_LOSS: Duration = Duration::from_millis(1500);

/// Binds the control listener (a start-up error when the port is taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Starts the listener and every operations task; they stop on `cancel`.
pub fn spawn(
    ops: &Arc<Ops>,
    hub: &Arc<crate::hub::Hub>,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) {
    ops.spawn_track_monitors(hub, cancel.clone());
    tokio::spawn(serve(listener, ops.clone(), cancel.clone()));
    tokio::spawn(operations_loop(ops.clone(), cancel.clone()));
    tokio::spawn(heartbeat_loop(ops.clone(), cancel.clone()));
    if ops.notifier.enabled()
        && let Some(interval) = crate::notify::watchdog_interval()
    {
        tokio::spawn(watchdog(ops.clone(), interval, cancel));
    }
}

async fn serve(listener: tokio::net::TcpListener, ops: Arc<Ops>, cancel: CancellationToken) {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(ops.clone(), allow_list))
        .with_state(ops);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await;
    if let Err(e) = result {
        log::error!(error = e.to_string(); "control listener failed: {e}");
    }
}

async fn allow_list(
    State(ops): State<Arc<Ops>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let allow: Vec<AllowEntry> = ops.config().control.allow.clone();
    let ip = peer.ip().to_canonical();
    if allow.is_empty() || AllowEntry::any_contains(&allow, ip) {
        return next.run(request).await;
    }
    ops.denied.fetch_add(1, Ordering::Relaxed);
    (StatusCode::FORBIDDEN, "not in [control] allow\n").into_response()
}

async fn status(State(ops): State<Arc<Ops>>) -> Response {
    let s = snapshot::status(&ops);
    match snapshot::json(&s) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let s = snapshot::status(&ops);
    let body = metrics::render(&s, ops.denied.load(Ordering::Relaxed));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn events(State(ops): State<Arc<Ops>>) -> Response {
    let rx = ops.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let data = event.data();
                    let sse_event = sse::Event::default().event(event.kind()).data(data);
                    return Some((Ok::<_, Infallible>(sse_event), rx));
                }
                // A slow reader misses events; it keeps the connection.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Key of one publisher task in the registry: output, dest, track, URL (a reload that moves a
/// URL makes a new task).
type DestKey = (String, &'static str, String, String);

/// One tick a second: readiness, input loss, output transitions, `STATUS=`.
async fn operations_loop(ops: Arc<Ops>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dest_states: HashMap<DestKey, DestState> = HashMap::new();
    let mut last_status_line = String::new();
    let mut lost_since: Option<Instant> = None;
    let mut on_air = crate::capture::SOURCE_PRIMARY;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let config = ops.config();
        if !ops.ready.load(Ordering::Relaxed) && ops.every_track_cut() {
            ops.ready.store(true, Ordering::Relaxed);
            ops.notifier.ready();
            log::info!(state = "ready"; "ready: every track has cut its first fragment and the origin listens");
        }
        check_input(&ops, &config, &mut lost_since);
        let source = ops.capture.input_source.load(Ordering::Relaxed);
        if source != on_air {
            on_air = source;
            ops.emit(Event::InputSwitched {
                source: snapshot::source_name(source).to_string(),
            });
        }
        check_outputs(&ops, &mut dest_states);
        let line = snapshot::status(&ops).summary;
        if line != last_status_line {
            ops.notifier.status(&line);
            last_status_line = line;
        }
    }
}

/// A heartbeat per track every `[control] heartbeat` (its own timer, so the interval is kept
/// exactly; a reload that changes it takes effect after the current period).
async fn heartbeat_loop(ops: Arc<Ops>, cancel: CancellationToken) {
    let mut period = ops
        .config()
        .control
        .heartbeat
        .max(Duration::from_millis(100));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = beat.tick() => {}
        }
        let config = ops.config();
        for (i, t) in ops.tracks.iter().enumerate() {
            let f = ops.figures(i);
            ops.emit(Event::Heartbeat {
                encoder: config.encoder.name.clone(),
                track: t.name.clone(),
                bitrate_bps: f.bitrate_bps(),
                fps: (f.fps() * 100.0).round() / 100.0,
                last_timestamp: f.last_timestamp,
                timescale: f.timescale,
                discontinuities: f.discontinuities,
                fragments: f.fragments,
            });
        }
        let wanted = config.control.heartbeat.max(Duration::from_millis(100));
        if wanted != period {
            period = wanted;
            beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
    }
}

fn check_input(ops: &Ops, config: &crate::config::Config, lost_since: &mut Option<Instant>) {
    let Some(age_ms) = ops.last_frame_age_ms() else {
        return;
    };
    let limit = config.input.slate_after.max(MIN_INPUT_LOSS);
    let silent = Duration::from_millis(age_ms) > limit;
    let was_lost = ops.input_lost.load(Ordering::Relaxed);
    if silent && !was_lost {
        ops.input_lost.store(true, Ordering::Relaxed);
        *lost_since = Some(Instant::now() - Duration::from_millis(age_ms));
        ops.emit(Event::InputLost { silent_ms: age_ms });
    } else if !silent && was_lost {
        ops.input_lost.store(false, Ordering::Relaxed);
        let lost_ms = lost_since
            .take()
            .map(|s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        ops.emit(Event::InputRestored { lost_ms });
    }
}

fn check_outputs(ops: &Ops, seen: &mut HashMap<DestKey, DestState>) {
    let dests = ops.registry.dests();
    let mut present = Vec::with_capacity(dests.len());
    for d in dests {
        let key: DestKey = (d.output.clone(), d.dest, d.track.clone(), d.url.clone());
        present.push(key.clone());
        let before = seen.insert(key, d.state);
        let was_publishing = before == Some(DestState::Publishing);
        let is_publishing = d.state == DestState::Publishing;
        if is_publishing && !was_publishing {
            ops.emit(Event::OutputConnected {
                output: d.output,
                dest: d.dest.to_string(),
                track: d.track,
                url: d.url,
            });
        } else if was_publishing && !is_publishing
            || (d.state == DestState::Failed && before != Some(DestState::Failed))
        {
            ops.emit(Event::OutputDisconnected {
                output: d.output,
                dest: d.dest.to_string(),
                track: d.track,
                state: d.state.as_str().to_string(),
                error: d.last_error,
            });
        }
    }
    // Destinations removed by a reload.
    let removed: Vec<(DestKey, DestState)> = seen
        .iter()
        .filter(|(k, _)| !present.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for ((output, dest, track, url), state) in removed {
        seen.remove(&(output.clone(), dest, track.clone(), url));
        if state == DestState::Publishing {
            ops.emit(Event::OutputDisconnected {
                output,
                dest: dest.to_string(),
                track,
                state: "removed".to_string(),
                error: Some("removed by a configuration reload".to_string()),
            });
        }
    }
}

/// Pets the watchdog at `interval` only while frames and fragments flow.
async fn watchdog(ops: Arc<Ops>, interval: Duration, cancel: CancellationToken) {
    // A fragment takes one fragment duration to cut; allow two, and never less than the ping
    // interval itself.
    let fragment = Duration::from_nanos(ops.grid.fragment_duration_ns());
    let mut freshness = Freshness::new((fragment * 2).max(interval * 2));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stalled_logged = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Frames fed to the encoders, slate included: while the input is lost the daemon is
        // healthy and fragments keep coming, so the watchdog keeps being petted.
        let progress = Progress {
            frames: ops.capture.grid_frames.load(Ordering::Relaxed),
            fragments: ops.fragments_total(),
        };
        if freshness.check(progress, Instant::now()) {
            ops.notifier.watchdog();
            stalled_logged = false;
        } else if ops.ready.load(Ordering::Relaxed) && !stalled_logged {
            stalled_logged = true;
            log::error!(
                state = "stalled";
                "watchdog: no fresh frames or fragments; not petting the watchdog (systemd restarts the service if this lasts)"
            );
        }
    }
}
