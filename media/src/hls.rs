//! HLS playlist text (RFC 8216bis, "HTTP Live Streaming 2nd Edition"): the multivariant playlist
//! (§4.4.6) and the media playlists (§4.4.3–4.4.5) of the local origin (docs/design/origin.md).
//!
//! Plain values in, `String` out. Quoted-string attribute values cannot hold `"`, CR or LF
//! (§4.2), so those characters are removed rather than written; URI lines lose CR and LF.
//! Floats that are not finite (or negative durations) are written as 0 or left out, so every
//! output is a syntactically valid playlist.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `EXT-X-VERSION` of every playlist: 7 is needed for `EXT-X-MAP` in a playlist without
/// `EXT-X-I-FRAMES-ONLY` (fMP4 segments) and service-level features of the 2nd edition.
pub const HLS_VERSION: u32 = 7;

/// Default `GROUP-ID` of the audio rendition group.
pub const DEFAULT_AUDIO_GROUP: &str = "aud";

/// Default init segment URI, relative to the media playlist.
pub const DEFAULT_MAP_URI: &str = "init.mp4";

/// One video variant of the multivariant playlist (`EXT-X-STREAM-INF`, §4.4.6.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Media playlist URI, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// Peak bits per second, audio included.
    pub bandwidth: u64,
    /// Average bits per second, audio included.
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// Width × height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second; written with three decimals (29.970).
    pub frame_rate: Option<f64>,
}

/// The audio rendition group (`EXT-X-MEDIA:TYPE=AUDIO`, §4.4.6.1), referenced by every variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioGroup {
    pub group_id: String,
    pub name: String,
    pub channels: u16,
    /// Media playlist URI, e.g. `audio/index.m3u8`.
    pub uri: String,
}

impl AudioGroup {
    /// The group `aud`, named `audio`.
    pub fn new(channels: u16, uri: impl Into<String>) -> Self {
        Self {
            group_id: DEFAULT_AUDIO_GROUP.to_owned(),
            name: "audio".to_owned(),
            channels,
            uri: uri.into(),
        }
    }
}

/// A closed-caption rendition (`EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS`, §4.4.6.1): CEA-608 carried
/// in the video, referenced by every variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedCaptions {
    pub group_id: String,
    pub name: String,
    /// `CC1`…`CC4` (CEA-608) or `SERVICE1`… (CEA-708).
    pub instream_id: String,
}

impl ClosedCaptions {
    /// CEA-608 channel 1, the group `cc`.
    pub fn cc1() -> Self {
        ClosedCaptions {
            group_id: "cc".to_owned(),
            name: "CC1".to_owned(),
            instream_id: "CC1".to_owned(),
        }
    }
}

/// The multivariant ("master") playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MasterPlaylist {
    pub variants: Vec<Variant>,
    pub audio: Option<AudioGroup>,
    pub closed_captions: Option<ClosedCaptions>,
}

impl MasterPlaylist {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{HLS_VERSION}");
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        if let Some(a) = &self.audio {
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\",DEFAULT=YES,AUTOSELECT=YES,\
                 CHANNELS=\"{}\",URI=\"{}\"",
                quoted(&a.group_id),
                quoted(&a.name),
                a.channels,
                quoted(&a.uri)
            );
        }
        if let Some(c) = &self.closed_captions {
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"{}\",NAME=\"{}\",DEFAULT=YES,\
                 AUTOSELECT=YES,INSTREAM-ID=\"{}\"",
                quoted(&c.group_id),
                quoted(&c.name),
                quoted(&c.instream_id)
            );
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(avg) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
            }
            let _ = write!(out, ",CODECS=\"{}\"", quoted(&v.codecs));
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
                let _ = write!(out, ",FRAME-RATE={fps:.3}");
            }
            if let Some(a) = &self.audio {
                let _ = write!(out, ",AUDIO=\"{}\"", quoted(&a.group_id));
            }
            if let Some(c) = &self.closed_captions {
                let _ = write!(out, ",CLOSED-CAPTIONS=\"{}\"", quoted(&c.group_id));
            }
            out.push('\n');
            let _ = writeln!(out, "{}", uri_line(&v.uri));
        }
        out
    }
}

/// One media segment of a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    /// Segment URI, relative to the playlist: [`segment_uri`] of its start time.
    pub uri: String,
    /// Start of the segment in ns since the epoch (`EXT-X-PROGRAM-DATE-TIME`).
    pub start_ns: u64,
    /// Duration in seconds (`EXTINF`, written with 5 decimals).
    pub duration_secs: f64,
    /// `EXT-X-DISCONTINUITY` before this segment (after an outage or an encoder restart).
    pub discontinuity: bool,
    /// `EXT-X-GAP`: the segment is missing (not available from this origin).
    pub gap: bool,
}

/// A media playlist of one rendition or of the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION` in seconds. `None`: the ceiling of the longest `EXTINF` as
    /// written (at least 1). RFC 8216bis §6.2.1 forbids changing it during a live stream, so
    /// an origin should pin it (from the nominal segment duration) rather than let an odd
    /// long segment in the window change it.
    pub target_duration: Option<u64>,
    /// `EXT-X-MEDIA-SEQUENCE`: the sequence number of the first segment listed.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`, written when given.
    pub discontinuity_sequence: Option<u64>,
    /// `EXT-X-INDEPENDENT-SEGMENTS` (every segment starts with an IDR).
    pub independent_segments: bool,
    /// `EXT-X-MAP` URI of the init segment of the first segment.
    pub map_uri: String,
    pub segments: Vec<SegmentEntry>,
    /// Further `EXT-X-MAP` URIs, by position in `segments`: written before that segment (after
    /// its `EXT-X-DISCONTINUITY`), where the init segment changes (new codec parameters); it
    /// applies to the segments after it until the next one.
    pub maps: BTreeMap<usize, String>,
    /// `EXT-X-DATERANGE` tags, by position in `segments`: written before that segment.
    pub date_ranges: Vec<(usize, DateRange)>,
    /// Ad cue tags of older players (`EXT-X-CUE-OUT:<seconds>`, `EXT-X-CUE-IN`), whole lines
    /// without the newline, by position in `segments`: written before that segment, after its
    /// date ranges.
    pub cues: Vec<(usize, String)>,
    /// `EXT-X-ENDLIST`: the stream has ended.
    pub endlist: bool,
}

/// `CLASS` of the date ranges that mark slate (filler) segments written while the input was
/// lost.
pub const SLATE_CLASS: &str = "com.twincast.slate";

/// An `EXT-X-DATERANGE` (RFC 8216bis §4.4.5.1): an ID, a CLASS, a START-DATE and, once the
/// span is over, its END-DATE and DURATION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    pub id: String,
    /// `CLASS`; empty: none written.
    pub class: String,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// `PLANNED-DURATION`: how long the span is expected to last, before it ends.
    pub planned_ns: Option<u64>,
    /// An SCTE-35 attribute (`SCTE35-OUT`, `SCTE35-IN` or `SCTE35-CMD`, RFC 8216 §4.3.2.7.1)
    /// and the section as `0x…` hex.
    pub scte35: Option<(&'static str, String)>,
}

impl DateRange {
    fn render(&self, out: &mut String) {
        let _ = write!(out, "#EXT-X-DATERANGE:ID=\"{}\"", quoted(&self.id));
        if !self.class.is_empty() {
            let _ = write!(out, ",CLASS=\"{}\"", quoted(&self.class));
        }
        let _ = write!(out, ",START-DATE=\"{}\"", program_date_time(self.start_ns));
        if let Some(end) = self.end_ns.filter(|e| *e >= self.start_ns) {
            let d = end - self.start_ns;
            let _ = write!(
                out,
                ",END-DATE=\"{}\",DURATION={}",
                program_date_time(end),
                seconds_ms(d)
            );
        }
        if let Some(p) = self.planned_ns {
            let _ = write!(out, ",PLANNED-DURATION={}", seconds_ms(p));
        }
        if let Some((name, hex)) = &self.scte35 {
            let hex: String = hex.chars().filter(char::is_ascii_alphanumeric).collect();
            let _ = write!(out, ",{name}={hex}");
        }
        out.push('\n');
    }
}

/// The slate spans of a window of segments given as `(start_ns, end_ns, filler)` in playlist
/// order: one [`DateRange`] of [`SLATE_CLASS`] per run of filler segments, placed before the
/// run's first segment, START-DATE its start; END-DATE the run's end once a live segment
/// follows (a run that reaches the last segment is still going on and has none). The ID is the
/// start in ms, so it is the same on every playlist reload and on both boxes of a pair.
pub fn slate_ranges(segments: &[(u64, u64, bool)]) -> Vec<(usize, DateRange)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, u64)> = None;
    let mut last_end = 0;
    for (i, &(start, end, filler)) in segments.iter().enumerate() {
        match (filler, open) {
            (true, None) => open = Some((i, start)),
            (false, Some((at, from))) => {
                out.push((at, slate_range(from, Some(last_end))));
                open = None;
            }
            _ => {}
        }
        last_end = end;
    }
    if let Some((at, from)) = open {
        out.push((at, slate_range(from, None)));
    }
    out
}

fn slate_range(start_ns: u64, end_ns: Option<u64>) -> DateRange {
    DateRange {
        id: format!("slate-{}", start_ns / 1_000_000),
        class: SLATE_CLASS.to_owned(),
        start_ns,
        end_ns,
        planned_ns: None,
        scte35: None,
    }
}

/// ns as seconds with three decimals (`30.000`), for DATERANGE and CUE durations.
pub fn seconds_ms(ns: u64) -> String {
    format!(
        "{}.{:03}",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1_000_000
    )
}

impl Default for MediaPlaylist {
    fn default() -> Self {
        Self {
            target_duration: None,
            media_sequence: 0,
            discontinuity_sequence: None,
            independent_segments: false,
            map_uri: DEFAULT_MAP_URI.to_owned(),
            segments: Vec::new(),
            maps: BTreeMap::new(),
            date_ranges: Vec::new(),
            cues: Vec::new(),
            endlist: false,
        }
    }
}

impl MediaPlaylist {
    /// The target duration written: the configured one, or the ceiling of the longest
    /// segment's `EXTINF` as written (rounded to 5 decimals first), at least 1.
    pub fn effective_target_duration(&self) -> u64 {
        self.target_duration.unwrap_or_else(|| {
            let longest = self
                .segments
                .iter()
                .map(|s| extinf_hundred_thousandths(s.duration_secs))
                .max()
                .unwrap_or(0);
            longest.div_ceil(100_000).max(1)
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{HLS_VERSION}");
        let _ = writeln!(
            out,
            "#EXT-X-TARGETDURATION:{}",
            self.effective_target_duration()
        );
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if let Some(d) = self.discontinuity_sequence {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{d}");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", quoted(&self.map_uri));
        for (i, s) in self.segments.iter().enumerate() {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(map) = self.maps.get(&i) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", quoted(map));
            }
            for (_, range) in self.date_ranges.iter().filter(|(at, _)| *at == i) {
                range.render(&mut out);
            }
            for (_, cue) in self.cues.iter().filter(|(at, _)| *at == i) {
                let line: String = cue.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                program_date_time(s.start_ns)
            );
            let h = extinf_hundred_thousandths(s.duration_secs);
            let _ = writeln!(out, "#EXTINF:{}.{:05},", h / 100_000, h % 100_000);
            if s.gap {
                out.push_str("#EXT-X-GAP\n");
            }
            let _ = writeln!(out, "{}", uri_line(&s.uri));
        }
        if self.endlist {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// The URI of the segment starting at `t` in the track timescale: `<t>.m4s` (docs/design/origin.md,
/// *URL layout*).
pub fn segment_uri(t: u64) -> String {
    format!("{t}.m4s")
}

/// A duration in units of 10 µs, rounded; 0 for negative or non-finite input. `as` saturates
/// at `u64::MAX` for huge values.
fn extinf_hundred_thousandths(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 100_000.0).round() as u64
    } else {
        0
    }
}

/// ISO 8601 UTC with milliseconds, e.g. `2026-03-01T12:00:00.000Z`, for ns since the epoch.
pub fn program_date_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The inverse of [`program_date_time`]: ns since the epoch of an RFC 3339 UTC time,
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)` (up to 9 fraction digits). None for anything
/// else: another offset, a date before 1970, a field out of range.
pub fn parse_date_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let body = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once(['T', 't', ' '])?;
    let num = |t: &str, len: usize| -> Option<u64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || y < 1970 || !(1..=12).contains(&m) {
        return None;
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f))
            if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (hms, f.parse::<u64>().ok()? * 10u64.pow(9 - f.len() as u32))
        }
        Some(_) => return None,
        None => (time, 0),
    };
    let mut t = hms.split(':');
    let (hh, mm, ss) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if t.next().is_some() || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y, m, day)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    secs.checked_mul(1_000_000_000)?.checked_add(fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (None for a day the month lacks).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d == 0 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Proleptic Gregorian (year, month, day) of `days` since 1970-01-01. Counts in 400-year eras
/// of 146 097 days that start on March 1st, so the leap day is the last day of its year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 0000-03-01 is 719 468 days before 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..146096
    // Year of era: remove the leap days before `doe` (every 4 years, except centuries, except
    // the era's last day) and divide by 365.
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..365
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\r' | '\n'))
        .collect()
}

fn uri_line(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slate_spans_become_date_ranges() {
        let s = 1_000_000_000u64;
        let t0 = 1_772_366_400 * s;
        let segs: Vec<(u64, u64, bool)> = (0..6)
            .map(|i| {
                (
                    t0 + i * 3 * s,
                    t0 + (i + 1) * 3 * s,
                    (1..3).contains(&i) || i == 5,
                )
            })
            .collect();
        let ranges = slate_ranges(&segs);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].0, 1);
        assert_eq!(ranges[0].1.start_ns, t0 + 3 * s);
        assert_eq!(ranges[0].1.end_ns, Some(t0 + 9 * s));
        assert_eq!(ranges[1].0, 5);
        assert_eq!(ranges[1].1.end_ns, None, "still on slate");
        let p = MediaPlaylist {
            segments: segs
                .iter()
                .map(|&(start, _, _)| SegmentEntry {
                    uri: segment_uri(start / 1000),
                    start_ns: start,
                    duration_secs: 3.0,
                    discontinuity: false,
                    gap: false,
                })
                .collect(),
            date_ranges: ranges,
            ..Default::default()
        };
        let text = p.render();
        assert!(
            text.contains(
                "#EXT-X-DATERANGE:ID=\"slate-1772366403000\",CLASS=\"com.twincast.slate\",\
             START-DATE=\"2026-03-01T12:00:03.000Z\",END-DATE=\"2026-03-01T12:00:09.000Z\",\
             DURATION=6.000\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:03.000Z\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "#EXT-X-DATERANGE:ID=\"slate-1772366415000\",CLASS=\"com.twincast.slate\",\
             START-DATE=\"2026-03-01T12:00:15.000Z\"\n"
            ),
            "{text}"
        );
    }

    const Y2026: u64 = 1_772_366_400_000_000_000;

    #[test]
    fn master_playlist_text() {
        let m = MasterPlaylist {
            variants: vec![
                Variant {
                    uri: "720p/index.m3u8".into(),
                    bandwidth: 3_300_000,
                    average_bandwidth: Some(3_128_000),
                    codecs: "avc1.64001f,mp4a.40.2".into(),
                    resolution: Some((1280, 720)),
                    frame_rate: Some(30000.0 / 1001.0),
                },
                Variant {
                    uri: "360p/index.m3u8".into(),
                    bandwidth: 700_000,
                    average_bandwidth: None,
                    codecs: "avc1.42c01e,mp4a.40.2".into(),
                    resolution: None,
                    frame_rate: Some(25.0),
                },
            ],
            audio: Some(AudioGroup::new(2, "audio/index.m3u8")),
            closed_captions: None,
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3300000,AVERAGE-BANDWIDTH=3128000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO=\"aud\"\n\
             720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=700000,CODECS=\"avc1.42c01e,mp4a.40.2\",FRAME-RATE=25.000,AUDIO=\"aud\"\n\
             360p/index.m3u8\n"
        );
    }

    #[test]
    fn captions_are_a_rendition_every_variant_names() {
        let m = MasterPlaylist {
            variants: vec![Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_300_000,
                average_bandwidth: None,
                codecs: "avc1.64001f".into(),
                resolution: None,
                frame_rate: None,
            }],
            audio: None,
            closed_captions: Some(ClosedCaptions::cc1()),
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",DEFAULT=YES,AUTOSELECT=YES,INSTREAM-ID=\"CC1\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3300000,CODECS=\"avc1.64001f\",CLOSED-CAPTIONS=\"cc\"\n\
             720p/index.m3u8\n"
        );
    }

    #[test]
    fn master_without_audio_and_hostile_strings() {
        let m = MasterPlaylist {
            variants: vec![Variant {
                uri: "a\r\n#EXT-X-ENDLIST\nb".into(),
                bandwidth: 1,
                average_bandwidth: None,
                codecs: "avc1\",x=\"y".into(),
                resolution: Some((2, 2)),
                frame_rate: Some(f64::NAN),
            }],
            audio: None,
            closed_captions: None,
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1,x=y\",RESOLUTION=2x2\n\
             a#EXT-X-ENDLISTb\n"
        );
    }

    fn seg(t: u64, start_ns: u64, d: f64) -> SegmentEntry {
        SegmentEntry {
            uri: segment_uri(t),
            start_ns,
            duration_secs: d,
            discontinuity: false,
            gap: false,
        }
    }

    #[test]
    fn video_media_playlist_text() {
        // 30/1, 2 s fragments, 3 per segment: 6 s segments at 90 kHz.
        let t0 = Y2026 / 1_000_000_000 * 90_000;
        let mut segs = vec![
            seg(t0, Y2026, 6.0),
            seg(t0 + 540_000, Y2026 + 6_000_000_000, 6.0),
            seg(t0 + 1_080_000, Y2026 + 12_000_000_000, 6.0),
        ];
        segs[2].discontinuity = true;
        segs[1].gap = true;
        let p = MediaPlaylist {
            media_sequence: 295_394_400,
            discontinuity_sequence: Some(3),
            independent_segments: true,
            segments: segs,
            ..MediaPlaylist::default()
        };
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:6\n\
             #EXT-X-MEDIA-SEQUENCE:295394400\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n\
             #EXTINF:6.00000,\n\
             159512976000000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:06.000Z\n\
             #EXTINF:6.00000,\n\
             #EXT-X-GAP\n\
             159512976540000.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:12.000Z\n\
             #EXTINF:6.00000,\n\
             159512977080000.m4s\n"
        );
    }

    #[test]
    fn a_new_init_segment_gets_its_own_map_after_a_discontinuity() {
        let mut segs = vec![
            seg(0, 0, 2.0),
            seg(180_000, 2_000_000_000, 2.0),
            seg(360_000, 4_000_000_000, 2.0),
        ];
        segs[1].discontinuity = true;
        let p = MediaPlaylist {
            target_duration: Some(2),
            map_uri: "init-00000000000000a1.mp4".into(),
            segments: segs,
            maps: BTreeMap::from([(1, "init-00000000000000b2.mp4".to_string())]),
            ..MediaPlaylist::default()
        };
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"init-00000000000000a1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n\
             #EXTINF:2.00000,\n\
             0.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"init-00000000000000b2.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.000Z\n\
             #EXTINF:2.00000,\n\
             180000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:04.000Z\n\
             #EXTINF:2.00000,\n\
             360000.m4s\n"
        );
    }

    #[test]
    fn audio_media_playlist_with_endlist_and_ntsc_durations() {
        // Audio at 48 kHz on a 30000/1001 grid: 2.002 s fragments are 93.84 AAC frames, so
        // audio fragments are 93 or 94 frames (1.98400 s or 2.00533 s).
        let p = MediaPlaylist {
            media_sequence: 7,
            segments: vec![
                seg(0, 1_500, 94.0 * 1024.0 / 48_000.0),
                seg(96_256, 2_005_333_333, 93.0 * 1024.0 / 48_000.0),
            ],
            endlist: true,
            ..MediaPlaylist::default()
        };
        assert_eq!(p.effective_target_duration(), 3);
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:3\n\
             #EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n\
             #EXTINF:2.00533,\n\
             0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.005Z\n\
             #EXTINF:1.98400,\n\
             96256.m4s\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn target_duration_rules() {
        let mut p = MediaPlaylist::default();
        assert_eq!(p.effective_target_duration(), 1);
        p.segments.push(seg(0, 0, 6.006));
        assert_eq!(p.effective_target_duration(), 7);
        // Floating noise below the printed precision does not push it up.
        p.segments[0].duration_secs = 6.000000001;
        assert_eq!(p.effective_target_duration(), 6);
        p.segments.push(seg(1, 0, f64::INFINITY));
        p.segments.push(seg(2, 0, -3.0));
        assert_eq!(p.effective_target_duration(), 6);
        p.target_duration = Some(8);
        assert_eq!(p.effective_target_duration(), 8);
        assert!(p.render().contains("#EXTINF:0.00000,\n1.m4s\n"));
        // Huge values saturate instead of panicking.
        p.target_duration = None;
        p.segments.push(seg(3, u64::MAX, 1e300));
        let _ = p.render();
    }

    #[test]
    fn program_date_times() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_123_999_999, "2000-02-29T00:00:00.123Z"),
            (951_868_799_999_000_000, "2000-02-29T23:59:59.999Z"),
            (Y2026, "2026-03-01T12:00:00.000Z"),
            (4_102_444_800_000_000_000, "2100-01-01T00:00:00.000Z"),
            (u64::MAX, "2554-07-21T23:34:33.709Z"),
        ];
        for (ns, text) in cases {
            assert_eq!(program_date_time(ns), text, "{ns}");
        }
    }

    #[test]
    fn date_times_parse_back_to_their_instant() {
        for ns in [
            0u64,
            1_796_164_200_123_000_000,
            2_147_483_648_000_000_000,
            4_294_967_296_000_000_000,
            951_782_400_000_000_000, // 2000-02-29
        ] {
            assert_eq!(parse_date_time(&program_date_time(ns)), Some(ns), "{ns}");
        }
        assert_eq!(
            parse_date_time("2026-12-01T22:30:00.5+00:00"),
            Some(1_796_164_200_500_000_000)
        );
        assert_eq!(
            parse_date_time("2026-12-01T22:30:00.123456789Z"),
            Some(1_796_164_200_123_456_789)
        );
        for bad in [
            "2026-12-01T22:30:00",
            "2026-12-01T22:30:00+01:00",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-12-01T22:30:00.Z",
            "2026-12-1T22:30:00Z",
            "",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_dates_match_a_day_by_day_count() {
        // Walk 1970-01-01 .. 2401-01-01 one day at a time with a naive calendar.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..157_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
