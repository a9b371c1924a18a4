//! A network's firewall, and the nftables scripts that install and remove it.
//!
//! All of virtnet's rules live in one table, `inet virtnet`, which nothing else touches. Its
//! base chains hook forward, input, output and postrouting, and each holds one lookup in a
//! verdict map keyed by interface name (or, for NAT, by source subnet) that jumps to the
//! network's own chains. A packet therefore costs one hash lookup per hook however many
//! networks run, and a network is added or removed by adding or removing its chains and map
//! elements, never by editing a shared chain.
//!
//! The verdicts equal libvirt's (`tests/networkxml2firewalldata` in libvirt 9.0 and 10.x):
//!
//! | traffic | nat | route | isolated |
//! |---|---|---|---|
//! | guest → host DHCP/DNS (TFTP) | accept | accept | accept |
//! | guest → guest on the bridge, routed by the host | accept | accept | accept |
//! | guest (subnet) → outside | accept, masquerade | accept | reject |
//! | outside → guest | established/related only | accept | reject |
//! | anything else to or from the bridge | reject | reject | reject |
//!
//! libvirt checks "to a guest" before "from a guest" (its `FWI` chain precedes `FWO`); the
//! forward chain keeps that order, which is what stops one nat network from opening
//! connections into another.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use virtnet_model::{AddrRange, ForwardMode, Network};

use crate::Subnet;

/// The table's family and name.
pub const TABLE: &str = "inet virtnet";

/// libvirt's masquerade source-port range for TCP and UDP.
const DEFAULT_NAT_PORTS: (u16, u16) = (1024, 65535);

/// What the firewall of one network must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFirewall {
    /// The network's bridge.
    pub bridge: String,
    /// nat, route or none (isolated). `open` networks have no firewall.
    pub mode: ForwardMode,
    /// `<forward dev>`: forwarding only through this interface.
    pub forward_dev: Option<String>,
    /// IPv4 subnets of the network.
    pub v4: Vec<Subnet>,
    /// IPv6 subnets of the network.
    pub v6: Vec<Subnet>,
    /// `<nat ipv6='yes'>`: masquerade IPv6 too. Otherwise IPv6 is routed, as in libvirt.
    pub nat_v6: bool,
    /// `<nat><address>`: SNAT to this range instead of masquerading.
    pub nat_address: Option<AddrRange<Ipv4Addr>>,
    /// Source ports for TCP and UDP NAT.
    pub nat_ports: (u16, u16),
    /// A `<tftp>` server runs on the network.
    pub tftp: bool,
}

impl NetworkFirewall {
    pub(crate) fn for_network(net: &Network, bridge: &str) -> NetworkFirewall {
        let subnets = |v4: bool| {
            net.ips
                .iter()
                .filter(|ip| ip.address.is_ipv4() == v4)
                .map(|ip| Subnet::of(ip.address, ip.prefix_len()))
                .collect()
        };
        let nat = net.forward.nat.as_ref();
        NetworkFirewall {
            bridge: bridge.to_string(),
            mode: net.forward.mode,
            forward_dev: net.forward.dev().map(str::to_string),
            v4: subnets(true),
            v6: subnets(false),
            nat_v6: nat.and_then(|n| n.ipv6).unwrap_or(false),
            nat_address: nat.and_then(|n| n.address),
            nat_ports: nat
                .and_then(|n| n.port)
                .map(|p| (p.start, p.end))
                .unwrap_or(DEFAULT_NAT_PORTS),
            tftp: net.ips.iter().any(|ip| ip.tftp_root.is_some()),
        }
    }

    /// The stem of this network's chain names: the bridge name with anything outside
    /// `[A-Za-z0-9_]` hex-escaped, so chain names stay plain nft identifiers.
    pub fn chain_stem(&self) -> String {
        let mut stem = String::with_capacity(self.bridge.len());
        for b in self.bridge.bytes() {
            if b.is_ascii_alphanumeric() {
                stem.push(b as char);
            } else {
                let _ = write!(stem, "_{b:02x}");
            }
        }
        stem
    }

    fn chain(&self, role: &str) -> String {
        format!("{}_{role}", self.chain_stem())
    }

    fn masquerades(&self) -> bool {
        self.mode == ForwardMode::Nat
            && (!self.v4.is_empty() || (self.nat_v6 && !self.v6.is_empty()))
    }

    /// The chains this network owns, with their rules.
    fn chains(&self) -> Vec<(String, Vec<String>)> {
        let mut chains = vec![
            (self.chain("fwd_in"), self.forward_in_rules()),
            (self.chain("fwd_out"), self.forward_out_rules()),
            (self.chain("host_in"), self.host_rules(true)),
            (self.chain("host_out"), self.host_rules(false)),
        ];
        if self.masquerades() {
            chains.push((self.chain("nat"), self.nat_rules()));
        }
        chains
    }

    /// The map elements that lead to this network's chains: `(map, key, chain)`.
    fn elements(&self) -> Vec<(&'static str, String, String)> {
        let quoted = format!("\"{}\"", self.bridge);
        let mut out = vec![
            ("guest_in", quoted.clone(), self.chain("fwd_in")),
            ("guest_out", quoted.clone(), self.chain("fwd_out")),
            ("host_in", quoted.clone(), self.chain("host_in")),
            ("host_out", quoted, self.chain("host_out")),
        ];
        if self.masquerades() {
            for s in &self.v4 {
                out.push(("nat4", s.to_string(), self.chain("nat")));
            }
            if self.nat_v6 {
                for s in &self.v6 {
                    out.push(("nat6", s.to_string(), self.chain("nat")));
                }
            }
        }
        out
    }

    fn dev_match(&self, dir: &str) -> String {
        match &self.forward_dev {
            Some(dev) => format!("{dir} \"{dev}\" "),
            None => String::new(),
        }
    }

    /// Packets the host forwards onto the bridge.
    fn forward_in_rules(&self) -> Vec<String> {
        let mut rules = vec![format!("iifname \"{}\" accept", self.bridge)];
        if self.mode != ForwardMode::None {
            let iif = self.dev_match("iifname");
            for s in &self.v4 {
                rules.push(match self.mode {
                    ForwardMode::Nat => {
                        format!("{iif}ip daddr {s} ct state established,related accept")
                    }
                    _ => format!("{iif}ip daddr {s} accept"),
                });
            }
            for s in &self.v6 {
                rules.push(if self.mode == ForwardMode::Nat && self.nat_v6 {
                    format!("{iif}ip6 daddr {s} ct state established,related accept")
                } else {
                    format!("{iif}ip6 daddr {s} accept")
                });
            }
        }
        rules.push("reject".to_string());
        rules
    }

    /// Packets the host forwards from the bridge.
    fn forward_out_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        if self.mode != ForwardMode::None {
            let oif = self.dev_match("oifname");
            for s in &self.v4 {
                rules.push(format!("ip saddr {s} {oif}accept"));
            }
            for s in &self.v6 {
                rules.push(format!("ip6 saddr {s} {oif}accept"));
            }
        }
        rules.push("reject".to_string());
        rules
    }

    /// DHCP, DNS and TFTP between guests and the host: `inbound` from guests (server ports),
    /// otherwise to guests (client ports for DHCP).
    fn host_rules(&self, inbound: bool) -> Vec<String> {
        let mut rules = Vec::new();
        if !self.v4.is_empty() {
            let dhcp = if inbound { 67 } else { 68 };
            rules.push(format!(
                "meta nfproto ipv4 meta l4proto {{ tcp, udp }} th dport {{ 53, {dhcp} }} accept"
            ));
            if self.tftp {
                rules.push("meta nfproto ipv4 udp dport 69 accept".to_string());
            }
        }
        if !self.v6.is_empty() {
            let dhcp = if inbound { 547 } else { 546 };
            rules
                .push("meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 accept".to_string());
            rules.push(format!("meta nfproto ipv6 udp dport {dhcp} accept"));
        }
        rules
    }

    /// Source NAT for traffic leaving the network's subnets.
    fn nat_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        let oif = self.dev_match("oifname");
        let (p1, p2) = self.nat_ports;
        for s in &self.v4 {
            let m = format!("ip saddr {s}");
            rules.push(format!("{m} ip daddr 224.0.0.0/24 {oif}return"));
            rules.push(format!("{m} ip daddr 255.255.255.255 {oif}return"));
            let (with_ports, plain) = match self.nat_address {
                Some(r) => {
                    let to = if r.start == r.end {
                        r.start.to_string()
                    } else {
                        format!("{}-{}", r.start, r.end)
                    };
                    (
                        format!("snat ip to {to}:{p1}-{p2}"),
                        format!("snat ip to {to}"),
                    )
                }
                None => (
                    format!("masquerade to :{p1}-{p2}"),
                    "masquerade".to_string(),
                ),
            };
            for proto in ["tcp", "udp"] {
                rules.push(format!(
                    "meta l4proto {proto} {m} ip daddr != {s} {oif}{with_ports}"
                ));
            }
            rules.push(format!("{m} ip daddr != {s} {oif}{plain}"));
        }
        if self.nat_v6 {
            for s in &self.v6 {
                let m = format!("ip6 saddr {s}");
                rules.push(format!("{m} ip6 daddr ff02::/16 {oif}return"));
                for proto in ["tcp", "udp"] {
                    rules.push(format!(
                        "meta l4proto {proto} {m} ip6 daddr != {s} {oif}masquerade to :{p1}-{p2}"
                    ));
                }
                rules.push(format!("{m} ip6 daddr != {s} {oif}masquerade"));
            }
        }
        rules
    }
}

/// The maps of the table: name and type.
const MAPS: [(&str, &str); 6] = [
    ("guest_in", "type ifname : verdict ;"),
    ("guest_out", "type ifname : verdict ;"),
    ("host_in", "type ifname : verdict ;"),
    ("host_out", "type ifname : verdict ;"),
    ("nat4", "type ipv4_addr : verdict ; flags interval ;"),
    ("nat6", "type ipv6_addr : verdict ; flags interval ;"),
];

/// The base chains, hooked into the kernel, and their one dispatch rule each.
fn base_chains() -> String {
    format!(
        "\
add chain {TABLE} forward {{ type filter hook forward priority filter ; policy accept ; }}
add rule {TABLE} forward oifname vmap @guest_in
add rule {TABLE} forward iifname vmap @guest_out
add chain {TABLE} input {{ type filter hook input priority filter ; policy accept ; }}
add rule {TABLE} input iifname vmap @host_in
add chain {TABLE} output {{ type filter hook output priority filter ; policy accept ; }}
add rule {TABLE} output oifname vmap @host_out
add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}
add rule {TABLE} postrouting ip saddr vmap @nat4
add rule {TABLE} postrouting ip6 saddr vmap @nat6
"
    )
}

/// The whole table for `networks`, created from scratch: the networks' chains first, then the
/// maps with their elements inline (nft 1.0.6 refuses a separate `add element` into an
/// interval map created in the same transaction), then the base chains that use the maps.
fn table_script(networks: &[&NetworkFirewall]) -> String {
    let mut s = format!("add table {TABLE}\n");
    for fw in networks {
        for (chain, rules) in fw.chains() {
            let _ = writeln!(s, "add chain {TABLE} {chain}");
            for rule in rules {
                let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
            }
        }
    }
    for (map, kind) in MAPS {
        let elements: Vec<String> = networks
            .iter()
            .flat_map(|fw| fw.elements())
            .filter(|(m, _, _)| *m == map)
            .map(|(_, key, chain)| format!("{key} : jump {chain}"))
            .collect();
        if elements.is_empty() {
            let _ = writeln!(s, "add map {TABLE} {map} {{ {kind} }}");
        } else {
            let _ = writeln!(
                s,
                "add map {TABLE} {map} {{ {kind} elements = {{ {} }} ; }}",
                elements.join(", ")
            );
        }
    }
    s.push_str(&base_chains());
    s
}

/// Installs (or re-installs) one network's chains and map entries in an existing table. Safe
/// to run when they are already there: each chain is flushed before its rules are added.
pub fn start_script(fw: &NetworkFirewall) -> String {
    let mut s = String::new();
    for (chain, rules) in fw.chains() {
        let _ = writeln!(s, "add chain {TABLE} {chain}");
        let _ = writeln!(s, "flush chain {TABLE} {chain}");
        for rule in rules {
            let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
        }
    }
    for (map, key, chain) in fw.elements() {
        let _ = writeln!(s, "add element {TABLE} {map} {{ {key} : jump {chain} }}");
    }
    s
}

/// Removes one network's map entries and chains. Safe to run when some or all are already gone
/// (after a crash): each object is first added, a no-op when present, then deleted, all in one
/// transaction. (nft 1.0.6 has no `destroy` command.)
pub fn stop_script(fw: &NetworkFirewall) -> String {
    let mut s = String::new();
    let chains = fw.chains();
    // The chains must exist for the elements that jump to them to be (re-)added.
    for (chain, _) in &chains {
        let _ = writeln!(s, "add chain {TABLE} {chain}");
    }
    for (map, key, chain) in fw.elements() {
        let _ = writeln!(s, "add element {TABLE} {map} {{ {key} : jump {chain} }}");
        let _ = writeln!(s, "delete element {TABLE} {map} {{ {key} }}");
    }
    for (chain, _) in &chains {
        let _ = writeln!(s, "flush chain {TABLE} {chain}");
        let _ = writeln!(s, "delete chain {TABLE} {chain}");
    }
    s
}

/// Replaces the whole table with the firewall of `networks`, atomically: packets see either the
/// old table or the new one, never none. Used when the daemon starts (reconcile) and when the
/// table was removed behind virtnet's back.
pub fn rebuild_script(networks: &[&NetworkFirewall]) -> String {
    let mut s = remove_table_script();
    s.push_str(&table_script(networks));
    s
}

/// Removes virtnet's table, whatever it holds.
pub fn remove_table_script() -> String {
    format!("add table {TABLE}\ndelete table {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(bridge: &str) -> NetworkFirewall {
        NetworkFirewall {
            bridge: bridge.to_string(),
            mode: ForwardMode::Nat,
            forward_dev: None,
            v4: vec![Subnet::of("10.0.0.1".parse().unwrap(), 24)],
            v6: vec![],
            nat_v6: false,
            nat_address: None,
            nat_ports: DEFAULT_NAT_PORTS,
            tftp: false,
        }
    }

    #[test]
    fn chain_names_escape_what_nft_identifiers_cannot_hold() {
        assert_eq!(fw("virbr0").chain_stem(), "virbr0");
        assert_eq!(fw("br-lan.10").chain_stem(), "br_2dlan_2e10");
        assert_eq!(fw("v_1").chain_stem(), "v_5f1");
    }

    #[test]
    fn stop_deletes_elements_before_the_chains_they_jump_to() {
        let s = stop_script(&fw("virbr0"));
        let last_element = s.rfind("delete element").unwrap();
        let first_chain = s.find("delete chain").unwrap();
        assert!(last_element < first_chain);
    }
}
