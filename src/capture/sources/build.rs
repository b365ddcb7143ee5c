//! The GStreamer source pipelines: test, v4l2, file and rtsp inputs and a separate audio
//! source, each ending in converters → caps → appsinks that call the [`RawSink`].

use std::path::PathBuf;
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::capture_time::{Lead, capture_time};
use super::pipeline::{AtEos, Built};
use super::sink_drops::{SinkCount, SinkDrops};
use crate::capture::elements;
use crate::config::{AudioInput, Config, InputKind};
use crate::source::RawSink;
use crate::source::count_arrivals;

/// Raw buffers an appsink holds before it drops the oldest (the grid feed never blocks, so
/// this is only reached when the box is overloaded); each loss is counted (`sink_drops.rs`).
const SINK_MAX_BUFFERS: u32 = 4;

fn make(factory: &str) -> Result<gst::Element, String> {
    elements::require(factory).map_err(|e| e.to_string())?;
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("{factory}: {e}"))
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, String> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| e.to_string())
}

/// A pipeline on the system clock in realtime mode: base time + running time of a live buffer
/// is its wall-clock capture time (docs/design/platform.md, *Clocks and timestamps*).
fn new_pipeline(name: &str) -> gst::Pipeline {
    let pipeline = gst::Pipeline::with_name(name);
    let clock = gst::SystemClock::obtain();
    clock.set_property("clock-type", gst::ClockType::Realtime);
    pipeline.use_clock(Some(&clock));
    pipeline
}

#[derive(Clone, Copy)]
enum Media {
    Video,
    Audio,
}

/// What every tail of one source pipeline is built into and delivers to.
struct Tails<'a> {
    pipeline: &'a gst::Pipeline,
    config: &'a Config,
    /// Whether the appsinks sync on the clock (a file plays at its own pace).
    sync: bool,
    drops: &'a SinkDrops,
}

/// converters → caps → appsink that calls `sink`; returns the first element (to link to).
fn tail(t: &Tails, media: Media, sink: Arc<dyn RawSink>) -> Result<gst::Element, String> {
    let config = t.config;
    let (converters, caps): (&[&str], gst::Caps) = match media {
        Media::Video => (
            &["videoconvert", "videoscale"],
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", config.input.width as i32)
                .field("height", config.input.height as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        ),
        Media::Audio => (
            &["audioconvert", "audioresample"],
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("layout", "interleaved")
                .field("rate", config.audio.sample_rate as i32)
                .field("channels", i32::from(config.audio.channels))
                .build(),
        ),
    };
    let mut chain = Vec::new();
    for c in converters {
        chain.push(make(c)?);
    }
    chain.push(capsfilter(caps)?);
    chain.push(appsink(t, media, sink)?.upcast());
    t.pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    Ok(chain.remove(0))
}

/// The appsink at the end of a tail: hands every buffer to `sink` with its capture time W,
/// and counts what it loses (`sink_drops.rs`).
fn appsink(t: &Tails, media: Media, sink: Arc<dyn RawSink>) -> Result<gst_app::AppSink, String> {
    let appsink = gst_app::AppSink::builder()
        .sync(t.sync)
        .max_buffers(SINK_MAX_BUFFERS)
        .drop(true)
        .build();
    appsink.set_property("async", false);
    let pad = appsink
        .static_pad("sink")
        .ok_or("the appsink has no sink pad")?;
    let name = match media {
        Media::Video => "video",
        Media::Audio => "audio",
    };
    let mut count = SinkCount::new(t.drops.clone(), name, count_arrivals(&pad));
    let mut lead = Lead::new();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let w = capture_time(s, &sample, &mut lead);
                if let Some(buffer) = sample.buffer_owned() {
                    match media {
                        Media::Video => sink.video(w, buffer),
                        Media::Audio => sink.audio(w, buffer),
                    }
                    count.handed();
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(appsink)
}

/// Links a decoder's new pads to the video / audio tails by their caps.
fn link_dynamic(decoder: &gst::Element, video: gst::Element, audio: Option<gst::Element>) {
    let (video, audio) = (video.downgrade(), audio.map(|a| a.downgrade()));
    decoder.connect_pad_added(move |_, pad| {
        let name = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default();
        let to = if name.starts_with("video/") {
            video.upgrade()
        } else if name.starts_with("audio/") {
            audio.as_ref().and_then(|a| a.upgrade())
        } else {
            None
        };
        if let Some(sink_pad) = to.and_then(|t| t.static_pad("sink"))
            && !sink_pad.is_linked()
            && let Err(e) = pad.link(&sink_pad)
        {
            log::warn!("input: cannot use the source's {name} stream: {e:?}");
        }
    });
}

pub(super) fn build_input(
    config: &Config,
    sink: Arc<dyn RawSink>,
    drops: &SinkDrops,
) -> Result<Built, String> {
    let input = &config.input;
    let pipeline = new_pipeline(&format!("twincast-input-{}", input.kind.as_str()));
    let with_audio = input.audio == AudioInput::Input;
    let tails = Tails {
        pipeline: &pipeline,
        config,
        sync: input.kind == InputKind::File,
        drops,
    };
    let video_tail = tail(&tails, Media::Video, sink.clone())?;
    let audio_tail = if with_audio {
        Some(tail(&tails, Media::Audio, sink)?)
    } else {
        None
    };
    let mut at_eos = AtEos::End;
    match input.kind {
        InputKind::Test => {
            let src = make("videotestsrc")?;
            src.set_property("is-live", true);
            src.set_property_from_str("pattern", "smpte");
            src.set_property("horizontal-speed", 4i32);
            pipeline.add(&src).map_err(|e| e.to_string())?;
            src.link(&video_tail).map_err(|e| e.to_string())?;
        }
        InputKind::V4l2 => {
            let src = make("v4l2src")?;
            if let Some(dev) = &input.device {
                src.set_property("device", dev);
            }
            pipeline.add(&src).map_err(|e| e.to_string())?;
            src.link(&video_tail).map_err(|e| e.to_string())?;
        }
        InputKind::File | InputKind::Rtsp => {
            let raw = input.uri.clone().unwrap_or_default();
            let uri = if input.kind == InputKind::File {
                let (uri, path) = file_uri(&raw)?;
                at_eos = AtEos::Loop(path);
                uri
            } else {
                raw
            };
            let dec = make("uridecodebin")?;
            dec.set_property("uri", &uri);
            pipeline.add(&dec).map_err(|e| e.to_string())?;
            link_dynamic(&dec, video_tail, audio_tail);
        }
        InputKind::Rtp | InputKind::Udp | InputKind::Srt => {
            return Err(format!(
                "input kind \"{}\" runs on the network front end, not a source pipeline",
                input.kind
            ));
        }
    }
    Ok(Built { pipeline, at_eos })
}

/// A `file` input's path as a URI and a path (the path is checked at every loop).
fn file_uri(uri: &str) -> Result<(String, PathBuf), String> {
    let path = match uri.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if uri.contains("://") => return Err(format!("{uri}: not a file path")),
        None => PathBuf::from(uri),
    };
    let abs = std::fs::canonicalize(&path).map_err(|e| format!("input file {uri}: {e}"))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .map_err(|e| e.to_string())?
        .to_string();
    Ok((uri, abs))
}

pub(super) fn build_audio(
    config: &Config,
    sink: Arc<dyn RawSink>,
    drops: &SinkDrops,
) -> Result<Built, String> {
    let pipeline = new_pipeline("twincast-audio");
    let src = match &config.input.audio {
        AudioInput::Alsa(device) => {
            let src = make("alsasrc")?;
            src.set_property("device", device);
            src
        }
        _ => {
            let src = make("audiotestsrc")?;
            src.set_property("is-live", true);
            src.set_property("volume", 0.2f64);
            src.set_property("freq", 1000.0f64);
            src
        }
    };
    let tails = Tails {
        pipeline: &pipeline,
        config,
        sync: false,
        drops,
    };
    let tail = tail(&tails, Media::Audio, sink)?;
    pipeline.add(&src).map_err(|e| e.to_string())?;
    src.link(&tail).map_err(|e| e.to_string())?;
    Ok(Built {
        pipeline,
        at_eos: AtEos::End,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::capture::sources::SourceStatus;

    /// Counts what the tail hands over.
    #[derive(Default)]
    struct Counting(AtomicU64);

    impl RawSink for Counting {
        fn video(&self, _: u64, _: gst::Buffer) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn audio(&self, _: u64, _: gst::Buffer) {}
    }

    fn config() -> Config {
        let text = "[input]\nkind = \"test\"\nwidth = 64\nheight = 36\naudio = \"none\"\n\
                    [[rendition]]\nname = \"a\"\nwidth = 64\nheight = 36\nbitrate_kbps = 100\n";
        crate::config::parse_str(text, std::path::Path::new("t.toml"))
            .expect("a valid config")
            .config
    }

    /// The base sink discards the buffers before its segment's start without rendering them:
    /// the ledger of the video tail counts them into the source's `buffers_dropped`.
    #[test]
    fn buffers_the_appsink_discards_are_counted() {
        gst::init().expect("GStreamer");
        let config = config();
        let status = Arc::new(Mutex::new(SourceStatus {
            role: "input",
            kind: "test".into(),
            state: "running",
            since_ns: 0,
            last_error: None,
            restarts: 0,
            timing: "arrival",
            counters: None,
            buffers_dropped: 0,
        }));
        let drops = SinkDrops {
            status: status.clone(),
        };
        let counting = Arc::new(Counting::default());
        let pipeline = new_pipeline("sink-drops-test");
        let tails = Tails {
            pipeline: &pipeline,
            config: &config,
            sync: false,
            drops: &drops,
        };
        let first = tail(&tails, Media::Video, counting.clone()).expect("the tail");
        crate::source::test_feed::across_the_segment_start(&pipeline, &first);
        // Buffers 0..10 end before the segment's start (1 s); 10 and 11 are handed over.
        assert_eq!(counting.0.load(Ordering::Relaxed), 2);
        assert_eq!(status.lock().expect("status").buffers_dropped, 10);
    }
}
