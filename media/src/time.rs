//! Media time: a tick count that carries its timescale (retina's `Timestamp` is the model).
//!
//! Every timestamp of a track is an integer number of ticks of that track's timescale
//! (docs/design/timeline.md, *Timescales*: 90 kHz for video, the sample rate for audio). A
//! value that travels without its timescale invites a guessed constant at the far end, so
//! conversions live here, once, in exact integer arithmetic: the product is taken in `u128`
//! (a tick count of 1.7·10⁹ s at 90 kHz times 10⁹ is far below 2¹²⁸), then divided with the
//! rounding the caller names. Results that do not fit saturate at `u64::MAX`.

use std::cmp::Ordering;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// Nanoseconds per second.
const NS_PER_SEC: u128 = 1_000_000_000;

/// Ticks per second of a track's timestamps; never zero, so no conversion divides by zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timescale(NonZeroU32);

impl Timescale {
    /// `hz` ticks per second; `None` for 0, which no track has.
    pub const fn new(hz: u32) -> Option<Timescale> {
        match NonZeroU32::new(hz) {
            Some(hz) => Some(Timescale(hz)),
            None => None,
        }
    }

    /// Ticks per second.
    pub const fn hz(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Timescale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

/// How a conversion that does not land on a whole tick is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Toward zero (the instant at or before the exact one).
    Floor,
    /// Away from zero (the instant at or after the exact one).
    Ceil,
    /// To the nearest tick, halves up.
    Nearest,
}

/// `x·m/d` rounded as asked, saturating at `u64::MAX`; `d` is never zero here.
fn mul_div(x: u64, m: u128, d: u128, rounding: Rounding) -> u64 {
    let x = u128::from(x);
    // x < 2⁶⁴ and m < 2⁶⁴ here (timescales and 10⁹), so x·m fits in u128.
    let p = x * m;
    let q = match rounding {
        Rounding::Floor => p / d,
        Rounding::Ceil => p.div_ceil(d),
        Rounding::Nearest => (p + d / 2) / d,
    };
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// An instant (or a span) of `ticks` ticks of `timescale`: since 1970-01-01T00:00:00Z for the
/// timestamps of the epoch timeline, or a length for durations.
///
/// Equality and order compare the instants, exactly, across timescales: 90 000 ticks at
/// 90 kHz equal 48 000 ticks at 48 kHz.
#[derive(Debug, Clone, Copy)]
pub struct MediaTime {
    ticks: u64,
    timescale: Timescale,
}

impl MediaTime {
    pub const fn new(ticks: u64, timescale: Timescale) -> MediaTime {
        MediaTime { ticks, timescale }
    }

    /// `ns` nanoseconds in `timescale` ticks, rounded as asked.
    pub fn from_nanos(ns: u64, timescale: Timescale, rounding: Rounding) -> MediaTime {
        let ticks = mul_div(ns, u128::from(timescale.hz()), NS_PER_SEC, rounding);
        MediaTime { ticks, timescale }
    }

    /// `d` in `timescale` ticks, rounded as asked (saturating past `u64::MAX` ns).
    pub fn from_duration(d: Duration, timescale: Timescale, rounding: Rounding) -> MediaTime {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        MediaTime::from_nanos(ns, timescale, rounding)
    }

    pub const fn ticks(self) -> u64 {
        self.ticks
    }

    pub const fn timescale(self) -> Timescale {
        self.timescale
    }

    /// The same instant in ticks of `to`, rounded as asked (exact when `to` is this timescale).
    pub fn rescale(self, to: Timescale, rounding: Rounding) -> MediaTime {
        let ticks = if to == self.timescale {
            self.ticks
        } else {
            mul_div(
                self.ticks,
                u128::from(to.hz()),
                u128::from(self.timescale.hz()),
                rounding,
            )
        };
        MediaTime {
            ticks,
            timescale: to,
        }
    }

    /// Nanoseconds, rounded down.
    pub fn as_nanos(self) -> u64 {
        self.nanos(Rounding::Floor)
    }

    /// Nanoseconds, rounded as asked.
    pub fn nanos(self, rounding: Rounding) -> u64 {
        mul_div(
            self.ticks,
            NS_PER_SEC,
            u128::from(self.timescale.hz()),
            rounding,
        )
    }

    /// Milliseconds, rounded down.
    pub fn as_millis(self) -> u64 {
        mul_div(
            self.ticks,
            1000,
            u128::from(self.timescale.hz()),
            Rounding::Floor,
        )
    }

    /// Whole seconds, rounded down.
    pub fn as_secs(self) -> u64 {
        self.ticks / u64::from(self.timescale.hz())
    }

    /// Seconds as a float, for figures shown to people (never for timestamps).
    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / f64::from(self.timescale.hz())
    }

    /// As a `Duration`, rounded down to the nanosecond.
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.as_nanos())
    }

    /// `self + other` in this timescale (`other` rescaled, rounded down), saturating.
    pub fn saturating_add(self, other: MediaTime) -> MediaTime {
        let other = other.rescale(self.timescale, Rounding::Floor).ticks;
        MediaTime {
            ticks: self.ticks.saturating_add(other),
            timescale: self.timescale,
        }
    }

    /// `self − other` in this timescale (`other` rescaled, rounded down), 0 at the least.
    pub fn saturating_sub(self, other: MediaTime) -> MediaTime {
        let other = other.rescale(self.timescale, Rounding::Floor).ticks;
        MediaTime {
            ticks: self.ticks.saturating_sub(other),
            timescale: self.timescale,
        }
    }
}

impl PartialEq for MediaTime {
    fn eq(&self, other: &MediaTime) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MediaTime {}

impl PartialOrd for MediaTime {
    fn partial_cmp(&self, other: &MediaTime) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MediaTime {
    /// a/ta against b/tb as a·tb against b·ta: both products fit in u128.
    fn cmp(&self, other: &MediaTime) -> Ordering {
        let a = u128::from(self.ticks) * u128::from(other.timescale.hz());
        let b = u128::from(other.ticks) * u128::from(self.timescale.hz());
        a.cmp(&b)
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ticks, self.timescale.hz())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(hz: u32) -> Timescale {
        Timescale::new(hz).expect("non-zero")
    }

    /// 2023-11-14T22:13:20Z, the kind of epoch value every live timestamp is.
    const EPOCH_S: u64 = 1_700_000_000;

    #[test]
    fn zero_timescale_does_not_exist() {
        assert_eq!(Timescale::new(0), None);
        assert_eq!(ts(90_000).hz(), 90_000);
    }

    #[test]
    fn epoch_values_at_90khz_convert_exactly() {
        let t = MediaTime::new(EPOCH_S * 90_000 + 45_000, ts(90_000));
        assert_eq!(t.as_nanos(), EPOCH_S * 1_000_000_000 + 500_000_000);
        assert_eq!(t.as_millis(), EPOCH_S * 1000 + 500);
        assert_eq!(t.as_secs(), EPOCH_S);
        assert_eq!(
            t.as_duration(),
            Duration::from_secs(EPOCH_S) + Duration::from_millis(500)
        );
        // To 10 MHz (Smooth) and back, exactly.
        let smooth = t.rescale(ts(10_000_000), Rounding::Floor);
        assert_eq!(smooth.ticks(), EPOCH_S * 10_000_000 + 5_000_000);
        assert_eq!(
            smooth.rescale(ts(90_000), Rounding::Floor).ticks(),
            t.ticks()
        );
        assert_eq!(smooth, t);
    }

    #[test]
    fn non_integer_rates_round_as_asked() {
        // One frame at 30000/1001 fps is 3003 ticks at 90 kHz: 33 366 666.6… ns.
        let frame = MediaTime::new(3003, ts(90_000));
        assert_eq!(frame.nanos(Rounding::Floor), 33_366_666);
        assert_eq!(frame.nanos(Rounding::Ceil), 33_366_667);
        assert_eq!(frame.nanos(Rounding::Nearest), 33_366_667);
        // Frame k of 30000/1001 fps at the epoch, at 44.1 kHz: k·1001·44100/30000 samples.
        let k = EPOCH_S * 30_000 / 1001;
        let t = MediaTime::new(k * 3003, ts(90_000));
        let exact_num = u128::from(k) * 1001 * 44_100;
        let a = t.rescale(ts(44_100), Rounding::Floor).ticks();
        assert_eq!(u128::from(a), exact_num / 30_000);
        let c = t.rescale(ts(44_100), Rounding::Ceil).ticks();
        assert_eq!(u128::from(c), exact_num.div_ceil(30_000));
        // A half rounds up.
        assert_eq!(
            MediaTime::new(1, ts(2))
                .rescale(ts(1), Rounding::Nearest)
                .ticks(),
            1
        );
        assert_eq!(
            MediaTime::new(1, ts(3))
                .rescale(ts(1), Rounding::Nearest)
                .ticks(),
            0
        );
    }

    #[test]
    fn from_nanos_rounds_as_asked() {
        let ns = EPOCH_S * 1_000_000_000 + 1;
        assert_eq!(
            MediaTime::from_nanos(ns, ts(90_000), Rounding::Floor).ticks(),
            EPOCH_S * 90_000
        );
        assert_eq!(
            MediaTime::from_nanos(ns, ts(90_000), Rounding::Ceil).ticks(),
            EPOCH_S * 90_000 + 1
        );
        let d = Duration::from_secs(2);
        assert_eq!(
            MediaTime::from_duration(d, ts(48_000), Rounding::Floor).ticks(),
            96_000
        );
    }

    #[test]
    fn comparisons_are_exact_across_timescales() {
        let v = MediaTime::new(EPOCH_S * 90_000, ts(90_000));
        let a = MediaTime::new(EPOCH_S * 48_000, ts(48_000));
        assert_eq!(v, a);
        let a_next = MediaTime::new(EPOCH_S * 48_000 + 1, ts(48_000));
        assert!(a_next > v);
        assert!(v < a_next);
        // 1/3 s is not a whole number of ms, nor of 90 kHz ticks' equal at 48 kHz.
        assert!(MediaTime::new(1, ts(3)) > MediaTime::new(333, ts(1000)));
        assert!(MediaTime::new(1, ts(3)) < MediaTime::new(334, ts(1000)));
    }

    #[test]
    fn arithmetic_stays_in_the_left_timescale_and_saturates() {
        let start = MediaTime::new(EPOCH_S * 90_000, ts(90_000));
        let len = MediaTime::new(96_000, ts(48_000));
        let end = start.saturating_add(len);
        assert_eq!(end.ticks(), EPOCH_S * 90_000 + 180_000);
        assert_eq!(end.saturating_sub(start).as_millis(), 2000);
        assert_eq!(start.saturating_sub(end).ticks(), 0);
        let huge = MediaTime::new(u64::MAX, ts(1));
        assert_eq!(huge.as_nanos(), u64::MAX);
        assert_eq!(huge.rescale(ts(90_000), Rounding::Floor).ticks(), u64::MAX);
        assert_eq!(huge.saturating_add(huge).ticks(), u64::MAX);
    }

    #[test]
    fn display_shows_ticks_over_rate() {
        assert_eq!(MediaTime::new(3003, ts(90_000)).to_string(), "3003/90000");
        assert_eq!(ts(48_000).to_string(), "48000 Hz");
    }
}
