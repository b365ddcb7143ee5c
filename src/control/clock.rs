//! The kernel's clock discipline state (docs/design/timeline.md, *The pair*): is the system clock
//! synchronised (by chrony/ntpd/PTP), and how large is the estimated error. A redundant pair is
//! only "locked" when the error is well under half a frame.

use serde::Serialize;

/// What the kernel says about the system clock.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ClockSync {
    /// A time daemon disciplines the clock and the kernel considers it synchronised.
    pub synchronised: bool,
    /// Estimated error in µs (`esterror`), as the time daemon last reported it.
    pub estimated_error_us: i64,
    /// Maximum error in µs (`maxerror`).
    pub max_error_us: i64,
}

/// Reads the state with `adjtimex(2)` in read-only mode (`modes = 0`, which needs no
/// privilege). `None` when the call fails (for example under a seccomp filter that denies it).
pub fn read() -> Option<ClockSync> {
    // SAFETY: `timex` is plain old data, zero is a valid value for every field, and with
    // `modes = 0` the kernel only writes into the struct we pass; the pointer is valid for the
    // duration of the call and nothing else aliases it.
    let (state, tx) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        tx.modes = 0;
        let state = libc::adjtimex(&mut tx);
        (state, tx)
    };
    if state < 0 {
        return None;
    }
    let unsync = tx.status & libc::STA_UNSYNC != 0;
    Some(ClockSync {
        synchronised: state != libc::TIME_ERROR && !unsync,
        estimated_error_us: tx.esterror,
        max_error_us: tx.maxerror,
    })
}

/// Pair lock: synchronised and the estimated error under a quarter of a frame ("well under half").
pub fn pair_locked(sync: Option<ClockSync>, frame_ns: u64) -> bool {
    sync.is_some_and(|s| {
        s.synchronised
            && u64::try_from(s.estimated_error_us)
                .is_ok_and(|us| us.saturating_mul(1000) < frame_ns / 4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel() {
        // Whatever the state of this machine, the read-only call works unprivileged.
        assert!(read().is_some());
    }

    #[test]
    fn lock_rule() {
        let frame = 33_333_333;
        let s = |synchronised, estimated_error_us| {
            Some(ClockSync {
                synchronised,
                estimated_error_us,
                max_error_us: 0,
            })
        };
        assert!(pair_locked(s(true, 500), frame));
        assert!(!pair_locked(s(true, 9_000), frame));
        assert!(!pair_locked(s(false, 0), frame));
        assert!(!pair_locked(None, frame));
    }
}
