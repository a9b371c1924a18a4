//! The apply side of model → plan → apply: realises [`NetworkPlan`]s in the kernel of the
//! network namespace virtnetd runs in, and removes them again.
//!
//! Only what virtnet made is ever changed: bridges carrying the `virtnet:` alias, the addresses
//! and protocol-86 routes on them, and the `inet virtnet` nftables table. The kernel layer
//! remembers which firewalls it applied so that it can rebuild its table (one atomic
//! transaction) if someone removed it, without listing the host's ruleset.
//!
//! This module is policy: which links are virtnet's, in what order things are made, what is
//! rolled back. The mechanisms (rtnetlink, libnftables, nfnetlink sets, taps, sysctls, the
//! followed view of routes and addresses) are `virtnet-host`'s. One file per job:
//!
//! - `start`: starting a network, with rollback on failure, and its warnings;
//! - `firewall`: the `inet virtnet` table (install, rebuild, set elements);
//! - `firewall_watch`: puts the table back when someone else deletes it (nftables monitor);
//! - `forwards`: port forwards, as elements of the table's forward maps;
//! - `stop`: stopping networks (bridges parked for the reaper, firewall entries removed);
//! - `reconcile`: converging the host on the active networks after a restart;
//! - `host_view`: name and subnet collisions, checked against the followed view;
//! - `overlay`: the VXLAN device of an overlay network (`<virtnet:overlay>`);
//! - `guest_ports`: guest ports' taps and macvtaps;
//! - `antispoof`: the ports' anti-spoofing table (`bridge virtnet_ports`);
//! - `coexist`, `firewalld`: other firewalls on the host (scoped accepts in their tables,
//!   firewalld's zone), see `coexist`.

mod antispoof;
pub mod coexist;
mod firewall;
pub mod firewall_watch;
mod firewalld;
mod forwards;
mod guest_ports;
mod host_view;
mod overlay;
mod reconcile;
mod start;
mod stop;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use virtnet_api::BridgeStatus;
use virtnet_host::{BridgeSpec, HostError, HostView, Link, Netlink, NftSets, Nftables, RouteSpec};
use virtnet_plan::firewall::PrefixGroup;
use virtnet_plan::{
    NetworkFirewall, NetworkPlan, ALIAS_PREFIX, LINK_GROUP, PARKED_ALIAS, ROUTE_PROTOCOL,
};

use crate::error::{Error, Result};
use crate::reaper::{Batching, Reaper};

pub use antispoof::{Antispoof, DropCounts};
pub use firewall::raw_elements;
pub use guest_ports::{PortKernel, TapPlan};

/// virtnet's handle on the kernel.
pub struct Kernel {
    netlink: Netlink,
    nft: Nftables,
    /// Set elements go straight to nfnetlink: through libnftables each change would cost in
    /// proportion to the elements already in the table.
    sets: NftSets,
    view: HostView,
    /// Firewalls currently installed, by network name.
    applied: BTreeMap<String, NetworkFirewall>,
    /// The prefix groups whose sets and rules the table holds.
    groups: BTreeSet<PrefixGroup>,
    /// The port forwards' map elements applied, by network.
    forwards: forwards::AppliedForwards,
    /// Deletes the bridges of destroyed networks off the request path.
    reaper: Reaper,
    /// Other firewalls: accepts in their tables, firewalld's zone (shared with the watcher).
    coexist: Arc<coexist::Coexist>,
    /// The VXLAN devices in the overlays' DHCP guard (`table bridge virtnet_overlay`).
    overlays: BTreeSet<String>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("applied", &self.applied.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Wraps a `virtnet-host` failure with what virtnet was doing.
fn host(context: impl Into<String>) -> impl FnOnce(HostError) -> Error {
    let context = context.into();
    move |source| Error::Host { context, source }
}

/// A conflict with something on the host (HTTP 409).
fn in_use(message: String) -> Error {
    Error::conflict(message)
}

/// The bridge of a plan as `virtnet-host` creates it, in virtnet's link group.
fn spec(plan: &NetworkPlan) -> BridgeSpec {
    let b = &plan.bridge;
    BridgeSpec {
        name: b.name.clone(),
        mac: b.mac,
        mtu: b.mtu,
        alias: b.alias.clone(),
        stp: b.stp,
        forward_delay_cs: b.forward_delay_cs,
        group: LINK_GROUP,
    }
}

/// A link virtnet created: marked by its alias, or by its group if virtnet died before the
/// alias was set.
fn is_ours(link: &Link) -> bool {
    link.group == LINK_GROUP
        || link
            .alias
            .as_deref()
            .is_some_and(|a| a.starts_with(ALIAS_PREFIX))
}

/// A `<route>` of a plan as `virtnet-host` adds it, marked with virtnet's route protocol.
fn route_spec(r: &virtnet_plan::RoutePlan) -> RouteSpec {
    RouteSpec {
        dest: r.destination,
        prefix: r.prefix,
        gateway: Some(r.gateway),
        oif: None,
        metric: r.metric,
        protocol: ROUTE_PROTOCOL,
    }
}

impl Kernel {
    /// Opens netlink and libnftables in the current network namespace.
    pub fn open() -> Result<Kernel> {
        Ok(Kernel {
            netlink: Netlink::open().map_err(host("open rtnetlink"))?,
            nft: Nftables::new().map_err(host("open libnftables"))?,
            sets: NftSets::open().map_err(host("open nfnetlink"))?,
            view: HostView::open().map_err(host("open netlink monitor"))?,
            applied: BTreeMap::new(),
            groups: BTreeSet::new(),
            forwards: BTreeMap::new(),
            // Bridges: each deletion holds RTNL for an RCU grace period, so one at a time.
            reaper: Reaper::spawn(Batching::OneByOne).map_err(host("start the link reaper"))?,
            coexist: Arc::new(coexist::Coexist::open()?),
            overlays: BTreeSet::new(),
        })
    }

    /// virtnet's bridges with their ports, sorted by name (`iface-bridges`).
    pub fn bridges(&mut self) -> Result<Vec<BridgeStatus>> {
        let links = self.netlink.links().map_err(host("list links"))?;
        let mut rows: Vec<BridgeStatus> = links
            .iter()
            .filter(|l| is_ours(l) && l.alias.as_deref() != Some(PARKED_ALIAS))
            .filter_map(|l| {
                let info = l.bridge.as_ref()?;
                let mut interfaces: Vec<String> = links
                    .iter()
                    .filter(|p| p.master == Some(l.index))
                    .map(|p| p.name.clone())
                    .collect();
                interfaces.sort();
                Some(BridgeStatus {
                    name: l.name.clone(),
                    bridge_id: info.bridge_id.clone(),
                    stp: info.stp,
                    interfaces,
                })
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }

    /// Whether a bridge of that name exists.
    pub fn is_bridge(&mut self, name: &str) -> Result<bool> {
        Ok(bridge_of(&mut self.netlink, name)?.is_some())
    }

    /// The coexistence layer (`--firewall-integration`, `virtnet doctor`, the watcher).
    pub fn coexist(&self) -> Arc<coexist::Coexist> {
        self.coexist.clone()
    }

    /// Whether virtnet's tables are needed now: `inet virtnet` while a network with a
    /// firewall runs (the anti-spoofing table's need is the ports', not known here).
    pub fn needs_firewall(&self) -> bool {
        !self.applied.is_empty()
    }

    /// The index of a link by name.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        link_index(&mut self.netlink, name)
    }
}

/// The index and MTU of a bridge, `None` when there is no bridge of that name.
fn bridge_of(netlink: &mut Netlink, name: &str) -> Result<Option<(u32, u32)>> {
    Ok(netlink
        .link(name)
        .map_err(host("look up bridge"))?
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|l| (l.index, l.mtu)))
}

/// The index of a link by name.
fn link_index(netlink: &mut Netlink, name: &str) -> Result<Option<u32>> {
    Ok(netlink
        .link(name)
        .map_err(host("look up link"))?
        .map(|l| l.index))
}

/// Names of the links that exist now.
fn link_names(netlink: &mut Netlink) -> Result<HashSet<String>> {
    Ok(netlink
        .links()
        .map_err(host("list links"))?
        .into_iter()
        .map(|l| l.name)
        .collect())
}
