//! What a network advertises, from its definition, as libvirt's dnsmasq configuration asks
//! for it (`dnsmasq-conf/` in libvirt's corpus):
//!
//! - an `<ip family='ipv6'>` without `<dhcp>` becomes `dhcp-range=<addr>,ra-only`: its prefix
//!   is autonomous (SLAAC), M and O off;
//! - one with a `<dhcp>` range or hosts becomes a DHCPv6 `dhcp-range` (or `,static`) with
//!   `enable-ra`: dnsmasq then sets M and O and leaves the prefix's A flag off;
//! - an isolated network gets `ra-param=*,0,0`: router lifetime 0, so no guest takes the host
//!   as its default router; forwarding networks (nat, route, open) get dnsmasq's default of
//!   3 × the 600 s interval;
//! - dnsmasq adds RDNSS (its own address) when it serves DNS, DNSSL when there is a
//!   `<domain>`, and the link's MTU.

use std::net::{IpAddr, Ipv6Addr};

use virtnet_model::{ForwardMode, Network};

/// MaxRtrAdvInterval, seconds: dnsmasq's default interval.
pub const MAX_INTERVAL_S: u64 = 600;
/// MinRtrAdvInterval, seconds: 0.33 × MaxRtrAdvInterval (RFC 4861 §6.2.1's default).
pub const MIN_INTERVAL_S: u64 = 198;
/// Router lifetime of a forwarding network: 3 × MaxRtrAdvInterval (dnsmasq's and RFC 4861's
/// default).
pub const ROUTER_LIFETIME_S: u16 = 1800;
/// Lifetime of the RDNSS and DNSSL options: 3 × MaxRtrAdvInterval (RFC 8106 §5.1).
pub const DNS_LIFETIME_S: u32 = 1800;
/// A prefix's valid lifetime (RFC 4861 §6.2.1's default, 30 days, would keep stale SLAAC
/// addresses for a month after a network changes its prefix; a day as radvd's default).
pub const PREFIX_VALID_S: u32 = 86_400;
/// A prefix's preferred lifetime (radvd's default, 4 hours).
pub const PREFIX_PREFERRED_S: u32 = 14_400;

/// One advertised prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaPrefix {
    /// The prefix (host bits zero).
    pub prefix: Ipv6Addr,
    /// Its length.
    pub len: u8,
    /// Guests form addresses in it themselves (no DHCPv6 for this `<ip>`).
    pub autonomous: bool,
}

/// What a network's router advertisements say. Small on purpose: it is all the RA server
/// keeps per network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// M flag: the network has a DHCPv6 range or hosts (DHCPv6 sets it as dnsmasq does).
    pub managed: bool,
    /// O flag: same condition.
    pub other: bool,
    /// Router lifetime, seconds (0 for isolated networks).
    pub router_lifetime: u16,
    /// The prefixes of the network's IPv6 addresses.
    pub prefixes: Vec<RaPrefix>,
    /// DNS servers: the network's IPv6 gateway addresses when it serves DNS.
    pub rdnss: Vec<Ipv6Addr>,
    /// DNS search list: the network's `<domain name>`.
    pub dnssl: Vec<String>,
    /// `<mtu size>`; `None`: the bridge's MTU at the time of sending.
    pub mtu: Option<u32>,
}

/// The host bits of `addr` cleared for a `/len` prefix.
fn prefix_of(addr: Ipv6Addr, len: u8) -> Ipv6Addr {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    Ipv6Addr::from(u128::from(addr) & mask)
}

impl RaConfig {
    /// The advertisement of `net`; `None` when it has no IPv6 address (nothing to advertise:
    /// the bridge then has IPv6 disabled).
    pub fn from_network(net: &Network) -> Option<RaConfig> {
        let v6: Vec<(Ipv6Addr, &virtnet_model::IpDef)> = net
            .ips
            .iter()
            .filter_map(|ip| match ip.address {
                IpAddr::V6(a) => Some((a, ip)),
                IpAddr::V4(_) => None,
            })
            .collect();
        if v6.is_empty() {
            return None;
        }
        let dhcp6 = |ip: &virtnet_model::IpDef| {
            ip.dhcp
                .as_ref()
                .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
        };
        let stateful = v6.iter().any(|(_, ip)| dhcp6(ip));
        let forwards = matches!(
            net.forward.mode,
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        );
        // As the DNS server and the firewall decide: on unless `<dns enable='no'>`.
        let dns = net.dns.as_ref().and_then(|d| d.enable) != Some(false);
        Some(RaConfig {
            managed: stateful,
            other: stateful,
            router_lifetime: if forwards { ROUTER_LIFETIME_S } else { 0 },
            prefixes: v6
                .iter()
                .map(|(a, ip)| RaPrefix {
                    prefix: prefix_of(*a, ip.prefix_len()),
                    len: ip.prefix_len(),
                    autonomous: !dhcp6(ip),
                })
                .collect(),
            rdnss: if dns {
                v6.iter().map(|(a, _)| *a).collect()
            } else {
                Vec::new()
            },
            dnssl: match (&net.domain, dns) {
                (Some(d), true) => vec![d.name.clone()],
                _ => Vec::new(),
            },
            mtu: net.mtu,
        })
    }

    /// The advertisement itself; `withdraw` makes it the final one (router lifetime 0, RFC
    /// 4861 §6.2.5), `mac` and `link_mtu` are the bridge's.
    pub fn advert(
        &self,
        mac: Option<[u8; 6]>,
        link_mtu: Option<u32>,
        withdraw: bool,
    ) -> crate::wire::Advert {
        crate::wire::Advert {
            hop_limit: 64,
            managed: self.managed,
            other: self.other,
            router_lifetime: if withdraw { 0 } else { self.router_lifetime },
            source_mac: mac,
            mtu: self.mtu.or(link_mtu),
            prefixes: self
                .prefixes
                .iter()
                .map(|p| crate::wire::PrefixInfo {
                    prefix: p.prefix,
                    len: p.len,
                    on_link: true,
                    autonomous: p.autonomous,
                    valid: PREFIX_VALID_S,
                    preferred: PREFIX_PREFERRED_S,
                })
                .collect(),
            rdnss: Some((DNS_LIFETIME_S, self.rdnss.clone())),
            dnssl: Some((DNS_LIFETIME_S, self.dnssl.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Network {
        virtnet_model::Network::from_xml(xml).expect("network XML")
    }

    #[test]
    fn slaac_network_advertises_an_autonomous_prefix_and_a_router() {
        let net = parse(
            "<network><name>lab</name><forward mode='nat'/><domain name='lab.example'/>\
             <mtu size='9000'/>\
             <ip address='10.0.0.1' prefix='24'/>\
             <ip family='ipv6' address='fd00:100::1' prefix='64'/></network>",
        );
        let c = RaConfig::from_network(&net).unwrap();
        assert_eq!(
            c,
            RaConfig {
                managed: false,
                other: false,
                router_lifetime: 1800,
                prefixes: vec![RaPrefix {
                    prefix: "fd00:100::".parse().unwrap(),
                    len: 64,
                    autonomous: true
                }],
                rdnss: vec!["fd00:100::1".parse().unwrap()],
                dnssl: vec!["lab.example".into()],
                mtu: Some(9000),
            }
        );
        assert_eq!(c.advert(None, Some(1500), false).mtu, Some(9000));
        assert_eq!(c.advert(None, None, true).router_lifetime, 0);
    }

    /// libvirt's `dhcp6-network` and `dhcp6host-routed-network` cases: a DHCPv6 range, or
    /// only hosts (`dhcp-range=…,static,64`), make dnsmasq set M and O without SLAAC.
    #[test]
    fn dhcpv6_ranges_or_hosts_set_managed_and_other() {
        for dhcp in [
            "<range start='2001:db8:ac10:fd01::1:10' end='2001:db8:ac10:fd01::1:ff'/>",
            "<host name='paul' ip='2001:db8:ac10:fd01::1:21'/>",
        ] {
            let net = parse(&format!(
                "<network><name>d6</name><forward mode='route'/>\
                 <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'>\
                 <dhcp>{dhcp}</dhcp></ip></network>"
            ));
            let c = RaConfig::from_network(&net).unwrap();
            assert!(c.managed && c.other, "{dhcp}");
            assert!(!c.prefixes[0].autonomous, "{dhcp}");
            assert_eq!(
                c.prefixes[0].prefix,
                "2001:db8:ac10:fd01::".parse::<Ipv6Addr>().unwrap()
            );
            assert_eq!(c.router_lifetime, 1800);
        }
    }

    /// libvirt's `isolated-network` case: `ra-param=*,0,0`.
    #[test]
    fn isolated_networks_are_no_default_router_and_ipv4_only_has_no_ra() {
        let net = parse(
            "<network><name>iso</name>\
             <ip family='ipv6' address='fd00:1::1' prefix='64'/></network>",
        );
        assert_eq!(RaConfig::from_network(&net).unwrap().router_lifetime, 0);
        let v4 = parse("<network><name>v4</name><ip address='10.0.0.1' prefix='24'/></network>");
        assert_eq!(RaConfig::from_network(&v4), None);
    }

    #[test]
    fn no_dns_means_no_rdnss_nor_dnssl() {
        let net = parse(
            "<network><name>nodns</name><forward mode='nat'/><domain name='x.example'/>\
             <dns enable='no'/><ip family='ipv6' address='fd00:2::1' prefix='64'/></network>",
        );
        let c = RaConfig::from_network(&net).unwrap();
        assert!(c.rdnss.is_empty() && c.dnssl.is_empty());
    }

    #[test]
    fn prefixes_clear_host_bits() {
        assert_eq!(
            prefix_of("fd00:1:2:3:4::1".parse().unwrap(), 48),
            "fd00:1:2::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            prefix_of("fd00::1".parse().unwrap(), 0),
            Ipv6Addr::UNSPECIFIED
        );
    }
}
