//! `[input]` and `[input.backup]`: each kind takes its own keys (`device` for v4l2, `uri` with
//! the scheme the kind expects for the others), keys the kind does not use are warned about,
//! and the timing keys are within their ranges.

use std::time::Duration;

use super::Checker;
use crate::config::spans::KeyPath;
use crate::config::url::{sanitize_url, url_parts};
use crate::config::{AudioInput, DEFAULT_SLATE, InputKind};

/// Legal `[input.backup] hold`.
pub const BACKUP_HOLD: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));
/// Legal slate delay.
pub const SLATE_AFTER: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(600));
/// Legal RTP reorder window (`input.latency`).
pub const INPUT_LATENCY: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(5));

impl Checker<'_, '_, '_, '_> {
    pub(super) fn input(&mut self) {
        let s = KeyPath::key("input");
        let input = &self.c.input;
        self.dimension(&s.join("width"), input.width, None);
        self.dimension(&s.join("height"), input.height, None);
        let (device, uri) = (input.device.as_deref(), input.uri.as_deref());
        self.source_keys(&s, input.kind, device, uri, "/dev/video0");
        if let Some(b) = &input.backup {
            let bs = s.join("backup");
            let (device, uri) = (b.device.as_deref(), b.uri.as_deref());
            self.source_keys(&bs, b.kind, device, uri, "/dev/video1");
            self.duration_in(&bs.join("hold"), b.hold, BACKUP_HOLD);
        }
        self.ignored_input_keys(&s);
        if input.audio == AudioInput::Input
            && matches!(input.kind, InputKind::Test | InputKind::V4l2)
        {
            self.err(
                &s.join("audio"),
                format!("\"input\" needs an input that carries audio, and kind \"{}\" does not (legal values here: test, none, alsa:<device>)", input.kind),
            );
        }
        self.duration_in(&s.join("latency"), input.latency, INPUT_LATENCY);
        self.duration_in(&s.join("slate_after"), input.slate_after, SLATE_AFTER);
        let slate = input.slate.to_ascii_lowercase();
        if slate != DEFAULT_SLATE && ![".png", ".jpg", ".jpeg"].iter().any(|e| slate.ends_with(e)) {
            self.err(
                &s.join("slate"),
                format!(
                    "\"{}\" is neither builtin nor a picture (legal values: builtin, a path ending in .png, .jpg or .jpeg)",
                    input.slate
                ),
            );
        }
    }

    /// What a source of `kind` under `s` needs: `device` for v4l2 (`example` in the message),
    /// `uri` for the kinds that read one.
    fn source_keys(
        &mut self,
        s: &KeyPath,
        kind: InputKind,
        device: Option<&str>,
        uri: Option<&str>,
        example: &str,
    ) {
        match kind {
            InputKind::V4l2 => {
                if device.is_none_or(|d| d.trim().is_empty()) {
                    self.err(
                        &s.join("device"),
                        format!("input kind \"v4l2\" requires `device`, e.g. \"{example}\""),
                    );
                }
            }
            InputKind::File
            | InputKind::Rtsp
            | InputKind::Rtp
            | InputKind::Udp
            | InputKind::Srt => self.input_uri(s.join("uri"), kind, uri),
            InputKind::Test => {}
        }
    }

    /// `[input]` keys the kind (and the backup's kind) does not use: warnings.
    fn ignored_input_keys(&mut self, s: &KeyPath) {
        let input = &self.c.input;
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
        // The parsers the network input starts with (src/config/input_uri.rs): what they refuse
        // cannot start.
        let refused = match kind {
            InputKind::Rtp | InputKind::Udp => crate::config::input_uri::parse_uri(uri)
                .is_none()
                .then(|| "expected rtp://ADDRESS:PORT or udp://ADDRESS:PORT with a numeric address, e.g. udp://239.1.1.1:5000".to_string()),
            InputKind::Srt => crate::config::input_uri::parse_srt_uri(uri).err(),
            _ => None,
        };
        if let Some(why) = refused {
            self.err(&path, format!("\"{}\": {why}", sanitize_url(uri)));
        }
    }
}
