//! `GET /status`: one JSON document with everything an operator looks at
//! (docs/design/operations.md, *Status, metrics, events*), and the one-line summary that goes to
//! systemd's `STATUS=`.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::config::{Config, sanitize_url};
use crate::status::{DestState, DestStatus};

use super::clock::{self, ClockSync};
use super::state::Ops;

#[derive(Debug, Serialize)]
pub struct Status {
    pub encoder: EncoderInfo,
    /// Kernel clock discipline; `null` when it cannot be read.
    pub clock: Option<ClockSync>,
    /// Clock synchronised with an error well under half a frame.
    pub pair_locked: bool,
    /// READY=1 sent: every track has cut its first fragment and the origin listens.
    pub ready: bool,
    pub input: InputInfo,
    pub tracks: Vec<TrackInfo>,
    pub outputs: Vec<OutputInfo>,
    pub publish: PublishInfo,
    pub origin: OriginInfo,
    pub config: ConfigInfo,
    /// Ad signals: the splice schedule (docs/design/signals.md).
    pub signals: SignalsInfo,
    /// The line systemd shows as the unit's status.
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct SignalsInfo {
    /// Splices on the schedule (at most 256), and how many of them are still ahead.
    pub scheduled: usize,
    pub pending: usize,
    /// IDRs forced on splice frames.
    pub conditioned_frames: u64,
    /// `POST /splice` requests refused (4xx other than the token's).
    pub refused_requests: u64,
    /// SCTE-35 sections of the input that scheduled a splice, and those not carried.
    pub passed_through_sections: u64,
    pub sections_not_passed: u64,
    /// The source's closed captions (`[input] captions`, src/captions.rs).
    pub captions: CaptionsInfo,
}

#[derive(Debug, Serialize)]
pub struct CaptionsInfo {
    /// `passthrough` or `none`.
    pub mode: &'static str,
    /// The HLS master and the MPD declare CEA-608 captions (CC1).
    pub declared: bool,
    /// Frames fed with a source picture that carried captions, and their `cc_data` constructs.
    pub frames: u64,
    pub constructs: u64,
    /// Source pictures whose captions were dropped because `captions = "none"`.
    pub frames_not_carried: u64,
}

#[derive(Debug, Serialize)]
pub struct EncoderInfo {
    pub name: String,
    pub pair: String,
    pub version: &'static str,
    pub pid: u32,
    pub uptime_s: u64,
    /// Configured frame rate "N/D".
    pub framerate: String,
    pub gop_ms: u64,
    pub fragment_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct InputInfo {
    pub kind: String,
    /// What the encoders get (docs/design/timeline.md, *Input loss and the slate*): "live" (the
    /// source's pictures), "slate" (no picture for longer than `slate_after`), or "starting" before
    /// the first frame.
    pub state: &'static str,
    /// Since when, ns since the epoch and as ISO 8601 UTC (the first frame of this state).
    pub since_ns: u64,
    pub since: String,
    /// Which input feeds the encoders: "primary" (`[input]`) or "backup" (`[input.backup]`).
    pub source: &'static str,
    /// Pictures from the backup input, and the switches between the two.
    pub backup_frames_in: u64,
    pub source_switches: u64,
    /// How W is taken by the input that feeds the encoders (the primary unless the backup is
    /// on air): "arrival", "rtcp", "pts", or "pending" while a network input has not anchored
    /// its feed yet.
    pub timing: &'static str,
    /// The primary network input's front-end counters (lost, reordered, duplicated packets,
    /// PCR/PTS discontinuities, …); `null` for the other kinds. Each entry of `sources` has its
    /// own.
    pub counters: Option<crate::capture::sources::NetworkCounters>,
    pub last_frame_age_ms: Option<u64>,
    /// Source pictures that reached the grid feed.
    pub frames_in: u64,
    /// Source pictures whose index was already given out.
    pub frames_dropped: u64,
    /// Source pictures that arrived after their frame was fed.
    pub frames_late: u64,
    /// Source pictures the grid feed dropped because 64 were already waiting for their slot.
    pub frames_overflow: u64,
    pub reanchors: u64,
    pub units_dropped: u64,
    /// Encoded buffers without a usable time, dropped.
    pub units_untimed: u64,
    /// Frames fed to the encoders, and how many of them were slate.
    pub grid_frames: u64,
    pub slate_frames: u64,
    /// Frames the grid clock skipped because it fell more than a second behind (an
    /// overloaded box): missing from every rendition.
    pub grid_skipped: u64,
    /// Steps of the system clock the grid clock saw, forward and back, and the last one in
    /// ms (negative: back; 0 before any). A slew is not a step and is not counted.
    pub clock_steps_forward: u64,
    pub clock_steps_back: u64,
    pub clock_last_step_ms: i64,
    /// Video / AAC frames the encoders did not take because their queue was full (an encoder
    /// that cannot keep up): missing from the renditions.
    pub frames_not_encoded: u64,
    pub audio_frames_not_encoded: u64,
    /// How far behind the clock the encoders are fed (covers the source's own delay), ms.
    pub feed_latency_ms: u64,
    /// Encoder pipelines rebuilt after an error.
    pub encoder_rebuilds: u64,
    /// The supervised source pipelines: state, last_error, restarts.
    pub sources: Vec<crate::capture::sources::SourceStatus>,
}

#[derive(Debug, Serialize)]
pub struct TrackInfo {
    pub name: String,
    pub kind: &'static str,
    pub fps: f64,
    pub bitrate_bps: u64,
    /// End of the last fragment in the track timescale.
    pub last_timestamp: u64,
    pub timescale: u32,
    /// The same as ns since the epoch.
    pub last_time_ns: u64,
    pub discontinuities: u64,
    pub fragments: u64,
    pub filler_fragments: u64,
    /// Sequence number of the next fragment.
    pub next_sequence: u64,
    pub units: u64,
    pub media_bytes: u64,
    /// Encoded units the packager could not place in a fragment (src/package.rs).
    pub dropped_units: u64,
    /// Video units sent without the epoch timecode SEI (src/package.rs).
    pub units_without_timecode: u64,
    /// Video units carrying the source's captions, and those whose captions could not be
    /// written into them (src/package.rs).
    pub units_with_captions: u64,
    pub units_without_captions: u64,
    /// Fragments the figures above (`fps`, `bitrate_bps`, `fragments`, …) missed because
    /// their monitor fell behind the hub; the fragments themselves were not lost.
    pub fragments_lagged: u64,
}

#[derive(Debug, Serialize)]
pub struct OutputInfo {
    pub name: String,
    pub protocol: String,
    /// Sanitised URLs (no credentials).
    pub primary: String,
    pub secondary: Option<String>,
    /// One entry per (URL × track) task the publishers run.
    pub destinations: Vec<DestStatus>,
}

/// What every output's tasks share.
#[derive(Debug, Serialize)]
pub struct PublishInfo {
    /// Bytes every backlog of every output holds together.
    pub memory_used_bytes: u64,
    /// `[publish] memory`: past it, the task furthest behind drops its oldest fragments.
    pub memory_limit_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct OriginInfo {
    pub listen: String,
    pub dvr_window_s: u64,
    pub tracks: Vec<OriginTrackInfo>,
    /// The disk tier of the DVR window.
    pub disk_enabled: bool,
    pub disk_bytes: u64,
    pub disk_files: u64,
    pub disk_errors: u64,
    /// Segment files deleted to stay under `[origin] dvr_max_bytes` (oldest of any track
    /// first); a segment not also in RAM leaves the window with its file.
    pub disk_evicted: u64,
    pub disk_read_errors: u64,
    pub requests: u64,
    /// Refused by the origin's allow-list (403).
    pub denied_requests: u64,
    pub not_found: u64,
    pub connections: u64,
    pub connections_refused: u64,
    /// Fragments the origin missed because it fell behind.
    pub fragments_lagged: u64,
}

#[derive(Debug, Serialize)]
pub struct OriginTrackInfo {
    pub name: String,
    pub segments: u64,
    /// Media sequence of the first and last segment in the window.
    pub first_segment: Option<u64>,
    pub last_segment: Option<u64>,
    /// Duration the window covers, ms.
    pub window_ms: u64,
    pub ram_segments: u64,
    pub ram_bytes: u64,
    pub disk_segments: u64,
    /// Segments that left RAM with no disk copy.
    pub lost_without_disk: u64,
}

#[derive(Debug, Serialize)]
pub struct ConfigInfo {
    pub path: String,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Accepted changes that wait for a restart.
    pub restart_needed: Vec<String>,
}

/// Builds the status document, one section after the other.
pub fn status(ops: &Ops) -> Status {
    let config = ops.config();
    let clock = clock::read();
    let rate = ops.grid.rate();
    let frame_ns = u64::from(rate.den()) * 1_000_000_000 / u64::from(rate.num().max(1));
    let tracks = track_infos(ops);
    let outputs = output_infos(ops, &config);
    let origin = origin_info(ops, &config);
    let input = input_info(ops, &config);
    let mut status = Status {
        encoder: encoder_info(ops, &config),
        clock,
        pair_locked: clock::pair_locked(clock, frame_ns),
        ready: ops.ready.load(Ordering::Relaxed),
        input,
        tracks,
        outputs,
        publish: PublishInfo {
            memory_used_bytes: ops.publish_budget.used(),
            memory_limit_bytes: ops.publish_budget.limit(),
        },
        origin,
        config: config_info(ops),
        signals: signals_info(ops),
        summary: String::new(),
    };
    status.summary = summary(&status);
    status
}

fn signals_info(ops: &Ops) -> SignalsInfo {
    let listed = ops.signals.list();
    SignalsInfo {
        scheduled: listed.len(),
        pending: listed.iter().filter(|l| l.pending).count(),
        conditioned_frames: ops.signals.conditioned.load(Ordering::Relaxed),
        refused_requests: ops.signals.refused.load(Ordering::Relaxed),
        passed_through_sections: ops.signals.passed_through.load(Ordering::Relaxed),
        sections_not_passed: ops.signals.not_passed.load(Ordering::Relaxed),
        captions: captions_info(&ops.signals.captions),
    }
}

fn captions_info(c: &crate::captions::Captions) -> CaptionsInfo {
    CaptionsInfo {
        mode: if c.passthrough() {
            "passthrough"
        } else {
            "none"
        },
        declared: c.declared(),
        frames: c.frames_in.load(Ordering::Relaxed),
        constructs: c.constructs.load(Ordering::Relaxed),
        frames_not_carried: c.frames_not_carried.load(Ordering::Relaxed),
    }
}

fn encoder_info(ops: &Ops, config: &Config) -> EncoderInfo {
    EncoderInfo {
        name: config.encoder.name.clone(),
        pair: config.encoder.pair.clone(),
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        uptime_s: ops.started_at.elapsed().as_secs(),
        framerate: format!("{}/{}", ops.grid.rate().num(), ops.grid.rate().den()),
        gop_ms: ops.grid.gop_ns() / 1_000_000,
        fragment_ms: ops.grid.fragment_duration_ns() / 1_000_000,
    }
}

/// Each track's figures (from its monitor) and counters (from the packager).
fn track_infos(ops: &Ops) -> Vec<TrackInfo> {
    ops.tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let f = ops.figures(i);
            let c = ops.counters.get(i);
            let load =
                |get: fn(&crate::package::TrackCounters) -> &std::sync::atomic::AtomicU64| {
                    c.map(|c| get(c).load(Ordering::Relaxed)).unwrap_or(0)
                };
            TrackInfo {
                name: t.name.clone(),
                kind: if t.video { "video" } else { "audio" },
                fps: (f.fps() * 100.0).round() / 100.0,
                bitrate_bps: f.bitrate_bps(),
                last_timestamp: f.last_timestamp,
                timescale: f.timescale,
                last_time_ns: f.last_time_ns(),
                discontinuities: f.discontinuities,
                fragments: f.fragments,
                filler_fragments: f.filler_fragments,
                next_sequence: load(|c| &c.next_sequence),
                units: load(|c| &c.units),
                media_bytes: load(|c| &c.media_bytes),
                dropped_units: load(|c| &c.dropped_units),
                units_without_timecode: load(|c| &c.units_without_timecode),
                units_with_captions: load(|c| &c.units_with_captions),
                units_without_captions: load(|c| &c.units_without_captions),
                fragments_lagged: f.fragments_lagged,
            }
        })
        .collect()
}

/// Each configured output with the publisher tasks of its URLs.
fn output_infos(ops: &Ops, config: &Config) -> Vec<OutputInfo> {
    let dests = ops.registry.dests();
    config
        .output
        .iter()
        .map(|o| OutputInfo {
            name: o.name.clone(),
            protocol: format!("{:?}", o.protocol).to_ascii_lowercase(),
            primary: sanitize_url(&o.primary),
            secondary: o.secondary.as_deref().map(sanitize_url),
            destinations: dests
                .iter()
                .filter(|d| d.output == o.name)
                .cloned()
                .collect(),
        })
        .collect()
}

fn origin_info(ops: &Ops, config: &Config) -> OriginInfo {
    let origin = ops.origin.stats();
    let tracks: Vec<OriginTrackInfo> = origin
        .tracks
        .iter()
        .map(|t| OriginTrackInfo {
            name: t.name.clone(),
            segments: t.segments,
            first_segment: t.first_index,
            last_segment: t.last_index,
            window_ms: t.window_ms,
            ram_segments: t.ram_segments,
            ram_bytes: t.ram_bytes,
            disk_segments: t.disk_segments,
            lost_without_disk: t.lost_without_disk,
        })
        .collect();
    OriginInfo {
        listen: config.origin.listen.to_string(),
        dvr_window_s: config.origin.dvr_window.as_secs(),
        tracks,
        disk_enabled: origin.disk_enabled,
        disk_bytes: origin.disk_bytes,
        disk_files: origin.disk_files,
        disk_errors: origin.disk_errors,
        disk_evicted: origin.disk_evicted,
        disk_read_errors: origin.disk_read_errors,
        requests: origin.requests,
        denied_requests: origin.denied_requests,
        not_found: origin.not_found,
        connections: origin.connections,
        connections_refused: origin.connections_refused,
        fragments_lagged: origin.fragments_lagged,
    }
}

/// `input.state` in words.
fn input_state_name(state: u8) -> &'static str {
    match state {
        crate::capture::STATE_LIVE => "live",
        crate::capture::STATE_SLATE => "slate",
        crate::capture::STATE_BACKUP => "backup",
        _ => "starting",
    }
}

/// The input section: what feeds the encoders, the capture counters and the sources.
fn input_info(ops: &Ops, config: &Config) -> InputInfo {
    let cap = &ops.capture;
    let state = input_state_name(cap.input_state.load(Ordering::Relaxed));
    let since_ns = cap.input_state_since_ns.load(Ordering::Relaxed);
    let sources = cap.sources();
    let source = source_name(cap.input_source.load(Ordering::Relaxed));
    let on_air = if source == "backup" {
        "backup"
    } else {
        "input"
    };
    let timing = sources
        .iter()
        .find(|s| s.role == on_air)
        .map(|s| s.timing)
        .unwrap_or("arrival");
    let counters = sources
        .iter()
        .find(|s| s.role == "input")
        .and_then(|s| s.counters);
    InputInfo {
        kind: format!("{:?}", config.input.kind).to_ascii_lowercase(),
        state,
        since_ns,
        since: if since_ns > 0 {
            twincast_media::hls::program_date_time(since_ns)
        } else {
            String::new()
        },
        source,
        backup_frames_in: cap.backup_frames_in.load(Ordering::Relaxed),
        source_switches: cap.source_switches.load(Ordering::Relaxed),
        timing,
        counters,
        last_frame_age_ms: ops.last_frame_age_ms(),
        frames_in: cap.frames_in.load(Ordering::Relaxed),
        frames_dropped: cap.frames_dropped.load(Ordering::Relaxed),
        frames_late: cap.frames_late.load(Ordering::Relaxed),
        frames_overflow: cap.frames_overflow.load(Ordering::Relaxed),
        reanchors: cap.reanchors.load(Ordering::Relaxed),
        units_dropped: cap.units_dropped.load(Ordering::Relaxed),
        units_untimed: cap.units_untimed.load(Ordering::Relaxed),
        grid_frames: cap.grid_frames.load(Ordering::Relaxed),
        slate_frames: cap.slate_frames.load(Ordering::Relaxed),
        grid_skipped: cap.grid_skipped.load(Ordering::Relaxed),
        clock_steps_forward: cap.clock_steps_forward.load(Ordering::Relaxed),
        clock_steps_back: cap.clock_steps_back.load(Ordering::Relaxed),
        clock_last_step_ms: cap.clock_last_step_ms.load(Ordering::Relaxed),
        frames_not_encoded: cap.frames_not_encoded.load(Ordering::Relaxed),
        audio_frames_not_encoded: cap.audio_frames_not_encoded.load(Ordering::Relaxed),
        feed_latency_ms: cap.latency_ns.load(Ordering::Relaxed) / 1_000_000,
        encoder_rebuilds: cap.encoder_rebuilds.load(Ordering::Relaxed),
        sources,
    }
}

fn config_info(ops: &Ops) -> ConfigInfo {
    ConfigInfo {
        path: ops.config_path.display().to_string(),
        reloads: ops.reload.reloads.load(Ordering::Relaxed),
        reload_failures: ops.reload.failures.load(Ordering::Relaxed),
        restart_needed: crate::sync::lock(&ops.reload.restart_needed).clone(),
    }
}

/// `input.source` in words.
pub fn source_name(source: u8) -> &'static str {
    if source == crate::capture::SOURCE_BACKUP {
        "backup"
    } else {
        "primary"
    }
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The state of one URL of an output, over all its tracks: the worst one wins.
fn dest_phrase(dests: &[&DestStatus]) -> String {
    if dests.is_empty() {
        return "not started".to_string();
    }
    let rank = |s: DestState| match s {
        DestState::Publishing => 0,
        DestState::Idle => 1,
        DestState::Connecting => 2,
        DestState::Backoff => 3,
        DestState::Failed => 4,
    };
    let worst = dests.iter().max_by_key(|d| rank(d.state)).map(|d| d.state);
    let attempts = dests.iter().map(|d| d.attempts).max().unwrap_or(0);
    match worst {
        Some(DestState::Publishing) => "publishing".to_string(),
        Some(DestState::Idle) => "idle".to_string(),
        Some(DestState::Failed) => "failed".to_string(),
        Some(DestState::Connecting | DestState::Backoff) if attempts > 1 => {
            format!("reconnecting ({} try)", ordinal(attempts))
        }
        _ => "connecting".to_string(),
    }
}

/// "2 renditions 30 fps; cloud: primary publishing, secondary reconnecting (3rd try)".
pub fn summary(s: &Status) -> String {
    let renditions = s.tracks.iter().filter(|t| t.kind == "video").count();
    let fps = s
        .tracks
        .iter()
        .find(|t| t.kind == "video")
        .map(|t| t.fps)
        .unwrap_or(0.0);
    let mut line = format!(
        "{renditions} rendition{} {} fps",
        if renditions == 1 { "" } else { "s" },
        (fps * 10.0).round() / 10.0
    );
    match s.input.state {
        "slate" => {
            // "input lost (slate since 23:40:05 UTC)"
            let at = s.input.since.get(11..19).unwrap_or("");
            line.push_str(&format!(", input lost (slate since {at} UTC)"));
            if let Some(e) = s
                .input
                .sources
                .iter()
                .find(|x| x.role == "input")
                .and_then(|x| x.last_error.as_deref().filter(|_| x.state == "backoff"))
            {
                line.push_str(&format!(": {e}"));
            }
        }
        "backup" => {
            let at = s.input.since.get(11..19).unwrap_or("");
            line.push_str(&format!(
                ", primary input lost (backup on air since {at} UTC)"
            ));
        }
        "starting" => line.push_str(", waiting for input"),
        _ => {}
    }
    for o in &s.outputs {
        let primary: Vec<&DestStatus> = o
            .destinations
            .iter()
            .filter(|d| d.dest == "primary")
            .collect();
        line.push_str(&format!("; {}: primary {}", o.name, dest_phrase(&primary)));
        if o.secondary.is_some() {
            let secondary: Vec<&DestStatus> = o
                .destinations
                .iter()
                .filter(|d| d.dest == "secondary")
                .collect();
            line.push_str(&format!(", secondary {}", dest_phrase(&secondary)));
        }
    }
    if !s.config.restart_needed.is_empty() {
        line.push_str("; restart needed for config changes");
    }
    crate::secrets::redact_owned(line)
}

/// The `/status` body: pretty JSON with every registered secret masked (src/secrets.rs).
pub fn json(s: &Status) -> serde_json::Result<String> {
    serde_json::to_string_pretty(s).map(crate::secrets::redact_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(3), "3rd");
        assert_eq!(ordinal(4), "4th");
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(22), "22nd");
    }

    #[test]
    fn worst_destination_wins() {
        let mut a = DestStatus::new("cloud", "secondary", "720p", "rtmp://b/live");
        a.state = DestState::Publishing;
        let mut b = a.clone();
        b.state = DestState::Backoff;
        b.attempts = 3;
        assert_eq!(dest_phrase(&[&a]), "publishing");
        assert_eq!(dest_phrase(&[&a, &b]), "reconnecting (3rd try)");
        assert_eq!(dest_phrase(&[]), "not started");
    }
}
