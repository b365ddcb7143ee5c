//! Bit reading (§7.2, §9.1) and the sequence parameter set (§7.3.2.1.1).

use super::{H264Error, HIGH_PROFILES, NAL_SPS, nal_unit_type};

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

    /// Bits read so far.
    pub fn bit_position(&self) -> usize {
        self.bit
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
    /// What a picture timing SEI needs from the VUI (§E.1.1), `None` when the VUI could not be
    /// read (the fields above are still right).
    pub pic_timing: Option<PicTimingLayout>,
}

/// Where the SPS says whether picture timing SEI carries `pic_struct` and clock timestamps,
/// and the field lengths the HRD parameters give it (§E.1.1, §E.1.2, §D.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PicTimingLayout {
    /// `CpbDpbDelaysPresentFlag`: the bit lengths of `cpb_removal_delay` and
    /// `dpb_output_delay`, when HRD parameters are present.
    pub hrd_delays: Option<(u8, u8)>,
    /// Bits of `time_offset` in each clock timestamp (24 without HRD parameters, §E.2.2).
    pub time_offset_length: u8,
    /// `pic_struct_present_flag`.
    pub pic_struct_present: bool,
    /// Bit offset, in the RBSP after the NAL header, of `pic_struct_present_flag`, or of
    /// `vui_parameters_present_flag` when the SPS has no VUI.
    pub(crate) site: PicStructSite,
}

/// See [`PicTimingLayout::site`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PicStructSite {
    Flag(usize),
    NoVui(usize),
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
        // The VUI is read only for picture timing; an SPS whose VUI is cut short still gives
        // its size.
        let pic_timing = read_pic_timing_layout(&mut r).ok();

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
            pic_timing,
        })
    }
}

/// Reads `vui_parameters_present_flag` and the VUI up to `pic_struct_present_flag` (§E.1.1).
fn read_pic_timing_layout(r: &mut BitReader<'_>) -> Result<PicTimingLayout, H264Error> {
    let vui_bit = r.bit_position();
    if !r.read_bit("vui_parameters_present_flag")? {
        return Ok(PicTimingLayout {
            hrd_delays: None,
            time_offset_length: DEFAULT_TIME_OFFSET_LENGTH,
            pic_struct_present: false,
            site: PicStructSite::NoVui(vui_bit),
        });
    }
    if r.read_bit("aspect_ratio_info_present_flag")? && r.read_bits(8, "aspect_ratio_idc")? == 255 {
        r.read_bits(32, "sar_width, sar_height")?;
    }
    if r.read_bit("overscan_info_present_flag")? {
        r.read_bit("overscan_appropriate_flag")?;
    }
    if r.read_bit("video_signal_type_present_flag")? {
        r.read_bits(4, "video_format, video_full_range_flag")?;
        if r.read_bit("colour_description_present_flag")? {
            r.read_bits(24, "colour_primaries, transfer, matrix")?;
        }
    }
    if r.read_bit("chroma_loc_info_present_flag")? {
        r.read_ue("chroma_sample_loc_type_top_field")?;
        r.read_ue("chroma_sample_loc_type_bottom_field")?;
    }
    if r.read_bit("timing_info_present_flag")? {
        r.read_bits(32, "num_units_in_tick")?;
        r.read_bits(32, "time_scale")?;
        r.read_bit("fixed_frame_rate_flag")?;
    }
    let mut hrd_delays = None;
    let mut time_offset_length = DEFAULT_TIME_OFFSET_LENGTH;
    let mut any_hrd = false;
    for what in [
        "nal_hrd_parameters_present_flag",
        "vcl_hrd_parameters_present_flag",
    ] {
        if r.read_bit(what)? {
            any_hrd = true;
            let (cpb, dpb, offset) = read_hrd_lengths(r)?;
            hrd_delays = Some((cpb, dpb));
            time_offset_length = offset;
        }
    }
    if any_hrd {
        r.read_bit("low_delay_hrd_flag")?;
    }
    let site = PicStructSite::Flag(r.bit_position());
    let pic_struct_present = r.read_bit("pic_struct_present_flag")?;
    Ok(PicTimingLayout {
        hrd_delays,
        time_offset_length,
        pic_struct_present,
        site,
    })
}

/// `time_offset_length` when no HRD parameters give it (§E.2.2).
const DEFAULT_TIME_OFFSET_LENGTH: u8 = 24;

/// Reads `hrd_parameters()` (§E.1.2) for the lengths of the picture timing fields.
fn read_hrd_lengths(r: &mut BitReader<'_>) -> Result<(u8, u8, u8), H264Error> {
    let cpb_cnt = ue_max(r, "cpb_cnt_minus1", 31)? + 1;
    r.read_bits(8, "bit_rate_scale, cpb_size_scale")?;
    for _ in 0..cpb_cnt {
        r.read_ue("bit_rate_value_minus1")?;
        r.read_ue("cpb_size_value_minus1")?;
        r.read_bit("cbr_flag")?;
    }
    r.read_bits(5, "initial_cpb_removal_delay_length_minus1")?;
    let cpb = r.read_bits(5, "cpb_removal_delay_length_minus1")? as u8 + 1;
    let dpb = r.read_bits(5, "dpb_output_delay_length_minus1")? as u8 + 1;
    let offset = r.read_bits(5, "time_offset_length")? as u8;
    Ok((cpb, dpb, offset))
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
