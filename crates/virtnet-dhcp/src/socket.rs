//! The network side: one UDP socket on port 67 bound to the bridge, the receive loop (each
//! datagram paired with its ingress port by `ingress.rs`) and the periodic expiry sweep.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};

use crate::error::DhcpError;
use crate::ingress::{recv_stamped, Ingress};
use crate::reply::Destination;
use crate::server::Engine;

/// DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// How often expired leases are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// At most this many datagrams already queued on the socket are served as one batch (one
/// store commit for their leases).
pub const MAX_BATCH: usize = 64;
/// Receive buffer asked for the DHCP socket. The default (`net.core.rmem_default`, ~208 KiB)
/// holds only ~100-200 DHCP datagrams (each costs its skb's truesize, 1-2 KiB, not its ~300
/// bytes), so 256 guests booting at once overflowed it and lost DISCOVERs and RELEASEs. The
/// memory is only used while datagrams wait.
pub const RCVBUF: usize = 4 << 20;

/// Receive buffer for one datagram (a DHCP message is at most 576 bytes unless the client
/// allows more; longer ones are cut and fail to decode).
const RECV_BUF: usize = 4096;

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Locks the engine even if a panic poisoned the mutex (the state is still consistent: every
/// change is applied under the lock in one step).
pub(crate) fn lock(m: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens 0.0.0.0:67 bound to `bridge` (SO_BINDTODEVICE), with SO_REUSEADDR, SO_BROADCAST and
/// SO_TIMESTAMPNS (the kernel's receive time pairs a datagram with its frame), and a receive
/// buffer of [`RCVBUF`] (SO_RCVBUFFORCE when permitted, else SO_RCVBUF, which
/// the kernel caps at `net.core.rmem_max`). Several networks bind port 67 this way in one
/// namespace, each on its own bridge.
pub fn bind(bridge: &str) -> Result<std::net::UdpSocket, DhcpError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |op: &'static str| {
        let bridge = bridge.to_string();
        move |source: io::Error| DhcpError::Socket { bridge, op, source }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("socket(AF_INET, SOCK_DGRAM)"))?;
    s.set_reuse_address(true)
        .map_err(err("setsockopt(SO_REUSEADDR)"))?;
    s.set_broadcast(true)
        .map_err(err("setsockopt(SO_BROADCAST)"))?;
    s.bind_device(Some(bridge.as_bytes())).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            DhcpError::NoSuchBridge {
                bridge: bridge.to_string(),
                source: e,
            }
        } else {
            err("setsockopt(SO_BINDTODEVICE)")(e)
        }
    })?;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on our own descriptor with a valid c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(err("setsockopt(SO_TIMESTAMPNS)")(io::Error::last_os_error()));
    }
    set_rcvbuf(&s, RCVBUF);
    s.set_nonblocking(true).map_err(err("fcntl(O_NONBLOCK)"))?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    s.bind(&addr.into()).map_err(err("bind(0.0.0.0:67)"))?;
    Ok(s.into())
}

/// The interface index of `bridge`, asked on the DHCP socket itself (`SIOCGIFINDEX`): no
/// descriptor of its own, where glibc's `if_nametoindex` opens one, and at the open-file limit
/// failed with a misleading `ENOENT`.
pub(crate) fn ifindex(sock: &std::net::UdpSocket, bridge: &str) -> Result<u32, DhcpError> {
    let no_such = |source| DhcpError::NoSuchBridge {
        bridge: bridge.to_string(),
        source,
    };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = bridge.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return Err(no_such(io::Error::from_raw_os_error(libc::ENODEV)));
    }
    for (dst, &b) in req.ifr_name.iter_mut().zip(name) {
        *dst = b as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads the NUL-terminated name and writes the index into `req`,
    // which lives for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
    if rc != 0 {
        return Err(no_such(io::Error::last_os_error()));
    }
    // SAFETY: after a successful SIOCGIFINDEX the union holds the index.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index)
        .ok()
        .filter(|&i| i != 0)
        .ok_or_else(|| no_such(io::Error::from_raw_os_error(libc::ENODEV)))
}

/// Asks for a receive buffer of `bytes`: SO_RCVBUFFORCE (needs CAP_NET_ADMIN, ignores
/// `net.core.rmem_max`), else SO_RCVBUF. Best effort: a smaller buffer still works.
pub fn set_rcvbuf(s: &socket2::Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on our own descriptor with a valid c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        if let Err(e) = s.set_recv_buffer_size(bytes) {
            tracing::debug!(error = %e, "setsockopt(SO_RCVBUF) failed; default buffer");
        }
    }
}

/// What the loop needs.
pub(crate) struct Loop {
    pub(crate) sock: UdpSocket,
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) ingress: Ingress,
    pub(crate) stop: oneshot::Receiver<()>,
    pub(crate) sweep: Arc<Notify>,
    pub(crate) bridge: String,
    /// Told when the socket has been closed.
    pub(crate) closed: std::sync::mpsc::Sender<()>,
}

impl Loop {
    pub(crate) async fn run(self) {
        let Loop {
            sock,
            engine,
            ingress,
            mut stop,
            sweep,
            bridge,
            closed,
        } = self;
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => sweep_engine(&engine).await,
                _ = sweep.notified() => sweep_engine(&engine).await,
                r = sock.readable() => {
                    if let Err(e) = r {
                        tracing::warn!(%bridge, error = %e, "DHCP receive failed; continuing");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    let t = now();
                    // Group commit: the datagrams already queued (up to MAX_BATCH, no waiting
                    // for more), each charged to its ingress port, served as one batch with
                    // one store commit; the replies leave after it.
                    let mut datagrams = Vec::new();
                    // Only while datagrams are read: an idle network holds no buffer.
                    let mut buf = vec![0u8; RECV_BUF];
                    for _ in 0..MAX_BATCH {
                        let got = sock.try_io(Interest::READABLE, || {
                            recv_stamped(sock.as_raw_fd(), &mut buf)
                        });
                        let r = match got {
                            Ok(r) => r,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                tracing::warn!(%bridge, error = %e, "DHCP receive failed; continuing");
                                break;
                            }
                        };
                        let Some(datagram) = buf.get(..r.len) else { continue };
                        let port = ingress.port_of(r.stamp_ns, r.from, datagram, t);
                        datagrams.push((datagram.to_vec(), port));
                    }
                    if datagrams.is_empty() {
                        continue;
                    }
                    let replies = off_runtime(&engine, move |engine| {
                        let batch: Vec<_> = datagrams
                            .iter()
                            .filter_map(|(d, port)| engine.accept_datagram(d, |_| *port))
                            .collect();
                        if batch.is_empty() {
                            return Vec::new();
                        }
                        engine.serve_batch(t, &batch)
                    })
                    .await
                    .unwrap_or_default();
                    for reply in replies.into_iter().flatten() {
                        send(&sock, &bridge, &reply).await;
                    }
                }
            }
        }
        drop(sock);
        let _ = closed.send(());
    }
}

/// Sweeps the engine: on tokio's blocking pool when a lease expired (recording it may wait
/// for the store), else right here. Every network sweeps every [`SWEEP_INTERVAL`]; with
/// thousands of idle networks, a trip to the blocking pool each time kept dozens of its
/// threads (their stacks and malloc arenas) alive for nothing.
async fn sweep_engine(engine: &Arc<Mutex<Engine>>) {
    let t = now();
    {
        let mut e = lock(engine);
        if !e.sweep_records(t) {
            // No lease to remove, so nothing is recorded: memory only.
            e.sweep(t);
            return;
        }
    }
    off_runtime(engine, move |e| {
        e.sweep(t);
    })
    .await;
}

/// Runs `f` on the locked engine on tokio's blocking pool, not on an async worker: serving a
/// batch and sweeping record lease changes through the [`crate::LeaseSink`], which waits
/// until they are durable (an fsync). The loop awaits the result, so its batches stay in
/// order and the replies still leave only after the commit. `None` when `f` panicked (the
/// batch is dropped, unanswered: its clients retry) or the runtime is shutting down.
async fn off_runtime<T: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    f: impl FnOnce(&mut Engine) -> T + Send + 'static,
) -> Option<T> {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || f(&mut lock(&engine))).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "DHCP batch did not complete; dropped");
            None
        }
    }
}

/// Encodes and sends one reply; failures are logged (the client retries).
async fn send(sock: &UdpSocket, bridge: &str, reply: &crate::reply::Reply) {
    let bytes = match reply.encode() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%bridge, error = %e, "cannot encode DHCP reply");
            return;
        }
    };
    let to = match reply.dest {
        Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        Destination::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
    };
    if let Err(e) = sock.send_to(&bytes, to).await {
        tracing::warn!(%bridge, %to, error = %e, "DHCP send failed; continuing");
    }
}
