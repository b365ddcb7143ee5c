//! One memory budget for every output's backlog (`[publish] memory`, docs/design/publish.md; issue
//! #10 part 3). Each task's backlog keeps its own bounds (duration, bytes); on top of them the
//! bytes all backlogs hold together stay under the budget. When a collector's push takes the total
//! over it, whole fragments are dropped, oldest first, from the task furthest behind (the most
//! undelivered media time; a dead secondary, typically), never from one holding a single unit.
//! Drops are counted in that task's `dropped_fragments` and logged by its collector at most once a
//! second.
//!
//! The budget holds weak references only: a task that ends (reload, shutdown) leaves it.
//! Backlogs are locked one at a time, never two together.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::Task;

/// The shared budget.
pub struct Budget {
    limit: u64,
    tasks: Mutex<Vec<Weak<Task>>>,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            tasks: Mutex::new(Vec::new()),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn register(&self, task: &Arc<Task>) {
        let mut tasks = crate::sync::lock(&self.tasks);
        tasks.retain(|t| t.strong_count() > 0);
        tasks.push(Arc::downgrade(task));
    }

    /// The live tasks.
    fn tasks(&self) -> Vec<Arc<Task>> {
        let mut tasks = crate::sync::lock(&self.tasks);
        tasks.retain(|t| t.strong_count() > 0);
        tasks.iter().filter_map(Weak::upgrade).collect()
    }

    /// Bytes every backlog holds together.
    pub fn used(&self) -> u64 {
        self.tasks().iter().map(|t| t.shared.lock().bytes()).sum()
    }

    /// Drops whole fragments until the backlogs fit the budget; returns how many.
    pub fn enforce(&self) -> u64 {
        let tasks = self.tasks();
        let mut dropped = 0;
        loop {
            let mut total = 0;
            let mut victim: Option<(Duration, u64, &Arc<Task>)> = None;
            for t in &tasks {
                let b = t.shared.lock();
                total += b.bytes();
                if b.len() < 2 {
                    continue;
                }
                let behind = (b.unsent_duration(), b.bytes());
                if victim.is_none_or(|(d, n, _)| behind > (d, n)) {
                    victim = Some((behind.0, behind.1, t));
                }
            }
            if total <= self.limit {
                return dropped;
            }
            let Some((_, _, t)) = victim else {
                return dropped;
            };
            let (ok, total_dropped, unsent, held) = {
                let mut b = t.shared.lock();
                let ok = b.drop_oldest();
                (ok, b.dropped, b.unsent() as u64, b.bytes())
            };
            if !ok {
                return dropped;
            }
            dropped += 1;
            t.budget_drops.fetch_add(1, Ordering::Relaxed);
            t.status.update(|s| {
                s.dropped_fragments = s.dropped_fragments.max(total_dropped);
                s.backlog_fragments = unsent;
                s.backlog_bytes = held;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fragment, push, spec, task, unit, video_init};
    use super::*;
    use crate::config::Protocol;

    #[test]
    fn the_task_furthest_behind_loses_its_oldest_fragments_first() {
        let init = video_init(1, 1280, 3_000_000);
        let live = task(spec(Protocol::Rtmp, "rtmp://127.0.0.1:1/live", "v"), &init);
        let dead = task(spec(Protocol::Rtmp, "rtmp://127.0.0.1:2/live", "v"), &init);
        // Each fragment's bytes read "seg<n>": 4 or 5 bytes; the budget holds 40.
        let budget = Budget::new(40);
        budget.register(&live);
        budget.register(&dead);
        for n in 0..3 {
            push(&live, unit(Some(fragment(n, 90_000, None)), None));
        }
        let mut dropped = 0;
        for n in 0..10 {
            push(&dead, unit(Some(fragment(n, 90_000, None)), None));
            dropped += budget.enforce();
        }
        assert!(budget.used() <= 40, "{}", budget.used());
        assert_eq!(
            live.shared.lock().dropped,
            0,
            "the live task is not touched"
        );
        assert_eq!(dead.shared.lock().dropped, dropped);
        assert!(dropped >= 2);
        assert_eq!(dead.budget_drops.load(Ordering::Relaxed), dropped);
        assert_eq!(dead.status.snapshot().dropped_fragments, dropped);
        // What is left of the dead task is its newest fragments, in order.
        let next = dead.shared.lock().next_unsent().map(|(_, u)| u.seq);
        assert_eq!(next, Some(dropped));
        // A task whose backlog is one unit is never emptied, even over the budget.
        let tiny = Budget::new(1);
        let one = task(spec(Protocol::Rtmp, "rtmp://127.0.0.1:3/live", "v"), &init);
        tiny.register(&one);
        push(&one, unit(Some(fragment(1, 90_000, None)), None));
        assert_eq!(tiny.enforce(), 0);
        assert_eq!(one.shared.lock().len(), 1);
    }
}
