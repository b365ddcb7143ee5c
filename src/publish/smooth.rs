//! The Smooth (Azure fragmented-MP4 live ingest, MS-SSTR) driver: per track, an empty POST to
//! `<url>/Streams(<track>)`, then one long-running chunked POST to the same URL whose body is
//! `ftyp` + Live Server Manifest box + `moov`, then `moof`/`mdat` fragments with `tfxd`, one
//! HTTP chunk per box group. The header boxes start every POST; after a reconnect the last two
//! fragments delivered before the break go again, then the backlog, then live. At shutdown
//! the chunked body ends with its last chunk.

use std::time::Instant;

use tokio::io::AsyncReadExt;
use twincast_media::TrackInfo;
use twincast_media::mp4::smooth;

use super::http::{self, Body, HttpUrl};
use super::net::{self, NetError};
use super::{Carry, PublishError, SHUTDOWN_GRACE, Task};
use crate::status::DestState;

/// Shortest time we wait for an answer to the empty POST.
const MIN_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn run_once(task: &Task, carry: &mut Carry) -> Result<(), PublishError> {
    let url = HttpUrl::parse(&task.spec.url).map_err(PublishError::Url)?;
    let Some(init) = task.wait_init(&task.spec.track).await else {
        return Ok(());
    };
    let track = init.info.clone();
    // The manifest names every stream of this output whose header is known.
    let infos: Vec<TrackInfo> = task
        .spec
        .all_tracks
        .iter()
        .filter_map(|t| task.hub.track(t).and_then(|h| h.init()))
        .map(|i| i.info.clone())
        .collect();
    let header = smooth::write_header(&track, &smooth::live_server_manifest(&infos));
    let path = format!("/Streams({})", task.spec.track);
    let key = task.spec.key.as_deref();
    let wait = task.spec.stall.max(MIN_ANSWER_WAIT);

    // 1. The empty POST.
    let mut stream = net::connect(&url.host, url.port, url.tls).await?;
    let head = url.request_head("POST", &path, Body::Length(0), key);
    net::write_all_progress(&mut stream, head.as_bytes(), task.spec.stall).await?;
    let resp = http::read_response(&mut stream, wait).await?;
    if !(200..300).contains(&resp.status) {
        return Err(PublishError::Http {
            status: resp.status,
            what: "the empty POST",
        });
    }
    if resp.close {
        stream = net::connect(&url.host, url.port, url.tls).await?;
    }

    // 2. The long-running chunked POST.
    let mut out = Vec::with_capacity(256 * 1024);
    out.extend_from_slice(
        url.request_head("POST", &path, Body::Chunked, key)
            .as_bytes(),
    );
    http::chunk(&mut out, &header);
    let (mut rd, mut wr) = tokio::io::split(stream);
    net::write_all_progress(&mut wr, &out, task.spec.stall).await?;
    carry.published_at = Some(Instant::now());
    task.set_state(DestState::Publishing, None);
    task.rewind();

    let mut probe = [0u8; 1024];
    loop {
        if let Some((id, unit)) = task.next_unsent() {
            out.clear();
            if let Some(f) = &unit.main {
                let frag = smooth::write_fragment(&track, f.sequence as u32, &f.samples);
                http::chunk(&mut out, &frag);
            }
            net::write_all_progress(&mut wr, &out, task.spec.stall).await?;
            task.mark_sent(id, out.len() as u64);
            continue;
        }
        tokio::select! {
            biased;
            _ = task.cancel.cancelled() => break,
            // The server answers a streaming POST only when it ends it (error or close).
            r = rd.read(&mut probe) => {
                return Err(match r {
                    Ok(0) => PublishError::Closed,
                    Ok(_) => PublishError::Http { status: answer_status(&probe), what: "the stream" },
                    Err(e) => NetError::Read(e).into(),
                });
            }
            _ = task.wait_unit() => {}
        }
    }

    // Shutdown: the rest, then the last chunk, then the answer (all within the grace time).
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let _ = tokio::time::timeout_at(grace, async {
        while let Some((id, unit)) = task.next_unsent() {
            out.clear();
            if let Some(f) = &unit.main {
                let frag = smooth::write_fragment(&track, f.sequence as u32, &f.samples);
                http::chunk(&mut out, &frag);
            }
            if net::write_all_progress(&mut wr, &out, task.spec.stall)
                .await
                .is_err()
            {
                return;
            }
            task.mark_sent(id, out.len() as u64);
        }
        if net::write_all_progress(&mut wr, http::LAST_CHUNK, task.spec.stall)
            .await
            .is_ok()
        {
            let mut rd = rd;
            let _ = http::read_response(&mut rd, SHUTDOWN_GRACE).await;
        }
    })
    .await;
    Ok(())
}

/// The status code of an early answer, or 0 when it is not readable.
fn answer_status(bytes: &[u8]) -> u16 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
