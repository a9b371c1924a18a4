//! Changes of the nftables ruleset as the kernel announces them (the `NFNLGRP_NFTABLES`
//! multicast group of `NETLINK_NETFILTER`), so that a table deleted by someone else — an
//! `nft flush ruleset`, a firewall service's reload — is noticed at once instead of at the
//! next change virtnet makes. Only *that* something changed is reported; what to check and
//! what to repair is the caller's policy.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;

/// A subscription to nftables ruleset changes in the calling thread's network namespace.
pub struct NftWatch {
    sock: Socket,
    rx: Vec<u8>,
    /// The tables named by the notifications read since the last [`NftWatch::take_tables`].
    tables: Changed,
}

/// The tables a burst of notifications touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// `(family, table)` of every table, chain, rule, set or element announced (family as
    /// nftables numbers it: `NFPROTO_INET` 1, `NFPROTO_IPV4` 2, `NFPROTO_BRIDGE` 7…).
    pub tables: std::collections::BTreeSet<(u8, String)>,
    /// `(family, table)` of every table deleted (`NFT_MSG_DELTABLE`).
    pub deleted: std::collections::BTreeSet<(u8, String)>,
    /// Notifications were lost (`ENOBUFS`): any table may have changed.
    pub lost: bool,
}

impl Changed {
    /// Whether table `name` of `family` may be gone: its deletion was announced, or
    /// announcements were lost. Every other burst — virtnet's own transactions are announced
    /// too, one per start, forward or lease — needs no look at the ruleset.
    pub fn may_have_deleted(&self, family: u8, name: &str) -> bool {
        self.lost || self.deleted.iter().any(|(f, n)| *f == family && n == name)
    }

    /// Whether a table other than `ours` (as `(family, name)`) may have changed.
    pub fn beyond(&self, ours: &[(u8, &str)]) -> bool {
        self.lost
            || self
                .tables
                .iter()
                .any(|(f, n)| !ours.iter().any(|(of, on)| of == f && on == n))
    }
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
            tables: Changed::default(),
        })
    }

    /// Waits up to `timeout` for a ruleset change; then reads whatever else is already queued
    /// (a transaction announces each object it touched). True when anything changed — or
    /// when notifications were lost (`ENOBUFS`): the ruleset must be looked at either way.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        match crate::poll::readable_within(fd, timeout) {
            Ok(true) => self.drain(),
            Ok(false) => Ok(false),
            Err(e) => Err(HostError::new("wait for nftables changes", "", e)),
        }
    }

    /// The tables changed since the last call (see [`Changed`]), forgotten here.
    pub fn take_tables(&mut self) -> Changed {
        std::mem::take(&mut self.tables)
    }

    /// Reads every queued notification without waiting; true when there was any.
    fn drain(&mut self) -> Result<bool> {
        let mut any = false;
        loop {
            match self.sock.recv(&mut &mut self.rx[..], libc::MSG_DONTWAIT) {
                Ok(0) => return Ok(any),
                Ok(n) => {
                    any = true;
                    let n = n.min(self.rx.len());
                    note_tables(&self.rx[..n], &mut self.tables);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    any = true;
                    self.tables.lost = true;
                }
                Err(e) => return Err(HostError::new("read nftables monitor", "", e)),
            }
        }
    }
}

/// `NFT_MSG_NEWGEN` (15 in `enum nf_tables_msg_types`; 16 is `NFT_MSG_GETGEN`): the end of
/// a transaction, naming no table. Its attribute of type 1 is `NFTA_GEN_ID`, a number: read
/// as a table name it made every transaction, virtnet's own included, look like a change of
/// someone else's table.
const NFT_MSG_NEWGEN: u16 = 15;
/// The attribute naming the table, type 1 in every nf_tables message that has one
/// (`NFTA_TABLE_NAME`, `NFTA_CHAIN_TABLE`, `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`,
/// `NFTA_SET_ELEM_LIST_TABLE`, `NFTA_OBJ_TABLE`, `NFTA_FLOWTABLE_TABLE`).
const NFTA_TABLE: u16 = 1;

/// `NFT_MSG_DELTABLE`.
const NFT_MSG_DELTABLE: u16 = 2;

/// Adds the tables named by the nf_tables messages of one datagram to `out` (and those
/// deleted to its `deleted`). Malformed messages end the walk: what was read so far stands.
fn note_tables(mut buf: &[u8], out: &mut Changed) {
    const NLMSG_HDR: usize = 16;
    const NFGENMSG: usize = 4;
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDR || len > buf.len() {
            return;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]) & 0xff;
        let msg = &buf[NLMSG_HDR..len];
        if kind != NFT_MSG_NEWGEN && msg.len() >= NFGENMSG {
            let family = msg[0];
            if let Some(name) = table_attr(&msg[NFGENMSG..]) {
                if kind == NFT_MSG_DELTABLE {
                    out.deleted.insert((family, name.clone()));
                }
                out.tables.insert((family, name));
            }
        }
        buf = &buf[align4(len).min(buf.len())..];
    }
}

/// The string value of attribute [`NFTA_TABLE`] among netlink attributes.
fn table_attr(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NFTA_TABLE {
            let value = &attrs[4..len];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
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

    /// One nf_tables message: header, nfgenmsg, one string attribute of type 1.
    fn message(kind: u16, family: u8, table: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let value_len = table.len() + 1;
        attr.extend(((4 + value_len) as u16).to_ne_bytes());
        attr.extend(NFTA_TABLE.to_ne_bytes());
        attr.extend(table.as_bytes());
        attr.push(0);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = 16 + 4 + attr.len();
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(((10u16 << 8) | kind).to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend([family, 0, 0, 0]);
        m.extend(attr);
        m
    }

    #[test]
    fn tables_of_a_datagram_are_noted_and_generation_messages_skipped() {
        let mut buf = message(6, 2, "filter");
        buf.extend(message(15, 0, "x"));
        buf.extend(message(0, 1, "virtnet"));
        buf.extend(message(NFT_MSG_DELTABLE, 7, "virtnet_ports"));
        let mut out = Changed::default();
        note_tables(&buf, &mut out);
        let got: Vec<_> = out.tables.iter().cloned().collect();
        assert_eq!(
            got,
            vec![
                (1, "virtnet".to_string()),
                (2, "filter".to_string()),
                (7, "virtnet_ports".to_string())
            ]
        );
        assert!(out.may_have_deleted(7, "virtnet_ports"));
        assert!(
            !out.may_have_deleted(1, "virtnet"),
            "announced, not deleted"
        );
        let changed = Changed {
            tables: [(1, "virtnet".to_string())].into(),
            ..Changed::default()
        };
        assert!(!changed.beyond(&[(1, "virtnet")]));
        assert!(changed.beyond(&[(7, "virtnet_ports")]));
        let lost = Changed {
            lost: true,
            ..Changed::default()
        };
        assert!(lost.may_have_deleted(1, "virtnet"));
    }
}
