//! The ingest drivers' HTTP/1.1 response parser (media/src/http.rs) on arbitrary bytes, in
//! data-chosen pieces: it errors or answers, never panics, and once it has answered it keeps
//! giving the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twincast_media::http::ResponseParser;

fuzz_target!(|data: &[u8]| {
    let piece = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut parser = ResponseParser::default();
    let mut answer = None;
    for part in data.chunks(piece) {
        match parser.push(part) {
            Ok(Some(r)) => {
                if let Some(first) = &answer {
                    assert_eq!(first, &r);
                }
                assert!((100..600).contains(&r.status));
                answer = Some(r);
            }
            Ok(None) => assert!(answer.is_none()),
            Err(_) => return,
        }
    }
    // The same bytes in one piece give the same answer.
    let whole = ResponseParser::default().push(data);
    if let (Some(a), Ok(Some(b))) = (&answer, &whole) {
        assert_eq!(a, b);
    }
});
