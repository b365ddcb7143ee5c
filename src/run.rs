//! `twincast run`: load the configuration, start the [`Daemon`](crate::daemon::Daemon), run it
//! until SIGTERM/SIGINT, stop it in order. Exit codes are in `src/exit.rs`.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::daemon::Daemon;
use crate::exit;
use crate::state_dir::{Layout, StateDir, holder_line};

pub fn main(config_path: &Path) -> ExitCode {
    tune_allocator();
    crate::logging::init();
    let loaded = match config::load(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return exit::code(exit::EX_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        log::warn!("{warning}");
    }
    // Before anything else is started: a second daemon on the same folders stops here.
    let layout = Layout::of(
        &loaded.config,
        std::env::var_os("STATE_DIRECTORY").as_deref(),
    );
    let who = holder_line(&loaded.config.encoder.name, config_path);
    let state = match StateDir::open(layout, &who) {
        Ok(state) => state,
        Err(e) => {
            log::error!("{e}");
            return exit::code(e.exit_code());
        }
    };
    log::info!(
        "state directory {}, DVR {}",
        state.layout().state_dir.display(),
        state.layout().dvr_dir.display()
    );
    if let Err(e) = gstreamer::init() {
        log::error!("GStreamer could not start: {e}");
        return exit::code(exit::EX_UNAVAILABLE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("could not start the async runtime: {e}");
            return exit::code(exit::EX_OSERR);
        }
    };
    runtime.block_on(async {
        let mut daemon =
            match Daemon::start(loaded.config, config_path, &state.layout().dvr_dir).await {
                Ok(d) => d,
                Err(code) => return exit::code(code),
            };
        daemon.run_until_signal().await;
        daemon.shutdown().await;
        ExitCode::SUCCESS
    })
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
