//! Traffic counters of every link, from one `RTM_GETLINK` dump (`IFLA_STATS64`): what a
//! metrics scrape reads for all guest ports at once.

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::Netlink;
use crate::error::Result;

/// The kernel's counters of one link (`struct rtnl_link_stats64`), as the host sees them: for
/// a tap, "rx" is what the guest sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

impl LinkStats {
    fn from_message(m: LinkMessage) -> Option<LinkStats> {
        let mut out = LinkStats::default();
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => out.name = n,
                LinkAttribute::Stats64(s) => {
                    out.rx_bytes = s.rx_bytes;
                    out.tx_bytes = s.tx_bytes;
                    out.rx_packets = s.rx_packets;
                    out.tx_packets = s.tx_packets;
                    out.rx_errors = s.rx_errors;
                    out.tx_errors = s.tx_errors;
                    out.rx_dropped = s.rx_dropped;
                    out.tx_dropped = s.tx_dropped;
                }
                _ => {}
            }
        }
        (!out.name.is_empty()).then_some(out)
    }
}

impl Netlink {
    /// The counters of every link of the namespace, in one dump.
    pub fn link_stats(&mut self) -> Result<Vec<LinkStats>> {
        self.dump_map(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            |m| match m {
                RouteNetlinkMessage::NewLink(l) => LinkStats::from_message(l),
                _ => None,
            },
        )
        .map_err(|e| e.ctx("list link counters", ""))
    }
}
