//! The Smooth sparse track of SCTE-35 signals (`event_track`, on by default for `smooth`;
//! docs/design/signals.md, *Smooth*): per ingest URL, the stream `Streams(scte35)` that Azure
//! Media Services' timed-metadata specification defines, named by a `textstream` with
//! `parentTrackName` and `manifestOutput` in every stream's Live Server Manifest.
//!
//! Unlike the media streams it is not a long-running POST fed from the hub: a sparse track
//! has nothing to say between signals, and the specification asks the encoder to end a sparse
//! POST once its fragment is sent. So:
//! - at start (and again after every failure), one POST of the stream's header boxes alone
//!   (`ftyp`, manifest, `moov`), which makes the server list the track;
//! - for every splice on the schedule, as soon as it is there (its pre-roll is 4 s by default,
//!   what the service needs), one POST of the header boxes and the splice's fragment: `tfxd`
//!   at its arrival time (4 s before the splice, `smooth_sparse::sparse_arrival`), the
//!   message record with the section in the `mdat`. A cancel goes the same way: the same id
//!   and time replace the earlier message.
//!
//! A POST that fails is made again with backoff until the splice time passes (the message is
//! then of no use, counted in `dropped_fragments` and logged). Both boxes of a pair send the
//! same bytes for the same schedule.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use twincast_media::TrackInfo;
use twincast_media::mp4::smooth_sparse as sparse;
use twincast_media::splice::{self, Splice};

use super::http::{self, Body, HttpUrl};
use super::net;
use super::supervisor::Backoff;
use super::{EVENT_TRACK, PublishError};
use crate::hub::Hub;
use crate::signals::Signals;
use crate::status::{DestHandle, DestState};

/// How often the schedule is looked at for new splices.
const POLL: Duration = Duration::from_millis(200);
/// Longest wait for the server's answer to one POST.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// One sparse stream: an output's URL and what its manifest names.
pub struct SparseTask {
    pub output: String,
    pub dest: &'static str,
    pub url: String,
    pub url_safe: String,
    pub key: Option<String>,
    /// The output's media tracks (for the manifest) and the video track the signals belong to.
    pub all_tracks: Vec<String>,
    pub parent: String,
    pub hub: Arc<Hub>,
    pub signals: Arc<Signals>,
    pub status: DestHandle,
    pub cancel: CancellationToken,
}

/// What identifies one message on the schedule (a cancel is a splice of its own).
type Key = (u64, u32, &'static str);

fn key_of(s: &Splice) -> Key {
    (s.frame, s.event_id, s.kind.name())
}

/// The system clock, ns since the epoch (the splice schedule's clock).
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl SparseTask {
    /// Runs until cancelled.
    pub async fn run(self) {
        let Some((header, track_id)) = self.header().await else {
            return;
        };
        // What was on the schedule and already past before this stream started is not its.
        let now = now_ns();
        let mut sent: HashSet<Key> = self
            .signals
            .list()
            .iter()
            .filter(|l| l.splice.time_ns < now)
            .map(|l| key_of(&l.splice))
            .collect();
        let mut last_arrival = None;
        let mut sequence = 0u32;
        let mut backoff = Backoff::default();
        let mut registered = false;
        // The error last logged: a repeat is not logged again (an ingest down for an hour
        // must not fill the journal).
        let mut logged: Option<String> = None;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let result = if registered {
                self.send_new(
                    &header,
                    track_id,
                    &mut sent,
                    &mut last_arrival,
                    &mut sequence,
                )
                .await
            } else {
                self.post(&header, "the sparse track's header").await
            };
            let wait = match result {
                Ok(()) => {
                    if !registered {
                        registered = true;
                        self.status.update(|s| s.state = DestState::Publishing);
                        if logged.take().is_some() {
                            log::info!(
                                output = self.output.as_str(), dest = self.dest, track = EVENT_TRACK;
                                "publish {} {} {} ({}): the ingest takes the sparse track again",
                                self.output, self.dest, EVENT_TRACK, self.url_safe
                            );
                        }
                    }
                    backoff.reset();
                    POLL
                }
                Err(e) => {
                    registered = false;
                    let text = crate::secrets::redact_owned(e.to_string());
                    if logged.as_ref() != Some(&text) {
                        log::warn!(
                            output = self.output.as_str(), dest = self.dest, track = EVENT_TRACK;
                            "publish {} {} {} ({}): {text}; retrying",
                            self.output, self.dest, EVENT_TRACK, self.url_safe
                        );
                        logged = Some(text.clone());
                    }
                    self.status.update(|s| {
                        s.state = DestState::Backoff;
                        s.last_error = Some(text);
                    });
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The header boxes, once every media track of the output has its init segment, and the
    /// sparse track's id (after theirs).
    async fn header(&self) -> Option<(Vec<u8>, u32)> {
        let mut infos: Vec<TrackInfo> = Vec::new();
        for name in &self.all_tracks {
            let track = self.hub.track(name)?;
            let mut rx = track.watch_init();
            loop {
                if let Some(init) = rx.borrow_and_update().clone() {
                    infos.push(init.info.clone());
                    break;
                }
                tokio::select! {
                    _ = self.cancel.cancelled() => return None,
                    r = rx.changed() => r.ok()?,
                }
            }
        }
        let track_id = super::event_track_id(&self.hub);
        let manifest =
            sparse::live_server_manifest_with_sparse(&infos, Some((track_id, &self.parent)));
        Some((sparse::write_sparse_header(track_id, &manifest), track_id))
    }

    /// Sends every splice of the schedule not sent yet whose time is still ahead, in order.
    async fn send_new(
        &self,
        header: &[u8],
        track_id: u32,
        sent: &mut HashSet<Key>,
        last_arrival: &mut Option<u64>,
        sequence: &mut u32,
    ) -> Result<(), PublishError> {
        let now = now_ns();
        let listed = self.signals.list();
        // Bounded by the schedule (256 splices): what left it is forgotten.
        sent.retain(|k| listed.iter().any(|l| key_of(&l.splice) == *k));
        for listed in listed {
            let s = &listed.splice;
            let key = key_of(s);
            // A splice taken back before it went out needs no message: its cancel is one.
            if sent.contains(&key) || s.cancelled {
                continue;
            }
            if s.time_ns < now && s.kind != splice::Kind::Cancel {
                // Too late to be of use.
                sent.insert(key);
                self.status.update(|st| st.dropped_fragments += 1);
                log::warn!(
                    output = self.output.as_str(), dest = self.dest, track = EVENT_TRACK;
                    "publish {} {} {}: splice event {} passed before the sparse track could send it",
                    self.output, self.dest, EVENT_TRACK, s.event_id
                );
                continue;
            }
            let event = splice::event_message(s);
            let Some(presentation) = sparse::to_10mhz(event.presentation_time, event.timescale)
            else {
                sent.insert(key);
                continue;
            };
            let arrival = sparse::sparse_arrival(presentation, *last_arrival);
            let fragment =
                match sparse::write_sparse_fragment(track_id, *sequence + 1, arrival, &event) {
                    Ok(f) => f,
                    Err(e) => {
                        sent.insert(key);
                        self.status.update(|st| st.dropped_fragments += 1);
                        log::warn!(
                            output = self.output.as_str(), dest = self.dest, track = EVENT_TRACK;
                            "publish {} {} {}: splice event {} cannot go on the sparse track: {e}",
                            self.output, self.dest, EVENT_TRACK, s.event_id
                        );
                        continue;
                    }
                };
            let body = [header, &fragment].concat();
            self.post(&body, "a sparse fragment").await?;
            sent.insert(key);
            *sequence += 1;
            *last_arrival = Some(arrival);
            self.status.update(|st| {
                st.fragments_sent += 1;
                st.bytes_sent += body.len() as u64;
            });
        }
        Ok(())
    }

    /// One POST of `body` (with its length) to `Streams(scte35)` on a new connection; `Ok` on
    /// a 2xx.
    async fn post(&self, body: &[u8], what: &'static str) -> Result<(), PublishError> {
        let url = HttpUrl::parse(&self.url).map_err(PublishError::Url)?;
        self.status.update(|s| s.attempts += 1);
        let mut stream = net::connect(&url.host, url.port, url.tls).await?;
        let head = url.request_head(
            "POST",
            &format!("/Streams({EVENT_TRACK})"),
            Body::Length(body.len()),
            self.key.as_deref(),
        );
        let request = [head.as_bytes(), body].concat();
        net::write_all_progress(&mut stream, &request, ANSWER_WAIT).await?;
        let resp = http::read_response(&mut stream, ANSWER_WAIT).await?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(PublishError::Http {
                status: resp.status,
                what,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::test_support::{Receiver, audio_init, boxes, video_init};
    use crate::status::DestStatus;
    use twincast_media::splice::{Request, When};
    use twincast_media::timeline::FrameRate;

    fn task(rx: &Receiver, hub: &Arc<Hub>, signals: &Arc<Signals>) -> (SparseTask, DestHandle) {
        let registry = crate::status::Registry::new();
        let url = format!("http://127.0.0.1:{}/in", rx.port);
        let status = registry.register(DestStatus::new("o", "primary", EVENT_TRACK, &url));
        let t = SparseTask {
            output: "o".into(),
            dest: "primary",
            url: url.clone(),
            url_safe: url,
            key: None,
            all_tracks: vec!["v".into(), "audio".into()],
            parent: "v".into(),
            hub: hub.clone(),
            signals: signals.clone(),
            status: status.clone(),
            cancel: CancellationToken::new(),
        };
        (t, status)
    }

    #[tokio::test]
    async fn the_header_registers_the_track_and_each_splice_goes_4s_ahead_even_after_a_refusal() {
        let rx = Receiver::start().await;
        // The first sparse fragment's POST (request 2: header, then the fragment) is refused.
        crate::sync::lock(&rx.fail).push(1);
        let hub = Hub::for_test(["v", "audio"]);
        hub.tracks[0].set_init(video_init(1, 640, 400_000));
        hub.tracks[1].set_init(audio_init([0x11, 0x90]));
        let rate = FrameRate::new(30, 1).expect("30 fps");
        let signals = Arc::new(Signals::new(rate));
        let (t, status) = task(&rx, &hub, &signals);
        let cancel = t.cancel.clone();
        let run = tokio::spawn(t.run());
        rx.wait_for("the header alone", |r| r.iter().any(|r| r.complete))
            .await;
        let now = now_ns();
        let splice = signals
            .request(
                &Request::Out {
                    event_id: Some(5),
                    duration_ns: Some(30_000_000_000),
                    when: When::Preroll(6_000_000_000),
                },
                now,
            )
            .expect("scheduled");
        rx.wait_for("the fragment, accepted", |r| r.len() >= 4 && r[3].complete)
            .await;
        cancel.cancel();
        let _ = run.await;
        let reqs = rx.requests();
        assert!(
            reqs.iter().all(|r| r.path == "/in/Streams(scte35)"),
            "{reqs:?}"
        );
        // Header alone; header + fragment (refused); the header again; header + fragment.
        let kinds: Vec<bool> = reqs
            .iter()
            .map(|r| boxes(&r.body).iter().any(|b| &b.0 == b"moof"))
            .collect();
        assert_eq!(kinds, [false, true, false, true], "{reqs:?}");
        let last = &reqs[3].body;
        let all = boxes(last);
        let mdat = &all.iter().find(|b| &b.0 == b"mdat").expect("mdat").1[8..];
        let word = |i: usize| u32::from_be_bytes(mdat[i..i + 4].try_into().expect("u32"));
        assert_eq!(
            (word(0), word(4), word(8)),
            (1, splice.frame as u32, 40_000_000)
        );
        assert_eq!(&mdat[12..], &splice.section[..]);
        let manifest = String::from_utf8_lossy(last);
        assert!(
            manifest.contains("<textstream src=\"Streams(scte35)\"")
                && manifest.contains("name=\"parentTrackName\" value=\"v\""),
            "{manifest}"
        );
        let s = status.snapshot();
        assert_eq!((s.fragments_sent, s.dropped_fragments), (1, 0), "{s:?}");
        assert_eq!(s.attempts, 4);
    }
}
