//! Local origin: HLS and DASH over HTTP from one set of segments, with a DVR window in RAM and on
//! disk (design §4).
//!
//! URL layout (contract):
//! - `GET /live/master.m3u8`, `GET /live/<track>/index.m3u8`
//! - `GET /live/<track>/init.mp4`, `GET /live/<track>/<t>.m4s` (`<t>`: start in the track timescale)
//! - `GET /live/<track>/init-<id>.mp4`: one init segment version (`<id>`: 16 hex digits)
//! - `GET /live/manifest.mpd` (DASH over the same files), `GET /time` (the clock for UTCTiming)
//! - `GET /` (preview page with the embedded hls.js), `GET /dash.html`, `GET /assets/<file>`
//!
//! Code map: `window.rs` groups fragments into segments and bounds the window; `dvr.rs` is the
//! disk tier; `http.rs` answers one request (routing by parsed path, conditional and range
//! requests); `server.rs` accepts connections (allow-list, connection limit, header size and
//! read timeout); `assets.rs` holds the embedded page and players.
//!
//! Init segment versions: a reload that rebuilds an encoder can change a track's init segment
//! (new codec parameters) while older segments are still in the window. Every segment records
//! its init id; per track the origin holds the versions the window references
//! ([`window::InitVersions`]). While a track has only ever had one version everything is named
//! `init.mp4`; once it changed, every playlist names each segment's version as
//! `init-<id>.mp4` (immutable), HLS writes EXT-X-DISCONTINUITY and a new EXT-X-MAP where the
//! version changes, and the MPD starts a Period at each change (`twincast_media::dash`).
//!
//! Architecture Invariant: requests are routed by parsed path components, never by joining a
//! request path onto the filesystem.

pub mod assets;
pub mod dvr;
pub mod http;
pub mod server;
pub mod window;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use twincast_media::dash::{
    Addressing, INIT_TEMPLATE, Mpd, Period, Representation, RepresentationKind, timeline_runs,
    versioned_init_template,
};
use twincast_media::hls::{AudioGroup, MasterPlaylist, MediaPlaylist, SegmentEntry, Variant};
use twincast_media::timeline::{Grid, segment_fragments_for_gop};
use twincast_media::{Codec, TrackKind, aac, h264};

use crate::config::AllowEntry;
use crate::hub::{Hub, InitSegment};
use dvr::DiskStore;
use window::{InitVersions, Segment, TrackWindow, fnv1a, is_discontinuous};

pub use server::{bind, serve};

/// Timescale of the `$Number$` MPD's nominal segment duration (whole ticks for every frame rate
/// the grid accepts).
const NUMBER_TIMESCALE: u32 = 90_000;
/// Default bound on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// Default time a client has to send a request's headers (also the keep-alive idle limit).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// How the origin is set up.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub fragments_per_segment: u32,
    /// DVR window in ns.
    pub window_ns: u64,
    /// Frame rate for FRAME-RATE, as num/den.
    pub frame_rate: (u32, u32),
    /// Nominal segment duration in ns; EXT-X-TARGETDURATION is derived from it once, so it
    /// never changes while the stream is live.
    pub segment_ns: u64,
    /// Age of the RAM part, ns.
    pub ram_ns: u64,
    /// Bytes of the RAM part per track.
    pub ram_bytes_per_track: u64,
    /// Disk tier directory; `None`: RAM only.
    pub dvr_dir: Option<PathBuf>,
    /// Bound on the disk tier's bytes (all tracks).
    pub dvr_max_bytes: u64,
    /// Clients allowed; empty: anyone.
    pub allow: Vec<AllowEntry>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl OriginSettings {
    /// Settings with the defaults for everything but the timeline.
    pub fn new(
        fragments_per_segment: u32,
        window_ns: u64,
        frame_rate: (u32, u32),
        segment_ns: u64,
    ) -> Self {
        OriginSettings {
            fragments_per_segment,
            window_ns,
            frame_rate,
            segment_ns,
            ram_ns: crate::config::DEFAULT_DVR_RAM.as_nanos() as u64,
            ram_bytes_per_track: crate::config::DEFAULT_DVR_RAM_MAX_BYTES,
            dvr_dir: None,
            dvr_max_bytes: 0,
            allow: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }

    /// The settings of a validated `[origin]` section on the epoch grid.
    pub fn from_config(origin: &crate::config::OriginSection, grid: &Grid) -> Self {
        let fragments_per_segment = origin
            .segment_fragments
            .unwrap_or_else(|| segment_fragments_for_gop(grid.gop_ns() * grid.fragment_gops()));
        let mut s = OriginSettings::new(
            fragments_per_segment,
            u64::try_from(origin.dvr_window.as_nanos()).unwrap_or(u64::MAX),
            (grid.rate().num(), grid.rate().den()),
            grid.fragment_duration_ns() * u64::from(fragments_per_segment),
        );
        s.dvr_dir = Some(origin.dvr_dir.clone());
        s.dvr_max_bytes = origin.dvr_max_bytes;
        s.ram_ns = u64::try_from(origin.dvr_ram.as_nanos()).unwrap_or(u64::MAX);
        s.ram_bytes_per_track = origin.dvr_ram_max_bytes;
        s.allow = origin.allow.clone();
        s
    }

    fn ticks(ns: u64, timescale: u32) -> u64 {
        (u128::from(ns) * u128::from(timescale) / 1_000_000_000) as u64
    }

    fn new_window(&self, timescale: u32) -> TrackWindow {
        TrackWindow::new(
            timescale,
            self.fragments_per_segment,
            Self::ticks(self.window_ns, timescale),
            Self::ticks(self.ram_ns, timescale),
            self.ram_bytes_per_track,
        )
    }
}

/// One track as the origin sees it. Lock order: `inits` before `window` when both are held.
pub struct OriginTrack {
    pub name: String,
    /// The current init segment and the versions the window references.
    pub inits: RwLock<InitVersions>,
    pub window: RwLock<TrackWindow>,
}

/// Request counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub denied: AtomicU64,
    pub not_found: AtomicU64,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub disk_read_errors: AtomicU64,
    pub fragments_lagged: AtomicU64,
}

/// Per-track figures of [`OriginStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub name: String,
    /// Segments listed (RAM and disk).
    pub segments: u64,
    /// Segments whose bytes are in RAM, and those bytes.
    pub ram_segments: u64,
    pub ram_bytes: u64,
    /// Segments with a copy on disk.
    pub disk_segments: u64,
    /// Index (media sequence number) of the oldest and newest segment.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// Window duration in ms (newest end − oldest start).
    pub window_ms: u64,
    /// Segments that left RAM with no disk copy (disk trouble).
    pub lost_without_disk: u64,
    pub fragments_skipped: u64,
}

/// What the origin reports for `/status` and `/metrics` (plain values, a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginStats {
    pub tracks: Vec<TrackStats>,
    /// Bytes and files in the disk tier (all tracks), and disk errors (write, list, create).
    pub disk_bytes: u64,
    pub disk_files: u64,
    pub disk_errors: u64,
    /// Segment reads from disk that failed (served 404).
    pub disk_read_errors: u64,
    pub disk_enabled: bool,
    pub requests: u64,
    /// Requests refused by the allow-list (403).
    pub denied_requests: u64,
    pub not_found: u64,
    pub connections: u64,
    /// Connections closed at once because the connection limit was reached.
    pub connections_refused: u64,
    /// Fragments the origin missed because it fell behind the hub.
    pub fragments_lagged: u64,
}

/// Shared state of the origin.
pub struct Origin {
    settings: OriginSettings,
    pub tracks: Vec<OriginTrack>,
    disk: Option<DiskStore>,
    pub counters: Counters,
}

/// Wall-clock ns since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Origin {
    pub fn new(settings: OriginSettings, hub: &Hub) -> Arc<Self> {
        let tracks: Vec<OriginTrack> = hub
            .tracks
            .iter()
            .map(|t| {
                let timescale = t.init().map(|i| i.info.timescale).unwrap_or(90_000);
                OriginTrack {
                    name: t.name.clone(),
                    inits: RwLock::new(InitVersions::default()),
                    window: RwLock::new(settings.new_window(timescale)),
                }
            })
            .collect();
        let disk = settings.dvr_dir.clone().map(|dir| {
            DiskStore::new(
                dir,
                settings.dvr_max_bytes,
                tracks.iter().map(|t| t.name.clone()).collect(),
            )
        });
        Arc::new(Origin {
            settings,
            tracks,
            disk,
            counters: Counters::default(),
        })
    }

    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    fn track_index(&self, name: &str) -> Option<usize> {
        self.tracks.iter().position(|t| t.name == name)
    }

    /// Number of segments published on the track with the fewest (readiness checks).
    pub fn min_segments(&self) -> usize {
        self.tracks
            .iter()
            .map(|t| t.window.read().map(|w| w.len()).unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OriginStats {
        let tracks = self
            .tracks
            .iter()
            .map(|t| {
                let Ok(w) = t.window.read() else {
                    return TrackStats {
                        name: t.name.clone(),
                        ..Default::default()
                    };
                };
                let first = w.segments().next();
                let last = w.segments().last();
                let ts = u128::from(w.timescale.max(1));
                TrackStats {
                    name: t.name.clone(),
                    segments: w.len() as u64,
                    ram_segments: w.segments().filter(|s| s.ram.is_some()).count() as u64,
                    ram_bytes: w.ram_bytes(),
                    disk_segments: w.segments().filter(|s| s.on_disk).count() as u64,
                    first_index: first.map(|s| s.index),
                    last_index: last.map(|s| s.index),
                    window_ms: match (first, last) {
                        (Some(f), Some(l)) => {
                            (u128::from(l.end().saturating_sub(f.start)) * 1000 / ts) as u64
                        }
                        _ => 0,
                    },
                    lost_without_disk: w.lost_without_disk,
                    fragments_skipped: w.fragments_skipped,
                }
            })
            .collect();
        let disk = self.disk.as_ref().map(|d| d.stats()).unwrap_or_default();
        let c = &self.counters;
        OriginStats {
            tracks,
            disk_bytes: disk.bytes,
            disk_files: disk.files,
            disk_errors: disk.errors,
            disk_read_errors: c.disk_read_errors.load(Ordering::Relaxed),
            disk_enabled: self.disk.is_some(),
            requests: c.requests.load(Ordering::Relaxed),
            denied_requests: c.denied.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
            fragments_lagged: c.fragments_lagged.load(Ordering::Relaxed),
        }
    }

    /// Feeds every track's window from the hub until cancelled.
    pub fn spawn_feeders(self: &Arc<Self>, hub: &Arc<Hub>, cancel: CancellationToken) {
        for (i, track) in hub.tracks.iter().enumerate() {
            let mut fragments = track.subscribe();
            let mut init = track.watch_init();
            let origin = self.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                // An init segment set before we subscribed.
                let first = init.borrow_and_update().clone();
                if first.is_some() {
                    origin.clone().set_init(i, first).await;
                }
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        changed = init.changed() => {
                            if changed.is_err() { break; }
                            let new = init.borrow_and_update().clone();
                            origin.clone().set_init(i, new).await;
                        }
                        received = fragments.recv() => match received {
                            Ok(fragment) => origin.clone().feed(i, &fragment).await,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                origin.counters.fragments_lagged.fetch_add(n, Ordering::Relaxed);
                                log::warn!(target: "origin", "track {}: origin fell {n} fragments behind; they are not in the window", origin.tracks[i].name);
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                }
            });
        }
    }

    /// One fragment into a track's window; a completed segment goes to disk, the RAM part is
    /// trimmed and the disk tier's evictions are applied.
    pub async fn feed(self: Arc<Self>, track: usize, fragment: &crate::hub::PackagedFragment) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        // The init segment the fragment was written against (the current one when it does not
        // say), held before a segment can reference it.
        let init_id = match &fragment.init {
            Some(init) => {
                let id = fnv1a(&init.bytes);
                let held = t.inits.read().is_ok_and(|v| v.get(id).is_some());
                if !held && let Ok(mut v) = t.inits.write() {
                    v.note(id, init);
                }
                id
            }
            None => t
                .inits
                .read()
                .ok()
                .and_then(|v| v.current_id())
                .unwrap_or(0),
        };
        let outcome = match t.window.write() {
            // A fragment of an init segment with another timescale than the window's (one
            // still queued from before a timescale change) cannot be placed.
            Ok(mut w)
                if fragment
                    .init
                    .as_ref()
                    .is_some_and(|i| i.info.timescale != w.timescale) =>
            {
                w.fragments_skipped += 1;
                return;
            }
            Ok(mut w) => w.push(fragment, init_id),
            Err(_) => return,
        };
        if self.disk.is_some()
            && (outcome.published.is_some() || !outcome.expired_on_disk.is_empty())
        {
            let origin = self.clone();
            let published = outcome.published.clone();
            let expired = outcome.expired_on_disk;
            let result = tokio::task::spawn_blocking(move || {
                let Some(disk) = &origin.disk else {
                    return (false, Vec::new());
                };
                for s in &expired {
                    disk.remove(track, s);
                }
                match &published {
                    Some(s) => match &s.ram {
                        Some(bytes) => disk.write(track, s, bytes),
                        None => (false, Vec::new()),
                    },
                    None => (false, Vec::new()),
                }
            })
            .await;
            if let Ok((written, evicted)) = result {
                if written
                    && let Some(s) = &outcome.published
                    && let Ok(mut w) = t.window.write()
                {
                    w.mark_on_disk(s.start);
                }
                for (other, start) in evicted {
                    if let Some(ot) = self.tracks.get(other)
                        && let Ok(mut w) = ot.window.write()
                    {
                        w.drop_disk_copy(start);
                    }
                }
            }
        }
        let referenced = match t.window.write() {
            Ok(mut w) => {
                w.trim_ram();
                w.referenced_inits()
            }
            Err(_) => return,
        };
        if let Ok(mut v) = t.inits.write() {
            v.retain(&referenced);
        }
    }

    /// A track's init segment (first, or changed). The first one, or one with a new timescale,
    /// starts a new window, seeded from the disk tier; a new version with the same timescale
    /// (a reload changed the codec parameters) becomes the current one while the segments of
    /// the older versions stay in the window with their own.
    pub async fn set_init(self: Arc<Self>, track: usize, init: Option<Arc<InitSegment>>) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let Some(new) = init else {
            return;
        };
        let id = fnv1a(&new.bytes);
        let previous = t.inits.read().ok().and_then(|v| {
            v.current()
                .map(|c| (v.current_id().unwrap_or(0), c.info.timescale))
        });
        let timescale = new.info.timescale;
        match previous {
            Some((previous_id, _)) if previous_id == id => return,
            Some((_, previous_timescale)) if previous_timescale == timescale => {
                log::info!(target: "origin", "track {}: new init segment {id:016x} (new codec parameters); older segments keep theirs", t.name);
                if let Ok(mut v) = t.inits.write() {
                    v.set_current(id, new.clone());
                }
                if self.disk.is_some() {
                    let origin = self.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Some(d) = &origin.disk {
                            d.set_init(track, &new.bytes);
                        }
                    })
                    .await;
                }
                return;
            }
            _ => {}
        }
        let mut fresh = self.settings.new_window(timescale);
        if self.disk.is_some() {
            let origin = self.clone();
            let bytes = new.bytes.clone();
            let window = OriginSettings::ticks(self.settings.window_ns, timescale);
            let loaded = tokio::task::spawn_blocking(move || {
                origin
                    .disk
                    .as_ref()
                    .map(|d| d.open_track(track, &bytes, timescale, window))
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            if !loaded.is_empty() {
                log::info!(target: "origin", "track {}: {} DVR segments reloaded from disk", t.name, loaded.len());
            }
            fresh.preload(loaded);
        }
        if let Ok(mut v) = t.inits.write() {
            v.set_current(id, new);
            // The old window (and the versions it referenced) is gone.
            v.retain(&fresh.referenced_inits());
            if let Ok(mut w) = t.window.write() {
                *w = fresh;
            }
        }
    }

    fn init_of(&self, track: usize) -> Option<Arc<InitSegment>> {
        self.tracks
            .get(track)?
            .inits
            .read()
            .ok()?
            .current()
            .cloned()
    }

    /// The multivariant playlist, once every track has its init segment.
    pub fn master_playlist(&self) -> Option<String> {
        let mut variants = Vec::new();
        let mut audio = None;
        let mut audio_bw = 0;
        for (i, t) in self.tracks.iter().enumerate() {
            let init = self.init_of(i)?;
            let (peak, avg) = self.bitrates(t, &init);
            match &init.info.codec {
                Codec::Aac { asc, channels, .. } => {
                    audio = Some((
                        aac::rfc6381_codec(asc).unwrap_or_else(|_| "mp4a.40.2".to_string()),
                        *channels,
                    ));
                    audio_bw = peak.max(avg);
                }
                Codec::H264 {
                    avcc,
                    width,
                    height,
                } => variants.push(Variant {
                    uri: format!("{}/index.m3u8", t.name),
                    bandwidth: peak,
                    average_bandwidth: Some(avg),
                    codecs: h264::rfc6381_codec(avcc).unwrap_or_else(|_| "avc1.64001f".to_string()),
                    resolution: Some((*width, *height)),
                    frame_rate: Some(self.frame_rate_f64()),
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
        let playlist = MasterPlaylist {
            variants,
            audio: audio.map(|(_, channels)| AudioGroup::new(channels, "audio/index.m3u8")),
        };
        Some(playlist.render())
    }

    fn frame_rate_f64(&self) -> f64 {
        let (n, d) = self.settings.frame_rate;
        f64::from(n) / f64::from(d.max(1))
    }

    /// Peak and average bit rate with box overhead allowance; the configured rate until the
    /// window has segments.
    fn bitrates(&self, t: &OriginTrack, init: &InitSegment) -> (u64, u64) {
        let configured = u64::from(init.info.bitrate);
        let measured = t.window.read().ok().and_then(|w| w.bitrates());
        match measured {
            Some((peak, avg)) if peak > 0 => (peak + peak / 20, avg + avg / 20),
            _ => (configured, configured),
        }
    }

    /// The media playlist of one track. Holes become EXT-X-GAP entries (one per missing segment
    /// index) and the segment after a hole carries EXT-X-DISCONTINUITY, so the media sequence
    /// number of every segment is its index from the epoch. Where the init segment changes the
    /// segment also carries EXT-X-DISCONTINUITY and its own EXT-X-MAP.
    pub fn media_playlist(&self, name: &str) -> Option<String> {
        let i = self.track_index(name)?;
        let versions = self.tracks[i].inits.read().ok()?;
        let init = versions.current()?.clone();
        let w = self.tracks[i].window.read().ok()?;
        let ts = u128::from(w.timescale.max(1));
        let to_ns = |t: u64| (u128::from(t) * 1_000_000_000 / ts) as u64;
        let seg_ns = self.settings.segment_ns.max(1);
        let mut entries = Vec::with_capacity(w.len());
        let mut maps = BTreeMap::new();
        let mut prev: Option<&Segment> = None;
        for s in w.segments() {
            let mut discontinuity = false;
            if let Some(p) = prev {
                discontinuity = is_discontinuous(p, s);
                // Gap entries for the missing indices between p and s.
                let mut gap_start = to_ns(p.end());
                for missing in (p.index + 1)..s.index {
                    let end = ((missing + 1) * seg_ns).min(to_ns(s.start));
                    let start = gap_start.max(missing * seg_ns).min(end);
                    entries.push(SegmentEntry {
                        uri: format!("{}.m4s", OriginSettings::ticks(start, w.timescale)),
                        start_ns: start,
                        duration_secs: (end - start) as f64 / 1e9,
                        discontinuity: false,
                        gap: true,
                    });
                    gap_start = end;
                }
            }
            if prev.is_some_and(|p| p.init_id != s.init_id) {
                maps.insert(entries.len(), versions.file_name(s.init_id));
            }
            entries.push(SegmentEntry {
                uri: format!("{}.m4s", s.start),
                start_ns: to_ns(s.start),
                duration_secs: s.duration as f64 / ts as f64,
                discontinuity,
                gap: false,
            });
            prev = Some(s);
        }
        let media_sequence = w.segments().next().map(|s| s.index).unwrap_or(0);
        // Slate spans: positions in `entries` of the window's segments (gaps are not slate).
        let mut spans = Vec::new();
        let mut positions = Vec::new();
        for (pos, e) in entries.iter().enumerate().filter(|(_, e)| !e.gap) {
            positions.push(pos);
            spans.push((e.start_ns, e.start_ns, false));
        }
        for ((span, s), e) in spans
            .iter_mut()
            .zip(w.segments())
            .zip(entries.iter().filter(|e| !e.gap))
        {
            *span = (e.start_ns, to_ns(s.end()), s.filler);
        }
        let date_ranges = twincast_media::hls::slate_ranges(&spans)
            .into_iter()
            .map(|(i, r)| (positions[i], r))
            .collect();
        let playlist = MediaPlaylist {
            date_ranges,
            media_sequence,
            // Absent means 0 (RFC 8216bis §4.4.3.3); written once a discontinuity slid out.
            discontinuity_sequence: (w.discontinuity_sequence > 0)
                .then_some(w.discontinuity_sequence),
            independent_segments: init.info.kind() == TrackKind::Video,
            map_uri: versions.file_name(
                w.segments()
                    .next()
                    .map(|s| s.init_id)
                    .or(versions.current_id())
                    .unwrap_or(0),
            ),
            target_duration: Some(self.settings.segment_ns.div_ceil(1_000_000_000)),
            segments: entries,
            maps,
            ..Default::default()
        };
        Some(playlist.render())
    }

    /// The DASH MPD over the same files, once every track has its init segment. `host` (the
    /// request's Host header) makes the UTCTiming URL absolute: some clients (GStreamer's
    /// dashdemux) do not resolve a relative one. `number`: the `$Number$` form
    /// (`twincast_media::dash::Addressing::Number`) instead of the SegmentTimeline.
    pub fn mpd(&self, host: Option<&str>, number: bool) -> Option<String> {
        self.mpd_at(host, number, now_ns())
    }

    /// [`Origin::mpd`] with its `publishTime`. Periods start at the segment indices where some
    /// track's init segment changed (all renditions of a ladder rebuild change at the same
    /// one); a stream that never changed has the one Period `PT0S`.
    fn mpd_at(&self, host: Option<&str>, number: bool, publish_time_ns: u64) -> Option<String> {
        struct TrackView {
            versions: BTreeMap<u64, Arc<InitSegment>>,
            current: (u64, Arc<InitSegment>),
            changed: bool,
            timescale: u32,
            /// (index, start, duration, init id)
            segments: Vec<(u64, u64, u64, u64)>,
            peak: u64,
        }
        let mut views = Vec::with_capacity(self.tracks.len());
        let mut starts: Vec<u64> = Vec::new();
        for (i, t) in self.tracks.iter().enumerate() {
            let current = self.init_of(i)?;
            let (peak, _) = self.bitrates(t, &current);
            let v = t.inits.read().ok()?;
            let w = t.window.read().ok()?;
            starts.extend(w.version_changes());
            views.push(TrackView {
                versions: v
                    .held_ids()
                    .filter_map(|id| Some((id, v.get(id)?.clone())))
                    .collect(),
                current: (v.current_id().unwrap_or(0), current),
                changed: v.changed(),
                timescale: w.timescale,
                segments: w
                    .segments()
                    .map(|s| (s.index, s.start, s.duration, s.init_id))
                    .collect(),
                peak,
            });
        }
        // Period starts (segment indices): 0, then every change; the ones before the change the
        // oldest segment belongs to have slid out of the window.
        starts.push(0);
        starts.sort_unstable();
        starts.dedup();
        if let Some(first) = views
            .iter()
            .filter_map(|v| v.segments.first())
            .map(|s| s.0)
            .min()
        {
            while starts.get(1).is_some_and(|next| *next <= first) {
                starts.remove(0);
            }
        }
        let seg = self.settings.segment_ns;
        let mut periods = Vec::with_capacity(starts.len());
        for (p, &k) in starts.iter().enumerate() {
            let end = starts.get(p + 1).copied().unwrap_or(u64::MAX);
            let mut representations = Vec::with_capacity(views.len());
            for (view, t) in views.iter().zip(&self.tracks) {
                let in_period: Vec<&(u64, u64, u64, u64)> = view
                    .segments
                    .iter()
                    .filter(|s| s.0 >= k && s.0 < end)
                    .collect();
                // The Period's version: its first segment's, else the last one's before it,
                // else the current one.
                let id = in_period
                    .first()
                    .map(|s| s.3)
                    .or_else(|| view.segments.iter().rev().find(|s| s.0 < k).map(|s| s.3))
                    .unwrap_or(view.current.0);
                let init = view.versions.get(&id).unwrap_or(&view.current.1);
                let (codecs, kind) = match &init.info.codec {
                    Codec::Aac { asc, channels, .. } => (
                        aac::rfc6381_codec(asc).unwrap_or_else(|_| "mp4a.40.2".to_string()),
                        RepresentationKind::Audio {
                            sample_rate: init.info.timescale,
                            channels: *channels,
                        },
                    ),
                    Codec::H264 {
                        avcc,
                        width,
                        height,
                    } => (
                        h264::rfc6381_codec(avcc).unwrap_or_else(|_| "avc1.64001f".to_string()),
                        RepresentationKind::Video {
                            width: *width,
                            height: *height,
                            frame_rate: self.settings.frame_rate,
                        },
                    ),
                };
                representations.push(Representation {
                    id: t.name.clone(),
                    bandwidth: view.peak,
                    codecs,
                    kind,
                    timescale: view.timescale,
                    timeline: timeline_runs(in_period.iter().map(|s| (s.1, s.2))),
                    initialization: if view.changed {
                        versioned_init_template(id)
                    } else {
                        INIT_TEMPLATE.to_string()
                    },
                });
            }
            periods.push(Period {
                start_ns: k.saturating_mul(seg),
                start_number: k,
                representations,
            });
        }
        let seg = self.settings.segment_ns;
        let addressing = if number {
            Addressing::Number {
                timescale: NUMBER_TIMESCALE,
                duration: OriginSettings::ticks(seg, NUMBER_TIMESCALE),
            }
        } else {
            Addressing::Timeline
        };
        Some(
            Mpd {
                publish_time_ns,
                time_shift_buffer_ns: self.settings.window_ns,
                minimum_update_period_ns: seg,
                suggested_presentation_delay_ns: seg * 3,
                min_buffer_time_ns: seg,
                // Audio segments end on the AAC frame at or after the video boundary.
                max_segment_duration_ns: seg + seg / 10,
                utc_timing_url: match host.filter(|h| valid_host(h)) {
                    Some(h) => format!("http://{h}/time"),
                    None => "/time".to_string(),
                },
                periods,
                addressing,
            }
            .render(),
        )
    }

    /// A segment by track name and start time.
    pub fn segment(&self, name: &str, start: u64) -> Option<(usize, Segment)> {
        let i = self.track_index(name)?;
        let s = self.tracks[i].window.read().ok()?.by_start(start)?;
        Some((i, s))
    }

    /// A segment by track name and index from the epoch.
    pub fn segment_by_index(&self, name: &str, index: u64) -> Option<(usize, Segment)> {
        let i = self.track_index(name)?;
        let s = self.tracks[i].window.read().ok()?.by_index(index)?;
        Some((i, s))
    }

    /// Reads a segment that is only on disk.
    pub async fn read_from_disk(
        self: &Arc<Self>,
        track: usize,
        s: &Segment,
    ) -> Option<bytes::Bytes> {
        let path = self.disk.as_ref()?.path_of(track, s)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Some(bytes::Bytes::from(data)),
            Err(_) => {
                self.counters
                    .disk_read_errors
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A track's current init segment, and whether the track has had more than one.
    pub fn init_segment(&self, name: &str) -> Option<(Arc<InitSegment>, bool)> {
        let v = self
            .tracks
            .get(self.track_index(name)?)?
            .inits
            .read()
            .ok()?;
        Some((v.current()?.clone(), v.changed()))
    }

    /// One init segment version of a track, while it is current or referenced by the window.
    pub fn init_version(&self, name: &str, id: u64) -> Option<Arc<InitSegment>> {
        let v = self
            .tracks
            .get(self.track_index(name)?)?
            .inits
            .read()
            .ok()?;
        v.get(id).cloned()
    }

    pub fn is_audio(&self, name: &str) -> bool {
        self.track_index(name)
            .and_then(|i| self.init_of(i))
            .is_some_and(|init| init.info.kind() == TrackKind::Audio)
            || name == "audio"
    }

    /// Whether a client may use the origin.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        self.settings.allow.is_empty() || AllowEntry::any_contains(&self.settings.allow, addr.ip())
    }
}

/// A Host header value we may echo into the MPD: a name or address and a port, nothing else.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A two-track origin (video `v`, `audio`) with 1 s segments, for the origin's tests.
    use super::*;
    use crate::hub::PackagedFragment;
    use bytes::Bytes;
    use twincast_media::TrackInfo;

    pub fn video_init(bytes: &'static [u8], width: u32, height: u32) -> Arc<InitSegment> {
        Arc::new(InitSegment {
            info: TrackInfo {
                id: 1,
                name: "v".into(),
                timescale: 90_000,
                codec: Codec::H264 {
                    avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
                    width,
                    height,
                },
                bitrate: 400_000,
            },
            bytes: Bytes::from_static(bytes),
        })
    }

    pub fn audio_init() -> Arc<InitSegment> {
        Arc::new(InitSegment {
            info: TrackInfo {
                id: 2,
                name: "audio".into(),
                timescale: 48_000,
                codec: Codec::Aac {
                    asc: vec![0x11, 0x90],
                    sample_rate: 48_000,
                    channels: 2,
                },
                bitrate: 128_000,
            },
            bytes: Bytes::from_static(b"audio-init"),
        })
    }

    /// Start of audio segment n: the first AAC frame at or after n s.
    pub fn audio_start(n: u64) -> u64 {
        (n * 48_000).div_ceil(1024) * 1024
    }

    pub fn fragment(
        n: u64,
        base_dts: u64,
        duration: u64,
        init: Option<Arc<InitSegment>>,
    ) -> PackagedFragment {
        PackagedFragment {
            sequence: n,
            base_dts,
            duration,
            sample_count: 30,
            filler: false,
            bytes: Bytes::from(vec![n as u8; 100]),
            media_bytes: 100,
            samples: Arc::new(Vec::new()),
            init,
        }
    }

    /// Segment n of both tracks; the video one written against `video` (None: not said).
    pub async fn feed_both(origin: &Arc<Origin>, n: u64, video: Option<Arc<InitSegment>>) {
        origin
            .clone()
            .feed(0, &fragment(n, n * 90_000, 90_000, video))
            .await;
        let (a, b) = (audio_start(n), audio_start(n + 1));
        origin
            .clone()
            .feed(1, &fragment(n, a, b - a, Some(audio_init())))
            .await;
    }

    /// An origin with `window_s` of DVR and the first init segments set.
    pub async fn origin(window_s: u64) -> Arc<Origin> {
        let hub = Hub::new(["v".to_string(), "audio".to_string()]);
        let settings = OriginSettings::new(1, window_s * 1_000_000_000, (30, 1), 1_000_000_000);
        let origin = Origin::new(settings, &hub);
        origin
            .clone()
            .set_init(0, Some(video_init(b"init", 640, 360)))
            .await;
        origin.clone().set_init(1, Some(audio_init())).await;
        origin
    }

    /// Segments 100..104 with init A (`b"init"`), then B (`b"init-b"`, 1280×720) from 104 on
    /// (to `end`). The hub's watch moves to B before the last A fragment reaches the origin.
    pub async fn changed_origin(window_s: u64, end: u64) -> Arc<Origin> {
        let origin = origin(window_s).await;
        let a = video_init(b"init", 640, 360);
        let b = video_init(b"init-b", 1280, 720);
        for n in 100..103 {
            feed_both(&origin, n, Some(a.clone())).await;
        }
        origin.clone().set_init(0, Some(b.clone())).await;
        feed_both(&origin, 103, Some(a)).await;
        for n in 104..end {
            feed_both(&origin, n, Some(b.clone())).await;
        }
        origin
    }

    pub fn hex(bytes: &[u8]) -> String {
        format!("{:016x}", fnv1a(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::PackagedFragment;
    use bytes::Bytes;
    use twincast_media::TrackInfo;

    fn frag(n: u64) -> PackagedFragment {
        PackagedFragment {
            sequence: n,
            base_dts: n * 90_000,
            duration: 90_000,
            sample_count: 30,
            filler: false,
            bytes: Bytes::from(vec![n as u8; 100]),
            media_bytes: 100,
            samples: Arc::new(Vec::new()),
            init: None,
        }
    }

    fn video_init() -> InitSegment {
        InitSegment {
            info: TrackInfo {
                id: 1,
                name: "v".into(),
                timescale: 90_000,
                codec: Codec::H264 {
                    avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
                    width: 640,
                    height: 360,
                },
                bitrate: 400_000,
            },
            bytes: Bytes::from_static(b"init"),
        }
    }

    #[tokio::test]
    async fn playlists_gap_over_a_hole_and_disk_reloads_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(["v".to_string()]);
        let mut settings = OriginSettings::new(1, 600_000_000_000, (30, 1), 1_000_000_000);
        settings.dvr_dir = Some(dir.path().to_path_buf());
        settings.dvr_max_bytes = 1 << 20;
        settings.ram_ns = 2_000_000_000;
        let origin = Origin::new(settings.clone(), &hub);
        origin
            .clone()
            .set_init(0, Some(Arc::new(video_init())))
            .await;
        for n in (100..105).chain(107..110) {
            origin.clone().feed(0, &frag(n)).await;
        }
        let text = origin.media_playlist("v").unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:100\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-GAP").count(), 2, "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        let stats = origin.stats();
        assert_eq!(stats.tracks[0].segments, 8);
        assert_eq!(stats.disk_files, 8);
        assert!(stats.tracks[0].ram_segments <= 4, "{stats:?}");
        // Old segments are served from disk.
        let (_, old) = origin.segment("v", 100 * 90_000).unwrap();
        assert!(old.ram.is_none());
        assert_eq!(origin.read_from_disk(0, &old).await.unwrap().len(), 100);
        let mpd = origin.mpd(Some("127.0.0.1:8080"), false).unwrap();
        assert!(
            mpd.contains("value=\"http://127.0.0.1:8080/time\""),
            "{mpd}"
        );
        assert!(
            origin
                .mpd(Some("evil\"/><x"), false)
                .unwrap()
                .contains("value=\"/time\"")
        );
        assert!(
            mpd.contains("<S t=\"9000000\" d=\"90000\" r=\"4\"/>"),
            "{mpd}"
        );
        // The `$Number$` form: index n is the segment that starts at n·1 s.
        let number = origin.mpd(None, true).unwrap();
        assert!(
            number.contains("duration=\"90000\" startNumber=\"0\"") && !number.contains("<S "),
            "{number}"
        );
        let (_, by_index) = origin.segment_by_index("v", 103).unwrap();
        assert_eq!(by_index.start, 103 * 90_000);
        assert!(
            origin.segment_by_index("v", 105).is_none(),
            "a hole is a 404"
        );

        // Restart: a new origin on the same directory lists the old segments, then live ones
        // after a discontinuity.
        let origin = Origin::new(settings, &hub);
        origin
            .clone()
            .set_init(0, Some(Arc::new(video_init())))
            .await;
        for n in 120..122 {
            origin.clone().feed(0, &frag(n)).await;
        }
        let text = origin.media_playlist("v").unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:100\n"), "{text}");
        assert!(
            text.contains("\n10800000.m4s\n") && text.contains("\n9000000.m4s\n"),
            "{text}"
        );
        assert_eq!(origin.stats().tracks[0].segments, 10);
    }

    /// What the origin wrote before init segment versions existed (same fixture).
    const BEFORE_TIMELINE: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="PT600S" suggestedPresentationDelay="PT3S" minBufferTime="PT1S" maxSegmentDuration="PT1.100S">
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
    const BEFORE_NUMBER: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="PT600S" suggestedPresentationDelay="PT3S" minBufferTime="PT1S" maxSegmentDuration="PT1.100S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" frameRate="30">
      <Representation id="v" bandwidth="840" codecs="avc1.64001f" width="640" height="360" sar="1:1">
        <SegmentTemplate timescale="90000" duration="90000" startNumber="0" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/n$Number$.m4s"/>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">
      <Representation id="audio" bandwidth="855" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="90000" duration="90000" startNumber="0" presentationTimeOffset="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/n$Number$.m4s"/>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="http://h:1/time"/>
</MPD>
"##;
    const BEFORE_PLAYLIST: &str = r##"#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:40.000Z
#EXTINF:1.00000,
9000000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:41.000Z
#EXTINF:1.00000,
9090000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:42.000Z
#EXTINF:1.00000,
9180000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:43.000Z
#EXTINF:1.00000,
9270000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:44.000Z
#EXTINF:1.00000,
#EXT-X-GAP
9360000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:45.000Z
#EXTINF:1.00000,
#EXT-X-GAP
9450000.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:46.000Z
#EXTINF:1.00000,
9540000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:47.000Z
#EXTINF:1.00000,
9630000.m4s
"##;

    fn with_publish_time(text: &str) -> String {
        text.replace(
            "publishTime=\"\"",
            "publishTime=\"1970-01-01T00:00:00.000Z\"",
        )
    }

    #[tokio::test]
    async fn a_single_version_renders_as_before() {
        use fixtures::*;
        let origin = origin(600).await;
        for n in (100..104).chain(106..108) {
            feed_both(&origin, n, None).await;
        }
        assert_eq!(
            origin.mpd_at(Some("h:1"), false, 0).unwrap(),
            with_publish_time(BEFORE_TIMELINE)
        );
        assert_eq!(
            origin.mpd_at(Some("h:1"), true, 0).unwrap(),
            with_publish_time(BEFORE_NUMBER)
        );
        assert_eq!(origin.media_playlist("v").unwrap(), BEFORE_PLAYLIST);
        let segments: Vec<u64> = origin.tracks[0]
            .window
            .read()
            .unwrap()
            .segments()
            .map(|s| s.init_id)
            .collect();
        assert_eq!(
            segments,
            vec![fnv1a(b"init"); 6],
            "the window assigns init ids"
        );
    }

    #[tokio::test]
    async fn a_new_init_segment_is_a_discontinuity_with_its_own_map() {
        use fixtures::*;
        let origin = changed_origin(600, 107).await;
        let (a, b) = (hex(b"init"), hex(b"init-b"));
        let ids: Vec<(u64, u64)> = origin.tracks[0]
            .window
            .read()
            .unwrap()
            .segments()
            .map(|s| (s.index, s.init_id))
            .collect();
        let (ia, ib) = (fnv1a(b"init"), fnv1a(b"init-b"));
        assert_eq!(
            ids,
            vec![
                (100, ia),
                (101, ia),
                (102, ia),
                (103, ia),
                (104, ib),
                (105, ib),
                (106, ib)
            ]
        );
        let text = origin.media_playlist("v").unwrap();
        let want = format!(
            "#EXT-X-MAP:URI=\"init-{a}.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:40.000Z\n"
        );
        assert!(text.contains(&want), "{text}");
        let want = format!(
            "9270000.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"init-{b}.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:44.000Z\n\
             #EXTINF:1.00000,\n\
             9360000.m4s\n"
        );
        assert!(text.contains(&want), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2, "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert!(!text.contains("init.mp4"), "{text}");
        // The audio never changed: as before.
        let audio = origin.media_playlist("audio").unwrap();
        assert!(
            audio.contains("#EXT-X-MAP:URI=\"init.mp4\"") && !audio.contains("DISCONTINUITY"),
            "{audio}"
        );
        // Both versions are held, the current one is B.
        assert_eq!(origin.init_version("v", ia).unwrap().bytes, &b"init"[..]);
        assert_eq!(origin.init_version("v", ib).unwrap().bytes, &b"init-b"[..]);
        let (current, changed) = origin.init_segment("v").unwrap();
        assert!(changed && current.bytes == b"init-b"[..]);
        assert!(!origin.init_segment("audio").unwrap().1);
    }

    #[tokio::test]
    async fn a_new_init_segment_starts_a_dash_period() {
        use fixtures::*;
        let origin = changed_origin(600, 107).await;
        let (a, b) = (hex(b"init"), hex(b"init-b"));
        let text = origin.mpd_at(None, false, 0).unwrap();
        let periods: Vec<&str> = text.split("<Period ").skip(1).collect();
        assert_eq!(periods.len(), 2, "{text}");
        let (first, second) = (periods[0], periods[1]);
        assert!(first.starts_with("id=\"0\" start=\"PT0S\">"), "{text}");
        assert!(
            first.contains(&format!(
                "width=\"640\" height=\"360\" sar=\"1:1\">\n        \
                 <SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"0\" \
                 initialization=\"$RepresentationID$/init-{a}.mp4\""
            )) && first.contains("<S t=\"9000000\" d=\"90000\" r=\"3\"/>"),
            "{text}"
        );
        assert!(
            first.contains(
                "<SegmentTemplate timescale=\"48000\" presentationTimeOffset=\"0\" \
                 initialization=\"$RepresentationID$/init.mp4\""
            ) && first.contains(&format!("<S t=\"{}\"", audio_start(100))),
            "{text}"
        );
        assert!(
            second.starts_with("id=\"104000000000\" start=\"PT104S\">"),
            "{text}"
        );
        assert!(
            second.contains(&format!(
                "width=\"1280\" height=\"720\" sar=\"1:1\">\n        \
                 <SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"9360000\" \
                 initialization=\"$RepresentationID$/init-{b}.mp4\""
            )) && second.contains("<S t=\"9360000\" d=\"90000\" r=\"2\"/>"),
            "{text}"
        );
        // Audio segment 104 starts on the first AAC frame at or after 104 s.
        assert!(
            second.contains(
                "<SegmentTemplate timescale=\"48000\" presentationTimeOffset=\"4992000\" \
                 initialization=\"$RepresentationID$/init.mp4\""
            ) && second.contains(&format!("<S t=\"{}\"", audio_start(104))),
            "{text}"
        );
        assert!(!second.contains("t=\"9270000\"") && !first.contains("t=\"9360000\""));

        // The `$Number$` form: number k of Period k is segment k since the epoch.
        let number = origin.mpd_at(None, true, 0).unwrap();
        assert_eq!(number.matches("<Period ").count(), 2, "{number}");
        assert!(
            number.contains(&format!(
                "<SegmentTemplate timescale=\"90000\" duration=\"90000\" startNumber=\"0\" \
                 presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/init-{a}.mp4\""
            )),
            "{number}"
        );
        assert!(
            number.contains(&format!(
                "<SegmentTemplate timescale=\"90000\" duration=\"90000\" startNumber=\"104\" \
                 presentationTimeOffset=\"9360000\" initialization=\"$RepresentationID$/init-{b}.mp4\""
            )),
            "{number}"
        );
        assert_eq!(number.matches("startNumber=\"104\"").count(), 2, "{number}");
    }

    #[tokio::test]
    async fn the_period_stays_when_the_old_version_slides_out() {
        use fixtures::*;
        // 4 s window: after segment 110 only B's segments are left.
        let origin = changed_origin(4, 111).await;
        let text = origin.mpd_at(None, false, 0).unwrap();
        assert_eq!(text.matches("<Period ").count(), 1, "{text}");
        assert!(
            text.contains("<Period id=\"104000000000\" start=\"PT104S\">"),
            "{text}"
        );
        assert!(text.contains(&format!("init-{}.mp4", hex(b"init-b"))));
        // A is no longer referenced: not held; the playlists keep the hashed names.
        assert!(origin.init_version("v", fnv1a(b"init")).is_none());
        let playlist = origin.media_playlist("v").unwrap();
        assert!(
            playlist.contains(&format!("#EXT-X-MAP:URI=\"init-{}.mp4\"", hex(b"init-b")))
                && !playlist.contains("#EXT-X-DISCONTINUITY\n")
                && playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{playlist}"
        );
    }

    #[tokio::test]
    async fn older_versions_are_served_from_disk_and_a_restart_keeps_the_current_one() {
        use fixtures::*;
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::new(["v".to_string()]);
        let mut settings = OriginSettings::new(1, 600_000_000_000, (30, 1), 1_000_000_000);
        settings.dvr_dir = Some(dir.path().to_path_buf());
        settings.dvr_max_bytes = 1 << 20;
        settings.ram_ns = 2_000_000_000;
        let (a, b) = (
            video_init(b"init", 640, 360),
            video_init(b"init-b", 1280, 720),
        );
        let origin = Origin::new(settings.clone(), &hub);
        origin.clone().set_init(0, Some(a.clone())).await;
        for n in 100..104 {
            let f = fixtures::fragment(n, n * 90_000, 90_000, Some(a.clone()));
            origin.clone().feed(0, &f).await;
        }
        origin.clone().set_init(0, Some(b.clone())).await;
        for n in 104..110 {
            let f = fixtures::fragment(n, n * 90_000, 90_000, Some(b.clone()));
            origin.clone().feed(0, &f).await;
        }
        // A's segments left the RAM part: served from disk, with A still held.
        let (_, old) = origin.segment("v", 101 * 90_000).unwrap();
        assert!(old.ram.is_none() && old.init_id == fnv1a(b"init"));
        assert_eq!(origin.read_from_disk(0, &old).await.unwrap().len(), 100);
        assert!(origin.init_version("v", fnv1a(b"init")).is_some());
        assert_eq!(
            std::fs::read(dir.path().join("v/init.mp4")).unwrap(),
            b"init-b"
        );

        // Restart with B: only B's segments come back.
        let origin = Origin::new(settings, &hub);
        origin.clone().set_init(0, Some(b)).await;
        let w = origin.tracks[0].window.read().unwrap();
        let back: Vec<u64> = w.segments().map(|s| s.index).collect();
        assert_eq!(back, (104..110).collect::<Vec<_>>());
        drop(w);
        let text = origin.media_playlist("v").unwrap();
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
        assert_eq!(origin.stats().disk_files, 6);
    }
}
