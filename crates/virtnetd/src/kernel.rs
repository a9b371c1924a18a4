//! The apply side of model → plan → apply: realises [`NetworkPlan`]s in the kernel of the
//! network namespace virtnetd runs in, and removes them again.
//!
//! Only what virtnet made is ever changed: bridges carrying the `virtnet:` alias, the addresses
//! and protocol-86 routes on them, and the `inet virtnet` nftables table. The kernel layer
//! remembers which firewalls it applied so that it can rebuild its table (one atomic
//! transaction) if someone removed it, without listing the host's ruleset.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use std::time::Instant;

use tracing::{debug, info, warn};
use virtnet_api::{BridgeStatus, ErrorCode};
use virtnet_host::nft_set::{key_bytes, INTERVAL_END};
use virtnet_host::{
    sysctl, Address, BridgeSpec, Change, Drained, Field, HostError, Link, Monitor, Netlink,
    NftSets, Nftables, Route, RouteSpec, SetChange, SetElement,
};
use virtnet_plan::firewall::{
    groups_script, rebuild_script, remove_table_script, start_script, stop_any_script, stop_script,
    KeyField, NfProto, PrefixGroup, TABLE_NAME,
};
use virtnet_plan::{
    find_conflict, is_link_local, Conflict, HostAddress, HostRoute, NetworkFirewall, NetworkPlan,
    ALIAS_PREFIX, LINK_GROUP, PARKED_ALIAS, PARKED_NAME_PREFIX, ROUTE_PROTOCOL,
};

use crate::error::{Error, Result};
use crate::reaper::Reaper;

/// The host's routes and addresses, dumped once and then kept current from the kernel's
/// notifications, so that the collision check of a start does not dump them again: with one
/// route and one address per network, a dump per start grew with every network.
struct HostView {
    monitor: Monitor,
    routes: HashSet<Route>,
    addresses: HashSet<Address>,
    synced: bool,
}

impl HostView {
    fn open() -> Result<HostView> {
        Ok(HostView {
            monitor: Monitor::open().map_err(host("open netlink monitor"))?,
            routes: HashSet::new(),
            addresses: HashSet::new(),
            synced: false,
        })
    }

    /// Applies the changes announced since the last call (or dumps, the first time and after
    /// lost notifications).
    fn refresh(&mut self, netlink: &mut Netlink) -> Result<()> {
        if !self.synced {
            return self.resync(netlink);
        }
        match self.monitor.drain().map_err(host("read netlink monitor"))? {
            Drained::Changes(changes) => {
                for change in changes {
                    match change {
                        Change::RouteAdded(r) => self.routes.insert(r),
                        Change::RouteRemoved(r) => self.routes.remove(&r),
                        Change::AddressAdded(a) => self.addresses.insert(a),
                        Change::AddressRemoved(a) => self.addresses.remove(&a),
                    };
                }
                Ok(())
            }
            Drained::Lost => self.resync(netlink),
        }
    }

    /// Forgets the view and dumps routes and addresses again. What was announced before the
    /// dump is dropped first: the dump already holds it.
    fn resync(&mut self, netlink: &mut Netlink) -> Result<()> {
        self.synced = false;
        let _ = self.monitor.drain().map_err(host("read netlink monitor"))?;
        self.routes = netlink
            .routes()
            .map_err(host("list routes"))?
            .into_iter()
            .collect();
        self.addresses = netlink
            .addresses()
            .map_err(host("list addresses"))?
            .into_iter()
            .collect();
        self.synced = true;
        Ok(())
    }

    /// Forgets the routes and addresses of links being deleted: the kernel flushes a deleted
    /// link's IPv4 routes without announcing it.
    fn forget_links(&mut self, indexes: &[u32]) {
        self.routes
            .retain(|r| !r.oif.is_some_and(|i| indexes.contains(&i)));
        self.addresses.retain(|a| !indexes.contains(&a.ifindex));
    }

    fn conflict(&self, plan: &NetworkPlan, own: Option<u32>) -> Option<Conflict> {
        let routes: Vec<HostRoute> = self
            .routes
            .iter()
            .map(|r| HostRoute {
                destination: r.dest,
                prefix: r.prefix,
                ifindex: r.oif,
            })
            .collect();
        let addresses: Vec<HostAddress> = self
            .addresses
            .iter()
            .map(|a| HostAddress {
                address: a.addr,
                prefix: a.prefix_len,
                ifindex: a.ifindex,
            })
            .collect();
        find_conflict(plan, own, &routes, &addresses)
    }
}

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
    /// Deletes the bridges of destroyed networks off the request path.
    reaper: Reaper,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("applied", &self.applied.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn host(context: impl Into<String>) -> impl FnOnce(HostError) -> Error {
    let context = context.into();
    move |source| Error::Host { context, source }
}

fn in_use(message: String) -> Error {
    Error::api(ErrorCode::Conflict, message)
}

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

/// A network's firewall as nfnetlink set elements (see `virtnet_host::nft_set`), or `None`
/// when it needs a custom NAT chain, which only libnftables installs.
pub fn raw_elements(fw: &NetworkFirewall) -> Option<Vec<SetElement>> {
    if fw.has_nat_chain() {
        return None;
    }
    let mut out = Vec::new();
    for e in fw.elements() {
        if e.jump.is_some() {
            return None;
        }
        let starts: Vec<Field> = e.key.iter().map(field).collect();
        let set = e.set.to_string();
        if !e.in_interval_set() {
            out.push(SetElement {
                set,
                key: key_bytes(&starts),
                key_end: None,
                flags: 0,
            });
        } else {
            // One-field ranges (rbtree): a start element, and an end element one past the
            // range unless the range ends at the last address.
            out.push(SetElement {
                set: set.clone(),
                key: key_bytes(&starts),
                key_end: None,
                flags: 0,
            });
            if let Some(after) = e.key.first().and_then(one_past) {
                out.push(SetElement {
                    set,
                    key: key_bytes(&[after]),
                    key_end: None,
                    flags: INTERVAL_END,
                });
            }
        }
    }
    Some(out)
}

/// A key field as nfnetlink carries it; a subnet (the start of a range) is its first address.
fn field(k: &KeyField) -> Field {
    match k {
        KeyField::Ifname(n) => Field::Ifname(n.clone()),
        KeyField::Net(s) | KeyField::NetAddr(s) => address_field(s.address),
        KeyField::NfProto(NfProto::Ipv4) => Field::NfProto(libc::NFPROTO_IPV4 as u8),
        KeyField::NfProto(NfProto::Ipv6) => Field::NfProto(libc::NFPROTO_IPV6 as u8),
        KeyField::L4(p) => Field::InetProto(if *p == "tcp" {
            libc::IPPROTO_TCP as u8
        } else {
            libc::IPPROTO_UDP as u8
        }),
        KeyField::Port(p) => Field::Service(*p),
    }
}

fn address_field(a: IpAddr) -> Field {
    match a {
        IpAddr::V4(a) => Field::Ipv4(a),
        IpAddr::V6(a) => Field::Ipv6(a),
    }
}

/// The address right after a subnet, or `None` when the subnet ends the address space.
fn one_past(k: &KeyField) -> Option<Field> {
    let KeyField::Net(s) = k else {
        return None;
    };
    match s.last_address() {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| Field::Ipv4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| Field::Ipv6(n.into())),
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
            view: HostView::open()?,
            applied: BTreeMap::new(),
            groups: BTreeSet::new(),
            reaper: Reaper::spawn().map_err(host("start the link reaper"))?,
        })
    }

    /// Refuses a plan whose bridge name is taken by a link that is not virtnet's, or whose
    /// subnets are in use on the host. Returns the index of a leftover bridge of virtnet's with
    /// that name, if any.
    fn check_free(&mut self, plan: &NetworkPlan) -> Result<Option<u32>> {
        let name = &plan.bridge.name;
        let own = match self.netlink.link(name).map_err(host("look up link"))? {
            Some(link) if !is_ours(&link) => {
                return Err(in_use(format!(
                    "bridge name '{name}' is already in use by an interface virtnet did not \
                     create"
                )));
            }
            Some(link) => Some(link.index),
            None => None,
        };
        self.view.refresh(&mut self.netlink)?;
        let mut conflict = self.view.conflict(plan, own);
        if conflict.is_some() {
            // The view may keep a route the kernel flushed without telling (IPv4 routes of a
            // link that went down): confirm with a fresh dump before refusing.
            self.view.resync(&mut self.netlink)?;
            conflict = self.view.conflict(plan, own);
        }
        let Some(conflict) = conflict else {
            return Ok(own);
        };
        let dev = match conflict.ifindex {
            Some(index) => self
                .netlink
                .link_by_index(index)
                .map_err(host("look up link"))?
                .map_or_else(|| format!("#{index}"), |l| l.name),
            None => "(none)".to_string(),
        };
        Err(in_use(conflict.describe(&dev)))
    }

    /// Refuses to turn IPv6 forwarding on while an interface relies on router advertisements
    /// for routes without `accept_ra=2`: the kernel stops accepting RAs on a forwarding host,
    /// and those routes (often the default route) would expire. libvirt refuses the same way.
    fn check_router_advertisements(&mut self, plan: &NetworkPlan) -> Result<()> {
        const RTPROT_RA: u8 = 9;
        let enables_v6_forwarding = plan
            .sysctls
            .iter()
            .any(|s| s.key == "net/ipv6/conf/all/forwarding" && s.value == "1");
        if !enables_v6_forwarding
            || sysctl::read("net/ipv6/conf/all/forwarding").is_ok_and(|v| v.trim() == "1")
        {
            return Ok(());
        }
        let mut indexes: Vec<u32> = self
            .view
            .routes
            .iter()
            .filter(|r| r.dest.is_ipv6() && r.protocol == RTPROT_RA)
            .filter_map(|r| r.oif)
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut offending = Vec::new();
        for index in indexes {
            let Some(link) = self
                .netlink
                .link_by_index(index)
                .map_err(host("look up link"))?
            else {
                continue;
            };
            let key = format!("net/ipv6/conf/{}/accept_ra", link.name);
            if sysctl::read(&key).map_or(true, |v| v.trim() != "2") {
                offending.push(link.name);
            }
        }
        if offending.is_empty() {
            return Ok(());
        }
        Err(in_use(format!(
            "Check the host setup: enabling IPv6 forwarding with RA routes without accept_ra \
             set to 2 is likely to cause routes loss. Interfaces to look at: {}",
            offending.join(" ")
        )))
    }

    /// Warnings about other tables that will drop what virtnet accepts: in nftables an accept
    /// is final only within its own table, so a `policy drop` forward chain elsewhere (Docker's
    /// iptables FORWARD, a strict firewalld zone) still drops guests' routed traffic, and an
    /// input chain's drop policy drops their DHCP and DNS. Reads only the chains' headers.
    fn foreign_drop_policies(&mut self, plan: &NetworkPlan) -> Vec<String> {
        let forwards = plan.mode != virtnet_model::ForwardMode::None;
        self.nft.set_json(true);
        let listing = self.nft.run("list chains");
        self.nft.set_json(false);
        let Ok(listing) = listing else {
            return Vec::new();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&listing) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let items = json["nftables"].as_array().cloned().unwrap_or_default();
        for chain in items.iter().filter_map(|i| i.get("chain")) {
            let (family, table, name) = (
                chain["family"].as_str().unwrap_or(""),
                chain["table"].as_str().unwrap_or(""),
                chain["name"].as_str().unwrap_or(""),
            );
            if table == TABLE_NAME && family == "inet" || chain["policy"] != "drop" {
                continue;
            }
            let what = match chain["hook"].as_str() {
                Some("forward") if forwards => "guests' forwarded traffic",
                Some("input") => "guests' DHCP and DNS requests to the host",
                _ => continue,
            };
            out.push(format!(
                "chain {name} of table {family} {table} has policy drop: {what} accepted by \
                 virtnet is still dropped there unless that table accepts it too"
            ));
        }
        out
    }

    /// Starts a network: checks, bridge, sysctls, addresses, routes, firewall, in that order.
    /// On any failure everything made so far is removed again and the first error returned.
    pub fn start(&mut self, plan: &NetworkPlan) -> Result<Vec<String>> {
        let t0 = Instant::now();
        let leftover = self.check_free(plan)?;
        self.check_router_advertisements(plan)?;
        let checked = t0.elapsed();
        // A leftover bridge of ours with this name (from a crash) is replaced.
        if let Some(old) = leftover {
            self.delete_links(
                &[old],
                format!("delete leftover bridge {}", plan.bridge.name),
            )?;
        }
        let index = self
            .netlink
            .create_bridge(&spec(plan))
            .map_err(host("create bridge"))?;
        let created = t0.elapsed();
        let result = self.configure(plan, index);
        let configured = t0.elapsed();
        let result = result.and_then(|()| self.install_firewall(plan));
        debug!(
            network = %plan.network,
            check_us = checked.as_micros() as u64,
            bridge_us = (created - checked).as_micros() as u64,
            configure_us = (configured - created).as_micros() as u64,
            firewall_us = (t0.elapsed() - configured).as_micros() as u64,
            "start timings"
        );
        if let Err(e) = result {
            warn!(network = %plan.network, error = %e, "start failed; rolling back");
            if let Some(fw) = &plan.firewall {
                if let Err(undo) = self.nft.run(&stop_any_script(fw)) {
                    warn!(network = %plan.network, error = %undo, "firewall rollback failed");
                }
                self.applied.remove(&plan.network);
            }
            if let Err(undo) = self.delete_links(&[index], "roll back the bridge") {
                warn!(network = %plan.network, error = %undo, "bridge rollback failed");
            }
            return Err(e);
        }
        Ok(self.foreign_drop_policies(plan))
    }

    /// Sysctls, addresses and routes of a fresh bridge.
    fn configure(&mut self, plan: &NetworkPlan, index: u32) -> Result<()> {
        // Per-bridge sysctls first: with IPv6 disabled before the first address, the bridge
        // never gets a link-local address.
        for s in plan.sysctls.iter().filter(|s| s.per_bridge) {
            sysctl::write(&s.key, &s.value).map_err(host("configure bridge"))?;
        }
        for a in &plan.addresses {
            self.netlink
                .add_address(index, a.address, a.prefix)
                .map_err(host(format!("add address to {}", plan.bridge.name)))?;
        }
        for r in &plan.routes {
            self.netlink
                .add_route(&route_spec(r))
                .map_err(host(format!("add route of network '{}'", plan.network)))?;
        }
        for s in plan.sysctls.iter().filter(|s| !s.per_bridge) {
            sysctl::write(&s.key, &s.value).map_err(host("enable forwarding"))?;
        }
        Ok(())
    }

    /// Installs the network's firewall in one transaction. If virtnet's table is gone (an
    /// `nft flush ruleset` or an nftables service restart), rebuilds it whole.
    fn install_firewall(&mut self, plan: &NetworkPlan) -> Result<()> {
        let Some(fw) = &plan.firewall else {
            return Ok(());
        };
        self.applied.insert(plan.network.clone(), fw.clone());
        if self.add_groups(fw) && self.add_elements(fw) {
            return Ok(());
        }
        warn!(network = %plan.network, "virtnet's nftables table is missing or damaged; rebuilding it");
        self.rebuild_firewall()
    }

    /// Adds the sets and rules of the prefix groups `fw` needs and the table lacks (a prefix
    /// length seen for the first time). False when that fails.
    fn add_groups(&mut self, fw: &NetworkFirewall) -> bool {
        let needed = fw.groups();
        if needed.is_subset(&self.groups) {
            return true;
        }
        let all: BTreeSet<PrefixGroup> = self.groups.union(&needed).copied().collect();
        if self.nft.run(&groups_script(&all)).is_err() {
            return false;
        }
        self.groups = all;
        true
    }

    /// Adds the network's set elements in one transaction. False when that fails.
    fn add_elements(&mut self, fw: &NetworkFirewall) -> bool {
        match raw_elements(fw) {
            Some(elements) => self
                .sets
                .apply(TABLE_NAME, SetChange::Create, &elements)
                .is_ok(),
            None => self.nft.run(&start_script(fw)).is_ok(),
        }
    }

    /// Replaces the whole `inet virtnet` table with the applied firewalls, atomically. With no
    /// firewall to hold, the table is removed: a host without virtnet networks carries no
    /// virtnet rules.
    fn rebuild_firewall(&mut self) -> Result<()> {
        let all: Vec<&NetworkFirewall> = self.applied.values().collect();
        let script = if all.is_empty() {
            remove_table_script()
        } else {
            rebuild_script(&all)
        };
        self.groups.clear();
        self.nft
            .run(&script)
            .map_err(host("install the firewall"))?;
        self.groups = all.iter().flat_map(|fw| fw.groups()).collect();
        Ok(())
    }

    /// Stops networks: their bridges are parked (down, ports off, addresses removed, renamed),
    /// then their firewall entries removed in one transaction, and the parked bridges handed
    /// to the reaper, which deletes them in one batch without making the caller wait for the
    /// kernel's RCU barriers (~40 ms per deletion here).
    pub fn stop(&mut self, plans: &[&NetworkPlan]) -> Result<()> {
        let t0 = Instant::now();
        let result = self.stop_inner(plans);
        debug!(
            networks = plans.len(),
            elapsed_us = t0.elapsed().as_micros() as u64,
            "stop timings"
        );
        result
    }

    fn stop_inner(&mut self, plans: &[&NetworkPlan]) -> Result<()> {
        let mut doomed = Vec::new();
        for plan in plans {
            if let Some(link) = self
                .netlink
                .link(&plan.bridge.name)
                .map_err(host("look up link"))?
            {
                if is_ours(&link) {
                    doomed.push(link.index);
                }
            }
        }
        let firewalls: Vec<&NetworkFirewall> =
            plans.iter().filter_map(|p| p.firewall.as_ref()).collect();
        let raw: Option<Vec<SetElement>> = firewalls
            .iter()
            .map(|fw| raw_elements(fw))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        // The bridges go out of service first, then their firewall entries: a bridge that is
        // up never exists without its firewall.
        let t0 = Instant::now();
        let (parked, unparked) = self.park(&doomed);
        let links_done = t0.elapsed();
        let removed = match raw {
            Some(elements) => self
                .sets
                .apply(TABLE_NAME, SetChange::Delete, &elements)
                .is_ok(),
            None => {
                let exact: String = firewalls.iter().map(|fw| stop_script(fw)).collect();
                self.nft.run(&exact).is_ok()
            }
        };
        debug!(
            park_us = links_done.as_micros() as u64,
            firewall_us = (t0.elapsed() - links_done).as_micros() as u64,
            "stop: bridges parked, then firewall"
        );
        for plan in plans {
            self.applied.remove(&plan.network);
        }
        if !removed {
            // Something was already missing: remove whatever is left, and if even that fails
            // the table is damaged: rebuild it without these networks.
            let any: String = firewalls.iter().map(|fw| stop_any_script(fw)).collect();
            if self.nft.run(&any).is_err() {
                self.rebuild_firewall()?;
            }
        }
        self.forget_deleted(&doomed);
        // A bridge that could not be parked, or that the reaper cannot take, is deleted here,
        // waiting for the kernel.
        let mut now = unparked;
        if let Err(back) = self.reaper.delete(parked) {
            now.extend(back);
        }
        self.netlink
            .delete_links(&now)
            .map_err(host("delete bridges"))
    }

    /// Parks bridges for the reaper. Returns the parked ones and those that could not be
    /// parked (a name clash, say), which the caller deletes itself.
    fn park(&mut self, indexes: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let mut parked = Vec::with_capacity(indexes.len());
        let mut unparked = Vec::new();
        for &index in indexes {
            let name = format!("{PARKED_NAME_PREFIX}{index}");
            match self.netlink.park_link(index, &name, PARKED_ALIAS) {
                Ok(true) => parked.push(index),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "could not park a bridge; deleting it at once");
                    unparked.push(index);
                }
            }
        }
        (parked, unparked)
    }

    /// Blocks until the bridges of destroyed networks are deleted.
    pub fn wait_for_deletions(&self) {
        self.reaper.wait_idle();
    }

    /// Deletes links in one batch and forgets their routes and addresses.
    fn delete_links(&mut self, indexes: &[u32], context: impl Into<String>) -> Result<()> {
        let deleted = self.netlink.delete_links(indexes).map_err(host(context));
        self.forget_deleted(indexes);
        deleted
    }

    /// Forgets the routes and addresses of deleted links.
    fn forget_deleted(&mut self, indexes: &[u32]) {
        // Announcements still queued (the routes and addresses these links got) must be
        // applied before the links are forgotten, or they would bring them back.
        if self.view.refresh(&mut self.netlink).is_err() {
            self.view.synced = false;
        }
        self.view.forget_links(indexes);
    }

    /// Converges the host on `plans`, the networks that should be active, after a restart
    /// (clean or not): missing parts are created, wrong ones corrected, and virtnet's leftovers
    /// of networks no longer active are removed. Existing bridges are kept, with their ports,
    /// so running guests stay connected. Returns the networks that could not be realised.
    pub fn reconcile(&mut self, plans: &[NetworkPlan]) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        let mut realised = HashSet::new();
        for plan in plans {
            match self.converge(plan) {
                Ok(()) => {
                    realised.insert(plan.bridge.name.clone());
                    if let Some(fw) = &plan.firewall {
                        self.applied.insert(plan.network.clone(), fw.clone());
                    }
                }
                Err(e) => failed.push((plan.network.clone(), e)),
            }
        }
        if let Err(e) = self.rebuild_firewall() {
            // Without a firewall no network may be called active.
            for plan in plans {
                if realised.contains(&plan.bridge.name) {
                    failed.push((
                        plan.network.clone(),
                        Error::api(ErrorCode::Internal, format!("install the firewall: {e}")),
                    ));
                }
            }
            self.applied.clear();
            realised.clear();
        }
        if let Err(e) = self.remove_leftovers(&realised) {
            warn!(error = %e, "could not remove leftover bridges");
        }
        failed
    }

    /// Makes one network's bridge, addresses, routes and sysctls match its plan.
    fn converge(&mut self, plan: &NetworkPlan) -> Result<()> {
        let name = &plan.bridge.name;
        let Some(link) = self.netlink.link(name).map_err(host("look up link"))? else {
            self.check_free(plan)?;
            let index = self
                .netlink
                .create_bridge(&spec(plan))
                .map_err(host("create bridge"))?;
            info!(network = %plan.network, bridge = %name, "bridge was missing; recreated");
            return self.configure(plan, index).inspect_err(|_| {
                let _ = self.delete_links(&[index], "roll back the bridge");
            });
        };
        if !is_ours(&link) {
            return Err(in_use(format!(
                "bridge name '{name}' is now used by an interface virtnet did not create"
            )));
        }
        self.netlink
            .update_bridge(link.index, &spec(plan))
            .map_err(host("update bridge"))?;
        for s in &plan.sysctls {
            sysctl::write(&s.key, &s.value).map_err(host("write sysctl"))?;
        }
        // The view is dumped once for the whole reconcile and then follows the kernel's
        // announcements, instead of a dump of every address and route per network.
        self.view.refresh(&mut self.netlink)?;
        self.converge_addresses(plan, link.index)?;
        self.converge_routes(plan, link.index)
    }

    fn converge_addresses(&mut self, plan: &NetworkPlan, index: u32) -> Result<()> {
        let present: Vec<(IpAddr, u8)> = self
            .view
            .addresses
            .iter()
            .filter(|a| a.ifindex == index && !is_link_local(a.addr))
            .map(|a| (a.addr, a.prefix_len))
            .collect();
        let wanted: Vec<(IpAddr, u8)> = plan
            .addresses
            .iter()
            .map(|a| (a.address, a.prefix))
            .collect();
        for &(addr, prefix) in present.iter().filter(|p| !wanted.contains(p)) {
            self.netlink
                .del_address(index, addr, prefix)
                .map_err(host("remove stray address"))?;
        }
        for &(addr, prefix) in wanted.iter().filter(|w| !present.contains(w)) {
            self.netlink
                .add_address(index, addr, prefix)
                .map_err(host("add address"))?;
        }
        Ok(())
    }

    fn converge_routes(&mut self, plan: &NetworkPlan, index: u32) -> Result<()> {
        let ours: Vec<RouteSpec> = self
            .view
            .routes
            .iter()
            .filter(|r| r.protocol == ROUTE_PROTOCOL && r.oif == Some(index))
            .map(|r| RouteSpec {
                dest: r.dest,
                prefix: r.prefix,
                gateway: r.gateway,
                oif: None,
                metric: r.metric,
                protocol: ROUTE_PROTOCOL,
            })
            .collect();
        let wanted: Vec<RouteSpec> = plan.routes.iter().map(route_spec).collect();
        let same = |a: &RouteSpec, b: &RouteSpec| {
            a.dest == b.dest && a.prefix == b.prefix && a.gateway == b.gateway
        };
        for r in ours.iter().filter(|r| !wanted.iter().any(|w| same(r, w))) {
            self.netlink
                .del_route(r)
                .map_err(host("remove stray route"))?;
        }
        for w in wanted.iter().filter(|w| !ours.iter().any(|r| same(r, w))) {
            self.netlink.add_route(w).map_err(host("add route"))?;
        }
        Ok(())
    }

    /// Deletes every bridge carrying virtnet's alias that is not in `keep`, in one batch.
    fn remove_leftovers(&mut self, keep: &HashSet<String>) -> Result<()> {
        let doomed: Vec<u32> = self
            .netlink
            .links()
            .map_err(host("list links"))?
            .into_iter()
            .filter(|l| is_ours(l) && !keep.contains(&l.name))
            .map(|l| {
                info!(bridge = %l.name, "removing leftover bridge");
                l.index
            })
            .collect();
        self.delete_links(&doomed, "delete leftover bridges")
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
}

/// A guest port's tap as the kernel layer makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPlan {
    /// Tap name.
    pub name: String,
    /// The tap's own MAC address.
    pub mac: [u8; 6],
    /// Alias marking it as a virtnet port.
    pub alias: String,
    /// Bridge to enslave it to, if that bridge exists now.
    pub bridge: Option<String>,
    /// Link state.
    pub up: bool,
    /// Owner, group, queues and vnet header of a tap virtnet creates; `None` adopts an
    /// existing tap (QEMU's `script=` mode made it).
    pub create: Option<virtnet_host::tap::TapSpec>,
}

impl Kernel {
    /// The index and MTU of a bridge, `None` when there is no bridge of that name.
    fn bridge_of(&mut self, name: &str) -> Result<Option<(u32, u32)>> {
        Ok(self
            .netlink
            .link(name)
            .map_err(host("look up bridge"))?
            .filter(|l| l.kind.as_deref() == Some("bridge"))
            .map(|l| (l.index, l.mtu)))
    }

    /// Creates (or adopts) a tap and attaches it; on failure nothing made here remains.
    /// Returns the MTU the port got (its bridge's).
    pub fn add_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let existing = self.netlink.link(&tap.name).map_err(host("look up tap"))?;
        match (&tap.create, &existing) {
            (Some(_), Some(_)) => {
                return Err(in_use(format!(
                    "interface name '{}' is already in use on the host",
                    tap.name
                )))
            }
            (None, None) => {
                return Err(Error::api(
                    ErrorCode::NotFound,
                    format!("no tap named '{}' to adopt", tap.name),
                ))
            }
            (None, Some(l)) if l.kind.as_deref() != Some("tun") => {
                return Err(in_use(format!("'{}' is not a tap device", tap.name)))
            }
            _ => {}
        }
        if let Some(spec) = &tap.create {
            virtnet_host::tap::create_tap(spec).map_err(host("create tap"))?;
        }
        self.configure_port(tap).inspect_err(|_| {
            if tap.create.is_some() {
                let _ = self.remove_port(&tap.name, true);
            }
        })
    }

    /// Points an existing port at its bridge with its MAC, MTU and state; returns the MTU.
    pub fn configure_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let link = self
            .netlink
            .link(&tap.name)
            .map_err(host("look up tap"))?
            .ok_or_else(|| {
                Error::api(
                    ErrorCode::NotFound,
                    format!("tap '{}' does not exist", tap.name),
                )
            })?;
        let bridge = match &tap.bridge {
            Some(b) => self.bridge_of(b)?,
            None => None,
        };
        let mtu = bridge.map_or(link.mtu, |(_, mtu)| mtu);
        self.netlink
            .set_port(
                link.index,
                &virtnet_host::PortSettings {
                    mac: Some(tap.mac),
                    mtu: Some(mtu),
                    alias: Some(tap.alias.clone()),
                    master: Some(bridge.map(|(index, _)| index)),
                    // A tap on no bridge stays down: the tun driver then refuses what the
                    // guest writes (EIO), so it can never be a routed interface of the host.
                    up: Some(tap.up && bridge.is_some()),
                },
            )
            .map_err(host("configure port"))?;
        Ok(mtu)
    }

    /// Sets a port's link state only.
    pub fn set_port_up(&mut self, name: &str, up: bool) -> Result<()> {
        let Some(link) = self.netlink.link(name).map_err(host("look up tap"))? else {
            return Err(Error::api(
                ErrorCode::NotFound,
                format!("tap '{name}' does not exist"),
            ));
        };
        self.netlink
            .set_port(
                link.index,
                &virtnet_host::PortSettings {
                    up: Some(up),
                    ..Default::default()
                },
            )
            .map_err(host("set port link"))
    }

    /// Deletes a port's tap (`delete`), or only takes it off its bridge (an adopted tap
    /// belongs to QEMU). A tap that is already gone is fine.
    pub fn remove_port(&mut self, name: &str, delete: bool) -> Result<()> {
        let Some(link) = self.netlink.link(name).map_err(host("look up tap"))? else {
            return Ok(());
        };
        if delete {
            self.netlink
                .delete_link(link.index)
                .map_err(host("delete tap"))
        } else {
            self.netlink
                .set_port(
                    link.index,
                    &virtnet_host::PortSettings {
                        master: Some(None),
                        // Off its bridge, a tap is down (see configure_port).
                        up: Some(false),
                        ..Default::default()
                    },
                )
                .map_err(host("detach tap"))
        }
    }

    /// Names of the links that exist now.
    pub fn link_names(&mut self) -> Result<HashSet<String>> {
        Ok(self
            .netlink
            .links()
            .map_err(host("list links"))?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }

    /// The neighbour table: (interface index, IP address, MAC) of every resolved entry.
    pub fn neighbours(&mut self) -> Result<Vec<virtnet_host::Neighbour>> {
        self.netlink.neighbours().map_err(host("list neighbours"))
    }

    /// Whether a bridge of that name exists.
    pub fn is_bridge(&mut self, name: &str) -> Result<bool> {
        Ok(self.bridge_of(name)?.is_some())
    }

    /// Creates a macvtap port on host NIC `dev` with the guest's MAC; returns its index.
    pub fn add_macvtap(
        &mut self,
        name: &str,
        dev: &str,
        mode: virtnet_host::MacvtapMode,
        mac: [u8; 6],
    ) -> Result<u32> {
        let parent = self.link_index(dev)?.ok_or_else(|| {
            Error::api(
                ErrorCode::NotFound,
                format!("host interface '{dev}' does not exist"),
            )
        })?;
        self.netlink
            .create_macvtap(name, parent, mode, mac)
            .map_err(host("create macvtap"))
    }

    /// The index of a link by name.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self
            .netlink
            .link(name)
            .map_err(host("look up link"))?
            .map(|l| l.index))
    }
}
