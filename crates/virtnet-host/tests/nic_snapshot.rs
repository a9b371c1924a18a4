//! A NIC's snapshot and its restore, and the device-bound ICMP pinger, against the real
//! kernel; each test in its own network namespace.

mod common;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use common::{netns, spec};
use virtnet_host::ping::Pinger;
use virtnet_host::snapshot::{restore, NicSnapshot, SnapshotError};
use virtnet_host::{Netlink, PortSettings};
use virtnet_testkit::Netns;

/// `ip ARGS` from this thread (so in its namespace); panics on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What must come back after a restore: everything but the kernel's bookkeeping (lifetimes
/// of static addresses are forever and so compare as they are).
fn summary(s: &NicSnapshot) -> (Vec<String>, Vec<String>, u32, bool, Option<[u8; 6]>) {
    let addresses = s
        .addresses
        .iter()
        .map(|a| format!("{}/{} {:?} {:#x}", a.local, a.prefix_len, a.label, a.flags))
        .collect();
    let routes = s.routes.iter().map(|r| r.describe()).collect();
    (addresses, routes, s.mtu, s.up, s.mac)
}

fn snapshot(nl: &mut Netlink, name: &str) -> NicSnapshot {
    let link = nl.link(name).unwrap().expect("link exists");
    NicSnapshot::take(nl, &link).unwrap().0
}

#[test]
fn a_nic_moved_behind_a_bridge_gets_its_snapshot_back() {
    let mut nl = netns();
    nl.create_veth("eth0", "peer0", None).unwrap();
    ip(&["link", "set", "peer0", "up"]);
    ip(&["link", "set", "eth0", "mtu", "1400", "up"]);
    ip(&["addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    ip(&[
        "addr",
        "add",
        "192.0.2.11/24",
        "dev",
        "eth0",
        "label",
        "eth0:1",
    ]);
    ip(&["addr", "add", "2001:db8::10/64", "dev", "eth0", "nodad"]);
    ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.0.2.1",
        "dev",
        "eth0",
    ]);
    ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "dev",
        "eth0",
        "table",
        "100",
    ]);
    let before = snapshot(&mut nl, "eth0");
    assert_eq!(before.addresses.len(), 3, "{:?}", before.addresses);
    assert_eq!(before.routes.len(), 2, "{:?}", before.routes);

    // Move it the way iface-bridge does, and change its settings on the way.
    let br = nl.create_bridge(&spec("br0")).unwrap();
    for a in &before.addresses {
        let mut m = a.clone();
        m.ifindex = br;
        m.label = None;
        nl.add_address_entry(&m).unwrap();
    }
    nl.set_port(
        before.index,
        &PortSettings {
            master: Some(Some(br)),
            mtu: Some(1300),
            mac: Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            ..PortSettings::default()
        },
    )
    .unwrap();
    for r in &before.routes {
        let mut m = r.clone();
        m.oif = Some(br);
        nl.add_route_entry(&m).unwrap();
        nl.del_route_entry(r).unwrap();
    }
    for a in before.addresses.iter().rev() {
        nl.del_address_entry(a).unwrap();
    }
    assert_ne!(summary(&snapshot(&mut nl, "eth0")), summary(&before));

    let bridge = nl.link("br0").unwrap();
    restore(&mut nl, &before, bridge.as_ref()).unwrap();
    assert!(nl.link("br0").unwrap().is_none(), "the bridge is deleted");
    let after_link = nl.link("eth0").unwrap().unwrap();
    assert_eq!(after_link.master, None, "the NIC is released");
    assert_eq!(summary(&snapshot(&mut nl, "eth0")), summary(&before));

    // Idempotent: a second restore (a resumed one after a crash) changes nothing.
    restore(&mut nl, &before, None).unwrap();
    assert_eq!(summary(&snapshot(&mut nl, "eth0")), summary(&before));
}

/// A NIC that someone set down while it was bridged gets its routes back: it comes up before
/// they are added (the kernel refuses a route through a link that is down).
#[test]
fn a_nic_set_down_while_bridged_gets_its_routes_back() {
    let mut nl = netns();
    nl.create_veth("eth0", "peer0", None).unwrap();
    ip(&["link", "set", "peer0", "up"]);
    ip(&["link", "set", "eth0", "up"]);
    ip(&["addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.0.2.1",
        "dev",
        "eth0",
    ]);
    let before = snapshot(&mut nl, "eth0");
    let br = nl.create_bridge(&spec("br0")).unwrap();
    nl.set_port(
        before.index,
        &PortSettings {
            master: Some(Some(br)),
            ..PortSettings::default()
        },
    )
    .unwrap();
    for a in &before.addresses {
        nl.del_address_entry(a).unwrap();
    }
    ip(&["link", "set", "eth0", "down"]);

    let bridge = nl.link("br0").unwrap();
    restore(&mut nl, &before, bridge.as_ref()).expect("restore a NIC that was set down");
    assert_eq!(summary(&snapshot(&mut nl, "eth0")), summary(&before));
}

#[test]
fn restoring_a_nic_that_is_gone_says_so() {
    let mut nl = netns();
    nl.create_veth("eth0", "peer0", None).unwrap();
    let before = snapshot(&mut nl, "eth0");
    let index = before.index;
    nl.delete_link(index).unwrap();
    let e = restore(&mut nl, &before, None).unwrap_err();
    assert!(
        matches!(e, SnapshotError::NicGone(ref n) if n == "eth0"),
        "{e}"
    );
    assert_eq!(e.to_string(), "interface 'eth0' is gone; cannot restore it");
}

/// Sends echo requests to `target` on `device` until one is answered; how many of `tries`
/// were answered.
fn answered(device: &str, target: &str, tries: u16) -> u16 {
    let target: IpAddr = target.parse().unwrap();
    let pinger = Pinger::open(device, target).unwrap();
    assert_eq!(pinger.target(), target);
    let mut got = 0;
    for seq in 1..=tries {
        pinger.send(seq).unwrap();
        if pinger.wait_reply(Duration::from_millis(200)) {
            got += 1;
            break;
        }
    }
    got
}

/// A veth pair `lone0`/`lone1`, up, without addresses.
fn nl_lone(nl: &mut Netlink) {
    nl.create_veth("lone0", "lone1", None).unwrap();
    ip(&["link", "set", "lone1", "up"]);
    ip(&["link", "set", "lone0", "up"]);
}

#[test]
fn a_pinger_bound_to_a_device_is_answered_through_it() {
    let mut nl = netns();
    let far = Netns::new("pingfar");
    ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "far0",
    ]);
    ip(&["link", "set", "far0", "netns", far.name()]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    ip(&["addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    ip(&["link", "set", "eth0", "up"]);
    far.ip_ok(["addr", "add", "192.0.2.2/24", "dev", "far0"]);
    far.ip_ok(["addr", "add", "2001:db8::2/64", "dev", "far0", "nodad"]);
    far.ip_ok(["link", "set", "far0", "up"]);
    // A second link with no route to the target: bound to it, the echo cannot leave.
    nl_lone(&mut nl);

    assert_eq!(answered("eth0", "192.0.2.2", 50), 1, "IPv4 echo answered");
    assert_eq!(answered("eth0", "2001:db8::2", 50), 1, "IPv6 echo answered");
    // Nobody has 192.0.2.3: requests go out, no reply matches.
    assert_eq!(answered("eth0", "192.0.2.3", 3), 0);
    let bound_elsewhere = Pinger::open("lone0", "192.0.2.2".parse().unwrap()).unwrap();
    let sent = bound_elsewhere.send(1);
    assert!(
        sent.is_err() || !bound_elsewhere.wait_reply(Duration::from_millis(500)),
        "an echo bound to lone0 must not reach 192.0.2.2"
    );
    assert!(Pinger::open("nosuch0", "192.0.2.2".parse().unwrap()).is_err());
}
