//! The RTMP/RTMPS driver: a small tokio loop around the sans-IO
//! [`twincast_media::rtmp::ClientSession`].
//!
//! One session = one connection = one publish of one rendition, named
//! `<stream>_<rendition>[key]`, carrying that rendition's video and the audio, interleaved by
//! timestamp. Order after every (re)connect: handshake and publish, `onMetaData`, AVC and AAC
//! sequence headers, the last two fragments delivered before the break, the backlog, live.
//!
//! The headers are those of the first unit sent (its fragments' own init segments; the hub's
//! current ones only for a fragment that names none). When a later unit was written against
//! other codec parameters (a rebuilt encoder), a new `onMetaData` (new size and bitrate) and a
//! new AVC sequence header (or AAC sequence header, for the audio) go out in the same publish
//! right before that unit's tags, with its first timestamp: FLV and nginx-rtmp take sequence
//! headers mid-stream.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, WriteHalf};
use tokio::sync::mpsc;
use twincast_media::mp4::emsg;
use twincast_media::rtmp::{ClientSession, Event, RtmpUrl};
use twincast_media::stall::AckWitness;
use twincast_media::{Codec, MediaTime, Sample, Timescale, flv};

use super::net::{self, CONNECT_TIMEOUT, NetError};
use super::tcp::{SAMPLE_EVERY, Watch};
use super::{Carry, PublishError, RtmpSpec, SHUTDOWN_GRACE, Task, Unit, same_init};
use crate::config::RtmpTimestamps;
use crate::hub::{InitSegment, PackagedFragment};
use crate::status::DestState;
use std::sync::Arc;

/// Aborts the reader task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the reader task hands the session: the server's bytes, or why the reading ended.
type ServerBytes = mpsc::Receiver<Result<Vec<u8>, NetError>>;

/// One session, in the order of the protocol (docs/design/publish.md, *Resend after a
/// reconnect*): wait for the init segments, connect, handshake and publish, send the backlog
/// and live units while judging the Acknowledgements, then settle what the server has and, on
/// a clean stop, tear the publish down.
pub async fn run_once(task: &Task, spec: &RtmpSpec, carry: &mut Carry) -> Result<(), PublishError> {
    let url = RtmpUrl::parse(&task.spec.url)?;
    let Some((video, audio)) = wait_inits(task, spec).await else {
        return Ok(());
    };
    let (stream, watch) =
        net::connect_watched(&url.host, url.port, url.tls, task.spec.stall).await?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (mut session, c0c1) =
        ClientSession::new(&url.app, &url.tc_url, &spec.stream_name, fastrand::u64(..));
    net::write_all_progress(&mut wr, &c0c1, CONNECT_TIMEOUT).await?;
    if !handshake(task, &mut session, &mut rd, &mut wr).await? {
        return Ok(());
    }
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);

    // From here on a reader task feeds what the server sends.
    let (_reader, mut rx) = spawn_reader(rd);
    task.rewind();
    let mut publishing = Publishing {
        task,
        spec,
        session,
        video,
        audio,
        wr,
        watch,
        out: Vec::with_capacity(256 * 1024),
        sent: SentHeaders::default(),
        done: Vec::new(),
    };
    // The session; whatever ends it, the TCP evidence then says which units the server has.
    let result = publishing.send_loop(carry, &mut rx).await;
    publishing.settle(&result);
    if let Err(e) = result {
        log_undelivered(task, &e);
        return Err(e);
    }
    publishing.teardown(carry).await;
    Ok(())
}

/// The init segments of the rendition and of its audio (`None`: cancelled while waiting).
async fn wait_inits(
    task: &Task,
    spec: &RtmpSpec,
) -> Option<(Arc<InitSegment>, Option<Arc<InitSegment>>)> {
    let video = task.wait_init(&task.spec.track).await?;
    let audio = match spec.audio.as_deref() {
        Some(a) => Some(task.wait_init(a).await?),
        None => None,
    };
    Some((video, audio))
}

/// Handshake, connect, createStream, publish: all within the connect timeout. `false`: the
/// task was cancelled first.
async fn handshake<R, W>(
    task: &Task,
    session: &mut ClientSession,
    rd: &mut R,
    wr: &mut W,
) -> Result<bool, PublishError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut buf = vec![0u8; 16 * 1024];
    let mut published = false;
    while !published {
        let n = tokio::select! {
            _ = task.cancel.cancelled() => return Ok(false),
            r = tokio::time::timeout_at(deadline, rd.read(&mut buf)) => match r {
                Err(_) => return Err(NetError::ReadTimeout(CONNECT_TIMEOUT).into()),
                Ok(Err(e)) => return Err(NetError::Read(e).into()),
                Ok(Ok(0)) => return Err(NetError::Closed.into()),
                Ok(Ok(n)) => n,
            },
        };
        for event in session.handle_input(&buf[..n])? {
            match event {
                Event::Send(bytes) => net::write_all_progress(wr, &bytes, CONNECT_TIMEOUT).await?,
                Event::Published => published = true,
            }
        }
    }
    Ok(true)
}

/// A task that reads what the server sends and hands it over, until the first error (the
/// connection closed, or a read failed); aborted when the returned guard drops.
fn spawn_reader<R>(mut rd: R) -> (AbortOnDrop, ServerBytes)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, NetError>>(8);
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let r = match rd.read(&mut buf).await {
                Ok(0) => Err(NetError::Closed),
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(e) => Err(NetError::Read(e)),
            };
            let end = r.is_err();
            if tx.send(r).await.is_err() || end {
                return;
            }
        }
    }));
    (reader, rx)
}

/// A published session: the connection's write half and its TCP watch, the init segments at
/// session start, and what the encoder needs between units.
struct Publishing<'a> {
    task: &'a Task,
    spec: &'a RtmpSpec,
    session: ClientSession,
    video: Arc<InitSegment>,
    audio: Option<Arc<InitSegment>>,
    wr: WriteHalf<net::BoxStream>,
    watch: Watch,
    /// The FLV bytes of the unit being sent.
    out: Vec<u8>,
    sent: SentHeaders,
    /// Units the peer read past, not yet handed to the task.
    done: Vec<u64>,
}

impl Publishing<'_> {
    /// Sends every unit as it comes and answers the server, checking the Acknowledgements
    /// before each step; returns `Ok` only once the task is cancelled.
    async fn send_loop(
        &mut self,
        carry: &mut Carry,
        rx: &mut ServerBytes,
    ) -> Result<(), PublishError> {
        let task = self.task;
        let stall = task.spec.stall;
        let mut progress = AckProgress::new();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            progress.check(&self.session, stall, self.watch.last_acked)?;
            while let Ok(r) = rx.try_recv() {
                self.answer(&r?).await?;
            }
            if let Some((id, unit)) = task.next_unsent() {
                self.encode(&unit, carry);
                net::write_all_watched(&mut self.wr, &self.out, &mut self.watch, &mut self.done)
                    .await?;
                task.mark_sent(id, self.out.len() as u64);
                self.done.extend(self.watch.wrote(id));
                progress.sent(self.out.len(), self.watch.last_written);
                task.deliver(&self.watch, self.done.drain(..));
                continue;
            }
            tokio::select! {
                biased;
                _ = task.cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    self.done.extend(self.watch.check()?);
                    task.deliver(&self.watch, self.done.drain(..));
                }
                r = rx.recv() => {
                    let data = r.ok_or(PublishError::Closed)??;
                    self.answer(&data).await?;
                }
                _ = task.wait_unit() => {}
            }
        }
    }

    /// Feeds the server's bytes to the session and writes what it answers.
    async fn answer(&mut self, data: &[u8]) -> Result<(), PublishError> {
        for event in self.session.handle_input(data)? {
            if let Event::Send(b) = event {
                net::write_all_watched(&mut self.wr, &b, &mut self.watch, &mut self.done).await?;
            }
        }
        Ok(())
    }

    /// [`encode_unit`] of `unit` into `out`.
    fn encode(&mut self, unit: &Unit, carry: &mut Carry) {
        encode_unit(
            self.task,
            self.spec,
            &self.session,
            (&self.video, self.audio.as_ref()),
            unit,
            carry,
            &mut self.out,
            &mut self.sent,
        );
    }

    /// Whatever ended the session, the TCP evidence says which units the server has; after a
    /// stall it may hide more (docs/design/publish.md, *Delivery evidence*).
    fn settle(&mut self, result: &Result<(), PublishError>) {
        self.task.deliver(&self.watch, self.done.drain(..));
        if let Err(PublishError::Net(NetError::Stalled(_))) = result {
            self.watch.set_stalled();
        }
        self.task.settle(&mut self.watch);
    }

    /// Shutdown: what is left (within the grace time), then FCUnpublish + deleteStream.
    async fn teardown(&mut self, carry: &mut Carry) {
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = tokio::time::timeout_at(grace, self.drain_and_unpublish(carry)).await;
    }

    async fn drain_and_unpublish(&mut self, carry: &mut Carry) {
        let task = self.task;
        let stall = task.spec.stall;
        while let Some((id, unit)) = task.next_unsent() {
            self.encode(&unit, carry);
            if net::write_all_progress(&mut self.wr, &self.out, stall)
                .await
                .is_err()
            {
                return;
            }
            task.mark_sent(id, self.out.len() as u64);
            task.mark_delivered([id]);
        }
        self.out.clear();
        self.session.write_unpublish(&mut self.out);
        let _ = net::write_all_progress(&mut self.wr, &self.out, stall).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.wr).await;
    }
}

/// Debug line at the end of a broken session: how many sent units the peer had not read
/// (they go again after the reconnect).
fn log_undelivered(task: &Task, e: &PublishError) {
    let n = task.shared.lock().undelivered_sent();
    let e = task.scrub(&e.to_string());
    let spec = &task.spec;
    log::debug!(
        output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
        "publish {} {} {}: session ended ({e}) with {n} sent fragment(s) not delivered; they go again",
        spec.output, spec.dest, spec.track
    );
}

/// Application-level progress from the server's Acknowledgements: the pure
/// [`AckWitness`] (twincast-media `stall.rs`) learns the server's window from the
/// acknowledgements it sees and never assumes one, so a server acknowledging every 5 MB
/// (nginx-rtmp's default), every 32 KiB (what we ask) or never is judged correctly; it counts
/// the limit from the last acknowledgement once the peer's TCP holds the bytes that made the
/// next one due.
struct AckProgress {
    witness: AckWitness,
    /// Bytes written since the publish started.
    sent: u64,
    start: Instant,
}

impl AckProgress {
    fn new() -> Self {
        AckProgress {
            witness: AckWitness::default(),
            sent: 0,
            start: Instant::now(),
        }
    }

    /// `n` bytes were written; the connection's byte stream ends at `tcp_end` (when known).
    fn sent(&mut self, n: usize, tcp_end: Option<u64>) {
        self.sent += n as u64;
        self.witness.wrote(self.sent, tcp_end, self.start.elapsed());
    }

    /// `tcp_acked`: what the peer's TCP acknowledged at the last reading, when known.
    fn check(
        &mut self,
        session: &ClientSession,
        stall: std::time::Duration,
        tcp_acked: Option<u64>,
    ) -> Result<(), PublishError> {
        let now = self.start.elapsed();
        if let Some(value) = session.acked() {
            if self.witness.window().is_none() && session.acks() == 1 {
                log::debug!("rtmp: the server acknowledges ({value} bytes so far)");
            }
            self.witness
                .acknowledged(session.acks(), value, self.sent, now);
        }
        match self.witness.stalled(now, stall, tcp_acked) {
            Some(_) => Err(NetError::Stalled(stall).into()),
            None => Ok(()),
        }
    }
}

/// The RTMP timestamp of `t` for this task.
fn rtmp_ts(spec: &RtmpSpec, carry: &mut Carry, t: MediaTime) -> u32 {
    rtmp_timestamp(spec.timestamps, &mut carry.zero_base_ms, t)
}

/// Epoch milliseconds modulo 2^32 (the same on both boxes of a pair), or milliseconds since
/// the first timestamp this task ever sent (`zero_base`, kept across reconnects).
pub fn rtmp_timestamp(mode: RtmpTimestamps, zero_base: &mut Option<u64>, t: MediaTime) -> u32 {
    let ms = t.as_millis();
    match mode {
        RtmpTimestamps::Epoch => (ms & 0xffff_ffff) as u32,
        RtmpTimestamps::Zero => {
            let base = *zero_base.get_or_insert(ms);
            (ms.saturating_sub(base) & 0xffff_ffff) as u32
        }
    }
}

/// Decode time of the unit's first sample, and whether it is video.
fn first_dts(unit: &Unit) -> Option<(MediaTime, bool)> {
    let first = |f: &PackagedFragment| {
        f.samples
            .first()
            .map(|s| MediaTime::new(s.dts, f.timescale))
    };
    let v = unit.main.as_deref().and_then(first).map(|t| (t, true));
    let a = unit.audio.as_deref().and_then(first).map(|t| (t, false));
    v.or(a)
}

/// The init segments whose headers this session last sent (none yet: nothing sent).
#[derive(Debug, Default)]
pub struct SentHeaders {
    video: Option<Arc<InitSegment>>,
    audio: Option<Arc<InitSegment>>,
}

/// What [`encode`] had to (re)send before the unit's tags.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadersWritten {
    /// The first headers of this session.
    pub first: bool,
    /// A new AVC sequence header mid-session (new video codec parameters).
    pub video_switch: bool,
    /// A new AAC sequence header mid-session.
    pub audio_switch: bool,
}

/// [`encode`], counting and logging a mid-session switch on the task.
#[allow(clippy::too_many_arguments)]
fn encode_unit(
    task: &Task,
    spec: &RtmpSpec,
    session: &ClientSession,
    current: (&Arc<InitSegment>, Option<&Arc<InitSegment>>),
    unit: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
    sent: &mut SentHeaders,
) {
    let w = encode(spec, session, current, unit, carry, out, sent);
    if w.video_switch {
        task.note_header_switch(
            &task.spec.track,
            unit.seq,
            "onMetaData and AVC sequence header sent again",
        );
    }
    if w.audio_switch {
        let audio = spec.audio.as_deref().unwrap_or(super::AUDIO);
        task.note_header_switch(audio, unit.seq, "AAC sequence header sent again");
    }
}

/// The FLV bytes of one unit into `out` (cleared first), preceded by the headers when this
/// session has not sent any yet or when the unit was written against other codec parameters
/// than the last headers sent. `current` are the hub's init segments at session start, used
/// only for fragments that name none before any header went out.
pub fn encode(
    spec: &RtmpSpec,
    session: &ClientSession,
    current: (&Arc<InitSegment>, Option<&Arc<InitSegment>>),
    unit: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
    sent: &mut SentHeaders,
) -> HeadersWritten {
    out.clear();
    let video = unit
        .main
        .as_ref()
        .and_then(|f| f.init.clone())
        .or_else(|| sent.video.clone())
        .unwrap_or_else(|| current.0.clone());
    let audio = unit
        .audio
        .as_ref()
        .and_then(|f| f.init.clone())
        .or_else(|| sent.audio.clone())
        .or_else(|| current.1.cloned());
    let first = sent.video.is_none();
    let written = HeadersWritten {
        first,
        video_switch: sent.video.as_ref().is_some_and(|s| !same_init(s, &video)),
        audio_switch: match (&sent.audio, &audio) {
            (Some(s), Some(a)) => !first && !same_init(s, a),
            _ => false,
        },
    };
    if written.first || written.video_switch || written.audio_switch {
        write_headers(
            spec,
            session,
            &video,
            audio.as_deref(),
            unit,
            carry,
            out,
            written,
        );
    }
    write_unit(spec, session, unit, carry, out);
    sent.video = Some(video);
    sent.audio = audio;
    written
}

/// `onMetaData` and the sequence headers `which` asks for (all of them for the first ones).
#[allow(clippy::too_many_arguments)]
fn write_headers(
    spec: &RtmpSpec,
    session: &ClientSession,
    video: &InitSegment,
    audio: Option<&InitSegment>,
    first: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
    which: HeadersWritten,
) {
    // Headers carry the unit's first timestamp, so timestamps never go backwards.
    let ts = match first_dts(first) {
        Some((dts, _)) => rtmp_ts(spec, carry, dts),
        None => 0,
    };
    session.write_metadata(
        out,
        &flv::metadata(Some(&video.info), audio.map(|a| &a.info), spec.frame_rate),
    );
    if (which.first || which.video_switch)
        && let Codec::H264 { avcc, .. } = &video.info.codec
    {
        session.write_video(out, ts, &flv::avc_sequence_header(avcc));
    }
    if (which.first || which.audio_switch)
        && let Some(Codec::Aac { asc, .. }) = audio.map(|a| &a.info.codec)
    {
        session.write_audio(out, ts, &flv::aac_sequence_header(asc));
    }
}

/// The `onCuePoint` messages of the SCTE-35 events a video fragment carries (its `emsg`s,
/// docs/design/signals.md, *RTMP*), at the fragment's first timestamp, so that they go
/// ahead of the splice as the fragment does, and again with it when it is resent.
fn write_cue_points(
    spec: &RtmpSpec,
    session: &ClientSession,
    f: &PackagedFragment,
    carry: &mut Carry,
    out: &mut Vec<u8>,
) {
    let Some(first) = f.samples.first() else {
        return;
    };
    let ts = rtmp_ts(spec, carry, MediaTime::new(first.dts, f.timescale));
    for e in emsg::read_emsgs(&f.bytes) {
        let Some(scale) = Timescale::new(e.timescale) else {
            continue;
        };
        if e.scheme_id_uri != emsg::SCTE35_SCHEME {
            continue;
        }
        let at_ms = rtmp_ts(spec, carry, MediaTime::new(e.presentation_time, scale));
        let duration_s = if e.event_duration == emsg::UNKNOWN_DURATION {
            0.0
        } else {
            f64::from(e.event_duration) / f64::from(e.timescale)
        };
        let body =
            flv::scte35_cue_point(e.message_data, e.id, f64::from(at_ms) / 1000.0, duration_s);
        session.write_data(out, ts, &body);
    }
}

/// Appends the unit's video and audio messages, interleaved by decode time.
fn write_unit(
    spec: &RtmpSpec,
    session: &ClientSession,
    unit: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
) {
    let mut items: Vec<(MediaTime, bool, &Sample)> = Vec::new();
    if let Some(f) = &unit.main {
        items.extend(
            f.samples
                .iter()
                .map(|s| (MediaTime::new(s.dts, f.timescale), true, s)),
        );
    }
    if let Some(f) = &unit.audio {
        items.extend(
            f.samples
                .iter()
                .map(|s| (MediaTime::new(s.dts, f.timescale), false, s)),
        );
    }
    // In decode order across the two timescales (exact), video first at the same instant.
    items.sort_by(|(a, av, _), (b, bv, _)| a.cmp(b).then(bv.cmp(av)));
    if let Some(f) = &unit.main {
        write_cue_points(spec, session, f, carry, out);
    }
    let mut body = Vec::with_capacity(64 * 1024);
    for (t, is_video, s) in items {
        body.clear();
        if is_video {
            let ts = rtmp_ts(spec, carry, t);
            let cts = i64::from(s.cts_offset) * 1000 / i64::from(t.timescale().hz());
            flv::avc_frame_into(&mut body, s.keyframe, cts as i32, &s.data);
            session.write_video(out, ts, &body);
        } else {
            let ts = rtmp_ts(spec, carry, t);
            flv::aac_frame_into(&mut body, &s.data);
            session.write_audio(out, ts, &body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::backlog::Backlog;
    use super::super::test_support::{
        audio_init, fragment, fragment_with_bytes, rtmp_spec, unit, video_init,
    };
    use super::*;
    use twincast_media::amf0;
    use twincast_media::rtmp::{ChunkReader, msg};

    /// What the messages of `out` carry, in order: `meta <width>`, `avc-seq <avcC tag byte>`,
    /// `aac-seq`, `v<seq>` / `a<seq>` for frames (the sample data's last byte).
    fn summary(reader: &mut ChunkReader, out: &[u8]) -> Vec<String> {
        reader.push(out);
        let mut seen = Vec::new();
        while let Some(m) = reader.next_message().expect("chunk stream") {
            let p = &m.payload;
            seen.push(match (m.type_id, p.first(), p.get(1)) {
                (msg::DATA_AMF0, _, _) => {
                    let v = amf0::decode_all(p).expect("amf0");
                    if v[0].as_str() == Some("onCuePoint") {
                        let field = |k| v[1].get(k).cloned().unwrap_or(amf0::Value::Null);
                        format!(
                            "cue {:?} {:?} {:?} @{}",
                            field("cue"),
                            field("time"),
                            field("duration"),
                            m.timestamp
                        )
                    } else {
                        let w = v[2].get("width").and_then(|w| w.as_number()).unwrap_or(0.0);
                        format!("meta {w}")
                    }
                }
                (msg::VIDEO, Some(0x17), Some(0)) => format!("avc-seq {}", p[5 + 11]),
                (msg::VIDEO, _, _) => format!("v{}", p[p.len() - 1]),
                (msg::AUDIO, _, Some(0)) => "aac-seq".to_string(),
                (msg::AUDIO, _, _) => format!("a{}", p[p.len() - 1]),
                (t, _, _) => format!("type {t}"),
            });
        }
        seen
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_init_sends_metadata_and_a_sequence_header_before_its_first_fragment() {
        let mut spec = rtmp_spec("v");
        spec.audio = Some("audio".into());
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let (aa, ab) = (audio_init([0x11, 0x90]), audio_init([0x12, 0x10]));
        let (session, _) = ClientSession::new("live", "rtmp://127.0.0.1/live", "o_v", 1);
        let mut reader = ChunkReader::default();
        let mut sent = SentHeaders::default();
        let mut carry = Carry::default();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let units = [
            unit(
                Some(fragment(1, 90_000, Some(&va))),
                Some(fragment(1, 48_000, Some(&aa))),
            ),
            unit(
                Some(fragment(2, 90_000, Some(&vb))),
                Some(fragment(2, 48_000, Some(&aa))),
            ),
            unit(
                Some(fragment(3, 90_000, Some(&vb))),
                Some(fragment(3, 48_000, Some(&ab))),
            ),
            // A fragment that names no init keeps the last one sent.
            unit(
                Some(fragment(4, 90_000, None)),
                Some(fragment(4, 48_000, None)),
            ),
        ];
        let mut written = Vec::new();
        for u in &units {
            written.push(encode(
                &spec,
                &session,
                (&va, Some(&aa)),
                u,
                &mut carry,
                &mut out,
                &mut sent,
            ));
            seen.extend(summary(&mut reader, &out));
        }
        assert_eq!(
            seen,
            strs(&[
                "meta 1280",
                "avc-seq 1",
                "aac-seq",
                "v1",
                "a1",
                "v1",
                "a1",
                "meta 1920",
                "avc-seq 2",
                "v2",
                "a2",
                "v2",
                "a2",
                "meta 1920",
                "aac-seq",
                "v3",
                "a3",
                "v3",
                "a3",
                "v4",
                "a4",
                "v4",
                "a4",
            ])
        );
        assert!(written[0].first && !written[0].video_switch);
        assert!(written[1].video_switch && !written[1].audio_switch);
        assert!(written[2].audio_switch && !written[2].video_switch);
        assert_eq!(written[3], HeadersWritten::default());
    }

    #[test]
    fn a_fragment_with_a_splice_event_sends_its_cue_point_before_its_pictures() {
        let spec = rtmp_spec("v");
        let va = video_init(1, 1280, 3_000_000);
        let (session, _) = ClientSession::new("live", "rtmp://127.0.0.1/live", "o_v", 1);
        let mut reader = ChunkReader::default();
        let mut sent = SentHeaders::default();
        let mut carry = Carry::default();
        let mut out = Vec::new();
        // Fragment 5 starts at 5 s; the splice is at 6.5 s for 30 s.
        let mut bytes = Vec::new();
        let section = [0xFC, 0x30, 0x11];
        twincast_media::mp4::emsg::write_emsg(
            &mut bytes,
            &twincast_media::mp4::EventMessage {
                scheme_id_uri: emsg::SCTE35_SCHEME,
                value: "",
                timescale: 90_000,
                presentation_time: 585_000,
                event_duration: 2_700_000,
                id: 195,
                message_data: &section,
            },
        );
        let f = fragment_with_bytes(5, 90_000, Some(&va), bytes.into());
        let u = unit(Some(f), None);
        encode(
            &spec,
            &session,
            (&va, None),
            &u,
            &mut carry,
            &mut out,
            &mut sent,
        );
        assert_eq!(
            summary(&mut reader, &out),
            strs(&[
                "meta 1280",
                "avc-seq 1",
                "cue String(\"/DAR\") Number(6.5) Number(30.0) @5000",
                "v5",
                "v5"
            ])
        );
    }

    #[test]
    fn after_a_reconnect_the_headers_are_those_of_the_first_fragment_resent() {
        let spec = rtmp_spec("v");
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let mut backlog = Backlog::new(2, std::time::Duration::from_secs(30), u64::MAX);
        let mut carry = Carry::default();
        let mut out = Vec::new();
        let mut run = |backlog: &mut Backlog<Arc<Unit>>, current: &Arc<InitSegment>| {
            let (session, _) = ClientSession::new("live", "rtmp://127.0.0.1/live", "o_v", 1);
            let mut reader = ChunkReader::default();
            let mut sent = SentHeaders::default();
            let mut seen = Vec::new();
            while let Some((id, u)) = backlog.next_unsent() {
                encode(
                    &spec,
                    &session,
                    (current, None),
                    &u,
                    &mut carry,
                    &mut out,
                    &mut sent,
                );
                seen.extend(summary(&mut reader, &out));
                backlog.mark_sent(id);
                backlog.mark_delivered(id);
            }
            seen
        };
        for n in 1..=3 {
            backlog.push(unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        assert_eq!(
            run(&mut backlog, &va),
            strs(&["meta 1280", "avc-seq 1", "v1", "v1", "v2", "v2", "v3", "v3"])
        );
        // The encoder is rebuilt during the outage: the hub's init is already the new one,
        // but the resend starts with fragments 2 and 3 of the old one.
        for n in 4..=5 {
            backlog.push(unit(Some(fragment(n, 90_000, Some(&vb))), None));
        }
        backlog.rewind();
        assert_eq!(
            run(&mut backlog, &vb),
            strs(&[
                "meta 1280",
                "avc-seq 1",
                "v2",
                "v2",
                "v3",
                "v3",
                "meta 1920",
                "avc-seq 2",
                "v4",
                "v4",
                "v5",
                "v5",
            ])
        );
    }

    fn at(ticks: u64, hz: u32) -> MediaTime {
        MediaTime::new(ticks, twincast_media::Timescale::new(hz).expect("non-zero"))
    }

    #[test]
    fn timestamps_are_epoch_ms_mod_2_32_or_zero_based() {
        let t = 1_763_000_000_123u64 * 90; // 90 kHz ticks of an epoch time in ms
        let mut base = None;
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Epoch, &mut base, at(t, 90_000)),
            (1_763_000_000_123u64 % (1 << 32)) as u32
        );
        assert_eq!(base, None);
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Zero, &mut base, at(t, 90_000)),
            0
        );
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Zero, &mut base, at(t + 3000, 90_000)),
            33
        );
        // Audio at 48 kHz lands on the same millisecond scale.
        let a = 1_763_000_000_123u64 * 48;
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Epoch, &mut None, at(a, 48_000)),
            (1_763_000_000_123u64 % (1 << 32)) as u32
        );
    }
}
