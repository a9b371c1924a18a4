//! Port forwards as part of a network's definitions: `forward-add` and `forward-del` change the
//! persistent definition and, for an active network, the live one, so the forwards show in
//! `net-dumpxml` and survive restarts.
//!
//! A change costs the same with ten forwards or ten thousand: it is stored as one small
//! [`ForwardOp`] record (not the definition written again), applied to the index's record in
//! place (not a copy), and checked against the stored form's input limits from the size that
//! form had before plus the forward's one line ([`StoredSize`]) — writing the definition out
//! and reading it back, the exact check, only when that sum comes near a limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use virtnet_api::DhcpLease;
use virtnet_model::{Network, PortForward, StoredSize};

use super::{find, not_active, not_found, NetworkRegistry};
use crate::error::{Error, Result};
use crate::store::ForwardOp;

/// The stored-form size of each definition forwards were added to, by network and definition
/// (`true`: the live one). Entries are forgotten whenever the record changes otherwise.
#[derive(Debug, Default)]
pub(super) struct RoomCache(Mutex<HashMap<(String, bool), StoredSize>>);

impl RoomCache {
    fn get(&self, network: &str, live: bool) -> Option<StoredSize> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(network.to_string(), live)).copied()
    }

    fn set(&self, network: &str, live: bool, size: StoredSize) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert((network.to_string(), live), size);
    }

    /// Forgets `network`'s sizes (its record changed).
    pub(super) fn forget(&self, network: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(network.to_string(), false));
        map.remove(&(network.to_string(), true));
    }
}

impl NetworkRegistry {
    /// Every network's forwards (persistent and live definitions, each forward once), with the
    /// network's name.
    pub fn all_forwards(&self) -> Vec<(String, PortForward)> {
        let mut out: Vec<(String, PortForward)> = Vec::new();
        for (name, record) in self.read().iter() {
            let mut seen: HashSet<&PortForward> = HashSet::new();
            for def in [&record.live, &record.config].into_iter().flatten() {
                for f in &def.forwards {
                    if seen.insert(f) {
                        out.push((name.clone(), f.clone()));
                    }
                }
            }
        }
        out
    }

    /// The first forward of any network (live definitions first) for which `wanted` holds,
    /// with its network's name; nothing else is copied.
    pub fn find_forward(
        &self,
        wanted: impl Fn(&PortForward) -> bool,
    ) -> Option<(String, PortForward)> {
        self.read().iter().find_map(|(name, record)| {
            [&record.live, &record.config]
                .into_iter()
                .flatten()
                .find_map(|def| def.forwards.iter().find(|f| wanted(f)))
                .map(|f| (name.clone(), f.clone()))
        })
    }

    /// Runs `f` on the live definition of network `name` and, when `with_leases`, its DHCP
    /// leases now. Conflict when it is not active. Without leases, `f` runs on the index's
    /// record (no copy: what keeps a forward to an address flat); with them, on a copy, so
    /// that the lease look-up (which may read the store) holds no index lock, as
    /// [`NetworkRegistry::leases`] does.
    pub fn with_live<T>(
        &self,
        name: &str,
        with_leases: bool,
        f: impl FnOnce(&Network, &[DhcpLease]) -> T,
    ) -> Result<T> {
        if !with_leases {
            let index = self.read();
            let record = index.get(name).ok_or_else(|| not_found(name))?;
            let live = record.live.as_ref().ok_or_else(|| not_active(name))?;
            return Ok(f(live, &[]));
        }
        let live = self.live_definition(name)?;
        let leases = self.services.leases(&live).unwrap_or_default();
        Ok(f(&live, &leases))
    }

    /// Applies `op` to the forwards of network `id`: its persistent definition and its live
    /// one when it runs. When it changes neither, the error is `missing()`. Returns the
    /// network's name and whether it is active. The caller checked `op`'s forward itself and
    /// against every other forward.
    pub fn change_forwards(
        &self,
        id: &str,
        op: &ForwardOp,
        missing: &dyn Fn() -> Error,
    ) -> Result<(String, bool)> {
        self.with_network(id, |name| {
            let grown = self.check_change(name, op)?.ok_or_else(missing)?;
            self.store.append_forward_op(name, op)?;
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            // Still there: the network's lock is held, and only its holder removes it.
            let record = index.get_mut(name).ok_or_else(|| not_found(name))?;
            op.apply_to(record);
            for (live, size) in grown {
                self.forward_room.set(name, live, size);
            }
            Ok((name.to_string(), record.is_active()))
        })
    }

    /// Whether `op` changes a definition of `name` (`None`: none), and, for an addition, the
    /// sizes the definitions' stored forms grow to (by definition, `true` = live), refused
    /// when one would no longer be a document `net-define` accepts.
    fn check_change(&self, name: &str, op: &ForwardOp) -> Result<Option<Vec<(bool, StoredSize)>>> {
        let index = self.read();
        let record = find(&index, name)?.1;
        let defs = [(false, &record.config), (true, &record.live)];
        let defs = defs
            .iter()
            .filter_map(|(live, d)| d.as_ref().map(|d| (*live, d)));
        match op {
            ForwardOp::Add(fwd) => {
                let mut grown = Vec::new();
                for (live, def) in defs {
                    if let Some(size) = self.size_with(name, live, def, fwd)? {
                        grown.push((live, size));
                    }
                }
                // Every record has a definition, and an addition changes each.
                Ok(Some(grown))
            }
            ForwardOp::Remove {
                proto,
                port,
                listen,
            } => {
                let mut changes = false;
                for (_, def) in defs {
                    changes |= def.forwards.iter().any(|f| f.is_at(*proto, *port, *listen));
                }
                // A removal's size is not followed: the next addition measures again.
                self.forward_room.forget(name);
                Ok(changes.then(Vec::new))
            }
        }
    }

    /// The size `def`'s stored form grows to with `fwd` appended, checked against the input
    /// limits; `None` when it is not worth following (a definition without forwards yet,
    /// checked whole since it is small).
    fn size_with(
        &self,
        name: &str,
        live: bool,
        def: &Network,
        fwd: &PortForward,
    ) -> Result<Option<StoredSize>> {
        if def.forwards.is_empty() {
            let mut with = def.clone();
            with.forwards.push(fwd.clone());
            with.to_checked_xml()?;
            return Ok(None);
        }
        let before = match self.forward_room.get(name, live) {
            Some(size) => size,
            None => def.stored_size(),
        };
        let after = before.plus(fwd.stored_size());
        if !after.well_within_limits() {
            // Near a limit only the document itself can tell.
            let mut with = def.clone();
            with.forwards.push(fwd.clone());
            with.to_checked_xml()?;
        }
        Ok(Some(after))
    }
}
