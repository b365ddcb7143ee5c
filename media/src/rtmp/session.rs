//! The client side of an RTMP publish, as a state machine (§5.2.5 simple handshake, §7.2.1.1
//! `connect`, §7.2.1.3 `createStream`, §7.2.2.6 `publish`; `releaseStream` / `FCPublish` /
//! `FCUnpublish` as Flash Media Live Encoder sends them and ingest services expect).
//!
//! ```text
//! Handshake ──S0 S1 S2──► Connecting ──_result(connect)──► CreatingStream
//!   ──_result(createStream)──► WaitPublish ──onStatus NetStream.Publish.Start──► Publishing
//! ```
//! Any `_error`, an `onStatus` of level "error" or malformed bytes end the session with an
//! [`RtmpError`]; the caller drops the connection and starts a new session.

use super::chunk::{ChunkReader, ChunkWriter, Message, RtmpError};
use super::msg;
use crate::amf0::{self, Value};

/// Size of C1/S1/C2/S2 (§5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;
/// RTMP version in C0/S0.
pub const RTMP_VERSION: u8 = 3;
/// Outgoing chunk size announced right after the handshake.
pub const OUT_CHUNK_SIZE: usize = 4096;
/// The server's window we assume until it announces its own (we acknowledge every this many
/// bytes we receive from it).
const DEFAULT_SERVER_WINDOW: u32 = 2_500_000;
/// The client's window, announced once right after the handshake: the server acknowledges
/// every this many bytes it receives from us, which lets the driver see progress at the
/// application level. Servers may use their own window instead (or none): the driver never
/// assumes this value, it learns the server's cadence from the acknowledgements it sees.
pub const ACK_WINDOW: u32 = 32 * 1024;

/// Chunk streams used for outgoing messages.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_AUDIO: u32 = 4;
const CSID_VIDEO: u32 = 6;
const CSID_DATA: u32 = 5;

const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE: f64 = 2.0;
const TXN_FCPUBLISH: f64 = 3.0;
const TXN_CREATE_STREAM: f64 = 4.0;
const TXN_PUBLISH: f64 = 5.0;

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Handshake,
    Connecting,
    CreatingStream,
    WaitPublish,
    Publishing,
}

/// What the caller must do after [`ClientSession::handle_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write these bytes to the connection.
    Send(Vec<u8>),
    /// The server accepted the publish: media may flow.
    Published,
}

/// One RTMP publish over one connection.
#[derive(Debug)]
pub struct ClientSession {
    state: SessionState,
    app: String,
    tc_url: String,
    stream_name: String,
    writer: ChunkWriter,
    reader: ChunkReader,
    handshake: Vec<u8>,
    stream_id: u32,
    /// Windows, kept apart as the RTMP specification has them (§5.4.4, §5.4.5):
    /// `server_window` comes from the server's Window Acknowledgement Size and paces our
    /// acknowledgements of what it sends; [`ACK_WINDOW`] is what we asked the server to
    /// acknowledge of what we send; `peer_bandwidth` is the server's Set Peer Bandwidth (a
    /// limit on our unacknowledged output), recorded but never turned into either window.
    /// (Answering Set Peer Bandwidth with a Window Acknowledgement Size of its value made
    /// nginx-rtmp acknowledge only every 5 MB, its default `ack_window`.)
    server_window: u32,
    peer_bandwidth: Option<u32>,
    last_ack: u64,
    /// The server's last Acknowledgement (bytes it received, mod 2^32).
    acked: Option<u32>,
    /// Acknowledgements received so far.
    acks: u64,
}

impl ClientSession {
    /// Starts a session; the returned bytes (C0 + C1) go out first. `seed` fills C1's random
    /// part (any value works; servers only echo it).
    pub fn new(app: &str, tc_url: &str, stream_name: &str, seed: u64) -> (Self, Vec<u8>) {
        let mut c0c1 = Vec::with_capacity(1 + HANDSHAKE_SIZE);
        c0c1.push(RTMP_VERSION);
        c0c1.extend_from_slice(&[0; 8]); // time, zero
        let mut x = seed | 1;
        while c0c1.len() < 1 + HANDSHAKE_SIZE {
            // xorshift64: cheap filler, not a secret.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c0c1.push(x as u8);
        }
        let session = ClientSession {
            state: SessionState::Handshake,
            app: app.to_string(),
            tc_url: tc_url.to_string(),
            stream_name: stream_name.to_string(),
            writer: ChunkWriter::default(),
            reader: ChunkReader::default(),
            handshake: Vec::new(),
            stream_id: 0,
            server_window: DEFAULT_SERVER_WINDOW,
            peer_bandwidth: None,
            last_ack: 0,
            acked: None,
            acks: 0,
        };
        (session, c0c1)
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Message stream id of the publish (valid once publishing).
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The byte count of the server's last Acknowledgement, if it sends any.
    pub fn acked(&self) -> Option<u32> {
        self.acked
    }

    /// How many Acknowledgements the server sent (a new one each time this grows, even when
    /// its byte count repeats).
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// The server's window: we acknowledge every this many bytes it sends.
    pub fn server_window(&self) -> u32 {
        self.server_window
    }

    /// The server's Set Peer Bandwidth, if it sent one.
    pub fn peer_bandwidth(&self) -> Option<u32> {
        self.peer_bandwidth
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<Vec<Event>, RtmpError> {
        let mut events = Vec::new();
        let mut data = data;
        if self.state == SessionState::Handshake {
            let need = 1 + 2 * HANDSHAKE_SIZE - self.handshake.len();
            let n = need.min(data.len());
            self.handshake.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.handshake.len() < 1 + 2 * HANDSHAKE_SIZE {
                return Ok(events);
            }
            if self.handshake[0] != RTMP_VERSION {
                return Err(RtmpError::Handshake("server speaks another RTMP version"));
            }
            let mut out = self.handshake[1..1 + HANDSHAKE_SIZE].to_vec(); // C2 = S1
            self.handshake = Vec::new();
            self.start_connect(&mut out);
            events.push(Event::Send(out));
        }
        self.reader.push(data);
        let mut out = Vec::new();
        while let Some(m) = self.reader.next_message()? {
            if self.handle_message(m, &mut out)? {
                events.push(Event::Published);
            }
        }
        if self.reader.bytes_in - self.last_ack >= u64::from(self.server_window) {
            self.last_ack = self.reader.bytes_in;
            let seq = (self.reader.bytes_in & 0xffff_ffff) as u32;
            self.control(&mut out, msg::ACKNOWLEDGEMENT, &seq.to_be_bytes());
        }
        if !out.is_empty() {
            events.push(Event::Send(out));
        }
        Ok(events)
    }

    /// Appends the `@setDataFrame`/`onMetaData` message (an [`crate::flv::metadata`] body).
    pub fn write_metadata(&self, out: &mut Vec<u8>, body: &[u8]) {
        self.writer
            .write(out, CSID_DATA, msg::DATA_AMF0, self.stream_id, 0, body);
    }

    /// Appends a data message at `timestamp` (an AMF0 body such as
    /// [`crate::flv::scte35_cue_point`]).
    pub fn write_data(&self, out: &mut Vec<u8>, timestamp: u32, body: &[u8]) {
        self.writer.write(
            out,
            CSID_DATA,
            msg::DATA_AMF0,
            self.stream_id,
            timestamp,
            body,
        );
    }

    /// Appends a video message (an FLV video tag body).
    pub fn write_video(&self, out: &mut Vec<u8>, timestamp: u32, body: &[u8]) {
        self.writer
            .write(out, CSID_VIDEO, msg::VIDEO, self.stream_id, timestamp, body);
    }

    /// Appends an audio message (an FLV audio tag body).
    pub fn write_audio(&self, out: &mut Vec<u8>, timestamp: u32, body: &[u8]) {
        self.writer
            .write(out, CSID_AUDIO, msg::AUDIO, self.stream_id, timestamp, body);
    }

    /// Appends `FCUnpublish` and `deleteStream`: the polite end of a publish.
    pub fn write_unpublish(&mut self, out: &mut Vec<u8>) {
        let name = self.stream_name.clone();
        self.command(
            out,
            0,
            &[
                Value::str("FCUnpublish"),
                Value::Number(6.0),
                Value::Null,
                Value::String(name),
            ],
        );
        let id = f64::from(self.stream_id);
        self.command(
            out,
            0,
            &[
                Value::str("deleteStream"),
                Value::Number(7.0),
                Value::Null,
                Value::Number(id),
            ],
        );
    }

    fn start_connect(&mut self, out: &mut Vec<u8>) {
        self.control(
            out,
            msg::SET_CHUNK_SIZE,
            &(OUT_CHUNK_SIZE as u32).to_be_bytes(),
        );
        self.writer.set_chunk_size(OUT_CHUNK_SIZE);
        self.control(out, msg::WINDOW_ACK_SIZE, &ACK_WINDOW.to_be_bytes());
        let props = vec![
            ("app".to_string(), Value::String(self.app.clone())),
            ("type".to_string(), Value::str("nonprivate")),
            (
                "flashVer".to_string(),
                Value::str("FMLE/3.0 (compatible; twincast)"),
            ),
            ("tcUrl".to_string(), Value::String(self.tc_url.clone())),
        ];
        self.command(
            out,
            0,
            &[
                Value::str("connect"),
                Value::Number(TXN_CONNECT),
                Value::Object(props),
            ],
        );
        self.state = SessionState::Connecting;
    }

    fn control(&self, out: &mut Vec<u8>, type_id: u8, payload: &[u8]) {
        self.writer.write(out, CSID_CONTROL, type_id, 0, 0, payload);
    }

    fn command(&self, out: &mut Vec<u8>, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        self.writer
            .write(out, CSID_COMMAND, msg::COMMAND_AMF0, stream_id, 0, &body);
    }

    /// Handles one message; true when the publish just started.
    fn handle_message(&mut self, m: Message, out: &mut Vec<u8>) -> Result<bool, RtmpError> {
        let u32_at = |p: &[u8], what: &'static str| {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(RtmpError::Protocol(what))
        };
        match m.type_id {
            msg::SET_CHUNK_SIZE => {
                let size = u32_at(&m.payload, "short Set Chunk Size")?;
                self.reader.set_chunk_size(size)?;
            }
            msg::ACKNOWLEDGEMENT => {
                self.acked = Some(u32_at(&m.payload, "short Acknowledgement")?);
                self.acks += 1;
            }
            msg::ABORT => {
                let csid = u32_at(&m.payload, "short Abort")?;
                self.reader.abort(csid);
            }
            msg::WINDOW_ACK_SIZE => {
                let w = u32_at(&m.payload, "short Window Acknowledgement Size")?;
                self.server_window = w.max(1);
            }
            msg::SET_PEER_BANDWIDTH => {
                // §5.4.5 asks for a Window Acknowledgement Size only when ours differs from
                // what the server last got from us; it got ACK_WINDOW, which stays in force
                // (like libavformat, we answer nothing).
                let w = u32_at(&m.payload, "short Set Peer Bandwidth")?;
                self.peer_bandwidth = Some(w);
            }
            // Ping request (event 6) → ping response (event 7) with the same time.
            msg::USER_CONTROL if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                let mut p = vec![0, 7];
                p.extend_from_slice(&m.payload[2..6]);
                self.control(out, msg::USER_CONTROL, &p);
            }
            msg::COMMAND_AMF0 => return self.handle_command(&m.payload, out),
            _ => {} // acknowledgements, data, media: nothing to do as a publisher
        }
        Ok(false)
    }

    fn handle_command(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<bool, RtmpError> {
        let values = amf0::decode_all(payload).map_err(|source| RtmpError::Amf0 {
            command: "server command",
            source,
        })?;
        let name = values.first().and_then(Value::as_str).unwrap_or("");
        let txn = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        match name {
            "_result" => self.handle_result(txn, &values, out),
            "_error" => {
                let info = values.get(3);
                Err(RtmpError::Refused {
                    command: txn_name(txn),
                    code: status_field(info, "code"),
                    description: status_field(info, "description"),
                })
            }
            "onStatus" => {
                let info = values.get(3);
                let code = status_field(info, "code");
                let level = status_field(info, "level");
                if level == "error" || code.ends_with(".BadName") || code.ends_with(".Failed") {
                    return Err(RtmpError::Refused {
                        command: "publish",
                        code,
                        description: status_field(info, "description"),
                    });
                }
                if code == "NetStream.Publish.Start" && self.state == SessionState::WaitPublish {
                    self.state = SessionState::Publishing;
                    return Ok(true);
                }
                Ok(false)
            }
            _ => Ok(false), // onBWDone, onFCPublish, close, ...
        }
    }

    fn handle_result(
        &mut self,
        txn: f64,
        values: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<bool, RtmpError> {
        if txn == TXN_CONNECT && self.state == SessionState::Connecting {
            let name = Value::String(self.stream_name.clone());
            self.command(
                out,
                0,
                &[
                    Value::str("releaseStream"),
                    Value::Number(TXN_RELEASE),
                    Value::Null,
                    name.clone(),
                ],
            );
            self.command(
                out,
                0,
                &[
                    Value::str("FCPublish"),
                    Value::Number(TXN_FCPUBLISH),
                    Value::Null,
                    name,
                ],
            );
            self.command(
                out,
                0,
                &[
                    Value::str("createStream"),
                    Value::Number(TXN_CREATE_STREAM),
                    Value::Null,
                ],
            );
            self.state = SessionState::CreatingStream;
        } else if txn == TXN_CREATE_STREAM && self.state == SessionState::CreatingStream {
            let id = values
                .get(3)
                .and_then(Value::as_number)
                .ok_or(RtmpError::Protocol("createStream result has no stream id"))?;
            if !(0.0..=f64::from(u32::MAX)).contains(&id) {
                return Err(RtmpError::Protocol("createStream result is out of range"));
            }
            self.stream_id = id as u32;
            let body = amf0::encode_all(&[
                Value::str("publish"),
                Value::Number(TXN_PUBLISH),
                Value::Null,
                Value::String(self.stream_name.clone()),
                Value::str("live"),
            ]);
            self.writer.write(
                out,
                CSID_COMMAND + 5,
                msg::COMMAND_AMF0,
                self.stream_id,
                0,
                &body,
            );
            self.state = SessionState::WaitPublish;
        }
        Ok(false)
    }
}

fn txn_name(txn: f64) -> &'static str {
    match txn as u32 {
        1 => "connect",
        2 => "releaseStream",
        3 => "FCPublish",
        4 => "createStream",
        5 => "publish",
        _ => "a command",
    }
}

fn status_field(info: Option<&Value>, key: &str) -> String {
    info.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted server: reassembles what the client sends and answers like nginx-rtmp.
    struct Server {
        reader: ChunkReader,
        writer: ChunkWriter,
        got_handshake: usize,
    }

    impl Server {
        fn new() -> Self {
            Server {
                reader: ChunkReader::default(),
                writer: ChunkWriter::default(),
                got_handshake: 0,
            }
        }

        /// Consumes client bytes; returns the commands seen (name, txn, stream id).
        fn feed(&mut self, mut data: &[u8]) -> Vec<(String, f64, u32, Vec<Value>)> {
            let hs = (1 + 2 * HANDSHAKE_SIZE).saturating_sub(self.got_handshake);
            let n = hs.min(data.len());
            self.got_handshake += n;
            data = &data[n..];
            self.reader.push(data);
            let mut cmds = Vec::new();
            while let Some(m) = self.reader.next_message().unwrap() {
                if m.type_id == msg::SET_CHUNK_SIZE {
                    let s = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                    self.reader.set_chunk_size(s).unwrap();
                } else if m.type_id == msg::COMMAND_AMF0 {
                    let v = amf0::decode_all(&m.payload).unwrap();
                    cmds.push((
                        v[0].as_str().unwrap().to_string(),
                        v[1].as_number().unwrap(),
                        m.stream_id,
                        v,
                    ));
                }
            }
            cmds
        }

        fn reply(&self, stream_id: u32, values: &[Value]) -> Vec<u8> {
            let mut out = Vec::new();
            self.writer.write(
                &mut out,
                3,
                msg::COMMAND_AMF0,
                stream_id,
                0,
                &amf0::encode_all(values),
            );
            out
        }
    }

    fn sends(events: &[Event]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Send(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn status(code: &str, level: &str) -> Vec<Value> {
        vec![
            Value::str("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::Object(vec![
                ("level".into(), Value::str(level)),
                ("code".into(), Value::str(code)),
            ]),
        ]
    }

    /// Drives a session to Publishing; returns it with the server.
    fn publish() -> (ClientSession, Server) {
        let (mut c, c0c1) = ClientSession::new("live", "rtmp://h/live", "cam_240p", 7);
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        let mut s = Server::new();
        assert!(s.feed(&c0c1).is_empty());
        let mut s012 = vec![3u8];
        s012.extend_from_slice(&[5; HANDSHAKE_SIZE]);
        s012.extend_from_slice(&c0c1[1..]);
        // Split the server's handshake across two reads.
        assert!(c.handle_input(&s012[..700]).unwrap().is_empty());
        let ev = c.handle_input(&s012[700..]).unwrap();
        let out = sends(&ev);
        assert_eq!(
            &out[..HANDSHAKE_SIZE],
            &[5; HANDSHAKE_SIZE][..],
            "C2 echoes S1"
        );
        let cmds = s.feed(&out);
        assert_eq!(cmds[0].0, "connect");
        assert_eq!(
            cmds[0].3[2].get("app").and_then(Value::as_str),
            Some("live")
        );
        assert_eq!(c.state(), SessionState::Connecting);

        let mut reply = Vec::new();
        // Window ack size + set peer bandwidth + chunk size, like nginx-rtmp.
        s.writer.write(
            &mut reply,
            2,
            msg::WINDOW_ACK_SIZE,
            0,
            0,
            &5_000_000u32.to_be_bytes(),
        );
        s.writer.write(
            &mut reply,
            2,
            msg::SET_PEER_BANDWIDTH,
            0,
            0,
            &[0, 0x4c, 0x4b, 0x40, 2],
        );
        reply.extend(s.reply(
            0,
            &[
                Value::str("_result"),
                Value::Number(1.0),
                Value::Null,
                Value::Object(vec![(
                    "code".into(),
                    Value::str("NetConnection.Connect.Success"),
                )]),
            ],
        ));
        reply.extend(s.reply(
            0,
            &[Value::str("onBWDone"), Value::Number(0.0), Value::Null],
        ));
        let cmds = s.feed(&sends(&c.handle_input(&reply).unwrap()));
        let names: Vec<&str> = cmds.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["releaseStream", "FCPublish", "createStream"]);
        assert_eq!(cmds[0].3[3].as_str(), Some("cam_240p"));

        let reply = s.reply(
            0,
            &[
                Value::str("_result"),
                Value::Number(4.0),
                Value::Null,
                Value::Number(1.0),
            ],
        );
        let cmds = s.feed(&sends(&c.handle_input(&reply).unwrap()));
        assert_eq!(cmds[0].0, "publish");
        assert_eq!(cmds[0].2, 1, "publish goes on the new stream");
        assert_eq!(c.state(), SessionState::WaitPublish);
        (c, s)
    }

    #[test]
    fn full_publish_flow_then_media() {
        let (mut c, mut s) = publish();
        let ev = c
            .handle_input(&s.reply(1, &status("NetStream.Publish.Start", "status")))
            .unwrap();
        assert!(ev.contains(&Event::Published));
        assert_eq!(c.state(), SessionState::Publishing);

        let mut out = Vec::new();
        c.write_video(&mut out, 1_763_000_000_123u64 as u32, &vec![1; 10_000]);
        c.write_audio(&mut out, 5, &[2; 10]);
        c.write_unpublish(&mut out);
        s.reader.push(&out);
        let mut seen = Vec::new();
        while let Some(m) = s.reader.next_message().unwrap() {
            seen.push((m.type_id, m.stream_id, m.timestamp, m.payload.len()));
        }
        assert_eq!(seen[0], (9, 1, 1_763_000_000_123u64 as u32, 10_000));
        assert_eq!(seen[1], (8, 1, 5, 10));
        assert_eq!(seen[2].0, msg::COMMAND_AMF0);
    }

    #[test]
    fn refusals_are_errors() {
        let (mut c, s) = publish();
        let err = c
            .handle_input(&s.reply(1, &status("NetStream.Publish.BadName", "error")))
            .unwrap_err();
        assert!(
            matches!(err, RtmpError::Refused { ref code, .. } if code == "NetStream.Publish.BadName")
        );

        let (mut c, _) = ClientSession::new("live", "rtmp://h/live", "x", 1);
        let mut s012 = vec![3u8];
        s012.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
        c.handle_input(&s012).unwrap();
        let err = c
            .handle_input(&s.reply(
                0,
                &[
                    Value::str("_error"),
                    Value::Number(1.0),
                    Value::Null,
                    Value::Object(vec![(
                        "code".into(),
                        Value::str("NetConnection.Connect.Rejected"),
                    )]),
                ],
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "RTMP server refused connect: NetConnection.Connect.Rejected"
        );
    }

    #[test]
    fn bad_version_and_garbage_are_errors_never_panics() {
        let (mut c, _) = ClientSession::new("live", "rtmp://h/live", "x", 1);
        let mut s012 = vec![6u8];
        s012.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
        assert!(c.handle_input(&s012).is_err());
        // Pseudo-random garbage after a good handshake, in many seeds: errors or nothing.
        for seed in 1..200u64 {
            let (mut c, _) = ClientSession::new("live", "rtmp://h/live", "x", seed);
            let mut data = vec![3u8];
            data.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
            let mut x = seed;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push(x as u8);
            }
            let _ = c.handle_input(&data);
        }
    }

    #[test]
    fn ping_gets_a_response_and_acks_follow_the_window() {
        let (mut c, s) = publish();
        let mut ping = Vec::new();
        s.writer
            .write(&mut ping, 2, msg::USER_CONTROL, 0, 0, &[0, 6, 0, 0, 1, 2]);
        let out = sends(&c.handle_input(&ping).unwrap());
        let mut r = ChunkReader::default();
        r.push(&out);
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(
            (m.type_id, m.payload),
            (msg::USER_CONTROL, vec![0, 7, 0, 0, 1, 2])
        );
    }

    /// The messages of `type_id` in what the client sent (after the handshake bytes).
    fn client_controls(reader: &mut ChunkReader, out: &[u8], type_id: u8) -> Vec<Vec<u8>> {
        reader.push(out);
        let mut found = Vec::new();
        while let Some(m) = reader.next_message().unwrap() {
            if m.type_id == msg::SET_CHUNK_SIZE {
                let s = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                reader.set_chunk_size(s).unwrap();
            }
            if m.type_id == type_id {
                found.push(m.payload);
            }
        }
        found
    }

    #[test]
    fn the_client_and_server_windows_stay_apart() {
        let (mut c, c0c1) = ClientSession::new("live", "rtmp://h/live", "cam", 3);
        let mut s012 = vec![3u8];
        s012.extend_from_slice(&[5; HANDSHAKE_SIZE]);
        s012.extend_from_slice(&c0c1[1..]);
        let out = sends(&c.handle_input(&s012).unwrap());
        let mut reader = ChunkReader::default();
        let was = client_controls(&mut reader, &out[HANDSHAKE_SIZE..], msg::WINDOW_ACK_SIZE);
        assert_eq!(was, [ACK_WINDOW.to_be_bytes().to_vec()], "announced once");

        // nginx-rtmp's defaults: Window Acknowledgement Size and Set Peer Bandwidth of 5 MB.
        let w = ChunkWriter::default();
        let mut reply = Vec::new();
        w.write(
            &mut reply,
            2,
            msg::WINDOW_ACK_SIZE,
            0,
            0,
            &5_000_000u32.to_be_bytes(),
        );
        w.write(
            &mut reply,
            2,
            msg::SET_PEER_BANDWIDTH,
            0,
            0,
            &[0, 0x4c, 0x4b, 0x40, 2],
        );
        let out = sends(&c.handle_input(&reply).unwrap());
        assert!(
            client_controls(&mut reader, &out, msg::WINDOW_ACK_SIZE).is_empty(),
            "Set Peer Bandwidth must not become the window the server acknowledges us by"
        );
        assert_eq!(c.server_window(), 5_000_000);
        assert_eq!(c.peer_bandwidth(), Some(5_000_000));

        // A server with a small window gets our acknowledgements at its pace.
        let mut reply = Vec::new();
        w.write(
            &mut reply,
            2,
            msg::WINDOW_ACK_SIZE,
            0,
            0,
            &100u32.to_be_bytes(),
        );
        w.write(&mut reply, 2, msg::USER_CONTROL, 0, 0, &[0, 6, 0, 0, 0, 1]);
        w.write(&mut reply, 3, msg::DATA_AMF0, 0, 0, &[0; 120]);
        let out = sends(&c.handle_input(&reply).unwrap());
        let acks = client_controls(&mut reader, &out, msg::ACKNOWLEDGEMENT);
        assert_eq!(acks.len(), 1, "one acknowledgement per server window");
        assert!(u32::from_be_bytes(acks[0][..4].try_into().unwrap()) >= 100);

        // The server's acknowledgements are counted, repeats included.
        let mut reply = Vec::new();
        w.write(
            &mut reply,
            2,
            msg::ACKNOWLEDGEMENT,
            0,
            0,
            &40_000u32.to_be_bytes(),
        );
        w.write(
            &mut reply,
            2,
            msg::ACKNOWLEDGEMENT,
            0,
            0,
            &40_000u32.to_be_bytes(),
        );
        c.handle_input(&reply).unwrap();
        assert_eq!((c.acked(), c.acks()), (Some(40_000), 2));
    }
}
