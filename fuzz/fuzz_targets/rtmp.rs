//! What an RTMP server sends, on arbitrary bytes: the publish session after a valid handshake
//! (chunk stream, control messages, AMF0 commands), the chunk reader on its own with a
//! data-chosen chunk size (its bounds must hold: no message over `MAX_IN_MESSAGE`), and AMF0 on
//! its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::amf0;
use twincast_media::rtmp::ChunkReader;
use twincast_media::rtmp::ClientSession;
use twincast_media::rtmp::chunk::{MAX_IN_CHUNK_SIZE, MAX_IN_MESSAGE};
use twincast_media::rtmp::session::HANDSHAKE_SIZE;

fuzz_target!(|data: &[u8]| {
    let _ = amf0::decode_all(data);

    let (mut session, _) = ClientSession::new("live", "rtmp://h/live", "cam_720p", 1);
    let mut s012 = vec![3u8];
    s012.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
    if session.handle_input(&s012).is_ok() {
        // Split the input at a data-dependent point to exercise partial chunks.
        let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
        let _ = session
            .handle_input(&data[..cut])
            .and_then(|_| session.handle_input(&data[cut..]));
    }

    // The chunk reader alone: the first two bytes pick the chunk size, the rest arrives in
    // pieces of a data-chosen length.
    let Some((size, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut reader = ChunkReader::default();
    let size = u32::from(u16::from_be_bytes(*size)).max(1) * 16;
    assert!(reader.set_chunk_size(size).is_ok() == (size as usize <= MAX_IN_CHUNK_SIZE));
    let piece = usize::from(rest.first().copied().unwrap_or(1)).max(1);
    'feed: for part in rest.chunks(piece) {
        reader.push(part);
        loop {
            match reader.next_message() {
                Ok(Some(m)) => assert!(m.payload.len() <= MAX_IN_MESSAGE),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
});
