//! The field console (`GET /` on the control listener): one page for the technician on site
//! with a laptop and a browser. It reads the same JSON as `twincast status` (`GET /status`,
//! every 2 s; the bitrate and fps charts are drawn from successive samples, so they cover the
//! minutes the page has been open), follows `GET /events`, plays the lowest video rendition
//! from the origin with the embedded hls.js (the same file as the origin's preview page,
//! src/origin/assets.rs) to take a thumbnail every few seconds, and offers `POST /reload`
//! with the control token (src/control/token.rs).
//!
//! Everything is embedded in the binary: the page works without any internet.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Pages and script change with the binary: revalidate on every load.
const CACHE: &str = "no-cache";

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn page() -> Response {
    let mut r = asset(include_bytes!("index.html"), "text/html; charset=utf-8");
    // Only our own script, style and the origin's media (any port of this host): no CDN.
    if let Ok(v) = header::HeaderValue::from_str(
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: http: https:; connect-src 'self' http: https:; style-src 'self'; script-src 'self'; worker-src 'self' blob:",
    ) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// `GET /console.js`.
pub async fn script() -> Response {
    asset(
        include_bytes!("console.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /console.css`.
pub async fn style() -> Response {
    asset(include_bytes!("console.css"), "text/css; charset=utf-8")
}

/// `GET /hls.min.js`: the origin's embedded copy (src/origin/assets.rs).
pub async fn hls() -> Response {
    match crate::origin::assets::by_name("hls.min.js") {
        Some(a) => asset(a.body, a.content_type),
        None => (axum::http::StatusCode::NOT_FOUND, "no hls.js\n").into_response(),
    }
}
