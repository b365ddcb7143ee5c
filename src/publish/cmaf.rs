//! The CMAF ingest driver (DASH-IF Live Media Ingest v1.2, Interface-1): per track one
//! connection; on it the CMAF header, then one CMAF segment (here: one fragment) per request,
//! each acknowledged by a 2xx before the next.
//!
//! Paths: [`object_path`] maps (profile, base URL, track, header or segment, `mfhd` number) to
//! the request path, one rule per receiver (`output.profile`, docs/guide/publishing.md has a
//! table per receiver with the pages the rules come from). `generic` sends every object of
//! track `T` to `<url>/Streams(T)` (the `Streams(<track>)` form the specification and Smooth
//! ingest share), so one receiver URL serves both protocols; the receiver tells the header
//! (`ftyp`) from segments (`styp`). The method is `output.method` (POST by default, or PUT).
//! Segments keep the hub's bytes: `styp`, `prft`, `moof` (with `mfhd` = the epoch fragment
//! number modulo 2^32, +1 per fragment), `mdat`; the last one sent at shutdown carries the
//! `lmsg` brand.
//!
//! Codec parameters: the CMAF header sent first is the init segment of the first segment
//! (re)sent. When a later segment was written against another init segment (a rebuilt
//! encoder brings a new SPS), its CMAF header goes to the same header URL first, exactly like
//! at session start, then the segment (counted and logged once).
//!
//! Responses: 2xx acknowledges; 403 means "not allowed" (backs off and shows in status);
//! anything else, a timeout or a closed connection makes the session retry. Only
//! unacknowledged segments are sent again.
//!
//! Stalls: a receiver whose kernel takes a segment but whose application stops reading
//! never answers. Each 2xx, and the peer reading what we sent while the request is still
//! on its way (TCP evidence, `tcp.rs`), is progress; a request whose answer has not come once the last progress is the stall limit
//! (2× the fragment duration) old resets the connection, so a stall is called within the
//! limit of when it began, not of when the next segment went out (up to one fragment
//! later). The answer gets at least half the limit after the request went out all the
//! same (a segment after a gap in the stream). A 2xx is clean evidence; TCP readings are
//! not (media/src/stall.rs), so only CMAF counts the limit from the last progress.

use std::sync::Arc;
use std::time::Instant;

use super::http::{self, Body, HttpUrl, Response};
use super::net::{self, BoxStream, NetError};
use super::tcp::{SAMPLE_EVERY, Watch};
use super::{Carry, CmafSpec, PublishError, SHUTDOWN_GRACE, Task, Unit, init_of, same_init};
use crate::config::{CmafProfile, HttpMethod};
use crate::hub::{InitSegment, PackagedFragment};
use crate::status::DestState;
use twincast_media::mp4::{FragmentBrands, event_track};
use twincast_media::stall::Verdict;

/// Shortest time we wait for an answer.
const MIN_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a request carries: the track's CMAF header, or the segment whose `moof` has this
/// `mfhd` sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Header,
    Segment { mfhd: u32 },
}

/// Video or audio: the CMAF file extension (`.cmfv`, `.cmfa`, ISO/IEC 23000-19) and the
/// Elemental Inference stream name depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    /// The timed-metadata track of SCTE-35 events (`event_track`).
    Metadata,
}

impl TrackKind {
    fn of(track: &str) -> TrackKind {
        if track == super::AUDIO {
            TrackKind::Audio
        } else if track == super::EVENT_TRACK {
            TrackKind::Metadata
        } else {
            TrackKind::Video
        }
    }

    fn extension(self) -> &'static str {
        match self {
            TrackKind::Video => "cmfv",
            TrackKind::Audio => "cmfa",
            TrackKind::Metadata => "cmfm",
        }
    }

    fn word(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Metadata => "metadata",
        }
    }
}

/// The request path (and query) of `object` of `track` under `base`, the configured URL's
/// path and query (`/in/ch.isml?token=x`): the profile's part goes after the path, before
/// the query. The rules, per receiver, with their sources: docs/guide/publishing.md.
pub fn object_path(
    profile: CmafProfile,
    base: &str,
    track: &str,
    kind: TrackKind,
    object: Object,
) -> String {
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let path = path.trim_end_matches('/');
    let ext = kind.extension();
    let sub = match (profile, object) {
        (CmafProfile::Generic, _) => format!("/Streams({track})"),
        (CmafProfile::MediapackageV2 | CmafProfile::Unified, _) => {
            format!("/Streams({track}.{ext})")
        }
        (CmafProfile::AkamaiMsl5, Object::Header) => format!("/{track}-init.mp4"),
        (CmafProfile::AkamaiMsl5, Object::Segment { mfhd }) => format!("/{track}-{mfhd}.m4s"),
        (CmafProfile::ElementalInference, Object::Header) => {
            format!(
                "/Streams(default-{}.{ext})/InitializationSegment",
                kind.word()
            )
        }
        (CmafProfile::ElementalInference, Object::Segment { mfhd }) => {
            format!("/Streams(default-{}.{ext})/Segment({mfhd})", kind.word())
        }
    };
    match query {
        Some(q) => format!("{path}{sub}?{q}"),
        None => format!("{path}{sub}"),
    }
}

/// The `mfhd` sequence number the packager wrote for fragment `f` (src/package.rs: the epoch
/// fragment number, modulo 2^32).
fn mfhd_of(f: &PackagedFragment) -> u32 {
    (f.sequence & u64::from(u32::MAX)) as u32
}

/// One session, in the order of the protocol (docs/design/publish.md, *Resend after a
/// reconnect*): wait for the init segment, send the CMAF header of the first segment
/// (re)sent, then every segment as it comes, each acknowledged by its 2xx, and on a clean
/// stop the rest with `lmsg` on the last.
pub async fn run_once(task: &Task, spec: &CmafSpec, carry: &mut Carry) -> Result<(), PublishError> {
    let url = HttpUrl::parse(&task.spec.url).map_err(PublishError::Url)?;
    let Some(current) = task.wait_init(task.spec.source_track()).await else {
        return Ok(());
    };
    // Paths are whole (base path + profile part + query): the connection's URL has none.
    let server = HttpUrl {
        path: String::new(),
        ..url.clone()
    };
    let mut s = Session::new(task, spec, &server, &url.path, current);
    let header_path = s.paths.of(Object::Header);
    let header = match &s.events {
        Some(e) => e.header.clone(),
        None => s.header.bytes.to_vec(),
    };
    s.conn
        .send(&header_path, &header, "the CMAF header")
        .await?;
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);
    s.send_loop(carry).await?;
    s.teardown(carry).await;
    Ok(())
}

/// What [`object_path`] needs besides the object: fixed for one task.
struct Paths {
    profile: CmafProfile,
    base: String,
    track: twincast_media::TrackId,
    kind: TrackKind,
}

impl Paths {
    fn of(&self, object: Object) -> String {
        object_path(self.profile, &self.base, &self.track, self.kind, object)
    }
}

/// One session: the connection and the init segment whose CMAF header it last sent.
struct Session<'a> {
    conn: Conn<'a>,
    header: Arc<InitSegment>,
    paths: Paths,
    /// The timed-metadata track this session sends instead of its fragments, if it is one.
    events: Option<EventTrack>,
}

/// A timed-metadata track (`event_track`, docs/design/signals.md, *CMAF*): its CMAF header,
/// and per fragment of the video rendition it follows, a segment over the same span with the
/// fragment's SCTE-35 `emsg`s as `emib` samples (`emeb` where nothing happens). A function of
/// the fragment alone, so a resent segment and the other box's are the same bytes.
struct EventTrack {
    track_id: u32,
    header: Vec<u8>,
}

impl EventTrack {
    /// After every media track of the hub: ids are the hub's track index + 1.
    fn new(task: &Task) -> EventTrack {
        let track_id = super::event_track_id(&task.hub);
        EventTrack {
            track_id,
            header: event_track::write_event_track_init(track_id),
        }
    }

    /// The segment of the video fragment `f`.
    fn segment(&self, f: &PackagedFragment) -> Vec<u8> {
        use twincast_media::{MediaTime, Rounding, Timescale};
        let clock = Timescale::new(event_track::TIMED_METADATA_TIMESCALE);
        let in_clock = |ticks: u64| match clock {
            Some(c) => MediaTime::new(ticks, f.timescale)
                .rescale(c, Rounding::Floor)
                .ticks(),
            None => ticks,
        };
        let events = twincast_media::mp4::emsg::read_emsgs(&f.bytes);
        event_track::write_event_segment(
            self.track_id,
            &event_track::EventSegment {
                sequence: mfhd_of(f),
                start: in_clock(f.base_dts),
                duration: in_clock(f.base_dts + f.duration) - in_clock(f.base_dts),
                events: &events,
                brands: if f.filler {
                    FragmentBrands::Filler
                } else {
                    FragmentBrands::Normal
                },
            },
        )
    }
}

impl<'a> Session<'a> {
    /// The session of `task` on `server` (whose path is empty; `base` is the URL's path),
    /// its header that of the first segment (re)sent.
    fn new(
        task: &'a Task,
        spec: &CmafSpec,
        server: &'a HttpUrl,
        base: &str,
        current: Arc<InitSegment>,
    ) -> Session<'a> {
        let method = match spec.method {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        };
        let wait = task.spec.stall.max(MIN_ANSWER_WAIT);
        let conn = Conn {
            url: server,
            method,
            task,
            stream: None,
            wait,
            last_progress: Instant::now(),
        };
        let paths = Paths {
            profile: spec.profile,
            base: base.to_string(),
            track: task.spec.track.clone(),
            kind: TrackKind::of(&task.spec.track),
        };
        // The header is that of the first segment (re)sent.
        let first = task.rewind_to_first_init(current);
        Session {
            conn,
            header: first,
            paths,
            events: spec.events_of.as_ref().map(|_| EventTrack::new(task)),
        }
    }

    /// What goes out for fragment `f`: its own bytes, or the event track's segment.
    fn body<'f>(&self, f: &'f PackagedFragment) -> std::borrow::Cow<'f, [u8]> {
        match &self.events {
            Some(e) => std::borrow::Cow::Owned(e.segment(f)),
            None => std::borrow::Cow::Borrowed(&f.bytes[..]),
        }
    }

    /// Sends every segment as it comes, each acknowledged by its 2xx; returns `Ok` only once
    /// the task is cancelled.
    async fn send_loop(&mut self, carry: &mut Carry) -> Result<(), PublishError> {
        let task = self.conn.task;
        loop {
            if let Some((id, unit)) = task.next_unsent() {
                let Some(f) = &unit.main else {
                    task.mark_acknowledged(id, 0);
                    continue;
                };
                let body = self.body(f).into_owned();
                self.segment(f, &body, "a segment").await?;
                task.mark_acknowledged(id, body.len() as u64);
                carry.last_sent = Some(unit.clone());
                continue;
            }
            tokio::select! {
                biased;
                _ = task.cancel.cancelled() => return Ok(()),
                _ = task.wait_unit() => {}
            }
        }
    }

    /// Shutdown: the rest, the last one with `lmsg` (or the last acknowledged one again).
    async fn teardown(&mut self, carry: &mut Carry) {
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = tokio::time::timeout_at(grace, self.drain_with_lmsg(carry)).await;
    }

    async fn drain_with_lmsg(&mut self, carry: &mut Carry) {
        let task = self.conn.task;
        // Send one behind, so that the very last segment goes out with `lmsg`.
        let mut held: Option<Arc<Unit>> = None;
        while let Some((id, unit)) = task.next_unsent() {
            if let Some(f) = held.take().and_then(|u| u.main.clone()) {
                let body = self.body(&f).into_owned();
                if self.segment(&f, &body, "a segment").await.is_err() {
                    return;
                }
            }
            {
                let mut b = task.shared.lock();
                b.mark_sent(id);
                b.mark_delivered(id);
            }
            held = Some(unit);
        }
        let last = held.or_else(|| carry.last_sent.clone());
        if let Some(f) = last.and_then(|u| u.main.clone()) {
            let last = with_lmsg(&self.body(&f));
            let _ = self.segment(&f, &last, "the last segment").await;
        }
    }

    /// Sends segment `body` of fragment `f`, first the CMAF header of `f`'s init segment when
    /// that is not the one this session last sent (new codec parameters mid-session).
    async fn segment(
        &mut self,
        f: &PackagedFragment,
        body: &[u8],
        what: &'static str,
    ) -> Result<(), PublishError> {
        let init = init_of(f, &self.header);
        // An event track's header never changes with the video's codec parameters.
        if self.events.is_none() && !same_init(&init, &self.header) {
            let header_path = self.paths.of(Object::Header);
            self.conn
                .send(&header_path, &init.bytes, "the CMAF header")
                .await?;
            self.header = init;
            let task = self.conn.task;
            task.note_header_switch(&task.spec.track, f.sequence, "new CMAF header sent");
        }
        let path = self.paths.of(Object::Segment { mfhd: mfhd_of(f) });
        self.conn.send(&path, body, what).await
    }
}

/// One keep-alive connection, re-opened when the server closes it.
struct Conn<'a> {
    /// The server (scheme, host, port, credentials); its path is empty.
    url: &'a HttpUrl,
    method: &'static str,
    task: &'a Task,
    /// The kept-alive connection and the TCP evidence on it.
    stream: Option<(BoxStream, Watch)>,
    /// Longest wait for one read of an answer.
    wait: std::time::Duration,
    /// When the receiver last showed progress (a 2xx, or reading what we sent).
    last_progress: Instant,
}

impl Conn<'_> {
    async fn send(
        &mut self,
        path: &str,
        body: &[u8],
        what: &'static str,
    ) -> Result<(), PublishError> {
        let reused = self.stream.is_some();
        match self.send_once(path, body, what).await {
            // A kept-alive connection the server closed while idle: once more on a new one.
            Err(PublishError::Net(NetError::Closed | NetError::Write(_))) if reused => {
                self.stream = None;
                self.send_once(path, body, what).await
            }
            other => other,
        }
    }

    async fn send_once(
        &mut self,
        path: &str,
        body: &[u8],
        what: &'static str,
    ) -> Result<(), PublishError> {
        let stall = self.task.spec.stall;
        let (mut stream, mut watch) = match self.stream.take() {
            Some(c) => c,
            None => {
                let c = net::connect_watched(&self.url.host, self.url.port, self.url.tls, stall)
                    .await?;
                self.last_progress = Instant::now();
                c
            }
        };
        let head = self.url.request_head(
            self.method,
            path,
            Body::Length(body.len()),
            self.task.spec.key.as_deref(),
        );
        let mut req = Vec::with_capacity(head.len() + body.len());
        req.extend_from_slice(head.as_bytes());
        req.extend_from_slice(body);
        // Segments are acknowledged by their 2xx, not by TCP: the delivered ids are unused.
        let mut done = Vec::new();
        net::write_all_watched(&mut stream, &req, &mut watch, &mut done).await?;
        let resp = self.answer(&mut stream, &mut watch).await?;
        self.last_progress = Instant::now();
        // The receiver answered, so it read the request: the TCP witness learns that all
        // of it is read now (else its first reading in a later wait would count every byte
        // of this connection as fresh progress).
        let _ = watch.check();
        if !(200..300).contains(&resp.status) {
            return Err(PublishError::Http {
                status: resp.status,
                what,
            });
        }
        if !resp.close {
            self.stream = Some((stream, watch));
        }
        Ok(())
    }

    /// The answer to the request just written, or a stall: no answer while the last
    /// progress is the stall limit old (and the request went out at least half that ago).
    async fn answer(
        &mut self,
        stream: &mut BoxStream,
        watch: &mut Watch,
    ) -> Result<Response, PublishError> {
        let limit = self.task.spec.stall;
        let grace = limit / 2;
        let sent = Instant::now();
        let read = http::read_response(stream, self.wait);
        tokio::pin!(read);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        loop {
            tokio::select! {
                r = &mut read => return Ok(r?),
                _ = tick.tick() => {
                    watch.check()?;
                    // The peer reading counts only while the request is still on its way
                    // (a slow link): once its TCP has it all, only the answer does, since a
                    // receiver's kernel takes a segment whether its application reads or
                    // not, often without the window showing it (media/src/stall.rs).
                    if watch.last_verdict == Some(Verdict::Flowing) && watch.last_owed > 0 {
                        self.last_progress = Instant::now();
                    }
                    if self.last_progress.elapsed() >= limit && sent.elapsed() >= grace {
                        return Err(NetError::Stalled(limit).into());
                    }
                }
            }
        }
    }
}

/// The segment with `lmsg` added to its `styp` compatible brands.
pub fn with_lmsg(segment: &[u8]) -> Vec<u8> {
    let size = segment
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if segment.get(4..8) != Some(b"styp") || size < 8 || size > segment.len() {
        return segment.to_vec();
    }
    let mut out = Vec::with_capacity(segment.len() + 4);
    let new_size = u32::try_from(size + 4).unwrap_or(u32::MAX);
    out.extend_from_slice(&new_size.to_be_bytes());
    out.extend_from_slice(&segment[4..size]);
    out.extend_from_slice(b"lmsg");
    out.extend_from_slice(&segment[size..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_per_profile() {
        use CmafProfile::*;
        use Object::{Header, Segment};
        use TrackKind::{Audio, Video};
        let seg = Segment { mfhd: 881_500_007 };
        #[rustfmt::skip]
        let cases: &[(CmafProfile, &str, &str, TrackKind, Object, &str)] = &[
            (Generic, "/in", "720p", Video, Header, "/in/Streams(720p)"),
            (Generic, "/in", "720p", Video, seg, "/in/Streams(720p)"),
            (Generic, "", "audio", Audio, seg, "/Streams(audio)"),
            (Generic, "/in?token=x", "720p", Video, seg, "/in/Streams(720p)?token=x"),
            (MediapackageV2, "/in/v1/g/1/ch", "720p", Video, Header, "/in/v1/g/1/ch/Streams(720p.cmfv)"),
            (MediapackageV2, "/in/v1/g/1/ch/", "720p", Video, seg, "/in/v1/g/1/ch/Streams(720p.cmfv)"),
            (MediapackageV2, "/in/v1/g/1/ch", "audio", Audio, seg, "/in/v1/g/1/ch/Streams(audio.cmfa)"),
            (Unified, "/live/ch1/ch1.isml", "720p", Video, Header, "/live/ch1/ch1.isml/Streams(720p.cmfv)"),
            (Unified, "/live/ch1/ch1.isml", "audio", Audio, seg, "/live/ch1/ch1.isml/Streams(audio.cmfa)"),
            (AkamaiMsl5, "/50002/event1", "720p", Video, Header, "/50002/event1/720p-init.mp4"),
            (AkamaiMsl5, "/50002-b/event1", "720p", Video, seg, "/50002-b/event1/720p-881500007.m4s"),
            (AkamaiMsl5, "/50002/event1", "audio", Audio, Segment { mfhd: 3 }, "/50002/event1/audio-3.m4s"),
            (ElementalInference, "/feed", "180p", Video, Header, "/feed/Streams(default-video.cmfv)/InitializationSegment"),
            (ElementalInference, "/feed", "180p", Video, seg, "/feed/Streams(default-video.cmfv)/Segment(881500007)"),
            (ElementalInference, "/feed", "audio", Audio, Header, "/feed/Streams(default-audio.cmfa)/InitializationSegment"),
            (ElementalInference, "/feed?x=1", "audio", Audio, Segment { mfhd: 0 }, "/feed/Streams(default-audio.cmfa)/Segment(0)?x=1"),
        ];
        for (profile, base, track, kind, object, want) in cases {
            assert_eq!(
                object_path(*profile, base, track, *kind, *object),
                *want,
                "{profile} {base} {track} {object:?}"
            );
        }
        assert_eq!(TrackKind::of("audio"), Audio);
        assert_eq!(TrackKind::of("720p"), Video);
    }

    #[test]
    fn mfhd_is_the_epoch_number_modulo_2_32() {
        use super::super::test_support::fragment;
        assert_eq!(mfhd_of(&fragment(7, 90_000, None)), 7);
        assert_eq!(mfhd_of(&fragment((1 << 32) + 5, 90_000, None)), 5);
    }

    #[test]
    fn lmsg_is_appended_to_styp() {
        let mut seg = vec![
            0, 0, 0, 16, b's', b't', b'y', b'p', b'm', b's', b'd', b'h', 0, 0, 0, 0,
        ];
        seg.extend_from_slice(&[0, 0, 0, 8, b'm', b'o', b'o', b'f']);
        let out = with_lmsg(&seg);
        assert_eq!(&out[..4], &[0, 0, 0, 20]);
        assert_eq!(&out[16..20], b"lmsg");
        assert_eq!(&out[20..], &seg[16..]);
        assert_eq!(with_lmsg(b"junk"), b"junk");
    }
}

#[cfg(test)]
mod cmaf_init_tests {
    use super::super::ProtocolSpec;
    use super::super::test_support::{
        Receiver, cmaf_of, fragment, push, spec, task, unit, video_init,
    };
    use super::*;
    use crate::config::Protocol;
    use std::sync::atomic::Ordering;

    /// Request `refused` is answered 503 once: the first session ends with that error, a
    /// second one runs until the receiver has `complete` whole requests, then shuts down.
    async fn refused_once_then_resent(
        rx: &Receiver,
        task: &Arc<Task>,
        refused: usize,
        complete: usize,
    ) {
        crate::sync::lock(&rx.fail).push(refused);
        let r = run_once(task, &cmaf_of(task), &mut Carry::default()).await;
        assert!(
            matches!(r, Err(PublishError::Http { status: 503, .. })),
            "{r:?}"
        );
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &cmaf_of(&t), &mut Carry::default()).await });
        rx.wait_for("the resend", |r| {
            r.iter().filter(|r| r.complete).count() == complete
        })
        .await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok());
    }

    /// The complete request bodies, headers shown as `init<n>` (n = index in `inits`).
    fn bodies(rx: &Receiver, inits: &[&Arc<InitSegment>]) -> Vec<String> {
        rx.requests()
            .iter()
            .filter(|r| r.complete)
            .map(
                |r| match inits.iter().position(|i| i.bytes[..] == r.body[..]) {
                    Some(n) => format!("init{n}"),
                    None => String::from_utf8_lossy(&r.body).to_string(),
                },
            )
            .collect()
    }

    #[tokio::test]
    async fn new_codec_parameters_send_the_new_header_first() {
        let rx = Receiver::start().await;
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let url = format!("http://127.0.0.1:{}/in", rx.port);
        let task = task(spec(Protocol::Cmaf, &url, "v"), &va);
        for n in 1..=2 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        for n in 3..=4 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&vb))), None));
        }
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &cmaf_of(&t), &mut Carry::default()).await });
        rx.wait_for("6 objects", |r| {
            r.iter().filter(|r| r.complete).count() == 6
        })
        .await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok());
        let b = bodies(&rx, &[&va, &vb]);
        assert_eq!(b[..6], ["init0", "seg1", "seg2", "init1", "seg3", "seg4"]);
        assert_eq!(b[6..], ["seg4"], "the last segment again at shutdown");
        assert!(rx.requests().iter().all(|r| r.path == "/in/Streams(v)"));
        assert_eq!(task.header_switches.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_profile_puts_header_and_segments_at_its_paths() {
        let rx = Receiver::start().await;
        let va = video_init(1, 1280, 3_000_000);
        let url = format!("http://127.0.0.1:{}/feed?t=1", rx.port);
        let mut sp = spec(Protocol::Cmaf, &url, "v");
        if let ProtocolSpec::Cmaf(c) = &mut sp.protocol {
            c.profile = CmafProfile::ElementalInference;
        }
        let task = task(sp, &va);
        for n in 41..=43 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        refused_once_then_resent(&rx, &task, 2, 3 + 3).await; // the second segment
        let paths: Vec<String> = rx.requests().iter().map(|r| r.path.clone()).collect();
        let base = "/feed/Streams(default-video.cmfv)";
        let want: Vec<String> = [
            "/InitializationSegment",
            "/Segment(41)",
            "/Segment(42)", // refused
            "/InitializationSegment",
            "/Segment(42)",
            "/Segment(43)",
            "/Segment(43)", // again at shutdown, with lmsg
        ]
        .iter()
        .map(|p| format!("{base}{p}?t=1"))
        .collect();
        assert_eq!(paths, want);
    }

    #[tokio::test]
    async fn a_resend_that_spans_a_change_starts_with_its_own_header() {
        let rx = Receiver::start().await;
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let url = format!("http://127.0.0.1:{}/in", rx.port);
        // The hub already has the new init; the backlog still starts with the old one.
        let task = task(spec(Protocol::Cmaf, &url, "v"), &vb);
        for n in 1..=2 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        for n in 3..=4 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&vb))), None));
        }
        refused_once_then_resent(&rx, &task, 2, 3 + 5).await; // segment 2
        let b = bodies(&rx, &[&va, &vb]);
        assert_eq!(
            b[..8],
            [
                "init0", "seg1", "seg2", "init0", "seg2", "init1", "seg3", "seg4"
            ]
        );
    }
}
