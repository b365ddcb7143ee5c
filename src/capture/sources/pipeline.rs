//! One life of a GStreamer source pipeline: play it, watch its bus until stopped, an error or
//! the end of the stream (a looped file seeks back to its start while the file is there).

use std::path::PathBuf;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::supervisor::{POLL, RunOnce, SourceLife};

/// What to do at the end of the stream.
pub(super) enum AtEos {
    /// A looped file: seek back to the start while the file is there.
    Loop(PathBuf),
    /// The source ended: an error, so the supervisor rebuilds it.
    End,
}

pub(super) struct Built {
    pub(super) pipeline: gst::Pipeline,
    pub(super) at_eos: AtEos,
}

/// Builds one life's pipeline; its appsinks count their losses into the life's source
/// ([`SourceLife::sink_drops`]).
pub(super) type Builder = Box<dyn Fn(&SourceLife) -> Result<Built, String> + Send + 'static>;

/// A GStreamer source pipeline as a [`RunOnce`].
pub(super) fn pipeline_life(build: Builder) -> RunOnce {
    Box::new(move |life: &SourceLife| run_once(&build, life))
}

/// One life of a source pipeline: Ok when stopped on request, Err with the reason otherwise.
fn run_once(build: &Builder, life: &SourceLife) -> Result<(), String> {
    let built = build(life)?;
    let pipeline = &built.pipeline;
    let bus = pipeline.bus().ok_or("the source pipeline has no bus")?;
    let result = run_pipeline(&built, &bus, life);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run_pipeline(built: &Built, bus: &gst::Bus, life: &SourceLife) -> Result<(), String> {
    let pipeline = &built.pipeline;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus.
        let reason = bus
            .timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Error],
            )
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(error_text(&m, e)),
                _ => None,
            })
            .unwrap_or_else(|| "the source pipeline cannot start".to_string());
        return Err(reason);
    }
    let mut running = false;
    while !life.stopped() {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(POLL.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => return Err(error_text(&msg, e)),
            gst::MessageView::Eos(_) => match &built.at_eos {
                AtEos::Loop(path) if path.is_file() => {
                    if let Err(e) = pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    ) {
                        return Err(format!("cannot loop back to the start: {e}"));
                    }
                }
                AtEos::Loop(path) => {
                    return Err(format!("input file {} disappeared", path.display()));
                }
                AtEos::End => return Err("the input ended (end of stream)".to_string()),
            },
            gst::MessageView::StateChanged(s)
                if !running
                    && s.current() == gst::State::Playing
                    && msg.src() == Some(pipeline.upcast_ref()) =>
            {
                running = true;
                life.running();
            }
            gst::MessageView::Warning(w) => {
                log::debug!(
                    "{} source {}: GStreamer warning: {}",
                    life.role,
                    life.kind,
                    w.error()
                );
            }
            // What a network source is doing ("Connecting to rtsp://…", "Retrieving server
            // options"): the steps a technician follows when a camera will not come up.
            // The text carries the URI as configured, password included: the logger masks
            // it like every registered secret (src/secrets.rs).
            gst::MessageView::Progress(p) => {
                let (_, code, text) = p.get();
                log::debug!("{} source {}: {code}: {text}", life.role, life.kind);
            }
            _ => {}
        }
    }
    Ok(())
}

fn error_text(msg: &gst::Message, e: &gst::message::Error) -> String {
    let src = msg
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{src}: {}", e.error())
}
