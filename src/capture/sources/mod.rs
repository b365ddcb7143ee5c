//! Sources: each input is its own GStreamer pipeline that decodes and normalises (I420 at the
//! `[input]` size, S16LE at the `[audio]` rate and channels) and ends in appsinks that hand the
//! media to a [`RawSink`] with its capture time W.
//!
//! Each source pipeline runs under a supervisor (`supervise` around `run_once`, the shape of
//! the publish tasks, docs/design/publish.md): an error, an end of stream or a pipeline that cannot
//! start ends `run_once`; the supervisor records `last_error`, waits a backoff (0.5 s doubling
//! to 5 s, to 1 s for `rtsp` whose server may come back any moment; back to 0.5 s after a run
//! of 10 s) and builds the pipeline again. Nothing a source does reaches the encoders except
//! missing pictures, which the grid feed turns into the slate.
//!
//! ```text
//! test:  videotestsrc ──────────────────────────┐
//! v4l2:  v4l2src ───────────────────────────────┤
//! file:  uridecodebin (looped by seeking) ──────┤→ videoconvert → videoscale → I420 W×H → appsink
//! rtsp:  uridecodebin ──────────────────────────┘
//! audio: (the input's decoder | audiotestsrc | alsasrc) → audioconvert → audioresample → S16LE → appsink
//!
//! rtp, udp, srt: the network front end in Rust (src/input/mod.rs: sockets or srtsrc → RTP/TS
//!        front end → appsrc decoders → RawSink), supervised the same way (`network_life`)
//! ```
//!
//! A network source's life ends with an error when its decoders or its SRT pipeline report one
//! (`counters().last_error`); a feed that merely stops sending keeps the source running (the
//! grid feed shows the slate) and its pictures are live again as soon as they come back.
//!
//! The parts: `status.rs` (what `/status` shows), `supervisor.rs` (`spawn_source`, backoff),
//! `pipeline.rs` (one life of a GStreamer pipeline), `build.rs` (the source pipelines),
//! `capture_time.rs` (W of a sample), `sink_drops.rs` (what the appsinks lose, counted),
//! `network.rs` (the network inputs' life).

mod build;
mod capture_time;
mod network;
mod pipeline;
mod sink_drops;
mod status;
mod supervisor;

use std::sync::Arc;

pub use network::SRT_IDLE;
pub use status::{NetworkCounters, SharedStatus, SourceStatus, TIMING_PENDING};
pub use supervisor::{
    MAX_BACKOFF, MIN_BACKOFF, RECONNECT_BACKOFF, REPEAT_WARN, RunOnce, STABLE_RUN, SourceLife,
    Supervised, spawn_source,
};

use crate::config::{AudioInput, Config, InputKind};
use crate::source::{RawSink, Timing};
use build::{build_audio, build_input};
use network::network_life;

use crate::signals::Signals;
use pipeline::{Builder, pipeline_life};

/// The elements the sources of `config` need: missing ones are a start-up error (exit 69).
pub fn required_elements(config: &Config) -> Vec<&'static str> {
    let mut v = vec![
        "videoconvert",
        "videoscale",
        "appsink",
        "audioconvert",
        "audioresample",
    ];
    let kinds =
        std::iter::once(config.input.kind).chain(config.input.backup.as_ref().map(|b| b.kind));
    for kind in kinds {
        v.extend(match kind {
            InputKind::Test => &["videotestsrc"][..],
            InputKind::V4l2 => &["v4l2src"][..],
            InputKind::File | InputKind::Rtsp => &["uridecodebin"][..],
            // src/input/decode.rs (and srt.rs): appsrc → parse → decode.
            InputKind::Rtp | InputKind::Udp => NETWORK_ELEMENTS,
            InputKind::Srt => &[
                "srtsrc",
                "appsrc",
                "h264parse",
                "avdec_h264",
                "aacparse",
                "avdec_aac",
            ][..],
        });
    }
    match config.input.audio {
        AudioInput::Test => v.push("audiotestsrc"),
        AudioInput::Alsa(_) => v.push("alsasrc"),
        AudioInput::None | AudioInput::Input => {}
    }
    v
}

/// The elements of the network front end's decoders (src/input/decode.rs).
const NETWORK_ELEMENTS: &[&str] = &["appsrc", "h264parse", "avdec_h264", "aacparse", "avdec_aac"];

/// Whether a kind runs on the network front end in Rust (src/input/).
fn is_network(kind: InputKind) -> bool {
    matches!(kind, InputKind::Rtp | InputKind::Udp | InputKind::Srt)
}

/// Starts the `[input]` source (with its audio when `audio = "input"`); the SCTE-35 sections
/// of a network input go to `signals` (passthrough).
pub fn start_input(config: &Config, sink: Arc<dyn RawSink>, signals: Arc<Signals>) -> Supervised {
    start_role("input", config.clone(), sink, Some(signals))
}

/// A supervised source of `role` for `config.input`: the network front end for `rtp`, `udp`
/// and `srt`, a GStreamer source pipeline for the others.
fn start_role(
    role: &'static str,
    config: Config,
    sink: Arc<dyn RawSink>,
    signals: Option<Arc<Signals>>,
) -> Supervised {
    let kind = config.input.kind;
    if is_network(kind) {
        return spawn_source(
            role,
            kind.as_str().to_string(),
            None,
            network_life(config, sink, signals),
        );
    }
    let builder: Builder =
        Box::new(move |life: &SourceLife| build_input(&config, sink.clone(), &life.sink_drops()));
    spawn_source(
        role,
        kind.as_str().to_string(),
        Some(Timing::Arrival),
        pipeline_life(builder),
    )
}

/// Starts the `[input.backup]` source, if the config has one: the `[input]` settings with the
/// backup's kind, device and URI.
pub fn start_backup(config: &Config, sink: Arc<dyn RawSink>) -> Option<Supervised> {
    let b = config.input.backup.clone()?;
    let mut config = config.clone();
    config.input.kind = b.kind;
    config.input.device = b.device;
    config.input.uri = b.uri;
    // The backup's SCTE-35 sections are not passed through (docs/design/signals.md).
    Some(start_role("backup", config, sink, None))
}

/// Starts a separate audio source (`audio = "test"` or `"alsa:…"`), if the config has one.
pub fn start_audio(config: &Config, sink: Arc<dyn RawSink>) -> Option<Supervised> {
    let kind = match &config.input.audio {
        AudioInput::Test => "test".to_string(),
        AudioInput::Alsa(d) => format!("alsa:{d}"),
        AudioInput::None | AudioInput::Input => return None,
    };
    let config = config.clone();
    let builder: Builder =
        Box::new(move |life: &SourceLife| build_audio(&config, sink.clone(), &life.sink_drops()));
    Some(spawn_source(
        "audio",
        kind,
        Some(Timing::Arrival),
        pipeline_life(builder),
    ))
}
