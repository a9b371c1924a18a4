//! The plan of a network on host devices: libvirt's `forward mode='bridge'` with
//! `<bridge name='br0'/>` (guests join an existing host bridge; virtnet adds no address, DHCP
//! or firewall there) and the direct modes (`bridge`, `vepa`, `private`, `passthrough` with
//! `<interface dev>`), whose guests each get a macvtap device on one of the host's NICs.
//!
//! Such a network builds nothing in the kernel when it starts: its plan only names the device
//! its guests are attached to. Whether that device exists is the daemon's check at start; the
//! ports are made per guest.

use virtnet_model::{ForwardMode, Network};

/// How the macvtap ports of a direct network reach their NIC (libvirt's `<forward mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectMode {
    /// Guests on the same NIC talk to each other directly (`mode='bridge'` without a bridge).
    Bridge,
    /// Everything goes out to the adjacent switch (802.1Qbg), even between guests.
    Vepa,
    /// Guests on the same NIC cannot talk to each other.
    Private,
    /// The NIC is given to one guest.
    Passthrough,
}

impl std::fmt::Display for DirectMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DirectMode::Bridge => "bridge",
            DirectMode::Vepa => "vepa",
            DirectMode::Private => "private",
            DirectMode::Passthrough => "passthrough",
        })
    }
}

/// Where the guests of a host-device network are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalPlan {
    /// An existing host bridge: each port is a tap enslaved to it.
    HostBridge {
        /// The bridge's name (`<bridge name>`).
        bridge: String,
    },
    /// Host NICs: each port is a macvtap device on the first of them that exists.
    Direct {
        /// The NICs (`<forward dev>` / `<interface dev>`), in order of preference.
        devs: Vec<String>,
        /// The macvtap mode.
        mode: DirectMode,
    },
}

/// Why a network has no host-device plan. The display form starts with the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalPlanError {
    /// A `nat`, `route`, `open` or isolated network: it has a bridge of its own (see
    /// [`crate::plan`]).
    #[error("forward.mode: a '{0}' network has a bridge of its own, not a host device")]
    OwnBridge(ForwardMode),
    /// A mode virtnet cannot run (`hostdev` needs PCI passthrough of virtual functions).
    #[error("forward.mode: virtnet cannot run '{0}' networks (PCI passthrough)")]
    Unsupported(ForwardMode),
    /// A direct mode with neither a `<bridge name>` nor an `<interface dev>`.
    #[error(
        "forward.interface: a '{0}' network needs a <bridge name> or an <interface dev> to \
         attach its guests to"
    )]
    NoDevice(ForwardMode),
}

impl ExternalPlanError {
    /// The offending part of the definition, as an XML path.
    pub fn field(&self) -> &'static str {
        match self {
            ExternalPlanError::OwnBridge(_) | ExternalPlanError::Unsupported(_) => "forward.mode",
            ExternalPlanError::NoDevice(_) => "forward.interface",
        }
    }
}

/// Plans a network on host devices: the host bridge its guests join, or the NICs and mode of
/// their macvtap ports. `forward mode='bridge'` means the host bridge when the network names
/// one, macvtap in bridge mode otherwise.
pub fn plan_external(net: &Network) -> Result<ExternalPlan, ExternalPlanError> {
    let mode = net.forward.mode;
    if mode.has_own_bridge() {
        return Err(ExternalPlanError::OwnBridge(mode));
    }
    if mode == ForwardMode::Bridge {
        if let Some(bridge) = net.bridge_name() {
            return Ok(ExternalPlan::HostBridge {
                bridge: bridge.to_string(),
            });
        }
    }
    let direct = match mode {
        ForwardMode::Bridge => DirectMode::Bridge,
        ForwardMode::Vepa => DirectMode::Vepa,
        ForwardMode::Private => DirectMode::Private,
        ForwardMode::Passthrough => DirectMode::Passthrough,
        other => return Err(ExternalPlanError::Unsupported(other)),
    };
    // `<forward dev>` is the first `<interface dev>` (libvirt's model), so the interfaces are
    // the whole list. A `<pf dev>` alone (an SR-IOV pool) names no NIC a macvtap can sit on.
    if net.forward.interfaces.is_empty() {
        return Err(ExternalPlanError::NoDevice(mode));
    }
    Ok(ExternalPlan::Direct {
        devs: net.forward.interfaces.clone(),
        mode: direct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(xml: &str) -> Network {
        Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bridge_mode_means_the_host_bridge_when_one_is_named() {
        let n =
            net("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>");
        assert_eq!(
            plan_external(&n),
            Ok(ExternalPlan::HostBridge {
                bridge: "br0".into()
            })
        );
    }

    #[test]
    fn direct_modes_keep_the_nics_in_order() {
        let n = net(
            "<network><name>v</name><forward mode='vepa'><interface dev='eth2'/>\
             <interface dev='eth1'/></forward></network>",
        );
        assert_eq!(
            plan_external(&n),
            Ok(ExternalPlan::Direct {
                devs: vec!["eth2".into(), "eth1".into()],
                mode: DirectMode::Vepa
            })
        );
    }

    #[test]
    fn refusals_name_their_field() {
        let n = net("<network><name>p</name><forward mode='passthrough'><pf dev='eth0'/></forward></network>");
        let e = plan_external(&n).unwrap_err();
        assert_eq!(e, ExternalPlanError::NoDevice(ForwardMode::Passthrough));
        assert_eq!(e.field(), "forward.interface");
        assert!(e
            .to_string()
            .starts_with("forward.interface: a 'passthrough' network"));
        let n = net("<network><name>n</name><forward mode='nat'/></network>");
        let e = plan_external(&n).unwrap_err();
        assert_eq!(e.field(), "forward.mode");
    }
}
