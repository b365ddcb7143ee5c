//! Local origin: HLS and DASH over HTTP from one set of segments, with a DVR window in RAM and on
//! disk (design §4).
//!
//! URL layout (contract):
//! - `GET /live/master.m3u8`, `GET /live/<track>/index.m3u8`
//! - `GET /live/<track>/init.mp4`, `GET /live/<track>/<t>.m4s` (`<t>`: start in the track timescale)
//! - `GET /live/manifest.mpd` (DASH over the same files), `GET /time` (the clock for UTCTiming)
//! - `GET /` (preview page with the embedded hls.js), `GET /dash.html`, `GET /assets/<file>`
//!
//! Code map: `window.rs` groups fragments into segments and bounds the window; `dvr.rs` is the
//! disk tier; `http.rs` answers one request (routing by parsed path, conditional and range
//! requests); `server.rs` accepts connections (allow-list, connection limit, header size and
//! read timeout); `assets.rs` holds the embedded page and players.
//!
//! Architecture Invariant: requests are routed by parsed path components, never by joining a
//! request path onto the filesystem.

pub mod assets;
pub mod dvr;
pub mod http;
pub mod server;
pub mod window;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use twincast_media::dash::{Addressing, Mpd, Representation, RepresentationKind, timeline_runs};
use twincast_media::hls::{AudioGroup, MasterPlaylist, MediaPlaylist, SegmentEntry, Variant};
use twincast_media::timeline::{Grid, segment_fragments_for_gop};
use twincast_media::{Codec, TrackKind, aac, h264};

use crate::config::AllowEntry;
use crate::hub::{Hub, InitSegment};
use dvr::DiskStore;
use window::{Segment, TrackWindow, is_discontinuous};

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

/// One track as the origin sees it.
pub struct OriginTrack {
    pub name: String,
    pub init: RwLock<Option<Arc<InitSegment>>>,
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
                    init: RwLock::new(None),
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
        let outcome = match t.window.write() {
            Ok(mut w) => w.push(fragment),
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
        if let Ok(mut w) = t.window.write() {
            w.trim_ram();
        }
    }

    /// A track's init segment (first, or changed): a new timescale or codec configuration
    /// starts a new window, which is seeded from the disk tier.
    pub async fn set_init(self: Arc<Self>, track: usize, init: Option<Arc<InitSegment>>) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        let previous = t.init.read().ok().and_then(|i| i.clone());
        let changed = match (&previous, &init) {
            (Some(p), Some(n)) => p.bytes != n.bytes,
            (None, Some(_)) => true,
            _ => false,
        };
        if let Some(new) = &init
            && changed
        {
            let timescale = new.info.timescale;
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
            if let Ok(mut w) = t.window.write() {
                *w = fresh;
            }
        }
        if let Ok(mut slot) = t.init.write() {
            *slot = init;
        }
    }

    fn init_of(&self, track: usize) -> Option<Arc<InitSegment>> {
        self.tracks.get(track)?.init.read().ok()?.clone()
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
    /// number of every segment is its index from the epoch.
    pub fn media_playlist(&self, name: &str) -> Option<String> {
        let i = self.track_index(name)?;
        let init = self.init_of(i)?;
        let w = self.tracks[i].window.read().ok()?;
        let ts = u128::from(w.timescale.max(1));
        let to_ns = |t: u64| (u128::from(t) * 1_000_000_000 / ts) as u64;
        let seg_ns = self.settings.segment_ns.max(1);
        let mut entries = Vec::with_capacity(w.len());
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
        let playlist = MediaPlaylist {
            media_sequence,
            // Absent means 0 (RFC 8216bis §4.4.3.3); written once a discontinuity slid out.
            discontinuity_sequence: (w.discontinuity_sequence > 0)
                .then_some(w.discontinuity_sequence),
            independent_segments: init.info.kind() == TrackKind::Video,
            map_uri: "init.mp4".to_string(),
            target_duration: Some(self.settings.segment_ns.div_ceil(1_000_000_000)),
            segments: entries,
            ..Default::default()
        };
        Some(playlist.render())
    }

    /// The DASH MPD over the same files, once every track has its init segment. `host` (the
    /// request's Host header) makes the UTCTiming URL absolute: some clients (GStreamer's
    /// dashdemux) do not resolve a relative one. `number`: the `$Number$` form
    /// (`twincast_media::dash::Addressing::Number`) instead of the SegmentTimeline.
    pub fn mpd(&self, host: Option<&str>, number: bool) -> Option<String> {
        let mut representations = Vec::new();
        for (i, t) in self.tracks.iter().enumerate() {
            let init = self.init_of(i)?;
            let (peak, _) = self.bitrates(t, &init);
            let w = t.window.read().ok()?;
            let timeline = timeline_runs(w.segments().map(|s| (s.start, s.duration)));
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
                bandwidth: peak,
                codecs,
                kind,
                timescale: w.timescale,
                timeline,
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
                publish_time_ns: now_ns(),
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
                representations,
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

    pub fn init_segment(&self, name: &str) -> Option<Arc<InitSegment>> {
        self.init_of(self.track_index(name)?)
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
}
