//! Refusing networks whose subnets are already used on the host.
//!
//! libvirt refuses to start a network whose subnet is already routed on the host ("Network is
//! already in use by interface eth0"): the host would otherwise route one subnet two ways and
//! guests could capture the LAN's traffic. virtnet checks routes (except default routes) and
//! addresses of every other interface for any overlap, not only exact matches.

use std::net::IpAddr;

use crate::{NetworkPlan, Subnet};

/// A route observed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination network.
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// The outgoing interface's name, when the route has one.
    pub dev: Option<String>,
}

/// An address observed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The interface that holds it.
    pub dev: String,
}

/// Why a network cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The interface already using the subnet.
    pub dev: String,
    /// The network's subnet.
    pub subnet: Subnet,
    /// What on the host collides with it.
    pub used_by: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Network is already in use by interface {} ({} overlaps {})",
            self.dev, self.used_by, self.subnet
        )
    }
}

/// The first collision between the plan's subnets and the host's routes and addresses, ignoring
/// the network's own bridge (present when a running network is re-checked).
pub fn find_conflict(
    plan: &NetworkPlan,
    routes: &[HostRoute],
    addresses: &[HostAddress],
) -> Option<Conflict> {
    let own = plan.bridge.name.as_str();
    for subnet in plan.subnets() {
        for r in routes {
            let dev = r.dev.as_deref().unwrap_or("(none)");
            if r.prefix == 0 || dev == own {
                continue;
            }
            let theirs = Subnet::of(r.destination, r.prefix);
            if theirs.overlaps(&subnet) {
                return Some(Conflict {
                    dev: dev.to_string(),
                    subnet,
                    used_by: format!("route {theirs}"),
                });
            }
        }
        for a in addresses {
            if a.dev == own || a.address.is_loopback() || is_link_local(a.address) {
                continue;
            }
            if Subnet::of(a.address, a.prefix).overlaps(&subnet) {
                return Some(Conflict {
                    dev: a.dev.clone(),
                    subnet,
                    used_by: format!("address {}/{}", a.address, a.prefix),
                });
            }
        }
    }
    None
}

fn is_link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}
