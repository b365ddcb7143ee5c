//! `file` input: a looped file decoded in its own pipeline and handed to the capture pipeline
//! through live appsrcs.
//!
//! The decoding pipeline (uridecodebin → convert → clocksync → appsink) runs at real-time pace
//! and seeks back to the start at end of stream; the capture pipeline only ever sees a live
//! source whose buffers are stamped with the capture clock when they arrive (`do-timestamp`),
//! exactly like a camera. Seeks and restarts of the file never flush the encoders.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Raw buffers the appsrc may hold before it drops the oldest (a stalled encoder must not make
/// the decoder pile up frames).
const APPSRC_MAX_BUFFERS: u64 = 8;
/// Pause before restarting the file pipeline after an error.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The decoding side of a `file` input.
pub struct FileInput {
    pipeline: gst::Pipeline,
    stop: Arc<Mutex<bool>>,
}

/// A live appsrc standing in for the file's video or audio in the capture pipeline.
pub fn live_appsrc() -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .is_live(true)
        .do_timestamp(true)
        .format(gst::Format::Time)
        .max_buffers(APPSRC_MAX_BUFFERS)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}

impl FileInput {
    /// Builds the decoding pipeline for `uri`, feeding `video` and (if given) `audio`.
    pub fn new(
        uri: &str,
        video: gst_app::AppSrc,
        audio: Option<gst_app::AppSrc>,
    ) -> Result<FileInput, String> {
        let pipeline = gst::Pipeline::with_name("twincast-file");
        let dec = gst::ElementFactory::make("uridecodebin")
            .property("uri", uri)
            .build()
            .map_err(|e| e.to_string())?;
        pipeline.add(&dec).map_err(|e| e.to_string())?;
        let weak = pipeline.downgrade();
        dec.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else {
                return;
            };
            let name = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_default();
            let result = if name.starts_with("video/") {
                branch(&pipeline, pad, &["videoconvert"], video.clone())
            } else if let (true, Some(audio)) = (name.starts_with("audio/"), &audio) {
                branch(
                    &pipeline,
                    pad,
                    &["audioconvert", "audioresample"],
                    audio.clone(),
                )
            } else {
                Ok(())
            };
            if let Err(e) = result {
                log::error!("file input: cannot use the file's {name} stream: {e}");
            }
        });
        Ok(FileInput {
            pipeline,
            stop: Arc::new(Mutex::new(false)),
        })
    }

    /// Starts decoding, and a thread that loops the file and restarts it after errors.
    pub fn start(&self) -> Result<(), String> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        let Some(bus) = self.pipeline.bus() else {
            return Err("the file pipeline has no bus".into());
        };
        let pipeline = self.pipeline.downgrade();
        let stop = self.stop.clone();
        std::thread::Builder::new()
            .name("file-input".into())
            .spawn(move || {
                for msg in bus.iter_timed(gst::ClockTime::NONE) {
                    if stop.lock().map(|s| *s).unwrap_or(true) {
                        return;
                    }
                    let Some(pipeline) = pipeline.upgrade() else {
                        return;
                    };
                    match msg.view() {
                        gst::MessageView::Eos(_) => {
                            if let Err(e) =
                                pipeline.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
                            {
                                log::warn!("file input: cannot loop back to the start: {e}");
                            }
                        }
                        gst::MessageView::Error(e) => {
                            log::warn!(
                                "file input: {} — restarting in {RESTART_DELAY:?}",
                                e.error()
                            );
                            let _ = pipeline.set_state(gst::State::Null);
                            std::thread::sleep(RESTART_DELAY);
                            let _ = pipeline.set_state(gst::State::Playing);
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    pub fn stop(&self) {
        if let Ok(mut s) = self.stop.lock() {
            *s = true;
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            // Wakes the loop thread so it sees the stop flag.
            let _ = bus.post(gst::message::Application::new(gst::Structure::new_empty(
                "stop",
            )));
        }
    }
}

impl Drop for FileInput {
    fn drop(&mut self) {
        self.stop();
    }
}

/// decoded pad → converters → clocksync (real-time pace) → appsink that pushes into `to`.
fn branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    converters: &[&str],
    to: gst_app::AppSrc,
) -> Result<(), String> {
    let mut chain = Vec::new();
    for name in converters.iter().copied().chain(["clocksync"]) {
        chain.push(
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| format!("{name}: {e}"))?,
        );
    }
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(4)
        .build();
    let mut last_caps: Option<gst::Caps> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(caps) = sample.caps()
                    && last_caps.as_ref().map(|c| c.as_ref()) != Some(caps)
                {
                    to.set_caps(Some(&caps.to_owned()));
                    last_caps = Some(caps.to_owned());
                }
                let Some(mut buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                {
                    let b = buffer.make_mut();
                    // The capture pipeline stamps it with its own clock on arrival.
                    b.set_pts(gst::ClockTime::NONE);
                    b.set_dts(gst::ClockTime::NONE);
                }
                // Flushing or not linked yet: the frame is simply not captured.
                let _ = to.push_buffer(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    chain.push(sink.upcast());
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    for el in &chain {
        el.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sink_pad = chain[0]
        .static_pad("sink")
        .ok_or("converter without a sink pad")?;
    pad.link(&sink_pad).map_err(|e| format!("{e:?}"))?;
    Ok(())
}
