//! What one network's DHCPv6 server hands out, derived from a libvirt `<network>`.

use std::net::{IpAddr, Ipv6Addr};

use virtnet_model::Network;

/// Lease time when a `<range>` or `<host>` has no `<lease>`: one hour, dnsmasq's default.
pub const DEFAULT_LEASE_SECS: u32 = 3600;

/// The DHCPv6 configuration of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcp6Config {
    /// Network name (logs, and the lease sink's key).
    pub network: String,
    /// The bridge's IPv6 address of the `<ip>` with the `<dhcp>` (also the DNS server).
    pub gateway: Ipv6Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Dynamic ranges in document order (none: static hosts only, dnsmasq's `static` mode).
    pub ranges: Vec<Range6>,
    /// Static hosts (`<host id|name ip>`).
    pub hosts: Vec<Host6>,
    /// DNS servers handed out (option 23): the gateway, unless `<dns enable='no'>`.
    pub dns: Vec<Ipv6Addr>,
    /// Domain search list (option 24): the network's `<domain name>`.
    pub domains: Vec<String>,
    /// Per-bridge message rate limit.
    pub limits: Limits6,
}

/// A dynamic range, both ends inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range6 {
    /// First address.
    pub start: Ipv6Addr,
    /// Last address.
    pub end: Ipv6Addr,
    /// Lease length in seconds; `None` is infinite.
    pub lease_secs: Option<u32>,
}

impl Range6 {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// How many addresses it holds (saturating; 0 when `end < start`).
    pub fn len(&self) -> u128 {
        let (s, e) = (u128::from(self.start), u128::from(self.end));
        if e < s {
            0
        } else {
            (e - s).saturating_add(1)
        }
    }

    /// Whether it holds no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A static host: `<host id='DUID' ip>` and/or `<host name ip>`, as libvirt allows for IPv6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host6 {
    /// The client's DUID (`id`, colon-separated hex octets).
    pub duid: Option<Vec<u8>>,
    /// The host name: given to the client, and matched against the name it sends (option 39)
    /// when the host has no `id`, as dnsmasq matches `dhcp-host=name,[addr]`.
    pub name: Option<String>,
    /// The fixed address.
    pub ip: Ipv6Addr,
    /// Lease length in seconds; `None` is infinite.
    pub lease_secs: Option<u32>,
}

impl Host6 {
    /// Whether this host entry is the client `duid` that calls itself `hostname`.
    pub fn matches(&self, duid: &[u8], hostname: Option<&str>) -> bool {
        match (&self.duid, &self.name, hostname) {
            (Some(id), _, _) => id == duid,
            (None, Some(name), Some(h)) => {
                let first = name.split('.').next().unwrap_or(name);
                name.eq_ignore_ascii_case(h) || first.eq_ignore_ascii_case(h)
            }
            _ => false,
        }
    }
}

/// Flood limits. Each datagram is charged to the bridge port its frame came in on (the
/// capture DHCPv4 uses names it: see the crate docs); one whose port is unknown is charged to
/// its source address instead. On top, one bucket per bridge bounds what a network costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits6 {
    /// Messages per second accepted on one bridge.
    pub per_sec: u32,
    /// Burst size of the bridge.
    pub burst: u32,
    /// Messages per second accepted from one bridge port.
    pub per_port_sec: u32,
    /// Burst size of one port.
    pub per_port_burst: u32,
    /// Dynamic bindings one bridge port may hold (static hosts exempt), or one source
    /// address when the port of its datagrams is unknown. A guest rotating DUIDs, and
    /// source addresses with raw sockets, takes at most this many addresses, not the range.
    pub max_leases_per_source: usize,
}

impl Default for Limits6 {
    /// 2,000 messages/s, burst 4,000, per bridge, so a network of a thousand guests booting
    /// at once is served without a retransmission (at 200/s, burst 400, 256 new guests waited
    /// a second for their retries: `bench/ipv6.sh`); per port 100 messages/s, burst 200, and
    /// 8 dynamic bindings, as DHCPv4's cap. The port's rate is DHCPv4's 20/s, burst 40,
    /// times five: a DHCPv6 exchange is two client messages, and one port may carry nested
    /// guests or containers (the benchmark's latency probe runs 200 clients one after the
    /// other through one port, ~90 messages/s); a flood past it costs one bucket check per
    /// datagram and takes no address beyond the cap.
    fn default() -> Self {
        Limits6 {
            per_sec: 2000,
            burst: 4000,
            per_port_sec: 100,
            per_port_burst: 200,
            max_leases_per_source: 8,
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

/// Parses a libvirt DUID (`0:3:0:1:0:16:3e:11:22:33`: hex octets, leading zeros optional).
pub fn parse_duid(id: &str) -> Option<Vec<u8>> {
    let out: Option<Vec<u8>> = id
        .split(':')
        .map(|p| {
            (!p.is_empty() && p.len() <= 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect();
    out.filter(|d| !d.is_empty())
}

/// A DUID as libvirt and virsh write it: lower-case hex octets, colon separated.
pub fn format_duid(duid: &[u8]) -> String {
    duid.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Dhcp6Config {
    /// The DHCPv6 configuration of `net`: its first IPv6 `<ip>` whose `<dhcp>` has ranges or
    /// hosts; `None` when there is none (libvirt runs no DHCPv6 then; RA alone serves SLAAC).
    pub fn from_network(net: &Network) -> Option<Dhcp6Config> {
        let ip = net.ips.iter().find(|ip| {
            ip.address.is_ipv6()
                && ip
                    .dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
        })?;
        let IpAddr::V6(gateway) = ip.address else {
            return None;
        };
        let dhcp = ip.dhcp.as_ref()?;
        let ranges: Vec<Range6> = dhcp
            .ranges
            .iter()
            .filter_map(|r| match (r.start, r.end) {
                (IpAddr::V6(start), IpAddr::V6(end)) => Some(Range6 {
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
                let IpAddr::V6(hip) = h.ip else { return None };
                let range_lease = ranges
                    .iter()
                    .find(|r| r.contains(hip))
                    .or(ranges.first())
                    .map_or(Some(DEFAULT_LEASE_SECS), |r| r.lease_secs);
                Some(Host6 {
                    duid: h.id.as_deref().and_then(parse_duid),
                    name: h.name.clone(),
                    ip: hip,
                    lease_secs: lease_secs(h.lease.as_ref(), range_lease),
                })
            })
            .collect();
        let dns_enabled = net.dns.as_ref().and_then(|d| d.enable) != Some(false);
        Some(Dhcp6Config {
            network: net.name.clone(),
            gateway,
            prefix: ip.prefix_len().min(128),
            ranges,
            hosts,
            dns: if dns_enabled {
                vec![gateway]
            } else {
                Vec::new()
            },
            domains: match (&net.domain, dns_enabled) {
                (Some(d), true) => vec![d.name.clone()],
                _ => Vec::new(),
            },
            limits: Limits6::default(),
        })
    }

    /// Whether `ip` is in the network's prefix (on link).
    pub fn on_link(&self, ip: Ipv6Addr) -> bool {
        let bits = u32::from(self.prefix.min(128));
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        u128::from(ip) & mask == u128::from(self.gateway) & mask
    }

    /// The range holding `ip`.
    pub fn range_of(&self, ip: Ipv6Addr) -> Option<&Range6> {
        self.ranges.iter().find(|r| r.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duids_parse_as_libvirt_writes_them() {
        assert_eq!(
            parse_duid("0:3:0:1:0:16:3e:11:22:33"),
            Some(vec![0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33])
        );
        assert_eq!(parse_duid("0:3:zz"), None);
        assert_eq!(parse_duid(""), None);
        assert_eq!(parse_duid("100:1"), None);
        assert_eq!(format_duid(&[0, 3, 0xab]), "00:03:ab");
    }

    #[test]
    fn hosts_match_by_duid_or_by_name() {
        let by_id = Host6 {
            duid: Some(vec![0, 3, 1]),
            name: Some("peter.xyz".into()),
            ip: "2001:db8::22".parse().expect("ip"),
            lease_secs: None,
        };
        assert!(by_id.matches(&[0, 3, 1], None));
        // With an id, the name does not match on its own.
        assert!(!by_id.matches(&[0, 3, 2], Some("peter")));
        let by_name = Host6 {
            duid: None,
            name: Some("paul".into()),
            ..by_id
        };
        assert!(by_name.matches(&[9], Some("paul")));
        assert!(!by_name.matches(&[9], Some("pauline")));
        assert!(!by_name.matches(&[9], None));
    }
}
