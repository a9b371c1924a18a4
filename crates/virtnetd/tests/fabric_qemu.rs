//! Issue 17, item 6: a real QEMU guest on a network that spans three hosts. Each host is a
//! namespace with its own virtnetd and FRR (`virtnet_testkit::fabric`: iBGP EVPN over an
//! underlay switch); the same overlay network is defined on all three. The QEMU test guest
//! (Debian's kernel, a busybox initramfs, `tests/guest/build.sh`) boots on a tap virtnetd made
//! on host A and leases its address there; namespace guests lease on B and C. The VM reaches
//! both over VXLAN, they reach it, and no address is given twice.

use std::collections::BTreeSet;
use std::time::Duration;

use virtnet_testkit::fabric::Fabric;
use virtnet_testkit::{eventually, QemuGuest};

const NETWORK: &str = "span";
const BRIDGE: &str = "vnbr0";
const VXLAN: &str = "vxlan-4646";
const VM_MAC: &str = "52:54:00:48:00:01";

fn network() -> String {
    format!(
        "<network xmlns:virtnet='urn:virtnet:network:1'>\
           <name>{NETWORK}</name>\
           <bridge name='{BRIDGE}' stp='off'/>\
           <ip address='10.79.0.1' prefix='24'>\
             <dhcp><range start='10.79.0.10' end='10.79.0.250'/></dhcp>\
           </ip>\
           <virtnet:overlay type='evpn' vni='4646' underlay='under0'/>\
         </network>"
    )
}

#[test]
fn a_qemu_guest_reaches_guests_on_two_other_hosts_over_the_overlay() {
    let fabric = Fabric::new("fq", 3);
    for host in fabric.hosts() {
        host.start_network(&network());
    }
    fabric.wait_full_mesh(VXLAN);
    let hosts = fabric.hosts();
    let a = &hosts[0];
    // virtnet makes the VM's port on A; QEMU opens the tap by name.
    let tap = a
        .daemon()
        .cli_ok(&[
            "-q",
            "attach-interface",
            "vm1",
            "network",
            NETWORK,
            "--mac",
            VM_MAC,
            "--model",
            "virtio",
        ])
        .trim()
        .to_string();
    let vm = QemuGuest::boot(a.ns(), &tap, VM_MAC, "vm1");
    let on_b = hosts[1].guest_bank("qb", BRIDGE, 1, |_| "52:54:00:48:00:02".into());
    let on_c = hosts[2].guest_bank("qc", BRIDGE, 1, |_| "52:54:00:48:00:03".into());
    let addr_b = on_b.lease_one("gb");
    let addr_c = on_c.lease_one("gc");
    let vm_lease = vm.lease();
    vm.wait_ready();
    let addr_vm = vm_lease.ip.to_string();
    // The overlay's MTU (underlay 1500 − 50) reaches the VM's port.
    let link = a.ns().ip_ok(["link", "show", &tap]);
    assert!(link.contains("mtu 1450"), "{link}");

    let addrs: BTreeSet<&str> = [addr_vm.as_str(), &addr_b, &addr_c].into_iter().collect();
    assert_eq!(addrs.len(), 3, "an address given twice: {addrs:?}");
    let leases_a = hosts[0].leases(NETWORK);
    assert!(
        leases_a.iter().any(|(ip, mac, name)| ip == &addr_vm
            && mac == VM_MAC
            && name.as_deref() == Some("vm1")),
        "A's leases: {leases_a:?}"
    );

    // The VM reaches the guests on B and C (its first packets wait for EVPN to carry its
    // MAC: a bound for a broken setup, not a measure), and they reach it.
    for peer in [&addr_b, &addr_c] {
        let reached = eventually(Duration::from_secs(60), || {
            vm.run(&format!("ping -c 1 -W 2 {peer}"), Duration::from_secs(10))
                .0
                == 0
        });
        assert!(
            reached,
            "the VM never reached {peer}\nA's fdb:\n{}",
            hosts[0]
                .ns()
                .run_ok(["bridge", "fdb", "show", "dev", VXLAN])
        );
    }
    for bank in [&on_b, &on_c] {
        assert!(
            bank.reaches(&addr_vm),
            "a namespace guest cannot reach the VM"
        );
    }
}
