//! twincast-media: the pure media core of twincast.
//!
//! Architecture Invariant: this crate does no I/O. No tokio, no GStreamer, no sockets, no files.
//! Callers push plain Rust values in and get bytes or values out, so everything here is tested
//! with plain `#[test]`s and fuzzed without a runtime.

pub mod time;
pub mod track;

pub use time::{MediaTime, Rounding, Timescale};
pub use track::{Codec, Sample, TrackId, TrackInfo, TrackKind};
pub mod aac;
pub mod amf0;
pub mod bits;
pub mod dash;
pub mod flv;
pub mod fragmenter;
pub mod h264;
pub mod hls;
pub mod http;
pub mod mp4;
pub mod playlist;
pub mod rtmp;
pub mod scte35;
pub mod splice;
pub mod stall;
pub mod timeline;
