//! One task's spec, the backlog it shares with its collector, and what its drivers call on it
//! (state changes, delivery bookkeeping, header switches).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twincast_media::TrackId;

use super::backlog::{self, Backlog};
use super::tcp;
use crate::config::{CmafProfile, HttpMethod, Protocol, RtmpTimestamps};
use crate::hub::{Hub, InitSegment, PackagedFragment};
use crate::status::{DestHandle, DestState};

/// Bytes a backlog may hold besides its duration bound (per task).
pub const MAX_BACKLOG_BYTES: u64 = 256 * 1024 * 1024;
/// Delivered bytes a task keeps at most for a resend after a stall (the peer's widest
/// window, up to this).
pub const MAX_STALL_KEEP: u64 = 8 << 20;

/// One unit of the backlog: a video or audio fragment, and for RTMP the audio fragment with
/// the same sequence number that travels in the same publish.
#[derive(Debug)]
pub struct Unit {
    pub seq: u64,
    pub main: Option<Arc<PackagedFragment>>,
    pub audio: Option<Arc<PackagedFragment>>,
    pub(super) duration: Duration,
    pub(super) bytes: u64,
}

impl backlog::Unit for Unit {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn duration(&self) -> Duration {
        self.duration
    }
}

/// What one task pushes where.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub output: String,
    pub dest: &'static str,
    /// Rendition or track name (hub track).
    pub track: TrackId,
    /// The URL with any credentials; never logged (see `url_safe`).
    pub url: String,
    pub url_safe: String,
    /// What only this protocol's driver uses.
    pub protocol: ProtocolSpec,
    /// Secret from `key_file`, scrubbed from every error text.
    pub key: Option<String>,
    pub backlog: Duration,
    /// A send without progress for this long resets the connection (2× fragment).
    pub stall: Duration,
}

impl TaskSpec {
    /// The hub track whose fragments the task sends: its own, or for a CMAF timed-metadata
    /// track the video rendition whose fragments its segments follow.
    pub fn source_track(&self) -> &TrackId {
        match &self.protocol {
            ProtocolSpec::Cmaf(CmafSpec {
                events_of: Some(video),
                ..
            }) => video,
            _ => &self.track,
        }
    }
}

/// The part of a task's spec only one protocol's driver reads; the supervisor hands each
/// driver its own.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolSpec {
    Rtmp(RtmpSpec),
    Smooth(SmoothSpec),
    Cmaf(CmafSpec),
}

impl ProtocolSpec {
    /// The audio track that travels in the same unit as each video fragment (RTMP's), which
    /// the collector pairs with it.
    pub fn paired_audio(&self) -> Option<&str> {
        match self {
            ProtocolSpec::Rtmp(r) => r.audio.as_deref(),
            ProtocolSpec::Smooth(_) | ProtocolSpec::Cmaf(_) => None,
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            ProtocolSpec::Rtmp(_) => Protocol::Rtmp,
            ProtocolSpec::Smooth(_) => Protocol::Smooth,
            ProtocolSpec::Cmaf(_) => Protocol::Cmaf,
        }
    }
}

/// What an RTMP publish needs besides the common spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RtmpSpec {
    /// The audio track that travels in this publish.
    pub audio: Option<TrackId>,
    /// Stream name (`<stream>_<rendition>` + key).
    pub stream_name: String,
    pub timestamps: RtmpTimestamps,
    /// For `onMetaData`.
    pub frame_rate: f64,
}

/// What a Smooth ingest POST needs besides the common spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothSpec {
    /// Every track of this output (for the Live Server Manifest).
    pub all_tracks: Vec<String>,
    /// How often the server is asked whether it is alive while the POST runs
    /// (`publish/liveness.rs`); None: TCP evidence only.
    pub probe_every: Option<Duration>,
    /// The output has a sparse SCTE-35 track (`event_track`) whose parent is this video
    /// track: every stream's Live Server Manifest names it (src/publish/smooth_sparse.rs).
    pub sparse_parent: Option<String>,
}

/// What a CMAF ingest push needs besides the common spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CmafSpec {
    pub method: HttpMethod,
    /// Which receiver's request paths (`output.profile`).
    pub profile: CmafProfile,
    /// This task is the output's timed-metadata track (`event_track`): one segment of SCTE-35
    /// events per fragment of this video track, on the same grid (docs/design/signals.md,
    /// *CMAF*).
    pub events_of: Option<TrackId>,
}

/// What the collector and the session of one task share.
pub struct Shared {
    pub(super) backlog: Mutex<Backlog<Arc<Unit>>>,
    pub(super) notify: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Backlog<Arc<Unit>>> {
        crate::sync::lock(&self.backlog)
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
        {
            let mut last = crate::sync::lock(&self.last_logged_error);
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
    pub(super) fn scrub(&self, text: &str) -> String {
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
