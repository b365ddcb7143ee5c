//! CMAF fragments for one track: `styp`, optional `prft`, `moof` and `mdat`
//! (ISO/IEC 23000-19 §7.3.2.3 CMAF fragment, §7.3.2.4 CMAF segment).
//!
//! Boxes: ISO/IEC 14496-12 §8.16.2 `styp`, §8.16.5 `prft`, §8.8.4 `moof`, §8.8.5 `mfhd`,
//! §8.8.6 `traf`, §8.8.7 `tfhd`, §8.8.12 `tfdt`, §8.8.8 `trun`, §8.8.3.1 sample flags,
//! §8.1.1 `mdat`.
//!
//! Every timestamp is 64-bit: `tfdt` is version 1 and `prft` is version 1, because epoch-based
//! decode times overflow 32 bits after about 13 hours at 90 kHz.

use super::emsg::{EventMessage, write_emsg_box};
use super::writer::BoxWriter;
use crate::track::{Sample, TrackInfo};

/// `styp` major brand: a DASH media segment (ISO/IEC 23009-1 §6.3.4.2).
pub const STYP_MAJOR_BRAND: [u8; 4] = *b"msdh";
/// `styp` compatible brands of every fragment: DASH media segment, CMAF segment, CMAF fragment.
pub const STYP_COMPATIBLE_BRANDS: [[u8; 4]; 3] = [*b"msdh", *b"cmfs", *b"cmff"];
/// Extra compatible brand of filler (slate) fragments, written while the input is lost.
pub const BRAND_FILLER: [u8; 4] = *b"slat";
/// Extra compatible brand of the last segment of a stream (ISO/IEC 23009-1 §7.3.1).
pub const BRAND_LAST: [u8; 4] = *b"lmsg";

/// `prft` flags: 8 (the NTP time and media time have a consistent offset) + 16 (that offset
/// is small: the NTP time is the real-time of the picture at `media_time`). twincast derives
/// media time from the capture wall clock by formula, so both hold; `flags = 0` would instead
/// claim "time the frame entered the encoder".
pub const PRFT_FLAGS: u32 = 24;

/// `tfhd` flag default-base-is-moof (§8.8.7.1): data offsets count from the `moof`'s first byte.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_SAMPLE_DURATION: u32 = 0x000100;
const TRUN_SAMPLE_SIZE: u32 = 0x000200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000400;
const TRUN_SAMPLE_CTS: u32 = 0x000800;

/// Sample flags of a sync sample: sample_depends_on = 2 (depends on no other sample).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Seconds from the NTP epoch (1900) to the UNIX epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Which `styp` brands a fragment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FragmentBrands {
    /// An ordinary fragment of live input.
    #[default]
    Normal,
    /// A filler (slate) fragment written while input is lost: adds `slat`.
    Filler,
    /// The last fragment of the stream: adds `lmsg`.
    Last,
    /// A filler fragment that is also the last: adds `slat` and `lmsg`.
    FillerLast,
}

impl FragmentBrands {
    fn extra(self) -> &'static [[u8; 4]] {
        match self {
            FragmentBrands::Normal => &[],
            FragmentBrands::Filler => &[BRAND_FILLER],
            FragmentBrands::Last => &[BRAND_LAST],
            FragmentBrands::FillerLast => &[BRAND_FILLER, BRAND_LAST],
        }
    }
}

/// Producer reference time (`prft` version 1, flags [`PRFT_FLAGS`]); the reference track is
/// the fragment's own track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prft {
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low 32);
    /// see [`ntp_from_unix_ns`].
    pub ntp_timestamp: u64,
    /// Media time, in the track timescale, that `ntp_timestamp` corresponds to.
    pub media_time: u64,
}

/// What one fragment holds.
#[derive(Debug, Clone, Copy)]
pub struct FragmentParams<'a> {
    /// `mfhd` sequence_number.
    pub sequence: u32,
    /// The samples, non-empty and contiguous; the base decode time is `samples[0].dts`.
    pub samples: &'a [Sample],
    /// Producer reference time, written as a `prft` before the `moof`.
    pub prft: Option<Prft>,
    /// Event messages, written as `emsg` boxes after the `prft` and before the `moof`
    /// (ISO/IEC 23000-19 §7.4.5: they precede the `moof` of their fragment).
    pub events: &'a [EventMessage<'a>],
    pub brands: FragmentBrands,
}

/// Converts nanoseconds since the UNIX epoch to a 64-bit NTP timestamp. The seconds wrap in
/// 2036 (NTP era 1), as NTP timestamps do.
pub fn ntp_from_unix_ns(ns: u64) -> u64 {
    let secs = (ns / NANOS_PER_SEC + NTP_UNIX_OFFSET_SECS) & 0xffff_ffff;
    let frac = ((ns % NANOS_PER_SEC) << 32) / NANOS_PER_SEC;
    (secs << 32) | frac
}

/// Writes one fragment into a new buffer. See [`write_fragment_into`].
pub fn write_fragment(track: &TrackInfo, frag: &FragmentParams<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    write_fragment_into(&mut buf, track, frag);
    buf
}

/// Appends one fragment (`styp`, `prft`, `emsg`s, `moof`, `mdat`) to `buf`, so that several fragments
/// can be collected into one segment buffer.
///
/// An empty `samples` list writes a valid fragment without samples whose base decode time is 0;
/// callers are expected not to do that.
pub fn write_fragment_into(buf: &mut Vec<u8>, track: &TrackInfo, frag: &FragmentParams<'_>) {
    let samples = frag.samples;
    let payload: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
    let has_cts = samples.iter().any(|s| s.cts_offset != 0);
    let entry_len = if has_cts { 16 } else { 12 };
    let header_len = 256 + entry_len * samples.len();
    buf.reserve(header_len + usize::try_from(payload).unwrap_or(0));

    let mut w = BoxWriter::new(buf);
    write_styp(&mut w, frag.brands);
    if let Some(prft) = frag.prft {
        let b = w.start_full_box(b"prft", 1, PRFT_FLAGS);
        w.u32(track.id); // reference_track_ID
        w.u64(prft.ntp_timestamp);
        w.u64(prft.media_time);
        w.end_box(b);
    }
    for e in frag.events {
        write_emsg_box(&mut w, e);
    }

    let moof = w.start_box(b"moof");
    let mfhd = w.start_full_box(b"mfhd", 0, 0);
    w.u32(frag.sequence);
    w.end_box(mfhd);
    let traf = w.start_box(b"traf");
    let tfhd = w.start_full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(track.id);
    w.end_box(tfhd);
    let tfdt = w.start_full_box(b"tfdt", 1, 0);
    w.u64(samples.first().map_or(0, |s| s.dts));
    w.end_box(tfdt);
    let data_offset_at = write_trun(&mut w, samples, has_cts);
    w.end_box(traf);
    w.end_box(moof);

    let mdat_header = w.write_mdat_header(payload);
    let moof_len = w.len() - moof.offset() - mdat_header;
    let data_offset = u32::try_from(moof_len + mdat_header).unwrap_or(u32::MAX);
    w.patch_u32(data_offset_at, data_offset);
    for s in samples {
        w.bytes(&s.data);
    }
}

fn write_styp(w: &mut BoxWriter<'_>, brands: FragmentBrands) {
    let styp = w.start_box(b"styp");
    w.fourcc(&STYP_MAJOR_BRAND);
    w.u32(0); // minor_version
    for brand in STYP_COMPATIBLE_BRANDS.iter().chain(brands.extra()) {
        w.fourcc(brand);
    }
    w.end_box(styp);
}

/// Writes the `trun` and returns the position of its data_offset field, patched later.
fn write_trun(w: &mut BoxWriter<'_>, samples: &[Sample], has_cts: bool) -> usize {
    let mut flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
    if has_cts {
        flags |= TRUN_SAMPLE_CTS;
    }
    // Version 1: signed composition offsets.
    let trun = w.start_full_box(b"trun", u8::from(has_cts), flags);
    w.u32(u32::try_from(samples.len()).unwrap_or(u32::MAX));
    let data_offset_at = w.len();
    w.u32(0);
    for s in samples {
        w.u32(s.duration);
        w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
        w.u32(if s.keyframe {
            SYNC_SAMPLE_FLAGS
        } else {
            NON_SYNC_SAMPLE_FLAGS
        });
        if has_cts {
            w.i32(s.cts_offset);
        }
    }
    w.end_box(trun);
    data_offset_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aac::AdtsFrames;
    use crate::h264::{is_idr, nals_to_avcc, split_access_units};
    use crate::mp4::init::tests::{audio_track, decode_all, video_track};
    use mp4_atom::{Any, Decode, ReferenceTime};

    const EPOCH_SECS: u64 = 1_763_000_000;

    fn video_samples() -> Vec<Sample> {
        let data = include_bytes!("../../testdata/x264_320x180_30fps.h264");
        split_access_units(data)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(k, au)| {
                let data = nals_to_avcc(au).unwrap();
                Sample {
                    dts: EPOCH_SECS * 90_000 + k as u64 * 3000,
                    duration: 3000,
                    cts_offset: 0,
                    keyframe: is_idr(&data).unwrap(),
                    data,
                }
            })
            .collect()
    }

    fn audio_samples() -> Vec<Sample> {
        let data = include_bytes!("../../testdata/ffmpeg_aac_lc_48k_stereo_sine.adts");
        AdtsFrames::new(data)
            .enumerate()
            .map(|(j, f)| Sample {
                dts: (EPOCH_SECS * 48_000).div_ceil(1024) * 1024 + j as u64 * 1024,
                duration: 1024,
                cts_offset: 0,
                keyframe: true,
                data: f.unwrap().payload.to_vec(),
            })
            .collect()
    }

    struct Decoded {
        styp: mp4_atom::Styp,
        prft: Option<mp4_atom::Prft>,
        emsgs: Vec<mp4_atom::Emsg>,
        moof: mp4_atom::Moof,
        mdat: mp4_atom::Mdat,
        moof_offset: usize,
    }

    fn decode_fragment(bytes: &[u8]) -> Decoded {
        let mut data = bytes;
        let styp = mp4_atom::Styp::decode(&mut data).unwrap();
        let prft = match Any::decode(&mut &data[..]).unwrap() {
            Any::Prft(_) => Some(mp4_atom::Prft::decode(&mut data).unwrap()),
            _ => None,
        };
        let mut emsgs = Vec::new();
        while let Any::Emsg(_) = Any::decode(&mut &data[..]).unwrap() {
            emsgs.push(mp4_atom::Emsg::decode(&mut data).unwrap());
        }
        let moof_offset = bytes.len() - data.len();
        let moof = mp4_atom::Moof::decode(&mut data).unwrap();
        let mdat = mp4_atom::Mdat::decode(&mut data).unwrap();
        assert!(data.is_empty());
        Decoded {
            styp,
            emsgs,
            prft,
            moof,
            mdat,
            moof_offset,
        }
    }

    #[test]
    fn video_gop_fragment_decodes_strictly() {
        let track = video_track();
        let samples = video_samples();
        let gop = &samples[..30];
        let media_time = gop[0].dts;
        let ntp = ntp_from_unix_ns(EPOCH_SECS * NANOS_PER_SEC);
        let bytes = write_fragment(
            &track,
            &FragmentParams {
                sequence: 881_500_000,
                samples: gop,
                prft: Some(Prft {
                    ntp_timestamp: ntp,
                    media_time,
                }),
                events: &[],
                brands: FragmentBrands::Normal,
            },
        );
        assert_eq!(decode_all(&bytes).len(), 4);
        let d = decode_fragment(&bytes);
        assert_eq!(d.styp.major_brand, b"msdh".into());
        assert!(d.styp.compatible_brands.contains(&b"cmfs".into()));
        assert!(!d.styp.compatible_brands.contains(&b"slat".into()));
        let prft = d.prft.unwrap();
        assert_eq!(prft.reference_track_id, 1);
        assert_eq!(prft.ntp_timestamp, ntp);
        assert_eq!(prft.media_time, media_time);
        assert_eq!(prft.utc_time_semantics, ReferenceTime::RealTime);

        assert_eq!(d.moof.mfhd.sequence_number, 881_500_000);
        assert_eq!(d.moof.traf.len(), 1);
        let traf = &d.moof.traf[0];
        assert_eq!(traf.tfhd.track_id, 1);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(
            traf.tfdt.as_ref().unwrap().base_media_decode_time,
            media_time
        );
        assert!(media_time > u64::from(u32::MAX), "exercises 64-bit tfdt");
        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        assert_eq!(trun.samples.len(), 30);
        for (entry, s) in trun.samples.iter().zip(gop) {
            assert_eq!(entry.duration, Some(3000));
            assert_eq!(entry.size, Some(s.data.len() as u32));
            let want = if s.keyframe { 0x0200_0000 } else { 0x0101_0000 };
            assert_eq!(entry.flags, Some(want));
            assert_eq!(entry.cts, None);
        }
        assert!(gop[0].keyframe && !gop[1].keyframe);

        let payload: Vec<u8> = gop.iter().flat_map(|s| s.data.iter().copied()).collect();
        assert_eq!(d.mdat.data, payload);
        let offset = d.moof_offset + trun.data_offset.unwrap() as usize;
        assert_eq!(&bytes[offset..offset + gop[0].data.len()], &gop[0].data[..]);
    }

    #[test]
    fn composition_offsets_use_trun_version_1() {
        let track = video_track();
        let mut samples = video_samples()[..3].to_vec();
        samples[0].cts_offset = 3000;
        samples[1].cts_offset = -3000;
        let bytes = write_fragment(
            &track,
            &FragmentParams {
                sequence: 1,
                samples: &samples,
                prft: None,
                events: &[],
                brands: FragmentBrands::Normal,
            },
        );
        let d = decode_fragment(&bytes);
        assert!(d.prft.is_none());
        let cts: Vec<_> = d.moof.traf[0].trun[0]
            .samples
            .iter()
            .map(|e| e.cts)
            .collect();
        assert_eq!(cts, vec![Some(3000), Some(-3000), Some(0)]);
        assert_eq!(
            bytes[d.moof_offset + 8 + 16 + 8 + 16 + 20 + 8],
            1,
            "trun version"
        );
    }

    #[test]
    fn event_messages_sit_between_the_prft_and_the_moof() {
        let track = video_track();
        let samples = video_samples();
        let section = [0xFC, 0x30, 0x11];
        let events = [7, 8].map(|id| EventMessage {
            scheme_id_uri: super::super::emsg::SCTE35_SCHEME,
            value: "",
            timescale: 90_000,
            presentation_time: samples[0].dts + 433,
            event_duration: 2_700_000,
            id,
            message_data: &section,
        });
        let bytes = write_fragment(
            &track,
            &FragmentParams {
                sequence: 5,
                samples: &samples[..30],
                prft: Some(Prft {
                    ntp_timestamp: 1,
                    media_time: samples[0].dts,
                }),
                events: &events,
                brands: FragmentBrands::Normal,
            },
        );
        assert_eq!(decode_all(&bytes).len(), 6, "styp prft emsg emsg moof mdat");
        let d = decode_fragment(&bytes);
        assert!(d.prft.is_some());
        let ids: Vec<u32> = d.emsgs.iter().map(|e| e.id).collect();
        assert_eq!(ids, [7, 8]);
        assert_eq!(d.emsgs[0].message_data, section);
        // The sample data is still where the trun says.
        let trun = &d.moof.traf[0].trun[0];
        let offset = d.moof_offset + trun.data_offset.unwrap() as usize;
        assert_eq!(
            &bytes[offset..offset + samples[0].data.len()],
            &samples[0].data[..]
        );
    }

    #[test]
    fn filler_and_last_brands() {
        let track = audio_track();
        let samples = audio_samples();
        for (brands, slat, lmsg) in [
            (FragmentBrands::Filler, true, false),
            (FragmentBrands::Last, false, true),
            (FragmentBrands::FillerLast, true, true),
        ] {
            let bytes = write_fragment(
                &track,
                &FragmentParams {
                    sequence: 9,
                    samples: &samples[..4],
                    prft: None,
                    events: &[],
                    brands,
                },
            );
            let d = decode_fragment(&bytes);
            assert_eq!(d.styp.compatible_brands.contains(&b"slat".into()), slat);
            assert_eq!(d.styp.compatible_brands.contains(&b"lmsg".into()), lmsg);
        }
    }

    #[test]
    fn audio_fragments_append_into_one_segment() {
        let track = audio_track();
        let samples = audio_samples();
        let mut segment = Vec::new();
        for (n, chunk) in samples.chunks(47).enumerate() {
            write_fragment_into(
                &mut segment,
                &track,
                &FragmentParams {
                    sequence: n as u32 + 1,
                    samples: chunk,
                    prft: Some(Prft {
                        ntp_timestamp: 0,
                        media_time: chunk[0].dts,
                    }),
                    events: &[],
                    brands: FragmentBrands::Normal,
                },
            );
        }
        let atoms = decode_all(&segment);
        let moofs: Vec<&mp4_atom::Moof> = atoms
            .iter()
            .filter_map(|a| match a {
                Any::Moof(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(moofs.len(), samples.len().div_ceil(47));
        let mut next = samples[0].dts;
        for (n, moof) in moofs.iter().enumerate() {
            assert_eq!(moof.mfhd.sequence_number, n as u32 + 1);
            let traf = &moof.traf[0];
            assert_eq!(traf.tfhd.track_id, 2);
            assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, next);
            let trun = &traf.trun[0];
            for e in trun.samples.iter() {
                assert_eq!(e.flags, Some(SYNC_SAMPLE_FLAGS));
                next += u64::from(e.duration.unwrap());
            }
        }
        assert_eq!(next, samples[0].dts + 1024 * samples.len() as u64);
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_from_unix_ns(0), NTP_UNIX_OFFSET_SECS << 32);
        assert_eq!(
            ntp_from_unix_ns(1_500_000_000),
            ((NTP_UNIX_OFFSET_SECS + 1) << 32) | 0x8000_0000
        );
        // 2036-02-07T06:28:16Z is the start of NTP era 1.
        let era1 = ((1u64 << 32) - NTP_UNIX_OFFSET_SECS) * NANOS_PER_SEC;
        assert_eq!(ntp_from_unix_ns(era1), 0);
    }

    #[test]
    fn empty_fragment_is_still_well_formed() {
        let bytes = write_fragment(
            &video_track(),
            &FragmentParams {
                sequence: 3,
                samples: &[],
                prft: None,
                events: &[],
                brands: FragmentBrands::Normal,
            },
        );
        let d = decode_fragment(&bytes);
        assert_eq!(d.moof.traf[0].trun[0].samples.len(), 0);
        assert!(d.mdat.data.is_empty());
    }
}
