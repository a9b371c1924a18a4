//! The RA server: ONE ICMPv6 raw socket and ONE task for every network of the daemon.
//!
//! - The socket's ICMPv6 filter passes router solicitations only; `IPV6_RECVPKTINFO` tells
//!   on which interface each arrived and `IPV6_RECVHOPLIMIT` its hop limit (255 or it is
//!   discarded, RFC 4861 §6.1.1). A solicitation arriving on an interface virtnet does not
//!   advertise on (the uplink, a guest's tap) is ignored; an advertised bridge answers at once,
//!   unicast to the soliciting host (RFC 4861 §6.2.6 allows it), within a burst limit per
//!   bridge.
//! - Advertisements go out with the bridge as the scope of the destination address
//!   (`sin6_scope_id`), hop limit 255, and the kernel's source address selection, which picks
//!   the bridge's link-local address for a link-local or multicast destination. Nothing is
//!   ever sent to an interface that is not in the table, so never on the uplink.
//! - One timer for every network: a schedule ordered by due time. A network's first three
//!   unsolicited advertisements go out 4 s apart (MAX_INITIAL_RTR_ADVERT_INTERVAL is 16 s),
//!   then one every 198–600 s at random (RFC 4861 §6.2.4, dnsmasq's 600 s interval).
//! - Per network the server keeps one table entry (its [`RaConfig`], interface name and
//!   schedule): no socket, task or buffer of its own, so 4,000 networks cost 4,000 small
//!   entries and no descriptor.
//! - [`RaServer::withdraw`] sends the final advertisement with router lifetime 0 (RFC 4861
//!   §6.2.5) before the network's bridge goes away.
//!
//! The bridge joins the all-routers group (ff02::2), where hosts send solicitations, because
//! its `forwarding` sysctl is on (virtnet-plan's kernel sysctls); a per-socket multicast
//! membership per bridge would instead hit the kernel's `optmem_max` after a few thousand.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;
use virtnet_sockets::iface::index_of as if_index;
use virtnet_sockets::SharedTask;

use crate::config::{RaConfig, MAX_INTERVAL_S, MIN_INTERVAL_S};
use crate::wire::{Solicit, ROUTER_SOLICIT};

/// Unsolicited advertisements sent quickly after a network starts (RFC 4861 §10).
const MAX_INITIAL_ADVERTS: u8 = 3;
/// Interval between those first advertisements (≤ MAX_INITIAL_RTR_ADVERT_INTERVAL, 16 s).
const INITIAL_INTERVAL: Duration = Duration::from_secs(4);
/// Solicitations answered per bridge and second; more are dropped (a guest flooding RS costs
/// the daemon little and the other guests nothing).
const SOLICIT_BURST: u16 = 20;
/// All-nodes multicast, where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// `ICMP6_FILTER` (RFC 3542 §3.2), a socket option the libc crate does not name.
const ICMP6_FILTER: libc::c_int = 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One advertised bridge.
#[derive(Debug)]
struct Entry {
    ifname: String,
    config: RaConfig,
    /// When its next unsolicited advertisement is due (its key in the schedule).
    next: Instant,
    /// Fast initial advertisements still to send.
    initial_left: u8,
    /// Solicitations answered in the current one-second window, and its start.
    window: (Instant, u16),
}

/// Every advertised bridge, by interface index, and the timer's schedule.
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u32, Entry>,
    schedule: BTreeSet<(Instant, u32)>,
}

impl Table {
    fn remove(&mut self, ifindex: u32) -> Option<Entry> {
        let e = self.entries.remove(&ifindex)?;
        self.schedule.remove(&(e.next, ifindex));
        Some(e)
    }

    /// The index under which `ifname` is advertised: the bridge's own (O(1)), or, when the
    /// bridge is already gone, found by name (a scan, only on that rare path).
    fn index_of(&self, ifname: &str) -> Option<u32> {
        if let Some(i) = if_index(ifname).filter(|i| self.entries.contains_key(i)) {
            return Some(i);
        }
        // The bridge is gone or was re-created under another index: find the entry by name.
        self.entries
            .iter()
            .find(|(_, e)| e.ifname == ifname)
            .map(|(i, _)| *i)
    }
}

struct Shared {
    socket: AsyncFd<Socket>,
    table: Mutex<Table>,
    /// Wakes the task when the schedule changed.
    wake: Notify,
}

/// The daemon's RA server (see the module comment). Its socket and task start with the first
/// network served (inside a tokio runtime) and end when it is dropped.
#[derive(Default)]
pub struct RaServer {
    running: SharedTask<Shared>,
}

impl std::fmt::Debug for RaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaServer")
            .field("networks", &self.len())
            .finish()
    }
}

impl RaServer {
    /// A server with no network yet (no socket either).
    pub fn new() -> RaServer {
        RaServer::default()
    }

    fn shared(&self) -> io::Result<Arc<Shared>> {
        self.running.get_or_start(
            || {
                let socket = virtnet_sockets::readable(open_socket()?)?;
                Ok(Shared {
                    socket,
                    table: Mutex::new(Table::default()),
                    wake: Notify::new(),
                })
            },
            run,
        )
    }

    /// Advertises `config` on the bridge `ifname` from now on (replacing what it advertised),
    /// starting with a burst of unsolicited advertisements; serving the same `config` again
    /// changes nothing. Must run inside a tokio runtime.
    pub fn serve(&self, ifname: &str, config: RaConfig) -> io::Result<()> {
        let ifindex = if_index(ifname).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface '{ifname}' to advertise on"),
            )
        })?;
        let shared = self.shared()?;
        let now = Instant::now();
        {
            let mut table = lock(&shared.table);
            if table
                .entries
                .get(&ifindex)
                .is_some_and(|e| e.ifname == ifname && e.config == config)
            {
                return Ok(()); // unchanged (a live update that did not touch IPv6)
            }
            // Replaces what the bridge advertised. (An entry left under the index of an
            // earlier bridge of the same name is dropped at its next send, which fails: no
            // scan of the table here, so serving 4,000 networks stays linear.)
            table.remove(ifindex);
            table.entries.insert(
                ifindex,
                Entry {
                    ifname: ifname.to_string(),
                    config,
                    next: now,
                    initial_left: MAX_INITIAL_ADVERTS,
                    window: (now, 0),
                },
            );
            table.schedule.insert((now, ifindex));
        }
        shared.wake.notify_one();
        Ok(())
    }

    /// Stops advertising on `ifname`, with a final advertisement of router lifetime 0 so that
    /// guests drop their default route through it now (call it before the bridge goes).
    /// Nothing happens when the bridge is not advertised.
    pub fn withdraw(&self, ifname: &str) {
        let Some(shared) = self.running.get() else {
            return;
        };
        let entry = {
            let mut table = lock(&shared.table);
            table
                .index_of(ifname)
                .and_then(|i| Some((i, table.remove(i)?)))
        };
        if let Some((ifindex, entry)) = entry {
            if let Err(e) = send_advert(shared.socket.get_ref(), ifindex, &entry, ALL_NODES, true) {
                tracing::debug!(bridge = ifname, error = %e, "final router advertisement not sent");
            }
        }
    }

    /// How many bridges are advertised.
    pub fn len(&self) -> usize {
        self.running
            .get()
            .map_or(0, |s| lock(&s.table).entries.len())
    }

    /// True when no bridge is advertised.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shared socket: raw ICMPv6, router solicitations only, with the ingress interface and
/// hop limit of each, sending with hop limit 255 and without looping its own multicast back.
fn open_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.set_nonblocking(true)?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_loop_v6(false)?;
    socket.set_recv_hoplimit_v6(true)?;
    let fd = socket.as_raw_fd();
    setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &1_i32)?;
    // RFC 3542's filter: a set bit blocks its type. Block everything but solicitations.
    let mut filter = [u32::MAX; 8];
    filter[usize::from(ROUTER_SOLICIT >> 5)] &= !(1 << (ROUTER_SOLICIT & 31));
    setsockopt(fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
    Ok(socket)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to a live `T` of `len` bytes for the duration of the call.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An `ifreq` naming `ifname` (None: the name does not fit).
fn ifreq(ifname: &str) -> Option<libc::ifreq> {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = ifname.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

/// The bridge's MAC address and MTU, read when sending (a bridge's MTU follows its ports).
fn link_info(fd: RawFd, ifname: &str) -> (Option<[u8; 6]>, Option<u32>) {
    let Some(mut req) = ifreq(ifname) else {
        return (None, None);
    };
    // SAFETY: SIOCGIFHWADDR reads the name and writes the address into the `ifreq` we own.
    let mac = (unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } == 0).then(|| {
        // SAFETY: the ioctl succeeded, so the union holds the hardware address.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        mac
    });
    let Some(mut req) = ifreq(ifname) else {
        return (mac, None);
    };
    // SAFETY: as above, for the MTU.
    let ok = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } == 0;
    // SAFETY: the union holds plain integers (the request was zeroed); after a successful
    // ioctl this one is the MTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    let mtu = ok.then_some(mtu).and_then(|m| u32::try_from(m).ok());
    (mac, mtu)
}

/// Sends `entry`'s advertisement to `dest` on `ifindex` (the final one when `withdraw`).
fn send_advert(
    socket: &Socket,
    ifindex: u32,
    entry: &Entry,
    dest: Ipv6Addr,
    withdraw: bool,
) -> io::Result<()> {
    let (mac, mtu) = link_info(socket.as_raw_fd(), &entry.ifname);
    let bytes = entry
        .config
        .advert(mac, mtu, withdraw)
        .encode()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let to = SockAddr::from(SocketAddrV6::new(dest, 0, 0, ifindex));
    socket.send_to(&bytes, &to).map(|_| ())
}

/// A router solicitation as received: where from, on which interface, with what hop limit.
struct Received {
    source: Ipv6Addr,
    ifindex: u32,
    hop_limit: Option<i32>,
    len: usize,
}

/// Reads one datagram into `buf`, with its ancillary data.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = [0u64; 16];
    // SAFETY: sockaddr_in6 is plain old data; all zeroes is valid.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all zeroes is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let control: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let (ifindex, hop_limit) = ancillary(&control[..msg.msg_controllen.min(control.len())]);
    Ok(Received {
        source: Ipv6Addr::from(from.sin6_addr.s6_addr),
        ifindex: ifindex.unwrap_or(0),
        hop_limit,
        len,
    })
}

/// The ingress interface (`IPV6_PKTINFO`) and hop limit (`IPV6_HOPLIMIT`) in a control
/// buffer, read field by field (`cmsghdr`: length as `size_t`, level, type; data aligned to
/// `size_t`).
fn ancillary(control: &[u8]) -> (Option<u32>, Option<i32>) {
    const WORD: usize = std::mem::size_of::<usize>();
    let header = std::mem::size_of::<libc::cmsghdr>();
    let int = |b: &[u8]| b.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok());
    let (mut ifindex, mut hop_limit) = (None, None);
    let mut at = 0;
    while at + header <= control.len() {
        let Some(len) = control
            .get(at..at + WORD)
            .and_then(|b| <[u8; WORD]>::try_from(b).ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        let level = int(&control[at + WORD..]).map(i32::from_ne_bytes);
        let kind = int(&control[at + WORD + 4..]).map(i32::from_ne_bytes);
        if len < header || at + len > control.len() {
            break;
        }
        let data = &control[at + header..at + len];
        match (level, kind) {
            (Some(libc::IPPROTO_IPV6), Some(libc::IPV6_PKTINFO)) => {
                ifindex = data.get(16..20).and_then(int).map(u32::from_ne_bytes);
            }
            (Some(libc::IPPROTO_IPV6), Some(libc::IPV6_HOPLIMIT)) => {
                hop_limit = int(data).map(i32::from_ne_bytes);
            }
            _ => {}
        }
        at += len.div_ceil(WORD) * WORD;
    }
    (ifindex, hop_limit)
}

/// The server's task: answers solicitations and sends what the schedule says is due.
async fn run(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let due = lock(&shared.table).schedule.first().map(|(t, _)| *t);
        let sleep = tokio::time::sleep_until(due.unwrap_or_else(far_future));
        tokio::select! {
            ready = shared.socket.readable() => match ready {
                Ok(mut guard) => {
                    drain(&shared, &mut buf);
                    guard.clear_ready();
                }
                Err(e) => {
                    tracing::error!(error = %e, "router advertisement socket failed; RAs stop");
                    return;
                }
            },
            () = sleep => send_due(&shared),
            () = shared.wake.notified() => {}
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Answers every solicitation queued on the socket.
fn drain(shared: &Shared, buf: &mut [u8]) {
    let fd = shared.socket.get_ref().as_raw_fd();
    loop {
        match recv(fd, buf) {
            Ok(r) => answer(shared, &r, &buf[..r.len]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "router solicitation not read");
                return;
            }
        }
    }
}

/// Answers one solicitation, if it is valid and came in on an advertised bridge.
fn answer(shared: &Shared, r: &Received, payload: &[u8]) {
    if r.hop_limit != Some(255) || Solicit::decode(payload).is_err() {
        return;
    }
    let now = Instant::now();
    let mut table = lock(&shared.table);
    let Some(entry) = table.entries.get_mut(&r.ifindex) else {
        return; // not a bridge of ours (the uplink, a tap): never answered
    };
    if now.duration_since(entry.window.0) >= Duration::from_secs(1) {
        entry.window = (now, 0);
    }
    if entry.window.1 >= SOLICIT_BURST {
        return;
    }
    entry.window.1 += 1;
    // A host without an address yet solicits from `::`: it hears the all-nodes answer.
    let dest = if r.source.is_unspecified() {
        ALL_NODES
    } else {
        r.source
    };
    if let Err(e) = send_advert(shared.socket.get_ref(), r.ifindex, entry, dest, false) {
        tracing::debug!(bridge = %entry.ifname, error = %e, "solicited router advertisement not sent");
    }
}

/// Sends the unsolicited advertisements that are due and schedules each network's next one.
fn send_due(shared: &Shared) {
    let now = Instant::now();
    let mut table = lock(&shared.table);
    let mut rng = rand::thread_rng();
    while let Some(&(at, ifindex)) = table.schedule.first() {
        if at > now {
            break;
        }
        table.schedule.remove(&(at, ifindex));
        let Some(entry) = table.entries.get_mut(&ifindex) else {
            continue;
        };
        match send_advert(shared.socket.get_ref(), ifindex, entry, ALL_NODES, false) {
            // The bridge is gone (or its name now has another index) without a withdraw:
            // forget it. (The kernel says EADDRNOTAVAIL for a missing scope as for a bridge
            // that is down, so the name is looked up again.)
            Err(_) if if_index(&entry.ifname) != Some(ifindex) => {
                tracing::debug!(bridge = %entry.ifname, "bridge gone; no more advertisements");
                table.entries.remove(&ifindex);
                continue;
            }
            Err(e) => {
                tracing::debug!(bridge = %entry.ifname, error = %e, "router advertisement not sent");
            }
            Ok(()) => {}
        }
        entry.initial_left = entry.initial_left.saturating_sub(1);
        entry.next = if entry.initial_left > 0 {
            now + INITIAL_INTERVAL
        } else {
            now + Duration::from_secs(rng.gen_range(MIN_INTERVAL_S..=MAX_INTERVAL_S))
        };
        let next = entry.next;
        table.schedule.insert((next, ifindex));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancillary_data_gives_interface_and_hop_limit() {
        const WORD: usize = std::mem::size_of::<usize>();
        let header = std::mem::size_of::<libc::cmsghdr>();
        let mut buf = Vec::new();
        let mut push = |kind: i32, data: &[u8]| {
            let len = header + data.len();
            buf.extend_from_slice(&len.to_ne_bytes());
            buf.extend_from_slice(&libc::IPPROTO_IPV6.to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.resize(buf.len() + header - WORD - 8, 0);
            buf.extend_from_slice(data);
            buf.resize(buf.len().div_ceil(WORD) * WORD, 0);
        };
        let mut pktinfo = [0u8; 20];
        pktinfo[16..].copy_from_slice(&7u32.to_ne_bytes());
        push(libc::IPV6_PKTINFO, &pktinfo);
        push(libc::IPV6_HOPLIMIT, &255i32.to_ne_bytes());
        assert_eq!(ancillary(&buf), (Some(7), Some(255)));
        assert_eq!(ancillary(&buf[..10]), (None, None));
        assert_eq!(ancillary(&[]), (None, None));
    }

    #[test]
    fn interface_names_that_do_not_fit_give_no_request() {
        assert!(ifreq("virbr0").is_some());
        assert!(ifreq("abcdefghijklmnop").is_none());
        assert_eq!(if_index("no-such-if-x"), None);
    }
}
