//! AAC parsers on arbitrary bytes: AudioSpecificConfig and ADTS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::aac;

fuzz_target!(|data: &[u8]| {
    if let Ok(asc) = aac::AudioSpecificConfig::parse(data) {
        let _ = asc.rfc6381_codec();
        let _ = aac::AudioSpecificConfig::parse(&asc.to_bytes());
    }
    if let Ok(header) = aac::AdtsHeader::parse(data) {
        let _ = header.audio_specific_config();
    }
    let _ = aac::strip_adts(data);
    for frame in aac::AdtsFrames::new(data) {
        let _ = frame;
    }
});
