//! Track descriptions and encoded samples: the values that flow from capture through the
//! timeline into the packager. Our own types, never `gst::Caps`.

/// What kind of media a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// Codec configuration of a track, as needed to write an init segment and a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264; `avcc` is the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), exactly
    /// the body of the `avcC` box. Samples are length-prefixed (4-byte) NAL units.
    H264 {
        avcc: Vec<u8>,
        width: u32,
        height: u32,
    },
    /// AAC; `asc` is the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1). Samples are raw AAC
    /// frames of 1024 samples, without ADTS headers.
    Aac {
        asc: Vec<u8>,
        sample_rate: u32,
        channels: u16,
    },
}

/// One track of the output: a video rendition or the audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Track ID in the init segment and fragments (1-based).
    pub id: u32,
    /// Short URL-safe name: the rendition name, or "audio".
    pub name: String,
    /// Units per second of every timestamp of this track (90 000 for video, the sample rate
    /// for audio by default).
    pub timescale: u32,
    /// Nominal bitrate in bits per second (for manifests and `btrt`).
    pub bitrate: u32,
    pub codec: Codec,
}

impl TrackInfo {
    pub fn kind(&self) -> TrackKind {
        match self.codec {
            Codec::H264 { .. } => TrackKind::Video,
            Codec::Aac { .. } => TrackKind::Audio,
        }
    }
}

/// One encoded access unit, with timestamps already on the epoch timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in the track timescale since 1970-01-01T00:00:00Z.
    pub dts: u64,
    /// Duration in the track timescale.
    pub duration: u32,
    /// Presentation minus decode time (0 without B-frames).
    pub cts_offset: i32,
    /// A sync sample (IDR for H.264; every AAC frame is one).
    pub keyframe: bool,
    /// Sample bytes: 4-byte length-prefixed NAL units for H.264, a raw AAC frame for AAC.
    pub data: Vec<u8>,
}
