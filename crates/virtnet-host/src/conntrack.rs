//! The source-NATed IPv4 connections of the namespace, from one ctnetlink dump
//! (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` on `NETLINK_NETFILTER`): what a metrics scrape
//! counts per network.
//!
//! Only the entry's status word and its original source address are read; the rest of each
//! message is skipped by attribute length, so an entry costs a few dozen byte reads.

use std::io;
use std::net::Ipv4Addr;

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::nl_dump::{self, attr};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET`.
const CT_GET: u16 = (1 << 8) | 1;
/// `struct nfgenmsg` before a message's attributes.
const NFGENMSG_LEN: usize = 4;
/// Attribute types (`enum ctattr_type`, `ctattr_tuple`, `ctattr_ip`).
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
/// `IPS_SRC_NAT`: the connection's source is translated (masquerade, SNAT).
const IPS_SRC_NAT: u32 = 1 << 4;

/// The original source address of every source-NATed IPv4 connection tracked in the calling
/// thread's network namespace. An empty list when conntrack is not loaded there.
pub fn snat_sources_v4() -> io::Result<Vec<Ipv4Addr>> {
    // nfgenmsg: family, version, res_id.
    let request = nl_dump::request(CT_GET, &[libc::AF_INET as u8, 0, 0, 0]);
    let mut out = Vec::new();
    // No conntrack in this namespace (module not loaded): nothing tracked.
    let empty = [libc::EOPNOTSUPP, libc::ENOENT];
    nl_dump::dump(NETLINK_NETFILTER, &request, &empty, |_, body| {
        if let Some(src) = body.get(NFGENMSG_LEN..).and_then(snat_source) {
            out.push(src);
        }
    })?;
    Ok(out)
}

/// The original source of a conntrack entry's attributes, when the entry is source-NATed.
fn snat_source(attrs: &[u8]) -> Option<Ipv4Addr> {
    let status = attr(attrs, CTA_STATUS).and_then(|v| v.get(..4))?;
    let status = u32::from_be_bytes([status[0], status[1], status[2], status[3]]);
    if status & IPS_SRC_NAT == 0 {
        return None;
    }
    let ip = attr(
        attr(attr(attrs, CTA_TUPLE_ORIG)?, CTA_TUPLE_IP)?,
        CTA_IP_V4_SRC,
    )?;
    let octets: [u8; 4] = ip.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl_dump::nla;

    #[test]
    fn the_source_of_a_natted_entry_is_read() {
        let ip = nla(CTA_TUPLE_IP | 0x8000, &nla(CTA_IP_V4_SRC, &[10, 0, 0, 5]));
        let mut attrs = nla(CTA_TUPLE_ORIG | 0x8000, &ip);
        attrs.extend(nla(CTA_STATUS, &(IPS_SRC_NAT | 0x8).to_be_bytes()));
        assert_eq!(snat_source(&attrs), Some(Ipv4Addr::new(10, 0, 0, 5)));
        let mut plain = nla(CTA_TUPLE_ORIG | 0x8000, &ip);
        plain.extend(nla(CTA_STATUS, &0x8u32.to_be_bytes()));
        assert_eq!(snat_source(&plain), None, "not NATed");
    }
}
