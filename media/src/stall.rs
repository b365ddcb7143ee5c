//! Whether a push makes progress, judged from what the peer acknowledged (docs/design/publish.md,
//! *Stall detection*: "a send that makes no progress for 2× the fragment duration resets the
//! connection"). Pure: the daemon reads the numbers (the kernel's `TCP_INFO`, the RTMP session's
//! Acknowledgements) and the time, this module decides.
//!
//! Two witnesses:
//! - [`Delivery`], from TCP (every protocol). The peer's TCP acknowledges what its kernel
//!   received, which is not yet what its application read: a peer that stops reading keeps
//!   acknowledging until its receive buffer is full. So the estimate of what the application
//!   read is `acked − unread`, where `unread` is how far the receive window the peer
//!   advertises has closed below the widest it ever advertised. The push progresses while
//!   that estimate grows (by [`PROGRESS_MIN`] and by a share of what was acknowledged since:
//!   windows come in units of 2^scale bytes and a receiver's buffer accounting is not byte
//!   for byte, so rounding and creep must not pass for reading). It is waiting while we owe
//!   bytes (not sent or not acknowledged) or bytes arrived that the peer has not read, and
//!   stalled after waiting for the limit. The wait counts from the first reading that showed
//!   it, not from the last progress: a healthy reader's window also settles below its widest
//!   now and then as its autotuning moves (by up to a fragment), which looks like unread
//!   bytes until the next fragment shows it reads, so judging from the last progress called
//!   healthy peers stalled (e2e_interop, three runs in three). The estimate also tells which
//!   fragment boundary the peer reached (resend from there).
//!   A peer that never advertises a window that changes (or a kernel that does not report it)
//!   leaves `unread` at 0: the rule is then "acknowledged bytes grow", never stricter.
//!
//!   A window that closed part of the way is not enough to call the stall, only to stop
//!   counting delivery: a Linux receiver that reads everything at once can close its window
//!   too. Its window is the smaller of its free buffer space and a clamp derived from the
//!   buffer size and the ratio of payload to memory of the segments it last received
//!   (`scaling_ratio`, kernels 6.5+). When the traffic turns to small segments (a 2232-byte
//!   fragment of silence every 2 s during an input outage), that ratio falls, the clamp with
//!   it, and since a receiver never moves its window's right edge back, the window closes by
//!   nearly what arrives until it meets the new clamp, which can be a half or more below the
//!   widest. The soak saw exactly that on a receiver whose trace shows every fragment read
//!   within milliseconds (docs/ref/endurance.md), and this witness called it a stall twice an
//!   hour. So a stall needs one of: the window closed to [`CLOSED_SHARE`] of its widest (the
//!   peer's buffer is full: what a peer that stopped reading comes to), or bytes owed that the
//!   peer's TCP took none of for the limit (a vanished or frozen host). A peer that stops
//!   reading is then seen once its window closes, later than the limit on a low rung; each
//!   protocol's own witness (RTMP Acknowledgements, CMAF ingest's answers, Smooth's probe)
//!   sees a server that stops within the limit.
//!
//!   What TCP cannot show: a Linux receiver advertises the smaller of the free space of its
//!   buffer and a window clamp that its autotuning set while the application read. Its buffer
//!   holds more than the clamp (its own overhead allowance, about as much again), so a peer
//!   that stops reading takes that much more with the window wide open, and looks like it
//!   reads, before the window starts to close (measured on loopback: two 200 kB fragments
//!   of an 800 kbit/s track, 4 s; at 8 Mbit/s the window even grew for 2 s). Only then is
//!   it seen. Protocols with acknowledgements of their own (RTMP Acknowledgements, CMAF
//!   ingest's 2xx per segment) see it within the limit; Smooth ingest has none. For the same
//!   reason, after a stall the peer may hold unread bytes beyond what its window showed: the
//!   driver then resends the widest window it advertised on top ([`Delivery::widest`],
//!   [`Delivery::stall_safe`]).
//! - [`AckWitness`], from RTMP Acknowledgements. Servers acknowledge every window of bytes
//!   they read, but which window is theirs: the one we asked for (nginx-rtmp), their own (2.5
//!   or 5 MB), or none at all. The witness never assumes one: it learns the window from the
//!   steps between acknowledgements it saw, judges only once it knows it, and only counts
//!   acknowledgement *arrivals* against bytes we sent since, so a server whose byte counter
//!   restarts (nginx-rtmp resets it at 0xf0000000) or wraps at 2^32 changes nothing.

use std::collections::VecDeque;
use std::time::Duration;

/// One reading of the connection's TCP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When, on any monotonic clock (only differences are used).
    pub at: Duration,
    /// Bytes the peer's TCP acknowledged since the connection opened (`tcpi_bytes_acked`).
    pub acked: u64,
    /// Bytes written and not acknowledged yet (not sent plus in flight); any non-zero value
    /// means "we owe the peer bytes".
    pub owed: u64,
    /// The receive window the peer advertised last (`tcpi_snd_wnd`), when the kernel says.
    pub peer_window: Option<u32>,
}

/// What [`Delivery::sample`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing owed and nothing sitting unread at the peer.
    Idle,
    /// The peer read more since the last sample.
    Flowing,
    /// No progress for this long while the peer owes us progress.
    Waiting(Duration),
    /// No progress for at least the limit.
    Stalled(Duration),
}

/// Least growth of the read estimate that counts as progress (a few window-scale units).
pub const PROGRESS_MIN: u64 = 4096;
/// The read estimate must also grow by at least 1/this of the bytes acknowledged since the
/// last progress: a Linux receiver that stopped reading closes its window by a little less
/// than it takes (its buffer accounting is not byte for byte: 16 KB short per 2 MB burst,
/// 0.8 %, measured on loopback), and that creep must not pass for reading at high bit rates.
/// A peer that reads at 1/64 of what arrives (1.6 %) has as good as stopped; one that is
/// merely slow (a busy receiver) reads far more than that and is not called stalled.
pub const PROGRESS_SHARE: u64 = 64;

/// A window at or below 1/this of the widest the peer advertised is closed: its buffer is
/// full. A reading Linux receiver's clamp can fall well below its widest window when its
/// segments turn small (a half and more), never to this (see the top of this file).
pub const CLOSED_SHARE: u32 = 16;

/// The TCP witness of one connection.
#[derive(Debug, Clone)]
pub struct Delivery {
    limit: Duration,
    widest: u32,
    consumed: u64,
    consumed_at_progress: u64,
    acked_at_progress: u64,
    unread_at_progress: u64,
    /// When the current wait began (the first sample since progress or idle that owed).
    waiting_since: Option<Duration>,
    /// The largest acknowledged count seen, and when it last grew.
    acked: u64,
    acked_grew_at: Option<Duration>,
}

impl Delivery {
    /// A witness that calls a push stalled after `limit` without progress.
    pub fn new(limit: Duration) -> Self {
        Delivery {
            limit,
            widest: 0,
            consumed: 0,
            consumed_at_progress: 0,
            acked_at_progress: 0,
            unread_at_progress: 0,
            waiting_since: None,
            acked: 0,
            acked_grew_at: None,
        }
    }

    /// Bytes the peer's application read, as far as the evidence shows (never more).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// After a stall: the read estimate less the widest window the peer advertised (what
    /// its buffer may hold beyond what the window showed).
    pub fn stall_safe(&self) -> u64 {
        self.consumed.saturating_sub(u64::from(self.widest))
    }

    /// The widest receive window the peer advertised.
    pub fn widest(&self) -> u32 {
        self.widest
    }

    pub fn sample(&mut self, s: Sample) -> Verdict {
        if s.acked > self.acked || self.acked_grew_at.is_none() {
            self.acked = self.acked.max(s.acked);
            self.acked_grew_at = Some(s.at);
        }
        let unread = match s.peer_window {
            Some(w) => {
                self.widest = self.widest.max(w);
                u64::from(self.widest - w)
            }
            None => 0,
        };
        let consumed = s.acked.saturating_sub(unread);
        self.consumed = self.consumed.max(consumed);
        let all_read = unread == 0 && s.owed == 0;
        let grew = consumed.saturating_sub(self.consumed_at_progress);
        let arrived = s.acked.saturating_sub(self.acked_at_progress);
        if grew >= PROGRESS_MIN.max(arrived / PROGRESS_SHARE)
            || (all_read && consumed > self.consumed_at_progress)
        {
            self.consumed_at_progress = consumed;
            self.acked_at_progress = s.acked;
            self.unread_at_progress = unread;
            self.waiting_since = None;
            return Verdict::Flowing;
        }
        let arrived_unread = s.acked > self.acked_at_progress && unread > self.unread_at_progress;
        if s.owed == 0 && !arrived_unread {
            self.waiting_since = None;
            return Verdict::Idle;
        }
        // The limit counts from the first reading that showed the peer owing progress, not
        // from the last progress: a healthy Linux reader's window also settles below its
        // widest now and then as autotuning moves (by up to a fragment, seen in
        // e2e_interop), which looks like one fragment left unread until the next arrives.
        let since = *self.waiting_since.get_or_insert(s.at);
        let waited = s.at.saturating_sub(since);
        if waited >= self.limit && self.conclusive(s) {
            Verdict::Stalled(waited)
        } else {
            Verdict::Waiting(waited)
        }
    }

    /// Whether the evidence of a wait is a stall and not a reading receiver's window clamp
    /// (see the top of this file): the window closed, or what we owe went unacknowledged for
    /// the limit. Without a window the wait itself is the evidence (nothing else can close).
    fn conclusive(&self, s: Sample) -> bool {
        let Some(window) = s.peer_window else {
            return true;
        };
        let closed = window <= self.widest / CLOSED_SHARE;
        let refused = s.owed > 0
            && self
                .acked_grew_at
                .is_some_and(|t| s.at.saturating_sub(t) >= self.limit);
        closed || refused
    }
}

/// Slack on top of the learned window before an acknowledgement is due: rounding. Our count
/// of bytes sent leaves out the handshake and our own control messages, which the server
/// counts, so its next acknowledgement comes at or before `sent_at_ack + window` of ours.
pub const ACK_SLACK: u64 = 8 * 1024;
/// Writes remembered at most (older ones are long acknowledged or long stalled).
const MAX_WRITES: usize = 4096;

/// One write of the publish, for [`AckWitness`].
#[derive(Debug, Clone, Copy)]
struct Write {
    /// Our sent-byte count after it.
    sent: u64,
    /// Its end in the TCP byte stream, when the connection has TCP evidence.
    tcp_end: Option<u64>,
    /// When it was written.
    at: Duration,
}

/// The RTMP Acknowledgement witness of one publish.
///
/// An acknowledgement is due once we have sent a window (plus [`ACK_SLACK`]) past what we
/// had sent when the last one arrived, and the peer's TCP has those bytes (so a slow uplink,
/// with the due bytes still in our send buffer, is never taken for a stalled server). The
/// publish is stalled once no acknowledgement came for the limit, counted from the last one,
/// as CMAF counts from its last 2xx, and one has been due for half the limit at least: a
/// server that stops reading is seen within the limit of its last acknowledgement.
#[derive(Debug, Clone, Default)]
pub struct AckWitness {
    /// The largest step between two acknowledgements seen: the server's window.
    window: Option<u64>,
    last_value: Option<u32>,
    acks: u64,
    /// Our sent-byte count when the last acknowledgement arrived.
    sent_at_ack: u64,
    /// When the last acknowledgement arrived.
    last_ack_at: Option<Duration>,
    /// When the peer's TCP was first seen holding the write that made one due.
    due_since: Option<Duration>,
    /// Writes, oldest first.
    writes: VecDeque<Write>,
}

impl AckWitness {
    /// The window learned so far (None until two acknowledgements were seen).
    pub fn window(&self) -> Option<u64> {
        self.window
    }

    /// We wrote bytes: `sent` is the total since the publish started, `tcp_end` where the
    /// write ended in the TCP byte stream (None without TCP evidence).
    pub fn wrote(&mut self, sent: u64, tcp_end: Option<u64>, at: Duration) {
        self.writes.push_back(Write { sent, tcp_end, at });
        if self.writes.len() > MAX_WRITES {
            self.writes.pop_front();
        }
    }

    /// The session has seen `acks` acknowledgements, the last with byte count `value`; we had
    /// sent `sent` bytes by then, and it is `at`.
    pub fn acknowledged(&mut self, acks: u64, value: u32, sent: u64, at: Duration) {
        if acks <= self.acks {
            return;
        }
        let new = acks - self.acks;
        self.acks = acks;
        if let Some(last) = self.last_value
            && value > last
        {
            // Several acknowledgements between two looks: each covered a share of the step.
            let step = u64::from(value - last) / new;
            self.window = Some(self.window.map_or(step, |w| w.max(step)));
        }
        // A smaller value is a counter that restarted or wrapped: no step to learn from.
        self.last_value = Some(value);
        self.sent_at_ack = sent;
        self.last_ack_at = Some(at);
        self.due_since = None;
        while self.writes.front().is_some_and(|w| w.sent <= sent) {
            self.writes.pop_front();
        }
    }

    /// Stalled (with the time since the last acknowledgement) when one has been due for half
    /// the limit and none came for the limit. `tcp_acked` is what the peer's TCP acknowledged
    /// of the byte stream, when the connection has TCP evidence.
    pub fn stalled(
        &mut self,
        at: Duration,
        limit: Duration,
        tcp_acked: Option<u64>,
    ) -> Option<Duration> {
        let window = self.window?;
        let due = self.sent_at_ack + window + ACK_SLACK;
        let w = *self.writes.iter().find(|w| w.sent >= due)?;
        let due_at = match (w.tcp_end, tcp_acked) {
            (Some(end), Some(acked)) if acked < end => return None,
            (Some(_), Some(_)) => *self.due_since.get_or_insert(at),
            _ => w.at,
        };
        let since_ack = at.saturating_sub(self.last_ack_at.unwrap_or_default());
        (since_ack >= limit && at.saturating_sub(due_at) >= limit / 2).then_some(since_ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(4);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A peer on a healthy link: every 2 s a fragment of `size` bytes goes out and is read
    /// within 50 ms; the witness samples every 250 ms for `secs` seconds.
    fn healthy(size: u64, window: Option<u32>, secs: u64) -> Vec<Verdict> {
        let mut d = Delivery::new(LIMIT);
        let mut v = Vec::new();
        for t in (0..secs * 1000).step_by(250) {
            let frags = t / 2000 + 1;
            let in_burst = t % 2000 == 0;
            let acked = if in_burst {
                (frags - 1) * size
            } else {
                frags * size
            };
            v.push(d.sample(Sample {
                at: ms(t),
                acked,
                owed: if in_burst { size } else { 0 },
                peer_window: window,
            }));
        }
        v
    }

    #[test]
    fn a_healthy_peer_never_stalls_whatever_its_window() {
        for window in [None, Some(65_536), Some(6_291_456)] {
            let v = healthy(300_000, window, 120);
            assert!(
                v.iter().all(|x| !matches!(x, Verdict::Stalled(_))),
                "{window:?}: {v:?}"
            );
        }
    }

    #[test]
    fn a_peer_that_stops_reading_is_stalled_after_the_limit_even_while_its_kernel_acks() {
        let mut d = Delivery::new(LIMIT);
        let w = 131_072u32;
        // Reading: window wide open, everything acknowledged.
        assert_eq!(
            d.sample(Sample {
                at: ms(0),
                acked: 100_000,
                owed: 0,
                peer_window: Some(w)
            }),
            Verdict::Flowing
        );
        // Stops reading at 1 s: its kernel keeps acknowledging into the buffer, the window
        // closes by as much. Nothing is owed (it all fit).
        let mut acked = 100_000u64;
        let mut unread = 0u32;
        let mut stalled_at = None;
        for t in (1000..12_000).step_by(250) {
            if unread < w {
                let n = 8_000.min(w - unread);
                acked += u64::from(n);
                unread += n;
            }
            let owed = if unread >= w { 50_000 } else { 0 };
            let v = d.sample(Sample {
                at: ms(t),
                acked,
                owed,
                peer_window: Some(w - unread),
            });
            if matches!(v, Verdict::Stalled(_)) && stalled_at.is_none() {
                stalled_at = Some(t);
            }
        }
        assert_eq!(
            stalled_at,
            Some(1000 + 4000),
            "the limit after the first unread bytes"
        );
        assert_eq!(
            d.consumed(),
            100_000,
            "the unread bytes do not count as delivered"
        );
    }

    #[test]
    fn window_rounding_does_not_pass_for_reading() {
        // A peer that stopped reading: each burst of 17 776 bytes closes its window by
        // 17 408 (1 KiB units): the estimate creeps by 368 bytes a burst, which is no reading.
        // The stall is called once the window has closed (its buffer is full), not before:
        // until then a reading receiver's falling clamp would look the same.
        let mut d = Delivery::new(LIMIT);
        let w = 160_768u32;
        let mut acked = 214_659u64;
        assert_eq!(
            d.sample(Sample {
                at: ms(0),
                acked,
                owed: 0,
                peer_window: Some(w)
            }),
            Verdict::Flowing
        );
        let mut window = w;
        let mut stalled = None;
        for k in 1..=12u64 {
            let take = 17_408.min(window);
            window -= take;
            acked += u64::from(take) + if take == 17_408 { 368 } else { 0 };
            let v = d.sample(Sample {
                at: ms(k * 2000),
                acked,
                owed: if window == 0 { 17_776 } else { 0 },
                peer_window: Some(window),
            });
            if matches!(v, Verdict::Stalled(_)) && stalled.is_none() {
                stalled = Some(k * 2000);
            }
        }
        assert_eq!(
            stalled,
            Some(18_000),
            "nine bursts close the window to 4 096, under 1/16 of its widest"
        );
        assert!(d.stall_safe() < 214_659);
    }

    #[test]
    fn a_reading_peer_whose_clamp_falls_with_small_segments_is_not_stalled() {
        // The soak's input outage (docs/ref/endurance.md): 16 kB audio fragments every 2 s,
        // each read at once, then 2232-byte fragments of silence. The receiver's clamp fell
        // with the segments' payload ratio and it kept its window's right edge: the window
        // closed by 2048 bytes a fragment down to the new clamp, though every byte was read.
        // Then the live audio came back and the window reopened.
        let mut d = Delivery::new(LIMIT);
        let widest = 65_536u32;
        let clamp = widest * 45 / 100;
        let mut acked = 0u64;
        let mut window = widest;
        let mut verdicts = Vec::new();
        for t in (0..120_000u64).step_by(200) {
            if t % 2000 == 0 {
                let silence = (30_000..90_000).contains(&t);
                if silence {
                    acked += 2232;
                    window = window.saturating_sub(2048).max(clamp);
                } else {
                    acked += 16_000;
                    window = widest;
                }
            }
            verdicts.push((
                t,
                d.sample(Sample {
                    at: ms(t),
                    acked,
                    owed: 0,
                    peer_window: Some(window),
                }),
            ));
        }
        assert!(
            verdicts
                .iter()
                .all(|(_, v)| !matches!(v, Verdict::Stalled(_))),
            "{verdicts:?}"
        );
        assert!(
            verdicts
                .iter()
                .any(|(t, v)| *t > 60_000 && matches!(v, Verdict::Waiting(w) if *w >= LIMIT)),
            "the closure is seen, and waited on"
        );
        assert_eq!(
            d.consumed(),
            acked,
            "all of it counts once the window reopens"
        );
    }

    #[test]
    fn a_vanished_peer_is_stalled_though_its_window_stays_open() {
        // The host froze or went away: its last window stays open, its TCP takes nothing more.
        let mut d = Delivery::new(LIMIT);
        let s = |at, acked, owed| Sample {
            at: ms(at),
            acked,
            owed,
            peer_window: Some(65_536),
        };
        assert_eq!(d.sample(s(0, 100_000, 0)), Verdict::Flowing);
        let mut stalled = None;
        for t in (1000..8000).step_by(200) {
            if matches!(d.sample(s(t, 100_000, 20_000)), Verdict::Stalled(_)) && stalled.is_none() {
                stalled = Some(t);
            }
        }
        assert_eq!(stalled, Some(5000), "the limit after the first bytes owed");
    }

    #[test]
    fn without_a_window_the_rule_is_acknowledged_bytes_grow() {
        let mut d = Delivery::new(LIMIT);
        let s = |at, acked, owed| Sample {
            at: ms(at),
            acked,
            owed,
            peer_window: None,
        };
        assert_eq!(d.sample(s(0, 10_000, 5)), Verdict::Flowing);
        assert_eq!(d.sample(s(1000, 10_000, 5)), Verdict::Waiting(ms(0)));
        assert_eq!(
            d.sample(s(4000, 11_000, 5)),
            Verdict::Waiting(ms(3000)),
            "1000 bytes is too little"
        );
        assert_eq!(d.sample(s(5000, 11_000, 5)), Verdict::Stalled(ms(4000)));
        assert_eq!(d.sample(s(5100, 20_000, 0)), Verdict::Flowing);
        assert_eq!(
            d.sample(s(9999, 20, 0)),
            Verdict::Idle,
            "nothing owed: never stalled"
        );
    }

    #[test]
    fn a_healthy_window_that_settles_a_fragment_lower_is_not_a_stall() {
        // Seen in e2e_interop's steady phase (a reading receiver, 2 s fragments of ~63 kB):
        // autotuning widened the window to 2 620 416, then it settled at 2 561 024, so the
        // next fragment looked unread; the one after read normally.
        let mut d = Delivery::new(LIMIT);
        let s = |at, acked, win| Sample {
            at: ms(at),
            acked,
            owed: 0,
            peer_window: Some(win),
        };
        assert_eq!(d.sample(s(0, 1_000_000, 2_451_456)), Verdict::Flowing);
        assert_eq!(d.sample(s(2000, 1_065_779, 2_620_416)), Verdict::Flowing);
        for t in (2200..4000).step_by(200) {
            assert_eq!(d.sample(s(t, 1_065_779, 2_620_416)), Verdict::Idle);
        }
        for t in (4000..6000).step_by(200) {
            let v = d.sample(s(t, 1_128_055, 2_561_024));
            assert!(matches!(v, Verdict::Waiting(_)), "{t}: {v:?}");
        }
        assert_eq!(d.sample(s(6000, 1_192_120, 2_558_976)), Verdict::Flowing);
    }

    #[test]
    fn window_creep_at_a_high_bit_rate_does_not_pass_for_reading() {
        // Measured on loopback (Linux 6.1): a receiver that stopped reading took 2 MB bursts
        // and closed its window by 1 983 488 bytes each (16 KB of creep a burst, four times
        // PROGRESS_MIN, half of PROGRESS_SHARE's bar). The creep never counts as reading, and
        // the stall is called when the window has closed.
        let mut d = Delivery::new(LIMIT);
        let w = 11_702_272u32;
        assert_eq!(
            d.sample(Sample {
                at: ms(0),
                acked: 12_000_000,
                owed: 0,
                peer_window: Some(w)
            }),
            Verdict::Flowing
        );
        let mut stalled = None;
        let (mut acked, mut window) = (12_000_000u64, w);
        for k in 1..=8u64 {
            // Each burst: what closes the window, and the creep on top while there is room.
            let take = 1_983_488.min(window);
            window -= take;
            acked += u64::from(take) + if take == 1_983_488 { 16_512 } else { 0 };
            let v = d.sample(Sample {
                at: ms(k * 2000),
                acked,
                owed: if window == 0 { 1_000_000 } else { 0 },
                peer_window: Some(window),
            });
            assert!(
                !matches!(v, Verdict::Flowing),
                "burst {k}: creep passed for reading"
            );
            if matches!(v, Verdict::Stalled(_)) && stalled.is_none() {
                stalled = Some(k * 2000);
            }
        }
        assert_eq!(stalled, Some(12_000), "the sixth burst closes the window");
    }

    #[test]
    fn a_window_that_shrank_once_does_not_hold_an_idle_connection_hostage() {
        let mut d = Delivery::new(LIMIT);
        let s = |at, acked, owed, w| Sample {
            at: ms(at),
            acked,
            owed,
            peer_window: Some(w),
        };
        assert_eq!(d.sample(s(0, 1000, 0, 200_000)), Verdict::Flowing);
        // The peer's buffer shrank (memory pressure): a smaller window from now on.
        for t in (250..20_000).step_by(250) {
            assert_eq!(d.sample(s(t, 1000, 0, 100_000)), Verdict::Idle);
        }
        // New data is read at once: the window stays at its new size, acked grows.
        assert_eq!(d.sample(s(20_000, 900_000, 0, 100_000)), Verdict::Flowing);
    }

    #[test]
    fn ack_witness_learns_the_window_and_survives_resets_and_wraps() {
        let mut a = AckWitness::default();
        // No acknowledgement ever (a server that sends none): never stalled.
        for n in 1..200u64 {
            a.wrote(n * 100_000, None, ms(n * 100));
        }
        assert_eq!(a.stalled(ms(60_000), LIMIT, None), None);

        // nginx-rtmp's default window (5 MB), one acknowledgement each time its count passes
        // a multiple of 5 MB (3 Mbit/s: every ~13 s), 30 ms after the bytes reached it.
        let mut a = AckWitness::default();
        let mut sent = 0u64;
        let mut acks = 0;
        let mut value = 0xefb0_0000u32; // close to nginx's 0xf0000000 reset
        let mut server = 3_600u64; // the handshake and commands: the server counts them
        let mut next_ack = 5_000_000u64;
        let mut pending: Option<u64> = None;
        for t in (0..120_000u64).step_by(10) {
            sent += 3_750; // 3 Mbit/s
            server += 3_750;
            a.wrote(sent, Some(server), ms(t));
            if let Some(due) = pending
                && t >= due
            {
                pending = None;
                acks += 1;
                value = match value.checked_add(5_000_000) {
                    Some(v) if v < 0xf000_0000 => v,
                    _ => 5_000_000, // the counter restarted
                };
                a.acknowledged(acks, value, sent, ms(t));
            }
            if server >= next_ack && pending.is_none() {
                next_ack += 5_000_000;
                pending = Some(t + 30);
            }
            // The peer's TCP has everything up to 10 ms ago.
            assert_eq!(
                a.stalled(ms(t), LIMIT, Some(server - 3_750)),
                None,
                "false stall at {t} ms"
            );
        }
        assert_eq!(a.window(), Some(5_000_000));

        // 32-bit wrap of a server with a 2.5 MB window: no false step learned.
        let mut a = AckWitness::default();
        a.acknowledged(1, u32::MAX - 1_000_000, 0, ms(0));
        a.acknowledged(2, 1_500_000, 2_500_000, ms(1));
        assert_eq!(a.window(), None);
        a.acknowledged(3, 4_000_000, 5_000_000, ms(2));
        assert_eq!(a.window(), Some(2_500_000));
    }

    /// 32 KiB acknowledgements until the server stops reading at 3 s; we write `rate` bytes
    /// a second in 100 ms steps; its kernel takes everything (`tcp`: the peer's TCP has what
    /// was written) or nothing past the stall (`tcp: false`). Returns when the stall was called.
    fn ack_stall_at(rate: u64, tcp: bool) -> Option<u64> {
        let mut a = AckWitness::default();
        let mut sent = 0u64;
        let mut acks = 0u64;
        let step = rate / 10;
        for t in (0..20_000u64).step_by(100) {
            sent += step;
            a.wrote(sent, Some(sent), ms(t));
            if t < 3000 && sent / 32_768 > acks {
                acks = sent / 32_768;
                a.acknowledged(acks, (acks * 32_768) as u32, sent, ms(t));
            }
            let tcp_acked = if tcp || t < 3000 { sent } else { 0 };
            if a.stalled(ms(t), LIMIT, Some(tcp_acked)).is_some() {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn ack_witness_calls_a_stall_within_the_limit_of_the_last_acknowledgement() {
        // 180p (37 kB/s) to 720p (400 kB/s): the last acknowledgement came at 2.6–2.9 s,
        // and the stall is called the limit after it (sampled every 100 ms).
        for rate in [37_000, 100_000, 400_000] {
            let at = ack_stall_at(rate, true).expect("a stall");
            assert!(
                (6_100..=6_900).contains(&at),
                "{rate} B/s: stalled at {at} ms"
            );
        }
    }

    #[test]
    fn ack_witness_waits_while_the_due_bytes_sit_in_our_send_buffer() {
        // A slow uplink: the peer's TCP never got the bytes that make an acknowledgement due.
        // The TCP witness judges that case (nothing acknowledged); this one stays silent.
        assert_eq!(ack_stall_at(100_000, false), None);
    }
}
