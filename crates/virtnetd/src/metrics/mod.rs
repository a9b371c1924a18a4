//! Prometheus metrics: `GET /metrics` on the API sockets and, with `--metrics-listen`, on a
//! TCP listener of its own ([`listen`]). Documented metric by metric in `docs/API.md`.
//!
//! Nothing is kept for the scrape: each one reads the counters where they live — the
//! registry's networks, the DHCP and DNS servers' counters, the ports — and asks the kernel
//! a fixed number of questions whatever the number of networks and ports:
//!
//! - one rtnetlink link dump for every port's traffic counters ([`ports`]);
//! - one listing of the anti-spoofing drop counters (the ports' own listing);
//! - one `list counters` of virtnet's table for the firewall's drops ([`firewall`]);
//! - one ctnetlink dump of the NATed connections, only when a nat network runs ([`network`]).
//!
//! The files: [`encode`] (the text format), [`network`], [`ports`], [`firewall`], [`daemon`]
//! (request, commit and reconcile latency, recorded where the work happens), [`listen`].

pub mod daemon;
pub mod encode;
mod firewall;
pub mod listen;
mod network;
mod ports;

use std::collections::BTreeMap;
use std::sync::Mutex;

use virtnet_host::{LinkStats, Netlink, Nftables};

use crate::state::AppState;
use crate::sync::lock;
use encode::Encoder;
use network::NetworkRow;
use ports::PortRow;

pub use encode::CONTENT_TYPE;

/// The kernel handles a scrape asks through, opened by the first scrape and kept (a scrape
/// then costs no socket or libnftables context set-up).
#[derive(Default)]
struct Probes {
    netlink: Option<Netlink>,
    nft: Option<Nftables>,
}

/// The scrape's state: its kernel handles. Scrapes run one at a time.
#[derive(Default)]
pub struct Metrics {
    probes: Mutex<Probes>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The exposition of every metric now. Blocking (netlink, libnftables, the parts' locks):
    /// call it on the blocking pool.
    pub fn scrape(&self, state: &AppState) -> String {
        let mut probes = lock(&self.probes);
        let mut networks = network_rows(state);
        let port_rows = port_rows(state, &mut networks, probes.link_stats());
        if let Some(sources) = nat_sources(&networks) {
            for row in &mut networks {
                row.count_nat(&sources);
            }
        }
        let drops = probes.nft().and_then(firewall::read_drops);
        drop(probes);
        let mut e = Encoder::default();
        daemon::DAEMON.encode(&mut e);
        network::encode(&mut e, &networks);
        ports::encode(&mut e, &port_rows);
        firewall::encode(&mut e, drops.as_ref());
        e.finish()
    }
}

impl Probes {
    /// Every link's counters by name; empty (logged) when the dump fails.
    fn link_stats(&mut self) -> BTreeMap<String, LinkStats> {
        if self.netlink.is_none() {
            match Netlink::open() {
                Ok(nl) => self.netlink = Some(nl),
                Err(error) => tracing::warn!(%error, "metrics: cannot open rtnetlink"),
            }
        }
        let Some(nl) = self.netlink.as_mut() else {
            return BTreeMap::new();
        };
        match nl.link_stats() {
            Ok(links) => links.into_iter().map(|l| (l.name.clone(), l)).collect(),
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the links' counters");
                // A socket in a bad state (a dump cut short) is not reused.
                self.netlink = None;
                BTreeMap::new()
            }
        }
    }

    /// The libnftables context, opened on first use.
    fn nft(&mut self) -> Option<&mut Nftables> {
        if self.nft.is_none() {
            match Nftables::new() {
                Ok(nft) => self.nft = Some(nft),
                Err(error) => tracing::warn!(%error, "metrics: cannot open libnftables"),
            }
        }
        self.nft.as_mut()
    }
}

/// A row per network, with the running ones' servers' counters.
fn network_rows(state: &AppState) -> Vec<NetworkRow> {
    let mut counters = state.services.counters();
    state
        .networks
        .list()
        .iter()
        .map(|summary| {
            let live = if summary.active {
                state.networks.live_definition(&summary.name).ok()
            } else {
                None
            };
            let mut row = NetworkRow::new(summary, live.as_ref());
            if let Some(c) = counters.remove(&summary.name) {
                row.set_services(c);
            }
            row
        })
        .collect()
}

/// A row per port (counted into its network's row), with its link's counters and its lease.
fn port_rows(
    state: &AppState,
    networks: &mut [NetworkRow],
    links: BTreeMap<String, LinkStats>,
) -> Vec<PortRow> {
    let leases = lease_addresses(networks);
    let mut by_name = network::by_name(networks);
    state
        .ports
        .list(None, true)
        .into_iter()
        .map(|port| {
            let row = PortRow::new(port, &links, &leases);
            if let Some(net) = by_name.get_mut(&row.network) {
                net.ports += 1;
            }
            row
        })
        .collect()
}

/// The leased IPv4 address of each client, by network and lower-case MAC.
fn lease_addresses(networks: &[NetworkRow]) -> BTreeMap<String, BTreeMap<String, String>> {
    networks
        .iter()
        .filter_map(|row| {
            let (_, leases) = row.services.as_ref()?.dhcp.as_ref()?;
            let by_mac = leases
                .iter()
                .map(|l| (mac_text(&l.mac), l.ip.to_string()))
                .collect();
            Some((row.name.clone(), by_mac))
        })
        .collect()
}

/// `52:54:00:aa:bb:cc`.
fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The original sources of the NATed connections, read only when a nat network runs;
/// `None` (logged) when conntrack cannot be dumped.
fn nat_sources(networks: &[NetworkRow]) -> Option<Vec<std::net::Ipv4Addr>> {
    if networks.iter().all(|n| n.subnets.is_empty()) {
        return None;
    }
    virtnet_host::conntrack::snat_sources_v4()
        .map_err(|error| tracing::debug!(%error, "metrics: cannot dump conntrack"))
        .ok()
}
