//! The SCTE-35 sparse track of Smooth Streaming live ingest (Azure Media Services fragmented-MP4
//! live ingest, MS-SSTR): its Live Server Manifest entry, its stream header (`ftyp`, Live Server
//! Manifest box, `moov`) and its sparse fragments (`moof` with `tfxd`, and an `mdat` holding
//! one binary message).
//!
//! # References
//!
//! - **[AMS-TMD]** Azure Media Services, "Signaling Timed Metadata in Live Streaming" (last
//!   updated 2019-08-22), §2.2 *Fragmented MP4 Ingest (Smooth Streaming)*,
//!   <https://docs.microsoft.com/en-us/azure/media-services/media-services-specifications-live-timed-metadata>
//!   (source: MicrosoftDocs/azure-docs,
//!   `articles/media-services/media-services-specifications-live-timed-metadata.md`).
//! - **[AMS-FMP4]** Azure Media Services, "Fragmented MP4 live ingest specification", §3 (boxes
//!   of every POST), §4 (HTTP), §7 item 6 (sparse POSTs short-lived) and §11 *Sparse track*
//!   (source: MicrosoftDocs/azure-docs,
//!   `articles/media-services/previous/media-services-fmp4-live-ingest-overview.md`).
//! - **[MS-SSTR]** §2.2.4.4 (`tfxd`), §2.2.7.3 (Live Server Manifest box), §2.2.2.3 (a text
//!   `StreamIndex` with a `Subtype`); the IIS "Smooth Streaming Server Manifest (Live) -
//!   textstream Element" page (the `<textstream src systemBitrate>` element with `<param>`s).
//! - ISO/IEC 14496-12 §8.4.3 (`hdlr`), §8.4.5.2 (`nmhd`), §8.5.2.2 (`SampleEntry`), §12.3
//!   (timed metadata tracks: handler `meta`, `MetaDataSampleEntry`).
//!
//! # What the spec requires, and what is written here
//!
//! **Live Server Manifest** ([AMS-TMD] §2.2.1): the sparse track MUST be declared with a
//! `<textstream>` entry with: `systemBitrate` "0"; `parentTrackName` the name of the parent
//! track, to whose timescale the sparse time codes are aligned (not itself sparse);
//! `manifestOutput` "true" (the track goes into the Smooth client manifest; also a MUST in
//! [AMS-FMP4] §11 step 3); `Subtype` the four-character code "DATA"; `Scheme`
//! "urn:scte:scte35:2013:bin" for SCTE-35; `trackName` unique per event stream; `timescale`
//! (optional) that of the parent track. The spec calls all of these "attributes"; the Live
//! Server Manifest format carries `systemBitrate` (and `src`) as attributes of the element and
//! everything else as `<param name value valuetype="data">` children (as [AMS-FMP4] §11 says:
//! "use the *parentTrackName* parameter"), so that is what [`sparse_manifest_entry`] writes,
//! plus the `trackID` param every Live Server Manifest track has. The parent is a video track,
//! whose Smooth timescale is 10 MHz ([`super::smooth::VIDEO_TIMESCALE`]): so is the sparse
//! track's ([`SPARSE_TIMESCALE`]). No `FourCC` param: the spec lists none (its client-manifest
//! example shows `FourCC=""`).
//!
//! **Stream header** ([AMS-FMP4] §3 item 1, §4 item 3): `ftyp`, Live Server Manifest box,
//! `moov`, in that order, at the start of every POST. The `moov` ([AMS-TMD] §2.2.2): `tkhd`
//! duration SHOULD be 0; `hdlr` handler_type SHOULD be `meta`; `stsd` SHOULD hold a
//! `MetaDataSampleEntry` whose coding name for SCTE-35 SHOULD be `scte`. Written here: `mvhd`,
//! `trak` (`tkhd` duration 0; `mdia` with `mdhd` at 10 MHz, `hdlr` `meta`, `minf` with the null
//! media header `nmhd` that ISO/IEC 14496-12 §12.3.2 gives metadata tracks, `dinf`, `stbl`
//! with one `scte` entry — the bare `SampleEntry` fields: six reserved bytes and
//! data_reference_index 1 — and empty tables), `mvex`/`trex`.
//!
//! **Sparse fragment** ([AMS-TMD] §2.2.3, §2.2): a `moof` and an `mdat`. The `moof` MUST hold
//! a `tfxd` (TrackFragmentExtendedHeaderBox) whose `fragment_absolute_time` MUST be the
//! *arrival time* of the event ("this value aligns the message with the parent track") and
//! whose `fragment_duration` MUST be the event's duration (0: unknown). The `mdat` MUST be:
//! `version` (u32, only 1 is defined; others are ignored), `id` (u32, same id = same event),
//! `presentation_time_delta` (u32: `fragment_absolute_time` + delta MUST be the event's
//! presentation time), `message` (for SCTE-35 the binary splice_info_section(), NOT base64).
//! The `mdat` is this "AMS binary" record, not an `emsg`: the scheme travels once, in the
//! manifest's `Scheme` param. The spec names no other box; the rest of the `moof` is what ISO
//! BMFF needs to find the sample and what this crate's audio/video Smooth fragments carry
//! (`mfhd` with the sequence number, `traf` with `tfhd` (default-base-is-moof), `tfdt` equal to
//! the `tfxd` time, a one-sample `trun` whose sample is the whole `mdat` payload, then `tfxd`).
//! One event per fragment: the `mdat` format holds one message, the `tfxd` one duration, and
//! events of one stream MUST NOT overlap in time.
//!
//! **Times**: the sparse track counts in 10 MHz ticks of the same absolute (epoch) timeline as
//! the Smooth video, which [`super::smooth`] rescales from 90 kHz with floor from absolute
//! times. [`to_10mhz`] is the same floor of the same absolute value, so an event on a frame
//! lands on exactly the 10 MHz tick of that frame's video sample (90 kHz → 10 MHz is exact
//! only on multiples of 9 ticks; the floor makes it consistent instead). A duration is the
//! difference of the rescaled end and start, as smooth.rs does for samples.
//!
//! **When nothing happens** ([AMS-FMP4] §11 step 4, §7 item 6): no filler fragments; the
//! sparse track does not need to say that time moves on. At the start of the live event the
//! encoder sends the header boxes, so the service registers the sparse track in the client
//! manifest; it SHOULD close the POST while no signaling data is available (a POST that sends
//! nothing blocks the service on a service update); each sparse POST SHOULD be short-lived,
//! ending as soon as its fragment is sent, MAY carry a Content-Length, and starts again with the
//! header boxes (a new connection may reach a server that has not seen the track). A sparse
//! fragment of time `t` is made available to clients once the parent track has a fragment at
//! `t` or later. Cancels and updates: a later message with the same presentation time and
//! `id` replaces an earlier one, if it arrives at least 4 s before the presentation time
//! ([AMS-TMD] §2.2.4); see [`SPARSE_LEAD_10MHZ`] and [`sparse_arrival`].

use super::emsg::{EventMessage, SCTE35_SCHEME, UNKNOWN_DURATION};
use super::smooth::{VIDEO_TIMESCALE, live_server_manifest};
use super::writer::BoxWriter;
use crate::time::{MediaTime, Rounding, Timescale};
use crate::track::{TrackInfo, TrackKind};

/// `trackName` of the sparse track, and so its POST URL `…/Streams(scte35)`.
pub const SPARSE_TRACK_NAME: &str = "scte35";
/// Timescale of the sparse track: its parent's, a Smooth video track's 10 MHz ([AMS-TMD]
/// §2.2.1 `timescale`).
pub const SPARSE_TIMESCALE: u32 = VIDEO_TIMESCALE;
/// `Subtype` of the sparse track ([AMS-TMD] §2.2.1).
pub const SPARSE_SUBTYPE: &str = "DATA";
/// Coding name of the sparse track's `MetaDataSampleEntry` for SCTE-35 ([AMS-TMD] §2.2.2).
pub const SCTE_SAMPLE_ENTRY: [u8; 4] = *b"scte";
/// `version` of the `mdat` message record, the only one defined ([AMS-TMD] §2.2.3).
pub const MESSAGE_VERSION: u32 = 1;
/// The pre-roll the service needs (4 s, [AMS-TMD] §2.2.4: messages received at least four
/// seconds before the presentation time are acted upon), in 10 MHz ticks: how far before its
/// presentation time [`sparse_arrival`] puts an event.
pub const SPARSE_LEAD_10MHZ: u64 = 4 * SPARSE_TIMESCALE as u64;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size and sample-flags present.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400;
/// Sample flags of a metadata sample: a sync sample (sample_depends_on = 2).
const SYNC: u32 = 0x0200_0000;

/// Why an event cannot become a sparse fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparseError {
    /// The track's manifest entry declares the SCTE-35 scheme; the event has another.
    #[error("event scheme {0:?} is not {SCTE35_SCHEME}")]
    Scheme(String),
    /// The event's timescale is 0.
    #[error("event timescale is 0")]
    Timescale,
    /// The arrival time is after the presentation time: the delta is unsigned.
    #[error("arrival {arrival} is after the presentation time {presentation} (10 MHz)")]
    ArrivalAfterPresentation { arrival: u64, presentation: u64 },
    /// Presentation minus arrival does not fit the 32-bit delta (429.4 s at 10 MHz).
    #[error("presentation time is {delta} ticks (10 MHz) after the arrival: more than 32 bits")]
    DeltaTooLarge { delta: u64 },
}

/// The parent track for the sparse track: the first video track (every video track of a
/// presentation has the same 10 MHz timeline). `None` without video.
pub fn parent_track(tracks: &[TrackInfo]) -> Option<&TrackInfo> {
    tracks.iter().find(|t| t.kind() == TrackKind::Video)
}

/// A `trackID` for the sparse track that no other track of the presentation has: one past the
/// largest.
pub fn sparse_track_id(tracks: &[TrackInfo]) -> u32 {
    tracks
        .iter()
        .map(|t| t.id)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// `t` ticks of `timescale` as 10 MHz ticks of the same absolute timeline, rounded down (as
/// the Smooth video is); `None` for a timescale of 0.
pub fn to_10mhz(t: u64, timescale: u32) -> Option<u64> {
    let from = Timescale::new(timescale)?;
    let to = Timescale::new(SPARSE_TIMESCALE)?;
    Some(MediaTime::new(t, from).rescale(to, Rounding::Floor).ticks())
}

/// The arrival time to give an event presented at `presentation_10mhz`: [`SPARSE_LEAD_10MHZ`]
/// before it, so the service gets its 4 s pre-roll and both boxes of a pair compute the same
/// time, but never at or before the arrival of the previous sparse fragment of the track
/// (fragment times SHOULD increase, [AMS-FMP4] §3 item 8; an equal one would be taken for a
/// duplicate). The result may then exceed the presentation time, which
/// [`write_sparse_fragment`] refuses: two events that close together cannot both be sent.
pub fn sparse_arrival(presentation_10mhz: u64, previous_arrival: Option<u64>) -> u64 {
    let lead = presentation_10mhz.saturating_sub(SPARSE_LEAD_10MHZ);
    match previous_arrival {
        Some(p) if p >= lead => p.saturating_add(1),
        _ => lead,
    }
}

/// The `<textstream>` element of the sparse track for the `<switch>` of the Live Server
/// Manifest ([AMS-TMD] §2.2.1), indented like [`live_server_manifest`]'s tracks.
/// `parent_track_name` is the `trackName` of a video track ([`parent_track`]).
pub fn sparse_manifest_entry(track_id: u32, parent_track_name: &str) -> String {
    let mut xml =
        format!("      <textstream src=\"Streams({SPARSE_TRACK_NAME})\" systemBitrate=\"0\">\n");
    let params = [
        ("trackID", track_id.to_string()),
        ("trackName", SPARSE_TRACK_NAME.to_string()),
        ("timescale", SPARSE_TIMESCALE.to_string()),
        ("Subtype", SPARSE_SUBTYPE.to_string()),
        ("Scheme", SCTE35_SCHEME.to_string()),
        ("parentTrackName", crate::dash::xml_attr(parent_track_name)),
        ("manifestOutput", "true".to_string()),
    ];
    for (name, value) in params {
        xml.push_str(&format!(
            "        <param name=\"{name}\" value=\"{value}\" valuetype=\"data\" />\n"
        ));
    }
    xml.push_str("      </textstream>\n");
    xml
}

/// The Live Server Manifest of [`live_server_manifest`] with, when `sparse` is
/// `Some((track_id, parent_track_name))`, the sparse track's entry as the last track of its
/// `<switch>`. Every stream of the presentation (audio, video and the sparse one) sends this
/// same manifest: it describes all the presentation's tracks (MS-SSTR §2.2.7.3).
pub fn live_server_manifest_with_sparse(
    tracks: &[TrackInfo],
    sparse: Option<(u32, &str)>,
) -> String {
    let mut xml = live_server_manifest(tracks);
    if let Some((id, parent)) = sparse
        && let Some(at) = xml.rfind("    </switch>")
    {
        xml.insert_str(at, &sparse_manifest_entry(id, parent));
    }
    xml
}

/// The header of the sparse track's POST body: `ftyp`, Live Server Manifest box (`manifest`,
/// from [`live_server_manifest_with_sparse`]), `moov` ([AMS-TMD] §2.2.2). A POST of this alone
/// registers the track ([AMS-FMP4] §11 step 4a).
pub fn write_sparse_header(track_id: u32, manifest: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(manifest.len() + 640);
    let mut w = BoxWriter::new(&mut buf);
    super::smooth::write_ftyp_and_manifest(&mut w, manifest);
    write_moov(&mut w, track_id);
    buf
}

/// The sparse track's `moov` ([AMS-TMD] §2.2.2): handler `meta`, a `scte` sample entry,
/// `tkhd` duration 0 (the track box has no samples).
fn write_moov(w: &mut BoxWriter<'_>, track_id: u32) {
    super::init::write_metadata_moov(w, track_id, SPARSE_TIMESCALE, b"twincast scte35\0", |w| {
        let entry = w.start_box(&SCTE_SAMPLE_ENTRY);
        w.zeros(6); // SampleEntry reserved
        w.u16(1); // data_reference_index
        w.end_box(entry);
    });
}

/// One sparse fragment for `event` ([AMS-TMD] §2.2.3): `moof` (`mfhd` `sequence`, `traf` with
/// `tfhd`, `tfdt`, a one-sample `trun`, `tfxd`) and `mdat` (version 1, the event's `id`, the
/// presentation time delta, the event's message data: for SCTE-35 the splice_info_section).
///
/// `arrival_10mhz` becomes the `tfxd` `fragment_absolute_time` (and the `tfdt`): the event's
/// arrival time on the 10 MHz timeline ([`sparse_arrival`]). The event's presentation time
/// and duration are rescaled to 10 MHz ([`to_10mhz`]); an unknown duration is written as 0.
pub fn write_sparse_fragment(
    track_id: u32,
    sequence: u32,
    arrival_10mhz: u64,
    event: &EventMessage<'_>,
) -> Result<Vec<u8>, SparseError> {
    if event.scheme_id_uri != SCTE35_SCHEME {
        return Err(SparseError::Scheme(event.scheme_id_uri.to_string()));
    }
    let presentation =
        to_10mhz(event.presentation_time, event.timescale).ok_or(SparseError::Timescale)?;
    let duration = if event.event_duration == UNKNOWN_DURATION {
        0
    } else {
        let end = event
            .presentation_time
            .saturating_add(u64::from(event.event_duration));
        to_10mhz(end, event.timescale)
            .ok_or(SparseError::Timescale)?
            .saturating_sub(presentation)
    };
    let delta =
        presentation
            .checked_sub(arrival_10mhz)
            .ok_or(SparseError::ArrivalAfterPresentation {
                arrival: arrival_10mhz,
                presentation,
            })?;
    let delta = u32::try_from(delta).map_err(|_| SparseError::DeltaTooLarge { delta })?;

    let payload = 12 + event.message_data.len();
    let mut buf = Vec::with_capacity(payload + 160);
    let mut w = BoxWriter::new(&mut buf);
    let moof = w.start_box(b"moof");
    let mfhd = w.start_full_box(b"mfhd", 0, 0);
    w.u32(sequence);
    w.end_box(mfhd);
    let traf = w.start_box(b"traf");
    let tfhd = w.start_full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(track_id);
    w.end_box(tfhd);
    let tfdt = w.start_full_box(b"tfdt", 1, 0);
    w.u64(arrival_10mhz);
    w.end_box(tfdt);
    let trun = w.start_full_box(b"trun", 0, TRUN_FLAGS);
    w.u32(1); // sample_count
    let data_offset_at = w.len();
    w.u32(0); // data_offset, patched below
    w.u32(u32::try_from(duration).unwrap_or(u32::MAX));
    w.u32(u32::try_from(payload).unwrap_or(u32::MAX));
    w.u32(SYNC);
    w.end_box(trun);
    // The tfxd: the arrival time, and the event's duration.
    super::smooth::end_fragment_header(
        &mut w,
        moof,
        traf,
        arrival_10mhz,
        duration,
        data_offset_at,
        payload,
    );
    w.u32(MESSAGE_VERSION);
    w.u32(event.id);
    w.u32(delta);
    w.bytes(event.message_data);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::init::tests::{audio_track, decode_all, video_track};
    use crate::mp4::smooth::{LIVE_SERVER_MANIFEST_UUID, TFXD_UUID};
    use crate::track::Sample;
    use mp4_atom::{Any, Decode, Mdat, Mfhd, Tfdt, Tfhd, Trun};

    /// The first 16 bytes of the splice_insert section of [AMS-TMD] §3.2.1.1's HLS example.
    const SECTION: [u8; 16] = [
        0xFC, 0x30, 0x25, 0x00, 0x00, 0x00, 0x00, 0x05, 0xDD, 0x00, 0xFF, 0xF0, 0x14, 0x05, 0x00,
        0x00,
    ];
    /// An epoch-sized 90 kHz splice time (2026-12-03T23:50:21.5Z).
    const T90: u64 = 161_670_763_938_000;

    fn event(duration: u32) -> EventMessage<'static> {
        EventMessage {
            scheme_id_uri: SCTE35_SCHEME,
            value: "",
            timescale: 90_000,
            presentation_time: T90,
            event_duration: duration,
            id: 0x1234_5678,
            message_data: &SECTION,
        }
    }

    /// Top-level boxes of `data` as (type, whole box bytes, body); asserts the sizes add up.
    fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            assert!(pos + 8 <= data.len(), "a box header runs past the end");
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && pos + size <= data.len(),
                "box size {size} at {pos}"
            );
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            out.push((kind, &data[pos..pos + size], &data[pos + 8..pos + size]));
            pos += size;
        }
        assert_eq!(pos, data.len(), "the boxes fill the buffer exactly");
        out
    }

    fn kinds(b: &[([u8; 4], &[u8], &[u8])]) -> Vec<[u8; 4]> {
        b.iter().map(|(k, _, _)| *k).collect()
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn manifest_declares_the_sparse_track_in_the_switch() {
        let tracks = [video_track(), audio_track()];
        let parent = parent_track(&tracks).unwrap();
        assert_eq!(parent.name, "180p");
        let id = sparse_track_id(&tracks);
        assert_eq!(id, 3);
        let m = live_server_manifest_with_sparse(&tracks, Some((id, &parent.name)));
        let entry = sparse_manifest_entry(id, "180p");
        for want in [
            "<textstream src=\"Streams(scte35)\" systemBitrate=\"0\">",
            "<param name=\"trackID\" value=\"3\" valuetype=\"data\" />",
            "<param name=\"trackName\" value=\"scte35\" valuetype=\"data\" />",
            "<param name=\"timescale\" value=\"10000000\" valuetype=\"data\" />",
            "<param name=\"Subtype\" value=\"DATA\" valuetype=\"data\" />",
            "<param name=\"Scheme\" value=\"urn:scte:scte35:2013:bin\" valuetype=\"data\" />",
            "<param name=\"parentTrackName\" value=\"180p\" valuetype=\"data\" />",
            "<param name=\"manifestOutput\" value=\"true\" valuetype=\"data\" />",
            "</textstream>",
        ] {
            assert!(entry.contains(want), "{want} missing from\n{entry}");
        }
        // Inside the switch, after the audio/video tracks, and nothing else changed.
        let base = live_server_manifest(&tracks);
        let at = m.find("<textstream").unwrap();
        assert!(at > m.rfind("</audio>").unwrap() && at > m.rfind("</video>").unwrap());
        assert!(at < m.find("</switch>").unwrap());
        assert_eq!(m.replace(&entry, ""), base);
        assert_eq!(m.matches("<textstream").count(), 1);
        // The parent is the video track, whose Smooth timescale the sparse track shares.
        assert!(base.contains("<param name=\"trackName\" value=\"180p\""));
        assert!(base.contains("<param name=\"timescale\" value=\"10000000\""));
        assert_eq!(live_server_manifest_with_sparse(&tracks, None), base);
    }

    #[test]
    fn parent_name_is_escaped_and_ids_are_fresh() {
        let e = sparse_manifest_entry(9, "a\"<b>&'");
        assert!(e.contains("value=\"a&quot;&lt;b&gt;&amp;&apos;\""));
        assert_eq!(parent_track(&[audio_track()]), None);
        assert_eq!(sparse_track_id(&[]), 1);
    }

    #[test]
    fn header_is_ftyp_manifest_meta_moov() {
        let tracks = [video_track(), audio_track()];
        let m = live_server_manifest_with_sparse(&tracks, Some((3, "180p")));
        let h = write_sparse_header(3, &m);
        let top = boxes(&h);
        assert_eq!(kinds(&top), [*b"ftyp", *b"uuid", *b"moov"]);
        assert_eq!(&top[0].2[..4], b"isml");
        assert_eq!(top[1].2[..16], LIVE_SERVER_MANIFEST_UUID);
        assert_eq!(&top[1].2[16..20], &[0, 0, 0, 0], "version 0, flags 0");
        assert_eq!(std::str::from_utf8(&top[1].2[20..]).unwrap(), m);

        // mp4-atom (strict) reads the whole header.
        let atoms = decode_all(&h);
        assert_eq!(atoms.len(), 3);
        let Any::Ftyp(ftyp) = &atoms[0] else {
            panic!("ftyp first")
        };
        assert_eq!(ftyp.major_brand, b"isml".into());
        assert!(matches!(atoms[1], Any::Uuid(_)));
        let moov = mp4_atom::Moov::decode(&mut &*top[2].1).unwrap();
        assert_eq!(moov.mvhd.timescale, SPARSE_TIMESCALE);
        assert_eq!(moov.mvhd.next_track_id, 4);
        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 3);
        assert_eq!(trak.tkhd.duration, 0);
        assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
        assert_eq!(trak.mdia.mdhd.timescale, SPARSE_TIMESCALE);
        assert_eq!(trak.mdia.hdlr.handler, b"meta".into());
        assert!(trak.mdia.minf.nmhd.is_some());
        assert!(trak.mdia.minf.vmhd.is_none() && trak.mdia.minf.smhd.is_none());
        let stbl = &trak.mdia.minf.stbl;
        assert_eq!(
            stbl.stsd.codecs,
            [mp4_atom::Codec::Unknown(
                b"scte".into(),
                vec![0, 0, 0, 0, 0, 0, 0, 1]
            )],
            "a bare MetaDataSampleEntry 'scte', data_reference_index 1"
        );
        assert!(stbl.stts.entries.is_empty());
        let trex = &moov.mvex.as_ref().unwrap().trex[0];
        assert_eq!(trex.track_id, 3);
        assert_eq!(trex.default_sample_description_index, 1);
    }

    #[test]
    fn fragment_carries_tfxd_arrival_and_the_binary_message() {
        let presentation = to_10mhz(T90, 90_000).unwrap();
        let arrival = sparse_arrival(presentation, None);
        assert_eq!(presentation - arrival, SPARSE_LEAD_10MHZ);
        let f = write_sparse_fragment(3, 17, arrival, &event(2_700_000)).unwrap();

        let top = boxes(&f);
        assert_eq!(kinds(&top), [*b"moof", *b"mdat"]);
        let moof = boxes(top[0].2);
        assert_eq!(kinds(&moof), [*b"mfhd", *b"traf"]);
        let traf = boxes(moof[1].2);
        assert_eq!(kinds(&traf), [*b"tfhd", *b"tfdt", *b"trun", *b"uuid"]);

        // mp4-atom (strict) reads every box it knows; it does not know `tfxd` inside a
        // `traf`, so the `moof` as a whole is walked by hand.
        let mfhd = Mfhd::decode(&mut &*moof[0].1).unwrap();
        assert_eq!(mfhd.sequence_number, 17);
        let tfhd = Tfhd::decode(&mut &*traf[0].1).unwrap();
        assert_eq!(tfhd.track_id, 3);
        assert!(tfhd.default_base_is_moof);
        let tfdt = Tfdt::decode(&mut &*traf[1].1).unwrap();
        assert_eq!(tfdt.base_media_decode_time, arrival);
        let trun = Trun::decode(&mut &*traf[2].1).unwrap();
        let samples: Vec<_> = trun.samples.iter().collect();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].duration, Some(30 * 10_000_000));
        assert_eq!(samples[0].size, Some(12 + SECTION.len() as u32));
        assert_eq!(samples[0].flags, Some(SYNC));
        // data_offset (from the moof's first byte) is the mdat payload's first byte.
        let off = trun.data_offset.unwrap() as usize;
        assert_eq!(off, top[0].1.len() + 8);

        // tfxd: version 1, absolute time = arrival, duration = the event's (30 s).
        let tfxd = traf[3].2;
        assert_eq!(tfxd[..16], TFXD_UUID);
        assert_eq!(&tfxd[16..20], &[1, 0, 0, 0]);
        assert_eq!(tfxd.len(), 36);
        assert_eq!(u64_at(tfxd, 20), arrival);
        assert_eq!(u64_at(tfxd, 28), 300_000_000);

        // mdat: version 1, id, delta, then the section itself (not base64).
        let mdat = Mdat::decode(&mut &*top[1].1).unwrap().data;
        assert_eq!(&f[off..], &mdat[..]);
        assert_eq!(u32_at(&mdat, 0), MESSAGE_VERSION);
        assert_eq!(u32_at(&mdat, 4), 0x1234_5678);
        let delta = u32_at(&mdat, 8);
        assert_eq!(arrival + u64::from(delta), presentation);
        assert_eq!(&mdat[12..], &SECTION);
    }

    #[test]
    fn times_land_on_the_video_ticks() {
        // The 90 kHz → 10 MHz floor of the same absolute time as smooth.rs's video samples.
        let presentation = to_10mhz(T90, 90_000).unwrap();
        assert_eq!(
            u128::from(presentation),
            u128::from(T90) * 10_000_000 / 90_000
        );
        let frame = Sample {
            dts: T90,
            duration: 3000,
            cts_offset: 0,
            keyframe: true,
            data: vec![0],
        };
        let video = crate::mp4::smooth::rescale_samples(&[frame], 90_000, VIDEO_TIMESCALE);
        assert_eq!(video[0].dts, presentation);
        // Exact on multiples of 9 ticks; 30 s is one.
        assert_eq!(to_10mhz(2_700_000, 90_000), Some(300_000_000));
        assert_eq!(to_10mhz(1, 0), None);
        // A duration is the difference of rescaled ends: 1 frame at 30 fps from T90.
        let f = write_sparse_fragment(3, 1, presentation, &event(3000)).unwrap();
        let d = u64_at(&f, f.windows(16).position(|w| w == TFXD_UUID).unwrap() + 28);
        assert_eq!(d, to_10mhz(T90 + 3000, 90_000).unwrap() - presentation);
        assert_eq!(d, video[0].duration as u64);
    }

    #[test]
    fn unknown_duration_is_zero_and_delta_may_be_zero() {
        let presentation = to_10mhz(T90, 90_000).unwrap();
        let f = write_sparse_fragment(3, 1, presentation, &event(UNKNOWN_DURATION)).unwrap();
        let tfxd_at = f.windows(16).position(|w| w == TFXD_UUID).unwrap();
        assert_eq!(u64_at(&f, tfxd_at + 20), presentation);
        assert_eq!(u64_at(&f, tfxd_at + 28), 0);
        let mdat = &f[f.len() - 12 - SECTION.len()..];
        assert_eq!(u32_at(mdat, 8), 0, "delta 0: presented on arrival");
    }

    #[test]
    fn events_that_cannot_be_written_are_refused() {
        let presentation = to_10mhz(T90, 90_000).unwrap();
        let mut e = event(0);
        e.scheme_id_uri = "urn:example";
        assert_eq!(
            write_sparse_fragment(3, 1, presentation, &e),
            Err(SparseError::Scheme("urn:example".into()))
        );
        let mut e = event(0);
        e.timescale = 0;
        assert_eq!(
            write_sparse_fragment(3, 1, 0, &e),
            Err(SparseError::Timescale)
        );
        assert_eq!(
            write_sparse_fragment(3, 1, presentation + 1, &event(0)),
            Err(SparseError::ArrivalAfterPresentation {
                arrival: presentation + 1,
                presentation
            })
        );
        let far = presentation - (u64::from(u32::MAX) + 1);
        assert_eq!(
            write_sparse_fragment(3, 1, far, &event(0)),
            Err(SparseError::DeltaTooLarge {
                delta: u64::from(u32::MAX) + 1
            })
        );
        assert!(write_sparse_fragment(3, 1, far + 1, &event(0)).is_ok());
    }

    #[test]
    fn arrivals_lead_by_four_seconds_and_always_increase() {
        let p = 1_000_000_000;
        assert_eq!(sparse_arrival(p, None), p - SPARSE_LEAD_10MHZ);
        assert_eq!(sparse_arrival(p, Some(0)), p - SPARSE_LEAD_10MHZ);
        // A previous fragment at or after the lead time: one tick after it.
        assert_eq!(
            sparse_arrival(p, Some(p - SPARSE_LEAD_10MHZ)),
            p - SPARSE_LEAD_10MHZ + 1
        );
        assert_eq!(sparse_arrival(p, Some(p - 5)), p - 4);
        // Near zero the lead saturates.
        assert_eq!(sparse_arrival(5, None), 0);
        // Two boxes of a pair computing from the same presentation time agree.
        assert_eq!(sparse_arrival(p, None), sparse_arrival(p, None));
    }

    #[test]
    fn header_alone_is_a_whole_stream_and_fragments_append() {
        let tracks = [video_track()];
        let m = live_server_manifest_with_sparse(&tracks, Some((2, "180p")));
        let mut body = write_sparse_header(2, &m);
        let header_len = body.len();
        let p = to_10mhz(T90, 90_000).unwrap();
        body.extend(write_sparse_fragment(2, 1, sparse_arrival(p, None), &event(0)).unwrap());
        let top = boxes(&body);
        assert_eq!(
            kinds(&top),
            [*b"ftyp", *b"uuid", *b"moov", *b"moof", *b"mdat"]
        );
        assert_eq!(
            top[..3].iter().map(|b| b.1.len()).sum::<usize>(),
            header_len
        );
    }
}
