//! Steps of the system clock, seen by the grid clock (docs/design/timeline.md, *Clock steps
//! and slews*).
//!
//! The epoch timeline reads `CLOCK_REALTIME`; the monotonic clock never steps. Their difference
//! changes only when the realtime clock is stepped (`date -s`, chrony's `makestep`, an NTP
//! client started late) or slewed. A slew moves it at most ~83 ms per second (chrony's default
//! `maxslewrate`; ntpd 0.5 ms/s), so a change faster than [`STEP_NS`] plus a tenth of the time
//! between two readings is a step. The grid clock reads both clocks on every wake (at most
//! 50 ms apart), so a step is seen within one wake and its size is known to the reading.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::CaptureStats;

/// A change of the realtime − monotonic offset larger than this (plus a tenth of the time
/// between the two readings) is a step.
pub const STEP_NS: i128 = 100_000_000;

/// What one reading found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    None,
    /// The realtime clock jumped ahead by this many ns.
    Forward(u64),
    /// The realtime clock went back by this many ns.
    Back(u64),
}

/// Follows realtime − monotonic from one reading to the next.
#[derive(Debug)]
pub struct StepDetector {
    base: Instant,
    /// The last reading: (monotonic ns since `base`, realtime − monotonic in ns).
    last: Option<(u64, i128)>,
}

impl Default for StepDetector {
    fn default() -> Self {
        StepDetector {
            base: Instant::now(),
            last: None,
        }
    }
}

impl StepDetector {
    /// Reads both clocks now: what changed, and the realtime reading (epoch ns).
    pub fn check(&mut self) -> (Step, u64) {
        let mono = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let now = now_ns();
        (self.observe(now, mono), now)
    }

    /// One reading: the realtime clock in epoch ns and the monotonic clock in ns.
    pub fn observe(&mut self, realtime_ns: u64, mono_ns: u64) -> Step {
        let offset = i128::from(realtime_ns) - i128::from(mono_ns);
        let Some((last_mono, last_offset)) = self.last.replace((mono_ns, offset)) else {
            return Step::None;
        };
        let allowed = STEP_NS + i128::from(mono_ns.saturating_sub(last_mono)) / 10;
        let change = offset - last_offset;
        if change > allowed {
            Step::Forward(u64::try_from(change).unwrap_or(u64::MAX))
        } else if -change > allowed {
            Step::Back(u64::try_from(-change).unwrap_or(u64::MAX))
        } else {
            Step::None
        }
    }
}

impl CaptureStats {
    /// Counts and says a step (the timeline's answer is in docs/design/timeline.md, *Clock
    /// steps and slews*). `next_feed_ns` is when the next frame is due to be fed.
    pub fn clock_step(&self, step: Step, next_feed_ns: u64) {
        match step {
            Step::None => {}
            Step::Forward(ns) => {
                self.clock_steps_forward.fetch_add(1, Ordering::Relaxed);
                self.clock_last_step_ms.store(ms(ns, 1), Ordering::Relaxed);
                log::warn!(
                    "grid clock: the system clock stepped forward by {} ms; the timeline follows it (the frames in between are fed at once, or skipped past one second)",
                    ns / 1_000_000
                );
            }
            Step::Back(ns) => {
                self.clock_steps_back.fetch_add(1, Ordering::Relaxed);
                self.clock_last_step_ms.store(ms(ns, -1), Ordering::Relaxed);
                // Indices never repeat: the next frame is fed when the clock reaches it again.
                let wait = next_feed_ns.saturating_sub(now_ns());
                log::warn!(
                    "grid clock: the system clock stepped back by {} ms; the timeline never goes back, so no frame is fed for {} ms",
                    ns / 1_000_000,
                    wait / 1_000_000
                );
            }
        }
    }
}

/// The clock of record (`CLOCK_REALTIME`), in epoch ns.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A step in signed ms.
fn ms(ns: u64, sign: i64) -> i64 {
    sign * i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const EPOCH: u64 = 1_800_000_000 * S;

    #[test]
    fn steps_both_ways_are_seen_with_their_size() {
        let mut d = StepDetector::default();
        assert_eq!(d.observe(EPOCH, 0), Step::None);
        assert_eq!(d.observe(EPOCH + 50_000_000, 50_000_000), Step::None);
        // `date -s` two seconds ahead between two wakes.
        assert_eq!(
            d.observe(EPOCH + 2 * S + 100_000_000, 100_000_000),
            Step::Forward(2 * S)
        );
        assert_eq!(
            d.observe(EPOCH + 2 * S + 150_000_000, 150_000_000),
            Step::None
        );
        // And back by two seconds.
        assert_eq!(
            d.observe(EPOCH + 200_000_000, 200_000_000),
            Step::Back(2 * S)
        );
    }

    #[test]
    fn slews_and_late_wakes_are_not_steps() {
        let mut d = StepDetector::default();
        let mut mono = 0;
        let mut real = EPOCH;
        assert_eq!(d.observe(real, mono), Step::None);
        // chrony's fastest slew (83 ms/s), read every 50 ms, then a wake 5 s late.
        for gap in [50_000_000u64; 200].into_iter().chain([5 * S]) {
            mono += gap;
            real += gap + gap / 12;
            assert_eq!(d.observe(real, mono), Step::None, "at {mono}");
        }
        // A step just over the limit after a 50 ms wake is one.
        mono += 50_000_000;
        real += 50_000_000 + 106_000_000;
        assert_eq!(d.observe(real, mono), Step::Forward(106_000_000));
    }
}
