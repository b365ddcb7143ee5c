//! The daemon, its clock and pair lock, the input and the encoders.

use super::super::snapshot::Status;
use super::writer::{Writer, b};

/// From `build_info` to the encoders' and the packager's drops.
pub(super) fn render(w: &mut Writer, s: &Status) {
    w.family("build_info", "gauge", "Version of the running daemon.");
    w.sample("build_info", &[("version", s.encoder.version)], 1);
    w.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.encoder.uptime_s,
    );
    w.one(
        "ready_up",
        "gauge",
        "1 once every track has cut its first fragment and the origin listens.",
        b(s.ready),
    );
    w.one(
        "clock_synchronised",
        "gauge",
        "1 when the kernel reports the system clock synchronised.",
        b(s.clock.is_some_and(|c| c.synchronised)),
    );
    w.one(
        "clock_estimated_error_seconds",
        "gauge",
        "Estimated error of the system clock (kernel esterror).",
        s.clock
            .map(|c| c.estimated_error_us as f64 / 1e6)
            .unwrap_or(f64::NAN),
    );
    w.one(
        "pair_locked",
        "gauge",
        "1 when the clock is synchronised well under half a frame.",
        b(s.pair_locked),
    );
    w.one(
        "input_up",
        "gauge",
        "1 while the encoders get the primary input's pictures (0 on slate or backup).",
        b(s.input.state == "live"),
    );
    w.one(
        "input_slate_frames_total",
        "counter",
        "Frames fed from the slate because the input was lost.",
        s.input.slate_frames,
    );
    w.one(
        "input_late_frames_total",
        "counter",
        "Source pictures that arrived after their frame was fed.",
        s.input.frames_late,
    );
    w.one(
        "input_overflow_frames_total",
        "counter",
        "Source pictures the grid feed dropped because 64 were already waiting for their frame (the oldest goes).",
        s.input.frames_overflow,
    );
    w.one(
        "input_source_restarts_total",
        "counter",
        "Source pipelines rebuilt after an error or an end of stream.",
        s.input.sources.iter().map(|x| x.restarts).sum::<u64>(),
    );
    w.one(
        "input_source_dropped_buffers_total",
        "counter",
        "Raw buffers that reached a source pipeline's or a network input decoder's appsinks and were not handed to the grid feed.",
        s.input.sources.iter().map(|x| x.buffers_dropped).sum::<u64>(),
    );
    input_counters(w, s);
    w.one(
        "input_backup_active",
        "gauge",
        "1 while the backup input feeds the encoders.",
        b(s.input.source == "backup"),
    );
    w.one(
        "input_source_switches_total",
        "counter",
        "Switches between the primary and the backup input.",
        s.input.source_switches,
    );
    w.one(
        "encoder_rebuilds_total",
        "counter",
        "Encoder pipelines rebuilt after an error.",
        s.input.encoder_rebuilds,
    );
    w.one(
        "input_frames_total",
        "counter",
        "Raw frames that entered the timeline.",
        s.input.frames_in,
    );
    w.one(
        "input_dropped_frames_total",
        "counter",
        "Raw frames dropped by the timeline.",
        s.input.frames_dropped,
    );
    w.one(
        "timeline_reanchors_total",
        "counter",
        "Times the timeline re-anchored across a gap.",
        s.input.reanchors,
    );
    w.one(
        "grid_skipped_frames_total",
        "counter",
        "Frames the grid clock skipped because it fell more than a second behind.",
        s.input.grid_skipped,
    );
    w.family(
        "clock_steps_total",
        "counter",
        "Steps of the system clock the grid clock saw (a slew is not one).",
    );
    w.sample(
        "clock_steps_total",
        &[("direction", "forward")],
        s.input.clock_steps_forward,
    );
    w.sample(
        "clock_steps_total",
        &[("direction", "back")],
        s.input.clock_steps_back,
    );
    w.one(
        "encoder_dropped_frames_total",
        "counter",
        "Video frames the encoders did not take because their queue was full.",
        s.input.frames_not_encoded,
    );
    w.one(
        "encoder_dropped_audio_frames_total",
        "counter",
        "AAC frames of raw audio the encoder did not take because its queue was full.",
        s.input.audio_frames_not_encoded,
    );
    w.one(
        "capture_dropped_units_total",
        "counter",
        "Encoded units dropped because the packager queue was full.",
        s.input.units_dropped,
    );
    w.one(
        "capture_untimed_units_total",
        "counter",
        "Encoded buffers without a usable time (no PTS, before their segment), dropped.",
        s.input.units_untimed,
    );
}

type NetField = fn(&crate::capture::sources::NetworkCounters) -> u64;

/// The network inputs' front-end counters (`input.sources[].counters`), one series per source
/// role (`input`, `backup`), and how each takes W.
fn input_counters(w: &mut Writer, s: &Status) {
    let net: Vec<_> = s
        .input
        .sources
        .iter()
        .filter_map(|x| x.counters.map(|c| (x.role, x.timing, c)))
        .collect();
    if net.is_empty() {
        return;
    }
    w.family(
        "input_timing_info",
        "gauge",
        "How a network input takes the frame time W (arrival, rtcp, pts; pending before its feed is anchored).",
    );
    for (role, timing, _) in &net {
        w.sample(
            "input_timing_info",
            &[("source", role), ("timing", timing)],
            1,
        );
    }
    let families: [(&str, &str, NetField); 17] = [
        (
            "input_datagrams_total",
            "Datagrams received by a network input.",
            |c| c.datagrams,
        ),
        (
            "input_received_bytes_total",
            "Bytes received by a network input.",
            |c| c.bytes,
        ),
        (
            "input_lost_packets_total",
            "RTP packets lost (gaps not filled within the reorder window).",
            |c| c.lost,
        ),
        (
            "input_reordered_packets_total",
            "RTP packets received out of order and put back.",
            |c| c.reordered,
        ),
        (
            "input_duplicated_packets_total",
            "RTP packets received twice (dropped).",
            |c| c.duplicated,
        ),
        (
            "input_late_packets_total",
            "RTP packets that came after their slot was released (dropped).",
            |c| c.late,
        ),
        (
            "input_malformed_packets_total",
            "Datagrams or TS packets dropped as malformed.",
            |c| c.malformed,
        ),
        (
            "input_cc_errors_total",
            "MPEG-TS continuity-counter errors.",
            |c| c.cc_errors,
        ),
        (
            "input_pcr_discontinuities_total",
            "PCR discontinuities.",
            |c| c.pcr_discontinuities,
        ),
        (
            "input_pts_discontinuities_total",
            "PTS discontinuities (the feed re-anchored).",
            |c| c.pts_discontinuities,
        ),
        (
            "input_scte35_sections_total",
            "SCTE-35 sections received.",
            |c| c.scte35_sections,
        ),
        (
            "input_dropped_scte35_sections_total",
            "SCTE-35 sections dropped because no reader took them (the input keeps the newest 64).",
            |c| c.scte35_dropped,
        ),
        (
            "input_rtcp_reports_total",
            "RTCP sender reports received.",
            |c| c.rtcp_reports,
        ),
        (
            "input_dropped_es_units_total",
            "Elementary-stream units dropped by the front end.",
            |c| c.units_dropped,
        ),
        (
            "input_decoder_overflow_units_total",
            "Units dropped because a decoder was behind.",
            |c| c.decoder_overflow,
        ),
        (
            "input_decoder_errors_total",
            "Decoder errors of a network input.",
            |c| c.decoder_errors,
        ),
        (
            "input_decoded_frames_total",
            "Pictures decoded by a network input.",
            |c| c.pictures,
        ),
    ];
    for (name, help, field) in families {
        w.family(name, "counter", help);
        for (role, _, c) in &net {
            w.sample(name, &[("source", role)], field(c));
        }
    }
}
