//! Port forwards (`<virtnet:forwards>`) in virtnet's table: DNAT through data maps, so adding or
//! removing a forward changes map elements only, never a rule, and a packet costs one hash
//! lookup however many forwards exist.
//!
//! | map | key | value | used for |
//! |---|---|---|---|
//! | `fwd4` / `fwd6` | listen address . protocol . port | guest address . port | `--listen ADDR` |
//! | `fwd4_any` / `fwd6_any` | protocol . port | guest address . port | every host address |
//!
//! A port range is one element per port: a range in a concatenated key would put the map in
//! the kernel's pipapo backend, whose deletions scan the whole set (see `firewall.rs`), while
//! hash elements cost the same at any size.
//!
//! "Every host address" is `fib daddr type local` (the kernel's own table of local addresses,
//! always current, no set to keep in step with address changes) minus the networks' own
//! addresses (`@gateways4`/`@gateways6`, which the table already keeps per network) and
//! loopback (DNAT of 127.0.0.1 to a guest would need `route_localnet`; a local client uses the
//! host's public address, as from outside).
//!
//! The hooks:
//! - `fwd_prerouting` (nat, dstnat) for traffic arriving from outside or from guests (hairpin),
//!   `fwd_output` (nat, -100) for connections the host itself opens; both jump to `fwd_dnat`;
//! - the `forward` chain jumps to `fwd_accept` before its "to guests" rules, which otherwise let
//!   only replies reach a NAT guest: a new flow is accepted when conntrack says it was DNATed
//!   and its original destination is one of virtnet's forwards (so another table's DNAT opens
//!   nothing);
//! - hairpin, a guest reaching another guest (or itself) through the public address: such a
//!   flow goes from a virtnet bridge to a virtnet bridge; `fwd_hairpin` (filter, forward
//!   hook, just before virtnet's forward chain) marks its first packet with [`HAIRPIN_MARK`],
//!   and `fwd_postrouting` (nat, srcnat - 1, before virtnet's masquerade and its "no NAT
//!   within the subnet" exemption) masquerades marked packets. The target then answers the
//!   gateway, and the reply comes back through the host and is un-NATed, instead of going
//!   straight to a client that expects it from the public address. (Postrouting cannot test
//!   the input interface itself: the kernel passes none there.)

use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;

use virtnet_model::{HostProto, PortForward};

use crate::firewall::{KeyField, TABLE};
use crate::Subnet;

/// The forward maps: name and type.
pub const FORWARD_MAPS: &[(&str, &str)] = &[
    (
        "fwd4",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ;",
    ),
    (
        "fwd6",
        "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service ;",
    ),
    (
        "fwd4_any",
        "type inet_proto . inet_service : ipv4_addr . inet_service ;",
    ),
    (
        "fwd6_any",
        "type inet_proto . inet_service : ipv6_addr . inet_service ;",
    ),
];

/// The packet-mark bit that tells postrouting a new flow is a hairpin of one of virtnet's
/// forwards. Postrouting has no input interface to test, so `fwd_hairpin` (forward hook, just
/// before virtnet's forward chain) sets it on the flow's first packet when it goes from a
/// virtnet bridge to a virtnet bridge. One bit, OR-ed in, as netavark (0x2000) and kube-proxy
/// (0x4000) do with theirs; this one is outside the bits those and Tailscale use.
pub const HAIRPIN_MARK: u32 = 0x1000_0000;

/// The chain the `forward` base chain jumps to first (see the module comment).
pub const ACCEPT_CHAIN: &str = "fwd_accept";

/// "This conntrack entry is a DNAT by one of virtnet's forwards", one condition per map
/// (`ct original proto-dst` needs the protocol named first).
const OURS: [&str; 4] = [
    "ct status dnat meta l4proto { tcp, udp } ct original ip daddr . meta l4proto . ct original proto-dst @fwd4",
    "ct status dnat meta l4proto { tcp, udp } ct original ip6 daddr . meta l4proto . ct original proto-dst @fwd6",
    "ct status dnat meta nfproto ipv4 meta l4proto { tcp, udp } meta l4proto . ct original proto-dst @fwd4_any",
    "ct status dnat meta nfproto ipv6 meta l4proto { tcp, udp } meta l4proto . ct original proto-dst @fwd6_any",
];

/// The maps (empty), chains and rules of port forwarding, as part of a new table. Uses the
/// table's `bridges`, `gateways4` and `gateways6` sets, which must exist before.
pub fn objects_script() -> String {
    let mut s = String::new();
    for (name, kind) in FORWARD_MAPS {
        let _ = writeln!(s, "add map {TABLE} {name} {{ {kind} }}");
    }
    let l4 = "meta l4proto { tcp, udp }";
    let rules = [
        format!("{l4} dnat ip to ip daddr . meta l4proto . th dport map @fwd4"),
        format!("{l4} dnat ip6 to ip6 daddr . meta l4proto . th dport map @fwd6"),
        format!(
            "{l4} ip daddr != 127.0.0.0/8 ip daddr != @gateways4 fib daddr type local \
             dnat ip to meta l4proto . th dport map @fwd4_any"
        ),
        format!(
            "{l4} ip6 daddr != ::1 ip6 daddr != @gateways6 fib daddr type local \
             dnat ip6 to meta l4proto . th dport map @fwd6_any"
        ),
    ];
    let _ = writeln!(s, "add chain {TABLE} fwd_dnat");
    for r in rules {
        let _ = writeln!(s, "add rule {TABLE} fwd_dnat {r}");
    }
    for (chain, hook, prio) in [
        ("fwd_prerouting", "prerouting", "dstnat"),
        // nft 1.0.6 knows no `dstnat` keyword for the output hook: its value.
        ("fwd_output", "output", "-100"),
    ] {
        let _ = writeln!(
            s,
            "add chain {TABLE} {chain} {{ type nat hook {hook} priority {prio} ; policy accept ; }}"
        );
        let _ = writeln!(s, "add rule {TABLE} {chain} jump fwd_dnat");
    }
    let _ = writeln!(s, "add chain {TABLE} {ACCEPT_CHAIN}");
    for ours in OURS {
        let _ = writeln!(
            s,
            "add rule {TABLE} {ACCEPT_CHAIN} ct direction original {ours} accept"
        );
    }
    // Hairpin: marked where the input interface is known (postrouting has none), masqueraded
    // in postrouting.
    let _ = writeln!(
        s,
        "add chain {TABLE} fwd_hairpin {{ type filter hook forward priority filter - 1 ; policy accept ; }}"
    );
    for ours in OURS {
        let _ = writeln!(
            s,
            "add rule {TABLE} fwd_hairpin iifname @bridges oifname @bridges ct direction original {ours} meta mark set meta mark | {HAIRPIN_MARK:#x}"
        );
    }
    let _ = writeln!(
        s,
        "add chain {TABLE} fwd_postrouting {{ type nat hook postrouting priority srcnat - 1 ; policy accept ; }}"
    );
    let _ = writeln!(
        s,
        "add rule {TABLE} fwd_postrouting meta mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} masquerade"
    );
    s
}

/// One element of a forward map: one host port of one forward, with its guest resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ForwardEntry {
    /// The host address, `None` for every host address (the `_any` maps).
    pub listen: Option<IpAddr>,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The host port.
    pub port: u16,
    /// The guest's address (its family picks the map).
    pub to: IpAddr,
    /// The guest's port.
    pub to_port: u16,
}

impl ForwardEntry {
    /// The map the element lives in.
    pub fn map(&self) -> &'static str {
        match (self.to.is_ipv4(), self.listen.is_some()) {
            (true, true) => "fwd4",
            (false, true) => "fwd6",
            (true, false) => "fwd4_any",
            (false, false) => "fwd6_any",
        }
    }

    /// The key's fields, in the map's order.
    pub fn key(&self) -> Vec<KeyField> {
        let mut key = Vec::new();
        if let Some(l) = self.listen {
            key.push(KeyField::NetAddr(Subnet::of(
                l,
                if l.is_ipv4() { 32 } else { 128 },
            )));
        }
        key.push(KeyField::L4(self.proto));
        key.push(KeyField::Port(self.port));
        key
    }

    /// The key as nft writes it.
    pub fn key_text(&self) -> String {
        let parts: Vec<String> = self.key().iter().map(ToString::to_string).collect();
        parts.join(" . ")
    }
}

impl fmt::Display for ForwardEntry {
    /// `203.0.113.2 . tcp . 8080 : 10.0.0.5 . 80`, as in an `add element`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} : {} . {}", self.key_text(), self.to, self.to_port)
    }
}

/// The map elements of `fwd` with its guest at `to`: one per host port. `None` when the
/// guest's family cannot serve the forward (a listen address of the other family).
pub fn entries(fwd: &PortForward, to: IpAddr) -> Vec<ForwardEntry> {
    if fwd.listen.is_some_and(|l| l.is_ipv4() != to.is_ipv4()) {
        return Vec::new();
    }
    let proto = match fwd.proto {
        HostProto::Tcp => "tcp",
        HostProto::Udp => "udp",
    };
    (fwd.ports.start..=fwd.ports.end)
        .map(|port| ForwardEntry {
            listen: fwd.listen,
            proto,
            port,
            to,
            to_port: fwd.target_port(port),
        })
        .collect()
}

/// `add element` commands for `entries` (what the golden test and the benchmark's
/// libnftables comparison use; the daemon sends the same elements over nfnetlink).
pub fn add_script(entries: &[ForwardEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(s, "add element {TABLE} {} {{ {e} }}", e.map());
    }
    s
}

/// `delete element` commands for `entries`.
pub fn delete_script(entries: &[ForwardEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(
            s,
            "delete element {TABLE} {} {{ {} }}",
            e.map(),
            e.key_text()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_model::{ForwardPorts, ForwardTarget};

    #[test]
    fn a_range_is_one_element_per_port_in_the_map_of_its_family() {
        let fwd = PortForward {
            proto: HostProto::Udp,
            ports: ForwardPorts {
                start: 5000,
                end: 5002,
            },
            listen: None,
            to: ForwardTarget::Name("g".into()),
            to_port: Some(6000),
        };
        let e = entries(&fwd, "10.0.0.5".parse().unwrap());
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].to_string(), "udp . 5002 : 10.0.0.5 . 6002");
        assert_eq!(e[0].map(), "fwd4_any");
        let mut on = fwd.clone();
        on.listen = Some("2001:db8::2".parse().unwrap());
        assert!(entries(&on, "10.0.0.5".parse().unwrap()).is_empty());
        let e = entries(&on, "fd00::5".parse().unwrap());
        assert_eq!(e[0].map(), "fwd6");
        assert_eq!(
            e[0].to_string(),
            "2001:db8::2 . udp . 5000 : fd00::5 . 6000"
        );
    }
}
