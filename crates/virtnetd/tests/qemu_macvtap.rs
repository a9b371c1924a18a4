//! A real QEMU guest on a direct network: its port is a macvtap device on the host's NIC (a
//! veth to a LAN namespace with a DHCP server), QEMU opens the port's character device
//! (`/dev/tap<ifindex>`) as its NIC, and the guest leases from the LAN and reaches it, with
//! virtnet building nothing else.

use std::time::Duration;

use virtnet_api::client::Client;
use virtnet_api::PortRequest;
use virtnet_model::InterfaceSource;
use virtnet_testkit::dhcp::lan_dhcp_server;
use virtnet_testkit::qemu::Launch;
use virtnet_testkit::{Daemon, Netns, QemuGuest};

const VM_MAC: &str = "52:54:00:12:34:77";

#[test]
fn qemu_guest_on_a_macvtap_port_leases_from_the_lan_and_reaches_it() {
    let host = Netns::new("mvhost");
    let lan = Netns::new("mvlan");
    host.veth_to("eth0", &lan, "lan0");
    lan.ip_ok(["addr", "add", "10.90.0.1/24", "dev", "lan0"]);
    let dir = tempfile::Builder::new()
        .prefix("vnt-mv")
        .tempdir()
        .expect("tempdir");
    let _dnsmasq = lan_dhcp_server(
        &lan,
        "lan0",
        "10.90.0.100,10.90.0.150,255.255.255.0,1h",
        "10.90.0.1",
        &dir.path().join("leases"),
    );
    let daemon = Daemon::start_in(&host);
    daemon.define(
        "<network><name>direct</name><forward mode='bridge'><interface dev='eth0'/></forward>\
         </network>",
    );
    daemon.cli_ok(&["net-start", "direct"]);
    let port = Client::new(daemon.socket())
        .create_port(&PortRequest {
            vnet_hdr: false,
            ..PortRequest::new("mvguest", InterfaceSource::Network("direct".into()), VM_MAC)
        })
        .expect("macvtap port");
    assert!(port.name.starts_with("macvtap"), "{port:?}");

    // The port's character device, as udev would name it /dev/tap<ifindex>: made in a private
    // directory here (no udev in the test), opened as QEMU's fd 3.
    let sys = format!("/sys/class/net/{}", port.name);
    let index = host.run_ok(["cat", &format!("{sys}/ifindex")]);
    let index = index.trim();
    let dev = host.run_ok(["cat", &format!("{sys}/macvtap/tap{index}/dev")]);
    let (major, minor) = dev.trim().split_once(':').expect("MAJOR:MINOR");
    let wrapper = [
        "sh",
        "-c",
        &format!(
            "d=$(mktemp -d) && mknod \"$d/tap{index}\" c {major} {minor} && \
             exec 3<>\"$d/tap{index}\" && rm -r \"$d\" && exec \"$@\""
        ),
        "sh",
    ]
    .map(String::from)
    .to_vec();
    let vm = QemuGuest::boot_with(
        &host,
        "tap,id=n0,fd=3",
        VM_MAC,
        "mvguest",
        &Launch {
            wrapper,
            ..Launch::default()
        },
    );
    let lease = vm.lease();
    let last = lease.ip.octets()[3];
    assert!(
        lease.ip.octets()[..3] == [10, 90, 0] && (100..=150).contains(&last),
        "leased from the LAN's server: {lease:?}"
    );
    assert_eq!(lease.routers, vec![std::net::Ipv4Addr::new(10, 90, 0, 1)]);
    vm.run_ok("ping -c 1 -W 3 10.90.0.1", Duration::from_secs(15));
    // The LAN sees the guest's own MAC: macvtap carries it, no bridge in between.
    let neigh = lan.ip_ok(["neigh", "show", "dev", "lan0"]);
    assert!(neigh.contains(VM_MAC), "{neigh}");
    // Nothing else was built on the host: no bridge, no firewall table.
    assert!(!host.ip_ok(["-br", "link"]).contains("virbr"));
    assert!(!host.run_ok(["nft", "list", "tables"]).contains("virtnet"));
}
