//! The bounded backlog of one push destination (docs/design/publish.md, *The backlog*).
//!
//! Policy, in one place:
//! - Units (whole fragments, or for RTMP a video fragment with its audio) enter at the back as
//!   soon as the hub hands them over, whatever the connection is doing.
//! - A unit is *sent* once written to the connection and *delivered* once the peer is known
//!   to have it: for RTMP and Smooth when the TCP evidence shows the peer read past its end
//!   (src/publish/tcp.rs), for CMAF ingest when its 2xx came.
//! - The backlog holds every unit not yet delivered (sent or not) plus the last `keep_sent`
//!   delivered ones (2 for RTMP and Smooth, the Azure rule; 0 for CMAF ingest, where a 2xx
//!   acknowledges a segment and only unacknowledged ones are ever resent).
//! - It is bounded by the summed duration of the units still to send (`max_duration`: those
//!   never sent, and after a rewind those to send again; sent units awaiting delivery do not
//!   count) and by bytes (`max_bytes`, every unit held). Overflow drops the oldest whole unit,
//!   delivered ones first, and counts it.
//! - After a reconnect, [`Backlog::rewind`] moves the cursor back to the first unit not
//!   delivered, and over the kept delivered units before it: the session sends those again,
//!   then the rest in order, then live. What sat in a dead connection is sent again.
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
    /// Id of the next unit to send; entries with a smaller id were sent.
    cursor: u64,
    /// Entries with an id below this one were delivered.
    delivered: u64,
    next_id: u64,
    keep_sent: usize,
    /// Delivered units covering at least this many bytes stay too (besides `keep_sent`),
    /// so that a resend after a stall can reach back that far.
    keep_bytes: u64,
    /// Bytes of delivered units the next [`Backlog::rewind`] sends again besides the
    /// `keep_sent` last ones (set when a session ended in a stall).
    extra_bytes: u64,
    /// Where the last rewind started: a rewind with nothing delivered since does not walk
    /// back again (failed reconnects would otherwise each resend two more).
    rewound_to: Option<u64>,
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
            delivered: 0,
            next_id: 0,
            keep_sent,
            keep_bytes: 0,
            extra_bytes: 0,
            rewound_to: None,
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

    /// Records unit `id` as sent (if it is still here and next in line); it stays until it
    /// is [delivered](Backlog::mark_delivered).
    pub fn mark_sent(&mut self, id: u64) {
        if id < self.cursor {
            return;
        }
        if let Some((_, unit)) = self.entries.iter().find(|(i, _)| *i == id) {
            self.unsent_duration = self.unsent_duration.saturating_sub(unit.duration());
        }
        self.cursor = id + 1;
    }

    /// Records every sent unit up to `id` as delivered; only the last `keep_sent` delivered
    /// ones stay (and, under the `keep_bytes` set, enough to cover those bytes).
    pub fn mark_delivered(&mut self, id: u64) {
        self.delivered = self.delivered.max((id + 1).min(self.cursor));
        self.prune_delivered();
    }

    fn prune_delivered(&mut self) {
        // Never what is queued to be sent (again).
        let below = self.delivered.min(self.cursor);
        let delivered: Vec<u64> = self
            .entries
            .iter()
            .filter(|(i, _)| *i < below)
            .map(|(_, u)| u.bytes())
            .collect();
        let mut count = delivered.len();
        let mut held: u64 = delivered.iter().sum();
        for b in delivered {
            if count <= self.keep_sent || held - b < self.keep_bytes {
                break;
            }
            if let Some((_, unit)) = self.entries.pop_front() {
                self.bytes -= unit.bytes();
            }
            count -= 1;
            held -= b;
        }
    }

    /// Delivered units covering `bytes` stay in the backlog (the widest receive window
    /// the peer advertised, for a resend after a stall).
    pub fn set_keep_bytes(&mut self, bytes: u64) {
        self.keep_bytes = bytes;
        self.prune_delivered();
    }

    /// The next rewind also sends again delivered units covering `bytes` (after a stall).
    pub fn resend_extra(&mut self, bytes: u64) {
        self.extra_bytes = bytes;
    }

    /// Sent units not known to be delivered.
    pub fn undelivered_sent(&self) -> usize {
        self.entries
            .iter()
            .filter(|(i, _)| *i >= self.delivered && *i < self.cursor)
            .count()
    }

    /// After a reconnect: the units sent but not delivered and the kept delivered units
    /// before them become unsent again, to be sent first. Returns how many that is.
    pub fn rewind(&mut self) -> u64 {
        // Back from the first undelivered unit: `keep_sent` delivered ones, and more while
        // they cover less than the extra bytes asked for.
        let first = self.delivered.min(self.cursor);
        let mut start = first;
        let walk = self.extra_bytes > 0 || self.rewound_to != Some(first);
        let mut covered = 0;
        for (taken, (id, u)) in self
            .entries
            .iter()
            .rev()
            .filter(|(i, _)| walk && *i < self.delivered)
            .enumerate()
        {
            if taken >= self.keep_sent && covered >= self.extra_bytes {
                break;
            }
            start = *id;
            covered += u.bytes();
        }
        self.extra_bytes = 0;
        self.rewound_to = Some(start);
        // The new connection's peer has none of them: they are delivered once it reads them.
        self.delivered = self.delivered.min(start);
        let again: Vec<Duration> = self
            .entries
            .iter()
            .filter(|(i, _)| *i >= start && *i < self.cursor)
            .map(|(_, u)| u.duration())
            .collect();
        self.cursor = self.cursor.min(start);
        self.unsent_duration += again.iter().sum::<Duration>();
        self.resent += again.len() as u64;
        again.len() as u64
    }

    /// Drops the oldest whole unit (never the only one) and counts it; false when there is
    /// nothing to drop. The shared memory budget (`budget.rs`) calls this.
    pub fn drop_oldest(&mut self) -> bool {
        if self.entries.len() < 2 {
            return false;
        }
        self.pop_front();
        self.dropped += 1;
        true
    }

    /// Summed duration of the units not yet sent.
    pub fn unsent_duration(&self) -> Duration {
        self.unsent_duration
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
            b.mark_delivered(id);
        }
        sent
    }

    #[test]
    fn reconnects_that_fail_do_not_walk_the_resend_back_further() {
        // Found in e2e_interop: a receiver down for 10 s, a connect refused about every
        // second, and each attempt rewound two more delivered units (kept for the widest
        // window), until the undelivered duration passed the backlog's bound and it dropped
        // fragments that had never been sent.
        let mut b = Backlog::new(2, Duration::from_secs(30), u64::MAX);
        b.set_keep_bytes(1000);
        for n in 0..20 {
            b.push(F(n, 10));
        }
        drain(&mut b);
        assert_eq!(b.len(), 20, "the widest window keeps every delivered unit");
        for _ in 0..10 {
            b.rewind();
        }
        assert_eq!(b.unsent(), 2, "the two before the first undelivered, once");
        assert_eq!(b.unsent_duration(), Duration::from_secs(2));
        assert_eq!(drain(&mut b), [18, 19]);
        // Sent and delivered again, then another break: again the two before.
        b.push(F(20, 10));
        drain(&mut b);
        assert_eq!(b.rewind(), 2);
        assert_eq!(drain(&mut b), [19, 20]);
    }

    #[test]
    fn a_reconnect_resends_from_the_first_undelivered_unit_and_the_two_before_it() {
        let mut b = Backlog::new(2, Duration::from_secs(30), u64::MAX);
        for n in 0..10 {
            b.push(F(n, 10));
        }
        // All ten written; the peer's TCP evidence shows it read up to unit 5, then the
        // connection stalls with 6..9 in its buffers.
        for id in 0..10 {
            let (i, _) = b.next_unsent().unwrap();
            assert_eq!(i, id);
            b.mark_sent(id);
        }
        b.mark_delivered(5);
        assert_eq!(b.undelivered_sent(), 4);
        assert_eq!(b.len(), 6, "two delivered kept + four undelivered");
        b.push(F(10, 10));
        assert_eq!(b.rewind(), 6);
        assert_eq!(drain(&mut b), [4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn after_a_stall_the_resend_reaches_back_over_the_peers_window() {
        let mut b = Backlog::new(2, Duration::from_secs(30), u64::MAX);
        b.set_keep_bytes(45);
        for n in 0..10 {
            b.push(F(n, 10));
        }
        assert_eq!(drain(&mut b), (0..10).collect::<Vec<_>>());
        assert_eq!(b.len(), 5, "delivered units covering 45 bytes stay");
        // An ordinary reconnect: the last two.
        assert_eq!(b.rewind(), 2);
        assert_eq!(drain(&mut b), [8, 9]);
        // After a stall: 30 bytes' worth of delivered units (the peer's window).
        b.resend_extra(30);
        assert_eq!(b.rewind(), 3);
        assert_eq!(drain(&mut b), [7, 8, 9]);
        // Again, 40 bytes' worth; the new connection's peer has a small window: pruning
        // while the resend is under way must not take what is still to be sent again.
        b.set_keep_bytes(45);
        b.resend_extra(40);
        assert_eq!(b.rewind(), 4);
        let (id, f) = b.next_unsent().unwrap();
        assert_eq!(f.0, 6);
        b.mark_sent(id);
        b.mark_delivered(id);
        b.set_keep_bytes(0);
        assert_eq!(drain(&mut b), [7, 8, 9]);
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
        b.mark_delivered(id);
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
    fn drop_oldest_takes_whole_units_and_never_the_last() {
        let mut b = Backlog::new(2, Duration::from_secs(30), u64::MAX);
        for n in 0..3 {
            b.push(F(n, 10));
        }
        assert!(b.drop_oldest());
        assert!(b.drop_oldest());
        assert!(!b.drop_oldest(), "the only unit stays");
        assert_eq!(
            (b.dropped, b.bytes(), b.unsent_duration()),
            (2, 10, Duration::from_secs(1))
        );
        assert_eq!(drain(&mut b), [2]);
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
