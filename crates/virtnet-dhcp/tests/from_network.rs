//! `DhcpConfig::from_network` against libvirt's own test corpus: the XML in
//! `dnsmasq-conf/*.xml` and what libvirt told dnsmasq for it (`.conf`, `.hostsfile`).

use std::net::Ipv4Addr;

use virtnet_dhcp::{Boot, DhcpConfig, Range, StaticHost};
use virtnet_model::Network;

fn corpus(name: &str) -> String {
    let path = virtnet_testkit::libvirt_corpus_dir()
        .join("dnsmasq-conf")
        .join(name);
    virtnet_testkit::read_corpus_file(&path)
}

fn config(name: &str) -> Option<DhcpConfig> {
    let net = Network::from_xml(&corpus(&format!("{name}.xml")))
        .unwrap_or_else(|e| panic!("{name}.xml: {e}"));
    DhcpConfig::from_network(&net)
}

/// The dhcp-range lines of the .conf: (start, end, lease seconds; None = infinite).
fn conf_ranges(name: &str) -> Vec<(Ipv4Addr, Ipv4Addr, Option<u32>)> {
    corpus(&format!("{name}.conf"))
        .lines()
        .filter_map(|l| l.strip_prefix("dhcp-range="))
        .filter_map(|v| {
            let f: Vec<&str> = v.split(',').collect();
            let start = f.first()?.parse().ok()?;
            let end = f.get(1)?.parse().ok()?;
            let lease = match f.get(3) {
                None => Some(3600),
                Some(&"infinite") => None,
                Some(t) => Some(parse_time(t)),
            };
            Some((start, end, lease))
        })
        .collect()
}

/// dnsmasq time: `200s`, `5m`, `3h`, plain seconds.
fn parse_time(t: &str) -> u32 {
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('h') => (&t[..t.len() - 1], 3600),
        _ => (t, 1),
    };
    num.parse::<u32>().expect("time") * mult
}

/// The hostsfile lines: (mac, ip, name, lease; None = infinite), the lease defaulting to the
/// range's as dnsmasq does.
fn hostsfile(name: &str, range_lease: Option<u32>) -> Vec<StaticHost> {
    let path = virtnet_testkit::libvirt_corpus_dir()
        .join("dnsmasq-conf")
        .join(format!("{name}.hostsfile"));
    if !path.exists() {
        return Vec::new();
    }
    virtnet_testkit::read_corpus_file(&path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let mac: virtnet_model::MacAddr = f[0].parse().expect("mac");
            StaticHost {
                mac: Some(mac.0),
                client_id: None,
                ip: f[1].parse().expect("ip"),
                name: f.get(2).map(|s| s.to_string()),
                lease_secs: match f.get(3) {
                    None => range_lease,
                    Some(&"infinite") => None,
                    Some(t) => Some(parse_time(t)),
                },
            }
        })
        .collect()
}

fn check_against_dnsmasq(name: &str) -> DhcpConfig {
    let c = config(name).unwrap_or_else(|| panic!("{name}: no DHCP config"));
    let want = conf_ranges(name);
    let got: Vec<_> = c
        .ranges
        .iter()
        .map(|r| (r.start, r.end, r.lease_secs))
        .collect();
    assert_eq!(got, want, "{name}: ranges");
    let range_lease = want.first().and_then(|r| r.2);
    assert_eq!(c.hosts, hostsfile(name, range_lease), "{name}: hosts");
    c
}

#[test]
fn lease_times_match_dnsmasq() {
    for name in [
        "leasetime-seconds",
        "leasetime-minutes",
        "leasetime-hours",
        "leasetime-infinite",
    ] {
        check_against_dnsmasq(name);
    }
    let c = config("leasetime-seconds").unwrap();
    assert_eq!(c.ranges[0].lease_secs, Some(200));
    assert_eq!(c.hosts[1].lease_secs, Some(400));
    let c = config("leasetime-infinite").unwrap();
    assert_eq!(c.ranges[0].lease_secs, None);
    assert_eq!(c.hosts[0].lease_secs, None);
}

#[test]
fn nat_network() {
    let c = check_against_dnsmasq("nat-network");
    assert_eq!(c.network, "default");
    assert_eq!(c.server, Ipv4Addr::new(192, 168, 122, 1));
    assert_eq!(c.prefix, 24);
    assert_eq!(
        c.ranges,
        vec![Range {
            start: Ipv4Addr::new(192, 168, 122, 2),
            end: Ipv4Addr::new(192, 168, 122, 254),
            lease_secs: Some(3600),
        }]
    );
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.hosts[0].name.as_deref(), Some("a.example.com"));
    // NAT: router and DNS are the bridge.
    assert_eq!(c.router, Some(c.server));
    assert_eq!(c.dns, Some(c.server));
    assert_eq!(c.mtu, None);
    assert_eq!(c.boot, None);
}

#[test]
fn isolated_network_has_no_router() {
    let conf = corpus("isolated-network.conf");
    // libvirt tells dnsmasq to send an empty router option.
    assert!(conf.lines().any(|l| l == "dhcp-option=3"));
    let c = check_against_dnsmasq("isolated-network");
    assert_eq!(c.router, None);
    assert_eq!(c.dns, Some(Ipv4Addr::new(192, 168, 152, 1)));
}

#[test]
fn mtu_network() {
    let conf = corpus("nat-network-mtu.conf");
    assert!(conf.lines().any(|l| l == "dhcp-option=option:mtu,7000"));
    let c = check_against_dnsmasq("nat-network-mtu");
    assert_eq!(c.mtu, Some(7000));
}

#[test]
fn netboot() {
    // dhcp-boot=pxeboot.img with enable-tftp: the server itself is the TFTP server.
    let c = check_against_dnsmasq("netboot-network");
    assert_eq!(
        c.boot,
        Some(Boot {
            file: "pxeboot.img".into(),
            server: Some(Ipv4Addr::new(192, 168, 122, 1)),
            server_name: None,
        })
    );
    assert_eq!(c.domain.as_deref(), Some("example.com"));
    // dhcp-boot=pxeboot.img,,10.20.30.40
    let c = check_against_dnsmasq("netboot-proxy-network");
    assert_eq!(
        c.boot,
        Some(Boot {
            file: "pxeboot.img".into(),
            server: Some(Ipv4Addr::new(10, 20, 30, 40)),
            server_name: None,
        })
    );
}

#[test]
fn no_dhcp_means_no_config() {
    // TFTP only, no <dhcp>: libvirt writes no dhcp-range.
    assert!(conf_ranges("netboot-tftp").is_empty());
    assert_eq!(config("netboot-tftp"), None);
    assert_eq!(config("routed-network-no-dns"), None);
    // IPv6-only DHCP.
    assert_eq!(config("dhcp6-network"), None);
}

#[test]
fn dns_disabled_means_no_dns_option() {
    let xml = corpus("routed-network-no-dns.xml").replace(
        "</ip>",
        "<dhcp><range start='192.168.122.2' end='192.168.122.9'/></dhcp></ip>",
    );
    let net = Network::from_xml(&xml).unwrap();
    let c = DhcpConfig::from_network(&net).unwrap();
    assert_eq!(c.dns, None);
    assert_eq!(c.router, Some(Ipv4Addr::new(192, 168, 122, 1)));
}

#[test]
fn every_corpus_network_converts() {
    // Whatever libvirt accepts, from_network must not panic on, and the ranges it finds must
    // be exactly the IPv4 dhcp-range lines of the .conf.
    let dir = virtnet_testkit::libvirt_corpus_dir().join("dnsmasq-conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let Ok(net) = Network::from_xml(&virtnet_testkit::read_corpus_file(&path)) else {
            continue;
        };
        let got: Vec<_> = DhcpConfig::from_network(&net)
            .map(|c| {
                c.ranges
                    .iter()
                    .map(|r| (r.start, r.end, r.lease_secs))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got, conf_ranges(&stem), "{stem}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} corpus files");
}
