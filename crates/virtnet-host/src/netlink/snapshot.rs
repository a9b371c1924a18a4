//! Full-fidelity addresses and routes: every attribute a NIC's configuration can carry, so it
//! can be moved to another link (a bridge) and later put back exactly (`iface-bridge`).
//!
//! [`super::Address`] and [`super::Route`] are the lean views virtnet's own networks need;
//! [`AddressEntry`] and [`RouteEntry`] keep flags, lifetimes, labels, scopes, tables,
//! protocols, preferred sources and route metrics, and serialise (to be stored before a change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{Emitable, NlaBuffer, Parseable, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RoutePreference, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::addr::family;
use super::route::{ip as route_ip, push_next_hop};
use super::Netlink;
use crate::error::Result;

/// A lifetime of "forever" (`INFINITY_LIFE_TIME`).
pub const FOREVER: u32 = u32::MAX;

/// Flags the kernel sets by itself; never sent back.
const KERNEL_ADDR_FLAGS: u32 = 0x01 /* secondary */
    | 0x08 /* dadfailed */
    | 0x20 /* deprecated */
    | 0x40 /* tentative */
    | 0x80 /* permanent */;

/// `IFA_F_NODAD`.
pub const IFA_F_NODAD: u32 = 0x02;

/// An interface address with everything `ip addr add` can set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressEntry {
    /// Interface index.
    pub ifindex: u32,
    /// The local address (`IFA_LOCAL`, or `IFA_ADDRESS` for IPv6).
    pub local: IpAddr,
    /// The peer of a point-to-point address (`IFA_ADDRESS` when it differs from `IFA_LOCAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 broadcast address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ipv4Addr>,
    /// IPv4 label (`eth0`, `eth0:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Scope (`rtm_scope` numbers: 0 global, 253 link, 254 host).
    pub scope: u8,
    /// `IFA_FLAGS` as the kernel reported them (`secondary`, `permanent`, `noprefixroute` …).
    pub flags: u32,
    /// Remaining valid lifetime in seconds ([`FOREVER`] for a static address).
    pub valid_lft: u32,
    /// Remaining preferred lifetime in seconds.
    pub preferred_lft: u32,
    /// Metric of the prefix route (`IFA_RT_PRIORITY`), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_metric: Option<u32>,
}

impl AddressEntry {
    /// `local/prefix_len` on link `ifindex` as `ip addr add` makes it: global scope, no flags,
    /// no peer, broadcast or label, valid forever.
    pub fn new(ifindex: u32, local: IpAddr, prefix_len: u8) -> Self {
        AddressEntry {
            ifindex,
            local,
            peer: None,
            prefix_len,
            broadcast: None,
            label: None,
            scope: 0,
            flags: 0,
            valid_lft: FOREVER,
            preferred_lft: FOREVER,
            route_metric: None,
        }
    }

    /// A dynamic address: it expires (DHCP, SLAAC) instead of staying forever.
    pub fn is_dynamic(&self) -> bool {
        self.valid_lft != FOREVER
    }

    /// An IPv6 link-local address (`fe80::/10`), which the kernel makes per link.
    pub fn is_ipv6_link_local(&self) -> bool {
        matches!(self.local, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
    }

    fn message(&self, add: bool) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family(&self.local);
        m.header.prefix_len = self.prefix_len;
        m.header.index = self.ifindex;
        m.header.scope = AddressScope::from(self.scope);
        let flags = self.flags & !KERNEL_ADDR_FLAGS;
        m.header.flags = AddressHeaderFlags::from_bits_retain((flags & 0xff) as u8);
        match self.local {
            IpAddr::V4(_) => {
                m.attributes.push(AddressAttribute::Local(self.local));
                m.attributes
                    .push(AddressAttribute::Address(self.peer.unwrap_or(self.local)));
            }
            IpAddr::V6(_) => {
                if let Some(p) = self.peer {
                    m.attributes.push(AddressAttribute::Local(self.local));
                    m.attributes.push(AddressAttribute::Address(p));
                } else {
                    m.attributes.push(AddressAttribute::Address(self.local));
                }
            }
        }
        if !add {
            return m;
        }
        if let Some(b) = self.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = &self.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                flags,
            )));
        if self.valid_lft != FOREVER || self.preferred_lft != FOREVER {
            let mut ci = CacheInfo::default();
            ci.ifa_preferred = self.preferred_lft;
            ci.ifa_valid = self.valid_lft;
            m.attributes.push(AddressAttribute::CacheInfo(ci));
        }
        if let Some(p) = self.route_metric {
            m.attributes.push(AddressAttribute::RoutePriority(p));
        }
        m
    }

    fn target(&self) -> String {
        format!("{}/{} on #{}", self.local, self.prefix_len, self.ifindex)
    }
}

fn address_entry(m: AddressMessage) -> Option<AddressEntry> {
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let (mut local, mut address) = (None, None);
    let mut e = AddressEntry {
        ifindex: m.header.index,
        local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        peer: None,
        prefix_len: m.header.prefix_len,
        broadcast: None,
        label: None,
        scope: u8::from(m.header.scope),
        flags: u32::from(m.header.flags.bits()),
        valid_lft: FOREVER,
        preferred_lft: FOREVER,
        route_metric: None,
    };
    for a in m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Broadcast(b) => e.broadcast = Some(b),
            AddressAttribute::Label(l) => e.label = Some(l),
            AddressAttribute::Flags(f) => e.flags = f.bits(),
            AddressAttribute::CacheInfo(c) => {
                e.valid_lft = c.ifa_valid;
                e.preferred_lft = c.ifa_preferred;
            }
            AddressAttribute::RoutePriority(p) => e.route_metric = Some(p),
            _ => {}
        }
    }
    match (local, address) {
        (Some(l), Some(a)) => {
            e.local = l;
            e.peer = (a != l).then_some(a);
        }
        (Some(l), None) | (None, Some(l)) => e.local = l,
        (None, None) => return None,
    }
    Some(e)
}

/// A route with everything `ip route add` can set (multipath routes are reported with
/// `multipath` set and cannot be re-added by this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// Destination (`0.0.0.0`/`::` with prefix 0 for a default route).
    pub dest: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Source prefix (IPv6 source routing), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(IpAddr, u8)>,
    /// TOS.
    #[serde(default)]
    pub tos: u8,
    /// Routing table (254 main).
    pub table: u32,
    /// `rtm_protocol` (2 kernel, 3 boot, 4 static, 16 dhcp, 9 ra …).
    pub protocol: u8,
    /// `rtm_scope` (0 universe, 253 link, 254 host).
    pub scope: u8,
    /// `rtm_type` (1 unicast …).
    pub kind: u8,
    /// `rtm_flags` as sent (only `onlink` is kept).
    #[serde(default)]
    pub flags: u32,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<u32>,
    /// Preferred source address (`src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    /// Metric (`RTA_PRIORITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// IPv6 router preference (`RTA_PREF`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pref: Option<u8>,
    /// Route metrics (`RTA_METRICS`: mtu, advmss, …), each one netlink attribute as bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Vec<u8>>,
    /// A multipath route (several next hops): reported, not re-creatable from this entry.
    #[serde(default)]
    pub multipath: bool,
}

/// `RTPROT_KERNEL`: routes the kernel derives from addresses.
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_DHCP`.
pub const RTPROT_DHCP: u8 = 16;
/// The local table, which the kernel fills from addresses.
pub const RT_TABLE_LOCAL: u32 = 255;

impl RouteEntry {
    /// `dest/prefix via gw dev #oif metric m table t proto p`, for messages.
    pub fn describe(&self) -> String {
        let mut s = if self.prefix == 0 {
            "default".to_string()
        } else {
            format!("{}/{}", self.dest, self.prefix)
        };
        if let Some(g) = self.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(src) = self.prefsrc {
            s.push_str(&format!(" src {src}"));
        }
        if let Some(m) = self.metric {
            s.push_str(&format!(" metric {m}"));
        }
        if self.table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            s.push_str(&format!(" table {}", self.table));
        }
        s.push_str(&format!(" proto {}", self.protocol));
        s
    }

    fn message(&self, add: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family(&self.dest);
        m.header.destination_prefix_length = self.prefix;
        m.header.tos = self.tos;
        m.header.table = u8::try_from(self.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        m.header.protocol = RouteProtocol::from(self.protocol);
        m.header.scope = RouteScope::from(self.scope);
        m.header.kind = RouteType::from(self.kind);
        m.header.flags = RouteFlags::from_bits_retain(self.flags & RouteFlags::Onlink.bits());
        m.attributes.push(RouteAttribute::Table(self.table));
        if self.prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(self.dest)));
        }
        if let Some((src, len)) = self.source {
            m.header.source_prefix_length = len;
            m.attributes
                .push(RouteAttribute::Source(RouteAddress::from(src)));
        }
        push_next_hop(&mut m.attributes, self.gateway, self.oif, self.metric);
        if add {
            if let Some(s) = self.prefsrc {
                m.attributes
                    .push(RouteAttribute::PrefSource(RouteAddress::from(s)));
            }
            if let Some(p) = self.pref {
                m.attributes
                    .push(RouteAttribute::Preference(RoutePreference::from(p)));
            }
            let metrics: Vec<RouteMetric> = self
                .metrics
                .iter()
                .filter_map(|b| {
                    let buf = NlaBuffer::new_checked(b.as_slice()).ok()?;
                    RouteMetric::parse(&buf).ok()
                })
                .collect();
            if !metrics.is_empty() {
                m.attributes.push(RouteAttribute::Metrics(metrics));
            }
        }
        m
    }
}

fn route_entry(m: RouteMessage) -> Option<RouteEntry> {
    let unspecified = match m.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut r = RouteEntry {
        dest: unspecified,
        prefix: m.header.destination_prefix_length,
        source: None,
        tos: m.header.tos,
        table: u32::from(m.header.table),
        protocol: u8::from(m.header.protocol),
        scope: u8::from(m.header.scope),
        kind: u8::from(m.header.kind),
        flags: m.header.flags.bits() & RouteFlags::Onlink.bits(),
        gateway: None,
        oif: None,
        prefsrc: None,
        metric: None,
        pref: None,
        metrics: Vec::new(),
        multipath: false,
    };
    let src_len = m.header.source_prefix_length;
    for a in m.attributes {
        match a {
            RouteAttribute::Table(t) => r.table = t,
            RouteAttribute::Destination(d) => {
                if let Some(d) = route_ip(d) {
                    r.dest = d;
                }
            }
            RouteAttribute::Source(s) => r.source = route_ip(s).map(|s| (s, src_len)),
            RouteAttribute::Gateway(g) => r.gateway = route_ip(g),
            RouteAttribute::Oif(o) => r.oif = Some(o),
            RouteAttribute::PrefSource(s) => r.prefsrc = route_ip(s),
            RouteAttribute::Priority(p) => r.metric = Some(p),
            RouteAttribute::Preference(p) => r.pref = Some(u8::from(p)),
            RouteAttribute::MultiPath(_) => r.multipath = true,
            RouteAttribute::Metrics(ms) => {
                for metric in ms {
                    let mut b = vec![0u8; metric.buffer_len()];
                    metric.emit(&mut b);
                    r.metrics.push(b);
                }
            }
            _ => {}
        }
    }
    Some(r)
}

impl Netlink {
    /// Every IPv4 and IPv6 address of the namespace with all its attributes, in the kernel's
    /// order (per link: IPv4 primaries before their secondaries; IPv6 newest first).
    pub fn address_entries(&mut self) -> Result<Vec<AddressEntry>> {
        self.dump_parsed(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "list addresses",
            |m| match m {
                RouteNetlinkMessage::NewAddress(m) => address_entry(m),
                _ => None,
            },
        )
    }

    /// Adds an address with all its attributes (`RTM_NEWADDR`, `NLM_F_CREATE|NLM_F_EXCL`);
    /// `EEXIST` when it is there (see [`crate::HostError::is_exists`]).
    pub fn add_address_entry(&mut self, a: &AddressEntry) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewAddress(a.message(true)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|e| e.ctx("add address", a.target()))
    }

    /// Removes an address (`RTM_DELADDR`); `EADDRNOTAVAIL` when it is not there.
    pub fn del_address_entry(&mut self, a: &AddressEntry) -> Result<()> {
        self.request(RouteNetlinkMessage::DelAddress(a.message(false)), 0)
            .map_err(|e| e.ctx("delete address", a.target()))
    }

    /// Every IPv4 and IPv6 route of every table (cached clones left out), with all attributes.
    pub fn route_entries(&mut self) -> Result<Vec<RouteEntry>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            out.extend(self.dump_parsed(
                RouteNetlinkMessage::GetRoute(request),
                "list routes",
                |m| match m {
                    RouteNetlinkMessage::NewRoute(m)
                        if !m.header.flags.contains(RouteFlags::Cloned) =>
                    {
                        route_entry(m)
                    }
                    _ => None,
                },
            )?);
        }
        Ok(out)
    }

    /// Adds a route with all its attributes (`RTM_NEWROUTE`, `NLM_F_CREATE|NLM_F_APPEND`: a
    /// route of the same destination and metric through another link may exist meanwhile, as
    /// while a route moves). `EEXIST` when the very same route is there.
    pub fn add_route_entry(&mut self, r: &RouteEntry) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(r.message(true)),
            NLM_F_CREATE | NLM_F_APPEND,
        )
        .map_err(|e| e.ctx("add route", r.describe()))
    }

    /// Deletes the route matching destination, table, gateway, output interface, metric,
    /// protocol and type (`RTM_DELROUTE`); `ESRCH` when there is none.
    pub fn del_route_entry(&mut self, r: &RouteEntry) -> Result<()> {
        self.request(RouteNetlinkMessage::DelRoute(r.message(false)), 0)
            .map_err(|e| e.ctx("delete route", r.describe()))
    }
}
