//! Operator events (docs/design/operations.md, *Status, metrics, events*): per-track heartbeats,
//! output connected/disconnected, input lost/restored, config reloaded. Each event goes to
//! `GET /events` subscribers as a server-sent event (`event: <kind>`, `data: <json>`) and to the
//! log as one line with structured fields (OUTPUT, DEST, TRACK, STATE, ERROR in the journal).

use serde::Serialize;

/// One operator event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Per track, every `[control] heartbeat`.
    Heartbeat {
        encoder: String,
        track: String,
        /// Incoming media bitrate over the last fragments, bit/s.
        bitrate_bps: u64,
        /// Frames (or AAC frames) per second over the last fragments.
        fps: f64,
        /// End of the last fragment in the track timescale (epoch-based).
        last_timestamp: u64,
        timescale: u32,
        /// Sequence breaks seen in the fragment stream since start.
        discontinuities: u64,
        fragments: u64,
    },
    /// A destination started publishing.
    OutputConnected {
        output: String,
        dest: String,
        track: String,
        url: String,
    },
    /// A destination stopped publishing (or failed before it ever did).
    OutputDisconnected {
        output: String,
        dest: String,
        track: String,
        state: String,
        error: Option<String>,
    },
    /// No raw frame for longer than the input's tolerance.
    InputLost { silent_ms: u64 },
    /// Frames arrive again.
    InputRestored { lost_ms: u64 },
    /// The input on air changed: `source` is "backup" (the primary was lost) or "primary"
    /// (taken back after `[input.backup] hold`).
    InputSwitched { source: String },
    /// SIGHUP: a new configuration is in force.
    ConfigReloaded {
        /// What changed and was applied.
        applied: Vec<String>,
        /// What changed but needs a restart to apply.
        restart_needed: Vec<String>,
    },
    /// SIGHUP: the new configuration is invalid; the old one stays.
    ConfigRejected { errors: Vec<String> },
}

impl Event {
    /// The SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Heartbeat { .. } => "heartbeat",
            Event::OutputConnected { .. } => "output_connected",
            Event::OutputDisconnected { .. } => "output_disconnected",
            Event::InputLost { .. } => "input_lost",
            Event::InputRestored { .. } => "input_restored",
            Event::InputSwitched { .. } => "input_switched",
            Event::ConfigReloaded { .. } => "config_reloaded",
            Event::ConfigRejected { .. } => "config_rejected",
        }
    }

    /// The SSE `data:` JSON, with every registered secret masked (src/secrets.rs).
    pub fn data(&self) -> String {
        crate::secrets::redact_owned(serde_json::to_string(self).unwrap_or_default())
    }

    /// Writes the event to the log with structured fields (the logger masks secrets).
    pub fn log(&self) {
        match self {
            Event::Heartbeat {
                track,
                bitrate_bps,
                fps,
                last_timestamp,
                discontinuities,
                ..
            } => log::info!(
                track = track.as_str(), state = "heartbeat";
                "track {track}: {} kbit/s, {fps:.2} fps, last timestamp {last_timestamp}, {discontinuities} discontinuities",
                bitrate_bps / 1000
            ),
            Event::OutputConnected {
                output,
                dest,
                track,
                url,
            } => log::info!(
                output = output.as_str(), dest = dest.as_str(), track = track.as_str(), state = "connected";
                "output {output} {dest} ({track}): connected to {url}"
            ),
            Event::OutputDisconnected {
                output,
                dest,
                track,
                state,
                error,
            } => {
                let error_text = error.as_deref().unwrap_or("no error reported");
                log::warn!(
                    output = output.as_str(), dest = dest.as_str(), track = track.as_str(), state = state.as_str(), error = error_text;
                    "output {output} {dest} ({track}): disconnected, now {state}: {error_text}"
                )
            }
            Event::InputLost { silent_ms } => log::warn!(
                state = "lost";
                "input lost: no frame for {silent_ms} ms"
            ),
            Event::InputRestored { lost_ms } => log::info!(
                state = "restored";
                "input restored after {lost_ms} ms"
            ),
            Event::InputSwitched { source } => log::info!(
                state = "switched";
                "input switched: the {source} input is on air"
            ),
            Event::ConfigReloaded {
                applied,
                restart_needed,
            } => {
                log::info!(state = "reloaded"; "configuration reloaded: applied [{}]", applied.join(", "));
                if !restart_needed.is_empty() {
                    log::warn!(
                        state = "restart_needed";
                        "configuration changes need a restart to apply (systemctl restart twincast): {}",
                        restart_needed.join(", ")
                    );
                }
            }
            Event::ConfigRejected { errors } => {
                for e in errors {
                    log::error!(state = "rejected", error = e.as_str(); "reload rejected: {e}");
                }
                log::error!(
                    state = "rejected";
                    "reload rejected: the new configuration has {} error(s); the running configuration stays",
                    errors.len()
                );
            }
        }
    }
}
