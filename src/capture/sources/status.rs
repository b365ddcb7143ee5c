//! What `/status` shows of a source (`input.sources`): its state, last error, restarts, timing
//! and, for a network input, the front-end counters summed over its lives.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::input::InputCounters;

/// What `/status` shows of one source (`input.sources`).
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// `input` (the `[input]` source), `backup` (`[input.backup]`) or `audio` (a separate
    /// audio source).
    pub role: &'static str,
    pub kind: String,
    /// `starting`, `running`, `backoff` or `stopped`.
    pub state: &'static str,
    /// Since when (ns since the epoch).
    pub since_ns: u64,
    pub last_error: Option<String>,
    /// Times the pipeline was rebuilt after a failure.
    pub restarts: u64,
    /// How W is taken (docs/design/timeline.md, *Where W comes from*; `input.timing`): `arrival`,
    /// `rtcp`, `pts`, or `pending` while a network input has not anchored its feed yet.
    pub timing: &'static str,
    /// A network input's front-end counters, summed over the source's lives (`null` for the
    /// other kinds).
    pub counters: Option<NetworkCounters>,
    /// Raw buffers that reached the appsinks of a source pipeline (`test`, `v4l2`, `file`,
    /// `rtsp`, a separate audio source; src/capture/sources/sink_drops.rs) or of a network
    /// input's decoders (`counters.decoder_dropped`, src/input/decode.rs) and were not handed
    /// to the grid feed, summed over the source's lives.
    pub buffers_dropped: u64,
}

/// `input.timing` of a network input that has not anchored its feed yet.
pub const TIMING_PENDING: &str = "pending";

/// What `/status` and `/metrics` show of a network input's front end and decoders
/// (docs/ref/control.md, `input.counters`). Counters only grow: a rebuilt source adds its
/// counts to those of the lives before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetworkCounters {
    pub datagrams: u64,
    pub bytes: u64,
    /// RTP packets never received (sequence gaps not filled within `latency`).
    pub lost: u64,
    /// RTP packets put back in order.
    pub reordered: u64,
    pub duplicated: u64,
    /// RTP packets that came after their slot was released.
    pub late: u64,
    pub sender_restarts: u64,
    pub rtcp_reports: u64,
    /// Datagrams or TS packets dropped as malformed (RTP, RTCP, TS).
    pub malformed: u64,
    /// MPEG-TS continuity-counter errors.
    pub cc_errors: u64,
    pub pcr_discontinuities: u64,
    pub pts_discontinuities: u64,
    pub scte35_sections: u64,
    /// SCTE-35 sections dropped because no reader took them: the input keeps the newest
    /// `SCTE35_QUEUE` (src/input/ts.rs) and nothing in the daemon reads them yet, so every
    /// older one counts here.
    pub scte35_dropped: u64,
    /// Elementary-stream units dropped (no PTS, before the first keyframe, queue full).
    pub units_dropped: u64,
    pub reanchors: u64,
    /// Decoded pictures handed to the grid feed.
    pub pictures: u64,
    /// Units dropped because a decoder was behind.
    pub decoder_overflow: u64,
    /// Decoded buffers the decoders' appsinks did not hand to the grid feed.
    pub decoder_dropped: u64,
    pub decoder_errors: u64,
}

impl NetworkCounters {
    pub(super) fn from_input(c: &InputCounters) -> Self {
        let f = &c.front;
        NetworkCounters {
            datagrams: f.datagrams,
            bytes: f.bytes,
            lost: f.lost,
            reordered: f.reordered,
            duplicated: f.duplicated,
            late: f.late,
            sender_restarts: f.sender_restarts,
            rtcp_reports: f.rtcp_reports,
            malformed: f.malformed,
            cc_errors: f.cc_errors,
            pcr_discontinuities: f.pcr_discontinuities,
            pts_discontinuities: f.pts_discontinuities,
            scte35_sections: f.scte35_sections,
            scte35_dropped: f.scte35_dropped,
            units_dropped: f.units_dropped,
            reanchors: f.reanchors,
            pictures: c.pictures,
            decoder_overflow: c.decoder_overflow,
            decoder_dropped: c.decoder_dropped,
            decoder_errors: c.decoder_errors,
        }
    }

    /// Field by field sum (the lives before plus the current one).
    pub(super) fn plus(self, o: NetworkCounters) -> Self {
        NetworkCounters {
            datagrams: self.datagrams + o.datagrams,
            bytes: self.bytes + o.bytes,
            lost: self.lost + o.lost,
            reordered: self.reordered + o.reordered,
            duplicated: self.duplicated + o.duplicated,
            late: self.late + o.late,
            sender_restarts: self.sender_restarts + o.sender_restarts,
            rtcp_reports: self.rtcp_reports + o.rtcp_reports,
            malformed: self.malformed + o.malformed,
            cc_errors: self.cc_errors + o.cc_errors,
            pcr_discontinuities: self.pcr_discontinuities + o.pcr_discontinuities,
            pts_discontinuities: self.pts_discontinuities + o.pts_discontinuities,
            scte35_sections: self.scte35_sections + o.scte35_sections,
            scte35_dropped: self.scte35_dropped + o.scte35_dropped,
            units_dropped: self.units_dropped + o.units_dropped,
            reanchors: self.reanchors + o.reanchors,
            pictures: self.pictures + o.pictures,
            decoder_overflow: self.decoder_overflow + o.decoder_overflow,
            decoder_dropped: self.decoder_dropped + o.decoder_dropped,
            decoder_errors: self.decoder_errors + o.decoder_errors,
        }
    }
}

pub type SharedStatus = Arc<Mutex<SourceStatus>>;

pub(super) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(super) fn set_state(status: &SharedStatus, state: &'static str) {
    let mut s = crate::sync::lock(status);
    if s.state != state {
        s.state = state;
        s.since_ns = now_ns();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FrontEndCounters;

    #[test]
    fn scte35_and_decoder_drops_reach_the_status_counters_summed_over_lives() {
        let life = InputCounters {
            front: FrontEndCounters {
                scte35_sections: 70,
                scte35_dropped: 6,
                ..Default::default()
            },
            decoder_dropped: 3,
            ..Default::default()
        };
        let one = NetworkCounters::from_input(&life);
        assert_eq!((one.scte35_dropped, one.decoder_dropped), (6, 3));
        let two = one.plus(one);
        assert_eq!((two.scte35_dropped, two.decoder_dropped), (12, 6));
        let json = serde_json::to_value(two).expect("json");
        assert_eq!(json["scte35_dropped"], 12);
        assert_eq!(json["decoder_dropped"], 6);
    }
}
