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

// ---------------------------------------------------------------------------------------------
// Annex B

/// Iterates the NAL units of an Annex B byte stream (start codes `00 00 01` or `00 00 00 01`).
/// Trailing zero bytes before a start code are not part of a NAL unit and are dropped; empty NAL
/// units are skipped. Data before the first start code other than zero bytes is an error.
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit's payload, or `None` when done.
    next: Option<usize>,
    error: Option<H264Error>,
}

/// Returns (start code position, payload start) of the first start code at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(window) = data.get(i..i + 3) {
        if window[2] > 1 {
            i += 3;
        } else if window == [0, 0, 1] {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

impl<'a> AnnexBNals<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        match find_start_code(data, 0) {
            Some((pos, payload)) => {
                let junk = data.get(..pos).unwrap_or_default();
                if junk.iter().any(|&b| b != 0) {
                    Self::failed(data, H264Error::NoStartCode(pos))
                } else {
                    Self {
                        data,
                        next: Some(payload),
                        error: None,
                    }
                }
            }
            None if data.iter().all(|&b| b == 0) => Self {
                data,
                next: None,
                error: None,
            },
            None => Self::failed(data, H264Error::NoStartCode(data.len())),
        }
    }

    fn failed(data: &'a [u8], e: H264Error) -> Self {
        Self {
            data,
            next: None,
            error: Some(e),
        }
    }
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        loop {
            let start = self.next?;
            let (end, next) = match find_start_code(self.data, start) {
                Some((pos, payload)) => (pos, Some(payload)),
                None => (self.data.len(), None),
            };
            self.next = next;
            let mut nal = self.data.get(start..end).unwrap_or_default();
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// Converts Annex B data to 4-byte length-prefixed NAL units, appending to `out`.
pub fn annexb_to_avcc_into(annexb: &[u8], out: &mut Vec<u8>) -> Result<(), H264Error> {
    out.reserve(annexb.len() + 16);
    for nal in AnnexBNals::new(annexb) {
        push_length_prefixed(nal?, out)?;
    }
    Ok(())
}

/// Converts Annex B data (one access unit, or any run of NAL units) to 4-byte length-prefixed
/// NAL units, the sample format of `avc1` tracks.
pub fn annexb_to_avcc(annexb: &[u8]) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(annexb.len() + 16);
    annexb_to_avcc_into(annexb, &mut out)?;
    Ok(out)
}

/// Converts a list of NAL units (without start codes) to one 4-byte length-prefixed sample.
pub fn nals_to_avcc(nals: &[&[u8]]) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        push_length_prefixed(nal, &mut out)?;
    }
    Ok(out)
}

fn push_length_prefixed(nal: &[u8], out: &mut Vec<u8>) -> Result<(), H264Error> {
    let len = u32::try_from(nal.len()).map_err(|_| H264Error::NalTooLarge(nal.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Ok(())
}

/// Splits an Annex B elementary stream into access units (lists of NAL units), using the
/// boundary rules of §7.4.1.2.3 that matter for single-layer streams: an AUD, SPS, PPS or SEI
/// after a picture's slices, or a slice with `first_mb_in_slice == 0`, starts a new access unit.
pub fn split_access_units(annexb: &[u8]) -> Result<Vec<Vec<&[u8]>>, H264Error> {
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let mut seen_vcl = false;
    for nal in AnnexBNals::new(annexb) {
        let nal = nal?;
        let t = nal_unit_type(nal).unwrap_or(0);
        let starts_new = if is_vcl(t) {
            // first_mb_in_slice is ue(v); value 0 is the single bit '1'.
            let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
            seen_vcl && first_mb_zero
        } else {
            seen_vcl && matches!(t, NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD | 14..=18)
        };
        if starts_new {
            units.push(std::mem::take(&mut current));
            seen_vcl = false;
        }
        seen_vcl |= is_vcl(t);
        current.push(nal);
    }
    if !current.is_empty() {
        units.push(current);
    }
    Ok(units)
}

// ---------------------------------------------------------------------------------------------
// Length-prefixed (AVCC) samples

/// Iterates the NAL units of a length-prefixed sample. Stops after the first error.
#[derive(Debug, Clone)]
pub struct AvccNals<'a> {
    data: &'a [u8],
    offset: usize,
    length_size: usize,
}

impl<'a> AvccNals<'a> {
    /// NAL units with 4-byte length prefixes (what this crate always writes).
    pub fn new(sample: &'a [u8]) -> Self {
        Self {
            data: sample,
            offset: 0,
            length_size: 4,
        }
    }

    /// NAL units with 1-, 2- or 4-byte length prefixes (`lengthSizeMinusOne + 1` of `avcC`).
    pub fn with_length_size(sample: &'a [u8], length_size: u8) -> Result<Self, H264Error> {
        if !matches!(length_size, 1 | 2 | 4) {
            return Err(H264Error::LengthSize(length_size));
        }
        Ok(Self {
            data: sample,
            offset: 0,
            length_size: usize::from(length_size),
        })
    }
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        let Some(prefix) = rest.get(..self.length_size) else {
            self.offset = self.data.len();
            return Some(Err(H264Error::Truncated {
                what: "NAL length prefix",
                offset,
                needed: self.length_size,
                available: rest.len(),
            }));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let Some(nal) = rest.get(self.length_size..self.length_size + len) else {
            self.offset = self.data.len();
            return Some(Err(H264Error::Truncated {
                what: "NAL unit",
                offset,
                needed: self.length_size + len,
                available: rest.len(),
            }));
        };
        if nal.is_empty() {
            self.offset = self.data.len();
            return Some(Err(H264Error::EmptyNal(offset)));
        }
        self.offset += self.length_size + len;
        Some(Ok(nal))
    }
}

/// True when a 4-byte length-prefixed sample holds an IDR slice.
pub fn is_idr(sample: &[u8]) -> Result<bool, H264Error> {
    for nal in AvccNals::new(sample) {
        if nal_unit_type(nal?) == Some(NAL_IDR) {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Bit reading (§7.2, §9.1)

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL unit payload (§7.4.1).
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB first, with exp-Golomb codes, from an RBSP.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    pub fn read_bit(&mut self, what: &'static str) -> Result<bool, H264Error> {
        let byte = self
            .data
            .get(self.bit / 8)
            .ok_or(H264Error::SpsTruncated(what))?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(v == 1)
    }

    /// Reads `n` ≤ 32 bits.
    pub fn read_bits(&mut self, n: u32, what: &'static str) -> Result<u32, H264Error> {
        let mut v = 0u64;
        for _ in 0..n.min(32) {
            v = (v << 1) | u64::from(self.read_bit(what)?);
        }
        u32::try_from(v).map_err(|_| H264Error::ExpGolomb(what))
    }

    /// Unsigned exp-Golomb `ue(v)` (§9.1).
    pub fn read_ue(&mut self, what: &'static str) -> Result<u32, H264Error> {
        let mut zeros = 0u32;
        while !self.read_bit(what)? {
            zeros += 1;
            if zeros > 31 {
                return Err(H264Error::ExpGolomb(what));
            }
        }
        let suffix = u64::from(self.read_bits(zeros, what)?);
        u32::try_from((1u64 << zeros) - 1 + suffix).map_err(|_| H264Error::ExpGolomb(what))
    }

    /// Signed exp-Golomb `se(v)` (§9.1.1).
    pub fn read_se(&mut self, what: &'static str) -> Result<i32, H264Error> {
        let k = i64::from(self.read_ue(what)?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| H264Error::ExpGolomb(what))
    }
}

fn ue_max(r: &mut BitReader<'_>, what: &'static str, max: u32) -> Result<u32, H264Error> {
    let v = r.read_ue(what)?;
    if v > max {
        return Err(H264Error::OutOfRange {
            what,
            value: i64::from(v),
        });
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// SPS (§7.3.2.1.1)

/// The fields of a sequence parameter set that packaging and manifests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and reserved bits (the `profile_compatibility` byte).
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub frame_mbs_only: bool,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Self, H264Error> {
        match nal_unit_type(nal) {
            Some(NAL_SPS) => {}
            found => {
                return Err(H264Error::NalType {
                    expected: NAL_SPS,
                    found: found.unwrap_or(0),
                });
            }
        }
        let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.read_bits(8, "profile_idc")? as u8;
        let constraint_flags = r.read_bits(8, "constraint flags")? as u8;
        let level_idc = r.read_bits(8, "level_idc")? as u8;
        let seq_parameter_set_id = ue_max(&mut r, "seq_parameter_set_id", 31)?;

        let mut chroma_format_idc = 1u8;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8u8;
        let mut bit_depth_chroma = 8u8;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = ue_max(&mut r, "chroma_format_idc", 3)? as u8;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.read_bit("separate_colour_plane_flag")?;
            }
            bit_depth_luma = 8 + ue_max(&mut r, "bit_depth_luma_minus8", 6)? as u8;
            bit_depth_chroma = 8 + ue_max(&mut r, "bit_depth_chroma_minus8", 6)? as u8;
            r.read_bit("qpprime_y_zero_transform_bypass_flag")?;
            if r.read_bit("seq_scaling_matrix_present_flag")? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.read_bit("seq_scaling_list_present_flag")? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }

        ue_max(&mut r, "log2_max_frame_num_minus4", 12)?;
        match ue_max(&mut r, "pic_order_cnt_type", 2)? {
            0 => {
                ue_max(&mut r, "log2_max_pic_order_cnt_lsb_minus4", 12)?;
            }
            1 => {
                r.read_bit("delta_pic_order_always_zero_flag")?;
                r.read_se("offset_for_non_ref_pic")?;
                r.read_se("offset_for_top_to_bottom_field")?;
                let n = ue_max(&mut r, "num_ref_frames_in_pic_order_cnt_cycle", 255)?;
                for _ in 0..n {
                    r.read_se("offset_for_ref_frame")?;
                }
            }
            _ => {}
        }
        r.read_ue("max_num_ref_frames")?;
        r.read_bit("gaps_in_frame_num_value_allowed_flag")?;
        let width_mbs = u64::from(r.read_ue("pic_width_in_mbs_minus1")?) + 1;
        let height_map_units = u64::from(r.read_ue("pic_height_in_map_units_minus1")?) + 1;
        let frame_mbs_only = r.read_bit("frame_mbs_only_flag")?;
        if !frame_mbs_only {
            r.read_bit("mb_adaptive_frame_field_flag")?;
        }
        r.read_bit("direct_8x8_inference_flag")?;
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.read_bit("frame_cropping_flag")? {
            crop_l = r.read_ue("frame_crop_left_offset")?.into();
            crop_r = r.read_ue("frame_crop_right_offset")?.into();
            crop_t = r.read_ue("frame_crop_top_offset")?.into();
            crop_b = r.read_ue("frame_crop_bottom_offset")?.into();
        }

        // Table 6-1 and equations 7-19..7-22.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
            (1, field_factor)
        } else {
            (sub_w, sub_h * field_factor)
        };
        let coded_w = width_mbs * 16;
        let coded_h = height_map_units * 16 * field_factor;
        let width = coded_w
            .checked_sub(crop_unit_x * (crop_l + crop_r))
            .filter(|w| *w > 0);
        let height = coded_h
            .checked_sub(crop_unit_y * (crop_t + crop_b))
            .filter(|h| *h > 0);
        let to_u32 = |v: Option<u64>, what| {
            v.and_then(|v| u32::try_from(v).ok())
                .ok_or(H264Error::OutOfRange { what, value: -1 })
        };
        Ok(Self {
            profile_idc,
            constraint_flags,
            level_idc,
            seq_parameter_set_id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
            frame_mbs_only,
            width: to_u32(width, "cropped width")?,
            height: to_u32(height, "cropped height")?,
        })
    }
}

/// Skips a `scaling_list()` (§7.3.2.1.1.1): its length in bits depends on the deltas.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::OutOfRange {
                    what: "delta_scale",
                    value: i64::from(delta),
                });
            }
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1)

/// The chroma/bit-depth extension of `avcC` for High profiles (§5.3.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfigExt {
    pub chroma_format: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub sps_ext: Vec<Vec<u8>>,
}

/// An AVCDecoderConfigurationRecord: the body of the `avcC` box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_idc: u8,
    pub profile_compatibility: u8,
    pub level_idc: u8,
    /// Bytes per NAL length prefix in samples: 1, 2 or 4.
    pub length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub ext: Option<AvcConfigExt>,
}

/// A cursor over untrusted bytes whose reads fail instead of panicking.
struct ByteReader<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], H264Error> {
        let rest = self.data.get(self.offset..).unwrap_or_default();
        let out = rest.get(..n).ok_or(H264Error::Truncated {
            what,
            offset: self.offset,
            needed: n,
            available: rest.len(),
        })?;
        self.offset += n;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, H264Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, H264Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.offset)
    }

    fn parameter_sets(&mut self, count: u8, what: &'static str) -> Result<Vec<Vec<u8>>, H264Error> {
        let mut out = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = self.u16(what)?;
            out.push(self.take(usize::from(len), what)?.to_vec());
        }
        Ok(out)
    }
}

impl AvcDecoderConfig {
    /// Parses an `avcC` body. The High-profile extension is read when present.
    pub fn parse(data: &[u8]) -> Result<Self, H264Error> {
        let mut r = ByteReader { data, offset: 0 };
        let version = r.u8("configurationVersion")?;
        if version != 1 {
            return Err(H264Error::ConfigVersion(version));
        }
        let profile_idc = r.u8("AVCProfileIndication")?;
        let profile_compatibility = r.u8("profile_compatibility")?;
        let level_idc = r.u8("AVCLevelIndication")?;
        let length_size = (r.u8("lengthSizeMinusOne")? & 0x03) + 1;
        if length_size == 3 {
            return Err(H264Error::LengthSize(3));
        }
        let num_sps = r.u8("numOfSequenceParameterSets")? & 0x1f;
        let sps = r.parameter_sets(num_sps, "sequenceParameterSetNALUnit")?;
        let num_pps = r.u8("numOfPictureParameterSets")?;
        let pps = r.parameter_sets(num_pps, "pictureParameterSetNALUnit")?;
        let ext = if r.remaining() >= 4 {
            let chroma_format = r.u8("chroma_format")? & 0x03;
            let bit_depth_luma = (r.u8("bit_depth_luma_minus8")? & 0x07) + 8;
            let bit_depth_chroma = (r.u8("bit_depth_chroma_minus8")? & 0x07) + 8;
            let n = r.u8("numOfSequenceParameterSetExt")?;
            let sps_ext = r.parameter_sets(n, "sequenceParameterSetExtNALUnit")?;
            Some(AvcConfigExt {
                chroma_format,
                bit_depth_luma,
                bit_depth_chroma,
                sps_ext,
            })
        } else {
            None
        };
        Ok(Self {
            profile_idc,
            profile_compatibility,
            level_idc,
            length_size,
            sps,
            pps,
            ext,
        })
    }

    /// Builds a configuration (4-byte NAL lengths) from parameter set NAL units. Profile,
    /// compatibility and level come from the first SPS; the High-profile extension is added for
    /// the profiles that require it.
    pub fn from_parameter_sets(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Self, H264Error> {
        let first = sps.first().ok_or(H264Error::NoSps)?;
        if pps.is_empty() {
            return Err(H264Error::NoPps);
        }
        check_count("SPS", sps.len(), 31)?;
        check_count("PPS", pps.len(), 255)?;
        for p in pps {
            match nal_unit_type(p) {
                Some(NAL_PPS) => {}
                found => {
                    return Err(H264Error::NalType {
                        expected: NAL_PPS,
                        found: found.unwrap_or(0),
                    });
                }
            }
        }
        for s in sps.iter().chain(pps) {
            check_count("bytes in a parameter set", s.len(), usize::from(u16::MAX))?;
        }
        let parsed = Sps::parse(first)?;
        for s in sps.iter().skip(1) {
            Sps::parse(s)?;
        }
        let ext = AVCC_EXT_PROFILES
            .contains(&parsed.profile_idc)
            .then(|| AvcConfigExt {
                chroma_format: parsed.chroma_format_idc,
                bit_depth_luma: parsed.bit_depth_luma,
                bit_depth_chroma: parsed.bit_depth_chroma,
                sps_ext: Vec::new(),
            });
        Ok(Self {
            profile_idc: parsed.profile_idc,
            profile_compatibility: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            length_size: 4,
            sps: sps.iter().map(|s| s.to_vec()).collect(),
            pps: pps.iter().map(|p| p.to_vec()).collect(),
            ext,
        })
    }

    /// Serialises the record (the `avcC` box body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let sets = |v: &[Vec<u8>]| v.iter().map(|s| s.len() + 2).sum::<usize>();
        let mut out = Vec::with_capacity(16 + sets(&self.sps) + sets(&self.pps));
        out.extend_from_slice(&[
            1,
            self.profile_idc,
            self.profile_compatibility,
            self.level_idc,
            0xfc | (self.length_size.saturating_sub(1) & 0x03),
            0xe0 | (self.sps.len().min(31) as u8),
        ]);
        push_sets(&mut out, self.sps.iter().take(31));
        out.push(self.pps.len().min(255) as u8);
        push_sets(&mut out, self.pps.iter().take(255));
        if let Some(ext) = &self.ext {
            out.push(0xfc | (ext.chroma_format & 0x03));
            out.push(0xf8 | (ext.bit_depth_luma.saturating_sub(8) & 0x07));
            out.push(0xf8 | (ext.bit_depth_chroma.saturating_sub(8) & 0x07));
            out.push(ext.sps_ext.len().min(255) as u8);
            push_sets(&mut out, ext.sps_ext.iter().take(255));
        }
        out
    }

    /// Parses the first SPS for the picture size and chroma format.
    pub fn parse_sps(&self) -> Result<Sps, H264Error> {
        Sps::parse(self.sps.first().ok_or(H264Error::NoSps)?)
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn rfc6381_codec(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_compatibility, self.level_idc
        )
    }
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), H264Error> {
    if count > max {
        return Err(H264Error::TooMany { what, count, max });
    }
    Ok(())
}

fn push_sets<'a>(out: &mut Vec<u8>, sets: impl Iterator<Item = &'a Vec<u8>>) {
    for s in sets {
        let s = s.get(..usize::from(u16::MAX)).unwrap_or(s);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }
}

/// RFC 6381 codec string (`avc1.PPCCLL`, lower-case hex) from an `avcC` body.
pub fn rfc6381_codec(avcc: &[u8]) -> Result<String, H264Error> {
    match avcc {
        [1, profile, compat, level, ..] => Ok(format!("avc1.{profile:02x}{compat:02x}{level:02x}")),
        [version, _, _, _, ..] => Err(H264Error::ConfigVersion(*version)),
        _ => Err(H264Error::Truncated {
            what: "AVCDecoderConfigurationRecord",
            offset: 0,
            needed: 4,
            available: avcc.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X264: &[u8] = include_bytes!("../testdata/x264_320x180_30fps.h264");

    /// Writes bits and exp-Golomb codes, to build parameter sets for tests.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn bits(&mut self, v: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let v = u64::from(v) + 1;
            let n = 64 - v.leading_zeros();
            self.bits(0, n - 1).bits(v, n)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u32)
        }
        fn finish(&mut self) -> Vec<u8> {
            self.bits.push(true); // rbsp_stop_one_bit
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b)))
                .collect()
        }
    }

    fn x264_units() -> Vec<Vec<&'static [u8]>> {
        split_access_units(X264).expect("x264 testdata splits")
    }

    fn x264_parameter_sets() -> (&'static [u8], &'static [u8]) {
        let first = &x264_units()[0];
        let find = |t| {
            *first
                .iter()
                .find(|n| nal_unit_type(n) == Some(t))
                .expect("parameter set in first access unit")
        };
        (find(NAL_SPS), find(NAL_PPS))
    }

    #[test]
    fn x264_stream_splits_into_60_pictures_with_idr_every_30() {
        let units = x264_units();
        assert_eq!(units.len(), 60);
        for (i, au) in units.iter().enumerate() {
            let sample = nals_to_avcc(au).unwrap();
            assert_eq!(is_idr(&sample).unwrap(), i % 30 == 0, "picture {i}");
            let vcl = au
                .iter()
                .filter(|n| is_vcl(nal_unit_type(n).unwrap()))
                .count();
            assert_eq!(vcl, 1, "one slice per picture in picture {i}");
        }
    }

    #[test]
    fn x264_sps_gives_cropped_size() {
        let (sps, _) = x264_parameter_sets();
        let sps = Sps::parse(sps).unwrap();
        assert_eq!((sps.width, sps.height), (320, 180));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (8, 8));
        assert!(sps.frame_mbs_only);
    }

    #[test]
    fn decoder_config_round_trips_and_matches_mp4_atom() {
        let (sps, pps) = x264_parameter_sets();
        let config = AvcDecoderConfig::from_parameter_sets(&[sps], &[pps]).unwrap();
        let bytes = config.to_bytes();
        assert_eq!(AvcDecoderConfig::parse(&bytes).unwrap(), config);
        assert_eq!(rfc6381_codec(&bytes).unwrap(), "avc1.64000d");
        assert_eq!(config.rfc6381_codec(), "avc1.64000d");
        assert!(
            config.ext.is_some(),
            "High profile carries the avcC extension"
        );

        use mp4_atom::{Atom, Decode};
        let mut boxed = Vec::new();
        boxed.extend_from_slice(&((bytes.len() + 8) as u32).to_be_bytes());
        boxed.extend_from_slice(b"avcC");
        boxed.extend_from_slice(&bytes);
        let avcc = mp4_atom::Avcc::decode(&mut boxed.as_slice()).unwrap();
        assert_eq!(mp4_atom::Avcc::KIND, mp4_atom::FourCC::new(b"avcC"));
        assert_eq!(avcc.avc_profile_indication, 100);
        assert_eq!(avcc.length_size, 4);
        assert_eq!(avcc.sequence_parameter_sets, vec![sps.to_vec()]);
        assert_eq!(avcc.picture_parameter_sets, vec![pps.to_vec()]);
        let ext = avcc.ext.unwrap();
        assert_eq!((ext.chroma_format, ext.bit_depth_luma), (1, 8));
    }

    #[test]
    fn annexb_and_avcc_carry_the_same_nals() {
        let avcc = annexb_to_avcc(X264).unwrap();
        let a: Vec<&[u8]> = AnnexBNals::new(X264).map(Result::unwrap).collect();
        let b: Vec<&[u8]> = AvccNals::new(&avcc).map(Result::unwrap).collect();
        assert_eq!(a, b);
        assert!(a.len() >= 62);
    }

    #[test]
    fn annexb_start_codes_and_trailing_zeros() {
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 0, 0, 1, 0x68, 0xce,
        ];
        let nals: Vec<&[u8]> = AnnexBNals::new(&data).map(Result::unwrap).collect();
        assert_eq!(nals, vec![&[0x09, 0xf0][..], &[0x67, 0x42], &[0x68, 0xce]]);
        assert_eq!(
            annexb_to_avcc(&data).unwrap(),
            [
                0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 2, 0x68, 0xce
            ]
        );
        assert_eq!(AnnexBNals::new(&[]).count(), 0);
        assert_eq!(
            annexb_to_avcc(&[0x65, 0, 0, 1, 0x65]),
            Err(H264Error::NoStartCode(1))
        );
        assert_eq!(annexb_to_avcc(&[0x65, 1]), Err(H264Error::NoStartCode(2)));
    }

    #[test]
    fn avcc_nals_reject_bad_lengths() {
        let mut it = AvccNals::new(&[0, 0, 0, 5, 1, 2]);
        assert!(matches!(it.next(), Some(Err(H264Error::Truncated { .. }))));
        assert_eq!(it.next(), None);
        assert!(is_idr(&[0, 0, 1]).is_err());
        assert_eq!(
            AvccNals::new(&[0, 0, 0, 0]).next(),
            Some(Err(H264Error::EmptyNal(0)))
        );
        assert!(AvccNals::with_length_size(&[], 3).is_err());
        let two: Vec<_> = AvccNals::with_length_size(&[0, 1, 0x65, 0, 1, 0x41], 2)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(two, vec![&[0x65][..], &[0x41]]);
    }

    #[test]
    fn exp_golomb_and_emulation_prevention() {
        // 1 | 010 | 011 | 00100 | 00101 (se -> -2)
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.read_ue("a").unwrap(), 0);
        assert_eq!(r.read_ue("b").unwrap(), 1);
        assert_eq!(r.read_ue("c").unwrap(), 2);
        assert_eq!(r.read_ue("d").unwrap(), 3);
        assert_eq!(r.read_se("e").unwrap(), -2);
        assert_eq!(
            BitReader::new(&[0; 5]).read_ue("z"),
            Err(H264Error::ExpGolomb("z"))
        );
        assert_eq!(
            BitReader::new(&[0]).read_ue("t"),
            Err(H264Error::SpsTruncated("t"))
        );
        assert_eq!(
            nal_to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [0, 0, 1, 0, 0, 0, 3]
        );
    }

    /// An interlaced 1920x1080 4:2:2 High 4:2:2 SPS with scaling lists and cropping.
    fn crafted_sps() -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(122, 8).bits(0, 8).bits(40, 8).ue(0);
        w.ue(2).ue(2).ue(2).bits(0, 1); // 4:2:2, 10-bit, no bypass
        w.bits(1, 1); // seq_scaling_matrix_present_flag
        for i in 0..8 {
            if i == 0 {
                w.bits(1, 1);
                for _ in 0..16 {
                    w.se(3);
                }
            } else if i == 6 {
                w.bits(1, 1).se(-8); // nextScale becomes 0: list ends early
            } else {
                w.bits(0, 1);
            }
        }
        w.ue(0).ue(1); // log2_max_frame_num, pic_order_cnt_type 1
        w.bits(0, 1).se(-1).se(2).ue(2).se(5).se(-5);
        w.ue(4).bits(0, 1).ue(119).ue(33); // 120 MBs wide, 34 map units high
        w.bits(0, 1).bits(1, 1).bits(1, 1); // field coding, mbaff, direct_8x8
        w.bits(1, 1).ue(0).ue(0).ue(0).ue(2); // crop bottom 2 units (of 2 lines each field pair)
        w.bits(0, 1); // no VUI
        [vec![0x67], w.finish()].concat()
    }

    #[test]
    fn crafted_high422_interlaced_sps() {
        let sps = Sps::parse(&crafted_sps()).unwrap();
        assert_eq!(sps.profile_idc, 122);
        assert_eq!(sps.chroma_format_idc, 2);
        assert_eq!(sps.bit_depth_luma, 10);
        assert!(!sps.frame_mbs_only);
        // 34 map units * 16 * 2 = 1088; crop unit y = SubHeightC(1) * 2 = 2; 1088 - 4 = 1084
        assert_eq!((sps.width, sps.height), (1920, 1084));
        let config =
            AvcDecoderConfig::from_parameter_sets(&[&crafted_sps()], &[&[0x68, 0xce]]).unwrap();
        let ext = config.ext.as_ref().unwrap();
        assert_eq!((ext.chroma_format, ext.bit_depth_luma), (2, 10));
        assert_eq!(AvcDecoderConfig::parse(&config.to_bytes()).unwrap(), config);
    }

    #[test]
    fn truncated_inputs_are_errors_not_panics() {
        let sps = crafted_sps();
        for n in 0..sps.len() - 1 {
            assert!(Sps::parse(&sps[..n]).is_err(), "SPS cut at {n}");
        }
        let (x264_sps, pps) = x264_parameter_sets();
        let bytes = AvcDecoderConfig::from_parameter_sets(&[x264_sps], &[pps])
            .unwrap()
            .to_bytes();
        for n in 0..bytes.len() {
            // Cutting inside the optional extension leaves a valid record without it.
            let cut = &bytes[..n];
            let res = AvcDecoderConfig::parse(cut);
            if n < bytes.len() - 4 {
                assert!(res.is_err(), "avcC cut at {n}");
            }
        }
        assert!(rfc6381_codec(&[1, 2]).is_err());
        assert_eq!(
            rfc6381_codec(&[0, 1, 2, 3]),
            Err(H264Error::ConfigVersion(0))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let _ = Sps::parse(&[&[0x67][..], &data].concat());
            let _ = AvcDecoderConfig::parse(&[&[1][..], &data].concat());
            let _ = split_access_units(&data);
            let _ = AvccNals::new(&data).count();
            let _ = is_idr(&data);
        }
    }

    #[test]
    fn from_parameter_sets_validates() {
        let (sps, pps) = x264_parameter_sets();
        assert_eq!(
            AvcDecoderConfig::from_parameter_sets(&[], &[pps]),
            Err(H264Error::NoSps)
        );
        assert_eq!(
            AvcDecoderConfig::from_parameter_sets(&[sps], &[]),
            Err(H264Error::NoPps)
        );
        assert!(matches!(
            AvcDecoderConfig::from_parameter_sets(&[pps], &[pps]),
            Err(H264Error::NalType {
                expected: 7,
                found: 8
            })
        ));
    }
}
