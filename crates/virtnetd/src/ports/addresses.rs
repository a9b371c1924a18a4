//! `domifaddr`: a guest's addresses from virtnet's DHCP leases or the kernel's neighbour
//! table.

use std::collections::BTreeMap;
use std::net::IpAddr;

use virtnet_api::{AddressSource, DhcpLease, InterfaceAddress};
use virtnet_model::InterfaceSource;

use super::{format_mac, Ports};
use crate::error::{Error, Kind, Result};
use crate::sync::lock;

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
