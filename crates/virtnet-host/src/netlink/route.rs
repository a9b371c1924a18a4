//! Routes of the main table (IPv4 and IPv6 unicast).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::addr::family;
use super::Netlink;
use crate::error::{HostError, Result};

/// The main routing table (`RT_TABLE_MAIN`).
const MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// A unicast route of the main table, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination network address (`0.0.0.0`/`::` for a default route).
    pub dest: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop (`RTA_GATEWAY`), if any.
    pub gateway: Option<IpAddr>,
    /// Output interface (`RTA_OIF`), if any.
    pub oif: Option<u32>,
    /// Routing protocol (`rtm_protocol`): 2 kernel, 3 boot, 4 static, or the
    /// number a daemon passed in [`RouteSpec::protocol`].
    pub protocol: u8,
    /// Metric (`RTA_PRIORITY`), if any. IPv6 routes always have one (default
    /// 1024).
    pub metric: Option<u32>,
}

/// A route to add to or delete from the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Destination network address.
    pub dest: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop; `None` for a route straight onto `oif` (scope link).
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Metric; `None` = kernel default (0 for IPv4, 1024 for IPv6).
    pub metric: Option<u32>,
    /// `rtm_protocol` to stamp on the route, so its owner can recognise it in
    /// [`Netlink::routes`] later (pick one unused in `/etc/iproute2/rt_protos`).
    /// On delete, 0 matches any protocol.
    pub protocol: u8,
}

fn max_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl RouteSpec {
    fn target(&self) -> String {
        let mut s = format!("{}/{}", self.dest, self.prefix);
        if let Some(g) = self.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(o) = self.oif {
            s.push_str(&format!(" dev #{o}"));
        }
        s
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.prefix > max_prefix(&self.dest) {
            return Err(HostError::invalid(
                op,
                self.target(),
                "prefix length too long",
            ));
        }
        if let Some(g) = self.gateway {
            if g.is_ipv4() != self.dest.is_ipv4() {
                return Err(HostError::invalid(
                    op,
                    self.target(),
                    "gateway and destination are of different families",
                ));
            }
        }
        Ok(())
    }

    fn message(&self, add: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family(&self.dest);
        m.header.destination_prefix_length = self.prefix;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::from(self.protocol);
        if add {
            m.header.kind = RouteType::Unicast;
            // Like `ip route add`: no gateway means the destination is on-link.
            m.header.scope = if self.gateway.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            };
        } else {
            // Like `ip route del`: match routes of any scope and type.
            m.header.kind = RouteType::Unspec;
            m.header.scope = RouteScope::NoWhere;
        }
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(self.dest)));
        push_next_hop(&mut m.attributes, self.gateway, self.oif, self.metric);
        m
    }
}

/// Appends the gateway, output interface and metric attributes of a route that has them.
pub(super) fn push_next_hop(
    attributes: &mut Vec<RouteAttribute>,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
    metric: Option<u32>,
) {
    if let Some(g) = gateway {
        attributes.push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    if let Some(o) = oif {
        attributes.push(RouteAttribute::Oif(o));
    }
    if let Some(p) = metric {
        attributes.push(RouteAttribute::Priority(p));
    }
}

/// The IP address of a route attribute (none for other families).
pub(super) fn ip(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

/// The route an `RTM_NEWROUTE`/`RTM_DELROUTE` message describes, if it is a unicast IPv4 or
/// IPv6 route of the main table.
pub(crate) fn route_from(m: RouteMessage) -> Option<Route> {
    let unspecified = match m.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let mut r = Route {
        dest: unspecified,
        prefix: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
        protocol: u8::from(m.header.protocol),
        metric: None,
    };
    for a in m.attributes {
        match a {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(d) => {
                if let Some(d) = ip(d) {
                    r.dest = d;
                }
            }
            RouteAttribute::Gateway(g) => r.gateway = ip(g),
            RouteAttribute::Oif(o) => r.oif = Some(o),
            RouteAttribute::Priority(p) => r.metric = Some(p),
            _ => {}
        }
    }
    (table == MAIN).then_some(r)
}

impl Netlink {
    /// Lists the unicast IPv4 and IPv6 routes of the main table
    /// (`RTM_GETROUTE` dump, filtered here). Multipath routes are reported
    /// without gateway and output interface.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut request = RouteMessage::default();
        // Honoured with strict checking on (see `Netlink::open`); the filter below stays for
        // kernels without it.
        request.header.table = RouteHeader::RT_TABLE_MAIN;
        self.dump_parsed(
            RouteNetlinkMessage::GetRoute(request),
            "list routes",
            |m| match m {
                RouteNetlinkMessage::NewRoute(m) => route_from(m),
                _ => None,
            },
        )
    }

    /// Dumps `request` and keeps what `parse` makes of each answer; a failure names `op`.
    pub(super) fn dump_parsed<T>(
        &mut self,
        request: RouteNetlinkMessage,
        op: &'static str,
        parse: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>> {
        let msgs = self.dump(request).map_err(|e| e.ctx(op, ""))?;
        Ok(msgs.into_iter().filter_map(parse).collect())
    }

    /// Adds a unicast route to the main table (`RTM_NEWROUTE`,
    /// `NLM_F_CREATE|NLM_F_EXCL`). Fails with `EEXIST` if the same route is
    /// there. A gateway must be reachable through `oif` (an address of the
    /// link's subnet); the link must be up but needs no carrier.
    pub fn add_route(&mut self, r: &RouteSpec) -> Result<()> {
        const OP: &str = "add route";
        r.check(OP)?;
        self.request(
            RouteNetlinkMessage::NewRoute(r.message(true)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|e| e.ctx(OP, r.target()))
    }

    /// Deletes a route of the main table (`RTM_DELROUTE`) matching
    /// destination, prefix, and — when set — gateway, output interface,
    /// metric and protocol (0 = any). A missing route fails with `ESRCH`
    /// (see [`HostError::is_not_found`]).
    pub fn del_route(&mut self, r: &RouteSpec) -> Result<()> {
        const OP: &str = "delete route";
        r.check(OP)?;
        self.request(RouteNetlinkMessage::DelRoute(r.message(false)), 0)
            .map_err(|e| e.ctx(OP, r.target()))
    }
}
