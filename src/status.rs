//! Live state that the control listener, sd_notify STATUS= and the logs read: one registry per
//! daemon, written by the parts that own the state (publishers, origin, capture), read as
//! snapshots. Writers never wait on readers for long: every entry is a short mutex.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::sync::{lock, read, write};

/// State of one push destination (docs/design/publish.md, *One task per destination*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DestState {
    Idle,
    Connecting,
    Publishing,
    /// Waiting before the next try.
    Backoff,
    Failed,
}

impl DestState {
    pub fn as_str(self) -> &'static str {
        match self {
            DestState::Idle => "idle",
            DestState::Connecting => "connecting",
            DestState::Publishing => "publishing",
            DestState::Backoff => "backoff",
            DestState::Failed => "failed",
        }
    }
}

/// Status of one (output × URL × track-or-rendition) task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestStatus {
    /// `[[output]] name`.
    pub output: String,
    /// "primary" or "secondary".
    pub dest: &'static str,
    /// Track or rendition this task carries (or "all" for a task carrying several).
    pub track: String,
    /// The URL with credentials removed.
    pub url: String,
    pub state: DestState,
    /// Last error, sanitised (no credentials).
    pub last_error: Option<String>,
    /// Connection attempts since start (1 = the first).
    pub attempts: u64,
    pub bytes_sent: u64,
    pub fragments_sent: u64,
    pub backlog_fragments: u64,
    pub backlog_bytes: u64,
    /// Whole fragments dropped because the backlog was full.
    pub dropped_fragments: u64,
    /// Fragments sent again after a reconnect.
    pub resent_fragments: u64,
    /// Headers sent again mid-session because a fragment came with new codec parameters (a
    /// reload rebuilt its encoder).
    pub header_switches: u64,
    /// When the state last changed.
    #[serde(skip)]
    pub since: Option<SystemTime>,
}

impl DestStatus {
    pub fn new(output: &str, dest: &'static str, track: &str, url: &str) -> Self {
        DestStatus {
            output: output.to_string(),
            dest,
            track: track.to_string(),
            url: url.to_string(),
            state: DestState::Idle,
            last_error: None,
            attempts: 0,
            bytes_sent: 0,
            fragments_sent: 0,
            backlog_fragments: 0,
            backlog_bytes: 0,
            dropped_fragments: 0,
            resent_fragments: 0,
            header_switches: 0,
            since: Some(SystemTime::now()),
        }
    }
}

/// A handle a publisher task keeps to update its own entry.
#[derive(Debug, Clone)]
pub struct DestHandle(Arc<Mutex<DestStatus>>);

impl DestHandle {
    /// Applies `f` to the entry.
    pub fn update(&self, f: impl FnOnce(&mut DestStatus)) {
        f(&mut lock(&self.0));
    }

    pub fn snapshot(&self) -> DestStatus {
        lock(&self.0).clone()
    }
}

/// Every destination of every output.
#[derive(Debug, Default)]
pub struct Registry {
    dests: RwLock<Vec<DestHandle>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// Adds an entry and returns the handle its task updates.
    pub fn register(&self, status: DestStatus) -> DestHandle {
        let handle = DestHandle(Arc::new(Mutex::new(status)));
        write(&self.dests).push(handle.clone());
        handle
    }

    /// Removes the entries of an output (on reload).
    pub fn remove_output(&self, output: &str) {
        write(&self.dests).retain(|h| h.snapshot().output != output);
    }

    pub fn dests(&self) -> Vec<DestStatus> {
        read(&self.dests).iter().map(DestHandle::snapshot).collect()
    }
}
