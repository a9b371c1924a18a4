//! `domifaddr`: a guest's addresses from virtnet's DHCP leases or the kernel's neighbour
//! table; and the DHCPv6 leases a port's anti-spoofing lets it send from.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use virtnet_api::{AddressSource, DhcpLease, InterfaceAddress};
use virtnet_dhcp6::Lease6;
use virtnet_model::{InterfaceSource, MacAddr, Network};
use virtnet_plan::spoof::dhcp6_managed;

use super::{format_mac, Ports};
use crate::error::{Error, Kind, Result};
use crate::services::lease6_store_key;
use crate::sync::lock;
use virtnet_sockets::iface::index_of as if_index;

impl Ports {
    /// `GET /v1/domains/{domain}/addresses` (`domifaddr`): the guest's addresses from
    /// virtnet's DHCP leases, or from the kernel's neighbour table (which also knows guests on
    /// bridged networks, where no virtnet DHCP runs).
    /// `leases` gives the leases of a network for one MAC (the registry's answer).
    pub fn domain_addresses(
        &self,
        domain: &str,
        source: AddressSource,
        leases: impl Fn(&str, &str) -> Result<Vec<DhcpLease>>,
    ) -> Result<Vec<InterfaceAddress>> {
        let ports = self.list(Some(domain), false);
        if ports.is_empty() {
            return Err(Error::not_found(Kind::Domain, domain));
        }
        let mut out = Vec::new();
        match source {
            AddressSource::Lease => {
                for p in &ports {
                    let InterfaceSource::Network(net) = &p.source else {
                        continue;
                    };
                    let Ok(leases) = leases(net, &p.mac) else {
                        continue;
                    };
                    out.extend(leases.into_iter().map(|l| InterfaceAddress {
                        name: p.name.clone(),
                        mac: p.mac.clone(),
                        protocol: l.kind,
                        address: l.ip_address,
                        prefix: l.prefix,
                    }));
                }
            }
            AddressSource::Arp => {
                let mut kernel = lock(&self.kernel);
                let neighbours = kernel.neighbours()?;
                let mut bridges: BTreeMap<String, Option<u32>> = BTreeMap::new();
                // A macvtap port has no bridge: the host does not see its guest's traffic.
                for p in ports.iter().filter(|p| !p.bridge.is_empty()) {
                    let index = match bridges.get(&p.bridge) {
                        Some(i) => *i,
                        None => {
                            let i = kernel.link_index(&p.bridge)?;
                            bridges.insert(p.bridge.clone(), i);
                            i
                        }
                    };
                    let mut found: Vec<&virtnet_host::Neighbour> = neighbours
                        .iter()
                        .filter(|n| Some(n.ifindex) == index && format_mac(n.mac) == p.mac)
                        .collect();
                    found.sort_by_key(|n| n.ip);
                    out.extend(found.into_iter().map(|n| InterfaceAddress {
                        name: p.name.clone(),
                        mac: p.mac.clone(),
                        protocol: match n.ip {
                            IpAddr::V4(_) => "ipv4".into(),
                            IpAddr::V6(_) => "ipv6".into(),
                        },
                        address: n.ip.to_string(),
                        prefix: 0,
                    }));
                }
            }
        }
        Ok(out)
    }
}

/// Networks' DHCPv6 leases read once for a batch of guards (the start-up reconcile guards
/// every port at once: one read per network, not one per port).
pub(super) type Leases6Cache = BTreeMap<String, Vec<Lease6>>;

impl Ports {
    /// The addresses of `net`'s unexpired DHCPv6 leases that belong to tap `tap` of the guest
    /// with MAC `mac`: those whose client's message came in on that tap, and those whose port
    /// the capture could not name with that MAC (`Antispoof::lease6_changed` ties them the
    /// same way). None without a DHCPv6 subnet: the store is not read then. With `cache`, a
    /// network's leases are read from the store once for the whole batch.
    pub(super) fn leases6_of(
        &self,
        net: &Network,
        tap: &str,
        mac: MacAddr,
        cache: Option<&mut Leases6Cache>,
    ) -> Vec<Ipv6Addr> {
        if !net.ips.iter().any(dhcp6_managed) {
            return Vec::new();
        }
        let mut read = || match self.store.leases::<Lease6>(&lease6_store_key(&net.name)) {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(network = %net.name, %tap, error = %e,
                    "cannot read DHCPv6 leases; the port may send from none of them");
                Vec::new()
            }
        };
        let owned;
        let leases: &[Lease6] = match cache {
            Some(c) => c.entry(net.name.clone()).or_insert_with(&mut read),
            None => {
                owned = read();
                &owned
            }
        };
        let index = if_index(tap);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        leases
            .iter()
            .filter(|l| !l.expired(now))
            .filter(|l| match l.port {
                Some(p) => Some(p) == index,
                None => l.mac == Some(mac.0),
            })
            .map(|l| l.ip)
            .collect()
    }
}
