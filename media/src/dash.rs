//! DASH MPD text for the local origin (ISO/IEC 23009-1, DASH-IF IOP "live" profile;
//! docs/design/origin.md).
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
//! When a reload changes a rendition's codec parameters (a new init segment from some segment
//! index on), the origin splits the MPD into [`Period`]s at each change point: Period `k` starts
//! at `k·segment` since the epoch, its `@id` is that start in ns (so both boxes of a pair write
//! the same one; the first Period of a stream that never changed stays `id="0" start="PT0S"`),
//! every SegmentTemplate has `presentationTimeOffset` = the Period start in its timescale (so
//! `$Time$` stays the epoch time of the file name, and `$Number$` counts from the Period's
//! `startNumber`), and `initialization` names that Period's init segment.
//!
//! Plain values in, `String` out. Attribute values are XML-escaped.

use std::fmt::Write as _;

use crate::hls::program_date_time;
use crate::time::{MediaTime, Rounding, Timescale};

/// The `UTCTiming` scheme of `GET /time`: ISO 8601 UTC text in the response body.
pub const UTC_TIMING_SCHEME: &str = "urn:mpeg:dash:utc:http-iso:2014";

/// The media template of every Representation: `<rendition>/<t>.m4s` relative to the MPD.
pub const MEDIA_TEMPLATE: &str = "$RepresentationID$/$Time$.m4s";
/// The initialization template: `<rendition>/init.mp4`.
pub const INIT_TEMPLATE: &str = "$RepresentationID$/init.mp4";

/// The initialization template of one init segment version: `<rendition>/init-<id hex>.mp4`.
pub fn versioned_init_template(id: u64) -> String {
    format!("$RepresentationID$/init-{id:016x}.mp4")
}

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
    /// The segments of this Period (Timeline form).
    pub timeline: Vec<TimelineRun>,
    /// `SegmentTemplate@initialization`: [`INIT_TEMPLATE`], or [`versioned_init_template`].
    pub initialization: String,
}

/// One Period: the segments from `start_number` on, until the next Period.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// `@start`, ns since the epoch (exact: the start of segment `start_number`). Every
    /// `presentationTimeOffset` is this time in the template's timescale, rounded up (so a
    /// Representation whose timescale divides it exactly gets its exact segment start).
    pub start_ns: u64,
    /// Index since the epoch of the first segment of the Period: `startNumber` of the
    /// `$Number$` form.
    pub start_number: u64,
    /// Video representations (one AdaptationSet) then audio (another).
    pub representations: Vec<Representation>,
}

impl Period {
    /// The one Period of a stream whose init segments never changed: `PT0S`, from segment 0.
    pub fn whole(representations: Vec<Representation>) -> Self {
        Period {
            start_ns: 0,
            start_number: 0,
            representations,
        }
    }

    /// `@id`: the start in ns, the same on both boxes of a pair (`0` for the first Period).
    pub fn id(&self) -> String {
        self.start_ns.to_string()
    }

    /// `presentationTimeOffset` in `timescale`: the start, rounded up (0 at timescale 0,
    /// which no track has).
    pub fn presentation_time_offset(&self, timescale: u32) -> u64 {
        Timescale::new(timescale).map_or(0, |ts| {
            MediaTime::from_nanos(self.start_ns, ts, Rounding::Ceil).ticks()
        })
    }
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
    /// In order of start; at least one (an empty list renders one empty Period).
    pub periods: Vec<Period>,
    pub addressing: Addressing,
    /// SCTE-35 events, each written in the Period its time falls in (the last one when it
    /// is still ahead; none when it ended before the first Period).
    pub events: Vec<Event>,
    /// The video carries CEA-608 captions on CC1: its AdaptationSet says so (`Accessibility`).
    pub captions: bool,
}

/// `Accessibility@schemeIdUri` of CEA-608 captions carried in the video (DASH-IF IOP §6.4.3).
pub const CEA608_SCHEME: &str = "urn:scte:dash:cc:cea-608:2015";

/// `EventStream@schemeIdUri` of SCTE-35 sections carried as base64 (SCTE 214-1, DASH-IF IOP
/// §10.14.3).
pub const SCTE35_SCHEME: &str = "urn:scte:scte35:2014:xml+bin";

/// One SCTE-35 signal as a DASH `Event` (docs/design/signals.md, *DASH*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `@id`, the same on both boxes of a pair.
    pub id: u32,
    /// When the signal applies, ns since the epoch.
    pub at_ns: u64,
    pub duration_ns: Option<u64>,
    /// The splice_info_section.
    pub section: Vec<u8>,
}

/// An exact `xs:duration` (up to ns, trailing zeros dropped), e.g. `PT0S`, `PT1772366402.002S`.
pub fn exact_duration(ns: u64) -> String {
    let (secs, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        format!("PT{secs}S")
    } else {
        let digits = format!("{frac:09}");
        format!("PT{secs}.{}S", digits.trim_end_matches('0'))
    }
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

pub(crate) fn xml_attr(s: &str) -> String {
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
        if self.periods.is_empty() {
            self.period(&mut out, &Period::whole(Vec::new()), None);
        }
        for (i, p) in self.periods.iter().enumerate() {
            self.period(&mut out, p, self.periods.get(i + 1).map(|n| n.start_ns));
        }
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"{UTC_TIMING_SCHEME}\" value=\"{}\"/>",
            xml_attr(&self.utc_timing_url)
        );
        out.push_str("</MPD>\n");
        out
    }

    /// The Period `p`, which lasts until `next` (None: the last).
    /// The SCTE-35 events of Period `p` (before its AdaptationSets, as the schema orders
    /// them). Times are absolute 90 kHz ticks from the epoch with the Period's start as the
    /// offset, so they read the same on both boxes and in every Period.
    fn event_stream(&self, out: &mut String, p: &Period, next: Option<u64>) {
        // Events that ended before the time-shift window are left out; one that began before
        // it and still runs goes in the first Period.
        let first = self.periods.first().map_or(0, |f| f.start_ns);
        let window_start = self
            .publish_time_ns
            .saturating_sub(self.time_shift_buffer_ns)
            .max(first);
        let mine: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| {
                let end = e.at_ns.saturating_add(e.duration_ns.unwrap_or(0));
                if end < window_start {
                    return false;
                }
                let at = e.at_ns.max(first);
                at >= p.start_ns && next.is_none_or(|n| at < n)
            })
            .collect();
        if mine.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "    <EventStream schemeIdUri=\"{SCTE35_SCHEME}\" timescale=\"90000\" presentationTimeOffset=\"{}\">",
            crate::scte35::ticks_of(p.start_ns)
        );
        for e in mine {
            let _ = write!(
                out,
                "      <Event presentationTime=\"{}\" id=\"{}\"",
                crate::scte35::ticks_of(e.at_ns),
                e.id
            );
            if let Some(d) = e.duration_ns {
                let _ = write!(out, " duration=\"{}\"", crate::scte35::ticks_of(d));
            }
            let _ = writeln!(
                out,
                "><Signal xmlns=\"http://www.scte.org/schemas/35/2016\"><Binary>{}</Binary></Signal></Event>",
                crate::scte35::base64(&e.section)
            );
        }
        out.push_str("    </EventStream>\n");
    }

    fn period(&self, out: &mut String, p: &Period, next: Option<u64>) {
        let _ = writeln!(
            out,
            "  <Period id=\"{}\" start=\"{}\">",
            xml_attr(&p.id()),
            exact_duration(p.start_ns)
        );
        self.event_stream(out, p, next);
        let video: Vec<&Representation> = p
            .representations
            .iter()
            .filter(|r| matches!(r.kind, RepresentationKind::Video { .. }))
            .collect();
        let audio: Vec<&Representation> = p
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
            if self.captions {
                let _ = writeln!(
                    out,
                    "      <Accessibility schemeIdUri=\"{CEA608_SCHEME}\" value=\"CC1\"/>"
                );
            }
            for r in video {
                self.representation(out, p, r);
            }
            out.push_str("    </AdaptationSet>\n");
        }
        if !audio.is_empty() {
            out.push_str(
                "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" \
                 segmentAlignment=\"true\" startWithSAP=\"1\" lang=\"und\">\n",
            );
            for r in audio {
                self.representation(out, p, r);
            }
            out.push_str("    </AdaptationSet>\n");
        }
        out.push_str("  </Period>\n");
    }

    fn representation(&self, out: &mut String, p: &Period, r: &Representation) {
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
            Addressing::Timeline => Self::timeline_template(out, p, r),
            Addressing::Number {
                timescale,
                duration,
            } => {
                let _ = writeln!(
                    out,
                    "        <SegmentTemplate timescale=\"{timescale}\" duration=\"{duration}\" \
                     startNumber=\"{}\" presentationTimeOffset=\"{}\" \
                     initialization=\"{}\" media=\"{NUMBER_MEDIA_TEMPLATE}\"/>",
                    p.start_number,
                    p.presentation_time_offset(timescale),
                    xml_attr(&r.initialization)
                );
            }
        }
        out.push_str("      </Representation>\n");
    }

    fn timeline_template(out: &mut String, p: &Period, r: &Representation) {
        let _ = writeln!(
            out,
            "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{}\" \
             initialization=\"{}\" media=\"{MEDIA_TEMPLATE}\">",
            r.timescale,
            p.presentation_time_offset(r.timescale),
            xml_attr(&r.initialization)
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
            periods: vec![Period::whole(vec![
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
                    initialization: INIT_TEMPLATE.into(),
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
                    initialization: INIT_TEMPLATE.into(),
                },
            ])],
            addressing,
            events: Vec::new(),
            captions: false,
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
        assert!(!text.contains("<Accessibility"));
    }

    #[test]
    fn captions_are_an_accessibility_descriptor_of_the_video() {
        let mut mpd = sample_mpd(Addressing::Timeline);
        mpd.captions = true;
        let text = mpd.render();
        let video = &text[text.find("contentType=\"video\"").unwrap()..];
        let video = &video[..video.find("</AdaptationSet>").unwrap()];
        let at = video
            .find("<Accessibility schemeIdUri=\"urn:scte:dash:cc:cea-608:2015\" value=\"CC1\"/>")
            .expect("descriptor");
        // Before the Representations, as the schema orders an AdaptationSet's children.
        assert!(at < video.find("<Representation").unwrap(), "{text}");
        assert_eq!(text.matches("<Accessibility").count(), 1);
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

    /// The single-Period output, byte for byte as before Periods existed.
    const SINGLE_PERIOD_TIMELINE: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="2026-03-01T12:00:00.000Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT600S" suggestedPresentationDelay="PT6S" minBufferTime="PT2S" maxSegmentDuration="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" frameRate="30">
      <Representation id="720p" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720" sar="1:1">
        <SegmentTemplate timescale="90000" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Time$.m4s">
          <SegmentTimeline>
            <S t="159512976000000" d="180000" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">
      <Representation id="audio" bandwidth="128000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Time$.m4s">
          <SegmentTimeline>
            <S t="100" d="96256"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time?a=1&amp;b=&quot;2&quot;"/>
</MPD>
"##;
    const SINGLE_PERIOD_NUMBER: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="2026-03-01T12:00:00.000Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT600S" suggestedPresentationDelay="PT6S" minBufferTime="PT2S" maxSegmentDuration="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" frameRate="30">
      <Representation id="720p" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720" sar="1:1">
        <SegmentTemplate timescale="90000" duration="180000" startNumber="0" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/n$Number$.m4s"/>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">
      <Representation id="audio" bandwidth="128000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="90000" duration="180000" startNumber="0" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/n$Number$.m4s"/>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time?a=1&amp;b=&quot;2&quot;"/>
</MPD>
"##;

    #[test]
    fn a_single_period_renders_as_before() {
        assert_eq!(
            sample_mpd(Addressing::Timeline).render(),
            SINGLE_PERIOD_TIMELINE
        );
        let number = Addressing::Number {
            timescale: 90_000,
            duration: 180_000,
        };
        assert_eq!(sample_mpd(number).render(), SINGLE_PERIOD_NUMBER);
    }

    fn two_periods(addressing: Addressing) -> Mpd {
        // 2 s segments; new init segments from segment 886 183 201 (2026-03-01T12:00:02Z) on.
        let k = 886_183_201u64;
        let t = |i: u64| i * 180_000;
        let a = |i: u64| (i * 96_000).div_ceil(1024) * 1024;
        let video = |timeline, init: &str| Representation {
            id: "720p".into(),
            bandwidth: 3_000_000,
            codecs: "avc1.64001f".into(),
            kind: RepresentationKind::Video {
                width: 1280,
                height: 720,
                frame_rate: (30, 1),
            },
            timescale: 90_000,
            timeline,
            initialization: init.into(),
        };
        let audio = |timeline| Representation {
            id: "audio".into(),
            bandwidth: 128_000,
            codecs: "mp4a.40.2".into(),
            kind: RepresentationKind::Audio {
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
            timeline,
            initialization: INIT_TEMPLATE.into(),
        };
        let mut mpd = sample_mpd(addressing);
        mpd.periods = vec![
            Period::whole(vec![
                video(
                    timeline_runs([(t(k - 1), 180_000)]),
                    &versioned_init_template(0xa1),
                ),
                audio(timeline_runs([(a(k - 1), a(k) - a(k - 1))])),
            ]),
            Period {
                start_ns: k * 2_000_000_000,
                start_number: k,
                representations: vec![
                    video(
                        timeline_runs([(t(k), 180_000), (t(k + 1), 180_000)]),
                        &versioned_init_template(0xb2),
                    ),
                    audio(timeline_runs([(a(k), a(k + 1) - a(k))])),
                ],
            },
        ];
        mpd
    }

    #[test]
    fn scte35_events_go_in_the_period_their_time_falls_in() {
        let k = 886_183_201u64;
        let mut mpd = two_periods(Addressing::Timeline);
        let event = |id, at_ns, duration_ns| Event {
            id,
            at_ns,
            duration_ns,
            section: vec![0xFC, 0x30, 0xFF],
        };
        mpd.events = vec![
            // Long before the time-shift window: left out.
            event(1, (k - 400) * 2_000_000_000, None),
            // In the first Period, a 30 s break.
            event(
                2,
                (k - 1) * 2_000_000_000 + 433_333_333,
                Some(30_000_000_000),
            ),
            // Ahead of every segment: the last Period.
            event(3, (k + 10) * 2_000_000_000, None),
        ];
        let text = mpd.render();
        let periods: Vec<&str> = text.split("<Period ").skip(1).collect();
        assert_eq!(periods.len(), 2, "{text}");
        assert!(!text.contains("id=\"1\"><Signal"), "{text}");
        let stream =
            "<EventStream schemeIdUri=\"urn:scte:scte35:2014:xml+bin\" timescale=\"90000\"";
        assert!(
            periods[0].contains(&format!("{stream} presentationTimeOffset=\"0\">")),
            "{text}"
        );
        assert!(
            periods[0].contains(&format!(
                "<Event presentationTime=\"{}\" id=\"2\" duration=\"2700000\"><Signal xmlns=\"http://www.scte.org/schemas/35/2016\"><Binary>/DD/</Binary></Signal></Event>",
                (k - 1) * 180_000 + 39_000
            )),
            "{text}"
        );
        assert!(
            periods[1].contains(&format!(
                "{stream} presentationTimeOffset=\"{}\">",
                k * 180_000
            )) && periods[1].contains(&format!(
                "presentationTime=\"{}\" id=\"3\"",
                (k + 10) * 180_000
            )),
            "{text}"
        );
        // Before the AdaptationSets, as the schema orders a Period's children.
        assert!(periods[1].find("<EventStream") < periods[1].find("<AdaptationSet"));
    }

    #[test]
    fn a_new_init_segment_starts_a_period() {
        let text = two_periods(Addressing::Timeline).render();
        let second = text
            .split("<Period ")
            .nth(2)
            .unwrap_or_else(|| panic!("two Periods:\n{text}"));
        let first = text.split("<Period ").nth(1).unwrap_or_default();
        assert!(first.starts_with("id=\"0\" start=\"PT0S\">"), "{text}");
        assert!(
            first.contains(
                "presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init-00000000000000a1.mp4\""
            ) && first.contains("<S t=\"159512976000000\" d=\"180000\"/>"),
            "{text}"
        );
        assert!(
            second.starts_with("id=\"1772366402000000000\" start=\"PT1772366402S\">"),
            "{text}"
        );
        // Video: the exact start of segment k; audio: that time in 48 kHz (the first AAC frame
        // of the Period starts at or after it).
        assert!(
            second.contains(
                "<SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"159512976180000\" \
                 initialization=\"$RepresentationID$/init-00000000000000b2.mp4\""
            ) && second.contains("<S t=\"159512976180000\" d=\"180000\" r=\"1\"/>"),
            "{text}"
        );
        assert!(
            second.contains(
                "<SegmentTemplate timescale=\"48000\" presentationTimeOffset=\"85073587296000\" \
                 initialization=\"$RepresentationID$/init.mp4\""
            ) && second.contains("<S t=\"85073587296256\" d=\"96256\"/>"),
            "{text}"
        );
        assert_eq!(text.matches("</Period>").count(), 2);
        assert_eq!(text.matches("<UTCTiming").count(), 1);
    }

    #[test]
    fn number_form_with_two_periods() {
        let text = two_periods(Addressing::Number {
            timescale: 90_000,
            duration: 180_000,
        })
        .render();
        assert!(
            text.contains(
                "<SegmentTemplate timescale=\"90000\" duration=\"180000\" startNumber=\"0\" \
                 presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init-00000000000000a1.mp4\""
            ),
            "{text}"
        );
        // In Period k, number k is at its presentationTimeOffset: the segment of the same index
        // since the epoch.
        assert_eq!(
            text.matches(
                "<SegmentTemplate timescale=\"90000\" duration=\"180000\" startNumber=\"886183201\" \
                 presentationTimeOffset=\"159512976180000\""
            )
            .count(),
            2,
            "{text}"
        );
        assert!(text.contains("initialization=\"$RepresentationID$/init-00000000000000b2.mp4\" media=\"$RepresentationID$/n$Number$.m4s\"/>"));
    }

    #[test]
    fn exact_durations() {
        assert_eq!(exact_duration(0), "PT0S");
        assert_eq!(
            exact_duration(1_772_366_402_002_000_000),
            "PT1772366402.002S"
        );
        assert_eq!(exact_duration(1_000_000_001), "PT1.000000001S");
        let p = Period {
            start_ns: 1_001_000_000 / 30,
            start_number: 1,
            representations: Vec::new(),
        };
        // 1001/30000 s floored to ns: exactly 3003 ticks again at 90 kHz; 1601.6 → 1602 at 48 kHz.
        assert_eq!(p.presentation_time_offset(90_000), 3_003);
        assert_eq!(p.presentation_time_offset(48_000), 1_602);
    }
}
