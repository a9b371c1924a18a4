//! The network side: ONE UDP socket on `[::]:547` and ONE task for every network's bridge.
//!
//! - `IPV6_RECVPKTINFO` names the interface each datagram arrived on. A datagram from an
//!   interface that has no server in the table (the uplink, a bridge without DHCPv6, a
//!   guest's tap) is dropped unread; one from a served bridge goes to that bridge's
//!   [`Engine`], and the reply goes back to the sender's link-local address scoped to the
//!   same bridge (`sin6_scope_id`). Nothing is ever sent on another interface.
//! - Clients send to All_DHCP_Relay_Agents_and_Servers (ff02::1:2). The bridge joins that
//!   group when it is served. The receiving socket needs no membership of its own: with
//!   `IPV6_MULTICAST_ALL` (the default) a socket bound to port 547 gets the datagrams of every
//!   group its interface joined. The joins are held by small membership-only sockets of
//!   [`JOINS_PER_SOCKET`] groups each, so thousands of bridges never hit the kernel's
//!   per-socket option memory (`net.core.optmem_max`).
//! - Each datagram's bridge port comes from DHCPv4's capture (`virtnet_dhcp::Ingress`, one
//!   per served bridge): the socket reports the kernel's receive stamp (`SO_TIMESTAMPNS`),
//!   which pairs the datagram with the frame captured on the port; the engine charges the
//!   port (or, when no frame pairs, the source address).
//! - Serving a batch (up to [`MAX_BATCH`] datagrams already queued) runs on tokio's blocking
//!   pool: each bridge's share is one [`Engine::handle_ported`] (one store commit for its
//!   leases), and the lease sink waits until they are durable before the REPLYs are sent
//!   (unless they only extend held bindings: `Lease6Sink::record_extensions`).
//! - Per bridge the server keeps one [`Engine`]: no socket, task or buffer of its own.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use virtnet_sockets::iface::index_of as if_index;
use virtnet_sockets::SharedTask;

use crate::config::Dhcp6Config;
use crate::engine::{server_duid, Engine, PortId, Stats6};
use crate::lease::{Lease6, Lease6Sink};
use virtnet_dhcp::Ingress;

/// The server port.
pub const SERVER_PORT: u16 = 547;
/// The client port.
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers.
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// At most this many queued datagrams are served as one batch.
pub const MAX_BATCH: usize = 64;
/// How often expired leases are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Multicast groups joined per membership socket (each costs ~100 bytes of the socket's
/// option memory; `optmem_max` is 20-128 KiB).
pub const JOINS_PER_SOCKET: usize = 128;
/// Receive buffer asked for (a burst of guests booting together is queued, not dropped).
const RCVBUF: usize = 4 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One served bridge.
struct Entry {
    ifname: String,
    engine: Arc<Mutex<Engine>>,
    /// Names the bridge port of each datagram (DHCPv4's capture, shared); `None` when it
    /// could not be opened: every datagram is then charged to its source address.
    ingress: Option<Ingress>,
}

/// Sockets holding the bridges' ff02::1:2 memberships.
#[derive(Default)]
struct Joins {
    sockets: Vec<(Socket, usize)>,
    by_if: HashMap<u32, usize>,
}

impl Joins {
    fn join(&mut self, ifindex: u32) -> io::Result<()> {
        if self.by_if.contains_key(&ifindex) {
            return Ok(());
        }
        let slot = match self.sockets.iter().position(|(_, n)| *n < JOINS_PER_SOCKET) {
            Some(i) => i,
            None => {
                let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                self.sockets.push((s, 0));
                self.sockets.len() - 1
            }
        };
        let (sock, n) = &mut self.sockets[slot];
        sock.join_multicast_v6(&ALL_DHCP_SERVERS, ifindex)?;
        *n += 1;
        self.by_if.insert(ifindex, slot);
        Ok(())
    }

    fn leave(&mut self, ifindex: u32) {
        let Some(slot) = self.by_if.remove(&ifindex) else {
            return;
        };
        if let Some((sock, n)) = self.sockets.get_mut(slot) {
            // Fails only when the bridge is already gone, which dropped the group anyway.
            let _ = sock.leave_multicast_v6(&ALL_DHCP_SERVERS, ifindex);
            *n = n.saturating_sub(1);
        }
    }
}

struct Shared {
    socket: AsyncFd<Socket>,
    table: Mutex<HashMap<u32, Entry>>,
    joins: Mutex<Joins>,
}

/// The daemon's DHCPv6 server (see the module docs). Its socket and task start with the
/// first bridge served (inside a tokio runtime) and end when it is dropped.
#[derive(Default)]
pub struct Dhcp6Server {
    running: SharedTask<Shared>,
}

impl std::fmt::Debug for Dhcp6Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dhcp6Server")
            .field("bridges", &self.len())
            .finish()
    }
}

impl Dhcp6Server {
    /// A server with no bridge yet (and no socket).
    pub fn new() -> Dhcp6Server {
        Dhcp6Server::default()
    }

    fn shared(&self) -> io::Result<Arc<Shared>> {
        self.running.get_or_start(
            || {
                let socket = virtnet_sockets::readable(open_socket()?)?;
                Ok(Shared {
                    socket,
                    table: Mutex::new(HashMap::new()),
                    joins: Mutex::new(Joins::default()),
                })
            },
            run,
        )
    }

    fn existing(&self) -> Option<Arc<Shared>> {
        self.running.get()
    }

    /// Serves `config` on `bridge` from now on, starting from `leases` (replacing what the
    /// bridge served, if anything); lease changes go to `sink`. Must run inside a tokio
    /// runtime, in the network namespace of the bridge.
    pub fn serve(
        &self,
        bridge: &str,
        config: Dhcp6Config,
        leases: Vec<Lease6>,
        sink: Arc<dyn Lease6Sink>,
    ) -> io::Result<()> {
        let ifindex = if_index(bridge).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface '{bridge}' to serve DHCPv6 on"),
            )
        })?;
        let shared = self.shared()?;
        let mac = link_mac(shared.socket.get_ref().as_raw_fd(), bridge).unwrap_or_else(|| {
            // No MAC to read (not expected of a bridge): a stable locally administered one
            // from the bridge's name.
            let h = bridge
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
            let b = h.to_be_bytes();
            [0x02, 0, b[0], b[1], b[2], b[3]]
        });
        lock(&shared.joins).join(ifindex)?;
        let network = config.network.clone();
        let mut engine = Engine::new(config, server_duid(mac), leases, sink);
        engine.sweep(now());
        let ingress = Ingress::open(ifindex)
            .map_err(|e| {
                tracing::warn!(%network, %bridge, error = %e,
                    "no DHCP capture: DHCPv6 is charged per source address, not per port");
            })
            .ok();
        lock(&shared.table).insert(
            ifindex,
            Entry {
                ifname: bridge.to_string(),
                engine: Arc::new(Mutex::new(engine)),
                ingress,
            },
        );
        tracing::info!(%network, %bridge, "DHCPv6 server started");
        Ok(())
    }

    /// The index under which `bridge` is served (by name when the bridge is already gone).
    fn index_of(shared: &Shared, bridge: &str) -> Option<u32> {
        let table = lock(&shared.table);
        if let Some(i) = if_index(bridge).filter(|i| table.contains_key(i)) {
            return Some(i);
        }
        table
            .iter()
            .find(|(_, e)| e.ifname == bridge)
            .map(|(i, _)| *i)
    }

    fn engine(&self, bridge: &str) -> Option<Arc<Mutex<Engine>>> {
        let shared = self.existing()?;
        let i = Self::index_of(&shared, bridge)?;
        let table = lock(&shared.table);
        table.get(&i).map(|e| e.engine.clone())
    }

    /// Applies a changed configuration to `bridge`'s server, keeping its leases; false when
    /// the bridge is not served.
    pub fn reconfigure(&self, bridge: &str, config: Dhcp6Config) -> bool {
        match self.engine(bridge) {
            Some(e) => {
                lock(&e).reconfigure(config);
                true
            }
            None => false,
        }
    }

    /// Stops serving `bridge` (call it before the bridge goes). Leases stay in the store.
    pub fn withdraw(&self, bridge: &str) {
        let Some(shared) = self.existing() else {
            return;
        };
        let Some(i) = Self::index_of(&shared, bridge) else {
            return;
        };
        lock(&shared.table).remove(&i);
        lock(&shared.joins).leave(i);
    }

    /// The unexpired leases of `bridge`'s server; `None` when it is not served.
    pub fn leases(&self, bridge: &str) -> Option<Vec<Lease6>> {
        self.engine(bridge).map(|e| lock(&e).leases(now()))
    }

    /// The counters of `bridge`'s server.
    pub fn stats(&self, bridge: &str) -> Option<Stats6> {
        self.engine(bridge).map(|e| lock(&e).stats())
    }

    /// How many bridges are served.
    pub fn len(&self) -> usize {
        self.existing().map_or(0, |s| lock(&s.table).len())
    }

    /// True when no bridge is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `[::]:547`, IPv6 only, with the arrival interface of each datagram.
fn open_socket() -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    let on: libc::c_int = 1;
    setsockopt(
        s.as_raw_fd(),
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVPKTINFO,
        &on,
    )?;
    // The kernel's receive stamp pairs each datagram with its captured frame (the port).
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on)?;
    let size = libc::c_int::try_from(RCVBUF).unwrap_or(libc::c_int::MAX);
    if setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size).is_err() {
        // Without CAP_NET_ADMIN: the ordinary option, capped by net.core.rmem_max.
        let _ = s.set_recv_buffer_size(RCVBUF);
    }
    let addr = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0);
    s.bind(&addr.into())?;
    Ok(s)
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

/// The MAC address of `ifname` (`SIOCGIFHWADDR`).
fn link_mac(fd: RawFd, ifname: &str) -> Option<[u8; 6]> {
    // SAFETY: `ifreq` is plain old data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = ifname.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the name and writes the address into `req`, which we own.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so the union holds the hardware address.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    (mac != [0; 6]).then_some(mac)
}

/// A datagram as received: sender, arrival interface, bytes, and the bridge port it came in
/// on (set by [`read_batch`]).
struct Datagram {
    from: SocketAddrV6,
    ifindex: u32,
    bytes: Vec<u8>,
    /// The kernel's receive time (`SO_TIMESTAMPNS`), nanoseconds.
    stamp_ns: Option<u64>,
    port: PortId,
}

/// Reads one datagram with its `IPV6_PKTINFO`.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    // Room for an in6_pktinfo (40 bytes) and a timespec (32) control message, u64-aligned.
    let mut control = [0u64; 12];
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
    let mut ifindex = 0;
    let mut stamp_ns = None;
    // SAFETY: the CMSG_* walk stays within `msg.msg_control`/`msg_controllen`, which the
    // kernel filled; IPV6_PKTINFO's data is an in6_pktinfo, SCM_TIMESTAMPNS's a timespec,
    // both read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                ifindex = info.ipi6_ifindex;
            } else if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
                let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
                stamp_ns = Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
    Ok(Datagram {
        from: SocketAddrV6::new(
            Ipv6Addr::from(from.sin6_addr.s6_addr),
            u16::from_be(from.sin6_port),
            0,
            from.sin6_scope_id,
        ),
        ifindex,
        stamp_ns,
        port: PortId::Unknown,
        // A truncated datagram is handed on empty: it fails to decode and is counted.
        bytes: if truncated {
            Vec::new()
        } else {
            buf.get(..len).unwrap_or_default().to_vec()
        },
    })
}

/// The server's task: serves datagrams as they come and sweeps expired leases.
async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            ready = shared.socket.readable() => match ready {
                Ok(mut guard) => {
                    let batch = read_batch(&shared, &mut buf);
                    if batch.is_empty() {
                        guard.clear_ready();
                        continue;
                    }
                    let served = tokio::task::spawn_blocking(move || serve_batch(batch)).await;
                    match served {
                        Ok(replies) => send_all(&shared, &replies),
                        Err(e) => tracing::warn!(error = %e, "DHCPv6 batch did not complete; dropped"),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "DHCPv6 socket failed; DHCPv6 stops");
                    return;
                }
            },
            _ = tick.tick() => sweep_all(&shared).await,
        }
    }
}

/// The queued datagrams (up to [`MAX_BATCH`]) that arrived on a served bridge, with its
/// engine.
fn read_batch(shared: &Shared, buf: &mut [u8]) -> Vec<(Arc<Mutex<Engine>>, Datagram)> {
    let fd = shared.socket.get_ref().as_raw_fd();
    let mut out = Vec::new();
    let t = now();
    for _ in 0..MAX_BATCH {
        match recv(fd, buf) {
            Ok(mut d) => {
                // Not from a served bridge (the uplink, a tap, another bridge): dropped.
                if let Some(e) = lock(&shared.table).get(&d.ifindex) {
                    if let Some(ingress) = &e.ingress {
                        let from = std::net::SocketAddr::V6(d.from);
                        d.port = ingress.port_of(d.stamp_ns, Some(from), &d.bytes, t);
                    }
                    out.push((e.engine.clone(), d));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    tracing::debug!(error = %e, "DHCPv6 datagram not read");
                }
                break;
            }
        }
    }
    out
}

/// Serves a batch (on the blocking pool): each bridge's datagrams as one batch of its engine
/// (one store commit for their leases), the replies and where they go.
fn serve_batch(batch: Vec<(Arc<Mutex<Engine>>, Datagram)>) -> Vec<(SocketAddrV6, Vec<u8>)> {
    let t = now();
    let mut groups: Vec<(Arc<Mutex<Engine>>, Vec<Datagram>)> = Vec::new();
    for (engine, d) in batch {
        match groups.iter_mut().find(|(e, _)| Arc::ptr_eq(e, &engine)) {
            Some((_, ds)) => ds.push(d),
            None => groups.push((engine, vec![d])),
        }
    }
    let mut out = Vec::new();
    for (engine, datagrams) in groups {
        let items: Vec<(&[u8], Ipv6Addr, PortId)> = datagrams
            .iter()
            .map(|d| (d.bytes.as_slice(), *d.from.ip(), d.port))
            .collect();
        let replies = lock(&engine).handle_ported(t, &items);
        for (d, reply) in datagrams.iter().zip(replies) {
            let Some(reply) = reply else { continue };
            let port = if d.from.port() == 0 {
                CLIENT_PORT
            } else {
                d.from.port()
            };
            // Back to the sender, on the bridge it came from.
            out.push((
                SocketAddrV6::new(*d.from.ip(), port, 0, d.ifindex),
                reply.into_bytes(),
            ));
        }
    }
    out
}

fn send_all(shared: &Shared, replies: &[(SocketAddrV6, Vec<u8>)]) {
    for (to, bytes) in replies {
        if let Err(e) = shared.socket.get_ref().send_to(bytes, &SockAddr::from(*to)) {
            tracing::debug!(%to, error = %e, "DHCPv6 reply not sent");
        }
    }
}

/// Sweeps every bridge's engine; recording expiries may wait for the store, so those run
/// on the blocking pool.
async fn sweep_all(shared: &Arc<Shared>) {
    let t = now();
    let engines: Vec<Arc<Mutex<Engine>>> = lock(&shared.table)
        .values()
        .map(|e| e.engine.clone())
        .collect();
    let mut due = Vec::new();
    for e in engines {
        if lock(&e).sweep_records(t) {
            due.push(e);
        } else {
            lock(&e).sweep(t);
        }
    }
    if due.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for e in due {
            lock(&e).sweep(t);
        }
    })
    .await;
}
