//! # virtnet-plan
//!
//! The middle of virtnet's model → plan → apply pipeline. Given a network definition (already
//! validated and completed by `virtnet_model::define::prepare`), [`plan`] computes every kernel
//! object the network needs: its bridge, addresses, static routes, sysctls and firewall. The
//! plan is plain data; `virtnet-host` applies it and the daemon compares it with what it
//! observes. A network on host devices (an existing host bridge, or macvtap on host NICs) has
//! no bridge of its own: [`plan_external`] names the device its guests are attached to.
//! A hypervisor's network port gets its `<plug>` from [`allocate_port`].
//! Nothing here does I/O, so every plan is golden-tested.

pub mod coexist;
pub mod conflict;
pub mod external;
pub mod firewall;
pub mod forward;
pub mod kernel;
pub mod overlay;
pub mod port;
pub mod spoof;

use std::net::IpAddr;

use virtnet_model::{ForwardMode, Network};

pub use conflict::{find_conflict, is_link_local, Conflict, HostAddress, HostRoute};
pub use external::{plan_external, DirectMode, ExternalPlan, ExternalPlanError};
pub use firewall::NetworkFirewall;
pub use kernel::{vxlan_name, AddressPlan, BridgePlan, RoutePlan, Sysctl, VxlanPlan};
pub use port::{allocate_port, port_group, PlugError};
/// A subnet in CIDR form: the model's one implementation, used by the plan's firewall and
/// conflict checks.
pub use virtnet_model::Subnet;

/// The link alias that marks a bridge as virtnet's, so that it is recognised after a crash.
pub const ALIAS_PREFIX: &str = "virtnet:";

/// The alias of a bridge whose network was destroyed and which waits for deletion (see
/// virtnetd's reaper). A network name cannot contain `/`, so no network's bridge has it.
pub const PARKED_ALIAS: &str = "virtnet:/parked";

/// The name prefix of a parked bridge; its index follows (at most 15 bytes in all).
pub const PARKED_NAME_PREFIX: &str = "vndel";

/// The link group virtnet creates its bridges in ("vt"). The kernel applies it in the very
/// message that creates the link, while the alias needs a second one: a bridge in this group
/// is recognised as virtnet's even after a crash between the two.
pub const LINK_GROUP: u32 = 0x7674;

/// The route protocol number virtnet writes on the `<route>` routes it adds, so that a restart
/// can tell its routes from an administrator's (iproute2 shows it as `proto 86`).
pub const ROUTE_PROTOCOL: u8 = 86;

/// Why a network cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PlanError {
    /// The offending part of the definition, as an XML path (`forward.mode`, `bridge.name`).
    pub field: String,
    /// Why it cannot be realised.
    pub reason: String,
}

impl PlanError {
    fn new(field: &str, reason: impl Into<String>) -> PlanError {
        PlanError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// Everything the kernel must hold for one active network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network's name.
    pub network: String,
    /// The forward mode, which decides forwarding sysctls and the firewall.
    pub mode: ForwardMode,
    /// The bridge virtnet creates.
    pub bridge: BridgePlan,
    /// The VXLAN device of an overlay network, made right after the bridge and enslaved to
    /// it; `None` for a network on this host only.
    pub vxlan: Option<VxlanPlan>,
    /// Addresses on the bridge, in definition order.
    pub addresses: Vec<AddressPlan>,
    /// `<route>` static routes, added after the addresses they go through.
    pub routes: Vec<RoutePlan>,
    /// Sysctls, in the order they must be written. Per-bridge keys exist only once the bridge
    /// does.
    pub sysctls: Vec<Sysctl>,
    /// The network's firewall. `open` networks get only its rules about the host (what their
    /// guests may reach on it; see [`firewall`]), none about forwarding.
    pub firewall: Option<NetworkFirewall>,
}

/// Plans a network. The definition must be one virtnet can run on its own bridge (nat, route,
/// open, isolated) and must have been completed at define time (bridge name and MAC filled in).
pub fn plan(net: &Network) -> Result<NetworkPlan, PlanError> {
    let mode = net.forward.mode;
    if !mode.has_own_bridge() {
        return Err(PlanError::new(
            "forward.mode",
            format!(
                "mode '{mode}' uses an existing host device; virtnet does not start such \
                 networks yet (only nat, route, open and isolated)"
            ),
        ));
    }
    let bridge_name = net
        .bridge_name()
        .ok_or_else(|| PlanError::new("bridge.name", "no bridge name was assigned at define"))?;
    kernel::check_bridge_name(bridge_name)?;
    if let Some(dev) = net.forward.dev() {
        kernel::check_ifname("forward.dev", dev)?;
    }
    let bridge = BridgePlan::for_network(net, bridge_name);
    let addresses: Vec<AddressPlan> = net
        .ips
        .iter()
        .map(|ip| AddressPlan {
            address: ip.address,
            prefix: ip.prefix_len(),
        })
        .collect();
    let routes = net
        .routes
        .iter()
        .map(|r| RoutePlan {
            destination: r.destination().address,
            prefix: r.prefix_len(),
            gateway: r.gateway,
            metric: r.metric,
        })
        .collect();
    let sysctls = kernel::sysctls(net, bridge_name);
    let firewall = Some(NetworkFirewall::for_network(net, bridge_name));
    Ok(NetworkPlan {
        network: net.name.clone(),
        mode,
        bridge,
        vxlan: kernel::VxlanPlan::for_network(net),
        addresses,
        routes,
        sysctls,
        firewall,
    })
}

/// The network address of `addr/prefix` (host bits cleared).
pub fn network_address(addr: IpAddr, prefix: u8) -> IpAddr {
    Subnet::of(addr, prefix).address
}

impl NetworkPlan {
    /// The subnets of the network's addresses, in definition order.
    pub fn subnets(&self) -> Vec<Subnet> {
        self.addresses
            .iter()
            .map(|a| Subnet::of(a.address, a.prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_subnets_are_the_models() {
        let a = Subnet::of("192.168.122.1".parse().unwrap(), 24);
        assert_eq!(a.to_string(), "192.168.122.0/24");
        assert_eq!(
            network_address("10.1.2.3".parse().unwrap(), 8),
            "10.0.0.0".parse::<IpAddr>().unwrap()
        );
    }
}
