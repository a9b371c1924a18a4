//! Per-port metrics (labels `port`, `domain`, `network`, `mac`, `ip`): the kernel's link
//! counters of each guest's tap, from one link dump per scrape, and the anti-spoofing drops.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use virtnet_host::{LinkKey, LinkStats};
use virtnet_model::InterfaceSource;

use crate::kernel::DropCounts;

use super::encode::{label_set, Encoder, Kind};
use crate::ports::PortLabels;

/// The leased IPv4 address of each client, by network and MAC.
pub(super) type Leases<'a> = HashMap<(&'a str, [u8; 6]), Ipv4Addr>;

/// Every link's counters from one reading ([`virtnet_host::link_stats`]: the stats dump's,
/// by interface index, or `net/dev`'s, by name, when RTNL was held elsewhere), in the
/// kernel's order (by index).
#[derive(Debug, Default)]
pub(super) struct LinkTable {
    /// The counters.
    stats: Vec<LinkStats>,
    /// The stats dump's indexes, sorted, in the order of `stats` (empty for `net/dev`'s
    /// links): searched apart from the counters, they stay in the processor's cache.
    indexes: Vec<u32>,
    /// `net/dev`'s links: the positions in `stats` sorted by name, built by the first look-up
    /// that needs it (a port whose tap is not where it was at the last such scrape).
    by_name: OnceCell<Vec<u32>>,
}

/// Where a port's tap was found: kept from scrape to scrape in its [`PortEntry`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TapPlace {
    /// Its interface index (for the stats dump).
    index: Option<u32>,
    /// Its position in the last `net/dev` reading.
    slot: Option<u32>,
}

impl LinkTable {
    /// The table of one reading's `links`.
    pub fn new(mut links: Vec<LinkStats>) -> LinkTable {
        let index = |s: &LinkStats| match s.key {
            LinkKey::Index(i) => Some(i),
            LinkKey::Name(_) => None,
        };
        // The kernel dumps in index order: sorting is a check, not work.
        links.sort_by_key(|s| index(s).unwrap_or(0));
        LinkTable {
            indexes: links.iter().filter_map(index).collect(),
            stats: links,
            by_name: OnceCell::new(),
        }
    }

    /// The counters of the tap named `name`: by the index in `place` (looked up with
    /// `index_of` when it is not in the table: a new tap, one made again) in a stats dump's
    /// table, by name (first at `place`'s slot) in a `net/dev` table. `place` is updated.
    pub fn find(
        &self,
        name: &str,
        place: &mut TapPlace,
        index_of: impl Fn(&str) -> Option<u32>,
    ) -> Option<&LinkStats> {
        if !self.indexes.is_empty() {
            let get = |i: u32| {
                let at = self.indexes.binary_search(&i).ok()?;
                self.stats.get(at)
            };
            if let Some(s) = place.index.and_then(get) {
                return Some(s);
            }
            place.index = index_of(name);
            return place.index.and_then(get);
        }
        let name_at = |at: u32| match &self.stats.get(at as usize)?.key {
            LinkKey::Name(n) => Some(n.as_str()),
            LinkKey::Index(_) => None,
        };
        if let Some(at) = place.slot.filter(|&at| name_at(at) == Some(name)) {
            return self.stats.get(at as usize);
        }
        let sorted = self.by_name.get_or_init(|| {
            let mut at: Vec<u32> = (0..self.stats.len() as u32).collect();
            at.sort_unstable_by(|&a, &b| name_at(a).cmp(&name_at(b)));
            at
        });
        place.slot = sorted
            .binary_search_by(|&at| name_at(at).cmp(&Some(name)))
            .ok()
            .and_then(|i| sorted.get(i).copied());
        place.slot.and_then(|at| self.stats.get(at as usize))
    }
}

/// What the scrape keeps of each port from one scrape to the next: its five labels escaped
/// into one text, written again only when one of them changes (the port moved, its guest
/// was renamed, its lease came or went), and where its tap was found ([`TapPlace`]). A
/// port that is gone is forgotten by the next scrape.
///
/// The entries are kept in the order of the last scrape's ports (by name), and a port is
/// first looked for at its own position: from one scrape to the next, the cache is read
/// front to back, not at thousands of scattered places. Only when the ports changed are the
/// others found by name.
#[derive(Debug, Default)]
pub(super) struct PortCache {
    entries: Vec<Option<PortEntry>>,
}

/// One port's cached labels (see [`PortCache`]).
#[derive(Debug)]
struct PortEntry {
    /// The port's name and the labels `domain`, `network` and `mac` (lower case) the text was
    /// written from, one after the other, unescaped: compared in one place.
    values: Box<str>,
    /// Where each of them ends in `values`.
    ends: [usize; 4],
    /// `{port="…",domain="…",network="…",mac="…",ip="…"}`.
    text: Arc<str>,
    /// The address the `ip` label was written from.
    ip: Option<Ipv4Addr>,
    /// Where the tap was found.
    place: TapPlace,
}

/// What one scrape writes of one port.
#[derive(Debug)]
pub(super) struct PortSample<'a> {
    /// The port's label set ([`PortCache`]).
    labels: Arc<str>,
    /// The tap's counters (absent when the link was not in the dump).
    stats: Option<&'a LinkStats>,
    /// Frames the anti-spoofing rules dropped (guarded ports only).
    spoof_drops: Option<u64>,
}

impl PortCache {
    /// This scrape's samples of `ports`, in their order: their addresses from `leases`,
    /// their counters from `links` (the tap is named as the port; its index is looked up with
    /// `index_of` when the table is by index and it is not where it was), their anti-spoofing
    /// drops from `spoof`. Ports no longer listed are forgotten.
    pub fn samples<'l>(
        &mut self,
        ports: &[PortLabels],
        leases: &Leases<'_>,
        links: &'l LinkTable,
        spoof: &DropCounts,
        index_of: impl Fn(&str) -> Option<u32>,
    ) -> Vec<PortSample<'l>> {
        let mut old = std::mem::take(&mut self.entries);
        self.entries.reserve(ports.len());
        // Built at the first port not found at its own position.
        let mut by_name: Option<HashMap<String, usize>> = None;
        let mut out = Vec::with_capacity(ports.len());
        for (at, port) in ports.iter().enumerate() {
            let network = network_of(port);
            let mac = lower(&port.mac);
            let ip = mac_bytes(&mac).and_then(|m| leases.get(&(network, m)).copied());
            let values = [port.name.as_str(), &port.domain, network, &mac];
            let found = match old.get_mut(at) {
                Some(slot) if slot.as_ref().is_some_and(|e| e.name() == port.name) => slot.take(),
                _ => {
                    let by_name = by_name.get_or_insert_with(|| names(&old));
                    let at = by_name.get(&port.name).copied();
                    at.and_then(|i| old.get_mut(i)).and_then(Option::take)
                }
            };
            let mut entry = match found {
                Some(e) if e.ip == ip && e.written_from(values) => e,
                Some(e) => PortEntry::new(values, ip, e.place),
                None => PortEntry::new(values, ip, TapPlace::default()),
            };
            // None for a port without a tap (a parked port, a guest not running).
            let stats = links.find(&port.name, &mut entry.place, &index_of);
            out.push(PortSample {
                labels: Arc::clone(&entry.text),
                stats,
                spoof_drops: port.spoof_check.then(|| spoof.of(&port.name)),
            });
            self.entries.push(Some(entry));
        }
        // What is left in `old` are the ports that are gone: dropped here.
        out
    }

    /// How many ports the cache holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The position of each entry by port name.
fn names(entries: &[Option<PortEntry>]) -> HashMap<String, usize> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.as_ref()?.name().to_string(), i)))
        .collect()
}

impl PortEntry {
    /// The entry of a port with labels `values` (`port`, `domain`, `network`, `mac`) and
    /// address `ip`; its tap's `place` as far as known.
    fn new(values: [&str; 4], ip: Option<Ipv4Addr>, place: TapPlace) -> PortEntry {
        let ip_text = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let [port, domain, network, mac] = values;
        let text = label_set(&[
            ("port", port),
            ("domain", domain),
            ("network", network),
            ("mac", mac),
            ("ip", &ip_text),
        ]);
        let mut ends = [0; 4];
        let mut end = 0;
        for (v, e) in values.iter().zip(&mut ends) {
            end += v.len();
            *e = end;
        }
        PortEntry {
            values: values.concat().into(),
            ends,
            text: text.into(),
            ip,
            place,
        }
    }

    /// The port's name.
    fn name(&self) -> &str {
        self.values.get(..self.ends[0]).unwrap_or_default()
    }

    /// Whether the entry's text was written from labels `values`.
    fn written_from(&self, values: [&str; 4]) -> bool {
        let mut start = 0;
        for (v, &end) in values.iter().zip(&self.ends) {
            if self.values.get(start..end) != Some(*v) {
                return false;
            }
            start = end;
        }
        true
    }
}

/// A MAC in lower case (as the port gives it, most often).
fn lower(mac: &str) -> Cow<'_, str> {
    if mac.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(mac.to_ascii_lowercase())
    } else {
        Cow::Borrowed(mac)
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
                e.sample_with(name, &sample.labels, value(s));
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
            e.sample_with(name, &sample.labels, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, domain: &str, network: &str, mac: &str) -> PortLabels {
        PortLabels {
            name: name.into(),
            domain: domain.into(),
            source: InterfaceSource::Network(network.into()),
            mac: mac.into(),
            spoof_check: false,
        }
    }

    /// A link of `net/dev` (by name).
    fn link(name: &str, rx_bytes: u64) -> LinkStats {
        LinkStats {
            key: LinkKey::Name(name.into()),
            rx_bytes,
            ..LinkStats::default()
        }
    }

    /// A link of the stats dump (by index).
    fn indexed(index: u32, rx_bytes: u64) -> LinkStats {
        LinkStats {
            key: LinkKey::Index(index),
            rx_bytes,
            ..LinkStats::default()
        }
    }

    /// One scrape of `ports` through `cache`: the port families' text.
    fn scrape(
        cache: &mut PortCache,
        ports: &[PortLabels],
        leases: &Leases<'_>,
        links: &LinkTable,
    ) -> String {
        scrape_with(cache, ports, leases, links, &[])
    }

    /// [`scrape`], the taps' indexes being `taps`.
    fn scrape_with(
        cache: &mut PortCache,
        ports: &[PortLabels],
        leases: &Leases<'_>,
        links: &LinkTable,
        taps: &[(&str, u32)],
    ) -> String {
        let index_of = |name: &str| taps.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
        let samples = cache.samples(ports, leases, links, &DropCounts::default(), index_of);
        let mut e = Encoder::default();
        encode(&mut e, &samples);
        e.finish()
    }

    fn rx_line(labels: &str, value: u64) -> String {
        format!("\nvirtnet_port_receive_bytes_total{{{labels}}} {value}\n")
    }

    #[test]
    fn a_changed_label_shows_in_the_next_scrape_and_a_removed_port_is_forgotten() {
        let mut cache = PortCache::default();
        let links = LinkTable::new(vec![link("vnet1", 30), link("vnet0", 7)]);
        let mut ports = vec![
            port("vnet0", "vm1", "net1", "52:54:00:00:00:01"),
            port("vnet1", "vm2", "net1", "52:54:00:00:00:02"),
        ];
        let none = Leases::new();
        let text = scrape(&mut cache, &ports, &none, &links);
        let vnet0 = r#"port="vnet0",domain="vm1",network="net1",mac="52:54:00:00:00:01""#;
        assert!(
            text.contains(&rx_line(&format!("{vnet0},ip=\"\""), 7)),
            "{text}"
        );
        assert!(text.contains("port=\"vnet1\""), "{text}");

        // The guest is renamed: the next scrape has the new name, not the old one.
        ports[0].domain = "vm1-new".into();
        let text = scrape(&mut cache, &ports, &none, &links);
        assert!(text.contains("domain=\"vm1-new\""), "{text}");
        assert!(!text.contains("domain=\"vm1\""), "{text}");

        // Its lease comes: the address shows, and goes with the lease.
        let net1 = "net1".to_string();
        let leases = Leases::from([(
            (net1.as_str(), [0x52, 0x54, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 5),
        )]);
        let text = scrape(&mut cache, &ports, &leases, &links);
        assert!(
            text.contains("mac=\"52:54:00:00:00:01\",ip=\"10.0.0.5\"}"),
            "{text}"
        );
        let text = scrape(&mut cache, &ports, &none, &links);
        assert!(!text.contains("10.0.0.5"), "{text}");

        // It moves to another network, and gets another MAC (given in upper case: the label
        // is in lower case).
        ports[0].source = InterfaceSource::Network("net2".into());
        ports[0].mac = "52:54:00:00:00:AA".into();
        let text = scrape(&mut cache, &ports, &none, &links);
        let moved = r#"port="vnet0",domain="vm1-new",network="net2",mac="52:54:00:00:00:aa",ip="""#;
        assert!(text.contains(&rx_line(moved, 7)), "{text}");
        assert_eq!(text.matches("port=\"vnet0\"").count(), 8, "{text}");

        // Its tap is made again (another index: elsewhere in the kernel's list), the links
        // before it gone: the counters follow it.
        let relinked = LinkTable::new(vec![link("vnet1", 30), link("vnet0", 1)]);
        let text = scrape(&mut cache, &ports, &none, &relinked);
        assert!(text.contains(&rx_line(moved, 1)), "{text}");
        let relinked = LinkTable::new(vec![link("vnet0", 1), link("vnet1", 30)]);
        let text = scrape(&mut cache, &ports, &none, &relinked);
        assert!(text.contains(&rx_line(moved, 1)), "{text}");

        // vnet1 is detached: none of its series, and the cache forgets it.
        ports.remove(1);
        let text = scrape(&mut cache, &ports, &none, &relinked);
        assert!(!text.contains("vnet1"), "{text}");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_port_without_a_tap_has_labels_but_no_counters() {
        let mut cache = PortCache::default();
        let ports = [port("vnet3", "vm\"3", "n", "52:54:00:00:00:03")];
        let text = scrape(&mut cache, &ports, &Leases::new(), &LinkTable::default());
        assert!(!text.contains("vnet3"), "{text}");
        assert_eq!(cache.len(), 1);
        // The same labels, escaped, are recognised as unchanged scrape after scrape.
        let text = |cache: &PortCache| cache.entries[0].as_ref().map(|e| Arc::clone(&e.text));
        let before = text(&cache).expect("an entry");
        scrape(&mut cache, &ports, &Leases::new(), &LinkTable::default());
        assert!(Arc::ptr_eq(&before, &text(&cache).expect("an entry")));
    }

    #[test]
    fn labels_are_compared_value_by_value() {
        let entry = PortEntry::new(["p", "ab", "c", "m"], None, TapPlace::default());
        assert!(entry.written_from(["p", "ab", "c", "m"]));
        assert_eq!(entry.name(), "p");
        // The same bytes cut elsewhere are other labels.
        assert!(!entry.written_from(["pa", "b", "c", "m"]));
        assert!(!entry.written_from(["p", "a", "bc", "m"]));
        assert!(!entry.written_from(["p", "ab", "", "cm"]));
        assert!(!entry.written_from(["p", "ab", "c", "n"]));
    }

    #[test]
    fn ports_found_elsewhere_keep_their_entries_and_a_new_one_gets_its_own() {
        let mut cache = PortCache::default();
        let links = LinkTable::new(vec![
            link("vnet1", 10),
            link("vnet2", 20),
            link("vnet0", 30),
        ]);
        let mut ports = vec![
            port("vnet1", "vm1", "n", "52:54:00:00:00:01"),
            port("vnet2", "vm2", "n", "52:54:00:00:00:02"),
        ];
        scrape(&mut cache, &ports, &Leases::new(), &links);
        let texts = |cache: &PortCache| -> Vec<Arc<str>> {
            cache
                .entries
                .iter()
                .flatten()
                .map(|e| Arc::clone(&e.text))
                .collect()
        };
        let before = texts(&cache);
        // vnet0 comes first: the others are one place further on.
        ports.insert(0, port("vnet0", "vm0", "n", "52:54:00:00:00:00"));
        let text = scrape(&mut cache, &ports, &Leases::new(), &links);
        let after = texts(&cache);
        assert_eq!(after.len(), 3);
        assert!(
            after[0].contains("port=\"vnet0\",domain=\"vm0\""),
            "{}",
            after[0]
        );
        assert!(Arc::ptr_eq(&before[0], &after[1]) && Arc::ptr_eq(&before[1], &after[2]));
        for (labels, v) in [(&after[0], 30), (&after[1], 10), (&after[2], 20)] {
            let line = format!("\nvirtnet_port_receive_bytes_total{labels} {v}\n");
            assert!(text.contains(&line), "{text}");
        }
    }

    #[test]
    fn counters_are_found_by_index_in_a_dump_and_by_name_in_net_dev_alike() {
        let mut cache = PortCache::default();
        let ports = vec![
            port("vnet0", "vm0", "n", "52:54:00:00:00:00"),
            port("vnet1", "vm1", "n", "52:54:00:00:00:01"),
        ];
        let none = Leases::new();
        let taps = [("vnet0", 7), ("vnet1", 4)];
        let rx = |text: &str, port: &str| -> Option<u64> {
            let start = format!("virtnet_port_receive_bytes_total{{port=\"{port}\"");
            let line = text.lines().find(|l| l.starts_with(&start))?;
            line.rsplit_once(' ')?.1.parse().ok()
        };
        // A dump, then net/dev (RTNL held), then a dump again, then net/dev again: each
        // scrape shows its own reading's counters.
        let dump = LinkTable::new(vec![indexed(4, 40), indexed(7, 70)]);
        let text = scrape_with(&mut cache, &ports, &none, &dump, &taps);
        assert_eq!(
            (rx(&text, "vnet0"), rx(&text, "vnet1")),
            (Some(70), Some(40))
        );
        let net_dev = LinkTable::new(vec![link("lo", 1), link("vnet1", 41), link("vnet0", 71)]);
        let text = scrape(&mut cache, &ports, &none, &net_dev);
        assert_eq!(
            (rx(&text, "vnet0"), rx(&text, "vnet1")),
            (Some(71), Some(41))
        );
        // The indexes were kept: no look-up needed.
        let dump = LinkTable::new(vec![indexed(4, 42), indexed(7, 72)]);
        let text = scrape_with(&mut cache, &ports, &none, &dump, &[]);
        assert_eq!(
            (rx(&text, "vnet0"), rx(&text, "vnet1")),
            (Some(72), Some(42))
        );
        // vnet1's tap is gone from both lists: its labels stay, its counters do not.
        let net_dev = LinkTable::new(vec![link("lo", 1), link("vnet0", 73)]);
        let text = scrape(&mut cache, &ports, &none, &net_dev);
        assert_eq!((rx(&text, "vnet0"), rx(&text, "vnet1")), (Some(73), None));
    }
}
