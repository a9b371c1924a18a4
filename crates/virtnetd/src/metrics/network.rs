//! Per-network metrics (labels `network`, `bridge`, `mode`): state, ports, DHCP pool use and
//! messages, DNS queries and forwarding latency, NAT connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use virtnet_dhcp::{DhcpConfig, Range};
use virtnet_model::{ForwardMode, Network};

use super::encode::{label_list, Encoder, Kind, Labels};
use crate::services::ServiceCounters;

/// One DHCP range of a running network, with its label.
#[derive(Debug)]
pub(super) struct RangeDef {
    /// The range as the DHCP server serves it.
    pub range: Range,
    /// `start-end`.
    pub label: String,
}

impl RangeDef {
    /// Addresses in the range.
    pub fn size(&self) -> u64 {
        self.range.len()
    }
}

/// What a network's samples take from its definition: the same from one scrape to the next
/// while the definition is ([`NetworkCache`]).
#[derive(Debug)]
pub(super) struct Fixed {
    /// Bridge device ("" when it has none).
    pub bridge: String,
    /// Forward mode.
    pub mode: &'static str,
    /// `network="…",bridge="…",mode="…"`, escaped once for all of its samples.
    pub label_text: String,
    /// Its DHCP ranges (running networks only).
    pub ranges: Vec<RangeDef>,
    /// Its IPv4 subnets (address, prefix), for counting NAT connections (nat networks).
    pub subnets: Vec<(Ipv4Addr, u8)>,
}

impl Fixed {
    fn new(name: &str, bridge: String, mode: &'static str, live: Option<&Network>) -> Fixed {
        let label_text = label_list(&[("network", name), ("bridge", &bridge), ("mode", mode)]);
        let (ranges, subnets) = match live {
            Some(net) => (dhcp_ranges(net), nat_subnets(net)),
            None => (Vec::new(), Vec::new()),
        };
        Fixed {
            bridge,
            mode,
            label_text,
            ranges,
            subnets,
        }
    }
}

/// Each network's [`Fixed`] part, kept from scrape to scrape: a scrape of hundreds of
/// networks otherwise builds each one's DHCP configuration and escapes its labels again. An
/// entry is used while its network's live definition is the same one (the cache holds it,
/// so its address cannot be another's) and its bridge and mode are; a network no scrape
/// listed is forgotten.
#[derive(Debug, Default)]
pub(super) struct NetworkCache {
    entries: HashMap<String, Cached>,
    /// The scrape being made: an entry of an earlier one is stale.
    scrape: u64,
}

#[derive(Debug)]
struct Cached {
    live: Option<Arc<Network>>,
    fixed: Arc<Fixed>,
    scrape: u64,
}

impl NetworkCache {
    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.scrape += 1;
    }

    /// The fixed part of network `summary` (`live`: its live definition when it runs).
    fn fixed(
        &mut self,
        summary: &virtnet_api::NetworkSummary,
        live: Option<&Arc<Network>>,
    ) -> Arc<Fixed> {
        let bridge = summary.bridge.as_deref().unwrap_or_default();
        let mode = summary.forward_mode.as_str();
        let same_live = |c: &Cached| match (&c.live, live) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let scrape = self.scrape;
        if let Some(c) = self.entries.get_mut(&summary.name) {
            if same_live(c) && c.fixed.bridge == bridge && c.fixed.mode == mode {
                c.scrape = scrape;
                return Arc::clone(&c.fixed);
            }
        }
        let fixed = Arc::new(Fixed::new(
            &summary.name,
            bridge.to_string(),
            mode,
            live.map(|l| &**l),
        ));
        self.entries.insert(
            summary.name.clone(),
            Cached {
                live: live.cloned(),
                fixed: Arc::clone(&fixed),
                scrape,
            },
        );
        fixed
    }

    /// Ends a scrape: the networks it did not list are forgotten.
    pub fn end(&mut self) {
        let scrape = self.scrape;
        self.entries.retain(|_, c| c.scrape == scrape);
    }
}

/// What the scrape knows of one network.
#[derive(Debug)]
pub(super) struct NetworkRow {
    /// Name.
    pub name: String,
    /// Running.
    pub active: bool,
    /// Guest ports attached to it.
    pub ports: u64,
    /// What its definition gives: labels, ranges, subnets.
    pub fixed: Arc<Fixed>,
    /// Leases (not expired) in each of `fixed.ranges`.
    pub in_use: Vec<u64>,
    /// Its servers' counters (running networks only).
    pub services: Option<ServiceCounters>,
    /// Source-NATed connections from its subnets (nat networks, when conntrack was read).
    pub nat_connections: Option<u64>,
}

impl NetworkRow {
    /// A row for a network, from its summary and (when running) its live definition.
    pub fn new(
        summary: virtnet_api::NetworkSummary,
        live: Option<&Arc<Network>>,
        cache: &mut NetworkCache,
    ) -> NetworkRow {
        let fixed = cache.fixed(&summary, live);
        NetworkRow {
            name: summary.name,
            active: summary.active,
            ports: 0,
            in_use: vec![0; fixed.ranges.len()],
            fixed,
            services: None,
            nat_connections: None,
        }
    }

    /// Counts the leases in each range from the running server's leases.
    pub fn set_services(&mut self, services: ServiceCounters) {
        if let Some((_, leases)) = &services.dhcp {
            self.in_use.iter_mut().for_each(|n| *n = 0);
            for lease in leases {
                if let Some(i) = self
                    .fixed
                    .ranges
                    .iter()
                    .position(|r| r.range.contains(lease.ip))
                {
                    self.in_use[i] += 1;
                }
            }
        }
        self.services = Some(services);
    }

    /// Counts the NATed connections whose original source is in one of the subnets.
    pub fn count_nat(&mut self, sources: &[Ipv4Addr]) {
        if self.fixed.subnets.is_empty() {
            return;
        }
        let masks: Vec<(u32, u32)> = self
            .fixed
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
            ("bridge", &self.fixed.bridge),
            ("mode", self.fixed.mode),
        ]
    }

    /// One sample of this network in the current family, with `more` labels after its own.
    fn sample(&self, e: &mut Encoder, name: &str, more: Labels<'_>, value: u64) {
        e.sample_after(name, &self.fixed.label_text, more, value);
    }
}

/// The IPv4 subnets of a nat network (none for other modes).
fn nat_subnets(net: &Network) -> Vec<(Ipv4Addr, u8)> {
    if net.forward.mode != ForwardMode::Nat {
        return Vec::new();
    }
    net.ips
        .iter()
        .filter_map(|ip| match ip.address {
            IpAddr::V4(a) => Some((a, ip.prefix_len())),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// The DHCPv4 ranges of a network, with their labels.
fn dhcp_ranges(net: &Network) -> Vec<RangeDef> {
    let Some(config) = DhcpConfig::from_network(net) else {
        return Vec::new();
    };
    config
        .ranges
        .into_iter()
        .map(|range| RangeDef {
            label: format!("{}-{}", range.start, range.end),
            range,
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
            for (r, used) in row.fixed.ranges.iter().zip(&row.in_use) {
                let v = if in_use { *used } else { r.size() };
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

    fn summary(name: &str, bridge: &str) -> virtnet_api::NetworkSummary {
        virtnet_api::NetworkSummary {
            name: name.into(),
            uuid: uuid::Uuid::nil(),
            active: true,
            persistent: true,
            autostart: false,
            bridge: Some(bridge.into()),
            forward_mode: ForwardMode::Nat,
        }
    }

    fn live(range_end: &str) -> Arc<Network> {
        Arc::new(
            Network::from_xml(&format!(
                "<network><name>n</name><forward mode='nat'/><bridge name='vb0'/>\
                 <ip address='10.1.2.1' prefix='24'><dhcp>\
                 <range start='10.1.2.10' end='{range_end}'/></dhcp></ip></network>"
            ))
            .expect("parses"),
        )
    }

    #[test]
    fn a_networks_fixed_part_is_kept_while_its_definition_is_the_same() {
        let mut cache = NetworkCache::default();
        let first = live("10.1.2.19");
        let row = |cache: &mut NetworkCache, live: &Arc<Network>, bridge: &str| {
            cache.begin();
            let row = NetworkRow::new(summary("n", bridge), Some(live), cache);
            cache.end();
            row
        };
        let a = row(&mut cache, &first, "vb0");
        assert_eq!(a.fixed.ranges.len(), 1);
        assert_eq!(a.fixed.ranges[0].size(), 10);
        assert_eq!(a.fixed.label_text, r#"network="n",bridge="vb0",mode="nat""#);
        assert_eq!(a.fixed.subnets, vec![(Ipv4Addr::new(10, 1, 2, 1), 24)]);
        let b = row(&mut cache, &first, "vb0");
        assert!(Arc::ptr_eq(&a.fixed, &b.fixed), "the same definition: kept");

        // Another live definition (a net-update, a restart): read again.
        let second = live("10.1.2.29");
        let c = row(&mut cache, &second, "vb0");
        assert!(!Arc::ptr_eq(&b.fixed, &c.fixed));
        assert_eq!(c.fixed.ranges[0].size(), 20);
        // The same definition shown with another bridge: read again.
        let d = row(&mut cache, &second, "vb1");
        assert_eq!(d.fixed.bridge, "vb1");

        // A scrape that does not list the network forgets it.
        cache.begin();
        cache.end();
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn nat_connections_are_counted_by_subnet() {
        let mut row = NetworkRow {
            name: "n".into(),
            active: true,
            ports: 0,
            fixed: Arc::new(Fixed {
                bridge: "b".into(),
                mode: "nat",
                label_text: String::new(),
                ranges: Vec::new(),
                subnets: vec![(Ipv4Addr::new(10, 1, 2, 1), 24)],
            }),
            in_use: Vec::new(),
            services: None,
            nat_connections: None,
        };
        row.count_nat(&[
            Ipv4Addr::new(10, 1, 2, 9),
            Ipv4Addr::new(10, 1, 3, 9),
            Ipv4Addr::new(10, 1, 2, 200),
        ]);
        assert_eq!(row.nat_connections, Some(2));
    }
}
