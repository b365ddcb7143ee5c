//! SIGHUP: re-read and validate the configuration, apply what can change live
//! (docs/design/operations.md, *Reload*).
//!
//! - Invalid file: every error is logged, `config_rejected` is emitted, the running
//!   configuration stays.
//! - `[[output]]` changes (added, removed, URL, key or any other key changed) go to the
//!   publishers' `reconcile` without touching capture or the origin.
//! - `[control] heartbeat` and `allow` apply at once.
//! - `[input]` changes that keep the frame rate and the set of tracks (source kind, device, URI,
//!   source size, slate) swap only the source pipeline (src/capture/sources/): the encoders
//!   keep running on the same epoch grid, fed held pictures or the slate until the new source's
//!   first picture, so no GOP is lost; fragment numbers and segment names simply continue, and
//!   the origin and the publishers are not touched. A new source size also builds new encoders.
//! - `[[rendition]]` changes that keep the renditions' names and order (bitrate, size, encoder)
//!   and `[audio] bitrate_kbps` build new encoders that take over at the next GOP start (the old
//!   ones are fed until then). The new encoders bring new codec parameters (x264 writes the HRD
//!   bitrate into the SPS), so the packager cuts the old fragment, publishes a new init
//!   segment, and every consumer switches at that fragment: the origin serves the new version
//!   under its own name with a discontinuity (HLS) or a new Period (DASH), and the publishers
//!   send new headers (RTMP sequence headers, a new Smooth POST, a new CMAF header) before it.
//! - Other changes to capture (`[input] framerate` or audio on/off, `[timeline]`, renditions
//!   added, removed, renamed or reordered, `[audio]` sample rate or channels), `[encoder]`,
//!   `[origin]` or `[control] listen` are reported as needing a restart (logged, in `/status`
//!   and in `STATUS=`); the running values stay until then.
//!
//! systemd sees `RELOADING=1` before and `READY=1` after, whatever the outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use crate::config::{self, AudioInput, Config, Output};
use crate::control::{Event, Ops};

/// Applies a new list of outputs to the running publishers.
pub type ApplyOutputsFn = dyn Fn(&[Output]) + Send + Sync;
/// An owned [`ApplyOutputsFn`].
pub type ApplyOutputs = Box<ApplyOutputsFn>;
/// Applies a configuration whose `[input]` (a new source), renditions or audio bitrate (new
/// encoders) changed on the same grid and with the same tracks.
pub type ApplyInputFn = dyn Fn(&Config) + Send + Sync;
/// An owned [`ApplyInputFn`].
pub type ApplyInput = Box<ApplyInputFn>;

/// What a reload can apply live.
#[derive(Default)]
pub struct Appliers {
    pub outputs: Option<ApplyOutputs>,
    pub input: Option<ApplyInput>,
}

/// Installs the SIGHUP handler now (so an early SIGHUP never kills the daemon) and reloads on
/// every SIGHUP, and on every authorised `POST /reload` ([`Ops::reload_request`]), until
/// `cancel`.
pub fn spawn(
    ops: Arc<Ops>,
    appliers: Appliers,
    cancel: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = hangup.recv() => {
                    if received.is_none() { return }
                    log::info!(state = "reloading"; "SIGHUP: reloading {}", ops.config_path.display());
                }
                // POST /reload on the control listener (src/control/mod.rs), with the token.
                _ = ops.reload_request.notified() => {
                    log::info!(state = "reloading"; "POST /reload: reloading {}", ops.config_path.display());
                }
            }
            reload(&ops, &appliers);
        }
    });
    Ok(())
}

/// One reload: validate, apply, report.
pub fn reload(ops: &Ops, appliers: &Appliers) {
    ops.notifier.reloading();
    match config::load(&ops.config_path) {
        Err(errors) => {
            ops.reload.failures.fetch_add(1, Ordering::Relaxed);
            ops.emit(Event::ConfigRejected {
                errors: errors.all().iter().map(|d| d.to_string()).collect(),
            });
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                log::warn!("{w}");
            }
            let running = ops.config();
            let plan = plan(&running, &loaded.config);
            if plan.outputs_changed {
                match &appliers.outputs {
                    Some(apply) => apply(&plan.next.output),
                    None => log::warn!(
                        state = "reloaded";
                        "outputs changed but no publishers run in this build; only the status shows them"
                    ),
                }
            }
            if plan.capture_changed {
                match &appliers.input {
                    Some(apply) => apply(&plan.next),
                    None => log::warn!(
                        state = "reloaded";
                        "the input changed but this build cannot rebuild capture; restart to apply it"
                    ),
                }
            }
            crate::sync::lock(&ops.reload.restart_needed).clone_from(&plan.restart_needed);
            ops.set_config(plan.next);
            ops.reload.reloads.fetch_add(1, Ordering::Relaxed);
            ops.emit(Event::ConfigReloaded {
                applied: plan.applied,
                restart_needed: plan.restart_needed,
            });
        }
    }
    ops.notifier.ready();
}

/// What a reload does.
#[derive(Debug)]
pub struct Plan {
    /// The configuration that will be in force: the running one with the live-changeable parts
    /// taken from the file.
    pub next: Config,
    pub outputs_changed: bool,
    /// `[input]`, the renditions or the audio bitrate changed in a way the capture pipeline can
    /// be rebuilt for, on the same grid and with the same tracks.
    pub capture_changed: bool,
    pub applied: Vec<String>,
    pub restart_needed: Vec<String>,
}

/// Compares the running configuration with the new file.
pub fn plan(running: &Config, file: &Config) -> Plan {
    let mut draft = Draft {
        running,
        file,
        next: running.clone(),
        applied: Vec::new(),
        restart_needed: Vec::new(),
    };
    let outputs_changed = draft.outputs();
    draft.control();
    let input_live = draft.input();
    let ladder_live = draft.ladder();
    let audio_live = draft.audio();
    draft.restart_sections(input_live, ladder_live, audio_live);
    Plan {
        next: draft.next,
        outputs_changed,
        capture_changed: input_live || ladder_live || audio_live,
        applied: draft.applied,
        restart_needed: draft.restart_needed,
    }
}

/// A [`Plan`] being drawn up, one kind of change at a time, in the order they are reported.
struct Draft<'a> {
    running: &'a Config,
    file: &'a Config,
    next: Config,
    applied: Vec<String>,
    restart_needed: Vec<String>,
}

impl Draft<'_> {
    /// `[[output]]`: each output added, changed or removed; all of them apply live. Returns
    /// whether they changed.
    fn outputs(&mut self) -> bool {
        let (running, file) = (self.running, self.file);
        let outputs_changed = running.output != file.output;
        if outputs_changed {
            for o in &file.output {
                match running.output.iter().find(|r| r.name == o.name) {
                    None => self.applied.push(format!("output {} added", o.name)),
                    Some(r) if r != o => self.applied.push(format!("output {} changed", o.name)),
                    Some(_) => {}
                }
            }
            for r in &running.output {
                if !file.output.iter().any(|o| o.name == r.name) {
                    self.applied.push(format!("output {} removed", r.name));
                }
            }
            self.next.output = file.output.clone();
        }
        outputs_changed
    }

    /// `[control]`: heartbeat and allow apply live, a new listen address needs a restart.
    fn control(&mut self) {
        let (running, file) = (self.running, self.file);
        if running.control.heartbeat != file.control.heartbeat {
            self.applied.push(format!(
                "control heartbeat {}",
                config::format_duration(file.control.heartbeat)
            ));
            self.next.control.heartbeat = file.control.heartbeat;
        }
        if running.control.allow != file.control.allow {
            self.applied.push("control allow".to_string());
            self.next.control.allow = file.control.allow.clone();
        }
        if running.control.listen != file.control.listen {
            self.restart_needed.push("control listen".to_string());
        }
    }

    /// `[input]`: returns whether it changed in a way that applies live.
    fn input(&mut self) -> bool {
        let (running, file) = (self.running, self.file);
        // A new source on the same grid and with the same tracks is a pipeline rebuild; a new
        // frame rate is a new grid, audio on/off changes the tracks, and captions on/off the
        // manifests: those need a restart.
        let input_live = running.input != file.input
            && running.input.framerate == file.input.framerate
            && running.input.captions == file.input.captions
            && (running.input.audio == AudioInput::None) == (file.input.audio == AudioInput::None);
        if input_live {
            self.applied
                .push("input (capture rebuilt on the same grid)".to_string());
            self.next.input = file.input.clone();
        }
        input_live
    }

    /// `[[rendition]]`: returns whether the ladder changed in a way that applies live.
    fn ladder(&mut self) -> bool {
        let (running, file) = (self.running, self.file);
        // The same renditions (names, order) with new bitrates, sizes or encoders: new encoders
        // on the same grid and the same tracks.
        let ladder_live = running.rendition != file.rendition
            && running.rendition.len() == file.rendition.len()
            && running
                .rendition
                .iter()
                .zip(&file.rendition)
                .all(|(a, b)| a.name == b.name);
        if ladder_live {
            for (a, b) in running.rendition.iter().zip(&file.rendition) {
                if a != b {
                    self.applied.push(format!(
                        "rendition {} {}x{} {} kbit/s {} (encoders rebuilt on the same grid)",
                        b.name,
                        b.width,
                        b.height,
                        b.bitrate_kbps,
                        b.encoder.as_str()
                    ));
                }
            }
            self.next.rendition = file.rendition.clone();
        }
        ladder_live
    }

    /// `[audio]`: returns whether it changed in a way that applies live (the bitrate).
    fn audio(&mut self) -> bool {
        let (running, file) = (self.running, self.file);
        let audio_live = running.audio != file.audio
            && running.audio.sample_rate == file.audio.sample_rate
            && running.audio.channels == file.audio.channels;
        if audio_live {
            self.applied.push(format!(
                "audio {} kbit/s (encoder rebuilt on the same grid)",
                file.audio.bitrate_kbps
            ));
            self.next.audio = file.audio.clone();
        }
        audio_live
    }

    /// Every section that changed in a way that does not apply live needs a restart.
    fn restart_sections(&mut self, input_live: bool, ladder_live: bool, audio_live: bool) {
        let (running, file) = (self.running, self.file);
        let sections = [
            ("encoder", running.encoder != file.encoder),
            ("input", running.input != file.input && !input_live),
            ("timeline", running.timeline != file.timeline),
            (
                "rendition",
                running.rendition != file.rendition && !ladder_live,
            ),
            ("audio", running.audio != file.audio && !audio_live),
            ("origin", running.origin != file.origin),
        ];
        self.restart_needed.extend(
            sections
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(name, _)| (*name).to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        config::parse_str(text, Path::new("t.toml")).unwrap().config
    }

    const BASE: &str = r#"
[[rendition]]
name = "a"
width = 640
height = 360
bitrate_kbps = 600

[[output]]
name = "cloud"
protocol = "rtmp"
primary = "rtmp://a.example/live"
secondary = "rtmp://b.example/live"
stream = "cam"
"#;

    #[test]
    fn same_file_changes_nothing() {
        let c = parse(BASE);
        let p = plan(&c, &c);
        assert!(!p.outputs_changed);
        assert!(p.applied.is_empty() && p.restart_needed.is_empty());
    }

    #[test]
    fn secondary_url_applies_live() {
        let old = parse(BASE);
        let new = parse(&BASE.replace("rtmp://b.example", "rtmp://c.example"));
        let p = plan(&old, &new);
        assert!(p.outputs_changed);
        assert_eq!(p.applied, ["output cloud changed"]);
        assert!(p.restart_needed.is_empty());
        assert_eq!(
            p.next.output[0].secondary.as_deref(),
            Some("rtmp://c.example/live")
        );
    }

    #[test]
    fn capture_changes_wait_for_a_restart() {
        let old = parse(BASE);
        let new = parse(&format!(
            "{}\n[input]\nframerate = \"25/1\"\n[control]\nheartbeat = \"5s\"\n",
            BASE.replace("name = \"a\"", "name = \"b\"")
        ));
        let p = plan(&old, &new);
        assert_eq!(p.restart_needed, ["input", "rendition"]);
        assert_eq!(p.applied, ["control heartbeat 5s"]);
        // The running ladder stays until the restart.
        assert_eq!(p.next.rendition[0].name, "a");
        assert_eq!(p.next.input.framerate, old.input.framerate);
        assert_eq!(p.next.control.heartbeat, std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_new_source_on_the_same_grid_applies_live() {
        let old = parse(BASE);
        let new = parse(&format!(
            "{BASE}\n[input]\nkind = \"file\"\nuri = \"/srv/clip.mp4\"\n"
        ));
        let p = plan(&old, &new);
        assert!(p.capture_changed);
        assert_eq!(p.applied, ["input (capture rebuilt on the same grid)"]);
        assert!(p.restart_needed.is_empty());
        assert_eq!(p.next.input.uri.as_deref(), Some("/srv/clip.mp4"));
        // Audio off changes the set of tracks: that waits for a restart.
        let new = parse(&format!("{BASE}\n[input]\naudio = \"none\"\n"));
        let p = plan(&old, &new);
        assert!(!p.capture_changed);
        assert_eq!(p.restart_needed, ["input"]);
    }

    #[test]
    fn a_new_bitrate_rebuilds_the_encoders_on_the_same_grid() {
        let old = parse(BASE);
        let new = parse(&format!(
            "{}\n[audio]\nbitrate_kbps = 96\n",
            BASE.replace("bitrate_kbps = 600", "bitrate_kbps = 900")
        ));
        let p = plan(&old, &new);
        assert!(p.capture_changed && !p.outputs_changed);
        assert!(p.restart_needed.is_empty(), "{:?}", p.restart_needed);
        assert_eq!(p.next.rendition[0].bitrate_kbps, 900);
        assert_eq!(p.next.audio.bitrate_kbps, 96);
        assert_eq!(p.applied.len(), 2, "{:?}", p.applied);
        // A new sample rate changes the audio timescale: restart.
        let new = parse(&format!("{BASE}\n[audio]\nsample_rate = 44100\n"));
        let p = plan(&old, &new);
        assert!(!p.capture_changed);
        assert_eq!(p.restart_needed, ["audio"]);
    }

    #[test]
    fn outputs_added_and_removed() {
        let old = parse(BASE);
        let new = parse(&BASE.replace("name = \"cloud\"", "name = \"cdn\""));
        let p = plan(&old, &new);
        assert_eq!(p.applied, ["output cdn added", "output cloud removed"]);
    }
}
