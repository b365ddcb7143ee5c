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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use twincast_media::timeline::{FrameRate, Grid};

use super::elements::{self, ElementError, H264Encoder};
use super::{EncodedUnit, UnitSender};
use crate::config::{AudioInput, Config, Rendition};

/// Queue between the tee and each encoder, in raw frames.
const RENDITION_QUEUE_FRAMES: u32 = 8;
/// x264's key-int-max: "never on its own"; IDRs come only from our force-key-unit events.
const X264_KEY_INT_MAX: u32 = 1_000_000;
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

/// Which grid slots were fed from the slate, for the appsinks to mark their units: a ring per
/// kind of `index << 1 | filler`, so a lookup never blocks and old entries are overwritten.
#[derive(Debug)]
pub struct FillerMarks {
    video: Vec<AtomicU64>,
    audio: Vec<AtomicU64>,
}

/// Slots each ring remembers (far more than the encoders' latency).
const MARK_SLOTS: usize = 1024;

impl Default for FillerMarks {
    fn default() -> Self {
        FillerMarks {
            video: (0..MARK_SLOTS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            audio: (0..MARK_SLOTS).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }
}

impl FillerMarks {
    fn set(ring: &[AtomicU64], index: u64, filler: bool) {
        let slot = (index % MARK_SLOTS as u64) as usize;
        ring[slot].store((index << 1) | u64::from(filler), Ordering::Relaxed);
    }

    fn get(ring: &[AtomicU64], index: u64) -> bool {
        let slot = (index % MARK_SLOTS as u64) as usize;
        ring[slot].load(Ordering::Relaxed) == (index << 1) | 1
    }

    pub fn set_video(&self, k: u64, filler: bool) {
        Self::set(&self.video, k, filler);
    }

    pub fn set_audio(&self, j: u64, filler: bool) {
        Self::set(&self.audio, j, filler);
    }

    pub fn video(&self, k: u64) -> bool {
        Self::get(&self.video, k)
    }

    pub fn audio(&self, j: u64) -> bool {
        Self::get(&self.audio, j)
    }
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
/// tee, with the force-key-unit probe on every GOP start between them.
fn video_source(
    pipeline: &gst::Pipeline,
    config: &Config,
    grid: Grid,
    base: gst::ClockTime,
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
    install_key_units(&src_pad, tee_sink, grid, base.nseconds());
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
    ) -> Result<Encoders, CaptureError> {
        let (pipeline, base) = realtime_pipeline();
        let input = &config.input;
        let (video, tee) = video_source(&pipeline, config, grid, base)?;
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

/// Bytes of one I420 picture.
pub fn i420_bytes(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
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

/// Sends a force-key-unit event into the tee right before every frame that starts a GOP
/// (running time NONE, "as soon as possible": docs/design/platform.md, *x264 and IDR placement*).
fn install_key_units(pad: &gst::Pad, tee_sink: gst::Pad, grid: Grid, base_ns: u64) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let k = grid.rate().frame_index_nearest(base_ns + pts.nseconds());
        if grid.is_gop_start(k) {
            let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            tee_sink.send_event(event);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Fault injector for tests and field diagnosis (docs/guide/troubleshooting.md, "encoders
/// failed"): `TWINCAST_FAULT_ENCODER_ERROR_AFTER=<n>s|<n>ms`, read once per process. That long
/// after the first encoders are built, the first rendition's encoder posts a real element error
/// on the encoder pipeline's bus and produces nothing more, as a failing encoder does. Once.
pub const FAULT_ENCODER_ERROR_AFTER: &str = "TWINCAST_FAULT_ENCODER_ERROR_AFTER";

/// The fault's delay from the environment; `None` (and a warning) when unset or unreadable.
fn fault_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        let text = std::env::var(FAULT_ENCODER_ERROR_AFTER).ok()?;
        let t = text.trim();
        let parsed = match t.strip_suffix("ms") {
            Some(ms) => ms.parse::<u64>().ok().map(std::time::Duration::from_millis),
            None => t
                .strip_suffix('s')
                .unwrap_or(t)
                .parse::<f64>()
                .ok()
                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
        };
        match parsed {
            Some(d) => log::warn!("fault injection: TWINCAST_FAULT_ENCODER_ERROR_AFTER={t}: the encoders will fail once after {d:?}"),
            None => log::warn!("fault injection: TWINCAST_FAULT_ENCODER_ERROR_AFTER={t:?} is not a duration (5s, 500ms); ignored"),
        }
        parsed
    })
}

/// Arms the fault on `encoder` (the first encoders built only; the fault fires once).
fn install_fault(encoder: &gst::Element) {
    static ARMED: AtomicBool = AtomicBool::new(false);
    let Some(delay) = fault_delay() else { return };
    if ARMED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(pad) = encoder.static_pad("src") else {
        return;
    };
    let at = std::time::Instant::now() + delay;
    let weak = encoder.downgrade();
    let failed = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if !failed.load(Ordering::Relaxed) && std::time::Instant::now() >= at {
            failed.store(true, Ordering::Relaxed);
            if let Some(encoder) = weak.upgrade() {
                encoder.post_error_message(gst::error_msg!(
                    gst::StreamError::Encode,
                    ("injected by {}", FAULT_ENCODER_ERROR_AFTER),
                    ["a test fault, not a real encoder failure"]
                ));
            }
        }
        if failed.load(Ordering::Relaxed) {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
}

/// An H.264 encoder configured for the grid: no B-frames, no scene-cut IDRs, no IDRs of its own;
/// IDRs come only from the force-key-unit events of the timeline probe.
fn make_h264_encoder(
    enc: H264Encoder,
    bitrate_kbps: u32,
    config: &Config,
) -> Result<gst::Element, CaptureError> {
    let el = make(enc.element())?;
    match enc {
        H264Encoder::X264 => {
            el.set_property("bitrate", bitrate_kbps);
            el.set_property_from_str("tune", "zerolatency");
            el.set_property_from_str("speed-preset", "veryfast");
            el.set_property("bframes", 0u32);
            el.set_property("key-int-max", X264_KEY_INT_MAX);
            // CBR with filler, as ingest services expect, and no scene-cut IDRs (they would
            // land on different frames in each rendition).
            el.set_property("option-string", "scenecut=0:nal-hrd=cbr:filler=1");
            el.set_property("vbv-buf-capacity", 1000u32);
        }
        H264Encoder::OpenH264 => {
            el.set_property("bitrate", bitrate_kbps * 1000);
            el.set_property("gop-size", X264_KEY_INT_MAX.min(i32::MAX as u32));
        }
        H264Encoder::Va | H264Encoder::Vaapi | H264Encoder::V4l2 | H264Encoder::Nvv4l2 => {
            if el.find_property("bitrate").is_some() {
                let kbps_or_bps = if matches!(enc, H264Encoder::Nvv4l2) {
                    bitrate_kbps * 1000
                } else {
                    bitrate_kbps
                };
                el.set_property("bitrate", kbps_or_bps);
            }
            let gop = config.timeline.gop.as_secs_f64() * f64::from(config.input.framerate.num)
                / f64::from(config.input.framerate.den.max(1));
            if el.find_property("key-int-max").is_some() {
                el.set_property("key-int-max", gop.round() as u32);
            }
        }
    }
    Ok(el)
}

/// How an appsink finds the grid slot of a unit, to look up its filler mark.
#[derive(Clone, Copy)]
enum Mark {
    Video(FrameRate),
    /// Sample rate: AAC frame j starts at sample 1024·j.
    Audio(u32),
}

impl Mark {
    fn filler(self, marks: &FillerMarks, wall_ns: u64) -> bool {
        match self {
            Mark::Video(rate) => marks.video(rate.frame_index_nearest(wall_ns)),
            Mark::Audio(rate) => {
                let per_frame = u128::from(super::feed::AAC_FRAME_SAMPLES) * 1_000_000_000;
                let j = (u128::from(wall_ns) * u128::from(rate) + per_frame / 2) / per_frame;
                marks.audio(j as u64)
            }
        }
    }
}

/// An appsink that hands every encoded unit of `track` to the packager.
fn appsink(
    caps: gst::Caps,
    track: usize,
    units: UnitSender,
    mark: Mark,
    marks: Arc<FillerMarks>,
) -> Result<gst_app::AppSink, CaptureError> {
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(64)
        .drop(false)
        .build();
    // async=false: an appsink with no data yet must not hold the pipeline in PAUSED
    // (docs/design/platform.md, *x264 and IDR placement*).
    sink.set_property("async", false);
    let mut last_caps: Option<gst::Caps> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let base = sink.base_time();
                match base.and_then(|b| unit_from_sample(&sample, b, track, &mut last_caps)) {
                    Some(mut unit) => {
                        unit.filler = mark.filler(&marks, unit.wall_ns);
                        units.send(unit);
                    }
                    None => units.untimed(),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(sink)
}

fn unit_from_sample(
    sample: &gst::Sample,
    base: gst::ClockTime,
    track: usize,
    last_caps: &mut Option<gst::Caps>,
) -> Option<EncodedUnit> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = segment.to_running_time(buffer.pts()?)?;
    let dts = buffer
        .dts()
        .and_then(|d| segment.to_running_time(d))
        .unwrap_or(pts);
    let codec_data = match sample.caps() {
        Some(caps) if last_caps.as_ref().map(|c| c.as_ref()) != Some(caps) => {
            *last_caps = Some(caps.to_owned());
            caps.structure(0)
                .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()))
        }
        _ => None,
    };
    let map = buffer.map_readable().ok()?;
    Some(EncodedUnit {
        track,
        wall_ns: (base + pts).nseconds(),
        dts_wall_ns: (base + dts).nseconds(),
        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        data: map.to_vec(),
        codec_data,
        filler: false,
    })
}
