//! TCP evidence for the publish drivers (docs/design/publish.md, *Delivery evidence*; issue #10
//! part 2): what the kernel knows about a connection (`TCP_INFO`: bytes the peer acknowledged,
//! bytes not sent yet, the receive window the peer advertises) and the socket options that bound a
//! dead peer (`TCP_USER_TIMEOUT`, a modest `SO_SNDBUF`).
//!
//! The decision (stalled or not, how far the peer read) is the pure
//! `twincast_media::stall::Delivery`; this file only reads the numbers. [`Watch`] joins the
//! two for one connection and remembers where each unit of the backlog ended in the TCP byte
//! stream, so a unit counts as delivered only once the peer read past its end, and after a
//! break the session resends from the first unit it had not.
//!
//! `nix` (the brief's choice for system calls) has no `TCP_INFO` option, so the one
//! `getsockopt` call goes through `libc` below, the only `unsafe` of the publish code.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use twincast_media::stall::{Delivery, Sample, Verdict};

/// Send buffer per publish connection: enough for a fragment burst of the largest rung
/// on a LAN, small enough that little sits in a connection that dies.
pub const SEND_BUFFER: usize = 512 * 1024;
/// How often a blocked or idle session reads the connection's TCP state.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The numbers of one `TCP_INFO` reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpState {
    /// Bytes the peer acknowledged.
    pub acked: u64,
    /// Bytes the application wrote so far (sent at least once, plus not sent yet).
    pub written: u64,
    /// The receive window the peer advertised last, when this kernel reports it.
    pub peer_window: Option<u32>,
}

/// A handle on a connection's socket for reading its TCP state (a duplicate of the
/// descriptor, so it stays valid exactly as long as the probe).
#[derive(Debug)]
pub struct TcpProbe {
    fd: OwnedFd,
}

impl TcpProbe {
    /// Sets the socket options of a publish connection and keeps a probe on it. None when
    /// the descriptor cannot be duplicated (the session then judges by write progress).
    pub fn new(tcp: &tokio::net::TcpStream, stall: Duration) -> Option<TcpProbe> {
        let sock = socket2::SockRef::from(tcp);
        // The kernel gives up on data unacknowledged for twice the stall limit: our own
        // witness calls the stall first, this is the backstop for a vanished host.
        let _ = sock.set_tcp_user_timeout(Some(stall * 2));
        let _ = sock.set_send_buffer_size(SEND_BUFFER);
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        Some(TcpProbe { fd })
    }

    /// The connection's TCP state now. None when the kernel does not answer.
    pub fn read(&self) -> Option<TcpState> {
        let (info, len) = tcp_info(&self.fd)?;
        // The kernel counts the SYN among the acknowledged bytes.
        let acked = info.tcpi_bytes_acked.saturating_sub(1);
        let has = |end: usize| len >= end;
        let field_end = |offset: usize, size: usize| offset + size;
        use std::mem::offset_of;
        let sent_end = field_end(offset_of!(libc::tcp_info, tcpi_bytes_retrans), 8);
        let written = if has(sent_end) {
            info.tcpi_bytes_sent.saturating_sub(info.tcpi_bytes_retrans)
                + u64::from(info.tcpi_notsent_bytes)
        } else {
            acked
                + u64::from(info.tcpi_unacked) * u64::from(info.tcpi_snd_mss)
                + u64::from(info.tcpi_notsent_bytes)
        };
        let peer_window = has(field_end(offset_of!(libc::tcp_info, tcpi_snd_wnd), 4))
            .then_some(info.tcpi_snd_wnd);
        Some(TcpState {
            acked,
            written: written.max(acked),
            peer_window,
        })
    }
}

/// `getsockopt(fd, SOL_TCP, TCP_INFO)`: the struct and how many bytes of it the kernel filled.
fn tcp_info(fd: &OwnedFd) -> Option<(libc::tcp_info, usize)> {
    let size = std::mem::size_of::<libc::tcp_info>();
    let mut len = libc::socklen_t::try_from(size).ok()?;
    // SAFETY: `tcp_info` is a plain C struct of integers, for which all-zero bytes are a
    // valid value; getsockopt writes at most `len` (its size) bytes into it and stores the
    // number written in `len`; `fd` is an open descriptor owned by the caller for the
    // duration of the call.
    let (info, rc) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let rc = libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast::<libc::c_void>(),
            &mut len,
        );
        (info, rc)
    };
    (rc == 0).then_some((info, len as usize))
}

/// The verdict of [`Watch::check`]: the peer made no progress for this long (the stall limit).
/// `net.rs` turns it into its `NetError::Stalled`; this module does not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled(pub Duration);

/// Delivery evidence of one connection: the TCP witness, and where each unit written on it
/// ended in the TCP byte stream.
#[derive(Debug)]
pub struct Watch {
    probe: Option<TcpProbe>,
    delivery: Delivery,
    limit: Duration,
    start: Instant,
    /// (TCP byte offset of the unit's end, backlog id), oldest first, not yet read by the peer.
    marks: VecDeque<(u64, u64)>,
    /// The last judgement.
    pub last_verdict: Option<Verdict>,
    /// Bytes written and not acknowledged by the peer's TCP at the last reading.
    pub last_owed: u64,
    /// Bytes the peer's TCP acknowledged at the last reading (None before one).
    pub last_acked: Option<u64>,
    /// Bytes written on the connection at the last write ([`Watch::wrote`]).
    pub last_written: Option<u64>,
    /// The last readings, for the log line that explains a stall.
    recent: VecDeque<Sample>,
    /// The connection ended in a stall.
    stalled: bool,
}

/// Resent after a stall at least (bytes), when the peer advertised no window.
const MIN_STALL_RESEND: u64 = 64 * 1024;

/// Readings kept for the stall log line (about 5 s at one per [`SAMPLE_EVERY`]).
const RECENT: usize = 25;

/// Marks remembered at most; older ones are counted delivered (a bound, not a knob).
const MAX_MARKS: usize = 1024;

impl Watch {
    pub fn new(probe: Option<TcpProbe>, limit: Duration) -> Watch {
        Watch {
            probe,
            delivery: Delivery::new(limit),
            limit,
            start: Instant::now(),
            marks: VecDeque::new(),
            last_verdict: None,
            last_owed: 0,
            last_acked: None,
            last_written: None,
            recent: VecDeque::new(),
            stalled: false,
        }
    }

    /// Whether this connection has TCP evidence at all.
    pub fn has_evidence(&self) -> bool {
        self.probe.is_some()
    }

    /// Reads the TCP state and judges it: an error once the peer made no progress for the
    /// limit. Returns the ids of units the peer has now read past (oldest first).
    pub fn check(&mut self) -> Result<Vec<u64>, Stalled> {
        match self.sample() {
            Some(Verdict::Stalled(_)) => {
                self.stalled = true;
                log::info!(
                    "stall evidence (ms, acked, owed, peer window): {}",
                    self.evidence()
                );
                Err(Stalled(self.limit))
            }
            // While the peer owes progress, nothing new counts as delivered.
            Some(Verdict::Waiting(_)) => Ok(Vec::new()),
            _ => Ok(self.delivered()),
        }
    }

    /// At the end of a connection, whatever ended it: the ids of the units the peer read
    /// past, as far as the last reading shows (nothing new after a stall).
    ///
    /// A connection that ends after the peer owed progress for half the limit or more
    /// (the kernel's user timeout or a reset came before our witness called the stall)
    /// counts as stalled: the peer had stopped reading, so its buffer may hold unread bytes
    /// beyond what its window showed, exactly as after a stall we called, and the next
    /// session resends as far back ([`Watch::resend_extra`]). Without this, such an end
    /// resent only the two fragments before the first one not delivered, and what the read
    /// estimate had over-counted was lost. A peer that dies while reading (owing only the
    /// last write) is an ordinary break.
    pub fn settle(&mut self) -> Vec<u64> {
        match self.sample() {
            _ if self.stalled => Vec::new(),
            Some(Verdict::Stalled(_)) => {
                self.stalled = true;
                Vec::new()
            }
            Some(Verdict::Waiting(waited)) => {
                self.stalled = waited >= self.limit / 2;
                Vec::new()
            }
            _ => self.delivered(),
        }
    }

    /// Marks the connection stalled (another witness called it).
    pub fn set_stalled(&mut self) {
        self.stalled = true;
    }

    /// Bytes to resend on top of the undelivered units after this connection ends: after a
    /// stall, the widest window the peer advertised (its buffer may hold that much unread
    /// beyond what the evidence showed); else none.
    pub fn resend_extra(&self) -> u64 {
        if self.stalled {
            u64::from(self.delivery.widest()).max(MIN_STALL_RESEND)
        } else {
            0
        }
    }

    /// The widest window the peer advertised (delivered units covering this many bytes stay
    /// in the backlog, for [`Watch::resend_extra`]).
    pub fn widest(&self) -> u64 {
        u64::from(self.delivery.widest())
    }

    /// The last readings, oldest first, as `ms/acked/owed/window` (acked relative to the
    /// first of them).
    fn evidence(&self) -> String {
        let base = self.recent.front().map_or(0, |s| s.acked);
        self.recent
            .iter()
            .map(|s| {
                let w = s.peer_window.map_or("-".to_string(), |w| w.to_string());
                format!(
                    "{}/+{}/{}/{w}",
                    s.at.as_millis(),
                    s.acked.saturating_sub(base),
                    s.owed
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The stall limit this watch judges by.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    fn sample(&mut self) -> Option<Verdict> {
        let state = self.probe.as_ref().and_then(TcpProbe::read)?;
        self.last_owed = state.written - state.acked;
        self.last_acked = Some(state.acked);
        let sample = Sample {
            at: self.start.elapsed(),
            acked: state.acked,
            owed: self.last_owed,
            peer_window: state.peer_window,
        };
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(sample);
        let verdict = self.delivery.sample(sample);
        self.last_verdict = Some(verdict);
        Some(verdict)
    }

    /// A unit was written (and flushed) on this connection.
    pub fn wrote(&mut self, id: u64) -> Vec<u64> {
        let Some(state) = self.probe.as_ref().and_then(TcpProbe::read) else {
            return vec![id];
        };
        self.last_written = Some(state.written);
        self.marks.push_back((state.written, id));
        let mut done = Vec::new();
        while self.marks.len() > MAX_MARKS {
            if let Some((_, id)) = self.marks.pop_front() {
                done.push(id);
            }
        }
        done
    }

    /// Ids of the units whose end the peer has read past.
    fn delivered(&mut self) -> Vec<u64> {
        let consumed = self.delivery.consumed();
        let mut done = Vec::new();
        while let Some(&(end, id)) = self.marks.front() {
            if end > consumed {
                break;
            }
            self.marks.pop_front();
            done.push(id);
        }
        done
    }

    /// The peer answered (it read everything written so far): every unit is delivered.
    pub fn all_delivered(&mut self) -> Vec<u64> {
        self.marks.drain(..).map(|(_, id)| id).collect()
    }

    /// Time since the last progress, when waiting.
    pub fn waiting(&self) -> Option<Duration> {
        match self.last_verdict {
            Some(Verdict::Waiting(d) | Verdict::Stalled(d)) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected client and server on loopback.
    async fn loopback_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn the_kernel_reports_acknowledged_and_written_bytes() {
        let (client, mut server) = loopback_pair().await;
        let probe = TcpProbe::new(&client, Duration::from_secs(2)).expect("probe");
        let (_, mut wr) = client.into_split();
        wr.write_all(&[7u8; 100_000]).await.expect("write");
        let mut got = vec![0u8; 100_000];
        server.read_exact(&mut got).await.expect("read");
        let mut state = probe.read().expect("tcp_info");
        for _ in 0..100 {
            if state.acked >= 100_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            state = probe.read().expect("tcp_info");
        }
        assert_eq!(state.acked, 100_000);
        assert_eq!(state.written, 100_000);
        assert!(state.peer_window.is_some_and(|w| w > 0), "{state:?}");
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_seen_by_the_watch() {
        let (client, _server) = loopback_pair().await; // never reads
        let limit = Duration::from_millis(600);
        let mut watch = Watch::new(TcpProbe::new(&client, limit), limit);
        let (_, mut wr) = client.into_split();
        let started = Instant::now();
        let mut id = 0;
        let stalled = loop {
            // 20 KB every 50 ms (3.2 Mbit/s), as long as the socket takes it.
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_millis(50), wr.write_all(&[1u8; 20_000])).await
            {
                watch.wrote(id);
                id += 1;
            }
            if watch.check().is_err() {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never stalled");
        };
        assert!(stalled >= limit, "{stalled:?}");
        assert!(stalled < Duration::from_secs(5), "{stalled:?}");
        assert!(watch.delivered().is_empty(), "nothing was read by the peer");
    }

    #[tokio::test]
    async fn a_connection_that_ends_while_the_peer_owes_progress_resends_like_a_stall() {
        let (client, server) = loopback_pair().await; // never reads
        // Something else ends the connection before our witness calls the stall.
        let limit = Duration::from_secs(2);
        let mut watch = Watch::new(TcpProbe::new(&client, limit), limit);
        let (_, mut wr) = client.into_split();
        let started = Instant::now();
        let mut id = 0;
        // Write until the peer's buffers are full and we owed it bytes for half the limit.
        loop {
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_millis(50), wr.write_all(&[1u8; 20_000])).await
            {
                watch.wrote(id);
                id += 1;
            }
            assert!(watch.check().is_ok(), "our witness has not called it yet");
            if matches!(watch.last_verdict, Some(Verdict::Waiting(d)) if d >= limit / 2) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never waiting");
        }
        // The peer goes away (a reset, the kernel's user timeout): the session ends with an
        // error that is not our stall.
        drop(server);
        assert!(watch.settle().is_empty(), "nothing new is delivered");
        assert!(
            watch.resend_extra() >= MIN_STALL_RESEND,
            "the next session reaches back as after a stall: {}",
            watch.resend_extra()
        );
    }

    #[tokio::test]
    async fn a_connection_that_ends_idle_resends_nothing_extra() {
        let (client, mut server) = loopback_pair().await;
        let limit = Duration::from_secs(4);
        let mut watch = Watch::new(TcpProbe::new(&client, limit), limit);
        let (_, mut wr) = client.into_split();
        wr.write_all(&[7u8; 50_000]).await.expect("write");
        watch.wrote(0);
        let mut got = vec![0u8; 50_000];
        server.read_exact(&mut got).await.expect("read");
        let started = Instant::now();
        while watch.check().expect("no stall").is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never delivered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(server);
        assert!(watch.settle().is_empty());
        assert_eq!(watch.resend_extra(), 0, "a peer that had read everything");
    }
}
