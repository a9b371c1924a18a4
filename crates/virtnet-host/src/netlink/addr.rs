//! Interface addresses (IPv4 and IPv6).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use crate::error::{HostError, Result};

/// An address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// Interface index.
    pub ifindex: u32,
    /// The local address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 broadcast address (`IFA_BROADCAST`), if set.
    pub broadcast: Option<Ipv4Addr>,
}

/// The netlink address family of `addr`.
pub(super) fn family(addr: &IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The IPv4 broadcast address of `addr/prefix` (`brd +`); none for /31, /32.
pub(crate) fn broadcast(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix > 30 {
        return None;
    }
    let host_mask = u32::MAX >> prefix;
    Some(Ipv4Addr::from(u32::from(addr) | host_mask))
}

/// Builds the request identifying `addr/prefix` on `ifindex`.
fn message(ifindex: u32, addr: IpAddr, prefix: u8, with_brd: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&addr);
    m.header.prefix_len = prefix;
    m.header.index = ifindex;
    match addr {
        IpAddr::V4(v4) => {
            m.attributes.push(AddressAttribute::Local(addr));
            m.attributes.push(AddressAttribute::Address(addr));
            if with_brd {
                if let Some(b) = broadcast(v4, prefix) {
                    m.attributes.push(AddressAttribute::Broadcast(b));
                }
            }
        }
        IpAddr::V6(_) => m.attributes.push(AddressAttribute::Address(addr)),
    }
    m
}

/// The `RTM_DELADDR` message removing `a`.
pub(super) fn delete_message(a: &Address) -> AddressMessage {
    message(a.ifindex, a.addr, a.prefix_len, false)
}

/// The address an `RTM_NEWADDR`/`RTM_DELADDR` message describes (IPv4 and IPv6 only).
pub(crate) fn address_from(m: AddressMessage) -> Option<Address> {
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let (mut local, mut address, mut brd) = (None, None, None);
    for a in m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Broadcast(b) => brd = Some(b),
            _ => {}
        }
    }
    local.or(address).map(|addr| Address {
        ifindex: m.header.index,
        addr,
        prefix_len: m.header.prefix_len,
        broadcast: brd,
    })
}

impl Netlink {
    /// Lists every IPv4 and IPv6 address of the namespace (`RTM_GETADDR` dump).
    pub fn addresses(&mut self) -> Result<Vec<Address>> {
        self.dump_addresses(AddressMessage::default())
    }

    fn dump_addresses(&mut self, request: AddressMessage) -> Result<Vec<Address>> {
        self.dump_parsed(
            RouteNetlinkMessage::GetAddress(request),
            "list addresses",
            |m| match m {
                RouteNetlinkMessage::NewAddress(m) => address_from(m),
                _ => None,
            },
        )
    }

    /// The IPv4 and IPv6 addresses of one interface (`RTM_GETADDR` dump filtered by index in
    /// the kernel).
    pub fn addresses_of(&mut self, ifindex: u32) -> Result<Vec<Address>> {
        let mut m = AddressMessage::default();
        m.header.index = ifindex;
        let all = self.dump_addresses(m)?;
        // An old kernel ignores the filter: check the answer.
        Ok(all.into_iter().filter(|a| a.ifindex == ifindex).collect())
    }

    /// Adds `addr/prefix` to interface `ifindex` (`RTM_NEWADDR`,
    /// `NLM_F_CREATE|NLM_F_EXCL`).
    ///
    /// IPv4 is sent like `ip addr add A/P brd + dev X`: `IFA_LOCAL` and
    /// `IFA_ADDRESS` both `A`, `IFA_BROADCAST` the subnet's last address
    /// (none for /31 and /32). IPv6 is sent with the kernel's default flags
    /// (duplicate address detection stays on; the address is tentative until
    /// the link has carrier and DAD finished).
    ///
    /// Fails with `EEXIST` when the address is already there (see
    /// [`Netlink::ensure_address`] for the idempotent form).
    pub fn add_address(&mut self, ifindex: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        const OP: &str = "add address";
        let target = || format!("{addr}/{prefix} on #{ifindex}");
        if prefix > max_prefix(&addr) {
            return Err(HostError::invalid(OP, target(), "prefix length too long"));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(message(ifindex, addr, prefix, true)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|e| e.ctx(OP, target()))
    }

    /// Like [`Netlink::add_address`], but an existing address is fine:
    /// returns `true` when it was added, `false` when it was already there.
    pub fn ensure_address(&mut self, ifindex: u32, addr: IpAddr, prefix: u8) -> Result<bool> {
        match self.add_address(ifindex, addr, prefix) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `addr/prefix` from interface `ifindex` (`RTM_DELADDR`). A
    /// missing address fails with `EADDRNOTAVAIL` (see
    /// [`HostError::is_not_found`]).
    pub fn del_address(&mut self, ifindex: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        const OP: &str = "delete address";
        let target = || format!("{addr}/{prefix} on #{ifindex}");
        if prefix > max_prefix(&addr) {
            return Err(HostError::invalid(OP, target(), "prefix length too long"));
        }
        self.request(
            RouteNetlinkMessage::DelAddress(message(ifindex, addr, prefix, false)),
            0,
        )
        .map_err(|e| e.ctx(OP, target()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_like_brd_plus() {
        let a: Ipv4Addr = "192.168.122.1".parse().unwrap();
        assert_eq!(broadcast(a, 24), Some("192.168.122.255".parse().unwrap()));
        assert_eq!(broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast(a, 30), Some("192.168.122.3".parse().unwrap()));
        assert_eq!(broadcast(a, 31), None);
        assert_eq!(broadcast(a, 32), None);
    }
}
