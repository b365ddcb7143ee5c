//! Local origin: HLS and DASH over HTTP from one set of segments, with a DVR window in RAM and on
//! disk (docs/design/origin.md; the URL contract is docs/ref/origin.md).
//!
//! URL layout (contract):
//! - `GET /live/master.m3u8`, `GET /live/<track>/index.m3u8`
//! - `GET /live/<track>/init.mp4`, `GET /live/<track>/<t>.m4s` (`<t>`: start in the track timescale)
//! - `GET /live/<track>/init-<id>.mp4`: one init segment version (`<id>`: 16 hex digits)
//! - `GET /live/manifest.mpd` (DASH over the same files), `GET /time` (the clock for UTCTiming)
//! - `GET /` (preview page with the embedded hls.js), `GET /dash.html`, `GET /assets/<file>`
//!
//! Code map, in data-path order:
//! - `settings.rs`: [`OriginSettings`], fixed for the origin's life.
//! - `feeder.rs`: the only writer. One task per track moves fragments and init segments from
//!   the hub into the track's window (`window.rs`: fragments → segments, the bounds) and init
//!   versions (`inits.rs`), with the disk tier's blocking work (`dvr.rs`) run through
//!   `disk.rs`; after each change it replaces the [`OriginSnapshot`] whole.
//! - `snapshot.rs`: the immutable snapshot every reader takes (one `Arc` clone, no lock of the
//!   feeder's). Playlists and MPDs are pure functions of it in the media crate
//!   (`twincast_media::playlist`: gap entries, discontinuities, Periods), rendered by
//!   `twincast_media::hls` and `twincast_media::dash`.
//! - `counters.rs`: request counters and the figures of `/status` and `/metrics`.
//! - `http.rs` answers one request from a snapshot (routing by parsed path, conditional and
//!   range requests); `server.rs` accepts connections (allow-list, connection limit, header
//!   size and read timeout); `assets.rs` holds the embedded page and players.
//!
//! Init segment versions: a reload that rebuilds an encoder can change a track's init segment
//! (new codec parameters) while older segments are still in the window. Every segment records
//! its init id; per track the origin holds the versions the window references
//! ([`inits::InitVersions`]). While a track has only ever had one version everything is named
//! `init.mp4`; once it changed, every playlist names each segment's version as
//! `init-<id>.mp4` (immutable), HLS writes EXT-X-DISCONTINUITY and a new EXT-X-MAP where the
//! version changes, and the MPD starts a Period at each change (`twincast_media::playlist`).
//!
//! Architecture Invariant: requests are routed by parsed path components, never by joining a
//! request path onto the filesystem.

pub mod assets;
pub mod counters;
mod disk;
pub mod dvr;
pub mod feeder;
pub mod http;
pub mod inits;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod window;

#[cfg(test)]
mod golden_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::AllowEntry;
use crate::hub::{Hub, InitSegment, PackagedFragment};
use dvr::DiskStore;
use feeder::Feeder;
use window::Segment;

pub use counters::{Counters, OriginStats, TrackStats};
pub use server::{bind, serve};
pub use settings::{DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, OriginSettings};
pub use snapshot::{OriginSnapshot, TrackSnapshot};

/// The origin: its settings, the feeder that owns its state, the disk tier and the counters.
pub struct Origin {
    settings: OriginSettings,
    feeder: Arc<Feeder>,
    disk: Option<Arc<DiskStore>>,
    pub counters: Arc<Counters>,
    /// The box's splice schedule, whose signals the playlists carry (set once at start-up).
    signals: std::sync::OnceLock<Arc<crate::signals::Signals>>,
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
        let tracks: Vec<(twincast_media::TrackId, twincast_media::Timescale)> = hub
            .tracks
            .iter()
            .map(|t| (t.name.clone(), t.timescale))
            .collect();
        let disk = settings.dvr_dir.clone().map(|dir| {
            Arc::new(DiskStore::new(
                dir,
                settings.dvr_max_bytes,
                tracks.iter().map(|(name, _)| name.clone()).collect(),
            ))
        });
        let feeder = Arc::new(Feeder::new(settings.clone(), tracks, disk.clone()));
        Arc::new(Origin {
            settings,
            feeder,
            disk,
            counters: Arc::new(Counters::default()),
            signals: std::sync::OnceLock::new(),
        })
    }

    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    /// What the origin holds now: every reader's view.
    pub fn snapshot(&self) -> Arc<OriginSnapshot> {
        self.feeder.snapshot()
    }

    /// Number of segments published on the track with the fewest (readiness checks).
    pub fn min_segments(&self) -> usize {
        self.snapshot().min_segments()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OriginStats {
        let disk = self.disk.as_ref().map(|d| d.stats());
        OriginStats::of(&self.snapshot(), disk, &self.counters)
    }

    /// Feeds every track's window from the hub until cancelled.
    pub fn spawn_feeders(self: &Arc<Self>, hub: &Arc<Hub>, cancel: CancellationToken) {
        self.feeder.spawn(hub, self.counters.clone(), cancel);
    }

    /// One fragment into a track's window ([`Feeder::feed`]).
    pub async fn feed(self: Arc<Self>, track: usize, fragment: &PackagedFragment) {
        self.feeder.feed(track, fragment).await;
    }

    /// A track's init segment, first or changed ([`Feeder::set_init`]).
    pub async fn set_init(self: Arc<Self>, track: usize, init: Option<Arc<InitSegment>>) {
        self.feeder.set_init(track, init).await;
    }

    /// The multivariant playlist, once every track has its init segment.
    pub fn master_playlist(&self) -> Option<String> {
        self.snapshot().master_playlist()
    }

    /// The media playlist of one track. Holes become EXT-X-GAP entries (one per missing segment
    /// index) and the segment after a hole carries EXT-X-DISCONTINUITY, so the media sequence
    /// number of every segment is its index from the epoch. Where the init segment changes the
    /// segment also carries EXT-X-DISCONTINUITY and its own EXT-X-MAP. Every other track's
    /// discontinuities are this one's too (docs/design/origin.md, *Gaps and discontinuities*).
    pub fn media_playlist(&self, name: &str) -> Option<String> {
        self.snapshot().media_playlist(name, &self.splice_marks())
    }

    /// Gives the origin the splice schedule its playlists mark (docs/design/signals.md).
    pub fn set_signals(&self, signals: Arc<crate::signals::Signals>) {
        let _ = self.signals.set(signals);
    }

    /// The DASH events of every splice on the schedule.
    pub fn splice_events(&self) -> Vec<twincast_media::dash::Event> {
        self.signals
            .get()
            .map(|s| s.dash_events())
            .unwrap_or_default()
    }

    /// The HLS marks of every splice on the schedule.
    pub fn splice_marks(&self) -> Vec<twincast_media::splice::Mark> {
        self.signals.get().map(|s| s.marks()).unwrap_or_default()
    }

    /// The DASH MPD over the same files, once every track has its init segment
    /// ([`OriginSnapshot::mpd`]).
    pub fn mpd(&self, host: Option<&str>, number: bool) -> Option<String> {
        self.mpd_at(host, number, now_ns())
    }

    /// [`Origin::mpd`] with its `publishTime`. Periods start at the segment indices where some
    /// track's init segment changed (all renditions of a ladder rebuild change at the same
    /// one); a stream that never changed has the one Period `PT0S`.
    fn mpd_at(&self, host: Option<&str>, number: bool, publish_time_ns: u64) -> Option<String> {
        self.snapshot()
            .mpd(host, number, publish_time_ns, self.splice_events())
    }

    /// A segment by track name and start time.
    pub fn segment(&self, name: &str, start: u64) -> Option<(usize, Segment)> {
        let snapshot = self.snapshot();
        let (i, s) = snapshot.segment(name, start)?;
        Some((i, s.clone()))
    }

    /// A segment by track name and index from the epoch.
    pub fn segment_by_index(&self, name: &str, index: u64) -> Option<(usize, Segment)> {
        let snapshot = self.snapshot();
        let (i, s) = snapshot.segment_by_index(name, index)?;
        Some((i, s.clone()))
    }

    /// Reads a segment that is only on disk.
    pub async fn read_from_disk(&self, track: usize, s: &Segment) -> Option<bytes::Bytes> {
        let path = self.disk.as_ref()?.path_of(track, s)?;
        match disk::run(move || std::fs::read(path)).await {
            Some(Ok(data)) => Some(bytes::Bytes::from(data)),
            _ => {
                self.counters
                    .disk_read_errors
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A track's current init segment, and whether the track has had more than one.
    pub fn init_segment(&self, name: &str) -> Option<(Arc<InitSegment>, bool)> {
        self.snapshot().init_segment(name)
    }

    /// One init segment version of a track, while it is current or referenced by the window.
    pub fn init_version(&self, name: &str, id: u64) -> Option<Arc<InitSegment>> {
        self.snapshot().init_version(name, id)
    }

    pub fn is_audio(&self, name: &str) -> bool {
        self.snapshot().is_audio(name)
    }

    /// Whether a client may use the origin.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        self.settings.allow.is_empty() || AllowEntry::any_contains(&self.settings.allow, addr.ip())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A two-track origin (video `v`, `audio`) with 1 s segments, for the origin's tests.
    use super::window::fnv1a;
    use super::*;
    use crate::hub::PackagedFragment;
    use bytes::Bytes;
    use twincast_media::Codec;
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
            // The init's timescale; a fragment that names none is a video one.
            timescale: init
                .as_ref()
                .and_then(|i| i.info.clock())
                .unwrap_or(crate::package::VIDEO_CLOCK),
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
        let hub = Hub::for_test(["v", "audio"]);
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
    use super::window::fnv1a;
    use super::*;
    use crate::hub::PackagedFragment;
    use bytes::Bytes;
    use twincast_media::Codec;
    use twincast_media::TrackInfo;

    fn frag(n: u64) -> PackagedFragment {
        PackagedFragment {
            sequence: n,
            base_dts: n * 90_000,
            duration: 90_000,
            timescale: crate::package::VIDEO_CLOCK,
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
        let hub = Hub::for_test(["v"]);
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
        let segments: Vec<u64> = origin.snapshot().tracks[0]
            .segments()
            .iter()
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
        let ids: Vec<(u64, u64)> = origin.snapshot().tracks[0]
            .segments()
            .iter()
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
        // The audio never changed: its one `init.mp4`, and the video's discontinuity at the
        // same segment (104), so both have the same discontinuity sequence numbers (RFC 8216
        // §6.2.4; hls.js never starts the audio past a discontinuity only the video has).
        let audio = origin.media_playlist("audio").unwrap();
        assert!(
            audio.contains(
                "4944896.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:44.000Z\n"
            ) && audio.matches("#EXT-X-DISCONTINUITY\n").count() == 1
                && audio.matches("#EXT-X-MAP").count() == 1
                && audio.contains("#EXT-X-MAP:URI=\"init.mp4\""),
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
        let hub = Hub::for_test(["v"]);
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
        let w = origin.snapshot();
        let back: Vec<u64> = w.tracks[0].segments().iter().map(|s| s.index).collect();
        assert_eq!(back, (104..110).collect::<Vec<_>>());
        drop(w);
        let text = origin.media_playlist("v").unwrap();
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
        assert_eq!(origin.stats().disk_files, 6);
    }
}
