//! DASH MPD text for the local origin (ISO/IEC 23009-1, DASH-IF IOP "live" profile; design §4).
//!
//! The origin's MPD names the same files as the HLS playlists: one dynamic Period starting at
//! `PT0S` with `availabilityStartTime="1970-01-01T00:00:00Z"`, so a segment's media time *is* its
//! epoch time and `$Time$` is the `<t>` of `<t>.m4s`. Each Representation carries its own
//! SegmentTemplate with a SegmentTimeline (holes in the timeline are explicit `t=` jumps), and a
//! UTCTiming element points at the origin's own clock.
//!
//! A second form, [`Addressing::Number`], names the same segments by their index from the epoch
//! (`$Number$` with a nominal `@duration`). It exists for GStreamer's dashdemux (1.22 and later):
//! its SegmentTimeline seek adds the first segment's start time to the offset inside a run
//! (`gst_mpd_client2_stream_seek`), so with an epoch-based timeline it lands ~56 years past the
//! live edge and never plays. The `@duration` path of the same code computes `index = t / duration`
//! and plays the stream.
//!
//! Plain values in, `String` out. Attribute values are XML-escaped.

use std::fmt::Write as _;

use crate::hls::program_date_time;

/// The `UTCTiming` scheme of `GET /time`: ISO 8601 UTC text in the response body.
pub const UTC_TIMING_SCHEME: &str = "urn:mpeg:dash:utc:http-iso:2014";

/// The media template of every Representation: `<rendition>/<t>.m4s` relative to the MPD.
pub const MEDIA_TEMPLATE: &str = "$RepresentationID$/$Time$.m4s";
/// The initialization template: `<rendition>/init.mp4`.
pub const INIT_TEMPLATE: &str = "$RepresentationID$/init.mp4";

/// The media template of the `$Number$` form: `<rendition>/n<index>.m4s`.
pub const NUMBER_MEDIA_TEMPLATE: &str = "$RepresentationID$/n$Number$.m4s";

/// How each SegmentTemplate addresses its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// SegmentTimeline with `$Time$`: exact times, holes explicit (the design's form).
    Timeline,
    /// `@duration` with `$Number$` from `startNumber="0"`: segment n starts at n·duration since
    /// the epoch (audio within one AAC frame of it). Holes are not expressed.
    Number {
        /// Timescale of `duration`.
        timescale: u32,
        /// Nominal segment duration.
        duration: u64,
    },
}

/// One `S` element: `repeat` more segments of the same duration follow the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineRun {
    pub start: u64,
    pub duration: u64,
    pub repeat: u32,
}

/// Builds the SegmentTimeline runs of `(start, duration)` segments in order; a hole or an
/// overlap starts a new run with an explicit time.
pub fn timeline_runs(segments: impl IntoIterator<Item = (u64, u64)>) -> Vec<TimelineRun> {
    let mut runs: Vec<TimelineRun> = Vec::new();
    for (start, duration) in segments {
        if let Some(last) = runs.last_mut() {
            let end = last.start + last.duration * (u64::from(last.repeat) + 1);
            if end == start && last.duration == duration && last.repeat < u32::MAX {
                last.repeat += 1;
                continue;
            }
        }
        runs.push(TimelineRun {
            start,
            duration,
            repeat: 0,
        });
    }
    runs
}

/// What a Representation carries beyond its timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum RepresentationKind {
    Video {
        width: u32,
        height: u32,
        /// Frame rate as num/den.
        frame_rate: (u32, u32),
    },
    Audio {
        sample_rate: u32,
        channels: u16,
    },
}

/// One Representation (a rendition, or the audio track).
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    /// The id is the URL path component (`720p`, `audio`).
    pub id: String,
    pub bandwidth: u64,
    /// RFC 6381 codec string.
    pub codecs: String,
    pub kind: RepresentationKind,
    pub timescale: u32,
    pub timeline: Vec<TimelineRun>,
}

/// The whole MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    /// `publishTime`, ns since the epoch.
    pub publish_time_ns: u64,
    /// `timeShiftBufferDepth` = the DVR window, ns.
    pub time_shift_buffer_ns: u64,
    /// `minimumUpdatePeriod`, ns.
    pub minimum_update_period_ns: u64,
    /// `suggestedPresentationDelay`, ns.
    pub suggested_presentation_delay_ns: u64,
    /// `minBufferTime`, ns.
    pub min_buffer_time_ns: u64,
    /// `maxSegmentDuration`, ns.
    pub max_segment_duration_ns: u64,
    /// URL of the clock (`UTCTiming@value`), e.g. `/time`.
    pub utc_timing_url: String,
    /// Video representations (one AdaptationSet) then audio (another).
    pub representations: Vec<Representation>,
    pub addressing: Addressing,
}

/// An `xs:duration` with millisecond precision, e.g. `PT2.000S`, `PT300S`.
pub fn iso_duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    if ms.is_multiple_of(1000) {
        format!("PT{}S", ms / 1000)
    } else {
        format!("PT{}.{:03}S", ms / 1000, ms % 1000)
    }
}

fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

impl Mpd {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
             profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
             type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" \
             suggestedPresentationDelay=\"{}\" minBufferTime=\"{}\" maxSegmentDuration=\"{}\">",
            program_date_time(self.publish_time_ns),
            iso_duration(self.minimum_update_period_ns),
            iso_duration(self.time_shift_buffer_ns),
            iso_duration(self.suggested_presentation_delay_ns),
            iso_duration(self.min_buffer_time_ns),
            iso_duration(self.max_segment_duration_ns),
        );
        out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
        let video: Vec<&Representation> = self
            .representations
            .iter()
            .filter(|r| matches!(r.kind, RepresentationKind::Video { .. }))
            .collect();
        let audio: Vec<&Representation> = self
            .representations
            .iter()
            .filter(|r| matches!(r.kind, RepresentationKind::Audio { .. }))
            .collect();
        if !video.is_empty() {
            let fr = video.iter().find_map(|r| match r.kind {
                RepresentationKind::Video { frame_rate, .. } => Some(frame_rate),
                RepresentationKind::Audio { .. } => None,
            });
            let _ = write!(
                out,
                "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" \
                 segmentAlignment=\"true\" startWithSAP=\"1\""
            );
            if let Some((n, d)) = fr {
                if d == 1 {
                    let _ = write!(out, " frameRate=\"{n}\"");
                } else {
                    let _ = write!(out, " frameRate=\"{n}/{d}\"");
                }
            }
            out.push_str(">\n");
            for r in video {
                self.representation(&mut out, r);
            }
            out.push_str("    </AdaptationSet>\n");
        }
        if !audio.is_empty() {
            out.push_str(
                "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" \
                 segmentAlignment=\"true\" startWithSAP=\"1\" lang=\"und\">\n",
            );
            for r in audio {
                self.representation(&mut out, r);
            }
            out.push_str("    </AdaptationSet>\n");
        }
        out.push_str("  </Period>\n");
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"{UTC_TIMING_SCHEME}\" value=\"{}\"/>",
            xml_attr(&self.utc_timing_url)
        );
        out.push_str("</MPD>\n");
        out
    }

    fn representation(&self, out: &mut String, r: &Representation) {
        let _ = write!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\"",
            xml_attr(&r.id),
            r.bandwidth,
            xml_attr(&r.codecs)
        );
        match r.kind {
            RepresentationKind::Video { width, height, .. } => {
                let _ = writeln!(out, " width=\"{width}\" height=\"{height}\" sar=\"1:1\">");
            }
            RepresentationKind::Audio {
                sample_rate,
                channels,
            } => {
                let _ = writeln!(
                    out,
                    " audioSamplingRate=\"{sample_rate}\">\n        \
                     <AudioChannelConfiguration \
                     schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
                     value=\"{channels}\"/>"
                );
            }
        }
        match self.addressing {
            Addressing::Timeline => Self::timeline_template(out, r),
            Addressing::Number {
                timescale,
                duration,
            } => {
                let _ = writeln!(
                    out,
                    "        <SegmentTemplate timescale=\"{timescale}\" duration=\"{duration}\" \
                     startNumber=\"0\" presentationTimeOffset=\"0\" \
                     initialization=\"{INIT_TEMPLATE}\" media=\"{NUMBER_MEDIA_TEMPLATE}\"/>"
                );
            }
        }
        out.push_str("      </Representation>\n");
    }

    fn timeline_template(out: &mut String, r: &Representation) {
        let _ = writeln!(
            out,
            "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"0\" \
             initialization=\"{INIT_TEMPLATE}\" media=\"{MEDIA_TEMPLATE}\">",
            r.timescale
        );
        out.push_str("          <SegmentTimeline>\n");
        for run in &r.timeline {
            let _ = write!(
                out,
                "            <S t=\"{}\" d=\"{}\"",
                run.start, run.duration
            );
            if run.repeat > 0 {
                let _ = write!(out, " r=\"{}\"", run.repeat);
            }
            out.push_str("/>\n");
        }
        out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_contiguous_equal_segments_and_break_on_holes() {
        let runs = timeline_runs([(0, 10), (10, 10), (20, 10), (40, 10), (50, 7), (57, 10)]);
        assert_eq!(
            runs,
            vec![
                TimelineRun {
                    start: 0,
                    duration: 10,
                    repeat: 2
                },
                TimelineRun {
                    start: 40,
                    duration: 10,
                    repeat: 0
                },
                TimelineRun {
                    start: 50,
                    duration: 7,
                    repeat: 0
                },
                TimelineRun {
                    start: 57,
                    duration: 10,
                    repeat: 0
                },
            ]
        );
        assert!(timeline_runs([]).is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(iso_duration(2_000_000_000), "PT2S");
        assert_eq!(iso_duration(300_000_000_000), "PT300S");
        assert_eq!(iso_duration(1_500_000_000), "PT1.500S");
        assert_eq!(iso_duration(0), "PT0S");
    }

    fn sample_mpd(addressing: Addressing) -> Mpd {
        let t0 = 1_772_366_400u64 * 90_000;
        Mpd {
            publish_time_ns: 1_772_366_400_000_000_000,
            time_shift_buffer_ns: 600_000_000_000,
            minimum_update_period_ns: 2_000_000_000,
            suggested_presentation_delay_ns: 6_000_000_000,
            min_buffer_time_ns: 2_000_000_000,
            max_segment_duration_ns: 2_000_000_000,
            utc_timing_url: "/time?a=1&b=\"2\"".into(),
            representations: vec![
                Representation {
                    id: "720p".into(),
                    bandwidth: 3_000_000,
                    codecs: "avc1.64001f".into(),
                    kind: RepresentationKind::Video {
                        width: 1280,
                        height: 720,
                        frame_rate: (30, 1),
                    },
                    timescale: 90_000,
                    timeline: timeline_runs([(t0, 180_000), (t0 + 180_000, 180_000)]),
                },
                Representation {
                    id: "audio".into(),
                    bandwidth: 128_000,
                    codecs: "mp4a.40.2".into(),
                    kind: RepresentationKind::Audio {
                        sample_rate: 48_000,
                        channels: 2,
                    },
                    timescale: 48_000,
                    timeline: timeline_runs([(100, 96_256)]),
                },
            ],
            addressing,
        }
    }

    #[test]
    fn mpd_text() {
        let text = sample_mpd(Addressing::Timeline).render();
        for want in [
            "type=\"dynamic\"",
            "availabilityStartTime=\"1970-01-01T00:00:00Z\"",
            "publishTime=\"2026-03-01T12:00:00.000Z\"",
            "timeShiftBufferDepth=\"PT600S\"",
            "minimumUpdatePeriod=\"PT2S\"",
            "suggestedPresentationDelay=\"PT6S\"",
            "<Period id=\"0\" start=\"PT0S\">",
            "frameRate=\"30\"",
            "<Representation id=\"720p\" bandwidth=\"3000000\" codecs=\"avc1.64001f\" width=\"1280\" height=\"720\"",
            "media=\"$RepresentationID$/$Time$.m4s\"",
            "initialization=\"$RepresentationID$/init.mp4\"",
            "<S t=\"159512976000000\" d=\"180000\" r=\"1\"/>",
            "audioSamplingRate=\"48000\"",
            "value=\"2\"/>",
            "<S t=\"100\" d=\"96256\"/>",
            "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"/time?a=1&amp;b=&quot;2&quot;\"/>",
        ] {
            assert!(text.contains(want), "MPD lacks {want}:\n{text}");
        }
        // Well-formed enough: every opened element is closed.
        assert_eq!(text.matches("<Representation ").count(), 2);
        assert_eq!(text.matches("</Representation>").count(), 2);
        assert_eq!(text.matches("<AdaptationSet ").count(), 2);
        assert_eq!(text.matches("</AdaptationSet>").count(), 2);
    }

    #[test]
    fn number_form_names_segments_by_index() {
        let text = sample_mpd(Addressing::Number {
            timescale: 90_000,
            duration: 180_000,
        })
        .render();
        assert_eq!(
            text.matches(
                "<SegmentTemplate timescale=\"90000\" duration=\"180000\" startNumber=\"0\" \
                 presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init.mp4\" \
                 media=\"$RepresentationID$/n$Number$.m4s\"/>"
            )
            .count(),
            2,
            "{text}"
        );
        assert!(!text.contains("SegmentTimeline") && !text.contains("$Time$"));
        assert!(text.contains("availabilityStartTime=\"1970-01-01T00:00:00Z\""));
    }
}
