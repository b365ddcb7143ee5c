//! Operations end to end (issue 5): the daemon under a fake systemd (notify socket + watchdog),
//! the control listener's /status, /metrics and /events, SIGHUP reloads, and the unit file.

mod common;
mod peers;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Collects every datagram sent to a notify socket, with its arrival time.
struct FakeSystemd {
    path: std::path::PathBuf,
    rx: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl FakeSystemd {
    fn new(dir: &std::path::Path) -> FakeSystemd {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        FakeSystemd {
            path,
            rx,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.seen.push(m);
        }
    }

    /// Waits for a message starting with `prefix`; returns its arrival time.
    fn wait(&mut self, prefix: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some((at, _)) = self.seen.iter().find(|(_, m)| m.starts_with(prefix)) {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix} within {timeout:?}; got {:?}",
                self.seen.iter().map(|(_, m)| m).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn count_between(&mut self, message: &str, from: Instant, to: Instant) -> usize {
        self.drain();
        self.seen
            .iter()
            .filter(|(at, m)| m == message && *at >= from && *at < to)
            .count()
    }
}

/// An MPEG-TS/RTP feed into 127.0.0.1:`port`, like a contribution encoder.
fn rtp_feed(port: u16) -> Child {
    Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "!"])
        .args(["video/x-raw,width=640,height=360,framerate=30/1", "!"])
        .args([
            "x264enc",
            "tune=zerolatency",
            "key-int-max=30",
            "speed-preset=ultrafast",
            "!",
        ])
        .args([
            "mpegtsmux",
            "!",
            "rtpmp2tpay",
            "!",
            "udpsink",
            "host=127.0.0.1",
        ])
        .arg(format!("port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (run scripts/install-deps)")
}

#[test]
fn systemd_notify_watchdog_and_stall() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut systemd = FakeSystemd::new(dir.path());
    let (origin_port, control_port) = (free_port(), free_port());
    let rtp_port = free_port();
    let config = small_config_with_input(
        dir.path(),
        "notify",
        origin_port,
        control_port,
        &format!("kind = \"rtp\"\nuri = \"rtp://127.0.0.1:{rtp_port}\"\naudio = \"none\""),
    );
    let mut feed = rtp_feed(rtp_port);
    let socket = systemd.path.to_string_lossy().into_owned();
    let mut daemon = Daemon::start_with_env(
        &config,
        origin_port,
        dir.path().join("notify.log"),
        &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "2000000")],
    );

    // READY=1 only once the origin serves.
    let ready_at = systemd.wait("READY=1", Duration::from_secs(90));
    let master = http_get(&daemon.url("/live/master.m3u8"));
    assert_eq!(
        master.map(|m| m.0),
        Some(200),
        "READY=1 before the origin serves; log:\n{}",
        daemon.log_text()
    );
    systemd.wait("STATUS=", Duration::from_secs(5));

    // Pings at half of WATCHDOG_USEC (1 s) while frames and fragments flow.
    std::thread::sleep(Duration::from_secs(6));
    let from = ready_at + Duration::from_millis(500);
    let pings = systemd.count_between("WATCHDOG=1", from, from + Duration::from_secs(5));
    assert!(
        (4..=6).contains(&pings),
        "{pings} pings in 5 s at a 1 s interval"
    );

    // SIGHUP: RELOADING=1, then READY=1 again.
    daemon.signal("HUP");
    systemd.wait("RELOADING=1", Duration::from_secs(10));
    wait_for("READY=1 after the reload", Duration::from_secs(10), || {
        systemd.drain();
        (systemd.seen.iter().filter(|(_, m)| m == "READY=1").count() >= 2).then_some(())
    });

    // The feed is live first: without RTCP the front end anchors on PTS timing only after
    // its sender-report wait (src/input/timing.rs), and until then the encoders run on slate.
    wait_for("the input live", Duration::from_secs(40), || {
        let status = get_text(&format!("http://127.0.0.1:{control_port}/status"))?;
        status.contains("\"state\": \"live\"").then_some(())
    });
    // The source stops producing: the encoders get the slate, fragments keep coming, so the
    // daemon is healthy and the pings go on (issue #9; docs/guide/troubleshooting.md).
    let _ = feed.kill();
    let _ = feed.wait();
    let stopped = Instant::now();
    wait_for("input lost", Duration::from_secs(10), || {
        let status = get_text(&format!("http://127.0.0.1:{control_port}/status"))?;
        status.contains("\"state\": \"slate\"").then_some(())
    });
    std::thread::sleep(Duration::from_secs(6));
    let pings = systemd.count_between(
        "WATCHDOG=1",
        stopped + Duration::from_secs(2),
        stopped + Duration::from_secs(7),
    );
    assert!(
        (4..=6).contains(&pings),
        "{pings} pings in 5 s on slate at a 1 s interval"
    );
    assert!(daemon.log_text().contains("input lost: no frame for"));
    assert!(
        !daemon.log_text().contains("watchdog: no fresh frames"),
        "a lost input is not a stall; log:\n{}",
        daemon.log_text()
    );

    // SIGTERM: STOPPING=1, then an orderly exit.
    let status = daemon.stop();
    systemd.wait("STOPPING=1", Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

fn json(url: &str) -> serde_json::Value {
    let text = get_text(url).unwrap_or_else(|| panic!("GET {url}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}\n{text}"))
}

#[test]
fn control_status_metrics_events_and_reload() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (origin_port, control_port) = (free_port(), free_port());
    let config = small_config(dir.path(), "ctl", origin_port, control_port);
    let base = std::fs::read_to_string(&config).unwrap();
    let with_heartbeat = base.replace(
        &format!("listen = \"127.0.0.1:{control_port}\"\n"),
        &format!("listen = \"127.0.0.1:{control_port}\"\nheartbeat = \"1s\"\n"),
    );
    assert_ne!(base, with_heartbeat);
    std::fs::write(&config, &with_heartbeat).unwrap();
    let daemon = Daemon::start(&config, origin_port, dir.path().join("ctl.log"));
    let control = format!("http://127.0.0.1:{control_port}");
    let addr = format!("127.0.0.1:{control_port}");

    wait_for("ready in /status", Duration::from_secs(90), || {
        get_text(&format!("{control}/status"))
            .filter(|t| t.contains("\"ready\": true"))
            .map(|_| ())
    });
    let s = json(&format!("{control}/status"));
    assert_eq!(s["encoder"]["name"], "ctl");
    assert_eq!(s["encoder"]["pair"], "test-pair");
    assert!(s["clock"]["synchronised"].is_boolean(), "{s}");
    assert!(s["clock"]["estimated_error_us"].is_i64(), "{s}");
    assert!(s["pair_locked"].is_boolean());
    let tracks = s["tracks"].as_array().unwrap();
    let names: Vec<&str> = tracks.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["240p", "180p", "audio"]);
    for t in tracks {
        for key in [
            "fps",
            "bitrate_bps",
            "last_timestamp",
            "discontinuities",
            "fragments",
        ] {
            assert!(!t[key].is_null(), "track without {key}: {t}");
        }
    }
    assert!(s["origin"]["tracks"].is_array());
    assert_eq!(s["input"]["state"], "live");

    let metrics = get_text(&format!("{control}/metrics")).expect("metrics");
    for name in [
        "twincast_track_bits_per_second{",
        "twincast_track_fragments_total{",
        "twincast_input_frames_total{",
        "twincast_clock_synchronised{",
        "twincast_origin_window_segments{",
        "twincast_config_reloads_total{",
        "twincast_publish_memory_bytes{",
        "twincast_publish_memory_limit_bytes{",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        assert!(
            name.starts_with("twincast_"),
            "metric outside the scheme: {line}"
        );
    }

    // A heartbeat per track within the interval (1 s): read three rounds and check the spacing.
    let started = Instant::now();
    let mut arrivals: Vec<Instant> = Vec::new();
    let events = read_sse(&addr, "/events", Duration::from_secs(8), |ev| {
        let n = ev
            .iter()
            .filter(|(e, d)| e == "heartbeat" && d.contains("\"track\":\"240p\""))
            .count();
        if n > arrivals.len() {
            arrivals.push(Instant::now());
        }
        n >= 3
    });
    assert!(arrivals.len() >= 3, "{events:?}");
    assert!(
        arrivals[0] - started <= Duration::from_millis(2000),
        "first heartbeat late"
    );
    for w in arrivals.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap <= Duration::from_millis(1800),
            "heartbeats {gap:?} apart at a 1 s interval"
        );
    }
    for t in ["240p", "180p", "audio"] {
        let hb = events
            .iter()
            .find(|(e, d)| e == "heartbeat" && d.contains(&format!("\"track\":\"{t}\"")))
            .unwrap_or_else(|| panic!("no heartbeat for {t} in {events:?}"));
        let v: serde_json::Value = serde_json::from_str(&hb.1).unwrap();
        assert!(v["bitrate_bps"].as_u64().unwrap_or(0) > 0, "{v}");
        assert!(v["last_timestamp"].as_u64().unwrap_or(0) > 0, "{v}");
        assert!(v["discontinuities"].is_u64(), "{v}");
    }

    // `twincast status` reads the same endpoint.
    let (ok, out, err) = run(
        env!("CARGO_BIN_EXE_twincast"),
        &["status", "--control", &addr],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("ctl (pair test-pair)"), "{out}");
    assert!(
        out.contains("240p") && out.contains("summary: 2 renditions"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("publish memory: 0 B of ")),
        "the shared budget on one line, nothing held without an output:\n{out}"
    );
    let (ok, out, _) = run(
        env!("CARGO_BIN_EXE_twincast"),
        &["status", "--json", "--control", &addr],
    );
    assert!(ok && out.contains("\"tracks\""));

    // SIGHUP with an added output: applied without touching capture or the origin.
    let seq_before = media_sequence_of(&daemon);
    let dead = free_port();
    let with_output = format!(
        "{with_heartbeat}\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:{dead}/live\"\nsecondary = \"rtmp://127.0.0.1:{dead}/backup\"\nstream = \"cam\"\n"
    );
    std::fs::write(&config, &with_output).unwrap();
    let mut reloaded = Vec::new();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            read_sse(&addr, "/events", Duration::from_secs(15), |ev| {
                ev.iter().any(|(e, _)| e == "config_reloaded")
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        daemon.signal("HUP");
        reloaded = reader.join().unwrap();
    });
    let (_, data) = reloaded
        .iter()
        .find(|(e, _)| e == "config_reloaded")
        .unwrap_or_else(|| panic!("no config_reloaded in {reloaded:?}"));
    assert!(data.contains("output cloud added"), "{data}");
    let s = json(&format!("{control}/status"));
    assert_eq!(s["outputs"][0]["name"], "cloud", "{s}");
    assert_eq!(s["config"]["reloads"], 1);
    assert!(s["config"]["restart_needed"].as_array().unwrap().is_empty());

    // SIGHUP with an invalid file: every error logged, everything keeps running.
    std::fs::write(
        &config,
        format!("{with_output}\n[input]\nkind = \"bogus\"\n"),
    )
    .unwrap();
    daemon.signal("HUP");
    wait_for("the rejected reload", Duration::from_secs(10), || {
        let s = json(&format!("{control}/status"));
        (s["config"]["reload_failures"] == 1).then_some(())
    });
    assert!(daemon.log_text().contains("reload rejected"));
    let s = json(&format!("{control}/status"));
    assert_eq!(s["outputs"][0]["name"], "cloud", "the running config stays");
    // The origin's sequence went on without a hole across both reloads.
    std::thread::sleep(Duration::from_secs(3));
    let seq_after = media_sequence_of(&daemon);
    assert!(seq_after >= seq_before, "{seq_before} → {seq_after}");
    let playlist = get_text(&daemon.url("/live/240p/index.m3u8")).unwrap();
    assert!(no_break(&playlist), "{playlist}");
    assert_eq!(s["input"]["state"], "live");

    // The control allow-list applies on reload: this client is not in it any more.
    let denied = with_output.replace(
        "heartbeat = \"1s\"\n",
        "heartbeat = \"1s\"\nallow = [\"10.9.9.9\"]\n",
    );
    assert_ne!(denied, with_output);
    std::fs::write(&config, &denied).unwrap();
    daemon.signal("HUP");
    wait_for(
        "403 from the control listener",
        Duration::from_secs(10),
        || (http_get(&format!("{control}/status")).map(|r| r.0) == Some(403)).then_some(()),
    );
    let (ok, _, err) = run(
        env!("CARGO_BIN_EXE_twincast"),
        &["status", "--control", &addr],
    );
    assert!(!ok && err.contains("403"), "{err}");
    assert_eq!(
        http_get(&daemon.url("/live/master.m3u8")).map(|r| r.0),
        Some(200),
        "the origin is not affected"
    );
}

/// A media playlist without a discontinuity or a gap.
fn no_break(playlist: &str) -> bool {
    !playlist
        .lines()
        .any(|l| l.trim() == "#EXT-X-DISCONTINUITY" || l.starts_with("#EXT-X-GAP"))
}

fn media_sequence_of(daemon: &Daemon) -> u64 {
    let text = get_text(&daemon.url("/live/240p/index.m3u8")).expect("playlist");
    media_sequence(&text).expect("media sequence")
}

#[test]
fn systemd_analyze_verify_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo_root().join("systemd/twincast.service")).unwrap();
    // verify checks that the binaries exist: point the unit at the one cargo built.
    let unit = unit.replace("/usr/bin/twincast", env!("CARGO_BIN_EXE_twincast"));
    let path = dir.path().join("twincast.service");
    std::fs::write(&path, unit).unwrap();
    let (ok, out, err) = run("systemd-analyze", &["verify", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        format!("{out}{err}"),
        "",
        "systemd-analyze verify complained"
    );
}

/// Segment start times of a media playlist (from the `<t>.m4s` names).
fn segment_starts(playlist: &str) -> Vec<u64> {
    playlist_segments(playlist)
        .iter()
        .filter_map(|u| u.strip_suffix(".m4s").and_then(|t| t.parse().ok()))
        .collect()
}

#[test]
fn sighup_moves_the_secondary_push() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        peers::Nginx::start(&d, free_port())
    };
    let (primary, old, new) = (mk("primary"), mk("old"), mk("new"));
    let (origin_port, control_port) = (free_port(), free_port());
    let config = small_config(dir.path(), "move", origin_port, control_port);
    let base = std::fs::read_to_string(&config).unwrap();
    let output = |secondary: u16| {
        format!(
            "{base}\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:{}/live\"\nsecondary = \"rtmp://127.0.0.1:{secondary}/live\"\nstream = \"cam\"\nrenditions = [\"240p\"]\n",
            primary.port
        )
    };
    std::fs::write(&config, output(old.port)).unwrap();
    let daemon = Daemon::start(&config, origin_port, dir.path().join("move.log"));
    let control = format!("http://127.0.0.1:{control_port}");
    let addr = format!("127.0.0.1:{control_port}");
    let size = |n: &peers::Nginx| -> u64 {
        n.recordings("cam_240p")
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    wait_for("both URLs publishing", Duration::from_secs(90), || {
        (size(&primary) > 20_000 && size(&old) > 20_000).then_some(())
    });
    let before = wait_for("segments in the origin", Duration::from_secs(60), || {
        get_text(&daemon.url("/live/240p/index.m3u8")).filter(|p| segment_starts(p).len() >= 2)
    });
    let first_before = segment_starts(&before)[0];

    // Move the secondary; the primary and the origin must not notice.
    std::fs::write(&config, output(new.port)).unwrap();
    let mut events = Vec::new();
    let new_url = format!("127.0.0.1:{}", new.port);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            read_sse(&addr, "/events", Duration::from_secs(60), |ev| {
                ev.iter().any(|(e, d)| {
                    e == "output_connected" && d.contains("secondary") && d.contains(&new_url)
                })
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        daemon.signal("HUP");
        events = reader.join().unwrap();
    });
    assert!(
        events.iter().any(|(e, _)| e == "config_reloaded"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(e, d)| e == "output_connected" && d.contains(&new_url)),
        "no output_connected for the new secondary: {events:?}\n{}",
        daemon.log_text()
    );
    // The same event in the log with structured fields (journal fields under systemd).
    let log = daemon.log_text();
    assert!(
        log.lines().any(|l| l.contains("connected to")
            && l.contains(&new_url)
            && l.contains("OUTPUT=cloud DEST=secondary TRACK=240p STATE=connected")),
        "{log}"
    );
    wait_for("the new secondary records", Duration::from_secs(60), || {
        (size(&new) > 20_000).then_some(())
    });
    let old_size = size(&old);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(size(&old), old_size, "the old secondary still receives");
    let s = json(&format!("{control}/status"));
    let secondary = s["outputs"][0]["secondary"].as_str().unwrap_or_default();
    assert!(secondary.contains(&new_url), "{s}");

    // The origin's window runs on without a hole across the reload.
    let after = get_text(&daemon.url("/live/240p/index.m3u8")).unwrap();
    assert!(no_break(&after), "{after}");
    let starts = segment_starts(&after);
    assert!(
        starts.contains(&first_before),
        "window lost {first_before}: {after}"
    );
    let steps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|d| *d == steps[0]),
        "segments not contiguous: {starts:?}"
    );
    assert!(starts.len() > segment_starts(&before).len());
}

/// Runs a script from `scripts/` with `TWINCAST_BIN` pointing at the built binary.
fn script(name: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(repo_root().join("scripts").join(name))
        .args(args)
        .env("TWINCAST_BIN", env!("CARGO_BIN_EXE_twincast"))
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SCRIPTS: [&str; 4] = [
    "twincast-diag",
    "twincast-set-ingest",
    "twincast-pair-check",
    "twincast-watch",
];

#[test]
fn scripts_have_help_and_pass_shellcheck() {
    for name in SCRIPTS {
        let (code, out, err) = script(name, &["--help"]);
        assert_eq!(code, 0, "{name} --help: {err}");
        assert!(out.starts_with(&format!("usage: {name}")), "{name}: {out}");
    }
    let mut all: Vec<String> = std::fs::read_dir(repo_root().join("scripts"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    all.sort();
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let (ok, out, err) = run("shellcheck", &args);
    assert!(ok, "shellcheck:\n{out}{err}");
}

#[test]
fn scripts_against_a_live_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (origin_port, control_port) = (free_port(), free_port());
    let (dead_a, dead_b, dead_c) = (free_port(), free_port(), free_port());
    let config = small_config(dir.path(), "field", origin_port, control_port);
    let key = dir.path().join("cloud.key");
    std::fs::write(&key, "?key=KEYs3cret\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://ops:pa55word@127.0.0.1:{dead_a}/live?token=s3cretTOKEN\"\nsecondary = \"rtmp://127.0.0.1:{dead_b}/live\"\nstream = \"cam\"\nkey_file = \"{}\"\n",
        key.display()
    ));
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config, origin_port, dir.path().join("field.log"));
    let control = format!("127.0.0.1:{control_port}");
    let cfg = config.to_str().unwrap();
    wait_for("ready", Duration::from_secs(90), || {
        get_text(&format!("http://{control}/status"))
            .filter(|t| t.contains("\"ready\": true"))
            .map(|_| ())
    });

    // watch: one screen.
    let (code, out, err) = script("twincast-watch", &["--once", "--control", &control]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("summary: 2 renditions"), "{out}");

    // diag: a bundle with everything and no secret.
    let bundle = dir.path().join("diag.tar.gz");
    let log = daemon.log.to_str().unwrap().to_string();
    let (code, out, err) = script(
        "twincast-diag",
        &[
            "--config",
            cfg,
            "--control",
            &control,
            "--log",
            &log,
            "--output",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let (ok, _, err) = run(
        "tar",
        &[
            "-xzf",
            bundle.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let root = std::fs::read_dir(&unpacked)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    for file in [
        "status.txt",
        "status.json",
        "metrics.txt",
        "config.toml",
        "journal.txt",
        "probe.txt",
        "versions.txt",
        "clock.txt",
    ] {
        let body = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} missing from the bundle: {e}"));
        assert!(!body.trim().is_empty(), "{file} is empty");
        for secret in ["pa55word", "s3cretTOKEN", "KEYs3cret"] {
            assert!(
                !body.contains(secret),
                "{secret} leaked into {file}:\n{body}"
            );
        }
    }
    let redacted = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(redacted.contains("[[output]]") && redacted.contains("REDACTED"));
    assert!(
        redacted.contains(&format!("127.0.0.1:{dead_b}/live")),
        "{redacted}"
    );

    // set-ingest: move the secondary, see it in the status, move it back: the file round-trips.
    let original = std::fs::read_to_string(&config).unwrap();
    let new_secondary = format!("rtmp://127.0.0.1:{dead_c}/live");
    let (code, out, err) = script(
        "twincast-set-ingest",
        &[
            "--config",
            cfg,
            "--control",
            &control,
            "cloud",
            "--secondary",
            &new_secondary,
        ],
    );
    assert_eq!(code, 0, "{out}{err}\n{}", daemon.log_text());
    assert!(
        out.contains(&new_secondary),
        "the new state is shown: {out}"
    );
    let s = json(&format!("http://{control}/status"));
    assert_eq!(s["outputs"][0]["secondary"], new_secondary.as_str(), "{s}");
    let old_secondary = format!("rtmp://127.0.0.1:{dead_b}/live");
    let (code, out, err) = script(
        "twincast-set-ingest",
        &[
            "--config",
            cfg,
            "--control",
            &control,
            "cloud",
            "--secondary",
            &old_secondary,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    // An invalid URL is refused and nothing changes.
    let (code, _, err) = script(
        "twincast-set-ingest",
        &["--config", cfg, "cloud", "--primary", "ftp://nowhere/live"],
    );
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("invalid"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    let (code, _, err) = script(
        "twincast-set-ingest",
        &["--config", cfg, "nope", "--no-secondary"],
    );
    assert_eq!(code, 65, "{err}");
}

#[test]
fn pair_check_says_locked_for_two_daemons_with_the_same_config() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let daemons: Vec<Daemon> = ports
        .iter()
        .enumerate()
        .map(|(i, (o, c))| {
            let config = small_config(dir.path(), &format!("box{i}"), *o, *c);
            Daemon::start(&config, *o, dir.path().join(format!("box{i}.log")))
        })
        .collect();
    for d in &daemons {
        wait_for("two segments on each box", Duration::from_secs(90), || {
            get_text(&d.url("/live/240p/index.m3u8"))
                .filter(|p| playlist_segments(p).len() >= 2)
                .map(|_| ())
        });
    }
    let control_a = format!("127.0.0.1:{}", ports[0].1);
    let control_b = format!("127.0.0.1:{}", ports[1].1);
    let (code, out, err) = script(
        "twincast-pair-check",
        &[
            "--control-a",
            &control_a,
            "--control-b",
            &control_b,
            &daemons[0].origin,
            &daemons[1].origin,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("240p:") && out.contains("audio:"), "{out}");
    assert!(out.trim_end().ends_with("LOCKED"), "{out}");
    assert!(!out.contains("NOT LOCKED"), "{out}");
}

#[test]
fn status_without_a_daemon_says_so() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .args(["status", "--control", &format!("127.0.0.1:{port}")])
        .output()
        .expect("twincast status");
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the control listener") && err.contains("is the daemon running"),
        "{err}"
    );
}
