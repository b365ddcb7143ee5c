//! SRT input (issue #9 part 5): GStreamer's `srtsrc` (plugins-bad, libsrt) receives MPEG-TS as
//! caller or listener; an appsink hands each message to the same front end as plain TS over
//! UDP (`src/input/frontend.rs`: demux, PTS timing), then to the decoders.
//!
//! `uri = "srt://HOST:PORT?mode=caller|listener&latency=MS&streamid=ID"` (mode defaults to
//! caller, latency to libsrt's 120 ms... as GStreamer's 125 ms default). The passphrase comes
//! from `[input] passphrase_file` or the systemd credential `$CREDENTIALS_DIRECTORY/twincast_srt`
//! and is set as a property, never put in a URI, a log line or the status.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::decode::Decoders;
use super::frontend::FrontEnd;
use super::{InputError, Shared};
pub use crate::config::input_uri::{Mode, SrtUri, parse_srt_uri as parse_uri};

/// The systemd credential name of the SRT passphrase.
pub const CREDENTIAL: &str = "twincast_srt";

/// The passphrase: `passphrase_file` when set, else the systemd credential, else none.
pub fn resolve_passphrase(
    passphrase_file: Option<&Path>,
    credentials: Option<&Path>,
) -> Result<Option<String>, String> {
    let path: PathBuf = match passphrase_file {
        Some(p) => p.to_path_buf(),
        None => match credentials.map(|d| d.join(CREDENTIAL)) {
            Some(p) if p.is_file() => p,
            _ => return Ok(None),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("passphrase_file {}: {e}", path.display()))?;
    let pass = text.trim().to_string();
    // libsrt: 10 to 79 characters.
    if !(10..=79).contains(&pass.chars().count()) {
        return Err(format!(
            "passphrase_file {}: an SRT passphrase has 10 to 79 characters",
            path.display()
        ));
    }
    Ok(Some(pass))
}

/// The running SRT receive pipeline.
pub struct SrtPipeline {
    pipeline: gst::Pipeline,
}

impl SrtPipeline {
    /// Starts `srtsrc ! appsink` feeding a plain-TS front end and the decoders.
    pub(super) fn start(
        uri: &SrtUri,
        passphrase: Option<&str>,
        decoders: Arc<Decoders>,
        shared: Arc<Shared>,
    ) -> Result<Self, InputError> {
        gst::init().map_err(|e| InputError::Decode(e.to_string()))?;
        let src = gst::ElementFactory::make("srtsrc")
            .build()
            .map_err(|e| InputError::Decode(format!("GStreamer element srtsrc is missing: {e}")))?;
        // The mode goes in the uri: srtsrc (1.22) set to listener by its property after a uri
        // with a host keeps listening on nothing (measured).
        let host = if uri.host.contains(':') {
            format!("[{}]", uri.host)
        } else {
            uri.host.clone()
        };
        let mode = match uri.mode {
            Mode::Caller => "caller",
            Mode::Listener => "listener",
        };
        src.set_property("uri", format!("srt://{host}:{}?mode={mode}", uri.port));
        if let Some(l) = uri.latency_ms {
            src.set_property("latency", l as i32);
        }
        if let Some(id) = &uri.streamid {
            src.set_property("streamid", id);
        }
        if let Some(p) = passphrase {
            src.set_property("passphrase", p);
        }
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(64)
            .build();
        sink.set_property("async", false);
        let fe = Mutex::new(FrontEnd::new(None));
        let sh = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buffer.map_readable() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let mut fe = crate::sync::lock(&fe);
                    let mut out = Vec::new();
                    fe.push_udp(super::now_ns(), &map, &mut out);
                    for u in out {
                        decoders.push(u);
                    }
                    sh.publish(&mut fe, 0);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let pipeline = gst::Pipeline::with_name("twincast-srt-input");
        pipeline
            .add_many([&src, sink.upcast_ref()])
            .map_err(|e| InputError::Decode(e.to_string()))?;
        src.link(&sink)
            .map_err(|e| InputError::Decode(e.to_string()))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| InputError::Decode(format!("the SRT input did not start: {e}")))?;
        Ok(SrtPipeline { pipeline })
    }

    /// The first error the SRT pipeline posted since the last call (waits up to `wait`).
    pub fn take_error(&self, wait: Duration) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(format!("SRT: {}", e.error())),
            gst::MessageView::Eos(_) => Some("SRT: the sender closed the connection".into()),
            _ => None,
        }
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for SrtPipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_from_file_or_credential() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "0123456789abc\n").unwrap();
        assert_eq!(
            resolve_passphrase(Some(&f), None).unwrap().as_deref(),
            Some("0123456789abc")
        );
        assert_eq!(resolve_passphrase(None, Some(dir.path())).unwrap(), None);
        std::fs::write(dir.path().join(CREDENTIAL), "credential-secret").unwrap();
        assert_eq!(
            resolve_passphrase(None, Some(dir.path()))
                .unwrap()
                .as_deref(),
            Some("credential-secret")
        );
        std::fs::write(&f, "short").unwrap();
        let e = resolve_passphrase(Some(&f), None).unwrap_err();
        assert!(e.contains("10 to 79") && !e.contains("short"), "{e}");
    }
}
