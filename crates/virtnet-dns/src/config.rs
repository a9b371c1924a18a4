//! What a network's `<domain>`, `<dns>` and `<ip>` elements mean for its DNS server.
//!
//! Each field follows what libvirt 9.0 writes into dnsmasq's configuration for the same XML
//! (see `shared/conformance/libvirt-9.0/dnsmasq-conf/`).

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::Path;

use virtnet_model::{ForwardMode, Network};

use crate::names::{key_of, ptr_zones};

/// How queries under one domain are resolved when the name is not known locally
/// (dnsmasq's `server=/domain/…` and `local=/domain/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainRoute {
    /// Answered only from local data; unknown names are NXDOMAIN, never forwarded
    /// (`<domain localOnly='yes'>`, `localPtr='yes'`, `local=/domain/`).
    Local,
    /// Forwarded to these servers, in order (`<forwarder domain addr port>`).
    Upstreams(Vec<SocketAddr>),
    /// Forwarded to the default upstreams even though a shorter domain has its own servers
    /// (`<forwarder domain>` without `addr`: dnsmasq `server=/domain/#`).
    Default,
}

/// Addresses with their names (`<dns><host>`, `<dhcp><host name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// The address.
    pub ip: IpAddr,
    /// Names answering with `ip`, lower-case, without trailing dot. The first one is what a
    /// reverse (PTR) lookup of `ip` returns.
    pub names: Vec<String>,
}

/// One SRV record (`<srv>`), with dnsmasq's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    /// `_service._protocol[.domain]`, lower-case.
    pub name: String,
    /// Target host; `""` is the root (`.`: "service not available").
    pub target: String,
    /// Port (dnsmasq default 1).
    pub port: u16,
    /// Priority (default 0).
    pub priority: u16,
    /// Weight (default 0).
    pub weight: u16,
}

/// One TXT record (`<txt>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtRecord {
    /// Owner name, lower-case, as written (dnsmasq does not append the domain).
    pub name: String,
    /// The text.
    pub value: String,
}

/// Everything the DNS server of one network needs; built by [`DnsConfig::from_network`].
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// `<domain name>`, lower-case: unqualified host and guest names are also answered as
    /// `name.domain` (dnsmasq `domain=` + `expand-hosts`), and SRV records without a domain
    /// live in it.
    pub domain: Option<String>,
    /// Forward names without a dot upstream. libvirt 9.0 writes `domain-needed` + `local=//`
    /// only for `forwardPlainNames='no'`, so this is true unless that is given.
    pub forward_plain_names: bool,
    /// The default upstream servers: the `<forwarder addr>` elements without a domain when
    /// there are any (dnsmasq `no-resolv`), else the host's resolvers, except on an isolated
    /// network (no `<forward>`), which only ever uses its explicit forwarders.
    pub upstreams: Vec<SocketAddr>,
    /// Per-domain routing (lower-case domain keys); the longest matching domain wins.
    pub routes: Vec<(String, DomainRoute)>,
    /// Static names: `<dns><host>` first, then `<dhcp><host name>`.
    pub hosts: Vec<HostRecord>,
    /// SRV records.
    pub srvs: Vec<SrvRecord>,
    /// TXT records.
    pub txts: Vec<TxtRecord>,
}

impl DnsConfig {
    /// The DNS configuration of `net`. `host_resolvers` are the upstreams used when the
    /// network has no global `<forwarder addr>` (see [`host_resolvers`]).
    ///
    /// None when the network has no `<ip>`, has `<dns enable='no'>`, or is not a network with
    /// its own bridge (bridge, macvtap and hostdev modes have no DNS server in libvirt either).
    pub fn from_network(net: &Network, host_resolvers: &[SocketAddr]) -> Option<DnsConfig> {
        if net.ips.is_empty() || !net.forward.mode.has_own_bridge() {
            return None;
        }
        let dns = net.dns.clone().unwrap_or_default();
        if dns.enable == Some(false) {
            return None;
        }
        let domain = net.domain.as_ref().and_then(|d| key_of(&d.name));

        let mut routes: Vec<(String, DomainRoute)> = Vec::new();
        let mut upstreams = Vec::new();
        let mut no_resolv = false;
        for f in &dns.forwarders {
            let server = f.addr.map(|a| SocketAddr::new(a, f.port.unwrap_or(53)));
            match (&f.domain, server) {
                (None, Some(server)) => {
                    no_resolv = true;
                    upstreams.push(server);
                }
                (Some(d), server) => {
                    let Some(d) = key_of(d) else { continue };
                    let existing = routes.iter_mut().find(|(k, _)| *k == d);
                    match (existing, server) {
                        (Some((_, DomainRoute::Upstreams(v))), Some(s)) => v.push(s),
                        (Some(_), _) => {}
                        (None, Some(s)) => routes.push((d, DomainRoute::Upstreams(vec![s]))),
                        (None, None) => routes.push((d, DomainRoute::Default)),
                    }
                }
                (None, None) => {}
            }
        }
        // An isolated network never uses the host's resolvers (libvirt writes `no-resolv`).
        if !no_resolv && net.forward.mode != ForwardMode::None {
            upstreams = host_resolvers.to_vec();
        }

        // Local-only domains override forwarders for the same domain.
        let mut set_local = |d: String| {
            routes.retain(|(k, _)| *k != d);
            routes.push((d, DomainRoute::Local));
        };
        if let Some(d) = &net.domain {
            if d.local_only == Some(true) {
                if let Some(k) = key_of(&d.name) {
                    set_local(k);
                }
            }
        }
        for ip in &net.ips {
            if ip.local_ptr == Some(true) {
                for zone in ptr_zones(&ip.address, ip.prefix_len()) {
                    set_local(zone);
                }
            }
        }

        let mut hosts = Vec::new();
        for h in &dns.hosts {
            let names: Vec<String> = h
                .hostnames
                .iter()
                .flat_map(|n| expand(n, domain.as_deref()))
                .collect();
            if !names.is_empty() {
                hosts.push(HostRecord { ip: h.ip, names });
            }
        }
        for ip in &net.ips {
            for h in ip.dhcp.iter().flat_map(|d| d.hosts.iter()) {
                if let Some(name) = &h.name {
                    let names = expand(name, domain.as_deref());
                    if !names.is_empty() {
                        hosts.push(HostRecord { ip: h.ip, names });
                    }
                }
            }
        }

        let srvs = dns
            .srvs
            .iter()
            .filter_map(|s| {
                let mut name = format!("_{}._{}", s.service, s.protocol);
                if let Some(d) = s.domain.as_deref().map(str::to_owned).or(domain.clone()) {
                    name.push('.');
                    name.push_str(&d);
                }
                Some(SrvRecord {
                    name: key_of(&name)?,
                    target: match &s.target {
                        Some(t) => key_of(t).unwrap_or_default(),
                        None => String::new(),
                    },
                    port: s.port.unwrap_or(1),
                    priority: s.priority.unwrap_or(0),
                    weight: s.weight.unwrap_or(0),
                })
            })
            .collect();
        let txts = dns
            .txts
            .iter()
            .filter_map(|t| {
                Some(TxtRecord {
                    name: key_of(&t.name)?,
                    value: t.value.clone(),
                })
            })
            .collect();

        Some(DnsConfig {
            domain,
            forward_plain_names: dns.forward_plain_names != Some(false),
            upstreams,
            routes,
            hosts,
            srvs,
            txts,
        })
    }
}

/// The names a configured host name answers to: with a domain, `name.domain` (first: it is the
/// PTR target, as with dnsmasq's `expand-hosts`) and `name` for an unqualified name, and both
/// forms for a name already in the domain.
pub(crate) fn expand(name: &str, domain: Option<&str>) -> Vec<String> {
    let Some(k) = key_of(name) else {
        return Vec::new();
    };
    match domain {
        Some(d) if !k.contains('.') => vec![format!("{k}.{d}"), k],
        Some(d) if k.len() > d.len() + 1 && k.ends_with(&format!(".{d}")) => {
            let short = k[..k.len() - d.len() - 1].to_owned();
            if short.contains('.') {
                vec![k]
            } else {
                vec![k, short]
            }
        }
        _ => vec![k],
    }
}

/// The `nameserver` entries of a resolv.conf, port 53. A missing or unreadable file gives an
/// empty list; lines that do not parse are skipped. IPv6 scopes (`fe80::1%eth0`) are kept.
pub fn host_resolvers(resolv_conf: &Path) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(resolv_conf) else {
        return Vec::new();
    };
    parse_resolv_conf(&text)
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(value) = words.next() else { continue };
        let (addr, scope) = match value.split_once('%') {
            Some((a, s)) => (a, Some(s)),
            None => (value, None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            continue;
        };
        let sa = match (ip, scope) {
            (IpAddr::V6(v6), Some(scope)) => {
                let id = scope
                    .parse::<u32>()
                    .ok()
                    .or_else(|| virtnet_sockets::iface::index_of(scope));
                let Some(id) = id else { continue };
                SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, id))
            }
            (ip, _) => SocketAddr::new(ip, 53),
        };
        if !out.contains(&sa) {
            out.push(sa);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver ::1\n\
                    nameserver fe80::1%1\nnameserver bogus\nnameserver\noptions edns0\n\
                    nameserver 127.0.0.53\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 1)),
            ]
        );
        assert!(host_resolvers(Path::new("/nonexistent/resolv.conf")).is_empty());
    }

    #[test]
    fn expansion() {
        assert_eq!(
            expand("host", Some("example.com")),
            vec!["host.example.com", "host"]
        );
        assert_eq!(expand("Host", None), vec!["host"]);
        assert_eq!(
            expand("a.example.com", Some("example.com")),
            vec!["a.example.com", "a"]
        );
        assert_eq!(
            expand("a.other.org", Some("example.com")),
            vec!["a.other.org"]
        );
        assert!(expand("", Some("example.com")).is_empty());
    }
}
