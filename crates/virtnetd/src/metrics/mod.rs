//! Prometheus metrics: `GET /metrics` on the API sockets and, with `--metrics-listen`, on a
//! TCP listener of its own ([`listen`]). Documented metric by metric in `docs/API.md`.
//!
//! No counter is kept for the scrape: each one reads the counters where they live — the
//! registry's networks, the DHCP and DNS servers' counters, the ports — and asks the kernel
//! a fixed number of questions whatever the number of networks and ports. What is kept from
//! one scrape to the next is each port's label text, escaped once, and where its tap was
//! found (`ports::PortCache`: written again when a label changes, forgotten with the port),
//! and each network's label text, DHCP ranges and subnets (`network::NetworkCache`: read
//! again when its live definition changes): a scrape of thousands of ports and hundreds of
//! networks then mostly writes numbers.
//!
//! - one rtnetlink stats dump for every port's traffic counters ([`ports`]), and an index
//!   look-up for a port not seen by an earlier scrape; when the dump waits for the kernel's
//!   RTNL lock (held by a link change anywhere on the host) longer than [`LINKS_PATIENCE`],
//!   `/proc/thread-self/net/dev` instead, which the kernel lists under RCU (see
//!   `virtnet_host::link_stats`);
//! - one nfnetlink dump of the anti-spoofing `drops` set's counters (it holds the ports that
//!   dropped a frame; a guarded port without an element has dropped none);
//! - one nfnetlink dump of the named counters of virtnet's table for the firewall's drops
//!   ([`firewall`]);
//! - the NATed connections per network come from a ctnetlink dump made in the background at
//!   most every 10 s ([`network`]; see `NatCache`).
//!
//! libnftables is not used: it reads the whole table (every set element) before it lists
//! anything, tens of milliseconds at 500 networks.
//!
//! The kernel's dumps, the ports and the networks are read on three threads side by side.
//!
//! The files: [`encode`] (the text format), [`network`], [`ports`], [`firewall`], [`daemon`]
//! (request, commit and reconcile latency, recorded where the work happens), [`listen`].

pub mod daemon;
pub mod encode;
mod firewall;
pub mod listen;
mod network;
mod ports;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kernel::DropCounts;
use crate::ports::PortLabels;
use virtnet_host::LinkStats;

use crate::state::AppState;
use crate::sync::lock;
use encode::Encoder;
use network::{NetworkCache, NetworkRow};
use ports::{LinkTable, PortCache};

pub use encode::CONTENT_TYPE;

/// How old the NATed connections' count may get before a scrape has it read again (in the
/// background: see [`NatCache`]).
const NAT_REFRESH: Duration = Duration::from_secs(10);

/// How long a scrape waits for the links' stats dump before it reads `net/dev` instead. The
/// dump takes 1.5–2 ms for 2,500 links when RTNL is free (its p99 in `bench/metrics.sh`
/// 4–20 ms on this loaded machine); `net/dev` never waits for RTNL but costs the kernel ~4 ms
/// more CPU (so it is no better for holds shorter than the patience plus that), and a link
/// deletion anywhere on the host holds RTNL 10–20 ms, a namespace's teardown far longer: the
/// patience bounds a scrape's wait for RTNL, it does not remove the short ones.
const LINKS_PATIENCE: Duration = Duration::from_millis(10);

/// The scrape's state: the ports' label text and where their taps were, and the NATed
/// connections last read. Scrapes run one at a time.
#[derive(Default)]
pub struct Metrics {
    /// Each port's labels, escaped once, and where its tap was in the links, kept from scrape to
    /// scrape ([`PortCache`]: what changed is written again, what is gone is forgotten).
    ports: Mutex<PortCache>,
    /// Each network's labels, DHCP ranges and subnets, kept while its definition is the same
    /// ([`NetworkCache`]).
    networks: Mutex<NetworkCache>,
    /// The size of the last exposition: the next one's text is allocated at once.
    last_len: std::sync::atomic::AtomicUsize,
    /// The NATed connections' original sources.
    nat: Arc<Mutex<NatCache>>,
}

/// conntrack's dump walks the kernel's whole connection hash table (262,144 buckets by
/// default: ~10 ms even when it is empty), too slow for every scrape: it is read by a thread
/// of its own when the last reading is older than [`NAT_REFRESH`], and the scrape reports
/// the last reading.
#[derive(Default)]
struct NatCache {
    sources: Option<Arc<Vec<Ipv4Addr>>>,
    read_at: Option<Instant>,
    refreshing: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The exposition of every metric now. Blocking (netlink, the parts' locks): call it on
    /// the blocking pool.
    pub fn scrape(&self, state: &AppState) -> String {
        let t0 = Instant::now();
        // The kernel's three dumps, the ports and the networks are read side by side: the
        // scrape takes the longest of the three, not their sum.
        let (mut networks, ports, kernel, t_parts) = std::thread::scope(|scope| {
            let kernel = beside(scope, "metrics-kernel", KernelReads::read);
            let ports = beside(scope, "metrics-ports", || state.ports.labels());
            let networks = network_rows(state, &mut lock(&self.networks));
            let ports = ports();
            let t_parts = t0.elapsed();
            (networks, ports, kernel(), t_parts)
        });
        let t_kernel = t0.elapsed();
        let links = LinkTable::new(kernel.links);
        count_ports(&mut networks, &ports);
        if let Some(sources) = self.nat_sources(&networks) {
            for row in &mut networks {
                row.count_nat(&sources);
            }
        }
        let samples = lock(&self.ports).samples(
            &ports,
            &lease_addresses(&networks),
            &links,
            &kernel.spoof,
            |name| virtnet_host::link_brief::index_of(name).ok().flatten(),
        );
        let t_rows = t0.elapsed();
        let last_len = self.last_len.load(std::sync::atomic::Ordering::Relaxed);
        let mut e = Encoder::with_capacity(last_len + last_len / 8);
        daemon::DAEMON.encode(&mut e);
        network::encode(&mut e, &networks);
        ports::encode(&mut e, &samples);
        firewall::encode(&mut e, kernel.drops.as_ref());
        let text = e.finish();
        self.last_len
            .store(text.len(), std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(
            parts_us = t_parts.as_micros() as u64,
            kernel_us = kernel.took.as_micros() as u64,
            links_us = kernel.took_links.as_micros() as u64,
            rows_us = (t_rows - t_kernel).as_micros() as u64,
            encode_us = (t0.elapsed() - t_rows).as_micros() as u64,
            bytes = text.len(),
            "metrics scraped"
        );
        text
    }

    /// The NATed connections' sources as last read, when a nat network runs; starts a new
    /// reading in the background when that one is older than [`NAT_REFRESH`].
    fn nat_sources(&self, networks: &[NetworkRow]) -> Option<Arc<Vec<Ipv4Addr>>> {
        if networks.iter().all(|n| n.fixed.subnets.is_empty()) {
            return None;
        }
        let mut cache = lock(&self.nat);
        let stale = cache.read_at.is_none_or(|t| t.elapsed() >= NAT_REFRESH);
        if stale && !cache.refreshing {
            cache.refreshing = true;
            let nat = Arc::clone(&self.nat);
            // A thread of the daemon: it is in the daemon's network namespace.
            let spawned = std::thread::Builder::new()
                .name("metrics-nat".into())
                .spawn(move || {
                    let read = virtnet_host::conntrack::snat_sources_v4();
                    let mut cache = lock(&nat);
                    cache.refreshing = false;
                    cache.read_at = Some(Instant::now());
                    match read {
                        Ok(sources) => cache.sources = Some(Arc::new(sources)),
                        Err(error) => {
                            tracing::debug!(%error, "metrics: cannot dump conntrack");
                            cache.sources = None;
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics: cannot start the conntrack reader");
                cache.refreshing = false;
            }
        }
        cache.sources.clone()
    }
}

/// Starts `f` on a thread of `scope`; the returned closure waits for its result. When no
/// thread can be started (a limit reached), `f` runs in the caller when its result is asked
/// for; a panic in `f` is logged and gives `T::default()`.
fn beside<'s, T: Default + Send + 's>(
    scope: &'s std::thread::Scope<'s, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 's + Clone,
) -> impl FnOnce() -> T + 's {
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, f.clone());
    let name = name.to_string();
    move || match spawned {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            tracing::warn!(thread = %name, "metrics: a reading thread failed");
            T::default()
        }),
        Err(error) => {
            tracing::debug!(%error, thread = %name, "metrics: reading in the caller instead");
            f()
        }
    }
}

/// What one scrape asks the kernel: each read failing alone (logged) leaves its metrics out.
#[derive(Default)]
struct KernelReads {
    /// Every link's counters (the stats dump, or `net/dev` past [`LINKS_PATIENCE`]).
    links: Vec<LinkStats>,
    /// Frames the anti-spoofing rules dropped, by port (one dump of the `drops` set).
    spoof: DropCounts,
    /// The firewall's drops by reason (one dump of the table's named counters).
    drops: Option<BTreeMap<&'static str, u64>>,
    /// How long the three readings took.
    took: Duration,
    /// How long reading the links' counters took (the stats dump waits for the kernel's
    /// RTNL lock, which any link change on the host holds, at most [`LINKS_PATIENCE`]).
    took_links: Duration,
}

impl KernelReads {
    fn read() -> KernelReads {
        let t0 = Instant::now();
        let links = virtnet_host::link_stats(LINKS_PATIENCE).unwrap_or_else(|error| {
            tracing::warn!(%error, "metrics: cannot read the links' counters");
            Vec::new()
        });
        let took_links = t0.elapsed();
        let spoof = DropCounts::read().unwrap_or_else(|error| {
            tracing::warn!(%error, "metrics: cannot read the anti-spoofing counters");
            DropCounts::default()
        });
        let drops = firewall::read_drops();
        KernelReads {
            links,
            spoof,
            drops,
            took: t0.elapsed(),
            took_links,
        }
    }
}

/// A row per network, with the running ones' servers' counters.
fn network_rows(state: &AppState, cache: &mut NetworkCache) -> Vec<NetworkRow> {
    let mut counters = state.services.counters();
    cache.begin();
    let rows = state.networks.map_live(|summary, live| {
        let mut row = NetworkRow::new(summary, live, cache);
        if let Some(c) = counters.remove(&row.name) {
            row.set_services(c);
        }
        row
    });
    cache.end();
    rows
}

/// Counts each port into its network's row.
fn count_ports(networks: &mut [NetworkRow], ports: &[PortLabels]) {
    let by_name = network::by_name(networks);
    let mut counts = vec![0u64; networks.len()];
    for port in ports {
        if let Some(&i) = by_name.get(ports::network_of(port)) {
            counts[i] += 1;
        }
    }
    drop(by_name);
    for (row, n) in networks.iter_mut().zip(counts) {
        row.ports = n;
    }
}

/// The leased IPv4 address of each client, by network and MAC.
fn lease_addresses(networks: &[NetworkRow]) -> ports::Leases<'_> {
    let mut out = HashMap::new();
    for row in networks {
        let Some((_, leases)) = row.services.as_ref().and_then(|s| s.dhcp.as_ref()) else {
            continue;
        };
        for lease in leases {
            out.insert((row.name.as_str(), lease.mac), lease.ip);
        }
    }
    out
}
