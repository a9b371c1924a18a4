//! The DNS configuration of every network in libvirt 9.0's dnsmasq corpus
//! (`shared/conformance/libvirt-9.0/dnsmasq-conf/*.xml`) against what libvirt wrote for dnsmasq
//! (`*.conf`, `*.hostsfile`), then answers from the resulting zone for the DNS-specific cases.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use virtnet_dns::{Answer, DnsConfig, DomainRoute, GuestName, Zone};
use virtnet_model::Network;
use virtnet_testkit::{libvirt_corpus_dir, read_corpus_file};

fn host() -> Vec<SocketAddr> {
    vec!["127.0.0.53:53".parse().unwrap()]
}

fn corpus(name: &str) -> (Network, String, String) {
    let dir = libvirt_corpus_dir().join("dnsmasq-conf");
    let xml = read_corpus_file(&dir.join(format!("{name}.xml")));
    let conf = read_corpus_file(&dir.join(format!("{name}.conf")));
    let hosts = std::fs::read_to_string(dir.join(format!("{name}.hostsfile"))).unwrap_or_default();
    let net = Network::from_xml(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
    (net, conf, hosts)
}

fn config(name: &str) -> DnsConfig {
    let (net, _, _) = corpus(name);
    DnsConfig::from_network(&net, &host()).unwrap_or_else(|| panic!("{name}: no DNS"))
}

fn sock(s: &str) -> SocketAddr {
    let (addr, port) = match s.split_once('#') {
        Some((a, p)) => (a, p.parse().unwrap()),
        None => (s, 53),
    };
    SocketAddr::new(addr.parse().unwrap(), port)
}

/// What the dnsmasq configuration says, in DnsConfig's terms.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    disabled: bool,
    domain: Option<String>,
    forward_plain_names: bool,
    upstreams: Vec<SocketAddr>,
    routes: Vec<(String, DomainRoute)>,
    srvs: Vec<(String, String, u16, u16, u16)>,
    txts: Vec<(String, String)>,
    dhcp_names: Vec<(IpAddr, String)>,
}

fn expected(conf: &str, hostsfile: &str) -> Expected {
    let mut e = Expected {
        forward_plain_names: true,
        ..Expected::default()
    };
    let mut no_resolv = false;
    for line in conf.lines() {
        let Some((key, value)) = line.split_once('=') else {
            if line == "no-resolv" {
                no_resolv = true;
            }
            if line == "domain-needed" {
                e.forward_plain_names = false;
            }
            continue;
        };
        match key {
            "port" if value == "0" => e.disabled = true,
            "domain" => e.domain = Some(value.to_string()),
            "local" if value == "//" => e.forward_plain_names = false,
            "local" => e
                .routes
                .push((value.trim_matches('/').to_string(), DomainRoute::Local)),
            "server" if value.starts_with('/') => {
                let mut parts = value[1..].splitn(2, '/');
                let d = parts.next().unwrap().to_string();
                let addr = parts.next().unwrap();
                let route = if addr == "#" {
                    DomainRoute::Default
                } else {
                    DomainRoute::Upstreams(vec![sock(addr)])
                };
                e.routes.push((d, route));
            }
            "server" => e.upstreams.push(sock(value)),
            "srv-host" => {
                let f: Vec<&str> = value.split(',').collect();
                let num = |i: usize, d: u16| f.get(i).map_or(d, |v| v.parse().unwrap());
                e.srvs.push((
                    f[0].to_string(),
                    f.get(1).unwrap_or(&"").to_string(),
                    num(2, 1),
                    num(3, 0),
                    num(4, 0),
                ));
            }
            "txt-record" => {
                let (n, v) = value.split_once(',').unwrap();
                e.txts.push((n.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
    if !no_resolv {
        e.upstreams = host();
    }
    for line in hostsfile.lines() {
        let f: Vec<&str> = line.split(',').collect();
        // IPv4: mac,ip[,name][,lease]; IPv6: [id:…,][name,][ip]
        if let Some(pos) = f.iter().position(|x| x.starts_with('[')) {
            let ip = f[pos].trim_matches(['[', ']']).parse().unwrap();
            if pos > 0 && !f[pos - 1].starts_with("id:") {
                e.dhcp_names.push((ip, f[pos - 1].to_string()));
            }
        } else if let (Some(ip), Some(name)) = (f.get(1), f.get(2)) {
            e.dhcp_names.push((ip.parse().unwrap(), name.to_string()));
        }
    }
    e
}

fn actual(c: &DnsConfig) -> Expected {
    let domain = c.domain.clone();
    Expected {
        disabled: false,
        domain: domain.clone(),
        forward_plain_names: c.forward_plain_names,
        upstreams: c.upstreams.clone(),
        routes: c.routes.clone(),
        srvs: c
            .srvs
            .iter()
            .map(|s| {
                // dnsmasq appends --domain to SRV owners itself; libvirt writes them bare.
                let name = match &domain {
                    Some(d) => s.name.strip_suffix(&format!(".{d}")).unwrap_or(&s.name),
                    None => &s.name,
                };
                (
                    name.to_string(),
                    s.target.clone(),
                    s.port,
                    s.priority,
                    s.weight,
                )
            })
            .collect(),
        txts: c
            .txts
            .iter()
            .map(|t| (t.name.clone(), t.value.clone()))
            .collect(),
        dhcp_names: Vec::new(),
    }
}

#[test]
fn every_corpus_network_matches_its_dnsmasq_conf() {
    let dir = libvirt_corpus_dir().join("dnsmasq-conf");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "xml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "corpus too small: {names:?}");
    let mut checked = 0;
    for name in &names {
        let (net, conf, hostsfile) = corpus(name);
        let want = expected(&conf, &hostsfile);
        let got = DnsConfig::from_network(&net, &host());
        let Some(got) = got else {
            assert!(
                want.disabled || net.ips.is_empty(),
                "{name}: DNS disabled but dnsmasq serves it"
            );
            continue;
        };
        assert!(!want.disabled, "{name}: dnsmasq has port=0 but DNS is on");
        let mut have = actual(&got);
        // Static DHCP names: every hostsfile name is answered for its address.
        let zone = Zone::new(&got, &[]);
        for (ip, n) in &want.dhcp_names {
            let ty = if ip.is_ipv4() {
                RecordType::A
            } else {
                RecordType::AAAA
            };
            match zone.answer(&q(n, ty)) {
                Answer::Local(r) => assert!(
                    r.iter().any(|r| match r.data {
                        RData::A(a) => IpAddr::V4(a.0) == *ip,
                        RData::AAAA(a) => IpAddr::V6(a.0) == *ip,
                        _ => false,
                    }),
                    "{name}: {n} does not answer {ip}"
                ),
                other => panic!("{name}: {n}: {other:?}"),
            }
        }
        have.dhcp_names = want.dhcp_names.clone();
        assert_eq!(have, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} networks with DNS");
}

fn q(name: &str, ty: RecordType) -> Query {
    Query::query(Name::from_ascii(format!("{name}.")).unwrap(), ty)
}

fn addrs(a: &Answer) -> Vec<String> {
    match a {
        Answer::Local(records) => records.iter().map(|r| r.data.to_string()).collect(),
        other => panic!("not local: {other:?}"),
    }
}

#[test]
fn dns_hosts_domain_and_plain_names() {
    let c = config("nat-network-dns-hosts");
    assert_eq!(c.domain.as_deref(), Some("example.com"));
    assert!(!c.forward_plain_names);
    let z = Zone::new(&c, &[]);
    for n in ["host", "gateway", "host.example.com", "GATEWAY.Example.COM"] {
        assert_eq!(
            addrs(&z.answer(&q(n, RecordType::A))),
            ["192.168.122.1"],
            "{n}"
        );
    }
    // Known name, other type: NODATA, not forwarded.
    assert_eq!(
        z.answer(&q("host", RecordType::AAAA)),
        Answer::Local(vec![])
    );
    assert_eq!(z.answer(&q("host", RecordType::MX)), Answer::Local(vec![]));
    // PTR to the first name, expanded (dnsmasq: host.example.com).
    let ptr = z.answer(&q("1.122.168.192.in-addr.arpa", RecordType::PTR));
    assert_eq!(addrs(&ptr), ["host.example.com."]);
    // forwardPlainNames='no': unknown plain names are NXDOMAIN, never forwarded.
    assert_eq!(z.answer(&q("nothing", RecordType::A)), Answer::NxDomain);
    // Unknown names in a domain that is not local-only are forwarded.
    assert_eq!(
        z.answer(&q("x.example.com", RecordType::A)),
        Answer::Forward(host())
    );
}

#[test]
fn plain_names_forwarded_by_default_like_libvirt_9() {
    for name in ["nat-network", "nat-network-dns-forward-plain"] {
        let c = config(name);
        assert!(c.forward_plain_names, "{name}");
        let z = Zone::new(&c, &[]);
        assert_eq!(
            z.answer(&q("printer", RecordType::A)),
            Answer::Forward(host())
        );
    }
}

#[test]
fn local_only_domain() {
    let c = config("nat-network-dns-local-domain");
    assert_eq!(c.routes, [("example.com".to_string(), DomainRoute::Local)]);
    let z = Zone::new(
        &c,
        &[GuestName {
            name: "vm1".into(),
            ip: "192.168.122.50".parse().unwrap(),
        }],
    );
    assert_eq!(
        z.answer(&q("nope.example.com", RecordType::A)),
        Answer::NxDomain
    );
    assert_eq!(
        z.answer(&q("example.com", RecordType::SOA)),
        Answer::NxDomain
    );
    assert_eq!(
        addrs(&z.answer(&q("vm1.example.com", RecordType::A))),
        ["192.168.122.50"]
    );
    assert_eq!(
        z.answer(&q("example.org", RecordType::A)),
        Answer::Forward(host())
    );
}

#[test]
fn srv_records_with_dnsmasq_defaults() {
    let z = Zone::new(&config("nat-network-dns-srv-record-minimal"), &[]);
    match z.answer(&q("_name._tcp", RecordType::SRV)) {
        Answer::Local(r) => {
            assert_eq!(r.len(), 1);
            assert_eq!(&r[0].data, &RData::SRV(SRV::new(0, 0, 1, Name::root())));
        }
        other => panic!("{other:?}"),
    }
    let z = Zone::new(&config("nat-network-dns-srv-record"), &[]);
    let cases = [
        (
            "_name._tcp.test-domain-name.com",
            "11 111 1111 test.example.com.",
        ),
        ("_name2._udp", "22 222 2222 test2.example.com."),
        ("_name5._udp", "55 555 1 test5.example.com."),
        ("_name7._tcp.test7.com", "0 777 1 test7.example.com."),
    ];
    for (n, want) in cases {
        assert_eq!(addrs(&z.answer(&q(n, RecordType::SRV))), [want], "{n}");
    }
    // An SRV owner without a domain lives in the network's domain when there is one.
    let (mut net, _, _) = corpus("nat-network-dns-srv-record-minimal");
    net.domain = Some(virtnet_model::Domain {
        name: "example.com".into(),
        local_only: None,
        register: None,
    });
    let c = DnsConfig::from_network(&net, &host()).unwrap();
    let z = Zone::new(&c, &[]);
    assert_eq!(
        addrs(&z.answer(&q("_name._tcp.example.com", RecordType::SRV))),
        ["0 0 1 ."]
    );
}

#[test]
fn txt_record() {
    let z = Zone::new(&config("nat-network-dns-txt-record"), &[]);
    assert_eq!(
        addrs(&z.answer(&q("example", RecordType::TXT))),
        ["example value"]
    );
    assert_eq!(
        z.answer(&q("example", RecordType::A)),
        Answer::Local(vec![])
    );
}

#[test]
fn forwarders_and_per_domain_forwarders() {
    let c = config("nat-network-dns-forwarders");
    let google: Vec<SocketAddr> = vec![sock("8.8.8.8"), sock("8.8.4.4")];
    assert_eq!(c.upstreams, google, "no-resolv: host resolvers unused");
    let z = Zone::new(&c, &[]);
    assert_eq!(
        z.answer(&q("a.org", RecordType::A)),
        Answer::Forward(google.clone())
    );
    let lan = vec![sock("192.168.1.1")];
    assert_eq!(
        z.answer(&q("example.com", RecordType::A)),
        Answer::Forward(lan.clone())
    );
    assert_eq!(
        z.answer(&q("x.example.com", RecordType::A)),
        Answer::Forward(lan)
    );
    // server=/www.example.com/#: back to the standard servers.
    assert_eq!(
        z.answer(&q("www.example.com", RecordType::A)),
        Answer::Forward(google.clone())
    );
    assert_eq!(
        z.answer(&q("a.www.example.com", RecordType::A)),
        Answer::Forward(google)
    );

    // Only a per-domain forwarder: resolv.conf is still used for the rest.
    let c = config("nat-network-dns-forwarder-no-resolv");
    assert_eq!(c.upstreams, host());
    let z = Zone::new(&c, &[]);
    assert_eq!(
        z.answer(&q("www.example.com", RecordType::A)),
        Answer::Forward(vec![sock("192.168.1.1")])
    );
    // No upstream at all: REFUSED, as dnsmasq without servers.
    let (net, _, _) = corpus("nat-network-dns-forwarder-no-resolv");
    let z = Zone::new(&DnsConfig::from_network(&net, &[]).unwrap(), &[]);
    assert_eq!(
        z.answer(&q("www.example.org", RecordType::A)),
        Answer::Refused
    );
}

#[test]
fn longest_domain_wins() {
    let (mut net, _, _) = corpus("nat-network-dns-local-domain");
    net.dns = Some(virtnet_model::Dns {
        forwarders: vec![virtnet_model::DnsForwarder {
            addr: Some("192.0.2.53".parse().unwrap()),
            domain: Some("corp.example.com".into()),
            port: Some(5353),
        }],
        ..Default::default()
    });
    let z = Zone::new(&DnsConfig::from_network(&net, &host()).unwrap(), &[]);
    assert_eq!(
        z.answer(&q("db.corp.example.com", RecordType::A)),
        Answer::Forward(vec!["192.0.2.53:5353".parse().unwrap()])
    );
    assert_eq!(
        z.answer(&q("db.example.com", RecordType::A)),
        Answer::NxDomain
    );
}

#[test]
fn local_ptr_zones() {
    let c = config("ptr-domains-auto");
    let z = Zone::new(&c, &[]);
    assert_eq!(
        addrs(&z.answer(&q("10.122.168.192.in-addr.arpa", RecordType::PTR))),
        ["a.example.com."]
    );
    assert_eq!(
        z.answer(&q("99.122.168.192.in-addr.arpa", RecordType::PTR)),
        Answer::NxDomain
    );
    // localPtr='no' on 192.168.123.0/24: forwarded.
    assert_eq!(
        z.answer(&q("5.123.168.192.in-addr.arpa", RecordType::PTR)),
        Answer::Forward(host())
    );
    let v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.e.f.0.1.c.a.8.b.d.0.1.0.0.2.ip6.arpa";
    assert_eq!(z.answer(&q(v6, RecordType::PTR)), Answer::NxDomain);
}

#[test]
fn guests_from_leases() {
    let c = config("nat-network-dns-hosts");
    let g = |name: &str, ip: &str| GuestName {
        name: name.into(),
        ip: ip.parse().unwrap(),
    };
    let z = Zone::new(
        &c,
        &[
            g("vm1", "192.168.122.50"),
            g("vm6", "fd00::6"),
            // A guest cannot claim a name outside the network: only the first label counts.
            g("www.bank.com", "192.168.122.66"),
            // Nor take over a configured name.
            g("gateway", "192.168.122.67"),
            g("bad name", "192.168.122.68"),
            g("-x", "192.168.122.69"),
        ],
    );
    assert_eq!(
        addrs(&z.answer(&q("vm1", RecordType::A))),
        ["192.168.122.50"]
    );
    assert_eq!(
        addrs(&z.answer(&q("vm1.example.com", RecordType::A))),
        ["192.168.122.50"]
    );
    assert_eq!(addrs(&z.answer(&q("vm6", RecordType::AAAA))), ["fd00::6"]);
    assert_eq!(
        addrs(&z.answer(&q("50.122.168.192.in-addr.arpa", RecordType::PTR))),
        ["vm1.example.com."]
    );
    assert_eq!(
        z.answer(&q("www.bank.com", RecordType::A)),
        Answer::Forward(host())
    );
    assert_eq!(
        addrs(&z.answer(&q("www", RecordType::A))),
        ["192.168.122.66"]
    );
    assert_eq!(
        addrs(&z.answer(&q("gateway", RecordType::A))),
        ["192.168.122.1"]
    );
    assert_eq!(z.answer(&q("bad", RecordType::A)), Answer::NxDomain);
    // The ignored lease has no PTR: the address is in no local record, and not local-only.
    assert_eq!(
        z.answer(&q("67.122.168.192.in-addr.arpa", RecordType::PTR)),
        Answer::Forward(host())
    );
}

#[test]
fn refused_classes_and_transfers() {
    let z = Zone::new(&config("nat-network-dns-hosts"), &[]);
    let mut chaos = q("host", RecordType::A);
    chaos.set_query_class(DNSClass::CH);
    assert_eq!(z.answer(&chaos), Answer::Refused);
    assert_eq!(
        z.answer(&q("example.com", RecordType::AXFR)),
        Answer::Refused
    );
    let any = addrs(&z.answer(&q("host", RecordType::ANY)));
    assert_eq!(any, ["192.168.122.1"]);
}

#[test]
fn disabled_or_addressless_networks_have_no_dns() {
    let (net, _, _) = corpus("routed-network-no-dns");
    assert_eq!(DnsConfig::from_network(&net, &host()), None);
    let mut net = corpus("nat-network").0;
    net.ips.clear();
    assert_eq!(DnsConfig::from_network(&net, &host()), None);
    let mut net = corpus("nat-network").0;
    net.forward.mode = virtnet_model::ForwardMode::Bridge;
    assert_eq!(DnsConfig::from_network(&net, &host()), None);
}
