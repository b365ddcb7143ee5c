//! The second pass (docs/design/config.md, *From text to a validated `Config`*): the spanned
//! document → the typed sections of a [`Config`], each section on its own. A section whose
//! deserialization fails is retried without the offending key or array element, so every bad
//! key of every section is reported in one run, and what was left out is marked *tainted*.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::AllowEntry;
use super::diagnostic::{Report, legal};
use super::spans::{KeyPath, Seg, Spans, locate, remove};
use super::{
    AudioSection, Config, ControlSection, EncoderSection, InputSection, OriginSection, Output,
    PublishSection, Rendition, TimelineSection,
};

/// Top-level keys (sections) of the file.
pub(crate) const SECTIONS: &[&str] = &[
    "encoder",
    "input",
    "timeline",
    "rendition",
    "audio",
    "origin",
    "control",
    "publish",
    "output",
];

/// Upper bound on retries per section (each retry removes one key or element).
const MAX_ATTEMPTS: usize = 64;

/// What the semantic checks need besides the config: positions, which sections had errors
/// (cross-section checks skip those), and where each kept array element came from.
pub(crate) struct Sections<'a, 'i> {
    pub(crate) spans: Spans<'a, 'i>,
    /// Key paths (`input.width`, or a whole section `input`) whose value had an error and was
    /// replaced by its default.
    pub(crate) tainted: HashSet<String>,
    /// The `name` of every `[[rendition]]` element of the file (`None` if it has no string
    /// name), even when the element has other errors.
    pub(crate) rendition_names: Vec<Option<String>>,
    /// The same for `[[output]]`.
    pub(crate) output_names: Vec<Option<String>>,
    /// For `config.rendition[i]`, its index among the `[[rendition]]` elements of the file.
    pub(crate) rendition_src: Vec<usize>,
    /// For `config.output[i]`, its index among the `[[output]]` elements of the file.
    pub(crate) output_src: Vec<usize>,
}

/// Reads every section of the spanned document `doc` (unknown sections are errors), each on
/// its own, into a [`Config`] and what validation needs to know about where it came from.
pub(crate) fn read<'a, 'i>(
    doc: &'a Spanned<DeTable<'i>>,
    report: &mut Report,
) -> (Config, Sections<'a, 'i>) {
    let root = doc.get_ref();
    for (key, _) in root.iter() {
        if !SECTIONS.contains(&key.get_ref().as_ref()) {
            report.error(
                Some(key.span()),
                format!(
                    "unknown section `{}` (legal values: {})",
                    key.get_ref(),
                    legal(SECTIONS)
                ),
            );
        }
    }
    let mut tainted = HashSet::new();
    let encoder = table::<EncoderSection>(root, "encoder", report, &mut tainted);
    let input = table::<InputSection>(root, "input", report, &mut tainted);
    let timeline = table::<TimelineSection>(root, "timeline", report, &mut tainted);
    let (rendition, rendition_src) = array::<Rendition>(root, "rendition", report, &mut tainted);
    let audio = table::<AudioSection>(root, "audio", report, &mut tainted);
    let origin = table::<OriginSection>(root, "origin", report, &mut tainted);
    let control = table::<ControlSection>(root, "control", report, &mut tainted);
    let publish = table::<PublishSection>(root, "publish", report, &mut tainted);
    let (output, output_src) = array::<Output>(root, "output", report, &mut tainted);
    let config = Config {
        encoder,
        input,
        timeline,
        rendition,
        audio,
        origin,
        control,
        publish,
        output,
    };
    let sections = Sections {
        spans: Spans::new(doc),
        tainted,
        rendition_names: element_names(root, "rendition"),
        output_names: element_names(root, "output"),
        rendition_src,
        output_src,
    };
    (config, sections)
}

/// The `name` of each element of an array-of-tables section.
fn element_names(root: &DeTable<'_>, section: &str) -> Vec<Option<String>> {
    match root.get(section).map(|v| v.get_ref()) {
        Some(DeValue::Array(items)) => items
            .iter()
            .map(|item| Some(item.get_ref().get("name")?.get_ref().as_str()?.to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A table section; its default when absent or beyond repair.
fn table<T: DeserializeOwned + Default>(
    root: &DeTable<'_>,
    name: &'static str,
    report: &mut Report,
    tainted: &mut HashSet<String>,
) -> T {
    let Some(value) = root.get(name) else {
        return T::default();
    };
    let at = KeyPath::key(name);
    let mut value = value.clone();
    if matches!(name, "origin" | "control") {
        precheck_allow(&mut value, &at, report, tainted);
    }
    match deserialize_reporting::<T>(&value, &at, report, tainted) {
        Some(t) => t,
        None => {
            tainted.insert(name.to_string());
            T::default()
        }
    }
}

/// An array-of-tables section (`[[rendition]]`, `[[output]]`): each element on its own.
/// Returns the elements that could be read and the file index of each.
fn array<T: DeserializeOwned>(
    root: &DeTable<'_>,
    name: &'static str,
    report: &mut Report,
    tainted: &mut HashSet<String>,
) -> (Vec<T>, Vec<usize>) {
    let Some(value) = root.get(name) else {
        return (Vec::new(), Vec::new());
    };
    let DeValue::Array(items) = value.get_ref() else {
        report.error(
            Some(value.span()),
            format!("`{name}` must be an array of tables, written as [[{name}]] sections"),
        );
        tainted.insert(name.to_string());
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut src = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = KeyPath::index(name, i);
        match deserialize_reporting::<T>(item, &at, report, tainted) {
            Some(t) => {
                out.push(t);
                src.push(i);
            }
            None => {
                tainted.insert(at.to_string());
            }
        }
    }
    (out, src)
}

/// Deserializes `value`, reporting each error and retrying without the offending item until it
/// succeeds or cannot make progress. Every removed key is added to `tainted`.
fn deserialize_reporting<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    at: &KeyPath,
    report: &mut Report,
    tainted: &mut HashSet<String>,
) -> Option<T> {
    let mut value = value.clone();
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let err = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let message = err.message();
        if let Some(field) = missing_field(message) {
            if !removed.iter().any(|r| r == field) {
                report.error(
                    err.span(),
                    format!("missing required key `{field}` in {}", describe(at)),
                );
            }
            return None;
        }
        let path = err.span().and_then(|s| locate(value.get_ref(), &s));
        report.error(err.span(), humanize(message, at, path.as_deref()));
        match path {
            Some(p) if remove(value.get_mut(), &p) => {
                if let Some(Seg::Key(k)) = p.first() {
                    removed.push(k.clone());
                    tainted.insert(at.join(k).to_string());
                }
            }
            _ => return None,
        }
    }
    None
}

/// Checks each entry of the section's `allow` array on its own, so that every bad entry is
/// reported at its own position, and drops the bad ones before the section is deserialized.
fn precheck_allow(
    value: &mut Spanned<DeValue<'_>>,
    at: &KeyPath,
    report: &mut Report,
    tainted: &mut HashSet<String>,
) {
    let DeValue::Table(table) = value.get_mut() else {
        return;
    };
    let Some(allow) = table.get_mut("allow") else {
        return;
    };
    let DeValue::Array(items) = allow.get_mut() else {
        return;
    };
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(Err(e)) = item.get_ref().as_str().map(AllowEntry::parse) {
            report.error(
                Some(item.span()),
                format!("`{}`: {e}", at.join("allow").at(i)),
            );
            bad.push(i);
        }
    }
    if !bad.is_empty() {
        tainted.insert(at.join("allow").to_string());
        for i in bad.into_iter().rev() {
            remove(value.get_mut(), &[Seg::Key("allow".into()), Seg::Index(i)]);
        }
    }
}

/// `[input]` or `[[rendition]] #2` for messages.
fn describe(at: &KeyPath) -> String {
    match at.0.as_slice() {
        [Seg::Key(k), Seg::Index(i)] => format!("[[{k}]] #{}", i + 1),
        _ => format!("[{at}]"),
    }
}

/// The field of serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Rewrites serde's messages into ours: unknown keys with the legal keys, types in words, and
/// the key path in front.
fn humanize(message: &str, at: &KeyPath, path: Option<&[Seg]>) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let names: Vec<&str> = expected
            .trim_start_matches(',')
            .trim()
            .trim_start_matches("expected one of")
            .trim_start_matches("expected")
            .split([',', ' '])
            .filter(|s| *s != "or")
            .map(|s| s.trim().trim_matches('`'))
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        return format!(
            "unknown key `{field}` in {} (legal values: {})",
            describe(at),
            legal(&names)
        );
    }
    let mut text = message.to_string();
    for (from, to) in [
        ("expected u16", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
        ("expected a borrowed string", "expected a string"),
        ("expected path string", "expected a string"),
        ("expected a string", "expected a string"),
    ] {
        text = text.replace(from, to);
    }
    if let Some(i) = text.find("expected struct ") {
        text.replace_range(i.., "expected a table");
    }
    let full = match path {
        Some(p) => at.extend(p),
        None => at.clone(),
    };
    format!("`{full}`: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes_unknown_fields() {
        let at = KeyPath::key("input");
        assert_eq!(
            humanize(
                "unknown field `widht`, expected one of `kind`, `width`",
                &at,
                None
            ),
            "unknown key `widht` in [input] (legal values: kind, width)"
        );
        assert_eq!(
            humanize(
                "unknown field `x`, expected `name`",
                &KeyPath::index("rendition", 1),
                None
            ),
            "unknown key `x` in [[rendition]] #2 (legal values: name)"
        );
        assert_eq!(
            humanize("unknown field `x`, expected `name` or `pair`", &at, None),
            "unknown key `x` in [input] (legal values: name, pair)"
        );
        assert_eq!(
            humanize(
                "invalid type: string \"a\", expected u32",
                &at,
                Some(&[Seg::Key("width".into())])
            ),
            "`input.width`: invalid type: string \"a\", expected a non-negative integer"
        );
    }
}
