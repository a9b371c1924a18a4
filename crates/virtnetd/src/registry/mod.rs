//! The network registry: libvirt's rules for define, create, edit, undefine and autostart, on
//! top of the [`Store`]. It owns the network records (the store's network table and the
//! in-memory index) and knows the host only through two narrow traits ([`NetworkKernel`],
//! [`NetworkServices`]), so that its rules run as plain unit tests against fakes.
//!
//! Concurrency: every change of a network holds that network's own lock (a `net-destroy` of
//! several holds theirs, taken in name order), so changes of different networks run side by
//! side, store commits and DHCP/DNS starts included. What must be unique across networks
//! (name, UUID, bridge name) is checked and reserved under one short reservation lock, held
//! only for the check: a definition being made is visible to every other check as a
//! reservation until its commit publishes it, so two concurrent defines cannot both take a
//! name or a bridge. The store is written first and the in-memory index second, so the index
//! never shows an unacknowledged state; reads only take the index's read lock, held by a
//! writer only for the instant of one insert, so `net-list` never waits for a change.
//!
//! "Active" means "has a live definition", and an active network exists in the kernel. Every
//! change that starts or stops networks is applied to the kernel first and committed to the
//! store second, under the network's lock: if the kernel refuses, nothing is stored; if the
//! daemon dies in between, the start-up reconcile makes the kernel match the store again (an
//! unacknowledged start is removed, an unacknowledged destroy is undone).

mod locks;

mod adapters;
mod forwards;
mod host;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use uuid::Uuid;
use virtnet_api::{ChangeResult, NetworkDetail, NetworkSummary};
use virtnet_model::define::{identify, prepare, Identity};
use virtnet_model::{ForwardMode, ModelError, Network};

use crate::error::{Error, Kind, Result};
use crate::services::LifecycleKind;
use crate::store::{Record, Store};
use crate::sync::lock;
use virtnet_plan::{plan, NetworkPlan};

pub use host::{NetworkKernel, NetworkServices};

/// Tells whether a network interface of that name exists on the host (bridge auto-naming must
/// skip names already taken by links virtnet did not create).
pub type LinkExists = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The host's view: `/sys/class/net/<name>` exists. Read-only; names that are not a single
/// path component are reported absent rather than looked up elsewhere in sysfs.
pub fn host_link_exists(name: &str) -> bool {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return false;
    }
    Path::new("/sys/class/net").join(name).exists()
}

/// The registry of networks: owns the network records and libvirt's rules about them.
pub struct NetworkRegistry {
    store: Arc<Store>,
    /// One lock per network (see the module comment).
    locks: locks::NetworkLocks,
    /// The reservation lock, and the definitions checked and reserved but not yet committed
    /// (by name): every identity and bridge check sees them as if they were stored.
    reserved: Mutex<BTreeMap<String, Network>>,
    /// The store's records, rebuilt from the store at start and replaced record by record after
    /// each successful commit, so it never shows an unacknowledged state.
    index: RwLock<BTreeMap<String, Record>>,
    link_exists: LinkExists,
    /// The networks' kernel objects.
    kernel: Arc<dyn NetworkKernel>,
    /// DHCP and DNS of the running networks.
    services: Arc<dyn NetworkServices>,
    /// Stored network records that could not be read at start (name → reason): set aside,
    /// reported by `GET /v1/unreadable-networks`, removed by `net-undefine`.
    unreadable: RwLock<BTreeMap<String, String>>,
    /// The stored-form sizes of definitions that forwards were added to (see `forwards.rs`);
    /// forgotten when the network's record is committed otherwise.
    forward_room: forwards::RoomCache,
}

impl std::fmt::Debug for NetworkRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkRegistry")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// What the registry is built from: the store and what it read at start, and the host.
pub struct RegistryParts {
    /// The store (the registry writes only its network table).
    pub store: Arc<Store>,
    /// The stored network records, by name.
    pub records: BTreeMap<String, Record>,
    /// Stored records that could not be read (name → reason).
    pub unreadable: BTreeMap<String, String>,
    /// Which host links exist (bridge auto-naming skips them).
    pub link_exists: LinkExists,
    /// The networks' kernel objects.
    pub kernel: Arc<dyn NetworkKernel>,
    /// The networks' DHCP and DNS servers.
    pub services: Arc<dyn NetworkServices>,
}

/// The ETag of a generation: a quoted string, as HTTP wants it.
pub fn etag(generation: u64) -> String {
    format!("\"{generation}\"")
}

/// True when an `If-Match` value matches the generation: `*`, or one of a comma-separated list
/// of ETags (quotes optional, for hand-written requests).
pub fn etag_matches(if_match: &str, generation: u64) -> bool {
    let want = generation.to_string();
    if_match.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(&want)
            || tag == want
    })
}

fn not_found(id: &str) -> Error {
    Error::not_found(Kind::Network, id)
}

/// Finds a network by name, else by UUID.
fn find<'a>(index: &'a BTreeMap<String, Record>, id: &str) -> Result<(&'a str, &'a Record)> {
    if let Some((name, record)) = index.get_key_value(id) {
        return Ok((name, record));
    }
    if let Ok(uuid) = Uuid::parse_str(id) {
        if let Some((name, record)) = index.iter().find(|(_, r)| r.uuid() == Some(uuid)) {
            return Ok((name, record));
        }
    }
    Err(not_found(id))
}

fn summary(name: &str, record: &Record) -> NetworkSummary {
    let shown = record.shown();
    NetworkSummary {
        name: name.to_string(),
        // Every stored definition went through `prepare`, which fills the UUID.
        uuid: record.uuid().unwrap_or(Uuid::nil()),
        active: record.is_active(),
        persistent: record.is_persistent(),
        autostart: record.autostart,
        bridge: shown.and_then(|n| n.bridge_name()).map(str::to_string),
        forward_mode: shown.map_or(ForwardMode::None, |n| n.forward.mode),
    }
}

fn change(name: &str, record: &Record, created: bool, warnings: Vec<String>) -> ChangeResult {
    ChangeResult {
        network: summary(name, record),
        etag: etag(record.generation),
        created,
        warnings,
    }
}

/// What the kernel must hold for a network: its plan when it has a bridge of its own, `None`
/// for a network on a host device (`forward mode='bridge'` on an existing bridge, macvtap).
fn kernel_plan(net: &Network) -> Result<Option<NetworkPlan>> {
    if !net.forward.mode.has_own_bridge() {
        crate::external::attachment(net)?;
        return Ok(None);
    }
    Ok(Some(plan(net)?))
}

/// libvirt's refusal of an operation that needs network `name` running.
fn not_active(name: &str) -> Error {
    conflict(format!(
        "Requested operation is not valid: network '{name}' is not active"
    ))
}

fn conflict(message: impl Into<String>) -> Error {
    Error::conflict(message)
}

impl NetworkRegistry {
    /// The registry over what the store holds.
    pub fn new(parts: RegistryParts) -> NetworkRegistry {
        NetworkRegistry {
            store: parts.store,
            locks: locks::NetworkLocks::default(),
            reserved: Mutex::new(BTreeMap::new()),
            index: RwLock::new(parts.records),
            link_exists: parts.link_exists,
            kernel: parts.kernel,
            services: parts.services,
            unreadable: RwLock::new(parts.unreadable),
            forward_room: forwards::RoomCache::default(),
        }
    }

    /// Start-up: makes the kernel match the store (see [`NetworkKernel::reconcile`]) and
    /// starts the services of the active networks. A network that cannot be realised is
    /// marked inactive and logged; the daemon still starts. Returns the names of such networks.
    /// Runs at start-up, before any request is served, so it takes no network lock.
    pub fn restore(&self) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        let mut plans = Vec::new();
        for (name, record) in self.read().iter() {
            if let Some(live) = &record.live {
                match kernel_plan(live) {
                    Ok(Some(p)) => plans.push(p),
                    Ok(None) => {}
                    Err(e) => failed.push((name.clone(), e)),
                }
            }
        }
        failed.extend(self.kernel.reconcile(&plans));
        let live: Vec<Arc<Network>> = self
            .read()
            .iter()
            .filter(|(name, _)| !failed.iter().any(|(f, _)| f == *name))
            .filter_map(|(_, r)| r.live.clone())
            .collect();
        for net in live {
            if let Err(e) = self.services.start(&net) {
                if let Ok(Some(p)) = kernel_plan(&net) {
                    if let Err(undo) = self.kernel.stop(&[&p]) {
                        tracing::error!(network = %net.name, error = %undo, "cannot remove the network after its services failed");
                    }
                }
                failed.push((net.name.clone(), e));
            }
        }
        let mut names = Vec::new();
        for (name, error) in failed {
            tracing::error!(network = %name, %error, "cannot restore network; marking it inactive");
            self.deactivate(&name)?;
            names.push(name);
        }
        Ok(names)
    }

    /// The persistent networks marked autostart that are not running, by name.
    pub fn autostart_pending(&self) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(_, r)| r.autostart && !r.is_active())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Records that a network is no longer running: its live definition goes, and a transient
    /// network goes entirely.
    fn deactivate(&self, name: &str) -> Result<()> {
        let Some(mut record) = self.read().get(name).cloned() else {
            return Ok(());
        };
        if record.is_persistent() {
            record.live = None;
            record.generation += 1;
            self.commit(name, Some(record))
        } else {
            self.commit(name, None)
        }
    }

    /// `POST /v1/networks/{id}/start` (`net-start`): starts an inactive persistent network
    /// with its persistent definition.
    pub fn start(&self, id: &str) -> Result<ChangeResult> {
        let result = self.with_network(id, |name| self.start_locked(name))?;
        self.announce(&result.network, LifecycleKind::Started);
        Ok(result)
    }

    /// Tells the lifecycle listeners (libvirt's event clients) about a change just made.
    fn announce(&self, network: &NetworkSummary, kind: LifecycleKind) {
        self.services.lifecycle(&network.name, network.uuid, kind);
    }

    /// [`NetworkRegistry::start`] under the network's lock.
    fn start_locked(&self, name: &str) -> Result<ChangeResult> {
        let mut record = find(&self.read(), name)?.1.clone();
        if record.is_active() {
            return Err(conflict(format!(
                "Requested operation is not valid: network '{name}' is already active"
            )));
        }
        let Some(config) = record.config.clone() else {
            return Err(Error::Inconsistent {
                what: format!("network '{name}' has no definition to start"),
            });
        };
        let p = kernel_plan(&config)?;
        record.live = Some(config);
        record.generation += 1;
        let warnings = self.apply_then_commit(name, record, p.as_ref())?;
        let record = find(&self.read(), name)?.1.clone();
        Ok(change(name, &record, false, warnings))
    }

    /// Starts `p` in the kernel, then stores `record`; if the store fails, stops it again so
    /// that the kernel never holds a network the store does not know as active.
    fn apply_then_commit(
        &self,
        name: &str,
        record: Record,
        p: Option<&NetworkPlan>,
    ) -> Result<Vec<String>> {
        let live = record.live.as_ref();
        let warnings = match (p, live) {
            (Some(p), _) => self.kernel.start(p)?,
            // A network on a host device: nothing to build, only check the device is there.
            (None, Some(net)) => {
                self.kernel.check_device(net)?;
                Vec::new()
            }
            (None, None) => Vec::new(),
        };
        let started = live.map_or(Ok(()), |net| self.services.start(net));
        if let Err(e) = started.and_then(|()| self.commit(name, Some(record))) {
            self.services.stop(name);
            if let Some(p) = p {
                if let Err(undo) = self.kernel.stop(&[p]) {
                    tracing::error!(network = %name, error = %undo, "rollback after a failed commit");
                }
            }
            return Err(e);
        }
        Ok(warnings)
    }

    /// `POST /v1/destroy` (`net-destroy`): stops the given active networks together,
    /// so that the kernel's link-deletion wait is paid once. Nothing is stopped unless every
    /// name is an active network. Transient networks disappear, as in libvirt.
    pub fn destroy(&self, ids: &[String]) -> Result<Vec<NetworkSummary>> {
        loop {
            let mut names = Vec::new();
            for id in ids {
                names.push(find(&self.read(), id)?.0.to_string());
            }
            names.sort();
            names.dedup();
            // In name order, so that two destroys of overlapping sets cannot deadlock.
            let locks: Vec<Arc<Mutex<()>>> = names.iter().map(|n| self.locks.of(n)).collect();
            let _held: Vec<_> = locks.iter().map(|l| lock(l)).collect();
            // An id may have moved to another network while we waited (a UUID redefined).
            let still = ids.iter().all(|id| {
                find(&self.read(), id)
                    .map_or(true, |(n, _)| names.binary_search(&n.to_string()).is_ok())
            });
            if still {
                let stopped = self.destroy_locked(ids)?;
                for network in &stopped {
                    self.announce(network, LifecycleKind::Stopped);
                }
                return Ok(stopped);
            }
        }
    }

    /// [`NetworkRegistry::destroy`] under the locks of the networks.
    fn destroy_locked(&self, ids: &[String]) -> Result<Vec<NetworkSummary>> {
        let index = self.read();
        let mut targets: Vec<(String, Option<NetworkPlan>)> = Vec::new();
        for id in ids {
            let (name, record) = find(&index, id)?;
            let Some(live) = &record.live else {
                return Err(not_active(name));
            };
            if targets.iter().any(|(n, _)| n == name) {
                continue;
            }
            targets.push((name.to_string(), kernel_plan(live)?));
        }
        drop(index);
        for (name, _) in &targets {
            self.services.stop(name);
        }
        let plans: Vec<&NetworkPlan> = targets.iter().filter_map(|(_, p)| p.as_ref()).collect();
        self.kernel.stop(&plans)?;
        let mut out = Vec::new();
        for (name, _) in &targets {
            // Summarised before the change: a transient network has no record afterwards.
            let before = self.read().get(name.as_str()).map(|r| summary(name, r));
            self.deactivate(name)?;
            let after = self.read().get(name.as_str()).map(|r| summary(name, r));
            if after.is_none() {
                // A transient network is gone, and its leases with it.
                if let Err(e) = self.services.forget(name) {
                    tracing::warn!(network = %name, error = %e, "could not delete the leases");
                }
            }
            if let Some(s) = after.or(before.map(|s| NetworkSummary {
                active: false,
                persistent: false,
                autostart: false,
                ..s
            })) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// `GET /v1/networks/{id}/leases` (`net-dhcp-leases`): the DHCP leases of a network,
    /// optionally only those of one MAC address.
    pub fn leases(&self, id: &str, mac: Option<&str>) -> Result<Vec<virtnet_api::DhcpLease>> {
        let net = {
            let index = self.read();
            let (name, record) = find(&index, id)?;
            let Some(live) = record.live.clone() else {
                return Err(not_active(name));
            };
            live
        };
        let mut leases = self.services.leases(&net)?;
        if let Some(mac) = mac {
            let mac: virtnet_model::MacAddr = mac.parse().map_err(|_| Error::BadArgument {
                field: "mac".into(),
                reason: format!("'{mac}' is not a MAC address"),
            })?;
            let mac = mac.to_string();
            leases.retain(|l| l.mac.eq_ignore_ascii_case(&mac));
        }
        Ok(leases)
    }

    /// `GET /v1/bridges` (`iface-bridges`): virtnet's bridges as the kernel has them.
    pub fn bridges(&self) -> Result<Vec<virtnet_api::BridgeStatus>> {
        self.kernel.bridges()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Record>> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a change durable, then visible; a reservation of the name ends as the record
    /// takes its place. `None` deletes the network. Runs under the network's lock only.
    fn commit(&self, name: &str, record: Option<Record>) -> Result<()> {
        self.forward_room.forget(name);
        match &record {
            Some(r) => self.store.put(name, r)?,
            None => self.store.delete(name)?,
        }
        // Under the reservation lock, so that no check sees the network twice or not at all.
        let mut reserved = lock(&self.reserved);
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        match record {
            Some(r) => index.insert(name.to_string(), r),
            None => index.remove(name),
        };
        reserved.remove(name);
        Ok(())
    }

    /// Runs `f` with the lock of the network `id` names (by name or UUID) held, passing its
    /// name.
    fn with_network<T>(&self, id: &str, f: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        loop {
            let name = find(&self.read(), id)?.0.to_string();
            let network = self.locks.of(&name);
            let _held = lock(&network);
            // The id may have moved to another network while we waited (a UUID redefined),
            // or the network may be gone (then say so).
            if find(&self.read(), id)?.0 == name {
                return f(&name);
            }
        }
    }

    /// Runs `f` with the lock of the network called `name` held, whether it exists or not
    /// (a define makes it).
    fn with_name<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let network = self.locks.of(name);
        let _held = lock(&network);
        f()
    }

    /// Checks a new definition of `net.name` against every other network, stored or
    /// reserved, and reserves it (see the module comment): identity (name and UUID) and
    /// bridge. Returns whether it redefines the network of that name, and `prepare`'s
    /// warnings. The caller holds the network's lock and ends the reservation with a commit
    /// or [`NetworkRegistry::or_release`].
    /// `check` runs between the identity check and the bridge check, to refuse what the
    /// caller cannot do with that identity (in that order, as the errors always came).
    fn reserve(
        &self,
        net: &mut Network,
        check: impl FnOnce(&Identity) -> Result<()>,
    ) -> Result<(Identity, Vec<String>)> {
        let mut reserved = lock(&self.reserved);
        let index = self.read();
        let known: Vec<(&str, Uuid)> = Self::known(&index)
            .into_iter()
            .chain(
                reserved
                    .iter()
                    .filter_map(|(name, n)| n.uuid.map(|u| (name.as_str(), u))),
            )
            .collect();
        let identity = identify(net, &known)?;
        check(&identity)?;
        let skip = match &identity {
            Identity::New => None,
            Identity::Redefines => Some(net.name.as_str()),
        };
        let mut others = Self::others(&index, skip);
        others.extend(
            reserved
                .iter()
                .filter(|(name, _)| Some(name.as_str()) != skip)
                .map(|(_, n)| n),
        );
        let warnings = prepare(net, &others, &*self.link_exists)?;
        drop(index);
        reserved.insert(net.name.clone(), net.clone());
        Ok((identity, warnings))
    }

    /// Ends a reservation that will not be committed.
    fn release(&self, name: &str) {
        lock(&self.reserved).remove(name);
    }

    /// `(name, uuid)` of every known network, for [`identify`].
    fn known(index: &BTreeMap<String, Record>) -> Vec<(&str, Uuid)> {
        index
            .iter()
            .filter_map(|(name, r)| r.uuid().map(|u| (name.as_str(), u)))
            .collect()
    }

    /// Every definition (persistent and live) of every network except `skip`, for [`prepare`]:
    /// a new definition must not take a bridge that any of them uses.
    fn others<'a>(index: &'a BTreeMap<String, Record>, skip: Option<&str>) -> Vec<&'a Network> {
        index
            .iter()
            .filter(|(name, _)| Some(name.as_str()) != skip)
            .flat_map(|(_, r)| r.defs())
            .collect()
    }

    /// `GET /v1/unreadable-networks`: the stored records set aside at start, sorted by name.
    pub fn unreadable(&self) -> Vec<virtnet_api::UnreadableNetwork> {
        self.unreadable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, reason)| virtnet_api::UnreadableNetwork {
                name: name.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// Refuses a new network that would overwrite a record set aside as unreadable: it is
    /// only replaced once the user removed it (`net-undefine`), never silently.
    fn check_not_set_aside(&self, name: &str) -> Result<()> {
        let unreadable = self
            .unreadable
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match unreadable.get(name) {
            Some(reason) => Err(conflict(format!(
                "network '{name}' has a stored record virtnetd cannot read ({reason}); \
                 remove it with net-undefine {name} first"
            ))),
            None => Ok(()),
        }
    }

    /// `net-undefine` of a record set aside as unreadable: deletes it and its leases.
    fn undefine_unreadable(&self, name: &str) -> Result<Option<ChangeResult>> {
        if !self
            .unreadable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
        {
            return Ok(None);
        }
        self.store.delete(name)?;
        self.unreadable
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Err(e) = self.services.forget(name) {
            tracing::warn!(network = %name, error = %e, "could not delete the leases");
        }
        tracing::info!(network = %name, "unreadable stored network removed");
        Ok(Some(ChangeResult {
            network: NetworkSummary {
                name: name.to_string(),
                uuid: Uuid::nil(),
                active: false,
                persistent: false,
                autostart: false,
                bridge: None,
                forward_mode: ForwardMode::None,
            },
            etag: String::new(),
            created: false,
            warnings: Vec::new(),
        }))
    }

    /// The bridge a network shows (its live definition's, else its persistent one's), for
    /// listings; `None` for an unknown network or one without a bridge name.
    pub fn shown_bridge(&self, name: &str) -> Option<String> {
        self.read()
            .get(name)
            .and_then(Record::shown)
            .and_then(Network::bridge_name)
            .map(str::to_string)
    }

    /// The live definition of the network called `name` (by name only, as a port names it):
    /// refused when there is no such network or it is not active.
    pub fn live_definition(&self, name: &str) -> Result<Arc<Network>> {
        let index = self.read();
        let record = index.get(name).ok_or_else(|| not_found(name))?;
        record.live.clone().ok_or_else(|| not_active(name))
    }

    /// Every network's summary with its live definition (when running), by reference under
    /// one read of the index: what `/metrics` needs, without a copy of each definition.
    pub fn map_live<T>(
        &self,
        mut f: impl FnMut(NetworkSummary, Option<&Arc<Network>>) -> T,
    ) -> Vec<T> {
        self.read()
            .iter()
            .map(|(name, record)| f(summary(name, record), record.live.as_ref()))
            .collect()
    }

    /// `GET /v1/networks`: every network, sorted by name.
    pub fn list(&self) -> Vec<NetworkSummary> {
        self.read()
            .iter()
            .map(|(name, record)| summary(name, record))
            .collect()
    }

    /// `GET /v1/networks/{id}`: the live definition of an active network, else the persistent
    /// one; with `inactive`, the persistent one whenever there is one (`virsh net-dumpxml
    /// --inactive`).
    pub fn get(&self, id: &str, inactive: bool) -> Result<NetworkDetail> {
        let index = self.read();
        let (name, record) = find(&index, id)?;
        let definition = if inactive {
            record.config.as_deref().or(record.live.as_deref())
        } else {
            record.shown()
        };
        let definition = definition.cloned().ok_or_else(|| Error::Inconsistent {
            what: format!("stored network '{name}' has neither a persistent nor a live definition"),
        })?;
        Ok(NetworkDetail {
            summary: summary(name, record),
            definition,
            etag: etag(record.generation),
        })
    }

    /// `POST /v1/networks`: define (or redefine) a persistent network. A redefinition of an
    /// active network replaces only its persistent definition; the live one is what runs until
    /// the network is restarted (libvirt's `newDef`).
    pub fn define(&self, xml: &str) -> Result<ChangeResult> {
        let net = Network::from_xml(xml)?;
        let name = net.name.clone();
        let result = self.with_name(&name, || self.or_release(&name, self.define_locked(net)))?;
        self.announce(&result.network, LifecycleKind::Defined);
        Ok(result)
    }

    /// [`NetworkRegistry::define`] under the lock of the network's name.
    fn define_locked(&self, mut net: Network) -> Result<ChangeResult> {
        let name = net.name.clone();
        self.check_not_set_aside(&name)?;
        let (identity, warnings) = self.reserve(&mut net, |_| Ok(()))?;
        let (record, created) = match identity {
            Identity::New => {
                let record = Record {
                    config: Some(Arc::new(net)),
                    live: None,
                    autostart: false,
                    generation: 1,
                };
                (record, true)
            }
            Identity::Redefines => {
                let mut record = self.current(&name)?;
                record.config = Some(Arc::new(net));
                record.generation += 1;
                (record, false)
            }
        };
        self.commit(&name, Some(record.clone()))?;
        Ok(change(&name, &record, created, warnings))
    }

    /// The stored record of a network whose lock the caller holds.
    fn current(&self, name: &str) -> Result<Record> {
        Ok(find(&self.read(), name)?.1.clone())
    }

    /// Ends the reservation of `name` when a change that made one failed (a commit that
    /// succeeded ended it already).
    fn or_release<T>(&self, name: &str, done: Result<T>) -> Result<T> {
        if done.is_err() {
            self.release(name);
        }
        done
    }

    /// `POST /v1/networks?transient=true`: create and start a network. A new one is transient
    /// (no persistent definition); an inactive persistent network of the same name and UUID is
    /// started with the given definition, as libvirt does.
    pub fn create(&self, xml: &str) -> Result<ChangeResult> {
        let net = Network::from_xml(xml)?;
        let name = net.name.clone();
        let result = self.with_name(&name, || self.or_release(&name, self.create_locked(net)))?;
        self.announce(&result.network, LifecycleKind::Started);
        Ok(result)
    }

    /// [`NetworkRegistry::create`] under the lock of the network's name.
    fn create_locked(&self, mut net: Network) -> Result<ChangeResult> {
        let name = net.name.clone();
        self.check_not_set_aside(&name)?;
        let (identity, warnings) = self.reserve(&mut net, |identity| {
            let active = self.read().get(&name).is_some_and(Record::is_active);
            if matches!(identity, Identity::Redefines) && active {
                return Err(conflict(format!("network '{name}' is already active")));
            }
            Ok(())
        })?;
        let p = kernel_plan(&net)?;
        let (record, created) = match identity {
            Identity::New => {
                let record = Record {
                    config: None,
                    live: Some(Arc::new(net)),
                    autostart: false,
                    generation: 1,
                };
                (record, true)
            }
            Identity::Redefines => {
                let mut record = self.current(&name)?;
                record.live = Some(Arc::new(net));
                record.generation += 1;
                (record, false)
            }
        };
        let mut warnings = warnings;
        warnings.extend(self.apply_then_commit(&name, record.clone(), p.as_ref())?);
        Ok(change(&name, &record, created, warnings))
    }

    /// `PUT /v1/networks/{id}`: replace the persistent definition, only if the caller saw the
    /// current version (`if_match`). The name cannot change; the UUID cannot either, and a
    /// definition without one keeps the current one. Editing a transient network makes it
    /// persistent, as `virsh net-edit` (a redefinition) does in libvirt.
    pub fn edit(&self, id: &str, xml: &str, if_match: Option<&str>) -> Result<ChangeResult> {
        let Some(if_match) = if_match else {
            return Err(Error::PreconditionRequired {
                what: "an edit needs an If-Match header carrying the network's ETag \
                       (from GET /v1/networks/{id})"
                    .into(),
            });
        };
        let result = self.with_network(id, |name| {
            self.or_release(name, self.edit_locked(name, xml, if_match))
        })?;
        self.announce(&result.network, LifecycleKind::Defined);
        Ok(result)
    }

    /// [`NetworkRegistry::edit`] under the network's lock.
    fn edit_locked(&self, name: &str, xml: &str, if_match: &str) -> Result<ChangeResult> {
        let current = self.current(name)?;
        if !etag_matches(if_match, current.generation) {
            return Err(Error::Stale {
                name: name.to_string(),
                given: if_match.to_string(),
                current: etag(current.generation),
            });
        }
        let mut net = Network::from_xml(xml)?;
        if net.name != name {
            return Err(ModelError::bad_value(
                "name",
                net.name.clone(),
                format!("an edit cannot rename network '{name}'"),
            )
            .into());
        }
        match (net.uuid, current.uuid()) {
            (None, uuid) => net.uuid = uuid,
            (Some(given), Some(uuid)) if given != uuid => {
                return Err(ModelError::bad_value(
                    "uuid",
                    given.to_string(),
                    format!("an edit cannot change the UUID of network '{name}' ({uuid})"),
                )
                .into());
            }
            _ => {}
        }
        let (_, warnings) = self.reserve(&mut net, |_| Ok(()))?;
        let mut record = current;
        record.config = Some(Arc::new(net));
        record.generation += 1;
        self.commit(name, Some(record.clone()))?;
        Ok(change(name, &record, false, warnings))
    }

    /// `DELETE /v1/networks/{id}`: remove the persistent definition. An inactive network is
    /// gone; an active one keeps running as a transient network (libvirt).
    pub fn undefine(&self, id: &str) -> Result<ChangeResult> {
        if !self.read().contains_key(id) {
            let done = self.with_name(id, || self.undefine_unreadable(id))?;
            if let Some(done) = done {
                return Ok(done);
            }
        }
        let result = self.with_network(id, |name| self.undefine_locked(name))?;
        self.announce(&result.network, LifecycleKind::Undefined);
        Ok(result)
    }

    /// [`NetworkRegistry::undefine`] under the network's lock.
    fn undefine_locked(&self, name: &str) -> Result<ChangeResult> {
        let name = name.to_string();
        let mut record = self.current(&name)?;
        if !record.is_persistent() {
            return Err(conflict("cannot undefine transient network"));
        }
        if record.is_active() {
            record.config = None;
            record.autostart = false;
            record.generation += 1;
            self.commit(&name, Some(record.clone()))?;
            Ok(change(&name, &record, false, Vec::new()))
        } else {
            self.commit(&name, None)?;
            if let Err(e) = self.services.forget(&name) {
                tracing::warn!(network = %name, error = %e, "could not delete the leases");
            }
            let mut result = change(&name, &record, false, Vec::new());
            result.network.persistent = false;
            result.network.autostart = false;
            result.etag = String::new();
            Ok(result)
        }
    }

    /// `POST /v1/networks/{id}/update` (`net-update`): changes one section of the persistent
    /// definition (`config`), of the running one (`live`), or of both. Neither flag means
    /// libvirt's `--current`: the live definition of an active network, else the persistent
    /// one. A live change reaches the network's DHCP and DNS servers at once, without
    /// restarting them or the network; a change that would alter the network's kernel objects
    /// cannot be made live. Either every requested definition changes or none does.
    pub fn update(&self, id: &str, request: &virtnet_api::UpdateRequest) -> Result<ChangeResult> {
        use virtnet_model::update::{UpdateCommand, UpdateSection};
        let command: UpdateCommand = request
            .command
            .parse()
            .map_err(|e: ModelError| Error::from(e))?;
        let section: UpdateSection = request
            .section
            .parse()
            .map_err(|e: ModelError| Error::from(e))?;
        self.with_network(id, |name| {
            self.update_locked(name, command, section, request)
        })
    }

    /// [`NetworkRegistry::update`] under the network's lock.
    fn update_locked(
        &self,
        name: &str,
        command: virtnet_model::update::UpdateCommand,
        section: virtnet_model::update::UpdateSection,
        request: &virtnet_api::UpdateRequest,
    ) -> Result<ChangeResult> {
        use virtnet_model::update::apply_update;
        let mut record = self.current(name)?;
        let (live, config) = match (request.live, request.config) {
            (false, false) => (record.is_active(), !record.is_active()),
            flags => flags,
        };
        if config {
            let Some(def) = record.config.as_mut() else {
                return Err(conflict(format!(
                    "Requested operation is not valid: cannot change persistent config of a \
                     transient network '{name}'"
                )));
            };
            apply_update(
                Arc::make_mut(def),
                command,
                section,
                request.parent_index,
                &request.xml,
            )?;
        }
        let mut live_change = None;
        if live {
            let Some(def) = record.live.as_mut() else {
                return Err(conflict(format!(
                    "Requested operation is not valid: network '{name}' is not running"
                )));
            };
            let before = kernel_plan(def)?;
            let def = Arc::make_mut(def);
            apply_update(def, command, section, request.parent_index, &request.xml)?;
            if kernel_plan(def)? != before {
                return Err(Error::unsupported(format!(
                    "Operation not supported: this change to section '{}' of network \
                         '{name}' needs the network restarted; update --config and restart it",
                    request.section
                )));
            }
            live_change = Some(def.clone());
        }
        // `net-update --live --config` changed both the same way: one copy again.
        record.share_definitions();
        record.generation += 1;
        self.commit(name, Some(record.clone()))?;
        if let Some(net) = live_change {
            // The store already holds the change: should the servers refuse it, the next
            // restart of the daemon or the network applies it.
            self.services.reconfigure(&net)?;
        }
        Ok(change(name, &record, false, Vec::new()))
    }

    /// `PUT /v1/networks/{id}/autostart`.
    pub fn set_autostart(&self, id: &str, autostart: bool) -> Result<ChangeResult> {
        self.with_network(id, |name| {
            let record = self.current(name)?;
            if !record.is_persistent() {
                return Err(conflict("cannot set autostart for transient network"));
            }
            self.set_autostart_locked(name, record, autostart)
        })
    }

    /// [`NetworkRegistry::set_autostart`] under the network's lock.
    fn set_autostart_locked(
        &self,
        name: &str,
        mut record: Record,
        autostart: bool,
    ) -> Result<ChangeResult> {
        // Setting the flag it already has changes nothing, so it keeps its ETag.
        if record.autostart != autostart {
            record.autostart = autostart;
            record.generation += 1;
            self.commit(name, Some(record.clone()))?;
        }
        Ok(change(name, &record, false, Vec::new()))
    }
}
