//! Subnet arithmetic shared by the parser, the define-time rules and the plan: masks of a
//! prefix length and membership of an address. A leaf: it depends on nothing else in the crate.

use std::net::IpAddr;

/// True when `addr` belongs to the subnet `net/prefix`.
pub fn in_subnet(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = prefix_mask_v4(prefix);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = prefix_mask_v6(prefix);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
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
