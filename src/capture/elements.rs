//! Which GStreamer elements and devices this box has, which encoder `auto` picks, and which
//! Debian package provides a missing element (so the error tells a technician what to install).

use std::path::Path;

use crate::config::EncoderKind;

/// An element we may need and the Debian package that ships it.
const PACKAGES: &[(&str, &str)] = &[
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("audiotestsrc", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("audiorate", "gstreamer1.0-plugins-base"),
    ("uridecodebin", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("udpsrc", "gstreamer1.0-plugins-good"),
    ("rtpjitterbuffer", "gstreamer1.0-plugins-good"),
    ("rtpmp2tdepay", "gstreamer1.0-plugins-good"),
    ("textoverlay", "gstreamer1.0-x"),
    ("imagefreeze", "gstreamer1.0-plugins-good"),
    ("filesrc", "libgstreamer1.0-0"),
    ("tee", "libgstreamer1.0-0"),
    ("queue", "libgstreamer1.0-0"),
    ("capsfilter", "libgstreamer1.0-0"),
    ("v4l2src", "gstreamer1.0-plugins-good"),
    ("rtspsrc", "gstreamer1.0-plugins-good"),
    ("alsasrc", "gstreamer1.0-alsa"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("openh264enc", "gstreamer1.0-plugins-bad"),
    ("vah264enc", "gstreamer1.0-plugins-bad"),
    ("vaapih264enc", "gstreamer1.0-vaapi"),
    ("v4l2h264enc", "gstreamer1.0-plugins-good"),
    (
        "nvv4l2h264enc",
        "NVIDIA L4T gstreamer (nvidia-l4t-gstreamer)",
    ),
    ("avenc_aac", "gstreamer1.0-libav"),
    ("voaacenc", "gstreamer1.0-plugins-bad"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("aacparse", "gstreamer1.0-plugins-good"),
];

/// The Debian package that provides `element`.
pub fn package_for(element: &str) -> &'static str {
    PACKAGES
        .iter()
        .find(|(e, _)| *e == element)
        .map(|(_, p)| *p)
        .unwrap_or("a GStreamer plugin package")
}

pub fn has_element(name: &str) -> bool {
    gstreamer::ElementFactory::find(name).is_some()
}

/// Device nodes under /dev whose name starts with `prefix`, sorted.
pub fn devices(prefix: &str) -> Vec<String> {
    let dir = if prefix.starts_with("renderD") || prefix.starts_with("card") {
        Path::new("/dev/dri")
    } else {
        Path::new("/dev")
    };
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .map(|n| dir.join(n).display().to_string())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A resolved H.264 encoder element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Encoder {
    X264,
    OpenH264,
    Va,
    Vaapi,
    V4l2,
    Nvv4l2,
}

impl H264Encoder {
    pub fn element(self) -> &'static str {
        match self {
            H264Encoder::X264 => "x264enc",
            H264Encoder::OpenH264 => "openh264enc",
            H264Encoder::Va => "vah264enc",
            H264Encoder::Vaapi => "vaapih264enc",
            H264Encoder::V4l2 => "v4l2h264enc",
            H264Encoder::Nvv4l2 => "nvv4l2h264enc",
        }
    }

    fn usable(self) -> bool {
        let device_ok = match self {
            H264Encoder::Va | H264Encoder::Vaapi => !devices("renderD").is_empty(),
            // v4l2h264enc is only registered when a mem2mem encoder device exists.
            H264Encoder::V4l2 | H264Encoder::Nvv4l2 | H264Encoder::X264 | H264Encoder::OpenH264 => {
                true
            }
        };
        device_ok && has_element(self.element())
    }
}

/// Why an encoder or element cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ElementError {
    #[error("GStreamer element '{element}' is missing (install the Debian package {package})")]
    Missing {
        element: String,
        package: &'static str,
    },
    #[error("encoder '{wanted}' needs {what}, which this box does not have")]
    NoDevice { wanted: String, what: &'static str },
    #[error(
        "no H.264 encoder found: install gstreamer1.0-plugins-ugly (x264enc) or gstreamer1.0-plugins-bad (openh264enc)"
    )]
    NoH264Encoder,
    #[error(
        "no AAC encoder found: install gstreamer1.0-libav (avenc_aac) or gstreamer1.0-plugins-bad (voaacenc)"
    )]
    NoAacEncoder,
}

/// Fails with the Debian package to install when `element` is missing.
pub fn require(element: &str) -> Result<(), ElementError> {
    if has_element(element) {
        Ok(())
    } else {
        Err(ElementError::Missing {
            element: element.to_string(),
            package: package_for(element),
        })
    }
}

/// Resolves a configured encoder kind. `auto` prefers hardware whose element and device exist,
/// then x264enc, then openh264enc.
pub fn resolve_h264(kind: EncoderKind) -> Result<H264Encoder, ElementError> {
    let explicit = |enc: H264Encoder, what: &'static str| {
        require(enc.element())?;
        if enc.usable() {
            Ok(enc)
        } else {
            Err(ElementError::NoDevice {
                wanted: enc.element().to_string(),
                what,
            })
        }
    };
    match kind {
        EncoderKind::X264 => explicit(H264Encoder::X264, "nothing"),
        EncoderKind::Openh264 => explicit(H264Encoder::OpenH264, "nothing"),
        EncoderKind::Vaapi => {
            if H264Encoder::Va.usable() {
                Ok(H264Encoder::Va)
            } else {
                explicit(
                    H264Encoder::Vaapi,
                    "a VA-API render node (/dev/dri/renderD*)",
                )
            }
        }
        EncoderKind::V4l2 => explicit(H264Encoder::V4l2, "a V4L2 mem2mem encoder device"),
        EncoderKind::Nvv4l2 => explicit(H264Encoder::Nvv4l2, "an NVIDIA Jetson encoder"),
        EncoderKind::Auto => [
            H264Encoder::Va,
            H264Encoder::Vaapi,
            H264Encoder::V4l2,
            H264Encoder::Nvv4l2,
            H264Encoder::X264,
            H264Encoder::OpenH264,
        ]
        .into_iter()
        .find(|e| e.usable())
        .ok_or(ElementError::NoH264Encoder),
    }
}

/// The AAC encoder element to use: avenc_aac, else voaacenc.
pub fn resolve_aac() -> Result<&'static str, ElementError> {
    ["avenc_aac", "voaacenc"]
        .into_iter()
        .find(|e| has_element(e))
        .ok_or(ElementError::NoAacEncoder)
}

/// Human-readable inventory for `twincast probe`.
pub fn probe_report() -> String {
    let mut out = String::new();
    let mark = |name: &str| if has_element(name) { "yes" } else { "no " };
    out.push_str(&format!(
        "GStreamer {}\n\nsources:\n",
        gstreamer::version_string()
    ));
    for (kind, el) in [
        ("test", "videotestsrc"),
        ("v4l2", "v4l2src"),
        ("file", "uridecodebin"),
        ("rtsp", "rtspsrc"),
        ("rtp", "udpsrc"),
        ("alsa audio", "alsasrc"),
    ] {
        out.push_str(&format!(
            "  {} {kind:<11} ({el}; {})\n",
            mark(el),
            package_for(el)
        ));
    }
    out.push_str("\nH.264 encoders:\n");
    for enc in [
        H264Encoder::Va,
        H264Encoder::Vaapi,
        H264Encoder::V4l2,
        H264Encoder::Nvv4l2,
        H264Encoder::X264,
        H264Encoder::OpenH264,
    ] {
        let el = enc.element();
        let state = if enc.usable() {
            "yes"
        } else if has_element(el) {
            "no device"
        } else {
            "no "
        };
        out.push_str(&format!("  {state} {el} ({})\n", package_for(el)));
    }
    let auto = resolve_h264(EncoderKind::Auto)
        .map(|e| e.element().to_string())
        .unwrap_or_else(|e| e.to_string());
    out.push_str(&format!(
        "  encoder = \"auto\" picks: {auto}\n\nAAC encoders:\n"
    ));
    for el in ["avenc_aac", "voaacenc"] {
        out.push_str(&format!("  {} {el} ({})\n", mark(el), package_for(el)));
    }
    out.push_str("\ndevices:\n");
    let mut any = false;
    for dev in devices("video").into_iter().chain(devices("renderD")) {
        out.push_str(&format!("  {dev}\n"));
        any = true;
    }
    if !any {
        out.push_str("  (no /dev/video* or /dev/dri/renderD*)\n");
    }
    out
}
