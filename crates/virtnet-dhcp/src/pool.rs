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

/// Leases, offers and quarantine, with the per-port counts kept in step.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    leases: HashMap<Ipv4Addr, Held>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    offers: HashMap<ClientKey, Offer>,
    offered: HashMap<Ipv4Addr, ClientKey>,
    quarantine: HashMap<Ipv4Addr, u64>,
    per_port: HashMap<PortId, usize>,
}

impl Pool {
    fn count(&mut self, port: Option<PortId>, up: bool) {
        let Some(port) = port else { return };
        let n = self.per_port.entry(port).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_port.remove(&port);
            }
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
        self.by_client.insert(key, lease.ip);
        self.leases.insert(lease.ip, Held { lease, counted });
    }

    /// Removes the lease on `ip`.
    pub(crate) fn remove_lease(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let held = self.leases.remove(&ip)?;
        let key = ClientKey::of_lease(&held.lease);
        if self.by_client.get(&key) == Some(&ip) {
            self.by_client.remove(&key);
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
        self.offered.insert(offer.ip, key.clone());
        self.offers.insert(key, offer);
    }

    /// Drops the client's offer.
    pub(crate) fn remove_offer(&mut self, key: &ClientKey) {
        if let Some(o) = self.offers.remove(key) {
            if self.offered.get(&o.ip) == Some(key) {
                self.offered.remove(&o.ip);
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
        self.quarantine.insert(ip, until);
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
        self.quarantine.retain(|_, &mut u| u > now);
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
