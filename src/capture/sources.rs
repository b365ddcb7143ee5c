//! Sources: each input is its own GStreamer pipeline that decodes and normalises (I420 at the
//! `[input]` size, S16LE at the `[audio]` rate and channels) and ends in appsinks that hand the
//! media to a [`RawSink`] with its capture time W.
//!
//! Each source pipeline runs under a supervisor (`supervise` around `run_once`, the shape of
//! docs/ref/status.md's destinations): an error, an end of stream or a pipeline that cannot
//! start ends `run_once`; the supervisor records `last_error`, waits a backoff (0.5 s doubling
//! to 5 s, to 1 s for `rtsp` whose server may come back any moment; back to 0.5 s after a run
//! of 10 s) and builds the pipeline again. Nothing a source does reaches the encoders except
//! missing pictures, which the grid feed turns into the slate.
//!
//! ```text
//! test:  videotestsrc ──────────────────────────┐
//! v4l2:  v4l2src ───────────────────────────────┤
//! file:  uridecodebin (looped by seeking) ──────┤→ videoconvert → videoscale → I420 W×H → appsink
//! rtsp:  uridecodebin ──────────────────────────┘
//! audio: (the input's decoder | audiotestsrc | alsasrc) → audioconvert → audioresample → S16LE → appsink
//!
//! rtp, udp, srt: the network front end in Rust (src/input/mod.rs: sockets or srtsrc → RTP/TS
//!        front end → appsrc decoders → RawSink), supervised the same way (`network_life`)
//! ```
//!
//! A network source's life ends with an error when its decoders or its SRT pipeline report one
//! (`counters().last_error`); a feed that merely stops sending keeps the source running (the
//! grid feed shows the slate) and its pictures are live again as soon as they come back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Serialize;

use super::elements;
use super::source::{RawSink, Timing};
use crate::config::{AudioInput, Config, InputKind};
use crate::input::{InputCounters, NetworkSource};

/// First wait after a failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between attempts for a source that connects to a server (`rtsp`): a refused
/// connect costs the server nothing, and a camera or server that comes back is on air within
/// this wait plus its SETUP/PLAY and first keyframe instead of up to [`MAX_BACKOFF`]
/// (docs/guide/troubleshooting.md "source in backoff").
pub const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// A run this long resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(10);
/// The same error again within this long is logged at debug level (`last_error` and `restarts`
/// in `/status` still show every attempt); a new error, or the same one after this long, is a
/// warning again. A server that is away for a day does not write a warning every second.
pub const REPEAT_WARN: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its stop flag while waiting.
const POLL: Duration = Duration::from_millis(100);
/// A capture time further than this from the system clock is not believed (a restarted
/// stream's timestamps): the arrival time stands in.
const MAX_CAPTURE_SKEW_NS: u64 = 2_000_000_000;
/// Raw buffers an appsink holds before it drops (the grid feed never blocks, so this is only
/// reached when the box is overloaded).
const SINK_MAX_BUFFERS: u32 = 4;

/// What `/status` shows of one source (`input.sources`).
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// `input` (the `[input]` source), `backup` (`[input.backup]`) or `audio` (a separate
    /// audio source).
    pub role: &'static str,
    pub kind: String,
    /// `starting`, `running`, `backoff` or `stopped`.
    pub state: &'static str,
    /// Since when (ns since the epoch).
    pub since_ns: u64,
    pub last_error: Option<String>,
    /// Times the pipeline was rebuilt after a failure.
    pub restarts: u64,
    /// How W is taken (design §5, `input.timing`): `arrival`, `rtcp`, `pts`, or `pending`
    /// while a network input has not anchored its feed yet.
    pub timing: &'static str,
    /// A network input's front-end counters, summed over the source's lives (`null` for the
    /// other kinds).
    pub counters: Option<NetworkCounters>,
}

/// `input.timing` of a network input that has not anchored its feed yet.
pub const TIMING_PENDING: &str = "pending";

/// What `/status` and `/metrics` show of a network input's front end and decoders
/// (docs/ref/control.md, `input.counters`). Counters only grow: a rebuilt source adds its
/// counts to those of the lives before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetworkCounters {
    pub datagrams: u64,
    pub bytes: u64,
    /// RTP packets never received (sequence gaps not filled within `latency`).
    pub lost: u64,
    /// RTP packets put back in order.
    pub reordered: u64,
    pub duplicated: u64,
    /// RTP packets that came after their slot was released.
    pub late: u64,
    pub sender_restarts: u64,
    pub rtcp_reports: u64,
    /// Datagrams or TS packets dropped as malformed (RTP, RTCP, TS).
    pub malformed: u64,
    /// MPEG-TS continuity-counter errors.
    pub cc_errors: u64,
    pub pcr_discontinuities: u64,
    pub pts_discontinuities: u64,
    pub scte35_sections: u64,
    /// Elementary-stream units dropped (no PTS, before the first keyframe, queue full).
    pub units_dropped: u64,
    pub reanchors: u64,
    /// Decoded pictures handed to the grid feed.
    pub pictures: u64,
    /// Units dropped because a decoder was behind.
    pub decoder_overflow: u64,
    pub decoder_errors: u64,
}

impl NetworkCounters {
    fn from_input(c: &InputCounters) -> Self {
        let f = &c.front;
        NetworkCounters {
            datagrams: f.datagrams,
            bytes: f.bytes,
            lost: f.lost,
            reordered: f.reordered,
            duplicated: f.duplicated,
            late: f.late,
            sender_restarts: f.sender_restarts,
            rtcp_reports: f.rtcp_reports,
            malformed: f.malformed,
            cc_errors: f.cc_errors,
            pcr_discontinuities: f.pcr_discontinuities,
            pts_discontinuities: f.pts_discontinuities,
            scte35_sections: f.scte35_sections,
            units_dropped: f.units_dropped,
            reanchors: f.reanchors,
            pictures: c.pictures,
            decoder_overflow: c.decoder_overflow,
            decoder_errors: c.decoder_errors,
        }
    }

    /// Field by field sum (the lives before plus the current one).
    fn plus(self, o: NetworkCounters) -> Self {
        NetworkCounters {
            datagrams: self.datagrams + o.datagrams,
            bytes: self.bytes + o.bytes,
            lost: self.lost + o.lost,
            reordered: self.reordered + o.reordered,
            duplicated: self.duplicated + o.duplicated,
            late: self.late + o.late,
            sender_restarts: self.sender_restarts + o.sender_restarts,
            rtcp_reports: self.rtcp_reports + o.rtcp_reports,
            malformed: self.malformed + o.malformed,
            cc_errors: self.cc_errors + o.cc_errors,
            pcr_discontinuities: self.pcr_discontinuities + o.pcr_discontinuities,
            pts_discontinuities: self.pts_discontinuities + o.pts_discontinuities,
            scte35_sections: self.scte35_sections + o.scte35_sections,
            units_dropped: self.units_dropped + o.units_dropped,
            reanchors: self.reanchors + o.reanchors,
            pictures: self.pictures + o.pictures,
            decoder_overflow: self.decoder_overflow + o.decoder_overflow,
            decoder_errors: self.decoder_errors + o.decoder_errors,
        }
    }
}

pub type SharedStatus = Arc<Mutex<SourceStatus>>;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn set_state(status: &SharedStatus, state: &'static str) {
    if let Ok(mut s) = status.lock()
        && s.state != state
    {
        s.state = state;
        s.since_ns = now_ns();
    }
}

/// What to do at the end of the stream.
enum AtEos {
    /// A looped file: seek back to the start while the file is there.
    Loop(PathBuf),
    /// The source ended: an error, so the supervisor rebuilds it.
    End,
}

struct Built {
    pipeline: gst::Pipeline,
    at_eos: AtEos,
}

type Builder = Box<dyn Fn() -> Result<Built, String> + Send + 'static>;

/// What one life (`run_once`) of a source sees of its supervisor.
pub struct SourceLife<'a> {
    stop: &'a AtomicBool,
    status: &'a SharedStatus,
    after_failure: bool,
    role: &'a str,
    kind: &'a str,
}

impl SourceLife<'_> {
    /// The supervisor wants the source to end: return `Ok(())` soon.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The source runs (it receives or decodes): `state = "running"`.
    pub fn running(&self) {
        set_state(self.status, "running");
        if self.after_failure {
            log::info!(state = "running"; "{} source {}: running again", self.role, self.kind);
        }
    }

    /// How the source takes W, once it knows (`None`: not yet, `input.timing = "pending"`).
    pub fn set_timing(&self, timing: Option<Timing>) {
        let text = timing.map_or(TIMING_PENDING, Timing::as_str);
        if let Ok(mut s) = self.status.lock()
            && s.timing != text
        {
            if timing.is_some() {
                log::info!(timing = text; "{} source {}: timing {text}", self.role, self.kind);
            }
            s.timing = text;
        }
    }

    /// A network source's counters (already summed over its lives).
    pub fn set_counters(&self, counters: NetworkCounters) {
        if let Ok(mut s) = self.status.lock() {
            s.counters = Some(counters);
        }
    }
}

/// One life of a source: hand media to its [`RawSink`] until [`SourceLife::stopped`] (then
/// `Ok`) or a failure (`Err` with a reason an operator can act on; it becomes `last_error`).
/// Any source — a GStreamer pipeline here, the RTP/MPEG-TS front end in Rust — runs under the
/// same supervisor with [`spawn_source`].
pub type RunOnce = Box<dyn FnMut(&SourceLife) -> Result<(), String> + Send + 'static>;

/// A supervised source; stopping joins its thread (and its pipeline goes to NULL).
pub struct Supervised {
    pub status: SharedStatus,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The elements the sources of `config` need: missing ones are a start-up error (exit 69).
pub fn required_elements(config: &Config) -> Vec<&'static str> {
    let mut v = vec![
        "videoconvert",
        "videoscale",
        "appsink",
        "audioconvert",
        "audioresample",
    ];
    let kinds =
        std::iter::once(config.input.kind).chain(config.input.backup.as_ref().map(|b| b.kind));
    for kind in kinds {
        v.extend(match kind {
            InputKind::Test => &["videotestsrc"][..],
            InputKind::V4l2 => &["v4l2src"][..],
            InputKind::File | InputKind::Rtsp => &["uridecodebin"][..],
            // src/input/decode.rs (and srt.rs): appsrc → parse → decode.
            InputKind::Rtp | InputKind::Udp => NETWORK_ELEMENTS,
            InputKind::Srt => &[
                "srtsrc",
                "appsrc",
                "h264parse",
                "avdec_h264",
                "aacparse",
                "avdec_aac",
            ][..],
        });
    }
    match config.input.audio {
        AudioInput::Test => v.push("audiotestsrc"),
        AudioInput::Alsa(_) => v.push("alsasrc"),
        AudioInput::None | AudioInput::Input => {}
    }
    v
}

/// An SRT connection that delivered data and then nothing for this long is rebuilt: GStreamer's
/// srtsrc (1.22) neither reports a peer that went away nor accepts a new caller after one
/// (measured with srt-live-transmit), so a listener would stay deaf to the sender's reconnect.
pub const SRT_IDLE: Duration = Duration::from_secs(2);

/// The elements of the network front end's decoders (src/input/decode.rs).
const NETWORK_ELEMENTS: &[&str] = &["appsrc", "h264parse", "avdec_h264", "aacparse", "avdec_aac"];

/// Whether a kind runs on the network front end in Rust (src/input/).
fn is_network(kind: InputKind) -> bool {
    matches!(kind, InputKind::Rtp | InputKind::Udp | InputKind::Srt)
}

/// Starts the `[input]` source (with its audio when `audio = "input"`).
pub fn start_input(config: &Config, sink: Arc<dyn RawSink>) -> Supervised {
    start_role("input", config.clone(), sink)
}

/// A supervised source of `role` for `config.input`: the network front end for `rtp`, `udp`
/// and `srt`, a GStreamer source pipeline for the others.
fn start_role(role: &'static str, config: Config, sink: Arc<dyn RawSink>) -> Supervised {
    let kind = config.input.kind;
    if is_network(kind) {
        return spawn_source(
            role,
            kind.as_str().to_string(),
            None,
            network_life(config, sink),
        );
    }
    let builder: Builder = Box::new(move || build_input(&config, sink.clone()));
    spawn_source(
        role,
        kind.as_str().to_string(),
        Some(Timing::Arrival),
        pipeline_life(builder),
    )
}

/// Starts the `[input.backup]` source, if the config has one: the `[input]` settings with the
/// backup's kind, device and URI.
pub fn start_backup(config: &Config, sink: Arc<dyn RawSink>) -> Option<Supervised> {
    let b = config.input.backup.clone()?;
    let mut config = config.clone();
    config.input.kind = b.kind;
    config.input.device = b.device;
    config.input.uri = b.uri;
    Some(start_role("backup", config, sink))
}

/// Starts a separate audio source (`audio = "test"` or `"alsa:…"`), if the config has one.
pub fn start_audio(config: &Config, sink: Arc<dyn RawSink>) -> Option<Supervised> {
    let kind = match &config.input.audio {
        AudioInput::Test => "test".to_string(),
        AudioInput::Alsa(d) => format!("alsa:{d}"),
        AudioInput::None | AudioInput::Input => return None,
    };
    let config = config.clone();
    let builder: Builder = Box::new(move || build_audio(&config, sink.clone()));
    Some(spawn_source(
        "audio",
        kind,
        Some(Timing::Arrival),
        pipeline_life(builder),
    ))
}

/// A network input (src/input/) as a [`RunOnce`]: start the front end, publish its timing and
/// counters, `running` once pictures are decoded; a decoder or SRT error ends the life (the
/// supervisor rebuilds with backoff), so does a front end that cannot start (a port in use).
fn network_life(config: Config, sink: Arc<dyn RawSink>) -> RunOnce {
    // The counters of the lives before this one, so what `/status` shows only grows.
    let mut before = NetworkCounters::default();
    let srt = config.input.kind == InputKind::Srt
        || config
            .input
            .uri
            .as_deref()
            .is_some_and(|u| u.starts_with("srt://"));
    Box::new(move |life: &SourceLife| {
        life.set_timing(None);
        let mut source = NetworkSource::start(&config, sink.clone()).map_err(|e| e.to_string())?;
        let mut running = false;
        let mut now = NetworkCounters::default();
        let mut last_data = Instant::now();
        let result = loop {
            if life.stopped() {
                break Ok(());
            }
            let counters = source.counters();
            let current = NetworkCounters::from_input(&counters);
            if current.datagrams != now.datagrams {
                last_data = Instant::now();
            }
            now = current;
            life.set_counters(before.plus(now));
            life.set_timing(source.timing());
            if let Some(e) = counters.last_error {
                break Err(e);
            }
            if srt && now.datagrams > 0 && last_data.elapsed() >= SRT_IDLE {
                break Err(format!(
                    "SRT: no data for {} s (the peer went away); connecting again",
                    SRT_IDLE.as_secs()
                ));
            }
            if !running && counters.pictures > 0 {
                running = true;
                life.running();
            }
            std::thread::sleep(POLL);
        };
        source.stop();
        // The last counts of this life (published by the receive thread as it ended).
        let last = NetworkCounters::from_input(&source.counters());
        before = before.plus(if last.datagrams >= now.datagrams {
            last
        } else {
            now
        });
        life.set_counters(before);
        result
    })
}

/// A GStreamer source pipeline as a [`RunOnce`].
fn pipeline_life(build: Builder) -> RunOnce {
    Box::new(move |life: &SourceLife| run_once(&build, life))
}

/// Runs `run_once` under a supervisor thread (backoff, `state`, `last_error`, `restarts`) until
/// the returned handle is stopped. `role` is `input`, `backup` or `audio`; `timing` says how the
/// source takes W (`input.timing` in `/status`; `None` until the source calls
/// [`SourceLife::set_timing`]).
pub fn spawn_source(
    role: &'static str,
    kind: String,
    timing: Option<Timing>,
    mut run_once: RunOnce,
) -> Supervised {
    let status = Arc::new(Mutex::new(SourceStatus {
        role,
        kind: kind.clone(),
        state: "starting",
        since_ns: now_ns(),
        last_error: None,
        restarts: 0,
        timing: timing.map_or(TIMING_PENDING, Timing::as_str),
        counters: None,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (status, stop) = (status.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("src-{role}"))
            .spawn(move || supervise(role, &kind, &mut run_once, &status, &stop))
    };
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            log::error!("{role} source: cannot start its thread: {e}");
            None
        }
    };
    Supervised {
        status,
        stop,
        thread,
    }
}

/// `run_once` until stopped, with backoff between failures.
fn supervise(
    role: &'static str,
    kind: &str,
    run_once: &mut RunOnce,
    status: &SharedStatus,
    stop: &AtomicBool,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failed = false;
    let mut warned: Option<(String, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        set_state(status, "starting");
        let started = Instant::now();
        let life = SourceLife {
            stop,
            status,
            after_failure: failed,
            role,
            kind,
        };
        match run_once(&life) {
            Ok(()) => break,
            Err(e) => {
                if started.elapsed() >= STABLE_RUN {
                    backoff = MIN_BACKOFF;
                }
                if repeat_is_quiet(warned.as_ref(), &e, Instant::now()) {
                    log::debug!(
                        state = "backoff", error = e.as_str();
                        "{role} source {kind}: {e} again; retrying in {} ms",
                        backoff.as_millis()
                    );
                } else {
                    log::warn!(
                        state = "backoff", error = e.as_str();
                        "{role} source {kind}: {e}; retrying in {} ms",
                        backoff.as_millis()
                    );
                    warned = Some((e.clone(), Instant::now()));
                }
                if let Ok(mut s) = status.lock() {
                    s.last_error = Some(e);
                    s.restarts += 1;
                }
                set_state(status, "backoff");
                failed = true;
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                }
                backoff = next_backoff(kind, backoff);
            }
        }
    }
    set_state(status, "stopped");
}

/// The wait after `backoff`: doubled, up to [`RECONNECT_BACKOFF`] for `rtsp` and
/// [`MAX_BACKOFF`] for every other kind.
fn next_backoff(kind: &str, backoff: Duration) -> Duration {
    let cap = if kind == InputKind::Rtsp.as_str() {
        RECONNECT_BACKOFF
    } else {
        MAX_BACKOFF
    };
    (backoff * 2).min(cap)
}

/// Whether the failure `e` at `now` repeats the last warned one within [`REPEAT_WARN`].
fn repeat_is_quiet(warned: Option<&(String, Instant)>, e: &str, now: Instant) -> bool {
    warned.is_some_and(|(last, at)| last == e && now.saturating_duration_since(*at) < REPEAT_WARN)
}

/// One life of a source pipeline: Ok when stopped on request, Err with the reason otherwise.
fn run_once(build: &Builder, life: &SourceLife) -> Result<(), String> {
    let built = build()?;
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
/// is its wall-clock capture time (design §9).
fn new_pipeline(name: &str) -> gst::Pipeline {
    let pipeline = gst::Pipeline::with_name(name);
    let clock = gst::SystemClock::obtain();
    clock.set_property("clock-type", gst::ClockType::Realtime);
    pipeline.use_clock(Some(&clock));
    pipeline
}

/// How far a source's timestamps run ahead of their arrival (an MPEG-TS stream's PTS lead the
/// PCR by the muxer's delay, 0.7 s with ffmpeg's defaults): the largest lead seen over the
/// last window (the picture that arrived earliest for its timestamp), so the pictures keep the
/// stream's own spacing (no arrival jitter) and none is placed in the future.
#[derive(Debug)]
struct Lead {
    current: Option<u64>,
    window_max: u64,
    window_start: Instant,
}

/// The lead is re-estimated this often (from the largest lead of the window before).
const LEAD_WINDOW: Duration = Duration::from_secs(2);

impl Lead {
    fn new() -> Self {
        Lead {
            current: None,
            window_max: 0,
            window_start: Instant::now(),
        }
    }

    /// `w` corrected by the lead, given the arrival time `now`.
    fn correct(&mut self, w: u64, now: u64) -> u64 {
        let ahead = w.saturating_sub(now);
        self.window_max = self.window_max.max(ahead);
        let mut current = *self.current.get_or_insert(ahead);
        if ahead > current {
            // Earlier than ever for its timestamp: the lead is at least this.
            current = ahead;
            self.current = Some(ahead);
        }
        if self.window_start.elapsed() >= LEAD_WINDOW {
            self.current = Some(self.window_max);
            self.window_max = 0;
            self.window_start = Instant::now();
        }
        // Never in the future, whatever the estimate.
        w.saturating_sub(current).min(now)
    }
}

/// W of a sample: base time + running time of its PTS less the stream's lead, or the arrival
/// time when the timestamp is missing or more than 2 s off.
fn capture_time(sink: &gst_app::AppSink, sample: &gst::Sample, lead: &mut Lead) -> u64 {
    let now = now_ns();
    let w = (|| {
        let buffer = sample.buffer()?;
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        let running = segment.to_running_time(buffer.pts()?)?;
        Some((sink.base_time()? + running).nseconds())
    })();
    match w {
        Some(w) if w.abs_diff(now) < MAX_CAPTURE_SKEW_NS => lead.correct(w, now),
        _ => now,
    }
}

#[derive(Clone, Copy)]
enum Media {
    Video,
    Audio,
}

/// converters → caps → appsink that calls `sink`; returns the first element (to link to).
fn tail(
    pipeline: &gst::Pipeline,
    media: Media,
    config: &Config,
    sync: bool,
    sink: Arc<dyn RawSink>,
) -> Result<gst::Element, String> {
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
    let appsink = gst_app::AppSink::builder()
        .sync(sync)
        .max_buffers(SINK_MAX_BUFFERS)
        .drop(true)
        .build();
    appsink.set_property("async", false);
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
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    chain.push(appsink.upcast());
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    Ok(chain.remove(0))
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

fn build_input(config: &Config, sink: Arc<dyn RawSink>) -> Result<Built, String> {
    let input = &config.input;
    let pipeline = new_pipeline(&format!("twincast-input-{}", input.kind.as_str()));
    let with_audio = input.audio == AudioInput::Input;
    let sync = input.kind == InputKind::File;
    let video_tail = tail(&pipeline, Media::Video, config, sync, sink.clone())?;
    let audio_tail = if with_audio {
        Some(tail(&pipeline, Media::Audio, config, sync, sink)?)
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

fn build_audio(config: &Config, sink: Arc<dyn RawSink>) -> Result<Built, String> {
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
    let tail = tail(&pipeline, Media::Audio, config, false, sink)?;
    pipeline.add(&src).map_err(|e| e.to_string())?;
    src.link(&tail).map_err(|e| e.to_string())?;
    Ok(Built {
        pipeline,
        at_eos: AtEos::End,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ahead_of_its_arrival_keeps_its_spacing_and_is_never_in_the_future() {
        let mut lead = Lead::new();
        let t0 = 1_796_000_000_000_000_000u64;
        // Timestamps 700 ms ahead of arrival, arrivals jittered by up to 20 ms.
        let mut out = Vec::new();
        for i in 0..30u64 {
            let w = t0 + i * 33_333_333 + 700_000_000;
            let now = t0 + i * 33_333_333 + (i % 3) * 10_000_000;
            let c = lead.correct(w, now);
            assert!(c <= now, "frame {i} in the future");
            out.push(c);
        }
        // The spacing is the stream's own: every step exactly one frame.
        assert!(out.windows(2).all(|p| p[1] - p[0] == 33_333_333), "{out:?}");
        // A stream that is not ahead is left alone.
        let mut lead = Lead::new();
        assert_eq!(lead.correct(t0, t0 + 5_000_000), t0);
    }

    #[test]
    fn an_rtsp_source_retries_at_least_every_second_and_the_others_every_five() {
        let waits = |kind: &str| {
            let mut b = MIN_BACKOFF;
            let mut out = vec![b];
            for _ in 0..5 {
                b = next_backoff(kind, b);
                out.push(b);
            }
            out.iter().map(Duration::as_millis).collect::<Vec<_>>()
        };
        assert_eq!(waits("rtsp"), [500, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(waits("file"), [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(waits("v4l2"), [500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn the_same_error_again_is_a_warning_only_once_a_minute() {
        let t0 = Instant::now();
        let warned = ("source: Could not open resource".to_string(), t0);
        // Nothing warned yet: warn.
        assert!(!repeat_is_quiet(None, &warned.0, t0));
        // The same error a second later: quiet.
        let later = t0 + Duration::from_secs(1);
        assert!(repeat_is_quiet(Some(&warned), &warned.0, later));
        // Another error: warn.
        assert!(!repeat_is_quiet(Some(&warned), "source: Not Found", later));
        // The same error after a minute: warn again.
        assert!(!repeat_is_quiet(Some(&warned), &warned.0, t0 + REPEAT_WARN));
    }

    #[test]
    fn a_failing_source_is_retried_with_backoff_and_reports_its_error() {
        let mut lives = 0u32;
        let mut handle = spawn_source(
            "input",
            "rtsp".into(),
            Some(Timing::Arrival),
            Box::new(move |life: &SourceLife| {
                lives += 1;
                if lives <= 2 {
                    return Err(format!("connection refused ({lives})"));
                }
                life.running();
                while !life.stopped() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let s = handle.status.lock().unwrap().clone();
            if s.state == "running" || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.state, "running");
        assert_eq!(status.restarts, 2);
        assert_eq!(status.last_error.as_deref(), Some("connection refused (2)"));
        handle.stop();
        assert_eq!(handle.status.lock().unwrap().state, "stopped");
    }
}
