//! The CMAF header: `ftyp` and `moov` for one track (ISO/IEC 23000-19 §7.3.2.1).
//!
//! Boxes: ISO/IEC 14496-12 §4.3 `ftyp`, §8.2.2 `mvhd`, §8.3.2 `tkhd`, §8.4.2 `mdhd`, §8.4.3
//! `hdlr`, §12.1.2 `vmhd`, §12.2.2 `smhd`, §8.7.2 `dref`, §8.5.2 `stsd`, §8.6.1.2 `stts`,
//! §8.7.4 `stsc`, §8.7.3 `stsz`, §8.7.5 `stco`, §8.8.1 `mvex`, §8.8.3 `trex`.
//!
//! Durations are 0 (unknown, live), so the version 0 headers are 64-bit safe: no timestamp of
//! the epoch timeline is ever written here.

use super::sample_entry::write_sample_entry;
use super::writer::BoxWriter;
use crate::track::{TrackInfo, TrackKind};

/// `ftyp` major brand: CMAF structural brand for tracks with `tfdt` version 1 and `prft`.
pub const INIT_MAJOR_BRAND: [u8; 4] = *b"cmf2";
/// `ftyp` compatible brands.
pub const INIT_COMPATIBLE_BRANDS: [[u8; 4]; 4] = [*b"cmf2", *b"cmfc", *b"iso6", *b"dash"];

/// Unity transformation matrix (§8.2.2.3), in 16.16 and 2.30 fixed point.
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// ISO 639-2/T "und", packed as three 5-bit letters (§8.4.2.3).
const LANGUAGE_UND: u16 = ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | 4;
/// `tkhd` flags: track_enabled | track_in_movie.
const TKHD_FLAGS: u32 = 0x000003;

/// Writes the CMAF header (`ftyp` + `moov`) for `track`.
pub fn write_init(track: &TrackInfo) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1024);
    let mut w = BoxWriter::new(&mut buf);
    write_ftyp(&mut w);
    write_moov(&mut w, track);
    buf
}

pub(super) fn write_ftyp(w: &mut BoxWriter<'_>) {
    let ftyp = w.start_box(b"ftyp");
    w.fourcc(&INIT_MAJOR_BRAND);
    w.u32(0);
    for brand in &INIT_COMPATIBLE_BRANDS {
        w.fourcc(brand);
    }
    w.end_box(ftyp);
}

fn write_moov(w: &mut BoxWriter<'_>, track: &TrackInfo) {
    let moov = w.start_box(b"moov");
    write_mvhd(w, track.timescale, track.id);
    let trak = w.start_box(b"trak");
    let (volume, width, height) = match &track.codec {
        crate::Codec::H264 { width, height, .. } => (0, *width, *height),
        crate::Codec::Aac { .. } => (0x0100, 0, 0),
    };
    write_tkhd(w, track.id, volume, width, height);
    let mdia = w.start_box(b"mdia");
    write_mdhd(w, track.timescale);
    let (handler, name): (&[u8; 4], &[u8]) = match track.kind() {
        TrackKind::Video => (b"vide", b"twincast video\0"),
        TrackKind::Audio => (b"soun", b"twincast audio\0"),
    };
    write_hdlr(w, handler, name);
    let minf = w.start_box(b"minf");
    match track.kind() {
        TrackKind::Video => {
            let vmhd = w.start_full_box(b"vmhd", 0, 1);
            w.u16(0); // graphicsmode: copy
            w.zeros(6); // opcolor
            w.end_box(vmhd);
        }
        TrackKind::Audio => {
            let smhd = w.start_full_box(b"smhd", 0, 0);
            w.u16(0); // balance
            w.u16(0); // reserved
            w.end_box(smhd);
        }
    }
    write_dinf_stbl(w, |w| write_sample_entry(w, track));
    w.end_box(minf);
    w.end_box(mdia);
    w.end_box(trak);
    write_mvex(w, track.id);
    w.end_box(moov);
}

/// The `moov` of a timed-metadata track (the DASH-IF event track, Smooth's sparse track):
/// handler `meta` named `name` (NUL-terminated), `nmhd`, and the one sample entry `entry`
/// writes; no picture size, no volume, durations unknown.
pub(super) fn write_metadata_moov(
    w: &mut BoxWriter<'_>,
    track_id: u32,
    timescale: u32,
    name: &[u8],
    entry: impl FnOnce(&mut BoxWriter<'_>),
) {
    let moov = w.start_box(b"moov");
    write_mvhd(w, timescale, track_id);
    let trak = w.start_box(b"trak");
    write_tkhd(w, track_id, 0, 0, 0);
    let mdia = w.start_box(b"mdia");
    write_mdhd(w, timescale);
    write_hdlr(w, b"meta", name);
    let minf = w.start_box(b"minf");
    let nmhd = w.start_full_box(b"nmhd", 0, 0);
    w.end_box(nmhd);
    write_dinf_stbl(w, entry);
    w.end_box(minf);
    w.end_box(mdia);
    w.end_box(trak);
    write_mvex(w, track_id);
    w.end_box(moov);
}

fn write_mvhd(w: &mut BoxWriter<'_>, timescale: u32, track_id: u32) {
    let mvhd = w.start_full_box(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(timescale);
    w.u32(0); // duration: unknown
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8); // reserved
    for m in UNITY_MATRIX {
        w.u32(m);
    }
    w.zeros(6 * 4); // pre_defined
    w.u32(track_id.saturating_add(1)); // next_track_ID
    w.end_box(mvhd);
}

fn write_tkhd(w: &mut BoxWriter<'_>, track_id: u32, volume: u16, width: u32, height: u32) {
    let tkhd = w.start_full_box(b"tkhd", 0, TKHD_FLAGS);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(track_id);
    w.u32(0); // reserved
    w.u32(0); // duration: unknown
    w.zeros(8); // reserved
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(volume);
    w.u16(0); // reserved
    for m in UNITY_MATRIX {
        w.u32(m);
    }
    w.u32(fixed_16_16(width));
    w.u32(fixed_16_16(height));
    w.end_box(tkhd);
}

/// A pixel count as 16.16 fixed point, saturating at 65535.
fn fixed_16_16(v: u32) -> u32 {
    v.min(0xffff) << 16
}

fn write_mdhd(w: &mut BoxWriter<'_>, timescale: u32) {
    let mdhd = w.start_full_box(b"mdhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(timescale);
    w.u32(0); // duration: unknown
    w.u16(LANGUAGE_UND);
    w.u16(0); // pre_defined
    w.end_box(mdhd);
}

fn write_hdlr(w: &mut BoxWriter<'_>, handler: &[u8; 4], name: &[u8]) {
    let hdlr = w.start_full_box(b"hdlr", 0, 0);
    w.u32(0); // pre_defined
    w.fourcc(handler);
    w.zeros(12); // reserved
    w.bytes(name);
    w.end_box(hdlr);
}

/// `dinf` (the media is in this file) and `stbl` with one sample entry and empty tables.
fn write_dinf_stbl(w: &mut BoxWriter<'_>, entry: impl FnOnce(&mut BoxWriter<'_>)) {
    let dinf = w.start_box(b"dinf");
    let dref = w.start_full_box(b"dref", 0, 0);
    w.u32(1); // entry_count
    let url = w.start_full_box(b"url ", 0, 1); // flag 1: media is in this file
    w.end_box(url);
    w.end_box(dref);
    w.end_box(dinf);

    let stbl = w.start_box(b"stbl");
    let stsd = w.start_full_box(b"stsd", 0, 0);
    w.u32(1); // entry_count
    entry(w);
    w.end_box(stsd);
    for empty in [b"stts", b"stsc", b"stco"] {
        let b = w.start_full_box(empty, 0, 0);
        w.u32(0); // entry_count
        w.end_box(b);
    }
    let stsz = w.start_full_box(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end_box(stsz);
    w.end_box(stbl);
}

fn write_mvex(w: &mut BoxWriter<'_>, track_id: u32) {
    let mvex = w.start_box(b"mvex");
    let trex = w.start_full_box(b"trex", 0, 0);
    w.u32(track_id);
    w.u32(1); // default_sample_description_index
    w.u32(0); // default_sample_duration
    w.u32(0); // default_sample_size
    w.u32(0); // default_sample_flags
    w.end_box(trex);
    w.end_box(mvex);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Codec;
    use crate::aac::AudioSpecificConfig;
    use crate::h264::{AvcDecoderConfig, NAL_PPS, NAL_SPS, nal_unit_type, split_access_units};
    use mp4_atom::{Any, Decode, DecodeMaybe};

    pub(crate) fn video_track() -> TrackInfo {
        let data = include_bytes!("../../testdata/x264_320x180_30fps.h264");
        let units = split_access_units(data).unwrap();
        let find = |t| {
            *units[0]
                .iter()
                .find(|n| nal_unit_type(n) == Some(t))
                .unwrap()
        };
        let config =
            AvcDecoderConfig::from_parameter_sets(&[find(NAL_SPS)], &[find(NAL_PPS)]).unwrap();
        TrackInfo {
            id: 1,
            name: "180p".into(),
            timescale: 90_000,
            bitrate: 300_000,
            codec: Codec::H264 {
                avcc: config.to_bytes(),
                width: 320,
                height: 180,
            },
        }
    }

    pub(crate) fn audio_track() -> TrackInfo {
        TrackInfo {
            id: 2,
            name: "audio".into(),
            timescale: 48_000,
            bitrate: 64_000,
            codec: Codec::Aac {
                asc: AudioSpecificConfig::aac_lc(48_000, 2).unwrap().to_bytes(),
                sample_rate: 48_000,
                channels: 2,
            },
        }
    }

    /// Decodes every top-level box with mp4-atom (strict) and checks nothing is left over.
    pub(crate) fn decode_all(mut data: &[u8]) -> Vec<Any> {
        let mut out = Vec::new();
        while let Some(atom) = Any::decode_maybe(&mut data).expect("mp4-atom decodes") {
            out.push(atom);
        }
        assert!(data.is_empty());
        out
    }

    fn moov_of(init: &[u8]) -> (mp4_atom::Ftyp, mp4_atom::Moov) {
        let mut data = init;
        let ftyp = mp4_atom::Ftyp::decode(&mut data).unwrap();
        let moov = mp4_atom::Moov::decode(&mut data).unwrap();
        assert!(data.is_empty(), "nothing after moov");
        (ftyp, moov)
    }

    #[test]
    fn video_init_decodes_strictly() {
        let track = video_track();
        let init = write_init(&track);
        assert_eq!(decode_all(&init).len(), 2);
        let (ftyp, moov) = moov_of(&init);
        assert_eq!(ftyp.major_brand, b"cmf2".into());
        assert!(ftyp.compatible_brands.contains(&b"cmfc".into()));
        assert_eq!(moov.mvhd.next_track_id, 2);
        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 1);
        assert_eq!(trak.tkhd.width.integer(), 320);
        assert_eq!(trak.tkhd.height.integer(), 180);
        assert_eq!(trak.mdia.mdhd.timescale, 90_000);
        assert_eq!(trak.mdia.mdhd.language, "und");
        assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
        assert!(trak.mdia.minf.vmhd.is_some());
        let stbl = &trak.mdia.minf.stbl;
        assert_eq!(stbl.stsd.codecs.len(), 1);
        let mp4_atom::Codec::Avc1(avc1) = &stbl.stsd.codecs[0] else {
            panic!("expected avc1, got {:?}", stbl.stsd.codecs[0]);
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (320, 180));
        assert_eq!(avc1.avcc.avc_profile_indication, 100);
        assert_eq!(avc1.avcc.length_size, 4);
        let crate::Codec::H264 { avcc, .. } = &track.codec else {
            unreachable!()
        };
        let ours = AvcDecoderConfig::parse(avcc).unwrap();
        assert_eq!(avc1.avcc.sequence_parameter_sets, ours.sps);
        assert_eq!(avc1.avcc.picture_parameter_sets, ours.pps);
        let btrt = avc1.btrt.as_ref().unwrap();
        assert_eq!(btrt.avg_bitrate, 300_000);
        assert!(stbl.stts.entries.is_empty());
        assert!(matches!(
            stbl.stsz.samples,
            mp4_atom::StszSamples::Identical { count: 0, .. }
                | mp4_atom::StszSamples::Different { .. }
        ));
        let mvex = moov.mvex.as_ref().unwrap();
        assert_eq!(mvex.trex[0].track_id, 1);
        assert_eq!(mvex.trex[0].default_sample_description_index, 1);
    }

    #[test]
    fn audio_init_decodes_strictly() {
        let init = write_init(&audio_track());
        let (_, moov) = moov_of(&init);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 2);
        assert_eq!(trak.tkhd.volume.integer(), 1);
        assert_eq!(trak.mdia.mdhd.timescale, 48_000);
        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
        assert!(trak.mdia.minf.smhd.is_some());
        let mp4_atom::Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("expected mp4a");
        };
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_size, 16);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        let dc = &mp4a.esds.es_desc.dec_config;
        assert_eq!(dc.object_type_indication, 0x40);
        assert_eq!(dc.stream_type, 0x05);
        assert_eq!(dc.avg_bitrate, 64_000);
        let ds = dc.dec_specific.as_ref().unwrap();
        assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 3, 2));
        assert_eq!(ds.raw, [0x11, 0x90]);
    }
}
