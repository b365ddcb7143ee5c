//! The state the control listener, the heartbeat, sd_notify and reload share: the running
//! configuration, references to the live counters of every stage, and per-track figures measured
//! from the fragments themselves (a hub consumer, so it can never slow the producer).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use twincast_media::timeline::Grid;
use twincast_media::{MediaTime, Timescale};

use crate::capture::CaptureStats;
use crate::config::Config;
use crate::hub::{Hub, PackagedFragment};
use crate::notify::Notifier;
use crate::origin::Origin;
use crate::package::TrackCounters;
use crate::publish::Budget;
use crate::status::Registry;

use super::events::Event;

/// Events kept for a slow `/events` reader before it loses the oldest.
pub const EVENT_CAPACITY: usize = 256;
/// Fragments the bitrate and frame-rate figures are measured over.
const RATE_FRAGMENTS: usize = 5;

/// Figures of one track, measured from its fragments.
#[derive(Debug, Clone, Default)]
pub struct TrackFigures {
    /// The last fragment's timescale in Hz (0: no fragment yet), as `/status` shows it.
    pub timescale: u32,
    /// The same as a type, for the conversions (`None`: no fragment yet).
    clock: Option<Timescale>,
    /// (duration in timescale, media bytes, samples) of the last fragments.
    recent: VecDeque<(u64, u64, u32)>,
    /// End of the last fragment (base_dts + duration), track timescale.
    pub last_timestamp: u64,
    pub last_sequence: Option<u64>,
    /// Sequence breaks (next ≠ last + 1).
    pub discontinuities: u64,
    pub fragments: u64,
    pub filler_fragments: u64,
    /// Fragments these figures missed because the monitor fell behind the hub's broadcast.
    pub fragments_lagged: u64,
}

impl TrackFigures {
    fn push(&mut self, f: &PackagedFragment) {
        self.timescale = f.timescale.hz();
        self.clock = Some(f.timescale);
        if let Some(last) = self.last_sequence
            && f.sequence != last + 1
        {
            self.discontinuities += 1;
        }
        self.last_sequence = Some(f.sequence);
        self.last_timestamp = f.base_dts + f.duration;
        self.fragments += 1;
        if f.filler {
            self.filler_fragments += 1;
        }
        self.recent
            .push_back((f.duration, f.media_bytes, f.sample_count));
        while self.recent.len() > RATE_FRAGMENTS {
            self.recent.pop_front();
        }
    }

    fn span_secs(&self) -> Option<f64> {
        if self.is_stale() {
            // Nothing new for a while: the figures of the last fragments no longer describe
            // the track (input lost, capture stopped); report zero rather than old rates.
            return None;
        }
        let duration: u64 = self.recent.iter().map(|r| r.0).sum();
        let clock = self.clock.filter(|_| duration > 0)?;
        Some(MediaTime::new(duration, clock).as_secs_f64())
    }

    /// No fragment has ended within three fragment durations (plus 2 s of latency) of now.
    fn is_stale(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = self.recent.len().max(1) as u128;
        let per_fragment: u128 = self.recent.iter().map(|r| u128::from(r.0)).sum::<u128>() / count;
        let per_fragment = u64::try_from(per_fragment).unwrap_or(u64::MAX);
        let per_fragment_ns = self
            .clock
            .map_or(0, |clock| MediaTime::new(per_fragment, clock).as_nanos());
        let allowance = 3u64
            .saturating_mul(per_fragment_ns)
            .saturating_add(2_000_000_000);
        self.fragments > 0 && now.saturating_sub(self.last_time_ns()) > allowance
    }

    /// Media bitrate over the last fragments, bit/s.
    pub fn bitrate_bps(&self) -> u64 {
        let bytes: u64 = self.recent.iter().map(|r| r.1).sum();
        self.span_secs()
            .map(|s| (bytes as f64 * 8.0 / s) as u64)
            .unwrap_or(0)
    }

    /// Samples per second over the last fragments.
    pub fn fps(&self) -> f64 {
        let samples: u64 = self.recent.iter().map(|r| u64::from(r.2)).sum();
        self.span_secs().map(|s| samples as f64 / s).unwrap_or(0.0)
    }

    /// End of the last fragment in ns since the epoch.
    pub fn last_time_ns(&self) -> u64 {
        self.clock.map_or(0, |clock| {
            MediaTime::new(self.last_timestamp, clock).as_nanos()
        })
    }
}

/// One track as operations see it.
pub struct TrackMonitor {
    pub name: String,
    pub video: bool,
    pub figures: Mutex<TrackFigures>,
}

/// Outcome counters of SIGHUP reloads.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub reloads: AtomicU64,
    pub failures: AtomicU64,
    /// Changes accepted in a reload that only a restart applies.
    pub restart_needed: Mutex<Vec<String>>,
}

/// Everything operations read; one per daemon.
pub struct Ops {
    /// The configuration in force (outputs and control settings follow reloads).
    pub config: RwLock<Arc<Config>>,
    pub config_path: PathBuf,
    pub grid: Grid,
    pub capture: Arc<CaptureStats>,
    pub counters: Arc<Vec<TrackCounters>>,
    pub tracks: Vec<TrackMonitor>,
    pub registry: Arc<Registry>,
    pub origin: Arc<Origin>,
    pub notifier: Arc<Notifier>,
    /// `[publish] memory`, shared by every publisher task's backlog.
    pub publish_budget: Arc<Budget>,
    /// The splice schedule (`POST /splice`, `GET /splices`).
    pub signals: Arc<crate::signals::Signals>,
    pub events: broadcast::Sender<Event>,
    pub started: SystemTime,
    pub started_at: Instant,
    /// READY=1 has been sent (the first fragment of every track is cut).
    pub ready: AtomicBool,
    pub input_lost: AtomicBool,
    pub reload: ReloadStats,
    /// Requests refused by the control allow-list.
    pub denied: AtomicU64,
    /// The control listener's limits at work (src/control/server.rs).
    pub control_limits: ControlCounters,
    /// `POST /reload` asks the reload task (src/reload.rs) for the same reload as SIGHUP.
    pub reload_request: tokio::sync::Notify,
}

/// What the control listener refused, and who follows `/events`.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Connections closed at once because [`super::server::MAX_CONNECTIONS`] were open.
    pub refused_connections: AtomicU64,
    /// `/events` requests answered 503 because [`super::server::MAX_EVENT_SUBSCRIBERS`] follow.
    pub refused_subscribers: AtomicU64,
    /// Clients following `/events` now.
    pub subscribers: std::sync::atomic::AtomicUsize,
    /// Events `/events` readers missed because they fell [`EVENT_CAPACITY`] behind (summed
    /// over readers).
    pub lagged_events: AtomicU64,
    /// Requests that change state refused for want of the right token.
    pub unauthorized: AtomicU64,
    /// When the last "POST /reload refused" line was logged ([`Self::refused_reload`]).
    last_reload_refusal_log: Mutex<Option<Instant>>,
}

impl ControlCounters {
    /// Counts one refused `POST /reload` (in [`Self::unauthorized`]) and says whether to log it:
    /// `Some(refused so far)` at most once every [`super::server::REFUSAL_LOG_EVERY`]
    /// (src/control/server.rs, the listener's own refusal lines), `None` otherwise.
    pub fn refused_reload(&self, now: Instant) -> Option<u64> {
        let total = self.unauthorized.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = crate::sync::lock(&self.last_reload_refusal_log);
        super::server::refusal_log_due(&mut last, now).then_some(total)
    }
}

/// The parts `Ops` is built from.
pub struct OpsParts {
    pub config: Config,
    pub config_path: PathBuf,
    pub grid: Grid,
    pub capture: Arc<CaptureStats>,
    pub counters: Arc<Vec<TrackCounters>>,
    pub hub: Arc<Hub>,
    pub registry: Arc<Registry>,
    pub origin: Arc<Origin>,
    pub notifier: Arc<Notifier>,
    pub publish_budget: Arc<Budget>,
    pub signals: Arc<crate::signals::Signals>,
}

impl Ops {
    pub fn new(parts: OpsParts) -> Arc<Ops> {
        let tracks = parts
            .hub
            .tracks
            .iter()
            .map(|t| TrackMonitor {
                name: t.name.to_string(),
                video: !t.name.is_audio(),
                figures: Mutex::new(TrackFigures::default()),
            })
            .collect();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(Ops {
            config: RwLock::new(Arc::new(parts.config)),
            config_path: parts.config_path,
            grid: parts.grid,
            capture: parts.capture,
            counters: parts.counters,
            tracks,
            registry: parts.registry,
            origin: parts.origin,
            notifier: parts.notifier,
            publish_budget: parts.publish_budget,
            signals: parts.signals,
            events,
            started: SystemTime::now(),
            started_at: Instant::now(),
            ready: AtomicBool::new(false),
            input_lost: AtomicBool::new(false),
            reload: ReloadStats::default(),
            denied: AtomicU64::new(0),
            control_limits: ControlCounters::default(),
            reload_request: tokio::sync::Notify::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        crate::sync::read(&self.config).clone()
    }

    pub fn set_config(&self, config: Config) {
        *crate::sync::write(&self.config) = Arc::new(config);
    }

    /// Sends an event to `/events` readers and the log.
    pub fn emit(&self, event: Event) {
        event.log();
        // An error only means nobody listens right now.
        let _ = self.events.send(event);
    }

    pub fn figures(&self, track: usize) -> TrackFigures {
        self.tracks
            .get(track)
            .map(|t| crate::sync::lock(&t.figures).clone())
            .unwrap_or_default()
    }

    /// Total fragments cut, all tracks.
    pub fn fragments_total(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.fragments.load(Ordering::Relaxed))
            .sum()
    }

    /// Every track has cut at least one fragment.
    pub fn every_track_cut(&self) -> bool {
        !self.counters.is_empty()
            && self
                .counters
                .iter()
                .all(|c| c.fragments.load(Ordering::Relaxed) > 0)
    }

    /// ms since the last raw frame, `None` before the first.
    pub fn last_frame_age_ms(&self) -> Option<u64> {
        let last = self.capture.last_frame_wall_ns.load(Ordering::Relaxed);
        (last > 0).then(|| now_ns().saturating_sub(last) / 1_000_000)
    }

    /// Feeds the per-track figures from the hub until the hub closes or `cancel` fires.
    pub fn spawn_track_monitors(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        for (i, track) in hub.tracks.iter().enumerate() {
            let fragments = track.subscribe();
            let ops = self.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                monitor_track(fragments, &ops.tracks[i].figures, &cancel).await;
            });
        }
    }
}

/// Feeds one track's figures from its fragments until the hub closes or `cancel` fires.
/// Each fragment carries its own timescale.
async fn monitor_track(
    mut fragments: broadcast::Receiver<Arc<PackagedFragment>>,
    figures: &Mutex<TrackFigures>,
    cancel: &tokio_util::sync::CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => break,
            r = fragments.recv() => r,
        };
        match received {
            Ok(f) => {
                crate::sync::lock(figures).push(&f);
            }
            // Missing a few fragments only blurs the figures; they are counted.
            Err(broadcast::error::RecvError::Lagged(n)) => {
                crate::sync::lock(figures).fragments_lagged += n;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Wall clock in ns since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_reloads_are_all_counted_and_logged_at_most_once_a_second() {
        let c = ControlCounters::default();
        let t0 = Instant::now();
        // A client retrying in a loop: 1000 refusals within one second.
        let lines: Vec<u64> = (0..1000u32)
            .filter_map(|i| {
                c.refused_reload(t0 + std::time::Duration::from_micros(u64::from(i) * 900))
            })
            .collect();
        assert_eq!(lines, [1], "one line for the whole second");
        assert_eq!(c.unauthorized.load(Ordering::Relaxed), 1000);
        // A second after the line, the next refusal is logged with the total.
        let next = t0 + super::super::server::REFUSAL_LOG_EVERY;
        assert_eq!(c.refused_reload(next), Some(1001));
        assert_eq!(c.refused_reload(next), None);
        assert_eq!(c.unauthorized.load(Ordering::Relaxed), 1002);
    }

    #[tokio::test]
    async fn a_monitor_that_falls_behind_counts_the_fragments_it_missed() {
        let hub = Hub::for_test(["720p"]);
        let fragments = hub.tracks[0].subscribe();
        let extra = 3u64;
        let published = crate::hub::FRAGMENT_CAPACITY as u64 + extra;
        for n in 0..published {
            hub.tracks[0].publish(PackagedFragment::for_test(n, 10));
        }
        // The hub goes away: the monitor reads what is left, then ends.
        drop(hub);
        let figures = Mutex::new(TrackFigures::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        monitor_track(fragments, &figures, &cancel).await;
        let f = crate::sync::lock(&figures).clone();
        assert_eq!(f.fragments_lagged, extra);
        assert_eq!(f.fragments, crate::hub::FRAGMENT_CAPACITY as u64);
        assert_eq!(
            f.fragments + f.fragments_lagged,
            published,
            "every fragment is seen or counted"
        );
        assert_eq!(f.last_sequence, Some(published - 1));
    }

    #[test]
    fn figures_go_to_zero_when_fragments_stop() {
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // A 2 s fragment that ended just now: 8 bit × 1000 bytes / 2 s.
        let mut fresh = PackagedFragment::for_test(1, 1000);
        fresh.base_dts = now_ns / 1_000_000_000 * 90_000 - 180_000;
        let mut figures = TrackFigures::default();
        figures.push(&fresh);
        assert_eq!(figures.bitrate_bps(), 4000);
        assert!((figures.fps() - 30.0).abs() < 1e-9);
        // The same fragment a minute later: stale, the track is not moving.
        let mut old = fresh;
        old.base_dts -= 60 * 90_000;
        let mut figures = TrackFigures::default();
        figures.push(&old);
        assert_eq!(figures.bitrate_bps(), 0);
        assert_eq!(figures.fps(), 0.0);
    }
}
