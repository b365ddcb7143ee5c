//! H.264 parsers on arbitrary bytes: SPS, avcC, Annex B splitting, AVCC NAL iteration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::h264;

fuzz_target!(|data: &[u8]| {
    let _ = h264::Sps::parse(data);
    if let Ok(config) = h264::AvcDecoderConfig::parse(data) {
        let _ = config.parse_sps();
        let _ = config.rfc6381_codec();
        let _ = h264::AvcDecoderConfig::parse(&config.to_bytes());
    }
    let _ = h264::annexb_to_avcc(data);
    let _ = h264::split_access_units(data);
    let _ = h264::is_idr(data);
    for nal in h264::AvccNals::new(data) {
        let _ = nal;
    }
});
