//! The source-NATed IPv4 connections of the namespace, from one ctnetlink dump
//! (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` on `NETLINK_NETFILTER`): what a metrics scrape
//! counts per network.
//!
//! Only the entry's status word and its original source address are read; the rest of each
//! message is skipped by attribute length, so an entry costs a few dozen byte reads.

use std::io;
use std::net::Ipv4Addr;

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET`.
const CT_GET: u16 = (1 << 8) | 1;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Netlink header and `struct nfgenmsg`.
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// Attribute types (`enum ctattr_type`, `ctattr_tuple`, `ctattr_ip`).
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
/// `IPS_SRC_NAT`: the connection's source is translated (masquerade, SNAT).
const IPS_SRC_NAT: u32 = 1 << 4;
/// The nested-attribute flag and byte-order flag of `nla_type`.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The original source address of every source-NATed IPv4 connection tracked in the calling
/// thread's network namespace. An empty list when conntrack is not loaded there.
pub fn snat_sources_v4() -> io::Result<Vec<Ipv4Addr>> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    // A dump of many entries comes in many datagrams; 64 KiB holds the largest the kernel sends.
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN);
    let len = (NLMSG_HDRLEN + NFGENMSG_LEN) as u32;
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&CT_GET.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    req.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]); // nfgenmsg: family, version, res_id
    sock.send(&req, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes.
        let n = unsafe {
            libc::recv(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Ok(out);
        }
        if read_datagram(&buf[..n], &mut out)? {
            return Ok(out);
        }
    }
}

/// Reads the messages of one datagram into `out`; `true` at the end of the dump.
fn read_datagram(mut data: &[u8], out: &mut Vec<Ipv4Addr>) -> io::Result<bool> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated ctnetlink message",
            ));
        }
        let body = &data[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = body
                    .get(..4)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                // No conntrack in this namespace (module not loaded): nothing tracked.
                if errno == 0 || -errno == libc::EOPNOTSUPP || -errno == libc::ENOENT {
                    return Ok(true);
                }
                return Err(io::Error::from_raw_os_error(-errno));
            }
            _ => {
                if let Some(src) = body.get(NFGENMSG_LEN..).and_then(snat_source) {
                    out.push(src);
                }
            }
        }
        data = &data[align(len).min(data.len())..];
    }
    Ok(false)
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

/// The payload of the first attribute of type `want` in `attrs`.
fn attr(mut attrs: &[u8], want: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == want {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[align(len).min(attrs.len())..];
    }
    None
}

/// Netlink's 4-byte alignment.
fn align(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

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
