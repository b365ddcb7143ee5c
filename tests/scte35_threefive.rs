//! The SCTE-35 sections twincast writes (twincast-media `scte35.rs`), read by an independent
//! parser: the PyPI `threefive` package, in a venv under target/ (created once, pinned). Its
//! own CRC-32 checks ours.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use common::*;
use twincast_media::scte35::{
    Command, Descriptor, HZ, PTS_WRAP, Segmentation, SpliceInfo, SpliceInsert,
};

fn python() -> PathBuf {
    threefive_venv().join("bin/python")
}

/// What threefive reads from each section: its JSON, with `crc_ok` from its own CRC-32.
fn threefive(sections: &[Vec<u8>]) -> Vec<serde_json::Value> {
    let script = r#"
import json, sys
import threefive
from threefive.crc import crc32
for line in sys.stdin:
    b = bytes.fromhex(line.strip())
    cue = threefive.Cue(b)
    cue.decode()
    d = cue.get()
    d["crc_ok"] = crc32(b[:-4]) == int.from_bytes(b[-4:], "big")
    print(json.dumps(d))
"#;
    let mut child = Process::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for s in sections {
            let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(stdin, "{hex}").expect("write");
        }
    }
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "threefive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("threefive's JSON"))
        .collect()
}

fn secs(ticks: u64) -> f64 {
    ticks as f64 / HZ as f64
}

fn close(v: &serde_json::Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-6)
}

#[test]
fn threefive_reads_every_section_twincast_writes() {
    let pts = 0x1_2345_6789u64;
    let out = SpliceInfo::new(Command::Insert(SpliceInsert::at(
        7,
        true,
        Some(pts),
        Some(30 * HZ),
    )));
    let back_in = SpliceInfo::new(Command::Insert(SpliceInsert::at(
        7,
        false,
        Some(pts + 30 * HZ),
        None,
    )));
    let cancel = SpliceInfo::new(Command::Insert(SpliceInsert::cancel(7)));
    let mut signal = SpliceInfo::new(Command::TimeSignal {
        pts: Some(PTS_WRAP - 90),
    });
    signal
        .descriptors
        .push(Descriptor::Segmentation(Segmentation::new(
            52,
            0x34,
            Some(60 * HZ),
            (0x0F, b"urn:twincast:hall-a:52".to_vec()),
        )));
    let sections: Vec<Vec<u8>> = [&out, &back_in, &cancel, &signal]
        .iter()
        .map(|s| s.to_bytes().expect("writes"))
        .collect();
    let read = threefive(&sections);
    assert_eq!(read.len(), 4, "{read:?}");
    for (i, r) in read.iter().enumerate() {
        assert_eq!(r["crc_ok"], true, "section {i}: CRC {r}");
        assert_eq!(r["info_section"]["table_id"], "0xfc", "{r}");
        assert_eq!(
            r["info_section"]["section_length"].as_u64(),
            Some(sections[i].len() as u64 - 3),
            "{r}"
        );
    }

    let c = &read[0]["command"];
    assert_eq!(c["name"], "Splice Insert", "{c}");
    assert_eq!(c["splice_event_id"], 7, "{c}");
    assert_eq!(c["out_of_network_indicator"], true, "{c}");
    assert_eq!(c["program_splice_flag"], true, "{c}");
    assert_eq!(c["splice_immediate_flag"], false, "{c}");
    assert!(close(&c["pts_time"], secs(pts)), "{c}");
    assert!(close(&c["break_duration"], 30.0), "{c}");
    assert_eq!(c["break_auto_return"], true, "{c}");

    let c = &read[1]["command"];
    assert_eq!(c["out_of_network_indicator"], false, "{c}");
    assert!(close(&c["pts_time"], secs(pts + 30 * HZ)), "{c}");
    assert!(c.get("break_duration").is_none_or(|v| v.is_null()), "{c}");

    let c = &read[2]["command"];
    assert_eq!(c["splice_event_cancel_indicator"], true, "{c}");

    let r = &read[3];
    assert_eq!(r["command"]["name"], "Time Signal", "{r}");
    assert!(close(&r["command"]["pts_time"], secs(PTS_WRAP - 90)), "{r}");
    let d = &r["descriptors"][0];
    assert_eq!(d["identifier"], "CUEI", "{d}");
    assert_eq!(d["segmentation_event_id"], "0x34", "{d}");
    assert_eq!(d["segmentation_type_id"], 0x34, "{d}");
    assert!(close(&d["segmentation_duration"], 60.0), "{d}");
    assert_eq!(d["segmentation_upid_type"], 0x0F, "{d}");
    assert_eq!(d["delivery_not_restricted_flag"], true, "{d}");
    assert_eq!(d["sub_segment_num"], 0, "{d}");
    assert_eq!(d["sub_segments_expected"], 0, "{d}");
}
