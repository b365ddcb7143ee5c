//! Throughput of the CMAF fragment writer: one 2 s fragment of a 6 Mbit/s rendition
//! (60 samples of ~25 KB, one IDR), the largest fragment the default ladder produces.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use twincast_media::mp4::{
    FragmentBrands, FragmentParams, Prft, write_fragment, write_fragment_into,
};
use twincast_media::{Codec, Sample, TrackInfo};

const EPOCH_DTS: u64 = 1_763_000_000 * 90_000;

fn track() -> TrackInfo {
    TrackInfo {
        id: 1,
        name: "1080p".into(),
        timescale: 90_000,
        bitrate: 6_000_000,
        codec: Codec::H264 {
            // Baseline SPS/PPS are enough: the writer copies avcC verbatim.
            avcc: vec![
                1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x28, 1, 0, 2, 0x68, 0xee,
            ],
            width: 1920,
            height: 1080,
        },
    }
}

fn samples() -> Vec<Sample> {
    (0..60u64)
        .map(|k| {
            // IDR ~4x a P frame; 60 samples total ~1.5 MB = 6 Mbit/s over 2 s.
            let len = if k == 0 {
                90_000
            } else {
                24_000 + (k as usize * 37) % 2000
            };
            let mut data = vec![(k as u8) | 1; len];
            data[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
            data[4] = if k == 0 { 0x65 } else { 0x41 };
            Sample {
                dts: EPOCH_DTS + k * 3000,
                duration: 3000,
                cts_offset: 0,
                keyframe: k == 0,
                data,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let track = track();
    let samples = samples();
    let params = FragmentParams {
        sequence: 881_500_000,
        samples: &samples,
        prft: Some(Prft {
            ntp_timestamp: 0xe9d0_0000_0000_0000,
            media_time: EPOCH_DTS,
        }),
        events: &[],
        brands: FragmentBrands::Normal,
    };
    let bytes = write_fragment(&track, &params).len() as u64;
    let mut group = c.benchmark_group("fragment_6mbps_2s");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("write_fragment", |b| {
        b.iter(|| write_fragment(black_box(&track), black_box(&params)))
    });
    let mut buf = Vec::with_capacity(bytes as usize);
    group.bench_function("write_fragment_into_reused", |b| {
        b.iter(|| {
            buf.clear();
            write_fragment_into(&mut buf, black_box(&track), black_box(&params));
            black_box(buf.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
