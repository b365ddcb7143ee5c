//! The CMAF ingest driver (DASH-IF Live Media Ingest v1.2, Interface-1): per track one
//! connection; on it the CMAF header, then one CMAF segment (here: one fragment) per request,
//! each acknowledged by a 2xx before the next.
//!
//! Paths: every object of track `T` goes to `<url>/Streams(T)` (the `Streams(<track>)` form
//! the specification and Smooth ingest share), so one receiver URL serves both protocols; the
//! receiver tells the header (`ftyp`) from segments (`styp`). The method is `output.method`
//! (POST by default, or PUT). Segments keep the hub's bytes: `styp`, `prft`, `moof` (with
//! `mfhd` = the epoch fragment number, +1 per fragment), `mdat`; the last one sent at shutdown
//! carries the `lmsg` brand.
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
use super::{Carry, PublishError, SHUTDOWN_GRACE, Task, Unit, init_of, same_init};
use crate::config::HttpMethod;
use crate::hub::{InitSegment, PackagedFragment};
use crate::status::DestState;
use twincast_media::stall::Verdict;

/// Shortest time we wait for an answer.
const MIN_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn run_once(task: &Task, carry: &mut Carry) -> Result<(), PublishError> {
    let url = HttpUrl::parse(&task.spec.url).map_err(PublishError::Url)?;
    let Some(current) = task.wait_init(&task.spec.track).await else {
        return Ok(());
    };
    let path = format!("/Streams({})", task.spec.track);
    let method = match task.spec.method {
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
    };
    let wait = task.spec.stall.max(MIN_ANSWER_WAIT);
    let conn = Conn {
        url: &url,
        path: &path,
        method,
        task,
        stream: None,
        wait,
        last_progress: Instant::now(),
    };
    // The header is that of the first segment (re)sent.
    let first = task.rewind_to_first_init(current);
    let mut s = Session {
        conn,
        header: first,
    };
    s.conn.send(&s.header.bytes, "the CMAF header").await?;
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);
    loop {
        if let Some((id, unit)) = task.next_unsent() {
            let Some(f) = &unit.main else {
                task.mark_acknowledged(id, 0);
                continue;
            };
            s.segment(f, &f.bytes, "a segment").await?;
            task.mark_acknowledged(id, f.bytes.len() as u64);
            carry.last_sent = Some(unit.clone());
            continue;
        }
        tokio::select! {
            biased;
            _ = task.cancel.cancelled() => break,
            _ = task.wait_unit() => {}
        }
    }
    // Shutdown: the rest, the last one with `lmsg` (or the last acknowledged one again).
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let _ = tokio::time::timeout_at(grace, async {
        // Send one behind, so that the very last segment goes out with `lmsg`.
        let mut held: Option<Arc<Unit>> = None;
        while let Some((id, unit)) = task.next_unsent() {
            if let Some(f) = held.take().and_then(|u| u.main.clone())
                && s.segment(&f, &f.bytes, "a segment").await.is_err()
            {
                return;
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
            let _ = s
                .segment(&f, &with_lmsg(&f.bytes), "the last segment")
                .await;
        }
    })
    .await;
    Ok(())
}

/// One session: the connection and the init segment whose CMAF header it last sent.
struct Session<'a> {
    conn: Conn<'a>,
    header: Arc<InitSegment>,
}

impl Session<'_> {
    /// Sends segment `body` of fragment `f`, first the CMAF header of `f`'s init segment when
    /// that is not the one this session last sent (new codec parameters mid-session).
    async fn segment(
        &mut self,
        f: &PackagedFragment,
        body: &[u8],
        what: &'static str,
    ) -> Result<(), PublishError> {
        let init = init_of(f, &self.header);
        if !same_init(&init, &self.header) {
            self.conn.send(&init.bytes, "the CMAF header").await?;
            self.header = init;
            let task = self.conn.task;
            task.note_header_switch(&task.spec.track, f.sequence, "new CMAF header sent");
        }
        self.conn.send(body, what).await
    }
}

/// One keep-alive connection, re-opened when the server closes it.
struct Conn<'a> {
    url: &'a HttpUrl,
    path: &'a str,
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
    async fn send(&mut self, body: &[u8], what: &'static str) -> Result<(), PublishError> {
        let reused = self.stream.is_some();
        match self.send_once(body, what).await {
            // A kept-alive connection the server closed while idle: once more on a new one.
            Err(PublishError::Net(NetError::Closed | NetError::Write(_))) if reused => {
                self.stream = None;
                self.send_once(body, what).await
            }
            other => other,
        }
    }

    async fn send_once(&mut self, body: &[u8], what: &'static str) -> Result<(), PublishError> {
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
            self.path,
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
    use super::super::test_support::{Receiver, fragment, push, spec, task, unit, video_init};
    use super::*;
    use crate::config::Protocol;
    use std::sync::atomic::Ordering;

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
        let run = tokio::spawn(async move { run_once(&t, &mut Carry::default()).await });
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
        rx.fail.lock().expect("fail").push(2); // segment 2 is refused once
        let r = run_once(&task, &mut Carry::default()).await;
        assert!(
            matches!(r, Err(PublishError::Http { status: 503, .. })),
            "{r:?}"
        );
        let t = task.clone();
        let run = tokio::spawn(async move { run_once(&t, &mut Carry::default()).await });
        rx.wait_for("the resend", |r| {
            r.iter().filter(|r| r.complete).count() == 3 + 5
        })
        .await;
        task.cancel.cancel();
        assert!(run.await.expect("join").is_ok());
        let b = bodies(&rx, &[&va, &vb]);
        assert_eq!(
            b[..8],
            [
                "init0", "seg1", "seg2", "init0", "seg2", "init1", "seg3", "seg4"
            ]
        );
    }
}
