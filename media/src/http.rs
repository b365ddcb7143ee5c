//! The HTTP/1.1 response parser of the ingest drivers (RFC 9112), without I/O: the caller
//! pushes what its socket gave and gets the status once the response is complete
//! (`src/publish/http.rs` does the reading). Fuzzed in `fuzz/fuzz_targets/http_response.rs`.
//!
//! Everything a hostile server controls is bounded: head bytes ([`MAX_HEAD`]), header fields
//! ([`MAX_HEADERS`]), chunk-size and trailer lines ([`MAX_LINE`]), interim responses
//! ([`MAX_INTERIM`]) and body bytes ([`MAX_BODY`]).

/// Response heads larger than this are a broken or hostile peer.
pub const MAX_HEAD: usize = 16 * 1024;
/// Response body bytes we read (and discard) at most; past this the connection is given up.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the drivers need from a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection after this response, or this client will (a body
    /// that runs to the close, or one over [`MAX_BODY`]): the connection is not reused.
    pub close: bool,
}

/// Why a response could not be read. Every bound names its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP response head over the limit of {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("HTTP response with more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("HTTP response: malformed status line")]
    StatusLine,
    #[error("HTTP response: malformed header field line")]
    HeaderLine,
    #[error("HTTP response: invalid or conflicting Content-Length")]
    ContentLength,
    #[error("HTTP response: malformed chunked body")]
    Chunked,
    #[error("HTTP response: more than {limit} interim (1xx) responses")]
    TooManyInterim { limit: usize },
}

/// Where the parser is (RFC 9112 §4 status line, §5 fields, §6.3 body length, §7.1 chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

/// A response parser without I/O: push what the socket gave; it holds at most one head
/// ([`MAX_HEAD`]) or one chunk-size/trailer line, never a body (body bytes are counted and
/// dropped; past [`MAX_BODY`] the response is complete with `close`).
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    state: State,
    interim: usize,
    body: u64,
    trailer_bytes: usize,
    status: u16,
    close: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser {
            buf: Vec::new(),
            state: State::Head,
            interim: 0,
            body: 0,
            trailer_bytes: 0,
            status: 0,
            close: false,
        }
    }
}

impl ResponseParser {
    /// Feeds bytes; `Some` once the response (head and body) is complete. Bytes after it are
    /// ignored (the drivers never pipeline).
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Response>, HttpError> {
        if self.state == State::Done {
            return Ok(Some(self.response()));
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = self.run(&mut pos);
        self.buf.drain(..pos.min(self.buf.len()));
        result
    }

    fn response(&self) -> Response {
        Response {
            status: self.status,
            close: self.close,
        }
    }

    fn run(&mut self, pos: &mut usize) -> Result<Option<Response>, HttpError> {
        loop {
            let avail = &self.buf[*pos..];
            match self.state {
                State::Done => return Ok(Some(self.response())),
                State::Head => {
                    let Some(end) = find(avail, b"\r\n\r\n") else {
                        if avail.len() > MAX_HEAD {
                            return Err(HttpError::HeadTooLarge { limit: MAX_HEAD });
                        }
                        return Ok(None);
                    };
                    if end + 4 > MAX_HEAD {
                        return Err(HttpError::HeadTooLarge { limit: MAX_HEAD });
                    }
                    let head = avail[..end].to_vec();
                    *pos += end + 4;
                    self.head(&head)?;
                }
                State::Length(left) => {
                    let take = left.min(avail.len() as u64);
                    *pos += take as usize;
                    self.count_body(take);
                    if left == take || self.over_body_limit() {
                        self.state = State::Done;
                    } else {
                        self.state = State::Length(left - take);
                        return Ok(None);
                    }
                }
                State::ChunkSize => {
                    let Some(line) = self.line(pos)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    let take = left.min(avail.len() as u64);
                    *pos += take as usize;
                    self.count_body(take);
                    if self.over_body_limit() {
                        self.state = State::Done;
                    } else if left == take {
                        self.state = State::ChunkDataEnd;
                    } else {
                        self.state = State::ChunkData(left - take);
                        return Ok(None);
                    }
                }
                State::ChunkDataEnd => {
                    let Some(line) = self.line(pos)? else {
                        return Ok(None);
                    };
                    if !line.is_empty() {
                        return Err(HttpError::Chunked);
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let before = *pos;
                    let Some(line) = self.line(pos)? else {
                        return Ok(None);
                    };
                    self.trailer_bytes += *pos - before;
                    if self.trailer_bytes > MAX_HEAD {
                        return Err(HttpError::HeadTooLarge { limit: MAX_HEAD });
                    }
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// One CRLF-terminated line of a chunked body (at most [`MAX_LINE`] bytes).
    fn line(&self, pos: &mut usize) -> Result<Option<Vec<u8>>, HttpError> {
        let avail = &self.buf[*pos..];
        match find(avail, b"\r\n") {
            Some(i) if i <= MAX_LINE => {
                *pos += i + 2;
                Ok(Some(avail[..i].to_vec()))
            }
            Some(_) => Err(HttpError::Chunked),
            None if avail.len() > MAX_LINE => Err(HttpError::Chunked),
            None => Ok(None),
        }
    }

    fn count_body(&mut self, n: u64) {
        self.body = self.body.saturating_add(n);
    }

    /// Past [`MAX_BODY`] the rest is not read: the connection is given up instead.
    fn over_body_limit(&mut self) -> bool {
        if self.body >= MAX_BODY as u64 {
            self.close = true;
            return true;
        }
        false
    }

    /// Parses a head (without its final blank line) and picks how the body is framed.
    fn head(&mut self, head: &[u8]) -> Result<(), HttpError> {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let status = status_line(lines.next().unwrap_or(""))?;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut encoded = false;
        let mut close = false;
        for (n, line) in lines.enumerate() {
            if n >= MAX_HEADERS {
                return Err(HttpError::TooManyHeaders { limit: MAX_HEADERS });
            }
            // No obsolete line folding (RFC 9112 §5.2): a line starting with space is an error.
            let (k, v) = line.split_once(':').ok_or(HttpError::HeaderLine)?;
            if k.is_empty() || k.contains([' ', '\t']) {
                return Err(HttpError::HeaderLine);
            }
            let v = v.trim_matches([' ', '\t']);
            if k.eq_ignore_ascii_case("content-length") {
                for part in v.split(',') {
                    let part = part.trim_matches([' ', '\t']);
                    if part.is_empty()
                        || part.len() > 19
                        || !part.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(HttpError::ContentLength);
                    }
                    let value: u64 = part.parse().map_err(|_| HttpError::ContentLength)?;
                    if length.is_some_and(|l| l != value) {
                        return Err(HttpError::ContentLength);
                    }
                    length = Some(value);
                }
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                chunked = v
                    .rsplit(',')
                    .next()
                    .is_some_and(|c| c.trim_matches([' ', '\t']).eq_ignore_ascii_case("chunked"));
            } else if k.eq_ignore_ascii_case("connection") {
                close |= v
                    .split(',')
                    .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case("close"));
            }
        }
        // Interim responses (100 Continue, 103 Early Hints) come before the real one.
        if (100..200).contains(&status) && status != 101 {
            self.interim += 1;
            if self.interim > MAX_INTERIM {
                return Err(HttpError::TooManyInterim { limit: MAX_INTERIM });
            }
            return Ok(());
        }
        self.status = status;
        self.close = close;
        self.state = if status == 101 || status == 204 || status == 304 {
            if status == 101 {
                self.close = true;
            }
            State::Done
        } else if encoded && chunked {
            State::ChunkSize
        } else if encoded {
            // A body framed by the close (RFC 9112 §6.3 rule 4): not read, connection given up.
            self.close = true;
            State::Done
        } else {
            match length {
                Some(0) => State::Done,
                Some(n) => State::Length(n),
                None => {
                    // No framing: the body runs to the close (§6.3 rule 8).
                    self.close = true;
                    State::Done
                }
            }
        };
        Ok(())
    }
}

/// Longest chunk-size or trailer line we take.
pub const MAX_LINE: usize = 1024;
/// Interim (1xx) responses we skip before the final one.
pub const MAX_INTERIM: usize = 8;
/// Header fields in one response head.
pub const MAX_HEADERS: usize = 64;

/// `HTTP/1.x NNN reason`: the status code.
fn status_line(line: &str) -> Result<u16, HttpError> {
    let rest = line.strip_prefix("HTTP/1.").ok_or(HttpError::StatusLine)?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if minor.len() != 1
        || !minor.as_bytes()[0].is_ascii_digit()
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(HttpError::StatusLine);
    }
    let status: u16 = code.parse().map_err(|_| HttpError::StatusLine)?;
    if !(100..600).contains(&status) {
        return Err(HttpError::StatusLine);
    }
    Ok(status)
}

/// `hex[;ext]`: the chunk size.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let hex = hex.trim_ascii_end();
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::Chunked);
    }
    let mut n = 0u64;
    for &b in hex {
        let d = (b as char).to_digit(16).ok_or(HttpError::Chunked)?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` one byte at a time (every split must give the same answer).
    fn parse_bytewise(data: &[u8]) -> Result<Option<Response>, HttpError> {
        let mut p = ResponseParser::default();
        let mut last = Ok(None);
        for b in data {
            last = p.push(std::slice::from_ref(b));
            if !matches!(last, Ok(None)) {
                break;
            }
        }
        last
    }

    #[test]
    fn chunked_bodies_are_parsed_not_searched() {
        // A chunk whose data contains "0\r\n\r\n" does not end the body.
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7;x=y\r\na0\r\n\r\nb\r\n0\r\nTrailer: t\r\n\r\n";
        for cut in [data.len() - 30, data.len() - 1] {
            let mut p = ResponseParser::default();
            assert_eq!(p.push(&data[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(
            parse_bytewise(data).unwrap(),
            Some(Response {
                status: 200,
                close: false
            })
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        ] {
            assert_eq!(parse_bytewise(bad), Err(HttpError::Chunked), "{bad:?}");
        }
    }

    #[test]
    fn the_head_is_bounded_in_bytes_and_fields() {
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        let mut p = ResponseParser::default();
        assert_eq!(
            p.push(&big),
            Err(HttpError::HeadTooLarge { limit: 16 * 1024 })
        );
        assert!(
            HttpError::HeadTooLarge { limit: MAX_HEAD }
                .to_string()
                .contains("16384 bytes")
        );
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            ResponseParser::default().push(&many),
            Err(HttpError::TooManyHeaders { limit: 64 })
        );
        // 64 fields are fine.
        let mut ok = b"HTTP/1.1 204 No Content\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            ok.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        ok.extend_from_slice(b"\r\n");
        assert_eq!(
            ResponseParser::default()
                .push(&ok)
                .unwrap()
                .map(|r| r.status),
            Some(204)
        );
        let mut interim = Vec::new();
        for _ in 0..=MAX_INTERIM {
            interim.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        assert_eq!(
            ResponseParser::default().push(&interim),
            Err(HttpError::TooManyInterim { limit: 8 })
        );
    }

    #[test]
    fn bodies_are_bounded_and_framing_errors_are_errors() {
        // A 10 MB body: complete after MAX_BODY bytes, and the connection is given up.
        let mut p = ResponseParser::default();
        assert_eq!(
            p.push(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"),
            Ok(None)
        );
        let block = vec![0u8; 64 * 1024];
        let mut fed = 0;
        let resp = loop {
            fed += block.len();
            if let Some(r) = p.push(&block).unwrap() {
                break r;
            }
            assert!(fed <= MAX_BODY, "read past the body limit");
        };
        assert_eq!((resp.status, resp.close, fed), (200, true, MAX_BODY));
        // Same for chunked.
        let mut p = ResponseParser::default();
        p.push(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let mut fed = 0;
        let resp = loop {
            let mut c = b"10000\r\n".to_vec();
            c.extend_from_slice(&block);
            c.extend_from_slice(b"\r\n");
            fed += block.len();
            if let Some(r) = p.push(&c).unwrap() {
                break r;
            }
            assert!(fed <= MAX_BODY, "read past the body limit");
        };
        assert!(resp.close);
        // No framing at all: the body runs to the close; not read, connection given up.
        assert_eq!(
            ResponseParser::default()
                .push(b"HTTP/1.1 200 OK\r\n\r\n")
                .unwrap(),
            Some(Response {
                status: 200,
                close: true
            })
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                parse_bytewise(bad),
                Err(HttpError::ContentLength),
                "{bad:?}"
            );
        }
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
        ] {
            assert_eq!(parse_bytewise(bad), Err(HttpError::StatusLine), "{bad:?}");
        }
        assert_eq!(
            parse_bytewise(b"HTTP/1.1 200 OK\r\n folded\r\n\r\n"),
            Err(HttpError::HeaderLine)
        );
        // Content-Length: 3, 3 is one value (RFC 9110 §8.6).
        assert_eq!(
            parse_bytewise(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc").unwrap(),
            Some(Response {
                status: 200,
                close: false
            })
        );
    }
}
