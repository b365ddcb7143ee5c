//! The third pass: semantic checks on a deserialized [`Config`]: every rule of
//! docs/design/config.md and `docs/ref/config.md`, each reported at the offending value with the
//! legal values. Cross-section rules are skipped when a section they read had errors of its own
//! (its values may be defaults standing in for what the user wrote).
//!
//! One file per part of the file: `input.rs` (`[input]`, `[input.backup]`), `ladder.rs`
//! (`[timeline]` on the media crate's `Grid`, `[[rendition]]`, `[audio]`), `outputs.rs`
//! (`[[output]]`, per protocol), `service.rs` (`[encoder]`, `[origin]`, `[control]`,
//! `[publish]`); this file runs them and holds what they share.

mod input;
mod ladder;
mod outputs;
mod service;

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use super::Config;
use super::diagnostic::Report;
use super::duration::format_duration;
use super::sections::Sections;
use super::spans::KeyPath;

/// Largest picture dimension accepted.
pub const MAX_DIMENSION: u32 = 8192;

/// Runs every check, adding errors and warnings to `r`.
pub(crate) fn validate(c: &Config, p: &Sections<'_, '_>, r: &mut Report) {
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
    p: &'p Sections<'a, 'i>,
    r: &'p mut Report,
}

/// Whether `name` is URL-safe: `[A-Za-z0-9_-]+`.
pub fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
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

    /// A duration within `lo..=hi`.
    fn duration_in(&mut self, path: &KeyPath, value: Duration, (lo, hi): (Duration, Duration)) {
        if value < lo || value > hi {
            self.err(
                path,
                format!(
                    "{} is out of range (legal values: {}..={})",
                    format_duration(value),
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
