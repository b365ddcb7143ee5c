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
//! dropped and counted (the decoder is behind), never queued without bound. The appsinks hold
//! at most [`SINK_MAX_BUFFERS`] and drop the oldest beyond; what they drop, or discard
//! outside their segment, or receive without a time, is counted with the [`Ledger`] of
//! `src/source.rs` (`sink_dropped`, the source's `buffers_dropped` in `/status`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::source::{Ledger, RawSink, count_arrivals};

use super::frontend::EsUnit;
use super::ts::EsKind;

/// Bytes an appsrc holds at most before units are dropped.
pub const APPSRC_MAX_BYTES: u64 = 16 << 20;
/// Decoded buffers an appsink holds at most; the oldest is dropped beyond (counted).
pub const SINK_MAX_BUFFERS: u32 = 8;

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
    /// Decoded buffers that reached an appsink and were not handed to the `RawSink` (dropped
    /// by the full appsink, discarded outside its segment, or without a time).
    pub sink_dropped: AtomicU64,
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
        .max_buffers(SINK_MAX_BUFFERS)
        .drop(true)
        .build();
    appsink.set_property("async", false);
    // Every buffer in at the sink pad, against every buffer handed over (src/source.rs).
    let arrived = appsink
        .static_pad("sink")
        .map(|pad| count_arrivals(&pad))
        .unwrap_or_default();
    let mut ledger = Ledger::default();
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
                let lost = ledger.handed(arrived.load(Ordering::Relaxed));
                counters.sink_dropped.fetch_add(lost, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    appsink
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what the appsink hands over.
    #[derive(Default)]
    struct Counting(AtomicU64);

    impl RawSink for Counting {
        fn video(&self, _: u64, _: gst::Buffer) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn audio(&self, _: u64, _: gst::Buffer) {}
    }

    /// The base sink discards the decoded buffers before its segment's start without rendering
    /// them: the ledger counts them (`sink_dropped`, the source's `buffers_dropped`).
    #[test]
    fn decoded_buffers_the_appsink_does_not_hand_over_are_counted() {
        gst::init().expect("GStreamer");
        let caps = crate::source::test_feed::caps();
        let counting = Arc::new(Counting::default());
        let counters = Arc::new(DecodeCounters::default());
        let sink = raw_sink(caps, counting.clone(), counters.clone(), true);
        let pipeline = gst::Pipeline::with_name("decode-sink-drops-test");
        pipeline.add(&sink).expect("add");
        crate::source::test_feed::across_the_segment_start(&pipeline, sink.upcast_ref());
        // Buffers 0..10 end before the segment's start (1 s); 10 and 11 are handed over.
        assert_eq!(counting.0.load(Ordering::Relaxed), 2);
        assert_eq!(counters.pictures.load(Ordering::Relaxed), 2);
        assert_eq!(counters.sink_dropped.load(Ordering::Relaxed), 10);
    }
}
