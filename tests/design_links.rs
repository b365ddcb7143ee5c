//! Every citation of the design points inside this repository (docs/design/README.md, *Citing
//! the design from code*): no file cites the design document that lived outside the repository,
//! every `docs/…` path a file names exists, every heading cited as `docs/<file>.md, *Heading*` (or
//! `"Heading"`) is a heading of that file (or the start of one), and every relative link in the
//! Markdown files resolves.

use std::path::{Path, PathBuf};

/// Trees and files whose text is checked (sources, scripts, units, packaging, docs).
const TREES: [&str; 11] = [
    "src",
    "media",
    "tests",
    "scripts",
    "fuzz",
    "systemd",
    "packaging",
    "contrib",
    "yocto",
    "config",
    "docs",
];
const FILES: [&str; 3] = ["README.md", "ARCHITECTURE.md", "Cargo.toml"];
/// Folders never read: build output, installed packages, binary test data.
const SKIP_DIRS: [&str; 8] = [
    "target",
    "node_modules",
    ".git",
    "seeds",
    "corpus",
    "artifacts",
    "testdata",
    "assets",
];

/// Citations of the old design document (split so that this file does not cite it itself).
const OUTSIDE: [&str; 2] = [concat!("shared", "/design"), concat!("design ", "§")];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name) {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Every text file that is checked, with its text (files that are not UTF-8 are skipped).
fn texts() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut paths = Vec::new();
    for tree in TREES {
        walk(&root.join(tree), &mut paths);
    }
    paths.extend(FILES.iter().map(|f| root.join(f)));
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The text with comment line breaks joined: a newline, its indentation and a leading comment
/// marker (`//!`, `///`, `//`, `#`) become one space, so a citation wrapped across comment lines
/// reads as one.
fn joined(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\n') {
        out.push_str(&rest[..i]);
        out.push(' ');
        let line = rest[i + 1..].trim_start();
        rest = ["//!", "///", "//", "#"]
            .iter()
            .find_map(|m| line.strip_prefix(m))
            .unwrap_or(line);
    }
    out.push_str(rest);
    out
}

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// One `docs/…` path named in a text, and the heading cited right after it, if any.
#[derive(Debug)]
struct Citation {
    path: String,
    heading: Option<String>,
}

fn citations(text: &str) -> Vec<Citation> {
    let text = joined(text);
    let mut out = Vec::new();
    for (at, _) in text.match_indices("docs/") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| path_char(c) || c == '$') {
            continue; // part of a longer path or a shell variable
        }
        let len = text[at..]
            .find(|c: char| !path_char(c))
            .unwrap_or(text.len() - at);
        let path = text[at..at + len].trim_end_matches('.').to_string();
        if path == "docs/" || path == "docs" {
            continue;
        }
        // A heading follows the path after a comma or a space (`<path>, *H*` or `<path> "H"`);
        // a quote right after the path closes a string literal.
        let tail = &text[at + path.len()..];
        let separated = tail.starts_with([',', ' ']);
        let after = tail.trim_start_matches(',').trim_start();
        let heading = if path.ends_with(".md") && separated {
            after
                .chars()
                .next()
                .filter(|c| *c == '*' || *c == '"')
                .and_then(|q| {
                    let body = &after[1..];
                    body.find(q)
                        .filter(|end| *end > 0 && *end < 200)
                        .map(|end| body[..end].split_whitespace().collect::<Vec<_>>().join(" "))
                })
        } else {
            None
        };
        out.push(Citation { path, heading });
    }
    out
}

/// The headings of a Markdown text, whitespace collapsed.
fn headings(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn nothing_cites_the_design_outside_the_repository() {
    let mut found = Vec::new();
    for (path, text) in texts() {
        for (n, line) in text.lines().enumerate() {
            if OUTSIDE.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{}: {}", rel(&path), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite a file of docs/design/ instead (docs/design/README.md maps the old sections):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_cited_docs_file_and_heading_exists() {
    let root = root();
    let mut problems = Vec::new();
    let (mut paths, mut with_heading) = (0, 0);
    for (path, text) in texts() {
        for c in citations(&text) {
            paths += 1;
            let target = root.join(&c.path);
            if !target.exists() {
                problems.push(format!("{}: {} does not exist", rel(&path), c.path));
                continue;
            }
            let Some(heading) = c.heading else {
                continue;
            };
            with_heading += 1;
            let doc = std::fs::read_to_string(&target).unwrap_or_default();
            if !headings(&doc).iter().any(|h| h.starts_with(&heading)) {
                problems.push(format!(
                    "{}: {} has no heading {heading:?}",
                    rel(&path),
                    c.path
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken citations:\n{}",
        problems.join("\n")
    );
    // The scan itself works: the tree cites docs/ in many places, many with a heading.
    assert!(paths >= 60, "only {paths} docs/ citations found");
    assert!(
        with_heading >= 30,
        "only {with_heading} heading citations found"
    );
}

#[test]
fn every_relative_markdown_link_resolves() {
    let mut problems = Vec::new();
    let mut links = 0;
    for (path, text) in texts() {
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else {
                continue;
            };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            links += 1;
            if !dir.join(target).exists() {
                problems.push(format!("{}: link to {target} does not resolve", rel(&path)));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(links >= 20, "only {links} relative links found");
}

#[test]
fn citations_are_read_across_comment_lines() {
    let text = "//! see docs/design/timeline.md,\n//! *The grid\n//! clock*. Also `$docs/x.1` and\n/// docs/ref/origin.md \"URLs\" and docs/guide/.";
    let found = citations(text);
    let got: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|c| (c.path.as_str(), c.heading.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("docs/design/timeline.md", Some("The grid clock")),
            ("docs/ref/origin.md", Some("URLs")),
            ("docs/guide/", None),
        ]
    );
}
