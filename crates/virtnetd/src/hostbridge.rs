//! Host bridges made from a NIC: `iface-bridge`, `iface-unbridge`, `iface-confirm`.
//!
//! virtnetd, not the CLI, makes the change, checks connectivity and rolls back, so a client
//! that dies (or a connection that drops because the host's only NIC moved) cannot leave the
//! host half-changed. Every step is preceded by a durable record (table `host_bridges`: the
//! NIC's snapshot and the phase), so a crash of virtnetd is undone at its next start.
//!
//! Order of `iface-bridge IFACE BRIDGE` (the host stays reachable throughout):
//! 1. snapshot IFACE: addresses with all attributes (flags, label, lifetimes), every route
//!    through it (all tables but `local`; not the `proto kernel` ones, which follow the
//!    addresses), MTU, MAC, up state; record it (phase `applying`);
//! 2. create BRIDGE with IFACE's MAC (neighbours' ARP caches and the DHCP server's lease stay
//!    valid) and MTU, forward delay as asked and STP off, up, marked with the alias
//!    `virtnet-hostbridge:IFACE`;
//! 3. add IFACE's addresses to BRIDGE (IPv6 without DAD: the address is already ours);
//! 4. enslave IFACE (its port forwards at once: STP is off), then turn STP on when asked
//!    (the default): a forwarding port stays forwarding, so the host never drops off its LAN
//!    (with STP on at enslaving, the port spent 2 × the forward delay, at least 4 s, in
//!    listening and learning);
//! 5. move each route: add it on BRIDGE (`NLM_F_APPEND`), then delete it from IFACE;
//! 6. delete the addresses from IFACE (secondaries first);
//! 7. check (phase `checking`): the default route's gateway, or `--check ADDR`, must answer
//!    an ICMP echo sent on BRIDGE, or — for an on-link target — be resolved in BRIDGE's
//!    neighbour table (ARP/NDP), within [`CHECK_TIME`], plus twice the forward delay when STP
//!    runs (a user-space STP daemon such as mstpd, which the kernel hands STP to in the root
//!    namespace, may still take the port through listening and learning). Else roll back;
//! 8. with a confirmation timeout, wait for `iface-confirm` (phase `awaiting-confirm`, the
//!    deadline stored; a daemon task rolls back when it passes, also after a restart); else
//!    `active`.
//!
//! Roll back and `iface-unbridge` run the same idempotent restore: addresses back on IFACE,
//! release IFACE, routes back on IFACE, delete BRIDGE (which takes its own copies along),
//! then IFACE's MTU, MAC and state as recorded.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use virtnet_api::{ConnectivityCheck, ErrorCode, HostBridge, HostBridgePhase, HostBridgeRequest};
use virtnet_host::{
    AddressEntry, BridgeSpec, HostError, Link, Netlink, PortSettings, RouteEntry, IFA_F_NODAD,
    RTPROT_DHCP, RTPROT_KERNEL, RT_TABLE_LOCAL,
};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::sync::lock;

/// Alias prefix of the bridges `iface-bridge` makes (not `virtnet:`: the network reconciler
/// must never take them for a network's leftovers).
pub const HOSTBRIDGE_ALIAS_PREFIX: &str = "virtnet-hostbridge:";
/// How long the connectivity check waits for an answer (without STP).
pub const CHECK_TIME: Duration = Duration::from_secs(5);
/// How many rolled-back or removed bridges are remembered for `GET` (the CLI polls).
const RECENT: usize = 32;

/// What the NIC looked like, or must look like again.
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

/// The stored record of one host bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    bridge: String,
    iface: String,
    phase: HostBridgePhase,
    stp: bool,
    delay: u32,
    /// The NIC before `iface-bridge`.
    nic: NicSnapshot,
    /// During `iface-unbridge`: what the NIC gets back (the bridge's configuration then).
    #[serde(default)]
    restore: Option<NicSnapshot>,
    #[serde(default)]
    bridge_index: Option<u32>,
    #[serde(default)]
    check: Option<ConnectivityCheck>,
    #[serde(default)]
    confirm_timeout: Option<u32>,
    /// Unix time in milliseconds by which `iface-confirm` must come.
    #[serde(default)]
    confirm_deadline: Option<u64>,
    #[serde(default)]
    dhcp: bool,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    error: Option<String>,
    /// The host configuration method the bridge was written to (`apply`ed), so that
    /// `iface-unbridge` reverts it; `None` when nothing was written.
    #[serde(default)]
    persisted: Option<String>,
    /// What the view says about the host's configuration (see `HostBridge::config`).
    #[serde(default)]
    config: Option<String>,
}

fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Record {
    fn view(&self) -> HostBridge {
        let shown = self.restore.as_ref().unwrap_or(&self.nic);
        HostBridge {
            bridge: self.bridge.clone(),
            iface: self.iface.clone(),
            phase: self.phase,
            addresses: shown
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.local, a.prefix_len))
                .collect(),
            routes: shown.routes.iter().map(RouteEntry::describe).collect(),
            check: self.check.clone(),
            confirm_remaining: match (self.phase, self.confirm_deadline) {
                (HostBridgePhase::AwaitingConfirm, Some(d)) => {
                    Some(d.saturating_sub(unix_now_ms()).div_ceil(1000))
                }
                _ => None,
            },
            dhcp: self.dhcp,
            steps: self.steps.clone(),
            error: self.error.clone(),
            warnings: self.warnings.clone(),
            config: self.config.clone(),
        }
    }
}

/// Said when no host configuration mentions the NIC.
const NOT_DETECTED: &str = "the host's network configuration method was not detected (no \
    ifupdown, netplan, NetworkManager, systemd-networkd or ifcfg file mentions the interface): \
    virtnetd re-creates the bridge when it starts after a reboot";

/// The host bridges of this daemon.
pub struct HostBridges {
    store: Arc<Store>,
    /// Root of the host's filesystem for its network configuration ("/"; tests use a copy).
    config_root: std::path::PathBuf,
    /// Serialises changes (held across a whole change, check included).
    op: Mutex<()>,
    /// Bridges rolled back or removed lately, for `GET` (a client waiting for a confirmation
    /// learns the outcome there).
    recent: Mutex<BTreeMap<String, HostBridge>>,
}

impl std::fmt::Debug for HostBridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBridges").finish_non_exhaustive()
    }
}

fn host(context: impl Into<String>) -> impl FnOnce(HostError) -> Error {
    let context = context.into();
    move |source| Error::Host { context, source }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::api(ErrorCode::Invalid, message)
}

fn conflict(message: impl Into<String>) -> Error {
    Error::api(ErrorCode::Conflict, message)
}

fn not_ours(bridge: &str) -> Error {
    Error::api(
        ErrorCode::NotFound,
        format!("bridge '{bridge}' was not made by virtnet iface-bridge"),
    )
}

fn is_hostbridge_of(link: &Link, iface: &str) -> bool {
    link.kind.as_deref() == Some("bridge")
        && link.alias.as_deref() == Some(format!("{HOSTBRIDGE_ALIAS_PREFIX}{iface}").as_str())
}

fn mac_text(mac: Option<[u8; 6]>) -> String {
    mac.map_or_else(
        || "-".to_string(),
        |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        },
    )
}

/// The routes of `index` that move with the NIC: not the local table, not the kernel's
/// prefix routes (they follow the addresses), not cached clones.
fn routes_through(routes: &[RouteEntry], index: u32) -> Vec<RouteEntry> {
    routes
        .iter()
        .filter(|r| r.oif == Some(index))
        .filter(|r| r.table != RT_TABLE_LOCAL && r.protocol != RTPROT_KERNEL)
        .cloned()
        .collect()
}

fn snapshot_of(nl: &mut Netlink, link: &Link) -> Result<NicSnapshot> {
    let addresses = nl
        .address_entries()
        .map_err(host("list addresses"))?
        .into_iter()
        .filter(|a| a.ifindex == link.index && !a.is_ipv6_link_local())
        .collect();
    let all = nl.route_entries().map_err(host("list routes"))?;
    let routes = routes_through(&all, link.index);
    if let Some(r) = all.iter().find(|r| r.multipath) {
        tracing::warn!(route = %r.describe(), "multipath route left as it is");
    }
    Ok(NicSnapshot {
        name: link.name.clone(),
        index: link.index,
        mac: link.mac,
        mtu: link.mtu,
        up: link.up,
        addresses,
        routes,
    })
}

/// `label` of an address moved from link `from` to link `to` (`eth0:1` → `br0:1`).
fn relabel(label: &Option<String>, from: &str, to: &str) -> Option<String> {
    label.as_ref().map(|l| match l.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => to.to_string(),
    })
}

/// The address `a` as it goes on link `to` (`to_name`): relabelled; IPv6 without DAD when
/// it goes to the bridge (it is already ours).
fn moved_address(
    a: &AddressEntry,
    from: &str,
    to_name: &str,
    to: u32,
    nodad: bool,
) -> AddressEntry {
    let mut m = a.clone();
    m.ifindex = to;
    m.label = relabel(&a.label, from, to_name);
    if nodad && a.local.is_ipv6() {
        m.flags |= IFA_F_NODAD;
    }
    m
}

fn moved_route(r: &RouteEntry, to: u32) -> RouteEntry {
    let mut m = r.clone();
    m.oif = Some(to);
    m
}

fn ok_if_exists(r: std::result::Result<(), HostError>) -> std::result::Result<(), HostError> {
    match r {
        Err(e) if e.is_exists() => Ok(()),
        other => other,
    }
}

fn ok_if_missing(r: std::result::Result<(), HostError>) -> std::result::Result<(), HostError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Same address and prefix (lifetimes and flags aside).
fn same_address(a: &AddressEntry, b: &AddressEntry) -> bool {
    a.local == b.local && a.prefix_len == b.prefix_len && a.peer == b.peer
}

/// Same route (output interface aside).
fn same_route(a: &RouteEntry, b: &RouteEntry) -> bool {
    a.dest == b.dest
        && a.prefix == b.prefix
        && a.table == b.table
        && a.gateway == b.gateway
        && a.metric == b.metric
        && a.tos == b.tos
        && a.source == b.source
}

/// The address to check: `--check`, else the gateway of the best default route (IPv4 first).
fn check_target(req_check: Option<IpAddr>, nic: &NicSnapshot) -> Option<(IpAddr, &'static str)> {
    if let Some(a) = req_check {
        return Some((a, "address"));
    }
    let mut defaults: Vec<&RouteEntry> = nic
        .routes
        .iter()
        .filter(|r| r.prefix == 0 && r.gateway.is_some())
        .collect();
    defaults.sort_by_key(|r| (r.dest.is_ipv6(), r.metric.unwrap_or(0)));
    defaults
        .first()
        .and_then(|r| r.gateway)
        .map(|g| (g, "gateway"))
}

/// Whether `ip` lies in the subnet of one of `addrs` (resolvable by ARP/NDP on the link).
fn on_link(ip: IpAddr, addrs: &[AddressEntry], routes: &[RouteEntry]) -> bool {
    let in_net = |net: IpAddr, len: u8| match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    };
    addrs.iter().any(|a| in_net(a.local, a.prefix_len))
        || routes.iter().any(|r| r.gateway == Some(ip))
}

impl HostBridges {
    /// The host bridges recorded in `store`.
    pub fn new(store: Arc<Store>, config_root: std::path::PathBuf) -> HostBridges {
        HostBridges {
            store,
            config_root,
            op: Mutex::new(()),
            recent: Mutex::new(BTreeMap::new()),
        }
    }

    fn records(&self) -> Result<Vec<Record>> {
        self.store.host_bridges()
    }

    fn record(&self, bridge: &str) -> Result<Option<Record>> {
        Ok(self.records()?.into_iter().find(|r| r.bridge == bridge))
    }

    fn put(&self, rec: &Record) -> Result<()> {
        self.store.put_host_bridge(&rec.bridge, rec)
    }

    fn remember(&self, view: HostBridge) {
        let mut recent = lock(&self.recent);
        recent.insert(view.bridge.clone(), view);
        while recent.len() > RECENT {
            let Some(k) = recent.keys().next().cloned() else {
                break;
            };
            recent.remove(&k);
        }
    }

    /// `GET /v1/host-bridges`.
    pub fn list(&self) -> Result<Vec<HostBridge>> {
        Ok(self.records()?.iter().map(Record::view).collect())
    }

    /// `GET /v1/host-bridges/{bridge}`: recorded, else lately rolled back or removed.
    pub fn get(&self, bridge: &str) -> Result<HostBridge> {
        if let Some(r) = self.record(bridge)? {
            return Ok(r.view());
        }
        lock(&self.recent)
            .get(bridge)
            .cloned()
            .ok_or_else(|| not_ours(bridge))
    }

    /// `POST /v1/host-bridges`: the whole change, the check, and the roll back on failure.
    /// Blocking (seconds: the check waits for answers). With a confirmation timeout, arms the
    /// timer on the current tokio runtime.
    pub fn create(self: &Arc<Self>, req: &HostBridgeRequest) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        if req.iface == req.bridge {
            return Err(invalid("the interface and the bridge must differ"));
        }
        if req.bridge.is_empty() || req.bridge.len() > 15 || req.bridge.contains(['/', ' ']) {
            return Err(invalid(format!(
                "'{}' is not a valid interface name",
                req.bridge
            )));
        }
        if req.delay > 30 {
            return Err(invalid("the forward delay is at most 30 seconds"));
        }
        let link = nl
            .link(&req.iface)
            .map_err(host(format!("look up interface {}", req.iface)))?
            .ok_or_else(|| invalid(format!("no interface '{}'", req.iface)))?;
        if link.name == "lo" || link.kind.as_deref() == Some("bridge") {
            return Err(invalid(format!(
                "'{}' cannot be put behind a bridge (it is a loopback or a bridge)",
                req.iface
            )));
        }
        if let Some(m) = link.master {
            return Err(conflict(format!(
                "'{}' is already enslaved to interface #{m}",
                req.iface
            )));
        }
        if nl
            .link(&req.bridge)
            .map_err(host("look up bridge"))?
            .is_some()
        {
            return Err(conflict(format!(
                "an interface named '{}' exists already",
                req.bridge
            )));
        }
        if self.record(&req.bridge)?.is_some() {
            return Err(conflict(format!(
                "host bridge '{}' is recorded already",
                req.bridge
            )));
        }
        if self.records()?.iter().any(|r| r.iface == req.iface) {
            return Err(conflict(format!(
                "'{}' is behind a host bridge already",
                req.iface
            )));
        }
        let nic = snapshot_of(&mut nl, &link)?;
        let dhcp = nic.addresses.iter().any(AddressEntry::is_dynamic)
            || nic.routes.iter().any(|r| r.protocol == RTPROT_DHCP);
        let mut rec = Record {
            bridge: req.bridge.clone(),
            iface: req.iface.clone(),
            phase: HostBridgePhase::Applying,
            stp: req.stp,
            delay: req.delay,
            nic: nic.clone(),
            restore: None,
            bridge_index: None,
            check: None,
            confirm_timeout: req.confirm_timeout,
            confirm_deadline: None,
            dhcp,
            steps: plan_steps(req, &nic),
            warnings: warnings(req, &nic, dhcp),
            error: None,
            persisted: None,
            config: None,
        };
        if req.dry_run {
            rec.phase = HostBridgePhase::Planned;
            rec.config = Some(match self.host_config(&rec) {
                Ok(Some((method, change))) => format!(
                    "{} configuration, written when the change is kept:\n{}",
                    method.name(),
                    virtnet_hostcfg::describe(&change)
                ),
                Ok(None) => NOT_DETECTED.to_string(),
                Err(e) => format!("not persisted: {e}"),
            });
            return Ok(rec.view());
        }
        // Durable before anything changes: a crash from here on is rolled back at start.
        self.put(&rec)?;
        tracing::info!(iface = %req.iface, bridge = %req.bridge, addresses = nic.addresses.len(), routes = nic.routes.len(), "iface-bridge: snapshot recorded");
        let started = Instant::now();
        if let Err(e) = self.apply(&mut nl, &mut rec) {
            let reason = format!("{e}");
            tracing::error!(bridge = %rec.bridge, error = %reason, "iface-bridge failed; rolling back");
            return Err(self.fail(&mut nl, rec, format!("the change failed: {reason}")));
        }
        tracing::info!(bridge = %rec.bridge, elapsed_ms = started.elapsed().as_millis() as u64, "iface-bridge: change made; checking");
        rec.phase = HostBridgePhase::Checking;
        self.put(&rec)?;
        if let Some((target, kind)) = check_target(req.check, &nic) {
            let bridge_index = rec.bridge_index.unwrap_or(0);
            let stp_delay = if req.stp {
                2 * req.delay.clamp(2, 30)
            } else {
                0
            };
            let limit = CHECK_TIME + Duration::from_secs(u64::from(stp_delay));
            let onlink = on_link(target, &nic.addresses, &nic.routes);
            let t0 = Instant::now();
            let answer = check(&mut nl, &rec.bridge, bridge_index, target, onlink, limit);
            let elapsed_ms = t0.elapsed().as_millis() as u64;
            rec.check = Some(ConnectivityCheck {
                target,
                kind: kind.to_string(),
                answered_by: answer.clone(),
                elapsed_ms,
            });
            if answer.is_none() {
                let reason = format!(
                    "connectivity check failed: {kind} {target} did not answer on {} within {} s",
                    rec.bridge,
                    limit.as_secs()
                );
                return Err(self.fail(&mut nl, rec, reason));
            }
            tracing::info!(bridge = %rec.bridge, %target, elapsed_ms, by = ?answer, "iface-bridge: connectivity checked");
        } else {
            rec.warnings.push(format!(
                "no default route through {} and no --check address: connectivity was not checked",
                rec.iface
            ));
        }
        match req.confirm_timeout {
            Some(secs) => {
                rec.phase = HostBridgePhase::AwaitingConfirm;
                let deadline = unix_now_ms() + 1000 * u64::from(secs);
                rec.confirm_deadline = Some(deadline);
                self.put(&rec)?;
                self.arm_timer(rec.bridge.clone(), deadline);
            }
            None => {
                rec.phase = HostBridgePhase::Active;
                self.persist(&mut rec);
                self.put(&rec)?;
            }
        }
        Ok(rec.view())
    }

    /// The host configuration change that makes the bridge survive a reboot, `None` when no
    /// method configures the NIC (then virtnetd re-creates the bridge at start).
    fn host_config(
        &self,
        rec: &Record,
    ) -> std::result::Result<Option<(virtnet_hostcfg::Method, virtnet_hostcfg::Change)>, String>
    {
        let root = &self.config_root;
        let detected = virtnet_hostcfg::detect(root, &rec.iface).map_err(|e| e.to_string())?;
        let Some(detected) = detected else {
            return Ok(None);
        };
        let plan = virtnet_hostcfg::BridgePlan {
            iface: rec.iface.clone(),
            bridge: rec.bridge.clone(),
            stp: rec.stp,
            delay: rec.delay,
            mac: rec.nic.mac,
            mtu: Some(rec.nic.mtu),
            addressing: detected.addressing.clone(),
        };
        let change = virtnet_hostcfg::render(detected.method, &plan, &detected, root)
            .map_err(|e| e.to_string())?;
        Ok(Some((detected.method, change)))
    }

    /// Writes the kept bridge into the host's configuration; failures become warnings (the
    /// running bridge is fine, and virtnetd restores it at start when nothing was written).
    fn persist(&self, rec: &mut Record) {
        match self.host_config(rec) {
            Ok(Some((method, change))) => {
                match virtnet_hostcfg::apply(&self.config_root, &change) {
                    Ok(()) => {
                        let files: Vec<String> = change
                            .write
                            .iter()
                            .map(|(p, _)| p.display().to_string())
                            .collect();
                        rec.persisted = Some(method.name().to_string());
                        rec.config = Some(format!(
                            "written to the host's {} configuration: {}",
                            method.name(),
                            files.join(", ")
                        ));
                    }
                    Err(e) => rec.warnings.push(format!(
                        "the bridge was not written to the host's {} configuration: {e}; virtnetd \
                     re-creates it at start",
                        method.name()
                    )),
                }
            }
            Ok(None) => {
                rec.config = Some(NOT_DETECTED.to_string());
                rec.warnings.push(NOT_DETECTED.to_string());
            }
            Err(e) => rec.warnings.push(format!(
                "the host's network configuration could not be read ({e}); virtnetd re-creates \
                 the bridge at start"
            )),
        }
    }

    /// Steps 2–6 of the module comment.
    fn apply(&self, nl: &mut Netlink, rec: &mut Record) -> Result<()> {
        let nic = rec.nic.clone();
        let spec = BridgeSpec {
            name: rec.bridge.clone(),
            mac: nic.mac,
            mtu: Some(nic.mtu),
            alias: format!("{HOSTBRIDGE_ALIAS_PREFIX}{}", nic.name),
            // STP off while the NIC is enslaved, so its port forwards at once; turned on
            // below (see `start_stp`).
            stp: false,
            forward_delay_cs: rec.delay * 100,
            group: 0,
        };
        let index = nl
            .create_bridge(&spec)
            .map_err(host(format!("create bridge {}", rec.bridge)))?;
        rec.bridge_index = Some(index);
        self.put(rec)?;
        for a in &nic.addresses {
            let m = moved_address(a, &nic.name, &rec.bridge, index, true);
            ok_if_exists(nl.add_address_entry(&m)).map_err(host("add address to the bridge"))?;
        }
        nl.set_port(
            nic.index,
            &PortSettings {
                master: Some(Some(index)),
                ..PortSettings::default()
            },
        )
        .map_err(host(format!("enslave {} to {}", nic.name, rec.bridge)))?;
        if rec.stp && start_stp(nl, index, &spec)? {
            // A user-space STP daemon decides the port's state: the outage may be back.
            let kernel = stp_warning(&rec.iface, &rec.bridge, rec.delay, false);
            let user = stp_warning(&rec.iface, &rec.bridge, rec.delay, true);
            match rec.warnings.iter_mut().find(|w| **w == kernel) {
                Some(w) => *w = user,
                None => rec.warnings.push(user),
            }
        }
        for r in &nic.routes {
            ok_if_exists(nl.add_route_entry(&moved_route(r, index)))
                .map_err(host("add route to the bridge"))?;
            ok_if_missing(nl.del_route_entry(r)).map_err(host("delete route from the NIC"))?;
        }
        // Secondaries first: deleting a primary takes its secondaries along.
        for a in nic.addresses.iter().rev() {
            ok_if_missing(nl.del_address_entry(a)).map_err(host("delete address from the NIC"))?;
        }
        Ok(())
    }

    /// Rolls `rec` back and turns `reason` into the error the client gets.
    fn fail(&self, nl: &mut Netlink, mut rec: Record, reason: String) -> Error {
        rec.error = Some(reason.clone());
        match self.roll_back(nl, &mut rec) {
            Ok(()) => conflict(format!(
                "{reason}; rolled back: {} has its addresses and routes again and {} is gone",
                rec.iface, rec.bridge
            )),
            Err(e) => Error::api(
                ErrorCode::Internal,
                format!("{reason}; the roll back failed too (it is retried at the next start of virtnetd): {e}"),
            ),
        }
    }

    /// Restores the NIC as recorded before `iface-bridge` and forgets the record.
    fn roll_back(&self, nl: &mut Netlink, rec: &mut Record) -> Result<()> {
        rec.phase = HostBridgePhase::RollingBack;
        self.put(rec)?;
        let target = rec.nic.clone();
        restore(nl, rec, &target)?;
        self.store.delete_host_bridge(&rec.bridge)?;
        rec.phase = HostBridgePhase::RolledBack;
        tracing::info!(bridge = %rec.bridge, iface = %rec.iface, reason = ?rec.error, "host bridge rolled back");
        self.remember(rec.view());
        Ok(())
    }

    /// `POST /v1/host-bridges/{bridge}/confirm`.
    pub fn confirm(&self, bridge: &str) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut rec = self
            .record(bridge)?
            .ok_or_else(|| match lock(&self.recent).get(bridge) {
                Some(v) => conflict(format!(
                    "host bridge '{bridge}' was {} already",
                    v.phase.as_str()
                )),
                None => not_ours(bridge),
            })?;
        match rec.phase {
            HostBridgePhase::AwaitingConfirm => {
                rec.phase = HostBridgePhase::Active;
                rec.confirm_deadline = None;
                self.persist(&mut rec);
                self.put(&rec)?;
                tracing::info!(bridge, "host bridge confirmed");
                Ok(rec.view())
            }
            HostBridgePhase::Active => Ok(rec.view()),
            other => Err(conflict(format!(
                "host bridge '{bridge}' is {}, not waiting for a confirmation",
                other.as_str()
            ))),
        }
    }

    /// Called when a confirmation deadline passes.
    fn expire(&self, bridge: &str) -> Result<()> {
        let _op = lock(&self.op);
        let Some(mut rec) = self.record(bridge)? else {
            return Ok(());
        };
        if rec.phase != HostBridgePhase::AwaitingConfirm
            || rec.confirm_deadline.is_some_and(|d| d > unix_now_ms())
        {
            return Ok(());
        }
        rec.error = Some(format!(
            "not confirmed within {} s (iface-confirm {bridge})",
            rec.confirm_timeout.unwrap_or(0)
        ));
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        self.roll_back(&mut nl, &mut rec)
    }

    fn arm_timer(self: &Arc<Self>, bridge: String, deadline: u64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%bridge, "no runtime for the confirmation timer");
            return;
        };
        let me = Arc::clone(self);
        rt.spawn(async move {
            let wait = deadline.saturating_sub(unix_now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await;
            // A few hundred ms late at most; `expire` checks the deadline again.
            let mut tries = 0;
            loop {
                let me2 = Arc::clone(&me);
                let b = bridge.clone();
                let res = tokio::task::spawn_blocking(move || me2.expire(&b)).await;
                match res {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => tracing::error!(%bridge, error = %e, "roll back after a missed confirmation failed"),
                    Err(e) => tracing::error!(%bridge, error = %e, "confirmation timer task failed"),
                }
                tries += 1;
                if tries >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// `DELETE /v1/host-bridges/{bridge}` (`iface-unbridge`): the bridge's addresses and
    /// routes back to the NIC, release it, delete the bridge.
    pub fn unbridge(&self, bridge: &str) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut rec = self.record(bridge)?.ok_or_else(|| not_ours(bridge))?;
        if !matches!(
            rec.phase,
            HostBridgePhase::Active | HostBridgePhase::AwaitingConfirm
        ) {
            return Err(conflict(format!(
                "host bridge '{bridge}' is {}",
                rec.phase.as_str()
            )));
        }
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        let link = nl
            .link(bridge)
            .map_err(host("look up bridge"))?
            .filter(|l| is_hostbridge_of(l, &rec.iface))
            .ok_or_else(|| not_ours(bridge))?;
        let now = snapshot_of(&mut nl, &link)?;
        // What the NIC gets back: the bridge's configuration now (a DHCP client on the bridge
        // may have renewed), with the NIC's own labels and flags where the entry is the same.
        let addresses = now
            .addresses
            .iter()
            .map(|a| {
                let base = rec.nic.addresses.iter().find(|o| same_address(o, a));
                match base {
                    Some(o) => AddressEntry {
                        valid_lft: a.valid_lft,
                        preferred_lft: a.preferred_lft,
                        ..o.clone()
                    },
                    None => {
                        let mut m = moved_address(a, bridge, &rec.iface, rec.nic.index, false);
                        m.flags &= !IFA_F_NODAD;
                        m
                    }
                }
            })
            .collect();
        let routes = now
            .routes
            .iter()
            .map(|r| {
                rec.nic
                    .routes
                    .iter()
                    .find(|o| same_route(o, r))
                    .cloned()
                    .unwrap_or_else(|| moved_route(r, rec.nic.index))
            })
            .collect();
        let target = NicSnapshot {
            addresses,
            routes,
            ..rec.nic.clone()
        };
        rec.restore = Some(target.clone());
        rec.phase = HostBridgePhase::Unbridging;
        self.put(&rec)?;
        restore(&mut nl, &rec, &target)?;
        if rec.persisted.take().is_some() {
            if let Err(e) = virtnet_hostcfg::revert(&self.config_root, bridge) {
                rec.warnings.push(format!(
                    "the host's configuration could not be restored: {e}"
                ));
            }
        }
        self.store.delete_host_bridge(bridge)?;
        rec.phase = HostBridgePhase::Removed;
        tracing::info!(bridge, iface = %rec.iface, "host bridge removed");
        let view = rec.view();
        self.remember(view.clone());
        Ok(view)
    }

    /// Start-up: finishes or undoes what a previous run left: `active` bridges stay,
    /// `awaiting-confirm` ones get their timer again (or are rolled back when it passed),
    /// `unbridging` ones are finished, anything else is rolled back. Returns the bridges
    /// restored.
    pub fn recover(self: &Arc<Self>) -> Result<Vec<String>> {
        let records = self.records()?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        let mut done = Vec::new();
        for mut rec in records {
            let _op = lock(&self.op);
            match rec.phase {
                HostBridgePhase::Active => {
                    // Not written to the host's configuration: after a reboot the bridge is
                    // gone, and virtnetd makes it again from the record.
                    let present = nl
                        .link(&rec.bridge)
                        .map_err(host("look up bridge"))?
                        .is_some();
                    if present || rec.persisted.is_some() {
                        continue;
                    }
                    tracing::info!(bridge = %rec.bridge, iface = %rec.iface, "host bridge missing at start; re-creating it");
                    if let Err(e) = self.apply(&mut nl, &mut rec) {
                        tracing::error!(bridge = %rec.bridge, error = %e, "cannot re-create the host bridge");
                    }
                    self.put(&rec)?;
                    continue;
                }
                HostBridgePhase::AwaitingConfirm => {
                    if let Some(d) = rec.confirm_deadline.filter(|d| *d > unix_now_ms()) {
                        self.arm_timer(rec.bridge.clone(), d);
                        continue;
                    }
                    rec.error = Some("not confirmed in time (virtnetd was restarted)".into());
                    self.roll_back(&mut nl, &mut rec)?;
                }
                HostBridgePhase::Unbridging => {
                    let target = rec.restore.clone().unwrap_or_else(|| rec.nic.clone());
                    restore(&mut nl, &rec, &target)?;
                    self.store.delete_host_bridge(&rec.bridge)?;
                    rec.phase = HostBridgePhase::Removed;
                    self.remember(rec.view());
                }
                _ => {
                    rec.error = Some(format!(
                        "virtnetd stopped while the change was {}",
                        rec.phase.as_str()
                    ));
                    self.roll_back(&mut nl, &mut rec)?;
                }
            }
            tracing::warn!(bridge = %rec.bridge, iface = %rec.iface, "unfinished iface-bridge restored at start");
            done.push(rec.bridge.clone());
        }
        Ok(done)
    }
}

/// Puts `target` back on the NIC and deletes the bridge (if it is ours). Idempotent: every
/// step tolerates having been done already, so it can resume after a crash.
fn restore(nl: &mut Netlink, rec: &Record, target: &NicSnapshot) -> Result<()> {
    let nic = nl
        .link(&target.name)
        .map_err(host("look up the NIC"))?
        .ok_or_else(|| {
            Error::api(
                ErrorCode::Internal,
                format!("interface '{}' is gone; cannot restore it", target.name),
            )
        })?;
    let bridge = nl
        .link(&rec.bridge)
        .map_err(host("look up the bridge"))?
        .filter(|l| is_hostbridge_of(l, &rec.iface));
    let bridge_addrs: Vec<AddressEntry> = match &bridge {
        Some(b) => nl
            .address_entries()
            .map_err(host("list addresses"))?
            .into_iter()
            .filter(|a| a.ifindex == b.index)
            .collect(),
        None => Vec::new(),
    };
    let present: Vec<AddressEntry> = nl
        .address_entries()
        .map_err(host("list addresses"))?
        .into_iter()
        .filter(|a| a.ifindex == nic.index)
        .collect();
    // IPv4 in the kernel's order (primaries first); IPv6 oldest first (the kernel lists the
    // newest first).
    let mut order: Vec<&AddressEntry> = target
        .addresses
        .iter()
        .filter(|a| a.local.is_ipv4())
        .collect();
    order.extend(target.addresses.iter().filter(|a| a.local.is_ipv6()).rev());
    for a in order {
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
        ok_if_exists(nl.add_address_entry(&a)).map_err(host("put an address back on the NIC"))?;
    }
    if nic.master.is_some() && nic.master == bridge.as_ref().map(|b| b.index) {
        nl.set_port(
            nic.index,
            &PortSettings {
                master: Some(None),
                ..PortSettings::default()
            },
        )
        .map_err(host("release the NIC"))?;
    }
    for r in &target.routes {
        let mut r = r.clone();
        r.oif = Some(nic.index);
        ok_if_exists(nl.add_route_entry(&r)).map_err(host("put a route back on the NIC"))?;
    }
    if let Some(b) = &bridge {
        nl.delete_link(b.index).map_err(host("delete the bridge"))?;
    }
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
    if fix != PortSettings::default() {
        nl.set_port(nic.index, &fix)
            .map_err(host("restore the NIC's settings"))?;
    }
    Ok(())
}

/// Turns STP on for the bridge `index` (`spec` with STP) once the NIC is its port.
///
/// The kernel puts a port added to an STP bridge in listening, then learning, for the
/// forward delay each (at least 2 s each) before it forwards: enslaving the host's NIC that
/// way cut the host off its LAN for 4 s (issue 11, finding 8). A port added while STP is off
/// forwards at once, and starting STP leaves it so (`br_stp_start` →
/// `br_port_state_selection` → `br_make_forwarding` only moves ports that are blocking);
/// STP then runs as asked: BPDUs are sent and received and a loop it detects is blocked.
/// Ports added later (guests' taps) go through listening and learning as usual.
///
/// Returns whether a user-space STP daemon took STP over (then the port's state is its
/// decision, not the kernel's).
fn start_stp(nl: &mut Netlink, index: u32, spec: &BridgeSpec) -> Result<bool> {
    let on = BridgeSpec {
        stp: true,
        ..spec.clone()
    };
    nl.update_bridge(index, &on)
        .map_err(host(format!("turn STP on for {}", spec.name)))?;
    let link = nl
        .link_by_index(index)
        .map_err(host(format!("look up bridge {}", spec.name)))?;
    Ok(link.and_then(|l| l.bridge).is_some_and(|b| b.user_stp))
}

/// What the output says about STP on the new bridge (`user`: run by a user-space daemon).
fn stp_warning(iface: &str, bridge: &str, delay: u32, user: bool) -> String {
    let wait = 2 * delay.clamp(2, 30);
    if user {
        format!(
            "STP is on and run by a user-space daemon (the kernel handed it to \
             /sbin/bridge-stp): it may hold {iface} in listening and learning for up to \
             {wait} s, cutting the host off the LAN meanwhile; --no-stp avoids it"
        )
    } else {
        format!(
            "STP is on: {iface} was enslaved before STP was turned on, so it forwarded at once \
             (no outage); ports added to {bridge} later (guests) wait {wait} s in listening \
             and learning before they forward, and a loop through {iface} is blocked once STP \
             sees it; --no-stp turns STP off"
        )
    }
}

fn plan_steps(req: &HostBridgeRequest, nic: &NicSnapshot) -> Vec<String> {
    let mut s = vec![format!(
        "create bridge {} (mac {}, mtu {}, stp off, delay {} s) and bring it up",
        req.bridge,
        mac_text(nic.mac),
        nic.mtu,
        req.delay
    )];
    for a in &nic.addresses {
        s.push(format!(
            "add {}/{} to {}",
            a.local, a.prefix_len, req.bridge
        ));
    }
    s.push(format!("enslave {} to {}", req.iface, req.bridge));
    if req.stp {
        s.push(format!(
            "turn STP on for {} ({} keeps forwarding)",
            req.bridge, req.iface
        ));
    }
    for r in &nic.routes {
        s.push(format!(
            "move route {} from {} to {}",
            r.describe(),
            req.iface,
            req.bridge
        ));
    }
    for a in nic.addresses.iter().rev() {
        s.push(format!(
            "delete {}/{} from {}",
            a.local, a.prefix_len, req.iface
        ));
    }
    match check_target(req.check, nic) {
        Some((t, kind)) => s.push(format!(
            "check that {kind} {t} answers on {} (else roll back)",
            req.bridge
        )),
        None => s.push("no check: no default route and no --check address".into()),
    }
    if let Some(n) = req.confirm_timeout {
        s.push(format!(
            "wait {n} s for iface-confirm {} (else roll back)",
            req.bridge
        ));
    }
    s
}

fn warnings(req: &HostBridgeRequest, nic: &NicSnapshot, dhcp: bool) -> Vec<String> {
    let mut w = Vec::new();
    if dhcp {
        w.push(format!(
            "{iface} was configured by DHCP: the DHCP client must now run on {br}, not on \
             {iface} (stop it on {iface} and start it on {br}, e.g. `dhclient -r {iface}; \
             dhclient {br}`, or point systemd-networkd / NetworkManager / ifupdown at {br}). \
             {br} has {iface}'s MAC {mac}, so the server's lease stays valid and the address \
             keeps working until the client renews; the persistent configuration is rewritten \
             by virtnet-hostcfg.",
            iface = req.iface,
            br = req.bridge,
            mac = mac_text(nic.mac)
        ));
    }
    if req.stp {
        w.push(stp_warning(&req.iface, &req.bridge, req.delay, false));
    }
    w
}

/// Waits until `target` answers on `bridge`: an ICMP echo reply, or (on-link) a resolved
/// neighbour entry on the bridge. Returns how it answered.
fn check(
    nl: &mut Netlink,
    bridge: &str,
    bridge_index: u32,
    target: IpAddr,
    onlink: bool,
    limit: Duration,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    let pinger = Pinger::open(bridge, target)
        .inspect_err(|e| tracing::warn!(error = %e, "no ICMP socket; checking ARP/NDP only"))
        .ok();
    let mut seq: u16 = 0;
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            seq = seq.wrapping_add(1);
            if let Some(p) = &pinger {
                if let Err(e) = p.send(seq) {
                    tracing::debug!(error = %e, "echo request not sent");
                }
            }
            next_send = Instant::now() + Duration::from_millis(200);
        }
        if let Some(p) = &pinger {
            if p.wait_reply(Duration::from_millis(50)) {
                return Some("icmp-echo".into());
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if onlink {
            if let Ok(ns) = nl.neighbours() {
                if ns
                    .iter()
                    .any(|n| n.ifindex == bridge_index && n.ip == target)
                {
                    return Some("neighbour".into());
                }
            }
        }
    }
    None
}

/// A raw ICMP (or ICMPv6) socket bound to one device.
struct Pinger {
    fd: OwnedFd,
    target: IpAddr,
    id: u16,
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl Pinger {
    fn open(device: &str, target: IpAddr) -> std::io::Result<Pinger> {
        let (domain, proto) = match target {
            IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
            IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(last_err());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = device.as_bytes();
        // SAFETY: the option value is the device name's bytes, with their length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_err());
        }
        let id = (std::process::id() as u16) ^ (unix_now() as u16).rotate_left(7);
        Ok(Pinger { fd, target, id })
    }

    fn send(&self, seq: u16) -> std::io::Result<()> {
        let mut pkt = [0u8; 16];
        pkt[0] = if self.target.is_ipv4() { 8 } else { 128 };
        pkt[4..6].copy_from_slice(&self.id.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        pkt[8..16].copy_from_slice(b"virtnet!");
        if self.target.is_ipv4() {
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        }
        let rc = match self.target {
            IpAddr::V4(a) => {
                // SAFETY: zeroed sockaddr_in is valid; filled below.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                // SAFETY: valid buffer and address of the stated sizes.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            IpAddr::V6(a) => {
                // SAFETY: zeroed sockaddr_in6 is valid; filled below.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                // SAFETY: valid buffer and address of the stated sizes.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if rc < 0 {
            return Err(last_err());
        }
        Ok(())
    }

    /// Waits up to `wait` for an echo reply from the target with our id.
    fn wait_reply(&self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            if n <= 0 {
                return false;
            }
            let mut buf = [0u8; 1500];
            // SAFETY: zeroed sockaddr_storage is valid for recvfrom to fill.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: valid buffer and address storage of the stated sizes.
            let got = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_storage).cast(),
                    &mut len,
                )
            };
            if got <= 0 {
                if Instant::now() >= end {
                    return false;
                }
                continue;
            }
            let pkt = &buf[..got as usize];
            if self.is_reply(pkt, &from) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    fn is_reply(&self, pkt: &[u8], from: &libc::sockaddr_storage) -> bool {
        match self.target {
            IpAddr::V4(a) => {
                // Raw IPv4 sockets hand over the IP header too.
                let Some(&vhl) = pkt.first() else {
                    return false;
                };
                let ihl = usize::from(vhl & 0x0f) * 4;
                if pkt.len() < ihl + 8 || pkt.len() < 20 || pkt[12..16] != a.octets() {
                    return false;
                }
                let icmp = &pkt[ihl..];
                icmp[0] == 0 && icmp[4..6] == self.id.to_be_bytes()
            }
            IpAddr::V6(a) => {
                // SAFETY: for an AF_INET6 socket the kernel fills a sockaddr_in6.
                let sa = unsafe {
                    &*(from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                pkt.len() >= 8
                    && sa.sin6_addr.s6_addr == a.octets()
                    && pkt[0] == 129
                    && pkt[4..6] == self.id.to_be_bytes()
            }
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        let mut pkt = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&pkt), 0);
    }

    #[test]
    fn labels_follow_the_link() {
        assert_eq!(
            relabel(&Some("eth0:1".into()), "eth0", "br0"),
            Some("br0:1".into())
        );
        assert_eq!(
            relabel(&Some("eth0".into()), "eth0", "br0"),
            Some("br0".into())
        );
        assert_eq!(relabel(&None, "eth0", "br0"), None);
    }

    #[test]
    fn on_link_targets() {
        let a = AddressEntry {
            ifindex: 2,
            local: "198.51.100.10".parse().unwrap(),
            peer: None,
            prefix_len: 24,
            broadcast: None,
            label: None,
            scope: 0,
            flags: 0,
            valid_lft: u32::MAX,
            preferred_lft: u32::MAX,
            route_metric: None,
        };
        assert!(on_link(
            "198.51.100.1".parse().unwrap(),
            std::slice::from_ref(&a),
            &[]
        ));
        assert!(!on_link("203.0.113.1".parse().unwrap(), &[a], &[]));
    }
}
