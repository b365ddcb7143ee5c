//! Liveness of an HTTP ingest receiver whose stream gets no answer while it runs (Smooth
//! ingest's long-running POST; docs/design/publish.md, *Stall detection*).
//!
//! TCP cannot show a Linux receiver that stops reading until its buffer is full, which for a
//! low rung is many seconds or minutes (twincast-media `stall.rs`, "What TCP cannot show"),
//! and the POST itself is answered only when it ends. So a second connection asks the server
//! `OPTIONS *` (RFC 9110 §9.3.7: a request about the server itself, a "ping") every
//! `every`: any answer, whatever its status, shows the server's application reads and
//! answers. No answer for the stall limit, with a request outstanding for half of it, is a
//! stall. The request names no stream and carries no credential, so it changes nothing at the
//! receiver and shows no secret. A receiver that does not take it (closes or refuses three
//! times in a row) is left alone: detection is then from TCP evidence only, said once.
//!
//! [`Gate`] holds back what the TCP evidence calls delivered until an answer that came the
//! stall limit after it: a unit the peer's kernel took after the server's stream handler
//! stopped may still sit unread in it, and is resent after a stall. An answer alone is not
//! enough: another connection's handler can answer after the stream's has stopped (the suite's
//! receiver answered a probe it had half read 2 s after its stall began, and a Smooth fragment
//! TCP had called delivered in between was lost, e2e_interop).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::http::{self, HttpUrl};
use super::net::{self, BoxStream, NetError};

/// Probes without an answer in a row (refused, closed) after which the probing stops.
const GIVE_UP_AFTER: u32 = 3;

#[derive(Debug)]
struct State {
    /// The last answer (or the start).
    last_answer: Instant,
    /// A probe written and not answered yet.
    outstanding_since: Option<Instant>,
}

/// The probing of one receiver, for as long as this value lives.
pub struct Liveness {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Liveness {
    /// Probes `url`'s server every `every`; `what` names the destination in the log.
    pub fn start(url: &HttpUrl, every: Duration, limit: Duration, what: String) -> Liveness {
        let state = Arc::new(Mutex::new(State {
            last_answer: Instant::now(),
            outstanding_since: None,
        }));
        let task = tokio::spawn(probe(url.clone(), every, limit, what, state.clone()));
        Liveness { state, task }
    }

    /// When the server last answered.
    pub fn last_answer(&self) -> Instant {
        self.lock().last_answer
    }

    /// No answer for `limit`, with a probe outstanding for half of it at least.
    pub fn stalled(&self, limit: Duration) -> bool {
        let s = self.lock();
        s.outstanding_since
            .is_some_and(|t| t.elapsed() >= limit / 2)
            && s.last_answer.elapsed() >= limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

async fn probe(
    url: HttpUrl,
    every: Duration,
    limit: Duration,
    what: String,
    state: Arc<Mutex<State>>,
) {
    let lock = || crate::sync::lock(&state);
    let head = format!(
        "OPTIONS * HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: twincast/{}\r\nContent-Length: 0\r\n\r\n",
        url.host,
        url.port,
        env!("CARGO_PKG_VERSION")
    );
    let mut conn: Option<BoxStream> = None;
    let mut unanswered = 0u32;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let stream = match conn.take() {
            Some(s) => Ok(s),
            None => net::connect(&url.host, url.port, url.tls).await,
        };
        let answer = match stream {
            Ok(mut s) => {
                let sent = Instant::now();
                lock().outstanding_since.get_or_insert(sent);
                let r = match s.write_all(head.as_bytes()).await {
                    Ok(()) => http::read_response(&mut s, limit).await,
                    Err(e) => Err(NetError::Write(e)),
                };
                r.map(|resp| (resp, s))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((resp, s)) => {
                let mut st = lock();
                st.last_answer = Instant::now();
                st.outstanding_since = None;
                unanswered = 0;
                if !resp.close {
                    conn = Some(s);
                }
            }
            // No answer within the limit: the stall is called from `stalled`; try again.
            Err(NetError::ReadTimeout(_)) => {}
            Err(e) => {
                lock().outstanding_since = None;
                unanswered += 1;
                if unanswered >= GIVE_UP_AFTER {
                    log::info!(
                        "{what}: the ingest server does not answer OPTIONS * ({e}); a stall is seen from TCP evidence only"
                    );
                    return;
                }
            }
        }
    }
}

/// Units the TCP evidence called delivered, held until the server answers a probe sent after.
#[derive(Debug, Default)]
pub struct Gate {
    held: VecDeque<(Instant, u64)>,
}

/// Units held at most (older ones are released: a bound, not a knob).
const MAX_HELD: usize = 4096;

impl Gate {
    /// `ids` were delivered as far as TCP shows (oldest first).
    pub fn hold(&mut self, ids: impl IntoIterator<Item = u64>) {
        let now = Instant::now();
        self.held.extend(ids.into_iter().map(|id| (now, id)));
    }

    /// The held units the server has answered `margin` after at least: delivered (oldest
    /// first).
    pub fn release(&mut self, last_answer: Instant, margin: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.held.front() {
            if at + margin > last_answer && self.held.len() <= MAX_HELD {
                break;
            }
            self.held.pop_front();
            out.push(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncReadExt;

    /// A server that answers every request with 405 (a real answer) until `hang` is set, then
    /// reads and answers nothing while keeping its connections open.
    async fn server(hang: Arc<AtomicBool>) -> u16 {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let hang = hang.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        while hang.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let answer =
                            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn url(port: u16) -> HttpUrl {
        HttpUrl::parse(&format!("http://127.0.0.1:{port}/in/x.isml")).expect("url")
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_is_stalled_within_the_limit() {
        let hang = Arc::new(AtomicBool::new(false));
        let port = server(hang.clone()).await;
        let limit = Duration::from_millis(800);
        let live = Liveness::start(&url(port), limit / 4, limit, "test".into());
        // Answering (405 is an answer): never stalled.
        let until = Instant::now() + 3 * limit;
        while Instant::now() < until {
            assert!(!live.stalled(limit), "false stall");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answered = live.last_answer();
        assert!(answered.elapsed() < limit / 2, "probes are answered");
        hang.store(true, Ordering::SeqCst);
        let hung = Instant::now();
        while !live.stalled(limit) {
            assert!(hung.elapsed() < 3 * limit, "the stall was never called");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The limit after the last answer. That answer may come after the hang by up to one
        // probe interval (the server had the probe's read under way), and a loaded box adds
        // scheduling: never sooner than the limit after it, within half the limit more.
        let since_answer = live.last_answer().elapsed();
        assert!(
            since_answer >= limit,
            "stalled {since_answer:?} after the last answer"
        );
        assert!(
            hung.elapsed() <= limit + limit / 2 + Duration::from_millis(200),
            "stalled {:?} after the hang",
            hung.elapsed()
        );
    }

    #[tokio::test]
    async fn a_server_that_refuses_the_probe_is_left_alone() {
        // Closes every connection at once: no answer, but no stall either.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let limit = Duration::from_millis(400);
        let live = Liveness::start(&url(port), limit / 4, limit, "test".into());
        let until = Instant::now() + 5 * limit;
        while Instant::now() < until {
            assert!(!live.stalled(limit), "a refused probe is no stall");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(live.task.is_finished(), "it gave up probing");
    }

    #[test]
    fn the_gate_releases_what_an_answer_came_after() {
        let mut g = Gate::default();
        let margin = Duration::from_millis(20);
        g.hold([1, 2]);
        let held = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        g.hold([3]);
        assert_eq!(g.release(held, margin), Vec::<u64>::new(), "too soon after");
        assert_eq!(g.release(held + margin, margin), vec![1, 2]);
        assert_eq!(g.release(held + margin, margin), Vec::<u64>::new());
        assert_eq!(g.release(Instant::now() + margin, margin), vec![3]);
    }
}
