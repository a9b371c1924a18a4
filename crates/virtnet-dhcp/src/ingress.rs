//! The bridge port a DHCP datagram came in on, taken from the frame itself.
//!
//! The UDP socket says only that a datagram arrived on the bridge: the kernel re-injects a
//! frame a bridge passes up as if the bridge had received it, so `IP_PKTINFO`, and even an
//! `AF_PACKET` socket bound to the bridge with `PACKET_ORIGDEV`, name the bridge, not the
//! port (checked on 6.18). The port is visible only while the frame enters the port, to
//! `ETH_P_ALL` packet taps, which run before the bridge's receive handler. So:
//!
//! - One capture socket per network namespace, shared by the servers of this process there
//!   (one filter run per received frame, however many networks): `AF_PACKET`, `SOCK_DGRAM`,
//!   `ETH_P_ALL`, not bound to an interface, `PACKET_IGNORE_OUTGOING`, with a classic BPF
//!   filter that keeps only unfragmented IPv4 UDP to port 67 carrying a BOOTREQUEST, and IPv6
//!   UDP to port 547 (DHCPv6, UDP right after the fixed header, as clients send it; the
//!   DHCPv6 server of `virtnet-dhcp6` pairs its datagrams through the same capture). For each
//!   frame it reports the interface it was received on (`sll_ifindex`) and, with
//!   `SO_TIMESTAMPNS`, the kernel's receive time of the frame.
//! - The kernel stamps a frame once, when it is first received (on the port), and the stamp
//!   travels with it through the bridge and IP to the UDP socket, which reports the same
//!   nanoseconds with `SO_TIMESTAMPNS`. A datagram is paired with the frame that has the same
//!   stamp and the same source address, source port and payload (a SipHash with a random key
//!   of them), captured on a port of the server's bridge. The stamp is the kernel's, not the
//!   sender's: a guest that copies another guest's datagram byte for byte (it sees the
//!   broadcasts) still gets its own frames' stamps, so it cannot have its copies charged to
//!   the other port, nor the other's datagrams charged to its own.
//! - The UDP socket remains what the server receives from and sends with: the kernel still
//!   decides what is delivered (bridge filtering, STP port states, the input firewall, local
//!   addresses), the capture only names the port.
//!
//! Captures are kept per port, at most [`PER_PORT`] each, for [`SEEN_SECS`]: a port whose
//! frames are captured but never delivered (addressed to another guest, dropped by a
//! firewall) pushes out only its own entries. One task per capture (not one per server: with
//! thousands of networks, one descriptor each and thousands of wake-ups per frame) drains the
//! capture socket as soon as it is readable and sweeps it every [`SWEEP_EVERY`]; a server
//! also drains it before pairing a datagram (its frame was queued on the capture socket
//! before the datagram reached the UDP socket, in the same softirq), so pairing never depends
//! on that task having run.
//!
//! The capture's rtnetlink socket (interface → bridge) also answers the servers' neighbour
//! lookups ([`Ingress::links`]): one socket and one 64 KiB answer buffer per namespace, not
//! one per network. A datagram with
//! no capture (sent by the host itself, or its capture lost) is charged to the shared
//! [`PortId::Unknown`] bucket and counted in [`crate::Stats::unknown_port`]. So is one that
//! arrives in the first moments after the first timestamping socket of the host opens: the
//! kernel turns arrival stamps on asynchronously (`net_enable_timestamp` defers to a work
//! item), and a frame that arrived unstamped is stamped separately by each socket that reads
//! it.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use virtnet_host::Netlink;

use crate::ratelimit::PortId;

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h): no copies of transmitted frames.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Receive buffer of the capture socket (twice the DHCP socket's: it also holds frames that
/// are not delivered, and it must not overflow before the UDP socket does).
const CAPTURE_RCVBUF: usize = 2 * crate::socket::RCVBUF;
/// Captures remembered per port, waiting for their datagram.
pub(crate) const PER_PORT: usize = 256;
/// Captures older than this are forgotten by the sweep.
pub(crate) const SEEN_SECS: u64 = 30;
/// How long an interface → bridge answer is reused.
const MASTER_CACHE_SECS: u64 = 2;
/// At most this many interfaces are cached.
const MASTER_CACHE_MAX: usize = 4096;
/// How often the capture's task forgets old captures.
const SWEEP_EVERY: Duration = crate::socket::SWEEP_INTERVAL;

/// What pairs a datagram with its frame: the kernel's receive time and a keyed hash of the
/// source address, source port and UDP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stamp {
    ns: u64,
    digest: u64,
}

#[derive(Debug)]
struct Seen {
    stamp: Stamp,
    at: u64,
}

/// The shared capture of one network namespace.
#[derive(Debug)]
struct Capture {
    sock: OwnedFd,
    /// Interface → bridge lookups, and the servers' neighbour lookups.
    links: Arc<Mutex<Netlink>>,
    /// The task that drains and sweeps the capture (see the module docs); aborted when the
    /// capture goes.
    drainer: Option<JoinHandle<()>>,
    keys: RandomState,
    /// Interface → (its bridge, valid until).
    masters: HashMap<u32, (Option<u32>, u64)>,
    /// Bridges with a server, and how many.
    bridges: HashMap<u32, usize>,
    /// Captured frames not yet paired: stamp → (port, bridge).
    index: HashMap<Stamp, (u32, u32)>,
    /// The same, per port, oldest first (for the per-port bound and the sweep).
    ports: HashMap<u32, VecDeque<Seen>>,
    buf: Vec<u8>,
}

/// A network namespace: device and inode of its nsfs file.
pub(crate) type NetnsId = (u64, u64);

/// The captures of this process, by network namespace.
static CAPTURES: Mutex<Vec<(NetnsId, Weak<Mutex<Capture>>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The network namespace of the calling thread.
pub(crate) fn netns_id() -> io::Result<NetnsId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// One server's view of the shared capture: pairs its datagrams with their ingress port.
/// DHCPv4's servers and the DHCPv6 server (one per served bridge) each hold one.
#[derive(Debug)]
pub struct Ingress {
    shared: Arc<Mutex<Capture>>,
    bridge: u32,
}

impl Ingress {
    /// The capture of the calling thread's namespace (opened if this process has none
    /// there yet), serving bridge `bridge`. Must run inside a tokio runtime context.
    pub fn open(bridge: u32) -> io::Result<Ingress> {
        let ns = netns_id()?;
        let shared = {
            let mut all = lock(&CAPTURES);
            all.retain(|(_, w)| w.strong_count() > 0);
            match all
                .iter()
                .find(|(id, _)| *id == ns)
                .and_then(|(_, w)| w.upgrade())
            {
                Some(c) => c,
                None => {
                    let c = Arc::new(Mutex::new(Capture::open()?));
                    all.push((ns, Arc::downgrade(&c)));
                    c
                }
            }
        };
        {
            let mut c = lock(&shared);
            // (Re)started on this runtime when it has none running: the runtime that
            // started it may have ended (tests run one per daemon or server).
            if c.drainer.as_ref().is_none_or(JoinHandle::is_finished) {
                let dup = c.sock.try_clone()?;
                c.drainer = Some(tokio::spawn(drain_task(Arc::downgrade(&shared), dup)));
            }
            *c.bridges.entry(bridge).or_insert(0) += 1;
        }
        Ok(Ingress { shared, bridge })
    }

    /// The namespace's shared rtnetlink socket (for the server's neighbour lookups).
    pub(crate) fn links(&self) -> Arc<Mutex<Netlink>> {
        lock(&self.shared).links.clone()
    }

    /// The port of this server's bridge that the datagram `payload` from `from`, received by
    /// the UDP socket at `stamp_ns`, came in on; [`PortId::Unknown`] when no frame captured on
    /// a port of the bridge has its stamp (or the datagram has no stamp or sender).
    pub fn port_of(
        &self,
        stamp_ns: Option<u64>,
        from: Option<SocketAddr>,
        payload: &[u8],
        now: u64,
    ) -> PortId {
        let (Some(ns), Some(from)) = (stamp_ns, from) else {
            return PortId::Unknown;
        };
        let mut c = lock(&self.shared);
        let stamp = Stamp {
            ns,
            digest: c.digest(from, payload),
        };
        if !c.index.contains_key(&stamp) {
            let _ = c.drain(now);
        }
        match c.index.remove(&stamp) {
            Some((port, bridge)) if bridge == self.bridge => PortId::Port(port),
            Some(other) => {
                // Another bridge's frame (cannot be ours): leave it for its server.
                c.index.insert(stamp, other);
                PortId::Unknown
            }
            None => PortId::Unknown,
        }
    }
}

/// Drains the capture socket whenever it is readable and sweeps it every [`SWEEP_EVERY`],
/// until the capture is gone (its `Drop` aborts this task). `sock` is a duplicate of the
/// capture socket: the one descriptor this task registers with its runtime.
async fn drain_task(capture: Weak<Mutex<Capture>>, sock: OwnedFd) {
    // SAFETY: the OwnedFd is moved into the AsyncFd and owns the descriptor until the
    // AsyncFd drops it, so it stays open and the same for the registration's lifetime.
    let registered =
        unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) };
    let ready = match registered.map_err(io::Error::from) {
        Ok(r) => r,
        Err(e) => {
            // Pairing still drains on demand; only frames never delivered pile up until then.
            tracing::warn!(error = %e, "DHCP capture socket cannot be watched; drained on demand only");
            return;
        }
    };
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(c) = capture.upgrade() else { return };
                lock(&c).sweep(crate::socket::now());
            }
            r = ready.readable() => {
                let mut guard = match r {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "DHCP capture socket failed; continuing");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(c) = capture.upgrade() else { return };
                // Drained to EAGAIN: clears the readiness (unless new frames came meanwhile).
                let _ = guard.try_io(|_| lock(&c).drain(crate::socket::now()));
            }
        }
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let mut c = lock(&self.shared);
        if let Some(n) = c.bridges.get_mut(&self.bridge) {
            *n -= 1;
            if *n == 0 {
                c.bridges.remove(&self.bridge);
            }
        }
    }
}

impl Capture {
    fn open() -> io::Result<Capture> {
        let sock = capture_socket()?;
        Ok(Capture {
            sock,
            links: Arc::new(Mutex::new(crate::netlink::open()?)),
            drainer: None,
            keys: RandomState::new(),
            masters: HashMap::new(),
            bridges: HashMap::new(),
            index: HashMap::new(),
            ports: HashMap::new(),
            buf: vec![0; 2048],
        })
    }

    fn digest(&self, from: SocketAddr, payload: &[u8]) -> u64 {
        let mut h = self.keys.build_hasher();
        match from.ip() {
            IpAddr::V4(ip) => h.write(&ip.octets()),
            IpAddr::V6(ip) => h.write(&ip.octets()),
        }
        h.write_u16(from.port());
        h.write(payload);
        h.finish()
    }

    /// Reads every queued frame; ends with the error that stopped it (`WouldBlock` when the
    /// queue is empty).
    fn drain(&mut self, now: u64) -> io::Result<()> {
        loop {
            let r = match recv_stamped(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "DHCP capture receive failed");
                    }
                    return Err(e);
                }
            };
            let (Some(ns), Some(ifindex)) = (r.stamp_ns, r.ifindex) else {
                continue;
            };
            let Some(digest) = self
                .buf
                .get(..r.len)
                .and_then(parse_udp)
                .map(|(from, payload)| self.digest(from, payload))
            else {
                continue;
            };
            self.note(ifindex, Stamp { ns, digest }, now);
        }
    }

    /// Remembers a frame received on `ifindex` when that is a port of a served bridge (the
    /// copy seen on the bridge itself, and frames of other interfaces, are ignored).
    fn note(&mut self, ifindex: u32, stamp: Stamp, now: u64) {
        if self.bridges.contains_key(&ifindex) {
            return;
        }
        let Some(bridge) = self.master(ifindex, now) else {
            return;
        };
        if !self.bridges.contains_key(&bridge) {
            return;
        }
        self.index.insert(stamp, (ifindex, bridge));
        let seen = self.ports.entry(ifindex).or_default();
        seen.push_back(Seen { stamp, at: now });
        while seen.len() > PER_PORT {
            let Some(old) = seen.pop_front() else { break };
            if self
                .index
                .get(&old.stamp)
                .is_some_and(|(p, _)| *p == ifindex)
            {
                self.index.remove(&old.stamp);
            }
        }
    }

    /// The bridge `ifindex` is a port of (cached for [`MASTER_CACHE_SECS`]).
    fn master(&mut self, ifindex: u32, now: u64) -> Option<u32> {
        if let Some(&(master, until)) = self.masters.get(&ifindex) {
            if until > now {
                return master;
            }
        }
        let master = match crate::netlink::link_master(&mut lock(&self.links), ifindex) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(ifindex, error = %e, "link lookup failed");
                None
            }
        };
        if self.masters.len() >= MASTER_CACHE_MAX {
            self.masters.retain(|_, (_, until)| *until > now);
            if self.masters.len() >= MASTER_CACHE_MAX {
                self.masters.clear();
            }
        }
        self.masters
            .insert(ifindex, (master, now + MASTER_CACHE_SECS));
        master
    }

    fn sweep(&mut self, now: u64) {
        let index = &mut self.index;
        self.ports.retain(|port, seen| {
            while seen
                .front()
                .is_some_and(|s| now.saturating_sub(s.at) >= SEEN_SECS)
            {
                if let Some(old) = seen.pop_front() {
                    if index.get(&old.stamp).is_some_and(|(p, _)| p == port) {
                        index.remove(&old.stamp);
                    }
                }
            }
            !seen.is_empty()
        });
        self.masters.retain(|_, (_, until)| *until > now);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(task) = self.drainer.take() {
            task.abort();
        }
    }
}

/// The capture socket: see the module docs.
fn capture_socket() -> io::Result<OwnedFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let s = Socket::new(
        Domain::PACKET,
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::from(libc::c_int::from(proto))),
    )?;
    let fd = s.as_raw_fd();
    // The filter first, then drop what was queued before it applied.
    attach_filter(fd)?;
    setsockopt_int(fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    crate::socket::set_rcvbuf(&s, CAPTURE_RCVBUF);
    let mut buf = [0u8; 64];
    while recv_stamped(fd, &mut buf).is_ok() {}
    Ok(OwnedFd::from(s))
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt on a valid descriptor with a c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Classic BPF, on the frame from its network header: IPv4 (`skb->protocol`), UDP, not a
/// fragment, destination port 67, BOOTP op 1 (BOOTREQUEST); or IPv6 with UDP as the next
/// header, destination port 547 (DHCPv6). Everything else is dropped in the kernel.
fn attach_filter(fd: RawFd) -> io::Result<()> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const LD_B_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // SKF_AD_OFF + SKF_AD_PROTOCOL: the frame's EtherType, in host order.
    let ad_protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    let mut prog = [
        ins(LD_W_ABS, 0, 0, ad_protocol),          // 0: A = protocol
        ins(JEQ, 0, 10, libc::ETH_P_IP as u32),    // 1: IPv4, else to 12
        ins(LD_B_ABS, 0, 0, 9),                    // 2: A = IP protocol
        ins(JEQ, 0, 14, libc::IPPROTO_UDP as u32), // 3: UDP, else drop
        ins(LD_H_ABS, 0, 0, 6),                    // 4: A = flags + fragment offset
        ins(JSET, 12, 0, 0x3fff),                  // 5: MF or an offset: drop
        ins(LDX_MSH, 0, 0, 0),                     // 6: X = IP header length
        ins(LD_H_IND, 0, 0, 2),                    // 7: A = UDP destination port
        ins(JEQ, 0, 9, 67),                        // 8: 67, else drop
        ins(LD_B_IND, 0, 0, 8),                    // 9: A = BOOTP op
        ins(JEQ, 0, 7, 1),                         // 10: BOOTREQUEST, else drop
        ins(RET, 0, 0, 0xffff),                    // 11: keep
        ins(JEQ, 0, 5, libc::ETH_P_IPV6 as u32),   // 12: IPv6, else drop
        ins(LD_B_ABS, 0, 0, 6),                    // 13: A = next header
        ins(JEQ, 0, 3, libc::IPPROTO_UDP as u32),  // 14: UDP, else drop
        ins(LD_H_ABS, 0, 0, 42),                   // 15: A = UDP destination port
        ins(JEQ, 0, 1, 547),                       // 16: 547, else drop
        ins(RET, 0, 0, 0xffff),                    // 17: keep
        ins(RET, 0, 0, 0),                         // 18: drop
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: SO_ATTACH_FILTER with a valid program; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One received datagram or frame.
#[derive(Debug)]
pub(crate) struct Received {
    /// Its length in the buffer.
    pub(crate) len: usize,
    /// The IPv4 sender (UDP sockets).
    pub(crate) from: Option<SocketAddrV4>,
    /// The interface it was received on (packet sockets: `sll_ifindex`; UDP sockets: the
    /// `IP_PKTINFO` message's `ipi_ifindex`, when the socket asked for it).
    pub(crate) ifindex: Option<u32>,
    /// The kernel's receive time (`SO_TIMESTAMPNS`), in nanoseconds since the epoch.
    pub(crate) stamp_ns: Option<u64>,
}

/// `recvmsg(2)` of one datagram with its sender, its `SCM_TIMESTAMPNS` and (UDP sockets with
/// `IP_PKTINFO` on) its arrival interface; never blocks (`MSG_DONTWAIT`).
pub(crate) fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for a timespec and an in_pktinfo control message (32 bytes each), u64-aligned.
    let mut control = [0u64; 12];
    // SAFETY: all-zero is a valid msghdr; its pointers are set just below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(n).unwrap_or(0).min(buf.len());
    let mut stamp_ns = None;
    let mut pktinfo_ifindex = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // msg_controllen; the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
                let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
                stamp_ns = Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos));
            } else if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                pktinfo_ifindex = u32::try_from(info.ipi_ifindex).ok().filter(|&i| i != 0);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let (from, ifindex) = match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET).
            let sin: libc::sockaddr_in = unsafe {
                std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast())
            };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            (
                Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))),
                pktinfo_ifindex,
            )
        }
        libc::AF_PACKET => {
            // SAFETY: the kernel wrote a sockaddr_ll (family AF_PACKET).
            let sll: libc::sockaddr_ll = unsafe {
                std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast())
            };
            (None, u32::try_from(sll.sll_ifindex).ok())
        }
        _ => (None, None),
    };
    Ok(Received {
        len,
        from,
        ifindex,
        stamp_ns,
    })
}

/// The UDP sender and payload of a captured IPv4 or IPv6 packet (by its version nibble).
pub(crate) fn parse_udp(pkt: &[u8]) -> Option<(SocketAddr, &[u8])> {
    match pkt.first()? >> 4 {
        4 => parse_ipv4_udp(pkt).map(|(from, p)| (SocketAddr::V4(from), p)),
        6 => parse_ipv6_udp(pkt).map(|(from, p)| (SocketAddr::from(from), p)),
        _ => None,
    }
}

/// The UDP sender and payload of an IPv6 packet whose next header is UDP (what the filter
/// keeps), checked as the kernel would before delivering it: the IPv6 payload length covers
/// the UDP length, which covers its header.
pub(crate) fn parse_ipv6_udp(pkt: &[u8]) -> Option<(std::net::SocketAddrV6, &[u8])> {
    let payload_len = usize::from(u16::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?]));
    if *pkt.get(6)? != 17 {
        return None;
    }
    let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
    let udp = pkt.get(40..40 + payload_len)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let ulen = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if ulen < 8 {
        return None;
    }
    let data = udp.get(8..ulen)?;
    Some((
        std::net::SocketAddrV6::new(Ipv6Addr::from(src), sport, 0, 0),
        data,
    ))
}

/// The source and UDP payload of an IPv4 UDP packet (from its IP header), checked as the
/// kernel would before delivering it (lengths; the BPF filter already checked the rest).
pub(crate) fn parse_ipv4_udp(pkt: &[u8]) -> Option<(SocketAddrV4, &[u8])> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
    if ihl < 20 || total < ihl + 8 || *pkt.get(9)? != 17 {
        return None;
    }
    let ip = pkt.get(..total)?;
    let src = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
    let udp = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let ulen = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    let payload = udp.get(8..ulen)?;
    Some((SocketAddrV4::new(src, sport), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&[10, 0, 0, 5, 255, 255, 255, 255]);
        let ulen = 8 + payload.len();
        p.extend_from_slice(&[0, 68, 0, 67, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_ipv6_udp_source_and_payload_and_rejects_bad_lengths() {
        let mut p = vec![0x60, 0, 0, 0, 0, 13, 17, 64];
        p.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5).octets());
        p.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2).octets());
        p.extend_from_slice(&[2, 34, 2, 35, 0, 13, 0, 0]);
        p.extend_from_slice(b"hello");
        let (from, payload) = parse_udp(&p).unwrap();
        assert_eq!(
            from,
            SocketAddr::from((Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5), 546))
        );
        assert_eq!(payload, b"hello");
        let mut bad = p.clone();
        bad[45] = 200; // UDP length past the packet
        assert!(parse_udp(&bad).is_none());
        let mut bad = p.clone();
        bad[6] = 6; // TCP
        assert!(parse_udp(&bad).is_none());
        assert!(parse_udp(&p[..30]).is_none());
    }

    #[test]
    fn parses_source_and_payload_and_rejects_bad_lengths() {
        let mut p = packet(b"hello");
        let (from, payload) = parse_ipv4_udp(&p).unwrap();
        assert_eq!(from, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 68));
        assert_eq!(payload, b"hello");
        // Ethernet padding after the IP packet is not payload.
        p.extend_from_slice(&[0; 10]);
        assert_eq!(parse_ipv4_udp(&p).unwrap().1, b"hello");
        // A UDP length beyond the packet, an IP length beyond the frame, a short header.
        let mut bad = packet(b"hello");
        bad[25] = 200;
        assert!(parse_ipv4_udp(&bad).is_none());
        let mut bad = packet(b"hello");
        bad[3] = 200;
        assert!(parse_ipv4_udp(&bad).is_none());
        let mut bad = packet(b"hello");
        bad[0] = 0x44;
        assert!(parse_ipv4_udp(&bad).is_none());
        assert!(parse_ipv4_udp(&[]).is_none());
    }
}
