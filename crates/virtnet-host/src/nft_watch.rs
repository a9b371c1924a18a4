//! Changes of the nftables ruleset as the kernel announces them (the `NFNLGRP_NFTABLES`
//! multicast group of `NETLINK_NETFILTER`), so that a table deleted by someone else — an
//! `nft flush ruleset`, a firewall service's reload — is noticed at once instead of at the
//! next change virtnet makes. What is reported is which tables were deleted (and whether
//! announcements were lost); what to check and what to repair is the caller's policy.
//!
//! Only deletions are decoded: every transaction of virtnet's own (a `net-start`, a forward,
//! a lease's anti-spoofing element) is announced too, and a watcher that looked at the
//! ruleset after each of them would list every table — with thousands of networks or
//! forwards, thousands of map elements per look.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nftables message's type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_DELTABLE` (linux/netfilter/nf_tables.h).
const NFT_MSG_DELTABLE: u16 = 2;
/// `NFTA_TABLE_NAME`.
const NFTA_TABLE_NAME: u16 = 1;
/// `struct nlmsghdr` and `struct nfgenmsg`.
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// What a burst of ruleset announcements said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesetChanges {
    /// Something was announced.
    pub any: bool,
    /// Announcements were lost (`ENOBUFS`): anything may have happened.
    pub lost: bool,
    /// The tables deleted, as (nfproto family, name): `NFPROTO_INET` is 1, `NFPROTO_BRIDGE` 7.
    pub deleted_tables: Vec<(u8, String)>,
}

impl RulesetChanges {
    /// True when table `name` of `family` may be gone: its deletion was announced, or
    /// announcements were lost.
    pub fn may_have_deleted(&self, family: u8, name: &str) -> bool {
        self.lost
            || self
                .deleted_tables
                .iter()
                .any(|(f, n)| *f == family && n == name)
    }

    fn merge(&mut self, other: RulesetChanges) {
        self.any |= other.any;
        self.lost |= other.lost;
        self.deleted_tables.extend(other.deleted_tables);
    }
}

/// A subscription to nftables ruleset changes in the calling thread's network namespace.
pub struct NftWatch {
    sock: Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for NftWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftWatch").finish_non_exhaustive()
    }
}

impl NftWatch {
    /// Subscribes (in the calling thread's network namespace: a socket stays in the
    /// namespace it was opened in).
    pub fn open() -> Result<NftWatch> {
        let err = |e| HostError::new("open nftables monitor", "NETLINK_NETFILTER", e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(err)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(err)?;
        sock.add_membership(NFNLGRP_NFTABLES).map_err(err)?;
        Ok(NftWatch {
            sock,
            rx: vec![0; 64 * 1024],
        })
    }

    /// Waits up to `timeout` for a ruleset change; then reads whatever else is already queued
    /// (a transaction announces each object it touched) and says what it found.
    pub fn wait(&mut self, timeout: Duration) -> Result<RulesetChanges> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(RulesetChanges::default());
            }
            return Err(HostError::new("wait for nftables changes", "", e));
        }
        if ready == 0 {
            return Ok(RulesetChanges::default());
        }
        self.drain()
    }

    /// Waits for a change as [`NftWatch::wait`] does, then keeps reading until `settle` passes
    /// without one (a flush announces every table, chain and set; a whole ruleset loaded, more),
    /// and says what the whole burst did.
    pub fn wait_burst(&mut self, timeout: Duration, settle: Duration) -> Result<RulesetChanges> {
        let mut all = self.wait(timeout)?;
        if !all.any {
            return Ok(all);
        }
        loop {
            let more = self.wait(settle)?;
            if !more.any {
                return Ok(all);
            }
            all.merge(more);
        }
    }

    /// Reads every queued notification without waiting.
    fn drain(&mut self) -> Result<RulesetChanges> {
        let mut found = RulesetChanges::default();
        loop {
            match self.sock.recv(&mut &mut self.rx[..], libc::MSG_DONTWAIT) {
                Ok(0) => return Ok(found),
                Ok(n) => {
                    found.any = true;
                    deleted_tables(&self.rx[..n.min(self.rx.len())], &mut found.deleted_tables);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(found),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    found.any = true;
                    found.lost = true;
                }
                Err(e) => return Err(HostError::new("read nftables monitor", "", e)),
            }
        }
    }
}

/// Appends the (family, name) of every `NFT_MSG_DELTABLE` in `buf` (one datagram: netlink
/// messages back to back) to `out`. Anything malformed ends the walk: the kernel does not send
/// it, and nothing in it could be trusted.
fn deleted_tables(mut buf: &[u8], out: &mut Vec<(u8, String)>) {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDRLEN || len > buf.len() {
            return;
        }
        let body = &buf[NLMSG_HDRLEN..len];
        if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE && body.len() >= NFGENMSG_LEN {
            if let Some(name) = string_attr(&body[NFGENMSG_LEN..], NFTA_TABLE_NAME) {
                out.push((body[0], name));
            }
        }
        buf = &buf[align4(len).min(buf.len())..];
    }
}

/// The NUL-terminated string attribute `wanted` among netlink attributes `attrs`.
fn string_attr(mut attrs: &[u8], wanted: u16) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        // NLA_F_NESTED / NLA_F_NET_BYTEORDER are the two high bits of the type.
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == wanted {
            let value = &attrs[4..len];
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` with an nfgenmsg of `family` and attributes `attrs`.
    fn message(kind: u16, family: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 0];
        for (t, v) in attrs {
            let len = 4 + v.len();
            body.extend((len as u16).to_ne_bytes());
            body.extend(t.to_ne_bytes());
            body.extend(*v);
            body.resize(align4(body.len()), 0);
        }
        let mut m = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn table_deletions_are_read_from_a_datagram_of_several_messages() {
        let del = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE;
        // NFT_MSG_NEWTABLE is 0.
        let new_table = NFNL_SUBSYS_NFTABLES << 8;
        let mut datagram = message(new_table, 1, &[(NFTA_TABLE_NAME, b"other\0")]);
        // A flags attribute before the name, as the kernel sends NFTA_TABLE_FLAGS too.
        datagram.extend(message(
            del,
            1,
            &[(2, &[0, 0, 0, 0]), (NFTA_TABLE_NAME, b"virtnet\0")],
        ));
        datagram.extend(message(del, 7, &[(NFTA_TABLE_NAME, b"virtnet_ports\0")]));
        let mut out = Vec::new();
        deleted_tables(&datagram, &mut out);
        assert_eq!(
            out,
            vec![(1, "virtnet".to_string()), (7, "virtnet_ports".to_string())]
        );
        let changes = RulesetChanges {
            any: true,
            lost: false,
            deleted_tables: out,
        };
        assert!(changes.may_have_deleted(1, "virtnet"));
        assert!(!changes.may_have_deleted(7, "virtnet"));
    }

    #[test]
    fn a_truncated_message_ends_the_walk() {
        let del = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE;
        let m = message(del, 1, &[(NFTA_TABLE_NAME, b"virtnet\0")]);
        let mut out = Vec::new();
        deleted_tables(&m[..m.len() - 6], &mut out);
        assert!(out.is_empty());
        // An attribute whose length runs past the message.
        let mut bad = m.clone();
        bad[NLMSG_HDRLEN + NFGENMSG_LEN] = 200;
        deleted_tables(&bad, &mut out);
        assert!(out.is_empty());
    }
}
