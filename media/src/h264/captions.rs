//! Closed captions in H.264: CEA-608/708 `cc_data` as ATSC A/53 Part 4 carries it, in a
//! `user_data_registered_itu_t_t35` SEI message (payloadType 4, §D.1.6) of each access unit
//! (docs/design/signals.md, *Captions*).
//!
//! The daemon reads a source picture's captions in whichever of GStreamer's four forms the
//! decoder gave them ([`CaptionFormat`]), turns them into `cc_data` triplets
//! ([`cc_triplets`]), and writes them back into the encoded access unit of every rendition
//! that shows that picture ([`caption_nal`], then `sei::insert_before_first_slice`).

use super::annexb::AvccNals;
use super::sps::nal_to_rbsp;
use super::{H264Error, NAL_SEI, nal_unit_type, sei};

/// `payloadType` of `user_data_registered_itu_t_t35`.
const USER_DATA_REGISTERED: usize = 4;
/// ITU-T T.35 country code (United States), provider code (ATSC), `user_identifier` "GA94"
/// and `user_data_type_code` 3 (cc_data): the prefix of an A/53 caption payload.
const A53_PREFIX: [u8; 8] = [0xB5, 0x00, 0x31, b'G', b'A', b'9', b'4', 0x03];
/// `cc_count` is 5 bits.
pub const MAX_CC_PER_MESSAGE: usize = 31;

/// One `cc_data` construct: `marker_bits(5) cc_valid(1) cc_type(2)`, then two bytes. cc_type 0
/// is CEA-608 field 1, 1 is field 2, 2 and 3 are DTVCC (CEA-708) packet data and start.
pub type CcTriplet = [u8; 3];

/// The forms GStreamer's `GstVideoCaptionMeta` takes (`GstVideoCaptionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionFormat {
    /// CEA-608 byte pairs of field 1.
    Cea608Raw,
    /// CEA-608 as SMPTE S334-1 Annex A triplets: a field/line byte (bit 7 set: field 1),
    /// then the pair.
    Cea608S334_1a,
    /// CEA-708 `cc_data` triplets (what A/53 carries).
    Cea708Raw,
    /// A CEA-708 caption distribution packet (SMPTE 334-2), whose `ccdata_section` holds the
    /// triplets.
    Cea708Cdp,
}

/// The `cc_data` triplets of caption data in `format`; malformed data gives none of its
/// triplets (a CDP) or only its whole ones (the others).
pub fn cc_triplets(format: CaptionFormat, data: &[u8]) -> Vec<CcTriplet> {
    match format {
        CaptionFormat::Cea608Raw => data.chunks_exact(2).map(|p| [0xFC, p[0], p[1]]).collect(),
        CaptionFormat::Cea608S334_1a => data
            .chunks_exact(3)
            .map(|t| [if t[0] & 0x80 != 0 { 0xFC } else { 0xFD }, t[1], t[2]])
            .collect(),
        CaptionFormat::Cea708Raw => data
            .chunks_exact(3)
            .map(|t| [t[0] | 0xF8, t[1], t[2]])
            .collect(),
        CaptionFormat::Cea708Cdp => cdp_triplets(data).unwrap_or_default(),
    }
}

/// The `ccdata_section` of a caption distribution packet (SMPTE 334-2 §5), if it has one.
fn cdp_triplets(cdp: &[u8]) -> Option<Vec<CcTriplet>> {
    if cdp.get(..2)? != [0x96, 0x69] {
        return None;
    }
    let length = usize::from(*cdp.get(2)?);
    let cdp = cdp.get(..length.min(cdp.len()))?;
    let flags = *cdp.get(4)?;
    let mut pos = 7; // after cdp_hdr_sequence_cntr
    if flags & 0x80 != 0 {
        // time_code_section: its id (0x71) and 4 bytes.
        if *cdp.get(pos)? != 0x71 {
            return None;
        }
        pos += 5;
    }
    if flags & 0x40 == 0 || *cdp.get(pos)? != 0x72 {
        return None;
    }
    let count = usize::from(*cdp.get(pos + 1)? & 0x1F);
    let body = cdp.get(pos + 2..pos + 2 + 3 * count)?;
    Some(
        body.chunks_exact(3)
            .map(|t| [t[0] | 0xF8, t[1], t[2]])
            .collect(),
    )
}

/// An SEI NAL unit carrying `cc` as A/53 `cc_data`, 31 triplets per message.
pub fn caption_nal(cc: &[CcTriplet]) -> Vec<u8> {
    let payloads: Vec<Vec<u8>> = cc
        .chunks(MAX_CC_PER_MESSAGE)
        .map(|chunk| {
            let mut p = Vec::with_capacity(A53_PREFIX.len() + 3 + 3 * chunk.len());
            p.extend_from_slice(&A53_PREFIX);
            // process_em_data_flag 0, process_cc_data_flag 1, additional_data_flag 0, cc_count
            p.push(0x40 | chunk.len() as u8);
            p.push(0xFF); // em_data
            for t in chunk {
                p.extend_from_slice(t);
            }
            p.push(0xFF); // marker_bits
            p
        })
        .collect();
    let messages: Vec<(usize, &[u8])> = payloads
        .iter()
        .map(|p| (USER_DATA_REGISTERED, p.as_slice()))
        .collect();
    sei::nal(NAL_SEI, &messages)
}

/// The A/53 `cc_data` triplets an access unit (`length_size`-prefixed NAL units) carries, in
/// order.
pub fn read_captions(au: &[u8], length_size: u8) -> Result<Vec<CcTriplet>, H264Error> {
    let mut out = Vec::new();
    for nal in AvccNals::with_length_size(au, length_size)? {
        let nal = nal?;
        if nal_unit_type(nal) != Some(NAL_SEI) {
            continue;
        }
        let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
        for (kind, payload) in sei::messages(&rbsp)? {
            if kind != USER_DATA_REGISTERED {
                continue;
            }
            let Some(cc) = payload.strip_prefix(&A53_PREFIX[..]) else {
                continue;
            };
            let Some((&flags, rest)) = cc.split_first() else {
                continue;
            };
            let count = usize::from(flags & 0x1F);
            if let Some(body) = rest.get(1..1 + 3 * count) {
                out.extend(body.chunks_exact(3).map(|t| [t[0], t[1], t[2]]));
            }
        }
    }
    Ok(out)
}
