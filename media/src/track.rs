//! Track descriptions and encoded samples: the values that flow from capture through the
//! timeline into the packager. Our own types, never `gst::Caps`.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::time::{MediaTime, Timescale};

/// A track's identity: its short URL-safe name (a rendition's name, or [`TrackId::AUDIO`]).
/// Cheap to clone (one shared string); it is what URLs, stream names, `/status` and the logs
/// show, so its text is an interface and never changes form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(Arc<str>);

impl TrackId {
    /// The name of the audio track (config validation keeps renditions from taking it).
    pub const AUDIO: &'static str = "audio";

    pub fn new(name: &str) -> TrackId {
        TrackId(Arc::from(name))
    }

    /// The audio track.
    pub fn audio() -> TrackId {
        TrackId::new(TrackId::AUDIO)
    }

    pub fn is_audio(&self) -> bool {
        &*self.0 == TrackId::AUDIO
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A track id reads as its name wherever a `&str` is asked for (URLs, labels, lookups).
impl std::ops::Deref for TrackId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TrackId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TrackId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TrackId {
    fn from(name: &str) -> TrackId {
        TrackId::new(name)
    }
}

impl From<String> for TrackId {
    fn from(name: String) -> TrackId {
        TrackId(Arc::from(name))
    }
}

impl PartialEq<str> for TrackId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for TrackId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

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
    /// Short URL-safe name: the rendition name, or [`TrackId::AUDIO`].
    pub name: TrackId,
    /// Units per second of every timestamp of this track (90 000 for video, the sample rate
    /// for audio by default).
    pub timescale: u32,
    /// Nominal bitrate in bits per second (for manifests and `btrt`).
    pub bitrate: u32,
    pub codec: Codec,
}

impl TrackInfo {
    /// The timescale as a type; `None` only for a description with timescale 0, which the
    /// packager never writes.
    pub fn clock(&self) -> Option<Timescale> {
        Timescale::new(self.timescale)
    }

    /// `ticks` of this track's timescale (`None` as for [`TrackInfo::clock`]).
    pub fn time(&self, ticks: u64) -> Option<MediaTime> {
        self.clock().map(|ts| MediaTime::new(ticks, ts))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn track_ids_compare_and_look_up_by_name() {
        let audio = TrackId::audio();
        assert!(audio.is_audio());
        assert_eq!(audio, "audio");
        assert_eq!(audio.to_string(), "audio");
        assert_eq!(format!("{audio:?}"), "\"audio\"");
        let v = TrackId::from("720p");
        assert!(!v.is_audio());
        let mut by_id = HashMap::new();
        by_id.insert(v.clone(), 1);
        assert_eq!(by_id.get("720p"), Some(&1));
        assert_eq!(TrackId::from(String::from("720p")), v);
    }
}
