//! Golden test of the anti-spoofing table (`table bridge virtnet_ports`) and of the elements
//! a port gets on each example network, compared with `tests/golden/spoof.nft`.
//!
//! Set `VIRTNET_UPDATE_GOLDEN=1` to rewrite the file after a deliberate change.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use virtnet_model::{MacAddr, Network};
use virtnet_plan::spoof::{
    add_elements_script, changes, table_script, PortGuard, SpoofKey, SpoofSet,
};
use virtnet_testkit::shared_dir;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x6c, 0x3c, 0x01];

fn render() -> String {
    let mut s = String::from("# table\n");
    s.push_str(&table_script());
    for example in [
        "default-nat",
        "full-featured",
        "isolated",
        "routed",
        "open",
        "host-bridge",
    ] {
        let path = shared_dir().join("examples").join(format!("{example}.xml"));
        let xml = std::fs::read_to_string(&path).expect("example");
        let net = Network::from_xml(&xml).expect("example parses");
        let _ = writeln!(s, "\n# port vnet0 on {example} (mode {})", net.forward.mode);
        let lease = [Ipv4Addr::new(192, 168, 122, 50)];
        match PortGuard::for_network("vnet0", MAC, &net, lease, []) {
            None => s.push_str("# not guarded\n"),
            Some(g) => s.push_str(&add_elements_script(&g.elements())),
        }
    }
    // A DHCPv6 network (libvirt's corpus): the guest of one DUID-LL host, with a lease from
    // the range; no element covers the rest of the prefix.
    let net = corpus("dhcp6-network");
    let lease6: Ipv6Addr = "2001:db8:ac10:fd01::1:10".parse().expect("addr");
    let _ = writeln!(
        s,
        "\n# port vnet0 (MAC {}) on dhcp6-network",
        MacAddr(DUID_LL_MAC)
    );
    let g = PortGuard::for_network("vnet0", DUID_LL_MAC, &net, [], [lease6]).expect("guarded");
    s.push_str(&add_elements_script(&g.elements()));
    s
}

/// The MAC of the corpus's `<host id='0:3:0:1:0:16:3e:44:55:33'>` (a DUID-LL).
const DUID_LL_MAC: [u8; 6] = [0, 0x16, 0x3e, 0x44, 0x55, 0x33];

fn corpus(name: &str) -> Network {
    let path = virtnet_testkit::libvirt_corpus_dir().join(format!("dnsmasq-conf/{name}.xml"));
    let xml = virtnet_testkit::read_corpus_file(&path);
    Network::from_xml(&xml).expect("corpus network parses")
}

#[test]
fn the_anti_spoofing_table_matches_its_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/spoof.nft");
    let text = render();
    if std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("golden file (VIRTNET_UPDATE_GOLDEN=1)");
    assert_eq!(text, want, "spoof plan differs from {}", path.display());
}

#[test]
fn a_lease_change_touches_only_that_address_of_that_port() {
    let xml = std::fs::read_to_string(shared_dir().join("examples/default-nat.xml")).expect("x");
    let net = Network::from_xml(&xml).expect("parses");
    let a = Ipv4Addr::new(192, 168, 122, 50);
    let b = Ipv4Addr::new(192, 168, 122, 51);
    let old = PortGuard::for_network("vnet0", MAC, &net, [a], []).expect("guarded");
    let new = PortGuard::for_network("vnet0", MAC, &net, [b], []).expect("guarded");
    let (add, del) = changes(&old.elements(), &new.elements());
    assert_eq!(add, vec![PortGuard::address_element("vnet0", b)]);
    assert_eq!(del, vec![PortGuard::address_element("vnet0", a)]);
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 address")
}

/// Whether some `addrs6` (and the same `targets6`) element of `g` covers `a`.
fn allows(g: &PortGuard, a: Ipv6Addr) -> bool {
    let covers = |set| {
        g.elements().iter().any(|e| {
            e.set == set && matches!(e.key, SpoofKey::Range6(lo, hi) if lo <= a && a <= hi)
        })
    };
    let (source, target) = (covers(SpoofSet::Addrs6), covers(SpoofSet::Targets6));
    assert_eq!(source, target, "{a}: sources and targets differ");
    source
}

/// Issue 14 item 2 on IPv6: on a subnet with DHCPv6 a port may send only from its DHCPv6
/// leases and the static hosts tied to its MAC (a link-layer DUID's MAC); on a SLAAC subnet
/// from the whole prefix, as before. Leases outside the DHCPv6 subnets add nothing.
#[test]
fn a_dhcpv6_subnet_allows_only_the_ports_leases_and_static_hosts() {
    let xml = format!(
        "<network><name>six</name><forward mode='nat'/>\
         <ip address='192.168.9.1' prefix='24'/>\
         <ip family='ipv6' address='fd00:1::1' prefix='64'/>\
         <ip family='ipv6' address='fd00:2::1' prefix='64'><dhcp>\
         <range start='fd00:2::100' end='fd00:2::1ff'/>\
         <host id='0:3:0:1:{m}' ip='fd00:2::10'/>\
         <host id='0:1:0:1:18:aa:62:fe:{m}' ip='fd00:2::11'/>\
         <host id='0:3:0:1:52:54:0:0:0:99' ip='fd00:2::12'/>\
         <host id='0:4:7e:7d:f0:7d:a8:bc:c5:d2' ip='fd00:2::13'/>\
         <host name='byname' ip='fd00:2::14'/>\
         </dhcp></ip></network>",
        m = "52:54:0:6c:3c:1"
    );
    let net = Network::from_xml(&xml).expect("parses");
    let leases6 = [v6("fd00:2::105"), v6("fd00:1::5"), v6("2001:db8::1")];
    let g = PortGuard::for_network("vnet0", MAC, &net, [], leases6).expect("guarded");
    assert_eq!(g.ipv6.len(), 1, "only the SLAAC subnet: {:?}", g.ipv6);
    assert_eq!(
        g.hosts6.iter().copied().collect::<Vec<_>>(),
        [v6("fd00:2::10"), v6("fd00:2::11")],
        "the DUID-LL and DUID-LLT hosts of its MAC"
    );
    assert_eq!(
        g.leases6.iter().copied().collect::<Vec<_>>(),
        [v6("fd00:2::105")],
        "only leases on the DHCPv6 subnet"
    );
    for ok in [
        "fd00:1::5",
        "fd00:1::abcd:1234",
        "fd00:2::10",
        "fd00:2::11",
        "fd00:2::105",
    ] {
        assert!(allows(&g, v6(ok)), "{ok} refused");
    }
    for refused in [
        "fd00:2::12",
        "fd00:2::13",
        "fd00:2::14",
        "fd00:2::104",
        "fd00:2::1:1",
        "2001:db8::1",
    ] {
        assert!(!allows(&g, v6(refused)), "{refused} allowed");
    }

    // Another guest's port: none of these static hosts.
    let other = PortGuard::for_network("vnet1", [0x52, 0x54, 0, 0, 0, 0x42], &net, [], [])
        .expect("guarded");
    assert!(other.hosts6.is_empty() && other.leases6.is_empty());
    assert!(!allows(&other, v6("fd00:2::10")));
    assert!(allows(&other, v6("fd00:1::77")), "SLAAC subnet");
}

/// A DHCPv6 lease granted or ended adds or deletes that one address of that one port.
#[test]
fn a_dhcpv6_lease_change_touches_only_that_address_of_that_port() {
    let net = corpus("dhcp6-network");
    let (a, b) = (
        v6("2001:db8:ac10:fd01::1:10"),
        v6("2001:db8:ac10:fd01::1:11"),
    );
    let old = PortGuard::for_network("vnet0", MAC, &net, [], [a]).expect("guarded");
    let new = PortGuard::for_network("vnet0", MAC, &net, [], [b]).expect("guarded");
    let (add, del) = changes(&old.elements(), &new.elements());
    assert_eq!(add, PortGuard::address6_elements("vnet0", b).to_vec());
    assert_eq!(del, PortGuard::address6_elements("vnet0", a).to_vec());
}
