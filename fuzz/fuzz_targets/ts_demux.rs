//! What a network sends the MPEG-TS path: arbitrary bytes as TS packets (PAT/PMT/PES/PCR,
//! SCTE-35 sections) through the demultiplexer and the timing policy, as plain TS over UDP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast::input::FrontEnd;
use twincast::input::ts::{PacketMeta, TsDemux};

fuzz_target!(|data: &[u8]| {
    let mut demux = TsDemux::new();
    let mut units = Vec::new();
    for (i, chunk) in data.chunks(7 * 188).enumerate() {
        let meta = PacketMeta {
            arrival_ns: i as u64 * 1_000_000,
            rtp_ts: Some(i as u32),
        };
        demux.push(meta, chunk, &mut units);
    }
    let _ = demux.take_scte35();
    let mut fe = FrontEnd::new(None);
    let mut out = Vec::new();
    for (i, chunk) in data.chunks(188 * 3).enumerate() {
        fe.push_udp(1_764_000_000_000_000_000 + i as u64 * 33_000_000, chunk, &mut out);
    }
});
