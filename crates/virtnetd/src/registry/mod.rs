//! The network registry: libvirt's rules for define, create, edit, undefine and autostart, on
//! top of the [`Store`]. It owns the network records (the store's network table and the
//! in-memory index) and knows the host only through two narrow traits ([`NetworkKernel`],
//! [`NetworkServices`]), so that its rules run as plain unit tests against fakes.
//!
//! Concurrency: mutations take one lock for the whole check-then-write sequence (the identity
//! and bridge checks look at every other network, so two concurrent defines must not both pass
//! them), write the store, and only then publish the new record in the in-memory index. Reads
//! only take the index's read lock, so they run concurrently with each other and block a
//! mutation only for the instant the index is updated.
//!
//! "Active" means "has a live definition", and an active network exists in the kernel. Every
//! change that starts or stops networks is applied to the kernel first and committed to the
//! store second, under the writer lock: if the kernel refuses, nothing is stored; if the daemon
//! dies in between, the start-up reconcile makes the kernel match the store again (an
//! unacknowledged start is removed, an unacknowledged destroy is undone).

mod adapters;
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
    /// Serialises mutations (see the module comment).
    writer: Arc<Mutex<()>>,
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
    /// The lock that serialises changes (shared with whoever must not interleave with them).
    pub writer: Arc<Mutex<()>>,
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

fn conflict(message: impl Into<String>) -> Error {
    Error::conflict(message)
}

impl NetworkRegistry {
    /// The registry over what the store holds.
    pub fn new(parts: RegistryParts) -> NetworkRegistry {
        NetworkRegistry {
            store: parts.store,
            writer: parts.writer,
            index: RwLock::new(parts.records),
            link_exists: parts.link_exists,
            kernel: parts.kernel,
            services: parts.services,
            unreadable: RwLock::new(parts.unreadable),
        }
    }

    /// Start-up: makes the kernel match the store (see [`NetworkKernel::reconcile`]) and
    /// starts the services of the active networks. A network that cannot be realised is
    /// marked inactive and logged; the daemon still starts. Returns the names of such networks.
    pub fn restore(&self) -> Result<Vec<String>> {
        let _writer = lock(&self.writer);
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
        let live: Vec<Network> = self
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
        let _writer = lock(&self.writer);
        let name = find(&self.read(), id)?.0.to_string();
        self.start_locked(&name)
    }

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
        let _writer = lock(&self.writer);
        let index = self.read();
        let mut targets: Vec<(String, Option<NetworkPlan>)> = Vec::new();
        for id in ids {
            let (name, record) = find(&index, id)?;
            let Some(live) = &record.live else {
                return Err(conflict(format!(
                    "Requested operation is not valid: network '{name}' is not active"
                )));
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
                return Err(conflict(format!(
                    "Requested operation is not valid: network '{name}' is not active"
                )));
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

    /// Makes a change durable, then visible. `None` deletes the network.
    fn commit(&self, name: &str, record: Option<Record>) -> Result<()> {
        match &record {
            Some(r) => self.store.put(name, r)?,
            None => self.store.delete(name)?,
        }
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        match record {
            Some(r) => index.insert(name.to_string(), r),
            None => index.remove(name),
        };
        Ok(())
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

    fn prepare(
        &self,
        net: &mut Network,
        index: &BTreeMap<String, Record>,
        skip: Option<&str>,
    ) -> Result<Vec<String>, ModelError> {
        prepare(net, &Self::others(index, skip), &*self.link_exists)
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
    pub fn live_definition(&self, name: &str) -> Result<Network> {
        let index = self.read();
        let record = index.get(name).ok_or_else(|| not_found(name))?;
        record.live.clone().ok_or_else(|| {
            conflict(format!(
                "Requested operation is not valid: network '{name}' is not active"
            ))
        })
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
            record.config.as_ref().or(record.live.as_ref())
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
        let mut net = Network::from_xml(xml)?;
        let _writer = lock(&self.writer);
        self.check_not_set_aside(&net.name)?;
        let index = self.read();
        let name = net.name.clone();
        let (record, created, warnings) = match identify(&net, &Self::known(&index))? {
            Identity::New => {
                let warnings = self.prepare(&mut net, &index, None)?;
                let record = Record {
                    config: Some(net),
                    live: None,
                    autostart: false,
                    generation: 1,
                };
                (record, true, warnings)
            }
            Identity::Redefines => {
                let mut record = find(&index, &name)?.1.clone();
                let warnings = self.prepare(&mut net, &index, Some(&name))?;
                record.config = Some(net);
                record.generation += 1;
                (record, false, warnings)
            }
        };
        drop(index);
        self.commit(&name, Some(record.clone()))?;
        Ok(change(&name, &record, created, warnings))
    }

    /// `POST /v1/networks?transient=true`: create and start a network. A new one is transient
    /// (no persistent definition); an inactive persistent network of the same name and UUID is
    /// started with the given definition, as libvirt does.
    pub fn create(&self, xml: &str) -> Result<ChangeResult> {
        let mut net = Network::from_xml(xml)?;
        let _writer = lock(&self.writer);
        self.check_not_set_aside(&net.name)?;
        let index = self.read();
        let name = net.name.clone();
        let (record, created, warnings, p) = match identify(&net, &Self::known(&index))? {
            Identity::New => {
                let warnings = self.prepare(&mut net, &index, None)?;
                let p = kernel_plan(&net)?;
                let record = Record {
                    config: None,
                    live: Some(net),
                    autostart: false,
                    generation: 1,
                };
                (record, true, warnings, p)
            }
            Identity::Redefines => {
                let mut record = find(&index, &name)?.1.clone();
                if record.is_active() {
                    return Err(conflict(format!("network '{name}' is already active")));
                }
                let warnings = self.prepare(&mut net, &index, Some(&name))?;
                let p = kernel_plan(&net)?;
                record.live = Some(net);
                record.generation += 1;
                (record, false, warnings, p)
            }
        };
        drop(index);
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
        let _writer = lock(&self.writer);
        let index = self.read();
        let (name, current) = find(&index, id)?;
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
        let name = name.to_string();
        let mut record = current.clone();
        let warnings = self.prepare(&mut net, &index, Some(&name))?;
        record.config = Some(net);
        record.generation += 1;
        drop(index);
        self.commit(&name, Some(record.clone()))?;
        Ok(change(&name, &record, false, warnings))
    }

    /// `DELETE /v1/networks/{id}`: remove the persistent definition. An inactive network is
    /// gone; an active one keeps running as a transient network (libvirt).
    pub fn undefine(&self, id: &str) -> Result<ChangeResult> {
        let _writer = lock(&self.writer);
        if !self.read().contains_key(id) {
            if let Some(done) = self.undefine_unreadable(id)? {
                return Ok(done);
            }
        }
        let index = self.read();
        let (name, current) = find(&index, id)?;
        let name = name.to_string();
        if !current.is_persistent() {
            return Err(conflict("cannot undefine transient network"));
        }
        let mut record = current.clone();
        drop(index);
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
        use virtnet_model::update::{apply_update, UpdateCommand, UpdateSection};
        let command: UpdateCommand = request
            .command
            .parse()
            .map_err(|e: ModelError| Error::from(e))?;
        let section: UpdateSection = request
            .section
            .parse()
            .map_err(|e: ModelError| Error::from(e))?;
        let _writer = lock(&self.writer);
        let index = self.read();
        let (name, current) = find(&index, id)?;
        let name = name.to_string();
        let (live, config) = match (request.live, request.config) {
            (false, false) => (current.is_active(), !current.is_active()),
            flags => flags,
        };
        let mut record = current.clone();
        drop(index);
        if config {
            let Some(def) = record.config.as_mut() else {
                return Err(conflict(format!(
                    "Requested operation is not valid: cannot change persistent config of a \
                     transient network '{name}'"
                )));
            };
            apply_update(def, command, section, request.parent_index, &request.xml)?;
        }
        let mut live_change = None;
        if live {
            let Some(def) = record.live.as_mut() else {
                return Err(conflict(format!(
                    "Requested operation is not valid: network '{name}' is not running"
                )));
            };
            let before = kernel_plan(def)?;
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
        record.generation += 1;
        self.commit(&name, Some(record.clone()))?;
        if let Some(net) = live_change {
            // The store already holds the change: should the servers refuse it, the next
            // restart of the daemon or the network applies it.
            self.services.reconfigure(&net)?;
        }
        Ok(change(&name, &record, false, Vec::new()))
    }

    /// `PUT /v1/networks/{id}/autostart`.
    pub fn set_autostart(&self, id: &str, autostart: bool) -> Result<ChangeResult> {
        let _writer = lock(&self.writer);
        let index = self.read();
        let (name, current) = find(&index, id)?;
        let name = name.to_string();
        if !current.is_persistent() {
            return Err(conflict("cannot set autostart for transient network"));
        }
        let mut record = current.clone();
        drop(index);
        // Setting the flag it already has changes nothing, so it keeps its ETag.
        if record.autostart != autostart {
            record.autostart = autostart;
            record.generation += 1;
            self.commit(&name, Some(record.clone()))?;
        }
        Ok(change(&name, &record, false, Vec::new()))
    }
}
