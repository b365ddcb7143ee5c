//! Checks of the operations files that need no daemon: the config reference cannot drift from
//! the config structs, the Yocto layer passes oelint-adv (its BitBake-free checks are in
//! tests/yocto_layer.rs), the troubleshooting guide has a heading per operator-facing error.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;

/// (struct name, doc heading) for every table of the configuration file.
const SECTIONS: [(&str, &str); 9] = [
    ("EncoderSection", "## `[encoder]`"),
    ("InputSection", "## `[input]`"),
    ("TimelineSection", "## `[timeline]`"),
    ("Rendition", "## `[[rendition]]`"),
    ("AudioSection", "## `[audio]`"),
    ("OriginSection", "## `[origin]`"),
    ("ControlSection", "## `[control]`"),
    ("PublishSection", "## `[publish]`"),
    ("Output", "## `[[output]]`"),
];

/// The `pub` field names of `pub struct <name> { ... }` in Rust source.
fn struct_fields(source: &str, name: &str) -> BTreeSet<String> {
    let start = source
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name} in src/config/mod.rs"));
    let body = &source[start..];
    let end = body.find("\n}").expect("end of struct");
    body[..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(f, _)| f.trim().to_string()))
        .filter(|f| !f.contains(' ') && !f.contains('('))
        .collect()
}

/// Keys in the first column of the tables under `heading` (up to the next `## `).
fn doc_keys(doc: &str, heading: &str) -> BTreeSet<String> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/ref/config.md has no heading {heading}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn config_reference_documents_every_key_and_no_other() {
    let source = std::fs::read_to_string(repo_root().join("src/config/mod.rs")).unwrap();
    let doc = std::fs::read_to_string(repo_root().join("docs/ref/config.md")).unwrap();
    let top = struct_fields(&source, "Config");
    assert_eq!(
        top.len(),
        SECTIONS.len(),
        "a section without a doc mapping: {top:?}"
    );
    for (name, heading) in SECTIONS {
        let fields = struct_fields(&source, name);
        let keys = doc_keys(&doc, heading);
        let undocumented: Vec<_> = fields.difference(&keys).collect();
        let stale: Vec<_> = keys.difference(&fields).collect();
        assert!(
            undocumented.is_empty(),
            "{heading}: keys of {name} missing from docs/ref/config.md: {undocumented:?}"
        );
        assert!(
            stale.is_empty(),
            "{heading}: docs/ref/config.md documents keys {name} does not have: {stale:?}"
        );
    }
}

/// oelint-adv from PyPI in a venv under target/ (created once).
fn oelint() -> std::path::PathBuf {
    let venv = repo_root().join("target/oelint-venv");
    let bin = venv.join("bin/oelint-adv");
    if !bin.exists() {
        let (ok, _, err) = run("python3", &["-m", "venv", venv.to_str().unwrap()]);
        assert!(ok, "python3 -m venv: {err}");
        let pip = venv.join("bin/pip");
        let (ok, out, err) = run(pip.to_str().unwrap(), &["install", "--quiet", "oelint-adv"]);
        assert!(ok, "pip install oelint-adv: {out}{err}");
    }
    bin
}

#[test]
fn yocto_layer_has_no_oelint_errors() {
    let layer = repo_root().join("yocto/meta-twincast");
    assert!(layer.join("conf/layer.conf").exists());
    let recipes = [
        "recipes-multimedia/twincast/twincast_0.1.0.bb",
        "recipes-core/packagegroups/packagegroup-twincast.bb",
        "recipes-multimedia/gstreamer/gstreamer1.0-plugins-ugly_%.bbappend",
        "recipes-multimedia/gstreamer/gstreamer1.0-plugins-bad_%.bbappend",
    ];
    let out = Command::new(oelint())
        .current_dir(&layer)
        .args(["--quiet", "--suppress", "oelint.vars.homepageping"])
        .args(recipes)
        .output()
        .expect("oelint-adv runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(":error:")).collect();
    assert!(
        errors.is_empty(),
        "oelint-adv errors:\n{}",
        errors.join("\n")
    );
    let recipe = std::fs::read_to_string(layer.join(recipes[0])).unwrap();
    for needle in [
        "inherit cargo",
        "systemd",
        "require ${BPN}-crates.inc",
        "twincast.service",
        "twincast.toml",
        "gstreamer1.0-plugins-ugly-x264",
    ] {
        assert!(recipe.contains(needle), "recipe lacks {needle}");
    }
}

/// The arguments of a macro call: `text` starts right after its `(`; ends at the matching `)`.
fn macro_args(text: &str) -> &str {
    let (mut depth, mut in_string, mut escaped) = (1, false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// String literals in `args` (escapes kept as written).
fn literals(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(start) = rest.find('"') {
        let body = &rest[start + 1..];
        let mut escaped = false;
        let Some(end) = body.char_indices().find_map(|(i, c)| {
            let end = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            end.then_some(i)
        }) else {
            break;
        };
        out.push(&body[..end]);
        rest = &body[end + 1..];
    }
    out
}

/// Operator-facing messages: the format strings of `log::error!`/`log::warn!` in the daemon and
/// the CLI's `eprintln!` (the longest literal of the call, so structured key-values and
/// targets are skipped), cut at the first placeholder.
fn operator_messages(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            operator_messages(&path, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests print nothing to operators.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for macro_name in ["log::error!(", "log::warn!(", "eprintln!("] {
            let mut rest = text;
            while let Some(i) = rest.find(macro_name) {
                rest = &rest[i + macro_name.len()..];
                let args = macro_args(rest);
                let Some(message) = literals(args).into_iter().max_by_key(|l| l.len()) else {
                    continue;
                };
                let fixed = message
                    .split(['{', '\\'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_end_matches(':')
                    .trim();
                if fixed.len() >= 6 {
                    out.insert(fixed.to_string());
                }
            }
        }
    }
}

#[test]
fn troubleshooting_has_a_heading_per_operator_message() {
    let guide = std::fs::read_to_string(repo_root().join("docs/guide/troubleshooting.md")).unwrap();
    let headings: Vec<&str> = guide
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let mut messages = BTreeSet::new();
    operator_messages(&repo_root().join("src"), &mut messages);
    let missing: Vec<&String> = messages
        .iter()
        .filter(|m| !headings.iter().any(|h| h.contains(m.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/guide/troubleshooting.md has no heading for:\n{}",
        missing
            .iter()
            .map(|m| format!("  {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
