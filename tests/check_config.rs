//! `twincast check-config FILE` driven through the real binary: the shipped configuration is
//! valid, and each file in `testdata/config/` exits 78 naming the right `line:column`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `twincast check-config PATH`; returns (exit code, stdout + stderr).
fn check(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run twincast");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn testdata(name: &str) -> PathBuf {
    root().join("testdata/config").join(name)
}

/// Asserts that `file` is rejected with exit 78 and that an error line at `line:column`
/// contains every one of `needles`.
fn assert_error(file: &str, line_col: &str, needles: &[&str]) {
    let path = testdata(file);
    let (code, text) = check(&path);
    assert_eq!(code, 78, "{file}: exit code\n{text}");
    let prefix = format!("{}:{line_col}: error: ", path.display());
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{file}: no error at {line_col}\n{text}"));
    for n in needles {
        assert!(line.contains(n), "{file}: {n:?} missing from {line:?}");
    }
    assert!(
        text.contains("invalid configuration"),
        "{file}: no summary\n{text}"
    );
}

#[test]
fn shipped_config_is_valid() {
    let (code, text) = check(&root().join("config/twincast.toml"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(!text.contains(": warning: "), "{text}");
}

#[test]
fn unknown_key() {
    assert_error(
        "unknown-key.toml",
        "4:1",
        &["widht", "legal values:", "width"],
    );
}

#[test]
fn wrong_type() {
    assert_error("wrong-type.toml", "9:15", &["audio.sample_rate", "integer"]);
}

#[test]
fn syntax_error() {
    assert_error("syntax-error.toml", "3:8", &["TOML syntax error"]);
}

#[test]
fn fractional_gop() {
    assert_error(
        "fractional-gop.toml",
        "6:7",
        &[
            "timeline.gop",
            "whole number of frames",
            "30000/1001",
            "2002ms",
        ],
    );
}

#[test]
fn duplicate_rendition() {
    assert_error(
        "duplicate-rendition.toml",
        "9:8",
        &["duplicate rendition name \"720p\""],
    );
}

#[test]
fn bad_cidr() {
    assert_error(
        "bad-cidr.toml",
        "9:23",
        &["origin.allow[1]", "10.0.0.0/33", "legal forms"],
    );
}

#[test]
fn bad_listen_address() {
    assert_error(
        "bad-listen.toml",
        "9:10",
        &["control.listen", "localhost:9090", "IP:port"],
    );
}

#[test]
fn dvr_out_of_range() {
    assert_error(
        "dvr-out-of-range.toml",
        "9:14",
        &["dvr_window", "26h", "5m..=25h"],
    );
}

#[test]
fn dvr_ram_longer_than_the_window() {
    assert_error(
        "dvr-ram-too-long.toml",
        "10:11",
        &["dvr_ram", "10m", "0s..=1h", "at most dvr_window"],
    );
}

#[test]
fn unknown_encoder() {
    assert_error(
        "unknown-encoder.toml",
        "7:11",
        &[
            "x265",
            "legal values: auto, x264, openh264, vaapi, v4l2, nvv4l2",
        ],
    );
}

#[test]
fn wrong_url_scheme_without_secrets() {
    assert_error(
        "wrong-url-scheme.toml",
        "12:13",
        &["output[0].secondary", "rtmp://, rtmps://"],
    );
    let (_, text) = check(&testdata("wrong-url-scheme.toml"));
    assert!(
        !text.contains("s3cret") && !text.contains("hunter2"),
        "secret printed:\n{text}"
    );
}

#[test]
fn unknown_rendition_in_output() {
    assert_error(
        "unknown-rendition-in-output.toml",
        "12:23",
        &["unknown rendition \"1080p\"", "legal values: 720p"],
    );
}

#[test]
fn many_errors_in_different_sections_all_reported() {
    let path = testdata("many-errors.toml");
    let (code, text) = check(&path);
    assert_eq!(code, 78, "{text}");
    let expected = [
        "4:1", "13:17", "20:11", "23:8", "24:9", "25:10", "26:16", "29:15", "32:10", "33:14",
        "34:10", "34:53", "38:12",
    ];
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": error: ")).collect();
    for lc in expected {
        let prefix = format!("{}:{lc}: error: ", path.display());
        assert!(
            errors.iter().any(|l| l.starts_with(&prefix)),
            "no error at {lc}\n{text}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{text}");
    assert!(text.contains("13 errors"), "{text}");
    // Sorted by position.
    let positions: Vec<(usize, usize)> = errors
        .iter()
        .map(|l| {
            let rest = &l[path.display().to_string().len() + 1..];
            let mut it = rest.split(':');
            let line = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let col = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            (line, col)
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
}

#[test]
fn warnings_exit_zero() {
    let path = testdata("warnings-only.toml");
    let (code, text) = check(&path);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{}:6:16: warning: ", path.display())),
        "{text}"
    );
    assert!(text.contains("27000 kbit/s"), "{text}");
}

#[test]
fn unreadable_file_exits_78() {
    let (code, text) = check(&testdata("does-not-exist.toml"));
    assert_eq!(code, 78, "{text}");
    assert!(text.contains("cannot read"), "{text}");
}
