//! `<virtnet:overlay type='evpn' vni='N'/>`: one network stretched across hosts.
//!
//! Each host that defines the network with the same VNI gets a VXLAN device for it, enslaved
//! to the network's bridge; the control plane (BGP EVPN in FRR) tells the hosts which MACs are
//! behind which VTEP. The gateway is the same on every host (anycast gateway): the address is
//! the network's `<ip address>`, the MAC is [`anycast_mac`] of the VNI unless `<mac>` gives one,
//! so a guest that moves keeps its default route and its neighbour entry for it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::mac::MacAddr;

/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// IANA's VXLAN port, the kernel's and FRR's default.
pub const DEFAULT_DSTPORT: u16 = 4789;

/// The first three octets of an anycast gateway MAC: `02` is a locally administered unicast
/// first octet (no vendor's OUI can collide with it), `76:6e` is "vn". The VNI fills the other
/// 24 bits, so two VNIs never share a MAC and every host derives the same one.
pub const ANYCAST_MAC_PREFIX: [u8; 3] = [0x02, 0x76, 0x6e];

/// What a VXLAN header costs over an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8) +
/// the inner Ethernet header (14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;

/// The same over an IPv6 underlay (outer IPv6 is 40 bytes).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// The control plane of an overlay. Only BGP EVPN is built (issue 17); the attribute is there
/// so another one can be added without changing the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlayType {
    /// BGP EVPN (RFC 7432/8365) over the kernel's VXLAN, the MACs learnt through FRR.
    Evpn,
}

impl OverlayType {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlayType::Evpn => "evpn",
        }
    }
}

/// `<virtnet:overlay>`: the network's VXLAN segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlay {
    /// `type`: the control plane.
    #[serde(rename = "type")]
    pub kind: OverlayType,
    /// `vni`: 1 to 16777215, the same on every host of the network, unique on each host.
    pub vni: u32,
    /// `underlay`: the interface facing the other hosts. The VXLAN device is bound to it, its
    /// MTU sets the bridge's (less [`VXLAN_OVERHEAD_V4`]), and its first global address is
    /// the VTEP address when `local` is not given. Host-independent when the hosts name their
    /// uplinks alike, which is why it is preferred over `local` in a definition shared by all
    /// hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    /// `local`: the VTEP source address (this host's underlay address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    /// `dstport`: the UDP port of the VXLAN tunnel, [`DEFAULT_DSTPORT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dstport: Option<u16>,
}

impl Overlay {
    /// The UDP port the tunnel uses.
    pub fn port(&self) -> u16 {
        self.dstport.unwrap_or(DEFAULT_DSTPORT)
    }

    /// Checks the values the parser cannot check one attribute at a time; `field` is the
    /// element's path (`virtnet:overlay`).
    pub fn check(&self, field: &str) -> Result<()> {
        if !(1..=MAX_VNI).contains(&self.vni) {
            return Err(ModelError::bad_value(
                format!("{field}.vni"),
                self.vni.to_string(),
                format!("a VNI must be between 1 and {MAX_VNI}"),
            ));
        }
        if let Some(dev) = &self.underlay {
            crate::ifname::check(dev).map_err(|reason| {
                ModelError::bad_value(format!("{field}.underlay"), dev, reason.to_string())
            })?;
        }
        if let Some(local) = self.local {
            let bad = local.is_unspecified() || local.is_multicast() || local.is_loopback();
            if bad {
                return Err(ModelError::bad_value(
                    format!("{field}.local"),
                    local.to_string(),
                    "the VTEP address must be a unicast address of this host's underlay",
                ));
            }
        }
        if self.dstport == Some(0) {
            return Err(ModelError::bad_value(
                format!("{field}.dstport"),
                "0",
                "expected a UDP port from 1 to 65535",
            ));
        }
        Ok(())
    }
}

/// The anycast gateway MAC of a VNI: [`ANYCAST_MAC_PREFIX`] followed by the VNI's 24 bits.
pub fn anycast_mac(vni: u32) -> MacAddr {
    let [_, a, b, c] = vni.to_be_bytes();
    let [p0, p1, p2] = ANYCAST_MAC_PREFIX;
    MacAddr([p0, p1, p2, a, b, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anycast_macs_are_local_unicast_and_carry_the_vni() {
        let m = anycast_mac(0x0a_0b_0c);
        assert_eq!(m.to_string(), "02:76:6e:0a:0b:0c");
        assert!(!m.is_multicast());
        assert_eq!(m.0[0] & 0x02, 0x02, "locally administered");
        assert_eq!(anycast_mac(MAX_VNI).to_string(), "02:76:6e:ff:ff:ff");
        assert_ne!(anycast_mac(1), anycast_mac(2));
    }
}
