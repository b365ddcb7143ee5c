//! One request → one response: routing by parsed path components, then the HTTP behaviour
//! players and CDNs expect (RFC 9110): `ETag` / `Last-Modified` with `If-None-Match` /
//! `If-Modified-Since` (304), single byte ranges (206, 416, `If-Range`), `HEAD`, CORS,
//! `Cache-Control` (playlists short, segments immutable), 404 for what is not in the window.
//!
//! Nothing here touches the filesystem with a request path: a segment is looked up in the
//! window by its parsed start time, and only then read from the disk tier by its own name; an
//! init segment version (`init-<16 hex>.mp4`) is looked up in RAM by its parsed id.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::inits::parse_init_file_name;
use super::snapshot::OriginSnapshot;
use super::window::fnv1a;
use super::{Origin, assets, now_ns};

/// `Cache-Control` of playlists and the MPD: short, they change every segment.
pub const PLAYLIST_CACHE: &str = "max-age=1";
/// `Cache-Control` of init segments and media segments: their names never change content.
pub const SEGMENT_CACHE: &str = "max-age=31536000, immutable";
/// `Cache-Control` of `init.mp4` once a track's init segment changed (a reload brought new codec
/// parameters): the name's content changed, so it is no longer immutable. Playlists name the
/// versions (`init-<id>.mp4`, immutable) from then on.
pub const CHANGED_INIT_CACHE: &str = "max-age=2";
/// `Cache-Control` of the preview page and players.
pub const ASSET_CACHE: &str = "max-age=300";

pub type Body = Full<Bytes>;

const HLS_TYPE: &str = "application/vnd.apple.mpegurl";
const MPD_TYPE: &str = "application/dash+xml";

/// What a route resolved to, before the conditional/range logic.
struct Object {
    body: Bytes,
    content_type: &'static str,
    cache: &'static str,
    etag: Option<String>,
    last_modified: Option<SystemTime>,
    /// `Vary` header: the representation depends on this request header.
    vary: Option<&'static str>,
}

/// A User-Agent of GStreamer's HTTP sources (`GStreamer souphttpsrc 1.22.0 libsoup/3.2.3`).
fn is_gstreamer(user_agent: &str) -> bool {
    user_agent.contains("GStreamer")
}

fn base(status: StatusCode) -> hyper::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Content-Length, Content-Range, ETag, Last-Modified, Date",
        )
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    base(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

pub fn forbidden() -> Response<Body> {
    plain(StatusCode::FORBIDDEN, "forbidden\n")
}

fn not_found(origin: &Origin) -> Response<Body> {
    origin.counters.not_found.fetch_add(1, Ordering::Relaxed);
    plain(StatusCode::NOT_FOUND, "not in the window\n")
}

/// Is `s` a path component we route on? No dots-only names, no escapes, no separators.
fn clean_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Answers one request.
pub async fn handle<B>(origin: &Arc<Origin>, req: &Request<B>) -> Response<Body> {
    let method = req.method();
    if method == Method::OPTIONS {
        return base(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Range, If-None-Match, If-Modified-Since, If-Range",
            )
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return r;
    }
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix('/') else {
        return not_found(origin);
    };
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if parts.len() > 3 || !parts.iter().all(|p| clean_component(p)) {
        return not_found(origin);
    }
    match route(origin, req, &parts).await {
        Ok(Some(o)) => respond(req.method(), req.headers(), o),
        Ok(None) => not_found(origin),
        Err(early) => early,
    }
}

/// What a clean path names, from one snapshot of the origin: `Ok(None)` is a 404, `Err` an
/// answer of its own (the clock, not ready yet).
async fn route<B>(
    origin: &Arc<Origin>,
    req: &Request<B>,
    parts: &[&str],
) -> Result<Option<Object>, Response<Body>> {
    let snapshot = origin.snapshot();
    Ok(match parts {
        [] | ["index.html"] => Some(asset(assets::INDEX)),
        ["dash.html"] => Some(asset(assets::DASH_PAGE)),
        ["assets", name] => assets::by_name(name).map(asset),
        ["time"] => {
            return Err(base(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-store")
                .body(Full::new(Bytes::from(
                    twincast_media::hls::program_date_time(now_ns()),
                )))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
        }
        ["live", "master.m3u8"] => match snapshot.master_playlist() {
            Some(text) => Some(text_object(text, HLS_TYPE)),
            None => return Err(not_ready()),
        },
        ["live", name @ ("manifest.mpd" | "manifest-number.mpd")] => {
            let header_text = |h| req.headers().get(h).and_then(|v| v.to_str().ok());
            // GStreamer's dashdemux cannot seek in an epoch SegmentTimeline (see
            // `twincast_media::dash`): it gets the `$Number$` form of the same segments.
            let number = *name == "manifest-number.mpd"
                || header_text(header::USER_AGENT).is_some_and(is_gstreamer);
            match snapshot.mpd(
                header_text(header::HOST),
                number,
                now_ns(),
                origin.splice_events(),
            ) {
                Some(text) => {
                    let mut o = text_object(text, MPD_TYPE);
                    o.vary = (*name == "manifest.mpd").then_some("User-Agent");
                    Some(o)
                }
                None => return Err(not_ready()),
            }
        }
        ["live", track, file] => track_file(origin, &snapshot, track, file).await,
        _ => None,
    })
}

fn not_ready() -> Response<Body> {
    let mut r = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "the encoder has not produced its first fragments yet\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn asset(a: assets::Asset) -> Object {
    Object {
        body: Bytes::from_static(a.body),
        content_type: a.content_type,
        cache: ASSET_CACHE,
        etag: Some(format!(
            "\"a{:016x}\"",
            fnv1a(&a.body[..a.body.len().min(4096)]) ^ a.body.len() as u64
        )),
        last_modified: None,
        vary: None,
    }
}

fn text_object(text: String, content_type: &'static str) -> Object {
    let etag = format!("\"p{:016x}\"", fnv1a(text.as_bytes()));
    Object {
        body: Bytes::from(text),
        content_type,
        cache: PLAYLIST_CACHE,
        etag: Some(etag),
        last_modified: None,
        vary: None,
    }
}

async fn track_file(
    origin: &Origin,
    snapshot: &OriginSnapshot,
    track: &str,
    file: &str,
) -> Option<Object> {
    let mp4_type = if snapshot.is_audio(track) {
        "audio/mp4"
    } else {
        "video/mp4"
    };
    match file {
        "index.m3u8" => snapshot
            .media_playlist(track, &origin.splice_marks())
            .map(|text| text_object(text, HLS_TYPE)),
        "init.mp4" => {
            let (init, changed) = snapshot.init_segment(track)?;
            Some(Object {
                etag: Some(format!("\"i{:016x}\"", fnv1a(&init.bytes))),
                body: init.bytes.clone(),
                content_type: mp4_type,
                cache: if changed {
                    CHANGED_INIT_CACHE
                } else {
                    SEGMENT_CACHE
                },
                last_modified: None,
                vary: None,
            })
        }
        other if other.starts_with("init-") => {
            // `init-<16 lowercase hex>.mp4`: one version, by the id the playlists name.
            let id = parse_init_file_name(other)?;
            let init = snapshot.init_version(track, id)?;
            Some(Object {
                etag: Some(format!("\"i{id:016x}\"")),
                body: init.bytes.clone(),
                content_type: mp4_type,
                cache: SEGMENT_CACHE,
                last_modified: None,
                vary: None,
            })
        }
        other => segment_file(origin, snapshot, track, other, mp4_type).await,
    }
}

/// `<t>.m4s` by start time, `n<index>.m4s` by segment index (the `$Number$` MPD).
async fn segment_file(
    origin: &Origin,
    snapshot: &OriginSnapshot,
    track: &str,
    file: &str,
    content_type: &'static str,
) -> Option<Object> {
    let stem = file.strip_suffix(".m4s")?;
    let (by_index, digits) = match stem.strip_prefix('n') {
        Some(d) => (true, d),
        None => (false, stem),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key: u64 = digits.parse().ok()?;
    let (index, segment) = if by_index {
        snapshot.segment_by_index(track, key)?
    } else {
        snapshot.segment(track, key)?
    };
    let body = match &segment.ram {
        Some(b) => b.clone(),
        None => origin.read_from_disk(index, segment).await?,
    };
    let timescale = snapshot.tracks.get(index)?.timescale();
    // The segment's end on the epoch timeline: the same on both boxes of a pair.
    let end_secs = twincast_media::MediaTime::new(segment.end(), timescale).as_secs();
    Some(Object {
        body,
        content_type,
        cache: SEGMENT_CACHE,
        etag: Some(format!("\"{:016x}\"", segment.etag)),
        last_modified: Some(UNIX_EPOCH + Duration::from_secs(end_secs)),
        vary: None,
    })
}

/// A byte range request, resolved against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable Range header: the whole object.
    Full,
    /// Bytes `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a `Range` header value for an object of `len` bytes (RFC 9110 §14.1.2). Only single
/// ranges are honoured; a list of ranges or a malformed header is answered with the whole object.
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last b bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAnswer::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial(start, end.min(len - 1))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}

fn respond(method: &Method, headers: &HeaderMap, o: Object) -> Response<Body> {
    let len = o.body.len() as u64;
    let mut b = base(StatusCode::OK)
        .header(header::CONTENT_TYPE, o.content_type)
        .header(header::CACHE_CONTROL, o.cache)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(e) = &o.etag {
        b = b.header(header::ETAG, e.as_str());
    }
    if let Some(lm) = o.last_modified {
        b = b.header(header::LAST_MODIFIED, httpdate::fmt_http_date(lm));
    }
    if let Some(v) = o.vary {
        b = b.header(header::VARY, v);
    }
    // Conditional requests: If-None-Match wins over If-Modified-Since.
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let not_modified = match (inm, &o.etag) {
        (Some(list), Some(etag)) => etag_matches(list, etag),
        (Some(_), None) => false,
        (None, _) => match (
            headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
            o.last_modified,
        ) {
            (Some(since), Some(lm)) => lm <= since,
            _ => false,
        },
    };
    let empty = || Full::new(Bytes::new());
    if not_modified {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .unwrap_or_else(|_| Response::new(empty()));
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| {
            // If-Range: only when the validator still matches.
            match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
                None => true,
                Some(v) => o.etag.as_deref() == Some(v.trim()),
            }
        })
        .map(|v| parse_range(v, len))
        .unwrap_or(RangeAnswer::Full);
    let head = method == Method::HEAD;
    let (status, body, length) = match range {
        RangeAnswer::Full => (StatusCode::OK, o.body, len),
        RangeAnswer::Partial(start, end) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            let slice = o.body.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, slice, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            return b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(empty())
                .unwrap_or_else(|_| Response::new(empty()));
        }
    };
    let body = if head {
        b = b.header(header::CONTENT_LENGTH, length);
        Bytes::new()
    } else {
        body
    };
    b.status(status)
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAnswer::Partial(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAnswer::Partial(90, 99));
        assert_eq!(
            parse_range("bytes=90-500", 100),
            RangeAnswer::Partial(90, 99)
        );
        assert_eq!(parse_range("bytes=-10", 100), RangeAnswer::Partial(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeAnswer::Partial(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeAnswer::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAnswer::Full);
        assert_eq!(parse_range("items=0-1", 100), RangeAnswer::Full);
        assert_eq!(parse_range("bytes=x-1", 100), RangeAnswer::Full);
        assert_eq!(
            parse_range("bytes=18446744073709551615-", 100),
            RangeAnswer::Unsatisfiable
        );
    }

    #[test]
    fn components() {
        for bad in ["", ".", "..", "a%2e", "a\\b", "é", "a b"] {
            assert!(!clean_component(bad), "{bad:?}");
        }
        for good in ["720p", "audio", "123.m4s", "index.m3u8", "hls.min.js"] {
            assert!(clean_component(good), "{good:?}");
        }
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }

    async fn get(origin: &Arc<Origin>, path: &str) -> (StatusCode, Option<String>, Bytes) {
        use http_body_util::BodyExt;
        let req = Request::builder().uri(path).body(()).expect("request");
        let resp = handle(origin, &req).await;
        let status = resp.status();
        let cache = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, cache, body)
    }

    #[tokio::test]
    async fn init_versions_by_id_and_init_mp4_caching_after_a_change() {
        use super::super::fixtures::*;
        let origin = origin(600).await;
        for n in 100..102 {
            feed_both(&origin, n, None).await;
        }
        let (status, cache, body) = get(&origin, "/live/v/init.mp4").await;
        assert_eq!(
            (status, cache.as_deref(), &body[..]),
            (StatusCode::OK, Some(SEGMENT_CACHE), &b"init"[..])
        );
        let a = format!("/live/v/init-{}.mp4", hex(b"init"));
        let (status, cache, body) = get(&origin, &a).await;
        assert_eq!(
            (status, cache.as_deref(), &body[..]),
            (StatusCode::OK, Some(SEGMENT_CACHE), &b"init"[..])
        );

        let origin = changed_origin(600, 106).await;
        let (status, cache, body) = get(&origin, "/live/v/init.mp4").await;
        assert_eq!(
            (status, cache.as_deref(), &body[..]),
            (StatusCode::OK, Some(CHANGED_INIT_CACHE), &b"init-b"[..])
        );
        for (version, bytes) in [(&b"init"[..], &b"init"[..]), (b"init-b", b"init-b")] {
            let path = format!("/live/v/init-{}.mp4", hex(version));
            let (status, cache, body) = get(&origin, &path).await;
            assert_eq!(
                (status, cache.as_deref(), &body[..]),
                (StatusCode::OK, Some(SEGMENT_CACHE), bytes),
                "{path}"
            );
        }
        // The audio never changed.
        let (_, cache, _) = get(&origin, "/live/audio/init.mp4").await;
        assert_eq!(cache.as_deref(), Some(SEGMENT_CACHE));
        let upper = format!("/live/v/init-{}.mp4", hex(b"init").to_uppercase());
        let short = format!("/live/v/init-{}.mp4", &hex(b"init")[1..]);
        let long = format!("/live/v/init-0{}.mp4", hex(b"init"));
        let other_track = format!("/live/audio/init-{}.mp4", hex(b"init"));
        for path in [
            "/live/v/init-0000000000000000.mp4",
            "/live/v/init-.mp4",
            "/live/v/init-zzzzzzzzzzzzzzzz.mp4",
            "/live/v/init-../init.mp4",
            "/live/nope/init-0000000000000000.mp4",
            upper.as_str(),
            short.as_str(),
            long.as_str(),
            other_track.as_str(),
        ] {
            assert_eq!(get(&origin, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
