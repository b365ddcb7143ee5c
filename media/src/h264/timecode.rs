//! The epoch timecode in the video: an H.264 picture timing SEI (§D.1.3, §D.2.3) on every
//! access unit whose clock timestamp is the frame's UTC time of day, written into what the
//! encoder produced so it does not depend on the encoder (docs/design/signals.md, *Timecode*).
//!
//! Three parts:
//! - [`Timecode::of_frame`]: frame `k` of the epoch grid → hours, minutes, seconds and frame
//!   count, drop-frame counted at 29.97 and 59.94;
//! - [`sps_with_pic_struct`] / [`avcc_with_pic_struct`]: the SPS gets
//!   `pic_struct_present_flag = 1` (a decoder reads clock timestamps only then), adding a VUI
//!   when it has none;
//! - [`insert_pic_timing`]: an access unit gets the SEI before its first slice; a picture
//!   timing SEI the encoder wrote is replaced (its HRD delays are kept).

use super::annexb::AvccNals;
use super::avcc::AvcDecoderConfig;
use super::sei::{self, push_prefixed};
use super::sps::{PicStructSite, PicTimingLayout, Sps, nal_to_rbsp};
use super::{H264Error, NAL_SEI, NAL_SPS, is_vcl, nal_unit_type};
use crate::bits::{self, BitWriter};
use crate::timeline::{FrameRate, NS_PER_SEC};

const DAY_NS: u64 = 86_400 * NS_PER_SEC;
/// `payloadType` of the picture timing SEI message.
const PIC_TIMING: u32 = 1;
/// `counting_type` (Table D-3): no dropping of `n_frames` values.
const COUNT_ALL: u8 = 0;
/// `counting_type`: dropping of individual zero and one values (NTSC drop-frame).
const COUNT_DROP_FRAME: u8 = 4;
/// `counting_type`: dropping of unspecified individual values (a second of 23.976 that holds
/// 23 frames).
const COUNT_DROP_UNSPECIFIED: u8 = 5;

/// A clock timestamp of a picture timing SEI (§D.2.3), as SMPTE 12M reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timecode {
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
    /// `n_frames`: the frame's count within its second.
    pub frames: u8,
    /// `counting_type` (Table D-3).
    pub counting_type: u8,
    /// `cnt_dropped_flag`: frame counts were skipped just before this one.
    pub dropped_before: bool,
}

impl Timecode {
    /// The timecode of frame `k` (start `k·D/N` s since the epoch) on the grid of `rate`:
    /// - integer rates: the UTC time of day of the frame's start and its count within that
    ///   second, exact;
    /// - 29.97 and 59.94: SMPTE drop-frame counting (2 or 4 counts skipped every minute but
    ///   each tenth) from the day's first frame, within 3 frames of the UTC time all day; the
    ///   day's last 2 (4) frames, which drop-frame cannot fit in a day, count on past
    ///   23:59:59 and wrap to 00:00:00, and the count starts again with the new day's first
    ///   frame;
    /// - other rates (23.976): the time of day's second and the frame's count within it
    ///   (a second then holds 23 or 24 frames, so a count is sometimes skipped).
    pub fn of_frame(rate: FrameRate, k: u64) -> Timecode {
        let t = rate.frame_time_ns(k);
        let (num, den) = (u64::from(rate.num()), u64::from(rate.den()));
        let nominal = num.div_ceil(den);
        if let Some(drop) = drop_frame_counts(rate) {
            let day_start = t - t % DAY_NS;
            let n = k - rate.frame_index_at_or_after(day_start);
            return drop_frame(n, nominal, drop);
        }
        let second_start = t - t % NS_PER_SEC;
        let first = rate.frame_index_at_or_after(second_start);
        let frames = k - first;
        let whole = num % den == 0;
        // A count was skipped when the previous second held fewer frames than the nominal rate.
        let dropped_before = !whole
            && frames == 0
            && second_start >= NS_PER_SEC
            && first - rate.frame_index_at_or_after(second_start - NS_PER_SEC) < nominal;
        let tod = (t % DAY_NS) / NS_PER_SEC;
        Timecode {
            hours: (tod / 3600) as u8,
            minutes: (tod / 60 % 60) as u8,
            seconds: (tod % 60) as u8,
            frames: frames.min(255) as u8,
            counting_type: if whole {
                COUNT_ALL
            } else {
                COUNT_DROP_UNSPECIFIED
            },
            dropped_before,
        }
    }
}

/// Counts skipped each minute (but each tenth) by SMPTE drop-frame: 2 at 30000/1001, 4 at
/// 60000/1001; `None` for every other rate.
fn drop_frame_counts(rate: FrameRate) -> Option<u64> {
    let (num, den) = (u64::from(rate.num()), u64::from(rate.den()));
    if num * 1001 == den * 30_000 {
        Some(2)
    } else if num * 1001 == den * 60_000 {
        Some(4)
    } else {
        None
    }
}

/// Drop-frame label of the `n`-th frame of the day.
fn drop_frame(n: u64, nominal: u64, drop: u64) -> Timecode {
    let per_minute = 60 * nominal - drop;
    let per_ten = 10 * 60 * nominal - 9 * drop;
    let (tens, rest) = (n / per_ten, n % per_ten);
    // The first minute of each ten keeps all its counts; each later one starts `drop` on.
    let skipped = 9 * drop * tens
        + if rest < drop {
            0
        } else {
            drop * ((rest - drop) / per_minute)
        };
    let label = n + skipped;
    let frames = label % nominal;
    let secs = label / nominal;
    let minutes = secs / 60 % 60;
    let seconds = secs % 60;
    Timecode {
        hours: (secs / 3600 % 24) as u8,
        minutes: minutes as u8,
        seconds: seconds as u8,
        frames: frames as u8,
        counting_type: COUNT_DROP_FRAME,
        dropped_before: seconds == 0 && frames == drop && !minutes.is_multiple_of(10),
    }
}

/// The SPS with `pic_struct_present_flag` set, and the layout of its picture timing SEI.
/// An SPS that already has it is returned as it is.
pub fn sps_with_pic_struct(nal: &[u8]) -> Result<(Vec<u8>, PicTimingLayout), H264Error> {
    let sps = Sps::parse(nal)?;
    let layout = sps
        .pic_timing
        .ok_or(H264Error::SpsTruncated("vui_parameters"))?;
    if layout.pic_struct_present {
        return Ok((nal.to_vec(), layout));
    }
    let header = nal.first().copied().unwrap_or(NAL_SPS);
    let mut rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
    match layout.site {
        PicStructSite::Flag(bit) => {
            let byte = rbsp
                .get_mut(bit / 8)
                .ok_or(H264Error::SpsTruncated("pic_struct_present_flag"))?;
            *byte |= 0x80 >> (bit % 8);
        }
        PicStructSite::NoVui(bit) => {
            // vui_parameters_present_flag is the SPS's last field: what follows it is the
            // trailing bits, written anew after the added VUI.
            let mut r = bits::BitReader::new(&rbsp);
            let mut w = BitWriter::new();
            for _ in 0..bit {
                let b = r
                    .flag("seq_parameter_set_data")
                    .map_err(|_| H264Error::SpsTruncated("seq_parameter_set_data"))?;
                w.flag(b);
            }
            w.flag(true); // vui_parameters_present_flag
            // aspect ratio, overscan, video signal, chroma location, timing, NAL HRD, VCL HRD
            w.put(0, 7);
            w.flag(true); // pic_struct_present_flag
            w.flag(false); // bitstream_restriction_flag
            w.flag(true); // rbsp_stop_one_bit
            rbsp = w.finish();
        }
    }
    let layout = PicTimingLayout {
        pic_struct_present: true,
        ..layout
    };
    Ok((sei::rbsp_to_nal(header, &rbsp), layout))
}

/// The `avcC` body with every SPS given `pic_struct_present_flag` ([`sps_with_pic_struct`]),
/// and the first SPS's picture timing layout.
pub fn avcc_with_pic_struct(avcc: &[u8]) -> Result<(Vec<u8>, PicTimingLayout), H264Error> {
    let mut config = AvcDecoderConfig::parse(avcc)?;
    let mut first = None;
    for sps in &mut config.sps {
        let (rewritten, layout) = sps_with_pic_struct(sps)?;
        if rewritten.len() > usize::from(u16::MAX) {
            return Err(H264Error::NalTooLarge(rewritten.len()));
        }
        first.get_or_insert(layout);
        *sps = rewritten;
    }
    let layout = first.ok_or(H264Error::NoSps)?;
    Ok((config.to_bytes(), layout))
}

/// The picture timing SEI NAL unit (§7.3.2.3, §D.1.3) for one progressive frame.
/// `hrd_delays` are `cpb_removal_delay` and `dpb_output_delay`, written when the layout has
/// HRD parameters.
pub fn pic_timing_nal(layout: &PicTimingLayout, tc: &Timecode, hrd_delays: (u64, u64)) -> Vec<u8> {
    let mut w = BitWriter::new();
    if let Some((cpb, dpb)) = layout.hrd_delays {
        w.put(hrd_delays.0, u32::from(cpb));
        w.put(hrd_delays.1, u32::from(dpb));
    }
    w.put(0, 4); // pic_struct: a frame, so one clock timestamp
    w.flag(true); // clock_timestamp_flag
    w.put(0, 2); // ct_type: progressive
    w.flag(false); // nuit_field_based_flag
    w.put(u64::from(tc.counting_type), 5);
    w.flag(true); // full_timestamp_flag
    w.flag(false); // discontinuity_flag
    w.flag(tc.dropped_before); // cnt_dropped_flag
    w.put(u64::from(tc.frames), 8);
    w.put(u64::from(tc.seconds), 6);
    w.put(u64::from(tc.minutes), 6);
    w.put(u64::from(tc.hours), 5);
    w.put(0, u32::from(layout.time_offset_length)); // time_offset
    if !w.is_aligned() {
        w.flag(true); // bit_equal_to_one, then zeros to the byte (§7.3.2.3.1)
    }
    let payload = w.finish();
    sei::nal(NAL_SEI, &[(PIC_TIMING as usize, &payload)])
}

/// The access unit (`length_size`-prefixed NAL units) with [`pic_timing_nal`] before its first
/// slice. A picture timing message the encoder wrote is taken out (its HRD delays are reused);
/// its other SEI messages stay. An in-band SPS gets `pic_struct_present_flag` too.
pub fn insert_pic_timing(
    au: &[u8],
    length_size: u8,
    layout: &PicTimingLayout,
    tc: &Timecode,
) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(au.len() + 32);
    let mut delays = None;
    let mut inserted = false;
    for nal in AvccNals::with_length_size(au, length_size)? {
        let nal = nal?;
        match nal_unit_type(nal).unwrap_or(0) {
            NAL_SEI => {
                let (kept, found) = without_pic_timing(nal, layout)?;
                delays = delays.or(found);
                match kept {
                    Kept::All => push_prefixed(&mut out, nal, length_size)?,
                    Kept::Some(rebuilt) => push_prefixed(&mut out, &rebuilt, length_size)?,
                    Kept::None => {}
                }
            }
            NAL_SPS => push_prefixed(&mut out, &sps_with_pic_struct(nal)?.0, length_size)?,
            t if is_vcl(t) && !inserted => {
                let delays = match (layout.hrd_delays, delays) {
                    (None, _) => (0, 0),
                    (Some(_), Some(d)) => d,
                    // The HRD's delays are the encoder's to give; without them no timing SEI
                    // can be right.
                    (Some(_), None) => return Err(H264Error::NoHrdDelays),
                };
                push_prefixed(&mut out, &pic_timing_nal(layout, tc, delays), length_size)?;
                push_prefixed(&mut out, nal, length_size)?;
                inserted = true;
            }
            _ => push_prefixed(&mut out, nal, length_size)?,
        }
    }
    Ok(out)
}

enum Kept {
    All,
    Some(Vec<u8>),
    None,
}

/// The SEI NAL unit without its picture timing messages, and the HRD delays of the first.
fn without_pic_timing(
    nal: &[u8],
    layout: &PicTimingLayout,
) -> Result<(Kept, Option<(u64, u64)>), H264Error> {
    let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
    let messages = sei::messages(&rbsp)?;
    let mut delays = None;
    let mut rest = Vec::new();
    for &(kind, payload) in &messages {
        if kind == PIC_TIMING as usize {
            if delays.is_none()
                && let Some((cpb, dpb)) = layout.hrd_delays
            {
                let mut r = bits::BitReader::new(payload);
                let cpb = r.get(u32::from(cpb), "cpb_removal_delay");
                let dpb = r.get(u32::from(dpb), "dpb_output_delay");
                if let (Ok(cpb), Ok(dpb)) = (cpb, dpb) {
                    delays = Some((cpb, dpb));
                }
            }
        } else {
            rest.push((kind, payload));
        }
    }
    if rest.len() == messages.len() {
        return Ok((Kept::All, None));
    }
    if rest.is_empty() {
        return Ok((Kept::None, delays));
    }
    Ok((
        Kept::Some(sei::nal(nal.first().copied().unwrap_or(NAL_SEI), &rest)),
        delays,
    ))
}
