//! The answer to a hypervisor's `virNetworkPortCreateXML`: the port it announced, completed
//! from the network the way libvirt 9.0's `networkAllocatePort` completes it, with the
//! `<plug>` saying where the hypervisor attaches the guest.
//!
//! - `nat`, `route`, `open` and isolated networks: `<plug type='network' bridge='virbr0'/>`,
//!   the network's own bridge; `macTableManager` only when the network's `<bridge>` sets it
//!   (libvirt copies the network's value, whose default is "unset").
//! - `<forward mode='bridge'>` with a `<bridge name>`: `<plug type='bridge'>` on that host
//!   bridge.
//! - `bridge` (without a bridge name), `private`, `vepa`, `passthrough`: `<plug type='direct'
//!   dev mode>` with the least used NIC of the pool (the first of the least used), or for
//!   `passthrough` (and `private` with an 802.1Qbh virtualport) the first unused NIC.
//! - `hostdev`: refused, since virtnet does not do PCI passthrough.
//!
//! The port's missing `<bandwidth>`, `<vlan>`, `<rxfilters>`, `<port isolated>` and
//! `<virtualport>` come from its port group (named, else the network's default one) and then
//! the network, as libvirt fills them. Pure: the caller says how many ports use each NIC.

use virtnet_model::{DirectPlugMode, Network, NetworkPort, Plug, PortGroup, VirtualPort};

use crate::external::{plan_external, DirectMode, ExternalPlan, ExternalPlanError};

/// Why a port cannot be allocated on a network, in libvirt's words (the display form is what
/// `virsh` prints after `error: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlugError {
    /// libvirt's `VIR_ERR_CONFIG_UNSUPPORTED`: the port asks for something the network's
    /// kind of connection cannot carry (a virtualport type), or the network is of a kind
    /// virtnet cannot serve (`hostdev`).
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// libvirt's `VIR_ERR_INTERNAL_ERROR` for a network without a device to give out.
    #[error("internal error: {0}")]
    NoDevice(String),
    /// libvirt's `VIR_ERR_INTERNAL_ERROR` for a pool whose devices are all in exclusive use.
    #[error("internal error: {0}")]
    Exhausted(String),
}

/// The port group a port gets: the one it names, else the network's default one
/// (`virPortGroupFindByName`). A named group the network does not have gives none.
pub fn port_group<'n>(net: &'n Network, group: Option<&str>) -> Option<&'n PortGroup> {
    net.portgroups.iter().find(|pg| match group {
        Some(name) => pg.name == name,
        None => pg.default,
    })
}

/// Completes `port` on the active network `net`: its plug, and what its port group and the
/// network give it. `connections(dev)` is how many ports already use the NIC `dev` of a
/// direct network. The answer carries everything `port` carried (bandwidth as given).
pub fn allocate_port(
    net: &Network,
    port: &NetworkPort,
    connections: &dyn Fn(&str) -> usize,
) -> Result<NetworkPort, PlugError> {
    let mut out = port.clone();
    inherit(net, &mut out);
    out.plug = Some(plug_for(net, &out, connections)?);
    Ok(out)
}

/// What the port group and the network give a port that does not say it itself.
fn inherit(net: &Network, port: &mut NetworkPort) {
    let group = port_group(net, port.group.as_deref());
    if port.bandwidth.is_none() {
        port.bandwidth = group.and_then(|g| g.bandwidth.clone());
    }
    if port.vlan.is_none() {
        port.vlan = group
            .and_then(|g| g.vlan.clone())
            .or_else(|| net.vlan.clone());
    }
    if port.trust_guest_rx_filters.is_none() {
        port.trust_guest_rx_filters = group
            .and_then(|g| g.trust_guest_rx_filters)
            .or(net.trust_guest_rx_filters);
    }
    if port.isolated.is_none() {
        port.isolated = net.port_isolated;
    }
    // libvirt merges the three virtualports attribute by attribute; virtnet takes the first
    // one given (port, port group, network), which is the same whenever only one says it.
    if port.virtualport.is_none() {
        port.virtualport = group
            .and_then(|g| g.virtualport.clone())
            .or_else(|| net.virtualport.clone());
    }
}

/// `virNetDevVPortTypeToString` of a port's virtualport.
fn vport_type(vp: &VirtualPort) -> &str {
    vp.kind.as_deref().unwrap_or("none")
}

/// Refuses a virtualport whose type the connection cannot carry; `allowed` lists the types
/// it can, `uses` says what the network uses (libvirt's wording).
fn check_virtualport(
    net: &Network,
    port: &NetworkPort,
    allowed: &[&str],
    uses: &str,
) -> Result<(), PlugError> {
    match &port.virtualport {
        Some(vp) if !allowed.contains(&vport_type(vp)) => Err(PlugError::Unsupported(format!(
            "<virtualport type='{}'> not supported for network '{}' which uses {uses}",
            vport_type(vp),
            net.name
        ))),
        _ => Ok(()),
    }
}

fn plug_for(
    net: &Network,
    port: &NetworkPort,
    connections: &dyn Fn(&str) -> usize,
) -> Result<Plug, PlugError> {
    let mac_table_manager = net.bridge.as_ref().and_then(|b| b.mac_table_manager);
    match plan_external(net) {
        Err(ExternalPlanError::OwnBridge(_)) => {
            check_virtualport(net, port, &[], "IP forwarding")?;
            let bridge = net.bridge_name().ok_or_else(|| {
                PlugError::NoDevice(format!("network '{}' has no bridge", net.name))
            })?;
            Ok(Plug::Network {
                bridge: bridge.to_string(),
                mac_table_manager,
            })
        }
        Ok(ExternalPlan::HostBridge { bridge }) => {
            check_virtualport(net, port, &["openvswitch"], "a bridge device")?;
            Ok(Plug::Bridge {
                bridge,
                mac_table_manager,
            })
        }
        Ok(ExternalPlan::Direct { devs, mode }) => {
            check_virtualport(net, port, &["802.1Qbg", "802.1Qbh"], "a macvtap device")?;
            let exclusive = mode == DirectMode::Passthrough
                || (mode == DirectMode::Private
                    && port
                        .virtualport
                        .as_ref()
                        .is_some_and(|vp| vport_type(vp) == "802.1Qbh"));
            let dev = pick_device(&devs, exclusive, connections).ok_or_else(|| {
                PlugError::Exhausted(format!(
                    "network '{}' requires exclusive access to interfaces, but none are \
                     available",
                    net.name
                ))
            })?;
            Ok(Plug::Direct {
                dev,
                mode: direct_mode(mode),
            })
        }
        Err(ExternalPlanError::NoDevice(_)) => Err(PlugError::NoDevice(format!(
            "network '{}' uses a direct mode, but has no forward dev and no interface pool",
            net.name
        ))),
        Err(ExternalPlanError::Unsupported(mode)) => Err(PlugError::Unsupported(format!(
            "network '{}' uses forward mode '{mode}' (PCI passthrough of SR-IOV virtual \
             functions), which virtnet does not provide",
            net.name
        ))),
    }
}

/// The NIC a direct port gets: with `exclusive`, the first nobody uses; otherwise the least
/// used, the first of them on a tie (libvirt's order).
fn pick_device(
    devs: &[String],
    exclusive: bool,
    connections: &dyn Fn(&str) -> usize,
) -> Option<String> {
    if exclusive {
        return devs.iter().find(|d| connections(d) == 0).cloned();
    }
    let mut best: Option<(&String, usize)> = None;
    for d in devs {
        let n = connections(d);
        if best.is_none_or(|(_, m)| n < m) {
            best = Some((d, n));
        }
    }
    best.map(|(d, _)| d.clone())
}

fn direct_mode(mode: DirectMode) -> DirectPlugMode {
    match mode {
        DirectMode::Bridge => DirectPlugMode::Bridge,
        DirectMode::Vepa => DirectPlugMode::Vepa,
        DirectMode::Private => DirectPlugMode::Private,
        DirectMode::Passthrough => DirectPlugMode::Passthrough,
    }
}
