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
    /// The outgoing interface's index, when the route has one.
    pub ifindex: Option<u32>,
}

/// An address observed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The index of the interface that holds it.
    pub ifindex: u32,
}

/// Why a network cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The index of the interface already using the subnet, if known.
    pub ifindex: Option<u32>,
    /// The network's subnet.
    pub subnet: Subnet,
    /// What on the host collides with it.
    pub used_by: String,
}

impl Conflict {
    /// libvirt's message, with the interface's name (`dev`) and what overlaps.
    pub fn describe(&self, dev: &str) -> String {
        format!(
            "Network is already in use by interface {dev} ({} overlaps {})",
            self.used_by, self.subnet
        )
    }
}

/// The first collision between the plan's subnets and the host's routes and addresses, ignoring
/// default routes and the interface `own` (the network's own bridge, present when a running
/// network is re-checked). Interfaces are given by index so that the caller need not list the
/// host's links, which costs more than everything else as bridges accumulate.
pub fn find_conflict(
    plan: &NetworkPlan,
    own: Option<u32>,
    routes: &[HostRoute],
    addresses: &[HostAddress],
) -> Option<Conflict> {
    for subnet in plan.subnets() {
        for r in routes {
            if r.prefix == 0 || (own.is_some() && r.ifindex == own) {
                continue;
            }
            let theirs = Subnet::of(r.destination, r.prefix);
            if theirs.overlaps(&subnet) {
                return Some(Conflict {
                    ifindex: r.ifindex,
                    subnet,
                    used_by: format!("route {theirs}"),
                });
            }
        }
        for a in addresses {
            if Some(a.ifindex) == own || a.address.is_loopback() || is_link_local(a.address) {
                continue;
            }
            if Subnet::of(a.address, a.prefix).overlaps(&subnet) {
                return Some(Conflict {
                    ifindex: Some(a.ifindex),
                    subnet,
                    used_by: format!("address {}/{}", a.address, a.prefix),
                });
            }
        }
    }
    None
}

/// True for IPv4 169.254.0.0/16 and IPv6 fe80::/10 addresses, which every link has and which
/// never collide with a network's subnet.
pub fn is_link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}
