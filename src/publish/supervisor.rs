//! The supervisor: one driver session after another, with jittered backoff between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::task::{ProtocolSpec, Task, Unit};
use super::{cmaf, rtmp, smooth};
use crate::status::DestState;

/// Delay before the first retry; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between tries, jitter included: the push resumes within this long of the
/// ingest coming back.
pub const BACKOFF_MAX: Duration = Duration::from_millis(1800);
/// A session that published this long resets the backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// Jittered exponential backoff, capped at [`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let exp = BACKOFF_MIN.saturating_mul(1 << self.failures.min(8));
        self.failures = self.failures.saturating_add(1);
        let capped = exp.min(BACKOFF_MAX);
        // Full jitter in [50 %, 100 %]: two tasks that failed together do not retry together.
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Per-task state that survives reconnects.
#[derive(Debug, Default)]
pub struct Carry {
    /// RTMP zero-based timestamps: the first millisecond ever sent.
    pub zero_base_ms: Option<u64>,
    /// CMAF: the last acknowledged unit (re-sent with `lmsg` at shutdown if nothing newer).
    pub last_sent: Option<Arc<Unit>>,
    /// Set by a driver when its session reached Publishing.
    pub published_at: Option<Instant>,
}

/// The supervisor: `run_once` until cancelled, with backoff between tries.
pub(super) async fn supervise(task: Arc<Task>) {
    let mut backoff = Backoff::default();
    let mut carry = Carry::default();
    while !task.cancel.is_cancelled() {
        task.set_state(DestState::Connecting, None);
        carry.published_at = None;
        let result = match &task.spec.protocol {
            ProtocolSpec::Rtmp(s) => rtmp::run_once(&task, s, &mut carry).await,
            ProtocolSpec::Smooth(s) => smooth::run_once(&task, s, &mut carry).await,
            ProtocolSpec::Cmaf(s) => cmaf::run_once(&task, s, &mut carry).await,
        };
        if task.cancel.is_cancelled() {
            break;
        }
        let error = match result {
            Ok(()) => "session ended".to_string(),
            Err(e) => e.to_string(),
        };
        if carry
            .published_at
            .is_some_and(|t| t.elapsed() >= BACKOFF_RESET_AFTER)
        {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        task.set_state(DestState::Backoff, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = task.cancel.cancelled() => break,
        }
    }
    task.set_state(DestState::Idle, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::publish::test_support;
    use tokio::time::Instant as VirtualInstant;

    /// The supervisor's retries, in simulated time: a URL that cannot be parsed fails every
    /// session at once without any I/O, so only the backoff spaces the tries.
    #[tokio::test(start_paused = true)]
    async fn the_supervisor_retries_with_a_doubling_jittered_backoff_until_cancelled() {
        let spec = test_support::spec(Protocol::Rtmp, "rtmp://", "v");
        let task = test_support::task(spec, &test_support::video_init(1, 1280, 3_000_000));
        let run = tokio::spawn(supervise(task.clone()));
        let attempts = || task.status.snapshot().attempts;
        let mut tries = Vec::new();
        let started = VirtualInstant::now();
        while tries.len() < 9 {
            let n = attempts();
            if n > tries.len() as u64 {
                assert_eq!(n, tries.len() as u64 + 1, "one try at a time");
                tries.push(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let status = task.status.snapshot();
        assert_eq!(status.state, DestState::Backoff);
        assert!(status.last_error.is_some(), "the failure is kept");
        // Try i waits BACKOFF_MIN·2^i, capped at BACKOFF_MAX, jittered to 50–100 % of it
        // (plus the timer's millisecond rounding and the 1 ms this loop looks at the status).
        let tick = Duration::from_millis(3);
        for (i, gap) in tries.windows(2).map(|w| w[1] - w[0]).enumerate() {
            let full = BACKOFF_MIN.saturating_mul(1 << i).min(BACKOFF_MAX);
            assert!(
                gap + tick >= full / 2 && gap <= full + tick,
                "wait {i} was {gap:?}, not within 50–100 % of {full:?}"
            );
        }
        // Cancelled during a backoff: ends at once, idle.
        task.cancel.cancel();
        let before = VirtualInstant::now();
        run.await.expect("supervisor");
        assert!(before.elapsed() < tick, "the backoff is cancellable");
        assert_eq!(task.status.snapshot().state, DestState::Idle);
    }

    #[test]
    fn backoff_is_jittered_capped_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= BACKOFF_MIN && delays[0] >= BACKOFF_MIN / 2);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[11] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }
}
