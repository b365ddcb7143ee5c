//! Files embedded in the binary: the preview pages and the vendored players (hls.js 1.7.4,
//! Apache-2.0; dash.js 5.2.1, BSD-3-Clause; licence texts beside them in `assets/`). The
//! origin never reads them from the filesystem.

/// An embedded file.
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

/// `GET /`: hls.js plays `/live/master.m3u8`.
pub const INDEX: Asset = Asset {
    body: include_bytes!("../../assets/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// `GET /dash.html`: dash.js plays `/live/manifest.mpd`.
pub const DASH_PAGE: Asset = Asset {
    body: include_bytes!("../../assets/dash.html"),
    content_type: "text/html; charset=utf-8",
};

/// `GET /assets/<name>`.
pub fn by_name(name: &str) -> Option<Asset> {
    let js = "text/javascript; charset=utf-8";
    let text = "text/plain; charset=utf-8";
    let body: &'static [u8] = match name {
        "hls.min.js" => include_bytes!("../../assets/hls.min.js"),
        "dash.all.min.js" => include_bytes!("../../assets/dash.all.min.js"),
        "LICENSE.hls.js" => include_bytes!("../../assets/LICENSE.hls.js"),
        "LICENSE.dash.js.md" => include_bytes!("../../assets/LICENSE.dash.js.md"),
        "dash.all.min.js.LICENSE.txt" => include_bytes!("../../assets/dash.all.min.js.LICENSE.txt"),
        _ => return None,
    };
    let content_type = if name.ends_with(".js") { js } else { text };
    Some(Asset { body, content_type })
}
