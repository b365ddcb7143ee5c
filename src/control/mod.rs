//! Control listener and operations loops (docs/design/operations.md).
//!
//! - `GET /` — the field console ([`console`]: one page, its script and style embedded; it
//!   reads `/status` and `/events` and plays a thumbnail from the origin).
//! - `GET /status` — JSON ([`snapshot::Status`]).
//! - `GET /metrics` — Prometheus text ([`metrics`]: `twincast_<name>_<unit>[_total]`).
//! - `GET /events` — server-sent events ([`events::Event`]): a heartbeat per track every
//!   `[control] heartbeat`, output connected/disconnected, input lost/restored, config reloaded.
//! - `POST /splice`, `GET /splices` — ad signals ([`splices`], `crate::signals`): schedule a
//!   SCTE-35 splice on a frame of the epoch grid (with the token), list what is pending and done.
//! - `POST /reload` — the same reload as SIGHUP (`systemctl reload`); it changes state, so it
//!   needs the control token ([`token`]): 202 when accepted, 401/403 otherwise (counted).
//!
//! The listener is on `[control] listen` (loopback by default) behind the `[control] allow`
//! list (empty: anyone who can reach the listener; refused requests get 403 and are counted),
//! with the origin's limits on connections, headers and `/events` subscribers ([`server`]).
//!
//! Besides the listener this module runs the operations loop (one tick a second: input
//! lost/restored, output transitions, heartbeats, `STATUS=`), readiness (`READY=1`) and the
//! watchdog (`WATCHDOG=1` only on fresh progress, see [`crate::notify::Freshness`]; slate
//! frames are progress: docs/guide/troubleshooting.md).

pub mod client;
pub mod clock;
pub mod console;
pub mod events;
pub mod metrics;
pub mod server;
pub mod snapshot;
mod splices;
pub mod state;
pub mod token;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{self, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
        .route("/", get(console::page))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::style))
        .route("/hls.min.js", get(console::hls))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .route("/reload", post(reload))
        .route("/splice", post(splices::post))
        .route("/splices", get(splices::list))
        .layer(middleware::from_fn_with_state(ops.clone(), allow_list))
        .with_state(ops.clone());
    server::serve(listener, app, ops, cancel).await;
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
    let body = metrics::render(&s, &metrics::ControlFigures::of(&ops));
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
    let Some(guard) = Subscriber::enter(&ops) else {
        ops.control_limits
            .refused_subscribers
            .fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} clients follow /events, the limit; close one (another console tab?)\n",
                server::MAX_EVENT_SUBSCRIBERS
            ),
        )
            .into_response();
    };
    let rx = ops.events.subscribe();
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let event = next_event(&mut rx, &guard.0.control_limits.lagged_events).await?;
        let data = event.data();
        let sse_event = sse::Event::default().event(event.kind()).data(data);
        Some((Ok::<_, Infallible>(sse_event), (rx, guard)))
    });
    Sse::new(stream)
        .keep_alive(sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next event for one `/events` reader, `None` once the daemon stops sending. A slow reader
/// misses the oldest events and keeps the connection; what it missed is added to `lagged`
/// (`twincast_control_lagged_events_total`).
async fn next_event(rx: &mut broadcast::Receiver<Event>, lagged: &AtomicU64) -> Option<Event> {
    loop {
        match rx.recv().await {
            Ok(event) => return Some(event),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lagged.fetch_add(n, Ordering::Relaxed);
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// One client following `/events`; counted while the stream lives.
struct Subscriber(Arc<Ops>);

impl Subscriber {
    fn enter(ops: &Arc<Ops>) -> Option<Subscriber> {
        let n = &ops.control_limits.subscribers;
        n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < server::MAX_EVENT_SUBSCRIBERS).then_some(now + 1)
        })
        .ok()
        .map(|_| Subscriber(ops.clone()))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0
            .control_limits
            .subscribers
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer to a request that changes state without the control token (401/403), or None
/// when it has it. Counted always (`twincast_control_unauthorized_requests_total`), logged at
/// most once a second like the listener's other refusals (src/control/server.rs).
fn refuse_without_token(
    ops: &Ops,
    headers: &axum::http::HeaderMap,
    what: &str,
) -> Option<Response> {
    let config = ops.config();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refusal = token::authorize(config.control.token_file.as_deref(), authorization).err()?;
    let status = match refusal {
        token::Refusal::Missing | token::Refusal::Wrong => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    if let Some(total) = ops.control_limits.refused_reload(Instant::now()) {
        log::warn!(
            error = refusal.to_string();
            "control: {what} refused: {refusal} ({total} refused since start; at most one such line a second)"
        );
    }
    Some(json_answer(
        status,
        &serde_json::json!({ "error": refusal.to_string() }),
    ))
}

/// A JSON answer with its status.
fn json_answer(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

/// `POST /reload`: with the token, asks for the same reload as SIGHUP (202); the outcome is in
/// the log, `/events` (`config_reloaded`) and `/status` (`config.reloads`, `reload_failures`).
async fn reload(State(ops): State<Arc<Ops>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(refused) = refuse_without_token(&ops, &headers, "POST /reload") {
        return refused;
    }
    ops.reload_request.notify_one();
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"reload\":\"requested\"}\n",
    )
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
    // The grid clock may pause its feed for up to MAX_LATENCY when a late source makes it feed
    // later; a fragment takes one fragment duration to cut. Frames must have moved within one
    // ping interval plus that pause and a second of margin (a starved box's late ticks), so a
    // hung pipeline stops the pings soon (17.5 s at the shipped WatchdogSec=30); fragments
    // within two fragment durations, never less than two ping intervals, plus the pause.
    let fragment = Duration::from_nanos(ops.grid.fragment_duration_ns());
    let pause = crate::capture::MAX_LATENCY;
    let mut freshness = Freshness::new(
        interval + pause + Duration::from_secs(1),
        (fragment * 2).max(interval * 2) + pause,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_events_reader_keeps_its_connection_and_its_misses_are_counted() {
        let (tx, mut rx) = broadcast::channel(state::EVENT_CAPACITY);
        let event = |silent_ms| Event::InputLost { silent_ms };
        let extra = 5;
        for i in 0..(state::EVENT_CAPACITY + extra) as u64 {
            tx.send(event(i)).expect("a reader is subscribed");
        }
        let lagged = AtomicU64::new(0);
        // The oldest events are gone; the reader goes on with the first one kept.
        let next = next_event(&mut rx, &lagged).await;
        assert!(matches!(next, Some(Event::InputLost { silent_ms }) if silent_ms == extra as u64));
        assert_eq!(lagged.load(Ordering::Relaxed), extra as u64);
        // Up to date again: no more misses.
        tx.send(event(999)).expect("send");
        let mut last = None;
        for _ in 0..state::EVENT_CAPACITY {
            last = next_event(&mut rx, &lagged).await;
        }
        assert!(matches!(last, Some(Event::InputLost { silent_ms: 999 })));
        assert_eq!(lagged.load(Ordering::Relaxed), extra as u64);
        drop(tx);
        assert!(
            next_event(&mut rx, &lagged).await.is_none(),
            "closed with the daemon"
        );
    }
}
