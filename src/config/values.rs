//! Value types of the configuration: closed sets of names (enums), frame rates, audio inputs,
//! listen addresses and byte sizes, each with a parser whose error names the legal values.

use std::fmt;
use std::net::SocketAddr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use twincast_media::timeline::FrameRate;

use super::diagnostic::legal;

/// Declares a closed set of names: the enum, its names, `as_str`, `Display`, `FromStr`-like
/// `parse` and a `Deserialize` whose error lists the legal values.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every legal name, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            /// Every variant, in the same order as `NAMES`.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The configuration spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the configuration spelling; the error lists the legal values.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " \"{}\" (legal values: {})"),
                        s,
                        legal(Self::NAMES)
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(D::Error::custom)
            }
        }
    };
}

choice!(
    /// What the box captures (`input.kind`).
    InputKind, "input kind", {
        /// Test pattern (videotestsrc), runs anywhere.
        Test = "test",
        /// A V4L2 camera or capture card (`input.device`).
        V4l2 = "v4l2",
        /// A media file, looped (`input.uri` is its path).
        File = "file",
        /// An RTSP camera or encoder (`input.uri` = rtsp://…).
        Rtsp = "rtsp",
        /// MPEG-TS over RTP (`input.uri` = rtp://0.0.0.0:5004; a `udp://` uri is plain MPEG-TS,
        /// as in configs written before kind `udp`).
        Rtp = "rtp",
        /// Plain MPEG-TS over UDP, unicast or multicast (`input.uri` = udp://239.1.1.1:5000).
        Udp = "udp",
        /// MPEG-TS over SRT, caller or listener (`input.uri` =
        /// srt://0.0.0.0:9000?mode=listener&latency=120; `passphrase_file`).
        Srt = "srt",
    }
);

choice!(
    /// H.264 encoder of a rendition (`rendition.encoder`).
    EncoderKind, "encoder", {
        /// The best available on this box (hardware first, then x264, then openh264).
        Auto = "auto",
        X264 = "x264",
        Openh264 = "openh264",
        Vaapi = "vaapi",
        V4l2 = "v4l2",
        Nvv4l2 = "nvv4l2",
    }
);

choice!(
    /// What timecode the video carries (`timeline.timecode`).
    TimecodeKind, "timecode", {
        /// An H.264 picture timing SEI on every access unit: the frame's UTC time of day
        /// (docs/design/signals.md, *Timecode*).
        Epoch = "epoch",
        /// No picture timing SEI is added (what the encoder writes passes unchanged).
        Off = "none",
    }
);

choice!(
    /// What becomes of the source's closed captions (`input.captions`).
    CaptionsMode, "captions", {
        /// CEA-608/708 captions in the source's H.264 SEI go into every rendition, on the
        /// frame of the source picture that carried them (docs/design/signals.md, *Captions*).
        Passthrough = "passthrough",
        /// The source's captions are dropped (counted in `/status` `captions`).
        None = "none",
    }
);

choice!(
    /// Ingest protocol of an output (`output.protocol`).
    Protocol, "protocol", {
        /// RTMP/RTMPS, one publish per rendition.
        Rtmp = "rtmp",
        /// Smooth Streaming (Azure fragmented-MP4) live ingest over HTTP(S).
        Smooth = "smooth",
        /// DASH-IF Live Media Ingest Interface-1 (CMAF) over HTTP(S).
        Cmaf = "cmaf",
    }
);

choice!(
    /// RTMP timestamp base (`output.rtmp_timestamps`).
    RtmpTimestamps, "rtmp_timestamps", {
        /// Epoch milliseconds modulo 2^32: both boxes of a pair send identical timestamps.
        Epoch = "epoch",
        /// Start at zero with each publish.
        Zero = "zero",
    }
);

choice!(
    /// HTTP method for CMAF ingest segments (`output.method`).
    HttpMethod, "method", {
        Post = "POST",
        Put = "PUT",
    }
);

choice!(
    /// Which receiver's path rules a `cmaf` output follows (`output.profile`);
    /// docs/guide/publishing.md has a table per receiver.
    CmafProfile, "profile", {
        /// DASH-IF Live Media Ingest: every object of track `T` to `<url>/Streams(T)`.
        Generic = "generic",
        /// AWS Elemental MediaPackage v2 CMAF ingest: `<url>/Streams(T.cmfv)` (`.cmfa` audio).
        MediapackageV2 = "mediapackage-v2",
        /// Unified Origin: `<publishing point>.isml/Streams(T.cmfv)` (`.cmfa` audio).
        Unified = "unified",
        /// Akamai MSL5: `<url>/T-init.mp4`, then `<url>/T-<n>.m4s`.
        AkamaiMsl5 = "akamai-msl5",
        /// AWS Elemental Inference: `Streams(default-video.cmfv)/InitializationSegment`, then
        /// `…/Segment(<n>)`, n = the `mfhd` sequence number.
        ElementalInference = "elemental-inference",
    }
);

impl Protocol {
    /// URL schemes this protocol accepts.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Protocol::Rtmp => &["rtmp", "rtmps"],
            Protocol::Smooth | Protocol::Cmaf => &["http", "https"],
        }
    }
}

/// What each protocol takes of an `[[output]]` beyond the keys every output has
/// (`Output::settings`, src/config/mod.rs); validation matches on it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputSettings<'a> {
    /// `rtmp`: the stream name prefix and where timestamps start.
    Rtmp {
        stream: Option<&'a str>,
        timestamps: RtmpTimestamps,
    },
    /// `smooth`: nothing more.
    Smooth,
    /// `cmaf`: the HTTP method of segments and the receiver profile.
    Cmaf {
        method: HttpMethod,
        profile: CmafProfile,
    },
}

/// Frame rate as an exact fraction num/den frames per second ("30/1", "30000/1001", "25").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRateSpec {
    pub num: u32,
    pub den: u32,
}

/// Highest frame rate accepted.
pub const MAX_FRAMERATE: u32 = 240;

impl FrameRateSpec {
    /// Parses "N/D" or "N"; both positive, at most 240 fps.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid framerate \"{s}\" (legal forms: \"N/D\" or \"N\", e.g. \"30/1\", \"30000/1001\", \"25\")"
            )
        };
        let (num, den) = match s.trim().split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (s.trim(), "1"),
        };
        let num: u32 = num.parse().map_err(|_| bad())?;
        let den: u32 = den.parse().map_err(|_| bad())?;
        if num == 0 || den == 0 {
            return Err(format!(
                "invalid framerate \"{s}\": numerator and denominator must be > 0"
            ));
        }
        if u64::from(num) > u64::from(den) * u64::from(MAX_FRAMERATE) {
            return Err(format!("framerate \"{s}\" is above {MAX_FRAMERATE} fps"));
        }
        Ok(FrameRateSpec { num, den })
    }

    /// Frames per second, for display.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The media crate's frame rate, which the grid counts in (`None` only for a zero
    /// numerator or denominator, which [`FrameRateSpec::parse`] refuses).
    pub fn frame_rate(self) -> Option<FrameRate> {
        FrameRate::new(self.num, self.den)
    }
}

impl fmt::Display for FrameRateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl<'de> Deserialize<'de> for FrameRateSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            D::Error::custom("framerate must be a string \"N/D\" or \"N\" (e.g. \"30/1\", \"30000/1001\", \"25\")")
        })? {
            Raw::Int(n) => Self::parse(&n.to_string()),
            Raw::Text(s) => Self::parse(&s),
        }
        .map_err(D::Error::custom)
    }
}

/// Where the audio comes from (`input.audio`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AudioInput {
    /// A test tone.
    Test,
    /// No audio track.
    None,
    /// The audio carried by the input (file, rtsp, rtp).
    Input,
    /// An ALSA capture device, e.g. `alsa:hw:1,0`.
    Alsa(String),
}

impl AudioInput {
    pub const NAMES: &'static [&'static str] = &["test", "none", "input", "alsa:<device>"];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "test" => Ok(AudioInput::Test),
            "none" => Ok(AudioInput::None),
            "input" => Ok(AudioInput::Input),
            _ => match s.strip_prefix("alsa:") {
                Some(dev) if !dev.trim().is_empty() => Ok(AudioInput::Alsa(dev.to_string())),
                Some(_) => Err("audio \"alsa:\" needs a device, e.g. \"alsa:hw:1,0\"".to_string()),
                None => Err(format!(
                    "unknown audio input \"{s}\" (legal values: {})",
                    legal(Self::NAMES)
                )),
            },
        }
    }
}

impl fmt::Display for AudioInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioInput::Test => f.write_str("test"),
            AudioInput::None => f.write_str("none"),
            AudioInput::Input => f.write_str("input"),
            AudioInput::Alsa(dev) => write!(f, "alsa:{dev}"),
        }
    }
}

impl<'de> Deserialize<'de> for AudioInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(D::Error::custom)
    }
}

/// Parses a listen address `IP:port` (IPv6 in brackets).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid listen address \"{s}\" (legal form: IP:port, e.g. \"127.0.0.1:8080\", \"0.0.0.0:8080\", \"[::1]:8080\")")
    })
}

/// `deserialize_with` for a listen address.
pub fn deserialize_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_listen(&s).map_err(D::Error::custom)
}

/// Parses a byte size: an integer, or a string with a unit ("2GiB", "500MB", "1024").
pub fn parse_size(s: &str) -> Result<u64, String> {
    const UNITS: &[(&str, u64)] = &[
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("kB", 1_000),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
        ("B", 1),
        ("", 1),
    ];
    let text = s.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || {
        format!(
            "invalid size \"{s}\" (legal forms: bytes as an integer, or a number with a unit: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit.trim()) else {
        return Err(bad());
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size \"{s}\" is too large"))
}

/// `deserialize_with` for a byte size (integer or string with a unit).
pub fn deserialize_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        D::Error::custom("size must be a non-negative integer (bytes) or a string such as \"2GiB\"")
    })? {
        Raw::Int(n) => Ok(n),
        Raw::Text(s) => parse_size(&s).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_list_legal_values() {
        assert_eq!(EncoderKind::parse("x264"), Ok(EncoderKind::X264));
        let e = EncoderKind::parse("x265").unwrap_err();
        assert!(
            e.contains("legal values: auto, x264, openh264, vaapi, v4l2, nvv4l2"),
            "{e}"
        );
        assert_eq!(HttpMethod::parse("PUT"), Ok(HttpMethod::Put));
        assert_eq!(
            CmafProfile::parse("akamai-msl5"),
            Ok(CmafProfile::AkamaiMsl5)
        );
        let e = CmafProfile::parse("azure").unwrap_err();
        assert!(
            e.contains(
                "legal values: generic, mediapackage-v2, unified, akamai-msl5, elemental-inference"
            ),
            "{e}"
        );
        for k in InputKind::ALL {
            assert_eq!(InputKind::parse(k.as_str()), Ok(*k));
        }
    }

    #[test]
    fn framerates() {
        assert_eq!(
            FrameRateSpec::parse("30/1"),
            Ok(FrameRateSpec { num: 30, den: 1 })
        );
        assert_eq!(
            FrameRateSpec::parse("30000/1001"),
            Ok(FrameRateSpec {
                num: 30000,
                den: 1001
            })
        );
        assert_eq!(
            FrameRateSpec::parse("25"),
            Ok(FrameRateSpec { num: 25, den: 1 })
        );
        for bad in [
            "", "30/0", "0/1", "abc", "30/1/1", "29.97", "1000/1", "-30/1",
        ] {
            assert!(FrameRateSpec::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn audio_inputs() {
        assert_eq!(
            AudioInput::parse("alsa:hw:1,0"),
            Ok(AudioInput::Alsa("hw:1,0".into()))
        );
        assert_eq!(AudioInput::parse("none"), Ok(AudioInput::None));
        assert!(AudioInput::parse("alsa:").is_err());
        assert!(
            AudioInput::parse("pulse")
                .unwrap_err()
                .contains("legal values")
        );
    }

    #[test]
    fn listen_and_size() {
        assert!(parse_listen("127.0.0.1:8080").is_ok());
        assert!(parse_listen("[::1]:9090").is_ok());
        assert!(parse_listen("localhost:8080").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("2 GB").is_ok());
        assert!(parse_size("2XB").is_err());
        assert!(parse_size("GiB").is_err());
    }
}
