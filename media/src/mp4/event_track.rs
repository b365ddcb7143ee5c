//! A timed metadata track of SCTE-35 events for CMAF ingest: the *event message track* of
//! ISO/IEC 23001-18, which DASH-IF Live Media Ingest (Interface-1) names as the way to carry
//! timed metadata beside the media tracks.
//!
//! # What the specifications require
//!
//! DASH-IF Live Media Ingest Protocol v1.2 (2024-02-28, <https://dashif.org/Ingest/>, source
//! `DASH-IF-Ingest.bs.md` of <https://github.com/Dash-Industry-Forum/Ingest>):
//!
//! - §6.6 *Requirements for Timed Metadata Tracks*, item 1: a CMAF track whose handler (`hdlr`)
//!   is `meta` and whose media header is a `nmhd` (ISO/IEC 14496-12 §12.3).
//! - item 3: no gaps in the track's timeline (ISO/IEC 23000-19 §7.3); a sample without an event
//!   is filled with the scheme's empty box, the `EventMessageEmptyBox` (`emeb`).
//! - item 4: samples do not overlap and have non-zero durations.
//! - item 5: "The best way to create such a track is based on ISO/IEC 23001-18"; the older way
//!   (items 5a–5j) puts `emsg` boxes in samples under a `URIMetaSampleEntry` (`urim`) naming
//!   `urn:mpeg:dash:event:2012`. Item 5g: SCTE-35 uses scheme `urn:scte:scte35:2013:bin` and
//!   the binary splice_info_section as the message data.
//! - item 6: no top-level `emsg` boxes in the timed metadata track.
//! - item 7: constant segment durations; events still active are signalled again in later
//!   segments (23001-18 repeats the instance boxes).
//! - item 8: a change in the set of active events triggers a sample boundary.
//! - item 9: in a manifest, `@codecs` is the sample entry's code: `evte` (23001-18) or `urim`.
//! - §6.7 *Splice Points*, items 1–3: the preferred splice signal is a timed metadata sample
//!   at the splice time carrying the SCTE-35 event; it reaches the receiver at least 4 s before
//!   the media segment holding the splice point.
//! - §6.2 items 3, 8, 9, 11, 18, 19: one CMAF segment per POST, one connection per track, the
//!   `Streams(<name>)` path, `mfhd` sequence numbers increasing by one, `slat`/`lmsg` brands.
//!
//! ISO/IEC 23001-18:2022 *Event message track format for the ISO base media file format* (the
//! text is not public; clause numbers and rules as quoted by the Unified Streaming validator,
//! <https://validator.unified-streaming.com/docs/available_suites/timed-metadata-recommendations.html>,
//! and as implemented by mp4-atom 0.17, Eyevinn mp4ff, GPAC's `scte35dec` filter and Unified
//! Streaming's `EventMessageTrack` tools):
//!
//! - §7.1: handler `meta`, `nmhd`.
//! - §7.2: sample entry `EventMessageSampleEntry` (`evte`): a plain `MetaDataSampleEntry`
//!   (6 reserved bytes, data_reference_index), optionally followed by `btrt` and `silb`
//!   (§7.3). The validator also accepts DASH-IF's `urim` + `urn:mpeg:dash:event:2012` with
//!   the same `emib`/`emeb` samples; [`EventSampleEntry`] writes either.
//! - §7.4: each sample holds one or more `emib`s, or one `emeb` (and then no event is active
//!   during the sample). With T the sample's presentation time, an `emib`'s event is active in
//!   `[T + presentation_time_delta, T + presentation_time_delta + event_duration)`; a sample of
//!   duration D holds every event whose active interval overlaps `[T, T + D)`, and may also
//!   hold events that become active after `T + D` (future events, announced ahead). All
//!   instances of one event (same `scheme_id_uri`, `value` and `id`, the ISO/IEC 23009-1
//!   duplicate rule) are identical except `presentation_time_delta`.
//! - §8: an event longer than a sample is carried in every sample it overlaps.
//! - §9.2: the conversion from DASH events puts a sample boundary where the set of active
//!   events changes.
//!
//! # Box layouts
//!
//! `emib` (§6.1), a FullBox version 0, flags 0:
//!
//! ```text
//! unsigned int(32) reserved = 0;
//! signed   int(64) presentation_time_delta;  // event time − sample time, track timescale
//! unsigned int(32) event_duration;           // track timescale; 0xFFFFFFFF unknown
//! unsigned int(32) id;
//! string           scheme_id_uri;            // NUL-terminated UTF-8
//! string           value;                    // NUL-terminated UTF-8
//! unsigned int(8)  message_data[];           // to the end of the box
//! ```
//!
//! Sources that agree on it: mp4-atom 0.17 `src/emib.rs` (its test vector is an `emib` of the
//! MPEG conformance file `out_avail_track.cmfm`), Eyevinn mp4ff `EmibBox` ("ISO/IEC 23001-18
//! Section 6.1"), Unified Streaming's `event_track::EventMessageInstanceBox` (size
//! 8 + 4 + 8 + 4 + 4 + 4 + strings + 2 + data) and GPAC's `EventMessageInstanceBox` XML dump.
//! There is no `timescale` field: times are in the `mdhd` timescale, here
//! [`TIMED_METADATA_TIMESCALE`]. `emeb` (§6.2) is a plain Box with no fields (8 bytes).
//!
//! # Choices
//!
//! - Timescale 90 kHz, the SCTE-35 and video clock, so event times are exact and the track's
//!   segments can cover exactly the span of the video fragment of the same `mfhd` number.
//! - One segment per video fragment: `[start, start + duration)` is tiled by samples cut at
//!   every event start and end inside the span (§9.2, DASH-IF item 8). Every sample carries
//!   every given event that has not ended by the sample's start: active ones (a negative or
//!   zero `presentation_time_delta`) and announced ones (positive, also beyond the span's end,
//!   §7.4's future events). A sample with none holds an `emeb`.
//! - An event of duration 0 or unknown (`0xFFFF_FFFF`, kept as is in its `emib`) is active for
//!   one tick, as in GPAC's `scte35dec` (unknown) and Unified's conversion (zero): it gets a
//!   one-tick sample of its own, and the samples after it no longer carry it.
//! - Events that ended before the span are left out; a duplicate (same scheme, value and id)
//!   is written once.
//! - The fragment itself (`styp`, `moof` with `tfdt` version 1, `trun`, `mdat`) is the one
//!   [`write_fragment_into`] writes for the media tracks; every sample is a sync sample. No
//!   `prft` (DASH-IF §6.2 item 20 asks it of audio and video tracks only).

use super::emsg::{EventMessage, UNKNOWN_DURATION};
use super::fragment::{FragmentBrands, FragmentParams, write_fragment_into};
use super::init;
use super::writer::BoxWriter;
use crate::track::{Codec, Sample, TrackId, TrackInfo};

/// Ticks per second of the event track (`mvhd`, `mdhd`, `tfdt`, sample durations, `emib`
/// times): the SCTE-35 clock and the video tracks' timescale.
pub const TIMED_METADATA_TIMESCALE: u32 = 90_000;

/// The URI of a `urim` sample entry whose samples carry DASH events (DASH-IF ingest §6.6
/// item 5b).
pub const DASH_EVENT_URI: &str = "urn:mpeg:dash:event:2012";

/// `hdlr` name of the event track.
const HANDLER_NAME: &[u8] = b"twincast events\0";

/// Which sample entry the track's header declares; the samples are the same `emib`/`emeb`
/// boxes either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventSampleEntry {
    /// `evte`, the `EventMessageSampleEntry` of ISO/IEC 23001-18 §7.2 (`@codecs="evte"`).
    #[default]
    Evte,
    /// `urim` with a `uri ` of [`DASH_EVENT_URI`], the DASH-IF ingest form (§6.6 item 5b) for
    /// receivers that predate 23001-18 (`@codecs="urim"`).
    Urim,
}

/// One segment of the event track.
#[derive(Debug, Clone, Copy)]
pub struct EventSegment<'a> {
    /// `mfhd` sequence number: the one of the video fragment covering the same span.
    pub sequence: u32,
    /// First tick of the span (the segment's `tfdt`), in [`TIMED_METADATA_TIMESCALE`].
    pub start: u64,
    /// Length of the span in ticks; the samples' durations sum to it. 0 writes one sample of
    /// duration 0 (not a valid CMAF sample; callers are expected not to).
    pub duration: u64,
    /// The events to signal: those active during the span and those announced ahead. Any
    /// timescale; times are converted to the track's.
    pub events: &'a [EventMessage<'a>],
    pub brands: FragmentBrands,
}

/// Writes the CMAF header (`ftyp` + `moov`) of the event track with an `evte` sample entry.
pub fn write_event_track_init(track_id: u32) -> Vec<u8> {
    write_event_track_init_with(track_id, EventSampleEntry::Evte)
}

/// Writes the CMAF header (`ftyp` + `moov`) of the event track with the given sample entry.
///
/// `ftyp` has the media tracks' brands; `moov` is `mvhd`, one `trak` (`tkhd`, `mdhd`, `hdlr`
/// `meta`, `nmhd`, `dinf`, `stbl` with the sample entry and empty tables) and `mvex`/`trex`.
pub fn write_event_track_init_with(track_id: u32, entry: EventSampleEntry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(640);
    let mut w = BoxWriter::new(&mut buf);
    init::write_ftyp(&mut w);
    init::write_metadata_moov(
        &mut w,
        track_id,
        TIMED_METADATA_TIMESCALE,
        HANDLER_NAME,
        |w| write_sample_entry(w, entry),
    );
    buf
}

/// `evte` (ISO/IEC 23001-18 §7.2) or `urim` (ISO/IEC 14496-12 §12.3.3.2): a
/// `MetaDataSampleEntry` (6 reserved bytes, data_reference_index 1), then for `urim` its
/// `uri ` FullBox holding the NUL-terminated URI.
fn write_sample_entry(w: &mut BoxWriter<'_>, entry: EventSampleEntry) {
    let fourcc = match entry {
        EventSampleEntry::Evte => b"evte",
        EventSampleEntry::Urim => b"urim",
    };
    let b = w.start_box(fourcc);
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    if entry == EventSampleEntry::Urim {
        let uri = w.start_full_box(b"uri ", 0, 0);
        write_c_string(w, DASH_EVENT_URI);
        w.end_box(uri);
    }
    w.end_box(b);
}

/// Writes one segment (`styp`, `moof`, `mdat`) of the event track covering
/// `[start, start + duration)` in 90 kHz ticks, with [`FragmentBrands::Normal`]. See
/// [`write_event_segment`].
pub fn write_event_track_segment(
    track_id: u32,
    sequence: u32,
    start: u64,
    duration: u64,
    events: &[EventMessage<'_>],
) -> Vec<u8> {
    write_event_segment(
        track_id,
        &EventSegment {
            sequence,
            start,
            duration,
            events,
            brands: FragmentBrands::Normal,
        },
    )
}

/// Writes one segment of the event track: the samples tile the span (module docs, *Choices*),
/// each holding `emib`s or an `emeb`, in a fragment whose `tfdt` is `seg.start`.
pub fn write_event_segment(track_id: u32, seg: &EventSegment<'_>) -> Vec<u8> {
    let samples = event_samples(seg.start, seg.duration, seg.events);
    let mut buf = Vec::new();
    write_fragment_into(
        &mut buf,
        &fragment_track(track_id),
        &FragmentParams {
            sequence: seg.sequence,
            samples: &samples,
            prft: None,
            events: &[],
            brands: seg.brands,
        },
    );
    buf
}

/// The track description [`write_fragment_into`] is given. It reads only `id` (the `tfhd`
/// track_ID and the `prft` reference); the codec is a placeholder it never looks at, since
/// [`Codec`] has no metadata variant.
fn fragment_track(track_id: u32) -> TrackInfo {
    TrackInfo {
        id: track_id,
        name: TrackId::new("events"),
        timescale: TIMED_METADATA_TIMESCALE,
        bitrate: 0,
        codec: Codec::Aac {
            asc: Vec::new(),
            sample_rate: TIMED_METADATA_TIMESCALE,
            channels: 0,
        },
    }
}

/// An event on the track's clock.
struct Placed<'e> {
    /// Start of the active interval.
    time: u64,
    /// End of the active interval used for the layout: at least one tick after `time`.
    end: u64,
    /// The `emib` event_duration: the event's, rescaled; unknown stays unknown.
    duration_field: u32,
    event: &'e EventMessage<'e>,
}

impl Placed<'_> {
    fn same_event(&self, other: &EventMessage<'_>) -> bool {
        self.event.id == other.id
            && self.event.scheme_id_uri == other.scheme_id_uri
            && self.event.value == other.value
    }
}

/// `v` ticks of `timescale` (non-zero) in ticks of the track, rounded down.
fn to_track_ticks(v: u64, timescale: u32) -> u64 {
    if timescale == TIMED_METADATA_TIMESCALE {
        return v;
    }
    let ticks = u128::from(v) * u128::from(TIMED_METADATA_TIMESCALE) / u128::from(timescale);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The events of `events` that have not ended by `start`, once each, on the track's clock,
/// ordered by time then id. An event whose timescale is 0 has no time and is left out.
fn place<'e>(events: &'e [EventMessage<'e>], start: u64) -> Vec<Placed<'e>> {
    let mut placed: Vec<Placed<'e>> = Vec::with_capacity(events.len());
    for e in events {
        if e.timescale == 0 || placed.iter().any(|p| p.same_event(e)) {
            continue;
        }
        let time = to_track_ticks(e.presentation_time, e.timescale);
        let (duration_field, active) = match e.event_duration {
            UNKNOWN_DURATION => (UNKNOWN_DURATION, 1),
            d => {
                let ticks = to_track_ticks(u64::from(d), e.timescale);
                let field = u32::try_from(ticks)
                    .map_or(UNKNOWN_DURATION - 1, |t| t.min(UNKNOWN_DURATION - 1));
                (field, ticks.max(1))
            }
        };
        let end = time.saturating_add(active);
        if end > start {
            placed.push(Placed {
                time,
                end,
                duration_field,
                event: e,
            });
        }
    }
    placed.sort_by_key(|p| (p.time, p.event.id));
    placed
}

/// The samples of the span `[start, start + duration)`: cut at every event start and end
/// inside it (and into pieces a 32-bit sample duration holds), each holding the `emib`s of
/// the events not ended by its start, or an `emeb`.
fn event_samples(start: u64, duration: u64, events: &[EventMessage<'_>]) -> Vec<Sample> {
    let end = start.saturating_add(duration);
    let placed = place(events, start);
    if start == end {
        return vec![event_sample(start, 0, &placed)];
    }
    let mut cuts = vec![start, end];
    for p in &placed {
        cuts.extend(
            [p.time, p.end]
                .into_iter()
                .filter(|&c| c > start && c < end),
        );
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut samples = Vec::with_capacity(cuts.len());
    for pair in cuts.windows(2) {
        let (mut at, next) = (pair[0], pair[1]);
        while at < next {
            let d = u32::try_from(next - at).unwrap_or(u32::MAX);
            samples.push(event_sample(at, d, &placed));
            at += u64::from(d);
        }
    }
    samples
}

/// The sample at `at`: the `emib` of every event not ended by then, or an `emeb`.
fn event_sample(at: u64, duration: u32, placed: &[Placed<'_>]) -> Sample {
    let mut data = Vec::new();
    let mut w = BoxWriter::new(&mut data);
    let mut any = false;
    for p in placed.iter().filter(|p| p.end > at) {
        let delta = i128::from(p.time) - i128::from(at);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        write_emib(&mut w, p, delta);
        any = true;
    }
    if !any {
        let emeb = w.start_box(b"emeb");
        w.end_box(emeb);
    }
    Sample {
        dts: at,
        duration,
        cts_offset: 0,
        keyframe: true,
        data,
    }
}

/// The `emib` of `p` in a sample `presentation_time_delta` ticks before the event's start
/// (module docs, *Box layouts*).
fn write_emib(w: &mut BoxWriter<'_>, p: &Placed<'_>, presentation_time_delta: i64) {
    let b = w.start_full_box(b"emib", 0, 0);
    w.u32(0); // reserved
    w.bytes(&presentation_time_delta.to_be_bytes());
    w.u32(p.duration_field);
    w.u32(p.event.id);
    write_c_string(w, p.event.scheme_id_uri);
    write_c_string(w, p.event.value);
    w.bytes(p.event.message_data);
    w.end_box(b);
}

/// `text` without its NUL bytes, then a NUL (as the `emsg` writer does).
fn write_c_string(w: &mut BoxWriter<'_>, text: &str) {
    for part in text.split('\0') {
        w.bytes(part.as_bytes());
    }
    w.u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::emsg::SCTE35_SCHEME;
    use mp4_atom::{Decode, Encode};

    /// 2025-11-13T02:13:20Z at 90 kHz: beyond 32 bits, as every epoch time is.
    const START: u64 = 1_763_000_000 * 90_000;
    /// A 2 s segment.
    const SPAN: u64 = 180_000;
    /// A splice_insert splice_info_section stand-in (table_id 0xFC).
    const SECTION: [u8; 8] = [0xFC, 0x30, 0x11, 0x00, 0x00, 0x05, 0xAB, 0xCD];

    fn event(id: u32, presentation_time: u64, event_duration: u32) -> EventMessage<'static> {
        EventMessage {
            scheme_id_uri: SCTE35_SCHEME,
            value: "",
            timescale: 90_000,
            presentation_time,
            event_duration,
            id,
            message_data: &SECTION,
        }
    }

    /// A box found by [`boxes`]: its type and its body (after the 8-byte header).
    type RawBox<'a> = ([u8; 4], &'a [u8]);

    /// The boxes laid end to end in `data`; panics on a box that does not fit.
    fn boxes(mut data: &[u8]) -> Vec<RawBox<'_>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            assert!((8..=data.len()).contains(&size), "box size {size} fits");
            out.push((data[4..8].try_into().unwrap(), &data[8..size]));
            data = &data[size..];
        }
        out
    }

    /// The body of the box at `path` below the top-level boxes of `data`; `skip` gives, per
    /// box type, how many body bytes precede its children (full boxes, sample entries).
    fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        let skip = |t: &[u8; 4]| match t {
            b"stsd" | b"evte" | b"urim" => 8,
            _ => 0,
        };
        let mut body = data;
        let mut prev: Option<&[u8; 4]> = None;
        for want in path {
            let children = &body[prev.map_or(0, skip)..];
            body = boxes(children)
                .into_iter()
                .find(|(t, _)| t == *want)
                .unwrap_or_else(|| panic!("no {:?}", std::str::from_utf8(*want)))
                .1;
            prev = Some(want);
        }
        body
    }

    /// One `emib` read by hand, following the layout of the module docs.
    #[derive(Debug, PartialEq, Eq)]
    struct RawEmib {
        version_flags: u32,
        reserved: u32,
        presentation_time_delta: i64,
        event_duration: u32,
        id: u32,
        scheme_id_uri: String,
        value: String,
        message_data: Vec<u8>,
    }

    fn raw_emib(body: &[u8]) -> RawEmib {
        let u32_at = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
        let rest = &body[24..];
        let nul = rest.iter().position(|b| *b == 0).unwrap();
        let scheme = std::str::from_utf8(&rest[..nul]).unwrap().to_string();
        let rest = &rest[nul + 1..];
        let nul = rest.iter().position(|b| *b == 0).unwrap();
        let value = std::str::from_utf8(&rest[..nul]).unwrap().to_string();
        RawEmib {
            version_flags: u32_at(0),
            reserved: u32_at(4),
            presentation_time_delta: i64::from_be_bytes(body[8..16].try_into().unwrap()),
            event_duration: u32_at(16),
            id: u32_at(20),
            scheme_id_uri: scheme,
            value,
            message_data: rest[nul + 1..].to_vec(),
        }
    }

    /// A decoded segment: the `moof` (strict mp4-atom) and each sample as (decode time,
    /// duration, bytes).
    struct Decoded {
        styp: mp4_atom::Styp,
        moof: mp4_atom::Moof,
        samples: Vec<(u64, u32, Vec<u8>)>,
    }

    fn decode_segment(bytes: &[u8]) -> Decoded {
        let mut data = bytes;
        let styp = mp4_atom::Styp::decode(&mut data).unwrap();
        let moof_offset = bytes.len() - data.len();
        let moof = mp4_atom::Moof::decode(&mut data).unwrap();
        let mdat = mp4_atom::Mdat::decode(&mut data).unwrap();
        assert!(data.is_empty(), "styp moof mdat, nothing else");
        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        let mut at = moof_offset + trun.data_offset.unwrap() as usize;
        let mut dts = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        let mut samples = Vec::new();
        for e in &trun.samples {
            let (d, size) = (e.duration.unwrap(), e.size.unwrap() as usize);
            samples.push((dts, d, bytes[at..at + size].to_vec()));
            at += size;
            dts += u64::from(d);
        }
        assert_eq!(at, bytes.len(), "the samples fill the mdat");
        let total: usize = samples.iter().map(|s| s.2.len()).sum();
        assert_eq!(total, mdat.data.len());
        Decoded {
            styp,
            moof,
            samples,
        }
    }

    /// The `emib`s of a sample via mp4-atom (empty for an `emeb`), checked against the raw
    /// walk of the same bytes.
    fn emibs(sample: &[u8]) -> Vec<mp4_atom::Emib> {
        let decoded = mp4_atom::EvteSample::decode(&mut &sample[..]).expect("emib/emeb sample");
        let raw = boxes(sample);
        if decoded.is_empty() {
            assert_eq!(raw, vec![(*b"emeb", &[][..])], "one empty emeb");
            assert_eq!(sample.len(), 8);
        } else {
            assert_eq!(raw.len(), decoded.len());
            for ((kind, body), e) in raw.iter().zip(&decoded) {
                assert_eq!(kind, b"emib");
                let r = raw_emib(body);
                assert_eq!(
                    (r.version_flags, r.reserved),
                    (0, 0),
                    "version 0, reserved 0"
                );
                assert_eq!(r.presentation_time_delta, e.presentation_time_delta);
                assert_eq!(
                    (r.event_duration, r.id),
                    (e.event_duration, e.id),
                    "fields in layout order"
                );
                assert_eq!(
                    (r.scheme_id_uri.as_str(), r.value.as_str()),
                    (&*e.scheme_id_uri, &*e.value)
                );
                assert_eq!(r.message_data, e.message_data);
            }
        }
        decoded
    }

    fn durations(d: &Decoded) -> Vec<u32> {
        d.samples.iter().map(|s| s.1).collect()
    }

    #[test]
    fn the_header_is_a_meta_track_with_an_evte_entry() {
        let init = write_event_track_init(3);
        let mut data = &init[..];
        let ftyp = mp4_atom::Ftyp::decode(&mut data).unwrap();
        let moov = mp4_atom::Moov::decode(&mut data).unwrap();
        assert!(data.is_empty(), "ftyp and moov only");
        assert_eq!(ftyp.major_brand, b"cmf2".into());
        for brand in [b"cmfc", b"iso6"] {
            assert!(ftyp.compatible_brands.contains(&brand.into()));
        }
        assert_eq!(moov.mvhd.timescale, 90_000);
        assert_eq!(moov.mvhd.next_track_id, 4);
        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 3);
        assert_eq!(trak.mdia.mdhd.timescale, TIMED_METADATA_TIMESCALE);
        assert_eq!(trak.mdia.mdhd.language, "und");
        assert_eq!(trak.mdia.hdlr.handler, b"meta".into());
        let minf = &trak.mdia.minf;
        assert!(minf.nmhd.is_some());
        assert!(minf.vmhd.is_none() && minf.smhd.is_none());
        let codecs = &minf.stbl.stsd.codecs;
        assert_eq!(
            codecs,
            &[mp4_atom::Codec::Evte(mp4_atom::Evte {
                metadata: mp4_atom::MetaData {
                    data_reference_index: 1
                },
                btrt: None,
                silb: None,
            })]
        );
        let mvex = moov.mvex.as_ref().unwrap();
        assert_eq!(mvex.trex[0].track_id, 3);
        assert_eq!(mvex.trex[0].default_sample_description_index, 1);
        // The bare evte by hand: 6 reserved bytes and data_reference_index 1.
        let stbl = [
            b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"evte",
        ];
        assert_eq!(find(&init, &stbl), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            find(&init, &[b"moov", b"trak", b"mdia", b"minf", b"nmhd"]),
            [0; 4]
        );
    }

    #[test]
    fn the_urim_header_names_the_dash_event_scheme() {
        let init = write_event_track_init_with(2, EventSampleEntry::Urim);
        let mut data = &init[..];
        mp4_atom::Ftyp::decode(&mut data).unwrap();
        let moov = mp4_atom::Moov::decode(&mut data).unwrap();
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.hdlr.handler, b"meta".into());
        assert!(trak.mdia.minf.nmhd.is_some());
        let mp4_atom::Codec::Urim(urim) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("expected urim, got {:?}", trak.mdia.minf.stbl.stsd.codecs);
        };
        assert_eq!(urim.metadata.data_reference_index, 1);
        assert_eq!(urim.the_label.the_uri, DASH_EVENT_URI);
        assert!(urim.init.is_none() && urim.btrt.is_none());
        let uri = [
            b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"urim", b"uri ",
        ];
        assert_eq!(
            find(&init, &uri),
            [&[0u8, 0, 0, 0][..], b"urn:mpeg:dash:event:2012\0"].concat(),
            "version 0, flags 0, the NUL-terminated URI"
        );
    }

    #[test]
    fn an_event_inside_the_span_starts_its_own_sample() {
        let events = [event(7, START + 60_000, 2_700_000)];
        let bytes = write_event_track_segment(3, 881_500_123, START, SPAN, &events);
        let d = decode_segment(&bytes);
        assert_eq!(d.styp.major_brand, b"msdh".into());
        assert!(d.styp.compatible_brands.contains(&b"cmfs".into()));
        assert_eq!(d.moof.mfhd.sequence_number, 881_500_123);
        let traf = &d.moof.traf[0];
        assert_eq!(traf.tfhd.track_id, 3);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, START);
        assert_eq!(durations(&d), [60_000, 120_000]);
        assert_eq!(
            durations(&d).iter().map(|&x| u64::from(x)).sum::<u64>(),
            SPAN
        );
        for e in &traf.trun[0].samples {
            assert_eq!(e.flags, Some(super::super::fragment::SYNC_SAMPLE_FLAGS));
            assert_eq!(e.cts, None);
        }

        // Announced in the first sample, starting the second.
        let first = emibs(&d.samples[0].2);
        let second = emibs(&d.samples[1].2);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].presentation_time_delta, 60_000);
        let want = mp4_atom::Emib {
            presentation_time_delta: 0,
            event_duration: 2_700_000,
            id: 7,
            scheme_id_uri: "urn:scte:scte35:2013:bin".into(),
            value: String::new(),
            message_data: SECTION.to_vec(),
        };
        assert_eq!(second, std::slice::from_ref(&want));
        assert_eq!(
            d.samples[1].0,
            START + 60_000,
            "the sample starts at the event"
        );
        // Byte for byte what mp4-atom writes for the same box.
        let mut theirs = Vec::new();
        want.encode(&mut theirs).unwrap();
        assert_eq!(d.samples[1].2, theirs);
    }

    #[test]
    fn a_segment_without_events_is_one_emeb_sample() {
        for events in [&[][..], &[event(1, START - 90_000, 45_000)][..]] {
            let bytes = write_event_track_segment(3, 9, START, SPAN, events);
            let d = decode_segment(&bytes);
            assert_eq!(d.moof.mfhd.sequence_number, 9);
            assert_eq!(
                d.moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
                START
            );
            assert_eq!(durations(&d), [SPAN as u32]);
            assert!(
                emibs(&d.samples[0].2).is_empty(),
                "ended events are left out"
            );
            assert_eq!(d.samples[0].2, [0, 0, 0, 8, b'e', b'm', b'e', b'b']);
        }
    }

    #[test]
    fn an_event_announced_ahead_points_past_the_span() {
        let at = START + SPAN + 3 * 90_000;
        let bytes = write_event_track_segment(3, 10, START, SPAN, &[event(8, at, 2_700_000)]);
        let d = decode_segment(&bytes);
        assert_eq!(
            durations(&d),
            [SPAN as u32],
            "no cut: the event is after the span"
        );
        let e = emibs(&d.samples[0].2);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].presentation_time_delta, (at - START) as i64);
        assert!(e[0].presentation_time_delta > SPAN as i64);
    }

    #[test]
    fn a_running_break_is_signalled_again_until_it_ends() {
        // Began 1 s before the span, ends 2/3 s into it.
        let events = [event(5, START - 90_000, 150_000)];
        let d = decode_segment(&write_event_track_segment(3, 11, START, SPAN, &events));
        assert_eq!(durations(&d), [60_000, 120_000]);
        let e = emibs(&d.samples[0].2);
        assert_eq!(e[0].presentation_time_delta, -90_000);
        assert_eq!(
            e[0].event_duration, 150_000,
            "the event's own duration, unchanged"
        );
        assert!(emibs(&d.samples[1].2).is_empty());
    }

    #[test]
    fn an_event_without_duration_is_active_for_one_tick() {
        let at = START + 90_000;
        let events = [event(6, at, UNKNOWN_DURATION)];
        let d = decode_segment(&write_event_track_segment(3, 12, START, SPAN, &events));
        assert_eq!(durations(&d), [90_000, 1, 89_999]);
        let ahead = emibs(&d.samples[0].2);
        let on = emibs(&d.samples[1].2);
        assert_eq!(ahead[0].presentation_time_delta, 90_000);
        assert_eq!(on[0].presentation_time_delta, 0);
        assert_eq!(on[0].event_duration, UNKNOWN_DURATION, "written as unknown");
        assert_eq!(d.samples[1].0, at);
        assert!(emibs(&d.samples[2].2).is_empty());
        // Zero duration: the same layout, written as 0.
        let events = [event(6, at, 0)];
        let d = decode_segment(&write_event_track_segment(3, 12, START, SPAN, &events));
        assert_eq!(durations(&d), [90_000, 1, 89_999]);
        assert_eq!(emibs(&d.samples[1].2)[0].event_duration, 0);
    }

    #[test]
    fn overlapping_events_share_samples_and_duplicates_go() {
        let a = event(1, START + 30_000, 90_000); // [30k, 120k)
        let b = event(2, START + 60_000, 2_700_000); // [60k, beyond)
        let c = event(3, START + 400_000, UNKNOWN_DURATION); // ahead
        let events = [b.clone(), a.clone(), c, a.clone()];
        let d = decode_segment(&write_event_track_segment(3, 13, START, SPAN, &events));
        assert_eq!(durations(&d), [30_000, 30_000, 60_000, 60_000]);
        let ids: Vec<Vec<(u32, i64)>> = d
            .samples
            .iter()
            .map(|s| {
                emibs(&s.2)
                    .iter()
                    .map(|e| (e.id, e.presentation_time_delta))
                    .collect()
            })
            .collect();
        assert_eq!(
            ids,
            [
                vec![(1, 30_000), (2, 60_000), (3, 400_000)],
                vec![(1, 0), (2, 30_000), (3, 370_000)],
                vec![(1, -30_000), (2, 0), (3, 340_000)],
                vec![(2, -60_000), (3, 280_000)],
            ]
        );
        // A different value is a different event (ISO/IEC 23009-1 duplicates).
        let other = EventMessage {
            value: "1",
            ..a.clone()
        };
        let d = decode_segment(&write_event_track_segment(3, 13, START, SPAN, &[a, other]));
        let values: Vec<String> = emibs(&d.samples[1].2)
            .into_iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(values, ["", "1"]);
    }

    #[test]
    fn other_timescales_are_converted_and_a_timescale_of_zero_is_skipped() {
        let ms = EventMessage {
            timescale: 1000,
            presentation_time: START / 90 + 500, // 0.5 s into the span
            event_duration: 1000,
            ..event(4, 0, 0)
        };
        let nowhere = EventMessage {
            timescale: 0,
            ..event(9, START, 1)
        };
        let d = decode_segment(&write_event_track_segment(
            3,
            14,
            START,
            SPAN,
            &[ms, nowhere],
        ));
        assert_eq!(durations(&d), [45_000, 90_000, 45_000]);
        let e = emibs(&d.samples[1].2);
        assert_eq!((e.len(), e[0].id, e[0].event_duration), (1, 4, 90_000));
    }

    #[test]
    fn last_and_filler_brands_and_a_zero_span() {
        let seg = EventSegment {
            sequence: 15,
            start: START,
            duration: 0,
            events: &[],
            brands: FragmentBrands::Last,
        };
        let d = decode_segment(&write_event_segment(3, &seg));
        assert!(d.styp.compatible_brands.contains(&b"lmsg".into()));
        assert_eq!(
            d.moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            START
        );
        assert_eq!(durations(&d), [0]);
        let d = decode_segment(&write_event_segment(
            3,
            &EventSegment {
                duration: SPAN,
                brands: FragmentBrands::Filler,
                ..seg
            },
        ));
        assert!(d.styp.compatible_brands.contains(&b"slat".into()));
    }

    #[test]
    fn a_span_longer_than_a_sample_duration_is_split() {
        let long = u64::from(u32::MAX) + 10;
        let d = decode_segment(&write_event_track_segment(3, 16, START, long, &[]));
        assert_eq!(durations(&d), [u32::MAX, 10]);
    }

    /// ISO/IEC 23001-18 §7.4 and DASH-IF item 8 over many layouts: the samples tile the span;
    /// a sample holds exactly the events not ended at its start, with the delta to their
    /// start; no event starts or ends strictly inside a sample; an `emeb` only when none.
    #[test]
    fn every_layout_keeps_the_sample_rules() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..300 {
            let n = next(5) as usize;
            let events: Vec<EventMessage<'static>> = (0..n)
                .map(|k| {
                    let t = START - 300_000 + next(900_000);
                    let d = match next(4) {
                        0 => UNKNOWN_DURATION,
                        1 => 0,
                        _ => next(400_000) as u32,
                    };
                    event(k as u32 + 1, t, d)
                })
                .collect();
            let span = 1 + next(SPAN);
            let d = decode_segment(&write_event_track_segment(3, round, START, span, &events));
            let active = |e: &EventMessage<'_>| {
                let len = match e.event_duration {
                    0 | UNKNOWN_DURATION => 1,
                    x => u64::from(x),
                };
                (e.presentation_time, e.presentation_time + len)
            };
            let mut total = 0u64;
            for (t, dur, bytes) in &d.samples {
                assert!(*dur > 0);
                total += u64::from(*dur);
                let (t, end) = (*t, t + u64::from(*dur));
                let mut want: Vec<(u32, i64)> = events
                    .iter()
                    .filter(|e| active(e).1 > t)
                    .map(|e| (e.id, e.presentation_time as i64 - t as i64))
                    .collect();
                want.sort_by_key(|&(id, delta)| (delta, id));
                let got: Vec<(u32, i64)> = emibs(bytes)
                    .iter()
                    .map(|e| (e.id, e.presentation_time_delta))
                    .collect();
                assert_eq!(got, want, "round {round}, sample at {t}");
                for e in &events {
                    let (a, b) = active(e);
                    let inside = |x: u64| t < x && x < end;
                    assert!(!inside(a) && !inside(b), "round {round}: no change inside");
                }
            }
            assert_eq!(total, span, "round {round}");
        }
    }
}
