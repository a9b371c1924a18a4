//! Whether one nftables table exists, asked of the kernel directly: one `NFT_MSG_GETTABLE`
//! request on a `NETLINK_NETFILTER` socket, answered with the table or `ENOENT`.
//!
//! libnftables answers `list tables` only after filling its cache, and that cache holds every
//! set element of every table (checked with heaptrack on libnftables 1.1.0: a check with
//! 300 networks allocated 5 MB in `nftnl_set_elem_foreach`), so a check that virtnet's table
//! is still there cost memory and time growing with the networks, after each of virtnet's own
//! transactions. This request costs the same with one network or thousands.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};

/// `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWTABLE`, `NFT_MSG_GETTABLE` (linux/netfilter/nf_tables.h).
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
/// `NFTA_TABLE_NAME`.
const NFTA_TABLE_NAME: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;

/// A socket that asks whether tables exist, in the namespace it was opened in.
pub(crate) struct TableProbe {
    sock: Socket,
    seq: u32,
    rx: Vec<u8>,
}

/// The `NFPROTO_*` number of an nft family name.
fn family_number(family: &str) -> Option<u8> {
    Some(match family {
        "ip" => 2,
        "ip6" => 10,
        "inet" => 1,
        "arp" => 3,
        "bridge" => 7,
        "netdev" => 5,
        _ => return None,
    })
}

impl TableProbe {
    /// Opens the socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<TableProbe> {
        let err = |e| HostError::new("open nftables socket", "NETLINK_NETFILTER", e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        Ok(TableProbe {
            sock,
            seq: 0,
            // One table's description and an ack: far below a page.
            rx: vec![0; 8192],
        })
    }

    /// Whether table `family name` exists.
    pub(crate) fn exists(&mut self, family: &str, name: &str) -> Result<bool> {
        let target = format!("{family} {name}");
        let err = |e: io::Error| HostError::new("look up nftables table", target.clone(), e);
        let Some(nfproto) = family_number(family) else {
            return Err(err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)));
        };
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let request = get_table(seq, nfproto, name);
        self.sock.send(&request, 0).map_err(err)?;
        loop {
            let n = self.sock.recv(&mut &mut self.rx[..], 0).map_err(err)?;
            let mut at = 0;
            while let Some(header) = self.rx.get(at..(at + NLMSG_HDRLEN).min(n)) {
                if header.len() < NLMSG_HDRLEN {
                    break;
                }
                let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let kind = u16::from_ne_bytes([header[4], header[5]]);
                let got = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
                if len < NLMSG_HDRLEN {
                    break;
                }
                if got == seq {
                    if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                        return Ok(true);
                    }
                    if kind == NLMSG_ERROR {
                        let code = self
                            .rx
                            .get(at + NLMSG_HDRLEN..at + NLMSG_HDRLEN + 4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EPROTO);
                        return match -code {
                            0 => Ok(false), // an ack without the table: not there
                            libc::ENOENT => Ok(false),
                            errno => Err(err(io::Error::from_raw_os_error(errno))),
                        };
                    }
                }
                // Aligned to 4 bytes; a stale answer (another sequence number) is skipped.
                at += (len + 3) & !3;
            }
        }
    }
}

/// An `NFT_MSG_GETTABLE` request for table `name` of family `nfproto`, asking for an ack.
fn get_table(seq: u32, nfproto: u8, name: &str) -> Vec<u8> {
    let attr_len = 4 + name.len() + 1;
    let padded = (attr_len + 3) & !3;
    let total = NLMSG_HDRLEN + 4 + padded;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), resource id (big endian, 0).
    m.extend_from_slice(&[nfproto, 0, 0, 0]);
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    m.extend_from_slice(name.as_bytes());
    m.resize(total, 0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_testkit::Netns;

    /// Against the kernel, in a namespace of its own (root only): absent, present in its
    /// family only, present with many set elements, deleted.
    #[test]
    fn the_kernel_says_whether_the_table_exists() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = Netns::new("nfttab");
        let exists = |family: &'static str| {
            ns.in_ns(|| TableProbe::open().and_then(|mut p| p.exists(family, "virtnet")))
                .expect("the kernel answers")
        };
        assert!(!exists("inet"));
        ns.run_ok(["nft", "add", "table", "inet", "virtnet"]);
        ns.run_ok([
            "nft",
            "add set inet virtnet s { type ipv4_addr; }; add element inet virtnet s { 10.0.0.1, 10.0.0.2 }",
        ]);
        assert!(exists("inet"));
        assert!(!exists("ip"), "another family's table of that name");
        ns.run_ok(["nft", "delete", "table", "inet", "virtnet"]);
        assert!(!exists("inet"));
        let unknown = ns.in_ns(|| TableProbe::open().and_then(|mut p| p.exists("nope", "x")));
        assert!(unknown.is_err());
    }

    #[test]
    fn the_request_is_framed_as_the_kernel_expects() {
        let m = get_table(7, 1, "virtnet");
        assert_eq!(m.len(), 16 + 4 + 12);
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0a01);
        assert_eq!(&m[16..20], &[1, 0, 0, 0]);
        assert_eq!(u16::from_ne_bytes([m[20], m[21]]), 4 + 8);
        assert_eq!(&m[24..31], b"virtnet");
        assert_eq!(m[31], 0, "NUL-terminated");
    }
}
