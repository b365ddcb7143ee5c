//! The set of running outputs: a collector and a supervisor per (output × URL × track),
//! reconciled against the configuration on reload.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backlog::Backlog;
use super::credentials::resolve_key;
use super::task::{
    CmafSpec, MAX_BACKLOG_BYTES, ProtocolSpec, RtmpSpec, Shared, SmoothSpec, Task, TaskSpec,
};
use super::{AUDIO, budget, collector, smooth_sparse, supervisor};
use crate::config::{Config, Output, Protocol, sanitize_url};
use crate::hub::Hub;
use crate::status::{DestHandle, DestState, DestStatus, Registry};
use twincast_media::TrackId;
use twincast_media::timeline::Grid;

/// The name of an output's SCTE-35 event track (`event_track`): `Streams(scte35)`.
pub const EVENT_TRACK: &str = twincast_media::mp4::smooth_sparse::SPARSE_TRACK_NAME;

/// Time allowed for the polite end of every session at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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

/// What every task of one output shares.
struct OutputPlan<'a> {
    output: &'a Output,
    /// The stream key (`key_file` or the systemd credential), or why it could not be read.
    key: Option<Result<String, String>>,
    audio: Option<TrackId>,
    /// Every track of the output that gets a task (Smooth's `all_tracks`).
    all_tracks: Vec<String>,
    /// The video rendition an event track follows (`event_track`): the CMAF timed-metadata
    /// track's segments, Smooth's sparse track parent. None: the output has no event track.
    events_of: Option<TrackId>,
}

/// Every output's tasks.
pub struct Publishers {
    hub: Arc<Hub>,
    /// The splice schedule Smooth's sparse tracks send (None: no sparse tracks, in tests).
    signals: Option<Arc<crate::signals::Signals>>,
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
    /// `grid` is the daemon's epoch grid: a send without progress for two of its fragments
    /// is a stall. `budget` is `[publish] memory`, shared by every task (the caller keeps it
    /// for `/status`).
    pub fn start(
        config: &Config,
        grid: &Grid,
        budget: Arc<budget::Budget>,
        hub: &Arc<Hub>,
        registry: Arc<Registry>,
        cancel: CancellationToken,
        signals: Option<Arc<crate::signals::Signals>>,
    ) -> Arc<Publishers> {
        let fragment = Duration::from_nanos(grid.fragment_duration_ns());
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
            signals,
            registry,
            budget,
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
        crate::sync::lock(&self.running)
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
        let (mut per_task_tracks, audio) = self.task_tracks(o);
        let events_of = o
            .event_track()
            .then(|| per_task_tracks.iter().find(|t| t.as_str() != AUDIO))
            .flatten()
            .map(|t| TrackId::from(t.as_str()));
        let plan = OutputPlan {
            output: o,
            key,
            audio,
            all_tracks: per_task_tracks.clone(),
            events_of: events_of.clone(),
        };
        // CMAF's timed-metadata track is one more task, fed by the video rendition's fragments.
        if o.protocol == Protocol::Cmaf && events_of.is_some() {
            per_task_tracks.push(EVENT_TRACK.to_string());
        }
        let mut handles = Vec::new();
        for (dest, url) in ["primary", "secondary"].into_iter().zip(o.urls()) {
            for track in &per_task_tracks {
                let url_safe = sanitize_url(url);
                let status = self
                    .registry
                    .register(DestStatus::new(&o.name, dest, track, &url_safe));
                let (spec, key_error) = self.task_spec(&plan, dest, url, url_safe, track);
                let task = self.new_task(o, spec, status, &cancel);
                if let Some(e) = key_error {
                    task.set_state(DestState::Failed, Some(&e));
                    continue;
                }
                self.budget.register(&task);
                // Subscribe now, synchronously, so nothing published from here on is missed.
                handles.push(tokio::spawn(collector::collect(
                    task.clone(),
                    self.budget.clone(),
                )));
                handles.push(tokio::spawn(supervisor::supervise(task)));
            }
            if o.protocol == Protocol::Smooth
                && let Some(parent) = &plan.events_of
                && let Some(sparse) = self.sparse_task(&plan, dest, url, parent, &cancel)
            {
                handles.push(tokio::spawn(sparse.run()));
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

    /// The sparse SCTE-35 stream of a Smooth output on `url` (src/publish/smooth_sparse.rs),
    /// registered in `/status` as track `scte35`; None without the schedule, or when the URL
    /// cannot take the key.
    fn sparse_task(
        &self,
        plan: &OutputPlan,
        dest: &'static str,
        url: &str,
        parent: &TrackId,
        cancel: &CancellationToken,
    ) -> Option<smooth_sparse::SparseTask> {
        let signals = self.signals.clone()?;
        let o = plan.output;
        let url_safe = sanitize_url(url);
        let status = self
            .registry
            .register(DestStatus::new(&o.name, dest, EVENT_TRACK, &url_safe));
        let key = plan.key.as_ref().and_then(|k| k.as_ref().ok()).cloned();
        let (url, key) = match crate::config::expand_url(url, key) {
            Ok(expanded) => expanded,
            Err(e) => {
                status.update(|s| {
                    s.state = DestState::Failed;
                    s.last_error = Some(e);
                });
                return None;
            }
        };
        Some(smooth_sparse::SparseTask {
            output: o.name.clone(),
            dest,
            url,
            url_safe,
            key,
            all_tracks: plan.all_tracks.clone(),
            parent: parent.to_string(),
            hub: self.hub.clone(),
            signals,
            status,
            cancel: cancel.clone(),
        })
    }

    /// The tracks of `o` that get a task each (RTMP: the renditions, with the audio in each;
    /// Smooth and CMAF: the renditions and the audio), and the audio track.
    fn task_tracks(&self, o: &Output) -> (Vec<String>, Option<TrackId>) {
        let mut tracks: Vec<String> = match &o.renditions {
            Some(r) => r.clone(),
            None => self.settings.renditions.clone(),
        };
        tracks.retain(|t| self.hub.track(t).is_some());
        let audio = self.settings.has_audio.then(TrackId::audio);
        let per_task_tracks: Vec<String> = match o.protocol {
            Protocol::Rtmp => tracks.clone(),
            Protocol::Smooth | Protocol::Cmaf => {
                let audio = audio.as_ref().map(TrackId::to_string);
                tracks.iter().cloned().chain(audio).collect()
            }
        };
        (per_task_tracks, audio)
    }

    /// The spec of the task of `track` on `url`, and why it cannot run (no key for a `{key}`
    /// URL, an unreadable key file), if so.
    fn task_spec(
        &self,
        plan: &OutputPlan,
        dest: &'static str,
        url: &str,
        url_safe: String,
        track: &str,
    ) -> (TaskSpec, Option<String>) {
        let o = plan.output;
        let (key, key_error) = match &plan.key {
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
            track: TrackId::from(track),
            url,
            url_safe,
            protocol: self.protocol_spec(plan, track, key.as_deref()),
            key,
            backlog: o.backlog,
            stall: self.settings.stall,
        };
        (spec, key_error)
    }

    /// What only the driver of `plan`'s protocol reads, for `track`.
    fn protocol_spec(&self, plan: &OutputPlan, track: &str, key: Option<&str>) -> ProtocolSpec {
        let o = plan.output;
        match o.protocol {
            Protocol::Rtmp => {
                let stream = o.stream.clone().unwrap_or_else(|| o.name.clone());
                ProtocolSpec::Rtmp(RtmpSpec {
                    audio: plan.audio.clone(),
                    stream_name: format!("{stream}_{track}{}", key.unwrap_or("")),
                    timestamps: o.rtmp_timestamps,
                    frame_rate: self.settings.frame_rate,
                })
            }
            Protocol::Smooth => ProtocolSpec::Smooth(SmoothSpec {
                all_tracks: plan.all_tracks.clone(),
                probe_every: Some(self.settings.stall / 4),
                sparse_parent: plan.events_of.as_ref().map(TrackId::to_string),
            }),
            Protocol::Cmaf => ProtocolSpec::Cmaf(CmafSpec {
                method: o.method,
                profile: o.profile,
                events_of: plan.events_of.clone().filter(|_| track == EVENT_TRACK),
            }),
        }
    }

    /// A task of `o` with an empty backlog (keeping two delivered units for the resend, none
    /// for CMAF ingest: docs/design/publish.md, *The backlog*).
    fn new_task(
        &self,
        o: &Output,
        spec: TaskSpec,
        status: DestHandle,
        cancel: &CancellationToken,
    ) -> Arc<Task> {
        let keep_sent = if o.protocol == Protocol::Cmaf { 0 } else { 2 };
        Arc::new(Task {
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
        })
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
        let hub = Hub::for_test(["720p", "480p", "360p", "audio"]);
        let registry = Registry::new();
        let rate = twincast_media::timeline::FrameRate::new(30, 1).expect("30 fps");
        let grid = Grid::new(rate, 2_000_000_000).expect("2 s GOP");
        let p = Publishers::start(
            &first,
            &grid,
            budget::Budget::new(first.publish.memory),
            &hub,
            registry.clone(),
            CancellationToken::new(),
            None,
        );
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
}
