//! The network side: one UDP socket on port 67 bound to the bridge, the receive loop, the
//! FDB port cache and the periodic expiry sweep.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};

use crate::error::DhcpError;
use crate::netlink::Neigh;
use crate::ratelimit::PortId;
use crate::reply::Destination;
use crate::server::Engine;

/// DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// How often expired leases are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How long a MAC → port answer from the FDB is reused.
const PORT_CACHE_SECS: u64 = 10;
/// At most this many MACs are cached (a flood of random MACs cannot grow it further).
const PORT_CACHE_MAX: usize = 4096;

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

/// Opens 0.0.0.0:67 bound to `bridge` (SO_BINDTODEVICE), with SO_REUSEADDR and SO_BROADCAST.
/// Several networks bind port 67 this way in one namespace, each on its own bridge.
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
    s.bind_device(Some(bridge.as_bytes()))
        .map_err(err("setsockopt(SO_BINDTODEVICE)"))?;
    s.set_nonblocking(true).map_err(err("fcntl(O_NONBLOCK)"))?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    s.bind(&addr.into()).map_err(err("bind(0.0.0.0:67)"))?;
    Ok(s.into())
}

/// MAC → bridge port, from the FDB, cached briefly.
#[derive(Debug)]
pub(crate) struct PortCache {
    nl: Neigh,
    bridge: u32,
    map: HashMap<[u8; 6], (PortId, u64)>,
}

impl PortCache {
    pub(crate) fn new(nl: Neigh, bridge: u32) -> PortCache {
        PortCache {
            nl,
            bridge,
            map: HashMap::new(),
        }
    }

    pub(crate) fn lookup(&mut self, mac: &[u8; 6], now: u64) -> PortId {
        if let Some(&(port, until)) = self.map.get(mac) {
            if until > now {
                return port;
            }
        }
        let port = match self.nl.fdb_port(self.bridge, mac) {
            Ok(Some(ifindex)) => PortId::Port(ifindex),
            Ok(None) => PortId::Unknown,
            Err(e) => {
                tracing::debug!(error = %e, "FDB lookup failed");
                PortId::Unknown
            }
        };
        if self.map.len() >= PORT_CACHE_MAX {
            self.map.retain(|_, (_, until)| *until > now);
            if self.map.len() >= PORT_CACHE_MAX {
                self.map.clear();
            }
        }
        self.map.insert(*mac, (port, now + PORT_CACHE_SECS));
        port
    }
}

/// What the loop needs.
pub(crate) struct Loop {
    pub(crate) sock: UdpSocket,
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) ports: PortCache,
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
            mut ports,
            mut stop,
            sweep,
            bridge,
            closed,
        } = self;
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => { lock(&engine).sweep(now()); }
                _ = sweep.notified() => { lock(&engine).sweep(now()); }
                r = sock.recv_from(&mut buf) => {
                    let n = match r {
                        Ok((n, _from)) => n,
                        Err(e) => {
                            tracing::warn!(%bridge, error = %e, "DHCP receive failed; continuing");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Some(datagram) = buf.get(..n) else { continue };
                    let t = now();
                    let reply = lock(&engine)
                        .handle_datagram(t, datagram, |mac| ports.lookup(mac, t));
                    let Some(reply) = reply else { continue };
                    let bytes = match reply.encode() {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::warn!(%bridge, error = %e, "cannot encode DHCP reply");
                            continue;
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
            }
        }
        drop(sock);
        let _ = closed.send(());
    }
}
