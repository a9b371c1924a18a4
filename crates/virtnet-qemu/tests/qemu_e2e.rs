//! End to end with a real QEMU guest (see `virtnet_testkit::qemu`): the tiny guest boots
//! with `-netdev bridge,…,helper=virtnet-bridge-helper` (QEMU unprivileged, the helper setuid
//! root) and with `-netdev tap,…,script=virtnet-ifup,downscript=virtnet-ifdown` (QEMU as root),
//! and leases an address from virtnetd on the network's bridge. Needs root and QEMU;
//! everything runs in the lab's namespaces.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use virtnet_api::AddressSource;
use virtnet_model::InterfaceSource;
use virtnet_testkit::qemu::Launch;
use virtnet_testkit::QemuGuest;

fn in_range(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == [192, 168, 122] && (100..=199).contains(&ip.octets()[3])
}

#[test]
fn unprivileged_qemu_with_the_setuid_bridge_helper_leases_an_address() {
    const MAC: &str = "52:54:00:5e:00:01";
    let (lab, daemon) = lab_with_default("qemu_helper");
    let suid = SetuidHelper::new(&daemon, "allow virbr0\n");
    let launch = Launch {
        wrapper: suid.wrapper(Some((NOBODY, NOBODY))),
        ..Launch::default()
    };
    let netdev = format!("bridge,id=n0,br=virbr0,helper={}", suid.helper_path());
    let vm = QemuGuest::boot_with(lab.host(), &netdev, MAC, "vm-helper", &launch);
    let lease = vm.lease();
    assert!(in_range(lease.ip), "{lease:?}");

    // QEMU runs as nobody; the port is named after it, with the MAC from its command line.
    let status = std::fs::read_to_string(format!("/proc/{}/status", vm.pid())).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "QEMU is not unprivileged:\n{status}"
    );
    let domain = format!("qemu-{}", vm.pid());
    let client = client(&daemon);
    let ports = client.ports(Some(&domain)).expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}\nconsole:\n{}", vm.console_log());
    let port = ports[0].clone();
    assert_eq!(port.mac, MAC);
    assert_eq!(port.model.as_deref(), Some("virtio"));
    assert_eq!(port.source, InterfaceSource::Network("default".into()));
    assert_eq!(port.owner_uid, Some(NOBODY));
    let addrs = client
        .domain_addresses(&domain, AddressSource::Lease)
        .expect("domain addresses");
    assert!(
        addrs.iter().any(|a| a.address == lease.ip.to_string()),
        "{addrs:?}"
    );
    vm.run_ok("ping -c 1 -W 2 192.168.122.1", Duration::from_secs(15));

    // QEMU goes: so does its tap (not persistent).
    drop(vm);
    assert!(
        wait_link_gone(lab.host(), &port.name),
        "{} outlived QEMU",
        port.name
    );
}

#[test]
fn qemu_with_virtnet_ifup_and_ifdown_scripts_leases_an_address() {
    const MAC: &str = "52:54:00:5e:00:02";
    const TAP: &str = "qtap1";
    let (lab, daemon) = lab_with_default("qemu_script");
    let launch = Launch {
        wrapper: Vec::new(),
        env: vec![
            (
                "VIRTNET_SOCKET".into(),
                daemon.socket().to_string_lossy().into_owned(),
            ),
            ("VIRTNET_NETWORK".into(), "default".into()),
        ],
        ..Launch::default()
    };
    let netdev = format!("tap,id=n0,ifname={TAP},script={IFUP},downscript={IFDOWN}");
    let vm = QemuGuest::boot_with(lab.host(), &netdev, MAC, "vm-script", &launch);
    let lease = vm.lease();
    assert!(in_range(lease.ip), "{lease:?}");

    let domain = format!("qemu-{}", vm.pid());
    let client = client(&daemon);
    let ports = client.ports(Some(&domain)).expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}\nconsole:\n{}", vm.console_log());
    assert_eq!(ports[0].name, TAP);
    assert_eq!(ports[0].mac, MAC);
    assert_eq!(ports[0].bridge, "virbr0");

    // A clean QEMU exit runs the down script: the port is forgotten, QEMU deletes its tap.
    // SAFETY: kill(2) on the PID of QEMU, our own child, still running (unreaped).
    assert_eq!(unsafe { libc::kill(vm.pid() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.ports(None).expect("ports").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the down script did not forget {TAP}\nconsole:\n{}",
            vm.console_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(wait_link_gone(lab.host(), TAP), "QEMU left {TAP} behind");
    drop(vm);
}
