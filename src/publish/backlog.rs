//! The bounded backlog of one push destination (design §3, "Reconnect and resend").
//!
//! Policy, in one place:
//! - Units (whole fragments, or for RTMP a video fragment with its audio) enter at the back as
//!   soon as the hub hands them over, whatever the connection is doing.
//! - The backlog holds every unit not yet delivered plus the last `keep_sent` delivered ones
//!   (2 for RTMP and Smooth, the Azure rule; 0 for CMAF ingest, where a 2xx acknowledges a
//!   segment and only unacknowledged ones are ever resent).
//! - It is bounded by the summed duration of the undelivered units (`max_duration`) and by
//!   bytes (`max_bytes`). Overflow drops the oldest whole unit, delivered ones first, and
//!   counts it.
//! - After a reconnect, [`Backlog::rewind`] moves the cursor back over the kept delivered
//!   units: the session sends those again, then the rest in order, then live.
//!
//! The type is plain data with no clock and no I/O, so the policy is tested with simulated
//! time below.

use std::collections::VecDeque;
use std::time::Duration;

/// Something the backlog can hold.
pub trait Unit {
    fn bytes(&self) -> u64;
    fn duration(&self) -> Duration;
}

impl<T: Unit> Unit for std::sync::Arc<T> {
    fn bytes(&self) -> u64 {
        (**self).bytes()
    }
    fn duration(&self) -> Duration {
        (**self).duration()
    }
}

/// One destination's backlog.
#[derive(Debug)]
pub struct Backlog<T> {
    entries: VecDeque<(u64, T)>,
    /// Id of the next unit to send; entries with a smaller id were delivered.
    cursor: u64,
    next_id: u64,
    keep_sent: usize,
    max_duration: Duration,
    max_bytes: u64,
    bytes: u64,
    unsent_duration: Duration,
    /// Units dropped because the backlog was full, since the start.
    pub dropped: u64,
    /// Units sent again after reconnects, since the start.
    pub resent: u64,
}

impl<T: Unit + Clone> Backlog<T> {
    pub fn new(keep_sent: usize, max_duration: Duration, max_bytes: u64) -> Self {
        Backlog {
            entries: VecDeque::new(),
            cursor: 0,
            next_id: 0,
            keep_sent,
            max_duration,
            max_bytes,
            bytes: 0,
            unsent_duration: Duration::ZERO,
            dropped: 0,
            resent: 0,
        }
    }

    /// Appends a unit; returns how many whole units were dropped to make room.
    pub fn push(&mut self, unit: T) -> u64 {
        self.bytes += unit.bytes();
        self.unsent_duration += unit.duration();
        self.entries.push_back((self.next_id, unit));
        self.next_id += 1;
        let mut dropped = 0;
        while self.entries.len() > 1
            && (self.unsent_duration > self.max_duration || self.bytes > self.max_bytes)
        {
            self.pop_front();
            dropped += 1;
        }
        self.dropped += dropped;
        dropped
    }

    fn pop_front(&mut self) {
        if let Some((id, unit)) = self.entries.pop_front() {
            self.bytes -= unit.bytes();
            if id >= self.cursor {
                self.unsent_duration = self.unsent_duration.saturating_sub(unit.duration());
                self.cursor = id + 1;
            }
        }
    }

    /// The oldest unit not yet delivered, with its id.
    pub fn next_unsent(&self) -> Option<(u64, T)> {
        self.entries
            .iter()
            .find(|(id, _)| *id >= self.cursor)
            .map(|(id, u)| (*id, u.clone()))
    }

    /// Records unit `id` as delivered (if it is still here and next in line).
    pub fn mark_sent(&mut self, id: u64) {
        if id < self.cursor {
            return;
        }
        if let Some((_, unit)) = self.entries.iter().find(|(i, _)| *i == id) {
            self.unsent_duration = self.unsent_duration.saturating_sub(unit.duration());
        }
        self.cursor = id + 1;
        let sent = self
            .entries
            .iter()
            .filter(|(i, _)| *i < self.cursor)
            .count();
        for _ in self.keep_sent..sent {
            if let Some((_, unit)) = self.entries.pop_front() {
                self.bytes -= unit.bytes();
            }
        }
    }

    /// After a reconnect: the kept delivered units become unsent again, to be sent first.
    /// Returns how many that is.
    pub fn rewind(&mut self) -> u64 {
        let again: Vec<Duration> = self
            .entries
            .iter()
            .filter(|(i, _)| *i < self.cursor)
            .map(|(_, u)| u.duration())
            .collect();
        if let Some((first, _)) = self.entries.front() {
            self.cursor = self.cursor.min(*first);
        }
        self.unsent_duration += again.iter().sum::<Duration>();
        self.resent += again.len() as u64;
        again.len() as u64
    }

    /// Units held (delivered ones kept for resend included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Undelivered units.
    pub fn unsent(&self) -> usize {
        self.entries
            .iter()
            .filter(|(i, _)| *i >= self.cursor)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct F(u64, u64); // (sequence, bytes)

    impl Unit for F {
        fn bytes(&self) -> u64 {
            self.1
        }
        fn duration(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    fn drain(b: &mut Backlog<F>) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some((id, f)) = b.next_unsent() {
            sent.push(f.0);
            b.mark_sent(id);
        }
        sent
    }

    #[test]
    fn reconnect_resends_the_last_two_then_backlog_then_live() {
        let mut b = Backlog::new(2, Duration::from_secs(30), u64::MAX);
        for n in 0..5 {
            b.push(F(n, 10));
        }
        assert_eq!(drain(&mut b), [0, 1, 2, 3, 4]);
        assert_eq!(b.len(), 2, "only the last two delivered are kept");
        // Outage: 3 fragments arrive while disconnected.
        for n in 5..8 {
            b.push(F(n, 10));
        }
        assert_eq!(b.rewind(), 2);
        b.push(F(8, 10)); // live, during the resend
        assert_eq!(drain(&mut b), [3, 4, 5, 6, 7, 8]);
        assert_eq!(b.resent, 2);
        assert_eq!(b.dropped, 0);
    }

    #[test]
    fn acknowledged_protocols_resend_nothing_delivered() {
        let mut b = Backlog::new(0, Duration::from_secs(30), u64::MAX);
        for n in 0..3 {
            b.push(F(n, 10));
        }
        let (id, f) = b.next_unsent().unwrap();
        assert_eq!(f.0, 0);
        b.mark_sent(id);
        // Segment 1 was in flight, never acknowledged: it goes again.
        assert_eq!(b.rewind(), 0);
        assert_eq!(drain(&mut b), [1, 2]);
        assert!(b.is_empty());
    }

    #[test]
    fn a_long_outage_drops_the_oldest_whole_units_by_duration() {
        // Simulated time: one 1 s fragment per tick, 10 s backlog, peer down for 25 ticks.
        let mut b = Backlog::new(2, Duration::from_secs(10), u64::MAX);
        b.push(F(0, 10));
        drain(&mut b);
        let mut dropped = 0;
        for n in 1..=25 {
            dropped += b.push(F(n, 10));
        }
        assert_eq!(b.unsent(), 10);
        assert_eq!(
            dropped, 16,
            "the kept delivered unit and the 15 oldest undelivered"
        );
        assert_eq!(b.dropped, dropped);
        b.rewind();
        assert_eq!(drain(&mut b), (16..=25).collect::<Vec<_>>());
    }

    #[test]
    fn bytes_bound_the_backlog_too() {
        let mut b = Backlog::new(2, Duration::from_secs(3600), 1000);
        for n in 0..50 {
            b.push(F(n, 100));
        }
        assert!(b.bytes() <= 1000);
        assert_eq!(b.len(), 10);
        assert_eq!(b.dropped, 40);
        // A single unit larger than the bound is still kept (never drop the only unit).
        let mut b = Backlog::new(2, Duration::from_secs(1), 10);
        b.push(F(0, 100));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn marking_a_dropped_unit_is_harmless() {
        let mut b = Backlog::new(2, Duration::from_secs(2), u64::MAX);
        b.push(F(0, 1));
        let (id, _) = b.next_unsent().unwrap();
        b.push(F(1, 1));
        b.push(F(2, 1)); // drops unit 0 while it was being sent
        b.mark_sent(id);
        assert_eq!(drain(&mut b), [1, 2]);
    }
}
