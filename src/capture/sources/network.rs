//! A network input (`rtp`, `udp`, `srt`: the front end of src/input/) as a life under the
//! source supervisor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::status::NetworkCounters;
use super::supervisor::{POLL, RunOnce, SourceLife};
use crate::config::{Config, InputKind};
use crate::input::{NetworkSource, SpliceAt};
use crate::signals::{Passed, Signals};
use crate::source::RawSink;

/// An SRT connection that delivered data and then nothing for this long is rebuilt: GStreamer's
/// srtsrc (1.22) neither reports a peer that went away nor accepts a new caller after one
/// (measured with srt-live-transmit), so a listener would stay deaf to the sender's reconnect.
pub const SRT_IDLE: Duration = Duration::from_secs(2);

/// A network input (src/input/) as a [`RunOnce`]: start the front end, publish its timing and
/// counters, `running` once pictures are decoded; a decoder or SRT error ends the life (the
/// supervisor rebuilds with backoff), so does a front end that cannot start (a port in use).
pub(super) fn network_life(
    config: Config,
    sink: Arc<dyn RawSink>,
    signals: Option<Arc<Signals>>,
) -> RunOnce {
    // The counters of the lives before this one, so what `/status` shows only grows.
    let mut before = NetworkCounters::default();
    let srt = config.input.kind == InputKind::Srt
        || config
            .input
            .uri
            .as_deref()
            .is_some_and(|u| u.starts_with("srt://"));
    Box::new(move |life: &SourceLife| {
        life.set_timing(None);
        let mut source = NetworkSource::start(&config, sink.clone()).map_err(|e| e.to_string())?;
        let mut running = false;
        let mut now = NetworkCounters::default();
        let mut last_data = Instant::now();
        let result = loop {
            if life.stopped() {
                break Ok(());
            }
            let counters = source.counters();
            let current = NetworkCounters::from_input(&counters);
            if current.datagrams != now.datagrams {
                last_data = Instant::now();
            }
            now = current;
            life.set_counters(before.plus(now));
            life.set_timing(source.timing());
            for (section, at) in source.take_scte35() {
                pass_through(signals.as_deref(), &section, at);
            }
            if let Some(e) = counters.last_error {
                break Err(e);
            }
            if srt && now.datagrams > 0 && last_data.elapsed() >= SRT_IDLE {
                break Err(format!(
                    "SRT: no data for {} s (the peer went away); connecting again",
                    SRT_IDLE.as_secs()
                ));
            }
            if !running && counters.pictures > 0 {
                running = true;
                life.running();
            }
            std::thread::sleep(POLL);
        };
        source.stop();
        // The last counts of this life (published by the receive thread as it ended).
        let last = NetworkCounters::from_input(&source.counters());
        before = before.plus(if last.datagrams >= now.datagrams {
            last
        } else {
            now
        });
        life.set_counters(before);
        result
    })
}

/// One SCTE-35 section of the feed onto the box's splice schedule (docs/design/signals.md,
/// *Passthrough*), said in the log; a repeat of a section already scheduled is not.
fn pass_through(signals: Option<&Signals>, section: &[u8], at: SpliceAt) {
    let Some(signals) = signals else {
        return;
    };
    let result = match at {
        SpliceAt::Unplaced => {
            signals.not_placed();
            Err("its splice time cannot be placed yet: the feed's clock is not anchored, or the section does not parse".to_string())
        }
        SpliceAt::At(w) => {
            signals.passthrough(section, Some(w), crate::capture::clock_step::now_ns())
        }
        SpliceAt::Immediate => {
            signals.passthrough(section, None, crate::capture::clock_step::now_ns())
        }
    };
    match result {
        Ok(Passed::Scheduled(s)) => log::info!(
            "input: SCTE-35 {} event {} passed through on frame {} ({})",
            s.kind.name(),
            s.event_id,
            s.frame,
            twincast_media::hls::program_date_time(s.time_ns)
        ),
        Ok(Passed::Repeat) => {}
        Err(why) => log::warn!(
            "input: SCTE-35 section not passed through: {why} (section {})",
            twincast_media::scte35::hex(section)
        ),
    }
}
