//! The address table of one network: leases, outstanding offers, declined addresses, and how
//! many dynamic addresses each bridge port holds. No protocol here, no I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::lease::Lease;
use crate::ratelimit::PortId;

/// How a client is recognised: by its client identifier when it sends one, else by MAC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    /// Option 61.
    Id(Vec<u8>),
    /// `chaddr`.
    Mac([u8; 6]),
}

impl ClientKey {
    /// The key a stored lease answers to.
    pub(crate) fn of_lease(l: &Lease) -> ClientKey {
        match &l.client_id {
            Some(id) => ClientKey::Id(id.clone()),
            None => ClientKey::Mac(l.mac),
        }
    }
}

#[derive(Clone, Debug)]
struct Held {
    lease: Lease,
    /// The port this lease counts against; `None` for static hosts and for leases loaded at
    /// start whose port is not known until the client comes back.
    counted: Option<PortId>,
}

/// An address reserved for a client between OFFER and REQUEST.
#[derive(Clone, Debug)]
pub(crate) struct Offer {
    pub(crate) ip: Ipv4Addr,
    pub(crate) expires: u64,
    /// The port it counts against (`None`: static host, or the client holds a lease already).
    pub(crate) counted: Option<PortId>,
}

/// The old value of one entry, to put back when a batch is rolled back.
#[derive(Debug)]
enum Undo {
    Lease(Ipv4Addr, Option<Held>),
    ByClient(ClientKey, Option<Ipv4Addr>),
    Offer(ClientKey, Option<Offer>),
    Offered(Ipv4Addr, Option<ClientKey>),
    Quarantine(Ipv4Addr, Option<u64>),
    PerPort(PortId, Option<usize>),
}

/// Sets `map[k]` to `v` (removes it for `None`); the old value.
fn put<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: Option<V>) -> Option<V> {
    match v {
        Some(v) => map.insert(k, v),
        None => map.remove(&k),
    }
}

/// Leases, offers and quarantine, with the per-port counts kept in step.
///
/// Every change goes through the `set_*` methods, which, while a journal is open
/// ([`Pool::begin`]), note the old value, so that [`Pool::rollback`] puts the table back
/// exactly as it was, counts included: a batch whose lease changes could not be stored leaves
/// no trace.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    leases: HashMap<Ipv4Addr, Held>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    offers: HashMap<ClientKey, Offer>,
    offered: HashMap<Ipv4Addr, ClientKey>,
    quarantine: HashMap<Ipv4Addr, u64>,
    per_port: HashMap<PortId, usize>,
    journal: Option<Vec<Undo>>,
}

impl Pool {
    /// Starts noting changes (a batch begins).
    pub(crate) fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Stops noting changes and keeps them (the batch is stored).
    pub(crate) fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes every change since [`Pool::begin`] and stops noting.
    pub(crate) fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Lease(k, v) => drop(put(&mut self.leases, k, v)),
                Undo::ByClient(k, v) => drop(put(&mut self.by_client, k, v)),
                Undo::Offer(k, v) => drop(put(&mut self.offers, k, v)),
                Undo::Offered(k, v) => drop(put(&mut self.offered, k, v)),
                Undo::Quarantine(k, v) => drop(put(&mut self.quarantine, k, v)),
                Undo::PerPort(k, v) => drop(put(&mut self.per_port, k, v)),
            }
        }
    }

    fn set_lease(&mut self, ip: Ipv4Addr, v: Option<Held>) -> Option<Held> {
        let old = put(&mut self.leases, ip, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Lease(ip, old.clone()));
        }
        old
    }

    fn set_by_client(&mut self, k: ClientKey, v: Option<Ipv4Addr>) {
        match &mut self.journal {
            Some(j) => {
                let old = put(&mut self.by_client, k.clone(), v);
                j.push(Undo::ByClient(k, old));
            }
            None => drop(put(&mut self.by_client, k, v)),
        }
    }

    fn set_offer(&mut self, k: ClientKey, v: Option<Offer>) -> Option<Offer> {
        match &mut self.journal {
            Some(j) => {
                let old = put(&mut self.offers, k.clone(), v);
                j.push(Undo::Offer(k, old.clone()));
                old
            }
            None => put(&mut self.offers, k, v),
        }
    }

    fn set_offered(&mut self, ip: Ipv4Addr, v: Option<ClientKey>) {
        let old = put(&mut self.offered, ip, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Offered(ip, old));
        }
    }

    fn set_quarantine(&mut self, ip: Ipv4Addr, v: Option<u64>) {
        let old = put(&mut self.quarantine, ip, v);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Quarantine(ip, old));
        }
    }

    fn count(&mut self, port: Option<PortId>, up: bool) {
        let Some(port) = port else { return };
        let old = self.per_port.get(&port).copied();
        let n = old.unwrap_or(0);
        let n = if up { n + 1 } else { n.saturating_sub(1) };
        put(&mut self.per_port, port, (n > 0).then_some(n));
        if let Some(j) = &mut self.journal {
            j.push(Undo::PerPort(port, old));
        }
    }

    /// Dynamic leases and offers held through `port`.
    pub(crate) fn held(&self, port: PortId) -> usize {
        self.per_port.get(&port).copied().unwrap_or(0)
    }

    /// Inserts (or replaces) a lease; the client's lease on another address, if any, goes.
    pub(crate) fn insert_lease(&mut self, lease: Lease, counted: Option<PortId>) {
        let key = ClientKey::of_lease(&lease);
        if let Some(old_ip) = self.by_client.get(&key).copied() {
            if old_ip != lease.ip {
                self.remove_lease(old_ip);
            }
        }
        self.remove_lease(lease.ip);
        self.count(counted, true);
        self.set_by_client(key, Some(lease.ip));
        self.set_lease(lease.ip, Some(Held { lease, counted }));
    }

    /// Removes the lease on `ip`.
    pub(crate) fn remove_lease(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let held = self.set_lease(ip, None)?;
        let key = ClientKey::of_lease(&held.lease);
        if self.by_client.get(&key) == Some(&ip) {
            self.set_by_client(key, None);
        }
        self.count(held.counted, false);
        Some(held.lease)
    }

    /// The lease on `ip` (expired or not).
    pub(crate) fn lease_at(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip).map(|h| &h.lease)
    }

    /// The client's lease (expired or not).
    pub(crate) fn lease_of(&self, key: &ClientKey) -> Option<&Lease> {
        self.by_client
            .get(key)
            .and_then(|ip| self.leases.get(ip))
            .map(|h| &h.lease)
    }

    /// Every lease.
    pub(crate) fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values().map(|h| &h.lease)
    }

    /// Reserves `offer.ip` for `key`, replacing the client's previous offer.
    pub(crate) fn insert_offer(&mut self, key: ClientKey, offer: Offer) {
        self.remove_offer(&key);
        if let Some(other) = self.offered.get(&offer.ip).cloned() {
            self.remove_offer(&other);
        }
        self.count(offer.counted, true);
        self.set_offered(offer.ip, Some(key.clone()));
        self.set_offer(key, Some(offer));
    }

    /// Drops the client's offer.
    pub(crate) fn remove_offer(&mut self, key: &ClientKey) {
        if !self.offers.contains_key(key) {
            return;
        }
        if let Some(o) = self.set_offer(key.clone(), None) {
            if self.offered.get(&o.ip) == Some(key) {
                self.set_offered(o.ip, None);
            }
            self.count(o.counted, false);
        }
    }

    /// The client's offer, if still valid at `now`.
    pub(crate) fn offer_of(&self, key: &ClientKey, now: u64) -> Option<&Offer> {
        self.offers.get(key).filter(|o| o.expires > now)
    }

    /// Who holds `ip` at `now`: an unexpired lease or offer.
    pub(crate) fn owner_at(&self, ip: Ipv4Addr, now: u64) -> Option<ClientKey> {
        if let Some(h) = self.leases.get(&ip) {
            if !h.lease.expired(now) {
                return Some(ClientKey::of_lease(&h.lease));
            }
        }
        let key = self.offered.get(&ip)?;
        self.offers
            .get(key)
            .filter(|o| o.expires > now)
            .map(|_| key.clone())
    }

    /// Keeps `ip` from being handed out until `until`.
    pub(crate) fn quarantine(&mut self, ip: Ipv4Addr, until: u64) {
        self.set_quarantine(ip, Some(until));
    }

    /// Whether `ip` is quarantined at `now`.
    pub(crate) fn quarantined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.quarantine.get(&ip).is_some_and(|&u| u > now)
    }

    /// Removes offers that ran out.
    pub(crate) fn drop_expired_offers(&mut self, now: u64) {
        let stale: Vec<ClientKey> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.remove_offer(&k);
        }
    }

    /// Whether some lease has expired (what only [`Pool::sweep`] removes).
    pub(crate) fn any_lease_expired(&self, now: u64) -> bool {
        self.leases.values().any(|h| h.lease.expired(now))
    }

    /// Removes expired leases (returned), offers and quarantine entries.
    pub(crate) fn sweep(&mut self, now: u64) -> Vec<Lease> {
        let expired: Vec<Ipv4Addr> = self
            .leases
            .iter()
            .filter(|(_, h)| h.lease.expired(now))
            .map(|(ip, _)| *ip)
            .collect();
        let out = expired
            .into_iter()
            .filter_map(|ip| self.remove_lease(ip))
            .collect();
        self.drop_expired_offers(now);
        let over: Vec<Ipv4Addr> = self
            .quarantine
            .iter()
            .filter(|(_, &u)| u <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in over {
            self.set_quarantine(ip, None);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(mac: u8, ip: u8, expires: Option<u64>) -> Lease {
        Lease {
            mac: [2, 0, 0, 0, 0, mac],
            client_id: None,
            ip: Ipv4Addr::new(10, 0, 0, ip),
            hostname: None,
            expires,
        }
    }

    #[test]
    fn counts_follow_leases_and_offers() {
        let mut p = Pool::default();
        let port = PortId::Port(7);
        p.insert_lease(lease(1, 10, Some(100)), Some(port));
        p.insert_offer(
            ClientKey::Mac([2, 0, 0, 0, 0, 2]),
            Offer {
                ip: Ipv4Addr::new(10, 0, 0, 11),
                expires: 50,
                counted: Some(port),
            },
        );
        assert_eq!(p.held(port), 2);
        // The same client moving to another address keeps one lease.
        p.insert_lease(lease(1, 12, Some(100)), Some(port));
        assert_eq!(p.held(port), 2);
        assert!(p.lease_at(Ipv4Addr::new(10, 0, 0, 10)).is_none());
        assert_eq!(
            p.owner_at(Ipv4Addr::new(10, 0, 0, 11), 10),
            Some(ClientKey::Mac([2, 0, 0, 0, 0, 2]))
        );
        assert_eq!(p.owner_at(Ipv4Addr::new(10, 0, 0, 11), 60), None);
        let gone = p.sweep(200);
        assert_eq!(gone.len(), 1);
        assert_eq!(p.held(port), 0);
    }
}
