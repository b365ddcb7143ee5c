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
    write_emsg_box(&mut BoxWriter::new(buf), e);
}

/// Writes the `emsg` of `e` with `w` (a fragment's writer: [`super::write_fragment_into`]).
pub fn write_emsg_box(w: &mut BoxWriter<'_>, e: &EventMessage<'_>) {
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

/// The version 1 `emsg` boxes among the top-level boxes of `fragment` (a fragment this crate
/// wrote: `styp`, `prft`, `emsg`s, `moof`, `mdat`), in order; the outputs that carry events
/// their own way (RTMP's `onCuePoint`) read them here. Stops at the `moof` (events precede
/// it) or at the first box that does not fit; a malformed `emsg` is skipped.
pub fn read_emsgs(fragment: &[u8]) -> Vec<EventMessage<'_>> {
    let mut out = Vec::new();
    let mut rest = fragment;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if size < 8 || size > rest.len() || &rest[4..8] == b"moof" {
            break;
        }
        if &rest[4..8] == b"emsg"
            && let Some(e) = parse_v1(&rest[8..size])
        {
            out.push(e);
        }
        rest = &rest[size..];
    }
    out
}

/// The body of a version 1 `emsg` (after its box header).
fn parse_v1(body: &[u8]) -> Option<EventMessage<'_>> {
    let (&[version, _, _, _], rest) = body.split_first_chunk::<4>()?;
    if version != 1 {
        return None;
    }
    let (timescale, rest) = rest.split_first_chunk::<4>()?;
    let (presentation_time, rest) = rest.split_first_chunk::<8>()?;
    let (event_duration, rest) = rest.split_first_chunk::<4>()?;
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (scheme_id_uri, rest) = c_string(rest)?;
    let (value, message_data) = c_string(rest)?;
    Some(EventMessage {
        scheme_id_uri,
        value,
        timescale: u32::from_be_bytes(*timescale),
        presentation_time: u64::from_be_bytes(*presentation_time),
        event_duration: u32::from_be_bytes(*event_duration),
        id: u32::from_be_bytes(*id),
        message_data,
    })
}

/// A NUL-terminated UTF-8 string and what follows it.
fn c_string(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.iter().position(|b| *b == 0)?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Some((text, &bytes[end + 1..]))
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

    #[test]
    fn the_events_of_a_fragment_are_read_back_and_bad_boxes_are_skipped() {
        let section = [0xFC, 0x30, 0x11, 0x00];
        let event = |id| EventMessage {
            scheme_id_uri: SCTE35_SCHEME,
            value: "",
            timescale: 90_000,
            presentation_time: 161_670_763_938_000,
            event_duration: UNKNOWN_DURATION,
            id,
            message_data: &section,
        };
        let mut buf = Vec::new();
        // A box before (a `prft` stand-in), two events, a truncated `emsg`, then the `moof`.
        buf.extend_from_slice(&[0, 0, 0, 12, b'p', b'r', b'f', b't', 1, 2, 3, 4]);
        write_emsg(&mut buf, &event(7));
        write_emsg(&mut buf, &event(8));
        buf.extend_from_slice(&[0, 0, 0, 14, b'e', b'm', b's', b'g', 1, 0, 0, 0, 0, 0]);
        let moof_at = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 8, b'm', b'o', b'o', b'f']);
        write_emsg(&mut buf, &event(9));
        assert_eq!(
            read_emsgs(&buf),
            vec![event(7), event(8)],
            "none after the moof"
        );
        for cut in 0..moof_at {
            // Never a panic, whatever the cut; only whole events.
            assert!(read_emsgs(&buf[..cut]).len() <= 2);
        }
    }
}
