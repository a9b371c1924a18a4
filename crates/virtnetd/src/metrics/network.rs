//! Per-network metrics (labels `network`, `bridge`, `mode`): state, ports, DHCP pool use and
//! messages, DNS queries and forwarding latency, NAT connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use virtnet_dhcp::DhcpConfig;
use virtnet_model::{ForwardMode, Network};

use super::encode::{label_list, Encoder, Kind, Labels};
use crate::services::ServiceCounters;

/// One DHCP range of a running network.
#[derive(Debug)]
pub(super) struct RangeUse {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address.
    pub end: Ipv4Addr,
    /// `start-end`.
    pub label: String,
    /// Addresses in the range.
    pub size: u64,
    /// Leases (not expired) of addresses in the range.
    pub in_use: u64,
}

/// What the scrape knows of one network.
#[derive(Debug)]
pub(super) struct NetworkRow {
    /// Name.
    pub name: String,
    /// Bridge device ("" when it has none).
    pub bridge: String,
    /// Forward mode.
    pub mode: &'static str,
    /// Running.
    pub active: bool,
    /// Guest ports attached to it.
    pub ports: u64,
    /// Its DHCP ranges (running networks only).
    pub ranges: Vec<RangeUse>,
    /// Its servers' counters (running networks only).
    pub services: Option<ServiceCounters>,
    /// Its IPv4 subnets (address, prefix), for counting NAT connections.
    pub subnets: Vec<(Ipv4Addr, u8)>,
    /// Source-NATed connections from its subnets (nat networks, when conntrack was read).
    pub nat_connections: Option<u64>,
    /// `network="…",bridge="…",mode="…"`, escaped once for all of its samples.
    pub label_text: String,
}

impl NetworkRow {
    /// A row for a network, from its summary and (when running) its live definition.
    pub fn new(summary: virtnet_api::NetworkSummary, live: Option<&Network>) -> NetworkRow {
        let bridge = summary.bridge.unwrap_or_default();
        let mode = summary.forward_mode.as_str();
        let label_text = label_list(&[
            ("network", &summary.name),
            ("bridge", &bridge),
            ("mode", mode),
        ]);
        let mut row = NetworkRow {
            name: summary.name,
            bridge,
            mode,
            active: summary.active,
            ports: 0,
            ranges: Vec::new(),
            services: None,
            subnets: Vec::new(),
            nat_connections: None,
            label_text,
        };
        if let Some(net) = live {
            row.ranges = dhcp_ranges(net);
            if net.forward.mode == ForwardMode::Nat {
                row.subnets = net
                    .ips
                    .iter()
                    .filter_map(|ip| match ip.address {
                        IpAddr::V4(a) => Some((a, ip.prefix_len())),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
            }
        }
        row
    }

    /// Counts the leases in each range from the running server's leases.
    pub fn set_services(&mut self, services: ServiceCounters) {
        if let Some((_, leases)) = &services.dhcp {
            for range in &mut self.ranges {
                range.in_use = 0;
            }
            for lease in leases {
                if let Some(r) = self
                    .ranges
                    .iter_mut()
                    .find(|r| r.start <= lease.ip && lease.ip <= r.end)
                {
                    r.in_use += 1;
                }
            }
        }
        self.services = Some(services);
    }

    /// Counts the NATed connections whose original source is in one of the subnets.
    pub fn count_nat(&mut self, sources: &[Ipv4Addr]) {
        if self.subnets.is_empty() {
            return;
        }
        let masks: Vec<(u32, u32)> = self
            .subnets
            .iter()
            .map(|(a, p)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*p)).unwrap_or(0);
                (u32::from(*a) & mask, mask)
            })
            .collect();
        let n = sources
            .iter()
            .filter(|s| masks.iter().any(|(net, m)| u32::from(**s) & m == *net))
            .count();
        self.nat_connections = Some(n as u64);
    }

    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("network", &self.name),
            ("bridge", &self.bridge),
            ("mode", self.mode),
        ]
    }

    /// One sample of this network in the current family, with `more` labels after its own.
    fn sample(&self, e: &mut Encoder, name: &str, more: Labels<'_>, value: u64) {
        e.sample_after(name, &self.label_text, more, value);
    }
}

/// The DHCPv4 ranges of a network, with their sizes.
fn dhcp_ranges(net: &Network) -> Vec<RangeUse> {
    let Some(config) = DhcpConfig::from_network(net) else {
        return Vec::new();
    };
    config
        .ranges
        .iter()
        .map(|r| RangeUse {
            start: r.start,
            end: r.end,
            label: format!("{}-{}", r.start, r.end),
            size: u64::from(u32::from(r.end).saturating_sub(u32::from(r.start))) + 1,
            in_use: 0,
        })
        .collect()
}

/// Writes one gauge or counter family with one sample per row that has a value.
fn per_network(
    e: &mut Encoder,
    rows: &[NetworkRow],
    (name, kind, help): (&str, Kind, &str),
    value: impl Fn(&NetworkRow) -> Option<u64>,
) {
    e.family(name, kind, help);
    for row in rows {
        if let Some(v) = value(row) {
            row.sample(e, name, &[], v);
        }
    }
}

/// Writes the per-network families.
pub(super) fn encode(e: &mut Encoder, rows: &[NetworkRow]) {
    per_network(
        e,
        rows,
        (
            "virtnet_network_active",
            Kind::Gauge,
            "1 when the network runs, else 0.",
        ),
        |r| Some(u64::from(r.active)),
    );
    per_network(
        e,
        rows,
        (
            "virtnet_network_ports",
            Kind::Gauge,
            "Guest ports attached to the network.",
        ),
        |r| Some(r.ports),
    );
    encode_ranges(e, rows);
    encode_dhcp(e, rows);
    encode_dns(e, rows);
    per_network(
        e,
        rows,
        (
            "virtnet_nat_connections",
            Kind::Gauge,
            "Tracked source-NATed IPv4 connections from the network's subnets (conntrack).",
        ),
        |r| r.nat_connections,
    );
}

fn encode_ranges(e: &mut Encoder, rows: &[NetworkRow]) {
    for (name, help, in_use) in [
        (
            "virtnet_dhcp_leases",
            "DHCPv4 leases in use (not expired) in the range.",
            true,
        ),
        (
            "virtnet_dhcp_pool_size",
            "Addresses in the DHCPv4 range.",
            false,
        ),
    ] {
        e.family(name, Kind::Gauge, help);
        for row in rows {
            for r in &row.ranges {
                let v = if in_use { r.in_use } else { r.size };
                row.sample(e, name, &[("range", &r.label)], v);
            }
        }
    }
}

fn encode_dhcp(e: &mut Encoder, rows: &[NetworkRow]) {
    let stats = |r: &NetworkRow| r.services.as_ref()?.dhcp.as_ref().map(|d| d.0);
    let name = "virtnet_dhcp_messages_total";
    e.family(
        name,
        Kind::Counter,
        "DHCPv4 messages by type: received (discover, request, decline, release, inform) and \
         sent (offer, ack, nak).",
    );
    for row in rows {
        let Some(s) = stats(row) else { continue };
        for (kind, direction, v) in [
            ("discover", "received", s.discovers),
            ("request", "received", s.requests),
            ("decline", "received", s.declines),
            ("release", "received", s.releases),
            ("inform", "received", s.informs),
            ("offer", "sent", s.offers),
            ("ack", "sent", s.acks),
            ("nak", "sent", s.naks),
        ] {
            row.sample(e, name, &[("type", kind), ("direction", direction)], v);
        }
    }
    let name = "virtnet_dhcp_dropped_total";
    e.family(
        name,
        Kind::Counter,
        "DHCPv4 datagrams not served, by reason (malformed, rate_limited, unknown_port).",
    );
    for row in rows {
        let Some(s) = stats(row) else { continue };
        for (reason, v) in [
            ("malformed", s.malformed),
            ("rate_limited", s.rate_limited),
            ("unknown_port", s.unknown_port),
        ] {
            row.sample(e, name, &[("reason", reason)], v);
        }
    }
}

fn encode_dns(e: &mut Encoder, rows: &[NetworkRow]) {
    fn dns(r: &NetworkRow) -> Option<&crate::services::DnsCounters> {
        r.services.as_ref()?.dns.as_ref()
    }
    let name = "virtnet_dns_queries_total";
    e.family(
        name,
        Kind::Counter,
        "DNS queries by question type and response code (\"none\": not answered).",
    );
    for row in rows {
        let Some(d) = dns(row) else { continue };
        for (qtype, rcode, v) in &d.by_type {
            row.sample(e, name, &[("type", qtype), ("rcode", rcode)], *v);
        }
    }
    let name = "virtnet_dns_forwarded_total";
    e.family(name, Kind::Counter, "DNS queries sent upstream.");
    for row in rows {
        if let Some(d) = dns(row) {
            row.sample(e, name, &[], d.stats.forwarded);
        }
    }
    let name = "virtnet_dns_forward_duration_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Time of forwarded DNS queries, to the upstream's answer or the timeout.",
    );
    // A network's series appear with its first forwarded query (as a client library's labelled
    // histogram does): fifteen lines of zeros for each of hundreds of networks that never
    // forward would be a fifth of the exposition.
    for row in rows {
        if let Some(d) = dns(row).filter(|d| d.forward_latency.count > 0) {
            e.histogram(name, &row.labels(), &d.forward_latency);
        }
    }
}

/// Each row's position by network name, for the ports to be counted into.
pub(super) fn by_name(rows: &[NetworkRow]) -> HashMap<&str, usize> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_connections_are_counted_by_subnet() {
        let mut row = NetworkRow {
            name: "n".into(),
            bridge: "b".into(),
            mode: "nat",
            active: true,
            ports: 0,
            ranges: Vec::new(),
            services: None,
            subnets: vec![(Ipv4Addr::new(10, 1, 2, 1), 24)],
            nat_connections: None,
            label_text: String::new(),
        };
        row.count_nat(&[
            Ipv4Addr::new(10, 1, 2, 9),
            Ipv4Addr::new(10, 1, 3, 9),
            Ipv4Addr::new(10, 1, 2, 200),
        ]);
        assert_eq!(row.nat_connections, Some(2));
    }
}
