//! The services of running networks: one DHCPv4 and one DNS server per network, the leases
//! they hand out and the event feed that reports them, and the daemon's one router
//! advertisement server for every IPv6 network (`virtnet-ra`).
//!
//! Services start after the network exists in the kernel (they bind the bridge and its
//! addresses) and stop before it is removed. A lease is written to the store before the DHCP
//! server acknowledges it, so that neither a guest restart nor a daemon restart changes a
//! guest's address; the same write feeds the event feed and the DNS server's guest names.
//!
//! Lease writes of every network go through one [`LeaseWriter`]: a plain thread (not an async
//! worker) that commits whatever the DHCP servers have queued at that moment in one durable
//! transaction (group commit), so that N networks renewing at once cost one fsync per round,
//! not N, and no fsync runs on a thread that serves DNS or the API.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use virtnet_api::{DhcpLease, Event, EventBatch, EventKind};
use virtnet_dhcp::{DhcpConfig, DhcpServer, Lease, LeaseChange, LeaseSink};
use virtnet_dns::{DnsConfig, DnsServer, GuestName};
use virtnet_model::Network;
use virtnet_ra::{RaConfig, RaServer};
use virtnet_tftp::TftpServer;

use crate::error::{Error, Result};
use crate::store::Store;

mod dhcp6;
mod ownership;
pub(crate) use dhcp6::store_key as lease6_store_key;
pub use dhcp6::{lease6_to_api, Lease6Observer};

/// How many events the feed keeps for clients that poll late.
const EVENT_BUFFER: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Settings of the services, from the daemon's command line.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Where the host's resolvers are listed (DNS forwarding when a network names none).
    pub resolv_conf: PathBuf,
    /// The DNS port (53; tests may choose another).
    pub dns_port: u16,
    /// The TFTP port (69).
    pub tftp_port: u16,
    /// Root of the filesystem holding the host's network configuration, which `iface-bridge`
    /// rewrites ("/"; tests point it at a scratch copy).
    pub host_config_root: PathBuf,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            dns_port: 53,
            tftp_port: 69,
            host_config_root: PathBuf::from("/"),
        }
    }
}

/// The lease store key of a client: its MAC address.
fn client_key(mac: &[u8; 6]) -> String {
    format_mac(mac)
}

fn format_mac(mac: &[u8; 6]) -> String {
    virtnet_model::MacAddr(*mac).to_string()
}

/// A lease as the API shows it.
pub fn lease_to_api(lease: &Lease, bridge: &str, prefix: u8) -> DhcpLease {
    DhcpLease {
        iface: bridge.to_string(),
        expiry_time: lease.expires,
        kind: "ipv4".to_string(),
        mac: format_mac(&lease.mac),
        ip_address: lease.ip.to_string(),
        prefix,
        hostname: lease.hostname.clone(),
        client_id: lease.client_id.as_ref().map(|id| {
            id.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        iaid: None,
    }
}

/// The daemon's event feed: a bounded buffer with sequence numbers, polled by clients.
#[derive(Debug, Default)]
pub struct EventFeed {
    inner: Mutex<FeedInner>,
    notify: Notify,
    /// Networks defined, undefined, started and stopped (libvirt's lifecycle events).
    pub lifecycle: LifecycleFeed,
}

/// What happened to a network, as libvirt's `virNetworkEventLifecycleType` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleKind {
    /// Defined or redefined (`VIR_NETWORK_EVENT_DEFINED`).
    Defined,
    /// Its persistent definition removed (`VIR_NETWORK_EVENT_UNDEFINED`).
    Undefined,
    /// Started (`VIR_NETWORK_EVENT_STARTED`).
    Started,
    /// Stopped (`VIR_NETWORK_EVENT_STOPPED`).
    Stopped,
}

/// One lifecycle change of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// The network's name.
    pub name: String,
    /// Its UUID.
    pub uuid: uuid::Uuid,
    /// What happened.
    pub kind: LifecycleKind,
}

/// Lifecycle changes, broadcast to whoever listens at the moment (libvirt's event clients);
/// a listener that falls more than [`LIFECYCLE_BUFFER`] behind loses the oldest.
#[derive(Debug)]
pub struct LifecycleFeed {
    tx: tokio::sync::broadcast::Sender<Lifecycle>,
}

/// Lifecycle changes a slow listener may lag behind before it loses some.
pub const LIFECYCLE_BUFFER: usize = 256;

impl Default for LifecycleFeed {
    fn default() -> Self {
        LifecycleFeed {
            tx: tokio::sync::broadcast::channel(LIFECYCLE_BUFFER).0,
        }
    }
}

impl LifecycleFeed {
    /// Tells the current listeners (none listening is fine).
    pub fn publish(&self, name: &str, uuid: uuid::Uuid, kind: LifecycleKind) {
        let _ = self.tx.send(Lifecycle {
            name: name.to_string(),
            uuid,
            kind,
        });
    }

    /// A new listener, seeing the changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Lifecycle> {
        self.tx.subscribe()
    }
}

#[derive(Debug, Default)]
struct FeedInner {
    /// Sequence number of the last event pushed (0: none yet).
    last: u64,
    events: VecDeque<Event>,
}

impl EventFeed {
    /// Appends an event and wakes the clients waiting for one.
    pub fn push(&self, network: &str, kind: EventKind, lease: DhcpLease) {
        {
            let mut inner = lock(&self.inner);
            inner.last += 1;
            let event = Event {
                seq: inner.last,
                time: now(),
                network: network.to_string(),
                kind,
                lease,
            };
            if inner.events.len() == EVENT_BUFFER {
                inner.events.pop_front();
            }
            inner.events.push_back(event);
        }
        self.notify.notify_waiters();
    }

    /// The events after `after` (`None`: none, only the current end of the feed).
    pub fn after(&self, after: Option<u64>) -> EventBatch {
        let inner = lock(&self.inner);
        let Some(after) = after else {
            return EventBatch {
                events: Vec::new(),
                next: inner.last,
                lost: false,
            };
        };
        let events: Vec<Event> = inner
            .events
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        let first_kept = inner.events.front().map_or(inner.last + 1, |e| e.seq);
        EventBatch {
            next: events.last().map_or(inner.last.max(after), |e| e.seq),
            lost: after + 1 < first_kept && after < inner.last,
            events,
        }
    }

    /// Like [`EventFeed::after`], but waits up to `wait` for an event when there is none yet.
    pub async fn wait_after(&self, after: Option<u64>, wait: Duration) -> EventBatch {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so that a push between the look and the wait wakes us.
            let notified = self.notify.notified();
            let batch = self.after(after);
            if !batch.events.is_empty() || after.is_none() {
                return batch;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.after(after);
            }
        }
    }
}

/// At most this many queued lease jobs (each the batch of one DHCP server) go into one
/// commit; more wait for the next round. Bounds the size of one transaction.
const MAX_GROUP: usize = 1024;

/// A lease as the store keeps it: DHCPv4's or DHCPv6's, each under its own keys (the JSON is
/// the inner lease's: `untagged`).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum StoredLease {
    /// A DHCPv4 lease.
    V4(Lease),
    /// A DHCPv6 lease.
    V6(virtnet_dhcp6::Lease6),
}

/// A lease write of one network, and where to tell its DHCP server how the commit went.
struct LeaseJob {
    network: String,
    /// `(client key, Some(lease))` writes, `(client key, None)` deletes.
    writes: Vec<(String, Option<StoredLease>)>,
    /// `None` for a queued write nobody waits for ([`LeaseWriter::queue_stored`]): its
    /// failure is only logged.
    done: Option<mpsc::SyncSender<std::result::Result<(), String>>>,
}

/// The daemon's one lease writer.
///
/// [`LeaseWriter::start`] runs a thread of its own that takes every job queued at that moment
/// (up to [`MAX_GROUP`], never waiting for more) and commits them in ONE durable transaction
/// ([`Store::apply_lease_groups`]), then answers each job; jobs arriving meanwhile form the
/// next round. [`LeaseWriter::write`] blocks its caller until the commit that holds its job
/// is durable, so an acknowledged lease still survives `kill -9`. A failed commit fails every
/// job in it (each DHCP server then withholds its ACKs; the clients retry); the store itself
/// reopens after an I/O error as before, so a full disk costs only the writes made while it
/// is full.
///
/// Callers block: the DHCP servers call it from tokio's blocking pool, never from an async
/// worker. Clones share the thread, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct LeaseWriter {
    store: Arc<Store>,
    /// `None`: no thread (it could not be started, or [`LeaseWriter::direct`]); each write
    /// is then its own commit on the caller's thread.
    queue: Option<mpsc::Sender<LeaseJob>>,
}

impl std::fmt::Debug for LeaseWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseWriter")
            .field("group_commit", &self.queue.is_some())
            .finish()
    }
}

impl LeaseWriter {
    /// Starts the writer thread for `store`. If the thread cannot be started the writer
    /// commits each write on its caller's thread instead (logged): slower, equally durable.
    pub fn start(store: Arc<Store>) -> LeaseWriter {
        let (tx, rx) = mpsc::channel::<LeaseJob>();
        let thread_store = store.clone();
        let spawned = std::thread::Builder::new()
            .name("lease-writer".into())
            .spawn(move || run_writer(&thread_store, &rx));
        match spawned {
            Ok(_) => LeaseWriter {
                store,
                queue: Some(tx),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the lease writer thread; leases are committed one write at a time");
                LeaseWriter::direct(store)
            }
        }
    }

    /// A writer without a thread: every write is its own commit on the caller's thread (what
    /// virtnetd did before group commit; kept for comparison in the lease benchmark).
    pub fn direct(store: Arc<Store>) -> LeaseWriter {
        LeaseWriter { store, queue: None }
    }

    /// Writes (`Some`) and deletes (`None`) leases of `network`, keyed by client, all or
    /// nothing; returns once they are durable. Blocks: never call it on an async worker.
    pub fn write(
        &self,
        network: &str,
        writes: Vec<(String, Option<Lease>)>,
    ) -> std::io::Result<()> {
        let writes = writes
            .into_iter()
            .map(|(client, lease)| (client, lease.map(StoredLease::V4)))
            .collect();
        self.write_stored(network, writes)
    }

    /// [`LeaseWriter::write`] for leases of either family (DHCPv6's go through here).
    pub fn write_stored(
        &self,
        network: &str,
        writes: Vec<(String, Option<StoredLease>)>,
    ) -> std::io::Result<()> {
        let Some(queue) = &self.queue else {
            return self
                .store
                .apply_leases(network, &as_refs(&writes))
                .map_err(|e| std::io::Error::other(e.to_string()));
        };
        let (done, answer) = mpsc::sync_channel(1);
        let job = LeaseJob {
            network: network.to_string(),
            writes,
            done: Some(done),
        };
        let gone = || std::io::Error::other("the lease writer has stopped");
        queue.send(job).map_err(|_| gone())?;
        answer
            .recv()
            .map_err(|_| gone())?
            .map_err(std::io::Error::other)
    }

    /// Queues writes of `network` for the writer's next round and returns at once, before
    /// they are durable (they go in the same FIFO queue, so a later write of the same key
    /// still lands after them). For writes whose loss on a crash is harmless: DHCPv6 lease
    /// extensions (see `services::dhcp6`). A failed commit is logged, nobody is told. Without
    /// a writer thread the write is committed at once, as [`LeaseWriter::write_stored`].
    pub fn queue_stored(
        &self,
        network: &str,
        writes: Vec<(String, Option<StoredLease>)>,
    ) -> std::io::Result<()> {
        let Some(queue) = &self.queue else {
            return self.write_stored(network, writes);
        };
        let job = LeaseJob {
            network: network.to_string(),
            writes,
            done: None,
        };
        queue
            .send(job)
            .map_err(|_| std::io::Error::other("the lease writer has stopped"))
    }
}

/// `(client, Some(&lease))` views of owned writes, as the store takes them.
fn as_refs(writes: &[(String, Option<StoredLease>)]) -> Vec<(String, Option<&StoredLease>)> {
    writes
        .iter()
        .map(|(client, lease)| (client.clone(), lease.as_ref()))
        .collect()
}

/// The writer thread: one commit per round of queued jobs, until every sender is gone.
fn run_writer(store: &Store, queue: &mpsc::Receiver<LeaseJob>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = commit_group(store, &jobs);
        for job in jobs {
            match (&job.done, &result) {
                // A DHCP server that stopped waiting no longer needs the answer.
                (Some(done), _) => drop(done.send(result.clone())),
                (None, Err(e)) => tracing::warn!(network = %job.network, error = %e,
                    writes = job.writes.len(), "queued lease writes not stored"),
                (None, Ok(())) => {}
            }
        }
    }
}

/// One durable transaction for the jobs of a round. A panic in the store fails the round
/// instead of ending the thread (which would fail every later write).
fn commit_group(store: &Store, jobs: &[LeaseJob]) -> std::result::Result<(), String> {
    let groups: Vec<crate::store::LeaseGroup<'_, StoredLease>> = jobs
        .iter()
        .map(|j| (j.network.as_str(), j.writes.as_slice()))
        .collect();
    match catch_unwind(AssertUnwindSafe(|| store.apply_lease_groups(&groups))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            tracing::error!(
                jobs = jobs.len(),
                "lease commit panicked; its writes are refused"
            );
            Err("the lease commit failed unexpectedly".to_string())
        }
    }
}

/// Told of every lease granted (`true`) or ended (`false`), by network, client MAC and
/// address, after the store has it and before the client is answered: the ports'
/// anti-spoofing follows the guests' addresses with it.
pub type LeaseObserver = Arc<dyn Fn(&str, [u8; 6], std::net::Ipv4Addr, bool) + Send + Sync>;

/// What one running network's services share with its lease recorder.
struct Shared {
    /// Told of lease changes (see [`LeaseObserver`]).
    observer: Option<LeaseObserver>,
    bridge: String,
    prefix: u8,
    writer: LeaseWriter,
    events: Arc<EventFeed>,
    /// The DNS server, once started (the recorder tells it the guests' names).
    dns: Mutex<Option<DnsServer>>,
    /// Guest names from leases, by client MAC.
    names: Mutex<BTreeMap<[u8; 6], GuestName>>,
    /// Guest names from DHCPv6 leases, by binding (`Lease6::key`).
    names6: Mutex<BTreeMap<String, GuestName>>,
}

impl Shared {
    fn publish_names(&self) {
        let mut names: Vec<GuestName> = lock(&self.names).values().cloned().collect();
        names.extend(lock(&self.names6).values().cloned());
        if let Some(dns) = lock(&self.dns).as_ref() {
            dns.set_guests(names);
        }
    }

    fn note_name(&self, lease: &Lease, present: bool) {
        let mut names = lock(&self.names);
        match (&lease.hostname, present) {
            (Some(name), true) => {
                names.insert(
                    lease.mac,
                    GuestName {
                        name: name.clone(),
                        ip: IpAddr::V4(lease.ip),
                    },
                );
            }
            _ => {
                names.remove(&lease.mac);
            }
        }
    }
}

/// The DHCP server's [`LeaseSink`]: store first, then the event feed and DNS.
struct Recorder(Arc<Shared>);

/// What a change means: its event, its lease, and whether the lease exists afterwards.
fn describe(change: &LeaseChange) -> (EventKind, &Lease, bool) {
    match change {
        LeaseChange::Granted(l) => (EventKind::LeaseGranted, l, true),
        LeaseChange::Renewed(l) => (EventKind::LeaseRenewed, l, true),
        LeaseChange::Released(l) => (EventKind::LeaseReleased, l, false),
        LeaseChange::Expired(l) => (EventKind::LeaseExpired, l, false),
    }
}

impl LeaseSink for Recorder {
    fn record(&self, network: &str, change: &LeaseChange) -> std::io::Result<()> {
        self.record_batch(network, std::slice::from_ref(change))
    }

    /// Through the lease writer (one store transaction shared with the batches other
    /// networks queued at the same moment), then the events and the DNS names.
    fn record_batch(&self, network: &str, changes: &[LeaseChange]) -> std::io::Result<()> {
        let s = &self.0;
        let writes: Vec<(String, Option<Lease>)> = changes
            .iter()
            .map(describe)
            .map(|(_, lease, present)| (client_key(&lease.mac), present.then(|| lease.clone())))
            .collect();
        s.writer.write(network, writes)?;
        for (kind, lease, present) in changes.iter().map(describe) {
            if let Some(observe) = &s.observer {
                observe(network, lease.mac, lease.ip, present);
            }
            s.events
                .push(network, kind, lease_to_api(lease, &s.bridge, s.prefix));
            s.note_name(lease, present);
        }
        s.publish_names();
        Ok(())
    }
}

/// The services of one running network.
struct Running {
    shared: Arc<Shared>,
    dhcp: Option<DhcpServer>,
    /// `<tftp root>`: files for PXE clients, served on the IPv4 gateway address.
    tftp: Option<TftpServer>,
}

impl Running {
    fn stop(self) {
        if let Some(tftp) = self.tftp {
            tftp.stop();
        }
        if let Some(dhcp) = self.dhcp {
            dhcp.stop();
        }
        if let Some(dns) = lock(&self.shared.dns).take() {
            dns.stop();
        }
    }
}

/// The counters of one running network's servers (see [`Services::counters`]).
#[derive(Debug, Clone)]
pub struct ServiceCounters {
    /// The DHCPv4 server's counters and its current leases, when it runs.
    pub dhcp: Option<(virtnet_dhcp::Stats, Vec<Lease>)>,
    /// The DNS server's counters, when it runs.
    pub dns: Option<DnsCounters>,
}

/// The counters of one DNS server.
#[derive(Debug, Clone)]
pub struct DnsCounters {
    /// Totals by outcome.
    pub stats: virtnet_dns::DnsStats,
    /// Queries by (question type, response code, count).
    pub by_type: Vec<(&'static str, &'static str, u64)>,
    /// Latency of the forwarded queries.
    pub forward_latency: virtnet_dns::HistogramSnapshot,
}

/// The services of every running network.
pub struct Services {
    store: Arc<Store>,
    /// Every network's lease writes, committed together.
    writer: LeaseWriter,
    events: Arc<EventFeed>,
    options: ServiceOptions,
    running: Mutex<BTreeMap<String, Running>>,
    /// Told of lease changes, once set (see [`Services::observe_leases`]).
    observer: std::sync::OnceLock<LeaseObserver>,
    /// Told of DHCPv6 lease changes, once set (see [`Services::observe_leases6`]).
    observer6: std::sync::OnceLock<Lease6Observer>,
    /// Router advertisements of every IPv6 network: one socket and one timer for all.
    ra: RaServer,
    /// DHCPv6 of every IPv6 network with a `<dhcp>`: one socket for all (`services/dhcp6.rs`).
    dhcp6: virtnet_dhcp6::Dhcp6Server,
    /// The overlay networks' members followers (`services/ownership.rs`), by network.
    followers: Mutex<BTreeMap<String, ownership::OwnershipFollower>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("options", &self.options)
            .field("running", &lock(&self.running).keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The first IPv4 address of a network with its prefix: where DHCP and the lease table live.
fn ipv4_prefix(net: &Network) -> u8 {
    net.ips
        .iter()
        .find(|ip| ip.address.is_ipv4())
        .map_or(24, |ip| ip.prefix_len())
}

/// The `<tftp root>` of a network and the IPv4 gateway address it is served on (libvirt
/// allows TFTP on IPv4 only).
/// The DHCPv4 server's configuration. An overlay network without `<mtu>` tells its guests
/// (option 26) the MTU its bridge was given at start, the underlay's less the VXLAN overhead,
/// which only the kernel knows; the RA MTU option reads the bridge the same way.
fn dhcp_config(net: &Network) -> Option<DhcpConfig> {
    let mut config = DhcpConfig::from_network(net)?;
    if config.mtu.is_none() && net.overlay.is_some() {
        config.mtu = net
            .bridge_name()
            .and_then(bridge_mtu)
            .and_then(|m| u16::try_from(m).ok());
    }
    Some(config)
}

/// The MTU of link `name` in the daemon's namespace; `None` if it cannot be read (the option
/// is then left out, as for a network without `<mtu>`).
fn bridge_mtu(name: &str) -> Option<u32> {
    let mut netlink = virtnet_host::Netlink::open().ok()?;
    netlink.link(name).ok().flatten().map(|l| l.mtu)
}

fn tftp_root(net: &Network) -> Option<(&str, IpAddr)> {
    net.ips
        .iter()
        .filter(|ip| ip.address.is_ipv4())
        .find_map(|ip| Some((ip.tftp_root.as_deref()?, ip.address)))
}

/// The addresses the DNS server answers on: the network's own addresses on its bridge.
fn gateway_addresses(net: &Network) -> Vec<IpAddr> {
    net.ips.iter().map(|ip| ip.address).collect()
}

impl Services {
    /// Services on top of `store`, reporting to `events`.
    pub fn new(store: Arc<Store>, events: Arc<EventFeed>, options: ServiceOptions) -> Services {
        Services {
            writer: LeaseWriter::start(store.clone()),
            store,
            events,
            options,
            running: Mutex::new(BTreeMap::new()),
            observer: std::sync::OnceLock::new(),
            observer6: std::sync::OnceLock::new(),
            ra: RaServer::new(),
            dhcp6: virtnet_dhcp6::Dhcp6Server::new(),
            followers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets who is told of lease changes (once, before any network starts).
    pub fn observe_leases(&self, observer: LeaseObserver) {
        let _ = self.observer.set(observer);
    }

    /// The event feed.
    pub fn events(&self) -> &Arc<EventFeed> {
        &self.events
    }

    /// Starts the DNS and DHCP servers of a network that now exists in the kernel. Must run
    /// inside the daemon's async runtime. On error nothing of the network's services runs.
    pub fn start(&self, net: &Network) -> Result<()> {
        let name = net.name.clone();
        self.stop(&name);
        let bridge = net.bridge_name().unwrap_or_default().to_string();
        let leases: Vec<Lease> = self.store.leases(&name)?;
        let now = now();
        let leases: Vec<Lease> = leases
            .into_iter()
            .filter(|l| l.expires.is_none_or(|t| t > now))
            .collect();
        let shared = Arc::new(Shared {
            observer: self.observer.get().cloned(),
            bridge: bridge.clone(),
            prefix: ipv4_prefix(net),
            writer: self.writer.clone(),
            events: self.events.clone(),
            dns: Mutex::new(None),
            names: Mutex::new(BTreeMap::new()),
            names6: Mutex::new(BTreeMap::new()),
        });
        for lease in &leases {
            shared.note_name(lease, true);
        }
        let resolvers = virtnet_dns::host_resolvers(&self.options.resolv_conf);
        if let Some(config) = DnsConfig::from_network(net, &resolvers) {
            let dns = DnsServer::start(
                config,
                Some(&bridge),
                &gateway_addresses(net),
                self.options.dns_port,
            )
            .map_err(|e| service_error(&name, "DNS", &e))?;
            *lock(&shared.dns) = Some(dns);
            shared.publish_names();
        }
        let tftp = match tftp_root(net) {
            Some((root, addr)) => {
                match TftpServer::start(
                    Path::new(root),
                    Some(&bridge),
                    addr,
                    self.options.tftp_port,
                ) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        Running {
                            shared,
                            dhcp: None,
                            tftp: None,
                        }
                        .stop();
                        return Err(service_error(&name, "TFTP", &e));
                    }
                }
            }
            None => None,
        };
        let dhcp = match dhcp_config(net) {
            Some(config) => {
                let sink = Arc::new(Recorder(shared.clone()));
                // An overlay network: only this host's blocks of the range (issue 17).
                let owned = ownership::OwnershipFollower::start(net, &config, self.store.clone());
                let owners = owned.map(|(follower, owners)| {
                    lock(&self.followers).insert(name.clone(), follower);
                    owners
                });
                match DhcpServer::start_with(config, &bridge, leases, sink, owners) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        drop(lock(&self.followers).remove(&name));
                        Running {
                            shared,
                            dhcp: None,
                            tftp,
                        }
                        .stop();
                        return Err(service_error(&name, "DHCP", &e));
                    }
                }
            }
            None => None,
        };
        if let Some(config) = RaConfig::from_network(net) {
            if let Err(e) = self.ra.serve(&bridge, config) {
                Running { shared, dhcp, tftp }.stop();
                return Err(service_error(&name, "router advertisement", &e));
            }
        }
        if let Err(e) = self.start_dhcp6(net, &shared) {
            self.ra.withdraw(&bridge);
            Running { shared, dhcp, tftp }.stop();
            return Err(e);
        }
        tracing::info!(network = %name, dhcp = dhcp.is_some(), dns = lock(&shared.dns).is_some(), "services started");
        lock(&self.running).insert(name, Running { shared, dhcp, tftp });
        Ok(())
    }

    /// Applies a changed definition of a running network to its servers without restarting
    /// them (`net-update --live`): leases and guest names stay.
    pub fn reconfigure(&self, net: &Network) -> Result<()> {
        let running = lock(&self.running);
        let Some(r) = running.get(&net.name) else {
            drop(running);
            return self.start(net);
        };
        let dhcp_wanted = dhcp_config(net);
        let dns_wanted =
            DnsConfig::from_network(net, &virtnet_dns::host_resolvers(&self.options.resolv_conf));
        // A server that appears or disappears needs a restart of the network's services.
        let same_shape = r.dhcp.is_some() == dhcp_wanted.is_some()
            && r.tftp.is_some() == tftp_root(net).is_some()
            && lock(&r.shared.dns).is_some() == dns_wanted.is_some();
        if !same_shape {
            drop(running);
            return self.start(net);
        }
        if let (Some(server), Some(config)) = (&r.dhcp, dhcp_wanted) {
            server.reconfigure(config);
        }
        if let (Some(server), Some(config)) = (lock(&r.shared.dns).as_ref(), dns_wanted) {
            server.reconfigure(config);
        }
        match RaConfig::from_network(net) {
            Some(config) => self
                .ra
                .serve(&r.shared.bridge, config)
                .map_err(|e| service_error(&net.name, "router advertisement", &e))?,
            None => self.ra.withdraw(&r.shared.bridge),
        }
        self.reconfigure_dhcp6(net, &r.shared)
    }

    /// Stops a network's servers (before the network leaves the kernel). Leases stay stored.
    pub fn stop(&self, network: &str) {
        // Taken out of the map first: a server's task may be recording a lease right now, and
        // the recorder never needs this lock, so stopping cannot deadlock with it.
        let running = lock(&self.running).remove(network);
        let follower = lock(&self.followers).remove(network);
        drop(follower);
        if let Some(r) = running {
            // The final advertisement (router lifetime 0) goes out while the bridge exists.
            self.ra.withdraw(&r.shared.bridge);
            self.dhcp6.withdraw(&r.shared.bridge);
            r.stop();
            tracing::info!(network, "services stopped");
        }
    }

    /// What `/metrics` reads of every running network's servers, by network: one pass under
    /// the services' lock, nothing waits on the disk.
    pub fn counters(&self) -> BTreeMap<String, ServiceCounters> {
        lock(&self.running)
            .iter()
            .map(|(name, r)| {
                let dns = lock(&r.shared.dns).as_ref().map(|d| DnsCounters {
                    stats: d.stats(),
                    by_type: d.query_counts(),
                    forward_latency: d.forward_latency(),
                });
                let dhcp = r.dhcp.as_ref().map(|d| (d.stats(), d.leases()));
                (name.clone(), ServiceCounters { dhcp, dns })
            })
            .collect()
    }

    /// Forgets a network's leases (`net-undefine`).
    pub fn forget(&self, network: &str) -> Result<()> {
        self.store.delete_leases(network)?;
        self.store.delete_leases(&dhcp6::store_key(network))
    }

    /// The current leases of a network: from its DHCP server when it runs, else the stored
    /// ones that have not expired.
    pub fn leases(&self, net: &Network) -> Result<Vec<DhcpLease>> {
        let bridge = net.bridge_name().unwrap_or_default();
        let prefix = ipv4_prefix(net);
        let leases = match lock(&self.running)
            .get(&net.name)
            .and_then(|r| r.dhcp.as_ref())
        {
            Some(server) => server.leases(),
            None => {
                let now = now();
                self.store
                    .leases::<Lease>(&net.name)?
                    .into_iter()
                    .filter(|l| l.expires.is_none_or(|t| t > now))
                    .collect()
            }
        };
        let mut out: Vec<DhcpLease> = leases
            .iter()
            .map(|l| lease_to_api(l, bridge, prefix))
            .collect();
        out.sort_by_key(|l| l.ip_address.parse::<Ipv4Addr>().ok());
        out.extend(self.leases6(net)?);
        Ok(out)
    }
}

/// A server that did not start; the message starts with the limit reached when the cause is
/// one (a socket refused with `EMFILE` says RLIMIT_NOFILE, not only "Too many open files").
fn service_error(network: &str, what: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    Error::failed(crate::limits::naming_limit(
        e,
        format!("network '{network}': cannot start the {what} server: {e}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u8) -> DhcpLease {
        DhcpLease {
            iface: "virbr0".into(),
            expiry_time: Some(1),
            kind: "ipv4".into(),
            mac: format!("52:54:00:00:00:{n:02x}"),
            ip_address: format!("192.168.122.{n}"),
            prefix: 24,
            hostname: None,
            client_id: None,
            iaid: None,
        }
    }

    #[test]
    fn the_feed_returns_what_came_after_and_reports_losses() {
        let feed = EventFeed::default();
        assert_eq!(feed.after(None).next, 0);
        feed.push("default", EventKind::LeaseGranted, lease(2));
        feed.push("default", EventKind::LeaseRenewed, lease(2));
        let batch = feed.after(Some(0));
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.next, 2);
        assert!(!batch.lost);
        assert!(feed.after(Some(2)).events.is_empty());
        assert_eq!(feed.after(Some(2)).next, 2);
        for i in 0..EVENT_BUFFER {
            feed.push("default", EventKind::LeaseGranted, lease((i % 200) as u8));
        }
        let batch = feed.after(Some(1));
        assert!(batch.lost, "events 2.. were dropped from the buffer");
        assert_eq!(batch.events.len(), EVENT_BUFFER);
    }

    /// Issue 12: every network's lease writes go through the one writer, concurrently; each
    /// write is in the store when `write` returns, under its own network, deletes included.
    #[test]
    fn the_lease_writer_commits_every_networks_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _, _) = Store::open(&dir.path().join("s.redb"), None).expect("open");
        let store = Arc::new(store);
        let writer = LeaseWriter::start(store.clone());
        let mk = |net: u8, n: u8| Lease {
            mac: [0x52, 0x54, 0, 0, net, n],
            client_id: None,
            ip: Ipv4Addr::new(10, net, 0, n),
            hostname: None,
            expires: None,
        };
        let threads: Vec<_> = (0..8u8)
            .map(|net| {
                let (writer, store) = (writer.clone(), store.clone());
                std::thread::spawn(move || {
                    for n in 0..20u8 {
                        let l = mk(net, n);
                        writer
                            .write(&format!("n{net}"), vec![(client_key(&l.mac), Some(l))])
                            .expect("write");
                        // Durable (committed) before write returned.
                        let stored = store.leases::<Lease>(&format!("n{net}")).expect("read");
                        assert_eq!(stored.len(), usize::from(n) + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let gone = mk(3, 7);
        writer
            .write("n3", vec![(client_key(&gone.mac), None)])
            .expect("delete");
        for net in 0..8u8 {
            let stored = store.leases::<Lease>(&format!("n{net}")).expect("read");
            assert_eq!(stored.len(), if net == 3 { 19 } else { 20 }, "n{net}");
            assert!(stored.iter().all(|l| l.ip.octets()[1] == net));
        }
    }

    /// Issue 15: a queued write returns before its commit, yet lands in order with the
    /// durable writes after it: once a later `write` returns, the queued one is stored, and
    /// a later delete of the same key wins.
    #[test]
    fn queued_lease_writes_land_in_order_with_durable_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _, _) = Store::open(&dir.path().join("s.redb"), None).expect("open");
        let store = Arc::new(store);
        let writer = LeaseWriter::start(store.clone());
        let mk = |n: u8| Lease {
            mac: [0x52, 0x54, 0, 0, 0, n],
            client_id: None,
            ip: Ipv4Addr::new(10, 0, 0, n),
            hostname: None,
            expires: Some(u64::from(n)),
        };
        let stored = |l: &Lease| StoredLease::V4(l.clone());
        for n in 1..=3u8 {
            let l = mk(n);
            writer
                .queue_stored("n", vec![(client_key(&l.mac), Some(stored(&l)))])
                .expect("queue");
        }
        let gone = mk(2);
        writer
            .write("n", vec![(client_key(&gone.mac), None)])
            .expect("delete");
        let mut ips: Vec<Ipv4Addr> = store
            .leases::<Lease>("n")
            .expect("read")
            .into_iter()
            .map(|l| l.ip)
            .collect();
        ips.sort();
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)]
        );
    }

    #[tokio::test]
    async fn a_waiting_client_wakes_on_the_next_event() {
        let feed = Arc::new(EventFeed::default());
        let waiter = {
            let feed = feed.clone();
            tokio::spawn(async move { feed.wait_after(Some(0), Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.push("default", EventKind::LeaseExpired, lease(9));
        let batch = waiter.await.expect("waiter");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].kind, EventKind::LeaseExpired);
        let empty = feed.wait_after(Some(1), Duration::from_millis(10)).await;
        assert!(empty.events.is_empty());
    }
}
