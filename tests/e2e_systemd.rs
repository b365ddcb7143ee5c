//! The shipped units under a real systemd 252, PID 1 of a container (`scripts/systemd-container`,
//! docs/ref/systemd.md), tested through `systemctl` and `journalctl -o json`: READY only after
//! the first fragment, `systemctl reload` moving a push, the watchdog killing a frozen daemon,
//! a `LoadCredential=` stream key that never reaches the journal, the journal's fields, clock
//! sync readable inside the sandbox, two `twincast@` instances side by side, and the state
//! directory lock. Plus the lock outside any container.
//!
//! The container tests need root, `systemd-nspawn` and `debootstrap` (`scripts/install-deps`);
//! without them they say why and skip. CI runs as root and has both. The container root is
//! made once by the script (about 3 minutes) and cached under /var/cache/twincast-ci.
//!
//! The binary is the debug build cargo made for this test (`CARGO_BIN_EXE_twincast`), bound
//! read-only into the container: the watchdog and READY timings hold with it (e2e_ops runs the
//! same build under its watchdog), and CI builds no second, release profile for one test.
//!
//! Peers: nginx-rtmp (default settings) and curl are the host's, run inside the container's
//! network namespace (`nsenter -n`), so they and the daemon share the container's private
//! loopback; fixed ports are safe there (nothing else lives in that namespace).

mod common;
mod peers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = "scripts/systemd-container";
/// Ports inside the container's own network namespace.
const RTMP_PORT: u16 = 1935;

/// Why a container test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root (systemd-nspawn, debootstrap); CI runs it as root".into());
    }
    for tool in ["systemd-nspawn", "debootstrap", "nsenter", "curl", "nginx"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is missing: run scripts/install-deps"));
        }
    }
    None
}

/// A booted container; powered off on drop.
struct Container {
    state: tempfile::TempDir,
    leader: String,
    nginx: Option<Child>,
}

impl Container {
    /// Boots one (making the root first if needed), or says why not and returns `None`.
    fn boot(test: &str) -> Option<Container> {
        if let Some(why) = skip_reason() {
            eprintln!("{test}: skipped: {why}");
            return None;
        }
        let t = Instant::now();
        let root = Command::new(repo_root().join(SCRIPT))
            .arg("root")
            .output()
            .expect("run scripts/systemd-container root");
        assert!(
            root.status.success(),
            "container root: {}",
            String::from_utf8_lossy(&root.stderr)
        );
        eprintln!("{test}: container root ready in {:?}", t.elapsed());
        let state = tempfile::tempdir().expect("state dir");
        let bin = Path::new(env!("CARGO_BIN_EXE_twincast"))
            .parent()
            .expect("binary folder")
            .to_path_buf();
        let t = Instant::now();
        let start = Command::new(repo_root().join(SCRIPT))
            .arg("start")
            .arg(state.path())
            .arg(&bin)
            .output()
            .expect("run scripts/systemd-container start");
        let c = Container {
            leader: std::fs::read_to_string(state.path().join("leader"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            state,
            nginx: None,
        };
        assert!(
            start.status.success() && !c.leader.is_empty(),
            "container boot: {}",
            String::from_utf8_lossy(&start.stderr)
        );
        eprintln!("{test}: systemd running in {:?}", t.elapsed());
        c.install();
        Some(c)
    }

    /// A command inside every namespace of the container.
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader, "-a"])
            .args(args)
            .output()
            .expect("nsenter")
    }

    /// A shell line inside the container; panics with its output when it fails.
    fn sh(&self, line: &str) -> String {
        let out = self.cmd(&["sh", "-c", line]);
        assert!(
            out.status.success(),
            "`{line}` failed in the container ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file inside the container.
    fn write(&self, path: &str, text: &str, mode: &str) {
        let mut child = Command::new("nsenter")
            .args(["-t", &self.leader, "-a", "sh", "-c"])
            .arg(format!(
                "mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}"
            ))
            .stdin(Stdio::piped())
            .spawn()
            .expect("nsenter");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        assert!(child.wait().is_ok_and(|s| s.success()), "write {path}");
    }

    /// A host program in the container's network namespace only (host files, its loopback).
    fn net(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.leader, "-n", program]);
        c
    }

    /// `GET` on the container's loopback with the host's curl; `None` unless 2xx.
    fn get(&self, url: &str) -> Option<String> {
        let out = self
            .net("curl")
            .args(["-sf", "--max-time", "5", url])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn status(&self, control_port: u16) -> Option<serde_json::Value> {
        self.get(&format!("http://127.0.0.1:{control_port}/status"))
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// One property of a unit (`systemctl show -P`).
    fn show(&self, unit: &str, property: &str) -> String {
        self.sh(&format!("systemctl show -P {property} {unit}"))
            .trim()
            .to_string()
    }

    /// The journal as JSON records (`journalctl -o json` with `args`).
    fn journal(&self, args: &str) -> Vec<serde_json::Value> {
        self.sh(&format!("journalctl --no-pager -o json {args}"))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The shipped binary, units, sysusers and tmpfiles files, as a package would install them.
    fn install(&self) {
        let read = |p: &str| std::fs::read_to_string(repo_root().join(p)).expect(p);
        self.sh("ln -sf /opt/twincast/twincast /usr/bin/twincast");
        self.write(
            "/usr/lib/sysusers.d/twincast.conf",
            &read("systemd/twincast.sysusers"),
            "644",
        );
        self.write(
            "/usr/lib/tmpfiles.d/twincast.conf",
            &read("systemd/twincast.tmpfiles"),
            "644",
        );
        for unit in ["twincast.service", "twincast@.service"] {
            self.write(
                &format!("/etc/systemd/system/{unit}"),
                &read(&format!("systemd/{unit}")),
                "644",
            );
        }
        // A watchdog kill is SIGABRT: no core file in the overlay (docs/ref/systemd.md).
        for unit in ["twincast.service", "twincast@.service"] {
            self.write(
                &format!("/etc/systemd/system/{unit}.d/test.conf"),
                "[Service]\nLimitCORE=0\n",
                "644",
            );
        }
        self.sh("systemd-sysusers && systemd-tmpfiles --create twincast.conf && systemctl daemon-reload");
    }

    /// nginx-rtmp with its defaults (listener and a recording application) in the container's
    /// network; its files stay on the host, in `dir`.
    fn start_nginx(&mut self, dir: &Path) -> PathBuf {
        let records = dir.join("records");
        std::fs::create_dir_all(&records).expect("records");
        let conf = format!(
            "load_module {module};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{RTMP_PORT};\n\
             application live {{ live on; record all; record_path {records}; record_unique on; }} }} }}\n",
            module = peers::RTMP_MODULE,
            dir = dir.display(),
            records = records.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = self
            .net("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.nginx = Some(child);
        wait_for("nginx in the container", Duration::from_secs(10), || {
            self.net("bash")
                .args(["-c", &format!(": </dev/tcp/127.0.0.1/{RTMP_PORT}")])
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(|s| s.success())
        });
        records
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut n) = self.nginx.take() {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = Command::new(repo_root().join(SCRIPT))
            .arg("stop")
            .arg(self.state.path())
            .status();
    }
}

/// A small daemon config: the test source, one 320x180 rendition, one-fragment segments.
fn config(name: &str, origin_port: u16, control_port: u16, extra: &str) -> String {
    format!(
        r#"[encoder]
name = "{name}"
pair = "ci"
{extra}
[input]
kind = "test"
audio = "test"
width = 320
height = 180
framerate = "30/1"

[timeline]
gop = "1s"

[[rendition]]
name = "180p"
width = 320
height = 180
bitrate_kbps = 250

[audio]
bitrate_kbps = 64

[origin]
listen = "127.0.0.1:{origin_port}"
segment_fragments = 1

[control]
listen = "127.0.0.1:{control_port}"
"#
    )
}

fn rtmp_output(stream: &str) -> String {
    format!(
        "\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\n\
         primary = \"rtmp://127.0.0.1:{RTMP_PORT}/live\"\nstream = \"{stream}\"\nrenditions = [\"180p\"]\n"
    )
}

/// Wall time (µs since the epoch) at which the playlist's first segment ends:
/// `#EXT-X-PROGRAM-DATE-TIME` (`YYYY-MM-DDTHH:MM:SS.mmmZ`) plus its `#EXTINF`.
fn first_segment_end_us(playlist: &str) -> Option<u64> {
    let date = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))?;
    let extinf: f64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXTINF:"))?
        .trim_end_matches(',')
        .parse()
        .ok()?;
    let num = |r: std::ops::Range<usize>| date.get(r).and_then(|t| t.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from 1970-01-01 (the civil-from-days inverse, proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + ms) as f64 + extinf * 1000.0;
    Some((ms * 1000.0) as u64)
}

fn field<'a>(entry: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(|v| v.as_str())
}

/// A non-empty recording of `stream` that is still growing.
fn recording_grows(records: &Path, stream: &str) -> bool {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let Some(last) = peers::recordings_in(records, stream).pop() else {
        return false;
    };
    let before = size(&last);
    std::thread::sleep(Duration::from_millis(1500));
    before > 0 && size(&last) > before
}

#[test]
fn playlist_dates_are_read_as_epoch_microseconds() {
    let p = "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T06:17:08.000Z\n#EXTINF:1.00000,\na.m4s\n";
    // date -u -d 2026-12-02T06:17:09Z +%s
    assert_eq!(first_segment_end_us(p), Some(1_796_192_229_000_000));
}

#[test]
fn shipped_unit_under_systemd_ready_reload_credential_journal_watchdog_clock() {
    let _serial = serial();
    let test = "shipped_unit_under_systemd";
    let Some(mut c) = Container::boot(test) else {
        return;
    };
    let host = tempfile::tempdir().expect("tempdir");
    let records = c.start_nginx(host.path());
    let key = format!("k{:016x}", Rng::from_clock().next());
    c.write("/etc/twincast/credentials/cloud", &key, "600");
    c.write(
        "/etc/twincast/twincast.toml",
        &(config("box-a", 8080, 9090, "") + &rtmp_output("cam")),
        "644",
    );

    // READY: `systemctl start` returns once systemd got READY=1 (Type=notify).
    let t = Instant::now();
    c.sh("systemctl start twincast.service");
    let started_in = t.elapsed();
    let playlist = c
        .get("http://127.0.0.1:8080/live/180p/index.m3u8")
        .unwrap_or_default();
    assert!(
        playlist.contains(".m4s"),
        "READY came before the first segment was served:\n{playlist}"
    );
    // The first segment ends (epoch-locked wall time of its last frame) before systemd saw
    // READY=1: a daemon that reported ready before it had cut a fragment fails here.
    let first_end_us = first_segment_end_us(&playlist).expect("a dated first segment");
    let journal = c.journal("-u twincast.service");
    let started = journal
        .iter()
        .find(|e| field(e, "JOB_TYPE") == Some("start") && field(e, "JOB_RESULT") == Some("done"))
        .expect("systemd logs the finished start job");
    let started_us: u64 = field(started, "__REALTIME_TIMESTAMP")
        .and_then(|v| v.parse().ok())
        .expect("a realtime stamp");
    assert!(
        first_end_us <= started_us,
        "systemd had READY {} ms before the first fragment ended",
        (first_end_us - started_us) / 1000
    );
    assert!(
        journal.iter().any(|e| field(e, "STATE") == Some("ready")),
        "the daemon logs STATE=ready"
    );
    eprintln!("{test}: active after {started_in:?}");

    // Clock sync is read inside the sandbox (SystemCallFilter= lets adjtimex through).
    let status = c.status(9090).expect("/status");
    assert!(
        status["clock"].is_object(),
        "clock sync unreadable under the unit: {}",
        status["clock"]
    );

    // The stream key from LoadCredential= reaches the ingest, never the journal.
    let keyed = format!("cam_180p{key}");
    wait_for("the keyed stream at nginx", Duration::from_secs(30), || {
        recording_grows(&records, &keyed).then_some(())
    });

    // The journal's structured fields.
    let journal = wait_for(
        "OUTPUT/DEST/TRACK/STATE fields",
        Duration::from_secs(20),
        || {
            let j = c.journal("-u twincast.service");
            j.iter()
                .any(|e| {
                    field(e, "OUTPUT") == Some("cloud")
                        && field(e, "DEST") == Some("primary")
                        && field(e, "TRACK") == Some("180p")
                        && field(e, "STATE").is_some()
                })
                .then_some(j)
        },
    );
    assert!(
        journal
            .iter()
            .any(|e| field(e, "OUTPUT").is_some() && field(e, "STATE").is_some()),
        "no output state change with fields"
    );

    // Reload: a changed stream name is pushed by the same process.
    let pid = c.show("twincast.service", "MainPID");
    c.write(
        "/etc/twincast/twincast.toml",
        &(config("box-a", 8080, 9090, "") + &rtmp_output("cam2")),
        "644",
    );
    c.sh("systemctl reload twincast.service");
    let moved = format!("cam2_180p{key}");
    wait_for(
        "the reloaded stream at nginx",
        Duration::from_secs(30),
        || recording_grows(&records, &moved).then_some(()),
    );
    assert_eq!(
        c.show("twincast.service", "MainPID"),
        pid,
        "reload restarted"
    );
    assert_eq!(c.show("twincast.service", "NRestarts"), "0");

    // The key is nowhere in the journal (every unit, every field).
    let all = c.sh("journalctl --no-pager -o json");
    assert!(!all.contains(&key), "the stream key reached the journal");

    // A frozen daemon: the watchdog (shipped WatchdogSec=30s) kills it, Restart= brings it back.
    let t = Instant::now();
    c.sh(&format!("kill -STOP {pid}"));
    wait_for("a watchdog restart", Duration::from_secs(120), || {
        let restarts: u32 = c.show("twincast.service", "NRestarts").parse().ok()?;
        let now = c.show("twincast.service", "MainPID");
        (restarts >= 1
            && now != pid
            && now != "0"
            && c.show("twincast.service", "ActiveState") == "active")
            .then_some(())
    });
    eprintln!("{test}: watchdog restart after {:?}", t.elapsed());
    let journal = c.journal("-u twincast.service");
    assert!(
        journal
            .iter()
            .any(|e| field(e, "MESSAGE").is_some_and(|m| m.contains("Watchdog timeout"))),
        "no watchdog timeout in the journal"
    );
    wait_for(
        "the restarted daemon's /status",
        Duration::from_secs(20),
        || c.status(9090),
    );

    // Without the filter's exception clock sync is unreadable: the test sees the bug it guards.
    c.write(
        "/etc/systemd/system/twincast.service.d/deny-clock.conf",
        "[Service]\nSystemCallFilter=~adjtimex clock_adjtime\n",
        "644",
    );
    c.sh("systemctl daemon-reload && systemctl restart twincast.service");
    let status = c.status(9090).expect("/status");
    assert!(
        status["clock"].is_null(),
        "clock readable even with adjtimex denied: the check proves nothing"
    );
}

#[test]
fn template_instances_side_by_side_each_with_its_locked_state_dir() {
    let _serial = serial();
    let test = "template_instances";
    let Some(c) = Container::boot(test) else {
        return;
    };
    c.write("/etc/twincast/a.toml", &config("a", 8081, 9091, ""), "644");
    c.write("/etc/twincast/b.toml", &config("b", 8082, 9092, ""), "644");
    c.sh("systemctl start twincast@a.service twincast@b.service");
    for (name, port) in [("a", 9091), ("b", 9092)] {
        let unit = format!("twincast@{name}.service");
        assert_eq!(c.show(&unit, "ActiveState"), "active", "{unit}");
        let status = c.status(port).expect("/status");
        assert_eq!(status["encoder"]["name"].as_str(), Some(name), "{status}");
        let pid = c.show(&unit, "MainPID");
        let lock = c.sh(&format!("cat /var/lib/twincast-{name}/twincast.lock"));
        assert!(
            lock.contains(&format!("pid {pid},")) && lock.contains(&format!("encoder \"{name}\"")),
            "{unit}: lock file says {lock:?}"
        );
        let journal = c.journal(&format!("-u {unit}"));
        let dvr = format!("DVR /var/lib/twincast-{name}/dvr");
        assert!(
            journal
                .iter()
                .any(|e| field(e, "MESSAGE").is_some_and(|m| m.contains(&dvr))),
            "{unit} does not keep its DVR in {dvr}"
        );
    }

    // A second daemon on a's folder (other ports) exits 75, naming a.
    c.write(
        "/etc/twincast/a-again.toml",
        &config(
            "a-again",
            8083,
            9093,
            "state_dir = \"/var/lib/twincast-a\"\n",
        ),
        "644",
    );
    let holder = c.show("twincast@a.service", "MainPID");
    let out = c.cmd(&[
        "timeout",
        "60",
        "twincast",
        "run",
        "--config",
        "/etc/twincast/a-again.toml",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("state directory /var/lib/twincast-a is in use by another twincast daemon")
            && stderr.contains(&format!("pid {holder}, encoder \"a\"")),
        "{stderr}"
    );
    assert_eq!(c.show("twincast@a.service", "ActiveState"), "active");
}

/// The lock without systemd: a second daemon on one state folder exits 75 naming the first;
/// once the first is gone (even by SIGKILL) the folder can be had again.
#[test]
fn second_daemon_on_one_state_dir_exits_75_naming_the_holder() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let extra = format!("state_dir = \"{}\"\n", state.display());
    let write = |name: &str, origin: u16, control: u16| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config(name, origin, control, &extra)).expect("config");
        path
    };
    let origin = free_port();
    let first_cfg = write("first", origin, free_port());
    let mut first = Daemon::start(&first_cfg, origin, dir.path().join("first.log"));
    let lock = state.join("twincast.lock");
    let pid = first.child.id();
    wait_for("the first daemon's lock", Duration::from_secs(20), || {
        std::fs::read_to_string(&lock)
            .ok()
            .filter(|t| t.contains(&format!("pid {pid},")))
    });
    wait_for(
        "the DVR under the state dir",
        Duration::from_secs(20),
        || state.join("dvr").is_dir().then_some(()),
    );
    let second_cfg = write("second", free_port(), free_port());
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .args(["run", "--config"])
        .arg(&second_cfg)
        .output()
        .expect("run twincast");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {pid}, encoder \"first\"")),
        "{stderr}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let _ = first.child.kill();
    let _ = first.child.wait();
    let third_origin = free_port();
    let third_cfg = write("third", third_origin, free_port());
    let mut third = Daemon::start(&third_cfg, third_origin, dir.path().join("third.log"));
    let third_pid = third.child.id();
    wait_for("the lock after a SIGKILL", Duration::from_secs(20), || {
        std::fs::read_to_string(&lock)
            .ok()
            .filter(|t| t.contains(&format!("pid {third_pid},")))
    });
    third.stop();
}

/// The template passes `systemd-analyze verify` as an instance, with no complaint.
#[test]
fn template_unit_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit =
        std::fs::read_to_string(repo_root().join("systemd/twincast@.service")).expect("template");
    let unit = unit.replace("/usr/bin/twincast", env!("CARGO_BIN_EXE_twincast"));
    std::fs::write(dir.path().join("twincast@.service"), unit).expect("write");
    let instance = dir.path().join("twincast@cam1.service");
    std::os::unix::fs::symlink("twincast@.service", &instance).expect("symlink");
    let (ok, out, err) = run(
        "systemd-analyze",
        &["verify", instance.to_str().expect("path")],
    );
    assert!(ok, "{err}");
    assert_eq!(
        format!("{out}{err}"),
        "",
        "systemd-analyze verify complained"
    );
}
