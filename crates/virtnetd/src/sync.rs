//! Locking helpers shared by every part of the daemon (a leaf module: it imports nothing of
//! the crate, so any module may use it without making an import cycle).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A poisoned lock only means another request panicked; the data behind our locks is never
/// left half-updated (every change is a single insert or replace after a commit), so go on
/// with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
