//! The appsink seam of the encoders, the only place GStreamer hands encoded media to Rust:
//! one appsink per track turns each sample into an [`EncodedUnit`] (wall-clock PTS/DTS from
//! the pipeline's base time, keyframe flag, codec data when the caps change), marks it `filler`
//! when its grid slot was fed from the slate ([`FillerMarks`]) and pushes it into the one
//! bounded unit channel, whose drops are counted (src/capture/mod.rs, `UnitSender`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use twincast_media::timeline::FrameRate;

use super::CaptureError;
use crate::capture::{EncodedUnit, UnitSender};

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

/// How an appsink finds the grid slot of a unit, to look up its filler mark.
#[derive(Clone, Copy)]
pub(super) enum Mark {
    Video(FrameRate),
    /// Sample rate: AAC frame j starts at sample 1024·j.
    Audio(u32),
}

impl Mark {
    fn filler(self, marks: &FillerMarks, wall_ns: u64) -> bool {
        match self {
            Mark::Video(rate) => marks.video(rate.frame_index_nearest(wall_ns)),
            Mark::Audio(rate) => {
                let per_frame = u128::from(crate::capture::feed::AAC_FRAME_SAMPLES) * 1_000_000_000;
                let j = (u128::from(wall_ns) * u128::from(rate) + per_frame / 2) / per_frame;
                marks.audio(j as u64)
            }
        }
    }
}

/// An appsink that hands every encoded unit of `track` to the packager.
pub(super) fn appsink(
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
