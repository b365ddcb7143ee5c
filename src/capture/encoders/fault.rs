//! The encoder fault injector (docs/guide/troubleshooting.md, "encoders failed"): a real
//! element error on the encoder pipeline's bus, once, on request from the environment, so the
//! rebuild path can be tested end to end and checked in the field.

use std::sync::atomic::{AtomicBool, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;

/// Fault injector for tests and field diagnosis (docs/guide/troubleshooting.md, "encoders
/// failed"): `TWINCAST_FAULT_ENCODER_ERROR_AFTER=<n>s|<n>ms`, read once per process. That long
/// after the first encoders are built, the first rendition's encoder posts a real element error
/// on the encoder pipeline's bus and produces nothing more, as a failing encoder does. Once.
pub const FAULT_ENCODER_ERROR_AFTER: &str = "TWINCAST_FAULT_ENCODER_ERROR_AFTER";

/// The fault's delay from the environment; `None` (and a warning) when unset or unreadable.
fn fault_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        let text = std::env::var(FAULT_ENCODER_ERROR_AFTER).ok()?;
        let t = text.trim();
        let parsed = match t.strip_suffix("ms") {
            Some(ms) => ms.parse::<u64>().ok().map(std::time::Duration::from_millis),
            None => t
                .strip_suffix('s')
                .unwrap_or(t)
                .parse::<f64>()
                .ok()
                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
        };
        match parsed {
            Some(d) => log::warn!("fault injection: TWINCAST_FAULT_ENCODER_ERROR_AFTER={t}: the encoders will fail once after {d:?}"),
            None => log::warn!("fault injection: TWINCAST_FAULT_ENCODER_ERROR_AFTER={t:?} is not a duration (5s, 500ms); ignored"),
        }
        parsed
    })
}

/// Arms the fault on `encoder` (the first encoders built only; the fault fires once).
pub(super) fn install_fault(encoder: &gst::Element) {
    static ARMED: AtomicBool = AtomicBool::new(false);
    let Some(delay) = fault_delay() else { return };
    if ARMED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(pad) = encoder.static_pad("src") else {
        return;
    };
    let at = std::time::Instant::now() + delay;
    let weak = encoder.downgrade();
    let failed = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if !failed.load(Ordering::Relaxed) && std::time::Instant::now() >= at {
            failed.store(true, Ordering::Relaxed);
            if let Some(encoder) = weak.upgrade() {
                encoder.post_error_message(gst::error_msg!(
                    gst::StreamError::Encode,
                    ("injected by {}", FAULT_ENCODER_ERROR_AFTER),
                    ["a test fault, not a real encoder failure"]
                ));
            }
        }
        if failed.load(Ordering::Relaxed) {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
}
