//! DHCPv6 of running networks: the daemon's one [`Dhcp6Server`] (one socket for every
//! bridge), its leases kept durable through the same [`LeaseWriter`](super::LeaseWriter)
//! and store table as DHCPv4's, reported in the event feed, `net-dhcp-leases` and the DNS
//! server's guest names.
//!
//! Store keys: a network's DHCPv6 leases live in the lease table under the pseudo network
//! `<network>\tdhcp6` (network names cannot hold control characters, so it is no real
//! network's and no prefix of one), keyed by binding (DUID in hex and IAID): DHCPv4's reads
//! of `<network>\n…` never see them, and `net-undefine` deletes both.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use virtnet_api::{DhcpLease, EventKind};
use virtnet_dhcp6::{format_duid, Dhcp6Config, Lease6, Lease6Change, Lease6Sink};
use virtnet_dns::GuestName;
use virtnet_model::Network;

use super::{lock, now, Services, Shared, StoredLease};
use crate::error::Result;

/// The store's pseudo network holding `network`'s DHCPv6 leases.
pub(crate) fn store_key(network: &str) -> String {
    format!("{network}\tdhcp6")
}

/// The prefix length of the IPv6 `<ip>` DHCPv6 serves.
fn prefix6(net: &Network) -> u8 {
    Dhcp6Config::from_network(net).map_or(64, |c| c.prefix)
}

/// A DHCPv6 lease as the API shows it: virsh's `ipv6` row, the DUID in the client id column,
/// the MAC when the DUID or the client's link-local address carries one (else empty).
pub fn lease6_to_api(lease: &Lease6, bridge: &str, prefix: u8) -> DhcpLease {
    DhcpLease {
        iface: bridge.to_string(),
        expiry_time: lease.expires,
        kind: "ipv6".to_string(),
        mac: lease
            .mac
            .map(|m| virtnet_model::MacAddr(m).to_string())
            .unwrap_or_default(),
        ip_address: lease.ip.to_string(),
        prefix,
        hostname: lease.hostname.clone(),
        client_id: Some(format_duid(&lease.duid)),
        iaid: Some(lease.iaid),
    }
}

/// Told of every DHCPv6 lease change, by network: the lease and whether it exists
/// afterwards (granted or renewed: `true`; released, declined or expired: `false`), after
/// the store has it and before the client is answered: the ports' anti-spoofing follows the
/// guests' IPv6 addresses with it, as [`LeaseObserver`](super::LeaseObserver) for DHCPv4.
pub type Lease6Observer = Arc<dyn Fn(&str, &Lease6, bool) + Send + Sync>;

/// The DHCPv6 server's [`Lease6Sink`]: store first (the lease writer's group commit), then
/// the anti-spoofing observer, the event feed and DNS.
pub(super) struct Recorder6 {
    pub(super) shared: Arc<Shared>,
    pub(super) prefix: u8,
    /// Told of the changes once stored (see [`Lease6Observer`]).
    pub(super) observer: Option<Lease6Observer>,
}

/// The store writes of `changes`, keyed by binding.
fn writes6(changes: &[Lease6Change]) -> Vec<(String, Option<StoredLease>)> {
    changes
        .iter()
        .map(|c| {
            let l = c.lease();
            (l.key(), c.present().then(|| StoredLease::V6(l.clone())))
        })
        .collect()
}

impl Lease6Sink for Recorder6 {
    /// Durable through the lease writer's group commit before it returns.
    fn record(&self, network: &str, changes: &[Lease6Change]) -> std::io::Result<()> {
        let s = &self.shared;
        s.writer
            .write_stored(&store_key(network), writes6(changes))?;
        self.announce(network, changes);
        Ok(())
    }

    /// Extensions of bindings on their addresses: queued on the same lease writer (its next
    /// round commits them, in order with every other lease write) without waiting for the
    /// commit, so a known client's REPLY waits for no fsync. Why a lost extension is
    /// harmless: [`Lease6Sink::record_extensions`].
    fn record_extensions(&self, network: &str, changes: &[Lease6Change]) -> std::io::Result<()> {
        let s = &self.shared;
        s.writer
            .queue_stored(&store_key(network), writes6(changes))?;
        self.announce(network, changes);
        Ok(())
    }
}

impl Recorder6 {
    /// The observer, the event feed and the DNS names of recorded `changes`.
    fn announce(&self, network: &str, changes: &[Lease6Change]) {
        let s = &self.shared;
        let mut changed = false;
        for c in changes {
            if let Some(observe) = &self.observer {
                observe(network, c.lease(), c.present());
            }
            let kind = match c {
                Lease6Change::Granted(_) => EventKind::LeaseGranted,
                Lease6Change::Renewed(_) => EventKind::LeaseRenewed,
                Lease6Change::Released(_) => EventKind::LeaseReleased,
                Lease6Change::Expired(_) => EventKind::LeaseExpired,
            };
            s.events.push(
                network,
                kind,
                lease6_to_api(c.lease(), &s.bridge, self.prefix),
            );
            changed |= note_name6(s, c.lease(), c.present());
        }
        // The DNS zone is rebuilt only when a name came or went: a batch of renewals of
        // unnamed (or unchanged) leases costs DNS nothing.
        if changed {
            s.publish_names();
        }
    }
}

/// Adds or removes the AAAA/PTR name of a DHCPv6 lease; whether the names changed.
pub(super) fn note_name6(s: &Shared, lease: &Lease6, present: bool) -> bool {
    let mut names = lock(&s.names6);
    match (&lease.hostname, present) {
        (Some(name), true) => {
            let new = GuestName {
                name: name.clone(),
                ip: IpAddr::V6(lease.ip),
            };
            names.insert(lease.key(), new.clone()) != Some(new)
        }
        _ => names.remove(&lease.key()).is_some(),
    }
}

impl Services {
    /// Sets who is told of DHCPv6 lease changes (once, before any network starts).
    pub fn observe_leases6(&self, observer: Lease6Observer) {
        let _ = self.observer6.set(observer);
    }

    /// The stored, unexpired DHCPv6 leases of `network`.
    fn stored_leases6(&self, network: &str) -> Result<Vec<Lease6>> {
        let now = now();
        Ok(self
            .store
            .leases::<Lease6>(&store_key(network))?
            .into_iter()
            .filter(|l| !l.expired(now))
            .collect())
    }

    /// Starts DHCPv6 on the network's bridge when it has an IPv6 `<dhcp>`; the guests'
    /// names of its stored leases go to DNS at once.
    pub(super) fn start_dhcp6(&self, net: &Network, shared: &Arc<Shared>) -> Result<()> {
        let Some(config) = Dhcp6Config::from_network(net) else {
            return Ok(());
        };
        let leases = self.stored_leases6(&net.name)?;
        for l in &leases {
            note_name6(shared, l, true);
        }
        shared.publish_names();
        let sink = Arc::new(Recorder6 {
            shared: shared.clone(),
            prefix: config.prefix,
            observer: self.observer6.get().cloned(),
        });
        self.dhcp6
            .serve(&shared.bridge, config, leases, sink)
            .map_err(|e| super::service_error(&net.name, "DHCPv6", &e))
    }

    /// `net-update` of a running network: the new ranges and hosts apply at once, leases
    /// stay; DHCPv6 starts or stops when the definition gained or lost it.
    pub(super) fn reconfigure_dhcp6(&self, net: &Network, shared: &Arc<Shared>) -> Result<()> {
        match Dhcp6Config::from_network(net) {
            Some(config) => {
                if !self.dhcp6.reconfigure(&shared.bridge, config) {
                    self.start_dhcp6(net, shared)?;
                }
            }
            None => self.dhcp6.withdraw(&shared.bridge),
        }
        Ok(())
    }

    /// The network's DHCPv6 leases for the API: the server's when it runs, else the store's.
    pub(super) fn leases6(&self, net: &Network) -> Result<Vec<DhcpLease>> {
        let bridge = net.bridge_name().unwrap_or_default();
        let leases = match self.dhcp6.leases(bridge) {
            Some(l) => l,
            None if Dhcp6Config::from_network(net).is_some() => self.stored_leases6(&net.name)?,
            None => return Ok(Vec::new()),
        };
        let prefix = prefix6(net);
        let mut out: Vec<DhcpLease> = leases
            .iter()
            .map(|l| lease6_to_api(l, bridge, prefix))
            .collect();
        out.sort_by_key(|l| l.ip_address.parse::<Ipv6Addr>().ok());
        Ok(out)
    }
}
