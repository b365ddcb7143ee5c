//! RTMP publishing without I/O: the simple handshake, the chunk stream and the client publish
//! session as a state machine (Adobe "Real-Time Messaging Protocol (RTMP) specification" 1.0,
//! 2012: §5.2 handshake, §5.3 chunking, §5.4 protocol control messages, §7.2 commands).
//!
//! The caller owns the socket: it writes what [`ClientSession`] returns and pushes whatever it
//! reads into [`ClientSession::handle_input`]. Nothing here blocks, allocates without bound or
//! panics on what a server sends.

pub mod chunk;
pub mod session;
pub mod url;

pub use chunk::{ChunkReader, ChunkWriter, Message, RtmpError};
pub use session::{ClientSession, Event, SessionState};
pub use url::RtmpUrl;

/// Message type ids (§5.4, §7.1).
pub mod msg {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
}
