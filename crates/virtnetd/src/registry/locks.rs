//! The registry's locks: one per network, held by whatever starts, stops or changes that
//! network, and the short reservation lock (held only while a definition's identity and
//! bridge are checked against every other network and reserved; see `Reservation`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::sync::lock;

/// The locks of single networks, by name, made on first use and forgotten once nobody holds
/// or waits for them (so a host that defines and undefines names forever keeps no garbage).
#[derive(Debug, Default)]
pub(super) struct NetworkLocks {
    by_name: Mutex<HashMap<String, Weak<Mutex<()>>>>,
}

impl NetworkLocks {
    /// The lock of network `name`; callers lock it (and hold the `Arc` while they do).
    pub(super) fn of(&self, name: &str) -> Arc<Mutex<()>> {
        let mut by_name = lock(&self.by_name);
        if let Some(existing) = by_name.get(name).and_then(Weak::upgrade) {
            return existing;
        }
        // Only locks someone holds or waits for stay: the map is as small as the number of
        // requests in flight.
        by_name.retain(|_, held| held.strong_count() > 0);
        let new = Arc::new(Mutex::new(()));
        by_name.insert(name.to_string(), Arc::downgrade(&new));
        new
    }
}
