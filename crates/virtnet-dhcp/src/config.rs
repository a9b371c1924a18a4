//! What one network's DHCPv4 server hands out, derived from a libvirt `<network>`.

use std::net::{IpAddr, Ipv4Addr};

use virtnet_model::subnet::prefix_mask_v4;
use virtnet_model::{ForwardMode, Network, Subnet};

/// Lease time when a `<range>` or `<host>` has no `<lease>`: one hour, dnsmasq's default (libvirt
/// writes no lease time into `dhcp-range` then).
pub const DEFAULT_LEASE_SECS: u32 = 3600;

/// The DHCPv4 configuration of one network.
#[derive(Clone, Debug, PartialEq)]
pub struct DhcpConfig {
    /// Network name, for logs.
    pub network: String,
    /// The bridge's own address: server identifier (option 54), and router/DNS when enabled.
    pub server: Ipv4Addr,
    /// Prefix length of the bridge's subnet.
    pub prefix: u8,
    /// Dynamic ranges, in document order.
    pub ranges: Vec<Range>,
    /// Static assignments (`<host>`).
    pub hosts: Vec<StaticHost>,
    /// Default gateway (option 3); `None` on isolated networks (no `<forward>`), as libvirt
    /// configures dnsmasq (`dhcp-option=3`).
    pub router: Option<Ipv4Addr>,
    /// DNS server (option 6); `None` when `<dns enable='no'>`.
    pub dns: Option<Ipv4Addr>,
    /// DNS domain (option 15), from `<domain name>`.
    pub domain: Option<String>,
    /// Interface MTU (option 26), from `<mtu size>`.
    pub mtu: Option<u16>,
    /// Network boot (`<bootp>`), if any.
    pub boot: Option<Boot>,
    /// Per-port rate limit and lease cap.
    pub limits: Limits,
}

/// A dynamic range (`<range start end>`), both ends inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
    /// Lease length in seconds; `None` is an infinite lease.
    pub lease_secs: Option<u32>,
}

impl Range {
    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range (0 when `end < start`).
    pub fn len(&self) -> u64 {
        let (s, e) = (u32::from(self.start), u32::from(self.end));
        if e < s {
            0
        } else {
            u64::from(e - s) + 1
        }
    }

    /// Whether the range holds no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A static assignment (`<host mac|id ip name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticHost {
    /// Client MAC address.
    pub mac: Option<[u8; 6]>,
    /// Client identifier (option 61) bytes.
    pub client_id: Option<Vec<u8>>,
    /// The fixed address.
    pub ip: Ipv4Addr,
    /// Host name given to the client (option 12) and recorded in its lease.
    pub name: Option<String>,
    /// Lease length in seconds; `None` is an infinite lease.
    pub lease_secs: Option<u32>,
}

/// Network boot parameters (`<bootp file server>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Boot file name: the `file` header field and option 67.
    pub file: String,
    /// TFTP server address: `siaddr` and option 66. `<bootp server>` when it is an address; the
    /// bridge's own address when the network has `<tftp root>`.
    pub server: Option<Ipv4Addr>,
    /// `<bootp server>` when it is a name rather than an address: the `sname` header field and
    /// option 66.
    pub server_name: Option<String>,
}

/// Limits applied per bridge port (the port a client's MAC was learned on; see the crate docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Dynamic leases plus outstanding offers that MACs behind one port may hold (static hosts
    /// are exempt).
    pub max_leases_per_port: usize,
    /// Messages per second accepted from one port (token bucket refill rate).
    pub requests_per_port_per_sec: u32,
    /// Token bucket size: messages one port may send at once.
    pub burst: u32,
}

impl Default for Limits {
    /// 8 leases per port, 20 messages/s with a burst of 40.
    ///
    /// A port is one guest NIC: a guest needs one address, 8 leaves room for nested guests or
    /// containers bridged inside it while keeping one port from draining a /24. A DHCP
    /// exchange is 2–4 messages and clients retry after seconds, so 20/s (burst 40) is far
    /// above what any client sends, even several interfaces restarting at once behind one
    /// port, and low enough that a flood costs little.
    fn default() -> Self {
        Limits {
            max_leases_per_port: 8,
            requests_per_port_per_sec: 20,
            burst: 40,
        }
    }
}

fn clamp_secs(secs: Option<u64>) -> Option<u32> {
    // 0xffffffff means "infinite" on the wire; a finite lease stays just below.
    secs.map(|s| u32::try_from(s).unwrap_or(u32::MAX - 1).min(u32::MAX - 1))
}

fn lease_secs(lease: Option<&virtnet_model::Lease>, default: Option<u32>) -> Option<u32> {
    match lease {
        Some(l) => clamp_secs(l.seconds()),
        None => default,
    }
}

/// Parses a `<host id>` for DHCPv4: colon-separated hex octets (`01:52:54:00:aa:bb:cc`), else
/// the text's bytes.
fn parse_client_id(id: &str) -> Vec<u8> {
    let parts: Vec<&str> = id.split(':').collect();
    let hex = parts.len() > 1
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex {
        parts
            .iter()
            .filter_map(|p| u8::from_str_radix(p, 16).ok())
            .collect()
    } else {
        id.as_bytes().to_vec()
    }
}

impl DhcpConfig {
    /// `network` served from `server` on a /`prefix`, and nothing else yet: no range, no
    /// static host, no router, DNS, domain, MTU or boot options, the default limits. The rest
    /// goes in with struct update syntax (`DhcpConfig { ranges, ..DhcpConfig::new(…) }`).
    pub fn new(network: impl Into<String>, server: Ipv4Addr, prefix: u8) -> DhcpConfig {
        DhcpConfig {
            network: network.into(),
            server,
            prefix,
            ranges: Vec::new(),
            hosts: Vec::new(),
            router: None,
            dns: None,
            domain: None,
            mtu: None,
            boot: None,
            limits: Limits::default(),
        }
    }

    /// The DHCPv4 configuration of `net`: its first IPv4 `<ip>` whose `<dhcp>` has ranges or
    /// hosts; `None` when there is none (libvirt starts no DHCPv4 service then).
    ///
    /// Lease times: a `<range>`'s `<lease>`, else one hour (dnsmasq's default); `expiry='0'` is
    /// infinite. A `<host>` uses its own `<lease>`, else that of the range its address falls in
    /// (else the first range's, else one hour), as dnsmasq does with libvirt's hostsfile.
    pub fn from_network(net: &Network) -> Option<DhcpConfig> {
        let ip = net.ips.iter().find(|ip| {
            matches!(ip.address, IpAddr::V4(_))
                && ip
                    .dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
        })?;
        let IpAddr::V4(server) = ip.address else {
            return None;
        };
        let dhcp = ip.dhcp.as_ref()?;
        let ranges: Vec<Range> = dhcp
            .ranges
            .iter()
            .filter_map(|r| match (r.start, r.end) {
                (IpAddr::V4(start), IpAddr::V4(end)) => Some(Range {
                    start,
                    end,
                    lease_secs: lease_secs(r.lease.as_ref(), Some(DEFAULT_LEASE_SECS)),
                }),
                _ => None,
            })
            .collect();
        let hosts = dhcp
            .hosts
            .iter()
            .filter_map(|h| {
                let IpAddr::V4(hip) = h.ip else { return None };
                let range_lease = ranges
                    .iter()
                    .find(|r| r.contains(hip))
                    .or(ranges.first())
                    .map_or(Some(DEFAULT_LEASE_SECS), |r| r.lease_secs);
                Some(StaticHost {
                    mac: h.mac.map(|m| m.0),
                    client_id: h.id.as_deref().map(parse_client_id),
                    ip: hip,
                    name: h.name.clone(),
                    lease_secs: lease_secs(h.lease.as_ref(), range_lease),
                })
            })
            .collect();
        let dns_enabled = net.dns.as_ref().and_then(|d| d.enable) != Some(false);
        let boot = dhcp.bootp.as_ref().map(|b| {
            let (server_addr, server_name) = match b.server.as_deref() {
                Some(s) => match s.parse::<Ipv4Addr>() {
                    Ok(a) => (Some(a), None),
                    Err(_) => (None, Some(s.to_string())),
                },
                None => (ip.tftp_root.as_ref().map(|_| server), None),
            };
            Boot {
                file: b.file.clone(),
                server: server_addr,
                server_name,
            }
        });
        Some(DhcpConfig {
            network: net.name.clone(),
            server,
            prefix: ip.prefix_len().min(32),
            ranges,
            hosts,
            router: (net.forward.mode != ForwardMode::None).then_some(server),
            dns: dns_enabled.then_some(server),
            domain: net.domain.as_ref().map(|d| d.name.clone()),
            mtu: net.mtu.and_then(|m| u16::try_from(m).ok()),
            boot,
            limits: Limits::default(),
        })
    }

    /// The subnet mask.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask_v4(self.prefix))
    }

    /// The subnet's network address.
    pub fn network_addr(&self) -> Ipv4Addr {
        Subnet::ipv4_ends(self.server, self.prefix).0
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Subnet::ipv4_ends(self.server, self.prefix).1
    }

    /// Whether `ip` is in the bridge's subnet.
    pub fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        Subnet::of(self.server.into(), self.prefix).contains(ip.into())
    }

    /// The range holding `ip`, if any.
    pub fn range_of(&self, ip: Ipv4Addr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_parsing() {
        assert_eq!(
            parse_client_id("01:52:54:00:aa:bb:cc"),
            vec![1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]
        );
        assert_eq!(parse_client_id("guest-1"), b"guest-1".to_vec());
    }

    #[test]
    fn masks() {
        let c = DhcpConfig::new("n", Ipv4Addr::new(192, 168, 122, 1), 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network_addr(), Ipv4Addr::new(192, 168, 122, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(192, 168, 122, 255));
        assert!(c.in_subnet(Ipv4Addr::new(192, 168, 122, 77)));
        assert!(!c.in_subnet(Ipv4Addr::new(192, 168, 123, 77)));
        let host = DhcpConfig { prefix: 32, ..c };
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(host.broadcast(), host.server);
        assert!(host.in_subnet(host.server));
        assert!(!host.in_subnet(Ipv4Addr::new(192, 168, 122, 2)));
    }
}
