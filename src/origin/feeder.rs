//! The feeder: the only writer of the origin's state (docs/design/origin.md, *From fragments
//! to segments*).
//!
//! Per track it holds the window (`window.rs`) and the init segment versions (`inits.rs`) under
//! one lock that nothing else takes. After each change it copies what readers may see into a
//! new [`TrackSnapshot`] and replaces the origin's [`OriginSnapshot`] whole; the playlist
//! writers and the HTTP handlers only ever clone that `Arc`. A track's snapshot reuses the
//! previous one's segments while the window's and the versions' revisions did not move.
//!
//! One task per track moves fragments and init segments from the hub into the feeder; the disk
//! tier's blocking work runs on tokio's blocking pool (`disk.rs`) with no lock held.
//!
//! Lock order: a track's state, then the snapshot cell; never two tracks' states at once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio_util::sync::CancellationToken;
use twincast_media::{Timescale, TrackId};

use super::counters::Counters;
use super::disk;
use super::dvr::DiskStore;
use super::inits::InitVersions;
use super::settings::OriginSettings;
use super::snapshot::{OriginSnapshot, TrackSnapshot};
use super::window::{PushOutcome, TrackWindow, fnv1a};
use crate::hub::{Hub, InitSegment, PackagedFragment};

/// One track's state, as only the feeder sees it.
struct TrackState {
    name: TrackId,
    inits: InitVersions,
    window: TrackWindow,
    /// The revisions (window, versions) the last snapshot was taken at.
    published: Option<(u64, u64)>,
}

pub struct Feeder {
    settings: OriginSettings,
    tracks: Vec<Mutex<TrackState>>,
    disk: Option<Arc<DiskStore>>,
    snapshot: RwLock<Arc<OriginSnapshot>>,
}

impl Feeder {
    /// The feeder of `names`, windows at the given timescales (the hub's, which every init
    /// segment of the track repeats), the disk tier if any.
    pub fn new(
        settings: OriginSettings,
        tracks: Vec<(TrackId, Timescale)>,
        disk: Option<Arc<DiskStore>>,
    ) -> Self {
        let mut states: Vec<TrackState> = tracks
            .into_iter()
            .map(|(name, timescale)| TrackState {
                name,
                inits: InitVersions::default(),
                window: settings.new_window(timescale),
                published: None,
            })
            .collect();
        let first = OriginSnapshot::new(
            settings.timing(),
            states
                .iter_mut()
                .map(|t| Arc::new(t.snapshot(None)))
                .collect(),
            Default::default(),
        );
        Feeder {
            settings,
            tracks: states.into_iter().map(Mutex::new).collect(),
            disk,
            snapshot: RwLock::new(Arc::new(first)),
        }
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<OriginSnapshot> {
        crate::sync::read(&self.snapshot).clone()
    }

    fn lock(&self, track: usize) -> Option<MutexGuard<'_, TrackState>> {
        self.tracks.get(track).map(crate::sync::lock)
    }

    /// Replaces track `track`'s part of the snapshot (its state locked by the caller).
    fn publish(&self, track: usize, state: &mut TrackState) {
        let mut cell = crate::sync::write(&self.snapshot);
        let Some(previous) = cell.tracks.get(track) else {
            return;
        };
        let next = Arc::new(state.snapshot(Some(previous)));
        *cell = Arc::new(cell.with_track(track, next));
    }

    /// Feeds every track's window from the hub until cancelled.
    pub fn spawn(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        counters: Arc<Counters>,
        cancel: CancellationToken,
    ) {
        for (i, track) in hub.tracks.iter().enumerate() {
            let mut fragments = track.subscribe();
            let mut init = track.watch_init();
            let feeder = self.clone();
            let counters = counters.clone();
            let cancel = cancel.clone();
            let name = track.name.clone();
            tokio::spawn(async move {
                // An init segment set before we subscribed.
                let first = init.borrow_and_update().clone();
                if first.is_some() {
                    feeder.set_init(i, first).await;
                }
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        changed = init.changed() => {
                            if changed.is_err() { break; }
                            let new = init.borrow_and_update().clone();
                            feeder.set_init(i, new).await;
                        }
                        received = fragments.recv() => match received {
                            Ok(fragment) => feeder.feed(i, &fragment).await,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                counters.fragments_lagged.fetch_add(n, Ordering::Relaxed);
                                log::warn!(target: "origin", "track {name}: origin fell {n} fragments behind; they are not in the window");
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                }
            });
        }
    }

    /// One fragment into a track's window; a completed segment goes to disk, the RAM part is
    /// trimmed and the disk tier's evictions are applied.
    pub async fn feed(&self, track: usize, fragment: &PackagedFragment) {
        let outcome = {
            let Some(mut st) = self.lock(track) else {
                return;
            };
            let outcome = st.push(fragment);
            self.publish(track, &mut st);
            match outcome {
                Some(outcome) => outcome,
                None => return,
            }
        };
        if let Some(disk) = &self.disk
            && (outcome.published.is_some() || !outcome.expired_on_disk.is_empty())
        {
            let published = outcome.published.clone();
            let (written, evicted) =
                disk::store(disk, track, published, outcome.expired_on_disk).await;
            if written
                && let Some(s) = &outcome.published
                && let Some(mut st) = self.lock(track)
            {
                st.window.mark_on_disk(s.start);
                self.publish(track, &mut st);
            }
            for (other, start) in evicted {
                if let Some(mut st) = self.lock(other) {
                    st.window.drop_disk_copy(start);
                    self.publish(other, &mut st);
                }
            }
        }
        let Some(mut st) = self.lock(track) else {
            return;
        };
        st.window.trim_ram();
        let referenced = st.window.referenced_inits();
        st.inits.retain(&referenced);
        self.publish(track, &mut st);
    }

    /// A track's init segment (first, or changed). The first one, or one with a new timescale,
    /// starts a new window, seeded from the disk tier; a new version with the same timescale
    /// (a reload changed the codec parameters) becomes the current one while the segments of
    /// the older versions stay in the window with their own.
    pub async fn set_init(&self, track: usize, init: Option<Arc<InitSegment>>) {
        let Some(new) = init else {
            return;
        };
        let id = fnv1a(&new.bytes);
        let Some(timescale) = new.info.clock() else {
            return; // the packager writes no init segment with timescale 0
        };
        let (previous, name) = {
            let Some(st) = self.lock(track) else {
                return;
            };
            let previous = st.inits.current().map(|c| {
                let previous_id = st.inits.current_id().unwrap_or(0);
                (previous_id, c.info.clock())
            });
            (previous, st.name.clone())
        };
        match previous {
            Some((previous_id, _)) if previous_id == id => return,
            Some((_, previous_timescale)) if previous_timescale == Some(timescale) => {
                log::info!(target: "origin", "track {name}: new init segment {id:016x} (new codec parameters); older segments keep theirs");
                if let Some(mut st) = self.lock(track) {
                    st.inits.set_current(id, new.clone());
                    self.publish(track, &mut st);
                }
                if let Some(disk) = &self.disk {
                    disk::set_init(disk, track, new).await;
                }
                return;
            }
            _ => {}
        }
        let mut fresh = self.settings.new_window(timescale);
        if let Some(disk) = &self.disk {
            let window = self.settings.window_ticks(timescale);
            let loaded = disk::open_track(disk, track, new.bytes.clone(), timescale, window).await;
            if !loaded.is_empty() {
                log::info!(target: "origin", "track {name}: {} DVR segments reloaded from disk", loaded.len());
            }
            fresh.preload(loaded);
        }
        if let Some(mut st) = self.lock(track) {
            st.inits.set_current(id, new);
            // The old window (and the versions it referenced) is gone.
            st.inits.retain(&fresh.referenced_inits());
            st.window = fresh;
            st.published = None;
            self.publish(track, &mut st);
        }
    }
}

impl TrackState {
    /// Places a fragment: notes the init segment it was written against (the current one when
    /// it does not say) before a segment can reference it. `None`: a fragment of an init
    /// segment with another timescale than the window's (one still queued from before a
    /// timescale change), which cannot be placed.
    fn push(&mut self, fragment: &PackagedFragment) -> Option<PushOutcome> {
        let init_id = match &fragment.init {
            Some(init) => {
                let id = fnv1a(&init.bytes);
                if self.inits.get(id).is_none() {
                    self.inits.note(id, init);
                }
                id
            }
            None => self.inits.current_id().unwrap_or(0),
        };
        if fragment
            .init
            .as_ref()
            .is_some_and(|i| i.info.clock() != Some(self.window.timescale))
        {
            self.window.fragments_skipped += 1;
            return None;
        }
        Some(self.window.push(fragment, init_id))
    }

    /// A snapshot of the state; `previous`'s segments are reused when nothing they show
    /// changed since it was taken.
    fn snapshot(&mut self, previous: Option<&Arc<TrackSnapshot>>) -> TrackSnapshot {
        let revisions = (self.window.revision(), self.inits.revision());
        let unchanged = self.published == Some(revisions);
        self.published = Some(revisions);
        TrackSnapshot::new(
            &self.name,
            &self.inits,
            &self.window,
            previous.map(|p| p.as_ref()),
            unchanged,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[tokio::test]
    async fn a_reader_keeps_its_snapshot_and_unchanged_segments_are_shared() {
        let origin = origin(600).await;
        feed_both(&origin, 100, None).await;
        let before = origin.snapshot();
        // An index already published: skipped, counted, the segments untouched.
        origin
            .clone()
            .feed(0, &fragment(100, 100 * 90_000, 90_000, None))
            .await;
        let skipped = origin.snapshot();
        let (b, s) = (&before.tracks[0], &skipped.tracks[0]);
        assert!(s.shares_content_with(b));
        assert_eq!((b.fragments_skipped, s.fragments_skipped), (0, 1));
        assert!(skipped.tracks[1].shares_content_with(&before.tracks[1]));
        // A new segment: a new copy for that track only; the old snapshot is as it was.
        origin
            .clone()
            .feed(0, &fragment(101, 101 * 90_000, 90_000, None))
            .await;
        let after = origin.snapshot();
        assert!(!after.tracks[0].shares_content_with(s));
        assert!(after.tracks[1].shares_content_with(&before.tracks[1]));
        assert_eq!(after.tracks[0].segments().len(), 2);
        assert_eq!(before.tracks[0].segments().len(), 1);
        assert_eq!(
            before
                .media_playlist("v", &[])
                .map(|t| t.matches(".m4s").count()),
            Some(1)
        );
    }
}
