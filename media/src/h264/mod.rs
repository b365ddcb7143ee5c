//! H.264 bitstream helpers: Annex B ↔ length-prefixed (AVCC) NAL units, access-unit splitting,
//! the AVCDecoderConfigurationRecord, and just enough SPS parsing for the picture size.
//!
//! References: ITU-T H.264 / ISO/IEC 14496-10 §7.3.1 (NAL unit syntax, emulation prevention),
//! §7.3.2.1.1 (SPS), §7.4.1.2.3 (access unit boundaries), §9.1 (exp-Golomb), Annex B (byte
//! stream format); ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord, `avcC`);
//! RFC 6381 §3.3 (`avc1.PPCCLL` codec strings).
//!
//! Every parser returns [`H264Error`] on malformed input; nothing here panics on bytes from
//! outside.
//!
//! `annexb.rs`: start codes ↔ length prefixes, access units; `sps.rs`: the bit reader and the
//! SPS; `avcc.rs`: the `avcC` record (it reads the SPS for the High-profile extension);
//! `sei.rs`: SEI messages, RBSP escaping, a NAL unit put before an access unit's slices;
//! `timecode.rs`: the epoch timecode as a picture timing SEI; `captions.rs`: CEA-608/708
//! `cc_data` in an A/53 SEI.

use thiserror::Error;

/// Coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Profiles whose SPS carries chroma format, bit depths and scaling lists (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];
/// Profiles whose `avcC` carries the chroma/bit-depth extension (14496-15 §5.3.3.1.2).
const AVCC_EXT_PROFILES: [u8; 4] = [100, 110, 122, 144];

/// Why H.264 data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum H264Error {
    #[error("Annex B data does not start with a start code ({0} bytes of other data first)")]
    NoStartCode(usize),
    #[error("NAL unit of {0} bytes does not fit a 32-bit length prefix")]
    NalTooLarge(usize),
    #[error("truncated {what} at offset {offset}: needs {needed} bytes, {available} available")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("empty NAL unit at offset {0}")]
    EmptyNal(usize),
    #[error("AVCDecoderConfigurationRecord version {0}, expected 1")]
    ConfigVersion(u8),
    #[error("NAL length size {0} is not 1, 2 or 4")]
    LengthSize(u8),
    #[error("expected NAL unit type {expected}, found {found}")]
    NalType { expected: u8, found: u8 },
    #[error("SPS ended while reading {0}")]
    SpsTruncated(&'static str),
    #[error("exp-Golomb code longer than 32 bits in {0}")]
    ExpGolomb(&'static str),
    #[error("SPS {what} = {value} is out of range")]
    OutOfRange { what: &'static str, value: i64 },
    #[error("no SPS: a decoder configuration needs at least one")]
    NoSps,
    #[error("no PPS: a decoder configuration needs at least one")]
    NoPps,
    #[error(
        "the SPS has HRD parameters but the access unit no picture timing SEI to take its delays from"
    )]
    NoHrdDelays,
    #[error("too many {what}: {count} (at most {max})")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// The `nal_unit_type` of a NAL unit (its first byte's low 5 bits), or `None` for an empty one.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// True for coded-slice NAL units (types 1..=5).
fn is_vcl(nal_type: u8) -> bool {
    (1..=5).contains(&nal_type)
}

mod annexb;
mod avcc;
mod captions;
mod sei;
mod sps;
#[cfg(test)]
mod tests;
mod timecode;

pub use annexb::{
    AnnexBNals, AvccNals, annexb_to_avcc, annexb_to_avcc_into, is_idr, nals_to_avcc,
    split_access_units,
};
pub use avcc::{AvcConfigExt, AvcDecoderConfig, rfc6381_codec};
pub use captions::{
    CaptionFormat, CcTriplet, MAX_CC_PER_MESSAGE, caption_nal, cc_triplets, read_captions,
};
pub use sei::insert_before_first_slice;
pub use sps::{BitReader, PicTimingLayout, Sps, nal_to_rbsp};
pub use timecode::{
    Timecode, avcc_with_pic_struct, insert_pic_timing, pic_timing_nal, sps_with_pic_struct,
};
