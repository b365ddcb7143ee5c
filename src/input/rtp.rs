//! RTP packets (RFC 3550 §5.1) carrying MPEG-TS (RFC 2250 §2, SMPTE 2022-1 without FEC: payload
//! type 33, a whole number of 188-byte TS packets per datagram), and the bounded reorder buffer.
//!
//! The reorder buffer releases packets in sequence order. A packet that follows a gap waits at
//! most `latency` for the missing ones; then they are counted lost and the buffer moves on. It
//! never holds more than [`REORDER_CAPACITY`] packets (a burst past that counts the oldest gap
//! lost at once). Sequence numbers are extended to 64 bits so the 16-bit wrap is invisible; a
//! jump of more than [`MAX_SEQ_JUMP`] or a new SSRC is a sender restart (counted, no loss
//! counted for it).

use std::collections::BTreeMap;

use bytes::Bytes;
use webrtc_util::Unmarshal;

/// RTP payload type of MPEG-TS (RFC 3551 table 5).
pub const PT_MP2T: u8 = 33;
/// Size of one MPEG-TS packet.
pub const TS_PACKET_SIZE: usize = 188;
/// Most packets the reorder buffer holds (about 1.5 s of a 10 Mbit/s feed).
pub const REORDER_CAPACITY: usize = 1024;
/// A sequence jump larger than this (either way) is a sender restart, not loss or reorder.
pub const MAX_SEQ_JUMP: i64 = 3000;
/// How many delivered sequence numbers are remembered to tell a duplicate from a late packet.
const HISTORY: u64 = 128;

/// One parsed RTP packet: the fields the front end uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload_type: u8,
    pub payload: Bytes,
}

/// Why an RTP datagram was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP header: {0}")]
    Header(String),
    #[error("RTP version {0} (only 2 exists)")]
    Version(u8),
    #[error("RTP payload type {0} is not MPEG-TS (33)")]
    PayloadType(u8),
    #[error("RTP payload of {0} bytes is not a whole number of 188-byte TS packets")]
    PayloadSize(usize),
}

/// Parses one datagram as RTP carrying MPEG-TS.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket, RtpError> {
    check_extension(datagram)?;
    let mut buf = datagram;
    let pkt =
        rtp::packet::Packet::unmarshal(&mut buf).map_err(|e| RtpError::Header(e.to_string()))?;
    let h = &pkt.header;
    if h.version != 2 {
        return Err(RtpError::Version(h.version));
    }
    if h.payload_type != PT_MP2T {
        return Err(RtpError::PayloadType(h.payload_type));
    }
    if pkt.payload.is_empty() || !pkt.payload.len().is_multiple_of(TS_PACKET_SIZE) {
        return Err(RtpError::PayloadSize(pkt.payload.len()));
    }
    Ok(RtpPacket {
        seq: h.sequence_number,
        timestamp: h.timestamp,
        ssrc: h.ssrc,
        payload_type: h.payload_type,
        payload: pkt.payload,
    })
}

/// Profile of RFC 8285 one-byte header extensions, and of two-byte ones (the `rtp` crate
/// recognises exactly 0x1000 among the two-byte profiles 0x1000..=0x100f).
const EXT_ONE_BYTE: u16 = 0xBEDE;
const EXT_TWO_BYTE: u16 = 0x1000;

/// Rejects a header extension whose elements run past the extension block (RFC 8285 §4.2,
/// §4.3). The `rtp` crate walks the elements without checking each one's length against the
/// datagram and panics on such a packet; a malformed datagram must be counted and dropped.
/// Only the element walk is checked here: the crate itself rejects a block longer than the
/// datagram.
fn check_extension(d: &[u8]) -> Result<(), RtpError> {
    let short = || RtpError::Header("header extension runs past its block".into());
    let Some(&b0) = d.first() else {
        return Ok(());
    };
    if b0 & 0x10 == 0 {
        return Ok(());
    }
    let start = 12 + 4 * usize::from(b0 & 0x0f);
    let (Some(profile), Some(words)) = (be16(d, start), be16(d, start + 2)) else {
        return Ok(()); // the crate reports a header too short for its extension
    };
    let mut at = start + 4;
    let end = at + 4 * usize::from(words);
    if end > d.len() {
        return Ok(()); // likewise
    }
    while at < end {
        let b = d[at];
        at += 1;
        if b == 0 {
            continue; // padding
        }
        let len = match profile {
            EXT_ONE_BYTE if b >> 4 == 0x0f => return Ok(()), // reserved id: the walk stops
            EXT_ONE_BYTE => usize::from(b & 0x0f) + 1,
            EXT_TWO_BYTE => {
                let len = *d.get(at).filter(|_| at < end).ok_or_else(short)?;
                at += 1;
                usize::from(len)
            }
            _ => return Ok(()), // one opaque RFC 3550 block
        };
        at += len;
        if at > end {
            return Err(short());
        }
    }
    Ok(())
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Counters of the reorder buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderCounters {
    /// Packets released in order.
    pub delivered: u64,
    /// Packets that never came within the latency (or were pushed out by a full buffer).
    pub lost: u64,
    /// Packets that arrived after a higher sequence number but in time.
    pub reordered: u64,
    /// Packets seen twice.
    pub duplicated: u64,
    /// Packets that arrived after their gap had been counted lost (dropped).
    pub late: u64,
    /// Sender restarts (new SSRC or a sequence jump).
    pub restarts: u64,
}

/// A packet with its local arrival time (ns since the epoch).
#[derive(Clone, Debug)]
pub struct Arrived {
    pub arrival_ns: u64,
    pub packet: RtpPacket,
}

/// The bounded reorder buffer (pure: the caller passes the time).
#[derive(Debug)]
pub struct Reorder {
    latency_ns: u64,
    held: BTreeMap<u64, Arrived>,
    ssrc: Option<u32>,
    /// Extended sequence number of the next packet to release.
    next: u64,
    /// Highest extended sequence number seen.
    highest: u64,
    /// Bit i set: `next - 1 - i` was delivered.
    history: u128,
    counters: ReorderCounters,
}

impl Reorder {
    pub fn new(latency_ns: u64) -> Self {
        Reorder {
            latency_ns,
            held: BTreeMap::new(),
            ssrc: None,
            next: 0,
            highest: 0,
            history: 0,
            counters: ReorderCounters::default(),
        }
    }

    pub fn counters(&self) -> ReorderCounters {
        self.counters
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// When [`poll`](Self::poll) next has something to do (a gap's wait ends), if anything is held.
    pub fn deadline(&self) -> Option<u64> {
        self.held
            .values()
            .next()
            .map(|a| a.arrival_ns.saturating_add(self.latency_ns))
    }

    /// Takes one packet; released packets are appended to `out` in sequence order.
    pub fn push(&mut self, arrived: Arrived, out: &mut Vec<Arrived>) {
        let now = arrived.arrival_ns;
        let seq = arrived.packet.seq;
        if self.ssrc != Some(arrived.packet.ssrc) {
            if self.ssrc.is_some() {
                self.restart();
            }
            self.start(arrived.packet.ssrc, seq);
        }
        let ext = self.extend(seq);
        if (ext - self.highest as i64).abs() > MAX_SEQ_JUMP {
            self.restart();
            self.start(arrived.packet.ssrc, seq);
            return self.push(arrived, out);
        }
        let ext = ext.max(0) as u64;
        if ext < self.next {
            let back = self.next - 1 - ext;
            if back < HISTORY && self.history & (1u128 << back) != 0 {
                self.counters.duplicated += 1;
            } else {
                self.counters.late += 1;
            }
            return;
        }
        if self.held.contains_key(&ext) {
            self.counters.duplicated += 1;
            return;
        }
        if ext < self.highest {
            self.counters.reordered += 1;
        }
        self.highest = self.highest.max(ext);
        self.held.insert(ext, arrived);
        self.release(now, out);
    }

    /// Releases what the passing of time allows (a gap whose wait has ended).
    pub fn poll(&mut self, now_ns: u64, out: &mut Vec<Arrived>) {
        self.release(now_ns, out);
    }

    fn start(&mut self, ssrc: u32, seq: u16) {
        self.ssrc = Some(ssrc);
        // Extended numbers start one wrap up so that a packet just before the first is not < 0.
        self.next = (1 << 16) + u64::from(seq);
        self.highest = self.next;
        self.history = 0;
    }

    fn restart(&mut self) {
        self.counters.restarts += 1;
        self.held.clear();
    }

    /// The extended number of `seq`: the one closest to the highest seen.
    fn extend(&self, seq: u16) -> i64 {
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        self.highest as i64 + delta
    }

    fn release(&mut self, now: u64, out: &mut Vec<Arrived>) {
        loop {
            if let Some(a) = self.held.remove(&self.next) {
                self.deliver(a, out);
                continue;
            }
            let Some((&first, a)) = self.held.iter().next() else {
                return;
            };
            let expired = now >= a.arrival_ns.saturating_add(self.latency_ns);
            if !expired && self.held.len() <= REORDER_CAPACITY {
                return;
            }
            let missing = first - self.next;
            self.counters.lost += missing;
            self.history = if missing >= HISTORY {
                0
            } else {
                self.history << missing
            };
            self.next = first;
        }
    }

    fn deliver(&mut self, a: Arrived, out: &mut Vec<Arrived>) {
        self.next += 1;
        self.history = (self.history << 1) | 1;
        self.counters.delivered += 1;
        out.push(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn pkt(seq: u16, t: u64) -> Arrived {
        Arrived {
            arrival_ns: t,
            packet: RtpPacket {
                seq,
                timestamp: 0,
                ssrc: 7,
                payload_type: PT_MP2T,
                payload: Bytes::from_static(&[0x47; 188]),
            },
        }
    }

    fn seqs(out: &[Arrived]) -> Vec<u16> {
        out.iter().map(|a| a.packet.seq).collect()
    }

    fn datagram(pt: u8, payload_len: usize) -> Vec<u8> {
        let mut d = vec![0x80, pt, 0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 7];
        d.extend(std::iter::repeat_n(0x47, payload_len));
        d
    }

    #[test]
    fn a_header_extension_that_overruns_its_block_is_an_error_not_a_panic() {
        // Found by fuzz/fuzz_targets/rtp_frontend.rs: a one-byte extension element whose
        // length runs past the datagram made the rtp crate panic.
        let crash = [
            0x2e, 0xd0, 0xc0, 0x9b, 0x31, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x10, 0, 0, 2, 0, 0,
            0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc4,
        ];
        assert!(parse(&crash).is_err());
        for profile in [EXT_ONE_BYTE, EXT_TWO_BYTE] {
            // one extension word whose only element claims 16 bytes
            let mut d = vec![0x90, 33, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
            d.extend(profile.to_be_bytes());
            d.extend([0, 1, 0x0f, 0x10, 0, 0]);
            d.extend([0x47; 188]);
            assert!(
                matches!(parse(&d), Err(RtpError::Header(_))),
                "{profile:#x}"
            );
        }
        // a well-formed one-byte element is accepted
        let mut d = vec![0x90, 33, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 0xbe, 0xde, 0, 1];
        d.extend([0x12, 0xaa, 0xbb, 0]);
        d.extend([0x47; 188]);
        assert_eq!(parse(&d).unwrap().payload.len(), 188);
    }

    #[test]
    fn parses_mp2t_and_rejects_the_rest() {
        let p = parse(&datagram(33, 7 * 188)).unwrap();
        assert_eq!(
            (p.seq, p.timestamp, p.ssrc, p.payload.len()),
            (0x1234, 9, 7, 1316)
        );
        assert_eq!(parse(&datagram(96, 188)), Err(RtpError::PayloadType(96)));
        assert_eq!(parse(&datagram(33, 100)), Err(RtpError::PayloadSize(100)));
        assert_eq!(parse(&datagram(33, 0)), Err(RtpError::PayloadSize(0)));
        assert!(matches!(parse(&[0x80, 33, 0]), Err(RtpError::Header(_))));
        let mut v1 = datagram(33, 188);
        v1[0] = 0x40;
        assert!(parse(&v1).is_err());
    }

    #[test]
    fn in_order_passes_at_once() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        for s in 0..10u16 {
            r.push(pkt(s, u64::from(s) * MS), &mut out);
        }
        assert_eq!(seqs(&out), (0..10).collect::<Vec<_>>());
        assert_eq!(r.counters().lost + r.counters().reordered, 0);
    }

    #[test]
    fn reorder_within_latency_is_repaired() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        for (s, t) in [(0, 0), (2, 1), (3, 2), (1, 10), (4, 11)] {
            r.push(pkt(s, t * MS), &mut out);
        }
        assert_eq!(seqs(&out), vec![0, 1, 2, 3, 4]);
        assert_eq!(r.counters().reordered, 1);
        assert_eq!(r.counters().lost, 0);
    }

    #[test]
    fn a_gap_waits_latency_then_counts_lost_and_late_ones_are_dropped() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        r.push(pkt(0, 0), &mut out);
        r.push(pkt(3, MS), &mut out);
        assert_eq!(seqs(&out), vec![0]);
        assert_eq!(r.deadline(), Some(51 * MS));
        r.poll(50 * MS, &mut out);
        assert_eq!(seqs(&out), vec![0]);
        r.poll(51 * MS, &mut out);
        assert_eq!(seqs(&out), vec![0, 3]);
        assert_eq!(r.counters().lost, 2);
        r.push(pkt(1, 60 * MS), &mut out);
        assert_eq!(r.counters().late, 1);
        assert_eq!(seqs(&out), vec![0, 3]);
    }

    #[test]
    fn duplicates_are_counted_once_and_dropped() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        r.push(pkt(0, 0), &mut out);
        r.push(pkt(0, 1), &mut out);
        r.push(pkt(2, 2), &mut out);
        r.push(pkt(2, 3), &mut out);
        r.push(pkt(1, 4), &mut out);
        assert_eq!(seqs(&out), vec![0, 1, 2]);
        assert_eq!(r.counters().duplicated, 2);
    }

    #[test]
    fn sequence_wrap_is_seamless() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        let start = 65530u16;
        for i in 0..12u16 {
            r.push(pkt(start.wrapping_add(i), u64::from(i)), &mut out);
        }
        // One reordered across the wrap.
        r.push(pkt(start.wrapping_add(13), 20), &mut out);
        r.push(pkt(start.wrapping_add(12), 21), &mut out);
        assert_eq!(out.len(), 14);
        assert_eq!(r.counters().lost, 0);
        assert_eq!(r.counters().reordered, 1);
    }

    #[test]
    fn capacity_bounds_the_buffer() {
        let mut r = Reorder::new(10_000 * MS);
        let mut out = Vec::new();
        r.push(pkt(0, 0), &mut out);
        for s in 2..(REORDER_CAPACITY as u16 + 10) {
            r.push(pkt(s, 1), &mut out);
            assert!(r.held() <= REORDER_CAPACITY);
        }
        assert_eq!(r.counters().lost, 1);
    }

    #[test]
    fn new_ssrc_or_big_jump_restarts() {
        let mut r = Reorder::new(50 * MS);
        let mut out = Vec::new();
        r.push(pkt(100, 0), &mut out);
        r.push(pkt(30000, 1), &mut out);
        r.push(pkt(30001, 2), &mut out);
        assert_eq!(seqs(&out), vec![100, 30000, 30001]);
        let mut other = pkt(5, 3);
        other.packet.ssrc = 8;
        r.push(other, &mut out);
        assert_eq!(r.counters().restarts, 2);
        assert_eq!(r.counters().lost, 0);
        assert_eq!(out.len(), 4);
    }
}
