//! The link, address, route and sysctl parts of a plan.

use std::net::IpAddr;

use virtnet_model::overlay::{anycast_mac, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6};
use virtnet_model::{ForwardMode, Network};

use crate::{PlanError, ALIAS_PREFIX};

/// libvirt's default: STP on.
const DEFAULT_STP: bool = true;

/// The kernel's limit on a link alias (`IFALIASZ` − 1).
const MAX_ALIAS_BYTES: usize = 255;

/// The bridge of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    /// Device name (`virbr0`).
    pub name: String,
    /// The bridge's own MAC, set when the link is created. libvirt used a `virbr0-nic` tap to
    /// pin the MAC; setting `IFLA_ADDRESS` at creation pins it just as well, because a bridge
    /// whose address was assigned keeps it when ports come and go.
    pub mac: Option<[u8; 6]>,
    /// `<mtu size>`.
    pub mtu: Option<u32>,
    /// `<bridge stp>`; libvirt's default is on.
    pub stp: bool,
    /// `<bridge delay>` in the kernel's unit, centiseconds.
    pub forward_delay_cs: u32,
    /// The link alias that marks the bridge as virtnet's: `virtnet:<network>`.
    pub alias: String,
}

impl BridgePlan {
    pub(crate) fn for_network(net: &Network, name: &str) -> BridgePlan {
        let bridge = net.bridge.as_ref();
        let delay_s = bridge.and_then(|b| b.delay).unwrap_or(0);
        BridgePlan {
            name: name.to_string(),
            // An overlay network defined through `net-define` has its anycast MAC filled in;
            // this covers a definition planned without define (the golden tests).
            mac: net
                .mac
                .or_else(|| net.overlay.as_ref().map(|o| anycast_mac(o.vni)))
                .map(|m| m.0),
            mtu: net.mtu,
            stp: bridge.and_then(|b| b.stp).unwrap_or(DEFAULT_STP),
            forward_delay_cs: u32::try_from(delay_s.saturating_mul(100)).unwrap_or(u32::MAX),
            alias: alias_for(&net.name),
        }
    }
}

/// The VXLAN device of an overlay network (`<virtnet:overlay>`), enslaved to its bridge.
///
/// What the plan cannot know (it does no I/O) is resolved when the network starts: the VTEP
/// address when only `underlay` is given (its first global address), and the MTU when
/// `<mtu>` is not given (the underlay's MTU less [`VxlanPlan::overhead`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPlan {
    /// Device name: `vxlan-<vni>` (a VNI is used by one network per host, so the name is
    /// free of clashes among virtnet's networks; at most 14 bytes).
    pub name: String,
    /// The VXLAN network identifier.
    pub vni: u32,
    /// UDP destination (and listening) port.
    pub dstport: u16,
    /// The VTEP source address when the definition gives it (`local`).
    pub local: Option<IpAddr>,
    /// The interface facing the other hosts (`underlay`), the device's lower link.
    pub underlay: Option<String>,
    /// The same alias as the bridge (`virtnet:<network>`): the device is virtnet's, and a
    /// leftover one is removed by the start-up reconcile like a bridge.
    pub alias: String,
}

impl VxlanPlan {
    pub(crate) fn for_network(net: &Network) -> Option<VxlanPlan> {
        let o = net.overlay.as_ref()?;
        Some(VxlanPlan {
            name: vxlan_name(o.vni),
            vni: o.vni,
            dstport: o.port(),
            local: o.local,
            underlay: o.underlay.clone(),
            alias: alias_for(&net.name),
        })
    }

    /// The bytes a VXLAN encapsulation adds on an underlay whose VTEP address is `local`
    /// (50 over IPv4, 70 over IPv6): the bridge's MTU is the underlay's less this.
    pub fn overhead(local: IpAddr) -> u32 {
        if local.is_ipv6() {
            VXLAN_OVERHEAD_V6
        } else {
            VXLAN_OVERHEAD_V4
        }
    }
}

/// The name of the VXLAN device of VNI `vni`.
pub fn vxlan_name(vni: u32) -> String {
    format!("vxlan-{vni}")
}

/// The alias marking a network's bridge. Names too long for the kernel's alias limit are cut at
/// a character boundary: the alias is a recognisable ownership mark, while the store, not the
/// alias, says which network a bridge belongs to.
pub fn alias_for(network: &str) -> String {
    let mut alias = format!("{ALIAS_PREFIX}{network}");
    if alias.len() > MAX_ALIAS_BYTES {
        let mut cut = MAX_ALIAS_BYTES;
        while !alias.is_char_boundary(cut) {
            cut -= 1;
        }
        alias.truncate(cut);
    }
    alias
}

/// An address on the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressPlan {
    /// The host's address (`192.168.122.1`).
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// A `<route>` static route through a guest on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoutePlan {
    /// Destination network address (host bits cleared).
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop, on one of the network's subnets.
    pub gateway: IpAddr,
    /// Route metric, if given.
    pub metric: Option<u32>,
}

/// One sysctl to write, as a path under `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sysctl {
    /// `net/ipv4/ip_forward`, `net/ipv6/conf/virbr0/disable_ipv6`, …
    pub key: String,
    /// The value to write.
    pub value: String,
    /// True for keys of the bridge itself, which exist only once it does and go away with it.
    pub per_bridge: bool,
}

impl Sysctl {
    fn global(key: &str, value: &str) -> Sysctl {
        Sysctl {
            key: key.to_string(),
            value: value.to_string(),
            per_bridge: false,
        }
    }

    fn bridge(bridge: &str, leaf: &str, value: &str) -> Sysctl {
        Sysctl {
            key: format!("net/ipv6/conf/{bridge}/{leaf}"),
            value: value.to_string(),
            per_bridge: true,
        }
    }
}

/// The sysctls a network needs, following libvirt: IPv6 is disabled on a bridge without IPv6
/// addresses (so guests get no link-local router); with IPv6 the bridge neither takes router
/// advertisements nor autoconfigures, and is a router (`forwarding`) for its guests.
/// Forwarding is turned on per family when the mode forwards and the network has addresses of
/// that family. Forwarding is never turned off
/// again on destroy: other networks or the administrator may rely on it, as with libvirt.
pub(crate) fn sysctls(net: &Network, bridge: &str) -> Vec<Sysctl> {
    let has_v4 = net.ips.iter().any(|ip| ip.address.is_ipv4());
    let has_v6 = net.ips.iter().any(|ip| ip.address.is_ipv6());
    let forwards = matches!(
        net.forward.mode,
        ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
    );
    let mut out = Vec::new();
    if has_v6 {
        out.push(Sysctl::bridge(bridge, "disable_ipv6", "0"));
        out.push(Sysctl::bridge(bridge, "accept_ra", "0"));
        out.push(Sysctl::bridge(bridge, "autoconf", "0"));
        // The bridge is the guests' IPv6 router (virtnetd advertises on it): in router mode
        // it joins the all-routers group ff02::2, where guests send router solicitations,
        // also on isolated networks (packets are forwarded only when `all/forwarding` is on,
        // and virtnet's firewall forwards nothing from isolated networks anyway).
        out.push(Sysctl::bridge(bridge, "forwarding", "1"));
        if net.overlay.is_some() {
            // The gateway of an overlay is anycast: every host's bridge has the same
            // addresses and MAC (so the same link-local address) on one L2 segment, and
            // duplicate address detection would fail them all but the first host's.
            out.push(Sysctl::bridge(bridge, "accept_dad", "0"));
        }
    } else {
        out.push(Sysctl::bridge(bridge, "disable_ipv6", "1"));
    }
    if forwards && has_v4 {
        out.push(Sysctl::global("net/ipv4/ip_forward", "1"));
    }
    if forwards && has_v6 {
        out.push(Sysctl::global("net/ipv6/conf/all/forwarding", "1"));
    }
    out
}

/// Interface names end up inside nftables strings and sysctl paths, so virtnet accepts only
/// names that are plain in both: virtnet's one interface-name rule
/// ([`virtnet_model::ifname::check`]: Linux's, printable ASCII without `"`, `\`, `*`).
pub fn check_ifname(field: &str, name: &str) -> Result<(), PlanError> {
    virtnet_model::ifname::check(name)
        .map_err(|reason| PlanError::new(field, format!("'{name}' cannot be used: {reason}")))
}

pub(crate) fn check_bridge_name(name: &str) -> Result<(), PlanError> {
    check_ifname("bridge.name", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_give_an_alias_within_the_kernel_limit() {
        let name = "é".repeat(200);
        let alias = alias_for(&name);
        assert!(alias.len() <= MAX_ALIAS_BYTES);
        assert!(alias.starts_with("virtnet:éé"));
        assert_eq!(alias_for("default"), "virtnet:default");
    }

    #[test]
    fn nft_hostile_interface_names_are_refused() {
        for bad in [
            "a\"b",
            "a*",
            "a\\b",
            "",
            "abcdefghijklmnop",
            "a b",
            "é",
            "a:b",
            "..",
        ] {
            assert!(check_ifname("bridge.name", bad).is_err(), "{bad:?}");
        }
        for good in ["virbr0", "br-lan.10", "v_1"] {
            assert!(check_ifname("bridge.name", good).is_ok(), "{good:?}");
        }
    }
}
