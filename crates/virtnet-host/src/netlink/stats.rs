//! Traffic counters of every link, from one `RTM_GETSTATS` dump asking for
//! `IFLA_STATS_LINK_64` only: what a metrics scrape reads for all guest ports at once.
//!
//! A link dump (`RTM_GETLINK`) carries every attribute of every link (its IPv6 settings alone
//! are hundreds of bytes) and took 40 ms for 2,500 links; the stats dump sends an index and
//! the counters, and is read here without decoding anything else.

use std::io;

use netlink_sys::protocols::NETLINK_ROUTE;

use crate::nl_dump::{self, attr};

/// `RTM_GETSTATS`.
const RTM_GETSTATS: u16 = 94;
/// `IFLA_STATS_LINK_64`: `struct rtnl_link_stats64`.
const IFLA_STATS_LINK_64: u16 = 1;
/// `struct if_stats_msg`: family, two pad bytes, a pad u16, ifindex u32, filter mask u32.
const IF_STATS_MSG_LEN: usize = 12;

/// The kernel's counters of one link (the first fields of `struct rtnl_link_stats64`), as the
/// host sees them: for a tap, "rx" is what the guest sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Interface index.
    pub index: u32,
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
    /// Reads one `RTM_NEWSTATS` body.
    fn parse(body: &[u8]) -> Option<LinkStats> {
        let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
        let s = attr(body.get(IF_STATS_MSG_LEN..)?, IFLA_STATS_LINK_64)?;
        let field = |i: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(
                s.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        // rx_packets, tx_packets, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped,
        // tx_dropped: the order of `struct rtnl_link_stats64`.
        Some(LinkStats {
            index,
            rx_packets: field(0)?,
            tx_packets: field(1)?,
            rx_bytes: field(2)?,
            tx_bytes: field(3)?,
            rx_errors: field(4)?,
            tx_errors: field(5)?,
            rx_dropped: field(6)?,
            tx_dropped: field(7)?,
        })
    }
}

/// The counters of every link of the calling thread's network namespace, in one dump.
pub fn link_stats() -> io::Result<Vec<LinkStats>> {
    // struct if_stats_msg: AF_UNSPEC, every link, filter mask IFLA_STATS_FILTER_BIT(LINK_64).
    let mut body = [0u8; IF_STATS_MSG_LEN];
    body[8..12].copy_from_slice(&(1u32 << (IFLA_STATS_LINK_64 - 1)).to_ne_bytes());
    let request = nl_dump::request(RTM_GETSTATS, &body);
    let mut out = Vec::new();
    nl_dump::dump(NETLINK_ROUTE, &request, &[], |_, body| {
        if let Some(s) = LinkStats::parse(body) {
            out.push(s);
        }
    })?;
    Ok(out)
}
