//! The origin's counters: request and connection counts (atomics the HTTP side bumps), and the
//! figures of `/status` and `/metrics` ([`OriginStats`]), taken from a snapshot of the windows
//! and the disk tier's own counters.

use std::sync::atomic::{AtomicU64, Ordering};

use twincast_media::MediaTime;

use super::dvr::DiskStats;
use super::snapshot::{OriginSnapshot, TrackSnapshot};

/// Request counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub denied: AtomicU64,
    pub not_found: AtomicU64,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub disk_read_errors: AtomicU64,
    pub fragments_lagged: AtomicU64,
}

/// Per-track figures of [`OriginStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub name: String,
    /// Segments listed (RAM and disk).
    pub segments: u64,
    /// Segments whose bytes are in RAM, and those bytes.
    pub ram_segments: u64,
    pub ram_bytes: u64,
    /// Segments with a copy on disk.
    pub disk_segments: u64,
    /// Index (media sequence number) of the oldest and newest segment.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// Window duration in ms (newest end − oldest start).
    pub window_ms: u64,
    /// Segments that left RAM with no disk copy (disk trouble).
    pub lost_without_disk: u64,
    pub fragments_skipped: u64,
}

/// What the origin reports for `/status` and `/metrics` (plain values, a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginStats {
    pub tracks: Vec<TrackStats>,
    /// Bytes and files in the disk tier (all tracks), and disk errors (write, list, create).
    pub disk_bytes: u64,
    pub disk_files: u64,
    pub disk_errors: u64,
    /// Segment files the disk tier deleted to stay under `dvr_max_bytes`.
    pub disk_evicted: u64,
    /// Segment reads from disk that failed (served 404).
    pub disk_read_errors: u64,
    pub disk_enabled: bool,
    pub requests: u64,
    /// Requests refused by the allow-list (403).
    pub denied_requests: u64,
    pub not_found: u64,
    pub connections: u64,
    /// Connections closed at once because the connection limit was reached.
    pub connections_refused: u64,
    /// Fragments the origin missed because it fell behind the hub.
    pub fragments_lagged: u64,
}

impl TrackStats {
    /// The figures of one track's snapshot.
    pub fn of(t: &TrackSnapshot) -> Self {
        let segments = t.segments();
        let (first, last) = (segments.first(), segments.last());
        let ts = t.timescale();
        TrackStats {
            name: t.name().to_string(),
            segments: segments.len() as u64,
            ram_segments: segments.iter().filter(|s| s.ram.is_some()).count() as u64,
            ram_bytes: t.ram_bytes(),
            disk_segments: segments.iter().filter(|s| s.on_disk).count() as u64,
            first_index: first.map(|s| s.index),
            last_index: last.map(|s| s.index),
            window_ms: match (first, last) {
                (Some(f), Some(l)) => {
                    MediaTime::new(l.end().saturating_sub(f.start), ts).as_millis()
                }
                _ => 0,
            },
            lost_without_disk: t.lost_without_disk,
            fragments_skipped: t.fragments_skipped,
        }
    }
}

impl OriginStats {
    /// The figures of a snapshot, the disk tier's (`None`: RAM only) and the counters.
    pub fn of(snapshot: &OriginSnapshot, disk: Option<DiskStats>, c: &Counters) -> Self {
        let disk_enabled = disk.is_some();
        let disk = disk.unwrap_or_default();
        OriginStats {
            tracks: snapshot.tracks.iter().map(|t| TrackStats::of(t)).collect(),
            disk_bytes: disk.bytes,
            disk_files: disk.files,
            disk_errors: disk.errors,
            disk_evicted: disk.evicted,
            disk_read_errors: c.disk_read_errors.load(Ordering::Relaxed),
            disk_enabled,
            requests: c.requests.load(Ordering::Relaxed),
            denied_requests: c.denied.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
            fragments_lagged: c.fragments_lagged.load(Ordering::Relaxed),
        }
    }
}
