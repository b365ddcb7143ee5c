//! The RTMP/RTMPS driver: a small tokio loop around the sans-IO
//! [`twincast_media::rtmp::ClientSession`].
//!
//! One session = one connection = one publish of one rendition, named
//! `<stream>_<rendition>[key]`, carrying that rendition's video and the audio, interleaved by
//! timestamp. Order after every (re)connect: handshake and publish, `onMetaData`, AVC and AAC
//! sequence headers, the last two fragments delivered before the break, the backlog, live.

use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use twincast_media::rtmp::session::ACK_WINDOW;
use twincast_media::rtmp::{ClientSession, Event, RtmpUrl};
use twincast_media::{Codec, Sample, flv};

use super::net::{self, CONNECT_TIMEOUT, NetError};
use super::{Carry, PublishError, SHUTDOWN_GRACE, Task, Unit, to_ms};
use crate::config::RtmpTimestamps;
use crate::hub::InitSegment;
use crate::status::DestState;

/// Aborts the reader task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn run_once(task: &Task, carry: &mut Carry) -> Result<(), PublishError> {
    let url = RtmpUrl::parse(&task.spec.url)?;
    let Some(video) = task.wait_init(&task.spec.track).await else {
        return Ok(());
    };
    let audio = match task.spec.audio.as_deref() {
        Some(a) => match task.wait_init(a).await {
            Some(i) => Some(i),
            None => return Ok(()),
        },
        None => None,
    };
    let stream = net::connect(&url.host, url.port, url.tls).await?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (mut session, c0c1) = ClientSession::new(
        &url.app,
        &url.tc_url,
        &task.spec.stream_name,
        fastrand::u64(..),
    );
    net::write_all_progress(&mut wr, &c0c1, CONNECT_TIMEOUT).await?;

    // Handshake, connect, createStream, publish: all within the connect timeout.
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut buf = vec![0u8; 16 * 1024];
    let mut published = false;
    while !published {
        let n = tokio::select! {
            _ = task.cancel.cancelled() => return Ok(()),
            r = tokio::time::timeout_at(deadline, rd.read(&mut buf)) => match r {
                Err(_) => return Err(NetError::ReadTimeout(CONNECT_TIMEOUT).into()),
                Ok(Err(e)) => return Err(NetError::Read(e).into()),
                Ok(Ok(0)) => return Err(NetError::Closed.into()),
                Ok(Ok(n)) => n,
            },
        };
        for event in session.handle_input(&buf[..n])? {
            match event {
                Event::Send(bytes) => {
                    net::write_all_progress(&mut wr, &bytes, CONNECT_TIMEOUT).await?
                }
                Event::Published => published = true,
            }
        }
    }
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);

    // From here on a reader task feeds what the server sends.
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, NetError>>(8);
    let _reader = AbortOnDrop(tokio::spawn(async move {
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

    task.rewind();
    let stall = task.spec.stall;
    let mut out = Vec::with_capacity(256 * 1024);
    let mut headers_sent = false;
    let mut progress = AckProgress::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        progress.check(&session, stall)?;
        while let Ok(r) = rx.try_recv() {
            for event in session.handle_input(&r?)? {
                if let Event::Send(b) = event {
                    net::write_all_progress(&mut wr, &b, stall).await?;
                }
            }
        }
        if let Some((id, unit)) = task.next_unsent() {
            encode(
                task,
                &session,
                &video,
                audio.as_deref(),
                &unit,
                carry,
                &mut out,
                &mut headers_sent,
            );
            net::write_all_progress(&mut wr, &out, stall).await?;
            progress.sent(out.len());
            task.mark_sent(id, out.len() as u64);
            continue;
        }
        tokio::select! {
            biased;
            _ = task.cancel.cancelled() => break,
            _ = tick.tick() => {}
            r = rx.recv() => {
                let data = r.ok_or(PublishError::Closed)??;
                for event in session.handle_input(&data)? {
                    if let Event::Send(b) = event {
                        net::write_all_progress(&mut wr, &b, stall).await?;
                    }
                }
            }
            _ = task.wait_unit() => {}
        }
    }

    // Shutdown: what is left (within the grace time), then FCUnpublish + deleteStream.
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let _ = tokio::time::timeout_at(grace, async {
        while let Some((id, unit)) = task.next_unsent() {
            encode(
                task,
                &session,
                &video,
                audio.as_deref(),
                &unit,
                carry,
                &mut out,
                &mut headers_sent,
            );
            if net::write_all_progress(&mut wr, &out, stall).await.is_err() {
                return;
            }
            task.mark_sent(id, out.len() as u64);
        }
        out.clear();
        session.write_unpublish(&mut out);
        let _ = net::write_all_progress(&mut wr, &out, stall).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
    })
    .await;
    Ok(())
}

/// Application-level progress from the server's Acknowledgements (nginx-rtmp and most
/// servers send one every window of bytes they receive; we learn the window from the first
/// two). A byte sent more than a window (plus slack) beyond the last acknowledged one must
/// have produced an acknowledgement once the server got it; if it was sent longer ago than
/// the stall limit and none came, the peer has stopped reading, even while socket buffers
/// still take data. Servers that never acknowledge are judged by write progress alone.
struct AckProgress {
    /// Bytes written since the publish started.
    sent: u64,
    /// Acknowledged bytes, unwrapped from the 32-bit field.
    acked_total: u64,
    last_ack: Option<u32>,
    /// Largest step between two acknowledgements seen (the server's window).
    window: u64,
    /// (position after a write, when it was written), oldest first, unacknowledged only.
    writes: std::collections::VecDeque<(u64, Instant)>,
}

/// Slack on top of the server's window: command bytes we do not count, rounding.
const ACK_SLACK: u64 = 16 * 1024;

impl AckProgress {
    fn new() -> Self {
        AckProgress {
            sent: 0,
            acked_total: 0,
            last_ack: None,
            window: u64::from(ACK_WINDOW),
            writes: std::collections::VecDeque::new(),
        }
    }

    fn sent(&mut self, n: usize) {
        self.sent += n as u64;
        self.writes.push_back((self.sent, Instant::now()));
        if self.writes.len() > 4096 {
            self.writes.pop_front();
        }
    }

    fn check(
        &mut self,
        session: &ClientSession,
        stall: std::time::Duration,
    ) -> Result<(), PublishError> {
        let Some(acked) = session.acked() else {
            return Ok(());
        };
        if self.last_ack != Some(acked) {
            if self.last_ack.is_none() {
                log::debug!("rtmp: the server acknowledges ({acked} bytes so far)");
            }
            let delta = u64::from(self.last_ack.map_or(acked, |l| acked.wrapping_sub(l)));
            if self.last_ack.is_some() {
                self.window = self.window.max(delta);
            }
            self.last_ack = Some(acked);
            self.acked_total += delta;
            // Acks count every byte since the handshake; re-base our count on theirs.
            if self.acked_total > self.sent {
                let shift = self.acked_total - self.sent;
                self.sent += shift;
                for w in self.writes.iter_mut() {
                    w.0 += shift;
                }
            }
            while self.writes.front().is_some_and(|w| w.0 <= self.acked_total) {
                self.writes.pop_front();
            }
        }
        let due = self.acked_total + self.window + ACK_SLACK;
        if let Some((_, at)) = self.writes.iter().find(|w| w.0 >= due)
            && at.elapsed() >= stall
        {
            return Err(NetError::Stalled(stall).into());
        }
        Ok(())
    }
}

/// The RTMP timestamp of `t` (track timescale units) for this task.
fn rtmp_ts(task: &Task, carry: &mut Carry, t: u64, timescale: u32) -> u32 {
    rtmp_timestamp(task.spec.timestamps, &mut carry.zero_base_ms, t, timescale)
}

/// Epoch milliseconds modulo 2^32 (the same on both boxes of a pair), or milliseconds since
/// the first timestamp this task ever sent (`zero_base`, kept across reconnects).
pub fn rtmp_timestamp(
    mode: RtmpTimestamps,
    zero_base: &mut Option<u64>,
    t: u64,
    timescale: u32,
) -> u32 {
    let ms = to_ms(t, timescale);
    match mode {
        RtmpTimestamps::Epoch => (ms & 0xffff_ffff) as u32,
        RtmpTimestamps::Zero => {
            let base = *zero_base.get_or_insert(ms);
            (ms.saturating_sub(base) & 0xffff_ffff) as u32
        }
    }
}

/// Decode time of the unit's first sample, and whether it is video.
fn first_dts(unit: &Unit) -> Option<(u64, bool)> {
    let v = unit
        .main
        .as_ref()
        .and_then(|f| f.samples.first())
        .map(|s| (s.dts, true));
    let a = unit
        .audio
        .as_ref()
        .and_then(|f| f.samples.first())
        .map(|s| (s.dts, false));
    v.or(a)
}

/// The FLV bytes of one unit into `out` (cleared first), preceded once by the headers.
#[allow(clippy::too_many_arguments)]
fn encode(
    task: &Task,
    session: &ClientSession,
    video: &InitSegment,
    audio: Option<&InitSegment>,
    unit: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
    headers_sent: &mut bool,
) {
    out.clear();
    if !*headers_sent {
        write_headers(task, session, video, audio, unit, carry, out);
        *headers_sent = true;
    }
    write_unit(task, session, video, audio, unit, carry, out);
}

fn write_headers(
    task: &Task,
    session: &ClientSession,
    video: &InitSegment,
    audio: Option<&InitSegment>,
    first: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
) {
    // Headers carry the first unit's timestamp, so timestamps never go backwards.
    let ts = match first_dts(first) {
        Some((dts, true)) => rtmp_ts(task, carry, dts, video.info.timescale),
        Some((dts, false)) => rtmp_ts(task, carry, dts, audio.map_or(48_000, |a| a.info.timescale)),
        None => 0,
    };
    session.write_metadata(
        out,
        &flv::metadata(
            Some(&video.info),
            audio.map(|a| &a.info),
            task.spec.frame_rate,
        ),
    );
    if let Codec::H264 { avcc, .. } = &video.info.codec {
        session.write_video(out, ts, &flv::avc_sequence_header(avcc));
    }
    if let Some(Codec::Aac { asc, .. }) = audio.map(|a| &a.info.codec) {
        session.write_audio(out, ts, &flv::aac_sequence_header(asc));
    }
}

/// Appends the unit's video and audio messages, interleaved by decode time.
fn write_unit(
    task: &Task,
    session: &ClientSession,
    video: &InitSegment,
    audio: Option<&InitSegment>,
    unit: &Unit,
    carry: &mut Carry,
    out: &mut Vec<u8>,
) {
    let vts = video.info.timescale.max(1);
    let ats = audio.map_or(48_000, |a| a.info.timescale.max(1));
    let mut items: Vec<(u128, bool, &Sample)> = Vec::new();
    if let Some(f) = &unit.main {
        items.extend(
            f.samples
                .iter()
                .map(|s| (u128::from(s.dts) * 1_000_000_000 / u128::from(vts), true, s)),
        );
    }
    if let Some(f) = &unit.audio {
        items.extend(f.samples.iter().map(|s| {
            (
                u128::from(s.dts) * 1_000_000_000 / u128::from(ats),
                false,
                s,
            )
        }));
    }
    items.sort_by_key(|(t, is_video, _)| (*t, !*is_video));
    let mut body = Vec::with_capacity(64 * 1024);
    for (_, is_video, s) in items {
        body.clear();
        if is_video {
            let ts = rtmp_ts(task, carry, s.dts, vts);
            let cts = i64::from(s.cts_offset) * 1000 / i64::from(vts);
            flv::avc_frame_into(&mut body, s.keyframe, cts as i32, &s.data);
            session.write_video(out, ts, &body);
        } else {
            let ts = rtmp_ts(task, carry, s.dts, ats);
            flv::aac_frame_into(&mut body, &s.data);
            session.write_audio(out, ts, &body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_epoch_ms_mod_2_32_or_zero_based() {
        let t = 1_763_000_000_123u64 * 90; // 90 kHz ticks of an epoch time in ms
        let mut base = None;
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Epoch, &mut base, t, 90_000),
            (1_763_000_000_123u64 % (1 << 32)) as u32
        );
        assert_eq!(base, None);
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Zero, &mut base, t, 90_000),
            0
        );
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Zero, &mut base, t + 3000, 90_000),
            33
        );
        // Audio at 48 kHz lands on the same millisecond scale.
        let a = 1_763_000_000_123u64 * 48;
        assert_eq!(
            rtmp_timestamp(RtmpTimestamps::Epoch, &mut None, a, 48_000),
            (1_763_000_000_123u64 % (1 << 32)) as u32
        );
    }
}
