//! The Prometheus alert rules and the Grafana dashboard in `contrib/`: the rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), and every metric the
//! rules and the dashboard name is one the daemon writes (src/control/metrics/), so a renamed
//! metric cannot leave an alert that never fires.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_root().join("contrib/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian package prometheus, scripts/install-deps) cannot run: {e}")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (ok, text) = promtool(&["check", "rules", "twincast.rules.yml"]);
    assert!(ok, "promtool check rules failed:\n{text}");
    let (ok, text) = promtool(&["test", "rules", "twincast.rules.test.yml"]);
    assert!(ok, "promtool test rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "promtool said:\n{text}");
}

/// Every `twincast_<name>` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("twincast_") {
        let tail = &rest[at + "twincast_".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if end > 0 {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn rules_and_dashboard_name_only_metrics_the_daemon_writes() {
    // The exposition is written by the files of src/control/metrics/ (one per section).
    let dir = repo_root().join("src/control/metrics");
    let mut source = String::new();
    for entry in std::fs::read_dir(&dir).expect("src/control/metrics/") {
        let path = entry.expect("src/control/metrics/ entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            source += &std::fs::read_to_string(&path).expect("a metrics source file");
        }
    }
    assert!(
        source.contains("fn "),
        "no metrics source read from {dir:?}"
    );
    for file in [
        "contrib/prometheus/twincast.rules.yml",
        "contrib/prometheus/twincast.rules.test.yml",
        "contrib/grafana/twincast.json",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect(file);
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{file} names only {names:?}");
        let unknown: Vec<_> = names
            .iter()
            .filter(|n| !source.contains(&format!("\"{n}\"")))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics src/control/metrics/ does not write: {unknown:?}"
        );
    }
}

#[test]
fn dashboard_is_valid_json_with_panels() {
    let text = std::fs::read_to_string(repo_root().join("contrib/grafana/twincast.json"))
        .expect("contrib/grafana/twincast.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let panels = v["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for p in panels {
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has no query",
            p["title"]
        );
    }
}
