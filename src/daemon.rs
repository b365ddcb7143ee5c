//! The running daemon: start in order, run until a signal, stop in order.
//!
//! Start-up: origin listener (a taken port is a start-up error), control listener, packager,
//! publishers, SIGHUP reload, capture (sources, slate, grid clock, encoders). Only a missing
//! element (69), an invalid config (78) or an OS resource (71) ends start-up with an error.
//! After start-up nothing but a signal ends the daemon: sources and encoders are rebuilt by
//! capture's supervisors, and the main loop applies reloads.
//!
//! Shutdown (one cancellation token, tracked tasks, a log line per phase): capture (no new
//! units) → packager (drains and flushes) → publishers → origin and control (the token) →
//! the tracked tasks end. A second SIGTERM exits at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use twincast_media::timeline::{FrameRate, Grid};

use crate::capture::{
    Capture, CaptureError, CaptureStats, EncodedUnit, EncoderError, UNIT_QUEUE_CAPACITY, UnitSender,
};
use crate::config::{AudioInput, Config};
use crate::exit;
use crate::hub::Hub;
use crate::notify::Notifier;
use crate::origin::{self, Origin, OriginSettings};
use crate::package::{Packager, SharedSpecs, TrackSpec};
use crate::publish::{Budget, Publishers};
use crate::signals::Signals;
use crate::status::Registry;

/// How long shutdown waits for the tracked tasks.
const TASKS_GRACE: Duration = Duration::from_secs(2);

pub struct Daemon {
    config_path: PathBuf,
    notifier: Arc<Notifier>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    capture: Capture,
    units: Option<UnitSender>,
    package_thread: Option<std::thread::JoinHandle<()>>,
    package_stop: Arc<std::sync::atomic::AtomicBool>,
    shared_specs: SharedSpecs,
    publishers: Arc<Publishers>,
    rebuild_rx: mpsc::Receiver<Config>,
    encoder_errors: mpsc::Receiver<EncoderError>,
}

impl Daemon {
    /// Starts everything, in the order of the module doc; the error is the exit code.
    pub async fn start(config: Config, config_path: &Path, dvr_dir: &Path) -> Result<Daemon, u8> {
        let notifier = Arc::new(Notifier::from_env());
        let registry = Registry::new();
        let grid = grid_of(&config).map_err(|e| {
            log::error!("timeline: {e}");
            exit::EX_CONFIG
        })?;
        let specs = track_specs(&config);
        let tracks: Option<Vec<_>> = specs.iter().map(|s| Some((s.name(), s.clock()?))).collect();
        let Some(tracks) = tracks else {
            log::error!("config: a track has a timescale of 0 (audio sample_rate = 0)");
            return Err(exit::EX_CONFIG);
        };
        let hub = Hub::new(tracks);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();

        // Origin first: a port that is taken is a start-up error, before any capture.
        let origin = start_origin(&config, &grid, dvr_dir, &hub, &cancel, &tasks).await?;
        // The splice schedule: the control API fills it, the encoders condition its frames,
        // the origin's playlists carry its signals. With it, the source's captions, from the
        // grid clock to the package threads.
        let signals = Arc::new(
            Signals::new(grid.rate())
                .with_captions(crate::captions::Captions::for_input(&config.input)),
        );
        origin.set_signals(signals.clone());
        let control_listener = crate::control::bind(config.control.listen)
            .await
            .map_err(|e| {
                log::error!("control: cannot listen on {}: {e}", config.control.listen);
                exit::EX_OSERR
            })?;

        // Capture → package.
        let stats = Arc::new(CaptureStats::default());
        let (units, unit_rx) = UnitSender::new(UNIT_QUEUE_CAPACITY, stats.clone());
        let packager = Packager::new(grid, specs, hub.clone())
            .with_signals(signals.clone())
            .with_epoch_timecode(config.timeline.timecode == crate::config::TimecodeKind::Epoch);
        let shared_specs = packager.specs();
        // `[publish] memory`: the publishers enforce it, /status and /metrics show it.
        let publish_budget = Budget::new(config.publish.memory);
        let ops = crate::control::Ops::new(crate::control::OpsParts {
            config: config.clone(),
            config_path: config_path.to_path_buf(),
            grid,
            capture: stats.clone(),
            counters: packager.counters.clone(),
            hub: hub.clone(),
            registry: registry.clone(),
            origin: origin.clone(),
            notifier: notifier.clone(),
            publish_budget: publish_budget.clone(),
            signals: signals.clone(),
        });
        crate::control::spawn(&ops, &hub, control_listener, cancel.clone());
        // Publishers: tasks connect on their own, so a dead URL never delays start-up.
        let publishers = Publishers::start(
            &config,
            &grid,
            publish_budget,
            &hub,
            registry.clone(),
            cancel.child_token(),
            Some(signals.clone()),
        );
        let rebuild_rx = spawn_reload(&ops, &publishers, &cancel, &tasks);
        let (package_stop, package_thread) = spawn_packager(packager, unit_rx)?;
        let (capture, encoder_errors) =
            start_capture(&config, grid, units.clone(), stats, signals)?;
        log_started(&config, grid, &capture);
        Ok(Daemon {
            config_path: config_path.to_path_buf(),
            notifier,
            cancel,
            tasks,
            capture,
            units: Some(units),
            package_thread: Some(package_thread),
            package_stop,
            shared_specs,
            publishers,
            rebuild_rx,
            encoder_errors,
        })
    }

    /// The main loop: until SIGTERM/SIGINT, rebuild failed encoders and apply reloads.
    pub async fn run_until_signal(&mut self) {
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    self.notifier.stopping();
                    log::info!("stopping: signal received");
                    return;
                }
                // Building and stopping pipelines blocks for a moment: off the async workers.
                Some(error) = self.encoder_errors.recv() => {
                    tokio::task::block_in_place(|| self.capture.encoder_failed(error));
                }
                Some(next) = self.rebuild_rx.recv() => {
                    tokio::task::block_in_place(|| self.apply_capture(&next));
                }
            }
        }
    }

    /// A reload's new `[input]` swaps the source and keeps the encoders; new rendition or
    /// audio settings build new encoders that take over at a GOP start.
    fn apply_capture(&mut self, next: &Config) {
        let running = self.capture.config().clone();
        if next.input != running.input {
            match self.capture.replace_input(next) {
                Ok(()) => log::info!(
                    state = "rebuilt";
                    "capture: pipeline rebuilt ({} input); the encoders keep running (slate until its first picture)",
                    next.input.kind.as_str()
                ),
                Err(e) => {
                    log::error!("capture: cannot use the new input, keeping the running one: {e}")
                }
            }
        }
        if next.rendition != running.rendition || next.audio != running.audio {
            // Read when the new encoders announce their codec parameters.
            *crate::sync::write(&self.shared_specs) = track_specs(next);
            match self.capture.rebuild_encoders(next) {
                Ok(()) => {
                    let encoders: Vec<&str> =
                        self.capture.encoders.iter().map(|e| e.element()).collect();
                    log::info!(
                        state = "rebuilt";
                        "capture: pipeline rebuilt (encoders {encoders:?}); they take over at the next GOP start"
                    );
                }
                Err(e) => log::error!(
                    "capture: cannot rebuild the encoders for the new configuration, keeping the running ones: {e}"
                ),
            }
        }
    }

    /// Stops in order: capture, packager, publishers, origin and control, tracked tasks.
    pub async fn shutdown(mut self) {
        log::info!("stopping: capture");
        tokio::task::block_in_place(|| self.capture.stop());
        // The last sender: the packager drains what is queued, flushes and ends.
        drop(self.units.take());
        self.package_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        log::info!("stopping: packager");
        if let Some(handle) = self.package_thread.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        log::info!("stopping: publishers");
        self.publishers.shutdown().await;
        log::info!("stopping: origin and control");
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(TASKS_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            log::warn!("stopping: some tasks did not end within {TASKS_GRACE:?}");
        }
        log::info!("stopped ({})", self.config_path.display());
    }
}

/// Start-up, the origin: binds its listener (a taken port is a start-up error, 71), then starts
/// its feeders and its server on the daemon's token and task tracker.
async fn start_origin(
    config: &Config,
    grid: &Grid,
    dvr_dir: &Path,
    hub: &Arc<Hub>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Arc<Origin>, u8> {
    let mut settings = OriginSettings::from_config(&config.origin, grid, dvr_dir);
    settings.captions = crate::captions::Captions::for_input(&config.input).declared();
    let origin = Origin::new(settings, hub);
    let listener = origin::bind(config.origin.listen).await.map_err(|e| {
        log::error!("origin: cannot listen on {}: {e}", config.origin.listen);
        exit::EX_OSERR
    })?;
    origin.spawn_feeders(hub, cancel.clone());
    tasks.spawn(origin::serve(listener, origin.clone(), cancel.clone()));
    Ok(origin)
}

/// Start-up, SIGHUP reload: outputs are applied through the publishers; a new `[input]`, new
/// rendition settings or a new audio bitrate go to the main loop over the returned channel.
fn spawn_reload(
    ops: &Arc<crate::control::Ops>,
    publishers: &Arc<Publishers>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> mpsc::Receiver<Config> {
    let apply_outputs: crate::reload::ApplyOutputs = {
        let publishers = publishers.clone();
        Box::new(move |outputs| publishers.reconcile(outputs))
    };
    // A new [input], new rendition settings or a new audio bitrate on SIGHUP: the main
    // loop swaps the source or rebuilds the encoders on the same grid.
    let (rebuild_tx, rebuild_rx) = mpsc::channel::<Config>(2);
    let apply_input: crate::reload::ApplyInput = Box::new(move |next| {
        if rebuild_tx.try_send(next.clone()).is_err() {
            log::warn!(
                "capture: a rebuild is already pending; this reload's input waits for the next SIGHUP"
            );
        }
    });
    let appliers = crate::reload::Appliers {
        outputs: Some(apply_outputs),
        input: Some(apply_input),
    };
    if let Err(e) = crate::reload::spawn(ops.clone(), appliers, cancel.clone(), tasks) {
        log::warn!("SIGHUP reload is not available: {e}");
    }
    rebuild_rx
}

/// Start-up, the package thread; returns its stop flag and its handle.
fn spawn_packager(
    packager: Packager,
    unit_rx: std::sync::mpsc::Receiver<EncodedUnit>,
) -> Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>), u8> {
    let package_stop = Arc::new(AtomicBool::new(false));
    let package_thread = std::thread::Builder::new()
        .name("package".into())
        .spawn({
            let stop = package_stop.clone();
            move || packager.run_until(unit_rx, &stop)
        })
        .map_err(|e| {
            log::error!("package: cannot start its thread: {e}");
            exit::EX_OSERR
        })?;
    Ok((package_stop, package_thread))
}

/// Start-up, last: capture (sources, slate, grid clock, encoders); a missing element is 69.
/// Returns it and the channel its encoders report their errors on.
fn start_capture(
    config: &Config,
    grid: Grid,
    units: UnitSender,
    stats: Arc<CaptureStats>,
    signals: Arc<Signals>,
) -> Result<(Capture, mpsc::Receiver<EncoderError>), u8> {
    let (errors_tx, encoder_errors) = mpsc::channel::<EncoderError>(4);
    let capture = Capture::start(config, grid, units, stats, errors_tx, signals).map_err(|e| {
        log::error!("capture: {e}");
        match e {
            CaptureError::Element(_) => exit::EX_UNAVAILABLE,
            _ => exit::EX_SOFTWARE,
        }
    })?;
    Ok((capture, encoder_errors))
}

/// The start-up summary: the encoder, its ladder and input, and the origin's address.
fn log_started(config: &Config, grid: Grid, capture: &Capture) {
    let encoders: Vec<&str> = capture.encoders.iter().map(|e| e.element()).collect();
    log::info!(
        "encoder {} (pair {}): {} renditions {}/{} fps, encoders {:?}, audio {:?}, input {}",
        config.encoder.name,
        config.encoder.pair,
        config.rendition.len(),
        grid.rate().num(),
        grid.rate().den(),
        encoders,
        capture.aac_encoder,
        config.input.kind.as_str()
    );
    log::info!("origin: http://{}/live/master.m3u8", config.origin.listen);
}

/// Resolves on SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        log::warn!("second signal: stopping now");
        std::process::exit(1);
    });
}

/// The epoch grid of a validated config.
pub fn grid_of(config: &Config) -> Result<Grid, String> {
    let rate = FrameRate::new(config.input.framerate.num, config.input.framerate.den)
        .ok_or_else(|| "invalid frame rate".to_string())?;
    let gop_ns = u64::try_from(config.timeline.gop.as_nanos()).map_err(|e| e.to_string())?;
    Grid::new(rate, gop_ns)
        .and_then(|g| g.with_fragment_gops(u64::from(config.timeline.fragment_gops)))
        .map_err(|e| e.to_string())
}

/// Track names in track order: renditions, then audio.
pub fn track_specs(config: &Config) -> Vec<TrackSpec> {
    let mut specs: Vec<TrackSpec> = config
        .rendition
        .iter()
        .map(|r| TrackSpec::Video {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            bitrate: r.bitrate_kbps * 1000,
        })
        .collect();
    if config.input.audio != AudioInput::None {
        specs.push(TrackSpec::Audio {
            sample_rate: config.audio.sample_rate,
            channels: config.audio.channels,
            bitrate: config.audio.bitrate_kbps * 1000,
        });
    }
    specs
}
