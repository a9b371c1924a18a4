//! Subnet arithmetic shared by the parser, the define-time rules, the plan and the DHCP server:
//! [`Subnet`] (network address, mask, last address, membership, overlap) and the masks of a
//! prefix length. A leaf: it depends on nothing else in the crate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

/// An IP subnet in CIDR form, as nftables and `ip` print it (`192.168.122.0/24`): its network
/// address (host bits cleared) and its prefix length. [`Subnet::of`] builds one from any
/// address in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    /// Network address.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// The subnet `addr/prefix` belongs to. A prefix longer than the family's width (32 or
    /// 128) is taken as the width: the subnet of that one address.
    pub fn of(addr: IpAddr, prefix: u8) -> Subnet {
        let prefix = prefix.min(width(addr));
        let address = match addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & prefix_mask_v4(prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & prefix_mask_v6(prefix)).into()),
        };
        Subnet { address, prefix }
    }

    /// The network and broadcast addresses of the IPv4 subnet `addr/prefix` (its first and
    /// last address; for a /31 or /32 these are host addresses too).
    pub fn ipv4_ends(addr: Ipv4Addr, prefix: u8) -> (Ipv4Addr, Ipv4Addr) {
        let mask = prefix_mask_v4(prefix);
        let network = u32::from(addr) & mask;
        (Ipv4Addr::from(network), Ipv4Addr::from(network | !mask))
    }

    /// The netmask (`255.255.255.0` for a /24, `ffff:ffff:ffff:ffff::` for a /64).
    pub fn mask(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(_) => IpAddr::V4(prefix_mask_v4(self.prefix).into()),
            IpAddr::V6(_) => IpAddr::V6(prefix_mask_v6(self.prefix).into()),
        }
    }

    /// The subnet's last address (its broadcast address for IPv4).
    pub fn last_address(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(a) => IpAddr::V4(Subnet::ipv4_ends(a, self.prefix).1),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) | !prefix_mask_v6(self.prefix)).into()),
        }
    }

    /// The subnet's addresses as integers, first to last, for counting or iterating (an IPv4
    /// address is its 32-bit value).
    pub fn bounds(&self) -> RangeInclusive<u128> {
        as_u128(self.address)..=as_u128(self.last_address())
    }

    /// True when `addr` is in the subnet (never for an address of the other family).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.address.is_ipv4() && Subnet::of(addr, self.prefix) == *self
    }

    /// True when the two subnets share at least one address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        self.address.is_ipv4() == other.address.is_ipv4()
            && Subnet::of(self.address, shorter) == Subnet::of(other.address, shorter)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The width of an address of `addr`'s family, in bits.
fn width(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn as_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// True when `addr` belongs to the subnet `net/prefix`.
pub fn in_subnet(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    Subnet::of(net, prefix).contains(addr)
}

/// The IPv4 netmask of a prefix length, as an integer.
pub fn prefix_mask_v4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// The IPv6 netmask of a prefix length, as an integer.
pub fn prefix_mask_v6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// The unspecified address of one family.
    fn zero(v4: bool) -> IpAddr {
        if v4 {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_24_has_its_network_mask_broadcast_and_members() {
        let s = Subnet::of(ip("192.168.122.77"), 24);
        assert_eq!(s.address, ip("192.168.122.0"));
        assert_eq!(s.to_string(), "192.168.122.0/24");
        assert_eq!(s.mask(), ip("255.255.255.0"));
        assert_eq!(s.last_address(), ip("192.168.122.255"));
        assert_eq!(
            Subnet::ipv4_ends("192.168.122.1".parse().expect("v4"), 24),
            (
                Ipv4Addr::new(192, 168, 122, 0),
                Ipv4Addr::new(192, 168, 122, 255)
            )
        );
        assert!(s.contains(ip("192.168.122.0")) && s.contains(ip("192.168.122.255")));
        assert!(!s.contains(ip("192.168.123.1")));
        assert!(!s.contains(ip("::ffff:192.168.122.1")), "other family");
        assert_eq!(s.bounds(), 0xc0a8_7a00..=0xc0a8_7aff);
    }

    #[test]
    fn slash_0_is_everything_of_its_family() {
        for v4 in [true, false] {
            let any = Subnet::of(if v4 { ip("10.1.2.3") } else { ip("fd00::1") }, 0);
            assert_eq!(any.address, zero(v4));
            assert_eq!(any.mask(), zero(v4));
            assert!(any.contains(if v4 {
                ip("255.255.255.255")
            } else {
                ip("ffff::1")
            }));
            assert!(!any.contains(if v4 { ip("::1") } else { ip("1.2.3.4") }));
        }
        let v4 = Subnet::of(ip("10.1.2.3"), 0);
        assert_eq!(v4.last_address(), ip("255.255.255.255"));
        assert_eq!(v4.bounds(), 0..=u128::from(u32::MAX));
        let v6 = Subnet::of(ip("fd00::1"), 0);
        assert_eq!(v6.bounds(), 0..=u128::MAX);
        assert!(!v4.overlaps(&v6), "families never overlap");
    }

    #[test]
    fn slash_31_and_32_are_two_and_one_address() {
        let p2p = Subnet::of(ip("10.0.0.5"), 31);
        assert_eq!(p2p.address, ip("10.0.0.4"));
        assert_eq!(p2p.last_address(), ip("10.0.0.5"));
        assert_eq!(p2p.mask(), ip("255.255.255.254"));
        assert_eq!(p2p.bounds().count(), 2);
        let one = Subnet::of(ip("10.0.0.5"), 32);
        assert_eq!(one.address, ip("10.0.0.5"));
        assert_eq!(one.last_address(), ip("10.0.0.5"));
        assert_eq!(one.mask(), ip("255.255.255.255"));
        assert!(one.contains(ip("10.0.0.5")) && !one.contains(ip("10.0.0.4")));
        assert!(one.overlaps(&p2p) && p2p.overlaps(&one));
        // Longer prefixes than the family allows mean the one address.
        assert_eq!(Subnet::of(ip("10.0.0.5"), 40), one);
    }

    #[test]
    fn ipv6_64_and_128() {
        let s = Subnet::of(ip("fd00:1:2:3:4:5:6:7"), 64);
        assert_eq!(s.to_string(), "fd00:1:2:3::/64");
        assert_eq!(s.mask(), ip("ffff:ffff:ffff:ffff::"));
        assert_eq!(s.last_address(), ip("fd00:1:2:3:ffff:ffff:ffff:ffff"));
        assert!(s.contains(ip("fd00:1:2:3::1")) && !s.contains(ip("fd00:1:2:4::1")));
        assert_eq!(s.bounds().end() - s.bounds().start(), u128::from(u64::MAX));
        let one = Subnet::of(ip("fd00:1:2:3::9"), 128);
        assert_eq!(one.address, ip("fd00:1:2:3::9"));
        assert_eq!(one.last_address(), one.address);
        assert_eq!(one.mask(), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(one.overlaps(&s) && !one.overlaps(&Subnet::of(ip("fd00::"), 128)));
    }

    #[test]
    fn subnets_overlap_by_the_shorter_prefix() {
        let a = Subnet::of(ip("192.168.122.1"), 24);
        let b = Subnet::of(ip("192.168.0.0"), 16);
        let c = Subnet::of(ip("192.168.123.0"), 24);
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(in_subnet(ip("192.168.122.9"), ip("192.168.122.1"), 24));
        assert!(!in_subnet(ip("192.168.123.9"), ip("192.168.122.1"), 24));
    }
}
