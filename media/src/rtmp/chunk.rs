//! The RTMP chunk stream (§5.3): messages split into chunks on the way out, chunks reassembled
//! into messages on the way in.
//!
//! Outgoing: every message starts with a type-0 header (absolute timestamp, so a resend after a
//! reconnect or a jump in time never depends on earlier deltas) and continues with type-3
//! chunks. Timestamps at or above 0xFFFFFF use the extended timestamp field, repeated in every
//! type-3 chunk of the message (as Flash Media Server, FFmpeg and nginx-rtmp expect).

use std::collections::HashMap;

use thiserror::Error;

use crate::amf0::Amf0Error;

/// Chunk size both sides start with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// The largest chunk size a peer may announce that we accept (the field is 31 bits; bigger
/// values only make a peer's memory our problem).
pub const MAX_IN_CHUNK_SIZE: usize = 1 << 24;
/// Chunk streams we track at once on input; more is a misbehaving server (a server talking to
/// a publisher uses two or three: protocol control, commands, and perhaps one more).
pub const MAX_IN_CHUNK_STREAMS: usize = 16;
/// Largest message we take from a server: a server only sends protocol control, user control
/// and command messages to a publisher (RTMP §5.4, §7.2), all far smaller. Together with
/// [`MAX_IN_CHUNK_STREAMS`] this bounds what a hostile server can make us hold to 1 MiB.
pub const MAX_IN_MESSAGE: usize = 64 * 1024;
const EXTENDED_TIMESTAMP: u32 = 0x00ff_ffff;

/// What went wrong in an RTMP exchange. Messages never contain credentials: they name
/// commands and fields only.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtmpError {
    #[error("RTMP URL: {0}")]
    Url(&'static str),
    #[error("RTMP handshake: {0}")]
    Handshake(&'static str),
    #[error("RTMP chunk stream: {0}")]
    Chunk(&'static str),
    #[error(
        "RTMP chunk stream: the server announced a message of {length} bytes (type {type_id}), \
         over the limit of {limit} bytes (a server only sends control and command messages)"
    )]
    MessageTooLarge {
        length: u32,
        type_id: u8,
        limit: usize,
    },
    #[error("RTMP chunk stream: the server opened more than {limit} chunk streams")]
    TooManyChunkStreams { limit: usize },
    #[error("RTMP {command}: {source}")]
    Amf0 {
        command: &'static str,
        #[source]
        source: Amf0Error,
    },
    /// The server refused (`_error`, or an `onStatus` with level "error").
    #[error("RTMP server refused {command}: {code}{}", if description.is_empty() { String::new() } else { format!(" ({description})") })]
    Refused {
        command: &'static str,
        code: String,
        description: String,
    },
    #[error("RTMP: {0}")]
    Protocol(&'static str),
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub type_id: u8,
    pub stream_id: u32,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// Splits outgoing messages into chunks.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Changes the outgoing chunk size; the caller sends Set Chunk Size first.
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, 0x7fff_ffff);
    }

    /// Appends `payload` as one message on chunk stream `csid` (2..=65599).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) {
        let ext = timestamp >= EXTENDED_TIMESTAMP;
        let ts_field = if ext { EXTENDED_TIMESTAMP } else { timestamp };
        let len = u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .min(0x00ff_ffff);
        let payload = &payload[..len as usize];
        out.reserve(payload.len() + 18 + payload.len() / self.chunk_size * 8);
        basic_header(out, 0, csid);
        out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if ext {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        let mut chunks = payload.chunks(self.chunk_size);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            basic_header(out, 3, csid);
            if ext {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
            out.extend_from_slice(chunk);
        }
    }
}

fn basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=1 => out.push(fmt | 2),
        2..=63 => out.push(fmt | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let v = (csid.min(65599) - 64) as u16;
            out.push(fmt | 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

#[derive(Debug, Default, Clone)]
struct InStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    ext: bool,
    payload: Vec<u8>,
    started: bool,
}

/// Reassembles incoming chunks into messages.
#[derive(Debug)]
pub struct ChunkReader {
    buf: Vec<u8>,
    chunk_size: usize,
    streams: HashMap<u32, InStream>,
    /// Bytes consumed so far (for acknowledgements).
    pub bytes_in: u64,
}

impl Default for ChunkReader {
    fn default() -> Self {
        ChunkReader {
            buf: Vec::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            bytes_in: 0,
        }
    }
}

impl ChunkReader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Applies a peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        let size = (size & 0x7fff_ffff) as usize;
        if size == 0 || size > MAX_IN_CHUNK_SIZE {
            return Err(RtmpError::Chunk("peer chunk size out of range"));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Forgets a partly received message (Abort, §5.4.2).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            s.payload.clear();
        }
    }

    /// The next complete message, or None when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, RtmpError> {
        loop {
            let Some((consumed, message)) = self.parse_chunk()? else {
                return Ok(None);
            };
            self.buf.drain(..consumed);
            self.bytes_in += consumed as u64;
            if let Some(m) = message {
                return Ok(Some(m));
            }
        }
    }

    /// Parses one chunk at the front of the buffer: None if incomplete, else the bytes it
    /// used and the message it completed (if any).
    fn parse_chunk(&mut self) -> Result<Option<(usize, Option<Message>)>, RtmpError> {
        let b = &self.buf;
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&v) => (u32::from(v) + 64, 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (u32::from(u16::from_le_bytes([lo, hi])) + 64, 3),
                _ => return Ok(None),
            },
            v => (u32::from(v), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if b.len() < pos + header_len {
            return Ok(None);
        }
        if !self.streams.contains_key(&csid) {
            if fmt != 0 {
                return Err(RtmpError::Chunk(
                    "first chunk of a chunk stream has no full header",
                ));
            }
            if self.streams.len() >= MAX_IN_CHUNK_STREAMS {
                return Err(RtmpError::TooManyChunkStreams {
                    limit: MAX_IN_CHUNK_STREAMS,
                });
            }
        }
        let h = &b[pos..pos + header_len];
        let u24 = |s: &[u8]| u32::from_be_bytes([0, s[0], s[1], s[2]]);
        let prev = self.streams.get(&csid).cloned().unwrap_or_default();
        let mut st = prev.clone();
        let mut ts_field = 0;
        if fmt <= 2 {
            ts_field = u24(&h[0..3]);
            st.ext = ts_field == EXTENDED_TIMESTAMP;
        }
        if fmt <= 1 {
            st.length = u24(&h[3..6]);
            st.type_id = h[6];
            if st.length as usize > MAX_IN_MESSAGE {
                return Err(RtmpError::MessageTooLarge {
                    length: st.length,
                    type_id: st.type_id,
                    limit: MAX_IN_MESSAGE,
                });
            }
        }
        if fmt == 0 {
            st.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        pos += header_len;
        let mut ext_value = None;
        if st.ext {
            let Some(e) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            ext_value = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            pos += 4;
        }
        let starting = prev.payload.is_empty();
        let remaining = (st.length as usize).saturating_sub(st.payload.len());
        let take = remaining.min(self.chunk_size);
        if b.len() < pos + take {
            return Ok(None);
        }
        if starting {
            let field = ext_value.unwrap_or(ts_field);
            match fmt {
                0 => st.timestamp = field,
                1 | 2 => {
                    st.delta = field;
                    st.timestamp = st.timestamp.wrapping_add(field);
                }
                _ => {
                    if st.started {
                        st.timestamp = st.timestamp.wrapping_add(st.delta);
                    }
                }
            }
        }
        st.started = true;
        st.payload.extend_from_slice(&b[pos..pos + take]);
        pos += take;
        let message = if st.payload.len() >= st.length as usize {
            Some(Message {
                type_id: st.type_id,
                stream_id: st.stream_id,
                timestamp: st.timestamp,
                payload: std::mem::take(&mut st.payload),
            })
        } else {
            None
        };
        self.streams.insert(csid, st);
        Ok(Some((pos, message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_chunks_of_any_size() {
        for size in [1usize, 128, 4096] {
            let mut w = ChunkWriter::default();
            w.set_chunk_size(size);
            let mut out = Vec::new();
            let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
            w.write(&mut out, 6, 9, 1, 0x1234_5678, &big);
            w.write(&mut out, 4, 8, 1, 5, b"abc");
            w.write(&mut out, 400, 20, 0, 0, b"");
            let mut r = ChunkReader::default();
            r.set_chunk_size(size as u32).unwrap();
            // Feed byte by byte: every prefix must parse cleanly.
            let mut got = Vec::new();
            for b in &out {
                r.push(std::slice::from_ref(b));
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 3, "chunk size {size}");
            assert_eq!(got[0].payload, big);
            assert_eq!(got[0].timestamp, 0x1234_5678);
            assert_eq!((got[0].type_id, got[0].stream_id), (9, 1));
            assert_eq!(
                (got[1].timestamp, got[1].payload.as_slice()),
                (5, &b"abc"[..])
            );
            assert_eq!(got[2].type_id, 20);
            assert_eq!(r.bytes_in, out.len() as u64);
        }
    }

    #[test]
    fn timestamps_across_the_2_32_wrap() {
        // Epoch milliseconds modulo 2^32 just before and after a wrap: the extended field
        // carries the big ones (in every chunk of the message), the small ones fit 24 bits.
        let mut w = ChunkWriter::default();
        w.set_chunk_size(4);
        let stamps = [0xffff_ffdeu32, 0xffff_ffff, 0x0000_0000, 0x0000_0021];
        let mut out = Vec::new();
        for ts in stamps {
            w.write(&mut out, 6, 9, 1, ts, b"frame!");
        }
        // First message: fmt 0 header with 0xffffff, then the extended timestamp; its
        // type-3 continuation repeats it.
        assert_eq!(&out[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&out[12..16], &0xffff_ffdeu32.to_be_bytes());
        assert_eq!(out[20], 0xc6);
        assert_eq!(&out[21..25], &0xffff_ffdeu32.to_be_bytes());
        let mut r = ChunkReader::default();
        r.set_chunk_size(4).unwrap();
        r.push(&out);
        let mut got = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            got.push(m.timestamp);
        }
        assert_eq!(got, stamps);
        // A server's type-2 delta across the wrap: modular, as §5.3.1.2.2 has it.
        let mut r = ChunkReader::default();
        r.push(&[0x04, 0xff, 0xff, 0xff, 0, 0, 1, 8, 1, 0, 0, 0]);
        r.push(&0xffff_fff0u32.to_be_bytes());
        r.push(b"a");
        r.push(&[0x84, 0, 0, 0x20, b'b']);
        assert_eq!(r.next_message().unwrap().unwrap().timestamp, 0xffff_fff0);
        assert_eq!(r.next_message().unwrap().unwrap().timestamp, 0x10);
    }

    #[test]
    fn type_1_2_3_headers_accumulate_deltas() {
        // fmt 0 ts=100 len=1 type 8, then fmt 2 delta 20, then fmt 3 (same delta).
        let mut data = vec![0x04, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, b'a'];
        data.extend_from_slice(&[0x84, 0, 0, 20, b'b']);
        data.extend_from_slice(&[0xc4, b'c']);
        data.extend_from_slice(&[0x44, 0, 0, 5, 0, 0, 2, 9, b'd', b'e']);
        let mut r = ChunkReader::default();
        r.push(&data);
        let mut ts = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            ts.push((m.timestamp, m.type_id, m.payload));
        }
        assert_eq!(
            ts,
            vec![
                (100, 8, b"a".to_vec()),
                (120, 8, b"b".to_vec()),
                (140, 8, b"c".to_vec()),
                (145, 9, b"de".to_vec())
            ]
        );
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let mut r = ChunkReader::default();
        r.push(&[0x43, 0, 0, 0, 0, 0, 1, 20]);
        assert!(r.next_message().is_err());
        assert!(ChunkReader::default().set_chunk_size(0).is_err());
    }

    #[test]
    fn at_most_16_chunk_streams() {
        let mut r = ChunkReader::default();
        // fmt 0, csid 64 + n (two-byte basic header), empty command messages.
        for csid in 0..=MAX_IN_CHUNK_STREAMS as u8 {
            r.push(&[0, csid, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0]);
        }
        for _ in 0..MAX_IN_CHUNK_STREAMS {
            assert!(r.next_message().unwrap().is_some());
        }
        let e = r.next_message().unwrap_err();
        assert_eq!(e, RtmpError::TooManyChunkStreams { limit: 16 });
        assert!(e.to_string().contains("more than 16 chunk streams"), "{e}");
    }

    #[test]
    fn messages_up_to_64_kib() {
        let header = |len: u32| {
            let l = len.to_be_bytes();
            vec![0x03, 0, 0, 0, l[1], l[2], l[3], 20, 0, 0, 0, 0]
        };
        let mut r = ChunkReader::default();
        r.set_chunk_size(MAX_IN_CHUNK_SIZE as u32).unwrap();
        let mut data = header(MAX_IN_MESSAGE as u32);
        data.resize(data.len() + MAX_IN_MESSAGE, 7);
        r.push(&data);
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(m.payload.len(), MAX_IN_MESSAGE);
        // One byte more is refused from the header alone, before any payload arrives.
        r.push(&header(MAX_IN_MESSAGE as u32 + 1));
        let e = r.next_message().unwrap_err();
        assert!(
            matches!(
                e,
                RtmpError::MessageTooLarge {
                    length: 65537,
                    type_id: 20,
                    limit: 65536
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("limit of 65536 bytes"), "{e}");
        // Also through a type-1 header on a known chunk stream.
        let mut r = ChunkReader::default();
        r.push(&[0x03, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, b'x']);
        assert!(r.next_message().unwrap().is_some());
        r.push(&[0x43, 0, 0, 0, 0x10, 0, 0, 9]);
        assert!(matches!(
            r.next_message(),
            Err(RtmpError::MessageTooLarge {
                length: 0x10_0000,
                ..
            })
        ));
    }
}
