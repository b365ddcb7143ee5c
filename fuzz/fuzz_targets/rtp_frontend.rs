//! What a network sends the RTP front end: arbitrary datagrams as RTP (parse + reorder + TS
//! demux + timing), as RTCP, and as plain TS, with data-dependent arrival times.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast::input::FrontEnd;

fuzz_target!(|data: &[u8]| {
    let mut rtp = FrontEnd::new(Some(50_000_000));
    let mut out = Vec::new();
    let mut t = 1_764_000_000_000_000_000u64;
    // Datagrams are cut at data-dependent lengths; the first byte of each picks the port.
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let len = (usize::from(head) * 8).min(tail.len());
        let (d, next) = tail.split_at(len);
        t += u64::from(head) * 1_000_000;
        match head % 3 {
            0 => rtp.push_rtcp(d),
            _ => rtp.push_rtp(t, d, &mut out),
        }
        rtp.poll(t, &mut out);
        rest = next;
    }
    rtp.poll(u64::MAX, &mut out);
    let _ = rtp.counters();
});
