//! Secrets in URL paths (docs/guide/publishing.md, *Keys and credentials*): a daemon at debug
//! level pushes to RTMP URLs whose path carries a key, from a key file (output `filekey`, to
//! nginx-rtmp with its default settings) and from `$CREDENTIALS_DIRECTORY` (output `credkey`, to
//! libavformat's RTMP server), and a third output carries a `{secret:…}` written in the config;
//! a backup camera's RTSP URI carries a password, which GStreamer repeats in its progress
//! messages (the one sink here that gets a raw secret, so the redactor is really tested).
//! Every peer is down at first (connection refused, backoff, retries), then comes up. Neither
//! key appears in stderr, `/status`, `/events`, `/metrics` or the diagnostics bundle, while the
//! peers show that the keys were sent.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx-rtmp with the defaults (no chunk, ack or buffer tuning); the application is named by
/// the whole connect `app`, which here carries the key (`app/<key>`), as a path-key ingest
/// does. `record all` so the test can see the publish arrived.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, app: &str) -> Nginx {
        let records = dir.join("records");
        std::fs::create_dir_all(&records).expect("record dir");
        let conf = format!(
            "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port};\n  application {app} {{ live on; record all; \
             record_path {r}; record_unique on; }} }} }}\n",
            d = dir.display(),
            r = records.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/install-deps)");
        Nginx {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn recorded_bytes(&self) -> u64 {
        std::fs::read_dir(self.dir.join("records"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ffmpeg -listen 1` as an RTMP server, its defaults, writing what it receives to an FLV file.
struct FfmpegServer {
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl FfmpegServer {
    fn start(dir: &Path, port: u16, path: &str) -> FfmpegServer {
        let out = dir.join("ffmpeg-server.flv");
        let log = dir.join("ffmpeg-server.log");
        let child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "verbose",
                "-nostdin",
                "-y",
                "-listen",
                "1",
            ])
            .args(["-i", &format!("rtmp://127.0.0.1:{port}/{path}")])
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("ffmpeg log"))
            .spawn()
            .expect("start ffmpeg (scripts/install-deps)");
        FfmpegServer { child, out, log }
    }
}

impl Drop for FfmpegServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secret_file(path: &Path, content: &str) {
    std::fs::write(path, content).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}

/// `(file, text)` of every file under `dir`.
fn all_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            out.push((p, text));
        }
    }
}

fn attempts(status: &str, output: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(status).unwrap_or_default();
    v["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"] == output)
        .flat_map(|o| o["destinations"].as_array().cloned().unwrap_or_default())
        .map(|d| d["attempts"].as_u64().unwrap_or(0))
        .sum()
}

fn publishing(status: &str, output: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(status).unwrap_or_default();
    v["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"] == output)
        .flat_map(|o| o["destinations"].as_array().cloned().unwrap_or_default())
        .any(|d| d["state"] == "publishing")
}

#[test]
fn keys_in_url_paths_never_appear_at_debug_level() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (origin_port, control_port) = (free_port(), free_port());
    let (nginx_port, ffmpeg_port, dead_port) = (free_port(), free_port(), free_port());
    let dead_rtsp = free_port();
    let nonce = fastrand_nonce();
    let file_key = format!("sk-file-{nonce}");
    let cred_key = format!("sk-cred-{nonce}");
    let inline = format!("tok-inline-{nonce}");
    let camera_pw = format!("pw-camera-{nonce}");

    let key_path = d.join("filekey.key");
    secret_file(&key_path, &format!("{file_key}\n"));
    let creds = d.join("credentials");
    std::fs::create_dir_all(&creds).expect("credentials dir");
    secret_file(&creds.join("twincast_credkey"), &cred_key);

    let config = small_config(d, "secrets", origin_port, control_port);
    let mut text = std::fs::read_to_string(&config).expect("config");
    // One 320x180 rendition is enough here.
    text = without_rendition(&text, "240p");
    text.push_str(&format!(
        r#"
[[output]]
name = "filekey"
protocol = "rtmp"
primary = "rtmp://127.0.0.1:{nginx_port}/app/{{key}}"
stream = "cam"
key_file = "{key}"

[[output]]
name = "credkey"
protocol = "rtmp"
primary = "rtmp://127.0.0.1:{ffmpeg_port}/app/{{key}}"
stream = "cam"

[[output]]
name = "inline"
protocol = "rtmp"
primary = "rtmp://127.0.0.1:{dead_port}/app/{{secret:{inline}}}"
stream = "cam"

# A camera with a password in its URI that is not there: GStreamer reports every attempt
# ("Connecting to rtsp://bob:<password>@…"), and the daemon logs those at debug level. Without
# the redactor the password would be in the log: this is the sink that makes the test bite.
[input.backup]
kind = "rtsp"
uri = "rtsp://bob:{camera_pw}@127.0.0.1:{dead_rtsp}/cam"
"#,
        key = key_path.display()
    ));
    std::fs::write(&config, &text).expect("write config");

    let creds_s = creds.display().to_string();
    let mut daemon = Daemon::start_with_env(
        &config,
        origin_port,
        d.join("daemon.log"),
        &[
            ("TWINCAST_LOG", "debug"),
            ("CREDENTIALS_DIRECTORY", &creds_s),
        ],
    );
    let control = format!("127.0.0.1:{control_port}");
    let status_url = format!("http://{control}/status");

    // Events from the start: the failures, then the connections.
    daemon.wait_for("the control listener", Duration::from_secs(60), || {
        get_text(&status_url).map(|_| ())
    });
    let sse_addr = control.clone();
    let events = std::thread::spawn(move || {
        read_sse(&sse_addr, "/events", Duration::from_secs(150), |ev| {
            ["filekey", "credkey"].iter().all(|o| {
                ev.iter()
                    .any(|(k, data)| k == "output_connected" && data.contains(&format!("\"{o}\"")))
            })
        })
    });

    // Every peer is down: each output fails and retries (connection refused, backoff).
    wait_for(
        "two failed attempts per output",
        Duration::from_secs(90),
        || {
            let s = get_text(&status_url)?;
            ["filekey", "credkey", "inline"]
                .iter()
                .all(|o| attempts(&s, o) >= 2)
                .then_some(())
        },
    );

    // The peers come up.
    let ngx_dir = d.join("nginx");
    std::fs::create_dir_all(&ngx_dir).expect("nginx dir");
    let nginx = Nginx::start(&ngx_dir, nginx_port, &format!("app/{file_key}"));
    let ffmpeg = FfmpegServer::start(d, ffmpeg_port, &format!("app/{cred_key}"));
    let events = events.join().expect("events thread");
    for o in ["filekey", "credkey"] {
        assert!(
            events
                .iter()
                .any(|(k, data)| k == "output_connected" && data.contains(&format!("\"{o}\""))),
            "no output_connected event for {o}: {events:?}"
        );
    }
    wait_for(
        "both live outputs publishing",
        Duration::from_secs(60),
        || {
            let s = get_text(&status_url)?;
            (publishing(&s, "filekey") && publishing(&s, "credkey")).then_some(())
        },
    );
    wait_for(
        "nginx recorded the key-file publish",
        Duration::from_secs(30),
        || (nginx.recorded_bytes() > 50_000).then_some(()),
    );
    wait_for(
        "ffmpeg received the credential publish",
        Duration::from_secs(30),
        || {
            std::fs::metadata(&ffmpeg.out)
                .ok()
                .filter(|m| m.len() > 50_000)
                .map(|_| ())
        },
    );

    let status = get_text(&status_url).expect("/status");
    let metrics = get_text(&format!("http://{control}/metrics")).expect("/metrics");
    let events_text: String = events.iter().map(|(k, v)| format!("{k} {v}\n")).collect();

    // The diagnostics bundle, from the daemon's stderr as its log.
    let bundle = d.join("diag.tar.gz");
    let out = Command::new(repo_root().join("scripts/twincast-diag"))
        .args(["--config", config.to_str().expect("utf-8")])
        .args(["--control", &control])
        .args(["--log", daemon.log.to_str().expect("utf-8")])
        .args(["--output", bundle.to_str().expect("utf-8")])
        .env("TWINCAST_BIN", env!("CARGO_BIN_EXE_twincast"))
        // An empty directory: the bundle must be clean from the daemon's own redaction and
        // the URL rules, not from knowing the credential.
        .env("TWINCAST_CREDENTIALS_DIR", d.join("no-credentials"))
        .output()
        .expect("run twincast-diag");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unpacked = d.join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("unpack dir");
    let (ok, _, err) = run(
        "tar",
        &[
            "-xzf",
            bundle.to_str().expect("utf-8"),
            "-C",
            unpacked.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "{err}");
    let mut bundle_files = Vec::new();
    all_files(&unpacked, &mut bundle_files);
    assert!(bundle_files.len() >= 5, "{bundle_files:?}");

    drop(daemon);
    let log = std::fs::read_to_string(d.join("daemon.log")).expect("daemon log");

    // The test can fail: the daemon logged at debug level, about these URLs, with the mask.
    assert!(
        log.contains("twincast debug:"),
        "not at debug level:\n{log}"
    );
    assert!(
        log.contains(&format!("127.0.0.1:{dead_port}/app/***")),
        "the inline secret's URL is not in the log as masked:\n{log}"
    );
    assert!(status.contains("/app/{key}"), "{status}");
    assert!(
        log.contains(&format!("bob:***@127.0.0.1:{dead_rtsp}/cam")),
        "the backup camera's connection attempts are not in the log, masked:\n{log}"
    );
    // The keys really went out in the path: each peer saw its own.
    let ngx_log = std::fs::read_to_string(ngx_dir.join("error.log")).unwrap_or_default();
    assert!(
        ngx_log.contains(&file_key),
        "nginx never saw the key:\n{ngx_log}"
    );
    let ff_log = std::fs::read_to_string(&ffmpeg.log).unwrap_or_default();
    assert!(
        ff_log.contains(&cred_key),
        "ffmpeg never saw the key:\n{ff_log}"
    );

    let mut sinks = vec![
        ("stderr".to_string(), log),
        ("/status".to_string(), status),
        ("/metrics".to_string(), metrics),
        ("/events".to_string(), events_text),
    ];
    sinks.extend(
        bundle_files
            .into_iter()
            .map(|(p, t)| (format!("diag {}", p.display()), t)),
    );
    for (sink, text) in &sinks {
        for secret in [&file_key, &cred_key, &inline, &camera_pw] {
            assert!(
                !text.contains(secret.as_str()),
                "{secret} in {sink}:\n{text}"
            );
        }
    }
    drop(nginx);
    drop(ffmpeg);
}

/// A per-run suffix so that a key can only come from this run.
fn fastrand_nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", t, std::process::id())
}
