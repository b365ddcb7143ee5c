//! `twincast run`: wires capture → package → hub → origin, and stops in order.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio_util::sync::CancellationToken;
use twincast_media::timeline::{FrameRate, Grid};

use crate::capture::{Capture, CaptureError, CaptureStats, UNIT_QUEUE_CAPACITY, UnitSender};
use crate::config::{self, AudioInput, Config};
use crate::hub::Hub;
use crate::origin::{self, Origin, OriginSettings};
use crate::package::{Packager, TrackSpec};
use crate::status::Registry;

/// sysexits: a required element or device is missing.
pub const EX_UNAVAILABLE: u8 = 69;
/// sysexits: internal software error (the pipeline failed while running).
pub const EX_SOFTWARE: u8 = 70;
/// sysexits: cannot bind or create an OS resource.
pub const EX_OSERR: u8 = 71;
/// sysexits: configuration error.
pub const EX_CONFIG: u8 = 78;

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

pub fn run(config_path: &Path) -> ExitCode {
    tune_allocator();
    crate::logging::init();
    let loaded = match config::load(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        log::warn!("{warning}");
    }
    let config = loaded.config;
    if let Err(e) = gst::init() {
        log::error!("GStreamer could not start: {e}");
        return ExitCode::from(EX_UNAVAILABLE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("could not start the async runtime: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    runtime.block_on(run_async(config, config_path))
}

async fn run_async(config: Config, config_path: &Path) -> ExitCode {
    let notifier = Arc::new(crate::notify::Notifier::from_env());
    let registry = Registry::new();
    let grid = match grid_of(&config) {
        Ok(g) => g,
        Err(e) => {
            log::error!("timeline: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let specs = track_specs(&config);
    let names = specs.iter().map(|s| match s {
        TrackSpec::Video { name, .. } => name.clone(),
        TrackSpec::Audio { .. } => "audio".to_string(),
    });
    let hub = Hub::new(names);
    let cancel = CancellationToken::new();

    // Origin first: a port that is taken is a start-up error, before any capture.
    let origin = Origin::new(OriginSettings::from_config(&config.origin, &grid), &hub);
    let listener = match origin::bind(config.origin.listen).await {
        Ok(l) => l,
        Err(e) => {
            log::error!("origin: cannot listen on {}: {e}", config.origin.listen);
            return ExitCode::from(EX_OSERR);
        }
    };
    origin.spawn_feeders(&hub, cancel.clone());
    let server = tokio::spawn(origin::serve(listener, origin.clone(), cancel.clone()));
    let control_listener = match crate::control::bind(config.control.listen).await {
        Ok(l) => l,
        Err(e) => {
            log::error!("control: cannot listen on {}: {e}", config.control.listen);
            return ExitCode::from(EX_OSERR);
        }
    };

    // Capture → package.
    let stats = Arc::new(CaptureStats::default());
    let (units, unit_rx) = UnitSender::new(UNIT_QUEUE_CAPACITY, stats.clone());
    let packager = Packager::new(grid, specs, hub.clone());
    let shared_specs = packager.specs();
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
    });
    crate::control::spawn(&ops, &hub, control_listener, cancel.clone());
    // Publishers: tasks connect on their own, so a dead URL never delays start-up.
    let publishers =
        crate::publish::Publishers::start(&config, &hub, registry.clone(), cancel.child_token());
    let apply_outputs: crate::reload::ApplyOutputs = {
        let publishers = publishers.clone();
        Box::new(move |outputs| publishers.reconcile(outputs))
    };
    // A new [input], new rendition settings or a new audio bitrate on SIGHUP: the main loop
    // below rebuilds capture on the same grid.
    let (rebuild_tx, mut rebuild_rx) = tokio::sync::mpsc::channel::<Config>(2);
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
    if let Err(e) = crate::reload::spawn(ops.clone(), appliers, cancel.clone()) {
        log::warn!("SIGHUP reload is not available: {e}");
    }
    let package_thread = std::thread::Builder::new()
        .name("package".into())
        .spawn(move || packager.run(unit_rx));
    let mut capture = match Capture::build(&config, grid, units.clone(), stats.clone()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("capture: {e}");
            let code = match e {
                CaptureError::Element(_) => EX_UNAVAILABLE,
                _ => EX_SOFTWARE,
            };
            return ExitCode::from(code);
        }
    };
    let encoders: Vec<&str> = capture.encoders.iter().map(|e| e.element()).collect();
    log::info!(
        "encoder {} (pair {}): {} renditions {}/{} fps, encoders {:?}, audio {:?}",
        config.encoder.name,
        config.encoder.pair,
        config.rendition.len(),
        grid.rate().num(),
        grid.rate().den(),
        encoders,
        capture.aac_encoder
    );
    if let Err(e) = capture.start() {
        log::error!("capture: {e}");
        return ExitCode::from(EX_SOFTWARE);
    }
    log::info!("origin: http://{}/live/master.m3u8", config.origin.listen);

    let (bus_tx, mut bus_rx) = tokio::sync::mpsc::channel::<String>(4);
    spawn_bus_watch(&capture, &bus_tx);

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let code = loop {
        tokio::select! {
            _ = &mut shutdown => {
                notifier.stopping();
                log::info!("stopping: signal received");
                break ExitCode::SUCCESS;
            }
            Some(error) = bus_rx.recv() => {
                log::error!("capture failed: {error}");
                break ExitCode::from(EX_SOFTWARE);
            }
            Some(next) = rebuild_rx.recv() => {
                // Build first: a pipeline that cannot be built leaves the running one alone.
                match Capture::build(&next, grid, units.clone(), stats.clone()) {
                    Ok(new) => {
                        capture.stop();
                        // Read when the new encoders announce their codec parameters.
                        if let Ok(mut specs) = shared_specs.write() {
                            *specs = track_specs(&next);
                        }
                        capture = new;
                        if let Err(e) = capture.start() {
                            log::error!("capture: {e}");
                            break ExitCode::from(EX_SOFTWARE);
                        }
                        spawn_bus_watch(&capture, &bus_tx);
                        let encoders: Vec<&str> =
                            capture.encoders.iter().map(|e| e.element()).collect();
                        log::info!(
                            state = "rebuilt";
                            "capture: pipeline rebuilt ({} input, encoders {:?}); it joins the grid at the next GOP",
                            next.input.kind.as_str(),
                            encoders
                        );
                    }
                    Err(e) => log::error!(
                        "capture: cannot rebuild for the new configuration, keeping the running pipeline: {e}"
                    ),
                }
            }
        }
    };
    // Stop in order: capture (no new units), packager (flushes), consumers, server.
    log::info!("stopping: capture");
    capture.stop();
    drop(capture);
    // The last sender: the packager drains what is queued, flushes and ends.
    drop(units);
    log::info!("stopping: packager");
    if let Ok(handle) = package_thread {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    log::info!("stopping: publishers");
    publishers.shutdown().await;
    log::info!("stopping: origin");
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    log::info!("stopped");
    code
}

/// Segments read back from the DVR disk tier are 100 KiB–2 MiB buffers allocated per request on
/// tokio's blocking threads. glibc raises its mmap threshold once the first such buffer is freed,
/// and from then on they come from per-thread arenas that keep their peak: after a burst of DVR
/// requests the daemon stayed ~11 MB larger for good (`e2e_origin`'s flood test). A fixed
/// threshold keeps buffers of 128 KiB and more in mmap (returned to the system when freed), and
/// four arenas bound the rest.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called once, before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Watches a capture pipeline's bus on its own thread (it ends when the pipeline stops).
fn spawn_bus_watch(capture: &Capture, errors: &tokio::sync::mpsc::Sender<String>) {
    if let Some(bus) = capture.bus() {
        let errors = errors.clone();
        let spawned = std::thread::Builder::new()
            .name("gst-bus".into())
            .spawn(move || watch_bus(bus, errors));
        if let Err(e) = spawned {
            log::warn!("capture: cannot watch the pipeline's messages: {e}");
        }
    }
}

/// Logs GStreamer warnings and forwards the first error.
fn watch_bus(bus: gst::Bus, errors: tokio::sync::mpsc::Sender<String>) {
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let _ = errors.blocking_send(format!("{src}: {} ({:?})", e.error(), e.debug()));
                return;
            }
            gst::MessageView::Warning(w) => {
                log::warn!("GStreamer: {} ({:?})", w.error(), w.debug());
            }
            gst::MessageView::Eos(_) => {
                let _ = errors.blocking_send("the input ended (end of stream)".to_string());
                return;
            }
            _ => {}
        }
    }
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
