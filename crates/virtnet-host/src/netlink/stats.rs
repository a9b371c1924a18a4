//! Traffic counters of every link: what a metrics scrape reads for all guest ports at once.
//!
//! Two lists hold them, and neither is best every time:
//!
//! - the rtnetlink stats dump (`RTM_GETSTATS`, `IFLA_STATS_LINK_64` only: an index and the
//!   counters per link, 570 KiB for 2,500 links, ~1.6 ms of the kernel's time), which takes
//!   the kernel's RTNL lock, as every rtnetlink request for links does here (Linux 6.18: the
//!   `RTM_GETLINK` dump too, and one link's `RTM_GETLINK`; checked with RTNL held by another
//!   namespace's thread, `bench/link_stats_rtnl.py`). Whatever holds RTNL on the host — a
//!   link made or deleted in any namespace, the kernel's link-watch work — delays it;
//! - procfs's `net/dev` of the calling thread's namespace, which the kernel writes under RCU
//!   and which never waits for RTNL, but costs it about twice as much (16 numbers printed per
//!   link: ~3.5 ms for 2,500 links) and names the links instead of numbering them.
//!
//! [`link_stats`] asks for the dump and waits for it at most `patience`; when RTNL keeps it
//! longer, it reads `net/dev` instead (the dump is left to finish on its own thread, and
//! while it has not, the next readings go to `net/dev` at once).
//!
//! The counters are `dev_get_stats`'s in both, with one difference: `net/dev`'s "drop" on
//! receive is `rx_dropped + rx_missed_errors` (a tap never counts missed frames, so for the
//! guests' ports they are the same).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use netlink_sys::protocols::NETLINK_ROUTE;

use crate::nl_dump::{self, attr};

/// `RTM_GETSTATS`.
const RTM_GETSTATS: u16 = 94;
/// `IFLA_STATS_LINK_64`: `struct rtnl_link_stats64`.
const IFLA_STATS_LINK_64: u16 = 1;
/// `struct if_stats_msg`: family, two pad bytes, a pad u16, ifindex u32, filter mask u32.
const IF_STATS_MSG_LEN: usize = 12;
/// Where the calling thread's network namespace lists its links' counters.
const NET_DEV: &str = "/proc/thread-self/net/dev";

/// A stats dump that waited longer than its reader's patience and has not ended yet (RTNL
/// is still held elsewhere): the next readings do not ask for another one.
static DUMP_PENDING: AtomicBool = AtomicBool::new(false);

/// How a reading names a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKey {
    /// By interface index (the stats dump).
    Index(u32),
    /// By interface name (`net/dev`).
    Name(String),
}

impl Default for LinkKey {
    fn default() -> LinkKey {
        LinkKey::Index(0)
    }
}

/// The kernel's counters of one link (the first fields of `struct rtnl_link_stats64`), as the
/// host sees them: for a tap, "rx" is what the guest sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Which link.
    pub key: LinkKey,
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
    /// Packets dropped on receive (from `net/dev`, with those missed: see the module).
    pub rx_dropped: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

impl LinkStats {
    /// Reads one `RTM_NEWSTATS` body.
    fn from_dump(body: &[u8]) -> Option<LinkStats> {
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
            key: LinkKey::Index(index),
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

    /// Reads one line of `net/dev`: `  name: ` and 16 numbers, 8 on receive (bytes, packets,
    /// errs, drop, fifo, frame, compressed, multicast), 8 on transmit (bytes, packets, errs,
    /// drop, fifo, colls, carrier, compressed). `None` for the two heading lines (and any
    /// line not of that form).
    fn from_net_dev(line: &str) -> Option<LinkStats> {
        // An interface name holds no ':' and no white space (the kernel refuses them).
        let (name, numbers) = line.split_once(':')?;
        let name = name.trim_start();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return None;
        }
        let mut n = [0u64; 16];
        let mut fields = numbers.split_ascii_whitespace();
        for slot in &mut n {
            *slot = fields.next()?.parse().ok()?;
        }
        Some(LinkStats {
            key: LinkKey::Name(name.to_string()),
            rx_bytes: n[0],
            rx_packets: n[1],
            rx_errors: n[2],
            rx_dropped: n[3],
            tx_bytes: n[8],
            tx_packets: n[9],
            tx_errors: n[10],
            tx_dropped: n[11],
        })
    }
}

/// The counters of every link of the calling thread's network namespace: from the stats
/// dump when it answers within `patience`, else (RTNL held elsewhere) from `net/dev`, which
/// does not wait for RTNL (see the module). Either way one reading, all links keyed alike.
pub fn link_stats(patience: Duration) -> io::Result<Vec<LinkStats>> {
    if DUMP_PENDING.load(Ordering::Acquire) {
        return net_dev();
    }
    let (tx, rx) = mpsc::sync_channel(1);
    // Pending from now until the dump's thread ends (it clears the flag).
    DUMP_PENDING.store(true, Ordering::Release);
    // A thread starts in its creator's network namespace: the dump is this thread's.
    let spawned = std::thread::Builder::new()
        .name("link-stats".into())
        .spawn(move || {
            let result = stats_dump();
            DUMP_PENDING.store(false, Ordering::Release);
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        DUMP_PENDING.store(false, Ordering::Release);
        return stats_dump(); // No thread to spare (a limit): wait for the dump here.
    }
    match rx.recv_timeout(patience) {
        Ok(result) => result,
        Err(_) => net_dev(),
    }
}

/// Every link's counters from one `RTM_GETSTATS` dump (waits for RTNL).
fn stats_dump() -> io::Result<Vec<LinkStats>> {
    // struct if_stats_msg: AF_UNSPEC, every link, filter mask IFLA_STATS_FILTER_BIT(LINK_64).
    let mut body = [0u8; IF_STATS_MSG_LEN];
    body[8..12].copy_from_slice(&(1u32 << (IFLA_STATS_LINK_64 - 1)).to_ne_bytes());
    let request = nl_dump::request(RTM_GETSTATS, &body);
    let mut out = Vec::new();
    nl_dump::dump(NETLINK_ROUTE, &request, &[], |_, body| {
        if let Some(s) = LinkStats::from_dump(body) {
            out.push(s);
        }
    })?;
    Ok(out)
}

/// Every link's counters from `/proc/thread-self/net/dev` (never waits for RTNL).
fn net_dev() -> io::Result<Vec<LinkStats>> {
    let mut text = String::with_capacity(64 * 1024);
    std::fs::File::open(NET_DEV)?.read_to_string(&mut text)?;
    Ok(parse_net_dev(&text))
}

/// Every link line of a `net/dev` text.
fn parse_net_dev(text: &str) -> Vec<LinkStats> {
    text.lines().filter_map(LinkStats::from_net_dev).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text Linux 6.18 writes (its two headings, a name padded to six columns, one
    /// longer than that).
    const TEXT: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
vnet1234:   98765     321    4    5    6     7          8         9    43210     123   10   11   12    13      14         15
";

    #[test]
    fn net_dev_gives_each_link_and_skips_the_headings() {
        let links = parse_net_dev(TEXT);
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].key, LinkKey::Name("lo".into()));
        assert_eq!(
            links[1],
            LinkStats {
                key: LinkKey::Name("vnet1234".into()),
                rx_bytes: 98765,
                rx_packets: 321,
                rx_errors: 4,
                rx_dropped: 5,
                tx_bytes: 43210,
                tx_packets: 123,
                tx_errors: 10,
                tx_dropped: 11,
            }
        );
    }

    #[test]
    fn a_net_dev_line_cut_short_or_not_a_number_is_left_out() {
        assert_eq!(parse_net_dev("  eth0: 1 2 3\n"), vec![]);
        let bad = "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n";
        assert_eq!(parse_net_dev(bad), vec![]);
    }
}
