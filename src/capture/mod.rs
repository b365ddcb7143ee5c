//! Capture: sources, the grid clock, and the encoders (docs/ref/config.md `[input]`).
//!
//! ```text
//! source pipeline (supervised) → appsinks → RawSink = GridSink ─┐ pictures by k, samples by s
//!                                                               ▼
//!  grid clock: at each t_k feeds the encoders live | held | slate, stamped t_k; audio on the
//!              1024-sample grid, silence where the source had none
//!                                                               ▼
//! encoder pipeline: appsrc → tee → (scale → H.264) × N → appsink; appsrc → AAC → appsink
//! ```
//!
//! The sources (`sources/`) and the encoders (`encoders/`) are separate pipelines, so a
//! source can fail, be rebuilt with backoff or be swapped by a reload while the encoders keep
//! running on the slate (`slate.rs`); an encoder pipeline that fails is rebuilt and fed from
//! the next GOP start. The grid clock (`grid.rs`, policy in `feed.rs`) owns the timeline.
//! The appsinks of the encoders are the only GStreamer→Rust seam of encoded media: each pushes
//! `EncodedUnit`s into one bounded channel (drops counted).

pub(crate) mod clock_step;
pub mod elements;
mod encoders;
pub mod feed;
mod grid;
mod select;
pub mod slate;
pub mod sources;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use gstreamer as gst;
use gstreamer::prelude::*;
use twincast_media::timeline::Grid;

pub use encoders::CaptureError;
use encoders::{Encoders, FillerMarks};
use grid::{ClockParts, EncoderSlot, GridClock, GridSink, SharedSlot};
pub use grid::{
    MAX_LATENCY, SOURCE_BACKUP, SOURCE_PRIMARY, STATE_BACKUP, STATE_LIVE, STATE_SLATE,
    STATE_STARTING,
};
use slate::Slate;
use sources::{SourceStatus, Supervised};

use crate::config::{AudioInput, Config};
use crate::sync::lock;

/// Capacity of the channel between the appsinks and the packager, in access units. At 4 tracks
/// and 30 fps this is several seconds: the packager only copies bytes, so it never falls behind
/// unless the box is overloaded, and then whole units are dropped and counted.
pub const UNIT_QUEUE_CAPACITY: usize = 512;

/// One encoded access unit leaving GStreamer.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Index of the track: renditions in config order, then audio.
    pub track: usize,
    /// Presentation time as wall-clock ns since the epoch (base_time + running time).
    pub wall_ns: u64,
    /// Decode time as wall-clock ns since the epoch (equal to `wall_ns` without B-frames).
    pub dts_wall_ns: u64,
    pub keyframe: bool,
    /// AVCC (length-prefixed) H.264 access unit, or one raw AAC frame.
    pub data: Vec<u8>,
    /// Codec configuration (avcC record / AudioSpecificConfig) when it is new or changed.
    pub codec_data: Option<Vec<u8>>,
    /// Built from slate frames while the input is lost.
    pub filler: bool,
}

/// Counters shared between the GStreamer threads and the rest of the daemon.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Source pictures that reached the grid feed.
    pub frames_in: AtomicU64,
    /// Source pictures dropped because their frame index was already given out.
    pub frames_dropped: AtomicU64,
    /// Source pictures that arrived after their frame was fed.
    pub frames_late: AtomicU64,
    /// Source pictures dropped from the grid feed because `MAX_PENDING_PICTURES` were already
    /// waiting for their slot (src/capture/feed.rs; the oldest goes), either input.
    pub frames_overflow: AtomicU64,
    /// Times the timeline re-anchored (a gap in the input, a new source).
    pub reanchors: AtomicU64,
    /// Encoded units dropped because the packager's queue was full.
    pub units_dropped: AtomicU64,
    /// Encoded buffers an encoder gave out without a usable time (no PTS, before its
    /// segment, no base time): dropped, and counted here.
    pub units_untimed: AtomicU64,
    /// Wall-clock ns of the last source picture (0 before the first).
    pub last_frame_wall_ns: AtomicU64,
    /// Frames the grid clock fed the encoders (live, held or slate): the watchdog's evidence
    /// that frames enter the timeline.
    pub grid_frames: AtomicU64,
    /// Of those, slate frames.
    pub slate_frames: AtomicU64,
    /// Frames the grid clock skipped because it fell more than a second behind.
    pub grid_skipped: AtomicU64,
    /// Steps of the system clock the grid clock saw (src/capture/clock_step.rs), and the
    /// last one in ms (negative: back).
    pub clock_steps_forward: AtomicU64,
    pub clock_steps_back: AtomicU64,
    pub clock_last_step_ms: AtomicI64,
    /// Video frames the encoders did not take: their queue was full (an encoder that cannot
    /// keep up; the oldest queued picture is dropped) or it refused the picture.
    pub frames_not_encoded: AtomicU64,
    /// The same for AAC frames of raw audio.
    pub audio_frames_not_encoded: AtomicU64,
    /// Encoder pipelines rebuilt after an error.
    pub encoder_rebuilds: AtomicU64,
    /// [`STATE_STARTING`], [`STATE_LIVE`] or [`STATE_SLATE`].
    pub input_state: AtomicU8,
    /// Epoch ns of the first frame in the current input state.
    pub input_state_since_ns: AtomicU64,
    /// How far behind the clock frames are fed (ns).
    pub latency_ns: AtomicU64,
    /// Pictures from the backup input.
    pub backup_frames_in: AtomicU64,
    /// [`SOURCE_PRIMARY`] or [`SOURCE_BACKUP`]: the input on air.
    pub input_source: AtomicU8,
    /// Switches between the primary and the backup input.
    pub source_switches: AtomicU64,
    /// The supervised sources, for `/status`.
    pub sources: Mutex<Vec<Arc<Mutex<SourceStatus>>>>,
}

impl CaptureStats {
    /// The sources' current status.
    pub fn sources(&self) -> Vec<SourceStatus> {
        lock(&self.sources)
            .iter()
            .map(|s| lock(s).clone())
            .collect()
    }
}

/// The sending half handed to every appsink.
#[derive(Clone)]
pub struct UnitSender {
    tx: SyncSender<EncodedUnit>,
    stats: Arc<CaptureStats>,
}

impl UnitSender {
    pub fn new(capacity: usize, stats: Arc<CaptureStats>) -> (Self, Receiver<EncodedUnit>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (UnitSender { tx, stats }, rx)
    }

    /// An encoder's buffer that could not become a unit (no usable time): counted.
    pub fn untimed(&self) {
        self.stats.units_untimed.fetch_add(1, Ordering::Relaxed);
    }

    /// Never blocks a streaming thread: a full queue drops the unit and counts it.
    fn send(&self, unit: EncodedUnit) {
        match self.tx.try_send(unit) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.units_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// An encoder pipeline's error, with the generation of the pipeline it came from.
pub type EncoderError = (u64, String);

/// Capture as a whole: sources, slate, grid clock and encoders.
pub struct Capture {
    /// The configuration capture runs (`[input]`, renditions, audio).
    config: Config,
    grid: Grid,
    /// None once stopped: the packager ends when the last sender is gone.
    units: Option<UnitSender>,
    stats: Arc<CaptureStats>,
    marks: Arc<FillerMarks>,
    /// The splice schedule: its frames are IDRs in every rendition.
    signals: Arc<crate::signals::Signals>,
    sink: Arc<GridSink>,
    backup: Arc<GridSink>,
    backup_hold_frames: Arc<AtomicU64>,
    slate: Arc<Mutex<Slate>>,
    slot: SharedSlot,
    clock: Option<GridClock>,
    sources: Vec<Supervised>,
    errors: tokio::sync::mpsc::Sender<EncoderError>,
    generation: u64,
    /// Encoder element chosen per rendition (for status and logs).
    pub encoders: Vec<elements::H264Encoder>,
    /// AAC encoder element, when audio is on.
    pub aac_encoder: Option<&'static str>,
}

impl Capture {
    /// Starts capture. Only a missing element (exit 69) or a pipeline that cannot be built is an
    /// error; a source that fails later is rebuilt, and the encoders run on the slate meanwhile.
    pub fn start(
        config: &Config,
        grid: Grid,
        units: UnitSender,
        stats: Arc<CaptureStats>,
        errors: tokio::sync::mpsc::Sender<EncoderError>,
        signals: Arc<crate::signals::Signals>,
    ) -> Result<Capture, CaptureError> {
        for element in sources::required_elements(config) {
            elements::require(element)?;
        }
        let marks = Arc::new(FillerMarks::default());
        // The audio grid's timescale (validation keeps the sample rate off 0).
        let sample_rate = twincast_media::Timescale::new(config.audio.sample_rate)
            .ok_or_else(|| CaptureError::Start("audio sample_rate is 0".to_string()))?;
        let new_sink = |primary| {
            Arc::new(GridSink::new(
                primary,
                grid,
                config.input.slate_after,
                sample_rate,
                config.audio.channels,
                stats.clone(),
            ))
        };
        let (sink, backup) = (new_sink(true), new_sink(false));
        let backup_hold_frames = Arc::new(AtomicU64::new(hold_frames(config, grid)));
        let slot: SharedSlot = Arc::new(Mutex::new(EncoderSlot::default()));
        let slate = Arc::new(Mutex::new(Slate::start(config)));
        let mut capture = Capture {
            config: config.clone(),
            grid,
            units: Some(units),
            stats: stats.clone(),
            marks: marks.clone(),
            signals,
            sink: sink.clone(),
            backup: backup.clone(),
            backup_hold_frames: backup_hold_frames.clone(),
            slate: slate.clone(),
            slot: slot.clone(),
            clock: None,
            sources: Vec::new(),
            errors,
            generation: 0,
            encoders: Vec::new(),
            aac_encoder: None,
        };
        capture.rebuild_encoders(config)?;
        let clock = GridClock::start(ClockParts {
            grid,
            sink,
            backup,
            backup_hold_frames,
            audio_from_input: config.input.audio == AudioInput::Input,
            slate,
            slot,
            marks,
            stats,
            sample_rate,
            audio: config.input.audio != AudioInput::None,
            signals: capture.signals.clone(),
        })
        .map_err(|e| CaptureError::Start(format!("the grid clock thread: {e}")))?;
        capture.clock = Some(clock);
        capture.start_sources(config);
        Ok(capture)
    }

    fn start_sources(&mut self, config: &Config) {
        let sink: Arc<dyn crate::source::RawSink> = self.sink.clone();
        let mut started = vec![sources::start_input(
            config,
            sink.clone(),
            self.signals.clone(),
        )];
        let backup: Arc<dyn crate::source::RawSink> = self.backup.clone();
        started.extend(sources::start_backup(config, backup));
        started.extend(sources::start_audio(config, sink));
        self.backup_hold_frames
            .store(hold_frames(config, self.grid), Ordering::Relaxed);
        *lock(&self.stats.sources) = started.iter().map(|s| s.status.clone()).collect();
        self.sources = started;
    }

    /// Builds new encoders for `config` and hands over to them at the next GOP start (the
    /// running ones keep being fed until then). Exits nothing: an error leaves the running
    /// encoders alone.
    pub fn rebuild_encoders(&mut self, config: &Config) -> Result<(), CaptureError> {
        let units = self
            .units
            .clone()
            .ok_or_else(|| CaptureError::Start("capture is stopped".into()))?;
        let encoders = Encoders::build(
            config,
            self.grid,
            units,
            self.marks.clone(),
            self.signals.clone(),
        )?;
        encoders.start()?;
        self.generation += 1;
        watch_bus(&encoders, self.generation, self.errors.clone());
        self.encoders = encoders.encoders.clone();
        self.aac_encoder = encoders.aac_encoder;
        lock(&self.slot).replace(Arc::new(encoders));
        self.config.rendition = config.rendition.clone();
        self.config.audio = config.audio.clone();
        Ok(())
    }

    /// An encoder pipeline failed: rebuild it (same configuration) unless the error is from
    /// an older generation.
    pub fn encoder_failed(&mut self, error: EncoderError) {
        let (generation, text) = error;
        if generation != self.generation {
            return;
        }
        self.stats.encoder_rebuilds.fetch_add(1, Ordering::Relaxed);
        log::error!(state = "rebuilding", error = text.as_str(); "encoders failed: {text}; rebuilding them (fed again from the next GOP start)");
        let config = self.config.clone();
        let began = std::time::Instant::now();
        match self.rebuild_encoders(&config) {
            Ok(()) => log::info!(
                state = "rebuilt";
                "encoders: rebuilt in {} ms; they take over at the next GOP start",
                began.elapsed().as_millis()
            ),
            Err(e) => log::error!(error = e.to_string(); "encoders: cannot rebuild: {e}"),
        }
    }

    /// Swaps the source for a new `[input]` and keeps the encoders (same grid, same tracks).
    /// A new source size needs new encoders too.
    pub fn replace_input(&mut self, config: &Config) -> Result<(), CaptureError> {
        for element in sources::required_elements(config) {
            elements::require(element)?;
        }
        let resized = (config.input.width, config.input.height)
            != (self.config.input.width, self.config.input.height);
        for mut s in self.sources.drain(..) {
            s.stop();
        }
        {
            let mut slate = lock(&self.slate);
            slate.stop();
            *slate = Slate::start(config);
        }
        if resized {
            let mut next = self.config.clone();
            next.input = config.input.clone();
            self.rebuild_encoders(&next)?;
        }
        self.config.input = config.input.clone();
        self.start_sources(config);
        Ok(())
    }

    /// The configuration capture runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops sources, the clock and the encoders (in that order).
    pub fn stop(&mut self) {
        for mut s in self.sources.drain(..) {
            s.stop();
        }
        if let Some(mut clock) = self.clock.take() {
            clock.stop();
        }
        let all = lock(&self.slot).take_all();
        for e in all {
            e.stop();
        }
        lock(&self.slate).stop();
        self.units = None;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `[input.backup] hold` in frames; 0 without a backup.
fn hold_frames(config: &Config, grid: Grid) -> u64 {
    config.input.backup.as_ref().map_or(0, |b| {
        let ns = u64::try_from(b.hold.as_nanos()).unwrap_or(u64::MAX);
        grid.rate().frame_index_nearest(ns).max(1)
    })
}

/// Watches an encoder pipeline's bus on its own thread (it ends when the pipeline stops) and
/// forwards the first error. Once nobody reads the bus (the watcher ended, or could not
/// start), it is set flushing: a bus keeps every posted message until it is popped, and the
/// pipeline may go on posting until it is rebuilt.
fn watch_bus(
    encoders: &Encoders,
    generation: u64,
    errors: tokio::sync::mpsc::Sender<EncoderError>,
) {
    let Some(bus) = encoders.bus() else { return };
    if let Err(e) = spawn_bus_watcher(bus, encoders.stopped.clone(), generation, errors) {
        log::warn!("encoders: cannot watch the pipeline's messages: {e}");
    }
}

/// The watcher thread of [`watch_bus`]; `bus` is flushing once it ends (or if it cannot start).
fn spawn_bus_watcher(
    bus: gst::Bus,
    stopped: Arc<AtomicBool>,
    generation: u64,
    errors: tokio::sync::mpsc::Sender<EncoderError>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let watched = bus.clone();
    let spawned = std::thread::Builder::new()
        .name("enc-bus".into())
        .spawn(move || {
            forward_first_error(&watched, &stopped, generation, &errors);
            watched.set_flushing(true);
        });
    if spawned.is_err() {
        bus.set_flushing(true);
    }
    spawned
}

/// Reads `bus` until the pipeline is `stopped`, an error (sent on `errors`) or the end of
/// stream; warnings are logged.
fn forward_first_error(
    bus: &gst::Bus,
    stopped: &AtomicBool,
    generation: u64,
    errors: &tokio::sync::mpsc::Sender<EncoderError>,
) {
    while !stopped.load(Ordering::Relaxed) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(500)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let _ = errors.blocking_send((generation, format!("{src}: {}", e.error())));
                return;
            }
            gst::MessageView::Warning(w) => {
                log::warn!("GStreamer: {} ({:?})", w.error(), w.debug());
            }
            gst::MessageView::Eos(_) => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoder_bus_nobody_reads_any_more_keeps_no_messages() {
        gst::init().unwrap();
        let bus = gst::Bus::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let stopped = Arc::new(AtomicBool::new(false));
        let watcher = spawn_bus_watcher(bus.clone(), stopped, 7, tx).expect("thread");
        let error = gst::message::Error::builder(gst::CoreError::Failed, "encoder broke").build();
        assert!(bus.post(error).is_ok());
        let (generation, text) = rx.blocking_recv().expect("the error is forwarded");
        assert_eq!(generation, 7);
        assert!(text.contains("encoder broke"), "{text}");
        watcher.join().expect("the watcher ends at the first error");
        // The pipeline lives on until it is rebuilt and may go on posting: nothing piles up.
        for _ in 0..100 {
            let _ =
                bus.post(gst::message::Warning::builder(gst::CoreError::Failed, "again").build());
        }
        assert!(
            !bus.have_pending(),
            "messages pile up on a bus nobody reads"
        );
    }
}
