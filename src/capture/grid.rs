//! The grid clock: the encoder side's owner of the timeline
//! (docs/design/timeline.md, *The grid clock*).
//!
//! [`GridSink`] is the [`RawSink`] every source hands its media to; it gives each picture its
//! frame index from W and queues it (src/capture/feed.rs has the policy). The grid clock thread
//! wakes at each frame time t_k plus a latency that covers the sources' own delay (decoders,
//! jitter buffers) and feeds the encoders frame k: the source's picture, the held last one, or
//! the slate, stamped exactly t_k; and every AAC frame j on the 1024-sample epoch grid, with
//! silence where the source had none. The latency only delays *when* a frame is fed, never
//! *which* index a picture gets, so it can grow when pictures arrive late without moving the
//! grid (it starts at [`DEFAULT_LATENCY`], grows to cover the late ones, up to [`MAX_LATENCY`]).
//!
//! The clock it reads is the system clock; a step of it (forward: frames skipped past a
//! second; back: nothing fed until the clock is back where it was) is told from a slew by
//! src/capture/clock_step.rs and counted (docs/design/timeline.md, *Clock steps and slews*).
//!
//! The encoders behind it can be replaced (an encoder error, a new ladder): the next encoder
//! pipeline is fed from the next GOP start on, so every fragment it cuts is whole.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use twincast_media::timeline::Grid;
use twincast_media::{MediaTime, Rounding, Timescale};

use super::CaptureStats;
use super::clock_step::{Step, StepDetector};
use super::encoders::{Encoders, FillerMarks};
use super::feed::{AAC_FRAME_SAMPLES, AudioFeed, Offer, Pick, VideoFeed};
use super::select::Selector;
use super::slate::Slate;
use crate::source::RawSink;
use crate::sync::lock;

/// Feed latency at start: a live camera or test pattern is here within a few ms.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(100);
/// The feed latency never grows past this (a source later than this is held, then slate).
pub const MAX_LATENCY: Duration = Duration::from_millis(1500);
/// When the clock thread is this far behind (an overloaded box), it skips ahead.
const MAX_BEHIND_NS: u64 = 1_000_000_000;
/// Longest single sleep of the clock thread (it checks its stop flag in between).
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// `input.state` values.
pub const STATE_STARTING: u8 = 0;
pub const STATE_LIVE: u8 = 1;
pub const STATE_SLATE: u8 = 2;
pub const STATE_BACKUP: u8 = 3;

pub use super::select::{SOURCE_BACKUP, SOURCE_PRIMARY};

pub use super::clock_step::now_ns;

/// What the sources hand their media to.
pub struct GridSink {
    /// The `[input]` source's sink (the backup's counts its pictures elsewhere).
    primary: bool,
    video: Mutex<VideoFeed<gst::Buffer>>,
    audio: Mutex<AudioFeed>,
    stats: Arc<CaptureStats>,
    latency_ns: AtomicU64,
    /// When the system clock last stepped forward (epoch ns): what was captured before it
    /// is late because of the step, so it does not raise the latency.
    stepped_at_ns: AtomicU64,
    frame_ns: u64,
}

impl GridSink {
    pub fn new(
        primary: bool,
        grid: Grid,
        slate_after: Duration,
        sample_rate: Timescale,
        channels: u16,
        stats: Arc<CaptureStats>,
    ) -> Self {
        let rate = grid.rate();
        let slate_after = u64::try_from(slate_after.as_nanos()).unwrap_or(u64::MAX);
        stats
            .latency_ns
            .fetch_max(DEFAULT_LATENCY.as_nanos() as u64, Ordering::Relaxed);
        GridSink {
            primary,
            video: Mutex::new(VideoFeed::new(rate, slate_after)),
            audio: Mutex::new(AudioFeed::new(sample_rate, 2 * usize::from(channels))),
            stats,
            latency_ns: AtomicU64::new(DEFAULT_LATENCY.as_nanos() as u64),
            stepped_at_ns: AtomicU64::new(0),
            frame_ns: rate.frame_time_ns(1),
        }
    }

    pub fn latency_ns(&self) -> u64 {
        self.latency_ns.load(Ordering::Relaxed)
    }

    /// A picture or samples captured at `wall_ns` came too late: feed later from now on.
    fn late(&self, wall_ns: u64) {
        if wall_ns < self.stepped_at_ns.load(Ordering::Relaxed) {
            return;
        }
        let lag = now_ns().saturating_sub(wall_ns);
        let wanted = (lag + 2 * self.frame_ns).min(MAX_LATENCY.as_nanos() as u64);
        let before = self.latency_ns.fetch_max(wanted, Ordering::Relaxed);
        if wanted > before {
            self.stats.latency_ns.store(wanted, Ordering::Relaxed);
            log::info!(
                "grid clock: the input arrives {} ms after its capture time; frames are fed {} ms behind the clock",
                lag / 1_000_000,
                wanted / 1_000_000
            );
        }
    }
}

impl RawSink for GridSink {
    fn video(&self, wall_ns: u64, buffer: gst::Buffer) {
        if !self.primary {
            self.stats.backup_frames_in.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
            self.stats
                .last_frame_wall_ns
                .store(wall_ns, Ordering::Relaxed);
        }
        let offer = {
            let mut feed = lock(&self.video);
            let before = feed.counters.overflow;
            let offer = feed.offer(wall_ns, buffer);
            self.stats
                .frames_overflow
                .fetch_add(feed.counters.overflow - before, Ordering::Relaxed);
            if self.primary {
                self.stats
                    .reanchors
                    .store(feed.counters.reanchors, Ordering::Relaxed);
            }
            offer
        };
        match offer {
            Offer::Queued { .. } => {}
            Offer::Late { .. } => {
                self.stats.frames_late.fetch_add(1, Ordering::Relaxed);
                self.late(wall_ns);
            }
            Offer::Behind => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn audio(&self, wall_ns: u64, buffer: gst::Buffer) {
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let late = {
            let mut feed = lock(&self.audio);
            let before = feed.counters.late_samples;
            feed.offer(wall_ns, &map);
            feed.counters.late_samples > before
        };
        if late {
            self.late(wall_ns);
        }
    }
}

/// The encoders the clock feeds: the running ones, and the next ones waiting for a GOP start.
#[derive(Default)]
pub struct EncoderSlot {
    current: Option<Arc<Encoders>>,
    next: Option<Arc<Encoders>>,
}

pub type SharedSlot = Arc<Mutex<EncoderSlot>>;

impl EncoderSlot {
    /// Hands over to `encoders` at the next GOP start.
    pub fn replace(&mut self, encoders: Arc<Encoders>) {
        if let Some(old) = self.next.replace(encoders) {
            retire(old);
        }
    }

    pub fn take_all(&mut self) -> Vec<Arc<Encoders>> {
        self.current
            .take()
            .into_iter()
            .chain(self.next.take())
            .collect()
    }
}

/// Ends an encoder pipeline off the clock thread: end of stream first, so it drains.
fn retire(encoders: Arc<Encoders>) {
    let _ = encoders.video.end_of_stream();
    if let Some(a) = &encoders.audio {
        let _ = a.end_of_stream();
    }
    let spawned = std::thread::Builder::new()
        .name("enc-retire".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            encoders.stop();
        });
    if let Err(e) = spawned {
        log::warn!("encoders: cannot stop the old pipeline in the background: {e}");
    }
}

/// Least time between two warnings about frames or units lost on the way to the packager.
const NOT_ENCODED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Warns (at most every [`NOT_ENCODED_LOG_EVERY`]) when frames or encoded units were lost
/// between the grid clock and the packager: the encoders' input queue refused pictures or
/// audio frames, the packager's queue was full, or an encoder gave a buffer without a usable
/// time. `/status` counts each (`input.frames_not_encoded`, `audio_frames_not_encoded`,
/// `units_dropped`, `units_untimed`); a loss must also be said.
#[derive(Default)]
struct NotEncodedLog {
    seen: [u64; 4],
    last: Option<std::time::Instant>,
}

impl NotEncodedLog {
    fn check(&mut self, stats: &super::CaptureStats) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < NOT_ENCODED_LOG_EVERY)
        {
            return;
        }
        let now = [
            stats.frames_not_encoded.load(Ordering::Relaxed),
            stats.audio_frames_not_encoded.load(Ordering::Relaxed),
            stats.units_dropped.load(Ordering::Relaxed),
            stats.units_untimed.load(Ordering::Relaxed),
        ];
        if now == self.seen {
            return;
        }
        let d: Vec<u64> = now.iter().zip(self.seen).map(|(n, s)| n - s).collect();
        log::warn!(
            "encoders: since the last warning {} pictures and {} audio frames not encoded (the encoders fell behind the grid clock: an overloaded box; the picture before is held), {} encoded units dropped (the packager's queue was full), {} without a usable time; since start {} / {} / {} / {}",
            d[0],
            d[1],
            d[2],
            d[3],
            now[0],
            now[1],
            now[2],
            now[3]
        );
        self.seen = now;
        self.last = Some(std::time::Instant::now());
    }
}

/// The grid clock thread.
pub struct GridClock {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the clock thread works with.
pub struct ClockParts {
    pub grid: Grid,
    pub sink: Arc<GridSink>,
    /// The backup input's sink, used while `backup_hold_frames` is not 0.
    pub backup: Arc<GridSink>,
    /// Frames the primary must be stable before it is taken back; 0: no backup configured.
    pub backup_hold_frames: Arc<AtomicU64>,
    /// `[input] audio = "input"`: the audio comes with the source on air (else from the
    /// primary's sink, where the separate audio source delivers).
    pub audio_from_input: bool,
    pub slate: Arc<Mutex<Slate>>,
    pub slot: SharedSlot,
    pub marks: Arc<FillerMarks>,
    pub stats: Arc<CaptureStats>,
    /// The audio sample rate: the timescale of the 1024-sample audio grid.
    pub sample_rate: Timescale,
    pub audio: bool,
    /// Where frame k's captions go (taken off the live picture it is fed).
    pub signals: Arc<crate::signals::Signals>,
}

impl GridClock {
    pub fn start(parts: ClockParts) -> std::io::Result<GridClock> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("grid-clock".into())
            .spawn(move || run(parts, &flag))?;
        Ok(GridClock {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GridClock {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The epoch time of audio frame j (its first sample), rounded down to the ns.
fn audio_frame_ns(j: u64, rate: Timescale) -> u64 {
    let sample = j.saturating_mul(AAC_FRAME_SAMPLES);
    MediaTime::new(sample, rate).as_nanos()
}

/// The audio frame whose span holds `ns` (floor of a floor is the floor of the quotient).
fn audio_frame_at(ns: u64, rate: Timescale) -> u64 {
    MediaTime::from_nanos(ns, rate, Rounding::Floor).ticks() / AAC_FRAME_SAMPLES
}

fn run(p: ClockParts, stop: &AtomicBool) {
    let rate = p.grid.rate();
    let start = now_ns().saturating_sub(p.sink.latency_ns());
    let mut k = rate.frame_index_nearest(start) + 1;
    let mut j = audio_frame_at(start, p.sample_rate) + 1;
    let mut state = STATE_STARTING;
    let mut select = Selector::default();
    let mut not_encoded = NotEncodedLog::default();
    let mut steps = StepDetector::default();
    while !stop.load(Ordering::Relaxed) {
        not_encoded.check(&p.stats);
        let (step, now) = steps.check();
        let lat = p.sink.latency_ns();
        p.stats.clock_step(step, rate.frame_time_ns(k) + lat);
        if let Step::Forward(_) = step {
            p.sink.stepped_at_ns.store(now, Ordering::Relaxed);
        }
        // The media time whose frames are due now.
        let due = now.saturating_sub(lat);
        if rate.frame_time_ns(k) + MAX_BEHIND_NS < due {
            let to = rate.frame_index_nearest(due);
            p.stats
                .grid_skipped
                .fetch_add(to.saturating_sub(k), Ordering::Relaxed);
            let cause = match step {
                Step::Forward(_) => "a clock step forward",
                _ => "an overloaded box",
            };
            log::warn!(
                "grid clock: {} ms behind ({cause}); skipping {} frames",
                (due - rate.frame_time_ns(k)) / 1_000_000,
                to.saturating_sub(k)
            );
            k = to;
            j = audio_frame_at(due, p.sample_rate);
        }
        let video_at = rate.frame_time_ns(k);
        let audio_at = audio_frame_ns(j + 1, p.sample_rate);
        let next = if p.audio {
            video_at.min(audio_at)
        } else {
            video_at
        };
        if due < next {
            std::thread::sleep(Duration::from_nanos(next - due).min(MAX_SLEEP));
            continue;
        }
        // A new encoder pipeline takes over at a GOP start.
        if p.grid.is_gop_start(k) {
            let mut slot = lock(&p.slot);
            if let Some(next) = slot.next.take()
                && let Some(old) = slot.current.replace(next)
            {
                retire(old);
            }
        }
        let encoders = lock(&p.slot).current.clone();
        if due >= video_at {
            state = feed_video(&p, k, encoders.as_deref(), state, &mut select);
            k += 1;
        }
        if p.audio && due >= audio_at {
            feed_audio(&p, j, encoders.as_deref(), select.on);
            j += 1;
        }
    }
}

fn pick_from(sink: &GridSink, k: u64) -> Pick<gst::Buffer> {
    lock(&sink.video).pick(k)
}

/// Feeds frame k: chooses its picture, records the input's state, and hands the picture to the
/// encoders (docs/design/timeline.md, *The grid clock*). Returns the input's new state.
fn feed_video(
    p: &ClockParts,
    k: u64,
    encoders: Option<&Encoders>,
    state: u8,
    select: &mut Selector,
) -> u8 {
    let t_k = p.grid.rate().frame_time_ns(k);
    let (on, pick) = select_input(p, k, t_k, select);
    let slate = pick.is_slate();
    let picture = match pick {
        Pick::Live(b) => {
            p.signals.captions.record(k, &b);
            Some(b)
        }
        Pick::Hold(b) => Some(b),
        Pick::Slate => Some(lock(&p.slate).picture()),
    };
    p.marks.set_video(k, slate);
    p.stats.grid_frames.fetch_add(1, Ordering::Relaxed);
    let new_state = match (slate, on) {
        (true, _) => STATE_SLATE,
        (false, SOURCE_BACKUP) => STATE_BACKUP,
        _ => STATE_LIVE,
    };
    if slate {
        p.stats.slate_frames.fetch_add(1, Ordering::Relaxed);
    }
    if new_state != state {
        record_state(p, k, t_k, state, new_state);
    }
    if let (Some(enc), Some(picture)) = (encoders, picture) {
        push_picture(p, enc, k, t_k, picture);
    }
    new_state
}

/// Picks frame k from each input and decides which one is on air (`input.source`), logging a
/// switch; returns the input on air and its pick.
fn select_input(
    p: &ClockParts,
    k: u64,
    t_k: u64,
    select: &mut Selector,
) -> (u8, Pick<gst::Buffer>) {
    let primary = pick_from(&p.sink, k);
    let backup = pick_from(&p.backup, k);
    let hold = p.backup_hold_frames.load(Ordering::Relaxed);
    let (on, switched) = select.decide(
        k,
        !primary.is_slate(),
        !backup.is_slate(),
        hold,
        p.grid.is_gop_start(k),
    );
    if switched {
        p.stats.input_source.store(on, Ordering::Relaxed);
        p.stats.source_switches.fetch_add(1, Ordering::Relaxed);
        let at = twincast_media::hls::program_date_time(t_k);
        if on == SOURCE_BACKUP {
            log::warn!(state = "backup"; "input: the primary is lost; the backup input is on air from frame {k} ({at})");
        } else {
            log::info!(state = "primary"; "input: the primary is back on air from frame {k} ({at})");
        }
    }
    let pick = if on == SOURCE_BACKUP { backup } else { primary };
    (on, pick)
}

/// The input's state changed from `state` to `new_state` at frame k: published for `/status`
/// (`input.state`) and logged once.
fn record_state(p: &ClockParts, k: u64, t_k: u64, state: u8, new_state: u8) {
    p.stats.input_state.store(new_state, Ordering::Relaxed);
    p.stats.input_state_since_ns.store(t_k, Ordering::Relaxed);
    let at = twincast_media::hls::program_date_time(t_k);
    match (state, new_state) {
        (_, STATE_SLATE) => log::warn!(
            state = "slate";
            "input: no picture for {} ms; the encoders get the slate from frame {k} ({at})",
            lock(&p.sink.video).hold_frames() * p.grid.rate().frame_time_ns(1) / 1_000_000
        ),
        (_, STATE_BACKUP) => {}
        (STATE_SLATE, _) => log::info!(
            state = "live";
            "input: live pictures again from frame {k} ({at})"
        ),
        _ => log::info!(state = "live"; "input: live from frame {k} ({at})"),
    }
}

/// Pushes frame k's picture, stamped exactly t_k, into the encoders' video appsrc once they
/// have joined at a GOP start; a picture they cannot take is counted.
fn push_picture(p: &ClockParts, enc: &Encoders, k: u64, t_k: u64, picture: gst::Buffer) {
    if !enc.joined.load(Ordering::Relaxed) {
        if !p.grid.is_gop_start(k) {
            return;
        }
        enc.join_ns.store(t_k, Ordering::Relaxed);
        enc.joined.store(true, Ordering::Relaxed);
    }
    let Some(running) = t_k.checked_sub(enc.base_ns) else {
        return;
    };
    // Across a change of the source size the held picture may be the old size.
    let picture = if picture.size() == enc.frame_bytes {
        picture
    } else {
        super::slate::plain_frame(enc.width, enc.height)
    };
    // A new buffer object over the same memory: the picture itself is shared, never copied.
    let mut out = picture.copy();
    {
        let b = out.make_mut();
        // The captions are the package thread's to write (src/captions.rs).
        crate::captions::strip(b);
        b.set_pts(gst::ClockTime::from_nseconds(running));
        b.set_dts(gst::ClockTime::NONE);
        b.set_duration(gst::ClockTime::from_nseconds(
            p.grid.rate().frame_time_ns(k + 1) - t_k,
        ));
    }
    // A full queue takes no more pictures but a GOP's first (see VIDEO_APPSRC_MAX_BUFFERS);
    // past its hard bound it drops its oldest (leaky downstream) without an error.
    let queue = queue_picture(enc.video.current_level_buffers(), p.grid.is_gop_start(k));
    if queue == Queue::Refuse || enc.video.push_buffer(out).is_err() || queue == Queue::DropOldest {
        p.stats.frames_not_encoded.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the grid clock does with a picture for the encoders' queue holding `level` pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Push,
    /// Not queued (the picture before it is held).
    Refuse,
    /// Queued; the queue drops its oldest.
    DropOldest,
}

fn queue_picture(level: u64, gop_start: bool) -> Queue {
    use super::encoders::{VIDEO_APPSRC_HARD_MAX_BUFFERS, VIDEO_APPSRC_MAX_BUFFERS};
    if level >= VIDEO_APPSRC_HARD_MAX_BUFFERS {
        Queue::DropOldest
    } else if level >= VIDEO_APPSRC_MAX_BUFFERS && !gop_start {
        Queue::Refuse
    } else {
        Queue::Push
    }
}

fn feed_audio(p: &ClockParts, j: u64, encoders: Option<&Encoders>, on: u8) {
    let take = |sink: &GridSink| lock(&sink.audio).take(j * AAC_FRAME_SAMPLES);
    // Both feeds advance every frame (so neither piles up); the one on air is used.
    let (primary, backup) = (take(&p.sink), take(&p.backup));
    let frame = if p.audio_from_input && on == SOURCE_BACKUP {
        backup
    } else {
        primary
    };
    p.marks.set_audio(j, frame.source_samples == 0);
    let Some(enc) = encoders else { return };
    let Some(src) = &enc.audio else { return };
    let t_j = audio_frame_ns(j, p.sample_rate);
    if !enc.joined.load(Ordering::Relaxed) || t_j < enc.join_ns.load(Ordering::Relaxed) {
        return;
    }
    let Some(running) = t_j.checked_sub(enc.base_ns) else {
        return;
    };
    let mut buffer = gst::Buffer::from_mut_slice(frame.data);
    {
        let b = buffer.make_mut();
        b.set_pts(gst::ClockTime::from_nseconds(running));
        b.set_duration(gst::ClockTime::from_nseconds(
            audio_frame_ns(j + 1, p.sample_rate) - t_j,
        ));
    }
    let full = src.current_level_buffers() >= super::encoders::AUDIO_APPSRC_MAX_BUFFERS;
    if src.push_buffer(buffer).is_err() || full {
        p.stats
            .audio_frames_not_encoded
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_the_feed_drops_for_want_of_room_are_counted() {
        gst::init().expect("GStreamer");
        let rate = twincast_media::timeline::FrameRate::new(30, 1).expect("rate");
        let grid = Grid::new(rate, 1_000_000_000).expect("grid");
        let stats = Arc::new(CaptureStats::default());
        let sink = GridSink::new(
            true,
            grid,
            Duration::from_millis(500),
            Timescale::new(48_000).expect("timescale"),
            2,
            stats.clone(),
        );
        // Nobody picks: every picture waits for its slot.
        let t0 = 1_764_000_000 * 1_000_000_000u64;
        let extra = 6;
        let n = super::super::feed::MAX_PENDING_PICTURES + extra;
        for i in 0..n as u64 {
            sink.video(t0 + grid.rate().frame_time_ns(i), gst::Buffer::new());
        }
        assert_eq!(stats.frames_overflow.load(Ordering::Relaxed), extra as u64);
    }

    #[test]
    fn a_full_encoder_queue_still_takes_a_gop_start() {
        use super::super::encoders::{VIDEO_APPSRC_HARD_MAX_BUFFERS, VIDEO_APPSRC_MAX_BUFFERS};
        assert_eq!(queue_picture(0, false), Queue::Push);
        assert_eq!(
            queue_picture(VIDEO_APPSRC_MAX_BUFFERS - 1, false),
            Queue::Push
        );
        assert_eq!(
            queue_picture(VIDEO_APPSRC_MAX_BUFFERS, false),
            Queue::Refuse
        );
        // Losing a GOP's first picture would lose its forced IDR, so the whole fragment.
        assert_eq!(queue_picture(VIDEO_APPSRC_MAX_BUFFERS, true), Queue::Push);
        assert_eq!(
            queue_picture(VIDEO_APPSRC_HARD_MAX_BUFFERS, true),
            Queue::DropOldest
        );
    }

    #[test]
    fn audio_frames_are_on_the_1024_grid() {
        let j = 2_484_375_000u64;
        let rate = Timescale::new(48_000).expect("non-zero");
        let t = audio_frame_ns(j, rate);
        assert_eq!(u128::from(t), u128::from(j) * 1024 * 1_000_000_000 / 48_000);
        assert_eq!(audio_frame_at(t, rate), j);
        assert_eq!(audio_frame_at(t - 1, rate), j - 1);
    }
}
