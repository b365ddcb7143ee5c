//! MPEG-TS demultiplexing (ISO/IEC 13818-1) with `mpeg2ts-reader`: PAT → PMT → the first H.264
//! stream (type 0x1B) and the first ADTS AAC stream (type 0x0F) as whole PES payloads with
//! their 33-bit PTS/DTS, the PCR (unfolded to 64 bits, discontinuities counted), and the
//! sections of every SCTE-35 PID (type 0x86, SCTE 35 §8) kept in a bounded queue for the
//! signals work and counted.
//!
//! Every TS packet is checked before the demultiplexer sees it (sync byte, transport error,
//! scrambling); bad ones are counted as malformed and dropped, so the crate's per-packet
//! warnings stay rare. A PES payload larger than [`MAX_UNIT_BYTES`] is dropped and counted.

use std::collections::VecDeque;

use mpeg2ts_reader::demultiplex::{
    self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PatPacketFilter,
    PmtPacketFilter,
};
use mpeg2ts_reader::packet::{Packet, Pid};
use mpeg2ts_reader::pes::{self, ElementaryStreamConsumer, PesContents, PtsDts};
use mpeg2ts_reader::psi::{self, SectionCommonHeader, SectionProcessor};
use mpeg2ts_reader::{StreamType, packet_filter_switch};

use super::rtp::TS_PACKET_SIZE;
use super::timing::{JumpDetector, Unwrap33, ticks_to_ns};

/// Largest PES payload accepted (a 4K intra picture fits).
pub const MAX_UNIT_BYTES: usize = 8 << 20;
/// SCTE-35 sections kept for a consumer (oldest dropped first, counted).
pub const SCTE35_QUEUE: usize = 64;
/// SCTE-35 stream type (SCTE 35 §8.1).
pub const STREAM_TYPE_SCTE35: StreamType = StreamType(0x86);
/// Longest private section (ISO/IEC 13818-1 §2.4.4.10: section_length ≤ 4093).
const MAX_SECTION: usize = 4096;

/// The elementary streams the front end decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsKind {
    H264,
    Aac,
}

/// Where and when the datagram that carried a TS packet arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Local arrival, ns since the epoch.
    pub arrival_ns: u64,
    /// RTP timestamp of the datagram (RTP inputs).
    pub rtp_ts: Option<u32>,
}

/// One PES payload of a decoded stream: an H.264 access unit (Annex B) or ADTS frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsUnit {
    pub kind: EsKind,
    /// 33-bit PTS (90 kHz).
    pub pts: Option<u64>,
    /// 33-bit DTS (90 kHz).
    pub dts: Option<u64>,
    pub data: Vec<u8>,
    /// The datagram that carried the PES header.
    pub meta: PacketMeta,
}

/// Counters of the demultiplexer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsCounters {
    pub packets: u64,
    /// TS packets dropped: no sync byte, transport error, scrambled, or a datagram tail.
    pub malformed: u64,
    /// Continuity counter gaps on a decoded stream (the PES in progress is dropped).
    pub cc_errors: u64,
    /// PES payloads dropped (no PES header, or over [`MAX_UNIT_BYTES`]).
    pub bad_units: u64,
    pub pcr_discontinuities: u64,
    /// `discontinuity_indicator` flags seen (signalled by the sender).
    pub signalled_discontinuities: u64,
    pub scte35_sections: u64,
    pub scte35_dropped: u64,
}

/// The demultiplexer's context: shared by all PID filters.
pub struct Ctx {
    changeset: FilterChangeset<Filter>,
    meta: PacketMeta,
    out: Vec<TsUnit>,
    video_pid: Option<Pid>,
    audio_pid: Option<Pid>,
    counters: TsCounters,
    scte35: VecDeque<Vec<u8>>,
}

packet_filter_switch! {
    Filter<Ctx> {
        Pat: PatPacketFilter<Ctx>,
        Pmt: PmtPacketFilter<Ctx>,
        Pes: pes::PesPacketFilter<Ctx, Collector>,
        Scte: SectionFilter,
        Null: NullPacketFilter<Ctx>,
    }
}

impl DemuxContext for Ctx {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => Filter::Pat(PatPacketFilter::default()),
            FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => {
                Filter::Null(NullPacketFilter::default())
            }
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filter::Pmt(PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } => {
                let pid = stream_info.elementary_pid();
                let take = |slot: &mut Option<Pid>| {
                    if slot.is_none_or(|p| p == pid) {
                        *slot = Some(pid);
                        true
                    } else {
                        false
                    }
                };
                if stream_type == StreamType::H264 && take(&mut self.video_pid) {
                    Filter::Pes(pes::PesPacketFilter::new(Collector::new(EsKind::H264)))
                } else if stream_type == StreamType::ADTS && take(&mut self.audio_pid) {
                    Filter::Pes(pes::PesPacketFilter::new(Collector::new(EsKind::Aac)))
                } else if stream_type == STREAM_TYPE_SCTE35 {
                    Filter::Scte(SectionFilter::default())
                } else {
                    Filter::Null(NullPacketFilter::default())
                }
            }
        }
    }
}

/// Collects one stream's PES payloads.
pub struct Collector {
    kind: EsKind,
    cur: Option<TsUnit>,
}

impl Collector {
    fn new(kind: EsKind) -> Self {
        Collector { kind, cur: None }
    }
}

impl ElementaryStreamConsumer<Ctx> for Collector {
    fn start_stream(&mut self, _ctx: &mut Ctx) {}

    fn begin_packet(&mut self, ctx: &mut Ctx, header: pes::PesHeader<'_>) {
        self.cur = None;
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            ctx.counters.bad_units += 1;
            return;
        };
        let (pts, dts) = match parsed.pts_dts() {
            Ok(PtsDts::PtsOnly(Ok(p))) => (Some(p.value()), None),
            Ok(PtsDts::Both {
                pts: Ok(p),
                dts: Ok(d),
            }) => (Some(p.value()), Some(d.value())),
            _ => (None, None),
        };
        self.cur = Some(TsUnit {
            kind: self.kind,
            pts,
            dts,
            data: parsed.payload().to_vec(),
            meta: ctx.meta,
        });
    }

    fn continue_packet(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if let Some(cur) = &mut self.cur {
            if cur.data.len() + data.len() > MAX_UNIT_BYTES {
                self.cur = None;
                ctx.counters.bad_units += 1;
            } else {
                cur.data.extend_from_slice(data);
            }
        }
    }

    fn end_packet(&mut self, ctx: &mut Ctx) {
        if let Some(unit) = self.cur.take() {
            ctx.out.push(unit);
        }
    }

    fn continuity_error(&mut self, ctx: &mut Ctx) {
        self.cur = None;
        ctx.counters.cc_errors += 1;
    }
}

/// Reassembles the sections of an SCTE-35 PID.
#[derive(Default)]
pub struct SectionFilter {
    consumer: Option<psi::SectionPacketConsumer<Sections>>,
}

impl demultiplex::PacketFilter for SectionFilter {
    type Ctx = Ctx;

    fn consume(&mut self, ctx: &mut Ctx, pk: &Packet<'_>) {
        // A PUSI packet whose payload cannot hold a pointer field and a section header is
        // malformed; the crate would index past it.
        if pk.payload_unit_start_indicator()
            && pk
                .payload()
                .is_none_or(|p| p.len() < 1 + SectionCommonHeader::SIZE)
        {
            ctx.counters.malformed += 1;
            return;
        }
        self.consumer
            .get_or_insert_with(|| psi::SectionPacketConsumer::new(Sections::default()))
            .consume(ctx, pk);
    }
}

/// Section bytes in progress.
#[derive(Default)]
pub struct Sections {
    buf: Vec<u8>,
    want: usize,
}

impl Sections {
    fn finish_if_whole(&mut self, ctx: &mut Ctx) {
        if self.want == 0 || self.buf.len() < self.want {
            return;
        }
        let section = self.buf[..self.want].to_vec();
        self.buf.clear();
        self.want = 0;
        ctx.counters.scte35_sections += 1;
        if ctx.scte35.len() >= SCTE35_QUEUE {
            ctx.scte35.pop_front();
            ctx.counters.scte35_dropped += 1;
        }
        ctx.scte35.push_back(section);
    }
}

impl SectionProcessor for Sections {
    type Context = Ctx;

    fn start_section(&mut self, ctx: &mut Ctx, header: &SectionCommonHeader, data: &[u8]) {
        self.buf.clear();
        self.want = SectionCommonHeader::SIZE + header.section_length;
        if self.want > MAX_SECTION {
            self.want = 0;
            ctx.counters.malformed += 1;
            return;
        }
        self.buf
            .extend_from_slice(&data[..data.len().min(self.want)]);
        self.finish_if_whole(ctx);
    }

    fn continue_section(&mut self, ctx: &mut Ctx, data: &[u8]) {
        if self.want == 0 {
            return;
        }
        let room = self.want - self.buf.len();
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.finish_if_whole(ctx);
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.want = 0;
    }
}

/// The demultiplexer of one feed.
pub struct TsDemux {
    demux: demultiplex::Demultiplex<Ctx>,
    ctx: Ctx,
    pcr: Unwrap33,
    pcr_jump: JumpDetector,
}

impl Default for TsDemux {
    fn default() -> Self {
        Self::new()
    }
}

impl TsDemux {
    pub fn new() -> Self {
        let mut ctx = Ctx {
            changeset: FilterChangeset::default(),
            meta: PacketMeta::default(),
            out: Vec::new(),
            video_pid: None,
            audio_pid: None,
            counters: TsCounters::default(),
            scte35: VecDeque::new(),
        };
        let demux = demultiplex::Demultiplex::new(&mut ctx);
        TsDemux {
            demux,
            ctx,
            pcr: Unwrap33::default(),
            pcr_jump: JumpDetector::default(),
        }
    }

    pub fn counters(&self) -> TsCounters {
        self.ctx.counters
    }

    /// The SCTE-35 sections received and not yet taken (oldest first).
    pub fn take_scte35(&mut self) -> Vec<Vec<u8>> {
        self.ctx.scte35.drain(..).collect()
    }

    /// Takes one datagram's TS packets; finished PES payloads are appended to `out`.
    pub fn push(&mut self, meta: PacketMeta, data: &[u8], out: &mut Vec<TsUnit>) {
        self.ctx.meta = meta;
        let chunks = data.chunks(TS_PACKET_SIZE);
        for chunk in chunks {
            self.ctx.counters.packets += 1;
            // `Packet::try_new` asserts the length: check it first.
            let pk = (chunk.len() == TS_PACKET_SIZE)
                .then(|| Packet::try_new(chunk))
                .flatten();
            let Some(pk) = pk else {
                self.ctx.counters.malformed += 1;
                continue;
            };
            if pk.transport_error_indicator() || pk.transport_scrambling_control().is_scrambled() {
                self.ctx.counters.malformed += 1;
                continue;
            }
            self.pcr_of(&pk, meta.arrival_ns);
            self.demux.push(&mut self.ctx, chunk);
        }
        out.append(&mut self.ctx.out);
    }

    fn pcr_of(&mut self, pk: &Packet<'_>, arrival_ns: u64) {
        let Some(af) = pk.adaptation_field() else {
            return;
        };
        if af.discontinuity_indicator() {
            self.ctx.counters.signalled_discontinuities += 1;
        }
        if let Ok(pcr) = af.pcr() {
            let (ext, _) = self.pcr.unwrap(pcr.base());
            if self.pcr_jump.jumped(ticks_to_ns(ext), arrival_ns) {
                self.ctx.counters.pcr_discontinuities += 1;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test TS writer: PAT, PMT (H.264 on 0x100 with PCR, ADTS on 0x101, SCTE-35 on 0x1F0) and
    /// PES packets. Small and plain so the tests say what bytes the demuxer sees.
    pub struct TsWriter {
        cc: [u8; 0x2000],
    }

    pub const VIDEO_PID: u16 = 0x100;
    pub const AUDIO_PID: u16 = 0x101;
    pub const SCTE_PID: u16 = 0x1F0;

    fn crc32(data: &[u8]) -> u32 {
        twincast_media::scte35::crc32_mpeg2(data)
    }

    impl TsWriter {
        pub fn new() -> Self {
            TsWriter { cc: [0; 0x2000] }
        }

        fn packet(&mut self, pid: u16, pusi: bool, af: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
            let cc = self.cc[pid as usize];
            self.cc[pid as usize] = (cc + 1) & 15;
            let mut p = vec![0x47, (u8::from(pusi) << 6) | (pid >> 8) as u8, pid as u8];
            if af.is_some() || payload.len() < 184 {
                p.push(0x30 | cc);
                let l = 183 - payload.len();
                p.push(l as u8);
                if l > 0 {
                    let a = af.unwrap_or(&[0x00]);
                    p.extend_from_slice(a);
                    p.extend(std::iter::repeat_n(0xff, l - a.len()));
                }
            } else {
                p.push(0x10 | cc);
            }
            p.extend_from_slice(payload);
            assert_eq!(p.len(), 188);
            p
        }

        fn section(&mut self, pid: u16, table: &[u8]) -> Vec<u8> {
            let mut body = table.to_vec();
            let crc = crc32(&body);
            body.extend_from_slice(&crc.to_be_bytes());
            let mut payload = vec![0];
            payload.extend_from_slice(&body);
            self.packet(pid, true, None, &payload)
        }

        pub fn psi(&mut self) -> Vec<u8> {
            // PAT: program 1 → PMT on PID 0x1000.
            let pat = [0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00];
            let mut out = self.section(0, &pat);
            let streams: [(u8, u16); 3] = [(0x1b, VIDEO_PID), (0x0f, AUDIO_PID), (0x86, SCTE_PID)];
            let mut pmt = vec![
                0x02,
                0xb0,
                0,
                0,
                1,
                0xc1,
                0,
                0,
                0xe0 | (VIDEO_PID >> 8) as u8,
                VIDEO_PID as u8,
                0xf0,
                0,
            ];
            for (t, pid) in streams {
                pmt.extend_from_slice(&[t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
            }
            pmt[2] = (pmt.len() - 3 + 4) as u8;
            out.extend(self.section(0x1000, &pmt));
            out
        }

        fn ts_bytes(marker: u8, t: u64) -> [u8; 5] {
            [
                marker << 4 | (((t >> 30) & 7) as u8) << 1 | 1,
                (t >> 22) as u8,
                (((t >> 15) & 0x7f) as u8) << 1 | 1,
                (t >> 7) as u8,
                ((t & 0x7f) as u8) << 1 | 1,
            ]
        }

        /// One PES with `data`, split into TS packets; the first carries a PCR when given.
        pub fn pes(&mut self, pid: u16, pts: u64, pcr: Option<u64>, data: &[u8]) -> Vec<u8> {
            let stream_id = if pid == VIDEO_PID { 0xe0 } else { 0xc0 };
            let mut pes = vec![0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5];
            pes.extend_from_slice(&Self::ts_bytes(2, pts));
            pes.extend_from_slice(data);
            if pid != VIDEO_PID {
                let len = pes.len() - 6;
                pes[4] = (len >> 8) as u8;
                pes[5] = len as u8;
            }
            let mut out = Vec::new();
            let mut first = true;
            let mut rest = &pes[..];
            while !rest.is_empty() || first {
                let af = if first {
                    pcr.map(|b| {
                        let mut a = vec![0x10];
                        a.extend_from_slice(&[
                            (b >> 25) as u8,
                            (b >> 17) as u8,
                            (b >> 9) as u8,
                            (b >> 1) as u8,
                            ((b & 1) as u8) << 7 | 0x7e,
                            0,
                        ]);
                        a
                    })
                } else {
                    None
                };
                let room = 184 - af.as_ref().map_or(0, |a| a.len() + 1);
                let n = rest.len().min(room);
                out.extend(self.packet(pid, first, af.as_deref(), &rest[..n]));
                rest = &rest[n..];
                first = false;
            }
            out
        }

        pub fn scte35(&mut self, section: &[u8]) -> Vec<u8> {
            self.section(SCTE_PID, section)
        }
    }

    fn meta(t: u64) -> PacketMeta {
        PacketMeta {
            arrival_ns: t,
            rtp_ts: Some(t as u32),
        }
    }

    #[test]
    fn demuxes_video_audio_and_scte35() {
        let mut w = TsWriter::new();
        let mut d = TsDemux::new();
        let mut out = Vec::new();
        d.push(meta(1), &w.psi(), &mut out);
        let idr = [0, 0, 0, 1, 0x65, 1, 2, 3];
        for i in 0..3u64 {
            let big: Vec<u8> = idr
                .iter()
                .copied()
                .chain(std::iter::repeat_n(9, 500))
                .collect();
            d.push(
                meta(10 + i),
                &w.pes(VIDEO_PID, 90_000 + i * 3000, Some(80_000 + i * 3000), &big),
                &mut out,
            );
            d.push(
                meta(20 + i),
                &w.pes(AUDIO_PID, 90_000 + i * 1920, None, &[0xff, 0xf1, 1, 2]),
                &mut out,
            );
        }
        let sc = [
            0xfc, 0x30, 0x11, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        d.push(meta(30), &w.scte35(&sc[..16]), &mut out);
        // Video PES are unbounded: the last one ends at the next PES start.
        d.push(meta(40), &w.pes(VIDEO_PID, 99_000, None, &idr), &mut out);
        let video: Vec<_> = out.iter().filter(|u| u.kind == EsKind::H264).collect();
        let audio: Vec<_> = out.iter().filter(|u| u.kind == EsKind::Aac).collect();
        assert_eq!(video.len(), 3);
        assert!(audio.len() >= 2);
        assert_eq!(video[1].pts, Some(93_000));
        assert_eq!(video[1].meta.arrival_ns, 11);
        assert_eq!(video[0].data.len(), 508);
        assert_eq!(&video[0].data[..5], &idr[..5]);
        assert_eq!(audio[0].data, vec![0xff, 0xf1, 1, 2]);
        let c = d.counters();
        assert_eq!((c.malformed, c.cc_errors, c.pcr_discontinuities), (0, 0, 0));
        assert_eq!(c.scte35_sections, 1);
        assert_eq!(d.take_scte35().len(), 1);
    }

    #[test]
    fn malformed_packets_are_counted_and_dropped() {
        let mut w = TsWriter::new();
        let mut d = TsDemux::new();
        let mut out = Vec::new();
        let mut psi = w.psi();
        psi.extend_from_slice(&[0x11; 188]);
        psi.extend_from_slice(&[0x47; 100]);
        d.push(meta(1), &psi, &mut out);
        let mut tei = w.pes(VIDEO_PID, 0, None, &[1, 2, 3]);
        tei[1] |= 0x80;
        d.push(meta(2), &tei, &mut out);
        assert_eq!(d.counters().malformed, 3);
    }

    #[test]
    fn continuity_gap_drops_the_unit_in_progress() {
        let mut w = TsWriter::new();
        let mut d = TsDemux::new();
        let mut out = Vec::new();
        d.push(meta(1), &w.psi(), &mut out);
        let big = vec![7u8; 1000];
        let a = w.pes(VIDEO_PID, 0, None, &big);
        // Skip the second TS packet of the PES.
        let mut cut = a[..188].to_vec();
        cut.extend_from_slice(&a[376..]);
        d.push(meta(2), &cut, &mut out);
        d.push(meta(3), &w.pes(VIDEO_PID, 3000, None, &big), &mut out);
        d.push(meta(4), &w.pes(VIDEO_PID, 6000, None, &big), &mut out);
        assert_eq!(d.counters().cc_errors, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].pts, Some(3000));
    }

    #[test]
    fn pcr_wrap_is_no_discontinuity_but_a_jump_is() {
        let mut w = TsWriter::new();
        let mut d = TsDemux::new();
        let mut out = Vec::new();
        d.push(meta(0), &w.psi(), &mut out);
        let near = (1u64 << 33) - 4500;
        let ms = 1_000_000u64;
        let mut t = 1_000 * ms;
        for i in 0..4u64 {
            let pcr = (near + i * 3000) & ((1 << 33) - 1);
            d.push(meta(t), &w.pes(VIDEO_PID, pcr, Some(pcr), &[1]), &mut out);
            t += 33 * ms + ms / 3;
        }
        assert_eq!(d.counters().pcr_discontinuities, 0);
        // 10 s of stream time in 33 ms of arrival: a discontinuity.
        let jump = 4500 + 900_000;
        d.push(meta(t), &w.pes(VIDEO_PID, jump, Some(jump), &[1]), &mut out);
        assert_eq!(d.counters().pcr_discontinuities, 1);
    }
}
