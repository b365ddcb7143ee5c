//! The origin's segment window: fragments from the hub grouped into HLS/DASH segments.
//!
//! Segment s of a track holds fragments `[s·F, (s+1)·F)` (F = fragments per segment), so segment
//! indices, start times and names are the same on both boxes of a pair and after a restart. A
//! segment is published when its last fragment arrives. A segment that would not start on its
//! boundary (start-up, after a gap) is not published at all: a partial segment would carry a
//! name the other box never uses. A segment cut short by a gap is published with what it has
//! and the next one is marked as a discontinuity.
//!
//! The window is bounded by duration (the DVR window) and by bytes; the oldest segments go
//! first. Everything here is RAM; the disk tier plugs in behind `TrackWindow::evicted`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::hub::PackagedFragment;

/// One segment in the window.
#[derive(Debug)]
pub struct Segment {
    /// Segment index s from the epoch: the HLS media sequence number.
    pub index: u64,
    /// Start time in the track timescale: the file name is `<start>.m4s`.
    pub start: u64,
    /// Duration in the track timescale.
    pub duration: u64,
    /// The timeline had a hole just before this segment.
    pub discontinuity: bool,
    /// Some fragment in it was built from slate frames.
    pub filler: bool,
    pub bytes: Bytes,
    /// Media bytes (without boxes), for bitrate figures.
    pub media_bytes: u64,
}

struct Pending {
    index: u64,
    /// The next fragment sequence this segment expects.
    next_sequence: u64,
    start: u64,
    duration: u64,
    filler: bool,
    media_bytes: u64,
    bytes: BytesMut,
}

/// The window of one track.
pub struct TrackWindow {
    pub timescale: u32,
    fragments_per_segment: u64,
    max_duration: u64,
    max_bytes: u64,
    segments: VecDeque<Arc<Segment>>,
    bytes: u64,
    pending: Option<Pending>,
    /// Index of the last segment published.
    last_index: Option<u64>,
    /// Fragments that could not be placed in a whole segment (start-up, gaps).
    pub fragments_skipped: u64,
    /// Segments pruned from the window because of its duration or byte bound.
    pub evicted: u64,
}

impl TrackWindow {
    /// `max_duration` in the track timescale.
    pub fn new(
        timescale: u32,
        fragments_per_segment: u32,
        max_duration: u64,
        max_bytes: u64,
    ) -> Self {
        TrackWindow {
            timescale,
            fragments_per_segment: u64::from(fragments_per_segment.max(1)),
            max_duration,
            max_bytes,
            segments: VecDeque::new(),
            bytes: 0,
            pending: None,
            last_index: None,
            fragments_skipped: 0,
            evicted: 0,
        }
    }

    /// Adds a fragment; returns the segment it completed, if any.
    pub fn push(&mut self, fragment: &PackagedFragment) -> Option<Arc<Segment>> {
        let f = self.fragments_per_segment;
        let index = fragment.sequence / f;
        let mut published = None;
        // A fragment that does not continue the pending segment closes it (short, after a gap).
        if let Some(p) = &self.pending
            && (p.index != index || p.next_sequence != fragment.sequence)
        {
            let p = self.pending.take()?;
            published = Some(self.publish(p));
        }
        match &mut self.pending {
            Some(p) => {
                p.bytes.extend_from_slice(&fragment.bytes);
                p.duration += fragment.duration;
                p.filler |= fragment.filler;
                p.media_bytes += fragment.media_bytes;
                p.next_sequence += 1;
            }
            None if fragment.sequence.is_multiple_of(f) => {
                let mut bytes = BytesMut::with_capacity(fragment.bytes.len() * f as usize);
                bytes.extend_from_slice(&fragment.bytes);
                self.pending = Some(Pending {
                    index,
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
        if let Some(p) = &self.pending
            && p.next_sequence == (p.index + 1) * f
        {
            let p = self.pending.take()?;
            published = Some(self.publish(p));
        }
        published
    }

    fn publish(&mut self, p: Pending) -> Arc<Segment> {
        let discontinuity = self.last_index.is_some_and(|last| last + 1 != p.index)
            || self
                .segments
                .back()
                .is_some_and(|s| s.start + s.duration != p.start);
        let segment = Arc::new(Segment {
            index: p.index,
            start: p.start,
            duration: p.duration,
            discontinuity,
            filler: p.filler,
            bytes: p.bytes.freeze(),
            media_bytes: p.media_bytes,
        });
        self.last_index = Some(p.index);
        self.bytes += segment.bytes.len() as u64;
        self.segments.push_back(segment.clone());
        self.prune();
        segment
    }

    fn prune(&mut self) {
        let Some(newest) = self.segments.back() else {
            return;
        };
        let end = newest.start + newest.duration;
        while let Some(oldest) = self.segments.front() {
            let too_old = end.saturating_sub(oldest.start) > self.max_duration;
            let too_big = self.bytes > self.max_bytes;
            if self.segments.len() > 1 && (too_old || too_big) {
                self.bytes -= oldest.bytes.len() as u64;
                self.segments.pop_front();
                self.evicted += 1;
            } else {
                break;
            }
        }
    }

    pub fn segments(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments.iter()
    }

    /// The segment named by its start time.
    pub fn by_start(&self, start: u64) -> Option<Arc<Segment>> {
        let i = self
            .segments
            .binary_search_by_key(&start, |s| s.start)
            .ok()?;
        self.segments.get(i).cloned()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Peak and average bitrate (bits/s) over the window, from media bytes.
    pub fn bitrates(&self) -> Option<(u64, u64)> {
        let ts = u64::from(self.timescale);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(n: u64) -> PackagedFragment {
        PackagedFragment {
            sequence: n,
            base_dts: n * 180_000,
            duration: 180_000,
            sample_count: 60,
            filler: false,
            bytes: Bytes::from(vec![n as u8; 10]),
            media_bytes: 10,
            samples: std::sync::Arc::new(Vec::new()),
        }
    }

    #[test]
    fn groups_aligned_fragments_and_skips_the_partial_start() {
        let mut w = TrackWindow::new(90_000, 3, 90_000 * 600, u64::MAX);
        // Start-up at fragment 4: 4 and 5 belong to a segment we never saw the start of.
        assert!(w.push(&frag(4)).is_none());
        assert!(w.push(&frag(5)).is_none());
        assert!(w.push(&frag(6)).is_none());
        assert!(w.push(&frag(7)).is_none());
        let s = w.push(&frag(8)).expect("segment 2 complete");
        assert_eq!(
            (s.index, s.start, s.duration),
            (2, 6 * 180_000, 3 * 180_000)
        );
        assert_eq!(s.bytes.len(), 30);
        assert!(!s.discontinuity);
        assert_eq!(w.fragments_skipped, 2);
        assert_eq!(w.by_start(6 * 180_000).map(|s| s.index), Some(2));
    }

    #[test]
    fn gap_closes_short_segment_and_marks_discontinuity() {
        let mut w = TrackWindow::new(90_000, 3, 90_000 * 600, u64::MAX);
        for n in 0..3 {
            w.push(&frag(n));
        }
        w.push(&frag(3));
        // Fragments 4..9 lost; 9 starts segment 3 and closes the short segment 1.
        let short = w.push(&frag(9)).expect("short segment 1");
        assert_eq!((short.index, short.duration), (1, 180_000));
        w.push(&frag(10));
        let s3 = w.push(&frag(11)).expect("segment 3");
        assert!(s3.discontinuity);
    }

    #[test]
    fn window_is_bounded_by_duration_and_bytes() {
        let mut w = TrackWindow::new(90_000, 1, 180_000 * 5, u64::MAX);
        for n in 0..20 {
            w.push(&frag(n));
        }
        assert_eq!(w.segments().count(), 5);
        let mut w = TrackWindow::new(90_000, 1, u64::MAX, 35);
        for n in 0..20 {
            w.push(&frag(n));
        }
        assert_eq!(w.segments().count(), 3);
        assert!(w.bytes() <= 35);
        assert_eq!(w.evicted, 17);
    }
}
