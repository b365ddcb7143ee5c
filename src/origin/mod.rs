//! Local origin: HLS (and later DASH) over HTTP from the segment window (design §4).
//!
//! URL layout (contract):
//! - `GET /live/master.m3u8`
//! - `GET /live/<track>/index.m3u8`, `GET /live/<track>/init.mp4`, `GET /live/<track>/<t>.m4s`
//!
//! Requests are routed by parsed path components, never by joining a path onto the filesystem.

pub mod window;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use twincast_media::hls::{AudioGroup, MasterPlaylist, MediaPlaylist, SegmentEntry, Variant};
use twincast_media::{Codec, TrackKind, aac, h264};

use crate::hub::{Hub, InitSegment};
use window::TrackWindow;

/// `Cache-Control` of playlists: short, they change every segment.
const PLAYLIST_CACHE: &str = "max-age=1";
/// `Cache-Control` of init segments and media segments: their names never change content.
const SEGMENT_CACHE: &str = "max-age=31536000, immutable";

/// How the origin is set up.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub fragments_per_segment: u32,
    /// DVR window in ns.
    pub window_ns: u64,
    /// Bound on bytes kept per track.
    pub max_bytes_per_track: u64,
    /// Frame rate for FRAME-RATE.
    pub frame_rate: f64,
    /// Nominal segment duration in ns; EXT-X-TARGETDURATION is derived from it once, so it
    /// never changes while the stream is live.
    pub segment_ns: u64,
}

impl OriginSettings {
    fn new_window(&self, timescale: u32) -> TrackWindow {
        let max = (u128::from(self.window_ns) * u128::from(timescale) / 1_000_000_000) as u64;
        TrackWindow::new(
            timescale,
            self.fragments_per_segment,
            max,
            self.max_bytes_per_track,
        )
    }
}

/// One track as the origin sees it.
pub struct OriginTrack {
    pub name: String,
    pub init: RwLock<Option<Arc<InitSegment>>>,
    pub window: RwLock<TrackWindow>,
}

/// Shared state of the origin.
pub struct Origin {
    settings: OriginSettings,
    pub tracks: Vec<OriginTrack>,
}

impl Origin {
    pub fn new(settings: OriginSettings, hub: &Hub) -> Arc<Self> {
        let tracks = hub
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
        Arc::new(Origin { settings, tracks })
    }

    fn track(&self, name: &str) -> Option<&OriginTrack> {
        self.tracks.iter().find(|t| t.name == name)
    }

    /// Number of segments published on the track with the fewest (readiness checks).
    pub fn min_segments(&self) -> usize {
        self.tracks
            .iter()
            .map(|t| t.window.read().map(|w| w.segments().count()).unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    /// Feeds every track's window from the hub until cancelled.
    pub fn spawn_feeders(self: &Arc<Self>, hub: &Arc<Hub>, cancel: CancellationToken) {
        for (i, track) in hub.tracks.iter().enumerate() {
            let mut fragments = track.subscribe();
            let mut init = track.watch_init();
            let origin = self.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        changed = init.changed() => {
                            if changed.is_err() { break; }
                            let new = init.borrow_and_update().clone();
                            origin.set_init(i, new);
                        }
                        received = fragments.recv() => match received {
                            Ok(fragment) => {
                                if let Ok(mut w) = origin.tracks[i].window.write() {
                                    w.push(&fragment);
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                log::warn!(target: "origin", "track {}: origin fell {n} fragments behind; they are not in the window", origin.tracks[i].name);
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                }
            });
        }
    }

    fn set_init(&self, track: usize, init: Option<Arc<InitSegment>>) {
        let Some(t) = self.tracks.get(track) else {
            return;
        };
        if let Some(init) = &init
            && let Ok(mut w) = t.window.write()
            && w.timescale != init.info.timescale
        {
            *w = self.settings.new_window(init.info.timescale);
        }
        if let Ok(mut slot) = t.init.write() {
            *slot = init;
        }
    }

    /// The multivariant playlist, once every track has its init segment.
    pub fn master_playlist(&self) -> Option<String> {
        let mut variants = Vec::new();
        let mut audio = None;
        let mut audio_bw = 0;
        for t in &self.tracks {
            let init = t.init.read().ok()?.clone()?;
            let (peak, avg) = t
                .window
                .read()
                .ok()?
                .bitrates()
                .unwrap_or((u64::from(init.info.bitrate), u64::from(init.info.bitrate)));
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
                    frame_rate: Some(self.settings.frame_rate),
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

    /// The media playlist of one track.
    pub fn media_playlist(&self, name: &str) -> Option<String> {
        let t = self.track(name)?;
        let init = t.init.read().ok()?.clone()?;
        let w = t.window.read().ok()?;
        let ts = u128::from(w.timescale);
        let segments: Vec<SegmentEntry> = w
            .segments()
            .map(|s| SegmentEntry {
                uri: format!("{}.m4s", s.start),
                start_ns: (u128::from(s.start) * 1_000_000_000 / ts) as u64,
                duration_secs: s.duration as f64 / ts as f64,
                discontinuity: s.discontinuity,
                gap: false,
            })
            .collect();
        let media_sequence = w.segments().next().map(|s| s.index).unwrap_or(0);
        let playlist = MediaPlaylist {
            media_sequence,
            independent_segments: init.info.kind() == TrackKind::Video,
            map_uri: "init.mp4".to_string(),
            target_duration: Some(self.settings.segment_ns.div_ceil(1_000_000_000)),
            segments,
            ..Default::default()
        };
        Some(playlist.render())
    }
}

fn with_headers(body: Bytes, content_type: &'static str, cache: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    (StatusCode::OK, headers, body).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not in the window\n").into_response()
}

async fn master(State(origin): State<Arc<Origin>>) -> Response {
    match origin.master_playlist() {
        Some(text) => with_headers(
            Bytes::from(text),
            "application/vnd.apple.mpegurl",
            PLAYLIST_CACHE,
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the encoder has not produced its first fragments yet\n",
        )
            .into_response(),
    }
}

async fn track_file(
    State(origin): State<Arc<Origin>>,
    Path((track, file)): Path<(String, String)>,
) -> Response {
    let Some(t) = origin.track(&track) else {
        return not_found();
    };
    let audio = track == "audio";
    let mp4_type = if audio { "audio/mp4" } else { "video/mp4" };
    match file.as_str() {
        "index.m3u8" => match origin.media_playlist(&track) {
            Some(text) => with_headers(
                Bytes::from(text),
                "application/vnd.apple.mpegurl",
                PLAYLIST_CACHE,
            ),
            None => not_found(),
        },
        "init.mp4" => match t.init.read().ok().and_then(|i| i.clone()) {
            Some(init) => with_headers(init.bytes.clone(), mp4_type, SEGMENT_CACHE),
            None => not_found(),
        },
        other => {
            let Some(start) = other
                .strip_suffix(".m4s")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return not_found();
            };
            let segment = t.window.read().ok().and_then(|w| w.by_start(start));
            match segment {
                Some(s) => with_headers(s.bytes.clone(), mp4_type, SEGMENT_CACHE),
                None => not_found(),
            }
        }
    }
}

/// The origin's routes.
pub fn router(origin: Arc<Origin>) -> Router {
    Router::new()
        .route("/live/master.m3u8", get(master))
        .route("/live/{track}/{file}", get(track_file))
        .with_state(origin)
}

/// Binds the listener (errors here are start-up errors) and serves until cancelled.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    origin: Arc<Origin>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(origin))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
