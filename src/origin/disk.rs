//! The async side of the DVR disk tier (`dvr.rs`): each blocking [`DiskStore`] call runs on
//! tokio's blocking pool, so neither the feeder nor a request ever blocks a runtime thread on
//! the disk.

use std::sync::Arc;

use bytes::Bytes;

use super::dvr::DiskStore;
use super::window::Segment;
use crate::hub::InitSegment;

/// Deletes the files of `expired` segments, then writes `published` (if it has its bytes).
/// Returns whether it is on disk and the (track, start) of segments the byte bound evicted.
pub async fn store(
    disk: &Arc<DiskStore>,
    track: usize,
    published: Option<Segment>,
    expired: Vec<Segment>,
) -> (bool, Vec<(usize, u64)>) {
    let disk = disk.clone();
    tokio::task::spawn_blocking(move || {
        for s in &expired {
            disk.remove(track, s);
        }
        match &published {
            Some(s) => match &s.ram {
                Some(bytes) => disk.write(track, s, bytes),
                None => (false, Vec::new()),
            },
            None => (false, Vec::new()),
        }
    })
    .await
    .unwrap_or_default()
}

/// Records a track's new current init segment ([`DiskStore::set_init`]).
pub async fn set_init(disk: &Arc<DiskStore>, track: usize, init: Arc<InitSegment>) {
    let disk = disk.clone();
    let _ = tokio::task::spawn_blocking(move || disk.set_init(track, &init.bytes)).await;
}

/// A track's segments on disk written with `init` ([`DiskStore::open_track`]).
pub async fn open_track(
    disk: &Arc<DiskStore>,
    track: usize,
    init: Bytes,
    timescale: twincast_media::Timescale,
    window: u64,
) -> Vec<Segment> {
    let disk = disk.clone();
    tokio::task::spawn_blocking(move || disk.open_track(track, &init, timescale, window))
        .await
        .unwrap_or_default()
}
