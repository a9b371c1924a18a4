//! Counters read from nftables over nfnetlink directly: a table's named counters
//! (`NFT_MSG_GETOBJ`) and a set's per-element counters (`NFT_MSG_GETSETELEM`), each one dump
//! of just those objects.
//!
//! libnftables fills its cache with the whole table before it lists anything (every set and
//! every element: 47 ms for `list counters` at 500 networks), which a metrics scrape cannot
//! afford; these dumps cost what the objects asked for cost.

use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::nft_set::Msg;
use crate::nl_dump::{self, attr, attrs_of, cstr};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_GETOBJ: u16 = 19;
/// `struct nfgenmsg` before a message's attributes.
const NFGENMSG_LEN: usize = 4;
/// `NLM_F_REQUEST | NLM_F_DUMP`.
const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;

const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
/// `NFT_OBJECT_COUNTER`.
const OBJECT_COUNTER: u32 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

/// The packet counts of the named counters of table `<table>` of `family`
/// ([`crate::nft_set::NFPROTO_INET`], …), by name. Empty when there is no such table.
pub fn named_counters(family: u8, table: &str) -> io::Result<Vec<(String, u64)>> {
    let mut m = Msg::new(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ,
        NLM_F_REQUEST_DUMP,
        1,
        family,
        0,
    );
    m.attr(NFTA_OBJ_TABLE, &cstr(table));
    m.attr(NFTA_OBJ_TYPE, &OBJECT_COUNTER.to_be_bytes());
    let mut out = Vec::new();
    dump(&m.finish(), |attrs| {
        let name = attr(attrs, NFTA_OBJ_NAME).map(text);
        let packets = attr(attrs, NFTA_OBJ_DATA)
            .and_then(|d| attr(d, NFTA_COUNTER_PACKETS))
            .and_then(be_u64);
        if let (Some(name), Some(packets)) = (name, packets) {
            out.push((name, packets));
        }
    })?;
    Ok(out)
}

/// The packet count of every element of set `<set>` of table `<table>` of `family` that has a
/// counter, with the element's key as text (an `ifname` key without its padding). Empty when
/// there is no such table or set.
pub fn set_counters(family: u8, table: &str, set: &str) -> io::Result<Vec<(String, u64)>> {
    let mut m = Msg::new(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
        NLM_F_REQUEST_DUMP,
        1,
        family,
        0,
    );
    m.attr(NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
    m.attr(NFTA_SET_ELEM_LIST_SET, &cstr(set));
    let mut out = Vec::new();
    dump(&m.finish(), |attrs| {
        let Some(elements) = attr(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) else {
            return;
        };
        for element in attrs_of(elements, NFTA_LIST_ELEM) {
            let key = attr(element, NFTA_SET_ELEM_KEY)
                .and_then(|k| attr(k, NFTA_DATA_VALUE))
                .map(text);
            if let (Some(key), Some(packets)) = (key, element_packets(element)) {
                out.push((key, packets));
            }
        }
    })?;
    Ok(out)
}

/// The packets of an element's `counter` expression (alone, or among several).
fn element_packets(element: &[u8]) -> Option<u64> {
    let counter = |expr: &[u8]| {
        let name = attr(expr, NFTA_EXPR_NAME)?;
        if text(name) != "counter" {
            return None;
        }
        be_u64(attr(attr(expr, NFTA_EXPR_DATA)?, NFTA_COUNTER_PACKETS)?)
    };
    if let Some(expr) = attr(element, NFTA_SET_ELEM_EXPR) {
        return counter(expr);
    }
    attrs_of(attr(element, NFTA_SET_ELEM_EXPRESSIONS)?, NFTA_LIST_ELEM).find_map(counter)
}

/// One dump of `request`; each answer's attributes (after `nfgenmsg`) go to `each`. A
/// missing table or set (`ENOENT`) is an empty dump.
fn dump(request: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<()> {
    nl_dump::dump(NETLINK_NETFILTER, request, &[libc::ENOENT], |_, body| {
        each(body.get(NFGENMSG_LEN..).unwrap_or_default())
    })
}

/// A NUL-padded string (a name, an `ifname` key) as text.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nl_dump::nla;

    #[test]
    fn an_elements_counter_is_found_alone_or_among_expressions() {
        let data = nla(
            0x8000 | NFTA_EXPR_DATA,
            &nla(NFTA_COUNTER_PACKETS, &7u64.to_be_bytes()),
        );
        let mut expr = nla(NFTA_EXPR_NAME, b"counter\0");
        expr.extend(&data);
        let alone = nla(0x8000 | NFTA_SET_ELEM_EXPR, &expr);
        assert_eq!(element_packets(&alone), Some(7));
        let mut limit = nla(NFTA_EXPR_NAME, b"limit\0");
        limit.extend(nla(0x8000 | NFTA_EXPR_DATA, &[]));
        let mut list = nla(0x8000 | NFTA_LIST_ELEM, &limit);
        list.extend(nla(0x8000 | NFTA_LIST_ELEM, &expr));
        let several = nla(0x8000 | NFTA_SET_ELEM_EXPRESSIONS, &list);
        assert_eq!(element_packets(&several), Some(7));
        assert_eq!(text(b"vnet3\0\0\0\0\0\0\0\0\0\0\0"), "vnet3");
    }
}
