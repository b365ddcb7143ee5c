//! Pad probes: the epoch timeline on raw video, and the 1024-sample grid trim on raw audio.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use twincast_media::timeline::{AudioTimeline, FrameAssign, Grid, VideoTimeline};

use super::CaptureStats;

/// Wall-clock ns of a buffer: the element's base time plus the buffer's running time.
fn wall_ns(
    pad: &gst::Pad,
    buffer: &gst::BufferRef,
) -> Option<(u64, gst::FormattedSegment<gst::ClockTime>)> {
    let pts = buffer.pts()?;
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let running = segment.to_running_time(pts)?;
    let base = pad.parent_element()?.base_time()?;
    Some(((base + running).nseconds(), segment))
}

struct VideoState {
    timeline: VideoTimeline,
    grid: Grid,
    /// GOP index of the last frame let through; None before the first grid frame.
    last_gop: Option<u64>,
}

/// Installs the timeline probe on `pad` (the source pad feeding the tee): assigns k, drops
/// frames before the first GOP start and frames behind the timeline, restamps each frame to
/// exactly `t_k`, and forces a key unit in every rendition at each new GOP.
pub fn install_video_timeline(
    pad: &gst::Pad,
    tee_sink: gst::Pad,
    grid: Grid,
    stats: Arc<CaptureStats>,
) {
    let state = Mutex::new(VideoState {
        timeline: VideoTimeline::new(grid.rate()),
        grid,
        last_gop: None,
    });
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some((wall, segment)) = wall_ns(pad, buffer) else {
            return gst::PadProbeReturn::Ok;
        };
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        stats.last_frame_wall_ns.store(wall, Ordering::Relaxed);
        let Ok(mut st) = state.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        let k = match st.timeline.assign(wall) {
            FrameAssign::Frame { k, reanchored } => {
                if reanchored {
                    stats.reanchors.fetch_add(1, Ordering::Relaxed);
                }
                k
            }
            FrameAssign::Drop => {
                stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                return gst::PadProbeReturn::Handled;
            }
        };
        let gop = st.grid.gop_index(k);
        let new_gop = match st.last_gop {
            None if !st.grid.is_gop_start(k) => {
                // Start on the grid: nothing reaches the encoders before the first GOP start.
                stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                return gst::PadProbeReturn::Handled;
            }
            None => true,
            Some(last) => gop != last,
        };
        st.last_gop = Some(gop);
        drop(st);

        // Restamp to t_k so every rendition carries the grid time, not the jittered capture time.
        let base = pad
            .parent_element()
            .and_then(|e| e.base_time())
            .map(|b| b.nseconds())
            .unwrap_or(0);
        let t_k = grid.rate().frame_time_ns(k);
        if let Some(running) = t_k.checked_sub(base)
            && let Some(pts) =
                segment.position_from_running_time(gst::ClockTime::from_nseconds(running))
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(pts);
            buffer.set_dts(gst::ClockTime::NONE);
            buffer.set_duration(gst::ClockTime::from_nseconds(
                grid.rate().frame_time_ns(k + 1) - t_k,
            ));
        }
        if new_gop {
            // Running time NONE ("as soon as possible"): see design §9 on 1.22's encoders.
            let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            tee_sink.send_event(event);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Installs the audio probe: trims the first buffer(s) so that the first sample reaching the AAC
/// encoder sits on the 1024-sample epoch grid; after that every AAC frame stays on it.
pub fn install_audio_trim(
    pad: &gst::Pad,
    rate: u32,
    bytes_per_frame: usize,
    stats: Arc<CaptureStats>,
) {
    let aligned = Mutex::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Ok(mut done) = aligned.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        if *done {
            return gst::PadProbeReturn::Ok;
        }
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some((wall, _)) = wall_ns(pad, buffer) else {
            return gst::PadProbeReturn::Ok;
        };
        let (Some(pts), Ok(map)) = (buffer.pts(), buffer.map_readable()) else {
            return gst::PadProbeReturn::Ok;
        };
        let samples = map.size() / bytes_per_frame.max(1);
        let trim = AudioTimeline::samples_to_trim(wall, rate);
        let trim_usize = usize::try_from(trim).unwrap_or(usize::MAX);
        if trim_usize >= samples {
            stats
                .audio_trimmed_samples
                .fetch_add(samples as u64, Ordering::Relaxed);
            return gst::PadProbeReturn::Handled;
        }
        let mut out = gst::Buffer::from_mut_slice(map[trim_usize * bytes_per_frame..].to_vec());
        {
            let out = out.get_mut().expect("a new buffer is writable");
            let shift = trim * 1_000_000_000 / u64::from(rate);
            out.set_pts(pts + gst::ClockTime::from_nseconds(shift));
        }
        drop(map);
        stats
            .audio_trimmed_samples
            .fetch_add(trim, Ordering::Relaxed);
        *done = true;
        info.data = Some(gst::PadProbeData::Buffer(out));
        gst::PadProbeReturn::Ok
    });
}
