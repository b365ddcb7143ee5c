//! The front end without I/O: datagrams in (RTP, RTCP or plain TS, each with its arrival
//! time), elementary-stream units with their capture time W out. The socket task in
//! `src/input/mod.rs` only receives and calls these methods, so the whole path is tested and
//! fuzzed with plain bytes.
//!
//! Units wait in a bounded queue until the timing policy (`src/input/timing.rs`) has its anchor;
//! video before the first keyframe is dropped there (it cannot be decoded), counted.

use std::collections::VecDeque;

use twincast_media::scte35;

use crate::source::Timing;

use super::rtcp::{self, SenderClock};
use super::rtp::{self, Arrived, Reorder};
use super::timing::{JumpDetector, Sample, SenderTiming, Unwrap33};
use super::ts::{EsKind, PacketMeta, TsDemux, TsUnit};

/// A sender-report clock further than this from the local clock is not a usable wall clock (a
/// sender without a set clock, or one counting from its boot); such SRs are not used for W.
pub const MAX_SENDER_SKEW_NS: u64 = 300 * 1_000_000_000;
/// Units held while the anchor is being found (12 s of 30 fps video with 48 kHz AAC, the
/// longest wait for sender reports); past it the oldest are dropped, counted.
pub const PENDING_UNITS: usize = 1024;
/// Bytes of held units at most: 1024 units of up to [`super::ts::MAX_UNIT_BYTES`] each would be
/// 8 GiB, and a feed whose pictures never anchor the timing (no video, or no keyframe) keeps
/// them for good. 64 MiB is 12 s of a 40 Mbit/s contribution feed; past it the oldest are
/// dropped, counted like the count bound.
pub const PENDING_BYTES: usize = 64 << 20;
/// Once the anchor is known, held units further than this behind the newest one are stale:
/// the grid can no longer use their pictures (its latency is at most 1.5 s,
/// src/capture/grid.rs), and decoding seconds of them at once would only cost a burst of CPU
/// and make the input look seconds late. They are dropped, counted, from a keyframe on.
pub const STALE_AFTER_ANCHOR_NS: u64 = 2_000_000_000;

/// One elementary-stream unit ready for the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsUnit {
    pub kind: EsKind,
    /// Capture time W, ns since the epoch.
    pub wall_ns: u64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// Every counter of the front end (what `/status` shows as the input's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrontEndCounters {
    pub datagrams: u64,
    pub bytes: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    pub late: u64,
    pub sender_restarts: u64,
    pub rtcp_reports: u64,
    /// Pictures whose sender-report time was too far from the local clock to be a wall clock.
    pub sender_clock_unusable: u64,
    /// Datagrams or TS packets dropped as malformed (RTP, RTCP, TS).
    pub malformed: u64,
    pub cc_errors: u64,
    pub pcr_discontinuities: u64,
    pub pts_discontinuities: u64,
    pub scte35_sections: u64,
    /// SCTE-35 sections dropped because nobody took them in time: the demuxer keeps
    /// [`ts::SCTE35_QUEUE`], and so does the input (`NetworkSource::take_scte35`).
    pub scte35_dropped: u64,
    /// Units dropped: no PTS, before the first keyframe, pending queue full, W before 1970.
    pub units_dropped: u64,
    pub video_units: u64,
    pub audio_units: u64,
    pub anchors: u64,
    pub reanchors: u64,
}

/// The pure front end of one network input.
/// When an incoming SCTE-35 section's splice happens on the epoch timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpliceAt {
    /// At this W (ns since the epoch).
    At(u64),
    /// As soon as possible: an immediate splice, or a command without a time.
    Immediate,
    /// It has a time, but the feed's clock is not anchored yet (or the section does not parse).
    Unplaced,
}

pub struct FrontEnd {
    reorder: Option<Reorder>,
    demux: TsDemux,
    clock: SenderClock,
    media_ssrc: Option<u32>,
    timing: SenderTiming,
    video_unwrap: Unwrap33,
    audio_unwrap: Unwrap33,
    video_jump: JumpDetector,
    pending: VecDeque<(TsUnit, i64, bool)>,
    /// Bytes of unit data in `pending` (at most [`PENDING_BYTES`]).
    pending_bytes: usize,
    keyframe_seen: bool,
    released: Vec<Arrived>,
    units: Vec<TsUnit>,
    malformed: u64,
    datagrams: u64,
    bytes: u64,
    pts_discontinuities: u64,
    units_dropped: u64,
    video_units: u64,
    audio_units: u64,
    sender_clock_unusable: u64,
}

impl FrontEnd {
    /// `Some(latency)`: RTP (reordered, RTCP timing possible); `None`: plain TS over UDP.
    pub fn new(rtp_latency_ns: Option<u64>) -> Self {
        FrontEnd {
            reorder: rtp_latency_ns.map(Reorder::new),
            demux: TsDemux::new(),
            clock: SenderClock::default(),
            media_ssrc: None,
            timing: SenderTiming::new(rtp_latency_ns.is_some()),
            video_unwrap: Unwrap33::default(),
            audio_unwrap: Unwrap33::default(),
            video_jump: JumpDetector::default(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            keyframe_seen: false,
            released: Vec::new(),
            units: Vec::new(),
            malformed: 0,
            datagrams: 0,
            bytes: 0,
            pts_discontinuities: 0,
            units_dropped: 0,
            video_units: 0,
            audio_units: 0,
            sender_clock_unusable: 0,
        }
    }

    /// The timing W comes from, once anchored.
    pub fn timing(&self) -> Option<Timing> {
        self.timing.timing()
    }

    /// When [`poll`](Self::poll) must be called next (a reorder gap's wait ends).
    pub fn deadline(&self) -> Option<u64> {
        self.reorder.as_ref().and_then(Reorder::deadline)
    }

    /// SCTE-35 sections received since the last call, each with the epoch time of its
    /// splice time (SCTE-35 passthrough, docs/design/signals.md, *Passthrough*).
    pub fn take_scte35(&mut self) -> Vec<(Vec<u8>, SpliceAt)> {
        self.demux
            .take_scte35()
            .into_iter()
            .map(|s| {
                let at = self.splice_at(&s);
                (s, at)
            })
            .collect()
    }

    /// W of a section's splice time: its 33-bit PTS unwrapped next to the video's, through
    /// the same W = PTS + O as the pictures, so the splice lands on the picture it names.
    fn splice_at(&self, section: &[u8]) -> SpliceAt {
        let Ok(info) = scte35::SpliceInfo::parse(section) else {
            return SpliceAt::Unplaced;
        };
        let Some(pts) = info.splice_pts() else {
            return SpliceAt::Immediate;
        };
        self.video_unwrap
            .nearest(pts)
            .and_then(|ext| self.timing.wall_ns(ext))
            .map_or(SpliceAt::Unplaced, SpliceAt::At)
    }

    pub fn counters(&self) -> FrontEndCounters {
        let r = self
            .reorder
            .as_ref()
            .map(Reorder::counters)
            .unwrap_or_default();
        let t = self.demux.counters();
        let tc = self.timing.counters();
        FrontEndCounters {
            datagrams: self.datagrams,
            bytes: self.bytes,
            lost: r.lost,
            reordered: r.reordered,
            duplicated: r.duplicated,
            late: r.late,
            sender_restarts: r.restarts,
            rtcp_reports: self.clock.reports().0,
            sender_clock_unusable: self.sender_clock_unusable,
            malformed: self.malformed + t.malformed,
            cc_errors: t.cc_errors,
            pcr_discontinuities: t.pcr_discontinuities,
            pts_discontinuities: self.pts_discontinuities,
            scte35_sections: t.scte35_sections,
            scte35_dropped: t.scte35_dropped,
            units_dropped: self.units_dropped + t.bad_units,
            video_units: self.video_units,
            audio_units: self.audio_units,
            anchors: tc.anchors,
            reanchors: tc.reanchors,
        }
    }

    /// One datagram from the RTP port.
    pub fn push_rtp(&mut self, arrival_ns: u64, datagram: &[u8], out: &mut Vec<EsUnit>) {
        self.count(datagram);
        let Some(reorder) = &mut self.reorder else {
            return self.push_ts(arrival_ns, datagram, out);
        };
        match rtp::parse(datagram) {
            Ok(packet) => {
                self.media_ssrc = Some(packet.ssrc);
                reorder.push(Arrived { arrival_ns, packet }, &mut self.released);
            }
            Err(_) => self.malformed += 1,
        }
        self.drain_released(out);
    }

    /// One datagram from the RTCP port.
    pub fn push_rtcp(&mut self, datagram: &[u8]) {
        match rtcp::parse(datagram) {
            Ok(srs) => {
                for sr in srs {
                    self.clock.update(sr, self.media_ssrc);
                }
            }
            Err(_) => self.malformed += 1,
        }
    }

    /// One datagram of plain MPEG-TS over UDP.
    pub fn push_udp(&mut self, arrival_ns: u64, datagram: &[u8], out: &mut Vec<EsUnit>) {
        self.count(datagram);
        self.push_ts(arrival_ns, datagram, out);
    }

    /// Lets time pass: releases what the reorder buffer stops waiting for.
    pub fn poll(&mut self, now_ns: u64, out: &mut Vec<EsUnit>) {
        if let Some(r) = &mut self.reorder {
            r.poll(now_ns, &mut self.released);
        }
        self.drain_released(out);
    }

    fn count(&mut self, datagram: &[u8]) {
        self.datagrams += 1;
        self.bytes += datagram.len() as u64;
    }

    fn drain_released(&mut self, out: &mut Vec<EsUnit>) {
        let mut released = std::mem::take(&mut self.released);
        for a in released.drain(..) {
            let meta = PacketMeta {
                arrival_ns: a.arrival_ns,
                rtp_ts: Some(a.packet.timestamp),
            };
            self.demux_and_time(meta, &a.packet.payload, out);
        }
        self.released = released;
    }

    fn push_ts(&mut self, arrival_ns: u64, data: &[u8], out: &mut Vec<EsUnit>) {
        let meta = PacketMeta {
            arrival_ns,
            rtp_ts: None,
        };
        self.demux_and_time(meta, data, out);
    }

    fn demux_and_time(&mut self, meta: PacketMeta, data: &[u8], out: &mut Vec<EsUnit>) {
        let mut units = std::mem::take(&mut self.units);
        self.demux.push(meta, data, &mut units);
        for unit in units.drain(..) {
            self.unit(unit, out);
        }
        self.units = units;
    }

    fn unit(&mut self, unit: TsUnit, out: &mut Vec<EsUnit>) {
        let Some(pts_raw) = unit.pts else {
            self.units_dropped += 1;
            return;
        };
        match unit.kind {
            EsKind::H264 => {
                let (pts, _) = self.video_unwrap.unwrap(pts_raw);
                let dts = unit.dts.map_or(pts, |d| pts + signed_33(d, pts_raw));
                let keyframe = has_idr(&unit.data);
                let pts_ns = super::timing::ticks_to_ns(pts);
                if self.video_jump.jumped(pts_ns, unit.meta.arrival_ns) {
                    self.pts_discontinuities += 1;
                    self.timing.restart();
                }
                let sender_ns = unit.meta.rtp_ts.and_then(|ts| self.clock.map(ts));
                let sender_ns = match sender_ns {
                    Some(s) if s.abs_diff(unit.meta.arrival_ns) > MAX_SENDER_SKEW_NS => {
                        self.sender_clock_unusable += 1;
                        self.timing.no_sender_clock();
                        None
                    }
                    other => other,
                };
                self.timing.observe(Sample {
                    pts,
                    dts,
                    arrival_ns: unit.meta.arrival_ns,
                    sender_ns,
                    keyframe,
                });
                self.keyframe_seen |= keyframe;
                if !self.keyframe_seen {
                    self.units_dropped += 1;
                    return;
                }
                self.hold(unit, pts, keyframe);
                self.flush(out);
            }
            EsKind::Aac => {
                let (pts, _) = self.audio_unwrap.unwrap(pts_raw);
                self.hold(unit, pts, false);
                self.flush(out);
            }
        }
    }

    /// Queues a unit for the anchor; the oldest go while more than [`PENDING_UNITS`] units or
    /// [`PENDING_BYTES`] bytes would be held (a unit is at most [`super::ts::MAX_UNIT_BYTES`],
    /// so the new one always fits).
    fn hold(&mut self, unit: TsUnit, pts: i64, keyframe: bool) {
        while !self.pending.is_empty()
            && (self.pending.len() >= PENDING_UNITS
                || self.pending_bytes + unit.data.len() > PENDING_BYTES)
        {
            if let Some((old, _, _)) = self.pending.pop_front() {
                self.pending_bytes -= old.data.len();
            }
            self.units_dropped += 1;
        }
        self.pending_bytes += unit.data.len();
        self.pending.push_back((unit, pts, keyframe));
    }

    /// Hands out everything pending once the anchor is known.
    fn flush(&mut self, out: &mut Vec<EsUnit>) {
        if self.timing.timing().is_none() {
            return;
        }
        if self.pending.len() > 1 {
            self.drop_stale();
        }
        self.pending_bytes = 0;
        while let Some((unit, pts, keyframe)) = self.pending.pop_front() {
            let Some(wall_ns) = self.timing.wall_ns(pts) else {
                self.units_dropped += 1;
                continue;
            };
            match unit.kind {
                EsKind::H264 => self.video_units += 1,
                EsKind::Aac => self.audio_units += 1,
            }
            out.push(EsUnit {
                kind: unit.kind,
                wall_ns,
                keyframe,
                data: unit.data,
            });
        }
    }
}

impl FrontEnd {
    /// Drops the held units that are stale once the anchor is known (they waited for sender
    /// reports): video up to the keyframe decoding restarts from (the first one within
    /// [`STALE_AFTER_ANCHOR_NS`] of the newest unit, else the last one before that), audio
    /// before that keyframe's time.
    fn drop_stale(&mut self) {
        let walls: Vec<Option<u64>> = self
            .pending
            .iter()
            .map(|(_, pts, _)| self.timing.wall_ns(*pts))
            .collect();
        let Some(newest) = walls.iter().flatten().max().copied() else {
            return;
        };
        let cutoff = newest.saturating_sub(STALE_AFTER_ANCHOR_NS);
        let keyframes: Vec<(usize, u64)> = self
            .pending
            .iter()
            .zip(&walls)
            .enumerate()
            .filter_map(|(i, ((u, _, key), w))| match (u.kind, key, w) {
                (EsKind::H264, true, Some(w)) => Some((i, *w)),
                _ => None,
            })
            .collect();
        let restart = keyframes
            .iter()
            .find(|(_, w)| *w >= cutoff)
            .or_else(|| keyframes.last())
            .copied();
        let Some((first, from)) = restart else {
            return;
        };
        if first == 0 {
            return;
        }
        let before = self.pending.len();
        let mut i = 0;
        self.pending.retain(|(u, _, _)| {
            let keep = match u.kind {
                EsKind::H264 => i >= first,
                EsKind::Aac => walls[i].is_some_and(|w| w >= from),
            };
            i += 1;
            keep
        });
        self.units_dropped += (before - self.pending.len()) as u64;
        self.pending_bytes = self.pending.iter().map(|(u, _, _)| u.data.len()).sum();
    }
}

/// `a − b` for two 33-bit stamps, as the nearest signed difference.
fn signed_33(a: u64, b: u64) -> i64 {
    let m = (1u64 << 33) - 1;
    let d = (a.wrapping_sub(b) & m) as i64;
    if d >= 1 << 32 { d - (1 << 33) } else { d }
}

/// True when an Annex B access unit holds an IDR slice (NAL type 5).
fn has_idr(au: &[u8]) -> bool {
    let mut zeros = 0;
    for (i, &b) in au.iter().enumerate() {
        if b == 0 {
            zeros += 1;
            continue;
        }
        if b == 1 && zeros >= 2 && au.get(i + 1).is_some_and(|h| h & 0x1f == 5) {
            return true;
        }
        zeros = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::ts::tests::{AUDIO_PID, TsWriter, VIDEO_PID};
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_764_000_000_000_000_000;

    fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut d = vec![0x80, 33];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&ts.to_be_bytes());
        d.extend_from_slice(&7u32.to_be_bytes());
        d.extend_from_slice(payload);
        d
    }

    fn sr(ntp_unix_s: u64, rtp_ts: u32) -> Vec<u8> {
        use webrtc_util::Marshal as _;
        ::rtcp::sender_report::SenderReport {
            ssrc: 7,
            ntp_time: (ntp_unix_s + rtcp::NTP_UNIX_OFFSET_S) << 32,
            rtp_time: rtp_ts,
            ..Default::default()
        }
        .marshal()
        .unwrap()
        .to_vec()
    }

    /// A TS feed of `n` pictures (keyframe every 30) and audio, as RTP datagrams of ≤ 7 TS
    /// packets, RTP timestamp = 90 kHz PTS + 1000.
    fn feed(n: u64, pts0: u64) -> Vec<(u64, u32, Vec<u8>)> {
        let mut w = TsWriter::new();
        let mut out = Vec::new();
        for p in 0..n {
            let pts = (pts0 + p * 3000) & ((1 << 33) - 1);
            let mut ts = w.psi();
            let nal = if p % 30 == 0 { 0x65 } else { 0x41 };
            let au: Vec<u8> = [0, 0, 0, 1, nal]
                .into_iter()
                .chain(std::iter::repeat_n(p as u8, 400))
                .collect();
            ts.extend(w.pes(VIDEO_PID, pts, Some(pts), &au));
            ts.extend(w.pes(
                AUDIO_PID,
                pts,
                None,
                &[0xff, 0xf1, 0x50, 0x80, 0, 0x1f, 0xfc],
            ));
            for chunk in ts.chunks(7 * 188) {
                out.push((
                    p * 33 * MS + p * MS / 3,
                    (pts as u32).wrapping_add(1000),
                    chunk.to_vec(),
                ));
            }
        }
        out
    }

    #[test]
    fn rtp_feed_comes_out_with_rtcp_time() {
        let mut fe = FrontEnd::new(Some(50 * MS));
        let mut out = Vec::new();
        fe.push_rtcp(&sr(1_764_000_000, 1000 + 90_000));
        for (seq, (t, ts, d)) in feed(60, 90_000).into_iter().enumerate() {
            fe.push_rtp(T0 + 20 * MS + t, &rtp(seq as u16, ts, &d), &mut out);
        }
        fe.poll(u64::MAX, &mut out);
        assert_eq!(fe.timing(), Some(Timing::Rtcp));
        let video: Vec<_> = out.iter().filter(|u| u.kind == EsKind::H264).collect();
        // 60 pictures, the last waits for the next PES start.
        assert_eq!(video.len(), 59);
        assert!(video[0].keyframe && !video[1].keyframe);
        // The sender's clock: PTS 90 000 ↔ RTP 91 000 ↔ 1 764 000 000 s.
        assert!(
            video[0].wall_ns.abs_diff(T0) < 10_000,
            "{}",
            video[0].wall_ns
        );
        assert!(video[1].wall_ns.abs_diff(T0 + 33_333_333) < 10_000);
        assert!(out.iter().any(|u| u.kind == EsKind::Aac));
        let c = fe.counters();
        assert_eq!((c.lost, c.malformed, c.pts_discontinuities), (0, 0, 0));
    }

    /// An RTP feed with sender reports (the first test's) and an SCTE-35 section after
    /// picture 10 that splices on picture 40's PTS; `(front end, its units, sections)`.
    fn feed_with_a_splice(pts0: u64) -> (Vec<EsUnit>, Vec<(Vec<u8>, SpliceAt)>) {
        use twincast_media::scte35::{Command, SpliceInfo, SpliceInsert};
        let splice_pts = (pts0 + 40 * 3000) & ((1 << 33) - 1);
        let section = SpliceInfo::new(Command::Insert(SpliceInsert::at(
            7,
            true,
            Some(splice_pts),
            Some(2_700_000),
        )))
        .to_bytes()
        .expect("section");
        let immediate = SpliceInfo::new(Command::Insert(SpliceInsert::at(8, true, None, None)))
            .to_bytes()
            .expect("section");
        let mut w = TsWriter::new();
        let mut scte = w.scte35(&section[..section.len() - 4]);
        scte.extend(w.scte35(&immediate[..immediate.len() - 4]));
        let mut fe = FrontEnd::new(Some(50 * MS));
        let mut out = Vec::new();
        fe.push_rtcp(&sr(1_764_000_000, (pts0 as u32).wrapping_add(1000)));
        let mut seq = 0u16;
        for (i, (t, ts, d)) in feed(60, pts0).into_iter().enumerate() {
            fe.push_rtp(T0 + 20 * MS + t, &rtp(seq, ts, &d), &mut out);
            seq = seq.wrapping_add(1);
            if i == 30 {
                fe.push_rtp(T0 + 20 * MS + t, &rtp(seq, ts, &scte), &mut out);
                seq = seq.wrapping_add(1);
            }
        }
        fe.poll(u64::MAX, &mut out);
        let sections = fe.take_scte35();
        (out, sections)
    }

    #[test]
    fn an_scte35_splice_time_is_the_w_of_the_picture_it_names() {
        // Also across the 33-bit wrap: picture 40 is after it, the section's time is small.
        for pts0 in [90_000, (1 << 33) - 20 * 3000] {
            let (out, sections) = feed_with_a_splice(pts0);
            let video: Vec<_> = out.iter().filter(|u| u.kind == EsKind::H264).collect();
            assert_eq!(sections.len(), 2, "{pts0}");
            assert_eq!(sections[0].1, SpliceAt::At(video[40].wall_ns), "{pts0}");
            assert_eq!(sections[1].1, SpliceAt::Immediate, "{pts0}");
        }
    }

    #[test]
    fn udp_feed_uses_pts_timing_and_drops_before_the_first_keyframe() {
        let mut fe = FrontEnd::new(None);
        let mut out = Vec::new();
        let f = feed(75, 1 << 32);
        // Start in the middle of a GOP (picture 10).
        for (t, _, d) in f.into_iter().skip(10) {
            fe.push_udp(T0 + 3 * MS + t, &d, &mut out);
        }
        assert_eq!(fe.timing(), Some(Timing::Pts));
        let video: Vec<_> = out.iter().filter(|u| u.kind == EsKind::H264).collect();
        assert!(video[0].keyframe);
        assert!(fe.counters().units_dropped >= 19);
        for w in video.windows(2) {
            assert!(
                w[1].wall_ns.abs_diff(w[0].wall_ns + 33_333_333) < 2,
                "{w:?}"
            );
        }
    }

    #[test]
    fn units_held_through_the_sender_report_wait_are_not_released_stale() {
        // RTP without RTCP: the front end holds everything for the sender-report wait (12 s),
        // then anchors on PTS. Only the last seconds come out (from a keyframe), not 12 s of
        // pictures the grid can no longer use.
        let mut fe = FrontEnd::new(Some(50 * MS));
        let mut out = Vec::new();
        for (seq, (t, ts, d)) in feed(14 * 30, 90_000).into_iter().enumerate() {
            fe.push_rtp(T0 + 20 * MS + t, &rtp(seq as u16, ts, &d), &mut out);
            fe.poll(T0 + 20 * MS + t, &mut out);
            if fe.timing().is_some() {
                break; // what was held is out now
            }
        }
        assert_eq!(fe.timing(), Some(Timing::Pts));
        let video: Vec<_> = out.iter().filter(|u| u.kind == EsKind::H264).collect();
        assert!(video[0].keyframe, "decoding restarts at a keyframe");
        let newest = video.iter().map(|u| u.wall_ns).max().unwrap_or(0);
        let first = video[0].wall_ns;
        assert!(
            newest - first <= STALE_AFTER_ANCHOR_NS + 1_000_000_000,
            "{} ms of held pictures released",
            (newest - first) / MS
        );
        assert!(fe.counters().units_dropped >= 200, "{:?}", fe.counters());
        let audio_first = out
            .iter()
            .filter(|u| u.kind == EsKind::Aac)
            .map(|u| u.wall_ns)
            .min()
            .unwrap_or(0);
        assert!(audio_first >= first, "no audio before the restart keyframe");
    }

    #[test]
    fn units_waiting_for_the_anchor_are_bounded_by_bytes_too() {
        // Audio never anchors the timing (only pictures do): a feed without video holds its
        // units until the bound. Big units must not add up to 1024 × 8 MiB.
        let mut fe = FrontEnd::new(None);
        let mut out = Vec::new();
        let unit_bytes = 1 << 20;
        let units = 3 * PENDING_BYTES / unit_bytes;
        for i in 0..units as u64 {
            let unit = TsUnit {
                kind: EsKind::Aac,
                pts: Some(i * 1920),
                dts: None,
                data: vec![0xff; unit_bytes],
                meta: PacketMeta {
                    arrival_ns: T0 + i * 20 * MS,
                    rtp_ts: None,
                },
            };
            fe.unit(unit, &mut out);
            let held: usize = fe.pending.iter().map(|(u, _, _)| u.data.len()).sum();
            assert!(held <= PENDING_BYTES, "{held} bytes held after {i} units");
            assert_eq!(held, fe.pending_bytes);
        }
        assert!(out.is_empty(), "no anchor without pictures");
        // The newest are kept, the oldest dropped and counted.
        let kept = PENDING_BYTES / unit_bytes;
        assert_eq!(fe.pending.len(), kept);
        assert_eq!(
            fe.pending.front().and_then(|(u, _, _)| u.pts),
            Some((units - kept) as u64 * 1920)
        );
        assert_eq!(fe.counters().units_dropped, (units - kept) as u64);
    }

    #[test]
    fn garbage_is_counted_never_a_panic() {
        let mut fe = FrontEnd::new(Some(50 * MS));
        let mut out = Vec::new();
        for d in [
            &[][..],
            &[0x80],
            &[0x80, 33, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0x47],
            &[0xff; 200],
        ] {
            fe.push_rtp(T0, d, &mut out);
            fe.push_rtcp(d);
            fe.push_udp(T0, d, &mut out);
        }
        assert!(fe.counters().malformed >= 8);
        assert!(out.is_empty());
    }

    /// The fuzz targets' loops (fuzz/fuzz_targets/rtp_frontend.rs, ts_demux.rs) on pseudo-random
    /// bytes and on mutated real packets, so CI runs them on stable too.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let real: Vec<Vec<u8>> = feed(40, 8_589_000_000)
            .into_iter()
            .enumerate()
            .map(|(i, (_, ts, d))| rtp(i as u16, ts, &d))
            .collect();
        for round in 0..300 {
            let mut fe = FrontEnd::new(Some(50 * MS));
            let mut udp = FrontEnd::new(None);
            let mut out = Vec::new();
            for (i, d) in real.iter().enumerate() {
                let mut d = d.clone();
                for _ in 0..(next() % 4) {
                    let at = (next() as usize) % d.len();
                    d[at] = next() as u8;
                }
                if round % 3 == 0 {
                    d.truncate((next() as usize) % (d.len() + 1));
                }
                let t = T0 + i as u64 * 33 * MS;
                fe.push_rtp(t, &d, &mut out);
                fe.push_rtcp(&d);
                udp.push_udp(t, d.get(12..).unwrap_or_default(), &mut out);
                fe.poll(t, &mut out);
            }
            let noise: Vec<u8> = (0..(next() % 3000)).map(|_| next() as u8).collect();
            fe.push_rtp(T0, &noise, &mut out);
            fe.push_rtcp(&noise);
            udp.push_udp(T0, &noise, &mut out);
            fe.poll(u64::MAX, &mut out);
        }
    }

    #[test]
    fn idr_detection() {
        assert!(has_idr(&[0, 0, 0, 1, 0x67, 0, 0, 1, 0x65]));
        assert!(!has_idr(&[0, 0, 1, 0x41, 0x65]));
        assert!(!has_idr(&[0, 0, 1]));
    }

    #[test]
    fn signed_difference_of_33_bit_stamps() {
        assert_eq!(signed_33(10, 3010), -3000);
        assert_eq!(signed_33(5, (1 << 33) - 5), 10);
    }
}
