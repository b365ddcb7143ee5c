//! Building, starting and stopping the capture pipeline.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_audio as gst_audio;
use twincast_media::timeline::Grid;

use super::elements::{self, ElementError, H264Encoder};
use super::file_input::{self, FileInput};
use super::{CaptureStats, EncodedUnit, UnitSender, probes};
use crate::config::{AudioInput, Config, InputKind};

/// Timestamp jitter audiorate ignores before it fills or drops samples (ns).
const AUDIO_RATE_TOLERANCE_NS: u64 = 40_000_000;
/// Queue between the tee and each encoder, in raw frames.
const RENDITION_QUEUE_FRAMES: u32 = 8;
/// x264's key-int-max: "never on its own"; IDRs come only from our force-key-unit events.
const X264_KEY_INT_MAX: u32 = 1_000_000;

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

/// A running (or ready) capture pipeline.
pub struct Capture {
    pipeline: gst::Pipeline,
    /// Encoder element chosen per rendition (for status and logs).
    pub encoders: Vec<H264Encoder>,
    /// AAC encoder element, when audio is on.
    pub aac_encoder: Option<&'static str>,
    /// The decoding side of a `file` input.
    file: Option<FileInput>,
}

impl Capture {
    /// Builds the pipeline for `config`; tracks are the renditions in order, then audio.
    pub fn build(
        config: &Config,
        grid: Grid,
        units: UnitSender,
        stats: Arc<CaptureStats>,
    ) -> Result<Capture, CaptureError> {
        let pipeline = gst::Pipeline::with_name("twincast");
        // The clock of record is the system clock; with the realtime clock type,
        // base_time + running_time of a live buffer is its wall-clock capture time.
        let clock = gst::SystemClock::obtain();
        clock.set_property("clock-type", gst::ClockType::Realtime);
        pipeline.use_clock(Some(&clock));

        let input = &config.input;
        let rate = gst::Fraction::new(input.framerate.num as i32, input.framerate.den as i32);
        let (video_src, audio_src, file) = build_source(&pipeline, config)?;

        // Common video head: normalise to the source size and frame rate.
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let vrate = make("videorate")?;
        let head_caps = capsfilter(
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", input.width as i32)
                .field("height", input.height as i32)
                .field("framerate", rate)
                .build(),
        )?;
        let tee = make("tee")?;
        pipeline
            .add_many([&convert, &scale, &vrate, &head_caps, &tee])
            .map_err(build_err)?;
        gst::Element::link_many([&convert, &scale, &vrate, &head_caps, &tee]).map_err(build_err)?;
        link_source(&video_src, &convert)?;

        let tee_sink = tee
            .static_pad("sink")
            .ok_or_else(|| build_err("tee has no sink pad"))?;
        let head_src = head_caps
            .static_pad("src")
            .ok_or_else(|| build_err("capsfilter has no src pad"))?;
        probes::install_video_timeline(&head_src, tee_sink, grid, stats.clone());

        let mut encoders = Vec::new();
        for (track, r) in config.rendition.iter().enumerate() {
            let enc = elements::resolve_h264(r.encoder)?;
            encoders.push(enc);
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
            let encoder = make_h264_encoder(enc, r.bitrate_kbps, config)?;
            let out_caps = capsfilter(
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc")
                    .field("alignment", "au")
                    .build(),
            )?;
            let sink = appsink(
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc")
                    .field("alignment", "au")
                    .build(),
                track,
                units.clone(),
            )?;
            let chain = [
                &queue,
                &scale,
                &caps,
                &encoder,
                &out_caps,
                sink.upcast_ref(),
            ];
            pipeline.add_many(chain).map_err(build_err)?;
            gst::Element::link_many(chain).map_err(build_err)?;
            tee.link(&queue).map_err(build_err)?;
        }

        let mut aac_encoder = None;
        if let Some(audio_src) = audio_src {
            let aac = elements::resolve_aac()?;
            aac_encoder = Some(aac);
            let a = &config.audio;
            let convert = make("audioconvert")?;
            let resample = make("audioresample")?;
            // Keeps the sample count continuous across input gaps (a looped file's seek, a
            // network hiccup): silence fills holes, so AAC frames stay on the epoch grid.
            let rate = make("audiorate")?;
            rate.set_property("tolerance", AUDIO_RATE_TOLERANCE_NS);
            let raw_caps = gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("layout", "interleaved")
                .field("rate", a.sample_rate as i32)
                .field("channels", i32::from(a.channels))
                .build();
            let info = gst_audio::AudioInfo::from_caps(&raw_caps).map_err(build_err)?;
            let caps = capsfilter(raw_caps)?;
            let convert2 = make("audioconvert")?;
            let encoder = gst::ElementFactory::make(aac)
                .property("bitrate", (a.bitrate_kbps * 1000) as i32)
                .build()
                .map_err(build_err)?;
            let sink = appsink(
                gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("stream-format", "raw")
                    .build(),
                config.rendition.len(),
                units.clone(),
            )?;
            let chain = [
                &convert,
                &resample,
                &rate,
                &caps,
                &convert2,
                &encoder,
                sink.upcast_ref(),
            ];
            pipeline.add_many(chain).map_err(build_err)?;
            gst::Element::link_many(chain).map_err(build_err)?;
            link_source(&audio_src, &convert)?;
            let pad = caps
                .static_pad("src")
                .ok_or_else(|| build_err("capsfilter has no src pad"))?;
            probes::install_audio_trim(&pad, a.sample_rate, info.bpf() as usize, stats.clone());
        }

        Ok(Capture {
            pipeline,
            encoders,
            aac_encoder,
            file,
        })
    }

    /// Sets the pipeline playing.
    pub fn start(&self) -> Result<(), CaptureError> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| CaptureError::Start(e.to_string()))?;
        if let Some(file) = &self.file {
            file.start().map_err(CaptureError::Start)?;
        }
        Ok(())
    }

    /// The pipeline's bus, for errors and warnings.
    pub fn bus(&self) -> Option<gst::Bus> {
        self.pipeline.bus()
    }

    /// Stops the pipeline (to NULL).
    pub fn stop(&self) {
        if let Some(file) = &self.file {
            file.stop();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        // Ends the bus watcher's blocking wait.
        if let Some(bus) = self.pipeline.bus() {
            bus.set_flushing(true);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a source's raw video / audio comes out: a static element, or a decodebin whose pads
/// appear later.
enum SourceOut {
    Static(gst::Element),
    Dynamic {
        decodebin: gst::Element,
        media: &'static str,
    },
}

fn link_source(src: &SourceOut, to: &gst::Element) -> Result<(), CaptureError> {
    match src {
        SourceOut::Static(el) => el.link(to).map_err(build_err),
        SourceOut::Dynamic { decodebin, media } => {
            let to = to.downgrade();
            let media = *media;
            decodebin.connect_pad_added(move |_, pad| {
                let is_media = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).map(|s| s.name().starts_with(media)))
                    .unwrap_or(false);
                let Some(to) = to.upgrade() else { return };
                if let Some(sink) = to.static_pad("sink")
                    && is_media
                    && !sink.is_linked()
                    && let Err(e) = pad.link(&sink)
                {
                    log::warn!("could not link the input's {media} pad: {e:?}");
                }
            });
            Ok(())
        }
    }
}

/// Builds the configured source; returns its video output and, when audio is wanted, its audio.
type Sources = (SourceOut, Option<SourceOut>, Option<FileInput>);

fn build_source(pipeline: &gst::Pipeline, config: &Config) -> Result<Sources, CaptureError> {
    let input = &config.input;
    let video = match input.kind {
        InputKind::Test => {
            let src = make("videotestsrc")?;
            src.set_property("is-live", true);
            src.set_property_from_str("pattern", "smpte");
            src.set_property("horizontal-speed", 4i32);
            pipeline.add(&src).map_err(build_err)?;
            SourceOut::Static(src)
        }
        InputKind::V4l2 => {
            let src = make("v4l2src")?;
            if let Some(dev) = &input.device {
                src.set_property("device", dev);
            }
            pipeline.add(&src).map_err(build_err)?;
            SourceOut::Static(src)
        }
        InputKind::File => {
            let uri = file_uri(input.uri.as_deref().unwrap_or_default())?;
            let video = file_input::live_appsrc();
            let audio = (input.audio == AudioInput::Input).then(file_input::live_appsrc);
            let file = FileInput::new(&uri, video.clone(), audio.clone()).map_err(build_err)?;
            pipeline.add(&video).map_err(build_err)?;
            let audio = match audio {
                Some(a) => {
                    pipeline.add(&a).map_err(build_err)?;
                    Some(SourceOut::Static(a.upcast()))
                }
                None => build_audio_source(pipeline, config)?,
            };
            return Ok((SourceOut::Static(video.upcast()), audio, Some(file)));
        }
        InputKind::Rtsp | InputKind::Rtp => {
            let uri = input.uri.clone().unwrap_or_default();
            let dec = if input.kind == InputKind::Rtp {
                rtp_ts_source(pipeline, &uri)?
            } else {
                let dec = make("uridecodebin")?;
                dec.set_property("uri", &uri);
                pipeline.add(&dec).map_err(build_err)?;
                dec
            };
            let out = SourceOut::Dynamic {
                decodebin: dec.clone(),
                media: "video/",
            };
            let audio = match input.audio {
                AudioInput::Input => Some(SourceOut::Dynamic {
                    decodebin: dec,
                    media: "audio/",
                }),
                _ => build_audio_source(pipeline, config)?,
            };
            return Ok((out, audio, None));
        }
    };
    let audio = match input.audio {
        AudioInput::Input => None,
        _ => build_audio_source(pipeline, config)?,
    };
    Ok((video, audio, None))
}

/// A `file` input's path or URI as a URI.
fn file_uri(uri: &str) -> Result<String, CaptureError> {
    if uri.contains("://") {
        return Ok(uri.to_string());
    }
    let abs =
        std::fs::canonicalize(uri).map_err(|e| build_err(format!("input file {uri}: {e}")))?;
    Ok(gst::glib::filename_to_uri(abs, None)
        .map_err(build_err)?
        .to_string())
}

/// `rtp://host:port`: MPEG-TS over RTP (the usual contribution feed) → jitter buffer → depay →
/// decodebin. Returns the decodebin (its pads appear once the stream is known).
fn rtp_ts_source(pipeline: &gst::Pipeline, uri: &str) -> Result<gst::Element, CaptureError> {
    let udp_uri = uri.replacen("rtp://", "udp://", 1);
    let src = make("udpsrc")?;
    src.set_property("uri", &udp_uri);
    src.set_property(
        "caps",
        gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "MP2T")
            .field("clock-rate", 90_000i32)
            .build(),
    );
    let jitter = make("rtpjitterbuffer")?;
    let depay = make("rtpmp2tdepay")?;
    let dec = make("decodebin")?;
    let chain = [&src, &jitter, &depay, &dec];
    pipeline.add_many(chain).map_err(build_err)?;
    gst::Element::link_many(chain).map_err(build_err)?;
    Ok(dec)
}

fn build_audio_source(
    pipeline: &gst::Pipeline,
    config: &Config,
) -> Result<Option<SourceOut>, CaptureError> {
    let src = match &config.input.audio {
        AudioInput::None | AudioInput::Input => return Ok(None),
        AudioInput::Test => {
            let src = make("audiotestsrc")?;
            src.set_property("is-live", true);
            src.set_property("volume", 0.2f64);
            src.set_property("freq", 1000.0f64);
            src
        }
        AudioInput::Alsa(device) => {
            let src = make("alsasrc")?;
            src.set_property("device", device);
            src
        }
    };
    pipeline.add(&src).map_err(build_err)?;
    Ok(Some(SourceOut::Static(src)))
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

/// An appsink that hands every encoded unit of `track` to the packager.
fn appsink(
    caps: gst::Caps,
    track: usize,
    units: UnitSender,
) -> Result<gst_app::AppSink, CaptureError> {
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(64)
        .drop(false)
        .build();
    // async=false: an appsink with no data yet must not hold the pipeline in PAUSED (design §9).
    sink.set_property("async", false);
    let mut last_caps: Option<gst::Caps> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let base = sink.base_time();
                if let Some(unit) =
                    base.and_then(|b| unit_from_sample(&sample, b, track, &mut last_caps))
                {
                    units.send(unit);
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
