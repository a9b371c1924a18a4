//! Per-port metrics (labels `port`, `domain`, `network`, `mac`, `ip`): the kernel's link
//! counters of each guest's tap, from one link dump per scrape, and the anti-spoofing drops.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use virtnet_host::LinkStats;
use virtnet_model::InterfaceSource;

use super::encode::{label_set, Encoder, Kind};
use crate::ports::PortLabels;

/// The leased IPv4 address of each client, by network and MAC.
pub(super) type Leases<'a> = HashMap<(&'a str, [u8; 6]), Ipv4Addr>;

/// Every link's counters from one stats dump, sorted by interface index.
#[derive(Debug, Default)]
pub(super) struct LinkTable(Vec<LinkStats>);

impl LinkTable {
    /// The table of the dump's `links`.
    pub fn new(mut links: Vec<LinkStats>) -> LinkTable {
        // The kernel dumps in index order: sorting is a check, not work.
        links.sort_unstable_by_key(|s| s.index);
        LinkTable(links)
    }

    /// The counters of the link with interface index `index`.
    pub fn get(&self, index: u32) -> Option<&LinkStats> {
        let at = self.0.binary_search_by_key(&index, |s| s.index).ok()?;
        self.0.get(at)
    }
}

/// What the scrape keeps of each port from one scrape to the next: its five labels escaped
/// into one text, rewritten only when one of them changes (the port moved, its guest was
/// renamed, its lease came or went), and its tap's interface index. A port that is gone is
/// forgotten by the next scrape.
#[derive(Debug, Default)]
pub(super) struct PortCache {
    entries: HashMap<String, PortEntry>,
    /// Scrapes so far: an entry that the current one did not see is removed.
    scrape: u64,
}

/// One port's cached labels (see [`PortCache`]).
#[derive(Debug, Default)]
struct PortEntry {
    /// The labels the text was written from.
    domain: String,
    network: String,
    /// The MAC as the port gives it (the label is its lower-case form).
    mac: String,
    ip: Option<Ipv4Addr>,
    /// `{port="…",domain="…",network="…",mac="…",ip="…"}`.
    text: String,
    /// The tap's interface index when it was last found.
    index: Option<u32>,
    /// The last scrape that saw the port.
    seen: u64,
}

/// What one scrape writes of one port.
#[derive(Debug)]
pub(super) struct PortSample<'a> {
    /// The port's label set ([`PortCache`]).
    labels: &'a str,
    /// The tap's counters (absent when the link was not in the dump).
    stats: Option<&'a LinkStats>,
    /// Frames the anti-spoofing rules dropped (guarded ports only).
    spoof_drops: Option<u64>,
}

impl PortCache {
    /// Brings the cache to this scrape's `ports`: their addresses from `leases`, their taps'
    /// indexes checked against the dump `links`, looked up with `index_of` when not found
    /// there (a new port, a tap made again). Ports no longer listed are forgotten.
    pub fn refresh(
        &mut self,
        ports: &[PortLabels],
        leases: &Leases<'_>,
        links: &LinkTable,
        index_of: impl Fn(&str) -> Option<u32>,
    ) {
        self.scrape += 1;
        for port in ports {
            let network = network_of(port);
            let mac = mac_bytes(&port.mac);
            let ip = mac.and_then(|m| leases.get(&(network, m)).copied());
            let entry = match self.entries.get_mut(port.name.as_str()) {
                Some(entry) => entry,
                None => self.entries.entry(port.name.clone()).or_default(),
            };
            if entry.text.is_empty()
                || entry.domain != port.domain
                || entry.network != network
                || entry.mac != port.mac
                || entry.ip != ip
            {
                *entry = PortEntry::new(port, network, ip, entry.index);
            }
            entry.seen = self.scrape;
            if entry.index.is_none_or(|i| links.get(i).is_none()) {
                // No tap now (a parked port, a guest not running): no counters.
                entry.index = index_of(&port.name);
            }
        }
        let now = self.scrape;
        self.entries.retain(|_, e| e.seen == now);
    }

    /// This scrape's samples of `ports` (in their order), after [`PortCache::refresh`].
    pub fn samples<'a>(
        &'a self,
        ports: &[PortLabels],
        links: &'a LinkTable,
        spoof: &HashMap<String, u64>,
    ) -> Vec<PortSample<'a>> {
        ports
            .iter()
            .filter_map(|port| {
                let entry = self.entries.get(port.name.as_str())?;
                Some(PortSample {
                    labels: &entry.text,
                    stats: entry.index.and_then(|i| links.get(i)),
                    spoof_drops: port
                        .spoof_check
                        .then(|| spoof.get(&port.name).copied())
                        .flatten(),
                })
            })
            .collect()
    }

    /// How many ports the cache holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl PortEntry {
    fn new(port: &PortLabels, network: &str, ip: Option<Ipv4Addr>, index: Option<u32>) -> Self {
        let mac = port.mac.to_ascii_lowercase();
        let ip_text = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let text = label_set(&[
            ("port", &port.name),
            ("domain", &port.domain),
            ("network", network),
            ("mac", &mac),
            ("ip", &ip_text),
        ]);
        PortEntry {
            domain: port.domain.clone(),
            network: network.to_string(),
            mac: port.mac.clone(),
            ip,
            text,
            index,
            seen: 0,
        }
    }
}

/// The network a port is on ("" on a host bridge).
pub(super) fn network_of(port: &PortLabels) -> &str {
    match &port.source {
        InterfaceSource::Network(n) => n,
        InterfaceSource::Bridge(_) => "",
    }
}

/// `52:54:00:aa:bb:cc` (either case) as bytes; `None` when it is not a MAC.
fn mac_bytes(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        let part = parts.next().filter(|p| p.len() == 2)?;
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The link counter families: name, help, and the value.
type LinkFamily = (&'static str, &'static str, fn(&LinkStats) -> u64);

const LINK_FAMILIES: [LinkFamily; 8] = [
    (
        "virtnet_port_receive_bytes_total",
        "Bytes the host received from the guest on its tap.",
        |s| s.rx_bytes,
    ),
    (
        "virtnet_port_transmit_bytes_total",
        "Bytes the host sent to the guest on its tap.",
        |s| s.tx_bytes,
    ),
    (
        "virtnet_port_receive_packets_total",
        "Packets the host received from the guest on its tap.",
        |s| s.rx_packets,
    ),
    (
        "virtnet_port_transmit_packets_total",
        "Packets the host sent to the guest on its tap.",
        |s| s.tx_packets,
    ),
    (
        "virtnet_port_receive_errors_total",
        "Receive errors of the guest's tap.",
        |s| s.rx_errors,
    ),
    (
        "virtnet_port_transmit_errors_total",
        "Transmit errors of the guest's tap.",
        |s| s.tx_errors,
    ),
    (
        "virtnet_port_receive_dropped_total",
        "Packets dropped on receive by the guest's tap.",
        |s| s.rx_dropped,
    ),
    (
        "virtnet_port_transmit_dropped_total",
        "Packets dropped on transmit by the guest's tap.",
        |s| s.tx_dropped,
    ),
];

/// Writes the per-port families.
pub(super) fn encode(e: &mut Encoder, samples: &[PortSample<'_>]) {
    for (name, help, value) in LINK_FAMILIES {
        e.family(name, Kind::Counter, help);
        for sample in samples {
            if let Some(s) = sample.stats {
                e.sample_with(name, sample.labels, value(s));
            }
        }
    }
    let name = "virtnet_port_spoof_drops_total";
    e.family(
        name,
        Kind::Counter,
        "Frames the anti-spoofing rules dropped from the guest since its port was guarded.",
    );
    for sample in samples {
        if let Some(v) = sample.spoof_drops {
            e.sample_with(name, sample.labels, v);
        }
    }
}
