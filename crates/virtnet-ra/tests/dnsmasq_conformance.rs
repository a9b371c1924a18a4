//! Every case of libvirt's `dnsmasq-conf/` corpus: what virtnet advertises equals what the
//! dnsmasq configuration libvirt wrote for the same network asks dnsmasq to advertise.
//!
//! - no IPv6 `dhcp-range` line ⟺ no advertisement at all (no IPv6 address);
//! - `dhcp-range=<addr>,ra-only` ⟺ that prefix is advertised autonomous (SLAAC);
//! - a DHCPv6 `dhcp-range` (a range, or `<addr>,static,<len>` for hosts only) ⟺ that prefix
//!   is not autonomous;
//! - `enable-ra` (libvirt writes it with DHCPv6) ⟺ the M and O flags;
//! - `ra-param=*,0,0` (isolated networks) ⟺ router lifetime 0;
//! - `<mtu size>` ⟹ the MTU option.

use std::net::Ipv6Addr;

use virtnet_model::Network;
use virtnet_ra::RaConfig;
use virtnet_testkit::{libvirt_corpus_dir, read_corpus_file};

/// The IPv6 `dhcp-range` lines of a configuration: (first address, `ra-only`).
fn v6_ranges(conf: &str) -> Vec<(Ipv6Addr, bool)> {
    conf.lines()
        .filter_map(|l| l.strip_prefix("dhcp-range="))
        .filter_map(|v| {
            let first: Ipv6Addr = v.split(',').next()?.parse().ok()?;
            Some((first, v.ends_with(",ra-only")))
        })
        .collect()
}

/// Whether `addr` lies in `prefix/len`.
fn within(addr: Ipv6Addr, prefix: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(addr) & mask == u128::from(prefix)
}

#[test]
fn every_dnsmasq_conf_case_advertises_what_libvirt_asks_of_dnsmasq() {
    let dir = libvirt_corpus_dir().join("dnsmasq-conf");
    let mut confs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    confs.sort();
    let (mut cases, mut with_v6) = (0, 0);
    for conf_path in confs {
        let xml_path = conf_path.with_extension("xml");
        if !xml_path.exists() {
            continue;
        }
        let name = conf_path.display().to_string();
        let conf = read_corpus_file(&conf_path);
        let net = Network::from_xml(&read_corpus_file(&xml_path))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        cases += 1;
        let ranges = v6_ranges(&conf);
        let Some(ra) = RaConfig::from_network(&net) else {
            assert!(
                ranges.is_empty(),
                "{name}: libvirt advertises, virtnet does not"
            );
            continue;
        };
        with_v6 += 1;
        assert_eq!(ra.prefixes.len(), ranges.len(), "{name}: prefixes");
        for p in &ra.prefixes {
            let (_, ra_only) = ranges
                .iter()
                .find(|(first, _)| within(*first, p.prefix, p.len))
                .unwrap_or_else(|| panic!("{name}: no dhcp-range for {}/{}", p.prefix, p.len));
            assert_eq!(
                p.autonomous, *ra_only,
                "{name}: {}/{} autonomous",
                p.prefix, p.len
            );
        }
        let enable_ra = conf.lines().any(|l| l == "enable-ra");
        assert_eq!(
            (ra.managed, ra.other),
            (enable_ra, enable_ra),
            "{name}: M/O"
        );
        let no_router = conf.lines().any(|l| l == "ra-param=*,0,0");
        assert_eq!(
            ra.router_lifetime == 0,
            no_router,
            "{name}: router lifetime"
        );
        assert_eq!(ra.mtu, net.mtu, "{name}: MTU");
    }
    assert!(cases >= 20, "only {cases} cases in {}", dir.display());
    assert!(with_v6 >= 10, "only {with_v6} IPv6 cases");
}
