use super::annexb::*;
use super::avcc::*;
use super::sps::*;
use super::*;

const X264: &[u8] = include_bytes!("../../testdata/x264_320x180_30fps.h264");

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

// ---------------------------------------------------------------------------------------------
// Epoch timecode (timecode.rs)

use crate::timeline::FrameRate;

fn rate(num: u32, den: u32) -> FrameRate {
    FrameRate::new(num, den).unwrap()
}

/// 2026-12-04T12:34:56Z in seconds since the epoch.
const NOON_ISH: u64 = 1_796_387_696;

#[test]
fn integer_rates_give_the_utc_time_of_day_and_the_count_within_the_second() {
    let r = rate(25, 1);
    let k = NOON_ISH * 25 + 7;
    let tc = Timecode::of_frame(r, k);
    let (h, m, s) = (
        (NOON_ISH % 86_400) / 3600,
        NOON_ISH % 3600 / 60,
        NOON_ISH % 60,
    );
    assert_eq!(
        (tc.hours, tc.minutes, tc.seconds, tc.frames),
        (h as u8, m as u8, s as u8, 7)
    );
    assert_eq!((tc.counting_type, tc.dropped_before), (0, false));
    let midnight = Timecode::of_frame(rate(50, 1), (NOON_ISH - NOON_ISH % 86_400) * 50);
    assert_eq!(
        (midnight.hours, midnight.minutes, midnight.seconds),
        (0, 0, 0)
    );
    assert_eq!(midnight.frames, 0);
}

/// The frame count of the day a drop-frame label stands for, computed the other way round
/// (SMPTE 12M: 2 counts skipped per minute but each tenth).
fn df_count(tc: &Timecode, nominal: u64, drop: u64) -> u64 {
    let minutes = u64::from(tc.hours) * 60 + u64::from(tc.minutes);
    let labels = (minutes * 60 + u64::from(tc.seconds)) * nominal + u64::from(tc.frames);
    labels - drop * (minutes - minutes / 10)
}

#[test]
fn drop_frame_counts_a_whole_day_at_2997_and_5994_without_a_gap_or_a_repeat() {
    for (num, nominal, drop) in [(30_000u32, 30u64, 2u64), (60_000, 60, 4)] {
        let r = rate(num, 1001);
        // The first frame at or after a UTC midnight, and the next midnight's.
        let day = 20_426u64 * 86_400 * 1_000_000_000;
        let first = r.frame_index_at_or_after(day);
        let next = r.frame_index_at_or_after(day + 86_400 * 1_000_000_000);
        let labels_per_day = 24 * 6 * (10 * 60 * nominal - 9 * drop);
        for k in first..next {
            let tc = Timecode::of_frame(r, k);
            let n = k - first;
            assert_eq!(tc.counting_type, 4);
            if n < labels_per_day {
                assert_eq!(
                    df_count(&tc, nominal, drop),
                    n,
                    "frame {n} of the day: {tc:?}"
                );
                // Never a skipped label.
                let minute_start = tc.seconds == 0 && !tc.minutes.is_multiple_of(10);
                assert!(!(minute_start && u64::from(tc.frames) < drop), "{tc:?}");
                assert_eq!(
                    tc.dropped_before,
                    minute_start && u64::from(tc.frames) == drop
                );
                // Close to the UTC time all day: drop-frame falls behind by 0.6 ms per ten
                // minutes (86 ms by the day's end), and a minute's skipped counts put the label
                // up to 67 ms ahead just after them.
                let minutes = u64::from(tc.hours) * 60 + u64::from(tc.minutes);
                let labels =
                    (minutes * 60 + u64::from(tc.seconds)) * nominal + u64::from(tc.frames);
                let label_ns = labels * 1_000_000_000 / nominal;
                let real_ns = r.frame_time_ns(k) - day;
                assert!(
                    real_ns.abs_diff(label_ns) < 160_000_000,
                    "{tc:?} at {real_ns}"
                );
            } else {
                // The few frames drop-frame cannot fit in a day wrap to 00:00:00.
                assert_eq!((tc.hours, tc.minutes, tc.seconds), (0, 0, 0), "{tc:?}");
                assert!(u64::from(tc.frames) < next - first - labels_per_day);
            }
        }
        // The next day starts its count again.
        let tc = Timecode::of_frame(r, next);
        assert_eq!((tc.hours, tc.minutes, tc.seconds, tc.frames), (0, 0, 0, 0));
    }
}

#[test]
fn rates_without_drop_frame_count_within_the_frames_own_second() {
    let r = rate(24_000, 1001);
    let start = r.frame_index_at_or_after(NOON_ISH * 1_000_000_000);
    let mut seen_23 = 0;
    for k in start..start + 24 * 3600 {
        let tc = Timecode::of_frame(r, k);
        let t = r.frame_time_ns(k);
        let secs = t / 1_000_000_000;
        let tod = secs % 86_400;
        assert_eq!(
            (tc.hours, tc.minutes, tc.seconds),
            ((tod / 3600) as u8, (tod / 60 % 60) as u8, (tod % 60) as u8)
        );
        let first_of_second = r.frame_index_at_or_after(secs * 1_000_000_000);
        assert_eq!(u64::from(tc.frames), k - first_of_second);
        assert!(tc.frames < 24);
        assert_eq!(tc.counting_type, 5);
        if tc.frames == 0 {
            let prev = Timecode::of_frame(r, k - 1);
            assert_eq!(tc.dropped_before, prev.frames == 22);
            seen_23 += usize::from(tc.dropped_before);
        }
    }
    assert!(seen_23 > 0, "23.976 has seconds of 23 frames");
}

/// Reads a picture timing SEI NAL unit back, field by field, for a layout without HRD.
fn read_pic_timing(nal: &[u8], time_offset_length: u32) -> (u32, Timecode) {
    assert_eq!(nal_unit_type(nal), Some(NAL_SEI));
    let rbsp = nal_to_rbsp(&nal[1..]);
    assert_eq!(rbsp[0], 1, "payloadType pic_timing");
    let size = usize::from(rbsp[1]);
    assert_eq!(
        rbsp.len(),
        2 + size + 1,
        "one message, then the trailing bits"
    );
    assert_eq!(rbsp[2 + size], 0x80);
    let mut r = BitReader::new(&rbsp[2..2 + size]);
    let pic_struct = r.read_bits(4, "pic_struct").unwrap();
    assert!(r.read_bit("clock_timestamp_flag").unwrap());
    assert_eq!(r.read_bits(2, "ct_type").unwrap(), 0);
    assert!(!r.read_bit("nuit_field_based_flag").unwrap());
    let counting_type = r.read_bits(5, "counting_type").unwrap() as u8;
    assert!(r.read_bit("full_timestamp_flag").unwrap());
    assert!(!r.read_bit("discontinuity_flag").unwrap());
    let dropped_before = r.read_bit("cnt_dropped_flag").unwrap();
    let frames = r.read_bits(8, "n_frames").unwrap() as u8;
    let seconds = r.read_bits(6, "seconds_value").unwrap() as u8;
    let minutes = r.read_bits(6, "minutes_value").unwrap() as u8;
    let hours = r.read_bits(5, "hours_value").unwrap() as u8;
    assert_eq!(r.read_bits(time_offset_length, "time_offset").unwrap(), 0);
    let used = r.bit_position();
    if !used.is_multiple_of(8) {
        assert!(r.read_bit("bit_equal_to_one").unwrap());
    }
    (
        pic_struct,
        Timecode {
            hours,
            minutes,
            seconds,
            frames,
            counting_type,
            dropped_before,
        },
    )
}

#[test]
fn x264_sps_gets_pic_struct_present_and_keeps_everything_else() {
    let (sps, _) = x264_parameter_sets();
    let before = Sps::parse(sps).unwrap();
    let layout = before.pic_timing.unwrap();
    assert!(!layout.pic_struct_present, "x264 without --pic-struct");
    assert_eq!(layout.hrd_delays, None);
    let (rewritten, layout) = sps_with_pic_struct(sps).unwrap();
    assert_eq!(rewritten.len(), sps.len(), "one bit set in place");
    assert!(layout.pic_struct_present);
    let after = Sps::parse(&rewritten).unwrap();
    assert!(after.pic_timing.unwrap().pic_struct_present);
    assert_eq!(
        Sps {
            pic_timing: None,
            ..after
        },
        Sps {
            pic_timing: None,
            ..before
        }
    );
    // Rewriting again changes nothing.
    assert_eq!(sps_with_pic_struct(&rewritten).unwrap().0, rewritten);
    // The bits differ in exactly one place.
    let diff: u32 = nal_to_rbsp(sps)
        .iter()
        .zip(nal_to_rbsp(&rewritten))
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(diff, 1);
}

#[test]
fn an_sps_without_vui_gets_one() {
    let (rewritten, layout) = sps_with_pic_struct(&crafted_sps()).unwrap();
    assert!(layout.pic_struct_present);
    assert_eq!(layout.time_offset_length, 24);
    let after = Sps::parse(&rewritten).unwrap();
    assert_eq!((after.width, after.height), (1920, 1084));
    let timing = after.pic_timing.unwrap();
    assert!(timing.pic_struct_present);
    assert_eq!(timing.hrd_delays, None);
}

#[test]
fn avcc_gets_the_rewritten_sps_and_its_layout() {
    let (sps, pps) = x264_parameter_sets();
    let config = AvcDecoderConfig::from_parameter_sets(&[sps], &[pps]).unwrap();
    let (avcc, layout) = avcc_with_pic_struct(&config.to_bytes()).unwrap();
    assert!(layout.pic_struct_present);
    let parsed = AvcDecoderConfig::parse(&avcc).unwrap();
    assert_eq!(parsed.sps[0], sps_with_pic_struct(sps).unwrap().0);
    assert_eq!(parsed.pps, config.pps);
    assert!(avcc_with_pic_struct(&[1, 2, 3]).is_err());
}

#[test]
fn pic_timing_sei_reads_back() {
    let (sps, _) = x264_parameter_sets();
    let (_, layout) = sps_with_pic_struct(sps).unwrap();
    for k in [
        0u64,
        1,
        29,
        30,
        NOON_ISH * 30000 / 1001,
        u64::from(u32::MAX) * 60,
    ] {
        let tc = Timecode::of_frame(rate(30_000, 1001), k);
        let nal = pic_timing_nal(&layout, &tc, (0, 0));
        let (pic_struct, back) = read_pic_timing(&nal, u32::from(layout.time_offset_length));
        assert_eq!(pic_struct, 0);
        assert_eq!(back, tc);
    }
}

#[test]
fn every_x264_access_unit_gets_one_timing_sei_before_its_first_slice() {
    let (sps, _) = x264_parameter_sets();
    let (_, layout) = sps_with_pic_struct(sps).unwrap();
    let r = rate(30, 1);
    for (i, unit) in x264_units().iter().enumerate() {
        let au = nals_to_avcc(unit).unwrap();
        let tc = Timecode::of_frame(r, NOON_ISH * 30 + i as u64);
        let out = insert_pic_timing(&au, 4, &layout, &tc).unwrap();
        let nals: Vec<&[u8]> = AvccNals::new(&out).map(Result::unwrap).collect();
        let timing: Vec<usize> = (0..nals.len())
            .filter(|&j| nals[j].first() == Some(&0x06) && nal_to_rbsp(&nals[j][1..])[0] == 1)
            .collect();
        assert_eq!(timing.len(), 1, "unit {i}");
        let first_slice = nals.iter().position(|n| is_vcl(n[0] & 0x1f)).unwrap();
        assert_eq!(
            timing[0] + 1,
            first_slice,
            "unit {i}: the SEI right before the slice"
        );
        assert_eq!(read_pic_timing(nals[timing[0]], 24).1, tc);
        // Everything the encoder wrote is still there, in order (its SPS with the flag set).
        let others: Vec<Vec<u8>> = nals
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != timing[0])
            .map(|(_, n)| n.to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = unit
            .iter()
            .map(|n| match nal_unit_type(n) {
                Some(NAL_SPS) => sps_with_pic_struct(n).unwrap().0,
                _ => n.to_vec(),
            })
            .collect();
        assert_eq!(others, expected, "unit {i}");
        // Doing it again replaces the SEI instead of adding one.
        let again = insert_pic_timing(&out, 4, &layout, &tc).unwrap();
        assert_eq!(again, out);
    }
}

#[test]
fn an_encoder_timing_message_is_replaced_and_its_other_messages_kept() {
    let (sps, _) = x264_parameter_sets();
    let (_, layout) = sps_with_pic_struct(sps).unwrap();
    let tc = Timecode::of_frame(rate(25, 1), 1234);
    // One SEI NAL: a user-data message (type 5, 17 bytes), then a picture timing message.
    let mut rbsp = vec![5, 17];
    rbsp.extend_from_slice(&[0xAB; 17]);
    rbsp.extend_from_slice(&[1, 1, 0x00]);
    rbsp.push(0x80);
    let sei = [&[0x06][..], &rbsp].concat();
    let slice = [0x65, 0x88, 0x84, 0x00];
    let au = nals_to_avcc(&[&sei, &slice]).unwrap();
    let out = insert_pic_timing(&au, 4, &layout, &tc).unwrap();
    let nals: Vec<&[u8]> = AvccNals::new(&out).map(Result::unwrap).collect();
    assert_eq!(nals.len(), 3);
    let mut user = vec![0x06, 5, 17];
    user.extend_from_slice(&[0xAB; 17]);
    user.push(0x80);
    assert_eq!(nals[0], &user[..]);
    assert_eq!(read_pic_timing(nals[1], 24).1, tc);
    assert_eq!(nals[2], &slice[..]);
}

#[test]
fn timing_insertion_refuses_bad_units_without_panicking() {
    let (sps, _) = x264_parameter_sets();
    let (_, layout) = sps_with_pic_struct(sps).unwrap();
    let tc = Timecode::of_frame(rate(30, 1), 0);
    assert!(insert_pic_timing(&[0, 0, 0, 9, 1], 4, &layout, &tc).is_err());
    assert!(insert_pic_timing(&[0, 0, 0, 1, 0x06], 4, &layout, &tc).is_ok());
    assert!(insert_pic_timing(&[0, 0, 0, 3, 0x06, 0xFF, 0xFF], 4, &layout, &tc).is_err());
    assert!(insert_pic_timing(&[], 3, &layout, &tc).is_err());
    let hrd = PicTimingLayout {
        hrd_delays: Some((24, 24)),
        ..layout
    };
    assert_eq!(
        insert_pic_timing(&nals_to_avcc(&[&[0x65, 0x88]]).unwrap(), 4, &hrd, &tc),
        Err(H264Error::NoHrdDelays)
    );
    for n in 0..sps.len() {
        let _ = sps_with_pic_struct(&sps[..n]);
    }
}

// --- captions ------------------------------------------------------------------------------

/// CEA-608 pairs with odd parity, as a field-1 triplet each.
fn cc608(pairs: &[[u8; 2]]) -> Vec<CcTriplet> {
    let odd = |b: u8| {
        if b.count_ones().is_multiple_of(2) {
            b | 0x80
        } else {
            b
        }
    };
    pairs.iter().map(|p| [0xFC, odd(p[0]), odd(p[1])]).collect()
}

#[test]
fn captions_go_before_the_first_slice_of_every_x264_unit_and_read_back() {
    // RCL, "HI", EOC: what a pop-on caption sends.
    let cc = cc608(&[[0x14, 0x20], [b'H', b'I'], [0x14, 0x2F]]);
    let nal = caption_nal(&cc);
    // The exact A/53 payload: T.35 US/ATSC, "GA94", cc_data with 3 constructs.
    let rbsp = nal_to_rbsp(&nal[1..]);
    assert_eq!(&rbsp[..2], &[4, 8 + 2 + 9 + 1]);
    assert_eq!(
        &rbsp[2..12],
        &[0xB5, 0, 0x31, b'G', b'A', b'9', b'4', 3, 0x43, 0xFF]
    );
    assert_eq!(&rbsp[rbsp.len() - 2..], &[0xFF, 0x80]);
    for (i, unit) in x264_units().iter().enumerate() {
        let au = nals_to_avcc(unit).unwrap();
        let out = insert_before_first_slice(&au, 4, &nal).unwrap();
        assert_eq!(read_captions(&out, 4).unwrap(), cc, "unit {i}");
        assert!(read_captions(&au, 4).unwrap().is_empty(), "unit {i}");
        let nals: Vec<&[u8]> = AvccNals::new(&out).map(Result::unwrap).collect();
        let first_slice = nals.iter().position(|n| is_vcl(n[0] & 0x1f)).unwrap();
        assert_eq!(nals[first_slice - 1], &nal[..], "unit {i}");
        assert_eq!(nals.len(), unit.len() + 1);
    }
}

#[test]
fn more_than_31_constructs_take_several_messages() {
    let cc: Vec<CcTriplet> = (0..70u8).map(|i| [0xFE, i, i.wrapping_mul(3)]).collect();
    let nal = caption_nal(&cc);
    let au = nals_to_avcc(&[&nal, &[0x65, 0x88, 0x84, 0x00]]).unwrap();
    assert_eq!(read_captions(&au, 4).unwrap(), cc);
    let rbsp = nal_to_rbsp(&nal[1..]);
    assert_eq!(super::sei::messages(&rbsp).unwrap().len(), 3);
}

#[test]
fn every_caption_meta_form_gives_cc_data() {
    assert_eq!(
        cc_triplets(CaptionFormat::Cea608Raw, &[0x94, 0x20, 0xC8, 0x49, 0x7]),
        vec![[0xFC, 0x94, 0x20], [0xFC, 0xC8, 0x49]]
    );
    assert_eq!(
        cc_triplets(
            CaptionFormat::Cea608S334_1a,
            &[0x80, 0x94, 0x20, 0x00, 0x15, 0x2F]
        ),
        vec![[0xFC, 0x94, 0x20], [0xFD, 0x15, 0x2F]]
    );
    assert_eq!(
        cc_triplets(CaptionFormat::Cea708Raw, &[0x04, 0x94, 0x20, 0xFA, 0, 0]),
        vec![[0xFC, 0x94, 0x20], [0xFA, 0, 0]]
    );
    // A CDP at 29.97 with a time code section and 2 constructs, then its footer.
    let cdp = [
        0x96, 0x69, 0x1C, 0x4F, 0xC3, 0x12, 0x34, // header, flags: time code + cc data
        0x71, 0xC0, 0x80, 0x80, 0x80, // time_code_section
        0x72, 0xE2, 0xFC, 0x94, 0x20, 0xF9, 0x80, 0x80, // ccdata_section
        0x74, 0x12, 0x34, 0x00, // cdp_footer
    ];
    assert_eq!(
        cc_triplets(CaptionFormat::Cea708Cdp, &cdp),
        vec![[0xFC, 0x94, 0x20], [0xF9, 0x80, 0x80]]
    );
    // Malformed CDPs give nothing, never a panic.
    for cut in 0..cdp.len() {
        let _ = cc_triplets(CaptionFormat::Cea708Cdp, &cdp[..cut]);
    }
    assert!(cc_triplets(CaptionFormat::Cea708Cdp, &cdp[..16]).is_empty());
    assert!(cc_triplets(CaptionFormat::Cea708Cdp, &[0x96, 0x68, 9, 9, 9, 9, 9]).is_empty());
}

#[test]
fn caption_reading_survives_garbage() {
    let mut seed = 0x1234_5678u32;
    for n in 0..2000usize {
        let len = n % 64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let mut au = (len as u32 + 1).to_be_bytes().to_vec();
        au.push(0x06);
        au.extend_from_slice(&bytes);
        let _ = read_captions(&au, 4);
        let _ = read_captions(&bytes, 4);
        let _ = insert_before_first_slice(&bytes, 4, &[0x06, 0x80]);
    }
}
