//! The soak (issue #14, part 1): the shipped ladder, fed over RTP by ffmpeg, pushes to two
//! nginx-rtmp servers with their default settings (primary and secondary), to a Smooth and a
//! CMAF ingest receiver, and serves its origin to HLS and DASH readers that poll it; the input
//! is lost for 20 s every 10 minutes (a relay stops forwarding, like a pulled cable).
//!
//! Every 10 s the daemon's RSS, open fds, threads, CPU time, the publish backlogs, drops,
//! reconnects and the A/V offset at the origin go into `soak.csv`; at the end gnuplot draws
//! `soak.png`. The run fails on RSS growth over 5 % after the warm-up, any growth of fds or
//! threads, any reconnect (the test never touches the ingest side), any lost fragment (a drop
//! in `/status`, a gap in the `mfhd` sequence the receiver saw, a second publish at nginx, a
//! reader that got an error) and an A/V offset over one AAC frame.
//!
//! `soak_short` (5 minutes, one outage) runs in CI; `scripts/soak [DURATION]` runs the long
//! form (`soak_long`, default one hour) in a release build and keeps the CSV and the plot.

mod common;
mod peers;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use peers::{Nginx, Receiver, decodes, probe_flv};

const RENDITIONS: [&str; 3] = ["720p", "480p", "360p"];
const TRACKS: [&str; 4] = ["720p", "480p", "360p", "audio"];
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The widest step between two video timestamps of a recording at 30 fps (FLV has ms).
const FRAME_MS: i64 = 34;
/// One AAC frame at 48 kHz, in ms.
const AAC_FRAME_MS: f64 = 1024.0 / 48.0;

/// How one run is shaped.
struct Plan {
    total: Duration,
    warmup: Duration,
    outage_every: Duration,
    outage: Duration,
    out_dir: PathBuf,
}

/// One row of `soak.csv`.
#[derive(Debug, Clone, Default)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    cpu_s: f64,
    backlog_bytes: u64,
    dropped_fragments: u64,
    reconnects: u64,
    av_offset_ms: Option<f64>,
    input_live: bool,
    reader_errors: u64,
}

const CSV_HEADER: &str = "t_s,rss_kib,fds,threads,cpu_s,backlog_bytes,dropped_fragments,reconnects,av_offset_ms,input_live,reader_errors";

impl Sample {
    fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{},{:.2},{},{},{},{},{},{}",
            self.t_s,
            self.rss_kib,
            self.fds,
            self.threads,
            self.cpu_s,
            self.backlog_bytes,
            self.dropped_fragments,
            self.reconnects,
            self.av_offset_ms
                .map_or(String::new(), |v| format!("{v:.3}")),
            u8::from(self.input_live),
            self.reader_errors
        )
    }
}

/// ffmpeg sending a 720p30 test picture and a tone as MPEG-TS over RTP.
fn sender(port: u16) -> Child {
    Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30"])
        .args(["-f", "lavfi", "-i", "sine=f=440:r=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "30",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "rtp_mpegts",
        ])
        .arg(format!("rtp://127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg (run scripts/install-deps)")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/proc/<pid>`: (open fds, threads, user + system CPU seconds).
fn proc_figures(pid: u32) -> (u64, u64, f64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux this runs on.
    (fds, threads, (ticks(11) + ticks(12)) / 100.0)
}

/// The names of the process's threads (`/proc/<pid>/task/*/comm`), sorted: when the count
/// changes, the soak says which thread came or went.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What is in `now` and not in `before`, as a multiset difference.
fn names_added(before: &[String], now: &[String]) -> Vec<String> {
    let mut rest = before.to_vec();
    now.iter()
        .filter(|n| match rest.iter().position(|r| r == *n) {
            Some(i) => {
                rest.swap_remove(i);
                false
            }
            None => true,
        })
        .cloned()
        .collect()
}

/// The start of the newest segment both the 720p and the audio playlists list under the same
/// media sequence number, audio minus video, in ms (segment URIs are `<t>.m4s` in the track
/// timescale: 90 kHz and 48 kHz).
fn av_offset_ms(origin: &str) -> Option<f64> {
    let starts = |track: &str, timescale: f64| -> Option<BTreeMap<u64, f64>> {
        let text = get_text(&format!("{origin}/live/{track}/index.m3u8"))?;
        let first = media_sequence(&text)?;
        let segments = playlist_segments(&text);
        Some(
            segments
                .iter()
                .enumerate()
                .filter_map(|(i, uri)| {
                    let t: u64 = uri.strip_suffix(".m4s")?.parse().ok()?;
                    Some((first + i as u64, t as f64 / timescale))
                })
                .collect(),
        )
    };
    let video = starts("720p", 90_000.0)?;
    let audio = starts("audio", 48_000.0)?;
    let (seq, v) = video.iter().rev().find(|(s, _)| audio.contains_key(s))?;
    Some((audio[seq] - v) * 1000.0)
}

/// HLS and DASH readers: every second the master playlist, each media playlist, the newest
/// segment of each, and both MPDs. Counts every answer that is not a 200.
fn spawn_readers(origin: String, stop: Arc<AtomicBool>, errors: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let get = |path: &str| -> Option<Vec<u8>> {
            match http_get(&format!("{origin}{path}")) {
                Some((200, body)) => Some(body),
                other => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("reader: {path}: {:?}", other.map(|(code, _)| code));
                    None
                }
            }
        };
        while !stop.load(Ordering::Relaxed) {
            get("/live/master.m3u8");
            get("/live/manifest.mpd");
            get("/live/manifest-number.mpd");
            for track in TRACKS {
                let Some(text) = get(&format!("/live/{track}/index.m3u8")) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&text).to_string();
                if let Some(last) = playlist_segments(&text).last() {
                    get(&format!("/live/{track}/{last}"));
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

/// Every destination's (output, dest, track) → (attempts, dropped, backlog bytes, state).
fn destinations(status: &serde_json::Value) -> Vec<(String, u64, u64, u64, String)> {
    status["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|o| o["destinations"].as_array().into_iter().flatten())
        .map(|d| {
            (
                format!(
                    "{} {} {}",
                    d["output"].as_str().unwrap_or(""),
                    d["dest"].as_str().unwrap_or(""),
                    d["track"].as_str().unwrap_or("")
                ),
                d["attempts"].as_u64().unwrap_or(0),
                d["dropped_fragments"].as_u64().unwrap_or(0),
                d["backlog_bytes"].as_u64().unwrap_or(0),
                d["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Gaps in the `mfhd` sequences the receiver saw for each `<prefix>/…Streams(<track>)…` path:
/// the union of every request's fragments must run from its first to its last without a hole.
fn receiver_gaps(rx: &Receiver, prefix: &str) -> Vec<String> {
    let mut per_track: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for r in rx.requests() {
        let Some(rest) = r.path.strip_prefix(prefix) else {
            continue;
        };
        let track = rest
            .split_once("Streams(")
            .and_then(|(_, t)| t.split_once(')'))
            .map_or("?", |(t, _)| t);
        per_track
            .entry(track.to_string())
            .or_default()
            .extend(r.sequences.iter().copied());
    }
    let mut problems = Vec::new();
    for track in TRACKS {
        let seqs = per_track.get(track).cloned().unwrap_or_default();
        let (Some(first), Some(last)) = (seqs.first(), seqs.last()) else {
            problems.push(format!("{prefix} {track}: no fragment received"));
            continue;
        };
        let missing = u64::from(last - first) + 1 - seqs.len() as u64;
        if missing > 0 {
            problems.push(format!(
                "{prefix} {track}: {missing} fragment(s) missing between {first} and {last}"
            ));
        }
    }
    problems
}

/// The wall clock in ms since the epoch, for the log (the FLV timestamps are on it, mod 2^32).
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What is wrong with the recordings nginx made of each rendition over `total`: one recording
/// (one publish), H.264 and AAC, a picture for every frame time (30 fps, the slate's too) with
/// no hole, and, when `decode` is set, ffmpeg decoding it without an error.
fn recording_problems(
    nginx_dir: &Path,
    server: &str,
    total: Duration,
    decode: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for r in RENDITIONS {
        let stream = format!("cam_{r}");
        let recs = peers::recordings_in(&nginx_dir.join("records"), &stream);
        let [path] = recs.as_slice() else {
            problems.push(format!("nginx {server}: {stream} recorded {recs:?}"));
            continue;
        };
        let f = probe_flv(path);
        if f.video_codec != "h264" || f.audio_codec != "aac" {
            problems.push(format!(
                "nginx {server}: {stream} carries {}/{}",
                f.video_codec, f.audio_codec
            ));
        }
        // Every frame time of the run but the first seconds (the publish starts after the
        // first pictures) is there.
        let least = (total.as_secs() as usize).saturating_sub(10) * 30;
        if f.video_ms.len() < least {
            problems.push(format!(
                "nginx {server}: {stream} has {} pictures, fewer than {least}",
                f.video_ms.len()
            ));
        }
        let first = f.video_ms.first().copied().unwrap_or(0);
        let holes: Vec<String> = f
            .video_ms
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1] - w[0] > FRAME_MS)
            .map(|(i, w)| {
                format!(
                    "{} ms after picture {i} ({:.3} s in, at {} ms)",
                    w[1] - w[0],
                    (w[0] - first) as f64 / 1000.0,
                    w[0]
                )
            })
            .collect();
        if !holes.is_empty() {
            problems.push(format!(
                "nginx {server}: {stream} has {} hole(s): {}",
                holes.len(),
                holes.iter().take(4).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        if decode && !decodes(path) {
            problems.push(format!("nginx {server}: {stream} does not decode"));
        }
    }
    problems
}

/// Publishes nginx logged for `stream` (its error log at level info has one `publish:` line
/// per publish).
fn nginx_publishes(n: &Nginx, stream: &str) -> usize {
    let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
    let needle = format!("publish: name='{stream}'");
    log.lines().filter(|l| l.contains(&needle)).count()
}

/// The lowest value over the first and over the last `n` samples after `from`: a leak raises
/// the floor, a passing connection or thread does not.
fn floor_growth(samples: &[Sample], from: usize, n: usize, get: fn(&Sample) -> u64) -> (u64, u64) {
    let after = &samples[from.min(samples.len())..];
    let n = n.min(after.len() / 2).max(1);
    let floor = |s: &[Sample]| s.iter().map(get).min().unwrap_or(0);
    (
        floor(&after[..n.min(after.len())]),
        floor(&after[after.len().saturating_sub(n)..]),
    )
}

fn plot(out_dir: &Path, plan: &Plan) {
    let script = format!(
        r#"set terminal pngcairo size 1200,1400 font ",10"
set output "{dir}/soak.png"
set datafile separator ","
set key autotitle columnhead left top
set multiplot layout 5,1 title "twincast soak: shipped ladder, 2 × RTMP (nginx-rtmp defaults) + Smooth + CMAF, input lost {outage} s every {every} s"
set xlabel "minutes"
set ylabel "RSS (MiB)"
plot "{dir}/soak.csv" using ($1/60):($2/1024) with lines title "RSS"
set ylabel "count"
plot "{dir}/soak.csv" using ($1/60):3 with lines title "open fds", "" using ($1/60):4 with lines title "threads"
set ylabel "% of a core"
plot "{dir}/cpu.dat" using ($1/60):2 with lines title "CPU (over each 10 s)"
set ylabel "MiB / count"
plot "{dir}/soak.csv" using ($1/60):($6/1048576) with lines title "backlogs (MiB)", "" using ($1/60):7 with lines title "dropped fragments", "" using ($1/60):8 with lines title "reconnects", "" using ($1/60):11 with lines title "reader errors"
set ylabel "ms"
plot "{dir}/soak.csv" using ($1/60):9 with lines title "A/V offset (audio − video segment start)", "" using ($1/60):($10*{aac:.3}) with steps title "input live (× one AAC frame)"
unset multiplot
"#,
        dir = out_dir.display(),
        outage = plan.outage.as_secs(),
        every = plan.outage_every.as_secs(),
        aac = AAC_FRAME_MS,
    );
    let path = out_dir.join("soak.gnuplot");
    std::fs::write(&path, script).expect("gnuplot script");
    match Command::new("gnuplot").arg(&path).output() {
        Ok(o) if o.status.success() => println!("plot: {}/soak.png", out_dir.display()),
        Ok(o) => println!("gnuplot failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("no plot (gnuplot: {e}; scripts/install-deps installs gnuplot-nox)"),
    }
}

fn soak(plan: &Plan) {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(&plan.out_dir).expect("out dir");
    let (origin, control) = (free_port(), free_port());
    let (rtmp_a, rtmp_b, http) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(dir.path().join("nginx-a")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("nginx-b")).expect("mkdir");
    let nginx_a = Nginx::start_default(&dir.path().join("nginx-a"), rtmp_a);
    let nginx_b = Nginx::start_default(&dir.path().join("nginx-b"), rtmp_b);
    let receiver = Receiver::start_counting(http);
    let rtp = free_udp_port();
    let relay = UdpRelay::start(rtp);
    let _sender = Killed(sender(relay.listen_port));

    let config = config_from_shipped(
        dir.path(),
        "soak.toml",
        origin,
        control,
        &[
            (
                "kind = \"test\"",
                &format!("kind = \"rtp\"\nuri = \"rtp://127.0.0.1:{rtp}\""),
            ),
            ("audio = \"test\"", "audio = \"input\""),
        ],
    );
    let mut text = std::fs::read_to_string(&config).expect("config");
    write!(
        text,
        r#"
[[output]]
name = "rtmp"
protocol = "rtmp"
primary = "rtmp://127.0.0.1:{rtmp_a}/live"
secondary = "rtmp://127.0.0.1:{rtmp_b}/live"
stream = "cam"

[[output]]
name = "smooth"
protocol = "smooth"
primary = "http://127.0.0.1:{http}/sm/ingest.isml"

[[output]]
name = "cmaf"
protocol = "cmaf"
primary = "http://127.0.0.1:{http}/cm"
"#
    )
    .expect("write");
    std::fs::write(&config, text).expect("config");
    let mut daemon = Daemon::start(&config, origin, dir.path().join("daemon.log"));
    let pid = daemon.child.id();
    let status_url = format!("http://127.0.0.1:{control}/status");
    daemon.wait_for(
        "every destination publishing",
        Duration::from_secs(120),
        || {
            let s = get_json(&status_url)?;
            let d = destinations(&s);
            // 6 RTMP, 4 Smooth streams and its sparse SCTE-35 track, 4 CMAF tracks.
            (d.len() == 15 && d.iter().all(|x| x.4 == "publishing")).then_some(())
        },
    );
    daemon.wait_for("the input live", Duration::from_secs(60), || {
        let s = get_json(&status_url)?;
        (s["input"]["state"] == "live").then_some(())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let reader_errors = Arc::new(AtomicU64::new(0));
    spawn_readers(daemon.origin.clone(), stop.clone(), reader_errors.clone());

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut csv = format!("{CSV_HEADER}\n");
    let mut problems: Vec<String> = Vec::new();
    let mut next_outage = plan.outage_every;
    let mut outages = 0;
    // The outage runs beside the sampling, so the samples show it: the end of the outage in
    // progress, and the deadline for the input to be live again after one.
    let mut outage_until: Option<Duration> = None;
    let mut live_by: Option<Duration> = None;
    let mut next_sample = Duration::ZERO;
    let mut last_names: Vec<String> = Vec::new();
    while started.elapsed() < plan.total {
        let now = started.elapsed();
        if outage_until.is_none() && now >= next_outage {
            relay.set_on(false);
            println!(
                "t+{:.0}s: input cut for {:?} (epoch {} ms)",
                now.as_secs_f64(),
                plan.outage,
                epoch_ms()
            );
            outage_until = Some(now + plan.outage);
            next_outage += plan.outage_every;
        }
        if outage_until.is_some_and(|until| now >= until) {
            relay.set_on(true);
            println!(
                "t+{:.0}s: input back (epoch {} ms)",
                now.as_secs_f64(),
                epoch_ms()
            );
            outage_until = None;
            outages += 1;
            live_by = Some(now + Duration::from_secs(30));
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            let Some(status) = get_json(&status_url) else {
                problems.push(format!("t+{:.0}s: no /status", now.as_secs_f64()));
                continue;
            };
            let (fds, threads, cpu_s) = proc_figures(pid);
            let names = thread_names(pid);
            if !last_names.is_empty() && names != last_names {
                println!(
                    "t+{:.0}s: threads {} -> {}: came {:?}, went {:?}",
                    now.as_secs_f64(),
                    last_names.len(),
                    names.len(),
                    names_added(&last_names, &names),
                    names_added(&names, &last_names)
                );
            }
            last_names = names;
            let d = destinations(&status);
            let s = Sample {
                t_s: now.as_secs_f64(),
                rss_kib: rss_kib(pid).unwrap_or(0),
                fds,
                threads,
                cpu_s,
                backlog_bytes: d.iter().map(|x| x.3).sum(),
                dropped_fragments: d.iter().map(|x| x.2).sum(),
                reconnects: d.iter().map(|x| x.1.saturating_sub(1)).sum(),
                av_offset_ms: av_offset_ms(&daemon.origin),
                input_live: status["input"]["state"] == "live",
                reader_errors: reader_errors.load(Ordering::Relaxed),
            };
            if let Some(by) = live_by {
                if s.input_live {
                    live_by = None;
                } else if now > by {
                    problems.push(format!(
                        "t+{:.0}s: the input is not live 30 s after the outage ended",
                        now.as_secs_f64()
                    ));
                    live_by = None;
                }
            }
            println!("{}", s.csv());
            csv.push_str(&s.csv());
            csv.push('\n');
            std::fs::write(plan.out_dir.join("soak.csv"), &csv).expect("csv");
            samples.push(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let final_status = get_json(&status_url).expect("final /status");
    assert!(
        daemon.child.try_wait().ok().flatten().is_none(),
        "the daemon exited during the soak"
    );

    // CPU per interval, for the plot.
    let mut cpu = String::from("t_s,cpu_pct\n");
    for w in samples.windows(2) {
        let pct = (w[1].cpu_s - w[0].cpu_s) / (w[1].t_s - w[0].t_s) * 100.0;
        let _ = writeln!(cpu, "{:.1},{pct:.1}", w[1].t_s);
    }
    std::fs::write(plan.out_dir.join("cpu.dat"), cpu).expect("cpu.dat");
    plot(&plan.out_dir, plan);

    // The verdict.
    let warm = samples
        .iter()
        .position(|s| s.t_s >= plan.warmup.as_secs_f64())
        .unwrap_or(samples.len());
    if warm < samples.len() {
        // Floors, as for fds and threads: the lowest RSS of the first minute after the warm-up
        // against the lowest of the last minute. A leak raises the floor; the passing bursts
        // of 25-35 MB that come and go within a sample or three (readers fetching segments
        // while the fragments of every track are written) do not, and are reported as the
        // peak. The 1-hour run: floor +1.3 %, peak +15.1 % over the first floor.
        let (early, late) = floor_growth(&samples, warm, 6, |s| s.rss_kib);
        let peak = samples[warm..].iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let growth = (late as f64 / early.max(1) as f64 - 1.0) * 100.0;
        println!(
            "RSS floor {early} KiB in the first minute after the warm-up, {late} KiB in the last: {growth:+.1} %; peak sample {peak} KiB ({:+.1} % over the first floor)",
            (peak as f64 / early.max(1) as f64 - 1.0) * 100.0
        );
        if growth > 5.0 {
            problems.push(format!(
                "RSS grew {growth:.1} % after the warm-up (limit 5 %)"
            ));
        }
    } else {
        problems.push("no sample after the warm-up".into());
    }
    for (what, get) in [
        ("open fds", (|s: &Sample| s.fds) as fn(&Sample) -> u64),
        ("threads", |s: &Sample| s.threads),
    ] {
        let (early, late) = floor_growth(&samples, warm, 6, get);
        println!("{what}: floor {early} after the warm-up, {late} at the end");
        if late > early {
            problems.push(format!("{what} grew from {early} to {late}"));
        }
    }
    for (name, attempts, dropped, _, state) in destinations(&final_status) {
        if attempts != 1 {
            problems.push(format!(
                "{name}: {} reconnect(s), none caused by the test",
                attempts.saturating_sub(1)
            ));
        }
        if dropped != 0 {
            problems.push(format!("{name}: {dropped} fragment(s) dropped"));
        }
        if state != "publishing" {
            problems.push(format!("{name}: {state} at the end"));
        }
    }
    // Pictures the encoders could not take: a box too loaded to keep up (the recordings then
    // have holes, below). Said on its own so that such a failure names its cause.
    for (field, what) in [
        ("frames_not_encoded", "pictures"),
        ("audio_frames_not_encoded", "AAC frames"),
    ] {
        let n = final_status["input"][field].as_u64().unwrap_or(0);
        if n > 0 {
            problems.push(format!(
                "{n} {what} not encoded (input.{field}): the encoders fell behind, the box was overloaded"
            ));
        }
    }
    problems.extend(receiver_gaps(&receiver, "/sm"));
    problems.extend(receiver_gaps(&receiver, "/cm"));
    for (server, n) in [("primary", &nginx_a), ("secondary", &nginx_b)] {
        for r in RENDITIONS {
            let publishes = nginx_publishes(n, &format!("cam_{r}"));
            if publishes != 1 {
                problems.push(format!(
                    "nginx {server}: cam_{r} published {publishes} times"
                ));
            }
        }
    }
    let errors = reader_errors.load(Ordering::Relaxed);
    if errors > 0 {
        problems.push(format!("the HLS/DASH readers got {errors} error(s)"));
    }
    let offsets: Vec<f64> = samples.iter().filter_map(|s| s.av_offset_ms).collect();
    let worst = offsets.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    println!(
        "A/V offset at the origin: {} samples, worst {worst:.3} ms (one AAC frame is {AAC_FRAME_MS:.3} ms)",
        offsets.len()
    );
    if offsets.len() < samples.len() / 2 {
        problems.push(format!(
            "the A/V offset was read in only {} of {} samples",
            offsets.len(),
            samples.len()
        ));
    }
    if worst > AAC_FRAME_MS {
        problems.push(format!("A/V offset {worst:.3} ms is over one AAC frame"));
    }
    if outages == 0 && plan.total > plan.outage_every + plan.outage {
        problems.push("no input outage happened".into());
    }
    println!(
        "{} samples, {outages} input outage(s), {:.0} CPU-seconds; CSV {}/soak.csv",
        samples.len(),
        samples.last().map_or(0.0, |s| s.cpu_s),
        plan.out_dir.display()
    );
    let status = daemon.stop();
    if !status.is_some_and(|s| s.success()) {
        problems.push(format!("daemon exit at the end: {status:?}"));
    }
    let (dir_a, dir_b) = (nginx_a.dir.clone(), nginx_b.dir.clone());
    drop((nginx_a, nginx_b));
    problems.extend(recording_problems(&dir_a, "primary", plan.total, true));
    problems.extend(recording_problems(&dir_b, "secondary", plan.total, false));
    drop(daemon);
    // The daemon's log (its stall evidence, its reconnects) stays with the CSV.
    let _ = std::fs::copy(
        dir.path().join("daemon.log"),
        plan.out_dir.join("daemon.log"),
    );
    assert!(
        problems.is_empty(),
        "soak failed:\n  {}",
        problems.join("\n  ")
    );
}

/// The short form, in CI: five minutes, one 20 s outage at 2.5 min, a 2-minute warm-up.
#[test]
fn soak_short() {
    let out_dir = std::env::var_os("TWINCAST_SOAK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("twincast-soak-short"));
    soak(&Plan {
        total: Duration::from_secs(300),
        warmup: Duration::from_secs(120),
        outage_every: Duration::from_secs(150),
        outage: Duration::from_secs(20),
        out_dir,
    });
}

/// The long form (`scripts/soak [DURATION]`): `TWINCAST_SOAK_SECONDS` (default 3600), an
/// outage of 20 s every 10 minutes, a 5-minute warm-up.
#[test]
#[ignore = "an hour long: scripts/soak runs it"]
fn soak_long() {
    let seconds = std::env::var("TWINCAST_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    let out_dir = std::env::var_os("TWINCAST_SOAK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("twincast-soak"));
    soak(&Plan {
        total: Duration::from_secs(seconds),
        warmup: Duration::from_secs(300.min(seconds / 3)),
        outage_every: Duration::from_secs(600),
        outage: Duration::from_secs(20),
        out_dir,
    });
}

/// The receiver's box scanner, fed a stream cut at every byte: it finds each `moof`'s
/// sequence and skips everything else, a 64-bit-size box included.
#[test]
fn the_counting_receiver_reads_moof_sequences_across_any_split() {
    let mut stream = Vec::new();
    let boxed = |kind: &[u8; 4], body: &[u8]| {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    };
    for seq in [7u32, 8, 9] {
        stream.extend(boxed(b"styp", b"cmfs\0\0\0\0"));
        let mut mfhd = vec![0, 0, 0, 0];
        mfhd.extend_from_slice(&seq.to_be_bytes());
        let mut traf = boxed(b"traf", &[0; 30]);
        let mut moof_body = boxed(b"mfhd", &mfhd);
        moof_body.append(&mut traf);
        stream.extend(boxed(b"moof", &moof_body));
        // A large mdat with a 64-bit size.
        let payload = vec![0x6d; 100];
        stream.extend_from_slice(&1u32.to_be_bytes());
        stream.extend_from_slice(b"mdat");
        stream.extend_from_slice(&(payload.len() as u64 + 16).to_be_bytes());
        stream.extend_from_slice(&payload);
    }
    for cut in 1..stream.len() {
        let seqs = peers::scan_sequences(&[&stream[..cut], &stream[cut..]]);
        assert_eq!(seqs, vec![7, 8, 9], "cut at {cut}");
    }
    assert_eq!(
        peers::scan_sequences(&stream.chunks(1).collect::<Vec<_>>()),
        vec![7, 8, 9]
    );
}
