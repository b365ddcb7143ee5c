//! `twincast status` on what a control listener sends (src/control/client.rs): the chunked-body
//! decoder on arbitrary bytes, and the renderer on whatever JSON comes out of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast::control::client::{dechunk, render};

fuzz_target!(|data: &[u8]| {
    let body = dechunk(data);
    assert!(body.len() <= data.len());
    for text in [&body[..], data] {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) {
            let _ = render(&v);
        }
    }
});
