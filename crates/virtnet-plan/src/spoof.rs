//! Per-port anti-spoofing: libvirt's `clean-traffic` filter, done in nftables' bridge family.
//!
//! One table of virtnet's own, `table bridge virtnet_ports`, with fixed chains over sets keyed
//! by the port (the tap's name, `iifname`): a port is protected by adding its set elements and
//! unprotected by deleting them, and a lease change adds or deletes one `port . address`
//! element. No chain is written per port, so the 1,000th port costs what the first did, and
//! changing one port's elements never touches another port's.
//!
//! What a guarded port may send (checked in `prerouting`, before the bridge forwards or
//! delivers the frame to the host):
//! - only frames with its own MAC as source (`macs`);
//! - IPv4 from its leased or reserved addresses (`addrs4`), or from 0.0.0.0 to the DHCP
//!   server port (DISCOVER/REQUEST); never from UDP port 67 (a DHCP server's answer);
//! - ARP with its own MAC as sender hardware address, and as sender address one of its own
//!   addresses, or 0.0.0.0 in a request (an ARP probe): no reply or gratuitous ARP for
//!   another guest's address;
//! - IPv6, per IPv6 subnet of its network, as the network hands out addresses there
//!   (`addrs6`): on a subnet without DHCPv6 (no `<dhcp>` range or host: the router
//!   advertisement marks its prefix autonomous, guests pick their own addresses by SLAAC,
//!   privacy or stable-privacy addresses nobody can predict) the whole subnet; on a subnet
//!   with DHCPv6 (the advertisement sets the managed flag and leaves the prefix's autonomous
//!   flag off: guests get addresses only from DHCPv6) only the port's current DHCPv6 leases
//!   and the network's static `<host>`s of the guest (by `id`, a link-layer DUID — types 1
//!   and 3 — holding the guest's MAC: the only IPv6 `<host>` a port can be tied to before it
//!   asks; a `<host name>` is the guest's once leased). Always from link-local addresses
//!   (DHCPv6 SOLICIT/REQUEST/RELEASE to the server come from there, before the guest has an
//!   address) and from `::` for duplicate address detection and MLD; never router
//!   advertisements, redirects or DHCPv6 server messages (UDP port 547), and neighbour
//!   advertisements only for targets in `targets6` (the same ranges and addresses) or
//!   link-local;
//! - RARP (QEMU's announcement after a migration, with the guest's MAC);
//! - nothing else (other ethertypes, VLAN-tagged frames, STP from a guest).
//!
//! A DHCPv6 lease is the port's whose tap its client's message came in on (the lease's
//! `port`, the DHCP capture's ingress port): a frame from a guarded port carries the
//! guest's own MAC, so this is the guest, whatever DUID or link-local address it chose. A
//! lease whose port the capture could not name falls back to its MAC (a link-layer DUID's,
//! or an EUI-64 link-local source's). A lease granted, renewed, released or expired adds or
//! deletes that one address of that one port, before the client's REPLY leaves.
//!
//! No address is learned for IPv6 (IPv4 learns a static guest's address from its ARP, as
//! libvirt's `clean-traffic` does, whose IP learning is IPv4 only): on a SLAAC subnet there
//! is nothing to learn, and on a DHCPv6 subnet an address outside DHCPv6 is one the network
//! never handed out — the first neighbour solicitation would otherwise claim any address of
//! the prefix. A guest configured by hand there gets a `<host id>` with its MAC's DUID-LL,
//! the subnet loses its DHCPv6 range, or the port is `--no-spoof-check`.
//!
//! Dropped frames are counted per port in `drops`, a dynamic set with a counter on every
//! element: the drop chain adds the port's element with its first dropped frame and counts
//! every one after it. A port that never dropped a frame has no element (its count is 0), so
//! reading the counters (every metrics scrape) costs what the ports that dropped something
//! cost, not what every guarded port costs (a dump of 2,000 elements was ~2 ms of a scrape).
//! Adding the element is its own rule, before the drop: a full set (65,535 ports that
//! dropped frames) fails that rule, not the drop.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use virtnet_model::{DhcpHost, ForwardMode, IpDef, MacAddr, Network, Subnet};

/// The table's name (family `bridge`).
pub const TABLE: &str = "virtnet_ports";

/// The sets of the table, by what their elements mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpoofSet {
    /// Ports under the check (`ifname`).
    Guarded,
    /// Ports and their drop counters (`ifname`, with a counter per element): filled by the
    /// drop chain itself, a port's element appears with its first dropped frame.
    Drops,
    /// A port's guest MAC (`ifname . ether_addr`).
    Macs,
    /// A port's IPv4 addresses (`ifname . ipv4_addr`).
    Addrs4,
    /// A port's IPv6 source ranges (`ifname . ipv6_addr`, intervals): SLAAC subnets, and
    /// single addresses (DHCPv6 leases, static hosts).
    Addrs6,
    /// The same ranges, for neighbour-advertisement targets (a raw payload key).
    Targets6,
}

impl SpoofSet {
    /// The set's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            SpoofSet::Guarded => "guarded",
            SpoofSet::Drops => "drops",
            SpoofSet::Macs => "macs",
            SpoofSet::Addrs4 => "addrs4",
            SpoofSet::Addrs6 => "addrs6",
            SpoofSet::Targets6 => "targets6",
        }
    }
}

/// The part of an element's key after the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpoofKey {
    /// Only the port.
    Port,
    /// The port's guest MAC.
    Mac([u8; 6]),
    /// One IPv4 address.
    Ipv4(Ipv4Addr),
    /// An inclusive range of IPv6 addresses (a subnet, or one address: first = last).
    Range6(Ipv6Addr, Ipv6Addr),
}

/// One element of one set of the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpoofElement {
    /// The set.
    pub set: SpoofSet,
    /// The tap's name.
    pub port: String,
    /// The rest of the key.
    pub key: SpoofKey,
}

impl SpoofElement {
    /// The element as nft writes it (`"vnet0" . 52:54:00:00:00:01`).
    pub fn key_text(&self) -> String {
        let port = format!("\"{}\"", self.port);
        match self.key {
            SpoofKey::Port => port,
            SpoofKey::Mac(m) => format!("{port} . {}", MacAddr(m)),
            SpoofKey::Ipv4(a) => format!("{port} . {a}"),
            // `targets6` is keyed by a raw payload: nft reads its keys as integers.
            SpoofKey::Range6(a, b) if self.set == SpoofSet::Targets6 => {
                format!("{port} . 0x{:032x}-0x{:032x}", u128::from(a), u128::from(b))
            }
            SpoofKey::Range6(a, b) => format!("{port} . {a}-{b}"),
        }
    }
}

/// What one port may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGuard {
    /// The tap's name.
    pub port: String,
    /// The guest's MAC.
    pub mac: [u8; 6],
    /// Its IPv4 addresses (leases and `<host>` reservations).
    pub ipv4: BTreeSet<Ipv4Addr>,
    /// Its IPv6 source subnets: the network's subnets without DHCPv6 (SLAAC).
    pub ipv6: BTreeSet<Subnet>,
    /// Its static IPv6 addresses on subnets with DHCPv6: the network's `<host>`s tied to its
    /// MAC (see [`host_mac`]). Kept when a lease of the same address ends.
    pub hosts6: BTreeSet<Ipv6Addr>,
    /// Its current DHCPv6 leases on subnets with DHCPv6.
    pub leases6: BTreeSet<Ipv6Addr>,
}

/// Whether the IPv6 `<ip>` `ip` hands out addresses by DHCPv6 (a `<dhcp>` with a range or a
/// host): then its router advertisement sets the managed flag and no autonomous prefix, as
/// dnsmasq's `enable-ra` does (`virtnet_ra`), and guests get addresses only from DHCPv6.
pub fn dhcp6_managed(ip: &IpDef) -> bool {
    ip.address.is_ipv6()
        && ip
            .dhcp
            .as_ref()
            .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
}

/// The MAC an IPv6 `<host>` names: its `mac` when it has one, else the MAC of a link-layer
/// DUID in its `id` (DUID-LLT, type 1, or DUID-LL, type 3, with Ethernet hardware type 1).
/// A DUID-EN or -UUID, or a host by name only, names no MAC.
pub fn host_mac(host: &DhcpHost) -> Option<[u8; 6]> {
    if let Some(m) = host.mac {
        return Some(m.0);
    }
    let duid: Vec<u8> = host
        .id
        .as_deref()?
        .split(':')
        .map(|p| {
            (!p.is_empty() && p.len() <= 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<Vec<u8>>>()?;
    match duid.as_slice() {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] => {
            <[u8; 6]>::try_from(mac).ok()
        }
        _ => None,
    }
}

/// Whether ports of a network in this mode are guarded by default: the networks whose
/// addresses virtnet hands out and routes (nat, route, isolated). `open` promises no rules at
/// all, and host bridges and macvtap belong to the LAN.
pub fn guarded_by_default(mode: ForwardMode) -> bool {
    matches!(
        mode,
        ForwardMode::Nat | ForwardMode::Route | ForwardMode::None
    )
}

impl PortGuard {
    /// The guard of port `port` with guest MAC `mac` on `net`: its `<host>` reservations for
    /// that MAC, the addresses of its current DHCPv4 leases (`leases`) and DHCPv6 leases
    /// (`leases6`; those outside the network's DHCPv6 subnets are dropped: a SLAAC subnet
    /// allows them already, and no other subnet is the guest's), and the network's SLAAC
    /// subnets. `None` when the network's mode is not guarded.
    pub fn for_network(
        port: &str,
        mac: [u8; 6],
        net: &Network,
        leases: impl IntoIterator<Item = Ipv4Addr>,
        leases6: impl IntoIterator<Item = Ipv6Addr>,
    ) -> Option<PortGuard> {
        if !guarded_by_default(net.forward.mode) {
            return None;
        }
        let mut ipv4: BTreeSet<Ipv4Addr> = leases.into_iter().collect();
        let mut ipv6 = BTreeSet::new();
        let mut hosts6 = BTreeSet::new();
        let mut managed = Vec::new();
        for ip in &net.ips {
            let hosts = ip.dhcp.iter().flat_map(|d| d.hosts.iter());
            match ip.address {
                IpAddr::V6(_) if dhcp6_managed(ip) => {
                    managed.push(Subnet::of(ip.address, ip.prefix_len()));
                    for h in hosts.filter(|h| host_mac(h) == Some(mac)) {
                        if let IpAddr::V6(a) = h.ip {
                            hosts6.insert(a);
                        }
                    }
                }
                IpAddr::V6(_) => {
                    ipv6.insert(Subnet::of(ip.address, ip.prefix_len()));
                }
                IpAddr::V4(_) => {
                    for h in hosts.filter(|h| h.mac == Some(MacAddr(mac))) {
                        if let IpAddr::V4(a) = h.ip {
                            ipv4.insert(a);
                        }
                    }
                }
            }
        }
        let leases6 = leases6
            .into_iter()
            .filter(|a| {
                managed
                    .iter()
                    .any(|s| Subnet::of(IpAddr::V6(*a), s.prefix) == *s)
            })
            .collect();
        Some(PortGuard {
            port: port.to_string(),
            mac,
            ipv4,
            ipv6,
            hosts6,
            leases6,
        })
    }

    /// Every element the port needs, in a stable order.
    pub fn elements(&self) -> Vec<SpoofElement> {
        let el = |set, key| SpoofElement {
            set,
            port: self.port.clone(),
            key,
        };
        let mut out = vec![
            el(SpoofSet::Guarded, SpoofKey::Port),
            el(SpoofSet::Macs, SpoofKey::Mac(self.mac)),
        ];
        out.extend(
            self.ipv4
                .iter()
                .map(|a| el(SpoofSet::Addrs4, SpoofKey::Ipv4(*a))),
        );
        for s in &self.ipv6 {
            if let Some((first, last)) = range6(s) {
                out.push(el(SpoofSet::Addrs6, SpoofKey::Range6(first, last)));
                out.push(el(SpoofSet::Targets6, SpoofKey::Range6(first, last)));
            }
        }
        for a in self.hosts6.union(&self.leases6) {
            out.extend(Self::address6_elements(&self.port, *a));
        }
        out
    }

    /// The port's drop counter in `drops`: no element of [`PortGuard::elements`] (the drop
    /// chain adds it with the port's first dropped frame), deleted when the port is no longer
    /// guarded so that a later port of the same name starts from 0.
    pub fn drops_element(port: &str) -> SpoofElement {
        SpoofElement {
            set: SpoofSet::Drops,
            port: port.to_string(),
            key: SpoofKey::Port,
        }
    }

    /// The elements of one IPv6 address of the port (a DHCPv6 lease granted or ended): the
    /// source and the neighbour-advertisement target, each a range of that one address.
    pub fn address6_elements(port: &str, addr: Ipv6Addr) -> [SpoofElement; 2] {
        [SpoofSet::Addrs6, SpoofSet::Targets6].map(|set| SpoofElement {
            set,
            port: port.to_string(),
            key: SpoofKey::Range6(addr, addr),
        })
    }

    /// The element of one IPv4 address of the port (a lease granted or released).
    pub fn address_element(port: &str, addr: Ipv4Addr) -> SpoofElement {
        SpoofElement {
            set: SpoofSet::Addrs4,
            port: port.to_string(),
            key: SpoofKey::Ipv4(addr),
        }
    }
}

/// The first and last address of an IPv6 subnet.
fn range6(s: &Subnet) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let IpAddr::V6(a) = s.address else {
        return None;
    };
    let host_bits = 128 - u32::from(s.prefix.min(128));
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    let first = u128::from(a) & mask;
    Some((Ipv6Addr::from(first), Ipv6Addr::from(first | !mask)))
}

/// The elements in `new` but not `old` (to add), and in `old` but not `new` (to delete).
pub fn changes(
    old: &[SpoofElement],
    new: &[SpoofElement],
) -> (Vec<SpoofElement>, Vec<SpoofElement>) {
    let add = new.iter().filter(|e| !old.contains(e)).cloned().collect();
    let del = old.iter().filter(|e| !new.contains(e)).cloned().collect();
    (add, del)
}

/// The table's fixed sets and chains.
const TABLE_BODY: &str = r#"	set guarded { type ifname; }
	set drops { type ifname; flags dynamic; counter; }
	set macs { type ifname . ether_addr; }
	set addrs4 { type ifname . ipv4_addr; }
	set addrs6 { type ifname . ipv6_addr; flags interval; }
	set targets6 { typeof iifname . @th,64,128; flags interval; }
	chain prerouting {
		type filter hook prerouting priority -200; policy accept;
		iifname @guarded jump guard
	}
	chain guard {
		iifname . ether saddr != @macs goto spoofed
		ether type ip goto from4
		ether type arp goto arps
		ether type ip6 goto from6
		ether type 0x8035 return
		goto spoofed
	}
	chain from4 {
		udp sport 67 goto spoofed
		iifname . ip saddr @addrs4 return
		ip saddr 0.0.0.0 udp sport 68 udp dport 67 return
		goto spoofed
	}
	chain arps {
		arp htype != 1 goto spoofed
		arp ptype != ip goto spoofed
		arp hlen != 6 goto spoofed
		arp plen != 4 goto spoofed
		iifname . arp saddr ether != @macs goto spoofed
		iifname . arp saddr ip @addrs4 return
		arp operation request arp saddr ip 0.0.0.0 return
		goto spoofed
	}
	chain from6 {
		icmpv6 type { nd-router-advert, nd-redirect } goto spoofed
		udp sport 547 goto spoofed
		icmpv6 type nd-neighbor-advert jump advert
		iifname . ip6 saddr @addrs6 return
		ip6 saddr fe80::/10 return
		ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } return
		goto spoofed
	}
	chain advert {
		iifname . @th,64,128 @targets6 return
		@th,64,16 & 0xffc0 == 0xfe80 return
		goto spoofed
	}
	chain spoofed {
		update @drops { iifname }
		drop
	}
"#;

/// The script that (re)creates the table empty of elements, atomically replacing whatever
/// table of that name there was (start-up; a table someone deleted).
pub fn table_script() -> String {
    format!(
        "add table bridge {TABLE}\ndelete table bridge {TABLE}\ntable bridge {TABLE} {{\n{TABLE_BODY}}}\n"
    )
}

/// The script that removes the table (and with it every port's elements).
pub fn remove_table_script() -> String {
    format!("add table bridge {TABLE}\ndelete table bridge {TABLE}\n")
}

/// `add element` lines for `elements`, one per set (for logs, tests and nft by hand).
pub fn add_elements_script(elements: &[SpoofElement]) -> String {
    let mut out = String::new();
    let sets: BTreeSet<SpoofSet> = elements.iter().map(|e| e.set).collect();
    for set in sets {
        let keys: Vec<String> = elements
            .iter()
            .filter(|e| e.set == set)
            .map(SpoofElement::key_text)
            .collect();
        let _ = writeln!(
            out,
            "add element bridge {TABLE} {} {{ {} }}",
            set.name(),
            keys.join(", ")
        );
    }
    out
}
