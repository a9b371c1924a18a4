//! Guest ports: a tap per guest NIC on a network's bridge (`attach-interface`), recorded in the
//! store so that ports survive daemon restarts, re-attached when their network restarts, and
//! movable live to another network or bridge.
//!
//! Naming follows libvirt: `vnetN` from a counter that moves forward, so a name just freed is
//! not handed out again at once (a guest's old name in logs stays unambiguous). The tap's MAC
//! is the guest's with the first byte `fe` (`fa` when the guest's starts with `fe`), so the
//! bridge never takes the guest's address as its own and the two are easy to pair by eye.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use virtnet_api::{check_domain_name, Port, PortRequest};
use virtnet_host::tap::TapSpec;
use virtnet_model::{InterfaceSource, MacAddr};

mod addresses;
mod claims;
mod directory;
mod helper;
mod hypervisor;
mod hypervisor_guard;
mod learning;

use claims::{Claim, Claims, Refused};
pub use directory::{BridgeDirectory, Serving};
pub use helper::{HelperPortPolicy, DEFAULT_HELPER_PORTS_PER_USER};
pub use hypervisor::{
    HypervisorPort, HypervisorPortInfo, BANDWIDTH_PARAMETERS, PORT_CREATE_RECLAIM,
    PORT_CREATE_VALIDATE,
};

use crate::error::{Error, Kind, Result};
use crate::kernel::{Antispoof, DropCounts, PortKernel, TapPlan};
use crate::store::Store;
use crate::sync::lock;

/// Alias prefix of port taps (not `virtnet:`, which marks bridges the reconcile may delete).
pub const PORT_ALIAS_PREFIX: &str = "virtnet-port:";

/// A new port's record: what the request says, the rest as for a single-queue tap that
/// virtnet makes (its MTU is set once the kernel has it).
fn new_record(req: &PortRequest, name: String, mac: MacAddr) -> PortRecord {
    PortRecord {
        name,
        domain: req.domain.clone(),
        source: req.source.clone(),
        mac,
        model: req.model.clone(),
        owner_uid: req.owner_uid,
        owner_gid: req.owner_gid,
        queues: 1,
        vnet_hdr: req.vnet_hdr,
        link_up: true,
        adopted: false,
        mtu: 0,
        macvtap_on: None,
        helper: req.helper,
        no_spoof_check: req.no_spoof_check,
        isolated: req.isolated,
        learned_ipv4: None,
    }
}

/// A port as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// Tap name.
    pub name: String,
    /// The guest.
    pub domain: String,
    /// Network or bridge.
    pub source: InterfaceSource,
    /// Guest MAC.
    pub mac: MacAddr,
    /// Guest NIC model.
    pub model: Option<String>,
    /// Tap owner.
    pub owner_uid: Option<u32>,
    /// Tap group.
    pub owner_gid: Option<u32>,
    /// Queues.
    pub queues: u32,
    /// `IFF_VNET_HDR`.
    pub vnet_hdr: bool,
    /// Administrative link state.
    pub link_up: bool,
    /// The tap was made by someone else (QEMU's `script=` mode) and is only attached.
    pub adopted: bool,
    /// MTU the tap got last time it was attached.
    pub mtu: u32,
    /// For a port of a direct (macvtap) network: the host NIC it sits on. Such a port is a
    /// macvtap device carrying the guest's own MAC, not a tap on a bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvtap_on: Option<String>,
    /// Made for the setuid bridge helper: counted per user and reaped by the sweeper.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub helper: bool,
    /// `--no-spoof-check`: the guest may send any source MAC and address (ports on nat,
    /// route and isolated networks are otherwise guarded, see `virtnet_plan::spoof`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_spoof_check: bool,
    /// `<port isolated='yes'/>` on this port: it reaches only the bridge and ports that are
    /// not isolated, never another isolated port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
    /// The IPv4 address learned from the guest's ARP (see `learning.rs`): a guest with a
    /// static address, no lease and no reservation may send from it, and only from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_ipv4: Option<std::net::Ipv4Addr>,
}

/// The tap's MAC for a guest MAC: first byte `fe`, or `fa` when the guest's is `fe`.
pub fn tap_mac(guest: [u8; 6]) -> [u8; 6] {
    let mut mac = guest;
    mac[0] = if guest[0] == 0xfe { 0xfa } else { 0xfe };
    mac
}

fn format_mac(mac: [u8; 6]) -> String {
    MacAddr(mac).to_string()
}

/// The guest ports and the counter for new names.
#[derive(Debug, Default)]
pub struct PortBook {
    /// Ports by tap name.
    pub records: std::sync::RwLock<BTreeMap<String, PortRecord>>,
    /// Next `vnetN` to try.
    next: AtomicU32,
    /// Limits of the bridge helper's ports.
    helper_policy: std::sync::RwLock<HelperPortPolicy>,
}

impl PortBook {
    /// The book of stored ports.
    pub fn new(records: Vec<PortRecord>) -> PortBook {
        let next = records
            .iter()
            .filter_map(|r| r.name.strip_prefix("vnet")?.parse::<u32>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        PortBook {
            records: std::sync::RwLock::new(
                records.into_iter().map(|r| (r.name.clone(), r)).collect(),
            ),
            next: AtomicU32::new(next),
            helper_policy: std::sync::RwLock::new(HelperPortPolicy::default()),
        }
    }

    /// The next `vnetN` from the counter; whether it is free is the caller's to check, one
    /// lookup per candidate rather than a dump of every link, so the 1,000th port costs what
    /// the first did.
    fn next_vnet(&self) -> String {
        format!("vnet{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, PortRecord>> {
        self.records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, PortRecord>> {
        self.records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn policy(&self) -> HelperPortPolicy {
        *self
            .helper_policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn not_found(name: &str) -> Error {
    Error::not_found(Kind::Port, name)
}

fn invalid(field: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(field, message)
}

/// The guest ports: their book and store table, and the kernel calls that make them real.
pub struct Ports {
    /// The ports, by tap name.
    book: PortBook,
    /// The durable store: only read here, for the guests' leases.
    store: Arc<Store>,
    /// The runtime store ([`crate::store::RUNTIME_DB_FILE`]): the port records, this
    /// boot's and the hypervisor's.
    runtime: Arc<Store>,
    /// The kernel of virtnetd's network namespace.
    kernel: Arc<Mutex<PortKernel>>,
    /// Which bridge serves a network.
    directory: Arc<dyn BridgeDirectory>,
    /// Names and guest MACs that changes in flight have claimed (see `claims.rs`).
    claims: Claims,
    /// Creating, changing and deleting a port hold it shared, each with its claim, so that
    /// they run side by side; what must see every port settled — re-attaching a restarted
    /// network's ports, the start-up reconcile, the bridge helper's quota and sweeper —
    /// holds it exclusively. Independent of the networks' locks: a port change never waits
    /// for a network start or stop.
    changes: RwLock<()>,
    /// The ports libvirt's hypervisor daemon announced (its own taps; see [`hypervisor`]).
    hypervisor: hypervisor::HypervisorBook,
    /// Serialises changes of the hypervisor's ports (UUIDs unique, NICs of a passthrough
    /// pool handed out once). They touch no device, so they need nothing of `changes`.
    hypervisor_changes: Mutex<()>,
    /// Per-port anti-spoofing (the `bridge virtnet_ports` table).
    guard: Arc<Antispoof>,
    /// The hypervisor's taps guarded now, by tap name: their port's UUID
    /// (`hypervisor_guard.rs`).
    hypervisor_guarded: Mutex<BTreeMap<String, uuid::Uuid>>,
    /// Switches the link announcements of `hypervisor_guard.rs` on and off (set when its
    /// thread starts): off while the hypervisor has no port.
    hypervisor_watch: std::sync::OnceLock<virtnet_host::LinkWatchSwitch>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

impl Ports {
    /// The ports stored in `runtime`, attached through `kernel` to the bridges `directory`
    /// names; their guests' leases are read from `store`.
    pub fn open(
        store: Arc<Store>,
        runtime: Arc<Store>,
        kernel: Arc<Mutex<PortKernel>>,
        directory: Arc<dyn BridgeDirectory>,
        guard: Arc<Antispoof>,
    ) -> Result<Ports> {
        Ok(Ports {
            guard,
            book: PortBook::new(runtime.ports()?),
            hypervisor: hypervisor::HypervisorBook::load(&runtime)?,
            hypervisor_changes: Mutex::new(()),
            hypervisor_guarded: Mutex::new(BTreeMap::new()),
            hypervisor_watch: std::sync::OnceLock::new(),
            store,
            runtime,
            kernel,
            directory,
            claims: Claims::default(),
            changes: RwLock::new(()),
        })
    }

    /// The bridge a source attaches to: an active network's bridge, or a host bridge. It must
    /// be a bridge: a tap "attached" to anything else (`lo`, a veth, another tap) would be on
    /// no bridge at all, a routed interface of the host outside every firewall rule.
    fn bridge_for(&self, source: &InterfaceSource) -> Result<String> {
        let bridge = self.bridge_name_for(source)?;
        // One lookup: a network being destroyed meanwhile parks (renames) its bridge, and two
        // lookups could see the name first and then no bridge under it.
        let Some(is_bridge) = lock(&self.kernel).is_bridge_link(&bridge)? else {
            return Err(Error::not_found(Kind::Bridge, bridge));
        };
        if !is_bridge {
            return Err(invalid(
                "source",
                format!(
                    "'{bridge}' is not a bridge; a port attaches only to a bridge (a virtnet \
                     network's or a host bridge)"
                ),
            ));
        }
        Ok(bridge)
    }

    /// The name of the bridge a source names (not checked against the kernel).
    fn bridge_name_for(&self, source: &InterfaceSource) -> Result<String> {
        match source {
            InterfaceSource::Network(name) => match self.directory.serving(name)? {
                Serving::Bridge(bridge) => Ok(bridge),
                Serving::Macvtap { .. } => Err(Error::unsupported(format!(
                    "network '{name}' has no bridge to attach ports to"
                ))),
            },
            InterfaceSource::Bridge(bridge) => Ok(bridge.clone()),
        }
    }

    /// The running definition of the network a port is on, if it is one and active.
    fn network_of(&self, r: &PortRecord) -> Option<Arc<virtnet_model::Network>> {
        match &r.source {
            InterfaceSource::Network(n) if r.macvtap_on.is_none() => self.directory.live_network(n),
            _ => None,
        }
    }

    /// Whether a port is isolated: its own flag, or its network's `<port isolated='yes'/>`.
    fn isolated(&self, r: &PortRecord) -> bool {
        r.isolated
            || self
                .network_of(r)
                .is_some_and(|n| n.port_isolated == Some(true))
    }

    /// What a port may send: `None` when it is not guarded (`--no-spoof-check`, a host
    /// bridge, a macvtap, a network in a mode that is not guarded or not active). Its IPv4
    /// addresses are its network's reservations for its MAC, its current leases and the
    /// address it was seen to use when it had none of those (`learning.rs`); its IPv6
    /// addresses on DHCPv6 subnets its DHCPv6 leases (`addresses.rs`) and static hosts.
    fn guard_of(&self, r: &PortRecord) -> Option<(String, virtnet_plan::spoof::PortGuard)> {
        self.guard_with(r, None)
    }

    /// [`Ports::guard_of`], reading the networks' DHCPv6 leases through `cache` when given.
    fn guard_with(
        &self,
        r: &PortRecord,
        cache: Option<&mut addresses::Leases6Cache>,
    ) -> Option<(String, virtnet_plan::spoof::PortGuard)> {
        if r.no_spoof_check {
            return None;
        }
        let net = self.network_of(r)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Leases are stored by client MAC (see `services::client_key`).
        let lease: Option<virtnet_dhcp::Lease> = self
            .store
            .lease_of(&net.name, &r.mac.to_string())
            .unwrap_or_default();
        let addrs = lease
            .into_iter()
            .filter(|l| l.mac == r.mac.0 && !l.expired(now))
            .map(|l| l.ip)
            .chain(r.learned_ipv4);
        let leases6 = self.leases6_of(&net, &r.name, r.mac, cache);
        let guard =
            virtnet_plan::spoof::PortGuard::for_network(&r.name, r.mac.0, &net, addrs, leases6)?;
        Some((net.name.clone(), guard))
    }

    /// Makes the anti-spoofing elements of a port match its record and network.
    fn apply_guard(&self, r: &PortRecord) -> Result<()> {
        self.apply_guard_with(r, None)
    }

    /// [`Ports::apply_guard`] for one of a batch of ports (see [`Ports::guard_with`]).
    fn apply_guard_with(
        &self,
        r: &PortRecord,
        cache: Option<&mut addresses::Leases6Cache>,
    ) -> Result<()> {
        let guard = self.guard_with(r, cache);
        self.guard
            .set_port(&r.name, guard.as_ref().map(|(n, g)| (n.as_str(), g)))
    }

    /// Removes a port's anti-spoofing elements; a failure is logged (the port is gone).
    fn drop_guard(&self, name: &str) {
        if let Err(e) = self.guard.set_port(name, None) {
            tracing::warn!(port = %name, error = %e, "cannot remove the port's anti-spoofing elements");
        }
    }

    fn tap_plan(&self, r: &PortRecord, bridge: Option<String>, create: bool) -> TapPlan {
        TapPlan {
            name: r.name.clone(),
            mac: tap_mac(r.mac.0),
            alias: format!("{PORT_ALIAS_PREFIX}{}", r.domain),
            bridge,
            up: r.link_up,
            isolated: self.isolated(r),
            create: create.then(|| TapSpec {
                name: r.name.clone(),
                owner: r.owner_uid,
                group: r.owner_gid,
                multi_queue: r.queues > 1,
                vnet_hdr: r.vnet_hdr,
            }),
        }
    }

    fn port_view(&self, r: &PortRecord) -> Port {
        let bridge = match &r.source {
            _ if r.macvtap_on.is_some() => String::new(),
            InterfaceSource::Bridge(b) => b.clone(),
            InterfaceSource::Network(n) => self.directory.shown_bridge(n).unwrap_or_default(),
        };
        Port {
            name: r.name.clone(),
            domain: r.domain.clone(),
            source: r.source.clone(),
            bridge,
            mac: r.mac.to_string(),
            tap_mac: match r.macvtap_on {
                Some(_) => r.mac.to_string(),
                None => format_mac(tap_mac(r.mac.0)),
            },
            model: r.model.clone(),
            link_up: r.link_up,
            mtu: r.mtu,
            owner_uid: r.owner_uid,
            owner_gid: r.owner_gid,
            queues: r.queues,
            vnet_hdr: r.vnet_hdr,
            port_uuid: None,
            spoof_check: self.guard.is_guarded(&r.name),
            isolated: r.macvtap_on.is_none() && self.isolated(r),
            spoof_drops: None,
        }
    }

    /// `POST /v1/ports` (`attach-interface`): creates the guest's tap on the bridge of its
    /// network (or on a host bridge) and records it. With `target` naming an existing tap
    /// that is no port yet, the tap is adopted (QEMU's `script=` mode made it).
    pub fn create(&self, req: &PortRequest) -> Result<Port> {
        check_domain_name(&req.domain).map_err(|reason| invalid("domain", reason))?;
        let mac: MacAddr = req
            .mac
            .parse()
            .map_err(|_| invalid("mac", format!("'{}' is not a MAC address", req.mac)))?;
        if mac.0[0] & 1 == 1 {
            return Err(invalid("mac", format!("'{mac}' is a multicast address")));
        }
        let queues = req.queues.unwrap_or(1);
        if !(1..=256).contains(&queues) {
            return Err(invalid("queues", format!("{queues} is not within 1..256")));
        }
        if req.helper {
            // Rare (an unprivileged user's QEMU), and its quota must count settled ports.
            let _all = self.exclusive();
            self.check_helper_quota(req)?;
            return self.create_port(req, mac, queues);
        }
        let _shared = self.shared();
        self.create_port(req, mac, queues)
    }

    /// [`Ports::create`] once the request is checked, holding `changes`.
    fn create_port(&self, req: &PortRequest, mac: MacAddr, queues: u32) -> Result<Port> {
        if let Some((devs, mode)) = self.macvtap_of(&req.source)? {
            return self.create_macvtap_port(req, mac, &devs, mode);
        }
        let t0 = std::time::Instant::now();
        let bridge = self.bridge_for(&req.source)?;
        let t_bridge = t0.elapsed();
        let (claim, adopt) = match &req.target {
            Some(t) => {
                virtnet_plan::kernel::check_ifname("target", t)?;
                let claim = self.claim_new(t, req, mac)?;
                let adopt = lock(&self.kernel).link_index(t)?.is_some();
                (claim, adopt)
            }
            None => (
                self.claim_free_name(req, mac, || self.book.next_vnet())?,
                false,
            ),
        };
        let mut record = PortRecord {
            queues,
            adopted: adopt,
            ..new_record(req, claim.name().to_string(), mac)
        };
        let t_claim = t0.elapsed();
        // Guarded before the tap is up: its first frame already meets the rules (the
        // elements are keyed by name, so they may precede the device).
        self.apply_guard(&record)?;
        let t_guard = t0.elapsed();
        record.mtu =
            match lock(&self.kernel).add_port(&self.tap_plan(&record, Some(bridge), !adopt)) {
                Ok(mtu) => mtu,
                Err(e) => {
                    self.drop_guard(&record.name);
                    return Err(e);
                }
            };
        let t_kernel = t0.elapsed();
        let port = self.remember(claim, record);
        tracing::debug!(
            bridge_us = t_bridge.as_micros() as u64,
            claim_us = (t_claim - t_bridge).as_micros() as u64,
            guard_us = (t_guard - t_claim).as_micros() as u64,
            kernel_us = (t_kernel - t_guard).as_micros() as u64,
            commit_us = (t0.elapsed() - t_kernel).as_micros() as u64,
            "port created"
        );
        port
    }

    /// Claims `name` for a new port of `req`'s guest with `mac`: refused when a port has the
    /// name, or the guest already has (or is getting) an interface with that MAC.
    fn claim_new(&self, name: &str, req: &PortRequest, mac: MacAddr) -> Result<Claim<'_>> {
        self.try_claim_new(name, req, mac)
            .map_err(|refused| match refused {
                Refused::Name => Error::conflict(format!("port '{name}' already exists")),
                Refused::GuestMac => self.guest_mac_conflict(req, mac),
            })
    }

    /// True when `req`'s guest has a port with `mac` (settled or being made).
    fn guest_has_mac(&self, req: &PortRequest, mac: MacAddr) -> bool {
        self.claims.holds_guest_mac(&req.domain, mac)
            || self
                .book
                .read()
                .values()
                .any(|p| p.domain == req.domain && p.mac == mac)
    }

    fn guest_mac_conflict(&self, req: &PortRequest, mac: MacAddr) -> Error {
        Error::conflict(format!(
            "domain '{}' already has an interface with MAC {mac}",
            req.domain
        ))
    }

    /// [`Ports::claim_new`], saying only why not.
    fn try_claim_new(
        &self,
        name: &str,
        req: &PortRequest,
        mac: MacAddr,
    ) -> std::result::Result<Claim<'_>, Refused> {
        let book_says = || {
            let book = self.book.read();
            if book.contains_key(name) {
                Some(Refused::Name)
            } else if book
                .values()
                .any(|p| p.domain == req.domain && p.mac == mac)
            {
                Some(Refused::GuestMac)
            } else {
                None
            }
        };
        self.claims.claim(name, Some((&req.domain, mac)), book_says)
    }

    /// Claims the first name from `next` that no port has and the kernel has no link of:
    /// the book and the claims are asked under the claim lock, the kernel after it (a name
    /// the kernel has is given back and the next one tried).
    fn claim_free_name(
        &self,
        req: &PortRequest,
        mac: MacAddr,
        mut next: impl FnMut() -> String,
    ) -> Result<Claim<'_>> {
        // A guest MAC in use is refused before a name is drawn: a refused request does not
        // move the counter on.
        if self.guest_has_mac(req, mac) {
            return Err(self.guest_mac_conflict(req, mac));
        }
        loop {
            let name = next();
            match self.try_claim_new(&name, req, mac) {
                Ok(claim) if lock(&self.kernel).link_index(&name)?.is_none() => return Ok(claim),
                Ok(_) | Err(Refused::Name) => continue,
                Err(Refused::GuestMac) => return self.claim_new(&name, req, mac),
            }
        }
    }

    /// Stores a port the kernel has just made, then lists it. When the store fails, the
    /// kernel's part goes again (the link too, unless it was adopted). No lock is held across
    /// the commit: the claim keeps the name and MAC.
    fn remember(&self, claim: Claim<'_>, record: PortRecord) -> Result<Port> {
        if let Err(e) = self.runtime.put_port(&record.name, &record) {
            let _ = lock(&self.kernel).remove_port(&record.name, !record.adopted);
            self.drop_guard(&record.name);
            return Err(e);
        }
        self.book
            .write()
            .insert(record.name.clone(), record.clone());
        drop(claim);
        Ok(self.port_view(&record))
    }

    /// Holds `changes` shared: a port change that runs beside others.
    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.changes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `changes` exclusively: every change in flight has finished.
    fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.changes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The NICs and mode of a direct (macvtap) network, `None` for anything else (a network
    /// that is unknown or inactive included: attaching to it is refused later, naming why).
    fn macvtap_of(
        &self,
        source: &InterfaceSource,
    ) -> Result<Option<(Vec<String>, virtnet_host::MacvtapMode)>> {
        let InterfaceSource::Network(name) = source else {
            return Ok(None);
        };
        // A refusal here is the same one `bridge_for` gives next, naming the reason.
        match self.directory.serving(name) {
            Ok(Serving::Macvtap { devs, mode }) => Ok(Some((devs, mode))),
            Ok(Serving::Bridge(_)) | Err(_) => Ok(None),
        }
    }

    /// A port of a direct network: a macvtap device (`macvtapN`) on the first of the
    /// network's NICs that exists, carrying the guest's MAC. QEMU opens `/dev/tap<ifindex>`.
    fn create_macvtap_port(
        &self,
        req: &PortRequest,
        mac: MacAddr,
        devs: &[String],
        mode: virtnet_host::MacvtapMode,
    ) -> Result<Port> {
        let mut dev = None;
        for d in devs {
            if lock(&self.kernel).link_index(d)?.is_some() {
                dev = Some(d.clone());
                break;
            }
        }
        let dev = dev.ok_or_else(|| {
            Error::conflict(format!(
                "none of the network's host interfaces ({}) exists",
                devs.join(", ")
            ))
        })?;
        let claim = match &req.target {
            Some(t) => {
                virtnet_plan::kernel::check_ifname("target", t)?;
                self.claim_new(t, req, mac)?
            }
            None => {
                let mut n = 0u32;
                self.claim_free_name(req, mac, || {
                    n += 1;
                    format!("macvtap{}", n - 1)
                })?
            }
        };
        lock(&self.kernel).add_macvtap(claim.name(), &dev, mode, mac.0)?;
        let record = PortRecord {
            macvtap_on: Some(dev),
            ..new_record(req, claim.name().to_string(), mac)
        };
        self.remember(claim, record)
    }

    /// `DELETE /v1/ports/{name}` (`detach-interface`): deletes the tap (an adopted one is
    /// only taken off its bridge) and forgets the port.
    pub fn delete(&self, name: &str) -> Result<Port> {
        let _shared = self.shared();
        let (record, _claim) = self.claim_existing(name)?;
        self.remove_port(record)
    }

    /// `DELETE /v1/ports?domain=D&kind=K[&mac=M]` (`detach-interface` in one request): deletes
    /// the one port of guest `domain` whose source is a `kind` (`network` or `bridge`) and,
    /// with `mac`, that has that MAC. Anything but exactly one such port — the hypervisor's
    /// ports of the guest counted too — is refused (not found, or a conflict naming how many)
    /// and nothing is deleted: the caller then looks the ports up itself to say why, in
    /// virsh's words.
    pub fn delete_matching(&self, domain: &str, kind: &str, mac: Option<&str>) -> Result<Port> {
        let mac: Option<MacAddr> = mac
            .map(|m| {
                m.parse()
                    .map_err(|_| invalid("mac", format!("'{m}' is not a MAC address")))
            })
            .transpose()?;
        if !matches!(kind, "network" | "bridge") {
            return Err(invalid(
                "kind",
                format!("'{kind}' is not an interface kind (network, bridge)"),
            ));
        }
        let matches = |source: &InterfaceSource, port_mac: MacAddr| {
            let source_kind = match source {
                InterfaceSource::Network(_) => "network",
                InterfaceSource::Bridge(_) => "bridge",
            };
            source_kind == kind && mac.is_none_or(|m| m == port_mac)
        };
        let _shared = self.shared();
        let own: Vec<String> = self
            .book
            .read()
            .values()
            .filter(|r| r.domain == domain && matches(&r.source, r.mac))
            .map(|r| r.name.clone())
            .collect();
        let theirs = self
            .hypervisor_views(Some(domain))
            .iter()
            .filter(|p| {
                p.mac
                    .parse()
                    .is_ok_and(|port_mac| matches(&p.source, port_mac))
            })
            .count();
        let name = match (own.as_slice(), theirs) {
            ([name], 0) => name.clone(),
            ([], 0) => {
                return Err(Error::missing(format!(
                    "guest '{domain}' has no matching {kind} interface"
                )))
            }
            _ => {
                return Err(Error::conflict(format!(
                    "guest '{domain}' has {} matching interfaces",
                    own.len() + theirs
                )))
            }
        };
        let (record, _claim) = self.claim_existing(&name)?;
        self.remove_port(record)
    }

    /// Claims an existing port for a change or its deletion. A port another request is
    /// deleting is as good as gone (not found); one another request is changing is a
    /// conflict, as a second `virsh` would see it.
    fn claim_existing(&self, name: &str) -> Result<(PortRecord, Claim<'_>)> {
        let mut record = None;
        let claim = self.claims.claim(name, None, || {
            record = self.book.read().get(name).cloned();
            record.is_none().then_some(Refused::Name)
        });
        match (claim, record) {
            (Ok(claim), Some(record)) => Ok((record, claim)),
            (Err(_), Some(_)) => Err(Error::conflict(format!(
                "port '{name}' is being changed by another request"
            ))),
            (_, None) => Err(not_found(name)),
        }
    }

    /// Deletes a port's device (an adopted tap is only taken off its bridge) and record. The
    /// caller holds the port: a claim, or `changes` exclusively.
    fn remove_port(&self, record: PortRecord) -> Result<Port> {
        let t0 = std::time::Instant::now();
        lock(&self.kernel).remove_port(&record.name, !record.adopted)?;
        let t_kernel = t0.elapsed();
        self.drop_guard(&record.name);
        let t_guard = t0.elapsed();
        self.runtime.delete_port(&record.name)?;
        self.book.write().remove(&record.name);
        tracing::debug!(
            kernel_us = t_kernel.as_micros() as u64,
            guard_us = (t_guard - t_kernel).as_micros() as u64,
            commit_us = (t0.elapsed() - t_guard).as_micros() as u64,
            "port removed"
        );
        Ok(self.port_view(&record))
    }

    /// `GET /v1/ports`: the ports (of one guest), virtnet's own sorted by name, then those
    /// of libvirt's hypervisor daemon.
    pub fn list(&self, domain: Option<&str>, counters: bool) -> Vec<Port> {
        let records: Vec<PortRecord> = self
            .book
            .read()
            .values()
            .filter(|r| domain.is_none_or(|d| r.domain == d))
            .cloned()
            .collect();
        let mut ports: Vec<Port> = records.iter().map(|r| self.port_view(r)).collect();
        ports.extend(self.hypervisor_views(domain));
        if counters && ports.iter().any(|p| p.spoof_check) {
            // One listing of the counters for the whole answer.
            match DropCounts::read() {
                Ok(drops) => {
                    for p in ports.iter_mut().filter(|p| p.spoof_check) {
                        p.spoof_drops = Some(drops.of(&p.name));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read anti-spoofing counters"),
            }
        }
        ports
    }

    /// The ports as a metrics scrape labels them ([`PortLabels`]), virtnet's own and the
    /// hypervisor's. A scrape of thousands of ports needs none of the rest of a port's view
    /// ([`Ports::list`]: its bridge, its tap's MAC, whether it is isolated), which cost most
    /// of the scrape's reading of the ports.
    pub fn labels(&self) -> Vec<PortLabels> {
        let records: Vec<(String, String, InterfaceSource, MacAddr)> = self
            .book
            .read()
            .values()
            .map(|r| (r.name.clone(), r.domain.clone(), r.source.clone(), r.mac))
            .collect();
        let mut labels: Vec<PortLabels> = records
            .into_iter()
            .map(|(name, domain, source, mac)| PortLabels {
                spoof_check: self.guard.is_guarded(&name),
                name,
                domain,
                source,
                mac: mac.to_string(),
            })
            .collect();
        labels.extend(
            self.hypervisor_views(None)
                .into_iter()
                .map(PortLabels::from),
        );
        labels
    }

    /// Applies `change` to a port's record, then makes the kernel match it; the record is
    /// stored only when the kernel accepted the change.
    fn change_port(&self, name: &str, change: impl FnOnce(&mut PortRecord)) -> Result<Port> {
        let _shared = self.shared();
        let (mut record, _claim) = self.claim_existing(name)?;
        let before = record.clone();
        change(&mut record);
        if before.macvtap_on.is_some() || self.macvtap_of(&record.source)?.is_some() {
            if record.source != before.source {
                return Err(Error::unsupported(format!(
                    "port '{name}': moving to or from a direct (macvtap) network changes the \
                         device QEMU holds; detach and attach it with the guest stopped"
                )));
            }
            lock(&self.kernel).set_port_up(name, record.link_up)?;
            self.runtime.put_port(name, &record)?;
            self.book.write().insert(name.to_string(), record.clone());
            return Ok(self.port_view(&record));
        }
        let bridge = self.bridge_for(&record.source)?;
        // The new network's rules before the port moves: none of its frames go unchecked.
        self.apply_guard(&record)?;
        record.mtu =
            match lock(&self.kernel).configure_port(&self.tap_plan(&record, Some(bridge), false)) {
                Ok(mtu) => mtu,
                Err(e) => {
                    let _ = self.apply_guard(&before);
                    return Err(e);
                }
            };
        if let Err(e) = self.runtime.put_port(name, &record) {
            let _ = self.apply_guard(&before);
            let old_bridge = self.bridge_for(&before.source).ok();
            let _ = lock(&self.kernel).configure_port(&self.tap_plan(&before, old_bridge, false));
            return Err(e);
        }
        self.book.write().insert(name.to_string(), record.clone());
        Ok(self.port_view(&record))
    }

    /// `PUT /v1/ports/{name}/source`: moves a port to another network or bridge while the
    /// guest runs (the seeds' NAT → bridge edit, without a guest restart).
    pub fn move_to(&self, name: &str, source: InterfaceSource) -> Result<Port> {
        self.change_port(name, |r| {
            if r.source != source {
                // An address learned on one network means nothing on another.
                r.learned_ipv4 = None;
            }
            r.source = source;
        })
    }

    /// `PUT /v1/ports/{name}/link` (`domif-setlink`).
    pub fn set_link(&self, name: &str, up: bool) -> Result<Port> {
        self.change_port(name, |r| r.link_up = up)
    }

    /// Told when a network has started: re-attaches its ports (its bridge is new), the
    /// hypervisor's taps of its ports included.
    pub fn network_started(&self, network: &str) {
        // Exclusive: a port being created for this network meanwhile may have found the old
        // bridge; once it is in the book, this re-attaches it too.
        let _all = self.exclusive();
        let mut leases6 = addresses::Leases6Cache::new();
        for r in self.taps_on(network) {
            // The network may have been redefined (addresses, mode): its ports' rules follow.
            if let Err(e) = self.apply_guard_with(&r, Some(&mut leases6)) {
                tracing::warn!(port = %r.name, network, error = %e, "cannot guard port");
            }
            let bridge = self.bridge_for(&r.source).ok();
            if let Err(e) = lock(&self.kernel).configure_port(&self.tap_plan(&r, bridge, false)) {
                tracing::warn!(port = %r.name, network, error = %e, "cannot re-attach port");
            }
        }
        self.replug_hypervisor_ports(Some(network));
    }

    /// The records of the tap ports (not macvtaps) on network `network`.
    fn taps_on(&self, network: &str) -> Vec<PortRecord> {
        let source = InterfaceSource::Network(network.to_string());
        self.book
            .read()
            .values()
            .filter(|r| r.macvtap_on.is_none() && r.source == source)
            .cloned()
            .collect()
    }

    /// Told when a running network's definition changed live (`net-update`): its ports'
    /// anti-spoofing follows the new `<host>`s, ranges and subnets at once (only the elements
    /// that differ change), the hypervisor's guarded taps of its ports included.
    pub fn network_updated(&self, network: &str) {
        let _all = self.exclusive();
        let mut leases6 = addresses::Leases6Cache::new();
        for r in self.taps_on(network) {
            if let Err(e) = self.apply_guard_with(&r, Some(&mut leases6)) {
                tracing::warn!(port = %r.name, network, error = %e, "cannot guard port");
            }
        }
        self.reguard_hypervisor_taps(network);
    }

    /// Waits until every detached tap queued for deletion is deleted (at shutdown).
    pub fn wait_for_deletions(&self) {
        lock(&self.kernel).wait_for_deletions();
    }

    /// Start-up: forgets ports whose tap was deleted while virtnetd was down (the guest went
    /// away), guards the others again (one transaction for the whole anti-spoofing table) and
    /// attaches them to their bridges again.
    pub fn reconcile(&self) -> Result<()> {
        let _all = self.exclusive();
        // One dump of the links for the whole reconcile (14,000 links take a second to dump).
        let links = lock(&self.kernel).links()?;
        let present: HashSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
        let records: Vec<PortRecord> = self.book.read().values().cloned().collect();
        // Every guard at once, replacing the previous run's table in one transaction; each
        // network's DHCPv6 leases are read once.
        let mut leases6 = addresses::Leases6Cache::new();
        let guards = records
            .iter()
            .filter(|r| present.contains(r.name.as_str()))
            .filter_map(|r| {
                let (network, guard) = self.guard_with(r, Some(&mut leases6))?;
                Some((r.name.clone(), network, guard))
            })
            .collect();
        self.guard.restore(guards)?;
        let mut taps = Vec::new();
        for r in records {
            if !present.contains(r.name.as_str()) {
                tracing::info!(port = %r.name, domain = %r.domain, "tap gone while virtnetd was down; port removed");
                self.runtime.delete_port(&r.name)?;
                self.book.write().remove(&r.name);
                continue;
            }
            if r.macvtap_on.is_some() {
                continue;
            }
            // The bridge's name only: the kernel layer checks it is a bridge, from its dump.
            let bridge = self.bridge_name_for(&r.source).ok();
            taps.push(self.tap_plan(&r, bridge, false));
        }
        for (port, e) in lock(&self.kernel).configure_ports(&links, &taps)? {
            tracing::warn!(%port, error = %e, "cannot re-attach port");
        }
        // The hypervisor's ports are kept as they are (the hypervisor deletes them, or
        // reclaims them after its own restart); their taps go back on their bridges.
        self.replug_hypervisor_ports(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tap_mac_mirrors_the_guest_mac() {
        assert_eq!(
            tap_mac([0x52, 0x54, 0x00, 0x12, 0x0e, 0xf7]),
            [0xfe, 0x54, 0x00, 0x12, 0x0e, 0xf7]
        );
        assert_eq!(tap_mac([0xfe, 0, 0, 0, 0, 1]), [0xfa, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn names_move_forward() {
        let book = PortBook::new(Vec::new());
        assert_eq!(book.next_vnet(), "vnet0");
        assert_eq!(book.next_vnet(), "vnet1");
        // A freed vnet0 is not handed out again at once.
        assert_eq!(book.next_vnet(), "vnet2");
    }
}

/// What a metrics scrape needs of a port ([`Ports::labels`]).
#[derive(Debug, Clone)]
pub struct PortLabels {
    /// The tap (the port's name).
    pub name: String,
    /// The guest.
    pub domain: String,
    /// Its network or host bridge.
    pub source: InterfaceSource,
    /// The guest NIC's MAC, lower case.
    pub mac: String,
    /// Whether anti-spoofing guards it.
    pub spoof_check: bool,
}

impl From<Port> for PortLabels {
    fn from(p: Port) -> PortLabels {
        PortLabels {
            name: p.name,
            domain: p.domain,
            source: p.source,
            mac: p.mac,
            spoof_check: p.spoof_check,
        }
    }
}
