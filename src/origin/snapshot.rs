//! The origin's state as readers see it: an immutable [`OriginSnapshot`], shared as an `Arc`
//! and replaced whole by the feeder (`feeder.rs`) after each change. The playlist and MPD
//! writers and the HTTP handlers read one snapshot per request, without any lock of the
//! feeder's, so every document and every answer is consistent in itself.
//!
//! The text comes from the pure functions of `twincast_media::playlist` over each track's
//! [`TrackWindow`] (segment times, init versions, measured bit rates); the snapshot adds what
//! only the HTTP side needs: the segments' bytes (while in RAM), their ETags and disk copies,
//! and the init segments' bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use twincast_media::TrackKind;
use twincast_media::playlist::{self, Discontinuities, MpdRequest, Timing, TrackWindow};

use super::inits::InitVersions;
use super::window::{self, Segment};
use crate::hub::InitSegment;

/// What one track held at one moment.
#[derive(Debug)]
pub struct TrackSnapshot {
    /// The segments and init versions; shared with the previous snapshot while they did not
    /// change.
    content: Arc<TrackContent>,
    /// Fragments that could not be placed in a whole segment.
    pub fragments_skipped: u64,
    /// Segments that left the RAM part with no disk copy.
    pub lost_without_disk: u64,
}

#[derive(Debug)]
struct TrackContent {
    /// What the playlist writers read.
    window: TrackWindow,
    /// The same segments with their bytes, ETags and disk copies (oldest first).
    segments: Vec<Segment>,
    ram_bytes: u64,
    current: Option<(u64, Arc<InitSegment>)>,
    versions: BTreeMap<u64, Arc<InitSegment>>,
}

impl TrackSnapshot {
    /// A copy of what a track holds. `previous`: the track's last snapshot; its content is
    /// reused when `unchanged` says the segments and versions are the same.
    pub fn new(
        name: &str,
        inits: &InitVersions,
        w: &window::TrackWindow,
        previous: Option<&TrackSnapshot>,
        unchanged: bool,
    ) -> Self {
        let content = match previous {
            Some(p) if unchanged => p.content.clone(),
            _ => Arc::new(TrackContent::new(name, inits, w)),
        };
        TrackSnapshot {
            content,
            fragments_skipped: w.fragments_skipped,
            lost_without_disk: w.lost_without_disk,
        }
    }

    pub fn name(&self) -> &str {
        &self.content.window.name
    }

    /// The window as the playlist writers read it.
    pub fn window(&self) -> &TrackWindow {
        &self.content.window
    }

    pub fn timescale(&self) -> twincast_media::Timescale {
        self.content.window.timescale
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.content.segments
    }

    /// Bytes of the segments in RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.content.ram_bytes
    }

    /// The segment named by its start time.
    pub fn by_start(&self, start: u64) -> Option<&Segment> {
        let segments = self.segments();
        let i = segments.binary_search_by_key(&start, |s| s.start).ok()?;
        segments.get(i)
    }

    /// A segment by its index from the epoch.
    pub fn by_index(&self, index: u64) -> Option<&Segment> {
        let segments = self.segments();
        let i = segments.binary_search_by_key(&index, |s| s.index).ok()?;
        segments.get(i)
    }

    /// The current init segment.
    pub fn current_init(&self) -> Option<&Arc<InitSegment>> {
        self.content.current.as_ref().map(|(_, i)| i)
    }

    /// One init segment version, while it is current or referenced by the window.
    pub fn init_version(&self, id: u64) -> Option<&Arc<InitSegment>> {
        self.content.versions.get(&id)
    }

    /// The track has had more than one init segment.
    pub fn init_changed(&self) -> bool {
        self.content.window.changed
    }

    /// Both share one copy of the segments and versions.
    pub fn shares_content_with(&self, other: &TrackSnapshot) -> bool {
        Arc::ptr_eq(&self.content, &other.content)
    }
}

impl TrackContent {
    fn new(name: &str, inits: &InitVersions, w: &window::TrackWindow) -> Self {
        let segments: Vec<Segment> = w.segments().cloned().collect();
        let versions: BTreeMap<u64, Arc<InitSegment>> = inits
            .held_ids()
            .filter_map(|id| Some((id, inits.get(id)?.clone())))
            .collect();
        let current = inits
            .current()
            .map(|c| (inits.current_id().unwrap_or(0), c.clone()));
        let window = TrackWindow {
            name: name.to_string(),
            timescale: w.timescale,
            segments: segments.iter().map(Segment::span).collect(),
            discontinuities: w.discontinuities(),
            version_changes: w.version_changes().collect(),
            current: current.as_ref().map(|(id, i)| (*id, i.info.clone())),
            versions: versions
                .iter()
                .map(|(id, i)| (*id, i.info.clone()))
                .collect(),
            changed: inits.changed(),
            measured_bitrates: w.bitrates(),
        };
        TrackContent {
            window,
            segments,
            ram_bytes: w.ram_bytes(),
            current,
            versions,
        }
    }
}

/// What the whole origin held at one moment, in track order.
#[derive(Debug, Clone)]
pub struct OriginSnapshot {
    pub timing: Timing,
    pub tracks: Vec<Arc<TrackSnapshot>>,
    /// Every track's discontinuities, which every media playlist carries.
    pub discontinuities: Discontinuities,
}

impl OriginSnapshot {
    /// A track by name, with its number.
    pub fn track(&self, name: &str) -> Option<(usize, &TrackSnapshot)> {
        let i = self.tracks.iter().position(|t| t.name() == name)?;
        Some((i, self.tracks.get(i)?))
    }

    /// A snapshot of `tracks`, with the discontinuities `known` before and those they show.
    pub fn new(timing: Timing, tracks: Vec<Arc<TrackSnapshot>>, known: Discontinuities) -> Self {
        let mut s = OriginSnapshot {
            timing,
            tracks,
            discontinuities: known,
        };
        let windows = s.windows();
        let mut discontinuities = s.discontinuities.clone();
        discontinuities.observe(&windows);
        s.discontinuities = discontinuities;
        s
    }

    /// This snapshot with track `i`'s part replaced.
    pub fn with_track(&self, i: usize, track: Arc<TrackSnapshot>) -> Self {
        let mut tracks = self.tracks.clone();
        if let Some(t) = tracks.get_mut(i) {
            *t = track;
        }
        OriginSnapshot::new(self.timing, tracks, self.discontinuities.clone())
    }

    fn windows(&self) -> Vec<&TrackWindow> {
        self.tracks.iter().map(|t| t.window()).collect()
    }

    /// Number of segments published on the track with the fewest (readiness checks).
    pub fn min_segments(&self) -> usize {
        self.tracks
            .iter()
            .map(|t| t.segments().len())
            .min()
            .unwrap_or(0)
    }

    /// The multivariant playlist, once every track has its init segment.
    pub fn master_playlist(&self) -> Option<String> {
        Some(playlist::master_playlist(&self.windows(), &self.timing)?.render())
    }

    /// The media playlist of one track (`twincast_media::playlist::media_playlist`).
    /// The media playlist of `name`, with the ad signals of `marks`.
    pub fn media_playlist(
        &self,
        name: &str,
        marks: &[twincast_media::splice::Mark],
    ) -> Option<String> {
        let (_, t) = self.track(name)?;
        let mut p = playlist::media_playlist(t.window(), &self.timing, &self.discontinuities)?;
        playlist::add_splices(&mut p, marks);
        Some(p.render())
    }

    /// The DASH MPD, once every track has its init segment. `host` (the request's Host
    /// header) makes the UTCTiming URL absolute: some clients (GStreamer's dashdemux) do not
    /// resolve a relative one. `number`: the `$Number$` form. `events`: the SCTE-35 signals.
    pub fn mpd(
        &self,
        host: Option<&str>,
        number: bool,
        publish_time_ns: u64,
        events: Vec<twincast_media::dash::Event>,
    ) -> Option<String> {
        let request = MpdRequest {
            publish_time_ns,
            number,
            events,
            utc_timing_url: match host.filter(|h| valid_host(h)) {
                Some(h) => format!("http://{h}/time"),
                None => "/time".to_string(),
            },
        };
        Some(playlist::mpd(&self.windows(), &self.timing, &request)?.render())
    }

    /// A segment by track name and start time.
    pub fn segment(&self, name: &str, start: u64) -> Option<(usize, &Segment)> {
        let (i, t) = self.track(name)?;
        Some((i, t.by_start(start)?))
    }

    /// A segment by track name and index from the epoch.
    pub fn segment_by_index(&self, name: &str, index: u64) -> Option<(usize, &Segment)> {
        let (i, t) = self.track(name)?;
        Some((i, t.by_index(index)?))
    }

    /// A track's current init segment, and whether the track has had more than one.
    pub fn init_segment(&self, name: &str) -> Option<(Arc<InitSegment>, bool)> {
        let (_, t) = self.track(name)?;
        Some((t.current_init()?.clone(), t.init_changed()))
    }

    /// One init segment version of a track, while it is current or referenced by the window.
    pub fn init_version(&self, name: &str, id: u64) -> Option<Arc<InitSegment>> {
        let (_, t) = self.track(name)?;
        t.init_version(id).cloned()
    }

    pub fn is_audio(&self, name: &str) -> bool {
        self.track(name)
            .and_then(|(_, t)| t.current_init())
            .is_some_and(|init| init.info.kind() == TrackKind::Audio)
            || name == twincast_media::TrackId::AUDIO
    }
}

/// A Host header value we may echo into the MPD: a name or address and a port, nothing else.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}
