//! The binding table of one network: leases by address and by binding, declined addresses,
//! and how many dynamic bindings each source address holds. No protocol, no I/O.
//!
//! Every change goes through the `set_*` methods, which, while a journal is open
//! ([`Table::begin`]), note the old value, so that [`Table::rollback`] puts the table back
//! exactly as it was: a batch whose lease changes could not be stored leaves no trace.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv6Addr;

use crate::lease::Lease6;

/// A client's binding: its DUID and the IA's id.
pub(crate) type Binding = (Vec<u8>, u32);

/// What a dynamic binding is counted against: the bridge port its request came in on, or
/// its source address when that port is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Charge {
    /// A bridge port (interface index).
    Port(u32),
    /// A source address (no port known for the datagram).
    Source(Ipv6Addr),
}

/// The old value of one entry, to put back on rollback.
#[derive(Debug)]
enum Undo {
    Lease(Ipv6Addr, Option<Lease6>),
    Binding(Binding, Option<Ipv6Addr>),
    Counted(Binding, Option<Charge>),
    PerSource(Charge, Option<usize>),
    Quarantine(Ipv6Addr, Option<u64>),
}

/// Sets `map[k]` to `v` (removes it for `None`); the old value.
fn put<K: Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: Option<V>) -> Option<V> {
    match v {
        Some(v) => map.insert(k, v),
        None => map.remove(&k),
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Table {
    leases: HashMap<Ipv6Addr, Lease6>,
    by_binding: HashMap<Binding, Ipv6Addr>,
    quarantine: HashMap<Ipv6Addr, u64>,
    /// What each dynamic binding was counted against (bindings loaded from the store are
    /// not counted until their client comes back).
    counted: HashMap<Binding, Charge>,
    per_source: HashMap<Charge, usize>,
    journal: Option<Vec<Undo>>,
}

impl Table {
    /// Starts noting changes (a batch begins).
    pub(crate) fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the changes since [`Table::begin`].
    pub(crate) fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every change since [`Table::begin`].
    pub(crate) fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Lease(k, v) => drop(put(&mut self.leases, k, v)),
                Undo::Binding(k, v) => drop(put(&mut self.by_binding, k, v)),
                Undo::Counted(k, v) => drop(put(&mut self.counted, k, v)),
                Undo::PerSource(k, v) => drop(put(&mut self.per_source, k, v)),
                Undo::Quarantine(k, v) => drop(put(&mut self.quarantine, k, v)),
            }
        }
    }

    fn set_lease(&mut self, ip: Ipv6Addr, v: Option<Lease6>) -> Option<Lease6> {
        let old = put(&mut self.leases, ip, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Lease(ip, old.clone()));
        }
        old
    }

    fn set_binding(&mut self, b: Binding, v: Option<Ipv6Addr>) {
        let old = put(&mut self.by_binding, b.clone(), v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Binding(b, old));
        }
    }

    fn set_counted(&mut self, b: Binding, v: Option<Charge>) -> Option<Charge> {
        let old = put(&mut self.counted, b.clone(), v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Counted(b, old));
        }
        old
    }

    fn set_per_source(&mut self, s: Charge, v: Option<usize>) {
        let old = put(&mut self.per_source, s, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::PerSource(s, old));
        }
    }

    fn set_quarantine(&mut self, ip: Ipv6Addr, v: Option<u64>) {
        let old = put(&mut self.quarantine, ip, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Quarantine(ip, old));
        }
    }

    /// Inserts (or replaces) a lease; its binding's lease on another address goes, and so
    /// does another binding's lease on this address.
    pub(crate) fn insert(&mut self, lease: Lease6) {
        let binding = (lease.duid.clone(), lease.iaid);
        if let Some(old) = self.by_binding.get(&binding).copied() {
            if old != lease.ip {
                self.set_lease(old, None);
            }
        }
        if let Some(prev) = self.leases.get(&lease.ip) {
            let prev_binding = (prev.duid.clone(), prev.iaid);
            if prev_binding != binding {
                self.set_binding(prev_binding.clone(), None);
                self.uncount(&prev_binding);
            }
        }
        self.set_binding(binding, Some(lease.ip));
        self.set_lease(lease.ip, Some(lease));
    }

    /// Removes the lease on `ip`.
    pub(crate) fn remove(&mut self, ip: Ipv6Addr) -> Option<Lease6> {
        let l = self.set_lease(ip, None)?;
        let binding = (l.duid.clone(), l.iaid);
        if self.by_binding.get(&binding) == Some(&ip) {
            self.set_binding(binding.clone(), None);
            self.uncount(&binding);
        }
        Some(l)
    }

    /// Counts a dynamic binding against the port (or source) it was granted through (once).
    pub(crate) fn count(&mut self, binding: Binding, source: Charge) {
        if self.counted.contains_key(&binding) {
            return;
        }
        self.set_counted(binding, Some(source));
        let n = self.per_source.get(&source).copied().unwrap_or(0);
        self.set_per_source(source, Some(n + 1));
    }

    fn uncount(&mut self, binding: &Binding) {
        let Some(source) = self.set_counted(binding.clone(), None) else {
            return;
        };
        let n = self.per_source.get(&source).copied().unwrap_or(0);
        self.set_per_source(source, (n > 1).then(|| n - 1));
    }

    /// Dynamic bindings held through `source`.
    pub(crate) fn held_by(&self, source: Charge) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    /// The lease on `ip` (expired or not).
    pub(crate) fn lease_at(&self, ip: Ipv6Addr) -> Option<&Lease6> {
        self.leases.get(&ip)
    }

    /// The address of `binding`'s lease.
    pub(crate) fn address_of(&self, binding: &Binding) -> Option<Ipv6Addr> {
        self.by_binding.get(binding).copied()
    }

    /// Every lease.
    pub(crate) fn leases(&self) -> impl Iterator<Item = &Lease6> {
        self.leases.values()
    }

    /// Keeps `ip` from being handed out until `until`.
    pub(crate) fn quarantine(&mut self, ip: Ipv6Addr, until: u64) {
        self.set_quarantine(ip, Some(until));
    }

    /// Whether `ip` is quarantined at `now`.
    pub(crate) fn quarantined(&self, ip: Ipv6Addr, now: u64) -> bool {
        self.quarantine.get(&ip).is_some_and(|&u| u > now)
    }

    /// Forgets quarantine that ran out.
    pub(crate) fn sweep_quarantine(&mut self, now: u64) {
        let over: Vec<Ipv6Addr> = self
            .quarantine
            .iter()
            .filter(|(_, &u)| u <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in over {
            self.set_quarantine(ip, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(duid: u8, ip: &str) -> Lease6 {
        Lease6 {
            duid: vec![0, 4, duid],
            iaid: 1,
            ip: ip.parse().expect("addr"),
            mac: None,
            port: None,
            hostname: None,
            expires: None,
        }
    }

    #[test]
    fn a_rollback_restores_leases_bindings_and_counts() {
        let mut t = Table::default();
        let src = Charge::Source("fe80::1".parse().expect("addr"));
        t.insert(lease(1, "2001:db8::10"));
        t.count((vec![0, 4, 1], 1), src);
        t.begin();
        // The binding moves, another client takes its old address, one is released.
        t.insert(lease(1, "2001:db8::11"));
        t.insert(lease(2, "2001:db8::10"));
        t.count((vec![0, 4, 2], 1), src);
        t.remove("2001:db8::11".parse().expect("addr"));
        t.quarantine("2001:db8::11".parse().expect("addr"), 99);
        assert_eq!(t.held_by(src), 1);
        t.rollback();
        assert_eq!(t.leases().count(), 1);
        assert_eq!(
            t.address_of(&(vec![0, 4, 1], 1)),
            Some("2001:db8::10".parse().expect("addr"))
        );
        assert_eq!(t.address_of(&(vec![0, 4, 2], 1)), None);
        assert_eq!(t.held_by(src), 1);
        assert!(!t.quarantined("2001:db8::11".parse().expect("addr"), 0));
    }
}
