//! The Debian package (issue 11): `scripts/build-deb` builds it with cargo-deb and lintian
//! finds no error in it; `scripts/test-deb` installs it with `apt-get install ./twincast_*.deb`
//! into a clean Debian 12 root (debootstrap minbase, cached) and runs `twincast check-config`
//! and `twincast probe` there. The package carries every `systemd/*.service` of the tree, the
//! sysusers and tmpfiles files, the config as a conffile, man pages and completions.
//!
//! Needs root (chroot, bind mounts) and the Debian mirror; without root it says so and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(script: &str, args: &[&Path]) -> (bool, String, String) {
    let out = Command::new(repo_root().join(script))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{script} cannot run: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last `n` lines of `text` (the installers are verbose).
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn debian_package_builds_lint_clean_and_installs_into_a_clean_debian_12() {
    if !is_root() {
        eprintln!(
            "SKIPPED: the package install test needs root (chroot into a debootstrap root); CI runs as root"
        );
        return;
    }
    // The dev-profile binary cargo built for the tests: the packaging, the lint and the install
    // do not depend on the profile, and CI makes no second, release build for them. A box
    // gets the release profile, scripts/build-deb's default.
    let (ok, stdout, stderr) = run(
        "scripts/build-deb",
        &[Path::new("--profile"), Path::new("dev")],
    );
    assert!(
        ok,
        "scripts/build-deb failed:\n{stdout}\n{}",
        tail(&stderr, 80)
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    let deb = if deb.is_absolute() {
        deb
    } else {
        repo_root().join(deb)
    };
    assert!(deb.is_file(), "no package at {}", deb.display());
    assert!(
        !stderr.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{stderr}"
    );

    // Every unit of the tree is in the package (the template unit too, when there is one).
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let units: Vec<String> = std::fs::read_dir(repo_root().join("systemd"))
        .expect("systemd/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service"))
        .collect();
    assert!(!units.is_empty());
    for unit in &units {
        assert!(
            listing.contains(&format!("./usr/lib/systemd/system/{unit}")),
            "{unit} missing from the package:\n{listing}"
        );
    }
    for file in [
        "./usr/bin/twincast",
        "./usr/lib/sysusers.d/twincast.conf",
        "./usr/lib/tmpfiles.d/twincast.conf",
        "./etc/twincast/twincast.toml",
        "./usr/share/man/man1/twincast.1.gz",
        "./usr/share/man/man1/twincast-run.1.gz",
        "./usr/share/bash-completion/completions/twincast",
        "./usr/share/zsh/vendor-completions/_twincast",
        "./usr/share/fish/vendor_completions.d/twincast.fish",
    ] {
        assert!(listing.contains(file), "{file} missing:\n{listing}");
    }

    let (ok, stdout, stderr) = run("scripts/test-deb", &[&deb]);
    assert!(
        ok && stdout.contains("test-deb: ok"),
        "scripts/test-deb failed:\n{stdout}\n{}",
        tail(&stderr, 120)
    );
    assert!(
        stderr.contains("configuration is valid"),
        "check-config in the root:\n{}",
        tail(&stderr, 120)
    );
    assert!(
        stderr.contains("encoder = \"auto\" picks:"),
        "probe in the root found no H.264 encoder:\n{}",
        tail(&stderr, 60)
    );
}

/// The man pages and completions the package carries (`twincast generate-docs`, run by
/// scripts/build-deb): one page per visible command, completions that offer every visible
/// command and not the hidden one, a bash file bash can parse.
#[test]
fn generated_man_pages_and_completions_cover_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .expect("twincast generate-docs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let main_page = read("twincast.1");
    assert!(main_page.contains(".TH TWINCAST 1"), "{main_page}");
    for command in ["run", "probe", "check-config", "status"] {
        let page = read(&format!("twincast-{command}.1"));
        let roff_name = format!("twincast\\-{}", command.replace('-', "\\-"));
        assert!(page.contains(&roff_name), "{page}");
        for completion in ["twincast.bash", "_twincast", "twincast.fish"] {
            assert!(
                read(completion).contains(command),
                "{completion} lacks {command}"
            );
        }
    }
    assert!(read("twincast-run.1").contains("/etc/twincast/twincast.toml"));
    for completion in ["twincast.bash", "_twincast", "twincast.fish"] {
        assert!(!read(completion).contains("generate-docs"), "{completion}");
    }
    assert!(!dir.path().join("twincast-generate-docs.1").exists());
    let bash = Command::new("bash")
        .arg("-n")
        .arg(dir.path().join("twincast.bash"))
        .status()
        .expect("bash");
    assert!(bash.success(), "bash cannot parse the completion");
}
