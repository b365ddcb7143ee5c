//! The slate: the picture the encoders get while the input is lost (docs/ref/config.md,
//! `[input] slate`).
//!
//! - `builtin`: a card with this box's name, the input that was lost and the UTC time, drawn by
//!   a small GStreamer pipeline at one picture a second (videotestsrc → textoverlay), so the
//!   clock on it moves and it costs next to nothing.
//! - a PNG or JPEG path: decoded once, scaled to the source size.
//!
//! Until the first slate picture exists, and if the slate pipeline cannot be built (a missing
//! font plugin, an unreadable picture), the slate is a plain dark frame: the slate must never
//! be the reason fragments stop.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::config::{Config, InputKind, sanitize_url};

/// The card's background (ARGB): dark blue, far from any test pattern's mean luma.
const CARD_ARGB: u32 = 0xff10_2040;
/// Luma and chroma of the fallback frame (a dark blue close to the card's).
const FALLBACK_YUV: (u8, u8, u8) = (36, 150, 118);

/// The current slate picture (raw I420 at the source size).
pub struct Slate {
    latest: Arc<Mutex<gst::Buffer>>,
    pipeline: Option<gst::Pipeline>,
}

impl Slate {
    /// Starts the slate for `config`'s input. Never fails: problems are logged and the plain
    /// frame stands in.
    pub fn start(config: &Config) -> Slate {
        let (w, h) = (config.input.width, config.input.height);
        let latest = Arc::new(Mutex::new(plain_frame(w, h)));
        let built = if config
            .input
            .slate
            .eq_ignore_ascii_case(crate::config::DEFAULT_SLATE)
        {
            builtin_pipeline(config, latest.clone())
        } else {
            picture_pipeline(&config.input.slate, w, h, latest.clone())
        };
        if let Some(bus) = built.as_ref().ok().and_then(|p| p.bus()) {
            drop_every_message(&bus);
        }
        let pipeline = match built.and_then(|p| {
            p.set_state(gst::State::Playing)
                .map(|_| p)
                .map_err(|e| format!("cannot start: {e}"))
        }) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!(
                    error = e.as_str();
                    "slate {:?}: {e}; a plain dark frame is the slate",
                    config.input.slate
                );
                None
            }
        };
        Slate { latest, pipeline }
    }

    /// The picture to feed for a slate frame (a reference: buffers are refcounted).
    pub fn picture(&self) -> gst::Buffer {
        crate::sync::lock(&self.latest).clone()
    }

    pub fn stop(&self) {
        if let Some(p) = &self.pipeline {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

impl Drop for Slate {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Nobody reads the slate pipeline's bus (it has nothing to act on: without pictures the plain
/// frame stands in), and a bus keeps every posted message until it is popped; so its messages
/// are dropped as they are posted. A sync handler, unlike `set_flushing`, survives the
/// pipeline's NULL → READY change (which clears the flushing flag).
fn drop_every_message(bus: &gst::Bus) {
    bus.set_sync_handler(|_, _| gst::BusSyncReply::Drop);
}

/// A flat I420 frame, laid out as GStreamer lays out I420 at that size (each plane's stride
/// rounded up to 4 bytes): the encoders' caps say I420 with no video meta, so a width whose
/// luma or chroma rows are not a multiple of 4 (426, 1366) must carry that padding, or every
/// element that maps the frame refuses it ("invalid video buffer received").
pub fn plain_frame(width: u32, height: u32) -> gst::Buffer {
    let (y, u, v) = FALLBACK_YUV;
    let Ok(info) =
        gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::I420, width, height)
            .build()
    else {
        // A size GStreamer cannot describe never reaches here (the config bounds it).
        return gst::Buffer::from_mut_slice(vec![y; 0]);
    };
    let mut data = vec![y; info.size()];
    let (offsets, strides) = (info.offset(), info.stride());
    let chroma_rows = height.div_ceil(2) as usize;
    for (plane, value) in [(1, u), (2, v)] {
        let start = offsets[plane];
        let len = strides[plane] as usize * chroma_rows;
        if let Some(rows) = data.get_mut(start..start + len) {
            rows.fill(value);
        }
    }
    gst::Buffer::from_mut_slice(data)
}

/// What the card says was lost: the kind and, without credentials, where it came from.
fn input_description(config: &Config) -> String {
    let input = &config.input;
    let at = match input.kind {
        InputKind::V4l2 => input.device.clone().unwrap_or_default(),
        InputKind::Test => String::new(),
        _ => input.uri.as_deref().map(sanitize_url).unwrap_or_default(),
    };
    format!("{} {at}", input.kind.as_str()).trim().to_string()
}

fn element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        format!(
            "element {factory} is missing (Debian package {})",
            super::elements::package_for(factory)
        )
    })
}

fn i420_caps(width: u32, height: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

/// An appsink that keeps the newest picture; `each` runs after every one.
fn keeping_sink(
    latest: Arc<Mutex<gst::Buffer>>,
    sync: bool,
    each: impl Fn() + Send + Sync + 'static,
) -> gst_app::AppSink {
    let sink = gst_app::AppSink::builder()
        .sync(sync)
        .max_buffers(1)
        .drop(true)
        .build();
    sink.set_property("async", false);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer_owned() {
                    *crate::sync::lock(&latest) = buffer;
                }
                each();
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    sink
}

fn card_text(name: &str, input: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let time = twincast_media::hls::program_date_time(now);
    // "2026-12-01T23:40:05.123Z" → "2026-12-01 23:40:05 UTC"
    let shown = format!("{} UTC", time.get(..19).unwrap_or(&time).replace('T', " "));
    format!("{name}\nINPUT LOST: {input}\n{shown}")
}

fn builtin_pipeline(
    config: &Config,
    latest: Arc<Mutex<gst::Buffer>>,
) -> Result<gst::Pipeline, String> {
    let (w, h) = (config.input.width, config.input.height);
    let pipeline = gst::Pipeline::with_name("twincast-slate");
    let src = element("videotestsrc")?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", "solid-color");
    src.set_property("foreground-color", CARD_ARGB);
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(1, 1))
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let name = config.encoder.name.clone();
    let input = input_description(config);
    let convert = element("videoconvert")?;
    let out_caps = gst::ElementFactory::make("capsfilter")
        .property("caps", i420_caps(w, h))
        .build()
        .map_err(|e| e.to_string())?;
    // Without the text plugin the card is plain: still a slate.
    let text = match element("textoverlay") {
        Ok(t) => {
            t.set_property("text", card_text(&name, &input));
            t.set_property("font-desc", format!("Sans Bold {}", (h / 16).max(8)));
            t.set_property_from_str("halignment", "center");
            t.set_property_from_str("valignment", "center");
            t.set_property_from_str("line-alignment", "center");
            t.set_property("shaded-background", false);
            Some(t)
        }
        Err(e) => {
            log::warn!("slate: {e}; the card has no text");
            None
        }
    };
    let weak = text.as_ref().map(|t| t.downgrade());
    let sink = keeping_sink(latest, false, move || {
        // The next picture shows the next second.
        if let Some(t) = weak.as_ref().and_then(|w| w.upgrade()) {
            t.set_property("text", card_text(&name, &input));
        }
    });
    let mut chain: Vec<gst::Element> = vec![src, caps];
    chain.extend(text);
    chain.extend([convert, out_caps, sink.upcast()]);
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    Ok(pipeline)
}

fn picture_pipeline(
    path: &str,
    w: u32,
    h: u32,
    latest: Arc<Mutex<gst::Buffer>>,
) -> Result<gst::Pipeline, String> {
    if !std::path::Path::new(path).is_file() {
        return Err(format!("no picture at {path}"));
    }
    let decoder = if path.to_ascii_lowercase().ends_with(".png") {
        "pngdec"
    } else {
        "jpegdec"
    };
    let pipeline = gst::Pipeline::with_name("twincast-slate");
    let src = element("filesrc")?;
    src.set_property("location", path);
    let dec = element(decoder)?;
    // One picture is enough: imagefreeze repeats it once a second until the pipeline stops.
    let freeze = element("imagefreeze")?;
    freeze.set_property("is-live", true);
    let convert = element("videoconvert")?;
    let scale = element("videoscale")?;
    let caps = gst::ElementFactory::make("capsfilter")
        .property("caps", i420_caps(w, h))
        .build()
        .map_err(|e| e.to_string())?;
    let rate = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("framerate", gst::Fraction::new(1, 1))
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let sink = keeping_sink(latest, true, || {});
    let chain = [src, dec, freeze, rate, convert, scale, caps, sink.upcast()];
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    Ok(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_frame_is_laid_out_as_the_source_pictures_are() {
        // The grid clock takes a held picture of another size than `i420_bytes` for a
        // picture of another source, and pushes the plain frame instead: at 426×240 a
        // tightly packed count replaced every live picture with the plain frame, and the
        // plain frame itself made videoscale fail ("invalid video buffer received").
        gst::init().unwrap();
        for (w, h) in [(426, 240), (1366, 768), (640, 360), (1280, 720), (3, 3)] {
            let pipeline = gst::parse::launch(&format!(
                "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width={w},height={h} \
                 ! appsink name=sink sync=false"
            ))
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
            let sink = pipeline
                .by_name("sink")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .unwrap();
            pipeline.set_state(gst::State::Playing).unwrap();
            let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(5));
            pipeline.set_state(gst::State::Null).unwrap();
            let source = sample.and_then(|s| s.buffer().map(|b| b.size())).unwrap();
            assert_eq!(plain_frame(w, h).size(), source, "{w}×{h}");
            assert_eq!(super::super::encoders::i420_bytes(w, h), source, "{w}×{h}");
        }
    }

    #[test]
    fn plain_frame_is_i420_sized() {
        gst::init().unwrap();
        let b = plain_frame(320, 180);
        assert_eq!(b.size(), 320 * 180 * 3 / 2);
        // GStreamer's I420 layout: rows padded to 4 bytes, luma rows to an even count (3×3:
        // luma 4×4, chroma 4×2 each).
        let odd = plain_frame(3, 3);
        assert_eq!(odd.size(), 16 + 2 * 8);
        // 426×240: luma rows of 428, chroma rows of 216.
        let b = plain_frame(426, 240);
        assert_eq!(b.size(), 428 * 240 + 2 * 216 * 120);
        let map = b.map_readable().unwrap();
        assert_eq!(map[428 * 240], FALLBACK_YUV.1);
        assert_eq!(map[428 * 240 + 216 * 120], FALLBACK_YUV.2);
        assert_eq!(map[428 * 240 - 1], FALLBACK_YUV.0);
    }

    #[test]
    fn the_slate_pipeline_bus_keeps_no_messages() {
        gst::init().unwrap();
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/twincast.toml");
        let text = std::fs::read_to_string(&path).expect("shipped config");
        let mut config = crate::config::parse_str(&text, &path)
            .expect("valid")
            .config;
        config.input.slate = crate::config::DEFAULT_SLATE.to_string();
        (config.input.width, config.input.height) = (64, 36);
        let slate = Slate::start(&config);
        let Some(pipeline) = slate.pipeline.clone() else {
            panic!("the builtin slate did not start (videotestsrc missing?)");
        };
        let bus = pipeline.bus().expect("a pipeline has a bus");
        // On the way to PLAYING every element posts its state changes.
        let t0 = std::time::Instant::now();
        while pipeline.current_state() != gst::State::Playing
            && t0.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(pipeline.current_state(), gst::State::Playing);
        // The last state-change messages of the move to PLAYING.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!bus.have_pending(), "messages pile up on the slate's bus");
        assert!(bus.pop().is_none());
        slate.stop();
    }

    #[test]
    fn card_names_the_box_and_the_input() {
        let t = card_text("hall-a", "rtp rtp://0.0.0.0:5004");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "hall-a");
        assert_eq!(lines[1], "INPUT LOST: rtp rtp://0.0.0.0:5004");
        assert!(lines[2].ends_with(" UTC") && lines[2].len() == 23, "{t}");
    }
}
