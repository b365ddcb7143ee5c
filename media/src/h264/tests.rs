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
