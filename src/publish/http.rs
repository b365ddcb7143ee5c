//! The small HTTP/1.1 client the Smooth and CMAF ingest drivers need (RFC 9112): a request
//! with a fixed-length or chunked body, and a response status read with a deadline. Written
//! here rather than taken from a general client because the drivers need to see each write's
//! progress (stall detection) and to end a chunked body on their own terms.
//!
//! The response side is a parser without I/O in the media crate (`media/src/http.rs`,
//! [`ResponseParser`], fuzzed in `fuzz/fuzz_targets/http_response.rs`) with a bound on
//! everything a hostile server controls; [`read_response`] feeds it from a socket.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::net::NetError;
pub use twincast_media::http::{
    HttpError, MAX_BODY, MAX_HEAD, MAX_HEADERS, MAX_INTERIM, MAX_LINE, Response, ResponseParser,
};

/// An `http://` or `https://` ingest URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path (and query) without a trailing '/'; may be empty.
    pub path: String,
    /// `Authorization` header value from `user:password@` in the URL.
    pub authorization: Option<String>,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("scheme is not http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                Some(p.parse::<u16>().map_err(|_| "port is not a number")?),
            ),
            _ => (hostport, None),
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(HttpUrl {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path: path.trim_end_matches('/').to_string(),
            authorization: userinfo.map(|u| format!("Basic {}", base64(u.as_bytes()))),
        })
    }

    /// The request head for `method path` (path relative to the URL's path).
    pub fn request_head(
        &self,
        method: &str,
        sub: &str,
        body: Body,
        bearer: Option<&str>,
    ) -> String {
        let mut head = format!(
            "{method} {}{sub} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: twincast/{}\r\nContent-Type: video/mp4\r\n",
            self.path,
            self.host,
            self.port,
            env!("CARGO_PKG_VERSION")
        );
        match body {
            Body::Length(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
            Body::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        if let Some(a) = &self.authorization {
            head.push_str(&format!("Authorization: {a}\r\n"));
        } else if let Some(b) = bearer {
            head.push_str(&format!("Authorization: Bearer {b}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Length(usize),
    Chunked,
}

/// Appends one chunk of a chunked body.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Reads one response (head and body) with `timeout` for each read.
pub async fn read_response<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    timeout: Duration,
) -> Result<Response, NetError> {
    let mut parser = ResponseParser::default();
    let mut tmp = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(timeout, r.read(&mut tmp)).await {
            Err(_) => return Err(NetError::ReadTimeout(timeout)),
            Ok(Err(e)) => return Err(NetError::Read(e)),
            Ok(Ok(0)) => return Err(NetError::Closed),
            Ok(Ok(n)) => n,
        };
        match parser.push(&tmp[..n]) {
            Ok(Some(resp)) => return Ok(resp),
            Ok(None) => {}
            Err(e) => return Err(NetError::Read(std::io::Error::other(e))),
        }
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_credentials() {
        let u = HttpUrl::parse("https://user:pw@ingest.example:8443/in/ingest.isml/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "ingest.example", 8443)
        );
        assert_eq!(u.path, "/in/ingest.isml");
        assert_eq!(u.authorization.as_deref(), Some("Basic dXNlcjpwdw=="));
        let u = HttpUrl::parse("http://127.0.0.1:9/x").unwrap();
        assert_eq!((u.port, u.path.as_str()), (9, "/x"));
        assert!(HttpUrl::parse("ftp://x").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[tokio::test]
    async fn reads_responses() {
        let mut r: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!";
        let resp = read_response(&mut r, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            resp,
            Response {
                status: 403,
                close: false
            }
        );
        let mut r: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let resp = read_response(&mut r, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            resp,
            Response {
                status: 200,
                close: true
            }
        );
        let mut r: &[u8] = b"garbage\r\n\r\n";
        assert!(read_response(&mut r, Duration::from_secs(1)).await.is_err());
        let mut r: &[u8] = b"HTTP/1.1 200";
        assert!(read_response(&mut r, Duration::from_secs(1)).await.is_err());
        // 100 Continue first, then the answer; a body in two reads.
        let mut r: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let resp = read_response(&mut r, Duration::from_secs(1)).await.unwrap();
        assert_eq!((resp.status, resp.close), (201, false));
    }
}
