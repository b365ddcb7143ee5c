//! The decoders of a network input: one small GStreamer pipeline, elementary streams in by
//! appsrc, raw media out by appsink to the [`RawSink`].
//!
//! ```text
//! appsrc (H.264 Annex B AUs) → h264parse → avdec_h264 → videoconvert → videoscale
//!     → I420 width×height → appsink → RawSink::video(W, …)
//! appsrc (ADTS) → aacparse → avdec_aac → audioconvert → audioresample
//!     → S16LE rate×channels → appsink → RawSink::audio(W, …)
//! ```
//!
//! W travels through the decoders as the buffer PTS itself (ns since the epoch): the appsinks do
//! not sync to a clock, so no running-time mapping is needed and the decoders' reordering keeps
//! each picture with its own W. The appsrcs are bounded by bytes; a unit that does not fit is
//! dropped and counted (the decoder is behind), never queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::source::RawSink;

use super::frontend::EsUnit;
use super::ts::EsKind;

/// Bytes an appsrc holds at most before units are dropped.
pub const APPSRC_MAX_BYTES: u64 = 16 << 20;

/// What the decoders produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeFormat {
    pub width: u32,
    pub height: u32,
    /// `Some((rate, channels))` when the input's audio is decoded.
    pub audio: Option<(u32, u16)>,
}

/// Counters of the decoders (shared with the appsink callbacks).
#[derive(Debug, Default)]
pub struct DecodeCounters {
    pub pictures: AtomicU64,
    pub audio_buffers: AtomicU64,
    /// Units dropped because an appsrc was full.
    pub overflow: AtomicU64,
    /// GStreamer errors posted by the decoders.
    pub errors: AtomicU64,
}

/// The decode pipeline of one input.
pub struct Decoders {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    counters: Arc<DecodeCounters>,
}

fn make(name: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| format!("GStreamer element {name} is missing: {e}"))
}

fn appsrc(caps: gst::Caps) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(false)
        .max_bytes(APPSRC_MAX_BYTES)
        .block(false)
        .build()
}

impl Decoders {
    /// Builds and starts the pipeline.
    pub fn start(
        format: DecodeFormat,
        sink: Arc<dyn RawSink>,
        counters: Arc<DecodeCounters>,
    ) -> Result<Self, String> {
        gst::init().map_err(|e| e.to_string())?;
        let pipeline = gst::Pipeline::with_name("twincast-network-input");
        let video = appsrc(
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        );
        let raw_video = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", format.width as i32)
            .field("height", format.height as i32)
            .build();
        let vsink = raw_sink(raw_video, sink.clone(), counters.clone(), true);
        let mut chain: Vec<gst::Element> = vec![video.clone().upcast()];
        for name in ["h264parse", "avdec_h264", "videoconvert", "videoscale"] {
            chain.push(make(name)?);
        }
        chain.push(vsink.upcast());
        pipeline.add_many(&chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| e.to_string())?;

        let audio = match format.audio {
            Some((rate, channels)) => {
                let src = appsrc(
                    gst::Caps::builder("audio/mpeg")
                        .field("mpegversion", 4i32)
                        .field("stream-format", "adts")
                        .build(),
                );
                let raw_audio = gst::Caps::builder("audio/x-raw")
                    .field("format", "S16LE")
                    .field("layout", "interleaved")
                    .field("rate", rate as i32)
                    .field("channels", i32::from(channels))
                    .build();
                let asink = raw_sink(raw_audio, sink, counters.clone(), false);
                let mut chain: Vec<gst::Element> = vec![src.clone().upcast()];
                for name in ["aacparse", "avdec_aac", "audioconvert", "audioresample"] {
                    chain.push(make(name)?);
                }
                chain.push(asink.upcast());
                pipeline.add_many(&chain).map_err(|e| e.to_string())?;
                gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
                Some(src)
            }
            None => None,
        };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("the decode pipeline did not start: {e}"))?;
        Ok(Decoders {
            pipeline,
            video,
            audio,
            counters,
        })
    }

    /// The first error the pipeline posted since the last call, if any (non-blocking).
    pub fn take_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                return Some(format!("{from}: {}", e.error()));
            }
        }
        None
    }

    /// Hands one unit to its decoder (dropped and counted when the decoder is behind).
    pub fn push(&self, unit: EsUnit) {
        let src = match unit.kind {
            EsKind::H264 => &self.video,
            EsKind::Aac => match &self.audio {
                Some(a) => a,
                None => return,
            },
        };
        if src.current_level_bytes() + unit.data.len() as u64 > APPSRC_MAX_BYTES {
            self.counters.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut buffer = gst::Buffer::from_mut_slice(unit.data);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(unit.wall_ns));
            if !unit.keyframe && unit.kind == EsKind::H264 {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        // Flushing or stopping: the unit is simply not decoded.
        let _ = src.push_buffer(buffer);
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Decoders {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The appsink that hands decoded buffers (PTS = W) to the sink.
fn raw_sink(
    caps: gst::Caps,
    sink: Arc<dyn RawSink>,
    counters: Arc<DecodeCounters>,
    video: bool,
) -> gst_app::AppSink {
    let appsink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(8)
        .drop(true)
        .build();
    appsink.set_property("async", false);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Some(w) = buffer.pts() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if video {
                    counters.pictures.fetch_add(1, Ordering::Relaxed);
                    sink.video(w.nseconds(), buffer);
                } else {
                    counters.audio_buffers.fetch_add(1, Ordering::Relaxed);
                    sink.audio(w.nseconds(), buffer);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    appsink
}
