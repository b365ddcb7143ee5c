//! The encoder pipeline: live appsrcs fed by the grid clock (src/capture/grid.rs), one H.264
//! encoder per rendition and one AAC encoder, ending in one appsink per track.
//!
//! ```text
//! appsrc (I420 W×H, t_k) ─[key-unit probe]→ tee → (queue → videoscale → w×h → H.264 → appsink) × N
//! appsrc (S16LE, 1024-sample grid) → audioconvert → AAC → appsink
//! ```
//!
//! Every buffer arrives stamped exactly on the epoch grid (running time = t − base time, with the
//! base time fixed when the pipeline is built), so nothing here computes time. The probe sends a
//! force-key-unit event into the tee right before every frame that starts a GOP, so every rendition
//! puts its IDR on the same frame (docs/design/platform.md, *x264 and IDR placement*). The appsinks
//! are the only GStreamer→Rust seam of the encoders: each pushes `EncodedUnit`s into one bounded
//! channel (drops counted), marked `filler` when the frame was slate.
//!
//! The parts: this file builds the ladder (the pipeline, the appsrcs, one branch per rendition
//! and the audio branch) and runs it; `h264.rs` sets each H.264 encoder up and places the IDRs;
//! `handoff.rs` is the appsink seam (samples → `EncodedUnit`s, filler marks); `fault.rs` is the
//! fault injector the rebuild tests use.

mod fault;
mod h264;
mod handoff;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use twincast_media::timeline::{FrameRate, Grid};

use super::UnitSender;
use super::elements::{self, ElementError, H264Encoder};
use crate::config::{AudioInput, Config, Rendition};
use fault::install_fault;
use h264::{install_key_units, make_h264_encoder};
pub use handoff::FillerMarks;
use handoff::{Mark, appsink};

/// Queue between the tee and each encoder, in raw frames.
const RENDITION_QUEUE_FRAMES: u32 = 8;
/// Raw pictures the video appsrc holds, half a second at 30 fps: it absorbs an encoder that
/// falls behind for a moment (a busy box). Beyond it the grid clock does not queue the
/// picture, counted (`frames_not_encoded`), so an encoder that cannot keep up loses frames and
/// never blocks the grid clock; except a GOP's first picture, which is queued anyway: losing it
/// would lose the whole fragment in every rendition (the IDR is forced on it), losing a later
/// one only holds the picture before it.
pub const VIDEO_APPSRC_MAX_BUFFERS: u64 = 15;
/// The appsrc's own bound, past the grid clock's: GOP starts queued over a full queue (one a
/// GOP, so only an encoder stuck for many GOPs reaches it); beyond it the oldest is dropped.
pub const VIDEO_APPSRC_HARD_MAX_BUFFERS: u64 = 2 * VIDEO_APPSRC_MAX_BUFFERS;
/// Raw AAC frames (1024 samples each) the audio appsrc holds: about 1.4 s at 48 kHz, a few
/// hundred KiB; beyond it the oldest is dropped and counted (`audio_frames_not_encoded`).
pub const AUDIO_APPSRC_MAX_BUFFERS: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Element(#[from] ElementError),
    #[error("building the pipeline: {0}")]
    Build(String),
    #[error("starting the pipeline: {0}")]
    Start(String),
}

fn build_err(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Build(e.to_string())
}

/// Makes an element, naming the Debian package when it is missing.
fn make(factory: &str) -> Result<gst::Element, CaptureError> {
    elements::require(factory)?;
    gst::ElementFactory::make(factory)
        .build()
        .map_err(build_err)
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, CaptureError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(build_err)
}

/// The encoder pipeline on the system clock in realtime mode (the clock of record), with its
/// base time fixed here so the grid clock can stamp buffers before the pipeline plays; returns
/// the pipeline and that base time.
fn realtime_pipeline() -> (gst::Pipeline, gst::ClockTime) {
    let pipeline = gst::Pipeline::with_name("twincast-encoders");
    let clock = gst::SystemClock::obtain();
    clock.set_property("clock-type", gst::ClockType::Realtime);
    pipeline.use_clock(Some(&clock));
    pipeline.set_start_time(gst::ClockTime::NONE);
    let base = clock.time();
    pipeline.set_base_time(base);
    (pipeline, base)
}

/// The source side: the video appsrc (I420 at the input's size and the grid's rate) into the
/// tee, with the force-key-unit probe on every GOP start and splice frame between them.
fn video_source(
    pipeline: &gst::Pipeline,
    config: &Config,
    grid: Grid,
    base: gst::ClockTime,
    signals: Arc<crate::signals::Signals>,
) -> Result<(gst_app::AppSrc, gst::Element), CaptureError> {
    let input = &config.input;
    let rate = grid.rate();
    let video = live_appsrc(
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", input.width as i32)
            .field("height", input.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .field(
                "framerate",
                gst::Fraction::new(rate.num() as i32, rate.den() as i32),
            )
            .build(),
        VIDEO_APPSRC_HARD_MAX_BUFFERS,
    );
    let tee = make("tee")?;
    pipeline
        .add_many([video.upcast_ref(), &tee])
        .map_err(build_err)?;
    video.link(&tee).map_err(build_err)?;
    let tee_sink = tee
        .static_pad("sink")
        .ok_or_else(|| build_err("tee has no sink pad"))?;
    let src_pad = video
        .static_pad("src")
        .ok_or_else(|| build_err("appsrc has no src pad"))?;
    install_key_units(&src_pad, tee_sink, grid, base.nseconds(), signals);
    Ok((video, tee))
}

/// What every branch of the encoder pipeline is built into and delivers to.
struct Branches<'a> {
    pipeline: &'a gst::Pipeline,
    config: &'a Config,
    units: &'a UnitSender,
    marks: &'a Arc<FillerMarks>,
}

impl Branches<'_> {
    /// One rendition's branch off the tee: queue → videoscale → w×h → H.264 → appsink.
    fn rendition(
        &self,
        tee: &gst::Element,
        track: usize,
        r: &Rendition,
        enc: H264Encoder,
        rate: FrameRate,
    ) -> Result<(), CaptureError> {
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", RENDITION_QUEUE_FRAMES)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .build()
            .map_err(build_err)?;
        let scale = make("videoscale")?;
        let caps = capsfilter(
            gst::Caps::builder("video/x-raw")
                .field("width", r.width as i32)
                .field("height", r.height as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        )?;
        let encoder = make_h264_encoder(enc, r.bitrate_kbps, self.config)?;
        if track == 0 {
            install_fault(&encoder);
        }
        let h264 = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build();
        let out_caps = capsfilter(h264.clone())?;
        let sink = appsink(
            h264,
            track,
            self.units.clone(),
            Mark::Video(rate),
            self.marks.clone(),
        )?;
        let chain = [
            &queue,
            &scale,
            &caps,
            &encoder,
            &out_caps,
            sink.upcast_ref(),
        ];
        self.pipeline.add_many(chain).map_err(build_err)?;
        gst::Element::link_many(chain).map_err(build_err)?;
        tee.link(&queue).map_err(build_err)?;
        Ok(())
    }

    /// The audio branch, the last track: appsrc (S16LE) → audioconvert → AAC (`aac`) →
    /// appsink; returns its appsrc.
    fn audio(&self, aac: &'static str) -> Result<gst_app::AppSrc, CaptureError> {
        let a = &self.config.audio;
        let src = live_appsrc(
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("layout", "interleaved")
                .field("rate", a.sample_rate as i32)
                .field("channels", i32::from(a.channels))
                .build(),
            AUDIO_APPSRC_MAX_BUFFERS,
        );
        let convert = make("audioconvert")?;
        let encoder = gst::ElementFactory::make(aac)
            .property("bitrate", (a.bitrate_kbps * 1000) as i32)
            .build()
            .map_err(build_err)?;
        let sink = appsink(
            gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .build(),
            self.config.rendition.len(),
            self.units.clone(),
            Mark::Audio(a.sample_rate),
            self.marks.clone(),
        )?;
        let chain = [src.upcast_ref(), &convert, &encoder, sink.upcast_ref()];
        self.pipeline.add_many(chain).map_err(build_err)?;
        gst::Element::link_many(chain).map_err(build_err)?;
        Ok(src)
    }
}

/// A built (and then running) encoder pipeline.
pub struct Encoders {
    pipeline: gst::Pipeline,
    pub video: gst_app::AppSrc,
    pub audio: Option<gst_app::AppSrc>,
    /// The pipeline's base time as ns since the epoch: running time = t − base.
    pub base_ns: u64,
    /// The grid clock feeds it from a GOP start on; set by the grid clock.
    pub joined: AtomicBool,
    /// Epoch ns of the first frame fed (valid once joined).
    pub join_ns: AtomicU64,
    /// Set by `stop`; ends the bus watcher.
    pub stopped: Arc<AtomicBool>,
    /// Source picture size and the bytes of one I420 picture of it.
    pub width: u32,
    pub height: u32,
    pub frame_bytes: usize,
    /// Encoder element chosen per rendition (for status and logs).
    pub encoders: Vec<H264Encoder>,
    /// AAC encoder element, when audio is on.
    pub aac_encoder: Option<&'static str>,
}

impl Encoders {
    /// Builds the encoders for `config`; tracks are the renditions in order, then audio.
    pub fn build(
        config: &Config,
        grid: Grid,
        units: UnitSender,
        marks: Arc<FillerMarks>,
        signals: Arc<crate::signals::Signals>,
    ) -> Result<Encoders, CaptureError> {
        let (pipeline, base) = realtime_pipeline();
        let input = &config.input;
        let (video, tee) = video_source(&pipeline, config, grid, base, signals)?;
        let branches = Branches {
            pipeline: &pipeline,
            config,
            units: &units,
            marks: &marks,
        };
        let mut encoders = Vec::new();
        for (track, r) in config.rendition.iter().enumerate() {
            let enc = elements::resolve_h264(r.encoder)?;
            encoders.push(enc);
            branches.rendition(&tee, track, r, enc, grid.rate())?;
        }

        let mut aac_encoder = None;
        let mut audio = None;
        if config.input.audio != AudioInput::None {
            let aac = elements::resolve_aac()?;
            aac_encoder = Some(aac);
            audio = Some(branches.audio(aac)?);
        }

        Ok(Encoders {
            pipeline,
            video,
            audio,
            base_ns: base.nseconds(),
            joined: AtomicBool::new(false),
            join_ns: AtomicU64::new(0),
            stopped: Arc::new(AtomicBool::new(false)),
            width: input.width,
            height: input.height,
            frame_bytes: i420_bytes(input.width, input.height),
            encoders,
            aac_encoder,
        })
    }

    /// Sets the pipeline playing.
    pub fn start(&self) -> Result<(), CaptureError> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| CaptureError::Start(e.to_string()))?;
        Ok(())
    }

    /// The pipeline's bus, for errors and warnings.
    pub fn bus(&self) -> Option<gst::Bus> {
        self.pipeline.bus()
    }

    /// Stops the pipeline (to NULL).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        // Ends the bus watcher's blocking wait.
        if let Some(bus) = self.pipeline.bus() {
            bus.set_flushing(true);
        }
    }
}

impl Drop for Encoders {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes of one I420 picture as GStreamer lays it out (rows padded to 4 bytes; the source's
/// pictures and the slate's, `slate::plain_frame`): a picture of another size is not this
/// source's.
pub fn i420_bytes(width: u32, height: u32) -> usize {
    gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::I420, width, height)
        .build()
        .map_or(0, |info| info.size())
}

/// A live appsrc in time format whose buffers carry their own timestamps, bounded by
/// `max_buffers` alone (`max-time` is off by default). `max-bytes` is off too: its default (200 000) is less
/// than one 640×360 picture, and with a leaky queue every limit drops, so a picture waiting
/// one moment for the tee was dropped there, uncounted; whole fragments went with the GOP
/// starts among them (no forced IDR), seen on a busy 2-core box as 26.6 fps and
/// `dropped_units` "before a fragment's keyframe" in every rendition.
fn live_appsrc(caps: gst::Caps, max_buffers: u64) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&caps)
        .is_live(true)
        .do_timestamp(false)
        .format(gst::Format::Time)
        .max_buffers(max_buffers)
        .max_bytes(0)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}
