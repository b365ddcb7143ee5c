//! Smooth Streaming (MS-SSTR) fragmented MP4 for live ingest: the stream header (`ftyp`, the
//! Live Server Manifest box, `moov`) and fragments (`moof` with a `tfxd` box, `mdat`).
//!
//! References: [MS-SSTR] §2.2.4 (fragment, `tfxd` TfxdBox uuid 6d1d9b05-42d5-44e6-80e2-
//! 141daff757b2), the Azure Media Services "fragmented MP4 live ingest" specification §3
//! (ftyp + Live Server Manifest box uuid a5d40b30-e814-11dd-ba2f-0800200c9a66 + moov at the
//! start of every POST; `tfxd` in every fragment; 10 MHz video timescale recommended).
//!
//! Video is rescaled from 90 kHz to 10 MHz from absolute decode times (never by adding
//! rounded durations), so fragment n starts at the same 10 MHz time on both boxes of a pair.
//! Audio keeps its own timescale (the sample rate), which is exact.

use super::init::write_init;
use super::writer::{BoxPos, BoxWriter};
use crate::time::{MediaTime, Rounding, Timescale};
use crate::track::{Sample, TrackInfo, TrackKind};

/// `tfxd` extended type (MS-SSTR §2.2.4.4).
pub const TFXD_UUID: [u8; 16] = [
    0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2,
];
/// Live Server Manifest box extended type (Azure fMP4 ingest §3.3.2).
pub const LIVE_SERVER_MANIFEST_UUID: [u8; 16] = [
    0xa5, 0xd4, 0x0b, 0x30, 0xe8, 0x14, 0x11, 0xdd, 0xba, 0x2f, 0x08, 0x00, 0x20, 0x0c, 0x9a, 0x66,
];
/// Video timescale of Smooth ingest.
pub const VIDEO_TIMESCALE: u32 = 10_000_000;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// The track as Smooth ingest carries it: video at 10 MHz, audio unchanged.
pub fn smooth_track(track: &TrackInfo) -> TrackInfo {
    let mut t = track.clone();
    if t.kind() == TrackKind::Video {
        t.timescale = VIDEO_TIMESCALE;
    }
    t
}

fn rescale(t: u64, from: Timescale, to: Timescale) -> u64 {
    MediaTime::new(t, from).rescale(to, Rounding::Floor).ticks()
}

/// Samples in timescale `to`, each start computed from its absolute decode time; durations are
/// differences of rescaled starts (the last one ends at the rescaled end of the fragment).
/// A timescale of 0 (no track has one) leaves the samples as they are.
pub fn rescale_samples(samples: &[Sample], from: u32, to: u32) -> Vec<Sample> {
    let (Some(from), Some(to)) = (Timescale::new(from), Timescale::new(to)) else {
        return samples.to_vec();
    };
    if from == to {
        return samples.to_vec();
    }
    samples
        .iter()
        .map(|s| {
            let start = rescale(s.dts, from, to);
            let end = rescale(s.dts + u64::from(s.duration), from, to);
            let pts = i128::from(s.dts) + i128::from(s.cts_offset);
            let pts = rescale(pts.max(0) as u64, from, to);
            Sample {
                dts: start,
                duration: u32::try_from(end - start).unwrap_or(u32::MAX),
                cts_offset: i32::try_from(pts as i128 - start as i128).unwrap_or(0),
                keyframe: s.keyframe,
                data: s.data.clone(),
            }
        })
        .collect()
}

/// The Live Server Manifest (a SMIL 2.0 document) naming every stream of the presentation.
pub fn live_server_manifest(tracks: &[TrackInfo]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n  <head>\n    <meta name=\"creator\" content=\"twincast\" />\n  </head>\n  <body>\n    <switch>\n",
    );
    for t in tracks {
        let t = smooth_track(t);
        let element = match t.kind() {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        };
        xml.push_str(&format!(
            "      <{element} src=\"Streams({name})\" systemBitrate=\"{bitrate}\">\n        <param name=\"trackID\" value=\"{id}\" valuetype=\"data\" />\n        <param name=\"trackName\" value=\"{name}\" valuetype=\"data\" />\n        <param name=\"timescale\" value=\"{ts}\" valuetype=\"data\" />\n      </{element}>\n",
            name = t.name,
            bitrate = t.bitrate,
            id = t.id,
            ts = t.timescale,
        ));
    }
    xml.push_str("    </switch>\n  </body>\n</smil>\n");
    xml
}

/// The header of one stream's POST body: `ftyp`, Live Server Manifest box, `moov`.
/// `track` is the original track (it is rescaled here); `manifest` from
/// [`live_server_manifest`].
pub fn write_header(track: &TrackInfo, manifest: &str) -> Vec<u8> {
    let smooth = smooth_track(track);
    let init = write_init(&smooth);
    let mut buf = Vec::with_capacity(init.len() + manifest.len() + 64);
    let mut w = BoxWriter::new(&mut buf);
    write_ftyp_and_manifest(&mut w, manifest);
    // The moov of our CMAF header (skip its ftyp: the first box).
    let ftyp_len = init
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .min(init.len());
    w.bytes(&init[ftyp_len..]);
    buf
}

/// What every stream's POST body starts with: `ftyp` (`isml`) and the Live Server Manifest box.
pub(super) fn write_ftyp_and_manifest(w: &mut BoxWriter<'_>, manifest: &str) {
    let ftyp = w.start_box(b"ftyp");
    w.fourcc(b"isml");
    w.u32(1);
    for brand in [b"piff", b"iso2", b"isml"] {
        w.fourcc(brand);
    }
    w.end_box(ftyp);
    let lsm = w.start_full_uuid_box(&LIVE_SERVER_MANIFEST_UUID, 0, 0);
    w.bytes(manifest.as_bytes());
    w.end_box(lsm);
}

/// Ends a fragment's `traf` with its `tfxd` (`time` and `duration` at 10 MHz), ends the
/// `moof`, writes the `mdat` header for `payload` bytes and patches the `trun`'s data offset
/// (at `data_offset_at`) to point at them; the payload follows.
pub(super) fn end_fragment_header(
    w: &mut BoxWriter<'_>,
    moof: BoxPos,
    traf: BoxPos,
    time: u64,
    duration: u64,
    data_offset_at: usize,
    payload: usize,
) {
    let tfxd = w.start_full_uuid_box(&TFXD_UUID, 1, 0);
    w.u64(time); // fragment_absolute_time
    w.u64(duration); // fragment_duration
    w.end_box(tfxd);
    w.end_box(traf);
    w.end_box(moof);
    w.write_mdat_header(payload as u64);
    let data_offset = w.len() - moof.offset();
    w.patch_u32(
        data_offset_at,
        u32::try_from(data_offset).unwrap_or(u32::MAX),
    );
}

/// One fragment: `moof` (`mfhd`, `traf` with `tfhd`, `tfdt`, `trun`, `tfxd`) and `mdat`.
/// `samples` are in the original track timescale and are rescaled here.
pub fn write_fragment(track: &TrackInfo, sequence: u32, samples: &[Sample]) -> Vec<u8> {
    let smooth = smooth_track(track);
    let samples = rescale_samples(samples, track.timescale, smooth.timescale);
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut buf = Vec::with_capacity(payload + 200 + 16 * samples.len());
    let mut w = BoxWriter::new(&mut buf);
    let start = samples.first().map_or(0, |s| s.dts);
    let end = samples
        .last()
        .map_or(start, |s| s.dts + u64::from(s.duration));

    let moof = w.start_box(b"moof");
    let mfhd = w.start_full_box(b"mfhd", 0, 0);
    w.u32(sequence);
    w.end_box(mfhd);
    let traf = w.start_box(b"traf");
    let tfhd = w.start_full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(smooth.id);
    w.end_box(tfhd);
    let tfdt = w.start_full_box(b"tfdt", 1, 0);
    w.u64(start);
    w.end_box(tfdt);
    let trun = w.start_full_box(b"trun", 1, TRUN_FLAGS);
    w.u32(u32::try_from(samples.len()).unwrap_or(u32::MAX));
    let data_offset_at = w.len();
    w.u32(0);
    for s in &samples {
        w.u32(s.duration);
        w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
        w.u32(if s.keyframe { SYNC } else { NON_SYNC });
        w.i32(s.cts_offset);
    }
    w.end_box(trun);
    end_fragment_header(
        &mut w,
        moof,
        traf,
        start,
        end - start,
        data_offset_at,
        payload,
    );
    for s in &samples {
        w.bytes(&s.data);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;

    fn video() -> TrackInfo {
        TrackInfo {
            id: 1,
            name: "240p".into(),
            timescale: 90_000,
            bitrate: 400_000,
            codec: Codec::H264 {
                avcc: vec![
                    1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68,
                    0xce,
                ],
                width: 426,
                height: 240,
            },
        }
    }

    fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            out.push((
                data[pos + 4..pos + 8].try_into().unwrap(),
                &data[pos + 8..pos + size],
            ));
            pos += size;
        }
        assert_eq!(pos, data.len());
        out
    }

    fn samples(first_k: u64, n: u64) -> Vec<Sample> {
        (first_k..first_k + n)
            .map(|k| Sample {
                dts: k * 3000,
                duration: 3000,
                cts_offset: 0,
                keyframe: k == first_k,
                data: vec![0, 0, 0, 1, 0x65],
            })
            .collect()
    }

    #[test]
    fn header_is_ftyp_manifest_moov() {
        let m = live_server_manifest(&[video()]);
        assert!(m.contains("Streams(240p)") && m.contains("10000000"));
        let h = write_header(&video(), &m);
        let b = boxes(&h);
        let kinds: Vec<&[u8; 4]> = b.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"ftyp", b"uuid", b"moov"]);
        assert_eq!(&b[0].1[..4], b"isml");
        assert_eq!(b[1].1[..16], LIVE_SERVER_MANIFEST_UUID);
        assert!(
            std::str::from_utf8(&b[1].1[20..])
                .unwrap()
                .starts_with("<?xml")
        );
        // mdhd carries the 10 MHz timescale.
        let pos = h.windows(4).position(|w| w == b"mdhd").unwrap();
        let ts = u32::from_be_bytes(h[pos + 16..pos + 20].try_into().unwrap());
        assert_eq!(ts, VIDEO_TIMESCALE);
    }

    #[test]
    fn fragments_carry_tfxd_with_exact_10mhz_times() {
        // Fragment n = 30 frames from k = 30 n at 30 fps, epoch-sized decode times.
        let base_k = 1_763_000_000u64 * 30;
        let f = write_fragment(&video(), 7, &samples(base_k, 30));
        let b = boxes(&f);
        assert_eq!(b[0].0, *b"moof");
        assert_eq!(b[1].0, *b"mdat");
        let traf = boxes(b[0].1)
            .into_iter()
            .find(|(k, _)| k == b"traf")
            .unwrap()
            .1;
        let inner = boxes(traf);
        let tfxd = inner.iter().find(|(k, _)| k == b"uuid").unwrap().1;
        assert_eq!(tfxd[..16], TFXD_UUID);
        let abs = u64::from_be_bytes(tfxd[20..28].try_into().unwrap());
        let dur = u64::from_be_bytes(tfxd[28..36].try_into().unwrap());
        assert_eq!(abs, 1_763_000_000 * 10_000_000);
        assert_eq!(dur, 10_000_000);
        let trun = inner.iter().find(|(k, _)| k == b"trun").unwrap().1;
        let durs: u64 = (0..30)
            .map(|i| {
                u64::from(u32::from_be_bytes(
                    trun[12 + i * 16..16 + i * 16].try_into().unwrap(),
                ))
            })
            .sum();
        assert_eq!(durs, 10_000_000, "durations add up exactly");
        // data_offset points at the first sample byte.
        let off = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(&f[off..off + 5], &[0, 0, 0, 1, 0x65]);
    }
}
