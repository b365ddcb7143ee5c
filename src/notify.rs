//! systemd notification protocol (`sd_notify(3)`) over the `$NOTIFY_SOCKET` datagram socket,
//! and the watchdog (docs/design/operations.md, *systemd*).
//!
//! - `READY=1` once the pipeline plays, the first fragment is cut and the origin listens.
//! - `WATCHDOG=1` every half `$WATCHDOG_USEC`, **only** while there is fresh evidence of progress:
//!   raw frames entered the timeline since the last ping and a fragment was cut recently. A hung
//!   pipeline therefore stops the pings and systemd restarts us. Never a free-running timer.
//! - `STATUS=` one line a person can read; `RELOADING=1`/`READY=1` around a reload;
//!   `STOPPING=1` on SIGTERM.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Environment variable naming the notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// Environment variable with the watchdog timeout in µs.
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// Environment variable naming the process the watchdog is meant for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

/// A connection to the service manager (or none).
#[derive(Debug)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Opens `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). A socket that cannot be
    /// opened is logged once and then ignored: notification must never stop the daemon.
    pub fn from_env() -> Notifier {
        let Some(target) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
            return Notifier { socket: None };
        };
        let target = target.to_string_lossy().into_owned();
        match connect(&target) {
            Ok(socket) => Notifier {
                socket: Some(socket),
            },
            Err(e) => {
                log::warn!(error = e.to_string(); "systemd notification socket {target} cannot be used: {e}");
                Notifier { socket: None }
            }
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { socket: None }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one message (`KEY=value` lines).
    pub fn send(&self, message: &str) {
        if let Some(socket) = &self.socket
            && let Err(e) = socket.send(message.as_bytes())
        {
            log::debug!("sd_notify {message:?} failed: {e}");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STATUS=` with newlines removed (one line).
    pub fn status(&self, line: &str) {
        self.send(&format!("STATUS={}", line.replace('\n', " ")));
    }
}

fn connect(target: &str) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.connect_addr(&addr)?;
    } else {
        socket.connect(target)?;
    }
    Ok(socket)
}

/// The ping interval: half of `$WATCHDOG_USEC`, when the watchdog is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var(WATCHDOG_USEC_ENV).ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var(WATCHDOG_PID_ENV)
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Progress counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Raw frames that entered the timeline.
    pub frames: u64,
    /// Fragments cut, all tracks.
    pub fragments: u64,
}

/// Decides whether the watchdog may be petted: the frame count must have advanced within
/// `frame_grace` and the fragment count within `fragment_grace`.
///
/// Neither may be a single ping interval: the grid clock pauses its feed when it has to feed
/// later (a late source moves its latency up by as much as `MAX_LATENCY` at once,
/// src/capture/grid.rs), and a fragment takes a whole fragment duration to cut. A hung pipeline
/// still stops the pings within the larger grace.
#[derive(Debug)]
pub struct Freshness {
    last: Option<Progress>,
    last_frame_at: Option<std::time::Instant>,
    last_fragment_at: Option<std::time::Instant>,
    frame_grace: Duration,
    fragment_grace: Duration,
}

impl Freshness {
    pub fn new(frame_grace: Duration, fragment_grace: Duration) -> Self {
        Freshness {
            last: None,
            last_frame_at: None,
            last_fragment_at: None,
            frame_grace,
            fragment_grace,
        }
    }

    /// Records `now`'s counters; true when there is fresh evidence of progress.
    pub fn check(&mut self, progress: Progress, now: std::time::Instant) -> bool {
        let Some(previous) = self.last.replace(progress) else {
            if progress.fragments > 0 {
                self.last_fragment_at = Some(now);
            }
            return false;
        };
        if progress.frames > previous.frames {
            self.last_frame_at = Some(now);
        }
        if progress.fragments > previous.fragments {
            self.last_fragment_at = Some(now);
        }
        let fresh = |at: Option<std::time::Instant>, grace| {
            at.is_some_and(|at| now.duration_since(at) <= grace)
        };
        fresh(self.last_frame_at, self.frame_grace)
            && fresh(self.last_fragment_at, self.fragment_grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn p(frames: u64, fragments: u64) -> Progress {
        Progress { frames, fragments }
    }

    #[test]
    fn pets_only_on_progress() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut f = Freshness::new(Duration::from_millis(1500), Duration::from_secs(3));
        assert!(
            !f.check(p(10, 1), t0),
            "the first sample has nothing to compare"
        );
        assert!(f.check(p(40, 1), t0 + s));
        assert!(f.check(p(70, 2), t0 + 2 * s));
        // Frames pause for less than their grace (the grid clock moved its latency up): pings
        // go on.
        assert!(f.check(p(70, 2), t0 + 3 * s));
        // Frames stay stopped past the grace: no ping, although a fragment was cut recently.
        assert!(!f.check(p(70, 2), t0 + 4 * s));
        // Frames flow but no fragment for longer than the grace: the packager is hung.
        assert!(f.check(p(100, 2), t0 + 5 * s));
        assert!(!f.check(p(130, 2), t0 + 6 * s));
        assert!(f.check(p(160, 3), t0 + 7 * s));
    }

    #[test]
    fn no_fragment_yet_no_ping() {
        let t0 = Instant::now();
        let mut f = Freshness::new(Duration::from_secs(3), Duration::from_secs(3));
        assert!(!f.check(p(0, 0), t0));
        assert!(!f.check(p(30, 0), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn sends_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(connect(path.to_str().unwrap()).unwrap()),
        };
        n.ready();
        n.status("two\nlines");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=two lines");
    }
}
