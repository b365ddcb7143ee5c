//! Double push (docs/design/publish.md): every (output × URL × rendition-or-track) is its own task
//! with its own bounded backlog, fed from the hub by its own collector, so a dead or slow
//! destination only ever grows its own backlog.
//!
//! ```text
//! hub ──► collector (never waits) ──► Backlog ──► supervisor run() ⟲ run_once() ──► socket
//!                                                  Idle → Connecting → Publishing → Backoff …
//! ```
//! Drivers: [`rtmp`] (one publish per rendition, audio interleaved), [`smooth`] (one chunked
//! POST per track), [`cmaf`] (one POST/PUT per segment, acknowledged).
//!
//! Codec parameters that change mid-session (a reload rebuilds an encoder with a new bitrate
//! or size, so x264 writes a new SPS): every hub fragment names the init segment it was
//! written against ([`PackagedFragment::init`]), and that, not the hub's current init, is the
//! truth for the fragment. A session remembers the init whose headers it last sent; before a
//! fragment written against another one ([`same_init`] is false), the driver sends that
//! fragment's headers first: RTMP a new `onMetaData` and AVC (or AAC) sequence header in the
//! same publish, Smooth ends its chunked POST and starts a new one with the new `moov`, CMAF
//! ingest sends the new CMAF header like at session start. After a reconnect the first
//! headers are those of the first fragment (re)sent, so a backlog that spans a change
//! switches at the right fragment. A fragment without an init (unit tests) keeps the
//! session's current one (the hub's at session start). Each switch is counted
//! ([`Task::header_switches`]) and logged once.
//!
//! Architecture Invariant: a publish task never blocks the hub, the origin or another task;
//! the only thing it shares is the hub's broadcast, which drops for a lagging receiver.

pub mod backlog;
pub mod budget;
pub mod cmaf;
mod collector;
mod credentials;
pub mod http;
pub mod liveness;
pub mod net;
mod outputs;
pub mod rtmp;
pub mod smooth;
mod smooth_sparse;
mod supervisor;
mod task;
pub mod tcp;
#[cfg(test)]
pub(crate) mod test_support;

pub use budget::Budget;
pub use outputs::{EVENT_TRACK, Publishers, SHUTDOWN_GRACE};
pub use supervisor::{BACKOFF_MAX, BACKOFF_MIN, Backoff, Carry};
pub use task::{
    CmafSpec, MAX_BACKLOG_BYTES, MAX_STALL_KEEP, ProtocolSpec, RtmpSpec, Shared, SmoothSpec, Task,
    TaskSpec, Unit, init_of, same_init,
};

/// The id of an output's SCTE-35 event track (`EVENT_TRACK`): after every media track of the
/// hub (their ids are index + 1), the same in every stream's manifest whichever of them the
/// server has heard of.
pub fn event_track_id(hub: &crate::hub::Hub) -> u32 {
    u32::try_from(hub.tracks.len()).unwrap_or(u32::MAX - 1) + 1
}

/// Name of the audio track in the hub.
pub const AUDIO: &str = twincast_media::TrackId::AUDIO;

/// Why a session ended. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Rtmp(#[from] twincast_media::rtmp::RtmpError),
    #[error("ingest answered HTTP {status} to {what}")]
    Http { status: u16, what: &'static str },
    #[error("URL: {0}")]
    Url(String),
    #[error("the ingest closed the stream")]
    Closed,
}

impl From<tcp::Stalled> for PublishError {
    fn from(stalled: tcp::Stalled) -> Self {
        PublishError::Net(stalled.into())
    }
}
