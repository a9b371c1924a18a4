//! A network's firewall, and the nftables scripts that install and remove it.
//!
//! All of virtnet's rules live in one table, `inet virtnet`, which nothing else touches. The
//! rules are fixed: a handful per hook, each one lookup in a set keyed by interface name
//! (and, where libvirt checks addresses, by subnet). A network is added or removed by adding
//! or removing its elements in those sets, in one transaction, never by editing rules. So a
//! packet costs the same handful of hash lookups however many networks run, and so
//! does a start or a stop: libnftables reads every chain of a table before it changes one,
//! which made per-network chains cost 11 ms per start at 500 networks (see `BENCHMARKS.md`),
//! while set elements cost what they cost for the first network. The only per-network chains
//! are for the rare NAT with `<nat><address>` or `<nat><port>`, reached through a verdict map
//! keyed by source subnet (a prefix group's `nat4_map_24`). No set has `flags interval`: the
//! kernel's rbtree checks each new interval for overlaps by walking back through the set
//! (`rb_prev`), so the masquerade set `masq4` made every start cost more as networks grew
//! (23.5 % of a start at 3,000 networks); `masq4_24` is a hash set with the same verdicts.
//!
//! Where a key pairs a subnet with an interface (`"virbr0" . 192.168.122.0/24`), the subnet is
//! not stored as a range: the kernel would keep such concatenated ranges in its pipapo
//! backend, whose element removal scans the whole set (~16 µs per element: 8 ms per stop at
//! 500 networks). Instead each prefix length in use has its own hash sets, keyed by the
//! network address, and rules that mask the packet's address to that length
//! (`iifname . ip saddr & 255.255.255.0 @nat_nets4_24`). Those rules live in four regular
//! chains (`to_guests`, `from_guests`, `nat_skip`, `masq_dev`) that the base chains jump to;
//! they are rewritten, with their sets, only when a prefix length appears for the first time
//! (a [`PrefixGroup`]), so adding or removing a network stays a matter of hash-set elements.
//!
//! The verdicts equal libvirt's (`tests/networkxml2firewalldata` in libvirt 9.0 and 10.x):
//!
//! | traffic | nat | route | isolated |
//! |---|---|---|---|
//! | guest → guest on the bridge, routed by the host | accept | accept | accept |
//! | guest (subnet) → outside | accept, masquerade | accept | reject |
//! | outside → guest | established/related only | accept | reject |
//! | anything else to or from the bridge | reject | reject | reject |
//!
//! libvirt checks "to a guest" before "from a guest" (its `FWI` chain precedes `FWO`); the
//! forward chain keeps that order, which is what stops one nat network from opening
//! connections into another.
//!
//! What reaches the host itself (the input hook) is stricter than libvirt, in every mode
//! (`open` included, which otherwise has no rules):
//!
//! | traffic to the host | verdict |
//! |---|---|
//! | guest → its own network's DHCP, DNS, TFTP (on the addresses they serve) | accept |
//! | guest → replies and errors of connections the host opened (established/related) | accept |
//! | guest → ICMP echo and errors; ICMPv6 echo, errors, neighbour and router solicitation, MLD | accept |
//! | guest → `<virtnet:host-access><virtnet:allow proto port>` | accept |
//! | guest → anything else (another network's gateway, the uplink address, any service) | reject |
//! | anything but a guest or the host itself (`lo`) → a network's DNS, DHCP or TFTP port on its addresses | drop |
//!
//! The drops and rejects are final: nothing in another table can accept what virtnet's table
//! drops. The last rule is the firewall half of closing the open resolver and file server
//! (CVE-2012-3411's pattern); the servers' sockets are also bound to their bridge.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use virtnet_model::{AddrRange, ForwardMode, HostAllow, Network};

use crate::Subnet;

/// The table's family and name.
pub const TABLE: &str = "inet virtnet";

/// The table's name (its family is `inet`).
pub const TABLE_NAME: &str = "virtnet";

/// libvirt's masquerade source-port range for TCP and UDP.
const DEFAULT_NAT_PORTS: (u16, u16) = (1024, 65535);

/// The layer-3 protocol of a host-service element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfProto {
    /// IPv4 (`ipv4`).
    Ipv4,
    /// IPv6 (`ipv6`).
    Ipv6,
}

/// One field of a set element's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyField {
    /// An interface name.
    Ifname(String),
    /// A subnet (a range in interval sets; a `/32` or `/128` is one address).
    Net(Subnet),
    /// A subnet's network address, in the hash sets of its [`PrefixGroup`].
    NetAddr(Subnet),
    /// A layer-3 protocol.
    NfProto(NfProto),
    /// A layer-4 protocol: `tcp` or `udp`.
    L4(&'static str),
    /// A port.
    Port(u16),
}

impl std::fmt::Display for KeyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyField::Ifname(n) => write!(f, "\"{n}\""),
            KeyField::Net(s) if s.prefix == if s.address.is_ipv4() { 32 } else { 128 } => {
                write!(f, "{}", s.address)
            }
            KeyField::Net(s) => write!(f, "{s}"),
            KeyField::NetAddr(s) => write!(f, "{}", s.address),
            KeyField::NfProto(NfProto::Ipv4) => f.write_str("ipv4"),
            KeyField::NfProto(NfProto::Ipv6) => f.write_str("ipv6"),
            KeyField::L4(p) => f.write_str(p),
            KeyField::Port(p) => write!(f, "{p}"),
        }
    }
}

/// One element of one of the table's sets (or verdict maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The set.
    pub set: String,
    /// The key's fields, in the set's order.
    pub key: Vec<KeyField>,
    /// For verdict maps: the chain to jump to.
    pub jump: Option<String>,
}

impl Element {
    /// The key as nft writes it: `"virbr0" . 192.168.122.0/24`.
    pub fn key_text(&self) -> String {
        let parts: Vec<String> = self.key.iter().map(ToString::to_string).collect();
        parts.join(" . ")
    }

    /// True when the element's set has `flags interval`.
    pub fn in_interval_set(&self) -> bool {
        SETS.iter()
            .any(|(name, kind)| *name == self.set && kind.contains("flags interval"))
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key_text())?;
        if let Some(chain) = &self.jump {
            write!(f, " : jump {chain}")?;
        }
        Ok(())
    }
}

/// What the firewall of one network must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFirewall {
    /// The network's bridge.
    pub bridge: String,
    /// nat, route, open or none (isolated). `open` networks get only the rules about the host
    /// (what their guests may reach on it), no forwarding rules.
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
    /// The network's own addresses on its bridge (the gateways its DNS server listens on).
    pub addresses: Vec<IpAddr>,
    /// A DNS server runs on the network (on every address of [`Self::addresses`]).
    pub dns: bool,
    /// The address of the `<ip>` whose `<dhcp>` the DHCPv4 server serves, if any.
    pub dhcp4: Option<IpAddr>,
    /// The address the `<tftp>` server listens on, if any.
    pub tftp: Option<IpAddr>,
    /// `<virtnet:host-access>`: host ports the guests may reach besides the services.
    pub host_access: Vec<HostAllow>,
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
        let first_v4 = |has: &dyn Fn(&virtnet_model::IpDef) -> bool| {
            net.ips
                .iter()
                .find(|ip| ip.address.is_ipv4() && has(ip))
                .map(|ip| ip.address)
        };
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
            addresses: net.ips.iter().map(|ip| ip.address).collect(),
            // As the DNS server's configuration decides: on unless `<dns enable='no'>`.
            dns: !net.ips.is_empty() && net.dns.as_ref().and_then(|d| d.enable) != Some(false),
            // As the DHCP server's configuration decides: the first IPv4 `<dhcp>` with a range
            // or a host.
            dhcp4: first_v4(&|ip| {
                ip.dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
            }),
            tftp: first_v4(&|ip| ip.tftp_root.is_some()),
            host_access: net.host_access.clone(),
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

    /// NAT that the shared masquerade rules cannot express: an SNAT range or other ports.
    fn custom_nat(&self) -> bool {
        self.nat_address.is_some() || self.nat_ports != DEFAULT_NAT_PORTS
    }

    /// The subnets NATed: IPv4 always in nat mode, IPv6 with `<nat ipv6='yes'>`.
    fn nat_subnets(&self) -> Vec<Subnet> {
        if self.mode != ForwardMode::Nat {
            return Vec::new();
        }
        let mut out = self.v4.clone();
        if self.nat_v6 {
            out.extend(self.v6.iter().copied());
        }
        out
    }

    /// True when the network forwards (nat, route): the forward chain's sets hold its
    /// subnets. Isolated networks only route between their own guests; `open` ones have no
    /// forwarding rules at all.
    fn forwards(&self) -> bool {
        matches!(self.mode, ForwardMode::Nat | ForwardMode::Route)
    }

    /// The prefix groups this network's elements need (see [`PrefixGroup`]).
    pub fn groups(&self) -> BTreeSet<PrefixGroup> {
        if !self.forwards() {
            return BTreeSet::new();
        }
        self.v4
            .iter()
            .chain(&self.v6)
            .map(PrefixGroup::of)
            .collect()
    }

    /// The network's set elements, in the order they are added.
    pub fn elements(&self) -> Vec<Element> {
        let b = || KeyField::Ifname(self.bridge.clone());
        let el = |set: String, key: Vec<KeyField>| Element {
            set,
            key,
            jump: None,
        };
        let mut out = vec![el("guest_bridges".into(), vec![b()])];
        if self.mode != ForwardMode::Open {
            out.push(el("bridges".into(), vec![b()]));
            out.push(el("cross".into(), vec![b(), b()]));
        }
        let dev = self.forward_dev.clone().map(KeyField::Ifname);
        if self.forwards() {
            // One element per subnet serves both directions: from the guests (`iifname . ip
            // saddr`) and to them (`oifname . ip daddr`), established only for NATed subnets.
            for s in self.v4.iter().chain(&self.v6) {
                let v6 = s.address.is_ipv6();
                let nat = self.mode == ForwardMode::Nat && (!v6 || self.nat_v6);
                let role = if nat { "nat_nets" } else { "routed_nets" };
                let mut key = vec![b(), KeyField::NetAddr(*s)];
                key.extend(dev.clone());
                out.push(el(PrefixGroup::of(s).set(role, dev.is_some()), key));
            }
        }
        for a in &self.addresses {
            let v4 = a.is_ipv4();
            let host = KeyField::NetAddr(Subnet::of(*a, if v4 { 32 } else { 128 }));
            out.push(el(
                format!("gateways{}", if v4 { 4 } else { 6 }),
                vec![host],
            ));
        }
        for (addr, l4, port) in self.services() {
            let v4 = addr.is_ipv4();
            let host = KeyField::NetAddr(Subnet::of(addr, if v4 { 32 } else { 128 }));
            let key = vec![host, KeyField::L4(l4), KeyField::Port(port), b()];
            out.push(el(format!("services{}", if v4 { 4 } else { 6 }), key));
        }
        for a in &self.host_access {
            for proto in [NfProto::Ipv4, NfProto::Ipv6] {
                let key = vec![
                    b(),
                    KeyField::NfProto(proto),
                    KeyField::L4(a.proto.as_str()),
                    KeyField::Port(a.port),
                ];
                out.push(el("host_in".into(), key));
            }
        }
        for (proto, l4, port) in self.host_services(false) {
            let key = vec![
                b(),
                KeyField::NfProto(proto),
                KeyField::L4(l4),
                KeyField::Port(port),
            ];
            out.push(el("host_out".into(), key));
        }
        for s in self.nat_subnets() {
            let group = PrefixGroup::of(&s);
            // Traffic within the subnet is not NATed. (Multicast 224.0.0.0/24, ff02::/16 and
            // broadcast are exempt for every subnet by fixed rules: one element per network
            // instead of three, since deleting elements costs the kernel per element.)
            let addr = KeyField::NetAddr(s);
            out.push(el(
                group.set("nat_skip", false),
                vec![addr.clone(), addr.clone()],
            ));
            if self.custom_nat() {
                out.push(Element {
                    set: group.set("nat_map", false),
                    key: vec![addr],
                    jump: Some(self.chain("nat")),
                });
            } else {
                match &dev {
                    None => out.push(el(group.set("masq", false), vec![addr])),
                    Some(d) => out.push(el(group.set("masq", true), vec![addr, d.clone()])),
                }
            }
        }
        out
    }

    /// What the network serves its guests, as `(address, l4proto, port)`: DNS on each of its
    /// addresses, DHCPv4 on the address of its `<dhcp>` and on the broadcast address (where
    /// clients without an address send), TFTP on its address. Guests reach these and, from
    /// the host's side, nobody else does.
    fn services(&self) -> Vec<(IpAddr, &'static str, u16)> {
        let mut out = Vec::new();
        if self.dns {
            for a in &self.addresses {
                out.push((*a, "tcp", 53));
                out.push((*a, "udp", 53));
            }
        }
        if let Some(a) = self.dhcp4 {
            out.push((a, "udp", 67));
            out.push((IpAddr::V4(Ipv4Addr::BROADCAST), "udp", 67));
        }
        if !self.v6.is_empty() {
            // DHCPv6 clients send to All_DHCP_Relay_Agents_and_Servers (ff02::1:2). Open on
            // every IPv6 network, as the client port 546 is outbound, so that a DHCPv6 range
            // added live needs no firewall change; where no DHCPv6 is served the daemon's
            // shared socket drops what arrives on that bridge.
            out.push((
                IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2)),
                "udp",
                547,
            ));
        }
        if let Some(a) = self.tftp {
            out.push((a, "udp", 69));
        }
        out
    }

    /// DHCP, DNS and TFTP between guests and the host: `inbound` from guests (server ports),
    /// otherwise to guests (client ports for DHCP), as `(nfproto, l4proto, port)`.
    fn host_services(&self, inbound: bool) -> Vec<(NfProto, &'static str, u16)> {
        let mut out = Vec::new();
        if !self.v4.is_empty() {
            let dhcp = if inbound { 67 } else { 68 };
            for port in [53, dhcp] {
                for l4 in ["tcp", "udp"] {
                    out.push((NfProto::Ipv4, l4, port));
                }
            }
            if self.tftp.is_some() {
                out.push((NfProto::Ipv4, "udp", 69));
            }
        }
        if !self.v6.is_empty() {
            for l4 in ["tcp", "udp"] {
                out.push((NfProto::Ipv6, l4, 53));
            }
            out.push((NfProto::Ipv6, "udp", if inbound { 547 } else { 546 }));
        }
        out
    }

    /// True when the network has a custom NAT chain, which only libnftables can install;
    /// everything else is set elements.
    pub fn has_nat_chain(&self) -> bool {
        self.nat_chain().is_some()
    }

    /// The per-network chain for custom NAT (SNAT range or ports), if the network needs one.
    fn nat_chain(&self) -> Option<(String, Vec<String>)> {
        if !self.custom_nat() || self.nat_subnets().is_empty() {
            return None;
        }
        let oif = match &self.forward_dev {
            Some(dev) => format!("oifname \"{dev}\" "),
            None => String::new(),
        };
        let (p1, p2) = self.nat_ports;
        let mut rules = Vec::new();
        for s in self.nat_subnets() {
            let (m, v6) = if s.address.is_ipv6() {
                ("ip6 saddr", true)
            } else {
                ("ip saddr", false)
            };
            let (with_ports, plain) = match (self.nat_address, v6) {
                (Some(r), false) => {
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
                _ => (
                    format!("masquerade to :{p1}-{p2}"),
                    "masquerade".to_string(),
                ),
            };
            for proto in ["tcp", "udp"] {
                rules.push(format!("meta l4proto {proto} {m} {s} {oif}{with_ports}"));
            }
            rules.push(format!("{m} {s} {oif}{plain}"));
        }
        Some((self.chain("nat"), rules))
    }
}

/// An address family, as the digit in set names (`nat_nets4_24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn digit(self) -> char {
        match self {
            Family::V4 => '4',
            Family::V6 => '6',
        }
    }

    /// The nft payload keyword: `ip` or `ip6`.
    fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
}

/// The sets and rules for the subnets of one prefix length in one family (see the module
/// comment): hash sets keyed by network address, and rules that mask the packet's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefixGroup {
    /// The family.
    pub family: Family,
    /// The prefix length.
    pub prefix: u8,
}

impl PrefixGroup {
    /// The group of a subnet.
    pub fn of(s: &Subnet) -> PrefixGroup {
        PrefixGroup {
            family: if s.address.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            },
            prefix: s.prefix,
        }
    }

    /// A set of this group: `role` is `nat_nets`, `routed_nets`, `nat_skip`, `masq` or
    /// `nat_map`; `dev` adds the `<forward dev>` interface to the key (`nat_nets4_dev_24`).
    fn set(&self, role: &str, dev: bool) -> String {
        let f = self.family.digit();
        let p = self.prefix;
        match (role, dev) {
            ("nat_skip", _) => format!("nat{f}_skip_{p}"),
            ("nat_map", _) => format!("nat{f}_map_{p}"),
            ("masq", false) => format!("masq{f}_{p}"),
            ("masq", true) => format!("masq{f}_dev_{p}"),
            (_, false) => format!("{role}{f}_{p}"),
            (_, true) => format!("{role}{f}_dev_{p}"),
        }
    }

    /// The netmask, as nft writes it.
    fn mask(&self) -> String {
        use virtnet_model::subnet::{prefix_mask_v4, prefix_mask_v6};
        match self.family {
            Family::V4 => std::net::Ipv4Addr::from(prefix_mask_v4(self.prefix)).to_string(),
            Family::V6 => std::net::Ipv6Addr::from(prefix_mask_v6(self.prefix)).to_string(),
        }
    }

    /// The group's sets: name and type.
    fn sets(&self) -> Vec<(String, String)> {
        let a = self.family.addr_type();
        let mut out = Vec::new();
        for role in ["nat_nets", "routed_nets"] {
            out.push((self.set(role, false), format!("type ifname . {a} ;")));
            out.push((
                self.set(role, true),
                format!("type ifname . {a} . ifname ;"),
            ));
        }
        out.push((self.set("nat_skip", false), format!("type {a} . {a} ;")));
        out.push((self.set("nat_map", false), format!("type {a} : verdict ;")));
        out.push((self.set("masq", false), format!("type {a} ;")));
        out.push((self.set("masq", true), format!("type {a} . ifname ;")));
        out
    }

    /// The group's rules, as `(chain, rule)`. Within `to_guests`, `from_guests` and
    /// `nat_skip` every rule has the same verdict kind, so the order of groups does not
    /// matter; in `masq`, each rule matches only the sources of its own networks' subnets,
    /// which do not overlap (the daemon refuses a subnet in use), so neither does it there.
    fn rules(&self) -> Vec<(&'static str, String)> {
        let (ip, m) = (self.family.payload(), self.mask());
        let (p1, p2) = DEFAULT_NAT_PORTS;
        let est = "ct state established,related accept";
        let mut out = Vec::new();
        for (role, to) in [("nat_nets", est), ("routed_nets", "accept")] {
            let (plain, dev) = (self.set(role, false), self.set(role, true));
            out.push((
                "to_guests",
                format!("oifname . {ip} daddr & {m} @{plain} {to}"),
            ));
            out.push((
                "to_guests",
                format!("oifname . {ip} daddr & {m} . iifname @{dev} {to}"),
            ));
            out.push((
                "from_guests",
                format!("iifname . {ip} saddr & {m} @{plain} accept"),
            ));
            out.push((
                "from_guests",
                format!("iifname . {ip} saddr & {m} . oifname @{dev} accept"),
            ));
        }
        // `accept` ends the nat hook's chain without NAT, as `return` does in a base chain.
        let skip = self.set("nat_skip", false);
        out.push((
            "nat_skip",
            format!("{ip} saddr & {m} . {ip} daddr & {m} @{skip} accept"),
        ));
        // Custom NAT (an SNAT range or other ports): the network's own chain.
        out.push((
            "masq",
            format!("{ip} saddr & {m} vmap @{}", self.set("nat_map", false)),
        ));
        let (masq, masq_dev) = (self.set("masq", false), self.set("masq", true));
        out.push((
            "masq",
            format!(
                "meta l4proto {{ tcp, udp }} {ip} saddr & {m} @{masq} masquerade to :{p1}-{p2}"
            ),
        ));
        out.push(("masq", format!("{ip} saddr & {m} @{masq} masquerade")));
        out.push((
            "masq",
            format!(
                "meta l4proto {{ tcp, udp }} {ip} saddr & {m} . oifname @{masq_dev} masquerade to :{p1}-{p2}"
            ),
        ));
        out.push((
            "masq",
            format!("{ip} saddr & {m} . oifname @{masq_dev} masquerade"),
        ));
        out
    }
}

/// The regular chains holding the prefix groups' rules, jumped to from the base chains.
const GROUP_CHAINS: [&str; 4] = ["to_guests", "from_guests", "nat_skip", "masq"];

/// The fixed sets (and verdict maps) of the table: name and type.
const SETS: &[(&str, &str)] = &[
    ("bridges", "type ifname ;"),
    ("cross", "type ifname . ifname ;"),
    ("guest_bridges", "type ifname ;"),
    ("gateways4", "type ipv4_addr ;"),
    ("gateways6", "type ipv6_addr ;"),
    (
        "services4",
        "type ipv4_addr . inet_proto . inet_service . ifname ;",
    ),
    (
        "services6",
        "type ipv6_addr . inet_proto . inet_service . ifname ;",
    ),
    (
        "host_in",
        "type ifname . nf_proto . inet_proto . inet_service ;",
    ),
    (
        "host_out",
        "type ifname . nf_proto . inet_proto . inet_service ;",
    ),
];

/// The named counters of the table's drops and rejects, one per reason: (counter, reason).
/// Each reject or drop rule of the base chains counts into its own (`counter name`), so a
/// metrics scrape reads every reason with one `list counters` of the table. The rules are
/// shared by all networks (set lookups), so these counts are the host's, not one network's.
pub const DROP_COUNTERS: [(&str, &str); 4] = [
    ("drops_to_guest", "forward_to_guest"),
    ("drops_from_guest", "forward_from_guest"),
    ("drops_guest_to_host", "guest_to_host"),
    ("drops_service_from_outside", "service_from_outside"),
];

/// `add counter` of every [`DROP_COUNTERS`] entry.
fn drop_counters() -> String {
    DROP_COUNTERS
        .iter()
        .map(|(name, _)| format!("add counter {TABLE} {name}\n"))
        .collect()
}

/// The fixed rules, hooked into the kernel. Order matters and follows libvirt: guest to guest,
/// then to guests, then from guests (see the module comment).
fn base_chains() -> String {
    let counters = drop_counters();
    format!(
        "\
{counters}add chain {TABLE} forward {{ type filter hook forward priority filter ; policy accept ; }}
add rule {TABLE} forward iifname . oifname @cross accept
add rule {TABLE} forward jump {fwd_accept}
add rule {TABLE} forward jump to_guests
add rule {TABLE} forward oifname @bridges counter name \"drops_to_guest\" reject
add rule {TABLE} forward jump from_guests
add rule {TABLE} forward iifname @bridges counter name \"drops_from_guest\" reject
add chain {TABLE} guest_to_host
add rule {TABLE} guest_to_host ct state established,related accept
add rule {TABLE} guest_to_host ip daddr . meta l4proto . th dport . iifname @services4 accept
add rule {TABLE} guest_to_host ip6 daddr . meta l4proto . th dport . iifname @services6 accept
add rule {TABLE} guest_to_host iifname . meta nfproto . meta l4proto . th dport @host_in accept
add rule {TABLE} guest_to_host icmp type {{ {icmp} }} accept
add rule {TABLE} guest_to_host icmpv6 type {{ {icmpv6} }} accept
add rule {TABLE} guest_to_host counter name \"drops_guest_to_host\" reject
add chain {TABLE} input {{ type filter hook input priority filter ; policy accept ; }}
add rule {TABLE} input iifname @guest_bridges jump guest_to_host
add rule {TABLE} input iifname != \"lo\" ip daddr @gateways4 meta l4proto . th dport {{ {svc4} }} counter name \"drops_service_from_outside\" drop
add rule {TABLE} input iifname != \"lo\" ip6 daddr @gateways6 meta l4proto . th dport {{ {svc6} }} counter name \"drops_service_from_outside\" drop
add chain {TABLE} output {{ type filter hook output priority filter ; policy accept ; }}
add rule {TABLE} output oifname . meta nfproto . meta l4proto . th dport @host_out accept
add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}
add rule {TABLE} postrouting ip daddr {{ 224.0.0.0/24, 255.255.255.255 }} return
add rule {TABLE} postrouting ip6 daddr ff02::/16 return
add rule {TABLE} postrouting jump nat_skip
add rule {TABLE} postrouting jump masq
",
        icmp = GUEST_ICMP.join(", "),
        icmpv6 = GUEST_ICMPV6.join(", "),
        svc4 = "tcp . 53, udp . 53, udp . 67, udp . 69",
        svc6 = "tcp . 53, udp . 53, udp . 547",
        fwd_accept = crate::forward::ACCEPT_CHAIN,
    )
}

/// ICMP a guest may send to the host: echo (ping the gateway) and the errors that keep
/// connections working (path MTU discovery needs "fragmentation needed", a destination
/// unreachable). Redirects, timestamps and the rest are refused.
const GUEST_ICMP: &[&str] = &[
    "echo-request",
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
];

/// ICMPv6 a guest may send to the host: echo, the errors (packet-too-big is path MTU
/// discovery), neighbour discovery without which IPv6 does not work on the link, router
/// solicitation and multicast listener messages. Router advertisements and redirects from a
/// guest are refused.
const GUEST_ICMPV6: &[&str] = &[
    "echo-request",
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-solicit",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "mld2-listener-report",
];

/// `add set` (or map) of `name`, with `elements` inline when there are any.
fn set_statement(name: &str, kind: &str, elements: &[String]) -> String {
    let object = if kind.contains(": verdict") {
        "map"
    } else {
        "set"
    };
    if elements.is_empty() {
        format!("add {object} {TABLE} {name} {{ {kind} }}\n")
    } else {
        format!(
            "add {object} {TABLE} {name} {{ {kind} elements = {{ {} }} ; }}\n",
            elements.join(", ")
        )
    }
}

/// The rules of the group chains for `groups`, after emptying those chains: run in one
/// transaction, the chains go from their old rules to the new ones at once.
fn group_rules(groups: &BTreeSet<PrefixGroup>) -> String {
    let mut s = String::new();
    for chain in GROUP_CHAINS {
        let _ = writeln!(s, "flush chain {TABLE} {chain}");
    }
    for g in groups {
        for (chain, rule) in g.rules() {
            let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
        }
    }
    s
}

/// Makes the table hold the sets and rules of `groups` (every group in use, not only new
/// ones: the group chains are rewritten). Elements already in the groups' sets stay.
pub fn groups_script(groups: &BTreeSet<PrefixGroup>) -> String {
    let mut s = String::new();
    for g in groups {
        for (name, kind) in g.sets() {
            s.push_str(&set_statement(&name, &kind, &[]));
        }
    }
    s.push_str(&group_rules(groups));
    s
}

/// The whole table for `networks`, created from scratch: custom NAT chains first, then the
/// sets with their elements inline (nft 1.0.6 refuses a separate `add element` into an
/// interval set created in the same transaction), then the group chains and the base chains
/// that use the sets.
fn table_script(networks: &[&NetworkFirewall]) -> String {
    let mut s = format!("add table {TABLE}\n");
    for fw in networks {
        if let Some((chain, rules)) = fw.nat_chain() {
            let _ = writeln!(s, "add chain {TABLE} {chain}");
            for rule in rules {
                let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
            }
        }
    }
    let all: Vec<Element> = networks.iter().flat_map(|fw| fw.elements()).collect();
    let groups: BTreeSet<PrefixGroup> = networks.iter().flat_map(|fw| fw.groups()).collect();
    let group_sets = groups.iter().flat_map(PrefixGroup::sets);
    let fixed = SETS.iter().map(|(n, k)| (n.to_string(), k.to_string()));
    for (set, kind) in fixed.chain(group_sets) {
        let elements: Vec<String> = all
            .iter()
            .filter(|e| e.set == set)
            .map(ToString::to_string)
            .collect();
        s.push_str(&set_statement(&set, &kind, &elements));
    }
    for chain in GROUP_CHAINS {
        let _ = writeln!(s, "add chain {TABLE} {chain}");
    }
    s.push_str(&group_rules(&groups));
    // Port forwards' maps and chains: after the sets they use, before the base chain that
    // jumps to them.
    s.push_str(&crate::forward::objects_script());
    s.push_str(&base_chains());
    s
}

/// Installs one network in an existing table: its elements (and a custom NAT chain, created
/// exclusively). Fails, changing nothing, if the network is already there (`create element`);
/// the caller then rebuilds the table.
pub fn start_script(fw: &NetworkFirewall) -> String {
    let mut s = String::new();
    if let Some((chain, rules)) = fw.nat_chain() {
        let _ = writeln!(s, "create chain {TABLE} {chain}");
        for rule in rules {
            let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
        }
    }
    for e in fw.elements() {
        let _ = writeln!(s, "create element {TABLE} {} {{ {e} }}", e.set);
    }
    s
}

/// Removes one network's elements (and custom NAT chain). Fails, changing nothing, if any of
/// them is missing; see [`stop_any_script`].
pub fn stop_script(fw: &NetworkFirewall) -> String {
    let mut s = String::new();
    for e in fw.elements() {
        let _ = writeln!(s, "delete element {TABLE} {} {{ {} }}", e.set, e.key_text());
    }
    if let Some((chain, _)) = fw.nat_chain() {
        let _ = writeln!(s, "delete chain {TABLE} {chain}");
    }
    s
}

/// Like [`stop_script`], but safe when some or all of the objects are already gone (after a
/// crash or a manual change): each is first added, a no-op when present, then deleted, all in
/// one transaction. (nft 1.0.6 has no `destroy` command.)
pub fn stop_any_script(fw: &NetworkFirewall) -> String {
    let mut s = String::new();
    let chain = fw.nat_chain();
    // The chain must exist for the map element that jumps to it to be (re-)added.
    if let Some((name, _)) = &chain {
        let _ = writeln!(s, "add chain {TABLE} {name}");
    }
    for e in fw.elements() {
        let _ = writeln!(s, "add element {TABLE} {} {{ {e} }}", e.set);
        let _ = writeln!(s, "delete element {TABLE} {} {{ {} }}", e.set, e.key_text());
    }
    if let Some((name, _)) = &chain {
        let _ = writeln!(s, "delete chain {TABLE} {name}");
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
            addresses: vec!["10.0.0.1".parse().unwrap()],
            dns: true,
            dhcp4: None,
            tftp: None,
            host_access: Vec::new(),
        }
    }

    #[test]
    fn prefix_groups_name_their_sets_and_mask_to_their_length() {
        let g = |a: &str, p: u8| PrefixGroup::of(&Subnet::of(a.parse().unwrap(), p));
        assert_eq!(g("10.81.0.1", 28).mask(), "255.255.255.240");
        assert_eq!(g("10.0.0.1", 32).mask(), "255.255.255.255");
        assert_eq!(g("10.0.0.1", 0).mask(), "0.0.0.0");
        assert_eq!(g("fd00::1", 64).mask(), "ffff:ffff:ffff:ffff::");
        assert_eq!(
            g("fd00::1", 128).mask(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(g("10.0.0.1", 24).set("nat_nets", true), "nat_nets4_dev_24");
        assert_eq!(g("fd00::1", 64).set("nat_skip", false), "nat6_skip_64");
        // Every set a group's rules use is one of its own.
        let group = g("192.168.122.1", 24);
        let sets: Vec<String> = group.sets().into_iter().map(|(n, _)| n).collect();
        for (_, rule) in group.rules() {
            let used = rule.split('@').nth(1).and_then(|r| r.split(' ').next());
            assert!(sets.iter().any(|s| Some(s.as_str()) == used), "{rule}");
        }
        // Isolated networks need no group; others one per family and prefix length.
        let mut f = fw("virbr0");
        f.v6 = vec![Subnet::of("fd00::1".parse().unwrap(), 64)];
        assert_eq!(f.groups().len(), 2);
        f.mode = ForwardMode::None;
        assert!(f.groups().is_empty());
    }

    #[test]
    fn chain_names_escape_what_nft_identifiers_cannot_hold() {
        assert_eq!(fw("virbr0").chain_stem(), "virbr0");
        assert_eq!(fw("br-lan.10").chain_stem(), "br_2dlan_2e10");
        assert_eq!(fw("v_1").chain_stem(), "v_5f1");
    }

    #[test]
    fn stop_deletes_by_key_and_custom_nat_chains_last() {
        let mut f = fw("virbr0");
        f.nat_ports = (500, 1000);
        let s = stop_script(&f);
        assert!(
            s.contains("delete element inet virtnet nat4_map_24 { 10.0.0.0 }"),
            "{s}"
        );
        let last_element = s.rfind("delete element").unwrap();
        let chain = s.find("delete chain").unwrap();
        assert!(last_element < chain);
    }
}
