//! SCTE-35 splice_info_section reader on arbitrary bytes (an MPEG-TS input's SCTE-35 PID):
//! never a panic, and what it reads is written back and read again as the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::scte35::SpliceInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = SpliceInfo::parse(data) {
        let _ = info.splice_pts();
        let bytes = info.to_bytes().expect("a section that was read can be written");
        assert_eq!(SpliceInfo::parse(&bytes).as_ref(), Ok(&info));
    }
});
