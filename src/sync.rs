//! One way to take a lock: a poisoned lock is recovered, never skipped and never a panic.
//!
//! A lock is poisoned when a thread panicked while holding it. In this daemon that thread is a
//! source, an encoder, a publish task or an operations loop, and its supervisor rebuilds it
//! (docs/design/data-path.md, *What ends the daemon*): the process goes on, so the rest of it
//! must go on reading and writing the same data. That is sound here because every lock guards
//! data that each operation leaves consistent (a counter bumped, a value replaced, an entry
//! pushed or drained whole); none holds a multi-step update that a panic could leave halfway.
//! Skipping the work on a poisoned lock (`if let Ok(..)`) would silently freeze a counter or a
//! status field for the rest of the process; panicking (`unwrap()`) would spread one failure
//! into every thread that touches the data.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering the guard if a panicking thread poisoned it (see the module doc).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, recovering the guard if a panicking writer poisoned it (see the module doc).
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, recovering the guard if a panicking writer poisoned it (see the module doc).
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_mutex_still_gives_its_data() {
        let m = Arc::new(Mutex::new(1u32));
        let m2 = Arc::clone(&m);
        let joined = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap_or_else(PoisonError::into_inner);
            *g = 2;
            panic!("poison the lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 3);
    }

    #[test]
    fn a_poisoned_rwlock_still_gives_its_data() {
        let l = Arc::new(RwLock::new(vec![1u8]));
        let l2 = Arc::clone(&l);
        let joined = std::thread::spawn(move || {
            let mut g = l2.write().unwrap_or_else(PoisonError::into_inner);
            g.push(2);
            panic!("poison the lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(l.is_poisoned());
        write(&l).push(3);
        assert_eq!(*read(&l), vec![1, 2, 3]);
    }
}
