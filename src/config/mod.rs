//! Configuration: TOML file → validated [`Config`] (docs/design/config.md, reference in
//! `docs/ref/config.md`).
//!
//! A one-way pipeline, run by [`parse_str`]; each pass collects every finding before the next,
//! and no pass imports a later one:
//!
//! 1. `syntax.rs`: TOML text → a document whose keys and values carry their spans.
//! 2. `sections.rs`: each section (and every `[[rendition]]` / `[[output]]` element) is
//!    deserialized on its own into the structs of this file, and a section with an error is
//!    retried without the offending key, so that one run of `twincast check-config` reports
//!    every error at once.
//! 3. `validate/`: the semantic checks, each looking up the position of the offending key in
//!    the spanned document (`spans.rs`).
//!
//! Each finding is printed as `path:line:column: error: message (legal values: …)`
//! (`diagnostic.rs`). The values every pass shares (`values.rs`, `duration.rs`, `allow.rs`,
//! `url.rs`, `profile.rs`, `input_uri.rs`: the input URIs the network input parses too) import
//! none of the passes.

mod allow;
mod diagnostic;
mod duration;
pub mod input_uri;
mod profile;
mod sections;
mod spans;
mod syntax;
mod url;
mod validate;
mod values;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

pub use allow::AllowEntry;
pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use duration::{format_duration, parse_duration};
pub use url::{expand_url, register_url_secrets, sanitize_url};
pub use values::{
    AudioInput, CaptionsMode, CmafProfile, EncoderKind, FrameRateSpec, HttpMethod, InputKind,
    OutputSettings, Protocol, RtmpTimestamps, TimecodeKind, parse_listen, parse_size,
};

/// sysexits EX_CONFIG: the configuration is invalid or unreadable.
pub const EXIT_CONFIG: u8 = crate::exit::EX_CONFIG;

/// `encoder.name` when not set.
pub const DEFAULT_ENCODER_NAME: &str = "twincast";
/// `encoder.pair` when not set.
pub const DEFAULT_PAIR: &str = "twincast";
/// `input.kind` when not set.
pub const DEFAULT_INPUT_KIND: InputKind = InputKind::Test;
/// `input.width` when not set.
pub const DEFAULT_INPUT_WIDTH: u32 = 1280;
/// `input.height` when not set.
pub const DEFAULT_INPUT_HEIGHT: u32 = 720;
/// `input.framerate` when not set.
pub const DEFAULT_FRAMERATE: FrameRateSpec = FrameRateSpec { num: 30, den: 1 };
/// `input.slate_after` when not set.
pub const DEFAULT_SLATE_AFTER: Duration = Duration::from_millis(500);
/// `input.slate` when not set: the built-in card.
pub const DEFAULT_SLATE: &str = "builtin";
/// `input.latency` when not set: the RTP reorder window, enough for a LAN or a metro link.
pub const DEFAULT_INPUT_LATENCY: Duration = Duration::from_millis(50);
/// `timeline.gop` when not set.
pub const DEFAULT_GOP: Duration = Duration::from_secs(2);
/// `timeline.fragment_gops` when not set.
pub const DEFAULT_FRAGMENT_GOPS: u32 = 1;
/// `rendition.encoder` when not set.
pub const DEFAULT_ENCODER: EncoderKind = EncoderKind::Auto;
/// `audio.bitrate_kbps` when not set.
pub const DEFAULT_AUDIO_BITRATE_KBPS: u32 = 128;
/// `audio.sample_rate` when not set.
pub const DEFAULT_AUDIO_SAMPLE_RATE: u32 = 48_000;
/// `audio.channels` when not set.
pub const DEFAULT_AUDIO_CHANNELS: u16 = 2;
/// `origin.listen` when not set.
pub const DEFAULT_ORIGIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// `origin.dvr_window` when not set.
pub const DEFAULT_DVR_WINDOW: Duration = Duration::from_secs(10 * 60);
/// `origin.dvr_ram` when not set: five 6 s segments, what live players read.
pub const DEFAULT_DVR_RAM: Duration = Duration::from_secs(30);
/// `origin.dvr_ram_max_bytes` when not set (64 MiB per track).
pub const DEFAULT_DVR_RAM_MAX_BYTES: u64 = 64 << 20;
/// `encoder.state_dir` when not set and not run by systemd with `StateDirectory=`
/// (`src/state_dir.rs`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/twincast";
/// `origin.dvr_dir` when not set, under the state directory.
pub const DVR_SUBDIR: &str = "dvr";
/// `origin.dvr_max_bytes` when not set (2 GiB).
pub const DEFAULT_DVR_MAX_BYTES: u64 = 2 << 30;
/// `publish.memory` when not set: one budget for every output's backlog, sized for a small
/// ARM box (docs/ref/config.md, *`[publish]`*).
pub const DEFAULT_PUBLISH_MEMORY: u64 = 192 << 20;
/// `control.listen` when not set.
pub const DEFAULT_CONTROL_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// `control.heartbeat` when not set.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// `output.backlog` when not set.
pub const DEFAULT_BACKLOG: Duration = Duration::from_secs(30);
/// `output.rtmp_timestamps` when not set.
pub const DEFAULT_RTMP_TIMESTAMPS: RtmpTimestamps = RtmpTimestamps::Epoch;
/// `output.method` when not set.
pub const DEFAULT_HTTP_METHOD: HttpMethod = HttpMethod::Post;
/// `output.profile` when not set.
pub const DEFAULT_CMAF_PROFILE: CmafProfile = CmafProfile::Generic;

/// The whole configuration file. Only `[[rendition]]` is required; other sections take their
/// defaults when omitted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[encoder]`: who this box is.
    #[serde(default)]
    pub encoder: EncoderSection,
    /// `[input]`: what is captured.
    #[serde(default)]
    pub input: InputSection,
    /// `[timeline]`: GOP and fragment grid.
    #[serde(default)]
    pub timeline: TimelineSection,
    /// `[[rendition]]`: the video ladder, at least one.
    pub rendition: Vec<Rendition>,
    /// `[audio]`: the AAC track.
    #[serde(default)]
    pub audio: AudioSection,
    /// `[origin]`: the local HLS/DASH origin.
    #[serde(default)]
    pub origin: OriginSection,
    /// `[control]`: status, metrics and events listener.
    #[serde(default)]
    pub control: ControlSection,
    /// `[publish]`: what every output shares.
    #[serde(default)]
    pub publish: PublishSection,
    /// `[[output]]`: ingest services, any number.
    #[serde(default)]
    pub output: Vec<Output>,
}

/// `[publish]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSection {
    /// Bytes every output's backlog may hold together (integer, or "192MiB"); when reached,
    /// the oldest whole fragments of the destination furthest behind are dropped first.
    #[serde(deserialize_with = "values::deserialize_size")]
    pub memory: u64,
}

impl Default for PublishSection {
    fn default() -> Self {
        PublishSection {
            memory: DEFAULT_PUBLISH_MEMORY,
        }
    }
}

/// `[encoder]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderSection {
    /// This box's name; shown in logs, status and metrics.
    pub name: String,
    /// Name of the redundant pair; both boxes of a pair use the same value.
    pub pair: String,
    /// Folder of this daemon's state (the DVR unless `origin.dvr_dir` says otherwise), locked
    /// while it runs; `None`: systemd's `$STATE_DIRECTORY`, else `/var/lib/twincast`.
    pub state_dir: Option<PathBuf>,
}

impl Default for EncoderSection {
    fn default() -> Self {
        EncoderSection {
            name: DEFAULT_ENCODER_NAME.into(),
            pair: DEFAULT_PAIR.into(),
            state_dir: None,
        }
    }
}

/// `[input]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputSection {
    /// Source kind: test | v4l2 | file | rtsp | rtp | udp | srt.
    pub kind: InputKind,
    /// V4L2 device node (required for `v4l2`), e.g. `/dev/video0`.
    pub device: Option<String>,
    /// Source URI (required for `file`, `rtsp`, `rtp`, `udp`, `srt`): a path for file, `rtsp://…`,
    /// `rtp://0.0.0.0:5004`, `udp://239.1.1.1:5000`, `srt://0.0.0.0:9000?mode=listener`.
    pub uri: Option<String>,
    /// Source picture width in pixels (even).
    pub width: u32,
    /// Source picture height in pixels (even).
    pub height: u32,
    /// Frame rate "N/D" or "N".
    pub framerate: FrameRateSpec,
    /// Audio source: test | none | input | alsa:<device>.
    pub audio: AudioInput,
    /// Input silent this long → slate (filler) until it returns.
    #[serde(deserialize_with = "duration::deserialize")]
    pub slate_after: Duration,
    /// What the encoders get while the input is lost: `builtin` (a card with this box's name,
    /// the lost input and the UTC time) or the path of a PNG or JPEG picture, scaled to the
    /// source size. Audio is silence either way.
    pub slate: String,
    /// `[input.backup]`: a second source that feeds the encoders while this one is lost.
    pub backup: Option<BackupSection>,
    /// `rtp`: how long a packet after a gap waits for the missing ones (the reorder window).
    #[serde(deserialize_with = "duration::deserialize")]
    pub latency: Duration,
    /// `srt`: file holding the SRT passphrase (else the credential `twincast_srt`, else none).
    pub passphrase_file: Option<PathBuf>,
    /// The source's CEA-608/708 captions: passthrough | none.
    pub captions: CaptionsMode,
}

/// `input.backup.hold` when not set.
pub const DEFAULT_BACKUP_HOLD: Duration = Duration::from_secs(10);

/// `[input.backup]`: the backup input. It is scaled to the `[input]` size and feeds the same
/// grid; with `[input] audio = "input"` its own audio is used while it is on air.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Source kind: test | v4l2 | file | rtsp | rtp | udp | srt.
    pub kind: InputKind,
    /// V4L2 device node (required for `v4l2`).
    #[serde(default)]
    pub device: Option<String>,
    /// Source URI (required for `file`, `rtsp`, `rtp`, `udp`, `srt`), as in `[input]`.
    #[serde(default)]
    pub uri: Option<String>,
    /// The primary must deliver pictures without a loss this long before it is taken back.
    #[serde(
        default = "default_backup_hold",
        deserialize_with = "duration::deserialize"
    )]
    pub hold: Duration,
}

fn default_backup_hold() -> Duration {
    DEFAULT_BACKUP_HOLD
}

impl Default for InputSection {
    fn default() -> Self {
        InputSection {
            kind: DEFAULT_INPUT_KIND,
            device: None,
            uri: None,
            width: DEFAULT_INPUT_WIDTH,
            height: DEFAULT_INPUT_HEIGHT,
            framerate: DEFAULT_FRAMERATE,
            audio: AudioInput::Test,
            slate_after: DEFAULT_SLATE_AFTER,
            slate: DEFAULT_SLATE.into(),
            backup: None,
            latency: DEFAULT_INPUT_LATENCY,
            passphrase_file: None,
            captions: CaptionsMode::Passthrough,
        }
    }
}

/// `[timeline]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimelineSection {
    /// GOP duration; a whole number of frames, identical for every rendition.
    #[serde(deserialize_with = "duration::deserialize")]
    pub gop: Duration,
    /// GOPs per fragment (≥ 1).
    pub fragment_gops: u32,
    /// The epoch timecode in the video, or none.
    pub timecode: TimecodeKind,
}

impl Default for TimelineSection {
    fn default() -> Self {
        TimelineSection {
            gop: DEFAULT_GOP,
            fragment_gops: DEFAULT_FRAGMENT_GOPS,
            timecode: TimecodeKind::Epoch,
        }
    }
}

impl TimelineSection {
    /// Fragment duration: `gop × fragment_gops`.
    pub fn fragment(&self) -> Duration {
        self.gop.saturating_mul(self.fragment_gops)
    }
}

/// One `[[rendition]]` of the video ladder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// URL-safe name ([A-Za-z0-9_-]+, not "audio"), unique; used in origin URLs and stream names.
    pub name: String,
    /// Width in pixels (even, ≤ the input width).
    pub width: u32,
    /// Height in pixels (even, ≤ the input height).
    pub height: u32,
    /// Video bitrate in kbit/s (50..=100000).
    pub bitrate_kbps: u32,
    /// H.264 encoder: auto | x264 | openh264 | vaapi | v4l2 | nvv4l2.
    #[serde(default = "default_encoder")]
    pub encoder: EncoderKind,
}

fn default_encoder() -> EncoderKind {
    DEFAULT_ENCODER
}

/// `[audio]`: the AAC track.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSection {
    /// AAC bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Sample rate in Hz (8000, 16000, 22050, 24000, 32000, 44100, 48000).
    pub sample_rate: u32,
    /// Channel count (1..=8).
    pub channels: u16,
}

impl Default for AudioSection {
    fn default() -> Self {
        AudioSection {
            bitrate_kbps: DEFAULT_AUDIO_BITRATE_KBPS,
            sample_rate: DEFAULT_AUDIO_SAMPLE_RATE,
            channels: DEFAULT_AUDIO_CHANNELS,
        }
    }
}

/// `[origin]`: the local HTTP origin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSection {
    /// Listen address IP:port.
    #[serde(deserialize_with = "values::deserialize_listen")]
    pub listen: SocketAddr,
    /// DVR window (time-shift depth), 5m..=25h.
    #[serde(deserialize_with = "duration::deserialize")]
    pub dvr_window: Duration,
    /// Clients allowed; empty means anyone.
    pub allow: Vec<AllowEntry>,
    /// Fragments per HLS segment; `None` follows the GOP rule (≤3 s → 3, ≤5 s → 2, else 1).
    pub segment_fragments: Option<u32>,
    /// Directory for the on-disk part of the DVR window (absolute); `None`: `dvr` under the
    /// state directory (`encoder.state_dir`).
    pub dvr_dir: Option<PathBuf>,
    /// Upper bound of the on-disk DVR in bytes (integer, or "2GiB").
    #[serde(deserialize_with = "values::deserialize_size")]
    pub dvr_max_bytes: u64,
    /// Age of the newest part of the window served from RAM; older segments come from disk.
    #[serde(deserialize_with = "duration::deserialize")]
    pub dvr_ram: Duration,
    /// Upper bound of the RAM part per track in bytes (integer, or "64MiB").
    #[serde(deserialize_with = "values::deserialize_size")]
    pub dvr_ram_max_bytes: u64,
}

impl Default for OriginSection {
    fn default() -> Self {
        OriginSection {
            listen: DEFAULT_ORIGIN_LISTEN,
            dvr_window: DEFAULT_DVR_WINDOW,
            allow: Vec::new(),
            segment_fragments: None,
            dvr_dir: None,
            dvr_max_bytes: DEFAULT_DVR_MAX_BYTES,
            dvr_ram: DEFAULT_DVR_RAM,
            dvr_ram_max_bytes: DEFAULT_DVR_RAM_MAX_BYTES,
        }
    }
}

/// `[control]`: status, metrics and events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Listen address IP:port.
    #[serde(deserialize_with = "values::deserialize_listen")]
    pub listen: SocketAddr,
    /// Interval of the per-track heartbeat event.
    #[serde(deserialize_with = "duration::deserialize")]
    pub heartbeat: Duration,
    /// Clients allowed; empty means anyone who can reach the listener.
    pub allow: Vec<AllowEntry>,
    /// File holding the token that requests which change state (`POST /reload`) must carry
    /// as `Authorization: Bearer <token>`; unset: the `control-token` credential
    /// (`$CREDENTIALS_DIRECTORY/control-token`), and without either such requests are refused.
    pub token_file: Option<PathBuf>,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            listen: DEFAULT_CONTROL_LISTEN,
            heartbeat: DEFAULT_HEARTBEAT,
            allow: Vec::new(),
            token_file: None,
        }
    }
}

/// One `[[output]]`: an ingest service pushed to a primary and an optional secondary URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Unique name; shown in logs, status and metrics.
    pub name: String,
    /// rtmp | smooth | cmaf.
    pub protocol: Protocol,
    /// Primary ingest URL (rtmp://, rtmps:// for rtmp; http://, https:// for smooth and cmaf).
    pub primary: String,
    /// Secondary ingest URL, same scheme rules; pushed at the same time, independently.
    #[serde(default)]
    pub secondary: Option<String>,
    /// RTMP stream name prefix; stream names are `<stream>_<rendition>`.
    #[serde(default)]
    pub stream: Option<String>,
    /// File holding the output's key (absolute path, mode 0600): put in place of `{key}` in the
    /// URLs, else appended to the RTMP stream name / sent as `Authorization: Bearer`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Subset of renditions to push; `None` = all.
    #[serde(default)]
    pub renditions: Option<Vec<String>>,
    /// Undelivered data kept per destination for resend after a reconnect.
    #[serde(
        default = "default_backlog",
        deserialize_with = "duration::deserialize"
    )]
    pub backlog: Duration,
    /// RTMP timestamps: epoch | zero.
    #[serde(default = "default_rtmp_timestamps")]
    pub rtmp_timestamps: RtmpTimestamps,
    /// HTTP method of CMAF ingest segments: POST | PUT.
    #[serde(default = "default_http_method")]
    pub method: HttpMethod,
    /// CMAF ingest receiver whose path rules to follow: generic | mediapackage-v2 | unified |
    /// akamai-msl5 | elemental-inference.
    #[serde(default = "default_cmaf_profile")]
    pub profile: CmafProfile,
    /// SCTE-35 signals also on a track of their own: Smooth's sparse track, CMAF ingest's
    /// timed-metadata track. Unset: on for smooth, off for cmaf ([`Output::event_track`]).
    #[serde(default)]
    pub event_track: Option<bool>,
}

fn default_backlog() -> Duration {
    DEFAULT_BACKLOG
}

fn default_rtmp_timestamps() -> RtmpTimestamps {
    DEFAULT_RTMP_TIMESTAMPS
}

fn default_http_method() -> HttpMethod {
    DEFAULT_HTTP_METHOD
}

fn default_cmaf_profile() -> CmafProfile {
    DEFAULT_CMAF_PROFILE
}

impl Output {
    /// Primary and (if set) secondary URL, in that order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.as_str()).chain(self.secondary.as_deref())
    }

    /// Whether the output sends its SCTE-35 signals on a track of their own
    /// (docs/design/signals.md, *Smooth* and *CMAF*): `event_track`, by default on for smooth
    /// (the sparse track is how Smooth ingest carries them) and off for cmaf (the `emsg`s in
    /// the video segments carry them; the timed-metadata track is for receivers that want it).
    pub fn event_track(&self) -> bool {
        match self.protocol {
            Protocol::Rtmp => false,
            Protocol::Smooth => self.event_track.unwrap_or(true),
            Protocol::Cmaf => self.event_track.unwrap_or(false),
        }
    }

    /// The output's protocol with the keys only that protocol uses.
    pub fn settings(&self) -> OutputSettings<'_> {
        match self.protocol {
            Protocol::Rtmp => OutputSettings::Rtmp {
                stream: self.stream.as_deref(),
                timestamps: self.rtmp_timestamps,
            },
            Protocol::Smooth => OutputSettings::Smooth,
            Protocol::Cmaf => OutputSettings::Cmaf {
                method: self.method,
                profile: self.profile,
            },
        }
    }
}

/// A valid configuration and the warnings found while checking it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Sorted by position.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(ConfigErrors {
            path: path.to_path_buf(),
            errors: vec![Diagnostic {
                path: path.to_path_buf(),
                line: None,
                column: None,
                severity: Severity::Error,
                message: format!("cannot read configuration file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Checks configuration text; `path_for_messages` is only used in diagnostics.
pub fn parse_str(text: &str, path_for_messages: &Path) -> Result<Loaded, ConfigErrors> {
    let (config, report) = check(text);
    if let Some(c) = &config {
        register_secrets(c);
    }
    let failed = report.has_errors();
    let (errors, warnings) = report.finish(path_for_messages, text);
    match config {
        Some(config) if !failed => Ok(Loaded { config, warnings }),
        _ => Err(ConfigErrors {
            path: path_for_messages.to_path_buf(),
            errors,
            warnings,
        }),
    }
}

/// The three passes over `text`; the config is `None` only when the TOML syntax is broken.
fn check(text: &str) -> (Option<Config>, diagnostic::Report) {
    let mut report = diagnostic::Report::default();
    let Some(doc) = syntax::parse(text, &mut report) else {
        return (None, report);
    };
    let (config, sections) = sections::read(&doc, &mut report);
    validate::validate(&config, &sections, &mut report);
    (Some(config), report)
}

/// Registers the secret parts of every configured URL with the redactor (src/secrets.rs).
fn register_secrets(c: &Config) {
    for o in &c.output {
        o.urls().for_each(register_url_secrets);
    }
    let backup = c.input.backup.as_ref().and_then(|b| b.uri.as_ref());
    for uri in c.input.uri.iter().chain(backup) {
        register_url_secrets(uri);
    }
}

/// `twincast check-config PATH`: prints every error and warning (stderr) and a summary;
/// exit 0 when valid (warnings allowed), 78 when invalid or unreadable.
pub fn check_config_cli(path: &Path) -> ExitCode {
    match load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: configuration is valid ({}, {})",
                path.display(),
                diagnostic::plural(loaded.config.rendition.len(), "rendition"),
                diagnostic::plural(loaded.warnings.len(), "warning")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for d in errors.all() {
                eprintln!("{d}");
            }
            eprintln!("{}", errors.summary());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/twincast.toml");

    fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(text, Path::new("t.toml"))
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        }
    }

    const ONE: &str =
        "[[rendition]]\nname = \"a\"\nwidth = 640\nheight = 360\nbitrate_kbps = 600\n";

    #[test]
    fn shipped_config_key_for_key() {
        let loaded = parse(SHIPPED).unwrap();
        assert!(loaded.warnings.is_empty());
        let c = loaded.config;
        assert_eq!(c.encoder.name, "hall-a");
        assert_eq!(c.encoder.pair, "main-hall");
        assert_eq!(c.input.kind, InputKind::Test);
        assert_eq!((c.input.width, c.input.height), (1280, 720));
        assert_eq!(c.input.framerate, FrameRateSpec { num: 30, den: 1 });
        assert_eq!(c.input.audio, AudioInput::Test);
        assert_eq!(c.input.slate_after, Duration::from_millis(500));
        assert_eq!(c.timeline.gop, Duration::from_secs(2));
        assert_eq!(c.timeline.fragment_gops, 1);
        let names: Vec<&str> = c.rendition.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p", "480p", "360p"]);
        assert_eq!(c.rendition[0].encoder, EncoderKind::Auto);
        assert_eq!(
            (c.rendition[1].width, c.rendition[1].bitrate_kbps),
            (854, 1200)
        );
        assert_eq!(c.audio, AudioSection::default());
        assert_eq!(c.origin.listen, DEFAULT_ORIGIN_LISTEN);
        assert_eq!(c.origin.dvr_window, Duration::from_secs(600));
        assert!(c.origin.allow.is_empty());
        assert_eq!(c.control.listen, DEFAULT_CONTROL_LISTEN);
        assert_eq!(c.control.heartbeat, Duration::from_secs(20));
        assert!(c.output.is_empty());
    }

    #[test]
    fn commented_output_of_the_shipped_file_is_valid() {
        let uncommented: String = SHIPPED
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|_| l.contains('=') || l.contains("[[output]]"))
            })
            .map(|l| l.map(str::to_string).unwrap_or_default())
            .filter(|l| !l.starts_with("device") && !l.starts_with("uri"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("{SHIPPED}\n{uncommented}\n");
        let c = parse(&text).unwrap().config;
        let o = &c.output[0];
        assert_eq!(o.protocol, Protocol::Rtmp);
        assert_eq!(
            o.secondary.as_deref(),
            Some("rtmp://ingest-b.example.net/live")
        );
        assert_eq!(
            o.renditions.as_deref(),
            Some(&["720p".to_string(), "480p".to_string()][..])
        );
        assert_eq!(
            o.key_file.as_deref(),
            Some(Path::new("/etc/twincast/keys/cloud"))
        );
        assert_eq!(o.backlog, DEFAULT_BACKLOG);
        assert_eq!(o.rtmp_timestamps, RtmpTimestamps::Epoch);
    }

    #[test]
    fn omitted_sections_take_defaults() {
        let c = parse(ONE).unwrap().config;
        assert_eq!(c.encoder, EncoderSection::default());
        assert_eq!(c.input, InputSection::default());
        assert_eq!(c.timeline, TimelineSection::default());
        assert_eq!(c.origin, OriginSection::default());
        assert_eq!(c.origin.dvr_dir, None);
        assert_eq!(c.encoder.state_dir, None);
        assert_eq!(c.origin.dvr_max_bytes, 2 << 30);
        assert_eq!(c.control, ControlSection::default());
        assert_eq!(c.timeline.fragment(), Duration::from_secs(2));
    }

    #[test]
    fn more_keys_are_accepted() {
        let text = format!(
            "{ONE}[origin]\nsegment_fragments = 2\ndvr_dir = \"/srv/dvr\"\ndvr_max_bytes = \"10GiB\"\n\
             dvr_ram = \"2m\"\ndvr_ram_max_bytes = \"256MiB\"\n\
             allow = [\"10.0.0.0/8\", \"192.168.1.0(255.255.255.0)\", \"127.0.0.1\", \"::1\"]\n\
             [control]\nallow = [\"127.0.0.1\"]\n\
             [[output]]\nname = \"c\"\nprotocol = \"cmaf\"\nprimary = \"https://i.example/x\"\nmethod = \"PUT\"\n"
        );
        let c = parse(&text).unwrap().config;
        assert_eq!(c.origin.segment_fragments, Some(2));
        assert_eq!(c.origin.dvr_max_bytes, 10 << 30);
        assert_eq!(c.origin.dvr_ram, Duration::from_secs(120));
        assert_eq!(c.origin.dvr_ram_max_bytes, 256 << 20);
        assert_eq!(c.origin.allow.len(), 4);
        assert!(c.origin.allow[1].contains("192.168.1.9".parse().unwrap()));
        assert_eq!(c.output[0].method, HttpMethod::Put);
    }

    #[test]
    fn no_rendition_is_an_error() {
        let e = errors("[encoder]\nname = \"x\"\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("t.toml:1:1: error: no video renditions"),
            "{e:?}"
        );
    }

    #[test]
    fn missing_required_key() {
        let e = errors("[[rendition]]\nname = \"a\"\nwidth = 640\nheight = 360\n");
        assert!(
            e[0].contains("missing required key `bitrate_kbps` in [[rendition]] #1"),
            "{e:?}"
        );
        assert!(e[0].starts_with("t.toml:1:"), "{e:?}");
    }

    #[test]
    fn several_errors_in_one_section() {
        let e = errors(&format!(
            "{ONE}[input]\nwidth = \"x\"\nheight = -2\nkind = \"usb\"\nframerate = \"30/0\"\n"
        ));
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].contains("7:9") && e[0].contains("input.width"),
            "{e:?}"
        );
        assert!(e[1].contains("8:10"), "{e:?}");
        assert!(
            e[2].contains("legal values: test, v4l2, file, rtsp, rtp"),
            "{e:?}"
        );
        assert!(e[3].contains("framerate"), "{e:?}");
    }

    #[test]
    fn input_kind_requires_its_key() {
        let e = errors(&format!("{ONE}[input]\nkind = \"rtsp\"\n"));
        assert!(e[0].contains("requires `uri`"), "{e:?}");
        let e = errors(&format!(
            "{ONE}[input]\nkind = \"rtsp\"\nuri = \"http://u:pw@cam/x\"\n"
        ));
        assert!(
            e[0].contains("legal schemes: rtsp://, rtsps://") && !e[0].contains("pw"),
            "{e:?}"
        );
        assert!(
            parse(&format!(
                "{ONE}[input]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\n"
            ))
            .is_ok()
        );
        assert!(
            parse(&format!(
                "{ONE}[input]\nkind = \"rtp\"\nuri = \"rtp://0.0.0.0:5004\"\naudio = \"input\"\n"
            ))
            .is_ok()
        );
        let e = errors(&format!("{ONE}[input]\naudio = \"input\"\n"));
        assert!(e[0].contains("carries audio"), "{e:?}");
    }

    #[test]
    fn rendition_rules() {
        let text = "[input]\nwidth = 640\nheight = 360\n\
            [[rendition]]\nname = \"a b\"\nwidth = 642\nheight = 361\nbitrate_kbps = 200000\n";
        let e = errors(text);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("URL-safe"));
        assert!(e[1].contains("no upscaling"));
        assert!(e[2].contains("even numbers"));
        assert!(e[3].contains("50..=100000"));
    }

    #[test]
    fn gop_rules() {
        let ok = |fr: &str, gop: &str| {
            parse(&format!(
                "{ONE}[input]\nframerate = \"{fr}\"\n[timeline]\ngop = \"{gop}\"\n"
            ))
            .is_ok()
        };
        assert!(ok("30000/1001", "2002ms"));
        assert!(ok("25", "2s"));
        assert!(ok("25", "1.2s"));
        assert!(!ok("30000/1001", "2s"));
        assert!(!ok("25", "10ms"));
        assert!(!ok("30/1", "0s"));
    }

    #[test]
    fn output_rules() {
        let out = |extra: &str| {
            format!(
                "{ONE}[[output]]\nname = \"o\"\nprotocol = \"smooth\"\nprimary = \"https://i.example/ingest.isml\"\n{extra}"
            )
        };
        assert!(parse(&out("")).is_ok());
        let e = errors(&out("secondary = \"rtmp://user:pw@x/live?k=1\"\n"));
        assert!(
            e[0].contains("rtmp://x/live") && !e[0].contains("pw") && !e[0].contains("k=1"),
            "{e:?}"
        );
        let e = errors(&out("renditions = []\n"));
        assert!(e[0].contains("at least one rendition"), "{e:?}");
        let e = errors(&out("key_file = \"rel\"\n"));
        assert!(e[0].contains("absolute"), "{e:?}");
        let e = errors(&out("backlog = \"3s\"\n"));
        assert!(e[0].contains("two fragments"), "{e:?}");
        let w = parse(&out("stream = \"cam\"\n")).unwrap().warnings;
        assert!(w[0].message.contains("ignored"), "{w:?}");
        let e = errors(&format!("{ONE}[control]\nlisten = \"0.0.0.0:8080\"\n"));
        assert!(e[0].contains("conflicts with origin.listen"), "{e:?}");
    }

    #[test]
    fn secret_url_parts() {
        let out = |url: &str| {
            format!("{ONE}[[output]]\nname = \"o\"\nprotocol = \"rtmp\"\nprimary = \"{url}\"\n")
        };
        let c = parse(&out("rtmp://h/app/{secret:sk-config-inline}")).unwrap();
        assert_eq!(
            c.config.output[0].primary,
            "rtmp://h/app/{secret:sk-config-inline}"
        );
        // Loading registered it: it is masked wherever it shows up.
        assert_eq!(
            crate::secrets::redact("publish to rtmp://h/app/sk-config-inline failed"),
            "publish to rtmp://h/app/*** failed"
        );
        assert!(parse(&out("rtmp://h/app/{key}")).is_ok());
        // Both inputs' passwords (the backup's was missed once: found by e2e_secrets).
        let c = parse(&format!(
            "{}\n[input.backup]\nkind = \"rtsp\"\nuri = \"rtsp://u:pw-backup-cam@h/x\"\n",
            out("rtmp://h/app/x")
        ))
        .unwrap();
        assert!(c.config.input.backup.is_some());
        assert_eq!(
            crate::secrets::redact("Connecting to rtsp://u:pw-backup-cam@h/x"),
            "Connecting to rtsp://u:***@h/x"
        );
        let e = errors(&out("rtmp://h/app/{secret:sk-config-open"));
        assert!(
            e[0].contains("no closing") && !e[0].contains("sk-config-open"),
            "{e:?}"
        );
        let e = errors(&out("rtmp://{key}/app"));
        assert!(e[0].contains("not the host"), "{e:?}");
    }

    #[test]
    fn cmaf_profiles() {
        let out = |extra: &str| format!("{ONE}[[output]]\nname = \"o\"\n{extra}");
        // Default generic; a profile is parsed.
        let c = parse(&out("protocol = \"cmaf\"\nprimary = \"http://h/in\"\n")).unwrap();
        assert_eq!(c.config.output[0].profile, CmafProfile::Generic);
        let c = parse(&out(
            "protocol = \"cmaf\"\nprimary = \"http://h/ch1/ch1.isml\"\nprofile = \"unified\"\n",
        ))
        .unwrap();
        assert_eq!(c.config.output[0].profile, CmafProfile::Unified);
        assert!(c.warnings.is_empty());
        // A bad value names file:line:column and the legal values.
        let e = errors(&out(
            "protocol = \"cmaf\"\nprimary = \"http://h/in\"\nprofile = \"azure\"\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:10:11: error:"), "{e:?}");
        assert!(e[0].contains("unknown profile \"azure\" (legal values: generic, mediapackage-v2, unified, akamai-msl5, elemental-inference)"), "{e:?}");
        // A profile on another protocol is an error at the key.
        let e = errors(&out(
            "protocol = \"smooth\"\nprimary = \"http://h/i.isml\"\nprofile = \"unified\"\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:10:1: error: `output[0].profile`: used by protocol \"cmaf\" only, not \"smooth\""),
            "{e:?}"
        );
        // `generic` (the default) elsewhere only warns.
        let w = parse(&out(
            "protocol = \"rtmp\"\nprimary = \"rtmp://h/live\"\nprofile = \"generic\"\n",
        ))
        .unwrap()
        .warnings;
        assert_eq!(w.len(), 1);
        assert!(
            w[0].message
                .contains("ignored: used by protocol \"cmaf\" only"),
            "{w:?}"
        );
        // Receiver rules on the URLs are warnings at the key.
        let w = parse(&out(
            "protocol = \"cmaf\"\nprimary = \"http://h/live/ch1\"\nprofile = \"unified\"\n",
        ))
        .unwrap()
        .warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("ends in `.isml`"), "{w:?}");
        let mp = "protocol = \"cmaf\"\nprofile = \"mediapackage-v2\"\nprimary = \"https://a-1.ingest.x.mediapackagev2.r.amazonaws.com/in/v1/g/1/c/\"\n";
        let ok = parse(&out(&format!(
            "{mp}secondary = \"https://a-2.ingest.x.mediapackagev2.r.amazonaws.com/in/v1/g/1/c/\"\n"
        )))
        .unwrap();
        assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
        let w = parse(&out(&format!(
            "{mp}secondary = \"https://b-2.ingest.x.mediapackagev2.r.amazonaws.com/in/v1/g/1/c/\"\n"
        )))
        .unwrap()
        .warnings;
        assert_eq!(w.len(), 1);
        assert!(
            w[0].message.contains("`output[0].secondary`") && w[0].message.contains("-1"),
            "{w:?}"
        );
        let msl = "protocol = \"cmaf\"\nprofile = \"akamai-msl5\"\nprimary = \"https://p-ep5.i.mslentrypoint.net/5/ev\"\n";
        assert!(
            parse(&out(&format!(
                "{msl}secondary = \"https://b-ep5.i.mslentrypoint.net/5-b/ev\"\n"
            )))
            .unwrap()
            .warnings
            .is_empty()
        );
        assert_eq!(
            parse(&out(&format!(
                "{msl}secondary = \"https://b-ep5.i.mslentrypoint.net/5/ev\"\n"
            )))
            .unwrap()
            .warnings
            .len(),
            1
        );
    }

    #[test]
    fn elemental_inference_takes_one_video_track_of_short_segments() {
        let two = format!(
            "{ONE}[[rendition]]\nname = \"b\"\nwidth = 320\nheight = 180\nbitrate_kbps = 250\n"
        );
        let ei = "[[output]]\nname = \"o\"\nprotocol = \"cmaf\"\nprimary = \"http://h/f\"\nprofile = \"elemental-inference\"\n";
        let short = "[timeline]\ngop = \"1s\"\n";
        let e = errors(&format!("{short}{two}{ei}"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("takes one video track") && e[0].contains("carries 2"),
            "{e:?}"
        );
        assert!(parse(&format!("{short}{two}{ei}renditions = [\"b\"]\n")).is_ok());
        // The default GOP (2 s) is longer than the 1.2 s Elemental Inference takes.
        let e = errors(&format!("{ONE}{ei}"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("at most 1200ms"), "{e:?}");
    }

    #[test]
    fn event_track_defaults_by_protocol_and_only_where_a_receiver_takes_one() {
        let out = |protocol: &str, extra: &str| {
            format!(
                "{ONE}[[output]]\nname = \"o\"\nprotocol = \"{protocol}\"\nprimary = \"http://h/f\"\n{extra}"
            )
        };
        let first = |text: &str| parse(text).unwrap().config.output[0].event_track();
        assert!(first(&out("smooth", "")), "on by default for smooth");
        assert!(!first(&out("cmaf", "")), "off by default for cmaf");
        assert!(first(&out("cmaf", "event_track = true\n")));
        assert!(first(&out(
            "cmaf",
            "event_track = true\nprofile = \"unified\"\n"
        )));
        let e = errors(&out(
            "cmaf",
            "event_track = true\nprofile = \"mediapackage-v2\"\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("event_track") && e[0].contains("takes no timed-metadata track"),
            "{e:?}"
        );
        let rtmp = "[[output]]\nname = \"r\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://h/live\"\nevent_track = true\n";
        let w = parse(&format!("{ONE}{rtmp}")).unwrap().warnings;
        assert!(w.iter().any(|w| w.message.contains("event_track")), "{w:?}");
    }

    #[test]
    fn warnings_do_not_fail() {
        let mut text = String::new();
        for i in 0..11 {
            text.push_str(&format!(
                "[[rendition]]\nname = \"r{i}\"\nwidth = 640\nheight = 360\nbitrate_kbps = 500\n"
            ));
        }
        let w = parse(&text).unwrap().warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("11 video renditions"));
    }

    #[test]
    fn unknown_section_and_non_array_rendition() {
        let e = errors(&format!("{ONE}[outputs]\nname = \"x\"\n"));
        assert!(
            e[0].contains("unknown section `outputs`") && e[0].contains("legal values: encoder"),
            "{e:?}"
        );
        let e = errors("[rendition]\nname = \"a\"\n");
        assert!(e[0].contains("[[rendition]]"), "{e:?}");
    }

    #[test]
    fn reference_example_is_valid() {
        let doc = include_str!("../../docs/ref/config.md");
        let example = doc
            .split("## Complete example")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("example in docs/ref/config.md");
        let loaded = parse(example).unwrap();
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.config.input.kind, InputKind::Rtsp);
    }

    #[test]
    fn load_reports_unreadable_file() {
        let e = load(Path::new("/nonexistent/twincast.toml")).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert!(e.to_string().contains("cannot read configuration file"));
    }
}
