//! Fragmented-MP4 checks of what the ingest receiver recorded (Smooth and CMAF ingest),
//! shared by tests/e2e_publish.rs and tests/e2e_interop.rs: top-level boxes, fragments by
//! `mfhd` sequence and `tfdt`, contiguity.
#![allow(dead_code)]

use std::collections::BTreeSet;

use crate::common::parse_segment;
use crate::peers::Request;

/// Top-level boxes of `data` that are complete: (type, whole box bytes).
pub fn whole_boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        if size < 8 || pos + size > data.len() {
            break;
        }
        out.push((
            data[pos + 4..pos + 8].try_into().unwrap(),
            &data[pos..pos + size],
        ));
        pos += size;
    }
    out
}

pub fn child_types(b: &[u8]) -> Vec<[u8; 4]> {
    whole_boxes(&b[8..]).iter().map(|(k, _)| *k).collect()
}

/// One fragment the receiver got: (mfhd sequence, tfdt, summed sample durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frag {
    pub seq: u32,
    pub tfdt: u64,
    pub duration: u64,
}

pub fn frags_of(moof_mdat: &[u8], video: bool) -> Vec<Frag> {
    parse_segment(moof_mdat, video)
        .into_iter()
        .map(|f| Frag {
            seq: f.sequence,
            tfdt: f.tfdt,
            duration: f.durations.iter().map(|d| u64::from(*d)).sum(),
        })
        .collect()
}

/// Every fragment number from the first to the last is there, and each starts where the
/// previous one ended.
pub fn assert_contiguous(all: &[Frag], what: &str) {
    let set: BTreeSet<Frag> = all.iter().copied().collect();
    let v: Vec<Frag> = set.into_iter().collect();
    assert!(v.len() >= 10, "{what}: only {} fragments", v.len());
    for w in v.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "{what}: fragment missing after {:?}",
            w[0]
        );
        assert_eq!(
            w[1].tfdt,
            w[0].tfdt + w[0].duration,
            "{what}: tfdt gap after {:?}",
            w[0]
        );
    }
}

/// Checks one Smooth stream on one receiver; returns how many fragments each reconnect
/// re-sent (fragments of a POST already received in the previous one).
pub fn check_smooth(reqs: &[&Request], track: &str, video: bool) -> (Vec<Frag>, Vec<usize>) {
    assert!(!reqs.is_empty(), "smooth {track}: no request");
    assert!(
        !reqs[0].chunked && reqs[0].body.is_empty(),
        "smooth {track}: the first request is the empty POST"
    );
    let mut all = Vec::new();
    let mut resent = Vec::new();
    let mut prev: Vec<Frag> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.method, "POST");
        if !r.chunked {
            assert!(
                r.body.is_empty(),
                "smooth {track}: a non-chunked POST with a body"
            );
            continue;
        }
        assert!(
            i > 0 && !reqs[i - 1].chunked,
            "smooth {track}: every streaming POST follows an empty POST"
        );
        let top = whole_boxes(&r.body);
        let kinds: Vec<&[u8; 4]> = top.iter().take(3).map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [b"ftyp", b"uuid", b"moov"],
            "smooth {track}: header boxes"
        );
        assert_eq!(
            top[1].1[8..24],
            [
                0xa5, 0xd4, 0x0b, 0x30, 0xe8, 0x14, 0x11, 0xdd, 0xba, 0x2f, 0x08, 0x00, 0x20, 0x0c,
                0x9a, 0x66
            ],
            "smooth {track}: Live Server Manifest box"
        );
        let mut media = Vec::new();
        for (k, b) in &top[3..] {
            if k == b"moof" {
                let traf = whole_boxes(&b[8..])
                    .into_iter()
                    .find(|(k, _)| k == b"traf")
                    .expect("traf")
                    .1;
                let has_tfxd = whole_boxes(&traf[8..]).iter().any(|(k, b)| {
                    k == b"uuid"
                        && b[8..24]
                            == [
                                0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14,
                                0x1d, 0xaf, 0xf7, 0x57, 0xb2,
                            ]
                });
                assert!(has_tfxd, "smooth {track}: tfxd in every fragment");
                assert!(child_types(b).contains(b"traf"));
            }
            media.extend_from_slice(b);
        }
        // Only whole moof+mdat pairs.
        let pairs = whole_boxes(&media).len() / 2 * 2;
        let cut: usize = whole_boxes(&media)[..pairs]
            .iter()
            .map(|(_, b)| b.len())
            .sum();
        let frags = frags_of(&media[..cut], video);
        if !prev.is_empty() {
            resent.push(frags.iter().filter(|f| prev.contains(f)).count());
        }
        all.extend_from_slice(&frags);
        prev = frags;
    }
    (all, resent)
}

/// Checks one CMAF ingest track on one receiver: header first on every connection, prft in
/// every segment. Returns the fragments and how many complete segments arrived twice.
pub fn check_cmaf(reqs: &[&Request], track: &str, video: bool) -> (Vec<Frag>, usize, bool) {
    let mut all = Vec::new();
    // Connections may interleave in the record (a stalled one is read out late).
    let mut conns = BTreeSet::new();
    let mut last_lmsg = false;
    for r in reqs.iter().filter(|r| r.complete) {
        assert_eq!(r.method, "POST");
        let top = whole_boxes(&r.body);
        let first = top.first().map(|(k, _)| *k);
        if conns.insert(r.conn) {
            assert_eq!(
                first,
                Some(*b"ftyp"),
                "cmaf {track}: the header opens every connection"
            );
        }
        if first == Some(*b"ftyp") {
            continue;
        }
        assert_eq!(
            first,
            Some(*b"styp"),
            "cmaf {track}: segment starts with styp"
        );
        assert!(
            top.iter().any(|(k, _)| k == b"prft"),
            "cmaf {track}: prft in every segment"
        );
        last_lmsg = top[0].1.windows(4).any(|w| w == b"lmsg");
        all.extend(frags_of(&r.body, video));
    }
    let unique: BTreeSet<u32> = all.iter().map(|f| f.seq).collect();
    let dups = all.len() - unique.len();
    (all, dups, last_lmsg)
}
