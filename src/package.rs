//! Package: encoded units from capture → timeline indices → whole CMAF fragments → hub.
//!
//! Runs on one plain thread, synchronous and deterministic: everything here is pure media-crate
//! work (index from the epoch time, fragment cutting, box writing) plus a non-blocking publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use bytes::Bytes;
use twincast_media::fragmenter::{Fragment, Fragmenter};
use twincast_media::h264::{self, PicTimingLayout, Timecode};
use twincast_media::mp4::{self, FragmentBrands, FragmentParams, Prft};
use twincast_media::splice;
use twincast_media::timeline::{AudioTimeline, FrameAssign, FrameRate, Grid};
use twincast_media::{Codec, MediaTime, Rounding, Timescale, TrackId, TrackInfo};

use crate::capture::EncodedUnit;
use crate::hub::{Hub, InitSegment, PackagedFragment};
use crate::signals::Signals;

/// How often a waiting packager looks at its stop flag.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Video timescale (docs/design/timeline.md, *Timescales*).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// [`VIDEO_TIMESCALE`] as a type.
pub const VIDEO_CLOCK: Timescale = match Timescale::new(VIDEO_TIMESCALE) {
    Some(t) => t,
    None => panic!("the video timescale is not zero"),
};

/// What the packager needs to know about a track before its codec data arrives.
#[derive(Debug, Clone)]
pub enum TrackSpec {
    Video {
        name: String,
        width: u32,
        height: u32,
        bitrate: u32,
    },
    Audio {
        sample_rate: u32,
        channels: u16,
        bitrate: u32,
    },
}

impl TrackSpec {
    /// The track's name: the rendition's, or [`TrackId::AUDIO`].
    pub fn name(&self) -> TrackId {
        match self {
            TrackSpec::Video { name, .. } => TrackId::from(name.as_str()),
            TrackSpec::Audio { .. } => TrackId::audio(),
        }
    }

    /// The timescale of the track's timestamps: 90 kHz for video, the sample rate for audio;
    /// `None` for a sample rate of 0 (config validation refuses it).
    pub fn clock(&self) -> Option<Timescale> {
        match self {
            TrackSpec::Video { .. } => Some(VIDEO_CLOCK),
            TrackSpec::Audio { sample_rate, .. } => Timescale::new(*sample_rate),
        }
    }
}

/// Live counters per track, read by status and readiness checks.
#[derive(Debug, Default)]
pub struct TrackCounters {
    pub units: AtomicU64,
    pub fragments: AtomicU64,
    pub media_bytes: AtomicU64,
    /// Sequence number of the last fragment + 1 (0: none yet).
    pub next_sequence: AtomicU64,
    /// Units that arrived before the codec configuration and were dropped.
    pub units_without_config: AtomicU64,
    /// Units the packager could not place in a fragment and dropped: before the codec
    /// configuration, before the keyframe a fragment must start with, on a frame index that
    /// did not increase, in a fragment already closed or not starting on its grid frame, or
    /// refused by the audio timeline (/status `tracks[].dropped_units`).
    pub dropped_units: AtomicU64,
    /// Video units sent without the epoch timecode SEI because it could not be written into
    /// them (/status `tracks[].units_without_timecode`).
    pub units_without_timecode: AtomicU64,
    /// Video units that carry the source's closed captions (/status
    /// `tracks[].units_with_captions`).
    pub units_with_captions: AtomicU64,
    /// Video units whose frame had captions that could not be written into them (/status
    /// `tracks[].units_without_captions`).
    pub units_without_captions: AtomicU64,
}

struct TrackState {
    info: Option<TrackInfo>,
    /// The init segment fragments are written against.
    init: Option<Arc<InitSegment>>,
    fragmenter: Fragmenter,
    audio_timeline: Option<AudioTimeline>,
    drop_log: DropLog,
    /// The picture timing SEI layout of the track's SPS and its NAL length size, when the
    /// epoch timecode is written into its units.
    timecode: Option<(PicTimingLayout, u8)>,
    timecode_log: Option<std::time::Instant>,
    /// The NAL length size of a video track's units (from its `avcC`).
    length_size: Option<u8>,
    captions_log: Option<std::time::Instant>,
}

/// Logs the packager's drops of one track, at most once every [`DROP_LOG_EVERY`], with the
/// counts by reason since the start: a lost frame is never silent.
struct DropLog {
    track: TrackId,
    last: Option<std::time::Instant>,
}

/// Least time between two drop warnings of one track.
const DROP_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl DropLog {
    fn new(spec: &TrackSpec) -> DropLog {
        DropLog {
            track: spec.name(),
            last: None,
        }
    }

    fn note(&mut self, index: u64, s: &twincast_media::fragmenter::FragmenterStats) {
        if self.last.is_some_and(|t| t.elapsed() < DROP_LOG_EVERY) {
            return;
        }
        self.last = Some(std::time::Instant::now());
        log::warn!(
            track = self.track.as_str();
            "package: track {} dropped a unit at frame {index}; {} dropped so far ({} before a fragment's keyframe, {} of a fragment closed or off its grid start, {} with a frame index that did not increase)",
            self.track,
            s.dropped_samples,
            s.dropped_before_keyframe,
            s.dropped_partial,
            s.dropped_out_of_order
        );
    }
}

/// The package stage for all tracks.
pub struct Packager {
    rate: FrameRate,
    /// Track descriptions; a ladder rebuild replaces them before the new encoders start, and
    /// they are read when an encoder announces its codec parameters.
    specs: SharedSpecs,
    hub: Arc<Hub>,
    tracks: Vec<TrackState>,
    pub counters: Arc<Vec<TrackCounters>>,
    /// The splice schedule whose SCTE-35 sections video fragments carry as `emsg`s.
    signals: Option<Arc<Signals>>,
    /// Every video unit gets the epoch timecode SEI (`timeline.timecode = "epoch"`).
    epoch_timecode: bool,
}

/// Track descriptions shared between the packager and whoever rebuilds capture.
pub type SharedSpecs = Arc<std::sync::RwLock<Vec<TrackSpec>>>;

impl Packager {
    pub fn new(grid: Grid, specs: Vec<TrackSpec>, hub: Arc<Hub>) -> Self {
        let counters = Arc::new(specs.iter().map(|_| TrackCounters::default()).collect());
        let tracks = specs
            .iter()
            .map(|spec| {
                let (fragmenter, audio_timeline) = match spec {
                    // Only whole fragments that start on their grid boundary: a partial first
                    // fragment would carry a number the other box of the pair fills differently.
                    TrackSpec::Video { .. } => (
                        Fragmenter::video(grid, VIDEO_TIMESCALE).require_grid_start(true),
                        None,
                    ),
                    TrackSpec::Audio { sample_rate, .. } => (
                        Fragmenter::audio(grid, *sample_rate).require_grid_start(true),
                        Some(AudioTimeline::new(*sample_rate)),
                    ),
                };
                TrackState {
                    info: None,
                    init: None,
                    fragmenter,
                    audio_timeline,
                    drop_log: DropLog::new(spec),
                    timecode: None,
                    timecode_log: None,
                    length_size: None,
                    captions_log: None,
                }
            })
            .collect();
        Packager {
            rate: grid.rate(),
            specs: Arc::new(std::sync::RwLock::new(specs)),
            hub,
            tracks,
            counters,
            signals: None,
            epoch_timecode: false,
        }
    }

    /// Video units get a picture timing SEI whose timecode is the frame's epoch time, and the
    /// SPS the flag that lets decoders read it (docs/design/signals.md, *Timecode*).
    pub fn with_epoch_timecode(mut self, on: bool) -> Self {
        self.epoch_timecode = on;
        self
    }

    /// Video fragments carry the `emsg`s of `signals`' splices (docs/design/signals.md, *CMAF*).
    pub fn with_signals(mut self, signals: Arc<Signals>) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Consumes units until the capture side hangs up, then flushes.
    /// The track descriptions, for a ladder rebuild to replace.
    pub fn specs(&self) -> SharedSpecs {
        self.specs.clone()
    }

    pub fn run(self, units: Receiver<EncodedUnit>) {
        self.run_until(units, &std::sync::atomic::AtomicBool::new(false));
    }

    /// Like [`Packager::run`], and also ends once `stop` is set: what is queued by then is
    /// packaged, then every track is flushed. (GStreamer may keep an appsink, and so a sender,
    /// alive after its pipeline stopped; shutdown must not wait for that.)
    pub fn run_until(mut self, units: Receiver<EncodedUnit>, stop: &std::sync::atomic::AtomicBool) {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match units.recv_timeout(STOP_POLL) {
                Ok(unit) => self.push(unit),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                    while let Ok(unit) = units.try_recv() {
                        self.push(unit);
                    }
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        for track in 0..self.tracks.len() {
            if let Some(fragment) = self.tracks[track].fragmenter.flush() {
                self.emit(track, fragment, true);
            }
        }
    }

    /// Handles one encoded unit.
    pub fn push(&mut self, unit: EncodedUnit) {
        let Some(state) = self.tracks.get_mut(unit.track) else {
            return;
        };
        let counters = &self.counters[unit.track];
        counters.units.fetch_add(1, Ordering::Relaxed);
        if let Some(mut codec_data) = unit.codec_data {
            let spec = crate::sync::read(&self.specs).get(unit.track).cloned();
            if let Some(spec) = spec {
                if matches!(spec, TrackSpec::Video { .. }) {
                    if self.epoch_timecode {
                        state.timecode = timecode_config(&spec, &mut codec_data);
                    }
                    state.length_size = h264::AvcDecoderConfig::parse(&codec_data)
                        .map(|c| c.length_size)
                        .ok();
                }
                let info = track_info(unit.track, &spec, codec_data);
                if state.info.as_ref() != Some(&info) {
                    // New codec parameters (a rebuilt encoder): what is cut so far belongs to
                    // the old init segment.
                    if state.info.is_some()
                        && let Some(fragment) = state.fragmenter.flush()
                    {
                        self.emit(unit.track, fragment, false);
                    }
                    let state = &mut self.tracks[unit.track];
                    let bytes = Bytes::from(mp4::write_init(&info));
                    let init = Arc::new(InitSegment {
                        info: info.clone(),
                        bytes,
                    });
                    state.info = Some(info);
                    state.init = Some(init.clone());
                    self.hub.tracks[unit.track].set_init(init);
                }
            }
        }
        let Some(state) = self.tracks.get_mut(unit.track) else {
            return;
        };
        if state.info.is_none() {
            counters
                .units_without_config
                .fetch_add(1, Ordering::Relaxed);
            counters.dropped_units.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Video frames were restamped to t_k before the encoders, so the nearest index is
        // exact; audio frames go through their own keep-counting timeline.
        let index = match &mut state.audio_timeline {
            Some(timeline) => match timeline.assign_frame(unit.wall_ns) {
                FrameAssign::Frame { k, .. } => k,
                FrameAssign::Drop => {
                    counters.dropped_units.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            None => self.rate.frame_index_nearest(unit.dts_wall_ns),
        };
        let data = match state.timecode {
            Some((layout, length_size)) => {
                let tc = Timecode::of_frame(self.rate, index);
                match h264::insert_pic_timing(&unit.data, length_size, &layout, &tc) {
                    Ok(data) => data,
                    Err(e) => {
                        counters
                            .units_without_timecode
                            .fetch_add(1, Ordering::Relaxed);
                        if state
                            .timecode_log
                            .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY)
                        {
                            state.timecode_log = Some(std::time::Instant::now());
                            log::warn!(
                                track = state.drop_log.track.as_str();
                                "package: track {} frame {index} sent without its epoch timecode: {e} ({} units so far)",
                                state.drop_log.track,
                                counters.units_without_timecode.load(Ordering::Relaxed)
                            );
                        }
                        unit.data
                    }
                }
            }
            None => unit.data,
        };
        let data = with_captions(state, counters, self.signals.as_deref(), index, data);
        let cts_offset = 0;
        let before = state.fragmenter.stats();
        let fragment = state
            .fragmenter
            .push(index, unit.keyframe, cts_offset, data, unit.filler);
        let after = state.fragmenter.stats();
        if after.dropped_samples > before.dropped_samples {
            counters.dropped_units.fetch_add(
                after.dropped_samples - before.dropped_samples,
                Ordering::Relaxed,
            );
            state.drop_log.note(index, &after);
        }
        if let Some(fragment) = fragment {
            self.emit(unit.track, fragment, false);
        }
    }

    fn emit(&self, track: usize, fragment: Fragment, last: bool) {
        let Some(info) = &self.tracks[track].info else {
            return;
        };
        // A description always has a timescale (the spec's, refused at 0 by validation).
        let Some(timescale) = info.clock() else {
            return;
        };
        let base_dts = fragment.base_dts();
        let brands = if last {
            FragmentBrands::Last
        } else if fragment.filler {
            FragmentBrands::Filler
        } else {
            FragmentBrands::Normal
        };
        // The producer reference time is the epoch time of the first sample: media time *is*
        // wall-clock time here, and both boxes of a pair write the same value.
        let unix_ns = MediaTime::new(base_dts, timescale).nanos(Rounding::Floor);
        // The splices this fragment announces, when it is video (docs/design/signals.md).
        let splices = match (&self.signals, &info.codec) {
            (Some(signals), Codec::H264 { .. }) => {
                let end = MediaTime::new(base_dts + fragment.duration(), timescale)
                    .nanos(Rounding::Floor);
                signals.carried_by_fragment(unix_ns, end)
            }
            _ => Vec::new(),
        };
        let events: Vec<mp4::EventMessage<'_>> =
            splices.iter().map(splice::event_message).collect();
        let params = FragmentParams {
            sequence: fragment.sequence as u32,
            samples: &fragment.samples,
            prft: Some(Prft {
                ntp_timestamp: mp4::ntp_from_unix_ns(unix_ns),
                media_time: base_dts,
            }),
            events: &events,
            brands,
        };
        let bytes = mp4::write_fragment(info, &params);
        let media_bytes: u64 = fragment.samples.iter().map(|s| s.data.len() as u64).sum();
        let counters = &self.counters[track];
        counters.fragments.fetch_add(1, Ordering::Relaxed);
        counters
            .media_bytes
            .fetch_add(media_bytes, Ordering::Relaxed);
        counters
            .next_sequence
            .store(fragment.sequence + 1, Ordering::Relaxed);
        self.hub.tracks[track].publish(PackagedFragment {
            sequence: fragment.sequence,
            base_dts,
            duration: fragment.duration(),
            timescale,
            sample_count: fragment.samples.len() as u32,
            filler: fragment.filler,
            bytes: Bytes::from(bytes),
            media_bytes,
            samples: Arc::new(fragment.samples),
            init: self.tracks[track].init.clone(),
        });
    }
}

/// A video unit of frame `index` with the source's captions of that frame, if it had any
/// (src/captions.rs); a unit they cannot go into goes unchanged, counted and logged.
fn with_captions(
    state: &mut TrackState,
    counters: &TrackCounters,
    signals: Option<&Signals>,
    index: u64,
    data: Vec<u8>,
) -> Vec<u8> {
    let Some(length_size) = state.length_size else {
        return data;
    };
    let Some(cc) = signals.and_then(|s| s.captions.of_frame(index)) else {
        return data;
    };
    match h264::insert_before_first_slice(&data, length_size, &h264::caption_nal(&cc)) {
        Ok(with) => {
            counters.units_with_captions.fetch_add(1, Ordering::Relaxed);
            with
        }
        Err(e) => {
            counters
                .units_without_captions
                .fetch_add(1, Ordering::Relaxed);
            if state
                .captions_log
                .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY)
            {
                state.captions_log = Some(std::time::Instant::now());
                log::warn!(
                    track = state.drop_log.track.as_str();
                    "package: track {} frame {index} sent without its captions: {e} ({} units so far)",
                    state.drop_log.track,
                    counters.units_without_captions.load(Ordering::Relaxed)
                );
            }
            data
        }
    }
}

/// Gives the `avcC` of a video track `pic_struct_present_flag` and returns what the SEI needs;
/// `None` (the track goes without timecode, said in the log) when the record cannot be read.
fn timecode_config(spec: &TrackSpec, avcc: &mut Vec<u8>) -> Option<(PicTimingLayout, u8)> {
    let rewritten = h264::avcc_with_pic_struct(avcc).and_then(|(bytes, layout)| {
        let length_size = h264::AvcDecoderConfig::parse(&bytes)?.length_size;
        Ok((bytes, layout, length_size))
    });
    match rewritten {
        Ok((bytes, layout, length_size)) => {
            *avcc = bytes;
            Some((layout, length_size))
        }
        Err(e) => {
            log::warn!(
                track = spec.name().as_str();
                "package: track {} goes without the epoch timecode: its encoder's avcC cannot take it: {e}",
                spec.name()
            );
            None
        }
    }
}

fn track_info(index: usize, spec: &TrackSpec, codec_data: Vec<u8>) -> TrackInfo {
    let id = index as u32 + 1;
    match spec {
        TrackSpec::Video {
            name,
            width,
            height,
            bitrate,
        } => TrackInfo {
            id,
            name: TrackId::from(name.as_str()),
            timescale: VIDEO_TIMESCALE,
            bitrate: *bitrate,
            codec: Codec::H264 {
                avcc: codec_data,
                width: *width,
                height: *height,
            },
        },
        TrackSpec::Audio {
            sample_rate,
            channels,
            bitrate,
        } => TrackInfo {
            id,
            name: TrackId::audio(),
            timescale: *sample_rate,
            bitrate: *bitrate,
            codec: Codec::Aac {
                asc: codec_data,
                sample_rate: *sample_rate,
                channels: *channels,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::Receiver as FragmentRx;

    /// 30 fps, 2 s GOPs, one GOP per fragment (60 frames).
    fn grid() -> Grid {
        Grid::new(FrameRate::new(30, 1).expect("rate"), 2_000_000_000).expect("grid")
    }

    fn video_spec() -> TrackSpec {
        TrackSpec::Video {
            name: "720p".to_string(),
            width: 1280,
            height: 720,
            bitrate: 3_000_000,
        }
    }

    /// A fragment number near 2026 on the epoch grid, and its first frame index.
    fn start(grid: Grid) -> (u64, u64) {
        let n = 1_764_000_000_000_000_000 / grid.fragment_duration_ns();
        (n, grid.fragment_start_frame(n))
    }

    /// Video frame `k`, keyframe on every GOP start, 100 bytes of `k as u8`.
    fn video_unit(grid: Grid, k: u64, codec_data: Option<&[u8]>, filler: bool) -> EncodedUnit {
        let wall_ns = grid.rate().frame_time_ns(k);
        EncodedUnit {
            track: 0,
            wall_ns,
            dts_wall_ns: wall_ns,
            keyframe: grid.is_gop_start(k),
            data: vec![k as u8; 100],
            codec_data: codec_data.map(<[u8]>::to_vec),
            filler,
        }
    }

    fn video_packager(grid: Grid) -> (Packager, Arc<Hub>, FragmentRx<Arc<PackagedFragment>>) {
        let hub = Hub::for_test(["720p"]);
        let rx = hub.tracks[0].subscribe();
        (
            Packager::new(grid, vec![video_spec()], hub.clone()),
            hub,
            rx,
        )
    }

    fn received(rx: &mut FragmentRx<Arc<PackagedFragment>>) -> Vec<Arc<PackagedFragment>> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// The top-level boxes of `bytes`: (type, payload).
    fn boxes(bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 8 {
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(
                size >= 8 && size <= rest.len(),
                "box size {size} of {}",
                rest.len()
            );
            let kind = [rest[4], rest[5], rest[6], rest[7]];
            out.push((kind, &rest[8..size]));
            rest = &rest[size..];
        }
        assert!(rest.is_empty(), "trailing bytes after the last box");
        out
    }

    fn payload<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        boxes(bytes)
            .into_iter()
            .find(|(k, _)| k == kind)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)))
    }

    /// The `styp` compatible brands.
    fn brands(bytes: &[u8]) -> Vec<[u8; 4]> {
        payload(bytes, b"styp")[8..]
            .chunks(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect()
    }

    #[test]
    fn whole_video_fragments_are_cut_on_the_grid_and_published() {
        let grid = grid();
        let (n, k0) = start(grid);
        let (mut p, hub, mut rx) = video_packager(grid);
        let avcc = [1u8, 0x64, 0, 0x1f, 0xff];
        p.push(video_unit(grid, k0, Some(&avcc), false));
        for k in k0 + 1..=k0 + 120 {
            p.push(video_unit(grid, k, None, false));
        }
        // Frame k0 + 120 opened fragment n + 2 and closed n + 1; n + 2 is still open.
        let got = received(&mut rx);
        assert_eq!(
            got.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            [n, n + 1]
        );
        let init = hub.tracks[0].init().expect("init segment on the hub");
        assert_eq!(init.info.timescale, VIDEO_TIMESCALE);
        assert_eq!(init.info.id, 1);
        assert!(
            matches!(&init.info.codec, Codec::H264 { avcc: a, width: 1280, height: 720 } if a[..] == avcc)
        );
        assert_eq!(&init.bytes[4..8], b"ftyp");
        for (i, f) in got.iter().enumerate() {
            let k = k0 + 60 * i as u64;
            assert_eq!(f.base_dts, grid.rate().frame_ts(k, VIDEO_TIMESCALE));
            assert_eq!(f.duration, 180_000, "a whole 2 s fragment at 90 kHz");
            assert_eq!(f.sample_count, 60);
            assert_eq!(f.samples.len(), 60);
            assert!(f.samples[0].keyframe);
            assert!(!f.filler);
            assert_eq!(f.media_bytes, 6_000);
            assert!(Arc::ptr_eq(f.init.as_ref().expect("init"), &init));
            let kinds: Vec<[u8; 4]> = boxes(&f.bytes).into_iter().map(|(k, _)| k).collect();
            assert_eq!(kinds, [*b"styp", *b"prft", *b"moof", *b"mdat"]);
            assert_eq!(payload(&f.bytes, b"mdat").len(), 6_000);
            assert!(!brands(&f.bytes).contains(b"slat"));
            // prft v1: flags, track id, NTP time of the first sample, its media time.
            let prft = payload(&f.bytes, b"prft");
            assert_eq!(prft[0], 1);
            let ntp = u64::from_be_bytes(prft[8..16].try_into().expect("ntp"));
            let media = u64::from_be_bytes(prft[16..24].try_into().expect("media time"));
            assert_eq!(ntp, mp4::ntp_from_unix_ns(grid.rate().frame_time_ns(k)));
            assert_eq!(media, f.base_dts);
        }
        let c = &p.counters[0];
        assert_eq!(c.units.load(Ordering::Relaxed), 121);
        assert_eq!(c.fragments.load(Ordering::Relaxed), 2);
        assert_eq!(c.media_bytes.load(Ordering::Relaxed), 12_000);
        assert_eq!(c.next_sequence.load(Ordering::Relaxed), n + 2);
        assert_eq!(c.dropped_units.load(Ordering::Relaxed), 0);
    }

    /// The x264 test stream's access units (length-prefixed, without parameter sets) and its
    /// `avcC`.
    fn x264_units_and_avcc() -> (Vec<Vec<u8>>, Vec<u8>) {
        use twincast_media::h264::{AvcDecoderConfig, NAL_PPS, NAL_SPS, nal_unit_type};
        let annexb = include_bytes!("../media/testdata/x264_320x180_30fps.h264");
        let units = h264::split_access_units(annexb).expect("x264 test stream");
        let find = |t| {
            *units[0]
                .iter()
                .find(|n| nal_unit_type(n) == Some(t))
                .expect("parameter set")
        };
        let avcc = AvcDecoderConfig::from_parameter_sets(&[find(NAL_SPS)], &[find(NAL_PPS)])
            .expect("avcC")
            .to_bytes();
        let aus = units
            .iter()
            .map(|au| {
                let nals: Vec<&[u8]> = au
                    .iter()
                    .copied()
                    .filter(|n| !matches!(nal_unit_type(n), Some(NAL_SPS | NAL_PPS)))
                    .collect();
                h264::nals_to_avcc(&nals).expect("sample")
            })
            .collect();
        (aus, avcc)
    }

    /// What [`x264_fragment`] gives: the init's `avcC`, the fragment's samples, its first
    /// frame index and the units that went in.
    struct X264Fragment {
        avcc: Vec<u8>,
        samples: Vec<Vec<u8>>,
        k0: u64,
        units: Vec<Vec<u8>>,
    }

    /// One 60-frame fragment of the x264 stream through a packager with the epoch timecode on
    /// or off.
    fn x264_fragment(epoch_timecode: bool) -> X264Fragment {
        let grid = grid();
        let (_, k0) = start(grid);
        let (aus, avcc) = x264_units_and_avcc();
        let (p, _hub, mut rx) = video_packager(grid);
        let mut p = p.with_epoch_timecode(epoch_timecode);
        for k in k0..=k0 + 60 {
            let i = ((k - k0) % 60) as usize;
            let mut unit = video_unit(grid, k, (k == k0).then_some(&avcc[..]), false);
            unit.keyframe = h264::is_idr(&aus[i]).expect("sample");
            unit.data = aus[i].clone();
            p.push(unit);
        }
        let got = received(&mut rx);
        assert_eq!(got.len(), 1);
        let init = got[0].init.as_ref().expect("init");
        let Codec::H264 { avcc: out, .. } = &init.info.codec else {
            panic!("video");
        };
        let samples = got[0].samples.iter().map(|s| s.data.to_vec()).collect();
        assert_eq!(
            p.counters[0].units_without_timecode.load(Ordering::Relaxed),
            0
        );
        X264Fragment {
            avcc: out.clone(),
            samples,
            k0,
            units: aus,
        }
    }

    #[test]
    fn epoch_timecode_goes_into_every_video_unit_and_the_avcc() {
        let grid = grid();
        let X264Fragment {
            avcc, samples, k0, ..
        } = x264_fragment(true);
        let (_, layout) = h264::avcc_with_pic_struct(&avcc).expect("avcC");
        let sps = h264::AvcDecoderConfig::parse(&avcc)
            .expect("avcC")
            .parse_sps();
        assert!(
            sps.expect("sps")
                .pic_timing
                .expect("vui")
                .pic_struct_present
        );
        for (i, data) in samples.iter().enumerate() {
            let tc = Timecode::of_frame(grid.rate(), k0 + i as u64);
            let sei = h264::pic_timing_nal(&layout, &tc, (0, 0));
            let nals: Vec<&[u8]> = h264::AvccNals::new(data).map(|n| n.expect("nal")).collect();
            assert!(
                nals.contains(&&sei[..]),
                "frame {i} lacks its timecode {tc:?}"
            );
        }
    }

    #[test]
    fn without_epoch_timecode_the_encoder_output_passes_unchanged() {
        let f = x264_fragment(false);
        assert_eq!(f.avcc, x264_units_and_avcc().1);
        assert_eq!(f.samples, f.units);
    }

    #[test]
    fn start_up_mid_fragment_waits_for_the_next_grid_start() {
        let grid = grid();
        let (n, k0) = start(grid);
        let (mut p, _hub, mut rx) = video_packager(grid);
        // Codec data on a frame that is not a fragment start: 50 frames cannot be placed.
        p.push(video_unit(grid, k0 + 10, Some(&[1, 2, 3]), false));
        for k in k0 + 11..=k0 + 120 {
            p.push(video_unit(grid, k, None, false));
        }
        let got = received(&mut rx);
        assert_eq!(got.iter().map(|f| f.sequence).collect::<Vec<_>>(), [n + 1]);
        assert_eq!(got[0].sample_count, 60);
        assert_eq!(p.counters[0].dropped_units.load(Ordering::Relaxed), 50);
        assert_eq!(
            p.counters[0].units_without_config.load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn new_codec_parameters_cut_the_fragment_and_start_a_new_init() {
        // Two 1 s GOPs per fragment: a rebuilt encoder hands over at the GOP start k0 + 30.
        let grid = Grid::new(FrameRate::new(30, 1).expect("rate"), 1_000_000_000)
            .and_then(|g| g.with_fragment_gops(2))
            .expect("grid");
        let (n, k0) = start(grid);
        let (mut p, hub, mut rx) = video_packager(grid);
        p.push(video_unit(grid, k0, Some(&[1, 0xaa]), false));
        for k in k0 + 1..k0 + 30 {
            // The same parameters again change nothing.
            p.push(video_unit(
                grid,
                k,
                (k == k0 + 5).then_some(&[1, 0xaa][..]),
                false,
            ));
        }
        let first = hub.tracks[0].init().expect("first init");
        assert!(received(&mut rx).is_empty(), "fragment n is still open");
        p.push(video_unit(grid, k0 + 30, Some(&[1, 0xbb]), false));
        let cut = received(&mut rx);
        assert_eq!(cut.len(), 1, "the change flushes fragment n");
        assert_eq!(cut[0].sequence, n);
        assert_eq!(cut[0].sample_count, 30);
        assert_eq!(
            cut[0].duration,
            30 * 3_000,
            "flushed: the last frame lasts one frame"
        );
        assert!(Arc::ptr_eq(cut[0].init.as_ref().expect("init"), &first));
        let second = hub.tracks[0].init().expect("second init");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(matches!(&second.info.codec, Codec::H264 { avcc, .. } if avcc[..] == [1, 0xbb]));
        assert_ne!(first.bytes, second.bytes);
        // The rest of the closed fragment n cannot be placed; fragment n + 1 is whole.
        for k in k0 + 31..=k0 + 120 {
            p.push(video_unit(grid, k, None, false));
        }
        let next = received(&mut rx);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].sequence, n + 1);
        assert_eq!(next[0].sample_count, 60);
        assert!(Arc::ptr_eq(next[0].init.as_ref().expect("init"), &second));
        // k0 + 30 itself and k0 + 31 .. k0 + 59.
        assert_eq!(p.counters[0].dropped_units.load(Ordering::Relaxed), 30);
    }

    #[test]
    fn filler_fragments_carry_slat_and_the_last_one_lmsg() {
        let grid = grid();
        let (n, k0) = start(grid);
        let (p, _hub, mut rx) = video_packager(grid);
        let (tx, units) = std::sync::mpsc::channel();
        tx.send(video_unit(grid, k0, Some(&[1, 2]), true))
            .expect("send");
        for k in k0 + 1..k0 + 90 {
            tx.send(video_unit(grid, k, None, k < k0 + 30))
                .expect("send");
        }
        drop(tx);
        // The capture side hung up: what is queued is packaged, then the track is flushed.
        p.run(units);
        let got = received(&mut rx);
        assert_eq!(
            got.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            [n, n + 1]
        );
        assert!(got[0].filler, "a fragment with slate frames is filler");
        assert!(brands(&got[0].bytes).contains(b"slat"));
        assert!(!brands(&got[0].bytes).contains(b"lmsg"));
        assert!(!got[1].filler);
        assert_eq!(got[1].sample_count, 30);
        assert!(brands(&got[1].bytes).contains(b"lmsg"));
        assert!(!brands(&got[1].bytes).contains(b"slat"));
    }

    #[test]
    fn a_stop_flag_ends_the_packager_after_what_is_queued() {
        let grid = grid();
        let (n, k0) = start(grid);
        let (p, _hub, mut rx) = video_packager(grid);
        let (tx, units) = std::sync::mpsc::channel();
        tx.send(video_unit(grid, k0, Some(&[1, 2]), false))
            .expect("send");
        for k in k0 + 1..k0 + 10 {
            tx.send(video_unit(grid, k, None, false)).expect("send");
        }
        // The sender stays alive (an appsink GStreamer keeps): only the flag ends the loop.
        let stop = std::sync::atomic::AtomicBool::new(true);
        p.run_until(units, &stop);
        let got = received(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sequence, n);
        assert_eq!(got[0].sample_count, 10);
        drop(tx);
    }

    #[test]
    fn units_of_an_unknown_track_are_ignored() {
        let grid = grid();
        let (_, k0) = start(grid);
        let (mut p, hub, mut rx) = video_packager(grid);
        let mut unit = video_unit(grid, k0, Some(&[1, 2]), false);
        unit.track = 7;
        p.push(unit);
        assert!(hub.tracks[0].init().is_none());
        assert!(received(&mut rx).is_empty());
        assert_eq!(p.counters[0].units.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn audio_fragments_follow_the_aac_grid() {
        let grid = grid();
        let spec = TrackSpec::Audio {
            sample_rate: 48_000,
            channels: 2,
            bitrate: 64_000,
        };
        let hub = Hub::for_test(["audio"]);
        let mut rx = hub.tracks[0].subscribe();
        let mut p = Packager::new(grid, vec![spec], hub.clone());
        let n = 1_764_000_000_000_000_000 / grid.fragment_duration_ns();
        let j0 = grid.audio_fragment_start_frame(n, 48_000);
        let j1 = grid.audio_fragment_start_frame(n + 1, 48_000);
        let j2 = grid.audio_fragment_start_frame(n + 2, 48_000);
        let aac = AudioTimeline::new(48_000);
        let wall = |j: u64| aac.frame_time_ns(j);
        p.push(audio_unit(wall(j0), Some(vec![0x11, 0x90])));
        for j in j0 + 1..=j2 {
            p.push(audio_unit(wall(j), None));
        }
        let got = received(&mut rx);
        assert_eq!(
            got.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            [n, n + 1]
        );
        assert_eq!(got[0].base_dts, j0 * 1024);
        assert_eq!(got[0].sample_count as u64, j1 - j0);
        assert_eq!(got[0].duration, (j1 - j0) * 1024);
        let init = hub.tracks[0].init().expect("init");
        assert_eq!(init.info.name, "audio");
        assert_eq!(init.info.timescale, 48_000);
        assert_eq!(p.counters[0].dropped_units.load(Ordering::Relaxed), 0);
    }

    fn audio_unit(wall_ns: u64, codec_data: Option<Vec<u8>>) -> EncodedUnit {
        EncodedUnit {
            track: 0,
            wall_ns,
            dts_wall_ns: wall_ns,
            keyframe: true,
            data: vec![0x21; 40],
            codec_data,
            filler: false,
        }
    }

    #[test]
    fn every_unit_the_packager_cannot_place_is_counted() {
        let grid = Grid::new(FrameRate::new(30, 1).expect("rate"), 2_000_000_000).expect("grid");
        let spec = TrackSpec::Audio {
            sample_rate: 48_000,
            channels: 2,
            bitrate: 64_000,
        };
        let mut p = Packager::new(grid, vec![spec], Hub::for_test(["audio"]));
        let t0 = 1_764_000_000_000_000_000u64;
        // Before the codec configuration: dropped and counted.
        p.push(audio_unit(t0, None));
        assert_eq!(p.counters[0].dropped_units.load(Ordering::Relaxed), 1);
        assert_eq!(
            p.counters[0].units_without_config.load(Ordering::Relaxed),
            1
        );
        // The same AAC frame time twice: the second cannot be placed.
        p.push(audio_unit(t0, Some(vec![0x11, 0x90])));
        let before = p.counters[0].dropped_units.load(Ordering::Relaxed);
        p.push(audio_unit(t0, None));
        assert!(
            p.counters[0].dropped_units.load(Ordering::Relaxed) > before,
            "a repeated frame time is a counted drop"
        );
    }
}
