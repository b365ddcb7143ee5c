//! What an RTMP server sends, on arbitrary bytes: the publish session after a valid handshake
//! (chunk stream, control messages, AMF0 commands), and AMF0 on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::amf0;
use twincast_media::rtmp::ClientSession;
use twincast_media::rtmp::session::HANDSHAKE_SIZE;

fuzz_target!(|data: &[u8]| {
    let _ = amf0::decode_all(data);
    let (mut session, _) = ClientSession::new("live", "rtmp://h/live", "cam_720p", 1);
    let mut s012 = vec![3u8];
    s012.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
    if session.handle_input(&s012).is_err() {
        return;
    }
    // Split the input at a data-dependent point to exercise partial chunks.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let _ = session
        .handle_input(&data[..cut])
        .and_then(|_| session.handle_input(&data[cut..]));
});
