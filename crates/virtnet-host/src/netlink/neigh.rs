//! The neighbour table (ARP and NDP entries), read for `domifaddr --source arp` and, one
//! entry at a time, by the DHCP server's conflict check.

use std::net::IpAddr;

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
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
/// PERMANENT (not INCOMPLETE or FAILED, which name none, nor NOARP).
fn is_live(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    )
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
            Ok(Some(RouteNetlinkMessage::NewNeighbour(r))) if is_live(r.header.state) => {
                Ok(neighbour_from(r))
            }
            Ok(_) => Ok(None),
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV)) => Ok(None),
            Err(e) => Err(e.ctx("get neighbour", format!("{ip} on #{ifindex}"))),
        }
    }
}
