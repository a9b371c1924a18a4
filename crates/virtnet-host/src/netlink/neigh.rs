//! The neighbour table (ARP and NDP entries), read for `domifaddr --source arp` and, one
//! entry at a time, by the DHCP server's conflict check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use crate::error::Result;

/// One resolved neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index the entry is on.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// Its MAC address.
    pub mac: [u8; 6],
}

fn neighbour_from(m: NeighbourMessage) -> Option<Neighbour> {
    // Entries still being resolved or found dead carry no trustworthy MAC.
    if matches!(
        m.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    ) {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for attr in m.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(a.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(a.into()),
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l).ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac: mac?,
    })
}

impl Netlink {
    /// Lists the resolved IPv4 and IPv6 neighbours of the namespace (`RTM_GETNEIGH` dump).
    pub fn neighbours(&mut self) -> Result<Vec<Neighbour>> {
        let msgs = self
            .dump(RouteNetlinkMessage::GetNeighbour(
                NeighbourMessage::default(),
            ))
            .map_err(|e| e.ctx("list neighbours", ""))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(m) => neighbour_from(m),
                _ => None,
            })
            .collect())
    }
}

/// Whether an entry names a MAC a host is using now: REACHABLE, STALE, DELAY, PROBE or
/// PERMANENT (not INCOMPLETE or FAILED, which name none, nor NOARP), or one a control plane
/// installed (`extern_learn`: FRR's zebra puts the MAC/IP routes of BGP EVPN there, NOARP).
fn is_live(state: NeighbourState, flags: NeighbourFlags) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    ) || (state == NeighbourState::Noarp && flags.contains(NeighbourFlags::ExtLearned))
}

impl Netlink {
    /// The live entry (see [`is_live`]) the neighbour table of `ifindex` holds for `ip`
    /// (`RTM_GETNEIGH` for one entry, one round trip: `ip neigh get IP dev IF`); `Ok(None)`
    /// when there is none or it is not live.
    pub fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = ifindex;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        match self.get_one(RouteNetlinkMessage::GetNeighbour(m)) {
            Ok(Some(RouteNetlinkMessage::NewNeighbour(r)))
                if is_live(r.header.state, r.header.flags) =>
            {
                Ok(neighbour_from(r))
            }
            Ok(_) => Ok(None),
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV)) => Ok(None),
            Err(e) => Err(e.ctx("get neighbour", format!("{ip} on #{ifindex}"))),
        }
    }
}

impl Netlink {
    /// The IPv4 address a live entry (see [`is_live`]) of the neighbour table of `ifindex`
    /// gives to `mac` (a dump of the table, filtered here); the first one when there are
    /// several.
    pub fn ipv4_of_mac(&mut self, ifindex: u32, mac: &[u8; 6]) -> Result<Option<Ipv4Addr>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Inet;
        req.header.ifindex = ifindex;
        let msgs = self
            .dump(RouteNetlinkMessage::GetNeighbour(req))
            .map_err(|e| e.ctx("list neighbours", format!("#{ifindex}")))?;
        Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(m)
                if m.header.ifindex == ifindex && is_live(m.header.state, m.header.flags) =>
            {
                match neighbour_from(m) {
                    Some(Neighbour {
                        ip: IpAddr::V4(ip),
                        mac: found,
                        ..
                    }) if &found == mac => Some(ip),
                    _ => None,
                }
            }
            _ => None,
        }))
    }

    /// Adds or replaces the neighbour entry `ip` → `mac` on `ifindex` as REACHABLE (`ip neigh
    /// replace IP lladdr MAC dev IF nud reachable`): the kernel then ages it like one it
    /// resolved itself.
    pub fn set_neighbour(&mut self, ifindex: u32, ip: IpAddr, mac: &[u8; 6]) -> Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::Reachable;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(|e| e.ctx("set neighbour", format!("{ip} on #{ifindex}")))
    }

    /// The remote VTEPs a VXLAN device floods to: the destinations of its all-zero-MAC
    /// forwarding entries (`bridge fdb show dev IF`: `00:00:00:00:00:00 dst ADDR`), which
    /// FRR's zebra installs from BGP EVPN's type-3 routes. Sorted, without duplicates.
    pub fn flood_destinations(&mut self, ifindex: u32) -> Result<Vec<IpAddr>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let msgs = self
            .dump(RouteNetlinkMessage::GetNeighbour(req))
            .map_err(|e| e.ctx("list forwarding entries", format!("#{ifindex}")))?;
        let mut out: Vec<IpAddr> = msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(m) if m.header.ifindex == ifindex => {
                    flood_destination(m)
                }
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The `dst` of an all-zero-MAC forwarding entry.
fn flood_destination(m: NeighbourMessage) -> Option<IpAddr> {
    let mut zero_mac = false;
    let mut dst = None;
    for attr in m.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(l) => zero_mac = l.iter().all(|b| *b == 0),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(a.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => dst = Some(a.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                dst = match b.len() {
                    4 => <[u8; 4]>::try_from(b.as_slice())
                        .ok()
                        .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                    16 => <[u8; 16]>::try_from(b.as_slice())
                        .ok()
                        .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    if zero_mac {
        dst
    } else {
        None
    }
}
