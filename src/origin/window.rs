//! The origin's segment window: fragments from the hub grouped into HLS/DASH segments.
//!
//! Segment s of a track holds fragments `[s·F, (s+1)·F)` (F = fragments per segment), so segment
//! indices, start times and names are the same on both boxes of a pair and after a restart. A
//! segment is published when its last fragment arrives. A segment that would not start on its
//! boundary (start-up, after a gap) is not published at all: a partial segment would carry a
//! name the other box never uses. A segment cut short by a gap is published with what it has.
//!
//! Two tiers: the newest segments keep their bytes in RAM (bounded by `ram_duration` and
//! `ram_bytes`); every segment is also written to the disk tier (`dvr.rs`) by the feeder, and a
//! segment that leaves the RAM part is served from disk. A segment that leaves the RAM part
//! without a copy on disk (disk full or unwritable) leaves the window, counted. The whole window
//! is bounded by duration (the DVR window); the disk tier by bytes.
//!
//! Holes (a restart, an outage, a segment lost to a full disk) are rendered as EXT-X-GAP entries
//! followed by EXT-X-DISCONTINUITY, so that a segment's media sequence number is its index from
//! the epoch on both boxes. The origin gathers every track's discontinuities
//! ([`TrackWindow::discontinuities`]) so that each playlist carries all of them
//! (`twincast_media::playlist::Discontinuities`).
//!
//! Init segment versions: a reload that rebuilds an encoder can bring new codec parameters (x264
//! writes the HRD bitrate into the SPS), so a track's init segment can change from some segment
//! on. Every segment records the id of the init segment its fragments were written against
//! (`init_id`, the FNV-1a of its bytes); a fragment with another init than the pending segment's
//! closes it. A change is a discontinuity (HLS) and a Period boundary (DASH): the window keeps
//! the indices where the id changes ([`TrackWindow::version_changes`]), including the one its
//! oldest segment belongs to, so a Period's start does not move when older segments slide out.
//! `inits.rs` holds, per track, the init segments the window still references.
//!
//! Only the feeder (`feeder.rs`) holds a window, and it is the only writer; readers see a copy
//! in the origin's snapshot (`snapshot.rs`). Every change to what a reader can see bumps
//! [`TrackWindow::revision`], so the feeder copies the segments only then.

use std::collections::{BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};

use twincast_media::Timescale;
use twincast_media::playlist::WindowSegment;

use crate::hub::PackagedFragment;

/// One segment in the window.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Segment index s from the epoch: the HLS media sequence number.
    pub index: u64,
    /// Start time in the track timescale: the file name is `<start>.m4s`.
    pub start: u64,
    /// Duration in the track timescale.
    pub duration: u64,
    /// Some fragment in it was built from slate frames.
    pub filler: bool,
    /// Size in bytes.
    pub len: u64,
    /// Media bytes (without boxes), for bitrate figures.
    pub media_bytes: u64,
    /// Content hash (FNV-1a 64), the ETag.
    pub etag: u64,
    /// The bytes, while the segment is in the RAM part.
    pub ram: Option<Bytes>,
    /// A copy is on disk.
    pub on_disk: bool,
    /// The init segment it belongs to: [`fnv1a`] of its bytes.
    pub init_id: u64,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }

    /// What the playlist writers see of it.
    pub fn span(&self) -> WindowSegment {
        WindowSegment {
            index: self.index,
            start: self.start,
            duration: self.duration,
            filler: self.filler,
            init_id: self.init_id,
        }
    }
}

/// FNV-1a, 64 bit: the segments' ETag (cheap, stable across restarts).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Pending {
    index: u64,
    init_id: u64,
    /// The next fragment sequence this segment expects.
    next_sequence: u64,
    start: u64,
    duration: u64,
    filler: bool,
    media_bytes: u64,
    bytes: BytesMut,
}

/// What a push changed, for the feeder to act on outside the lock.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// The segment completed by this fragment.
    pub published: Option<Segment>,
    /// Segments that left the window by its duration bound and have a copy on disk to delete.
    pub expired_on_disk: Vec<Segment>,
}

/// The window of one track.
pub struct TrackWindow {
    pub timescale: Timescale,
    fragments_per_segment: u64,
    max_duration: u64,
    ram_duration: u64,
    ram_max_bytes: u64,
    segments: VecDeque<Segment>,
    ram_bytes: u64,
    pending: Option<Pending>,
    /// Index of the last segment published (or reloaded).
    last_index: Option<u64>,
    /// The oldest segment's index when it does not follow the one that slid out before it
    /// (so the origin's [`Discontinuities`] learns of it even if it slid out at once).
    ///
    /// [`Discontinuities`]: twincast_media::playlist::Discontinuities
    front_discontinuity: Option<u64>,
    /// Fragments that could not be placed in a whole segment (start-up, gaps, clock steps).
    pub fragments_skipped: u64,
    /// Segments pruned from the window because of its duration bound.
    pub expired: u64,
    /// Segments that left the RAM part with no copy on disk (lost to a disk problem).
    pub lost_without_disk: u64,
    /// Indices of segments whose init id differs from the segment before them, oldest first;
    /// the first may be at or before the oldest segment (the change it still belongs to).
    changes: VecDeque<u64>,
    /// Bumped by every change to the segments (and so to the figures derived from them).
    revision: u64,
}

impl TrackWindow {
    /// Durations in the track timescale.
    pub fn new(
        timescale: Timescale,
        fragments_per_segment: u32,
        max_duration: u64,
        ram_duration: u64,
        ram_max_bytes: u64,
    ) -> Self {
        TrackWindow {
            timescale,
            fragments_per_segment: u64::from(fragments_per_segment.max(1)),
            max_duration,
            ram_duration,
            ram_max_bytes,
            segments: VecDeque::new(),
            ram_bytes: 0,
            pending: None,
            last_index: None,
            front_discontinuity: None,
            fragments_skipped: 0,
            expired: 0,
            lost_without_disk: 0,
            changes: VecDeque::new(),
            revision: 0,
        }
    }

    /// Seeds an empty window with segments found on disk (after a restart), oldest first.
    pub fn preload(&mut self, segments: Vec<Segment>) {
        if !self.segments.is_empty() {
            return;
        }
        self.revision += 1;
        for s in segments {
            if self.last_index.is_some_and(|last| s.index <= last) {
                continue;
            }
            if self
                .segments
                .back()
                .is_some_and(|prev| prev.init_id != s.init_id)
            {
                self.changes.push_back(s.index);
            }
            self.last_index = Some(s.index);
            self.segments.push_back(s);
        }
    }

    /// Adds a fragment written against the init segment `init_id`.
    pub fn push(&mut self, fragment: &PackagedFragment, init_id: u64) -> PushOutcome {
        let f = self.fragments_per_segment;
        let index = fragment.sequence / f;
        let mut out = PushOutcome::default();
        // A fragment that does not continue the pending segment closes it (short, after a gap;
        // or another init segment, which the packager never does within a segment).
        if let Some(p) = self.pending.take() {
            if p.index != index || p.next_sequence != fragment.sequence || p.init_id != init_id {
                out.published = self.publish(p, &mut out.expired_on_disk);
            } else {
                self.pending = Some(p);
            }
        }
        match &mut self.pending {
            Some(p) => {
                p.bytes.extend_from_slice(&fragment.bytes);
                p.duration += fragment.duration;
                p.filler |= fragment.filler;
                p.media_bytes += fragment.media_bytes;
                p.next_sequence += 1;
            }
            None if fragment.sequence.is_multiple_of(f)
                && self.last_index.is_none_or(|last| index > last) =>
            {
                let mut bytes = BytesMut::with_capacity(fragment.bytes.len() * f as usize);
                bytes.extend_from_slice(&fragment.bytes);
                self.pending = Some(Pending {
                    index,
                    init_id,
                    next_sequence: fragment.sequence + 1,
                    start: fragment.base_dts,
                    duration: fragment.duration,
                    filler: fragment.filler,
                    media_bytes: fragment.media_bytes,
                    bytes,
                });
            }
            None => self.fragments_skipped += 1,
        }
        if let Some(p) = self.pending.take() {
            if p.next_sequence == (p.index + 1) * f {
                out.published = self.publish(p, &mut out.expired_on_disk);
            } else {
                self.pending = Some(p);
            }
        }
        out
    }

    fn publish(&mut self, p: Pending, expired: &mut Vec<Segment>) -> Option<Segment> {
        // Names must increase: a clock step backwards never overwrites or reorders the window.
        if self.last_index.is_some_and(|last| p.index <= last)
            || self.segments.back().is_some_and(|s| p.start < s.end())
        {
            self.fragments_skipped += 1;
            return None;
        }
        let bytes = p.bytes.freeze();
        let segment = Segment {
            index: p.index,
            start: p.start,
            duration: p.duration,
            filler: p.filler,
            len: bytes.len() as u64,
            media_bytes: p.media_bytes,
            etag: fnv1a(&bytes),
            ram: Some(bytes),
            on_disk: false,
            init_id: p.init_id,
        };
        if self
            .segments
            .back()
            .is_some_and(|prev| prev.init_id != segment.init_id)
        {
            self.changes.push_back(segment.index);
        }
        self.last_index = Some(p.index);
        self.revision += 1;
        self.ram_bytes += segment.len;
        self.segments.push_back(segment.clone());
        self.prune(expired);
        Some(segment)
    }

    /// Drops segments older than the window; the ones on disk are returned for deletion.
    fn prune(&mut self, expired: &mut Vec<Segment>) {
        let Some(end) = self.segments.back().map(Segment::end) else {
            return;
        };
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| end.saturating_sub(s.start) > self.max_duration)
        {
            if let Some(s) = self.pop_front() {
                self.expired += 1;
                if s.on_disk {
                    expired.push(s);
                }
            }
        }
    }

    fn pop_front(&mut self) -> Option<Segment> {
        let s = self.segments.pop_front()?;
        self.revision += 1;
        self.front_discontinuity = self
            .segments
            .front()
            .filter(|next| is_discontinuous(&s, next))
            .map(|next| next.index);
        if let Some(b) = &s.ram {
            self.ram_bytes -= b.len() as u64;
        }
        self.prune_changes();
        Some(s)
    }

    /// Forgets the changes older than the one the oldest segment belongs to.
    fn prune_changes(&mut self) {
        let Some(first) = self.segments.front().map(|s| s.index) else {
            self.changes.clear();
            return;
        };
        while self.changes.get(1).is_some_and(|next| *next <= first) {
            self.changes.pop_front();
        }
    }

    /// Indices of the segments that do not follow the one before them seamlessly, oldest
    /// first; the oldest segment's too if it did not follow the one that slid out before it.
    pub fn discontinuities(&self) -> Vec<u64> {
        let first = self.segments.front().map(|s| s.index);
        let front = self.front_discontinuity.filter(|i| Some(*i) == first);
        let pairs = self.segments.iter().zip(self.segments.iter().skip(1));
        front
            .into_iter()
            .chain(
                pairs
                    .filter(|(a, b)| is_discontinuous(a, b))
                    .map(|(_, b)| b.index),
            )
            .collect()
    }

    /// Segment indices where the init segment changed (see the module doc).
    pub fn version_changes(&self) -> impl Iterator<Item = u64> + '_ {
        self.changes.iter().copied()
    }

    /// The init ids the window (and its pending segment) references.
    pub fn referenced_inits(&self) -> BTreeSet<u64> {
        self.segments
            .iter()
            .map(|s| s.init_id)
            .chain(self.pending.as_ref().map(|p| p.init_id))
            .collect()
    }

    /// The segment starting at `start` now has a copy on disk.
    pub fn mark_on_disk(&mut self, start: u64) {
        if let Ok(i) = self.segments.binary_search_by_key(&start, |s| s.start)
            && let Some(s) = self.segments.get_mut(i)
        {
            s.on_disk = true;
            self.revision += 1;
        }
    }

    /// The disk tier deleted its copy (byte bound): the segment leaves the window unless it is
    /// still in RAM.
    pub fn drop_disk_copy(&mut self, start: u64) {
        let Ok(i) = self.segments.binary_search_by_key(&start, |s| s.start) else {
            return;
        };
        let in_ram = self.segments.get(i).is_some_and(|s| s.ram.is_some());
        self.revision += 1;
        if in_ram {
            if let Some(s) = self.segments.get_mut(i) {
                s.on_disk = false;
            }
        } else if i == 0 {
            let _ = self.pop_front();
        } else {
            let _ = self.segments.remove(i);
        }
    }

    /// Moves segments out of the RAM part (by age and bytes). Those with no disk copy leave the
    /// window; returns how many did.
    pub fn trim_ram(&mut self) -> u64 {
        let Some(end) = self.segments.back().map(Segment::end) else {
            return 0;
        };
        let mut lost = 0;
        let mut i = 0;
        while i + 1 < self.segments.len() {
            let Some(s) = self.segments.get(i) else { break };
            if s.ram.is_none() {
                i += 1;
                continue;
            }
            let too_old = end.saturating_sub(s.end()) > self.ram_duration;
            if !(too_old || self.ram_bytes > self.ram_max_bytes) {
                break;
            }
            self.revision += 1;
            if s.on_disk {
                if let Some(s) = self.segments.get_mut(i)
                    && let Some(b) = s.ram.take()
                {
                    self.ram_bytes -= b.len() as u64;
                }
                i += 1;
            } else {
                if i == 0 {
                    let _ = self.pop_front();
                } else if let Some(s) = self.segments.remove(i)
                    && let Some(b) = &s.ram
                {
                    self.ram_bytes -= b.len() as u64;
                }
                lost += 1;
            }
        }
        self.lost_without_disk += lost;
        lost
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment named by its start time.
    pub fn by_start(&self, start: u64) -> Option<Segment> {
        let i = self
            .segments
            .binary_search_by_key(&start, |s| s.start)
            .ok()?;
        self.segments.get(i).cloned()
    }

    /// A segment by its index from the epoch.
    pub fn by_index(&self, index: u64) -> Option<Segment> {
        let i = self
            .segments
            .binary_search_by_key(&index, |s| s.index)
            .ok()?;
        self.segments.get(i).cloned()
    }

    /// Bytes held in RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    /// Peak and average bitrate (bits/s) over the window, from media bytes.
    pub fn bitrates(&self) -> Option<(u64, u64)> {
        let ts = u64::from(self.timescale.hz());
        let peak = self
            .segments
            .iter()
            .filter(|s| s.duration > 0)
            .map(|s| s.media_bytes * 8 * ts / s.duration)
            .max()?;
        let (bytes, dur) = self
            .segments
            .iter()
            .fold((0, 0), |(b, d), s| (b + s.media_bytes, d + s.duration));
        Some((peak, (bytes * 8 * ts).checked_div(dur).unwrap_or(peak)))
    }

    /// Changes with every change to the segments (and so to their discontinuities) or the
    /// version changes (not with the pending segment or the counters).
    pub fn revision(&self) -> u64 {
        self.revision
    }
}

/// `next` does not follow `prev` seamlessly: an index hole, a time hole, or another init
/// segment ([`WindowSegment::is_discontinuous_with`]).
pub fn is_discontinuous(prev: &Segment, next: &Segment) -> bool {
    prev.span().is_discontinuous_with(&next.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(n: u64) -> PackagedFragment {
        PackagedFragment::for_test(n, 10)
    }

    fn window(f: u32, max: u64) -> TrackWindow {
        TrackWindow::new(crate::package::VIDEO_CLOCK, f, max, u64::MAX, u64::MAX)
    }

    #[test]
    fn groups_aligned_fragments_and_skips_the_partial_start() {
        let mut w = window(3, 90_000 * 600);
        // Start-up at fragment 4: 4 and 5 belong to a segment we never saw the start of.
        for n in 4..8 {
            assert!(w.push(&frag(n), 1).published.is_none());
        }
        let s = w.push(&frag(8), 1).published.expect("segment 2 complete");
        assert_eq!(
            (s.index, s.start, s.duration),
            (2, 6 * 180_000, 3 * 180_000)
        );
        assert_eq!(s.len, 30);
        assert_eq!(w.fragments_skipped, 2);
        assert_eq!(w.by_start(6 * 180_000).map(|s| s.index), Some(2));
    }

    #[test]
    fn gap_closes_short_segment_and_is_discontinuous() {
        let mut w = window(3, 90_000 * 600);
        for n in 0..4 {
            w.push(&frag(n), 1);
        }
        // Fragments 4..9 lost; 9 starts segment 3 and closes the short segment 1.
        let short = w.push(&frag(9), 1).published.expect("short segment 1");
        assert_eq!((short.index, short.duration), (1, 180_000));
        w.push(&frag(10), 1);
        let s3 = w.push(&frag(11), 1).published.expect("segment 3");
        assert!(is_discontinuous(&short, &s3));
    }

    #[test]
    fn window_is_bounded_by_duration_and_reports_the_discontinuity_at_its_front() {
        let mut w = window(1, 180_000 * 5);
        for n in (0..10).chain(12..17) {
            w.push(&frag(n), 1);
        }
        // 12 starts the window: its predecessor (9) slid out, the discontinuity is still told.
        assert_eq!(w.len(), 5);
        assert_eq!(w.segments().next().map(|s| s.index), Some(12));
        assert_eq!(w.discontinuities(), vec![12]);
        for n in 17..20 {
            w.push(&frag(n), 1);
        }
        assert_eq!(w.len(), 5);
        assert_eq!(w.segments().next().map(|s| s.index), Some(15));
        assert!(w.discontinuities().is_empty());
    }

    #[test]
    fn ram_part_spills_to_disk_or_leaves_the_window() {
        let mut w = TrackWindow::new(
            crate::package::VIDEO_CLOCK,
            1,
            u64::MAX,
            180_000 * 2,
            u64::MAX,
        );
        for n in 0..5 {
            let out = w.push(&frag(n), 1);
            if let Some(s) = out.published
                && n % 2 == 0
            {
                w.mark_on_disk(s.start);
            }
            w.trim_ram();
        }
        // 0 went to disk, 1 was lost with no disk copy; 2, 3 and 4 are the last 2 s, in RAM.
        let kept: Vec<(u64, bool, bool)> = w
            .segments()
            .map(|s| (s.index, s.ram.is_some(), s.on_disk))
            .collect();
        assert_eq!(
            kept,
            vec![
                (0, false, true),
                (2, true, true),
                (3, true, false),
                (4, true, true)
            ]
        );
        assert_eq!(w.lost_without_disk, 1);
        assert_eq!(w.ram_bytes(), 30);
        // The disk tier drops 0: it leaves the window.
        w.drop_disk_copy(0);
        assert_eq!(w.segments().next().map(|s| s.index), Some(2));
    }

    #[test]
    fn preload_then_live_is_discontinuous_and_never_goes_back() {
        let mut w = window(1, u64::MAX);
        let old: Vec<Segment> = (0..3)
            .map(|i| Segment {
                index: i,
                start: i * 180_000,
                duration: 180_000,
                filler: false,
                len: 10,
                media_bytes: 10,
                etag: i,
                ram: None,
                on_disk: true,
                init_id: 1,
            })
            .collect();
        w.preload(old);
        assert!(
            w.push(&frag(2), 1).published.is_none(),
            "an old index is refused"
        );
        let s = w.push(&frag(7), 1).published.expect("live segment");
        let prev = w.by_start(2 * 180_000).expect("reloaded");
        assert!(is_discontinuous(&prev, &s));
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn segments_record_their_init_and_a_change_is_remembered() {
        let mut w = window(2, 180_000 * 8);
        for n in 0..4 {
            w.push(&frag(n), 0xa1);
        }
        // The packager flushed at the change: fragment 5 is another init's, it closes segment 2.
        w.push(&frag(4), 0xa1);
        let short = w.push(&frag(5), 0xb2).published.expect("short segment 2");
        assert_eq!(
            (short.index, short.init_id, short.duration),
            (2, 0xa1, 180_000)
        );
        w.push(&frag(6), 0xb2);
        let s = w.push(&frag(7), 0xb2).published.expect("segment 3");
        assert_eq!(s.init_id, 0xb2);
        assert!(is_discontinuous(&short, &s));
        let ids: Vec<(u64, u64)> = w.segments().map(|s| (s.index, s.init_id)).collect();
        assert_eq!(ids, vec![(0, 0xa1), (1, 0xa1), (2, 0xa1), (3, 0xb2)]);
        assert_eq!(w.version_changes().collect::<Vec<_>>(), vec![3]);
        assert_eq!(
            w.referenced_inits().into_iter().collect::<Vec<_>>(),
            vec![0xa1, 0xb2]
        );
        // The window slides past the old version: the change it belongs to stays.
        for n in 8..20 {
            w.push(&frag(n), 0xb2);
        }
        assert!(w.segments().all(|s| s.init_id == 0xb2));
        assert_eq!(w.version_changes().collect::<Vec<_>>(), vec![3]);
        assert!(w.discontinuities().is_empty(), "{:?}", w.discontinuities());
        // A third version, then the second slides out: only the newest change is kept.
        for n in 20..40 {
            w.push(&frag(n), 0xc3);
        }
        assert_eq!(w.version_changes().collect::<Vec<_>>(), vec![10]);
    }
}
