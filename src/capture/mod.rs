//! Capture: the GStreamer pipeline, from the source to one appsink per track.
//!
//! ```text
//! source → convert/scale/rate → caps(I420, WxH, N/D) ─[timeline probe]→ tee
//!   tee → queue → videoscale → caps(w×h) → H.264 encoder → appsink   (per rendition)
//! audio source → convert/resample → caps(S16 interleaved) ─[grid trim probe]→ AAC → appsink
//! ```
//!
//! The timeline probe gives every raw frame its index k on the epoch grid (design §2), restamps
//! it to exactly `t_k`, and sends a force-key-unit event into the tee right before every frame
//! that starts a GOP, so every rendition puts its IDR on the same frame. The appsinks are the only
//! GStreamer→Rust seam: each pushes `EncodedUnit`s into one bounded channel (drops counted).

pub mod elements;
mod file_input;
mod pipeline;
mod probes;
pub mod source;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

pub use pipeline::{Capture, CaptureError};

/// Capacity of the channel between the appsinks and the packager, in access units. At 4 tracks
/// and 30 fps this is several seconds: the packager only copies bytes, so it never falls behind
/// unless the box is overloaded, and then whole units are dropped and counted.
pub const UNIT_QUEUE_CAPACITY: usize = 512;

/// One encoded access unit leaving GStreamer.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Index of the track: renditions in config order, then audio.
    pub track: usize,
    /// Presentation time as wall-clock ns since the epoch (base_time + running time).
    pub wall_ns: u64,
    /// Decode time as wall-clock ns since the epoch (equal to `wall_ns` without B-frames).
    pub dts_wall_ns: u64,
    pub keyframe: bool,
    /// AVCC (length-prefixed) H.264 access unit, or one raw AAC frame.
    pub data: Vec<u8>,
    /// Codec configuration (avcC record / AudioSpecificConfig) when it is new or changed.
    pub codec_data: Option<Vec<u8>>,
    /// Built from slate frames while the input is lost.
    pub filler: bool,
}

/// Counters shared between the GStreamer threads and the rest of the daemon.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Raw frames that entered the timeline.
    pub frames_in: AtomicU64,
    /// Frames dropped by the timeline (before the grid start, or behind the timeline).
    pub frames_dropped: AtomicU64,
    /// Times the timeline re-anchored forward (a gap in the input).
    pub reanchors: AtomicU64,
    /// Encoded units dropped because the packager's queue was full.
    pub units_dropped: AtomicU64,
    /// Audio samples trimmed at start to land on the 1024-sample epoch grid.
    pub audio_trimmed_samples: AtomicU64,
    /// Wall-clock ns of the last raw video frame seen (0 before the first).
    pub last_frame_wall_ns: AtomicU64,
}

/// The sending half handed to every appsink.
#[derive(Clone)]
pub struct UnitSender {
    tx: SyncSender<EncodedUnit>,
    stats: Arc<CaptureStats>,
}

impl UnitSender {
    pub fn new(capacity: usize, stats: Arc<CaptureStats>) -> (Self, Receiver<EncodedUnit>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (UnitSender { tx, stats }, rx)
    }

    /// Never blocks a streaming thread: a full queue drops the unit and counts it.
    fn send(&self, unit: EncodedUnit) {
        match self.tx.try_send(unit) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.units_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
