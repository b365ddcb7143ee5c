//! Semantic checks on a deserialized [`Config`]: every rule of design §8 and
//! `docs/ref/config.md`, each reported at the offending value with the legal values.
//! Cross-section rules are skipped when a section they read had errors of its own (its values
//! may be defaults standing in for what the user wrote).

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use super::diagnostic::Report;
use super::duration::format_duration;
use super::parse::Parsed;
use super::profile;
use super::spans::KeyPath;
use super::url::{sanitize_url, url_parts};
use super::{AudioInput, CmafProfile, Config, FrameRateSpec, InputKind, Output, Protocol};

/// Legal rendition bitrates in kbit/s.
pub const RENDITION_BITRATE_KBPS: (u32, u32) = (50, 100_000);
/// Warn above this many kbit/s for one rendition.
pub const WARN_RENDITION_KBPS: u32 = 10_000;
/// Warn above this many kbit/s for the whole ladder.
pub const WARN_LADDER_KBPS: u64 = 25_000;
/// Warn above this many video renditions.
pub const WARN_VIDEO_RENDITIONS: usize = 10;
/// Warn above this many audio tracks.
pub const WARN_AUDIO_TRACKS: usize = 5;
/// Largest picture dimension accepted.
pub const MAX_DIMENSION: u32 = 8192;
/// Legal audio sample rates in Hz.
pub const SAMPLE_RATES: &[u32] = &[8000, 16000, 22050, 24000, 32000, 44100, 48000];
/// Legal audio channel counts.
pub const CHANNELS: (u16, u16) = (1, 8);
/// Legal AAC bitrates in kbit/s.
pub const AUDIO_BITRATE_KBPS: (u32, u32) = (16, 512);
/// Legal DVR window.
pub const DVR_WINDOW: (Duration, Duration) =
    (Duration::from_secs(5 * 60), Duration::from_secs(25 * 3600));
/// Longest GOP accepted.
pub const MAX_GOP: Duration = Duration::from_secs(60);
/// Legal heartbeat interval.
pub const HEARTBEAT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// Legal `[input.backup] hold`.
pub const BACKUP_HOLD: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));
/// Legal slate delay.
pub const SLATE_AFTER: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));
/// Legal RTP reorder window (`input.latency`).
pub const INPUT_LATENCY: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(5));
/// Longest backlog accepted.
pub const MAX_BACKLOG: Duration = Duration::from_secs(3600);
/// Smallest on-disk DVR bound.
pub const MIN_DVR_MAX_BYTES: u64 = 1 << 20;
/// Longest `origin.dvr_ram`: an hour of segments in RAM is already more than live players read.
pub const DVR_RAM_MAX: Duration = Duration::from_secs(3600);
/// Smallest `publish.memory` (a few fragments of a small ladder).
pub const MIN_PUBLISH_MEMORY: u64 = 1 << 20;
/// Smallest `origin.dvr_ram_max_bytes` (one large segment).
pub const MIN_DVR_RAM_MAX_BYTES: u64 = 1 << 20;

const NS_PER_SEC: u128 = 1_000_000_000;

/// Runs every check, adding errors and warnings to `r`.
pub(crate) fn validate(c: &Config, p: &Parsed<'_, '_>, r: &mut Report) {
    let mut v = Checker { c, p, r };
    v.encoder();
    v.input();
    v.timeline();
    v.renditions();
    v.audio();
    v.origin();
    v.control();
    v.publish();
    v.outputs();
    v.duplicates("rendition", &p.rendition_names);
    v.duplicates("output", &p.output_names);
}

struct Checker<'c, 'p, 'a, 'i> {
    c: &'c Config,
    p: &'p Parsed<'a, 'i>,
    r: &'p mut Report,
}

/// Whether `name` is URL-safe: `[A-Za-z0-9_-]+`.
pub fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

/// Frames in `gop` at `rate`, if it is a whole number.
pub fn gop_frames(gop: Duration, rate: FrameRateSpec) -> Option<u64> {
    let num = gop.as_nanos() * u128::from(rate.num);
    let den = u128::from(rate.den) * NS_PER_SEC;
    num.is_multiple_of(den)
        .then(|| u64::try_from(num / den).unwrap_or(u64::MAX))
}

/// Duration of `frames` frames at `rate`, rounded down to whole nanoseconds.
fn frames_duration(frames: u64, rate: FrameRateSpec) -> Duration {
    let ns = u128::from(frames) * u128::from(rate.den) * NS_PER_SEC / u128::from(rate.num);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl Checker<'_, '_, '_, '_> {
    /// Span of the value at `section.key` (falling back to its table, then the file start).
    fn at(&self, path: &KeyPath) -> Option<Range<usize>> {
        Some(self.p.spans.value(path).unwrap_or(0..0))
    }

    fn err(&mut self, path: &KeyPath, message: String) {
        let span = self.at(path);
        self.r.error(span, format!("`{path}`: {message}"));
    }

    fn warn(&mut self, path: &KeyPath, message: String) {
        let span = self.at(path);
        self.r.warning(span, format!("`{path}`: {message}"));
    }

    /// Whether any of `keys` (paths like `input.width`) had an error, or its whole section did.
    fn tainted(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| {
            self.p.tainted.contains(*k)
                || k.split_once('.')
                    .is_some_and(|(section, _)| self.p.tainted.contains(section))
        })
    }

    fn encoder(&mut self) {
        let s = KeyPath::key("encoder");
        for (key, value) in [
            ("name", &self.c.encoder.name),
            ("pair", &self.c.encoder.pair),
        ] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                self.err(
                    &s.join(key),
                    "must be a non-empty name without control characters".into(),
                );
            }
        }
    }

    fn input(&mut self) {
        let s = KeyPath::key("input");
        let input = &self.c.input;
        self.dimension(&s.join("width"), input.width, None);
        self.dimension(&s.join("height"), input.height, None);
        match input.kind {
            InputKind::V4l2 => {
                if input.device.as_deref().is_none_or(|d| d.trim().is_empty()) {
                    self.err(
                        &s.join("device"),
                        "input kind \"v4l2\" requires `device`, e.g. \"/dev/video0\"".into(),
                    );
                }
            }
            InputKind::File
            | InputKind::Rtsp
            | InputKind::Rtp
            | InputKind::Udp
            | InputKind::Srt => self.input_uri(s.join("uri"), input.kind, input.uri.as_deref()),
            InputKind::Test => {}
        }
        if let Some(b) = &input.backup {
            let bs = s.join("backup");
            match b.kind {
                InputKind::V4l2 if b.device.as_deref().is_none_or(|d| d.trim().is_empty()) => {
                    self.err(
                        &bs.join("device"),
                        "input kind \"v4l2\" requires `device`, e.g. \"/dev/video1\"".into(),
                    );
                }
                InputKind::File
                | InputKind::Rtsp
                | InputKind::Rtp
                | InputKind::Udp
                | InputKind::Srt => self.input_uri(bs.join("uri"), b.kind, b.uri.as_deref()),
                _ => {}
            }
            let (lo, hi) = BACKUP_HOLD;
            if b.hold < lo || b.hold > hi {
                self.err(
                    &bs.join("hold"),
                    format!(
                        "{} is out of range (legal values: {}..={})",
                        format_duration(b.hold),
                        format_duration(lo),
                        format_duration(hi)
                    ),
                );
            }
        }
        if input.device.is_some() && input.kind != InputKind::V4l2 {
            self.warn(
                &s.join("device"),
                format!(
                    "ignored: `device` is used by kind \"v4l2\" only, not \"{}\"",
                    input.kind
                ),
            );
        }
        if input.uri.is_some() && matches!(input.kind, InputKind::Test | InputKind::V4l2) {
            self.warn(
                &s.join("uri"),
                format!(
                    "ignored: `uri` is used by kinds \"file\", \"rtsp\", \"rtp\", \"udp\", \"srt\", not \"{}\"",
                    input.kind
                ),
            );
        }
        let srt_anywhere = input.kind == InputKind::Srt
            || input
                .backup
                .as_ref()
                .is_some_and(|b| b.kind == InputKind::Srt);
        if input.passphrase_file.is_some() && !srt_anywhere {
            self.warn(
                &s.join("passphrase_file"),
                format!(
                    "ignored: `passphrase_file` is used by kind \"srt\" only, not \"{}\"",
                    input.kind
                ),
            );
        }
        if input.audio == AudioInput::Input
            && matches!(input.kind, InputKind::Test | InputKind::V4l2)
        {
            self.err(
                &s.join("audio"),
                format!("\"input\" needs an input that carries audio, and kind \"{}\" does not (legal values here: test, none, alsa:<device>)", input.kind),
            );
        }
        let (lo, hi) = INPUT_LATENCY;
        if input.latency > hi {
            self.err(
                &s.join("latency"),
                format!(
                    "{} is out of range (legal values: {}..={})",
                    format_duration(input.latency),
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
        }
        let (lo, hi) = SLATE_AFTER;
        if input.slate_after < lo || input.slate_after > hi {
            self.err(
                &s.join("slate_after"),
                format!(
                    "{} is out of range (legal values: {}..={})",
                    format_duration(input.slate_after),
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
        }
        let slate = input.slate.to_ascii_lowercase();
        if slate != super::DEFAULT_SLATE
            && ![".png", ".jpg", ".jpeg"].iter().any(|e| slate.ends_with(e))
        {
            self.err(
                &s.join("slate"),
                format!(
                    "\"{}\" is neither builtin nor a picture (legal values: builtin, a path ending in .png, .jpg or .jpeg)",
                    input.slate
                ),
            );
        }
    }

    fn input_uri(&mut self, path: KeyPath, kind: InputKind, uri: Option<&str>) {
        let Some(uri) = uri.filter(|u| !u.trim().is_empty()) else {
            let example = match kind {
                InputKind::Rtsp => "\"rtsp://10.0.0.5/main\"",
                InputKind::Rtp => "\"rtp://0.0.0.0:5004\"",
                InputKind::Udp => "\"udp://239.1.1.1:5000\"",
                InputKind::Srt => "\"srt://0.0.0.0:9000?mode=listener&latency=120\"",
                _ => "\"/srv/media/loop.mp4\"",
            };
            self.err(
                &path,
                format!("input kind \"{kind}\" requires `uri`, e.g. {example}"),
            );
            return;
        };
        let schemes: &[&str] = match kind {
            InputKind::Rtsp => &["rtsp", "rtsps"],
            InputKind::Rtp => &["rtp", "udp"],
            InputKind::Udp => &["udp"],
            InputKind::Srt => &["srt"],
            _ => return,
        };
        let scheme = url_parts(uri).map(|u| u.scheme);
        if !scheme.as_deref().is_some_and(|sch| schemes.contains(&sch)) {
            self.err(
                &path,
                format!(
                    "\"{}\" does not fit input kind \"{kind}\" (legal schemes: {})",
                    sanitize_url(uri),
                    schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return;
        }
        // The network front end's own parsers (src/input/): what they refuse cannot start.
        let refused = match kind {
            InputKind::Rtp | InputKind::Udp => crate::input::parse_uri(uri)
                .is_none()
                .then(|| "expected rtp://ADDRESS:PORT or udp://ADDRESS:PORT with a numeric address, e.g. udp://239.1.1.1:5000".to_string()),
            InputKind::Srt => crate::input::srt::parse_uri(uri).err(),
            _ => None,
        };
        if let Some(why) = refused {
            self.err(&path, format!("\"{}\": {why}", sanitize_url(uri)));
        }
    }

    /// A picture dimension: > 0, even, ≤ `max` (the source) when given.
    fn dimension(&mut self, path: &KeyPath, value: u32, max: Option<(u32, &str)>) {
        if value == 0 || !value.is_multiple_of(2) || value > MAX_DIMENSION {
            self.err(path, format!("{value} is not a legal picture size (legal values: even numbers 2..={MAX_DIMENSION})"));
        } else if let Some((max, what)) = max
            && value > max
        {
            self.err(path, format!("{value} is larger than the input's {what} {max} (legal values: even numbers 2..={max}; no upscaling)"));
        }
    }

    fn timeline(&mut self) {
        let s = KeyPath::key("timeline");
        let t = &self.c.timeline;
        if t.fragment_gops == 0 {
            self.err(
                &s.join("fragment_gops"),
                "0 is not legal (legal values: 1 or more)".into(),
            );
        }
        if t.gop.is_zero() || t.gop > MAX_GOP {
            self.err(
                &s.join("gop"),
                format!(
                    "{} is out of range (legal values: one frame..={})",
                    format_duration(t.gop),
                    format_duration(MAX_GOP)
                ),
            );
            return;
        }
        if self.tainted(&["input.framerate", "timeline.gop"]) {
            return;
        }
        let rate = self.c.input.framerate;
        match gop_frames(t.gop, rate) {
            Some(0) => {
                self.err(&s.join("gop"), format!("{} is shorter than one frame at {rate} fps (legal values: whole frames, e.g. {})", format_duration(t.gop), format_duration(frames_duration(1, rate))))
            }
            Some(_) => {}
            None => {
                let exact = t.gop.as_nanos() * u128::from(rate.num) / (u128::from(rate.den) * NS_PER_SEC);
                let below = u64::try_from(exact).unwrap_or(u64::MAX).max(1);
                let mut near: Vec<String> = [below, below + 1]
                    .iter()
                    .filter_map(|&f| {
                        let d = frames_duration(f, rate);
                        gop_frames(d, rate).map(|_| format!("\"{}\" ({f} frames)", format_duration(d)))
                    })
                    .collect();
                near.dedup();
                let hint = if near.is_empty() {
                    "choose a frame rate and GOP whose product is a whole number".to_string()
                } else {
                    format!("legal values near it: {}", near.join(", "))
                };
                self.err(
                    &s.join("gop"),
                    format!(
                        "{} is not a whole number of frames at {rate} fps ({:.3} frames) ({hint})",
                        format_duration(t.gop),
                        t.gop.as_secs_f64() * rate.fps()
                    ),
                );
            }
        }
    }

    fn renditions(&mut self) {
        let renditions = &self.c.rendition;
        if renditions.is_empty() {
            if !self.p.spans.has(&KeyPath::key("rendition")) {
                self.r.error(
                    Some(
                        self.p
                            .spans
                            .value(&KeyPath::key("rendition"))
                            .unwrap_or(0..0),
                    ),
                    "no video renditions: at least one [[rendition]] is required".to_string(),
                );
            }
            return;
        }
        let width_ok = !self.tainted(&["input.width"]);
        let height_ok = !self.tainted(&["input.height"]);
        let mut total_kbps: u64 = 0;
        let mut warned_total = false;
        for (i, rend) in renditions.iter().enumerate() {
            let file_index = self.p.rendition_src[i];
            let s = KeyPath::index("rendition", file_index);
            if !is_url_safe(&rend.name) {
                self.err(
                    &s.join("name"),
                    format!(
                        "\"{}\" is not URL-safe (legal characters: A-Z a-z 0-9 _ -)",
                        rend.name
                    ),
                );
            } else if rend.name.eq_ignore_ascii_case("audio") {
                self.err(
                    &s.join("name"),
                    "\"audio\" is reserved for the audio track".into(),
                );
            }
            let wmax = width_ok.then_some((self.c.input.width, "width"));
            let hmax = height_ok.then_some((self.c.input.height, "height"));
            self.dimension(&s.join("width"), rend.width, wmax);
            self.dimension(&s.join("height"), rend.height, hmax);
            let (lo, hi) = RENDITION_BITRATE_KBPS;
            if !(lo..=hi).contains(&rend.bitrate_kbps) {
                self.err(
                    &s.join("bitrate_kbps"),
                    format!(
                        "{} is out of range (legal values: {lo}..={hi})",
                        rend.bitrate_kbps
                    ),
                );
            } else if rend.bitrate_kbps > WARN_RENDITION_KBPS {
                self.warn(
                    &s.join("bitrate_kbps"),
                    format!(
                        "{} kbit/s is more than {WARN_RENDITION_KBPS} kbit/s for one rendition",
                        rend.bitrate_kbps
                    ),
                );
            }
            total_kbps += u64::from(rend.bitrate_kbps);
            if total_kbps > WARN_LADDER_KBPS && !warned_total {
                warned_total = true;
                let sum: u64 = renditions.iter().map(|r| u64::from(r.bitrate_kbps)).sum();
                self.warn(
                    &s.join("bitrate_kbps"),
                    format!("the ladder totals {sum} kbit/s, more than {WARN_LADDER_KBPS} kbit/s"),
                );
            }
            if i == WARN_VIDEO_RENDITIONS {
                self.warn(&s, format!("{} video renditions: more than {WARN_VIDEO_RENDITIONS} is unusual and costly", renditions.len()));
            }
        }
    }

    fn audio(&mut self) {
        let s = KeyPath::key("audio");
        let a = &self.c.audio;
        if !SAMPLE_RATES.contains(&a.sample_rate) {
            let legal: Vec<String> = SAMPLE_RATES.iter().map(u32::to_string).collect();
            self.err(
                &s.join("sample_rate"),
                format!(
                    "{} is not supported (legal values: {})",
                    a.sample_rate,
                    legal.join(", ")
                ),
            );
        }
        let (lo, hi) = CHANNELS;
        if !(lo..=hi).contains(&a.channels) {
            self.err(
                &s.join("channels"),
                format!("{} is out of range (legal values: {lo}..={hi})", a.channels),
            );
        }
        let (lo, hi) = AUDIO_BITRATE_KBPS;
        if !(lo..=hi).contains(&a.bitrate_kbps) {
            self.err(
                &s.join("bitrate_kbps"),
                format!(
                    "{} is out of range (legal values: {lo}..={hi})",
                    a.bitrate_kbps
                ),
            );
        }
        let tracks = usize::from(self.c.input.audio != AudioInput::None);
        if tracks > WARN_AUDIO_TRACKS {
            self.warn(
                &s,
                format!("{tracks} audio tracks: more than {WARN_AUDIO_TRACKS}"),
            );
        }
    }

    fn publish(&mut self) {
        let m = self.c.publish.memory;
        if m < MIN_PUBLISH_MEMORY {
            self.err(
                &KeyPath::key("publish").join("memory"),
                format!("{m} bytes is too small (legal values: {MIN_PUBLISH_MEMORY} or more, e.g. \"192MiB\")"),
            );
        }
    }

    fn origin(&mut self) {
        let s = KeyPath::key("origin");
        let o = &self.c.origin;
        let (lo, hi) = DVR_WINDOW;
        if o.dvr_window < lo || o.dvr_window > hi {
            self.err(
                &s.join("dvr_window"),
                format!(
                    "{} is out of range (legal values: {}..={})",
                    format_duration(o.dvr_window),
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
        }
        if o.segment_fragments == Some(0) {
            self.err(
                &s.join("segment_fragments"),
                "0 is not legal (legal values: 1 or more; omit for the GOP rule)".into(),
            );
        }
        if !o.dvr_dir.is_absolute() {
            self.err(
                &s.join("dvr_dir"),
                format!("\"{}\" must be an absolute path", o.dvr_dir.display()),
            );
        }
        if o.dvr_max_bytes < MIN_DVR_MAX_BYTES {
            self.err(&s.join("dvr_max_bytes"), format!("{} bytes is too small (legal values: {MIN_DVR_MAX_BYTES} or more, e.g. \"2GiB\")", o.dvr_max_bytes));
        }
        if o.dvr_ram > o.dvr_window.min(DVR_RAM_MAX) {
            self.err(
                &s.join("dvr_ram"),
                format!(
                    "{} is out of range (legal values: 0s..={}, and at most dvr_window)",
                    format_duration(o.dvr_ram),
                    format_duration(DVR_RAM_MAX)
                ),
            );
        }
        if o.dvr_ram_max_bytes < MIN_DVR_RAM_MAX_BYTES {
            self.err(
                &s.join("dvr_ram_max_bytes"),
                format!(
                    "{} bytes is too small (legal values: {MIN_DVR_RAM_MAX_BYTES} or more, e.g. \"64MiB\")",
                    o.dvr_ram_max_bytes
                ),
            );
        }
    }

    fn control(&mut self) {
        let s = KeyPath::key("control");
        let ctl = &self.c.control;
        let (lo, hi) = HEARTBEAT;
        if ctl.heartbeat < lo || ctl.heartbeat > hi {
            self.err(
                &s.join("heartbeat"),
                format!(
                    "{} is out of range (legal values: {}..={})",
                    format_duration(ctl.heartbeat),
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
        }
        let (a, b) = (self.c.origin.listen, ctl.listen);
        let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
        if a.port() == b.port() && a.port() != 0 && overlap && !self.tainted(&["origin.listen"]) {
            self.err(
                &s.join("listen"),
                format!("{b} conflicts with origin.listen {a} (legal values: a different port)"),
            );
        }
    }

    fn outputs(&mut self) {
        let timeline_ok = !self.tainted(&["timeline.gop", "timeline.fragment_gops"]);
        for (i, out) in self.c.output.iter().enumerate() {
            let file_index = self.p.output_src[i];
            let s = KeyPath::index("output", file_index);
            if !is_url_safe(&out.name) {
                self.err(
                    &s.join("name"),
                    format!(
                        "\"{}\" is not a legal output name (legal characters: A-Z a-z 0-9 _ -)",
                        out.name
                    ),
                );
            }
            self.output_url(&s.join("primary"), out.protocol, &out.primary);
            if let Some(sec) = &out.secondary {
                self.output_url(&s.join("secondary"), out.protocol, sec);
                if *sec == out.primary {
                    self.warn(
                        &s.join("secondary"),
                        "is the same URL as `primary`: both pushes go to one place".into(),
                    );
                }
            }
            if let Some(stream) = &out.stream
                && (stream.is_empty()
                    || stream.chars().any(|ch| {
                        ch.is_whitespace() || ch.is_control() || matches!(ch, '/' | '?' | '#')
                    }))
            {
                self.err(
                    &s.join("stream"),
                    "must be a non-empty name without spaces, '/', '?' or '#'".into(),
                );
            }
            if let Some(key_file) = &out.key_file
                && !key_file.is_absolute()
            {
                self.err(
                    &s.join("key_file"),
                    format!("\"{}\" must be an absolute path", key_file.display()),
                );
            }
            if let Some(list) = &out.renditions {
                self.output_renditions(&s, list);
            }
            if out.backlog.is_zero() || out.backlog > MAX_BACKLOG {
                self.err(
                    &s.join("backlog"),
                    format!(
                        "{} is out of range (legal values: 1ms..={})",
                        format_duration(out.backlog),
                        format_duration(MAX_BACKLOG)
                    ),
                );
            } else if timeline_ok {
                let two = self.c.timeline.fragment().saturating_mul(2);
                if out.backlog < two {
                    self.err(
                        &s.join("backlog"),
                        format!("{} cannot hold the two fragments resent after a reconnect (legal values: {}..={})", format_duration(out.backlog), format_duration(two), format_duration(MAX_BACKLOG)),
                    );
                }
            }
            let ignored = [
                ("stream", out.protocol != Protocol::Rtmp, "rtmp"),
                ("rtmp_timestamps", out.protocol != Protocol::Rtmp, "rtmp"),
                ("method", out.protocol != Protocol::Cmaf, "cmaf"),
            ];
            for (key, unused, used_by) in ignored {
                let path = s.join(key);
                if unused && self.p.spans.has(&path) {
                    let span = self.p.spans.key(&path);
                    self.r.warning(
                        span,
                        format!(
                            "`{path}`: ignored: used by protocol \"{used_by}\" only, not \"{}\"",
                            out.protocol
                        ),
                    );
                }
            }
            self.output_profile(&s, out, timeline_ok);
        }
    }

    /// `profile`: only on `cmaf` outputs (a receiver profile elsewhere is an error: it asks
    /// for paths only CMAF ingest has; `generic` elsewhere is ignored with a warning), and what the chosen receiver documents about URLs and the ladder
    /// (src/config/profile.rs).
    fn output_profile(&mut self, s: &KeyPath, out: &Output, timeline_ok: bool) {
        let path = s.join("profile");
        if out.protocol != Protocol::Cmaf {
            if self.p.spans.has(&path) {
                let span = self.p.spans.key(&path);
                // `generic` changes nothing (the shipped file's commented example has it on an
                // rtmp output); a receiver profile on another protocol is a mistake.
                if out.profile == CmafProfile::Generic {
                    self.r.warning(
                        span,
                        format!(
                            "`{path}`: ignored: used by protocol \"cmaf\" only, not \"{}\"",
                            out.protocol
                        ),
                    );
                } else {
                    self.r.error(
                        span,
                        format!(
                            "`{path}`: used by protocol \"cmaf\" only, not \"{}\" (remove it, or set protocol = \"cmaf\")",
                            out.protocol
                        ),
                    );
                }
            }
            return;
        }
        let pair = |check: fn(&str, &str) -> Result<(), String>| {
            out.secondary
                .as_deref()
                .and_then(|sec| check(&out.primary, sec).err())
        };
        match out.profile {
            CmafProfile::Generic => {}
            CmafProfile::MediapackageV2 => {
                if let Some(e) = pair(profile::mediapackage_pair) {
                    self.warn(&s.join("secondary"), e);
                }
            }
            CmafProfile::AkamaiMsl5 => {
                if let Some(e) = pair(profile::msl5_pair) {
                    self.warn(&s.join("secondary"), e);
                }
            }
            CmafProfile::Unified => {
                for (key, url) in ["primary", "secondary"].into_iter().zip(out.urls()) {
                    if let Err(e) = profile::unified_publishing_point(url) {
                        self.warn(&s.join(key), e);
                    }
                }
            }
            CmafProfile::ElementalInference => {
                let videos = match &out.renditions {
                    Some(list) => list.len(),
                    None => self.c.rendition.len(),
                };
                if videos != 1 {
                    let at = if out.renditions.is_some() {
                        s.join("renditions")
                    } else {
                        path.clone()
                    };
                    self.err(
                        &at,
                        format!("profile \"elemental-inference\" takes one video track (`Streams(default-video.cmfv)`), this output carries {videos} (legal values: renditions = [\"<one rendition>\"])"),
                    );
                }
                let fragment = self.c.timeline.fragment();
                if timeline_ok && fragment > profile::ELEMENTAL_INFERENCE_MAX_SEGMENT {
                    self.err(
                        &path,
                        format!(
                            "profile \"elemental-inference\" takes media segments of at most {}; timeline.gop × timeline.fragment_gops is {} (legal values: a fragment of 1.2s or less, e.g. gop = \"1s\")",
                            format_duration(profile::ELEMENTAL_INFERENCE_MAX_SEGMENT),
                            format_duration(fragment)
                        ),
                    );
                }
            }
        }
    }

    /// Names must be unique within `[[rendition]]` and within `[[output]]`.
    fn duplicates(&mut self, section: &str, names: &[Option<String>]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name.as_deref() else {
                continue;
            };
            if let Some(&first) = seen.get(name) {
                self.err(
                    &KeyPath::index(section, i).join("name"),
                    format!(
                        "duplicate {section} name \"{name}\" (already used by [[{section}]] #{})",
                        first + 1
                    ),
                );
            } else {
                seen.insert(name, i);
            }
        }
    }

    fn output_url(&mut self, path: &KeyPath, protocol: Protocol, url: &str) {
        let schemes = protocol.schemes();
        let legal = schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(i) = url.find(super::url::SECRET_OPEN)
            && !url[i..].contains('}')
        {
            self.err(
                path,
                format!(
                    "\"{}\": `{}` has no closing `}}`",
                    sanitize_url(url),
                    super::url::SECRET_OPEN
                ),
            );
        }
        match url_parts(url) {
            Some(parts) if parts.host.contains(['{', '}']) => self.err(
                path,
                format!(
                    "\"{}\": `{{key}}` and `{{secret:…}}` belong in the path or query, not the host",
                    sanitize_url(url)
                ),
            ),
            Some(parts) if schemes.contains(&parts.scheme.as_str()) => {
                if parts.host.is_empty() {
                    self.err(path, format!("\"{}\" has no host", sanitize_url(url)));
                }
            }
            Some(parts) => self.err(
                path,
                format!("scheme \"{}://\" does not match protocol \"{protocol}\" in \"{}\" (legal values: {legal})", parts.scheme, sanitize_url(url)),
            ),
            None => self.err(path, format!("\"{}\" is not a URL (legal values: {legal})", sanitize_url(url))),
        }
    }

    fn output_renditions(&mut self, s: &KeyPath, list: &[String]) {
        let path = s.join("renditions");
        if list.is_empty() {
            self.err(
                &path,
                "is empty: name at least one rendition, or omit the key for all".into(),
            );
            return;
        }
        let mut names: Vec<&str> = self
            .p
            .rendition_names
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        for (j, name) in list.iter().enumerate() {
            if list[..j].contains(name) {
                self.err(&path.at(j), format!("rendition \"{name}\" is listed twice"));
            } else if !names.contains(&name.as_str()) {
                self.err(
                    &path.at(j),
                    format!(
                        "unknown rendition \"{name}\" (legal values: {})",
                        names.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(num: u32, den: u32) -> FrameRateSpec {
        FrameRateSpec { num, den }
    }

    #[test]
    fn gop_whole_frames_exact() {
        assert_eq!(gop_frames(Duration::from_secs(2), fr(30, 1)), Some(60));
        assert_eq!(gop_frames(Duration::from_secs(2), fr(30000, 1001)), None);
        assert_eq!(
            gop_frames(Duration::from_millis(2002), fr(30000, 1001)),
            Some(60)
        );
        assert_eq!(
            gop_frames(Duration::from_millis(1001), fr(60000, 1001)),
            Some(60)
        );
        assert_eq!(gop_frames(Duration::from_millis(500), fr(25, 1)), None);
        assert_eq!(gop_frames(Duration::from_millis(480), fr(25, 1)), Some(12));
        assert_eq!(gop_frames(Duration::from_millis(10), fr(25, 1)), None);
    }

    fn input_errors(input: &str) -> Vec<String> {
        let text = format!(
            "[[rendition]]\nname = \"a\"\nwidth = 640\nheight = 360\nbitrate_kbps = 600\n[input]\n{input}\n"
        );
        match super::super::parse_str(&text, std::path::Path::new("t.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn network_kinds_take_their_uris() {
        for ok in [
            "kind = \"rtp\"\nuri = \"rtp://0.0.0.0:5004\"",
            // Configs written before kind udp.
            "kind = \"rtp\"\nuri = \"udp://239.1.1.1:5000\"",
            "kind = \"udp\"\nuri = \"udp://239.1.1.1:5000\"",
            "kind = \"udp\"\nuri = \"udp://@239.1.1.1:5000?pkt_size=1316\"",
            "kind = \"srt\"\nuri = \"srt://0.0.0.0:9000?mode=listener&latency=120\"",
            "kind = \"srt\"\nuri = \"srt://127.0.0.1:9000\"\naudio = \"input\"",
        ] {
            assert_eq!(input_errors(ok), Vec::<String>::new(), "{ok}");
        }
        let e = input_errors("kind = \"udp\"\nuri = \"rtp://0.0.0.0:5004\"");
        assert!(e[0].contains("legal schemes: udp://"), "{e:?}");
        let e = input_errors("kind = \"srt\"");
        assert!(e[0].contains("requires `uri`, e.g. \"srt://"), "{e:?}");
        let e = input_errors("kind = \"udp\"\nuri = \"udp://feeds.example:5000\"");
        assert!(e[0].contains("numeric address"), "{e:?}");
        let e = input_errors("kind = \"srt\"\nuri = \"srt://0.0.0.0:9000?mode=sideways\"");
        assert_eq!(e.len(), 1, "{e:?}");
        let e = input_errors(
            "kind = \"test\"\n[input.backup]\nkind = \"udp\"\nuri = \"srt://0.0.0.0:9000\"",
        );
        assert!(e[0].contains("legal schemes: udp://"), "{e:?}");
    }

    #[test]
    fn url_safe_names() {
        assert!(is_url_safe("720p"));
        assert!(is_url_safe("a_b-C"));
        assert!(!is_url_safe(""));
        assert!(!is_url_safe("7 20"));
        assert!(!is_url_safe("a/b"));
        assert!(!is_url_safe("x.m3u8"));
    }
}
