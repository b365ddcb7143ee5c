//! FLV tag bodies as RTMP carries them (Adobe "Video File Format Specification" v10.1,
//! §E.4.2 audio tags, §E.4.3 video tags, §E.4.4 script data / `onMetaData`).
//!
//! RTMP message payloads are FLV tag bodies without the 11-byte tag header: the message
//! header carries the type and timestamp instead. [`write_tag`] adds the tag header and
//! [`FILE_HEADER`] starts a file, for tests and recordings.

use crate::amf0::{self, Value};
use crate::track::{Codec, TrackInfo};

/// FLV tag types (= RTMP message type ids of audio, video and AMF0 data).
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// FLV `CodecID` of AVC.
pub const VIDEO_CODEC_AVC: u8 = 7;
/// FLV `SoundFormat` of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;

const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;
/// AAC audio tag flags: SoundFormat 10, SoundRate 3 (44 kHz; AAC ignores it), 16-bit, stereo
/// (AAC always signals stereo here; the AudioSpecificConfig is authoritative).
const AAC_FLAGS: u8 = (SOUND_FORMAT_AAC << 4) | (3 << 2) | (1 << 1) | 1;

/// An FLV file header with audio and video, followed by PreviousTagSize0.
pub const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

/// The AVC sequence header tag body (AVCDecoderConfigurationRecord).
pub fn avc_sequence_header(avcc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + avcc.len());
    out.extend_from_slice(&[
        (FRAME_KEY << 4) | VIDEO_CODEC_AVC,
        AVC_SEQUENCE_HEADER,
        0,
        0,
        0,
    ]);
    out.extend_from_slice(avcc);
    out
}

/// Writes an AVC video tag body for one access unit (AVCC, 4-byte lengths) into `out`.
pub fn avc_frame_into(out: &mut Vec<u8>, keyframe: bool, cts_ms: i32, data: &[u8]) {
    let frame = if keyframe { FRAME_KEY } else { FRAME_INTER };
    let cts = cts_ms.clamp(-(1 << 23), (1 << 23) - 1).to_be_bytes();
    out.extend_from_slice(&[
        (frame << 4) | VIDEO_CODEC_AVC,
        AVC_NALU,
        cts[1],
        cts[2],
        cts[3],
    ]);
    out.extend_from_slice(data);
}

/// The AAC sequence header tag body (AudioSpecificConfig).
pub fn aac_sequence_header(asc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + asc.len());
    out.extend_from_slice(&[AAC_FLAGS, AAC_SEQUENCE_HEADER]);
    out.extend_from_slice(asc);
    out
}

/// Writes an AAC audio tag body for one raw AAC frame into `out`.
pub fn aac_frame_into(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&[AAC_FLAGS, AAC_RAW]);
    out.extend_from_slice(data);
}

/// The `@setDataFrame("onMetaData", {...})` script body a publisher sends before the media
/// (nginx-rtmp and most ingest services strip `@setDataFrame` and keep `onMetaData`).
pub fn metadata(video: Option<&TrackInfo>, audio: Option<&TrackInfo>, framerate: f64) -> Vec<u8> {
    let mut props: Vec<(String, Value)> = Vec::new();
    let mut num = |k: &str, v: f64| props.push((k.to_string(), Value::Number(v)));
    if let Some(TrackInfo {
        codec: Codec::H264 { width, height, .. },
        bitrate,
        ..
    }) = video
    {
        num("width", f64::from(*width));
        num("height", f64::from(*height));
        num("framerate", framerate);
        num("videocodecid", f64::from(VIDEO_CODEC_AVC));
        num("videodatarate", f64::from(*bitrate) / 1000.0);
    }
    if let Some(TrackInfo {
        codec: Codec::Aac {
            sample_rate,
            channels,
            ..
        },
        bitrate,
        ..
    }) = audio
    {
        num("audiocodecid", f64::from(SOUND_FORMAT_AAC));
        num("audiosamplerate", f64::from(*sample_rate));
        num("audiosamplesize", 16.0);
        num("audiochannels", f64::from(*channels));
        num("audiodatarate", f64::from(*bitrate) / 1000.0);
        props.push(("stereo".to_string(), Value::Boolean(*channels >= 2)));
    }
    props.push(("encoder".to_string(), Value::str("twincast")));
    amf0::encode_all(&[
        Value::str("@setDataFrame"),
        Value::str("onMetaData"),
        Value::EcmaArray(props),
    ])
}

/// The body of the `onCuePoint` data message that carries an SCTE-35 section on RTMP
/// (docs/design/signals.md, *RTMP*): the fields of the Adobe Primetime "SCTE-35 mode" cue that
/// ingest services read (`cue`, the base64 splice_info_section; `type` "scte35"; `id`;
/// `time` and `duration` in seconds on the stream's timeline, `duration` 0 when unknown) and
/// `name` "scte35", as Elemental's cue points name theirs.
pub fn scte35_cue_point(section: &[u8], id: u32, time_s: f64, duration_s: f64) -> Vec<u8> {
    let field = |k: &str, v: Value| (k.to_string(), v);
    amf0::encode_all(&[
        Value::str("onCuePoint"),
        Value::Object(vec![
            field("name", Value::str("scte35")),
            field("type", Value::str("scte35")),
            field("cue", Value::String(crate::scte35::base64(section))),
            field("id", Value::String(id.to_string())),
            field("time", Value::Number(time_s)),
            field("duration", Value::Number(duration_s)),
        ]),
    ])
}

/// Appends a whole FLV tag (header, body, PreviousTagSize) to `out`.
pub fn write_tag(out: &mut Vec<u8>, tag_type: u8, timestamp_ms: u32, body: &[u8]) {
    let size = u32::try_from(body.len()).unwrap_or(u32::MAX) & 0x00ff_ffff;
    let s = size.to_be_bytes();
    let t = timestamp_ms.to_be_bytes();
    out.extend_from_slice(&[tag_type, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(size + 11).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> TrackInfo {
        TrackInfo {
            id: 1,
            name: "240p".into(),
            timescale: 90_000,
            bitrate: 400_000,
            codec: Codec::H264 {
                avcc: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0x00],
                width: 426,
                height: 240,
            },
        }
    }

    fn audio() -> TrackInfo {
        TrackInfo {
            id: 3,
            name: "audio".into(),
            timescale: 48_000,
            bitrate: 64_000,
            codec: Codec::Aac {
                asc: vec![0x11, 0x90],
                sample_rate: 48_000,
                channels: 2,
            },
        }
    }

    #[test]
    fn sequence_headers_and_frames() {
        assert_eq!(avc_sequence_header(&[1, 2])[..5], [0x17, 0, 0, 0, 0]);
        let mut f = Vec::new();
        avc_frame_into(&mut f, false, 66, &[9, 9]);
        assert_eq!(f, [0x27, 1, 0, 0, 66, 9, 9]);
        f.clear();
        avc_frame_into(&mut f, true, -1, &[]);
        assert_eq!(f, [0x17, 1, 0xff, 0xff, 0xff]);
        assert_eq!(aac_sequence_header(&[0x11, 0x90]), [0xaf, 0, 0x11, 0x90]);
        f.clear();
        aac_frame_into(&mut f, &[7]);
        assert_eq!(f, [0xaf, 1, 7]);
    }

    #[test]
    fn metadata_names_size_and_codecs() {
        let body = metadata(Some(&video()), Some(&audio()), 30.0);
        let values = amf0::decode_all(&body).unwrap();
        assert_eq!(values[0].as_str(), Some("@setDataFrame"));
        assert_eq!(values[1].as_str(), Some("onMetaData"));
        let m = &values[2];
        assert_eq!(m.get("width").and_then(Value::as_number), Some(426.0));
        assert_eq!(m.get("height").and_then(Value::as_number), Some(240.0));
        assert_eq!(m.get("videocodecid").and_then(Value::as_number), Some(7.0));
        assert_eq!(m.get("audiocodecid").and_then(Value::as_number), Some(10.0));
        assert_eq!(
            m.get("audiosamplerate").and_then(Value::as_number),
            Some(48_000.0)
        );
    }

    #[test]
    fn a_cue_point_carries_the_section_in_base64_with_its_times() {
        let body = scte35_cue_point(&[0xFC, 0x30, 0x11], 7, 1234.5, 0.0);
        let values = amf0::decode_all(&body).unwrap();
        assert_eq!(values[0].as_str(), Some("onCuePoint"));
        let c = &values[1];
        assert_eq!(c.get("name").and_then(Value::as_str), Some("scte35"));
        assert_eq!(c.get("type").and_then(Value::as_str), Some("scte35"));
        assert_eq!(c.get("cue").and_then(Value::as_str), Some("/DAR"));
        assert_eq!(c.get("id").and_then(Value::as_str), Some("7"));
        assert_eq!(c.get("time").and_then(Value::as_number), Some(1234.5));
        assert_eq!(c.get("duration").and_then(Value::as_number), Some(0.0));
    }

    #[test]
    fn tag_header_puts_the_extended_timestamp_byte_last() {
        let mut out = Vec::new();
        write_tag(&mut out, TAG_VIDEO, 0x1234_5678, &[1, 2, 3]);
        assert_eq!(
            out,
            [
                9, 0, 0, 3, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 1, 2, 3, 0, 0, 0, 14
            ]
        );
    }
}
