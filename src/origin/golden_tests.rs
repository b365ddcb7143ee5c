//! Golden test of the origin's text output: sequences of fragments (start-up mid-segment, slate,
//! holes, a short segment, a ladder change, a late fragment of the old init segment, an audio
//! codec change, a window sliding past all of it, the disk tier's byte bound, restarts) are fed
//! one by one, and after each step every playlist, both MPD forms and the stats are rendered.
//! `src/origin/golden/*.txt` holds what the origin wrote before the feeder/snapshot split
//! (commit 2ab525b): the full text at a few checkpoints and a digest of every document at every
//! step. The split changed no byte of it. Blessed since for one intended change: every media
//! playlist carries the discontinuities of every track (`twincast_media::playlist::
//! Discontinuities`), so the ladder's and the audio's discontinuity sequence numbers agree.
//!
//! To write the files again (only for an intended change of the output):
//! `TWINCAST_BLESS_GOLDEN=1 cargo test --lib origin::golden_tests`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use twincast_media::{Codec, TrackInfo};

use super::window::fnv1a;
use super::{Origin, OriginSettings};
use crate::hub::{Hub, InitSegment, PackagedFragment};

fn video_init(name: &str, bytes: &'static [u8], width: u32, height: u32) -> Arc<InitSegment> {
    Arc::new(InitSegment {
        info: TrackInfo {
            id: 1,
            name: name.into(),
            timescale: 90_000,
            codec: Codec::H264 {
                avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
                width,
                height,
            },
            bitrate: width * 1_000,
        },
        bytes: Bytes::from_static(bytes),
    })
}

fn audio_init(bytes: &'static [u8], channels: u16) -> Arc<InitSegment> {
    Arc::new(InitSegment {
        info: TrackInfo {
            id: 3,
            name: "audio".into(),
            timescale: 48_000,
            codec: Codec::Aac {
                asc: vec![0x11, if channels == 1 { 0x88 } else { 0x90 }],
                sample_rate: 48_000,
                channels,
            },
            bitrate: 128_000,
        },
        bytes: Bytes::from_static(bytes),
    })
}

/// Fragment n (1 s) of a track at `timescale`; audio ends on the AAC frame at or after n + 1 s.
fn fragment(
    n: u64,
    timescale: u64,
    filler: bool,
    init: &Arc<InitSegment>,
    size: usize,
) -> PackagedFragment {
    let (start, end) = if timescale == 48_000 {
        (
            (n * 48_000).div_ceil(1024) * 1024,
            ((n + 1) * 48_000).div_ceil(1024) * 1024,
        )
    } else {
        (n * timescale, (n + 1) * timescale)
    };
    PackagedFragment {
        sequence: n,
        base_dts: start,
        duration: end - start,
        timescale: init.info.clock().expect("non-zero"),
        sample_count: 30,
        filler,
        bytes: Bytes::from(vec![n as u8; size]),
        media_bytes: size as u64 - 10,
        samples: Arc::new(Vec::new()),
        init: Some(init.clone()),
    }
}

/// Renders every document of `origin`; records the digests, and the full text at checkpoints.
struct Recorder {
    digests: String,
    full: String,
    step: usize,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            digests: String::new(),
            full: String::new(),
            step: 0,
        }
    }

    fn render(&mut self, origin: &Origin, names: &[&str], checkpoint: bool) {
        let mut docs: Vec<(String, String)> = Vec::new();
        let none = || "<none>".to_string();
        docs.push((
            "master.m3u8".into(),
            origin.master_playlist().unwrap_or_else(none),
        ));
        for name in names {
            docs.push((
                format!("{name}/index.m3u8"),
                origin.media_playlist(name).unwrap_or_else(none),
            ));
        }
        docs.push((
            "manifest.mpd".into(),
            origin.mpd_at(Some("h:1"), false, 0).unwrap_or_else(none),
        ));
        docs.push((
            "manifest-number.mpd".into(),
            origin.mpd_at(None, true, 0).unwrap_or_else(none),
        ));
        docs.push(("stats".into(), format!("{:#?}\n", origin.stats())));
        for (what, text) in &docs {
            let _ = writeln!(
                self.digests,
                "step {} {what} {:016x}",
                self.step,
                fnv1a(text.as_bytes())
            );
            if checkpoint {
                let _ = write!(self.full, "==== step {} {what}\n{text}", self.step);
            }
        }
        self.step += 1;
    }

    fn check(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/origin/golden");
        let text = format!("{}{}", self.digests, self.full);
        let path = dir.join(format!("{name}.txt"));
        if std::env::var_os("TWINCAST_BLESS_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).expect("golden dir");
            std::fs::write(&path, &text).expect("golden file");
            return;
        }
        let want = std::fs::read_to_string(&path).expect("golden file");
        if text != want {
            let (got, want): (Vec<&str>, Vec<&str>) =
                (text.lines().collect(), want.lines().collect());
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "{name}: line {} differs\n got: {:?}\nwant: {:?}\n(full text from the first \
                 difference:\n{})",
                at + 1,
                got.get(at),
                want.get(at),
                got[at.min(got.len())..].join("\n")
            );
        }
    }
}

/// A ladder (720p, 360p, audio), 2 fragments per segment, a 12 s window, RAM only.
#[tokio::test]
async fn ladder_sequence_renders_as_before_the_split() {
    let names = ["720p", "360p", "audio"];
    let hub = Hub::for_test(names);
    let settings = OriginSettings::new(2, 12_000_000_000, (30, 1), 2_000_000_000);
    let origin = Origin::new(settings, &hub);
    let mut rec = Recorder::new();
    rec.render(&origin, &names, true);
    let (hi_a, lo_a) = (
        video_init("720p", b"720p-a", 1280, 720),
        video_init("360p", b"360p-a", 640, 360),
    );
    let (hi_b, lo_b) = (
        video_init("720p", b"720p-b", 1920, 1080),
        video_init("360p", b"360p-b", 960, 540),
    );
    let (audio_a, audio_b) = (audio_init(b"audio-a", 2), audio_init(b"audio-b", 1));
    origin.clone().set_init(0, Some(hi_a.clone())).await;
    rec.render(&origin, &names, true);
    origin.clone().set_init(1, Some(lo_a.clone())).await;
    origin.clone().set_init(2, Some(audio_a.clone())).await;
    rec.render(&origin, &names, true);
    let mut inits = [hi_a.clone(), lo_a.clone(), audio_a.clone()];
    let timescales = [90_000, 90_000, 48_000];
    for n in 199..262u64 {
        // The hole: segments 104 and 105 (fragments 208..212) never arrive; fragment 215 is lost
        // (segment 107 is short); 233 only on 360p.
        if (208..212).contains(&n) {
            continue;
        }
        if n == 219 {
            // The ladder is rebuilt from fragment 220 on: the hub's watch moves to B before
            // the last fragment of A (219) reaches the origin.
            origin.clone().set_init(0, Some(hi_b.clone())).await;
            origin.clone().set_init(1, Some(lo_b.clone())).await;
        }
        if n == 220 {
            inits[0] = hi_b.clone();
            inits[1] = lo_b.clone();
        }
        if n == 247 {
            // The audio encoder changes mid-segment: segment 123 is cut short under A.
            origin.clone().set_init(2, Some(audio_b.clone())).await;
            inits[2] = audio_b.clone();
        }
        let filler = (204..208).contains(&n) || n == 230;
        for (i, init) in inits.iter().enumerate() {
            if n == 215 || (n == 233 && i == 0) {
                continue;
            }
            let size = 100 + (n as usize % 7) * 10 + i * 50;
            let f = fragment(n, timescales[i], filler, init, size);
            origin.clone().feed(i, &f).await;
        }
        rec.render(
            &origin,
            &names,
            n % 10 == 0 || (218..=224).contains(&n) || (246..=249).contains(&n),
        );
    }
    rec.render(&origin, &names, true);
    rec.check("ladder");
}

/// One video track and audio, 1 fragment per segment, with the disk tier: a small RAM part, a
/// byte bound that evicts, restarts with the same and with another init segment.
#[tokio::test]
async fn dvr_sequence_renders_as_before_the_split() {
    let names = ["v", "audio"];
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::for_test(names);
    let mut settings = OriginSettings::new(1, 20_000_000_000, (30000, 1001), 1_000_000_000);
    settings.dvr_dir = Some(dir.path().to_path_buf());
    settings.dvr_max_bytes = 2_400;
    settings.ram_ns = 3_000_000_000;
    settings.ram_bytes_per_track = 450;
    let v_a = video_init("v", b"v-a", 640, 360);
    let v_b = video_init("v", b"v-b", 1280, 720);
    let audio = audio_init(b"audio-a", 2);
    let timescales = [90_000, 48_000];
    let mut rec = Recorder::new();
    let run = |origin: Arc<Origin>, v: Arc<InitSegment>, range: std::ops::Range<u64>| {
        let audio = audio.clone();
        async move {
            let mut out = Vec::new();
            for n in range {
                if n % 9 == 4 {
                    continue;
                }
                for (i, init) in [&v, &audio].into_iter().enumerate() {
                    let size = 100 + (n as usize % 5) * 20;
                    let f = fragment(n, timescales[i], n % 11 == 0, init, size);
                    origin.clone().feed(i, &f).await;
                }
                out.push(n);
            }
            out
        }
    };
    let origin = Origin::new(settings.clone(), &hub);
    origin.clone().set_init(0, Some(v_a.clone())).await;
    origin.clone().set_init(1, Some(audio.clone())).await;
    for chunk in [100..104u64, 104..112, 112..130] {
        run(origin.clone(), v_a.clone(), chunk).await;
        rec.render(&origin, &names, true);
    }
    // Restart with the same init segments: the disk tier comes back, then live after a gap.
    drop(origin);
    let origin = Origin::new(settings.clone(), &hub);
    rec.render(&origin, &names, true);
    origin.clone().set_init(0, Some(v_a.clone())).await;
    origin.clone().set_init(1, Some(audio.clone())).await;
    rec.render(&origin, &names, true);
    for n in 135..140u64 {
        run(origin.clone(), v_a.clone(), n..n + 1).await;
        rec.render(&origin, &names, n == 139);
    }
    // A new video init segment mid-stream, then a restart with it.
    origin.clone().set_init(0, Some(v_b.clone())).await;
    rec.render(&origin, &names, true);
    run(origin.clone(), v_b.clone(), 140..146).await;
    rec.render(&origin, &names, true);
    drop(origin);
    let origin = Origin::new(settings, &hub);
    origin.clone().set_init(0, Some(v_b.clone())).await;
    origin.clone().set_init(1, Some(audio.clone())).await;
    rec.render(&origin, &names, true);
    run(origin.clone(), v_b.clone(), 150..153).await;
    rec.render(&origin, &names, true);
    rec.check("dvr");
}
