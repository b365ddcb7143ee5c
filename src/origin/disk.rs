//! The async side of the DVR disk tier (`dvr.rs`): each blocking [`DiskStore`] call runs on
//! the disk pool below, so neither the feeder nor a request ever blocks a runtime thread on
//! the disk.
//!
//! The pool is [`DISK_THREADS`] threads of its own with a bounded queue, not tokio's blocking
//! pool: that one grows a thread for each call made while the others are busy and keeps it
//! while calls keep coming, so its size followed the most writes that ever overlapped (every
//! track's segment ends at the same instant). The soak saw the daemon's threads rise 32 → 34
//! in its first minutes that way (docs/ref/endurance.md). A fixed pool keeps the count flat
//! and bounds what waits: a caller waits for room in the queue, it never adds a thread.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::dvr::DiskStore;
use super::window::Segment;
use crate::hub::InitSegment;

/// Threads of the disk pool: two, so a slow read of an old segment does not hold every write.
pub const DISK_THREADS: usize = 2;
/// Calls queued at most; a caller past it waits for room.
pub const DISK_QUEUE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// The process's disk pool, started on first use; None when no thread could be started.
fn pool() -> Option<&'static tokio::sync::mpsc::Sender<Job>> {
    static POOL: OnceLock<Option<tokio::sync::mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(DISK_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..DISK_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("twincast-disk-{i}"))
                .spawn(move || {
                    loop {
                        // One thread waits for the next call at a time; the other runs its own.
                        let job = crate::sync::lock(&rx).blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => log::error!("origin: could not start disk thread {i}: {e}"),
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// Runs `f` on the disk pool; None if the pool is gone (it never goes while the process runs).
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    match pool() {
        Some(pool) => pool.send(job).await.ok()?,
        // No disk thread: the call runs here, on a runtime thread (slower, never lost).
        None => job(),
    }
    rx.await.ok()
}

/// Deletes the files of `expired` segments, then writes `published` (if it has its bytes).
/// Returns whether it is on disk and the (track, start) of segments the byte bound evicted.
pub async fn store(
    disk: &Arc<DiskStore>,
    track: usize,
    published: Option<Segment>,
    expired: Vec<Segment>,
) -> (bool, Vec<(usize, u64)>) {
    let disk = disk.clone();
    run(move || {
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
    let _ = run(move || disk.set_init(track, &init.bytes)).await;
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
    run(move || disk.open_track(track, &init, timescale, window))
        .await
        .unwrap_or_default()
}
