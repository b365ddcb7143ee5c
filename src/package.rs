//! Package: encoded units from capture → timeline indices → whole CMAF fragments → hub.
//!
//! Runs on one plain thread, synchronous and deterministic: everything here is pure media-crate
//! work (index from the epoch time, fragment cutting, box writing) plus a non-blocking publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use bytes::Bytes;
use twincast_media::fragmenter::{Fragment, Fragmenter};
use twincast_media::mp4::{self, FragmentBrands, FragmentParams, Prft};
use twincast_media::timeline::{AudioTimeline, FrameAssign, FrameRate, Grid};
use twincast_media::{Codec, TrackInfo};

use crate::capture::EncodedUnit;
use crate::hub::{Hub, InitSegment, PackagedFragment};

/// How often a waiting packager looks at its stop flag.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Video timescale (design §2).
pub const VIDEO_TIMESCALE: u32 = 90_000;

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
}

struct TrackState {
    info: Option<TrackInfo>,
    /// The init segment fragments are written against.
    init: Option<Arc<InitSegment>>,
    fragmenter: Fragmenter,
    audio_timeline: Option<AudioTimeline>,
    drop_log: DropLog,
}

/// Logs the packager's drops of one track, at most once every [`DROP_LOG_EVERY`], with the
/// counts by reason since the start: a lost frame is never silent.
struct DropLog {
    track: String,
    last: Option<std::time::Instant>,
}

/// Least time between two drop warnings of one track.
const DROP_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl DropLog {
    fn new(spec: &TrackSpec) -> DropLog {
        let track = match spec {
            TrackSpec::Video { name, .. } => name.clone(),
            TrackSpec::Audio { .. } => "audio".to_string(),
        };
        DropLog { track, last: None }
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
                }
            })
            .collect();
        Packager {
            rate: grid.rate(),
            specs: Arc::new(std::sync::RwLock::new(specs)),
            hub,
            tracks,
            counters,
        }
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
        if let Some(codec_data) = unit.codec_data {
            let spec = self
                .specs
                .read()
                .ok()
                .and_then(|s| s.get(unit.track).cloned());
            if let Some(spec) = spec {
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
        let cts_offset = 0;
        let before = state.fragmenter.stats();
        let fragment =
            state
                .fragmenter
                .push(index, unit.keyframe, cts_offset, unit.data, unit.filler);
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
        let unix_ns = (u128::from(base_dts) * 1_000_000_000 / u128::from(info.timescale)) as u64;
        let params = FragmentParams {
            sequence: fragment.sequence as u32,
            samples: &fragment.samples,
            prft: Some(Prft {
                ntp_timestamp: mp4::ntp_from_unix_ns(unix_ns),
                media_time: base_dts,
            }),
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
            sample_count: fragment.samples.len() as u32,
            filler: fragment.filler,
            bytes: Bytes::from(bytes),
            media_bytes,
            samples: Arc::new(fragment.samples),
            init: self.tracks[track].init.clone(),
        });
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
            name: name.clone(),
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
            name: "audio".to_string(),
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
        let mut p = Packager::new(grid, vec![spec], Hub::new(["audio".to_string()]));
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
