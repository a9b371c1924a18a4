//! A NIC's configuration as one value, and putting a NIC back to such a value.
//!
//! [`NicSnapshot::take`] records a link's addresses (every attribute: flags, label,
//! lifetimes), the routes through it that would move with it, its MTU, MAC and up state;
//! [`restore`] makes the link look like a snapshot again, taking it out of the bridge it was
//! moved behind and deleting that bridge. virtnetd's `iface-bridge` stores the snapshot
//! before it changes anything and restores it to roll back or to unbridge; which bridge is
//! the one to take apart, and when, is its decision.

use serde::{Deserialize, Serialize};

use crate::error::HostError;
use crate::netlink::{
    AddressEntry, Link, Netlink, PortSettings, RouteEntry, RTPROT_KERNEL, RT_TABLE_LOCAL,
};

/// What a NIC looked like, or must look like again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSnapshot {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Its addresses (IPv6 link-local ones left out: the kernel makes them per link), in the
    /// kernel's order.
    pub addresses: Vec<AddressEntry>,
    /// The routes through it.
    pub routes: Vec<RouteEntry>,
}

/// A snapshot or a restore that failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The NIC to restore no longer exists.
    #[error("interface '{0}' is gone; cannot restore it")]
    NicGone(String),
    /// A step was refused by the kernel.
    #[error("{step}: {source}")]
    Step {
        /// What was being done (`"list addresses"`, `"release the NIC"` …).
        step: &'static str,
        /// The kernel's answer.
        #[source]
        source: HostError,
    },
}

/// Result alias of this module.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

fn step(step: &'static str) -> impl FnOnce(HostError) -> SnapshotError {
    move |source| SnapshotError::Step { step, source }
}

impl NicSnapshot {
    /// The current configuration of `link`. Also returns the multipath routes of the main
    /// dump: a snapshot cannot move them, so they are left as they are (the caller may say
    /// so).
    pub fn take(nl: &mut Netlink, link: &Link) -> Result<(NicSnapshot, Vec<RouteEntry>)> {
        let addresses = nl.address_entries().map_err(step("list addresses"))?;
        let routes = nl.route_entries().map_err(step("list routes"))?;
        let multipath = routes.iter().filter(|r| r.multipath).cloned().collect();
        Ok((NicSnapshot::of(link, &addresses, &routes), multipath))
    }

    /// The snapshot of `link` given the host's addresses and routes.
    pub fn of(link: &Link, addresses: &[AddressEntry], routes: &[RouteEntry]) -> NicSnapshot {
        NicSnapshot {
            name: link.name.clone(),
            index: link.index,
            mac: link.mac,
            mtu: link.mtu,
            up: link.up,
            addresses: addresses
                .iter()
                .filter(|a| a.ifindex == link.index && !a.is_ipv6_link_local())
                .cloned()
                .collect(),
            routes: routes_through(routes, link.index),
        }
    }
}

/// The routes of `index` that move with the NIC: not the local table, not the kernel's
/// prefix routes (they follow the addresses), not cached clones.
pub fn routes_through(routes: &[RouteEntry], index: u32) -> Vec<RouteEntry> {
    routes
        .iter()
        .filter(|r| r.oif == Some(index))
        .filter(|r| r.table != RT_TABLE_LOCAL && r.protocol != RTPROT_KERNEL)
        .cloned()
        .collect()
}

/// Same address and prefix (lifetimes and flags aside).
pub fn same_address(a: &AddressEntry, b: &AddressEntry) -> bool {
    a.local == b.local && a.prefix_len == b.prefix_len && a.peer == b.peer
}

/// Same route (output interface aside).
pub fn same_route(a: &RouteEntry, b: &RouteEntry) -> bool {
    a.dest == b.dest
        && a.prefix == b.prefix
        && a.table == b.table
        && a.gateway == b.gateway
        && a.metric == b.metric
        && a.tos == b.tos
        && a.source == b.source
}

/// `Ok` when `r` succeeded or failed only because the object exists already.
pub fn ok_if_exists(r: Result<(), HostError>) -> Result<(), HostError> {
    match r {
        Err(e) if e.is_exists() => Ok(()),
        other => other,
    }
}

/// `Ok` when `r` succeeded or failed only because the object is gone already.
pub fn ok_if_missing(r: Result<(), HostError>) -> Result<(), HostError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Puts `target` back on its NIC (found by name) and takes `bridge` apart: the addresses
/// back on the NIC, the NIC released from `bridge`, the routes back on the NIC, `bridge`
/// deleted (which takes its own copies along), then the NIC's MTU, MAC and state as in
/// `target`. `bridge` is the bridge the NIC was moved behind, if it still exists.
///
/// Idempotent: every step tolerates having been done already, so it can resume after a
/// crash.
pub fn restore(nl: &mut Netlink, target: &NicSnapshot, bridge: Option<&Link>) -> Result<()> {
    let nic = nl
        .link(&target.name)
        .map_err(step("look up the NIC"))?
        .ok_or_else(|| SnapshotError::NicGone(target.name.clone()))?;
    let bridge_addrs: Vec<AddressEntry> = match bridge {
        Some(b) => nl
            .address_entries()
            .map_err(step("list addresses"))?
            .into_iter()
            .filter(|a| a.ifindex == b.index)
            .collect(),
        None => Vec::new(),
    };
    let present: Vec<AddressEntry> = nl
        .address_entries()
        .map_err(step("list addresses"))?
        .into_iter()
        .filter(|a| a.ifindex == nic.index)
        .collect();
    for a in restore_order(&target.addresses) {
        if present.iter().any(|p| same_address(p, a)) {
            continue;
        }
        let mut a = a.clone();
        a.ifindex = nic.index;
        // A dynamic address keeps the lifetime it has now on the bridge.
        if let Some(b) = bridge_addrs.iter().find(|b| same_address(b, &a)) {
            if a.is_dynamic() {
                a.valid_lft = b.valid_lft;
                a.preferred_lft = b.preferred_lft;
            }
        }
        ok_if_exists(nl.add_address_entry(&a)).map_err(step("put an address back on the NIC"))?;
    }
    if nic.master.is_some() && nic.master == bridge.map(|b| b.index) {
        nl.set_port(
            nic.index,
            &PortSettings {
                master: Some(None),
                ..PortSettings::default()
            },
        )
        .map_err(step("release the NIC"))?;
    }
    // A route needs its device up ("Device for nexthop is not up"): a NIC that was set down
    // while it was a bridge port comes up before its routes go back.
    if target.up && !nic.up {
        nl.set_port(
            nic.index,
            &PortSettings {
                up: Some(true),
                ..PortSettings::default()
            },
        )
        .map_err(step("bring the NIC up"))?;
    }
    for r in &target.routes {
        let mut r = r.clone();
        r.oif = Some(nic.index);
        ok_if_exists(nl.add_route_entry(&r)).map_err(step("put a route back on the NIC"))?;
    }
    if let Some(b) = bridge {
        nl.delete_link(b.index).map_err(step("delete the bridge"))?;
    }
    let fix = settings_to_restore(&nic, target);
    if fix != PortSettings::default() {
        nl.set_port(nic.index, &fix)
            .map_err(step("restore the NIC's settings"))?;
    }
    Ok(())
}

/// The order in which addresses go back: IPv4 in the kernel's order (primaries first, so
/// the secondaries find their primary); IPv6 oldest first (the kernel lists the newest
/// first, and adding in that order keeps the listing the same).
fn restore_order(addresses: &[AddressEntry]) -> Vec<&AddressEntry> {
    let mut order: Vec<&AddressEntry> = addresses.iter().filter(|a| a.local.is_ipv4()).collect();
    order.extend(addresses.iter().filter(|a| a.local.is_ipv6()).rev());
    order
}

/// The MAC, MTU and up state that `nic` must change to look like `target`.
fn settings_to_restore(nic: &Link, target: &NicSnapshot) -> PortSettings {
    let mut fix = PortSettings::default();
    if target.mac.is_some() && nic.mac != target.mac {
        fix.mac = target.mac;
    }
    if nic.mtu != target.mtu {
        fix.mtu = Some(target.mtu);
    }
    if nic.up != target.up {
        fix.up = Some(target.up);
    }
    fix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(ifindex: u32, local: &str, prefix_len: u8) -> AddressEntry {
        AddressEntry::new(ifindex, local.parse().unwrap(), prefix_len)
    }

    #[test]
    fn addresses_go_back_ipv4_first_and_ipv6_oldest_first() {
        let listed = [
            address(2, "2001:db8::2", 64),
            address(2, "192.0.2.10", 24),
            address(2, "2001:db8::1", 64),
            address(2, "192.0.2.11", 24),
        ];
        let order: Vec<String> = restore_order(&listed)
            .iter()
            .map(|a| a.local.to_string())
            .collect();
        assert_eq!(
            order,
            ["192.0.2.10", "192.0.2.11", "2001:db8::1", "2001:db8::2"]
        );
    }

    #[test]
    fn same_address_ignores_lifetimes_flags_and_link() {
        let a = address(2, "192.0.2.10", 24);
        let mut b = address(7, "192.0.2.10", 24);
        b.valid_lft = 100;
        b.flags = 0x80;
        assert!(same_address(&a, &b));
        assert!(!same_address(&a, &address(2, "192.0.2.10", 25)));
        assert!(!same_address(&a, &address(2, "192.0.2.11", 24)));
    }
    fn route(oif: u32, dest: &str, prefix: u8, table: u32, protocol: u8) -> RouteEntry {
        RouteEntry {
            dest: dest.parse().unwrap(),
            prefix,
            source: None,
            tos: 0,
            table,
            protocol,
            scope: 0,
            kind: 1,
            flags: 0,
            gateway: None,
            oif: Some(oif),
            prefsrc: None,
            metric: None,
            pref: None,
            metrics: Vec::new(),
            multipath: false,
        }
    }

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: None,
            alias: None,
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            up: true,
            lower_up: true,
            master: None,
            group: 0,
            bridge: None,
        }
    }

    #[test]
    fn only_routes_that_move_with_the_nic_are_taken() {
        let routes = [
            route(2, "0.0.0.0", 0, 254, 4),
            route(2, "192.0.2.0", 24, 254, RTPROT_KERNEL),
            route(2, "192.0.2.10", 32, RT_TABLE_LOCAL, RTPROT_KERNEL),
            route(2, "198.51.100.0", 24, 100, 3),
            route(3, "203.0.113.0", 24, 254, 4),
        ];
        let taken: Vec<String> = routes_through(&routes, 2)
            .iter()
            .map(|r| format!("{}/{}", r.dest, r.prefix))
            .collect();
        assert_eq!(taken, ["0.0.0.0/0", "198.51.100.0/24"]);
    }

    #[test]
    fn a_snapshot_leaves_out_link_local_and_other_links() {
        let addresses = [
            address(2, "192.0.2.10", 24),
            address(2, "fe80::1", 64),
            address(3, "198.51.100.1", 24),
            address(2, "2001:db8::1", 64),
        ];
        let snap = NicSnapshot::of(&link(2, "eth0"), &addresses, &[]);
        let kept: Vec<String> = snap.addresses.iter().map(|a| a.local.to_string()).collect();
        assert_eq!(kept, ["192.0.2.10", "2001:db8::1"]);
        assert_eq!(
            (snap.name.as_str(), snap.index, snap.mtu),
            ("eth0", 2, 1500)
        );
    }

    #[test]
    fn only_changed_settings_are_restored() {
        let nic = link(2, "eth0");
        let same = NicSnapshot::of(&nic, &[], &[]);
        assert_eq!(settings_to_restore(&nic, &same), PortSettings::default());
        let target = NicSnapshot {
            mtu: 9000,
            up: false,
            mac: Some([2, 0, 0, 0, 0, 2]),
            ..same.clone()
        };
        let fix = settings_to_restore(&nic, &target);
        assert_eq!(fix.mtu, Some(9000));
        assert_eq!(fix.up, Some(false));
        assert_eq!(fix.mac, Some([2, 0, 0, 0, 0, 2]));
        // No MAC recorded: the NIC keeps the one it has.
        let no_mac = NicSnapshot { mac: None, ..same };
        assert_eq!(settings_to_restore(&nic, &no_mac).mac, None);
    }
}
