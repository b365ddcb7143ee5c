//! The DVR file-name parser (src/origin/dvr.rs) on arbitrary names: what it accepts reads back
//! the same after being written in the current form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast::origin::dvr::parse_file_name;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(f) = parse_file_name(name) {
        let again = format!(
            "{}-{}-{}-{:016x}-{:016x}.m4s",
            f.index,
            f.start,
            f.duration,
            f.etag,
            f.init_id.unwrap_or(0)
        );
        let g = parse_file_name(&again).expect("a written name parses");
        assert_eq!(
            (g.index, g.start, g.duration, g.etag),
            (f.index, f.start, f.duration, f.etag)
        );
    }
});
