//! CMAF output checked by an independent decoder: init segments and fragments built by
//! `twincast_media::mp4` from real encoder output (x264 Annex B, ffmpeg ADTS AAC) must probe and
//! decode with ffprobe/ffmpeg without a single error, with every frame present and the first
//! frame's timestamp exactly on the epoch timeline.
//!
//! Needs `ffprobe` and `ffmpeg` on PATH (Debian package `ffmpeg`); fails if they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use twincast_media::aac::AdtsFrames;
use twincast_media::h264::{
    AvcDecoderConfig, NAL_PPS, NAL_SPS, Sps, is_idr, nal_unit_type, nals_to_avcc,
    split_access_units,
};
use twincast_media::mp4::{
    FragmentBrands, FragmentParams, Prft, ntp_from_unix_ns, write_fragment_into, write_init,
};
use twincast_media::{Codec, Sample, TrackInfo};

/// 2025-11-13T02:13:20Z: a realistic epoch time, far beyond 32-bit media time.
const EPOCH_SECS: u64 = 1_763_000_000;
const VIDEO_TIMESCALE: u32 = 90_000;
const AUDIO_RATE: u32 = 48_000;

fn testdata(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media/testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn video_track_and_samples() -> (TrackInfo, Vec<Sample>) {
    let annexb = testdata("x264_320x180_30fps.h264");
    let units = split_access_units(&annexb).expect("x264 stream splits into access units");
    let find = |t| {
        *units[0]
            .iter()
            .find(|n| nal_unit_type(n) == Some(t))
            .expect("SPS and PPS in the first access unit")
    };
    let (sps, pps) = (find(NAL_SPS), find(NAL_PPS));
    let size = Sps::parse(sps).expect("SPS parses");
    let config = AvcDecoderConfig::from_parameter_sets(&[sps], &[pps]).expect("avcC builds");
    let track = TrackInfo {
        id: 1,
        name: "180p".into(),
        timescale: VIDEO_TIMESCALE,
        bitrate: 300_000,
        codec: Codec::H264 {
            avcc: config.to_bytes(),
            width: size.width,
            height: size.height,
        },
    };
    let samples = units
        .iter()
        .enumerate()
        .map(|(k, au)| {
            // Parameter sets live in avcC; samples carry only the picture's other NAL units.
            let nals: Vec<&[u8]> = au
                .iter()
                .copied()
                .filter(|n| !matches!(nal_unit_type(n), Some(NAL_SPS | NAL_PPS)))
                .collect();
            let data = nals_to_avcc(&nals).expect("length-prefixed sample");
            Sample {
                dts: EPOCH_SECS * u64::from(VIDEO_TIMESCALE) + k as u64 * 3000,
                duration: 3000,
                cts_offset: 0,
                keyframe: is_idr(&data).expect("sample parses"),
                data,
            }
        })
        .collect();
    (track, samples)
}

fn audio_track_and_samples() -> (TrackInfo, Vec<Sample>) {
    let adts = testdata("ffmpeg_aac_lc_48k_stereo_sine.adts");
    let frames: Vec<_> = AdtsFrames::new(&adts)
        .collect::<Result<_, _>>()
        .expect("ADTS parses");
    let asc = frames[0].header.audio_specific_config();
    let track = TrackInfo {
        id: 2,
        name: "audio".into(),
        timescale: AUDIO_RATE,
        bitrate: 64_000,
        codec: Codec::Aac {
            asc: asc.to_bytes(),
            sample_rate: asc.sample_rate,
            channels: asc.channels(),
        },
    };
    // First AAC frame on the 1024-sample epoch grid.
    let first = (EPOCH_SECS * u64::from(AUDIO_RATE)).div_ceil(1024) * 1024;
    let samples = frames
        .iter()
        .enumerate()
        .map(|(j, f)| Sample {
            dts: first + j as u64 * 1024,
            duration: 1024,
            cts_offset: 0,
            keyframe: true,
            data: f.payload.to_vec(),
        })
        .collect();
    (track, samples)
}

/// Init segment followed by one fragment per `per_fragment` samples; the last is `lmsg`.
fn build_file(
    dir: &Path,
    name: &str,
    track: &TrackInfo,
    samples: &[Sample],
    per_fragment: usize,
) -> PathBuf {
    let mut file = write_init(track);
    let chunks: Vec<&[Sample]> = samples.chunks(per_fragment).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        let media_time = chunk[0].dts;
        let unix_ns = u128::from(media_time) * 1_000_000_000 / u128::from(track.timescale);
        write_fragment_into(
            &mut file,
            track,
            &FragmentParams {
                sequence: (media_time / per_fragment as u64) as u32,
                samples: chunk,
                prft: Some(Prft {
                    ntp_timestamp: ntp_from_unix_ns(unix_ns as u64),
                    media_time,
                }),
                events: &[],
                brands: if n + 1 == chunks.len() {
                    FragmentBrands::Last
                } else {
                    FragmentBrands::Normal
                },
            },
        );
    }
    let path = dir.join(name);
    std::fs::write(&path, &file).expect("writing test file");
    path
}

fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{tool}` ({e}): this test needs ffmpeg/ffprobe installed \
             (Debian: apt-get install ffmpeg)"
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// ffprobe's streams and frames as JSON, asserting it printed no error.
fn probe(path: &Path) -> serde_json::Value {
    let p = path.to_str().expect("utf-8 temp path");
    let (stdout, stderr) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_frames",
            "-of",
            "json",
            p,
        ],
    );
    assert!(
        stderr.trim().is_empty(),
        "ffprobe reported errors: {stderr}"
    );
    serde_json::from_str(&stdout).expect("ffprobe JSON")
}

/// Full decode with ffmpeg, asserting no error output.
fn decode_cleanly(path: &Path) {
    let p = path.to_str().expect("utf-8 temp path");
    let (_, stderr) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors: {stderr}");
}

fn frames_of<'a>(probe: &'a serde_json::Value, media_type: &str) -> Vec<&'a serde_json::Value> {
    probe["frames"]
        .as_array()
        .expect("frames array")
        .iter()
        .filter(|f| f["media_type"] == media_type)
        .collect()
}

#[test]
fn x264_fragments_decode_with_epoch_timestamps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (track, samples) = video_track_and_samples();
    assert_eq!(samples.len(), 60);
    let path = build_file(dir.path(), "video.mp4", &track, &samples, 30);
    decode_cleanly(&path);
    let probe = probe(&path);

    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["width"], 320);
    assert_eq!(stream["height"], 180);
    assert_eq!(stream["time_base"], "1/90000");

    let frames = frames_of(&probe, "video");
    assert_eq!(
        frames.len(),
        samples.len(),
        "every sample decodes to a frame"
    );
    let epoch_pts = EPOCH_SECS * u64::from(VIDEO_TIMESCALE);
    assert_eq!(frames[0]["pts"].as_u64(), Some(epoch_pts));
    assert_eq!(frames[59]["pts"].as_u64(), Some(epoch_pts + 59 * 3000));
    let keyframes: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f["key_frame"] == 1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, vec![0, 30]);
}

#[test]
fn aac_fragments_decode_with_epoch_timestamps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (track, samples) = audio_track_and_samples();
    let path = build_file(dir.path(), "audio.mp4", &track, &samples, 47);
    decode_cleanly(&path);
    let probe = probe(&path);

    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "aac");
    assert_eq!(stream["profile"], "LC");
    assert_eq!(stream["sample_rate"], "48000");
    assert_eq!(stream["channels"], 2);
    assert_eq!(stream["time_base"], "1/48000");

    let frames = frames_of(&probe, "audio");
    assert_eq!(frames.len(), samples.len(), "every AAC frame decodes");
    assert_eq!(frames[0]["pts"].as_u64(), Some(samples[0].dts));
    assert_eq!(samples[0].dts % 1024, 0);
    let last = frames.last().expect("frames");
    assert_eq!(last["pts"].as_u64(), samples.last().map(|s| s.dts));
}

/// The x264 frames at 29.97 across 12:01:00 UTC, with the epoch timecode SEI written by the
/// media crate: ffprobe reads on every frame the label the media crate computed, and the
/// minute's first two labels are skipped (drop-frame).
#[test]
fn x264_frames_with_the_epoch_timecode_read_back_in_ffprobe_across_a_dropped_minute() {
    use twincast_media::h264::{Timecode, avcc_with_pic_struct, insert_pic_timing};
    use twincast_media::timeline::FrameRate;
    let rate = FrameRate::new(30_000, 1001).expect("rate");
    let (mut track, samples) = video_track_and_samples();
    let Codec::H264 { avcc, .. } = &mut track.codec else {
        panic!("video track");
    };
    let (rewritten, layout) = avcc_with_pic_struct(avcc).expect("avcC takes the flag");
    *avcc = rewritten;
    // 12:00:59;00 of a day is drop-frame count (720·60 + 59)·30 − 2·(720 − 72) from the day's
    // first frame.
    let day_ns = u128::from(EPOCH_SECS / 86_400 * 86_400) * 1_000_000_000;
    let first_of_day = (day_ns * 30_000).div_ceil(1001 * 1_000_000_000) as u64;
    let k0 = first_of_day + (720 * 60 + 59) * 30 - 2 * (720 - 72);
    let samples: Vec<Sample> = samples
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let k = k0 + i as u64;
            let tc = Timecode::of_frame(rate, k);
            Sample {
                dts: rate.frame_ts(k, VIDEO_TIMESCALE),
                duration: 3003,
                data: insert_pic_timing(&s.data, 4, &layout, &tc).expect("SEI goes in"),
                ..s
            }
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = build_file(dir.path(), "timecode.mp4", &track, &samples, 30);
    decode_cleanly(&path);
    let p = path.to_str().expect("utf-8 temp path");
    let (stdout, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_frames",
            "-show_entries",
            "frame=pts:frame_tags=timecode",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    // One line per frame (`pts,timecode`), then a line per side data: the digits of the tag.
    let read: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(',');
            fields.next()?.trim().parse::<u64>().ok()?;
            Some(
                fields
                    .next()?
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect(),
            )
        })
        .collect();
    assert_eq!(read.len(), 60, "{stdout}");
    let wanted: Vec<String> = (0..60)
        .map(|i| {
            let tc = Timecode::of_frame(rate, k0 + i);
            format!(
                "{:02}{:02}{:02}{:02}",
                tc.hours, tc.minutes, tc.seconds, tc.frames
            )
        })
        .collect();
    assert_eq!(read, wanted);
    assert_eq!(read[0], "12005900");
    assert_eq!(read[29], "12005929");
    assert_eq!(read[30], "12010002", "drop-frame skips ;00 and ;01");
    assert_eq!(read[59], "12010101");
}
