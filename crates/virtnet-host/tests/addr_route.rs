//! Addresses and routes against the real kernel, each test in its own
//! network namespace.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{netns, spec};
use virtnet_host::{sysctl, Address, RouteSpec};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv4_and_ipv6_addresses() {
    let mut nl = netns();
    let br = nl.create_bridge(&spec("virbr0")).unwrap();
    sysctl::write("net/ipv6/conf/virbr0/disable_ipv6", "0").unwrap();
    assert_eq!(
        sysctl::read("net/ipv6/conf/virbr0/disable_ipv6").unwrap(),
        "0"
    );

    nl.add_address(br, ip("192.168.122.1"), 24).unwrap();
    nl.add_address(br, ip("fd00:1::1"), 64).unwrap();
    let addrs = nl.addresses().unwrap();
    assert!(
        addrs.contains(&Address {
            ifindex: br,
            addr: ip("192.168.122.1"),
            prefix_len: 24,
            broadcast: Some(Ipv4Addr::new(192, 168, 122, 255)),
        }),
        "{addrs:?}"
    );
    assert!(
        addrs.contains(&Address {
            ifindex: br,
            addr: ip("fd00:1::1"),
            prefix_len: 64,
            broadcast: None,
        }),
        "{addrs:?}"
    );

    // Duplicate: EEXIST, or idempotent through ensure_address.
    let e = nl.add_address(br, ip("192.168.122.1"), 24).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "add address 192.168.122.1/24 on #{br}: File exists (os error 17)"
        )),
        "{e}"
    );
    // The kernel's extended ACK text is kept as detail.
    assert_eq!(e.detail(), Some("ipv4: Address already assigned"));
    assert!(!nl.ensure_address(br, ip("fd00:1::1"), 64).unwrap());
    assert!(nl.ensure_address(br, ip("10.0.0.1"), 31).unwrap());
    let p2p = nl
        .addresses()
        .unwrap()
        .into_iter()
        .find(|a| a.addr == ip("10.0.0.1"))
        .unwrap();
    assert_eq!(p2p.broadcast, None, "no broadcast for /31");

    nl.del_address(br, ip("192.168.122.1"), 24).unwrap();
    nl.del_address(br, ip("fd00:1::1"), 64).unwrap();
    let addrs = nl.addresses().unwrap();
    assert!(!addrs.iter().any(|a| a.addr == ip("192.168.122.1")));
    assert!(!addrs.iter().any(|a| a.addr == ip("fd00:1::1")));
    let e = nl.del_address(br, ip("192.168.122.1"), 24).unwrap_err();
    assert!(e.is_not_found(), "{e} ({:?})", e.errno());
    let e = nl.del_address(br, ip("fd00:1::1"), 64).unwrap_err();
    assert!(e.is_not_found(), "{e} ({:?})", e.errno());
    assert_eq!(
        nl.add_address(br, ip("10.1.1.1"), 33).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}

#[test]
fn routes_with_gateway_on_a_bridge_without_carrier() {
    let mut nl = netns();
    let br = nl.create_bridge(&spec("virbr0")).unwrap();
    let l = nl.link_by_index(br).unwrap().unwrap();
    assert!(l.up && !l.lower_up, "up, no carrier: {l:?}");
    sysctl::write("net/ipv6/conf/virbr0/disable_ipv6", "0").unwrap();
    nl.add_address(br, ip("192.168.122.1"), 24).unwrap();
    nl.add_address(br, ip("fd00:1::1"), 64).unwrap();

    const PROTO: u8 = 211;
    let v4 = RouteSpec {
        dest: ip("10.20.0.0"),
        prefix: 16,
        gateway: Some(ip("192.168.122.254")),
        oif: Some(br),
        metric: Some(50),
        protocol: PROTO,
    };
    let v6 = RouteSpec {
        dest: ip("2001:db8:5::"),
        prefix: 48,
        gateway: Some(ip("fd00:1::fe")),
        oif: Some(br),
        metric: None,
        protocol: PROTO,
    };
    let onlink = RouteSpec {
        dest: ip("172.30.0.0"),
        prefix: 24,
        gateway: None,
        oif: Some(br),
        metric: None,
        protocol: PROTO,
    };
    nl.add_route(&v4).unwrap();
    nl.add_route(&v6).unwrap();
    nl.add_route(&onlink).unwrap();

    let routes = nl.routes().unwrap();
    let ours: Vec<_> = routes.iter().filter(|r| r.protocol == PROTO).collect();
    assert_eq!(ours.len(), 3, "{routes:?}");
    let r4 = ours.iter().find(|r| r.dest == v4.dest).unwrap();
    assert_eq!(r4.prefix, 16);
    assert_eq!(r4.gateway, v4.gateway);
    assert_eq!(r4.oif, Some(br));
    assert_eq!(r4.metric, Some(50));
    let r6 = ours.iter().find(|r| r.dest == v6.dest).unwrap();
    assert_eq!(r6.prefix, 48);
    assert_eq!(r6.gateway, v6.gateway);
    assert_eq!(r6.oif, Some(br));
    assert_eq!(r6.metric, Some(1024), "kernel default IPv6 metric");
    let ro = ours.iter().find(|r| r.dest == onlink.dest).unwrap();
    assert_eq!(ro.gateway, None);
    // The kernel's own prefix route for the bridge address is there too.
    assert!(routes
        .iter()
        .any(|r| r.dest == ip("192.168.122.0") && r.prefix == 24 && r.protocol == 2));

    let e = nl.add_route(&v4).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "add route 10.20.0.0/16 via 192.168.122.254 dev #{br}: File exists"
        )),
        "{e}"
    );
    // A gateway outside every on-link subnet is refused by the kernel, with
    // its extended-ACK explanation kept.
    let bad = RouteSpec {
        gateway: Some(ip("192.0.2.1")),
        ..v4
    };
    let e = nl.add_route(&bad).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENETUNREACH), "{e}");
    println!("unreachable gateway: {e}");

    for r in [&v4, &v6, &onlink] {
        nl.del_route(r).unwrap();
    }
    assert!(!nl.routes().unwrap().iter().any(|r| r.protocol == PROTO));
    let e = nl.del_route(&v4).unwrap_err();
    assert!(e.is_not_found(), "{e}");
}
