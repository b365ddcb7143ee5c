//! The Smooth (Azure fragmented-MP4 live ingest, MS-SSTR) driver: per track, an empty POST to
//! `<url>/Streams(<track>)`, then one long-running chunked POST to the same URL whose body is
//! `ftyp` + Live Server Manifest box + `moov`, then `moof`/`mdat` fragments with `tfxd`, one
//! HTTP chunk per box group. The header boxes start every POST; after a reconnect the last two
//! fragments delivered before the break go again, then the backlog, then live. At shutdown
//! the chunked body ends with its last chunk.
//!
//! The header boxes are built from the init segment of the first fragment the POST carries.
//! The `moov` cannot change inside a POST, so when a fragment was written against other codec
//! parameters (a rebuilt encoder), the driver ends the POST cleanly (last chunk, the server's
//! answer) and starts a new one for the track (empty POST, then the chunked POST whose header
//! boxes come from the new init, on the same connection when the server keeps it), then
//! continues with that fragment: no backoff, nothing dropped, counted and logged once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, ReadHalf, WriteHalf};
use twincast_media::TrackInfo;
use twincast_media::mp4::smooth;

use super::http::{self, Body, HttpUrl};
use super::liveness::{Gate, Liveness};
use super::net::{self, BoxStream, NetError};
use super::tcp::{SAMPLE_EVERY, Watch};
use super::{Carry, PublishError, SHUTDOWN_GRACE, SmoothSpec, Task, Unit, init_of, same_init};
use crate::hub::InitSegment;
use crate::status::DestState;

/// Shortest time we wait for an answer to the empty POST.
const MIN_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// What one session needs to (re)open its POST.
struct Target<'a> {
    task: &'a Task,
    spec: &'a SmoothSpec,
    url: HttpUrl,
    path: String,
    wait: Duration,
}

/// One open chunked POST, the init segment its header boxes came from, and the TCP evidence
/// of its connection.
struct Post {
    rd: ReadHalf<BoxStream>,
    wr: WriteHalf<BoxStream>,
    init: Arc<InitSegment>,
    watch: Watch,
}

impl Target<'_> {
    /// The empty POST, then the head of the long-running chunked POST and its header boxes
    /// (from `init`), on `stream` when it is still usable, else on a new connection.
    async fn open(
        &self,
        stream: Option<(BoxStream, Watch)>,
        init: Arc<InitSegment>,
    ) -> Result<Post, PublishError> {
        let task = self.task;
        let url = &self.url;
        let key = task.spec.key.as_deref();
        let (mut stream, mut watch) = match stream {
            Some(s) => s,
            None => net::connect_watched(&url.host, url.port, url.tls, task.spec.stall).await?,
        };
        let head = url.request_head("POST", &self.path, Body::Length(0), key);
        net::write_all_progress(&mut stream, head.as_bytes(), task.spec.stall).await?;
        let resp = http::read_response(&mut stream, self.wait).await?;
        if !(200..300).contains(&resp.status) {
            return Err(PublishError::Http {
                status: resp.status,
                what: "the empty POST",
            });
        }
        if resp.close {
            (stream, watch) =
                net::connect_watched(&url.host, url.port, url.tls, task.spec.stall).await?;
        }
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(
            url.request_head("POST", &self.path, Body::Chunked, key)
                .as_bytes(),
        );
        http::chunk(&mut out, &self.header(&init.info));
        let (rd, mut wr) = tokio::io::split(stream);
        let mut done = Vec::new();
        net::write_all_watched(&mut wr, &out, &mut watch, &mut done).await?;
        Ok(Post {
            rd,
            wr,
            init,
            watch,
        })
    }

    /// `ftyp` + Live Server Manifest box + `moov` of `track`. The manifest names every stream
    /// of this output whose header is known (this one as `track` describes it).
    fn header(&self, track: &TrackInfo) -> Vec<u8> {
        let task = self.task;
        let infos: Vec<TrackInfo> = self
            .spec
            .all_tracks
            .iter()
            .filter_map(|t| {
                if **t == *task.spec.track {
                    Some(track.clone())
                } else {
                    task.hub
                        .track(t)
                        .and_then(|h| h.init())
                        .map(|i| i.info.clone())
                }
            })
            .collect();
        let sparse = self
            .spec
            .sparse_parent
            .as_deref()
            .map(|parent| (super::event_track_id(&task.hub), parent));
        let manifest =
            twincast_media::mp4::smooth_sparse::live_server_manifest_with_sparse(&infos, sparse);
        smooth::write_header(track, &manifest)
    }

    /// Ends `post` cleanly (last chunk, the server's answer) and opens a new one whose header
    /// boxes come from `init`: the `moov` cannot change inside a POST. A server that closes
    /// the connection instead of answering gets the new POST on a new connection.
    async fn switch(&self, post: Post, init: Arc<InitSegment>) -> Result<Post, PublishError> {
        let Post {
            mut rd,
            mut wr,
            mut watch,
            ..
        } = post;
        net::write_all_progress(&mut wr, http::LAST_CHUNK, self.task.spec.stall).await?;
        // The stream is delivered once its last chunk is written. Whatever the answer, the
        // new POST goes out (an error here would only resend the old fragments and switch
        // again); the connection is reused only after a 2xx that keeps it open.
        let answer = http::read_response(&mut rd, self.wait).await;
        if answer.is_ok() {
            // The server read the whole stream.
            self.task.mark_delivered(watch.all_delivered());
        }
        let stream = match answer {
            Ok(r) if (200..300).contains(&r.status) && !r.close => Some((rd.unsplit(wr), watch)),
            Ok(r) => {
                if !(200..300).contains(&r.status) {
                    let spec = &self.task.spec;
                    log::warn!(
                        output = spec.output.as_str(), dest = spec.dest, track = spec.track.as_str();
                        "publish {} {} {} ({}): ingest answered HTTP {} to the end of a stream",
                        spec.output, spec.dest, spec.track, spec.url_safe, r.status
                    );
                }
                None
            }
            Err(_) => None,
        };
        self.open(stream, init).await
    }

    /// Sends unit `id` on `post`, first switching to a new POST when the unit was written
    /// against other codec parameters than `post`'s header; records it sent, and delivered
    /// as far as the TCP evidence shows.
    async fn send(
        &self,
        post: &mut Option<Post>,
        id: u64,
        unit: &Unit,
        gate: Option<&mut Gate>,
    ) -> Result<(), PublishError> {
        let Some(f) = &unit.main else {
            self.task.mark_acknowledged(id, 0);
            return Ok(());
        };
        let Some(p) = post.take() else {
            return Err(PublishError::Closed);
        };
        let init = init_of(f, &p.init);
        let mut p = if same_init(&init, &p.init) {
            p
        } else {
            let p = self.switch(p, init).await?;
            self.task.note_header_switch(
                &self.task.spec.track,
                f.sequence,
                "new POST with the new moov",
            );
            p
        };
        let mut out = Vec::with_capacity(f.bytes.len() + 1024);
        let frag = smooth::write_fragment(&p.init.info, f.sequence as u32, &f.samples);
        http::chunk(&mut out, &frag);
        let mut done = Vec::new();
        let r = net::write_all_watched(&mut p.wr, &out, &mut p.watch, &mut done).await;
        if r.is_ok() {
            self.task.mark_sent(id, out.len() as u64);
            done.extend(p.watch.wrote(id));
        }
        match gate {
            Some(g) => g.hold(done),
            None => self.task.deliver(&p.watch, done),
        }
        *post = Some(p);
        r?;
        Ok(())
    }
}

/// One session, in the order of the protocol (docs/design/publish.md, *Resend after a
/// reconnect*): wait for the init segment, open the POST with the header boxes of the first
/// fragment (re)sent, send the backlog and live fragments while the liveness probe and the
/// TCP evidence judge delivery, then settle what the server has and, on a clean stop, end the
/// POST.
pub async fn run_once(
    task: &Task,
    spec: &SmoothSpec,
    carry: &mut Carry,
) -> Result<(), PublishError> {
    let url = HttpUrl::parse(&task.spec.url).map_err(PublishError::Url)?;
    let Some(current) = task.wait_init(&task.spec.track).await else {
        return Ok(());
    };
    let target = Target {
        task,
        spec,
        url,
        path: format!("/Streams({})", task.spec.track),
        wait: task.spec.stall.max(MIN_ANSWER_WAIT),
    };
    // The header boxes are those of the first fragment (re)sent.
    let first = task.rewind_to_first_init(current);
    let mut post = Some(target.open(None, first).await?);
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);

    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let live = target.start_liveness();
    // The session; whatever ends it, the TCP evidence then says which fragments the
    // server has.
    let result = target.send_loop(&mut post, live.as_ref(), &mut tick).await;
    if let Some(p) = post.as_mut() {
        if let Err(PublishError::Net(NetError::Stalled(_))) = &result {
            p.watch.set_stalled();
        }
        task.settle(&mut p.watch);
    }
    result?;
    target.teardown(post).await;
    Ok(())
}

impl Target<'_> {
    /// The `OPTIONS *` witness on a second connection, when the output asks for one.
    fn start_liveness(&self) -> Option<Liveness> {
        let task = self.task;
        self.spec.probe_every.map(|every| {
            Liveness::start(
                &self.url,
                every,
                task.spec.stall,
                format!(
                    "publish {} {} {}",
                    task.spec.output, task.spec.dest, task.spec.track
                ),
            )
        })
    }

    /// Sends every fragment as it comes, watching the POST for an answer (the server answers
    /// a streaming POST only when it ends it) and judging delivery on every tick; returns
    /// `Ok` only once the task is cancelled.
    async fn send_loop(
        &self,
        post: &mut Option<Post>,
        live: Option<&Liveness>,
        tick: &mut tokio::time::Interval,
    ) -> Result<(), PublishError> {
        let task = self.task;
        let mut probe = [0u8; 1024];
        let mut gate = Gate::default();
        loop {
            if let Some((id, unit)) = task.next_unsent() {
                self.send(post, id, &unit, live.map(|_| &mut gate)).await?;
                continue;
            }
            let Some(p) = post.as_mut() else {
                return Err(PublishError::Closed);
            };
            tokio::select! {
                biased;
                _ = task.cancel.cancelled() => return Ok(()),
                // The server answers a streaming POST only when it ends it (error or close).
                r = p.rd.read(&mut probe) => {
                    return Err(match r {
                        Ok(0) => PublishError::Closed,
                        Ok(_) => PublishError::Http { status: answer_status(&probe), what: "the stream" },
                        Err(e) => NetError::Read(e).into(),
                    });
                }
                _ = tick.tick() => self.check_delivery(p, live, &mut gate)?,
                _ = task.wait_unit() => {}
            }
        }
    }

    /// What the TCP evidence says the server read; with a liveness witness, held until a
    /// probe answered the stall limit later (docs/design/publish.md, *Delivery evidence*),
    /// and a stall once the probes went unanswered for the limit.
    fn check_delivery(
        &self,
        p: &mut Post,
        live: Option<&Liveness>,
        gate: &mut Gate,
    ) -> Result<(), PublishError> {
        let task = self.task;
        let limit = task.spec.stall;
        let done = p.watch.check()?;
        match live {
            Some(l) => {
                gate.hold(done);
                task.deliver(&p.watch, gate.release(l.last_answer(), limit));
                if l.stalled(limit) {
                    log::info!(
                        output = task.spec.output.as_str(), dest = task.spec.dest, track = task.spec.track.as_str();
                        "publish {} {} {}: the ingest server answered nothing for {:?} (OPTIONS * on a second connection)",
                        task.spec.output, task.spec.dest, task.spec.track, l.last_answer().elapsed()
                    );
                    return Err(NetError::Stalled(limit).into());
                }
            }
            None => task.deliver(&p.watch, done),
        }
        Ok(())
    }

    /// Shutdown: the rest, then the last chunk, then the answer (all within the grace time).
    async fn teardown(&self, mut post: Option<Post>) {
        let task = self.task;
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = tokio::time::timeout_at(grace, async {
            while let Some((id, unit)) = task.next_unsent() {
                if self.send(&mut post, id, &unit, None).await.is_err() {
                    return;
                }
            }
            let Some(mut p) = post else { return };
            if net::write_all_progress(&mut p.wr, http::LAST_CHUNK, task.spec.stall)
                .await
                .is_ok()
                && http::read_response(&mut p.rd, SHUTDOWN_GRACE).await.is_ok()
            {
                task.mark_delivered(p.watch.all_delivered());
            }
        })
        .await;
    }
}

/// The status code of an early answer, or 0 when it is not readable.
fn answer_status(bytes: &[u8]) -> u16 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        Receiver, Req, boxes, contains, fragment, push, smooth_of, spec, task, unit, video_init,
    };
    use super::*;
    use crate::config::Protocol;
    use std::sync::atomic::Ordering;
    use twincast_media::Codec;

    /// Per streaming POST: which init its `moov` came from (index into `inits`), whether it
    /// ended, and the `mfhd` sequence numbers of its fragments.
    fn posts(reqs: &[Req], inits: &[&Arc<InitSegment>]) -> Vec<(usize, bool, Vec<u32>)> {
        let mut out = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            if !r.chunked {
                assert!(r.body.is_empty(), "a non-chunked POST with a body");
                continue;
            }
            assert!(
                i > 0 && !reqs[i - 1].chunked,
                "every stream follows an empty POST"
            );
            let top = boxes(&r.body);
            let kinds: Vec<[u8; 4]> = top.iter().take(3).map(|(k, _)| *k).collect();
            assert_eq!(kinds, [*b"ftyp", *b"uuid", *b"moov"]);
            let moov = top[2].1;
            let which = inits
                .iter()
                .position(|i| match &i.info.codec {
                    Codec::H264 { avcc, .. } => contains(moov, avcc),
                    Codec::Aac { .. } => false,
                })
                .expect("the moov of a known init");
            let seqs = top
                .iter()
                .filter(|(k, _)| k == b"moof")
                .map(|(_, b)| u32::from_be_bytes([b[20], b[21], b[22], b[23]]))
                .collect();
            out.push((which, r.complete, seqs));
        }
        out
    }

    fn fragments(reqs: &[Req]) -> usize {
        reqs.iter()
            .map(|r| boxes(&r.body).iter().filter(|(k, _)| k == b"moof").count())
            .sum()
    }

    fn url(rx: &Receiver) -> String {
        format!("http://127.0.0.1:{}/in/ingest.isml", rx.port)
    }

    #[tokio::test]
    async fn new_codec_parameters_end_the_post_and_start_one_with_the_new_moov() {
        let rx = Receiver::start().await;
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let task = task(spec(Protocol::Smooth, &url(&rx), "v"), &va);
        for n in 1..=2 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        for n in 3..=4 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&vb))), None));
        }
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &smooth_of(&t), &mut Carry::default()).await });
        rx.wait_for("4 fragments", |r| fragments(r) == 4).await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok());
        let reqs = rx.requests();
        assert_eq!(
            posts(&reqs, &[&va, &vb]),
            [(0, true, vec![1, 2]), (1, true, vec![3, 4])],
            "the first POST ends cleanly; the second starts with the new moov"
        );
        assert!(
            reqs.iter().all(|r| r.conn == 0
                && r.method == "POST"
                && r.path == "/in/ingest.isml/Streams(v)")
        );
        let manifest = boxes(&reqs[3].body)[1].1;
        assert!(contains(manifest, b"systemBitrate=\"5000000\""));
        assert_eq!(task.header_switches.load(Ordering::Relaxed), 1);
        let s = task.status.snapshot();
        assert_eq!((s.fragments_sent, s.dropped_fragments), (4, 0));
    }

    #[tokio::test]
    async fn a_server_that_closes_instead_of_answering_gets_the_new_post_on_a_new_connection() {
        let rx = Receiver::start().await;
        crate::sync::lock(&rx.close).push(1); // the first streaming POST
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let task = task(spec(Protocol::Smooth, &url(&rx), "v"), &va);
        push(&task, unit(Some(fragment(1, 90_000, Some(&va))), None));
        push(&task, unit(Some(fragment(2, 90_000, Some(&vb))), None));
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &smooth_of(&t), &mut Carry::default()).await });
        rx.wait_for("2 fragments", |r| fragments(r) == 2).await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok(), "no error, no backoff");
        let reqs = rx.requests();
        assert_eq!(
            posts(&reqs, &[&va, &vb]),
            [(0, true, vec![1]), (1, true, vec![2])]
        );
        let conns: Vec<usize> = reqs.iter().map(|r| r.conn).collect();
        assert_eq!(conns, [0, 0, 1, 1]);
        assert_eq!(task.header_switches.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_resend_that_spans_a_change_starts_with_the_old_moov_and_switches() {
        let rx = Receiver::start().await;
        let (va, vb) = (
            video_init(1, 1280, 3_000_000),
            video_init(2, 1920, 5_000_000),
        );
        let task = task(spec(Protocol::Smooth, &url(&rx), "v"), &va);
        for n in 1..=3 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&va))), None));
        }
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &smooth_of(&t), &mut Carry::default()).await });
        rx.wait_for("3 fragments", |r| fragments(r) == 3).await;
        // The ingest restarts; meanwhile the encoder is rebuilt.
        rx.drop_connections();
        let r = tokio::time::timeout(Duration::from_secs(10), run).await;
        assert!(r.expect("session ends").expect("join").is_err());
        if let Some(h) = task.hub.track("v") {
            h.set_init(vb.clone());
        }
        for n in 4..=5 {
            push(&task, unit(Some(fragment(n, 90_000, Some(&vb))), None));
        }
        let t = task.clone();
        let run =
            tokio::spawn(async move { run_once(&t, &smooth_of(&t), &mut Carry::default()).await });
        rx.wait_for("the resend", |r| fragments(r) == 3 + 4).await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok());
        let p = posts(&rx.requests(), &[&va, &vb]);
        assert_eq!(
            p[1..],
            [(0, true, vec![2, 3]), (1, true, vec![4, 5])],
            "headers of the first fragment resent (not the hub's), then the switch: {p:?}"
        );
        assert_eq!(p[0].2, [1, 2, 3]);
        assert_eq!(task.header_switches.load(Ordering::Relaxed), 1);
    }
}
