//! Captioned test feeds and an independent reader of their captions.
//!
//! [`captioned_pattern_h264`] makes an H.264 elementary stream with GStreamer whose pictures
//! carry CEA-608 pop-on captions on CC1 (`TWINCAST <s>` shown from each even second `s`) in
//! ATSC A/53 SEI (x264enc writes a `VideoCaptionMeta` of type CEA-708 raw as a
//! `user_data_registered_itu_t_t35` SEI); [`captioned_ts`] turns it into the MPEG-TS feed an
//! operator's ffmpeg would send. [`caption_cues`] reads captions back with ffmpeg's own
//! decoder (lavfi `movie=…[out0+subcc]`, then SRT), never with our code.

use std::path::{Path, PathBuf};

use super::run;

/// Frames per second of the captioned feeds.
pub const FPS: u32 = 30;
pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 360;

/// The luma of source picture `n` (0-based): a decoded frame tells which picture it was.
pub fn pattern_luma(n: u64) -> u8 {
    ((8 * n) % 256) as u8
}

/// A 7-bit value with the odd-parity bit (bit 7) CEA-608 requires.
pub fn odd_parity(byte: u8) -> u8 {
    let b = byte & 0x7f;
    if b.count_ones().is_multiple_of(2) {
        b | 0x80
    } else {
        b
    }
}

// CEA-608 control codes of data channel 1 (CC1 in field 1), without parity.
/// Resume caption loading (pop-on).
const RCL: [u8; 2] = [0x14, 0x20];
/// Erase non-displayed memory.
const ENM: [u8; 2] = [0x14, 0x2e];
/// Erase displayed memory.
const EDM: [u8; 2] = [0x14, 0x2c];
/// End of caption: swap memories (shows the loaded caption).
const EOC: [u8; 2] = [0x14, 0x2f];
/// Preamble address code: row 15, white, indent 0.
const PAC_ROW15: [u8; 2] = [0x14, 0x70];
/// A null pair (padding).
const NULL: [u8; 2] = [0x00, 0x00];

/// The text of the caption shown from second `s`.
pub fn caption_text(s: u32) -> String {
    format!("TWINCAST {s}")
}

/// What one caption costs before its EOC: RCL, ENM and PAC doubled, then the characters two
/// per pair.
fn load_sequence(text: &str) -> Vec<[u8; 2]> {
    let mut pairs = vec![RCL, RCL, ENM, ENM, PAC_ROW15, PAC_ROW15];
    for chunk in text.as_bytes().chunks(2) {
        pairs.push([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
    }
    pairs
}

/// The frame whose picture carries the (first) EOC of the caption of second `s`: the first
/// frame of that second, except at second 0, where loading the caption (RCL, ENM, PAC
/// doubled, five pairs of characters: 11 frames at one pair a frame) has to come first, so
/// the caption shows from frame 11 (0.367 s).
pub fn display_frame(s: u32) -> u64 {
    let load = load_sequence(&caption_text(s)).len() as u64;
    (u64::from(s) * u64::from(FPS)).max(load)
}

/// The caption schedule of a feed of `seconds`: (the time the caption shows, its text), a
/// caption from each even second whose EOC (sent twice) fits in the feed. Each is erased
/// (EDM, twice) at the start of the next second; the next one is loaded in the last 11
/// frames of that odd second.
pub fn caption_schedule(seconds: u32) -> Vec<(f64, String)> {
    let frames = u64::from(seconds) * u64::from(FPS);
    (0..seconds)
        .step_by(2)
        .filter(|&s| display_frame(s) + 1 < frames)
        .map(|s| (display_frame(s) as f64 / f64::from(FPS), caption_text(s)))
        .collect()
}

/// The CEA-608 field-1 pair (without parity) each frame of a feed of `seconds` carries.
pub fn cc_pairs(seconds: u32) -> Vec<[u8; 2]> {
    let frames = u64::from(seconds) * u64::from(FPS);
    let mut pairs = vec![NULL; frames as usize];
    let mut put = |at: u64, pair: [u8; 2]| {
        if let Some(slot) = pairs.get_mut(at as usize) {
            *slot = pair;
        }
    };
    for s in (0..seconds).step_by(2) {
        let shown = display_frame(s);
        if shown + 1 >= frames {
            continue;
        }
        let load = load_sequence(&caption_text(s));
        let first = shown - load.len() as u64;
        for (i, pair) in load.into_iter().enumerate() {
            put(first + i as u64, pair);
        }
        put(shown, EOC);
        put(shown + 1, EOC);
        let erase = u64::from(s + 1) * u64::from(FPS);
        put(erase, EDM);
        put(erase + 1, EDM);
    }
    pairs
}

/// The `cc_data` (CEA-708 raw triplets) of one frame: one valid CEA-608 field-1 pair
/// (marker bits 11111, cc_valid 1, cc_type 00: 0xFC) with odd parity.
pub fn cc_data(pair: [u8; 2]) -> [u8; 3] {
    [0xfc, odd_parity(pair[0]), odd_parity(pair[1])]
}

/// Writes `dir/captioned.h264`: an H.264 Annex B stream of `seconds` at 640×360, 30 fps, a GOP
/// a second, no B-frames, made with GStreamer (appsrc → x264enc → h264parse → filesink).
/// Picture N is flat with luma [`pattern_luma`]`(N)` and chroma 128; each carries the cc_data
/// of [`cc_pairs`] as a `VideoCaptionMeta` (CEA-708 raw), which x264enc writes as an A/53 SEI.
pub fn captioned_pattern_h264(dir: &Path, seconds: u32) -> PathBuf {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use gstreamer_app as gst_app;
    use gstreamer_video as gst_video;

    let path = dir.join("captioned.h264");
    gst::init().expect("GStreamer initialises");
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src is-live=false format=time block=true \
         caps=video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1 \
         ! x264enc speed-preset=ultrafast key-int-max={FPS} bframes=0 tune=zerolatency \
         ! h264parse ! video/x-h264,stream-format=byte-stream ! filesink name=sink"
    ))
    .expect("the captioned-pattern pipeline parses (x264enc: gstreamer1.0-plugins-ugly)")
    .downcast::<gst::Pipeline>()
    .expect("gst::parse::launch of several elements makes a pipeline");
    pipeline
        .by_name("sink")
        .expect("the pipeline has its filesink")
        .set_property("location", path.to_str().expect("a UTF-8 test directory"));
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .expect("the pipeline has its appsrc");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, WIDTH, HEIGHT)
        .fps(gst::Fraction::new(FPS as i32, 1))
        .build()
        .expect("640×360 I420 video info");
    let bus = pipeline.bus().expect("a pipeline has a bus");
    pipeline
        .set_state(gst::State::Playing)
        .expect("the captioned-pattern pipeline plays");

    let luma_end = info.offset()[0] + info.stride()[0] as usize * HEIGHT as usize;
    for (n, pair) in cc_pairs(seconds).into_iter().enumerate() {
        let n = n as u64;
        let mut bytes = vec![128u8; info.size()];
        bytes[info.offset()[0]..luma_end].fill(pattern_luma(n));
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let buffer = buffer.get_mut().expect("a new buffer is writable");
            let pts = gst::ClockTime::SECOND
                .mul_div_floor(n, u64::from(FPS))
                .expect("a frame time");
            let end = gst::ClockTime::SECOND
                .mul_div_floor(n + 1, u64::from(FPS))
                .expect("a frame time");
            buffer.set_pts(pts);
            buffer.set_duration(end - pts);
            gst_video::VideoCaptionMeta::add(
                buffer,
                gst_video::VideoCaptionType::Cea708Raw,
                &cc_data(pair),
            );
        }
        if let Err(e) = src.push_buffer(buffer) {
            let error = bus
                .pop_filtered(&[gst::MessageType::Error])
                .map(|m| format!("{m:?}"));
            let _ = pipeline.set_state(gst::State::Null);
            panic!("pushing picture {n} of the captioned pattern: {e:?} ({error:?})");
        }
    }
    src.end_of_stream()
        .expect("end of stream on the captioned-pattern appsrc");
    let message = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match message.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!(
            "the captioned-pattern pipeline failed: {} ({:?})",
            e.error(),
            e.debug()
        ),
        _ => panic!("the captioned-pattern pipeline did not finish within 120 s"),
    }
    path
}

/// Writes `dir/captioned.ts`: [`captioned_pattern_h264`] re-encoded by ffmpeg's libx264 (which
/// keeps the A/53 captions, `-a53cc 1` by default; GOP 30, no scene cuts) with a 440 Hz AAC
/// tone, `seconds` long, as MPEG-TS: a TS feed made with ffmpeg that carries CEA-608 captions.
pub fn captioned_ts(dir: &Path, seconds: u32) -> PathBuf {
    let h264 = captioned_pattern_h264(dir, seconds);
    let path = dir.join("captioned.ts");
    let seconds = seconds.to_string();
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-y",
            "-framerate",
            "30",
            "-i",
            h264.to_str().expect("a UTF-8 test directory"),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-t",
            &seconds,
            "-f",
            "mpegts",
            path.to_str().expect("a UTF-8 test directory"),
        ],
    );
    assert!(ok, "ffmpeg could not make {}: {err}", path.display());
    path
}

/// Whether ffprobe says the first video stream of `path` carries closed captions
/// (`closed_captions=1`). ffprobe learns that only by decoding pictures: with `-show_streams`
/// alone it says `closed_captions=0` even for this feed, so this decodes every frame
/// (`-count_frames`).
pub fn has_closed_captions(path: &Path) -> bool {
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_streams",
            path.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(ok, "ffprobe could not read {}: {err}", path.display());
    out.lines().any(|l| l.trim() == "closed_captions=1")
}

/// `value` escaped for one level of FFmpeg's filter-graph syntax: every character but
/// `[A-Za-z0-9/._-]` behind a backslash (`av_get_token` takes any escaped character
/// literally).
fn ffmpeg_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The lavfi graph `movie=<path><rest>` for any path: the file name is escaped once as a
/// filter option value (`:` `'` `\`) and once more as part of the graph (`,` `;` `[` `]` and
/// the first level's backslashes). A relative path is made absolute (`a:b.ts` would otherwise
/// name a protocol).
pub fn movie_graph(path: &Path, rest: &str) -> String {
    let path = std::path::absolute(path).expect("an absolute path");
    let path = path.to_str().expect("a UTF-8 path");
    format!("movie={}{rest}", ffmpeg_escape(&ffmpeg_escape(path)))
}

/// SRT `HH:MM:SS,mmm` in seconds.
fn srt_time(t: &str) -> Option<f64> {
    let (hms, ms) = t.trim().split_once(',')?;
    let mut parts = hms.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    let ms: f64 = ms.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s + ms / 1000.0)
}

/// Caption text without SRT/ASS markup (`<font …>`, `{\an7}`), lines joined with `\n`.
fn plain_text(lines: &[&str]) -> String {
    let mut out = Vec::new();
    for line in lines {
        let mut text = String::new();
        let mut depth_angle = false;
        let mut depth_brace = false;
        for c in line.chars() {
            match c {
                '<' if !depth_brace => depth_angle = true,
                '>' if depth_angle => depth_angle = false,
                '{' if !depth_angle => depth_brace = true,
                '}' if depth_brace => depth_brace = false,
                _ if !depth_angle && !depth_brace => text.push(c),
                _ => {}
            }
        }
        out.push(text.trim().to_string());
    }
    out.join("\n")
}

/// Parses SRT into (start seconds, text) cues, in the file's order.
pub fn parse_srt(srt: &str) -> Vec<(f64, String)> {
    let srt = srt.replace("\r\n", "\n");
    let mut cues = Vec::new();
    for block in srt.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        let Some(at) = lines.iter().position(|l| l.contains("-->")) else {
            continue;
        };
        let Some(start) = lines[at].split("-->").next().and_then(srt_time) else {
            continue;
        };
        cues.push((start, plain_text(&lines[at + 1..])));
    }
    cues
}

/// The CEA-608 captions (first field, CC1 in our feeds) of the video of `path` (MPEG-TS, or
/// fMP4: an init segment and media segments in one file) as ffmpeg reads them: lavfi
/// `movie=<path>[out0+subcc]`, its caption stream (`0:1`) written as SRT (the file's own
/// text, `<font face="Monospace">{\an7}TWINCAST 2</font>`, comes back as `TWINCAST 2`).
/// Starts are seconds from the start of the input as ffmpeg sees it (ffmpeg without `-copyts`
/// takes that off: for the TS of [`captioned_ts`], its first video frame). ffmpeg's decoder
/// (buffered mode) times a pop-on caption from the EOC that shows it and emits it at the next
/// EOC or EDM (or at the end of the input).
pub fn caption_cues(path: &Path) -> Vec<(f64, String)> {
    let graph = movie_graph(path, "[out0+subcc]");
    let (ok, out, err) = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &graph,
            "-map",
            "0:1",
            "-f",
            "srt",
            "-",
        ],
    );
    assert!(
        ok,
        "ffmpeg could not read the captions of {}: {err}",
        path.display()
    );
    parse_srt(&out)
}

/// The mean luma (signalstats YAVG) of each decoded video frame of `path`, in presentation
/// order (ffprobe of lavfi `movie=<path>,signalstats`).
pub fn decoded_lumas(path: &Path) -> Vec<f64> {
    let graph = movie_graph(path, ",signalstats");
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &graph,
            "-show_entries",
            "frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ],
    );
    assert!(ok, "ffprobe could not decode {}: {err}", path.display());
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}
