//! Sample entries inside `stsd`: `avc1` with `avcC` and `btrt` for H.264, `mp4a` with `esds`
//! and `btrt` for AAC.
//!
//! References: ISO/IEC 14496-12 §12.1.3 (VisualSampleEntry), §12.2.3 (AudioSampleEntry),
//! §8.5.2.2 (`btrt`); ISO/IEC 14496-15 §5.4.2.1 (`avc1`, `avcC`); ISO/IEC 14496-14 §5.6
//! (`esds`) with the descriptors of ISO/IEC 14496-1 §7.2.6.5 (ES_Descriptor), §7.2.6.6
//! (DecoderConfigDescriptor), §7.2.6.7 (DecoderSpecificInfo), §7.3.2.3 (SLConfigDescriptor).

use super::writer::BoxWriter;
use crate::track::{Codec, TrackInfo};

/// `objectTypeIndication` for Audio ISO/IEC 14496-3 (14496-1 Table 5).
const OTI_MPEG4_AUDIO: u8 = 0x40;
/// `streamType` AudioStream (14496-1 Table 6).
const STREAM_TYPE_AUDIO: u8 = 0x05;
/// Largest AAC frame: 6144 bits per channel (14496-3 §4.5.3.2).
const AAC_MAX_FRAME_BYTES_PER_CHANNEL: u32 = 768;

/// Writes the one sample entry of `track`.
pub fn write_sample_entry(w: &mut BoxWriter<'_>, track: &TrackInfo) {
    match &track.codec {
        Codec::H264 {
            avcc,
            width,
            height,
        } => write_avc1(w, avcc, *width, *height, track.bitrate),
        Codec::Aac {
            asc,
            sample_rate,
            channels,
        } => write_mp4a(w, asc, *sample_rate, *channels, track.bitrate),
    }
}

fn write_avc1(w: &mut BoxWriter<'_>, avcc: &[u8], width: u32, height: u32, bitrate: u32) {
    let avc1 = w.start_box(b"avc1");
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.zeros(2 + 2 + 12); // pre_defined, reserved, pre_defined
    w.u16(width.min(0xffff) as u16);
    w.u16(height.min(0xffff) as u16);
    w.u32(0x0048_0000); // horizresolution 72 dpi
    w.u32(0x0048_0000); // vertresolution 72 dpi
    w.u32(0); // reserved
    w.u16(1); // frame_count
    w.zeros(32); // compressorname: empty Pascal string
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1

    let b = w.start_box(b"avcC");
    w.bytes(avcc);
    w.end_box(b);
    write_btrt(w, 0, bitrate);
    w.end_box(avc1);
}

fn write_mp4a(w: &mut BoxWriter<'_>, asc: &[u8], sample_rate: u32, channels: u16, bitrate: u32) {
    let mp4a = w.start_box(b"mp4a");
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.zeros(8); // reserved
    w.u16(channels);
    w.u16(16); // samplesize
    w.u16(0); // pre_defined
    w.u16(0); // reserved
    // 16.16 rate; rates above 65535 Hz do not fit and are given by the media timescale.
    w.u32(if sample_rate <= 0xffff {
        sample_rate << 16
    } else {
        0
    });

    let buffer_size = AAC_MAX_FRAME_BYTES_PER_CHANNEL * u32::from(channels.max(1));
    let esds = w.start_full_box(b"esds", 0, 0);
    // DecoderSpecificInfo, DecoderConfigDescriptor, ES_Descriptor, nested; lengths known up
    // front, so each is written with a minimal size field.
    let dsi_len = asc.len();
    let dcd_len = 13 + descriptor_total(dsi_len);
    let sl_len = 1;
    let es_len = 3 + descriptor_total(dcd_len) + descriptor_total(sl_len);
    write_descriptor_header(w, 0x03, es_len); // ES_Descriptor
    w.u16(0); // ES_ID: 0 in the MP4 file format (14496-14 §3.1.2)
    w.u8(0); // no stream dependence, URL or OCR stream; priority 0
    write_descriptor_header(w, 0x04, dcd_len); // DecoderConfigDescriptor
    w.u8(OTI_MPEG4_AUDIO);
    w.u8((STREAM_TYPE_AUDIO << 2) | 0x01); // upStream 0, reserved 1
    w.u24(buffer_size);
    w.u32(bitrate); // maxBitrate
    w.u32(bitrate); // avgBitrate
    write_descriptor_header(w, 0x05, dsi_len); // DecoderSpecificInfo: AudioSpecificConfig
    w.bytes(asc);
    write_descriptor_header(w, 0x06, sl_len); // SLConfigDescriptor
    w.u8(2); // predefined: reserved for use in MP4 files
    w.end_box(esds);

    write_btrt(w, buffer_size, bitrate);
    w.end_box(mp4a);
}

fn write_btrt(w: &mut BoxWriter<'_>, buffer_size: u32, bitrate: u32) {
    let btrt = w.start_box(b"btrt");
    w.u32(buffer_size); // bufferSizeDB
    w.u32(bitrate); // maxBitrate
    w.u32(bitrate); // avgBitrate
    w.end_box(btrt);
}

/// Bytes the `sizeOfInstance` field takes (7 bits per byte, 14496-1 §8.3.3).
fn size_field_len(len: usize) -> usize {
    match len {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        _ => 4,
    }
}

/// Tag + size field + body.
fn descriptor_total(body: usize) -> usize {
    1 + size_field_len(body) + body
}

fn write_descriptor_header(w: &mut BoxWriter<'_>, tag: u8, len: usize) {
    w.u8(tag);
    let n = size_field_len(len);
    for i in (0..n).rev() {
        let group = ((len >> (7 * i)) & 0x7f) as u8;
        w.u8(if i > 0 { group | 0x80 } else { group });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes_use_minimal_base128() {
        let mut buf = Vec::new();
        let mut w = BoxWriter::new(&mut buf);
        write_descriptor_header(&mut w, 5, 2);
        write_descriptor_header(&mut w, 5, 200);
        assert_eq!(buf, [5, 2, 5, 0x81, 0x48]);
        assert_eq!(descriptor_total(200), 203);
    }

    #[test]
    fn long_audio_specific_config_still_decodes() {
        // A 130-byte DecoderSpecificInfo needs a two-byte size field.
        let mut asc = vec![0x11, 0x90];
        asc.resize(130, 0);
        let track = TrackInfo {
            codec: Codec::Aac {
                asc: asc.clone(),
                sample_rate: 48_000,
                channels: 2,
            },
            ..super::super::init::tests::audio_track()
        };
        let init = super::super::write_init(&track);
        let mut data = init.as_slice();
        use mp4_atom::Decode;
        mp4_atom::Ftyp::decode(&mut data).unwrap();
        let moov = mp4_atom::Moov::decode(&mut data).unwrap();
        let mp4_atom::Codec::Mp4a(mp4a) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("expected mp4a");
        };
        let raw = &mp4a
            .esds
            .es_desc
            .dec_config
            .dec_specific
            .as_ref()
            .unwrap()
            .raw;
        assert_eq!(raw, &asc);
    }
}
