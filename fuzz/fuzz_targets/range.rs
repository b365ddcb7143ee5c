//! The origin's `Range` header parser (src/origin/http.rs) on arbitrary text and object sizes:
//! a partial answer always lies inside the object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast::origin::http::{RangeAnswer, parse_range};

fuzz_target!(|data: &[u8]| {
    let Some((len, text)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let value = String::from_utf8_lossy(text);
    for len in [len, len % 4096, 0, 1] {
        if let RangeAnswer::Partial(start, end) = parse_range(&value, len) {
            assert!(start <= end && end < len, "{value:?} {len}: {start}-{end}");
        }
    }
});
