//! The network front end: MPEG-TS over RTP (SMPTE 2022-1 without FEC) or plain UDP, demuxed
//! and decoded in this process, handing raw pictures and audio with the sender's time W to a
//! [`RawSink`](crate::capture::source::RawSink).

pub mod frontend;
pub mod rtcp;
pub mod rtp;
pub mod timing;
pub mod ts;
