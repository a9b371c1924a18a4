//! Ports owned by libvirt's hypervisor daemon (`virtqemud`): with libvirt, the hypervisor
//! creates the guest's tap itself (`vnetN`, the guest's MAC with the first byte `fe`) and
//! plugs it into the bridge the port's `<plug>` names; the network driver only records the
//! port (`virNetworkPortCreateXML`) and answers with the plug (see
//! [`virtnet_plan::allocate_port`]).
//!
//! virtnet records such a port in its own store table before it answers, keeps it across its
//! own restarts and across restarts of the network, and shows it like its own ports in
//! `port-list`, `domiflist`, `domifaddr` (the tap's name is found by MAC when read). The tap
//! belongs to the hypervisor: virtnet never creates, changes or deletes it, except that it
//! plugs it into the network's bridge again when the network starts again.
//!
//! The core API the front ends call (the JSON API and libvirt's RPC) is on [`AppState`]:
//! [`AppState::network_port_create`], [`AppState::network_port_lookup`],
//! [`AppState::network_ports`], [`AppState::network_port_delete`],
//! [`AppState::network_port_parameters`] and [`AppState::network_port_set_parameters`]. They
//! take and give plain values (names, `[u8; 16]` UUIDs, XML text) and the daemon's [`Error`],
//! whose messages are libvirt's, prefix included (`Requested operation is not valid: network
//! 'default' is not active`).

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use virtnet_api::Port;
use virtnet_model::{Bandwidth, BandwidthRate, InterfaceSource, NetworkPort, Plug};
use virtnet_plan::{allocate_port, PlugError};

use super::{format_mac, tap_mac, Ports, Serving};
use crate::error::{Error, Kind, Result};
use crate::state::AppState;
use crate::sync::lock;

/// `VIR_NETWORK_PORT_CREATE_RECLAIM`: the hypervisor (after its own restart) announces a port
/// it already has, plug included.
pub const PORT_CREATE_RECLAIM: u32 = 1;
/// `VIR_NETWORK_PORT_CREATE_VALIDATE`: check the XML against libvirt's schema. virtnet's
/// reader is always strict, so this changes nothing.
pub const PORT_CREATE_VALIDATE: u32 = 2;

/// libvirt's typed-parameter names of a port's bandwidth (`VIR_NETWORK_PORT_BANDWIDTH_*`), in
/// the order `virNetworkPortGetParameters` gives them. On libvirt's wire they are `UINT`s.
pub const BANDWIDTH_PARAMETERS: [&str; 7] = [
    "inbound.average",
    "inbound.peak",
    "inbound.floor",
    "inbound.burst",
    "outbound.average",
    "outbound.peak",
    "outbound.burst",
];

/// A port of the hypervisor daemon as the core API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorPortInfo {
    /// The network it is on.
    pub network: String,
    /// The port's UUID.
    pub uuid: [u8; 16],
    /// Its `<networkport>` XML, plug included (`virNetworkPortGetXMLDesc`).
    pub xml: String,
}

/// A port of the hypervisor daemon: its network and its `<networkport>` with the plug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorPort {
    /// The network it is on.
    pub network: String,
    /// The port, plug included.
    pub port: NetworkPort,
    /// The IPv4 address learned from its guest's ARP (see `learning.rs`).
    pub learned_ipv4: Option<std::net::Ipv4Addr>,
}

impl HypervisorPort {
    fn info(&self) -> HypervisorPortInfo {
        HypervisorPortInfo {
            network: self.network.clone(),
            uuid: *self.port.uuid.as_bytes(),
            xml: self.port.to_xml(),
        }
    }
}

/// How a port is stored: its network and its libvirt XML, the format virtnet keeps reading
/// (as for network definitions), not the model's serde form.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPort {
    network: String,
    xml: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learned_ipv4: Option<std::net::Ipv4Addr>,
}

/// The hypervisor's ports, by UUID.
#[derive(Debug, Default)]
pub struct HypervisorBook {
    ports: RwLock<BTreeMap<Uuid, HypervisorPort>>,
}

impl HypervisorBook {
    /// The ports stored in `store`. A record that no longer reads is logged and left in the
    /// store (as an unreadable network is), not served.
    pub fn load(store: &crate::store::Store) -> Result<HypervisorBook> {
        let mut ports = BTreeMap::new();
        for stored in store.hypervisor_ports::<StoredPort>()? {
            match NetworkPort::from_stored_xml(&stored.xml) {
                Ok(port) => {
                    ports.insert(
                        port.uuid,
                        HypervisorPort {
                            network: stored.network,
                            port,
                            learned_ipv4: stored.learned_ipv4,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(network = %stored.network, error = %e, "stored network port is unreadable; set aside")
                }
            }
        }
        Ok(HypervisorBook {
            ports: RwLock::new(ports),
        })
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Uuid, HypervisorPort>> {
        self.ports
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Uuid, HypervisorPort>> {
        self.ports
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

fn port_not_found(uuid: Uuid) -> Error {
    Error::not_found(Kind::NetworkPort, uuid.to_string())
}

/// libvirt's refusal of an operation on a port of an inactive network.
fn not_active(network: &str) -> Error {
    Error::conflict(format!(
        "Requested operation is not valid: network '{network}' is not active"
    ))
}

/// A plug refusal as the daemon's error (its text is libvirt's, prefix included).
fn plug_error(e: PlugError) -> Error {
    match e {
        PlugError::Unsupported(_) => Error::unsupported(e.to_string()),
        PlugError::NoDevice(_) => Error::rejected(e.to_string()),
        PlugError::Exhausted(_) => Error::conflict(e.to_string()),
    }
}

/// libvirt's refusal of a bad argument (`VIR_ERR_INVALID_ARG`), in its words: `field` is the
/// argument at fault, for the log only (libvirt's message names none).
fn invalid_arg(field: &str, reason: impl Into<String>) -> Error {
    let reason = reason.into();
    tracing::debug!(field, %reason, "network port request refused");
    Error::rejected(format!("invalid argument: {reason}"))
}

/// The taps (`tun` links) by their MAC, from one dump of the links.
fn taps_by_mac(links: Vec<virtnet_host::Link>) -> BTreeMap<[u8; 6], Vec<virtnet_host::Link>> {
    let mut out: BTreeMap<[u8; 6], Vec<virtnet_host::Link>> = BTreeMap::new();
    for l in links {
        if let (Some(mac), Some("tun" | "macvtap")) = (l.mac, l.kind.as_deref()) {
            out.entry(mac).or_default().push(l);
        }
    }
    out
}

/// The MAC of the hypervisor's device for a port: libvirt gives a tap the guest's MAC with
/// the first byte `fe`; a macvtap (a direct plug) carries the guest's own.
pub(super) fn device_mac(port: &NetworkPort) -> [u8; 6] {
    match port.plug {
        Some(Plug::Direct { .. }) => port.mac.0,
        _ => tap_mac(port.mac.0),
    }
}

impl Ports {
    /// Records a new port of the hypervisor daemon on `network`, durably, before anyone is
    /// answered. `complete` turns the announced port into the answer (its plug); it is told
    /// how many ports use each host NIC of the network, under the lock that serialises the
    /// hypervisor's port changes, so two of its ports never both get the last free NIC of a
    /// passthrough pool. (virtnet's own macvtap ports are counted as they stand: one being
    /// attached at this very moment through the other front end is not.)
    pub fn hypervisor_port_create(
        &self,
        network: &str,
        port: &NetworkPort,
        complete: impl FnOnce(&dyn Fn(&str) -> usize) -> Result<NetworkPort>,
    ) -> Result<HypervisorPort> {
        let _changes = lock(&self.hypervisor_changes);
        if self.hypervisor.read().contains_key(&port.uuid) {
            return Err(Error::Exists {
                kind: Kind::NetworkPort,
                name: port.uuid.to_string(),
            });
        }
        let answer = complete(&|dev| self.direct_connections(network, dev))?;
        let record = HypervisorPort {
            network: network.to_string(),
            port: answer,
            learned_ipv4: None,
        };
        self.store_hypervisor_port(&record)?;
        self.hypervisor
            .write()
            .insert(record.port.uuid, record.clone());
        // After the insertion (a watch that saw no port may have switched off just before),
        // before the answer: the hypervisor plugs the port's tap once it has it.
        if let Err(e) = self.switch_hypervisor_watch_on() {
            self.hypervisor.write().remove(&record.port.uuid);
            if let Err(undo) = self
                .runtime
                .delete_hypervisor_port(&record.port.uuid.to_string())
            {
                tracing::warn!(port = %record.port.uuid, error = %undo, "cannot forget a port refused");
            }
            return Err(e);
        }
        Ok(record)
    }

    pub(super) fn store_hypervisor_port(&self, record: &HypervisorPort) -> Result<()> {
        self.runtime.put_hypervisor_port(
            &record.port.uuid.to_string(),
            &StoredPort {
                network: record.network.clone(),
                xml: record.port.to_xml(),
                learned_ipv4: record.learned_ipv4,
            },
        )
    }

    /// How many ports of `network` use the host NIC `dev` (a direct network's pool): the
    /// hypervisor's and virtnet's own macvtap ports.
    fn direct_connections(&self, network: &str, dev: &str) -> usize {
        let hypervisor = self
            .hypervisor
            .read()
            .values()
            .filter(|p| p.network == network)
            .filter(|p| matches!(&p.port.plug, Some(Plug::Direct { dev: d, .. }) if d == dev))
            .count();
        let source = InterfaceSource::Network(network.to_string());
        let own = self
            .book
            .read()
            .values()
            .filter(|r| r.source == source && r.macvtap_on.as_deref() == Some(dev))
            .count();
        hypervisor + own
    }

    /// The hypervisor's port with this UUID.
    pub fn hypervisor_port(&self, uuid: Uuid) -> Option<HypervisorPort> {
        self.hypervisor.read().get(&uuid).cloned()
    }

    /// The hypervisor's ports (of one network), by UUID.
    pub fn hypervisor_ports(&self, network: Option<&str>) -> Vec<HypervisorPort> {
        self.hypervisor
            .read()
            .values()
            .filter(|p| network.is_none_or(|n| p.network == n))
            .cloned()
            .collect()
    }

    /// Forgets a port of the hypervisor (durably). Its tap is the hypervisor's and stays.
    pub fn hypervisor_port_delete(&self, uuid: Uuid) -> Result<HypervisorPort> {
        let _changes = lock(&self.hypervisor_changes);
        let record = self
            .hypervisor_port(uuid)
            .ok_or_else(|| port_not_found(uuid))?;
        self.runtime.delete_hypervisor_port(&uuid.to_string())?;
        self.hypervisor.write().remove(&uuid);
        self.unguard_hypervisor_port(uuid);
        Ok(record)
    }

    /// Replaces a port's bandwidth (stored; applying it comes with QoS).
    pub fn hypervisor_port_set_bandwidth(
        &self,
        uuid: Uuid,
        bandwidth: Option<Bandwidth>,
    ) -> Result<HypervisorPort> {
        let _changes = lock(&self.hypervisor_changes);
        let mut record = self
            .hypervisor_port(uuid)
            .ok_or_else(|| port_not_found(uuid))?;
        record.port.bandwidth = bandwidth;
        self.store_hypervisor_port(&record)?;
        self.hypervisor.write().insert(uuid, record.clone());
        Ok(record)
    }

    /// The hypervisor's ports (of one guest) as listings show them: the device is found by
    /// its MAC now (`-` when the hypervisor has none, e.g. the guest is not running).
    pub(super) fn hypervisor_views(&self, domain: Option<&str>) -> Vec<Port> {
        let ports: Vec<HypervisorPort> = self
            .hypervisor
            .read()
            .values()
            .filter(|p| domain.is_none_or(|d| p.port.owner_name == d))
            .cloned()
            .collect();
        if ports.is_empty() {
            return Vec::new();
        }
        let taps = match lock(&self.kernel).links() {
            Ok(links) => taps_by_mac(links),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list links to find the hypervisor's taps");
                BTreeMap::new()
            }
        };
        let mut views: Vec<Port> = ports
            .iter()
            .map(|p| self.hypervisor_view(p, &taps))
            .collect();
        views.sort_by(|a, b| (&a.name, &a.port_uuid).cmp(&(&b.name, &b.port_uuid)));
        views
    }

    fn hypervisor_view(
        &self,
        p: &HypervisorPort,
        taps: &BTreeMap<[u8; 6], Vec<virtnet_host::Link>>,
    ) -> Port {
        let mac = device_mac(&p.port);
        let tap = taps.get(&mac).and_then(|found| found.first());
        let bridge = match &p.port.plug {
            Some(plug) => plug.bridge().unwrap_or_default().to_string(),
            None => String::new(),
        };
        Port {
            name: tap.map_or_else(|| "-".to_string(), |l| l.name.clone()),
            domain: p.port.owner_name.clone(),
            source: InterfaceSource::Network(p.network.clone()),
            bridge,
            mac: p.port.mac.to_string(),
            tap_mac: format_mac(mac),
            model: None,
            link_up: tap.is_some_and(|l| l.up),
            mtu: tap.map_or(0, |l| l.mtu),
            owner_uid: None,
            owner_gid: None,
            queues: 1,
            vnet_hdr: false,
            port_uuid: Some(p.port.uuid.to_string()),
            spoof_check: tap.is_some_and(|l| self.guard.is_guarded(&l.name)),
            isolated: p.port.isolated == Some(true),
            spoof_drops: None,
        }
    }

    /// Plugs the hypervisor's taps of `network`'s ports (all networks': `None`) into the
    /// network's bridge again, wherever they are now (on no bridge, or enslaved elsewhere).
    /// libvirt itself leaves such guests cut off when their network is restarted: the bridge
    /// is new and nothing puts the hypervisor's taps back on it until the guest restarts.
    /// Failures are logged; the port stays recorded.
    pub(super) fn replug_hypervisor_ports(&self, network: Option<&str>) {
        if self.hypervisor.is_empty() {
            return;
        }
        let ports: Vec<HypervisorPort> = self
            .hypervisor_ports(network)
            .into_iter()
            .filter(|p| p.port.plug.as_ref().and_then(Plug::bridge).is_some())
            .collect();
        if ports.is_empty() {
            return;
        }
        let mut kernel = lock(&self.kernel);
        let taps = match kernel.links() {
            Ok(links) => taps_by_mac(links),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list links to re-plug the hypervisor's taps");
                return;
            }
        };
        let mut on_bridge = Vec::new();
        for p in ports {
            let Ok(Serving::Bridge(bridge)) = self.directory.serving(&p.network) else {
                continue; // not active (or no longer a bridge network): nothing to plug into
            };
            let Some(found) = taps.get(&tap_mac(p.port.mac.0)) else {
                continue; // the guest is not running
            };
            let bridge_index = match kernel.bridge_index(&bridge) {
                Ok(Some(i)) => i,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%bridge, error = %e, "cannot look up bridge");
                    continue;
                }
            };
            for tap in found {
                if tap.master != Some(bridge_index) {
                    match kernel.plug_into(tap.index, &bridge) {
                        Ok(_) => {
                            tracing::info!(tap = %tap.name, %bridge, port = %p.port.uuid, "hypervisor's tap plugged into its network's bridge again")
                        }
                        Err(e) => {
                            tracing::warn!(tap = %tap.name, %bridge, error = %e, "cannot re-plug the hypervisor's tap");
                            continue;
                        }
                    }
                }
                on_bridge.push((tap.name.clone(), p.clone()));
            }
        }
        drop(kernel);
        // What they may send follows the network's new definition (from this look at the
        // links: no second dump).
        for (tap, port) in on_bridge {
            self.guard_hypervisor_tap(&tap, &port);
        }
    }
}

/// `inbound.*`/`outbound.*` values as a bandwidth, as `virNetworkPortSetParameters` reads
/// them: unknown names are ignored, a zero is "unset", and a direction without an average (or,
/// inbound, a floor) is left out.
fn bandwidth_from_parameters(params: &[(String, u64)]) -> Option<Bandwidth> {
    let mut inbound = BandwidthRate::default();
    let mut outbound = BandwidthRate::default();
    for (name, value) in params {
        let value = (*value != 0).then_some(*value);
        match name.as_str() {
            "inbound.average" => inbound.average = value,
            "inbound.peak" => inbound.peak = value,
            "inbound.floor" => inbound.floor = value,
            "inbound.burst" => inbound.burst = value,
            "outbound.average" => outbound.average = value,
            "outbound.peak" => outbound.peak = value,
            "outbound.burst" => outbound.burst = value,
            _ => {}
        }
    }
    let bandwidth = Bandwidth {
        inbound: (inbound.average.is_some() || inbound.floor.is_some()).then_some(inbound),
        outbound: outbound.average.is_some().then_some(outbound),
    };
    (bandwidth.inbound.is_some() || bandwidth.outbound.is_some()).then_some(bandwidth)
}

/// A bandwidth as `virNetworkPortGetParameters` gives it: each direction that is set, with
/// all its fields (0 for unset ones).
fn parameters_of(bandwidth: Option<&Bandwidth>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Some(b) = bandwidth else {
        return out;
    };
    let v = |x: Option<u64>| x.unwrap_or(0);
    if let Some(r) = &b.inbound {
        for (name, value) in BANDWIDTH_PARAMETERS[..4]
            .iter()
            .zip([r.average, r.peak, r.floor, r.burst])
        {
            out.push((name.to_string(), v(value)));
        }
    }
    if let Some(r) = &b.outbound {
        for (name, value) in BANDWIDTH_PARAMETERS[4..]
            .iter()
            .zip([r.average, r.peak, r.burst])
        {
            out.push((name.to_string(), v(value)));
        }
    }
    out
}

impl AppState {
    /// `virNetworkPortCreateXML`: the hypervisor announces a guest NIC on `network`
    /// (`<networkport>` XML without a plug; with [`PORT_CREATE_RECLAIM`], one it already has,
    /// plug included). The port is completed from the network (its plug: which bridge or NIC
    /// the hypervisor attaches the guest to) and recorded durably before this returns; the
    /// answer is the completed port. Refused (changing nothing) when the network is unknown or
    /// inactive, the XML is bad (the error names the field), the UUID is taken, or the network
    /// cannot carry the port (hostdev, a virtualport type it does not support, no free NIC).
    pub fn network_port_create(
        &self,
        network: &str,
        xml: &str,
        flags: u32,
    ) -> Result<HypervisorPortInfo> {
        let unknown = flags & !(PORT_CREATE_RECLAIM | PORT_CREATE_VALIDATE);
        if unknown != 0 {
            return Err(invalid_arg(
                "flags",
                format!("unsupported flags (0x{unknown:x}) in function networkPortCreateXML"),
            ));
        }
        // libvirt's order: the network must exist, then the XML must parse, then the network
        // must be active. `network` may be its UUID (libvirt's front end finds networks so).
        let name = self.networks.get(network, false)?.summary.name;
        let network = name.as_str();
        let live = match self.networks.live_definition(network) {
            Err(e @ Error::NotFound { .. }) => return Err(e),
            other => other,
        };
        let port = NetworkPort::from_xml(xml)?;
        let live = live?;
        let reclaim = flags & PORT_CREATE_RECLAIM != 0;
        match (&port.plug, reclaim) {
            (None, true) => {
                return Err(invalid_arg(
                    "flags",
                    "Port reclaim requested but plug type is none",
                ))
            }
            (Some(_), false) => {
                return Err(invalid_arg(
                    "plug",
                    "Port reclaim not requested but plug type is not none",
                ))
            }
            _ => {}
        }
        let record = self
            .ports
            .hypervisor_port_create(network, &port, |connections| {
                if reclaim {
                    // The hypervisor kept the guest running across its own restart: what it
                    // has is what is recorded.
                    Ok(port.clone())
                } else {
                    allocate_port(&live, &port, connections).map_err(plug_error)
                }
            })?;
        Ok(record.info())
    }

    /// The name of the network `id` names (a name or UUID), refused when there is none.
    fn network_name(&self, id: Option<&str>) -> Result<Option<String>> {
        id.map(|id| Ok(self.networks.get(id, false)?.summary.name))
            .transpose()
    }

    /// A port found by UUID, checked the way libvirt checks it: the network (when given) must
    /// exist and hold the port, and the port's network must be active.
    fn active_network_port(&self, network: Option<&str>, uuid: [u8; 16]) -> Result<HypervisorPort> {
        let uuid = Uuid::from_bytes(uuid);
        let network = self.network_name(network)?;
        let port = self
            .ports
            .hypervisor_port(uuid)
            .filter(|p| network.as_ref().is_none_or(|n| &p.network == n))
            .ok_or_else(|| port_not_found(uuid))?;
        match self.networks.live_definition(&port.network) {
            Ok(_) => Ok(port),
            Err(Error::Conflict { .. }) | Err(Error::NotFound { .. }) => {
                Err(not_active(&port.network))
            }
            Err(e) => Err(e),
        }
    }

    /// `virNetworkPortLookupByUUID` and `virNetworkPortGetXMLDesc`: the port with this UUID
    /// (on `network` when given), its XML with the plug. Refused when the network is unknown,
    /// the port is not there (`network port not found: …`), or its network is inactive.
    pub fn network_port_lookup(
        &self,
        network: Option<&str>,
        uuid: [u8; 16],
    ) -> Result<HypervisorPortInfo> {
        Ok(self.active_network_port(network, uuid)?.info())
    }

    /// `virNetworkListAllPorts`: the ports of `network`, by UUID. Refused when the network is
    /// unknown or inactive.
    pub fn network_ports(&self, network: &str) -> Result<Vec<HypervisorPortInfo>> {
        let name = self.networks.get(network, false)?.summary.name;
        self.networks.live_definition(&name)?;
        Ok(self
            .ports
            .hypervisor_ports(Some(&name))
            .iter()
            .map(HypervisorPort::info)
            .collect())
    }

    /// `virNetworkPortDelete`: forgets the port (durably). The tap is the hypervisor's and is
    /// left as it is. Unlike libvirt, this also works while the network is inactive: virtnet
    /// keeps ports across network restarts, so a guest stopped while its network was down
    /// must still be able to remove its port.
    pub fn network_port_delete(&self, network: Option<&str>, uuid: [u8; 16]) -> Result<()> {
        let id = Uuid::from_bytes(uuid);
        if let Some(n) = self.network_name(network)? {
            if self
                .ports
                .hypervisor_port(id)
                .is_none_or(|p| p.network != n)
            {
                return Err(port_not_found(id));
            }
        }
        self.ports.hypervisor_port_delete(id).map(|_| ())
    }

    /// `virNetworkPortGetParameters`: the port's bandwidth as libvirt's typed parameters
    /// ([`BANDWIDTH_PARAMETERS`]): each direction that is set, with all its fields (0 for
    /// unset ones); empty without a bandwidth.
    pub fn network_port_parameters(
        &self,
        network: Option<&str>,
        uuid: [u8; 16],
    ) -> Result<Vec<(String, u64)>> {
        let port = self.active_network_port(network, uuid)?;
        Ok(parameters_of(port.port.bandwidth.as_ref()))
    }

    /// `virNetworkPortSetParameters`: replaces the port's bandwidth with the given
    /// [`BANDWIDTH_PARAMETERS`] (unknown names ignored, 0 = unset, a direction without an
    /// average, or inbound a floor, is dropped), as libvirt does. Stored; applying it to the
    /// kernel comes with QoS.
    pub fn network_port_set_parameters(
        &self,
        network: Option<&str>,
        uuid: [u8; 16],
        params: &[(String, u64)],
    ) -> Result<()> {
        let port = self.active_network_port(network, uuid)?;
        self.ports
            .hypervisor_port_set_bandwidth(port.port.uuid, bandwidth_from_parameters(params))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_like_libvirt() {
        let params: Vec<(String, u64)> = [
            ("inbound.average", 1000),
            ("inbound.floor", 200),
            ("outbound.peak", 7),
            ("nonsense", 1),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
        let b = bandwidth_from_parameters(&params).expect("inbound set");
        // No outbound average: the outbound direction is dropped, as libvirt drops it.
        assert!(b.outbound.is_none());
        let back = parameters_of(Some(&b));
        assert_eq!(
            back,
            vec![
                ("inbound.average".to_string(), 1000),
                ("inbound.peak".to_string(), 0),
                ("inbound.floor".to_string(), 200),
                ("inbound.burst".to_string(), 0),
            ]
        );
        assert_eq!(bandwidth_from_parameters(&[]), None);
    }
}
