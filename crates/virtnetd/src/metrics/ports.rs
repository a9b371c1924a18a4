//! Per-port metrics (labels `port`, `domain`, `network`, `mac`, `ip`): the kernel's link
//! counters of each guest's tap, from one link dump per scrape, and the anti-spoofing drops.

use std::collections::HashMap;

use virtnet_host::LinkStats;
use virtnet_model::InterfaceSource;

use super::encode::{label_set, Encoder, Kind};
use crate::ports::PortLabels;

/// What the scrape knows of one guest port.
#[derive(Debug)]
pub(super) struct PortRow {
    /// The tap.
    pub port: String,
    /// The guest.
    pub domain: String,
    /// Its network ("" on a host bridge).
    pub network: String,
    /// The guest NIC's MAC.
    pub mac: String,
    /// The guest's IPv4 address from its lease ("" when it has none).
    pub ip: String,
    /// The tap's counters (absent when the link was not in the dump).
    pub stats: Option<LinkStats>,
    /// Frames the anti-spoofing rules dropped (guarded ports only).
    pub spoof_drops: Option<u64>,
}

impl PortRow {
    /// A row for `port`, with its link's counters from `links` (by name) and its address from
    /// `leases` (by network, then lower-case MAC).
    pub fn new(
        port: PortLabels,
        links: &HashMap<String, LinkStats>,
        leases: &HashMap<String, HashMap<String, String>>,
        spoof_drops: Option<u64>,
    ) -> PortRow {
        let network = match &port.source {
            InterfaceSource::Network(n) => n.clone(),
            InterfaceSource::Bridge(_) => String::new(),
        };
        let mac = port.mac.to_ascii_lowercase();
        let ip = leases
            .get(&network)
            .and_then(|by_mac| by_mac.get(&mac))
            .cloned()
            .unwrap_or_default();
        PortRow {
            stats: links.get(&port.name).cloned(),
            port: port.name,
            domain: port.domain,
            network,
            mac,
            ip,
            spoof_drops,
        }
    }

    fn labels(&self) -> [(&str, &str); 5] {
        [
            ("port", &self.port),
            ("domain", &self.domain),
            ("network", &self.network),
            ("mac", &self.mac),
            ("ip", &self.ip),
        ]
    }
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
pub(super) fn encode(e: &mut Encoder, rows: &[PortRow]) {
    // Each port's labels are escaped once for its nine families.
    let labels: Vec<String> = rows.iter().map(|r| label_set(&r.labels())).collect();
    for (name, help, value) in LINK_FAMILIES {
        e.family(name, Kind::Counter, help);
        for (row, labels) in rows.iter().zip(&labels) {
            if let Some(s) = &row.stats {
                e.sample_with(name, labels, value(s));
            }
        }
    }
    let name = "virtnet_port_spoof_drops_total";
    e.family(
        name,
        Kind::Counter,
        "Frames the anti-spoofing rules dropped from the guest since its port was guarded.",
    );
    for (row, labels) in rows.iter().zip(&labels) {
        if let Some(v) = row.spoof_drops {
            e.sample_with(name, labels, v);
        }
    }
}
