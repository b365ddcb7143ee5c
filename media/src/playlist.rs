//! The origin's window as data, and its HLS playlists and DASH MPD as pure functions of it
//! (docs/design/origin.md, *Gaps and discontinuities*).
//!
//! A [`TrackWindow`] is what one track of the origin holds at one moment: its segments (index
//! from the epoch, start and duration in the track timescale, slate or not, init segment id),
//! the indices where its init segment changed, the init segment versions it still references
//! and its measured bit rates. The origin builds one per track whenever its window changes and
//! shares them read-only; everything here reads them and writes plain values for
//! [`crate::hls`] and [`crate::dash`] to render. Nothing here keeps state.
//!
//! - HLS: a hole between two segments becomes one `EXT-X-GAP` entry per missing segment index
//!   ([`gap_entries`]), and the segment after it carries `EXT-X-DISCONTINUITY`, so every
//!   segment's media sequence number is its index from the epoch; a segment whose init segment
//!   differs from the one before is also a discontinuity and gets its own `EXT-X-MAP`.
//! - Every media playlist carries the discontinuities of *every* track ([`Discontinuities`]):
//!   RFC 8216 §6.2.4 asks matching content to have matching discontinuity sequence numbers, and
//!   hls.js aligns the audio with the video per discontinuity sequence number, so an audio
//!   playlist without the video's discontinuity (a reload that changed only the video's init
//!   segment) never starts playing at a live edge past it.
//! - DASH: a Period starts at every segment index where some track's init segment changed
//!   ([`period_starts`]); each Representation of a Period lists that Period's segments.

use std::collections::{BTreeMap, BTreeSet};

use crate::dash::{
    Addressing, INIT_TEMPLATE, Mpd, Period, Representation, RepresentationKind, timeline_runs,
    versioned_init_template,
};
use crate::hls::{
    AudioGroup, DateRange, MasterPlaylist, MediaPlaylist, SegmentEntry, Variant, slate_ranges,
};
use crate::time::{MediaTime, Rounding, Timescale};
use crate::{Codec, TrackInfo, TrackKind, aac, h264};

/// Timescale of the `$Number$` MPD's nominal segment duration (whole ticks for every frame rate
/// the grid accepts).
pub const NUMBER_TIMESCALE: Timescale = match Timescale::new(90_000) {
    Some(t) => t,
    None => panic!("90 kHz is not zero"),
};

/// One segment of a window, times in the track timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSegment {
    /// Segment index from the epoch: the HLS media sequence number.
    pub index: u64,
    /// Start: the file name is `<start>.m4s`.
    pub start: u64,
    pub duration: u64,
    /// Some fragment in it was built from slate frames.
    pub filler: bool,
    /// The init segment it was written against.
    pub init_id: u64,
}

impl WindowSegment {
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }

    /// `next` does not follow `self` seamlessly: an index hole, a time hole, or another init
    /// segment.
    pub fn is_discontinuous_with(&self, next: &WindowSegment) -> bool {
        self.index + 1 != next.index || self.end() != next.start || self.init_id != next.init_id
    }
}

/// One track's window at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackWindow {
    /// Track name: the URL path component (`720p`, `audio`) and the DASH Representation id.
    pub name: String,
    pub timescale: Timescale,
    /// Oldest first.
    pub segments: Vec<WindowSegment>,
    /// Indices of the segments that do not follow the one before them seamlessly
    /// ([`WindowSegment::is_discontinuous_with`]), oldest first; the first may be the oldest
    /// segment's (its predecessor just slid out). [`Discontinuities`] gathers them over the
    /// tracks.
    pub discontinuities: Vec<u64>,
    /// Segment indices where the init segment changed, oldest first; the first may be at or
    /// before the oldest segment (the change it still belongs to).
    pub version_changes: Vec<u64>,
    /// The current init segment (the encoder's latest): its id and what it describes.
    pub current: Option<(u64, TrackInfo)>,
    /// Every version the window still references (and the current one), by id.
    pub versions: BTreeMap<u64, TrackInfo>,
    /// The track has had more than one init segment: versions are named by id.
    pub changed: bool,
    /// Peak and average bit rate (bits/s) measured over the window, if it has segments.
    pub measured_bitrates: Option<(u64, u64)>,
}

/// What the origin's settings say about every track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Nominal segment duration, ns.
    pub segment_ns: u64,
    /// DVR window, ns (`timeShiftBufferDepth`).
    pub window_ns: u64,
    /// Frame rate as num/den.
    pub frame_rate: (u32, u32),
    /// The video carries CEA-608 captions on CC1: the multivariant playlist has a
    /// CLOSED-CAPTIONS rendition, the MPD an `Accessibility` descriptor.
    pub captions: bool,
}

/// The MPD's per-request parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpdRequest {
    /// `publishTime`, ns since the epoch.
    pub publish_time_ns: u64,
    /// The `$Number$` form instead of the SegmentTimeline.
    pub number: bool,
    /// `UTCTiming@value`.
    pub utc_timing_url: String,
    /// SCTE-35 events for the Periods' `EventStream`s.
    pub events: Vec<crate::dash::Event>,
}

/// The discontinuities of all the tracks of one origin: a segment index where some track does
/// not continue seamlessly is a discontinuity in every track's playlist, so the same content
/// has the same discontinuity sequence number everywhere (a segment at index i is in sequence
/// [`Discontinuities::before`]`(i)` + 1 on every track).
///
/// The origin keeps one and [`Discontinuities::observe`]s every window change: a track's own
/// discontinuity stays known after it slid out of that track's window while another track
/// still reaches back past it. Bounded: only the indices past the oldest segment of every
/// track are kept; the older ones are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discontinuities {
    /// Discontinuities before the oldest segment of every track.
    slid: u64,
    /// Indices with a discontinuity in some track, from the oldest segment of any track on.
    at: BTreeSet<u64>,
}

impl Discontinuities {
    /// Adds the tracks' own discontinuities and forgets (counting them) those before the
    /// oldest segment of every track that has segments (one at it is still reported by its
    /// track, [`TrackWindow::discontinuities`]).
    pub fn observe(&mut self, tracks: &[&TrackWindow]) {
        for t in tracks {
            self.at.extend(t.discontinuities.iter().copied());
        }
        let oldest = tracks
            .iter()
            .filter_map(|t| t.segments.first())
            .map(|s| s.index)
            .min();
        if let Some(oldest) = oldest {
            let newer = self.at.split_off(&oldest);
            self.slid += self.at.len() as u64;
            self.at = newer;
        }
    }

    /// The number of discontinuities up to and including segment index `index`: the
    /// `EXT-X-DISCONTINUITY-SEQUENCE` of a playlist whose first segment is `index`.
    pub fn up_to(&self, index: u64) -> u64 {
        self.slid + self.at.range(..=index).count() as u64
    }

    /// Every discontinuity known, for a playlist with no segment yet.
    pub fn total(&self) -> u64 {
        self.slid + self.at.len() as u64
    }

    /// Some track does not continue seamlessly at segment index `index`.
    pub fn at(&self, index: u64) -> bool {
        self.at.contains(&index)
    }
}

/// `ns` in `timescale` ticks, rounded down.
pub fn ticks(ns: u64, timescale: Timescale) -> u64 {
    MediaTime::from_nanos(ns, timescale, Rounding::Floor).ticks()
}

/// `t` ticks of `timescale` in ns, rounded down.
pub fn to_ns(t: u64, timescale: Timescale) -> u64 {
    MediaTime::new(t, timescale).as_nanos()
}

/// The name of an init segment version in playlists and URLs: `init.mp4` while the track has
/// only ever had one version, `init-<id as 16 hex digits>.mp4` once it changed.
pub fn init_file_name(id: u64, changed: bool) -> String {
    if changed {
        format!("init-{id:016x}.mp4")
    } else {
        "init.mp4".to_string()
    }
}

/// RFC 6381 codec string of a track (a common default where the configuration is unreadable).
pub fn codec_string(info: &TrackInfo) -> String {
    match &info.codec {
        Codec::Aac { asc, .. } => {
            aac::rfc6381_codec(asc).unwrap_or_else(|_| "mp4a.40.2".to_string())
        }
        Codec::H264 { avcc, .. } => {
            h264::rfc6381_codec(avcc).unwrap_or_else(|_| "avc1.64001f".to_string())
        }
    }
}

impl TrackWindow {
    /// The file name of version `id` ([`init_file_name`]).
    pub fn file_name(&self, id: u64) -> String {
        init_file_name(id, self.changed)
    }

    /// Peak and average bit rate with a 5 % allowance for the boxes; the current init
    /// segment's configured rate until the window has segments.
    pub fn bitrates(&self) -> Option<(u64, u64)> {
        let configured = u64::from(self.current.as_ref()?.1.bitrate);
        Some(match self.measured_bitrates {
            Some((peak, avg)) if peak > 0 => (peak + peak / 20, avg + avg / 20),
            _ => (configured, configured),
        })
    }

    fn segment_entry(&self, s: &WindowSegment, discontinuity: bool) -> SegmentEntry {
        SegmentEntry {
            uri: format!("{}.m4s", s.start),
            start_ns: to_ns(s.start, self.timescale),
            duration_secs: MediaTime::new(s.duration, self.timescale).as_secs_f64(),
            discontinuity,
            gap: false,
        }
    }
}

/// The `EXT-X-GAP` entries for the segment indices missing between `prev` and `next`: entry i
/// covers its nominal slot `[i·segment, (i+1)·segment)` clipped to the hole (which starts at
/// `prev`'s end and ends at `next`'s start), named by its start in the track timescale.
pub fn gap_entries(
    prev: &WindowSegment,
    next: &WindowSegment,
    timescale: Timescale,
    segment_ns: u64,
) -> Vec<SegmentEntry> {
    let seg_ns = segment_ns.max(1);
    let next_start = to_ns(next.start, timescale);
    let mut gap_start = to_ns(prev.end(), timescale);
    let mut out = Vec::new();
    for missing in (prev.index + 1)..next.index {
        let end = ((missing + 1) * seg_ns).min(next_start);
        let start = gap_start.max(missing * seg_ns).min(end);
        out.push(SegmentEntry {
            uri: format!("{}.m4s", ticks(start, timescale)),
            start_ns: start,
            duration_secs: (end - start) as f64 / 1e9,
            discontinuity: false,
            gap: true,
        });
        gap_start = end;
    }
    out
}

/// A window's HLS entries in order, gaps included, and the `EXT-X-MAP` URIs by entry position
/// where the init segment changes. An entry (a segment or a gap) after the first carries
/// `EXT-X-DISCONTINUITY` where this track, or any track of `all`, does not continue seamlessly.
pub fn segment_entries(
    track: &TrackWindow,
    segment_ns: u64,
    all: &Discontinuities,
) -> (Vec<SegmentEntry>, BTreeMap<usize, String>) {
    let mut entries = Vec::with_capacity(track.segments.len());
    let mut maps = BTreeMap::new();
    let mut prev: Option<&WindowSegment> = None;
    for s in &track.segments {
        let mut discontinuity = false;
        if let Some(p) = prev {
            discontinuity = p.is_discontinuous_with(s) || all.at(s.index);
            let gaps = gap_entries(p, s, track.timescale, segment_ns);
            entries.extend(gaps.into_iter().zip(p.index + 1..).map(|(mut g, index)| {
                g.discontinuity = all.at(index);
                g
            }));
            if p.init_id != s.init_id {
                maps.insert(entries.len(), track.file_name(s.init_id));
            }
        }
        entries.push(track.segment_entry(s, discontinuity));
        prev = Some(s);
    }
    (entries, maps)
}

/// The slate date ranges of a window, by position in its `entries` ([`segment_entries`]): gaps
/// are not slate.
pub fn slate_date_ranges(track: &TrackWindow, entries: &[SegmentEntry]) -> Vec<(usize, DateRange)> {
    let positions: Vec<usize> = (0..entries.len()).filter(|&i| !entries[i].gap).collect();
    let spans: Vec<(u64, u64, bool)> = track
        .segments
        .iter()
        .map(|s| {
            (
                to_ns(s.start, track.timescale),
                to_ns(s.end(), track.timescale),
                s.filler,
            )
        })
        .collect();
    slate_ranges(&spans)
        .into_iter()
        .filter_map(|(i, r)| Some((*positions.get(i)?, r)))
        .collect()
}

/// The media playlist of one track; `None` until it has an init segment. The media sequence
/// number is the oldest segment's index; `EXT-X-TARGETDURATION` comes from the nominal segment
/// duration, so it never changes while the stream is live. `all`: the discontinuities of every
/// track of the origin.
pub fn media_playlist(
    track: &TrackWindow,
    timing: &Timing,
    all: &Discontinuities,
) -> Option<MediaPlaylist> {
    let (current_id, current) = track.current.as_ref()?;
    let (segments, maps) = segment_entries(track, timing.segment_ns, all);
    let date_ranges = slate_date_ranges(track, &segments);
    let first = track.segments.first();
    Some(MediaPlaylist {
        date_ranges,
        media_sequence: first.map(|s| s.index).unwrap_or(0),
        // Absent means 0 (RFC 8216bis §4.4.3.3); written once a discontinuity slid out.
        discontinuity_sequence: Some(first.map_or(all.total(), |s| all.up_to(s.index)))
            .filter(|n| *n > 0),
        independent_segments: current.kind() == TrackKind::Video,
        map_uri: track.file_name(first.map(|s| s.init_id).unwrap_or(*current_id)),
        target_duration: Some(timing.segment_ns.div_ceil(1_000_000_000)),
        segments,
        maps,
        ..Default::default()
    })
}

/// Adds the ad signals of `marks` to a media playlist (docs/design/signals.md, *HLS*): an
/// `EXT-X-DATERANGE` with the SCTE-35 section before the segment its START-DATE (an in's:
/// its END-DATE) falls in (the
/// first one when it began earlier and still spans the window, the last one when it is still
/// ahead), and the legacy `EXT-X-CUE-OUT`/`EXT-X-CUE-IN` before the first segment that starts
/// at or after the cue (none yet while no segment does).
pub fn add_splices(p: &mut MediaPlaylist, marks: &[crate::splice::Mark]) {
    use crate::splice::Cue;
    let Some(first) = p.segments.first().map(|s| s.start_ns) else {
        return;
    };
    let ends: Vec<u64> = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| match p.segments.get(i + 1) {
            Some(n) => n.start_ns,
            None => s.start_ns + (s.duration_secs * 1e9) as u64,
        })
        .collect();
    let last = p.segments.len() - 1;
    for m in marks {
        if !m.id.is_empty() {
            let span_end = m
                .end_ns
                .or(m.planned_ns.map(|d| m.start_ns + d))
                .unwrap_or(m.start_ns);
            if m.start_ns >= first || span_end > first {
                // An in's tag shares its out's START-DATE; it goes where the break ends.
                let key = m.end_ns.unwrap_or(m.start_ns);
                let at = (0..=last).find(|&i| key < ends[i]).unwrap_or(last);
                p.date_ranges.push((
                    at,
                    DateRange {
                        id: m.id.clone(),
                        class: String::new(),
                        start_ns: m.start_ns,
                        end_ns: m.end_ns,
                        planned_ns: m.planned_ns,
                        scte35: Some((m.attribute, crate::scte35::hex(&m.section))),
                    },
                ));
            }
        }
        let (at_ns, line) = match m.cue {
            Some(Cue::Out { at_ns, duration_ns }) => (
                at_ns,
                match duration_ns {
                    Some(d) => format!("#EXT-X-CUE-OUT:{}", crate::hls::seconds_ms(d)),
                    None => "#EXT-X-CUE-OUT".to_string(),
                },
            ),
            Some(Cue::In { at_ns }) => (at_ns, "#EXT-X-CUE-IN".to_string()),
            None => continue,
        };
        if at_ns < first {
            continue;
        }
        if let Some(at) = p.segments.iter().position(|s| s.start_ns >= at_ns) {
            p.cues.push((at, line));
        }
    }
}

/// The multivariant playlist, once every track has its init segment: one variant per video
/// track, the audio (if any) as a group every variant references, its bit rate added to theirs.
pub fn master_playlist(tracks: &[&TrackWindow], timing: &Timing) -> Option<MasterPlaylist> {
    let mut variants = Vec::new();
    let mut audio = None;
    let mut audio_bw = 0;
    let (n, d) = timing.frame_rate;
    for t in tracks {
        let (_, init) = t.current.as_ref()?;
        let (peak, avg) = t.bitrates()?;
        match &init.codec {
            Codec::Aac { channels, .. } => {
                audio = Some((codec_string(init), *channels));
                audio_bw = peak.max(avg);
            }
            Codec::H264 { width, height, .. } => variants.push(Variant {
                uri: format!("{}/index.m3u8", t.name),
                bandwidth: peak,
                average_bandwidth: Some(avg),
                codecs: codec_string(init),
                resolution: Some((*width, *height)),
                frame_rate: Some(f64::from(n) / f64::from(d.max(1))),
            }),
        }
    }
    for v in &mut variants {
        v.bandwidth += audio_bw;
        v.average_bandwidth = v.average_bandwidth.map(|a| a + audio_bw);
        if let Some((codec, _)) = &audio {
            v.codecs = format!("{},{}", v.codecs, codec);
        }
    }
    Some(MasterPlaylist {
        variants,
        audio: audio.map(|(_, channels)| AudioGroup::new(channels, "audio/index.m3u8")),
        closed_captions: timing.captions.then(crate::hls::ClosedCaptions::cc1),
    })
}

/// The segment indices where Periods start: 0 and every init segment change of any track, less
/// those before the change the oldest segment (of any track) belongs to, which slid out.
pub fn period_starts(tracks: &[&TrackWindow]) -> Vec<u64> {
    let mut starts: Vec<u64> = tracks
        .iter()
        .flat_map(|t| t.version_changes.iter().copied())
        .collect();
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();
    let oldest = tracks
        .iter()
        .filter_map(|t| t.segments.first())
        .map(|s| s.index)
        .min();
    if let Some(first) = oldest {
        let slid_out = starts
            .iter()
            .skip(1)
            .take_while(|next| **next <= first)
            .count();
        starts.drain(..slid_out);
    }
    starts
}

/// One track's Representation in the Period of segment indices `[k, end)`. The Period's init
/// segment version is that of its first segment, else of the last one before it, else the
/// current one.
pub fn representation(
    track: &TrackWindow,
    k: u64,
    end: u64,
    timing: &Timing,
) -> Option<Representation> {
    let (current_id, current) = track.current.as_ref()?;
    let (bandwidth, _) = track.bitrates()?;
    let in_period: Vec<&WindowSegment> = track
        .segments
        .iter()
        .filter(|s| s.index >= k && s.index < end)
        .collect();
    let id = in_period
        .first()
        .map(|s| s.init_id)
        .or_else(|| {
            let before = track.segments.iter().rev().find(|s| s.index < k);
            before.map(|s| s.init_id)
        })
        .unwrap_or(*current_id);
    let init = track.versions.get(&id).unwrap_or(current);
    let kind = match &init.codec {
        Codec::Aac { channels, .. } => RepresentationKind::Audio {
            sample_rate: init.timescale,
            channels: *channels,
        },
        Codec::H264 { width, height, .. } => RepresentationKind::Video {
            width: *width,
            height: *height,
            frame_rate: timing.frame_rate,
        },
    };
    Some(Representation {
        id: track.name.clone(),
        bandwidth,
        codecs: codec_string(init),
        kind,
        timescale: track.timescale.hz(),
        timeline: timeline_runs(in_period.iter().map(|s| (s.start, s.duration))),
        initialization: if track.changed {
            versioned_init_template(id)
        } else {
            INIT_TEMPLATE.to_string()
        },
    })
}

/// The Periods of the MPD ([`period_starts`]), once every track has its init segment: Period k
/// starts at `k·segment` since the epoch, with `startNumber` k.
pub fn periods(tracks: &[&TrackWindow], timing: &Timing) -> Option<Vec<Period>> {
    if tracks.iter().any(|t| t.current.is_none()) {
        return None;
    }
    let starts = period_starts(tracks);
    let mut periods = Vec::with_capacity(starts.len());
    for (p, &k) in starts.iter().enumerate() {
        let end = starts.get(p + 1).copied().unwrap_or(u64::MAX);
        let representations = tracks
            .iter()
            .map(|t| representation(t, k, end, timing))
            .collect::<Option<Vec<_>>>()?;
        periods.push(Period {
            start_ns: k.saturating_mul(timing.segment_ns),
            start_number: k,
            representations,
        });
    }
    Some(periods)
}

/// The DASH MPD over the tracks, once every track has its init segment.
pub fn mpd(tracks: &[&TrackWindow], timing: &Timing, request: &MpdRequest) -> Option<Mpd> {
    let seg = timing.segment_ns;
    let addressing = if request.number {
        Addressing::Number {
            timescale: NUMBER_TIMESCALE.hz(),
            duration: ticks(seg, NUMBER_TIMESCALE),
        }
    } else {
        Addressing::Timeline
    };
    Some(Mpd {
        publish_time_ns: request.publish_time_ns,
        time_shift_buffer_ns: timing.window_ns,
        minimum_update_period_ns: seg,
        suggested_presentation_delay_ns: seg * 3,
        min_buffer_time_ns: seg,
        // Audio segments end on the AAC frame at or after the video boundary.
        max_segment_duration_ns: seg + seg / 10,
        utc_timing_url: request.utc_timing_url.clone(),
        periods: periods(tracks, timing)?,
        addressing,
        events: request.events.clone(),
        captions: timing.captions,
    })
}

#[cfg(test)]
mod tests {
    //! The cases the origin produced before these functions existed (its tests and golden
    //! files, `src/origin/golden/`): 1 s segments at 90 kHz (video) and 48 kHz (audio, ending
    //! on the AAC frame at or after each second).
    use super::*;

    const A: u64 = 0xa1;
    const B: u64 = 0xb2;

    fn video_info(width: u32, height: u32) -> TrackInfo {
        TrackInfo {
            id: 1,
            name: "v".into(),
            timescale: 90_000,
            codec: Codec::H264 {
                avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
                width,
                height,
            },
            bitrate: 400_000,
        }
    }

    fn audio_info() -> TrackInfo {
        TrackInfo {
            id: 2,
            name: "audio".into(),
            timescale: 48_000,
            codec: Codec::Aac {
                asc: vec![0x11, 0x90],
                sample_rate: 48_000,
                channels: 2,
            },
            bitrate: 128_000,
        }
    }

    fn audio_start(n: u64) -> u64 {
        (n * 48_000).div_ceil(1024) * 1024
    }

    fn segment(n: u64, timescale: u32, init_id: u64) -> WindowSegment {
        let (start, end) = if timescale == 48_000 {
            (audio_start(n), audio_start(n + 1))
        } else {
            (n * 90_000, (n + 1) * 90_000)
        };
        WindowSegment {
            index: n,
            start,
            duration: end - start,
            filler: false,
            init_id,
        }
    }

    /// A track with segments `indices`, init A before `change` and B from it on.
    fn track(
        name: &str,
        info: TrackInfo,
        indices: impl IntoIterator<Item = u64>,
        change: Option<u64>,
    ) -> TrackWindow {
        let timescale = info.timescale;
        let clock = info.clock().expect("non-zero");
        let id = |n: u64| if change.is_some_and(|c| n >= c) { B } else { A };
        let segments: Vec<WindowSegment> = indices
            .into_iter()
            .map(|n| segment(n, timescale, id(n)))
            .collect();
        let mut versions = BTreeMap::from([(A, info.clone())]);
        let mut current = (A, info.clone());
        if change.is_some() {
            let mut b = info.clone();
            if let Codec::H264 { width, height, .. } = &mut b.codec {
                (*width, *height) = (1280, 720);
            }
            versions.insert(B, b.clone());
            current = (B, b);
        }
        TrackWindow {
            name: name.into(),
            timescale: clock,
            discontinuities: segments
                .windows(2)
                .filter(|p| p[0].is_discontinuous_with(&p[1]))
                .map(|p| p[1].index)
                .collect(),
            segments,
            version_changes: change.into_iter().collect(),
            current: Some(current),
            versions,
            changed: change.is_some(),
            measured_bitrates: None,
        }
    }

    /// One track's discontinuities as the origin gathers them.
    fn own(t: &TrackWindow) -> Discontinuities {
        let mut all = Discontinuities::default();
        all.observe(&[t]);
        all
    }

    /// (media sequence number, discontinuity sequence number) of every entry.
    fn sequence_numbers(p: &MediaPlaylist) -> Vec<(u64, u64)> {
        let mut cc = p.discontinuity_sequence.unwrap_or(0);
        (p.media_sequence..)
            .zip(&p.segments)
            .map(|(n, e)| {
                cc += u64::from(e.discontinuity);
                (n, cc)
            })
            .collect()
    }

    #[test]
    fn every_playlist_carries_every_tracks_discontinuities() {
        // The video changes its init segment at 104 (a reload) and misses 106..108 (an encoder
        // rebuild); the audio changes at 107 and misses nothing.
        let mut v = track(
            "v",
            video_info(640, 360),
            (100..106).chain(108..110),
            Some(104),
        );
        v.discontinuities = vec![104, 108];
        let a = track("audio", audio_info(), 100..110, Some(107));
        let mut all = Discontinuities::default();
        all.observe(&[&v, &a]);
        let pv = media_playlist(&v, &timing(), &all).expect("init");
        let pa = media_playlist(&a, &timing(), &all).expect("init");
        let flags = |p: &MediaPlaylist| -> Vec<u64> {
            (p.media_sequence..)
                .zip(&p.segments)
                .filter(|(_, e)| e.discontinuity)
                .map(|(n, _)| n)
                .collect()
        };
        // The video's gap entry 107 and the audio's 104 and 108 carry the other's.
        assert_eq!(flags(&pv), vec![104, 107, 108]);
        assert_eq!(flags(&pa), vec![104, 107, 108]);
        assert!(pv.segments[7].gap && pv.segments[7].discontinuity);
        // Only a track's own init change gets an EXT-X-MAP.
        assert_eq!(pa.maps.keys().collect::<Vec<_>>(), vec![&7]);
        assert_eq!(sequence_numbers(&pv), sequence_numbers(&pa));

        // The video slides past its change at 104 while the audio still reaches back before
        // it: the video counts it in EXT-X-DISCONTINUITY-SEQUENCE, the audio still lists it,
        // and every segment keeps its discontinuity sequence number.
        let mut v2 = v.clone();
        v2.segments.drain(..5);
        v2.discontinuities = vec![108];
        all.observe(&[&v2, &a]);
        let pv2 = media_playlist(&v2, &timing(), &all).expect("init");
        let pa2 = media_playlist(&a, &timing(), &all).expect("init");
        assert_eq!(pv2.discontinuity_sequence, Some(1));
        assert_eq!(pa2.discontinuity_sequence, None);
        assert_eq!(flags(&pv2), vec![107, 108]);
        let (nv, na) = (sequence_numbers(&pv2), sequence_numbers(&pa2));
        assert_eq!(nv[..], na[5..]);
        // Both slid past it: counted once, forgotten.
        let mut a2 = a.clone();
        a2.segments.drain(..6);
        all.observe(&[&v2, &a2]);
        assert_eq!((all.total(), all.up_to(105), all.at(104)), (3, 1, false));
        // Observing again (the video still reports nothing older): nothing counted twice.
        all.observe(&[&v2, &a2]);
        assert_eq!(all.total(), 3);
        let pa3 = media_playlist(&a2, &timing(), &all).expect("init");
        assert_eq!(sequence_numbers(&pa3)[..], nv[1..]);
    }

    fn timing() -> Timing {
        Timing {
            segment_ns: 1_000_000_000,
            window_ns: 600_000_000_000,
            frame_rate: (30, 1),
            captions: false,
        }
    }

    #[test]
    fn a_hole_is_one_gap_entry_per_missing_index_then_a_discontinuity() {
        let v = track("v", video_info(640, 360), (100..104).chain(106..108), None);
        let text = media_playlist(&v, &timing(), &own(&v))
            .expect("init")
            .render();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:100\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:40.000Z\n#EXTINF:1.00000,\n9000000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:41.000Z\n#EXTINF:1.00000,\n9090000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:42.000Z\n#EXTINF:1.00000,\n9180000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:43.000Z\n#EXTINF:1.00000,\n9270000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:44.000Z\n#EXTINF:1.00000,\n#EXT-X-GAP\n\
             9360000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:45.000Z\n#EXTINF:1.00000,\n#EXT-X-GAP\n\
             9450000.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:46.000Z\n#EXTINF:1.00000,\n9540000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:47.000Z\n#EXTINF:1.00000,\n9630000.m4s\n"
        );
    }

    #[test]
    fn gap_entries_are_clipped_to_the_hole() {
        // 2 s segments; segment 1 was cut short at 3 s, segment 4 starts on its boundary.
        let prev = WindowSegment {
            index: 1,
            start: 180_000,
            duration: 90_000,
            filler: false,
            init_id: A,
        };
        let next = WindowSegment {
            index: 4,
            start: 720_000,
            duration: 180_000,
            filler: false,
            init_id: A,
        };
        let gaps = gap_entries(
            &prev,
            &next,
            Timescale::new(90_000).expect("non-zero"),
            2_000_000_000,
        );
        let got: Vec<(&str, u64, f64, bool)> = gaps
            .iter()
            .map(|e| (e.uri.as_str(), e.start_ns, e.duration_secs, e.gap))
            .collect();
        // The short segment's tail (3 s..4 s) is no entry: slot 2 starts on its boundary.
        assert_eq!(
            got,
            vec![
                ("360000.m4s", 4_000_000_000, 2.0, true),
                ("540000.m4s", 6_000_000_000, 2.0, true)
            ]
        );
        assert!(prev.is_discontinuous_with(&next));
        // Audio: the hole starts where the last AAC frame ended (after the boundary), in ns
        // rounded down, so its name is a tick early (a gap is never fetched).
        let (a, b) = (segment(104, 48_000, A), segment(107, 48_000, A));
        assert_eq!(a.end(), 5_040_128);
        let gaps = gap_entries(
            &a,
            &b,
            Timescale::new(48_000).expect("non-zero"),
            1_000_000_000,
        );
        let got: Vec<(&str, u64)> = gaps.iter().map(|e| (e.uri.as_str(), e.start_ns)).collect();
        assert_eq!(
            got,
            vec![
                ("5040127.m4s", 105_002_666_666),
                ("5088000.m4s", 106_000_000_000)
            ]
        );
        assert!((gaps[0].duration_secs - 0.997_333_334).abs() < 1e-9);
        // Adjacent segments: none.
        let (c, d) = (segment(5, 90_000, A), segment(6, 90_000, A));
        assert!(
            gap_entries(
                &c,
                &d,
                Timescale::new(90_000).expect("non-zero"),
                1_000_000_000
            )
            .is_empty()
        );
        assert!(!c.is_discontinuous_with(&d));
    }

    #[test]
    fn a_new_init_segment_is_a_discontinuity_with_its_own_map() {
        let v = track("v", video_info(640, 360), 100..107, Some(104));
        let (entries, maps) = segment_entries(&v, 1_000_000_000, &own(&v));
        let flags: Vec<bool> = entries.iter().map(|e| e.discontinuity).collect();
        assert_eq!(flags, [false, false, false, false, true, false, false]);
        assert_eq!(
            maps,
            BTreeMap::from([(4, "init-00000000000000b2.mp4".to_string())])
        );
        let p = media_playlist(&v, &timing(), &own(&v)).expect("init");
        assert_eq!(p.map_uri, "init-00000000000000a1.mp4");
        assert_eq!(p.discontinuity_sequence, None);
        // After A slid out: B's name, and the discontinuity counted.
        let mut all = own(&v);
        let mut later = v.clone();
        later.segments.drain(..4);
        all.observe(&[&later]);
        let p = media_playlist(&later, &timing(), &all).expect("init");
        assert_eq!(p.map_uri, "init-00000000000000b2.mp4");
        assert!(p.maps.is_empty() && p.discontinuity_sequence == Some(1));
        // Audio never changed: `init.mp4`, no EXT-X-INDEPENDENT-SEGMENTS.
        let a = track("audio", audio_info(), 100..107, None);
        let p = media_playlist(&a, &timing(), &own(&a)).expect("init");
        assert_eq!(p.map_uri, "init.mp4");
        assert!(!p.independent_segments);
        // No init segment yet: no playlist.
        let mut none = a.clone();
        none.current = None;
        assert!(media_playlist(&none, &timing(), &own(&none)).is_none());
    }

    #[test]
    fn slate_ranges_skip_gap_entries() {
        let mut v = track("v", video_info(640, 360), [100, 101, 103, 104], None);
        v.segments[1].filler = true;
        v.segments[2].filler = true;
        let (entries, _) = segment_entries(&v, 1_000_000_000, &own(&v));
        assert!(entries[2].gap);
        let ranges = slate_date_ranges(&v, &entries);
        // Segments 101 and 103 (entries 1 and 3): one span, ended by 104.
        assert_eq!(ranges.len(), 1);
        let (at, r) = &ranges[0];
        assert_eq!(*at, 1);
        assert_eq!(
            (r.start_ns, r.end_ns),
            (101_000_000_000, Some(104_000_000_000))
        );
    }

    #[test]
    fn periods_start_at_every_change_and_stay_when_older_segments_slide_out() {
        let v = track("v", video_info(640, 360), 100..107, Some(104));
        let a = track("audio", audio_info(), 100..107, None);
        assert_eq!(period_starts(&[&v, &a]), vec![0, 104]);
        // A ladder: both renditions change at the same index, one Period boundary.
        let lo = track("lo", video_info(320, 180), 100..107, Some(104));
        assert_eq!(period_starts(&[&v, &lo, &a]), vec![0, 104]);
        // An audio codec change elsewhere splits again.
        let a2 = track("audio", audio_info(), 100..107, Some(106));
        assert_eq!(period_starts(&[&v, &a2]), vec![0, 104, 106]);
        // Segments before 104 slid out of every track: the Period of 104 stays.
        let (mut v2, mut a3) = (v.clone(), a.clone());
        v2.segments.drain(..5);
        a3.segments.drain(..5);
        assert_eq!(period_starts(&[&v2, &a3]), vec![104]);
        // Only one track slid: the older Period is still listed.
        assert_eq!(period_starts(&[&v2, &a]), vec![0, 104]);
    }

    #[test]
    fn a_period_names_its_version_and_lists_its_segments() {
        let v = track("v", video_info(640, 360), 100..107, Some(104));
        let a = track("audio", audio_info(), 100..107, None);
        let periods = periods(&[&v, &a], &timing()).expect("inits");
        assert_eq!(periods.len(), 2);
        let (first, second) = (&periods[0], &periods[1]);
        assert_eq!((first.start_ns, first.start_number), (0, 0));
        assert_eq!(
            (second.start_ns, second.start_number),
            (104_000_000_000, 104)
        );
        let rep = |p: &Period, i: usize| p.representations[i].clone();
        assert_eq!(rep(first, 0).initialization, versioned_init_template(A));
        assert_eq!(rep(second, 0).initialization, versioned_init_template(B));
        assert_eq!(rep(first, 1).initialization, INIT_TEMPLATE);
        assert_eq!(
            rep(first, 0).kind,
            RepresentationKind::Video {
                width: 640,
                height: 360,
                frame_rate: (30, 1)
            }
        );
        assert!(matches!(
            rep(second, 0).kind,
            RepresentationKind::Video { width: 1280, .. }
        ));
        assert_eq!(
            rep(second, 0).timeline,
            timeline_runs([
                (9_360_000, 90_000),
                (9_450_000, 90_000),
                (9_540_000, 90_000)
            ])
        );
        let audio_starts: Vec<u64> = rep(second, 1).timeline.iter().map(|r| r.start).collect();
        assert_eq!(audio_starts, vec![audio_start(104)]);
        // A Period a track has no segment in: the version of its last one before.
        let mut gap = v.clone();
        gap.segments.retain(|s| s.index < 104);
        let periods = super::periods(&[&gap, &a], &timing()).expect("inits");
        let empty = &periods[1].representations[0];
        assert!(empty.timeline.is_empty());
        assert_eq!(empty.initialization, versioned_init_template(A));
        // No init segment on some track: no MPD.
        let mut none = a.clone();
        none.current = None;
        assert!(super::periods(&[&v, &none], &timing()).is_none());
    }

    /// What the origin wrote for segments 100..104 and 106..108 of `v` and `audio` (the
    /// origin's `a_single_version_renders_as_before`).
    const BEFORE_TIMELINE: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="1970-01-01T00:00:00.000Z" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="PT600S" suggestedPresentationDelay="PT3S" minBufferTime="PT1S" maxSegmentDuration="PT1.100S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" frameRate="30">
      <Representation id="v" bandwidth="840" codecs="avc1.64001f" width="640" height="360" sar="1:1">
        <SegmentTemplate timescale="90000" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Time$.m4s">
          <SegmentTimeline>
            <S t="9000000" d="90000" r="3"/>
            <S t="9540000" d="90000" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">
      <Representation id="audio" bandwidth="855" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Time$.m4s">
          <SegmentTimeline>
            <S t="4800512" d="48128" r="2"/>
            <S t="4944896" d="47104"/>
            <S t="5088256" d="48128" r="1"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="http://h:1/time"/>
</MPD>
"##;

    #[test]
    fn a_single_version_renders_as_before() {
        let mut v = track("v", video_info(640, 360), (100..104).chain(106..108), None);
        let mut a = track("audio", audio_info(), (100..104).chain(106..108), None);
        // Measured over 100 media bytes a segment; 5 % added for the boxes.
        v.measured_bitrates = Some((800, 800));
        a.measured_bitrates = Some((815, 800));
        let request = MpdRequest {
            publish_time_ns: 0,
            number: false,
            utc_timing_url: "http://h:1/time".into(),
            events: Vec::new(),
        };
        let text = mpd(&[&v, &a], &timing(), &request).expect("inits").render();
        assert_eq!(text, BEFORE_TIMELINE);
        let number = MpdRequest {
            number: true,
            ..request
        };
        let text = mpd(&[&v, &a], &timing(), &number).expect("inits").render();
        assert_eq!(
            text.matches(
                "<SegmentTemplate timescale=\"90000\" duration=\"90000\" startNumber=\"0\" \
                 presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init.mp4\" \
                 media=\"$RepresentationID$/n$Number$.m4s\"/>"
            )
            .count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn master_playlist_adds_the_audio_to_every_variant() {
        let hi = track("720p", video_info(1280, 720), 100..102, None);
        let mut lo = track("360p", video_info(640, 360), 100..102, None);
        let mut a = track("audio", audio_info(), 100..102, None);
        // Configured rates until measured; measured ones get 5 % for the boxes.
        lo.measured_bitrates = Some((200_000, 100_000));
        a.measured_bitrates = Some((0, 0));
        let m = master_playlist(&[&hi, &lo, &a], &timing()).expect("inits");
        let got: Vec<(u64, Option<u64>, &str)> = m
            .variants
            .iter()
            .map(|v| (v.bandwidth, v.average_bandwidth, v.codecs.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (528_000, Some(528_000), "avc1.64001f,mp4a.40.2"),
                (338_000, Some(233_000), "avc1.64001f,mp4a.40.2")
            ]
        );
        assert_eq!(m.variants[0].uri, "720p/index.m3u8");
        assert_eq!(m.variants[1].frame_rate, Some(30.0));
        assert_eq!(m.audio.as_ref().map(|g| g.channels), Some(2));
        let mut none = a.clone();
        none.current = None;
        assert!(master_playlist(&[&hi, &none], &timing()).is_none());
    }

    #[test]
    fn splices_become_date_ranges_and_cues_where_they_fall() {
        use crate::splice::{Kind, Request, Schedule, When, marks};
        use crate::timeline::FrameRate;
        const S: u64 = 1_000_000_000;
        let t0 = 1_796_164_200 * S;
        let rate = FrameRate::new(30, 1).expect("rate");
        let mut schedule = Schedule::new(rate);
        let reached = rate.frame_index_nearest(t0);
        let out = Request::Out {
            event_id: Some(7),
            duration_ns: Some(30 * S),
            when: When::At(t0 + 8 * S),
        };
        let back = Request::In {
            event_id: 7,
            when: When::At(t0 + 20 * S),
        };
        let signal = Request::TimeSignal {
            event_id: Some(9),
            segmentation_type_id: 0x34,
            duration_ns: None,
            upid: None,
            when: When::At(t0 + 100 * S),
        };
        for r in [&out, &back, &signal] {
            schedule.add(r, t0, reached).expect("scheduled");
        }
        let ms = marks(schedule.splices());
        assert_eq!(ms.len(), 3, "{ms:?}");
        let mut p = MediaPlaylist {
            segments: (0..5)
                .map(|i| SegmentEntry {
                    uri: format!("{i}.m4s"),
                    start_ns: t0 + i * 6 * S,
                    duration_secs: 6.0,
                    discontinuity: false,
                    gap: false,
                })
                .collect(),
            ..Default::default()
        };
        add_splices(&mut p, &ms);
        let text = p.render();
        let out_frame = schedule.splices().next().expect("out").frame;
        let want_out = format!(
            "#EXT-X-DATERANGE:ID=\"splice-7-{out_frame}\",START-DATE=\"2026-12-01T22:30:08.000Z\",PLANNED-DURATION=30.000,SCTE35-OUT=0x"
        );
        let want_in = format!(
            "#EXT-X-DATERANGE:ID=\"splice-7-{out_frame}\",START-DATE=\"2026-12-01T22:30:08.000Z\",END-DATE=\"2026-12-01T22:30:20.000Z\",DURATION=12.000,SCTE35-IN=0x"
        );
        let lines: Vec<&str> = text.lines().collect();
        let pos = |prefix: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        };
        // The out falls in the segment from 6 s, its CUE-OUT before the segment from 12 s;
        // the in falls in the segment from 18 s and its CUE-IN is before the one from 24 s.
        assert!(pos(&want_out) < pos("1.m4s") && pos(&want_out) > pos("0.m4s"));
        assert!(pos("#EXT-X-CUE-OUT:30.000") > pos("1.m4s"));
        assert!(pos("#EXT-X-CUE-OUT:30.000") < pos("2.m4s"));
        assert!(pos(&want_in) > pos("2.m4s") && pos(&want_in) < pos("3.m4s"));
        assert!(pos("#EXT-X-CUE-IN") > pos("3.m4s") && pos("#EXT-X-CUE-IN") < pos("4.m4s"));
        // The time_signal is 100 s ahead: listed before the last segment, no cue.
        assert!(pos("#EXT-X-DATERANGE:ID=\"signal-9-") < pos("4.m4s"));
        assert!(text.contains(",SCTE35-CMD=0xFC30"), "{text}");
        assert_eq!(
            text.matches("#EXT-X-CUE-IN").count(),
            1,
            "the in replaces the auto return"
        );
        // The section in the playlist is the schedule's, byte for byte.
        let hex = crate::scte35::hex(&schedule.splices().next().expect("out").section);
        assert!(text.contains(&format!("SCTE35-OUT={hex}")), "{text}");
        assert!(schedule.splices().all(|s| s.kind != Kind::Cancel));
    }
}
