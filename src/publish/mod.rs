//! Double push (design §3): every (output × URL × rendition-or-track) is its own task with its
//! own bounded backlog, fed from the hub by its own collector, so a dead or slow destination
//! only ever grows its own backlog.
//!
//! ```text
//! hub ──► collector (never waits) ──► Backlog ──► supervisor run() ⟲ run_once() ──► socket
//!                                                  Idle → Connecting → Publishing → Backoff …
//! ```
//! Drivers: [`rtmp`] (one publish per rendition, audio interleaved), [`smooth`] (one chunked
//! POST per track), [`cmaf`] (one POST/PUT per segment, acknowledged).
//!
//! Codec parameters that change mid-session (a reload rebuilds an encoder with a new bitrate
//! or size, so x264 writes a new SPS): every hub fragment names the init segment it was
//! written against ([`PackagedFragment::init`]), and that, not the hub's current init, is the
//! truth for the fragment. A session remembers the init whose headers it last sent; before a
//! fragment written against another one ([`same_init`] is false), the driver sends that
//! fragment's headers first: RTMP a new `onMetaData` and AVC (or AAC) sequence header in the
//! same publish, Smooth ends its chunked POST and starts a new one with the new `moov`, CMAF
//! ingest sends the new CMAF header like at session start. After a reconnect the first
//! headers are those of the first fragment (re)sent, so a backlog that spans a change
//! switches at the right fragment. A fragment without an init (unit tests) keeps the
//! session's current one (the hub's at session start). Each switch is counted
//! ([`Task::header_switches`]) and logged once.
//!
//! Architecture Invariant: a publish task never blocks the hub, the origin or another task;
//! the only thing it shares is the hub's broadcast, which drops for a lagging receiver.

pub mod backlog;
pub mod budget;
pub mod cmaf;
pub mod http;
pub mod net;
pub mod rtmp;
pub mod smooth;
pub mod tcp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{
    CmafProfile, Config, HttpMethod, Output, Protocol, RtmpTimestamps, sanitize_url,
};
use crate::hub::{Hub, InitSegment, PackagedFragment};
use crate::status::{DestHandle, DestState, DestStatus, Registry};
use backlog::Backlog;

/// Bytes a backlog may hold besides its duration bound (per task).
pub const MAX_BACKLOG_BYTES: u64 = 256 * 1024 * 1024;
/// Delivered bytes a task keeps at most for a resend after a stall (the peer's widest
/// window, up to this).
pub const MAX_STALL_KEEP: u64 = 8 << 20;
/// Delay before the first retry; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between tries, jitter included: the push resumes within this long of the
/// ingest coming back.
pub const BACKOFF_MAX: Duration = Duration::from_millis(1800);
/// A session that published this long resets the backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);
/// Time allowed for the polite end of every session at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Name of the audio track in the hub.
pub const AUDIO: &str = "audio";

/// One unit of the backlog: a video or audio fragment, and for RTMP the audio fragment with
/// the same sequence number that travels in the same publish.
#[derive(Debug)]
pub struct Unit {
    pub seq: u64,
    pub main: Option<Arc<PackagedFragment>>,
    pub audio: Option<Arc<PackagedFragment>>,
    duration: Duration,
    bytes: u64,
}

impl backlog::Unit for Unit {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn duration(&self) -> Duration {
        self.duration
    }
}

/// Why a session ended. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Rtmp(#[from] twincast_media::rtmp::RtmpError),
    #[error("ingest answered HTTP {status} to {what}")]
    Http { status: u16, what: &'static str },
    #[error("URL: {0}")]
    Url(String),
    #[error("the ingest closed the stream")]
    Closed,
}

/// What one task pushes where.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub output: String,
    pub dest: &'static str,
    /// Rendition or track name (hub track).
    pub track: String,
    /// The URL with any credentials; never logged (see `url_safe`).
    pub url: String,
    pub url_safe: String,
    pub protocol: Protocol,
    /// RTMP: the audio track that travels in this publish.
    pub audio: Option<String>,
    /// RTMP stream name (`<stream>_<rendition>` + key).
    pub stream_name: String,
    /// Secret from `key_file`, scrubbed from every error text.
    pub key: Option<String>,
    pub backlog: Duration,
    pub timestamps: RtmpTimestamps,
    pub method: HttpMethod,
    /// CMAF ingest: whose path rules (src/publish/cmaf.rs, `object_path`).
    pub profile: CmafProfile,
    /// A send without progress for this long resets the connection (2× fragment).
    pub stall: Duration,
    pub frame_rate: f64,
    /// Every track of this output (for Smooth's Live Server Manifest).
    pub all_tracks: Vec<String>,
}

/// What the collector and the session of one task share.
pub struct Shared {
    backlog: Mutex<Backlog<Arc<Unit>>>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog<Arc<Unit>>> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running task: its spec, its backlog, its status entry.
pub struct Task {
    pub spec: TaskSpec,
    pub shared: Arc<Shared>,
    pub status: DestHandle,
    pub hub: Arc<Hub>,
    pub cancel: CancellationToken,
    /// The error of the last backoff that was logged (repeats are logged at debug level).
    pub last_logged_error: Mutex<Option<String>>,
    /// Headers sent again mid-session because a fragment came with new codec parameters.
    pub header_switches: AtomicU64,
    /// Fragments the shared memory budget dropped from this backlog, not yet logged.
    pub budget_drops: AtomicU64,
}

/// Whether two init segments describe the same codec parameters (same object, or the same
/// bytes and track description).
pub fn same_init(a: &Arc<InitSegment>, b: &Arc<InitSegment>) -> bool {
    Arc::ptr_eq(a, b) || (a.bytes == b.bytes && a.info == b.info)
}

/// The init segment `f` was written against, or `current` when it names none.
pub fn init_of(f: &PackagedFragment, current: &Arc<InitSegment>) -> Arc<InitSegment> {
    f.init.clone().unwrap_or_else(|| current.clone())
}

impl Task {
    /// Records a state change: status entry and one log line with structured fields.
    pub fn set_state(&self, state: DestState, error: Option<&str>) {
        let error = error.map(|e| self.scrub(e));
        let mut changed = false;
        let mut repeat = false;
        self.status.update(|s| {
            changed = s.state != state || (error.is_some() && s.last_error != error);
            // Retrying a URL that keeps failing the same way is one event, not two per try.
            repeat = state == DestState::Connecting && s.state == DestState::Backoff;
            s.state = state;
            if state == DestState::Connecting {
                s.attempts += 1;
            }
            if error.is_some() {
                s.last_error.clone_from(&error);
            }
            if changed {
                s.since = Some(std::time::SystemTime::now());
            }
        });
        if !changed {
            return;
        }
        if let Ok(mut last) = self.last_logged_error.lock() {
            match state {
                DestState::Backoff => {
                    repeat = *last == error;
                    last.clone_from(&error);
                }
                DestState::Publishing => *last = None,
                _ => {}
            }
        }
        let spec = &self.spec;
        let err = error.as_deref().unwrap_or("");
        let line = format!(
            "publish {} {} {} ({}): {}",
            spec.output,
            spec.dest,
            spec.track,
            spec.url_safe,
            state.as_str()
        );
        match state {
            _ if repeat => log::debug!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str(),
                state = state.as_str(), error = err; "{line} {err}"),
            DestState::Backoff | DestState::Failed => log::warn!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str(),
                state = state.as_str(), error = err; "{line}: {err}"),
            _ => log::info!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str(),
                state = state.as_str(); "{line}"),
        }
    }

    /// Removes the key and any credentials from a text bound for logs or status.
    fn scrub(&self, text: &str) -> String {
        let mut t = text.replace(&self.spec.url, &self.spec.url_safe);
        if let Some(k) = self.spec.key.as_deref().filter(|k| !k.is_empty()) {
            t = t.replace(k, "***");
        }
        t
    }

    /// At session start: rewinds the backlog (the kept delivered units go again first) and
    /// returns the init segment whose headers go out first: that of the first unit to be
    /// (re)sent, or `current` (the hub's) when there is none yet or it names none.
    pub fn rewind_to_first_init(&self, current: Arc<InitSegment>) -> Arc<InitSegment> {
        self.rewind();
        self.next_unsent()
            .and_then(|(_, u)| u.main.as_ref().map(|f| init_of(f, &current)))
            .unwrap_or(current)
    }

    /// Counts and logs (one info line) headers sent again mid-session: fragment `seq` was
    /// written against new codec parameters; `how` says what the driver did.
    pub fn note_header_switch(&self, track: &str, seq: u64, how: &str) {
        let total = self.header_switches.fetch_add(1, Ordering::Relaxed) + 1;
        self.status.update(|s| s.header_switches = total);
        let spec = &self.spec;
        log::info!(
            output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
            "publish {} {} {} ({}): new codec parameters for {track} from fragment {seq}: {how}",
            spec.output, spec.dest, spec.track, spec.url_safe
        );
    }

    /// The current init segment of a hub track; waits until there is one. None when
    /// cancelled.
    pub async fn wait_init(&self, track: &str) -> Option<Arc<InitSegment>> {
        let hub_track = self.hub.track(track)?;
        let mut rx = hub_track.watch_init();
        loop {
            if let Some(init) = rx.borrow_and_update().clone() {
                return Some(init);
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return None },
                _ = self.cancel.cancelled() => return None,
            }
        }
    }

    /// The next undelivered unit.
    pub fn next_unsent(&self) -> Option<(u64, Arc<Unit>)> {
        self.shared.lock().next_unsent()
    }

    /// Waits until a unit may be available (or cancellation).
    pub async fn wait_unit(&self) {
        self.shared.notify.notified().await;
    }

    /// Records a delivered unit and refreshes the counters.
    pub fn mark_sent(&self, id: u64, bytes: u64) {
        let (len, held) = {
            let mut b = self.shared.lock();
            b.mark_sent(id);
            (b.unsent() as u64, b.bytes())
        };
        self.status.update(|s| {
            s.bytes_sent += bytes;
            s.fragments_sent += 1;
            s.backlog_fragments = len;
            s.backlog_bytes = held;
        });
    }

    /// Records a unit whose delivery the peer acknowledged at once (CMAF ingest's 2xx).
    pub fn mark_acknowledged(&self, id: u64, bytes: u64) {
        self.mark_sent(id, bytes);
        self.shared.lock().mark_delivered(id);
    }

    /// [`Task::mark_delivered`] from a connection's TCP evidence; delivered units covering
    /// the peer's widest window stay in the backlog for a resend after a stall.
    pub fn deliver(&self, watch: &tcp::Watch, ids: impl IntoIterator<Item = u64>) {
        self.shared
            .lock()
            .set_keep_bytes(watch.widest().min(MAX_STALL_KEEP));
        self.mark_delivered(ids);
    }

    /// At the end of a connection: what its TCP evidence showed delivered, and after a
    /// stall the extra bytes the next session sends again.
    pub fn settle(&self, watch: &mut tcp::Watch) {
        let ids = watch.settle();
        self.deliver(watch, ids);
        self.shared.lock().resend_extra(watch.resend_extra());
    }

    /// Records that the peer has every unit up to the last of `ids` (oldest first).
    pub fn mark_delivered(&self, ids: impl IntoIterator<Item = u64>) {
        if let Some(last) = ids.into_iter().last() {
            self.shared.lock().mark_delivered(last);
        }
    }

    /// After a (re)connect: the units sent but not delivered, and the kept delivered units
    /// before them, go again first.
    pub fn rewind(&self) -> u64 {
        let (again, total, first) = {
            let mut b = self.shared.lock();
            let again = b.rewind();
            (again, b.resent, b.next_unsent().map(|(_, u)| u.seq))
        };
        let spec = &self.spec;
        log::debug!(
            output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
            "publish {} {} {}: session starts at fragment {first:?}, {again} of them sent before",
            spec.output, spec.dest, spec.track
        );
        self.status.update(|s| s.resent_fragments = total);
        again
    }
}

/// Milliseconds of a timestamp (timescale units) since the epoch.
pub fn to_ms(t: u64, timescale: u32) -> u64 {
    (u128::from(t) * 1000 / u128::from(timescale.max(1))) as u64
}

/// Collects fragments from the hub into the task's backlog; never waits on the session.
async fn collect(task: Arc<Task>, budget: Arc<budget::Budget>) {
    let Some(main_hub) = task.hub.track(&task.spec.track) else {
        return;
    };
    let mut main_rx = main_hub.subscribe();
    let mut audio_rx = task
        .spec
        .audio
        .as_deref()
        .and_then(|a| task.hub.track(a))
        .map(|t| t.subscribe());
    collect_from(&task, &budget, &mut main_rx, audio_rx.as_mut()).await;
}

async fn collect_from(
    task: &Task,
    budget: &budget::Budget,
    main_rx: &mut broadcast::Receiver<Arc<PackagedFragment>>,
    mut audio_rx: Option<&mut broadcast::Receiver<Arc<PackagedFragment>>>,
) {
    let timescale = |name: &str| {
        task.hub
            .track(name)
            .and_then(|t| t.init())
            .map_or(90_000, |i| i.info.timescale)
    };
    let mut pairing = Pairing::default();
    let mut drops_pending = 0u64;
    let mut lag_total = 0u64;
    let mut last_drop_log = Instant::now() - Duration::from_secs(2);
    let mut budget_pending = 0u64;
    let mut last_budget_log = Instant::now() - Duration::from_secs(2);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let has_audio = audio_rx.is_some();
    loop {
        let mut lost = 0u64;
        let mut ready: Vec<Unit> = Vec::new();
        tokio::select! {
            _ = task.cancel.cancelled() => return,
            _ = tick.tick() => {}
            r = main_rx.recv() => match r {
                Ok(f) => {
                    if has_audio {
                        pairing.video(f, &mut ready);
                    } else {
                        ready.push(unit(Some(f), None, &timescale(&task.spec.track)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = async {
                match audio_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(f) => pairing.audio(f, &mut ready),
                Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                Err(broadcast::error::RecvError::Closed) => audio_rx = None,
            },
        }
        if has_audio {
            let ts = timescale(&task.spec.track);
            let ats = task.spec.audio.as_deref().map_or(48_000, timescale);
            for u in ready.iter_mut() {
                u.duration = unit_duration(u, ts, ats);
            }
        }
        if !ready.is_empty() {
            let (dropped, len, held, total) = {
                let mut b = task.shared.lock();
                let mut d = 0;
                for u in ready {
                    d += b.push(Arc::new(u));
                }
                (d, b.unsent() as u64, b.bytes(), b.dropped)
            };
            drops_pending += dropped;
            task.status.update(|s| {
                s.backlog_fragments = len;
                s.backlog_bytes = held;
                s.dropped_fragments = total + lag_total;
            });
            task.shared.notify.notify_one();
            // The shared budget, after this task's own bounds (it may drop from any task).
            budget.enforce();
        }
        budget_pending += task.budget_drops.swap(0, Ordering::Relaxed);
        if budget_pending > 0 && last_budget_log.elapsed() >= Duration::from_secs(1) {
            let spec = &task.spec;
            log::warn!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
                "publish {} {} {}: memory budget ([publish] memory = {} MiB) reached, dropped {budget_pending} whole fragment(s) of this destination (the furthest behind)",
                spec.output, spec.dest, spec.track, budget.limit() >> 20
            );
            let total = task.shared.lock().dropped;
            task.status
                .update(|s| s.dropped_fragments = total + lag_total);
            budget_pending = 0;
            last_budget_log = Instant::now();
        }
        if lost > 0 {
            drops_pending += lost;
            lag_total += lost;
            let total = task.shared.lock().dropped;
            task.status
                .update(|s| s.dropped_fragments = total + lag_total);
        }
        if drops_pending > 0 && last_drop_log.elapsed() >= Duration::from_secs(1) {
            let spec = &task.spec;
            log::warn!(
                output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
                "publish {} {} {}: backlog full, dropped {drops_pending} whole fragment(s)",
                spec.output, spec.dest, spec.track
            );
            drops_pending = 0;
            last_drop_log = Instant::now();
        }
    }
}

fn unit(
    main: Option<Arc<PackagedFragment>>,
    audio: Option<Arc<PackagedFragment>>,
    ts: &u32,
) -> Unit {
    let mut u = Unit {
        seq: main.as_ref().or(audio.as_ref()).map_or(0, |f| f.sequence),
        bytes: main.as_ref().map_or(0, |f| f.bytes.len() as u64)
            + audio.as_ref().map_or(0, |f| f.bytes.len() as u64),
        duration: Duration::ZERO,
        main,
        audio,
    };
    u.duration = unit_duration(&u, *ts, 48_000);
    u
}

fn unit_duration(u: &Unit, ts: u32, audio_ts: u32) -> Duration {
    if let Some(f) = &u.main {
        Duration::from_nanos(
            (u128::from(f.duration) * 1_000_000_000 / u128::from(ts.max(1))) as u64,
        )
    } else if let Some(f) = &u.audio {
        Duration::from_nanos(
            (u128::from(f.duration) * 1_000_000_000 / u128::from(audio_ts.max(1))) as u64,
        )
    } else {
        Duration::ZERO
    }
}

/// A video fragment and the audio fragment with the same number, as far as they arrived.
type Pair = (Option<Arc<PackagedFragment>>, Option<Arc<PackagedFragment>>);

/// Pairs video fragment n with audio fragment n (RTMP carries both in one publish). A unit is
/// released when both halves are there, or when a later fragment shows the other half is
/// not coming (dropped upstream).
#[derive(Default)]
struct Pairing {
    pending: std::collections::BTreeMap<u64, Pair>,
    max_seen: u64,
}

/// Pending pairs kept at most (a bound, not a tuning knob).
const MAX_PENDING_PAIRS: usize = 4;

impl Pairing {
    fn video(&mut self, f: Arc<PackagedFragment>, ready: &mut Vec<Unit>) {
        self.max_seen = self.max_seen.max(f.sequence);
        let seq = f.sequence;
        self.pending.entry(seq).or_default().0 = Some(f);
        self.release(ready);
    }

    fn audio(&mut self, f: Arc<PackagedFragment>, ready: &mut Vec<Unit>) {
        self.max_seen = self.max_seen.max(f.sequence);
        let seq = f.sequence;
        self.pending.entry(seq).or_default().1 = Some(f);
        self.release(ready);
    }

    fn release(&mut self, ready: &mut Vec<Unit>) {
        while let Some((&seq, pair)) = self.pending.first_key_value() {
            let complete = pair.0.is_some() && pair.1.is_some();
            if !(complete || seq + 1 < self.max_seen || self.pending.len() > MAX_PENDING_PAIRS) {
                return;
            }
            if let Some((_, (v, a))) = self.pending.pop_first() {
                ready.push(unit(v, a, &90_000));
            }
        }
    }
}

/// Jittered exponential backoff, capped at [`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let exp = BACKOFF_MIN.saturating_mul(1 << self.failures.min(8));
        self.failures = self.failures.saturating_add(1);
        let capped = exp.min(BACKOFF_MAX);
        // Full jitter in [50 %, 100 %]: two tasks that failed together do not retry together.
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Per-task state that survives reconnects.
#[derive(Debug, Default)]
pub struct Carry {
    /// RTMP zero-based timestamps: the first millisecond ever sent.
    pub zero_base_ms: Option<u64>,
    /// CMAF: the last acknowledged unit (re-sent with `lmsg` at shutdown if nothing newer).
    pub last_sent: Option<Arc<Unit>>,
    /// Set by a driver when its session reached Publishing.
    pub published_at: Option<Instant>,
}

/// The supervisor: `run_once` until cancelled, with backoff between tries.
async fn supervise(task: Arc<Task>) {
    let mut backoff = Backoff::default();
    let mut carry = Carry::default();
    while !task.cancel.is_cancelled() {
        task.set_state(DestState::Connecting, None);
        carry.published_at = None;
        let result = match task.spec.protocol {
            Protocol::Rtmp => rtmp::run_once(&task, &mut carry).await,
            Protocol::Smooth => smooth::run_once(&task, &mut carry).await,
            Protocol::Cmaf => cmaf::run_once(&task, &mut carry).await,
        };
        if task.cancel.is_cancelled() {
            break;
        }
        let error = match result {
            Ok(()) => "session ended".to_string(),
            Err(e) => e.to_string(),
        };
        if carry
            .published_at
            .is_some_and(|t| t.elapsed() >= BACKOFF_RESET_AFTER)
        {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        task.set_state(DestState::Backoff, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = task.cancel.cancelled() => break,
        }
    }
    task.set_state(DestState::Idle, None);
}

/// Settings every task derives from the whole config.
#[derive(Debug, Clone)]
struct Settings {
    renditions: Vec<String>,
    has_audio: bool,
    stall: Duration,
    frame_rate: f64,
}

struct Running {
    output: Output,
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    /// Which start this is (tests tell a restarted output from an untouched one).
    #[cfg(test)]
    generation: u64,
}

/// Every output's tasks.
pub struct Publishers {
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    /// `[publish] memory`, shared by every task of every output.
    budget: Arc<budget::Budget>,
    cancel: CancellationToken,
    settings: Settings,
    running: Mutex<HashMap<String, Running>>,
    #[cfg(test)]
    starts: std::sync::atomic::AtomicU64,
}

impl Publishers {
    /// Starts a task pair (collector + supervisor) per (output × URL × track). Returns at
    /// once: connections are made by the tasks, so a dead URL never delays start-up.
    pub fn start(
        config: &Config,
        hub: &Arc<Hub>,
        registry: Arc<Registry>,
        cancel: CancellationToken,
    ) -> Arc<Publishers> {
        let fragment = crate::run::grid_of(config)
            .map(|g| Duration::from_nanos(g.fragment_duration_ns()))
            .unwrap_or(Duration::from_secs(2));
        let frame_rate =
            f64::from(config.input.framerate.num) / f64::from(config.input.framerate.den.max(1));
        let settings = Settings {
            renditions: config.rendition.iter().map(|r| r.name.clone()).collect(),
            has_audio: hub.track(AUDIO).is_some(),
            stall: fragment * 2,
            frame_rate,
        };
        let publishers = Arc::new(Publishers {
            hub: hub.clone(),
            registry,
            budget: budget::Budget::new(config.publish.memory),
            cancel,
            settings,
            running: Mutex::new(HashMap::new()),
            #[cfg(test)]
            starts: std::sync::atomic::AtomicU64::new(0),
        });
        publishers.reconcile(&config.output);
        publishers
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the running outputs in line with `outputs`: removed ones stop, new ones start,
    /// changed ones restart; unchanged ones are not touched.
    pub fn reconcile(&self, outputs: &[Output]) {
        let mut running = self.running();
        let wanted: HashMap<&str, &Output> = outputs.iter().map(|o| (o.name.as_str(), o)).collect();
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|o| running.get(&name).is_some_and(|r| r.output == **o));
            if !keep && let Some(r) = running.remove(&name) {
                log::info!(output = name.as_str(); "publish {name}: stopping (configuration changed)");
                r.cancel.cancel();
                self.registry.remove_output(&name);
            }
        }
        for o in outputs {
            if running.contains_key(&o.name) {
                continue;
            }
            let r = self.spawn_output(o);
            running.insert(o.name.clone(), r);
        }
    }

    fn spawn_output(&self, o: &Output) -> Running {
        let cancel = self.cancel.child_token();
        let key = resolve_key(o);
        if let Some(Ok(k)) = &key {
            crate::secrets::register(k);
        }
        let mut tracks: Vec<String> = match &o.renditions {
            Some(r) => r.clone(),
            None => self.settings.renditions.clone(),
        };
        tracks.retain(|t| self.hub.track(t).is_some());
        let audio = self.settings.has_audio.then(|| AUDIO.to_string());
        let per_task_tracks: Vec<String> = match o.protocol {
            Protocol::Rtmp => tracks.clone(),
            Protocol::Smooth | Protocol::Cmaf => {
                tracks.iter().cloned().chain(audio.clone()).collect()
            }
        };
        let all_tracks = per_task_tracks.clone();
        let mut handles = Vec::new();
        for (dest, url) in ["primary", "secondary"].into_iter().zip(o.urls()) {
            for track in &per_task_tracks {
                let url_safe = sanitize_url(url);
                let status = self
                    .registry
                    .register(DestStatus::new(&o.name, dest, track, &url_safe));
                let stream = o.stream.clone().unwrap_or_else(|| o.name.clone());
                let (key, key_error) = match &key {
                    Some(Ok(k)) => (Some(k.clone()), None),
                    Some(Err(e)) => (None, Some(e.clone())),
                    None => (None, None),
                };
                // `{key}` / `{secret:…}` in the URL (src/config/url.rs): the key goes there.
                let (url, key, key_error) = match crate::config::expand_url(url, key) {
                    Ok((url, key)) => (url, key, key_error),
                    Err(e) => (url.to_string(), None, key_error.or(Some(e))),
                };
                let spec = TaskSpec {
                    output: o.name.clone(),
                    dest,
                    track: track.clone(),
                    url,
                    url_safe,
                    protocol: o.protocol,
                    audio: if o.protocol == Protocol::Rtmp {
                        audio.clone()
                    } else {
                        None
                    },
                    stream_name: format!("{stream}_{track}{}", key.as_deref().unwrap_or("")),
                    key,
                    backlog: o.backlog,
                    timestamps: o.rtmp_timestamps,
                    method: o.method,
                    profile: o.profile,
                    stall: self.settings.stall,
                    frame_rate: self.settings.frame_rate,
                    all_tracks: all_tracks.clone(),
                };
                let keep_sent = if o.protocol == Protocol::Cmaf { 0 } else { 2 };
                let task = Arc::new(Task {
                    shared: Arc::new(Shared {
                        backlog: Mutex::new(Backlog::new(keep_sent, o.backlog, MAX_BACKLOG_BYTES)),
                        notify: Notify::new(),
                    }),
                    spec,
                    status,
                    hub: self.hub.clone(),
                    cancel: cancel.clone(),
                    last_logged_error: Mutex::new(None),
                    header_switches: AtomicU64::new(0),
                    budget_drops: AtomicU64::new(0),
                });
                if let Some(e) = key_error {
                    task.set_state(DestState::Failed, Some(&e));
                    continue;
                }
                self.budget.register(&task);
                // Subscribe now, synchronously, so nothing published from here on is missed.
                handles.push(tokio::spawn(collect(task.clone(), self.budget.clone())));
                handles.push(tokio::spawn(supervise(task)));
            }
        }
        Running {
            output: o.clone(),
            cancel,
            handles,
            #[cfg(test)]
            generation: self
                .starts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Stops every task: each ends its session politely within [`SHUTDOWN_GRACE`]; whatever
    /// is still running a little later is aborted.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self.running().drain().map(|(_, r)| r).collect();
        for r in &all {
            r.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE + Duration::from_millis(500);
        for r in all {
            for mut h in r.handles {
                if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                    h.abort();
                }
            }
        }
    }
}

/// Name prefix of stream-key credentials: `LoadCredential=twincast:/etc/twincast/credentials`
/// loads every file of that directory as `twincast_<file>`.
const CREDENTIAL_PREFIX: &str = "twincast_";

/// The output's secret: `key_file` when set, else the systemd credential
/// `$CREDENTIALS_DIRECTORY/twincast_<output name>` when it exists, else none.
fn resolve_key(o: &Output) -> Option<Result<String, String>> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY");
    resolve_key_in(o, dir.as_deref().map(std::path::Path::new))
}

fn resolve_key_in(
    o: &Output,
    credentials: Option<&std::path::Path>,
) -> Option<Result<String, String>> {
    let path = match &o.key_file {
        Some(p) => p.clone(),
        None => {
            let p = credentials?.join(format!("{CREDENTIAL_PREFIX}{}", o.name));
            if !p.is_file() {
                return None;
            }
            p
        }
    };
    Some(read_key(&path))
}

fn read_key(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("key_file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "key file {} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    std::fs::read_to_string(path)
        .map(|k| k.trim().to_string())
        .map_err(|e| format!("key_file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(outputs: &str) -> Config {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/twincast.toml"))
                .expect("shipped config");
        crate::config::parse_str(
            &format!("{shipped}{outputs}"),
            std::path::Path::new("t.toml"),
        )
        .expect("valid config")
        .config
    }

    const A: &str = "\n[[output]]\nname = \"a\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:1/live\"\nsecondary = \"rtmp://127.0.0.1:2/live\"\nrenditions = [\"720p\"]\n";
    const B: &str =
        "\n[[output]]\nname = \"b\"\nprotocol = \"cmaf\"\nprimary = \"http://127.0.0.1:1/in\"\n";
    const B2: &str =
        "\n[[output]]\nname = \"b\"\nprotocol = \"cmaf\"\nprimary = \"http://127.0.0.1:3/in\"\n";
    const C: &str =
        "\n[[output]]\nname = \"c\"\nprotocol = \"smooth\"\nprimary = \"http://127.0.0.1:1/in\"\n";

    #[tokio::test]
    async fn reconcile_touches_only_what_changed() {
        let first = config(&format!("{A}{B}"));
        let hub = Hub::new(["720p", "480p", "360p", "audio"].map(String::from));
        let registry = Registry::new();
        let p = Publishers::start(&first, &hub, registry.clone(), CancellationToken::new());
        let count = |o: &str| registry.dests().iter().filter(|d| d.output == o).count();
        assert_eq!(count("a"), 2, "one rendition × two URLs");
        assert_eq!(count("b"), 4, "three renditions + audio × one URL");
        let generation = |name: &str| p.running().get(name).map(|r| r.generation);
        let (ga, gb) = (generation("a"), generation("b"));

        // b's URL changes, c is new; a is the same.
        let second = config(&format!("{A}{B2}{C}"));
        p.reconcile(&second.output);
        assert_eq!(generation("a"), ga, "an unchanged output is not touched");
        assert_ne!(generation("b"), gb, "a changed output restarts");
        assert!(generation("c").is_some());
        assert_eq!(count("b"), 4);
        assert!(
            registry
                .dests()
                .iter()
                .any(|d| d.output == "b" && d.url.contains(":3/"))
        );

        // a is removed.
        let third = config(&format!("{B2}{C}"));
        p.reconcile(&third.output);
        assert!(generation("a").is_none());
        assert_eq!(count("a"), 0);
        p.shutdown().await;
        assert!(p.running().is_empty());
    }

    #[test]
    fn backoff_is_jittered_capped_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= BACKOFF_MIN && delays[0] >= BACKOFF_MIN / 2);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[11] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }

    fn frag(seq: u64) -> Arc<PackagedFragment> {
        Arc::new(PackagedFragment {
            sequence: seq,
            base_dts: seq * 90_000,
            duration: 90_000,
            sample_count: 30,
            filler: false,
            bytes: bytes::Bytes::from_static(b"xx"),
            media_bytes: 2,
            samples: Arc::new(Vec::new()),
            init: None,
        })
    }

    #[test]
    fn pairing_releases_complete_pairs_and_gives_up_on_lost_halves() {
        let mut p = Pairing::default();
        let mut ready = Vec::new();
        p.video(frag(1), &mut ready);
        assert!(ready.is_empty());
        p.audio(frag(1), &mut ready);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].main.is_some() && ready[0].audio.is_some());
        ready.clear();
        // Audio 2 lost upstream: video 2 goes alone once fragment 4 shows up.
        p.video(frag(2), &mut ready);
        p.video(frag(3), &mut ready);
        p.audio(frag(3), &mut ready);
        assert!(ready.is_empty(), "3 waits behind 2");
        p.video(frag(4), &mut ready);
        let seqs: Vec<u64> = ready.iter().map(|u| u.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert!(ready[0].audio.is_none());
    }

    #[test]
    fn key_comes_from_key_file_or_the_systemd_credential() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cred = dir.path().join("twincast_cloud");
        std::fs::write(&cred, "s3cret\n").expect("write");
        let mut o = crate::config::parse_str(
            "[[rendition]]\nname = \"a\"\nwidth = 640\nheight = 360\nbitrate_kbps = 500\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1/live\"\n",
            std::path::Path::new("t.toml"),
        )
        .expect("config")
        .config
        .output
        .remove(0);
        let creds = Some(dir.path());
        assert_eq!(resolve_key_in(&o, creds), Some(Ok("s3cret".to_string())));
        let file = dir.path().join("explicit");
        std::fs::write(&file, "other").expect("write");
        o.key_file = Some(file);
        assert_eq!(resolve_key_in(&o, creds), Some(Ok("other".to_string())));
        o.key_file = None;
        assert_eq!(resolve_key_in(&o, None), None);
        o.name = "none".to_string();
        assert_eq!(resolve_key_in(&o, creds), None);
    }
}

/// Shared pieces of the drivers' tests: hand-built init segments and fragments, a task fed
/// straight into its backlog, and a small recording HTTP receiver.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use twincast_media::{Codec, Sample, TrackInfo};

    /// A video init segment whose avcC ends with `tag` (so two of them differ).
    pub fn video_init(tag: u8, width: u32, bitrate: u32) -> Arc<InitSegment> {
        let info = TrackInfo {
            id: 1,
            name: "v".into(),
            timescale: 90_000,
            codec: Codec::H264 {
                avcc: vec![
                    1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, tag, 1, 0, 4, 0x68, 0xee,
                    0x3c, 0x80,
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
            sample_count: 2,
            filler: false,
            bytes: Bytes::from(format!("seg{seq}")),
            media_bytes: 12,
            samples: Arc::new(samples),
            init: init.cloned(),
        })
    }

    pub fn unit(
        main: Option<Arc<PackagedFragment>>,
        audio: Option<Arc<PackagedFragment>>,
    ) -> Arc<Unit> {
        Arc::new(super::unit(main, audio, &90_000))
    }

    pub fn spec(protocol: Protocol, url: &str, track: &str) -> TaskSpec {
        TaskSpec {
            output: "o".into(),
            dest: "primary",
            track: track.into(),
            url: url.into(),
            url_safe: url.into(),
            protocol,
            audio: None,
            stream_name: format!("o_{track}"),
            key: None,
            backlog: Duration::from_secs(30),
            timestamps: RtmpTimestamps::Epoch,
            method: HttpMethod::Post,
            profile: CmafProfile::Generic,
            stall: Duration::from_secs(2),
            frame_rate: 30.0,
            all_tracks: vec![track.into()],
        }
    }

    /// A task on a hub with one track `v` whose current init is `hub_init`.
    pub fn task(spec: TaskSpec, hub_init: &Arc<InitSegment>) -> Arc<Task> {
        let hub = Hub::new([spec.track.clone()]);
        if let Some(t) = hub.track(&spec.track) {
            t.set_init(hub_init.clone());
        }
        let keep_sent = if spec.protocol == Protocol::Cmaf {
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
                    c.lock().expect("conns").push(h);
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
            self.reqs.lock().expect("reqs").clone()
        }

        /// Closes every open connection (the ingest restarts).
        pub fn drop_connections(&self) {
            for h in self.conns.lock().expect("conns").drain(..) {
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
                let mut r = reqs.lock().expect("reqs");
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
                        reqs.lock().expect("reqs")[idx]
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
                reqs.lock().expect("reqs")[idx].body = buf.drain(..length).collect();
            }
            reqs.lock().expect("reqs")[idx].complete = true;
            if close.lock().expect("close").contains(&idx) {
                return;
            }
            let status = if fail.lock().expect("fail").contains(&idx) {
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
}
