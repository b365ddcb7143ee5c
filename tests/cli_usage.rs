//! Exit codes of the command line (docs/design/operations.md, README *Exit codes*): usage errors
//! are 64 (EX_USAGE), `--help` and `--version` are 0 on stdout.

use std::process::Command;

fn twincast(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .args(args)
        .output()
        .expect("run twincast");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_64_with_the_reason_on_stderr() {
    for (args, says) in [
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
        (&["run", "--bogus"][..], "unexpected argument '--bogus'"),
        (
            &["check-config"][..],
            "required arguments were not provided",
        ),
        (
            &["status", "--control", "not-an-address"][..],
            "invalid value 'not-an-address'",
        ),
        (&[][..], "Usage: twincast"),
    ] {
        let (code, stdout, stderr) = twincast(args);
        assert_eq!(code, Some(64), "twincast {args:?}: {stderr}");
        assert!(stderr.contains(says), "twincast {args:?}: {stderr}");
        assert_eq!(stdout, "", "twincast {args:?}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [&["--help"][..], &["run", "--help"][..], &["--version"][..]] {
        let (code, stdout, stderr) = twincast(args);
        assert_eq!(code, Some(0), "twincast {args:?}: {stderr}");
        assert!(!stdout.is_empty(), "twincast {args:?}");
    }
}

/// The README's table lists every code src/exit.rs defines, with the same number.
#[test]
fn readme_exit_table_matches_src_exit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let exit = std::fs::read_to_string(root.join("src/exit.rs")).expect("src/exit.rs");
    let codes: Vec<(String, String)> = exit
        .lines()
        .filter_map(|l| l.strip_prefix("pub const EX_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(": u8 = ")?;
            Some((format!("EX_{name}"), rest.trim_end_matches(';').to_string()))
        })
        .collect();
    assert!(codes.len() >= 6, "{codes:?}");
    for (name, value) in codes {
        let row = format!("| {value} | `{name}` |");
        assert!(readme.contains(&row), "README.md has no row {row:?}");
    }
}
