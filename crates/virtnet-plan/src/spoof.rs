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
//! - IPv6 from its network's IPv6 subnets (`addrs6`; virtnet hands out no IPv6 leases yet,
//!   so the subnet is the finest bound it knows), from link-local addresses, and from `::`
//!   for duplicate address detection and MLD; never router advertisements, redirects or
//!   DHCPv6 server messages (UDP port 547), and neighbour advertisements only for targets in
//!   `targets6` (the same ranges) or link-local;
//! - RARP (QEMU's announcement after a migration, with the guest's MAC);
//! - nothing else (other ethertypes, VLAN-tagged frames, STP from a guest).
//!
//! Dropped frames are counted per port: the drop chain looks the port up in `drops`, a set
//! with a counter on every element.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use virtnet_model::{ForwardMode, MacAddr, Network, Subnet};

/// The table's name (family `bridge`).
pub const TABLE: &str = "virtnet_ports";

/// The sets of the table, by what their elements mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpoofSet {
    /// Ports under the check (`ifname`).
    Guarded,
    /// Ports and their drop counters (`ifname`, with a counter per element).
    Drops,
    /// A port's guest MAC (`ifname . ether_addr`).
    Macs,
    /// A port's IPv4 addresses (`ifname . ipv4_addr`).
    Addrs4,
    /// A port's IPv6 source ranges (`ifname . ipv6_addr`, intervals).
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
    /// An inclusive range of IPv6 addresses (a subnet).
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
    /// Its IPv6 source subnets.
    pub ipv6: BTreeSet<Subnet>,
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
    /// that MAC, the addresses of its current leases (`leases`), and the network's IPv6
    /// subnets. `None` when the network's mode is not guarded.
    pub fn for_network(
        port: &str,
        mac: [u8; 6],
        net: &Network,
        leases: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Option<PortGuard> {
        if !guarded_by_default(net.forward.mode) {
            return None;
        }
        let mut ipv4: BTreeSet<Ipv4Addr> = leases.into_iter().collect();
        let mut ipv6 = BTreeSet::new();
        for ip in &net.ips {
            match ip.address {
                IpAddr::V6(_) => {
                    ipv6.insert(Subnet::of(ip.address, ip.prefix_len()));
                }
                IpAddr::V4(_) => {
                    let hosts = ip.dhcp.iter().flat_map(|d| d.hosts.iter());
                    for h in hosts.filter(|h| h.mac == Some(MacAddr(mac))) {
                        if let IpAddr::V4(a) = h.ip {
                            ipv4.insert(a);
                        }
                    }
                }
            }
        }
        Some(PortGuard {
            port: port.to_string(),
            mac,
            ipv4,
            ipv6,
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
            el(SpoofSet::Drops, SpoofKey::Port),
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
        out
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
	set drops { type ifname; counter; }
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
		iifname @drops
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
