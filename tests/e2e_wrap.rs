//! The RTMP timestamp wrap (docs/guide/publishing.md, *RTMP timestamps*): with
//! `rtmp_timestamps = "epoch"` the timestamps are epoch milliseconds modulo 2^32, so they wrap
//! every 2^32 ms (49.7 days) at instants known in advance. The daemon runs under libfaketime
//! (Debian `faketime`) with its realtime clock set ~25 s before such an instant and pushes one
//! rendition to nginx-rtmp (default configuration) and to libavformat's RTMP server
//! (`ffmpeg -listen 1`) across it; both recordings must be continuous: every video frame and
//! audio frame present, timestamps monotonic with steps of one frame, no hole at the wrap.
//!
//! libfaketime: `LD_PRELOAD=libfaketime.so.1` with `FAKETIME="+<seconds>"` (a relative offset,
//! so the fake clock runs at the real rate) and `DONT_FAKE_MONOTONIC=1`: only
//! `CLOCK_REALTIME` is moved. That is the clock the epoch timeline reads (GStreamer's system
//! clock with `clock-type` realtime, src/capture/pipeline.rs); tokio's timers and GStreamer's
//! waits keep the real monotonic clock, so nothing sleeps for the offset.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const WRAP_MS: u64 = 1 << 32;
/// The daemon's fake clock starts this long before the wrap instant.
const LEAD: Duration = Duration::from_secs(25);
/// And the recordings go on this long after it.
const AFTER: Duration = Duration::from_secs(15);

/// nginx-rtmp, default settings: one application `live` recording every publish.
struct Nginx {
    child: Child,
    records: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16) -> Nginx {
        let records = dir.join("records");
        std::fs::create_dir_all(&records).expect("record dir");
        let conf = format!(
            "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port};\n  application live {{ live on; record all; \
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
        Nginx { child, records }
    }

    fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.records)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Video and audio packet timestamps (ms) of an FLV file, as ffprobe reads them.
fn packet_ms(path: &Path, stream: &str) -> Vec<i64> {
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
            path.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "ffprobe {}: {err}", path.display());
    out.lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Checks one recording: video frames exactly one frame (33/34 ms at 30 fps) apart and AAC
/// frames 21/22 ms apart, over at least `min_ms`. Returns (video frames, audio frames, span).
fn assert_continuous(path: &Path, min_ms: i64) -> (usize, usize, i64) {
    let v = packet_ms(path, "v:0");
    let a = packet_ms(path, "a:0");
    assert!(v.len() > 2 && a.len() > 2, "{}: no media", path.display());
    for w in v.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (33..=34).contains(&d),
            "{}: video step {d} ms at {} (a hole or a jump)",
            path.display(),
            w[0]
        );
    }
    for w in a.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (21..=22).contains(&d),
            "{}: audio step {d} ms at {}",
            path.display(),
            w[0]
        );
    }
    let span = v[v.len() - 1] - v[0];
    assert!(
        span >= min_ms,
        "{}: only {span} ms recorded",
        path.display()
    );
    (v.len(), a.len(), span)
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Epoch ms of the newest video fragment, from `/status`.
fn last_video_ms(status: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(status).ok()?;
    v["tracks"]
        .as_array()?
        .iter()
        .find(|t| t["kind"] == "video")?["last_time_ns"]
        .as_u64()
        .filter(|&ns| ns > 0)
        .map(|ns| ns / 1_000_000)
}

#[test]
fn rtmp_epoch_timestamps_wrap_cleanly_under_faketime() {
    let libfaketime = libfaketime();
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (origin_port, control_port, nginx_port, ffmpeg_port) =
        (free_port(), free_port(), free_port(), free_port());

    let ngx_dir = d.join("nginx");
    std::fs::create_dir_all(&ngx_dir).expect("nginx dir");
    let nginx = Nginx::start(&ngx_dir, nginx_port);
    let ff_out = d.join("ffmpeg-server.flv");
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "warning", "-nostdin", "-y"])
        .args(["-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{ffmpeg_port}/live/wrap_180p"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(&ff_out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("ffmpeg-server.log")).expect("ffmpeg log"))
        .spawn()
        .expect("start ffmpeg (scripts/install-deps)");

    let config = small_config(d, "wrap", origin_port, control_port);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text = without_rendition(&text, "240p");
    // 100 kbit/s: libavformat's server sends its first acknowledgement after ~1.25 MB, and
    // until the publisher's acknowledgement handling is fixed (issue #10 part 1) a first
    // acknowledgement on a 2.5 MB window trips its stall detector 2 s later; at 250 kbit/s
    // that is ~32 s into the publish, inside this test's window. At 100 kbit/s it is past it.
    text = text.replace("bitrate_kbps = 250", "bitrate_kbps = 100");
    text.push_str(&format!(
        "\n[[output]]\nname = \"ngx\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1:{nginx_port}/live\"\n\
         stream = \"wrap\"\n\n[[output]]\nname = \"ff\"\nprotocol = \"rtmp\"\n\
         primary = \"rtmp://127.0.0.1:{ffmpeg_port}/live\"\nstream = \"wrap\"\n"
    ));
    std::fs::write(&config, &text).expect("write config");

    // The next wrap instant, and a fake clock LEAD before it.
    let now = epoch_ms();
    let wrap = now.div_ceil(WRAP_MS) * WRAP_MS;
    let offset_ms = wrap - now - LEAD.as_millis() as u64;
    let faketime = format!("+{}.{:03}", offset_ms / 1000, offset_ms % 1000);
    let log = d.join("daemon.log");
    let child = Command::new(env!("CARGO_BIN_EXE_twincast"))
        .args(["run", "--config"])
        .arg(&config)
        .env("LD_PRELOAD", libfaketime)
        .env("FAKETIME", &faketime)
        .env("DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start twincast");
    let started = Instant::now();
    let mut daemon = Daemon {
        child,
        origin: format!("http://127.0.0.1:{origin_port}"),
        log,
    };
    let status_url = format!("http://127.0.0.1:{control_port}/status");

    // The pipeline runs on the fake clock: fragments carry fake epoch times before the wrap.
    let first = wait_for("the first fragment", Duration::from_secs(60), || {
        get_text(&status_url).as_deref().and_then(last_video_ms)
    });
    assert!(
        first < wrap && first + LEAD.as_millis() as u64 + 5_000 > wrap,
        "fragments are not on the fake clock: {first} vs wrap {wrap}\n{}",
        daemon.log_text()
    );
    assert!(
        first % WRAP_MS > WRAP_MS - 30_000,
        "not just before a wrap: {first}"
    );
    let deadline = LEAD + AFTER + Duration::from_secs(60);
    let last = wait_for("fragments past the wrap", deadline, || {
        get_text(&status_url)
            .as_deref()
            .and_then(last_video_ms)
            .filter(|&t| t > wrap + AFTER.as_millis() as u64)
    });
    let status = get_text(&status_url).unwrap_or_default();
    daemon.stop();
    let elapsed = started.elapsed();
    let _ = ffmpeg.wait_timeout_or_kill(Duration::from_secs(10));
    let log_text = daemon.log_text();
    assert!(
        !log_text.contains("backoff") && !log_text.contains("reconnect"),
        "a publish broke:\n{log_text}\nffmpeg:\n{}",
        std::fs::read_to_string(d.join("ffmpeg-server.log")).unwrap_or_default()
    );
    assert!(
        status.matches("\"publishing\"").count() >= 2,
        "both outputs publishing at the end:\n{status}"
    );

    // Everything the daemon sent from before the wrap to after it is in each recording.
    let min_ms = (last - first) as i64 - 4_000;
    let recs = nginx.recordings();
    assert_eq!(
        recs.len(),
        1,
        "one nginx recording (no reconnect): {recs:?}"
    );
    let (nv, na, nspan) = assert_continuous(&recs[0], min_ms);
    let (fv, fa, fspan) = assert_continuous(&ff_out, min_ms);
    eprintln!(
        "wrap at {wrap} ms; fake clock {faketime} s; fragments {first}..{last} ms; {:.1} s real; \
         nginx {nv} video / {na} audio frames over {nspan} ms; ffmpeg {fv} / {fa} over {fspan} ms",
        elapsed.as_secs_f64()
    );
    drop(nginx);
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitOrKill for Child {
    /// ffmpeg ends when the publisher leaves; kill it if it does not within `timeout`.
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.kill();
        self.wait().ok()
    }
}
