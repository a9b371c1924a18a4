//! The running server: one UDP and one TCP task per listen address, forwarding tasks, live
//! reconfiguration and statistics.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::batch::UdpBatch;
use crate::config::DnsConfig;
use crate::error::DnsError;
use crate::forward::{forward, UPSTREAM_TIMEOUT};
use crate::handle::{formerr, handle_query, servfail, Outcome, ReplyCache, Served, Transport};
use crate::histogram::{Histogram, HistogramSnapshot};
use crate::listen::{bind_tcp, bind_udp, BatchIo};
use crate::query_stats::{qtype_slot, QueryCounts};
use crate::resolve::{GuestName, Zone};
use virtnet_sockets::Slot;

/// Forwarded queries in flight at once; further queries needing an upstream are dropped (the
/// client retries), so a flooding guest cannot exhaust sockets or memory.
const MAX_FORWARDS: usize = 256;
/// TCP connections served at once; further connections are closed at once.
const MAX_TCP: usize = 64;
/// A TCP connection idle (or slow to send a whole message) this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Messages received (UDP datagrams and TCP messages), including malformed ones.
    pub queries: u64,
    /// Answered from local data, including NXDOMAIN for local-only domains and plain names.
    pub answered_local: u64,
    /// Sent upstream (whatever the upstream then answered, or SERVFAIL on timeout).
    pub forwarded: u64,
    /// Answered REFUSED or NOTIMP, or dropped because too many forwards were in flight.
    pub refused: u64,
    /// Not a valid query: answered FORMERR or dropped.
    pub malformed: u64,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    answered_local: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    /// By question type and response code.
    by_type: QueryCounts,
    /// How long forwarded queries took, to the upstream's answer or the timeout.
    forward_latency: Histogram,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    zone: RwLock<Arc<Zone>>,
    inputs: Mutex<(DnsConfig, Vec<GuestName>)>,
    counters: Counters,
    /// The server's own addresses: never used as upstreams.
    exclude: Vec<SocketAddr>,
    forwards: Arc<Semaphore>,
    tcp: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
    upstream_timeout: Duration,
}

impl Shared {
    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn rebuild(&self, f: impl FnOnce(&mut (DnsConfig, Vec<GuestName>))) {
        let mut inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inputs);
        let zone = Arc::new(Zone::new(&inputs.0, &inputs.1));
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = zone;
    }

    /// Resolves when the server is stopping.
    async fn stopping(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The DNS server of one network.
pub struct DnsServer {
    shared: Arc<Shared>,
    udp: Vec<Arc<Slot<UdpSocket>>>,
    tcp: Vec<Arc<Slot<TcpListener>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("exclude", &self.shared.exclude)
            .field("stats", &self.stats())
            .finish()
    }
}

impl DnsServer {
    /// Binds UDP and TCP port `port` on each address of `listen` (the network's gateway
    /// addresses; a wildcard address is refused), on the interface `device` (the network's
    /// bridge: queries arriving on any other interface, say the uplink, never reach the
    /// server), and starts serving on the current tokio runtime.
    ///
    /// Synchronous; must be called inside a tokio runtime context (the tasks are spawned with
    /// `Handle::current()`). Either every socket binds or none stays open.
    pub fn start(
        config: DnsConfig,
        device: Option<&str>,
        listen: &[IpAddr],
        port: u16,
    ) -> Result<DnsServer, DnsError> {
        Self::start_with_timeout(config, device, listen, port, UPSTREAM_TIMEOUT)
    }

    pub(crate) fn start_with_timeout(
        config: DnsConfig,
        device: Option<&str>,
        listen: &[IpAddr],
        port: u16,
        upstream_timeout: Duration,
    ) -> Result<DnsServer, DnsError> {
        let handle = Handle::try_current().map_err(|e| DnsError::NoRuntime(e.to_string()))?;
        if listen.is_empty() {
            return Err(DnsError::NoListenAddress);
        }
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for ip in listen {
            let sa = SocketAddr::new(*ip, port);
            if !addrs.contains(&sa) {
                addrs.push(sa);
            }
        }
        // Sockets are created inside the runtime context so they register with its reactor.
        let _guard = handle.enter();
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &addrs {
            udp.push(Arc::new(Slot::new(bind_udp(*addr, device)?)));
            tcp.push(Arc::new(Slot::new(bind_tcp(*addr, device)?)));
        }
        let zone = Arc::new(Zone::new(&config, &[]));
        let shared = Arc::new(Shared {
            zone: RwLock::new(zone),
            inputs: Mutex::new((config, Vec::new())),
            counters: Counters::default(),
            exclude: addrs.clone(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tcp: Arc::new(Semaphore::new(MAX_TCP)),
            shutdown: watch::Sender::new(false),
            upstream_timeout,
        });
        let mut tasks = Vec::new();
        for slot in &udp {
            tasks.push(handle.spawn(serve_udp(shared.clone(), slot.clone())));
        }
        for slot in &tcp {
            tasks.push(handle.spawn(serve_tcp(shared.clone(), slot.clone())));
        }
        tracing::info!(listen = ?addrs, ?device, "dns: serving");
        Ok(DnsServer {
            shared,
            udp,
            tcp,
            tasks,
        })
    }

    /// Replaces the network's records and forwarding (live `net-update` of dns-host, dns-srv,
    /// dns-txt, forwarders); the lease-derived names are kept. Listen addresses do not change.
    pub fn reconfigure(&self, config: DnsConfig) {
        self.shared.rebuild(|inputs| inputs.0 = config);
    }

    /// Replaces the names learnt from DHCP leases.
    pub fn set_guests(&self, guests: Vec<GuestName>) {
        self.shared.rebuild(|inputs| inputs.1 = guests);
    }

    /// Counters since start.
    pub fn stats(&self) -> DnsStats {
        let c = &self.shared.counters;
        DnsStats {
            queries: c.queries.load(Ordering::Relaxed),
            answered_local: c.answered_local.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }

    /// Queries by question type and response code (`"none"`: no answer was sent), the
    /// non-zero counters only; a forwarded query is counted when its answer is sent.
    pub fn query_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.shared.counters.by_type.read()
    }

    /// Latency of the forwarded queries (to the upstream's answer, or the timeout).
    pub fn forward_latency(&self) -> HistogramSnapshot {
        self.shared.counters.forward_latency.snapshot()
    }

    /// Stops serving. The listening sockets are closed when this returns (so the same addresses
    /// can be bound again at once); in-flight forwards and TCP connections end at their next
    /// wake-up. Dropping the server does the same.
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        self.shared.shutdown.send_replace(true);
        for s in &self.udp {
            s.close();
        }
        for s in &self.tcp {
            s.close();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One UDP socket: each time it is readable, takes every queued datagram (up to [`crate::batch::BATCH`] per
/// `recvmmsg`), answers the local ones from the reply cache into reused buffers, sends those
/// replies with one `sendmmsg`, and hands the queries that need an upstream to tasks of their
/// own (which reply with their own `sendto`). The batch's buffers are borrowed from the
/// runtime thread's spare list for that burst only: a network nobody asks holds none.
async fn serve_udp(shared: Arc<Shared>, slot: Arc<Slot<UdpSocket>>) {
    let mut cache = ReplyCache::new();
    loop {
        if slot.readable().await.is_none() {
            return;
        }
        let mut batch = UdpBatch::take();
        let open = serve_burst(&shared, &slot, &mut cache, &mut batch).await;
        UdpBatch::give_back(batch);
        if !open {
            return;
        }
    }
}

/// Receives one batch of queued datagrams, answers them and sends the replies; `false` once
/// the slot is closed.
async fn serve_burst(
    shared: &Arc<Shared>,
    slot: &Arc<Slot<UdpSocket>>,
    cache: &mut ReplyCache,
    batch: &mut UdpBatch,
) -> bool {
    match slot.try_recv_batch(batch) {
        None => return false,
        Some(Ok(_)) => {}
        Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "dns: udp receive failed");
            return true;
        }
    }
    answer_batch(shared, slot, cache, batch);
    batch.queue_replies();
    while !batch.all_sent() {
        match slot.try_send_batch(batch) {
            None => return false,
            Some(Ok(_)) => {}
            Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if slot.writable().await.is_none() {
                    return false;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "dns: udp send failed");
                batch.skip_one();
            }
        }
    }
    true
}

/// Answers the datagrams of `batch` (replies left in the batch) and starts their forwards;
/// the counters are updated once per batch, before any reply leaves.
fn answer_batch(
    shared: &Arc<Shared>,
    slot: &Arc<Slot<UdpSocket>>,
    cache: &mut ReplyCache,
    batch: &mut UdpBatch,
) {
    let zone = shared.zone();
    let (mut local, mut forwarded, mut refused, mut malformed) = (0, 0, 0, 0);
    let n = batch.len();
    for i in 0..n {
        let (bytes, truncated, reply) = batch.datagram(i);
        let qtype = qtype_slot(bytes);
        if truncated {
            malformed += 1;
            if let Some(b) = formerr(bytes) {
                *reply = b;
            }
            shared.counters.by_type.count(qtype, reply);
            continue;
        }
        let served = cache.handle_udp_into(bytes, &zone, reply);
        if !matches!(served, Served::Forward { .. }) {
            shared.counters.by_type.count(qtype, reply);
        }
        match served {
            Served::Local => local += 1,
            Served::Refused => refused += 1,
            Served::Malformed => malformed += 1,
            Served::Forward { request, upstreams } => {
                let Some(peer) = batch.peer(i) else {
                    refused += 1;
                    shared.counters.by_type.count(qtype, &[]);
                    continue;
                };
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    refused += 1;
                    shared.counters.by_type.count(qtype, &[]);
                    continue;
                };
                forwarded += 1;
                let (shared, slot) = (shared.clone(), slot.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let started = std::time::Instant::now();
                    let answer = tokio::select! {
                        _ = shared.stopping() => return,
                        a = forward(&request, &upstreams, Transport::Udp, &shared.exclude, shared.upstream_timeout) => a,
                    };
                    shared.counters.forward_latency.observe(started.elapsed());
                    let bytes = answer.unwrap_or_else(|| servfail(&request, Transport::Udp));
                    shared.counters.by_type.count(qtype, &bytes);
                    if !bytes.is_empty() {
                        let _ = slot.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
    let c = &shared.counters;
    for (counter, v) in [
        (&c.queries, n as u64),
        (&c.answered_local, local),
        (&c.forwarded, forwarded),
        (&c.refused, refused),
        (&c.malformed, malformed),
    ] {
        if v > 0 {
            counter.fetch_add(v, Ordering::Relaxed);
        }
    }
}

async fn serve_tcp(shared: Arc<Shared>, slot: Arc<Slot<TcpListener>>) {
    loop {
        let stream = match slot.accept().await {
            None => return,
            Some(Ok((stream, _peer))) => stream,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = shared.tcp.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shared.stopping() => {}
                _ = serve_conn(&shared, stream) => {}
            }
        });
    }
}

async fn serve_conn(shared: &Shared, mut stream: TcpStream) {
    loop {
        let Ok(Ok(len)) = timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        let Ok(Ok(_)) = timeout(TCP_IDLE, stream.read_exact(&mut buf)).await else {
            return;
        };
        let c = &shared.counters;
        bump(&c.queries);
        let qtype = qtype_slot(&buf);
        let zone = shared.zone();
        let reply = match handle_query(&buf, &zone, Transport::Tcp) {
            Outcome::Local(bytes) => {
                bump(&c.answered_local);
                bytes
            }
            Outcome::Refused(bytes) => {
                bump(&c.refused);
                bytes
            }
            Outcome::Malformed(bytes) => {
                bump(&c.malformed);
                match bytes {
                    Some(b) => b,
                    None => {
                        c.by_type.count(qtype, &[]);
                        return;
                    }
                }
            }
            Outcome::Forward { request, upstreams } => {
                bump(&c.forwarded);
                let started = std::time::Instant::now();
                let answer = forward(
                    &request,
                    &upstreams,
                    Transport::Tcp,
                    &shared.exclude,
                    shared.upstream_timeout,
                )
                .await;
                c.forward_latency.observe(started.elapsed());
                answer.unwrap_or_else(|| servfail(&request, Transport::Tcp))
            }
        };
        c.by_type.count(qtype, &reply);
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if reply.is_empty() {
            return;
        }
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if !matches!(
            timeout(TCP_IDLE, stream.write_all(&framed)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}
