//! `[[output]]`: the keys every output has (name, URLs with the scheme of the protocol,
//! stream, key file, renditions, backlog), then what its protocol takes of the rest, matched
//! once on [`OutputSettings`]: a key another protocol uses is a warning, and a CMAF receiver
//! `profile` gets its own checks of the URLs and ladder (`profile.rs`).

use std::time::Duration;

use super::{Checker, is_url_safe};
use crate::config::duration::format_duration;
use crate::config::spans::KeyPath;
use crate::config::url::{SECRET_OPEN, sanitize_url, url_parts};
use crate::config::{CmafProfile, Output, OutputSettings, Protocol, profile};

/// Longest backlog accepted.
pub const MAX_BACKLOG: Duration = Duration::from_secs(3600);

impl Checker<'_, '_, '_, '_> {
    pub(super) fn outputs(&mut self) {
        let timeline_ok = !self.tainted(&["timeline.gop", "timeline.fragment_gops"]);
        for (i, out) in self.c.output.iter().enumerate() {
            let file_index = self.p.output_src[i];
            let s = KeyPath::index("output", file_index);
            self.output_keys(&s, out);
            self.output_backlog(&s, out, timeline_ok);
            self.output_protocol(&s, out, timeline_ok);
        }
    }

    /// The keys of every protocol.
    fn output_keys(&mut self, s: &KeyPath, out: &Output) {
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
            self.output_renditions(s, list);
        }
    }

    /// `backlog`: within range, and room for the two fragments resent after a reconnect.
    fn output_backlog(&mut self, s: &KeyPath, out: &Output, timeline_ok: bool) {
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
    }

    /// What the output's protocol takes of the keys beyond the common ones.
    fn output_protocol(&mut self, s: &KeyPath, out: &Output, timeline_ok: bool) {
        match out.settings() {
            OutputSettings::Rtmp { .. } => {
                self.ignored_output_keys(
                    s,
                    out,
                    &[("method", "cmaf"), ("event_track", "smooth or cmaf")],
                );
                self.profile_elsewhere(s, out);
            }
            OutputSettings::Smooth => {
                self.ignored_output_keys(
                    s,
                    out,
                    &[
                        ("stream", "rtmp"),
                        ("rtmp_timestamps", "rtmp"),
                        ("method", "cmaf"),
                    ],
                );
                self.profile_elsewhere(s, out);
            }
            OutputSettings::Cmaf {
                profile: receiver, ..
            } => {
                self.ignored_output_keys(
                    s,
                    out,
                    &[("stream", "rtmp"), ("rtmp_timestamps", "rtmp")],
                );
                self.cmaf_profile(s, out, receiver, timeline_ok);
                // The timed-metadata track goes to `Streams(<name>)`; receivers whose paths
                // name fixed video/audio objects have no place for it.
                if out.event_track()
                    && !matches!(receiver, CmafProfile::Generic | CmafProfile::Unified)
                {
                    self.err(
                        &s.join("event_track"),
                        format!("profile \"{}\" takes no timed-metadata track (legal values: false, or true with profile \"generic\" or \"unified\")", receiver.as_str()),
                    );
                }
            }
        }
    }

    /// Warns about each `(key, protocol that uses it)` the file sets on this output.
    fn ignored_output_keys(&mut self, s: &KeyPath, out: &Output, keys: &[(&str, &str)]) {
        for (key, used_by) in keys {
            let path = s.join(key);
            if self.p.spans.has(&path) {
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
    }

    /// `profile` on an output that is not `cmaf`: a receiver profile is an error (it asks for
    /// paths only CMAF ingest has); `generic` is ignored with a warning.
    fn profile_elsewhere(&mut self, s: &KeyPath, out: &Output) {
        let path = s.join("profile");
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
    }

    /// A `cmaf` output's `profile`: what the chosen receiver documents about URLs and the
    /// ladder (src/config/profile.rs).
    fn cmaf_profile(
        &mut self,
        s: &KeyPath,
        out: &Output,
        receiver: CmafProfile,
        timeline_ok: bool,
    ) {
        let path = s.join("profile");
        let pair = |check: fn(&str, &str) -> Result<(), String>| {
            out.secondary
                .as_deref()
                .and_then(|sec| check(&out.primary, sec).err())
        };
        match receiver {
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

    fn output_url(&mut self, path: &KeyPath, protocol: Protocol, url: &str) {
        let schemes = protocol.schemes();
        let legal = schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(i) = url.find(SECRET_OPEN)
            && !url[i..].contains('}')
        {
            self.err(
                path,
                format!(
                    "\"{}\": `{}` has no closing `}}`",
                    sanitize_url(url),
                    SECRET_OPEN
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
