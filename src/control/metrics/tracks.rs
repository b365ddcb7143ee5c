//! Per track: bitrate, frame rate, fragments and what the hub's consumers missed.

use super::super::snapshot::Status;
use super::writer::Writer;

/// One family per track figure, a sample per track.
pub(super) fn render(w: &mut Writer, s: &Status) {
    type TrackField = fn(&super::super::snapshot::TrackInfo) -> String;
    let track_families: [(&str, &str, &str, TrackField); 12] = [
        (
            "track_bits_per_second",
            "gauge",
            "Media bitrate over the last fragments.",
            |t| t.bitrate_bps.to_string(),
        ),
        (
            "track_frames_per_second",
            "gauge",
            "Frames (AAC frames for audio) per second over the last fragments.",
            |t| t.fps.to_string(),
        ),
        (
            "track_last_timestamp_seconds",
            "gauge",
            "End of the last fragment, seconds since the epoch.",
            |t| format!("{:.3}", t.last_time_ns as f64 / 1e9),
        ),
        ("track_fragments_total", "counter", "Fragments cut.", |t| {
            t.fragments.to_string()
        }),
        (
            "track_units_total",
            "counter",
            "Encoded access units packaged.",
            |t| t.units.to_string(),
        ),
        (
            "track_media_bytes_total",
            "counter",
            "Media bytes packaged (without box overhead).",
            |t| t.media_bytes.to_string(),
        ),
        (
            "track_discontinuities_total",
            "counter",
            "Breaks in the fragment sequence.",
            |t| t.discontinuities.to_string(),
        ),
        (
            "track_dropped_units_total",
            "counter",
            "Encoded units the packager could not place in a fragment.",
            |t| t.dropped_units.to_string(),
        ),
        (
            "track_units_without_timecode_total",
            "counter",
            "Video units sent without the epoch timecode SEI (timeline.timecode = \"epoch\").",
            |t| t.units_without_timecode.to_string(),
        ),
        (
            "track_units_with_captions_total",
            "counter",
            "Video units carrying the source's closed captions (input.captions = \"passthrough\").",
            |t| t.units_with_captions.to_string(),
        ),
        (
            "track_units_without_captions_total",
            "counter",
            "Video units whose frame had closed captions that could not be written into them.",
            |t| t.units_without_captions.to_string(),
        ),
        (
            "track_lagged_fragments_total",
            "counter",
            "Fragments the track's figures missed by falling behind (the fragments were not lost).",
            |t| t.fragments_lagged.to_string(),
        ),
    ];
    for (name, kind, help, get) in track_families {
        w.family(name, kind, help);
        for t in &s.tracks {
            w.sample(name, &[("track", &t.name)], get(t));
        }
    }
}
