//! Set elements added and removed over nfnetlink directly, one atomic batch per call.
//!
//! libnftables reads the table's sets and all their elements before it changes any element,
//! so through it a change costs time in proportion to everything already in the table. A
//! network's firewall is only set elements (see `virtnet-plan`'s `firewall.rs`), so sending
//! `NFT_MSG_NEWSETELEM` / `NFT_MSG_DELSETELEM` ourselves keeps a start or a stop at the cost of
//! the first one, however many networks run. Everything else (creating the table, rules) stays
//! with libnftables, which owns nftables' syntax.
//!
//! Key layout (what nft itself sends): each field of a concatenation takes a whole number of
//! 32-bit registers (`ifname` 16 bytes, `ipv4_addr` 4, `ipv6_addr` 16, `nf_proto` and
//! `inet_proto` 1 byte in 4, `inet_service` 2 bytes big-endian in 4); a key of one field has
//! the field's exact length.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};
use crate::nl_dump::cstr;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFT_MSG_NEWTABLE`: also the kernel's answer to a `NFT_MSG_GETTABLE`.
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFPROTO_INET`: tables of family `inet`.
pub const NFPROTO_INET: u8 = 1;
/// `NFPROTO_BRIDGE`: tables of family `bridge`.
pub const NFPROTO_BRIDGE: u8 = 7;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;

/// `NFT_SET_ELEM_INTERVAL_END`: the element closes an interval of an rbtree set.
pub const INTERVAL_END: u32 = 1;

/// One field of a set element's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// An interface name (`ifname`).
    Ifname(String),
    /// An IPv4 address (`ipv4_addr`).
    Ipv4(Ipv4Addr),
    /// An IPv6 address (`ipv6_addr`).
    Ipv6(Ipv6Addr),
    /// A layer-3 protocol (`nf_proto`: 2 for IPv4, 10 for IPv6).
    NfProto(u8),
    /// A layer-4 protocol (`inet_proto`: 6 for TCP, 17 for UDP).
    InetProto(u8),
    /// A port (`inet_service`).
    Service(u16),
    /// A MAC address (`ether_addr`).
    Ether([u8; 6]),
    /// Raw bytes as they are (a raw payload key such as `@th,64,128`).
    Raw(Vec<u8>),
}

impl Field {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Field::Ifname(name) => {
                let mut b = name.as_bytes().to_vec();
                b.resize(16, 0);
                b
            }
            Field::Ipv4(a) => a.octets().to_vec(),
            Field::Ipv6(a) => a.octets().to_vec(),
            Field::NfProto(p) | Field::InetProto(p) => vec![*p],
            Field::Service(p) => p.to_be_bytes().to_vec(),
            Field::Ether(m) => m.to_vec(),
            Field::Raw(b) => b.clone(),
        }
    }
}

/// The bytes of a key: one field as is, several padded to registers.
pub fn key_bytes(fields: &[Field]) -> Vec<u8> {
    if let [one] = fields {
        return one.bytes();
    }
    let mut out = Vec::new();
    for f in fields {
        let mut b = f.bytes();
        b.resize(b.len().div_ceil(4) * 4, 0);
        out.extend(b);
    }
    out
}

/// One element of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElement {
    /// The set's name in the table.
    pub set: String,
    /// The key (the start of the range for interval sets).
    pub key: Vec<u8>,
    /// The inclusive end of the range, for concatenated interval sets (pipapo).
    pub key_end: Option<Vec<u8>>,
    /// Element flags, e.g. [`INTERVAL_END`].
    pub flags: u32,
    /// For data maps: the value, laid out like a key ([`key_bytes`]); `None` in sets.
    pub data: Option<Vec<u8>>,
}

/// A change to a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetChange {
    /// Add elements; fail (and change nothing) if any is already there.
    Create,
    /// Remove elements; fail (and change nothing) if any is missing.
    Delete,
}

/// A `NETLINK_NETFILTER` socket for set-element batches.
pub struct NftSets {
    sock: Socket,
    seq: u32,
}

impl std::fmt::Debug for NftSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftSets").finish_non_exhaustive()
    }
}

/// One nfnetlink message being built (also used by `nft_counters.rs`).
pub(crate) struct Msg(Vec<u8>);

impl Msg {
    pub(crate) fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Msg {
        let mut b = Vec::with_capacity(256);
        b.extend(0u32.to_ne_bytes()); // length, set by finish
        b.extend(kind.to_ne_bytes());
        b.extend(flags.to_ne_bytes());
        b.extend(seq.to_ne_bytes());
        b.extend(0u32.to_ne_bytes());
        b.push(family);
        b.push(0); // NFNETLINK_V0
        b.extend(res_id.to_be_bytes());
        Msg(b)
    }

    pub(crate) fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.0.extend((len as u16).to_ne_bytes());
        self.0.extend(kind.to_ne_bytes());
        self.0.extend(payload);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    /// Opens a nested attribute; returns where to patch its length.
    fn begin(&mut self, kind: u16) -> usize {
        let at = self.0.len();
        self.0.extend(0u16.to_ne_bytes());
        self.0.extend((kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.0.len() - at) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// `NFTA_TABLE_HANDLE` (a big-endian u64) of an `NFT_MSG_NEWTABLE` body (nfgenmsg, then
/// attributes).
fn table_handle_attr(body: &[u8]) -> Option<u64> {
    const NFTA_TABLE_HANDLE: u16 = 4;
    let mut attrs = body.get(4..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NFTA_TABLE_HANDLE && len >= 12 {
            return attrs[4..12].try_into().ok().map(u64::from_be_bytes);
        }
        attrs = attrs.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    None
}

/// The nfproto number of an nftables family name (`inet` 1, `ip` 2, `arp` 3, `netdev` 5,
/// `bridge` 7, `ip6` 10).
pub fn nfproto(family: &str) -> Option<u8> {
    Some(match family {
        "inet" => NFPROTO_INET,
        "ip" => 2,
        "arp" => 3,
        "netdev" => 5,
        "bridge" => NFPROTO_BRIDGE,
        "ip6" => 10,
        _ => return None,
    })
}

impl NftSets {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<NftSets> {
        let err = |e| HostError::new("open netlink socket", "NETLINK_NETFILTER", e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        let _ = sock.set_ext_ack(true);
        Ok(NftSets { sock, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Applies `change` to `elements` of table `inet <table>` in one atomic batch.
    pub fn apply(&mut self, table: &str, change: SetChange, elements: &[SetElement]) -> Result<()> {
        self.apply_in(NFPROTO_INET, table, change, elements)
    }

    /// Applies `change` to `elements` of the table `<table>` of `family` ([`NFPROTO_INET`],
    /// [`NFPROTO_BRIDGE`]) in one atomic batch.
    pub fn apply_in(
        &mut self,
        family: u8,
        table: &str,
        change: SetChange,
        elements: &[SetElement],
    ) -> Result<()> {
        const OP: &str = "change nftables set elements";
        if elements.is_empty() {
            return Ok(());
        }
        let res = NFNL_SUBSYS_NFTABLES;
        let begin_seq = self.next_seq();
        let mut batch = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin_seq, 0, res).finish();
        let (kind, flags) = match change {
            SetChange::Create => (
                NFT_MSG_NEWSETELEM,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            ),
            SetChange::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
        };
        let mut seqs = Vec::new();
        // One message per set, as nft sends them.
        let mut sets: Vec<&str> = Vec::new();
        for e in elements {
            if !sets.contains(&e.set.as_str()) {
                sets.push(&e.set);
            }
        }
        for set in sets {
            let seq = self.next_seq();
            seqs.push(seq);
            let mut m = Msg::new((res << 8) | kind, flags, seq, family, 0);
            m.attr(NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
            m.attr(NFTA_SET_ELEM_LIST_SET, &cstr(set));
            let list = m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in elements.iter().filter(|e| e.set == set) {
                let item = m.begin(NFTA_LIST_ELEM);
                let key = m.begin(NFTA_SET_ELEM_KEY);
                m.attr(NFTA_DATA_VALUE, &e.key);
                m.end(key);
                if let Some(end) = &e.key_end {
                    let key = m.begin(NFTA_SET_ELEM_KEY_END);
                    m.attr(NFTA_DATA_VALUE, end);
                    m.end(key);
                }
                if e.flags != 0 {
                    m.attr(NFTA_SET_ELEM_FLAGS, &e.flags.to_be_bytes());
                }
                if let Some(data) = &e.data {
                    let value = m.begin(NFTA_SET_ELEM_DATA);
                    m.attr(NFTA_DATA_VALUE, data);
                    m.end(value);
                }
                m.end(item);
            }
            m.end(list);
            batch.extend(m.finish());
        }
        let end_seq = self.next_seq();
        batch.extend(Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, 0, res).finish());
        self.sock
            .send(&batch, 0)
            .map_err(|e| HostError::new(OP, table, e))?;
        self.wait_acks(&seqs).map_err(|e| {
            let family = if family == NFPROTO_BRIDGE {
                "bridge"
            } else {
                "inet"
            };
            HostError::new(OP, format!("{family} {table}"), e)
        })
    }

    /// Whether table `<table>` of `family` ([`NFPROTO_INET`], [`NFPROTO_BRIDGE`]) exists: one
    /// `NFT_MSG_GETTABLE` for that table alone, so the cost does not grow with what the tables
    /// hold. (libnftables' `list tables` fills its cache with every set element first: 2 s with
    /// 120,000 elements, and the ruleset watcher asked after every change; issue 18.)
    pub fn has_table(&mut self, family: u8, table: &str) -> Result<bool> {
        Ok(self.table_handle(family, table)?.is_some())
    }

    /// The kernel's handle of table `<table>` of `family` (it changes when the table is
    /// deleted and made again), `None` when there is no such table: one `NFT_MSG_GETTABLE`,
    /// as [`NftSets::has_table`].
    pub fn table_handle(&mut self, family: u8, table: &str) -> Result<Option<u64>> {
        // The table's description comes first, then the acknowledgement.
        let mut handle = None;
        let found = self.look_up(
            ("look up nftables table", table),
            (NFT_MSG_GETTABLE, family),
            |m| m.attr(NFTA_TABLE_NAME, &cstr(table)),
            |kind, body| {
                if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                    handle = table_handle_attr(body);
                }
            },
        )?;
        // A table without a handle attribute (never sent by the kernel) still exists.
        Ok(found.then(|| handle.unwrap_or(0)))
    }

    /// Whether set `<set>` of table `<table>` of `family` holds the element with key `key`: one
    /// `NFT_MSG_GETSETELEM` for that key alone. `false` when the set or table is missing too.
    ///
    /// What to ask before deleting an element that may not be there (one a rule adds from the
    /// packet path): a batch that fails is aborted, and the kernel's abort waits for an RCU
    /// grace period (~13 ms here), where a look-up costs a round trip.
    pub fn has_element(&mut self, family: u8, table: &str, set: &str, key: &[u8]) -> Result<bool> {
        // The element comes first (as an NFT_MSG_NEWSETELEM), then the acknowledgement.
        self.look_up(
            ("look up nftables set element", &format!("{table} {set}")),
            (NFT_MSG_GETSETELEM, family),
            |m| {
                m.attr(NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
                m.attr(NFTA_SET_ELEM_LIST_SET, &cstr(set));
                let list = m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
                let item = m.begin(NFTA_LIST_ELEM);
                let k = m.begin(NFTA_SET_ELEM_KEY);
                m.attr(NFTA_DATA_VALUE, key);
                m.end(k);
                m.end(item);
                m.end(list);
            },
            |_, _| {},
        )
    }

    /// Sends one request for one object (`kind`, a GET of the nftables subsystem, for `family`)
    /// whose attributes `fill` writes, and hands each answer before the acknowledgement to
    /// `answer`: `false` when the kernel has no such object (`ENOENT`). `op` and `object` name
    /// the request and its object in errors.
    fn look_up(
        &mut self,
        (op, object): (&'static str, &str),
        (kind, family): (u16, u8),
        fill: impl FnOnce(&mut Msg),
        answer: impl FnMut(u16, &[u8]),
    ) -> Result<bool> {
        let seq = self.next_seq();
        let mut m = Msg::new(
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family,
            0,
        );
        fill(&mut m);
        self.sock
            .send(&m.finish(), 0)
            .map_err(|e| HostError::new(op, object, e))?;
        match self.wait_answers(&[seq], answer) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(HostError::new(op, object, e)),
        }
    }

    /// Reads until every message of the batch is acknowledged; the first error wins (the
    /// kernel then aborts the whole batch).
    fn wait_acks(&mut self, seqs: &[u32]) -> io::Result<()> {
        self.wait_answers(seqs, |_, _| {})
    }

    /// [`NftSets::wait_acks`], handing every other message of the batch (type, and the body
    /// after the netlink header) to `data`.
    fn wait_answers(&mut self, seqs: &[u32], mut data: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let mut pending: Vec<u32> = seqs.to_vec();
        let mut first_error = None;
        let mut buf = vec![0u8; 64 * 1024];
        while !pending.is_empty() {
            let n = match self.sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap_or([0; 2]));
                let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap_or([0; 4]));
                if len < 16 || off + len > n {
                    return Err(io::Error::other("malformed netlink answer"));
                }
                if kind != NLMSG_ERROR && pending.contains(&seq) {
                    data(kind, &buf[off + 16..off + len]);
                }
                // Answers to an earlier, failed batch may still be queued: skip them.
                if kind == NLMSG_ERROR && len >= 20 && pending.contains(&seq) {
                    let code =
                        i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or([0; 4]));
                    pending.retain(|s| *s != seq);
                    if code != 0 && first_error.is_none() {
                        first_error = Some(io::Error::from_raw_os_error(-code));
                        // After an error the kernel aborts the batch and acknowledges no more.
                        pending.clear();
                    }
                }
                off += len.div_ceil(4) * 4;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
