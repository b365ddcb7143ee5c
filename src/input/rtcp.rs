//! RTCP sender reports (RFC 3550 §6.4.1): the sender's wall clock (NTP time) for one RTP
//! timestamp, so a picture's RTP timestamp maps to the time the sender sampled it.
//!
//! Only SRs of the SSRC whose media we receive are kept. The mapping uses the latest SR; the RTP
//! difference is taken modulo 2^32 as a signed number, so the 32-bit wrap (13 h at 90 kHz) never
//! shows. The NTP → UNIX conversion is integer arithmetic, so two boxes given the same SR compute
//! the same nanosecond.

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
pub const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;
/// The RTP clock of MPEG-TS (RFC 2250 §2: 90 kHz).
pub const RTP_CLOCK_HZ: i128 = 90_000;

/// One sender report: the sender's NTP time for an RTP timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// NTP timestamp, 32.32 fixed point seconds since 1900.
    pub ntp: u64,
    pub rtp: u32,
}

/// Why an RTCP datagram was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    #[error("RTCP: {0}")]
    Parse(String),
}

/// RTCP packet type of a sender report.
const PT_SR: u8 = 200;

/// The sender reports of one compound RTCP datagram (other packet types are skipped).
///
/// The compound packet is walked here (RFC 3550 §6.1: version, type, length in 32-bit words
/// less one) and only each SR is handed to the `rtcp` crate: its parsers of other types
/// (transport feedback among them) panic on some malformed packets, and a malformed
/// datagram must be counted and dropped (found by fuzz/fuzz_targets/rtp_frontend.rs).
pub fn parse(datagram: &[u8]) -> Result<Vec<SenderReport>, RtcpError> {
    let bad = |what: &str| RtcpError::Parse(what.to_string());
    if datagram.is_empty() {
        return Err(bad("empty datagram"));
    }
    let mut out = Vec::new();
    let mut rest = datagram;
    while let [b0, pt, l0, l1, ..] = *rest {
        if b0 >> 6 != 2 {
            return Err(RtcpError::Parse(format!(
                "version {} (only 2 exists)",
                b0 >> 6
            )));
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let Some(packet) = rest.get(..len) else {
            return Err(bad("a packet longer than the datagram"));
        };
        if pt == PT_SR {
            let mut buf = packet;
            let packets =
                rtcp::packet::unmarshal(&mut buf).map_err(|e| RtcpError::Parse(e.to_string()))?;
            out.extend(
                packets
                    .iter()
                    .filter_map(|p| {
                        p.as_any()
                            .downcast_ref::<rtcp::sender_report::SenderReport>()
                    })
                    .map(|sr| SenderReport {
                        ssrc: sr.ssrc,
                        ntp: sr.ntp_time,
                        rtp: sr.rtp_time,
                    }),
            );
        }
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(bad("a truncated packet header"));
    }
    Ok(out)
}

/// UNIX nanoseconds of an NTP timestamp; `None` before 1970 (a sender without a clock).
pub fn ntp_to_unix_ns(ntp: u64) -> Option<u64> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET_S)?;
    let frac_ns = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// The sender's clock as the latest SR describes it.
#[derive(Clone, Debug, Default)]
pub struct SenderClock {
    latest: Option<(SenderReport, u64)>,
    reports: u64,
    ignored: u64,
}

impl SenderClock {
    /// Takes an SR; one of another SSRC than `media_ssrc` (when known), or with an NTP time
    /// before 1970, is ignored and counted.
    pub fn update(&mut self, sr: SenderReport, media_ssrc: Option<u32>) {
        if media_ssrc.is_some_and(|s| s != sr.ssrc) {
            self.ignored += 1;
            return;
        }
        match ntp_to_unix_ns(sr.ntp) {
            Some(ns) => {
                self.latest = Some((sr, ns));
                self.reports += 1;
            }
            None => self.ignored += 1,
        }
    }

    /// True once an SR has been taken.
    pub fn synced(&self) -> bool {
        self.latest.is_some()
    }

    /// SRs taken and ignored.
    pub fn reports(&self) -> (u64, u64) {
        (self.reports, self.ignored)
    }

    /// The sender's UNIX time (ns) of an RTP timestamp of the same SSRC.
    pub fn map(&self, rtp: u32) -> Option<u64> {
        let (sr, ntp_ns) = self.latest?;
        let delta = i128::from(rtp.wrapping_sub(sr.rtp) as i32);
        let ns = i128::from(ntp_ns) + delta * 1_000_000_000 / RTP_CLOCK_HZ;
        u64::try_from(ns).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc_util::Marshal as _;

    fn sr_bytes(ssrc: u32, ntp: u64, rtp: u32) -> Vec<u8> {
        let sr = rtcp::sender_report::SenderReport {
            ssrc,
            ntp_time: ntp,
            rtp_time: rtp,
            packet_count: 10,
            octet_count: 1000,
            ..Default::default()
        };
        sr.marshal().unwrap().to_vec()
    }

    #[test]
    fn parses_sr_from_a_compound_packet() {
        let mut d = sr_bytes(7, 0xE000_0000_8000_0000, 1234);
        let sdes = rtcp::source_description::SourceDescription::default();
        d.extend_from_slice(&sdes.marshal().unwrap());
        let srs = parse(&d).unwrap();
        assert_eq!(
            srs,
            vec![SenderReport {
                ssrc: 7,
                ntp: 0xE000_0000_8000_0000,
                rtp: 1234
            }]
        );
        assert!(parse(&d[..10]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn malformed_packets_of_other_types_are_skipped_not_a_panic() {
        // Found by fuzz/fuzz_targets/rtp_frontend.rs: a transport-wide feedback packet (PT
        // 205) that made the rtcp crate's parser panic. Only SRs are parsed now.
        let tlcc = [
            0x81, 0xcd, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert!(matches!(parse(&tlcc), Err(RtcpError::Parse(_))));
        assert_eq!(parse(&tlcc[..8]), Ok(Vec::new()), "skipped, not parsed");
        let mut d = sr_bytes(9, 0xE000_0000_0000_0000, 5);
        d.extend_from_slice(&[0x81, 0xcd, 0x00, 0x01, 0, 0, 0, 0]);
        assert_eq!(
            parse(&d).map(|v| v.len()),
            Ok(1),
            "the SR of the compound is kept"
        );
        assert!(parse(&[0x41, 200, 0, 0]).is_err(), "version 1");
        assert!(parse(&[0x80, 200, 0]).is_err(), "a truncated header");
    }

    #[test]
    fn ntp_converts_exactly() {
        let ntp = ((NTP_UNIX_OFFSET_S + 1_700_000_000) << 32) | 0x8000_0000;
        assert_eq!(ntp_to_unix_ns(ntp), Some(1_700_000_000_500_000_000));
        assert_eq!(ntp_to_unix_ns(5 << 32), None);
    }

    #[test]
    fn maps_rtp_through_the_latest_sr_across_the_wrap() {
        let mut c = SenderClock::default();
        assert_eq!(c.map(0), None);
        let base = (NTP_UNIX_OFFSET_S + 1_000) << 32;
        c.update(
            SenderReport {
                ssrc: 7,
                ntp: base,
                rtp: u32::MAX - 44_999,
            },
            Some(7),
        );
        // One second later in RTP time crosses the 32-bit wrap.
        assert_eq!(c.map(45_000), Some(1_001_000_000_000));
        assert_eq!(c.map(u32::MAX - 89_999), Some(999_500_000_000));
        c.update(
            SenderReport {
                ssrc: 9,
                ntp: base,
                rtp: 0,
            },
            Some(7),
        );
        assert_eq!(c.reports(), (1, 1));
    }
}
