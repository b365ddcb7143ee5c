//! The `emsg` box, version 1 (ISO/IEC 23009-1 §5.10.3.3): an event message at an absolute
//! presentation time, carried in a CMAF segment before its `moof`. twincast writes SCTE-35
//! sections in it (scheme [`SCTE35_SCHEME`], the section as the message data: SCTE 214-3 and
//! DASH-IF ingest's event carriage; docs/design/signals.md).

use super::writer::BoxWriter;

/// `scheme_id_uri` of an `emsg` whose message data is a binary splice_info_section.
pub const SCTE35_SCHEME: &str = "urn:scte:scte35:2013:bin";
/// `event_duration` when the duration is not known.
pub const UNKNOWN_DURATION: u32 = 0xFFFF_FFFF;

/// One event message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage<'a> {
    pub scheme_id_uri: &'a str,
    pub value: &'a str,
    /// Ticks per second of `presentation_time` and `event_duration` (the track's).
    pub timescale: u32,
    /// When the event applies, in the track's timeline (its `tfdt` clock).
    pub presentation_time: u64,
    /// [`UNKNOWN_DURATION`] when none.
    pub event_duration: u32,
    pub id: u32,
    pub message_data: &'a [u8],
}

/// Appends the `emsg` of `e` to `buf`.
pub fn write_emsg(buf: &mut Vec<u8>, e: &EventMessage<'_>) {
    let mut w = BoxWriter::new(buf);
    let b = w.start_full_box(b"emsg", 1, 0);
    w.u32(e.timescale);
    w.u64(e.presentation_time);
    w.u32(e.event_duration);
    w.u32(e.id);
    for text in [e.scheme_id_uri, e.value] {
        let clean: Vec<u8> = text.bytes().filter(|b| *b != 0).collect();
        w.bytes(&clean);
        w.u8(0);
    }
    w.bytes(e.message_data);
    w.end_box(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Emsg, EmsgTimestamp};

    #[test]
    fn mp4_atom_reads_the_event_message_back() {
        let section = [0xFC, 0x30, 0x11, 0x00];
        let mut buf = vec![0xAA];
        write_emsg(
            &mut buf,
            &EventMessage {
                scheme_id_uri: SCTE35_SCHEME,
                value: "",
                timescale: 90_000,
                presentation_time: 161_670_763_938_000,
                event_duration: 2_700_000,
                id: 7,
                message_data: &section,
            },
        );
        assert_eq!(buf[0], 0xAA, "appended");
        let emsg = Emsg::decode(&mut &buf[1..]).expect("mp4-atom decodes it");
        assert_eq!(
            emsg,
            Emsg {
                timescale: 90_000,
                presentation_time: EmsgTimestamp::Absolute(161_670_763_938_000),
                event_duration: 2_700_000,
                id: 7,
                scheme_id_uri: SCTE35_SCHEME.to_string(),
                value: String::new(),
                message_data: section.to_vec(),
            }
        );
        assert_eq!(
            crate::scte35::ticks_of(1_796_341_821_533_333_333),
            161_670_763_938_000
        );
    }
}
