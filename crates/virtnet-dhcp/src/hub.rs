//! One DHCPv4 socket per network namespace, shared by every network's server there.
//!
//! The hub owns the namespace's UDP socket on 0.0.0.0:67 (`socket::bind_shared`) and the
//! servers registered on it, keyed by their bridge's interface index. One task reads the
//! socket; each datagram's arrival interface (`IP_PKTINFO`) chooses the server: the one of
//! the bridge it arrived on. A datagram that arrived on any other interface (an uplink, a
//! bridge virtnet does not serve, a port, loopback) or without its interface is dropped
//! unread and counted ([`foreign_datagrams`]): the kernel delivers broadcasts to port 67 from
//! every interface to a socket bound to none, so this check is what keeps each network's
//! server to its own bridge, where SO_BINDTODEVICE did before.
//!
//! The datagram's ingress port is taken from the shared capture at once (`ingress.rs`: it
//! needs the kernel's receive stamp), and the datagram is queued for its network. A network
//! with queued datagrams has one worker task, which serves them in batches of at most
//! [`MAX_BATCH`] on tokio's blocking pool (one store commit per batch; see the crate docs),
//! then sends the replies with `IP_PKTINFO` naming the bridge, so they leave where the request
//! came in. Workers of different networks run side by side (their commits still group in
//! the daemon's lease writer); one network's datagrams are served in arrival order. An idle
//! network has no task, no descriptor and no buffer: its server is the engine and a queue.
//!
//! Queues are bounded ([`QUEUE_PER_NETWORK`], [`QUEUE_TOTAL`]); past the bound a datagram
//! is dropped as the full socket buffer dropped it before (clients retry). The hub task also
//! sweeps every engine every [`SWEEP_INTERVAL`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::DhcpError;
use crate::ingress::{netns_id, recv_stamped, Ingress, NetnsId};
use crate::ratelimit::PortId;
use crate::reply::{Destination, Reply};
use crate::server::Engine;
use crate::socket::{
    bind_shared, lock, now, send_on, CLIENT_PORT, MAX_BATCH, RECV_BUF, SWEEP_INTERVAL,
};

/// At most this many datagrams wait for one network's engine.
pub(crate) const QUEUE_PER_NETWORK: usize = 1024;
/// At most this many datagrams wait in all queues of a namespace together.
pub(crate) const QUEUE_TOTAL: usize = 8192;
/// At most this many datagrams are read per wake-up before the task yields (the sweep and
/// other tasks get their turn during a flood).
const READ_PER_WAKE: usize = 1024;

/// Datagrams dropped because they arrived on an interface that is not a served bridge, by
/// every hub of this process.
static FOREIGN: AtomicU64 = AtomicU64::new(0);

/// How many datagrams the DHCP sockets of this process dropped because they arrived on an
/// interface that is no running network's bridge (or with no interface named), since the
/// process started.
pub fn foreign_datagrams() -> u64 {
    FOREIGN.load(Ordering::Relaxed)
}

/// The hubs of this process, by network namespace.
static HUBS: Mutex<Vec<(NetnsId, Weak<Hub>)>> = Mutex::new(Vec::new());

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One network's place on the hub.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) engine: Arc<Mutex<Engine>>,
    ingress: Ingress,
    pub(crate) bridge: String,
    ifindex: u32,
    queue: Mutex<Queue>,
    /// Told when a worker stops being busy (a stop waits for it).
    idle: Condvar,
    /// False once the server stopped; held while a reply is sent, so that none leaves after
    /// the stop returned.
    live: Mutex<bool>,
}

/// Datagrams waiting for a network's engine, each with its ingress port.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<(Vec<u8>, PortId)>,
    /// A worker is serving this queue.
    busy: bool,
}

/// The namespace's DHCP socket and the servers on it.
#[derive(Debug)]
pub(crate) struct Hub {
    sock: std::net::UdpSocket,
    servers: Mutex<Servers>,
    /// Wakes the task to sweep every engine now (after a reconfiguration).
    sweep: Arc<Notify>,
    /// Datagrams queued in all slots.
    queued: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Servers {
    /// Bridge index → its servers, newest last (the newest one serves; two servers on one
    /// bridge exist only while one replaces the other).
    by_bridge: HashMap<u32, Vec<Arc<Slot>>>,
    task: Option<JoinHandle<()>>,
}

impl Hub {
    /// The hub of the calling thread's namespace, opened if this process has none there yet,
    /// with its task running on the current tokio runtime. `bridge` names the starting
    /// network in errors.
    pub(crate) fn get(bridge: &str) -> Result<Arc<Hub>, DhcpError> {
        let sock_err = |op: &'static str| {
            let bridge = bridge.to_string();
            move |source: io::Error| DhcpError::Socket { bridge, op, source }
        };
        let ns = netns_id().map_err(sock_err("read /proc/thread-self/ns/net"))?;
        let hub = {
            let mut all = guard(&HUBS);
            all.retain(|(_, w)| w.strong_count() > 0);
            match all
                .iter()
                .find(|(id, _)| *id == ns)
                .and_then(|(_, w)| w.upgrade())
            {
                Some(h) => h,
                None => {
                    let h = Arc::new(Hub {
                        sock: bind_shared(bridge)?,
                        servers: Mutex::new(Servers::default()),
                        sweep: Arc::new(Notify::new()),
                        queued: Arc::new(AtomicUsize::new(0)),
                    });
                    all.push((ns, Arc::downgrade(&h)));
                    h
                }
            }
        };
        let mut servers = guard(&hub.servers);
        // (Re)started on this runtime when none runs: the runtime that started it may have
        // ended (tests run one per server).
        if servers.task.as_ref().is_none_or(JoinHandle::is_finished) {
            let dup = hub
                .sock
                .try_clone()
                .map(OwnedFd::from)
                .map_err(sock_err("dup the DHCP socket"))?;
            servers.task = Some(tokio::spawn(run(
                Arc::downgrade(&hub),
                dup,
                hub.sweep.clone(),
                hub.queued.clone(),
            )));
        }
        drop(servers);
        Ok(hub)
    }

    /// The interface index of `bridge` (asked on the hub's socket: no descriptor of its own).
    pub(crate) fn ifindex(&self, bridge: &str) -> Result<u32, DhcpError> {
        crate::socket::ifindex(&self.sock, bridge)
    }

    /// Registers a server for the bridge `ifindex`.
    pub(crate) fn register(
        &self,
        engine: Arc<Mutex<Engine>>,
        ingress: Ingress,
        bridge: &str,
        ifindex: u32,
    ) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            engine,
            ingress,
            bridge: bridge.to_string(),
            ifindex,
            queue: Mutex::new(Queue::default()),
            idle: Condvar::new(),
            live: Mutex::new(true),
        });
        guard(&self.servers)
            .by_bridge
            .entry(ifindex)
            .or_default()
            .push(slot.clone());
        slot
    }

    /// Takes `slot` off the hub: nothing more is queued for it, what is queued is dropped,
    /// and no reply of it is sent once this returns. Waits (up to `wait`, unless `wait` is
    /// `None`) for a batch being served to end.
    pub(crate) fn unregister(&self, slot: &Arc<Slot>, wait: Option<Duration>) {
        {
            let mut servers = guard(&self.servers);
            if let Some(v) = servers.by_bridge.get_mut(&slot.ifindex) {
                v.retain(|s| !Arc::ptr_eq(s, slot));
                if v.is_empty() {
                    servers.by_bridge.remove(&slot.ifindex);
                }
            }
        }
        *guard(&slot.live) = false;
        let mut q = guard(&slot.queue);
        let dropped = q.items.len();
        q.items.clear();
        self.queued.fetch_sub(dropped, Ordering::Relaxed);
        if let Some(wait) = wait {
            let (q, timeout) = slot
                .idle
                .wait_timeout_while(q, wait, |q| q.busy)
                .unwrap_or_else(|e| e.into_inner());
            drop(q);
            if timeout.timed_out() {
                tracing::warn!(bridge = %slot.bridge, "DHCP batch still being served at stop");
            }
        }
    }

    /// Wakes the task to sweep every engine.
    pub(crate) fn sweep_soon(&self) {
        self.sweep.notify_one();
    }

    /// The server of the bridge `ifindex`.
    fn slot(&self, ifindex: u32) -> Option<Arc<Slot>> {
        guard(&self.servers)
            .by_bridge
            .get(&ifindex)
            .and_then(|v| v.last().cloned())
    }

    /// Every registered server.
    fn slots(&self) -> Vec<Arc<Slot>> {
        guard(&self.servers)
            .by_bridge
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Queues one received datagram for the network of the bridge it arrived on (dropped when
    /// that is no served bridge); a network that now needs a worker is pushed on `start`.
    fn dispatch(
        &self,
        datagram: &[u8],
        r: &crate::ingress::Received,
        t: u64,
        start: &mut Vec<Arc<Slot>>,
    ) {
        let Some(slot) = r.ifindex.and_then(|i| self.slot(i)) else {
            FOREIGN.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(ifindex = ?r.ifindex, from = ?r.from, "DHCP datagram not from a served bridge; dropped");
            return;
        };
        let port = slot.ingress.port_of(
            r.stamp_ns,
            r.from.map(std::net::SocketAddr::V4),
            datagram,
            t,
        );
        let mut q = guard(&slot.queue);
        if q.items.len() >= QUEUE_PER_NETWORK || self.queued.load(Ordering::Relaxed) >= QUEUE_TOTAL
        {
            tracing::debug!(bridge = %slot.bridge, "DHCP queue full; datagram dropped");
            return;
        }
        q.items.push_back((datagram.to_vec(), port));
        self.queued.fetch_add(1, Ordering::Relaxed);
        if !q.busy {
            q.busy = true;
            drop(q);
            start.push(slot);
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(task) = guard(&self.servers).task.take() {
            task.abort();
        }
    }
}

/// Reads the hub's socket and sweeps its engines until the hub is gone (its `Drop` aborts
/// this task). `sock` is a duplicate of the hub's socket, registered with this runtime.
async fn run(hub: Weak<Hub>, sock: OwnedFd, sweep: Arc<Notify>, queued: Arc<AtomicUsize>) {
    // SAFETY: the OwnedFd is moved into the AsyncFd and owns the descriptor until the
    // AsyncFd drops it, so it stays open and the same for the registration's lifetime.
    let registered =
        unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE) };
    let io = match registered.map_err(io::Error::from) {
        Ok(io) => Arc::new(io),
        Err(e) => {
            tracing::error!(error = %e, "DHCP socket cannot be watched; DHCP is not served");
            return;
        }
    };
    let mut buf = vec![0u8; RECV_BUF];
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(h) = hub.upgrade() else { return };
                sweep_all(h.slots()).await;
            }
            _ = sweep.notified() => {
                let Some(h) = hub.upgrade() else { return };
                sweep_all(h.slots()).await;
            }
            r = io.readable() => {
                let mut ready = match r {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "DHCP receive failed; continuing");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(h) = hub.upgrade() else { return };
                let t = now();
                let mut start = Vec::new();
                for _ in 0..READ_PER_WAKE {
                    let got = ready.try_io(|fd| recv_stamped(fd.as_raw_fd(), &mut buf));
                    let r = match got {
                        Ok(Ok(r)) => r,
                        // Drained: readiness cleared.
                        Err(_) => break,
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "DHCP receive failed; continuing");
                            break;
                        }
                    };
                    let Some(datagram) = buf.get(..r.len) else { continue };
                    h.dispatch(datagram, &r, t, &mut start);
                }
                drop(h);
                for slot in start {
                    tokio::spawn(serve(slot, io.clone(), queued.clone()));
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Serves a network's queue until it is empty, [`MAX_BATCH`] datagrams at a time, each batch
/// with one store commit before its replies leave.
async fn serve(slot: Arc<Slot>, io: Arc<AsyncFd<OwnedFd>>, queued: Arc<AtomicUsize>) {
    loop {
        let datagrams: Vec<(Vec<u8>, PortId)> = {
            let mut q = guard(&slot.queue);
            let n = q.items.len().min(MAX_BATCH);
            if n == 0 {
                q.busy = false;
                slot.idle.notify_all();
                return;
            }
            q.items.drain(..n).collect()
        };
        queued.fetch_sub(datagrams.len(), Ordering::Relaxed);
        let t = now();
        let replies = off_runtime(&slot.engine, move |engine| {
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
            send(&io, &slot, &reply).await;
        }
    }
}

/// Sweeps every engine: a busy one (serving a batch) is left for the next round. An engine
/// with an expired lease sweeps on tokio's blocking pool (recording it may wait for the
/// store), the others right here (memory only): with thousands of idle networks, a trip to
/// the blocking pool each would keep dozens of its threads alive for nothing.
async fn sweep_all(slots: Vec<Arc<Slot>>) {
    let t = now();
    for slot in slots {
        let records = {
            let mut e = match slot.engine.try_lock() {
                Ok(e) => e,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            if e.sweep_records(t) {
                true
            } else {
                e.sweep(t);
                false
            }
        };
        if records {
            off_runtime(&slot.engine, move |e| {
                e.sweep(t);
            })
            .await;
        }
    }
}

/// Runs `f` on the locked engine on tokio's blocking pool, not on an async worker: serving a
/// batch and sweeping record lease changes through the [`crate::LeaseSink`], which waits
/// until they are durable (an fsync). The caller awaits the result, so a network's batches
/// stay in order and the replies still leave only after the commit. `None` when `f`
/// panicked (the batch is dropped, unanswered: its clients retry) or the runtime is shutting
/// down.
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

/// What one send attempt did.
enum Sent {
    Done,
    /// The socket's send buffer is full: wait until it is writable.
    Full,
}

/// Encodes and sends one reply out of the slot's bridge, unless the server has stopped;
/// failures are logged (the client retries).
async fn send(io: &AsyncFd<OwnedFd>, slot: &Slot, reply: &Reply) {
    let bytes = match reply.encode() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(bridge = %slot.bridge, error = %e, "cannot encode DHCP reply");
            return;
        }
    };
    let to = match reply.dest {
        Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        Destination::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
    };
    loop {
        let attempt = {
            let live = guard(&slot.live);
            if !*live {
                return;
            }
            match send_on(io.get_ref().as_raw_fd(), &bytes, to, slot.ifindex) {
                Ok(()) => Sent::Done,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Sent::Full,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(bridge = %slot.bridge, %to, error = %e, "DHCP send failed; continuing");
                    Sent::Done
                }
            }
        };
        match attempt {
            Sent::Done => return,
            Sent::Full => match io.writable().await {
                Ok(mut g) => g.clear_ready(),
                Err(e) => {
                    tracing::warn!(bridge = %slot.bridge, error = %e, "DHCP send failed; continuing");
                    return;
                }
            },
        }
    }
}
