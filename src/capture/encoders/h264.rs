//! The H.264 encoders set up for the epoch grid: no B-frames, no scene-cut IDRs, no IDRs of
//! their own; every IDR comes from the force-key-unit event the probe on the video appsrc sends
//! before each GOP's first frame, so every rendition cuts on the same frame
//! (docs/design/platform.md, *x264 and IDR placement*).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use twincast_media::timeline::Grid;

use super::{CaptureError, make};
use crate::capture::elements::H264Encoder;
use crate::config::Config;

/// x264's key-int-max: "never on its own"; IDRs come only from our force-key-unit events.
const X264_KEY_INT_MAX: u32 = 1_000_000;

/// Sends a force-key-unit event into the tee right before every frame that starts a GOP or is
/// a splice point (running time NONE, "as soon as possible": docs/design/platform.md, *x264
/// and IDR placement*). A splice frame inside a GOP becomes an IDR in every rendition and the
/// fragment grid stays where it is (DASH-IF ingest's conditioning that keeps fragment
/// boundaries; docs/design/signals.md).
pub(super) fn install_key_units(
    pad: &gst::Pad,
    tee_sink: gst::Pad,
    grid: Grid,
    base_ns: u64,
    signals: std::sync::Arc<crate::signals::Signals>,
) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let k = grid.rate().frame_index_nearest(base_ns + pts.nseconds());
        // Always asked, so the schedule knows which frame the encoders reached.
        let splice = signals.frame(k);
        if grid.is_gop_start(k) || splice {
            let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            tee_sink.send_event(event);
        }
        gst::PadProbeReturn::Ok
    });
}

/// An H.264 encoder configured for the grid: no B-frames, no scene-cut IDRs, no IDRs of its own;
/// IDRs come only from the force-key-unit events of the timeline probe.
pub(super) fn make_h264_encoder(
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
