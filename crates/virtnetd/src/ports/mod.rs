//! Guest ports: a tap per guest NIC on a network's bridge (`attach-interface`), recorded in the
//! store so that ports survive daemon restarts, re-attached when their network restarts, and
//! movable live to another network or bridge.
//!
//! Naming follows libvirt: `vnetN` from a counter that moves forward, so a name just freed is
//! not handed out again at once (a guest's old name in logs stays unambiguous). The tap's MAC
//! is the guest's with the first byte `fe` (`fa` when the guest's starts with `fe`), so the
//! bridge never takes the guest's address as its own and the two are easy to pair by eye.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use virtnet_api::{
    check_domain_name, AddressSource, DhcpLease, InterfaceAddress, Port, PortRequest,
};
use virtnet_host::tap::TapSpec;
use virtnet_model::{InterfaceSource, MacAddr};

mod directory;

pub use directory::{BridgeDirectory, Serving};

use crate::error::{Error, Kind, Result};
use crate::kernel::{Kernel, TapPlan};
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
    }
}

/// What virtnetd allows the setuid bridge helper (`virtnet-bridge-helper`), which asks for
/// ports on behalf of unprivileged users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperPortPolicy {
    /// Most helper ports one user may hold at a time (ports whose tap is gone do not count).
    pub per_user: u32,
    /// How long a helper port's tap may stay persistent: the helper makes it non-persistent
    /// as soon as it holds it, so a tap still persistent after this was never handed over
    /// (the helper was killed) and would otherwise outlive everyone.
    pub claim_grace: Duration,
    /// How often the sweeper looks at the helper ports.
    pub sweep_every: Duration,
}

impl Default for HelperPortPolicy {
    fn default() -> Self {
        HelperPortPolicy {
            per_user: DEFAULT_HELPER_PORTS_PER_USER,
            claim_grace: Duration::from_secs(5),
            sweep_every: Duration::from_secs(1),
        }
    }
}

/// Default of [`HelperPortPolicy::per_user`]: far more NICs than one user's guests need, few
/// enough that a user cannot fill the host with taps.
pub const DEFAULT_HELPER_PORTS_PER_USER: u32 = 32;

/// What the sweeper found about a helper port's tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelperTap {
    /// No such tap (QEMU exited): only the record is left.
    Gone,
    /// Still persistent: not (yet) handed over.
    Persistent,
    /// Held by QEMU and not persistent: it goes when QEMU does.
    Claimed,
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

    /// The next `vnetN` that `taken` says is free. One lookup per candidate rather than a
    /// dump of every link, so the 1,000th port costs what the first did.
    fn next_name(&self, mut taken: impl FnMut(&str) -> Result<bool>) -> Result<String> {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let name = format!("vnet{n}");
            if !taken(&name)? {
                return Ok(name);
            }
        }
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
    /// The store (only its port table is written here).
    store: Arc<Store>,
    /// The kernel of virtnetd's network namespace.
    kernel: Arc<Mutex<Kernel>>,
    /// Which bridge serves a network.
    directory: Arc<dyn BridgeDirectory>,
    /// Serialises changes of ports (names and MACs are unique among them). Independent of
    /// the networks' locks: a port change never waits for a network start or stop.
    writer: Mutex<()>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

impl Ports {
    /// The ports stored in `store`, attached through `kernel` to the bridges `directory`
    /// names.
    pub fn open(
        store: Arc<Store>,
        kernel: Arc<Mutex<Kernel>>,
        directory: Arc<dyn BridgeDirectory>,
    ) -> Result<Ports> {
        Ok(Ports {
            book: PortBook::new(store.ports()?),
            store,
            kernel,
            directory,
            writer: Mutex::new(()),
        })
    }

    /// The bridge a source attaches to: an active network's bridge, or a host bridge. It must
    /// be a bridge: a tap "attached" to anything else (`lo`, a veth, another tap) would be on
    /// no bridge at all, a routed interface of the host outside every firewall rule.
    fn bridge_for(&self, source: &InterfaceSource) -> Result<String> {
        let bridge = self.bridge_name_for(source)?;
        let mut kernel = lock(&self.kernel);
        if kernel.link_index(&bridge)?.is_none() {
            return Err(Error::not_found(Kind::Bridge, bridge));
        }
        if !kernel.is_bridge(&bridge)? {
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

    fn tap_plan(&self, r: &PortRecord, bridge: Option<String>, create: bool) -> TapPlan {
        TapPlan {
            name: r.name.clone(),
            mac: tap_mac(r.mac.0),
            alias: format!("{PORT_ALIAS_PREFIX}{}", r.domain),
            bridge,
            up: r.link_up,
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
        let _writer = lock(&self.writer);
        if req.helper {
            self.check_helper_quota(req)?;
        }
        if self
            .book
            .read()
            .values()
            .any(|p| p.domain == req.domain && p.mac == mac)
        {
            return Err(Error::conflict(format!(
                "domain '{}' already has an interface with MAC {mac}",
                req.domain
            )));
        }
        if let Some((devs, mode)) = self.macvtap_of(&req.source)? {
            return self.create_macvtap_port(req, mac, &devs, mode);
        }
        let bridge = self.bridge_for(&req.source)?;
        let mut kernel = lock(&self.kernel);
        let (name, adopt) = match &req.target {
            Some(t) => {
                virtnet_plan::kernel::check_ifname("target", t)?;
                if self.book.read().contains_key(t) {
                    return Err(Error::conflict(format!("port '{t}' already exists")));
                }
                (t.clone(), kernel.link_index(t)?.is_some())
            }
            None => {
                let name = self.book.next_name(|n| {
                    Ok(self.book.read().contains_key(n) || kernel.link_index(n)?.is_some())
                })?;
                (name, false)
            }
        };
        let mut record = PortRecord {
            queues,
            adopted: adopt,
            ..new_record(req, name, mac)
        };
        record.mtu = kernel.add_port(&self.tap_plan(&record, Some(bridge), !adopt))?;
        self.remember(kernel, record)
    }

    /// Stores a port the kernel has just made, then lists it. When the store fails, the
    /// kernel's part goes again (the link too, unless it was adopted).
    fn remember(
        &self,
        mut kernel: std::sync::MutexGuard<'_, Kernel>,
        record: PortRecord,
    ) -> Result<Port> {
        if let Err(e) = self.store.put_port(&record.name, &record) {
            let _ = kernel.remove_port(&record.name, !record.adopted);
            return Err(e);
        }
        drop(kernel);
        self.book
            .write()
            .insert(record.name.clone(), record.clone());
        Ok(self.port_view(&record))
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
        let mut kernel = lock(&self.kernel);
        let mut dev = None;
        for d in devs {
            if kernel.link_index(d)?.is_some() {
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
        let name = match &req.target {
            Some(t) => {
                virtnet_plan::kernel::check_ifname("target", t)?;
                t.clone()
            }
            None => {
                let mut n = 0u32;
                loop {
                    let candidate = format!("macvtap{n}");
                    if !self.book.read().contains_key(&candidate)
                        && kernel.link_index(&candidate)?.is_none()
                    {
                        break candidate;
                    }
                    n += 1;
                }
            }
        };
        kernel.add_macvtap(&name, &dev, mode, mac.0)?;
        let record = PortRecord {
            macvtap_on: Some(dev),
            ..new_record(req, name, mac)
        };
        self.remember(kernel, record)
    }

    /// Refuses a helper port the user may not have: one with a group (a helper's tap is its
    /// user's alone, so that no one sharing a group can race the helper to it) or one past
    /// the per-user limit. Ports whose tap is gone are forgotten first and do not count.
    /// Runs under the writer lock.
    fn check_helper_quota(&self, req: &PortRequest) -> Result<()> {
        let Some(uid) = req.owner_uid else {
            return Err(invalid(
                "owner_uid",
                "a bridge helper's port names the user it is for",
            ));
        };
        if req.owner_gid.is_some() {
            return Err(invalid(
                "owner_gid",
                "a bridge helper's port is owned by its user alone, without a group",
            ));
        }
        let theirs: Vec<String> = self
            .book
            .read()
            .values()
            .filter(|r| r.helper && r.owner_uid == Some(uid))
            .map(|r| r.name.clone())
            .collect();
        let mut live = 0u32;
        for name in theirs {
            if lock(&self.kernel).link_index(&name)?.is_some() {
                live += 1;
            } else {
                self.forget_port(&name)?;
            }
        }
        let limit = self.book.policy().per_user;
        if live >= limit {
            return Err(Error::conflict(format!(
                "owner_uid: user {uid} already has {live} ports made by the bridge helper, \
                     the most virtnetd allows one user (virtnetd --helper-ports-per-user, now \
                     {limit})"
            )));
        }
        Ok(())
    }

    /// Forgets a port whose device is gone, without touching the kernel (a link of that name,
    /// if any, is someone else's). Runs under the writer lock.
    fn forget_port(&self, name: &str) -> Result<()> {
        self.store.delete_port(name)?;
        self.book.write().remove(name);
        Ok(())
    }

    /// Starts the thread that reaps the bridge helper's ports (see
    /// [`Ports::sweep_helper_ports`]) every `policy.sweep_every`, and sets the per-user
    /// limit. The thread ends once the ports are dropped.
    pub fn start_helper_sweeper(self: &Arc<Self>, policy: HelperPortPolicy) -> std::io::Result<()> {
        *self
            .book
            .helper_policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy;
        let ports = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("port-sweeper".into())
            .spawn(move || {
                let mut persistent_since = HashMap::new();
                loop {
                    std::thread::sleep(policy.sweep_every);
                    let Some(ports) = ports.upgrade() else {
                        return;
                    };
                    ports.sweep_helper_ports(&mut persistent_since, policy.claim_grace);
                }
            })?;
        Ok(())
    }

    /// One pass of the sweeper over the bridge helper's ports: a port whose tap is gone
    /// (QEMU exited) is forgotten; a port whose tap has stayed persistent for `grace` (the
    /// helper was killed before it made the tap non-persistent, or the user made it
    /// persistent again) is deleted with its tap, which would otherwise outlive QEMU as a
    /// device the user owns. `persistent_since` carries when each tap was first seen
    /// persistent from one pass to the next.
    pub fn sweep_helper_ports(
        &self,
        persistent_since: &mut HashMap<String, Instant>,
        grace: Duration,
    ) {
        let helpers: Vec<String> = self
            .book
            .read()
            .values()
            .filter(|r| r.helper)
            .map(|r| r.name.clone())
            .collect();
        persistent_since.retain(|name, _| helpers.contains(name));
        for name in helpers {
            let due = match self.helper_tap(&name) {
                Ok(HelperTap::Claimed) => false,
                Ok(HelperTap::Gone) => true,
                Ok(HelperTap::Persistent) => {
                    let since = *persistent_since
                        .entry(name.clone())
                        .or_insert_with(Instant::now);
                    since.elapsed() >= grace
                }
                Err(e) => {
                    tracing::warn!(port = %name, error = %e, "cannot sweep the bridge helper's port");
                    false
                }
            };
            if !due {
                continue;
            }
            persistent_since.remove(&name);
            match self.reap_helper_port(&name) {
                Ok(Some(what)) => tracing::info!(port = %name, "bridge helper's port: {what}"),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(port = %name, error = %e, "cannot sweep the bridge helper's port")
                }
            }
        }
    }

    /// Removes a helper port the sweeper found due, if it still is now that the writer lock
    /// is held (the helper may have claimed the tap meanwhile): a gone tap's record is
    /// forgotten, a persistent tap is deleted with its record. Says what it did.
    fn reap_helper_port(&self, name: &str) -> Result<Option<&'static str>> {
        let _writer = lock(&self.writer);
        if !self.book.read().get(name).is_some_and(|r| r.helper) {
            return Ok(None);
        }
        match self.helper_tap(name)? {
            HelperTap::Claimed => Ok(None),
            HelperTap::Gone => {
                self.forget_port(name)?;
                Ok(Some("tap gone; port forgotten"))
            }
            HelperTap::Persistent => {
                self.delete_port_locked(name)?;
                Ok(Some(
                    "tap never handed over (still persistent); port and tap deleted",
                ))
            }
        }
    }

    /// The state of a helper port's tap: gone (or no longer a tap), persistent, or claimed.
    fn helper_tap(&self, name: &str) -> Result<HelperTap> {
        if lock(&self.kernel).link_index(name)?.is_none() {
            return Ok(HelperTap::Gone);
        }
        match virtnet_host::tap::tun_flags(name) {
            Ok(Some(flags)) if flags & (virtnet_host::tap::IFF_PERSIST as u32) != 0 => {
                Ok(HelperTap::Persistent)
            }
            Ok(Some(_)) => Ok(HelperTap::Claimed),
            Ok(None) => Ok(HelperTap::Gone),
            Err(e) => Err(Error::Io {
                context: format!("cannot read the tun flags of '{name}'"),
                source: e,
            }),
        }
    }

    /// `DELETE /v1/ports/{name}` (`detach-interface`): deletes the tap (an adopted one is
    /// only taken off its bridge) and forgets the port.
    pub fn delete(&self, name: &str) -> Result<Port> {
        let _writer = lock(&self.writer);
        self.delete_port_locked(name)
    }

    /// [`Ports::delete`] under the writer lock.
    fn delete_port_locked(&self, name: &str) -> Result<Port> {
        let record = self
            .book
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        lock(&self.kernel).remove_port(name, !record.adopted)?;
        self.store.delete_port(name)?;
        self.book.write().remove(name);
        Ok(self.port_view(&record))
    }

    /// `GET /v1/ports`: the ports (of one guest), sorted by name.
    pub fn list(&self, domain: Option<&str>) -> Vec<Port> {
        let records: Vec<PortRecord> = self
            .book
            .read()
            .values()
            .filter(|r| domain.is_none_or(|d| r.domain == d))
            .cloned()
            .collect();
        records.iter().map(|r| self.port_view(r)).collect()
    }

    /// Applies `change` to a port's record, then makes the kernel match it; the record is
    /// stored only when the kernel accepted the change.
    fn change_port(&self, name: &str, change: impl FnOnce(&mut PortRecord)) -> Result<Port> {
        let _writer = lock(&self.writer);
        let mut record = self
            .book
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
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
            self.store.put_port(name, &record)?;
            self.book.write().insert(name.to_string(), record.clone());
            return Ok(self.port_view(&record));
        }
        let bridge = self.bridge_for(&record.source)?;
        let mut kernel = lock(&self.kernel);
        record.mtu = kernel.configure_port(&self.tap_plan(&record, Some(bridge), false))?;
        if let Err(e) = self.store.put_port(name, &record) {
            let old_bridge = self.bridge_for(&before.source).ok();
            let _ = kernel.configure_port(&self.tap_plan(&before, old_bridge, false));
            return Err(e);
        }
        drop(kernel);
        self.book.write().insert(name.to_string(), record.clone());
        Ok(self.port_view(&record))
    }

    /// `PUT /v1/ports/{name}/source`: moves a port to another network or bridge while the
    /// guest runs (the seeds' NAT → bridge edit, without a guest restart).
    pub fn move_to(&self, name: &str, source: InterfaceSource) -> Result<Port> {
        self.change_port(name, |r| r.source = source)
    }

    /// `PUT /v1/ports/{name}/link` (`domif-setlink`).
    pub fn set_link(&self, name: &str, up: bool) -> Result<Port> {
        self.change_port(name, |r| r.link_up = up)
    }

    /// Told when a network has started: re-attaches its ports (its bridge is new).
    pub fn network_started(&self, network: &str) {
        let _writer = lock(&self.writer);
        let records: Vec<PortRecord> = self
            .book
            .read()
            .values()
            .filter(|r| {
                r.macvtap_on.is_none() && r.source == InterfaceSource::Network(network.to_string())
            })
            .cloned()
            .collect();
        for r in records {
            let bridge = self.bridge_for(&r.source).ok();
            if let Err(e) = lock(&self.kernel).configure_port(&self.tap_plan(&r, bridge, false)) {
                tracing::warn!(port = %r.name, network, error = %e, "cannot re-attach port");
            }
        }
    }

    /// Start-up: forgets ports whose tap was deleted while virtnetd was down (the guest went
    /// away) and attaches the others to their bridges again.
    pub fn reconcile(&self) -> Result<()> {
        let present = lock(&self.kernel).link_names()?;
        let records: Vec<PortRecord> = self.book.read().values().cloned().collect();
        for r in records {
            if !present.contains(&r.name) {
                tracing::info!(port = %r.name, domain = %r.domain, "tap gone while virtnetd was down; port removed");
                self.store.delete_port(&r.name)?;
                self.book.write().remove(&r.name);
                continue;
            }
            if r.macvtap_on.is_some() {
                continue;
            }
            let bridge = self.bridge_for(&r.source).ok();
            if let Err(e) = lock(&self.kernel).configure_port(&self.tap_plan(&r, bridge, false)) {
                tracing::warn!(port = %r.name, error = %e, "cannot re-attach port");
            }
        }
        Ok(())
    }

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
        let ports = self.list(Some(domain));
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
    fn names_move_forward_and_skip_taken_ones() -> Result<()> {
        let book = PortBook::new(Vec::new());
        let taken = |n: &str| Ok(n == "vnet1");
        assert_eq!(book.next_name(taken)?, "vnet0");
        assert_eq!(book.next_name(taken)?, "vnet2");
        // A freed vnet0 is not handed out again at once.
        assert_eq!(book.next_name(|_| Ok(false))?, "vnet3");
        Ok(())
    }
}
