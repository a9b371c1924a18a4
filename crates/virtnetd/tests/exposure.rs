//! What a network exposes on the host, tested the way an attacker on the LAN and a guest
//! would find it: real `dig` (UDP and TCP), busybox `tftp` and `udhcpc`, TCP listeners on the
//! host, in the testkit's namespaces (host running virtnetd, upstream standing for the LAN
//! with a route to the networks' subnets through the host).
//!
//! - Issue 11, finding 3: the DNS and TFTP servers answered the LAN on the gateway address
//!   (an open resolver and an open file server). They must answer only their own guests (and
//!   the host itself).
//! - Issue 11, finding 7: guests reached every TCP service of the host, on their gateway, on
//!   the uplink address and on other networks' gateways, even on isolated networks. They must
//!   reach only their network's DHCP, DNS and TFTP, ICMP basics, and what the network allows
//!   with `<virtnet:host-access>`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use virtnet_testkit::dhcp::{dns_server, udhcpc_script};
use virtnet_testkit::{Daemon, Guest, Lab, Netns, NsChild, HOST_UPLINK_ADDR, UPSTREAM_ADDR};

/// The network of finding 3: NAT, DHCP, a local name (`printer`), TFTP.
fn served_network(tftp_root: &Path) -> String {
    format!(
        "<network><name>served</name><forward mode='nat'/><bridge name='virbr0' stp='off'/>\
         <dns><host ip='192.168.122.7'><hostname>printer</hostname></host></dns>\
         <ip address='192.168.122.1' prefix='24'><tftp root='{}'/><dhcp>\
         <range start='192.168.122.100' end='192.168.122.199'/></dhcp></ip></network>",
        tftp_root.display()
    )
}

/// A DNS server in `ns` on `listen` standing for the internet's: knows `www.example.org`.
fn upstream_dns(ns: &Netns, listen: &str) -> NsChild {
    dns_server(ns, listen, &["--address=/example.org/203.0.113.80"])
}

/// A daemon in the lab's host namespace whose DNS servers forward to the upstream dnsmasq.
fn daemon(lab: &Lab) -> Daemon {
    let resolv = lab.tmp_dir().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {UPSTREAM_ADDR}\n")).expect("write resolv.conf");
    Daemon::start_in_with(lab.host(), &["--resolv-conf", &resolv.to_string_lossy()])
}

/// `dig +short` from `ns` to `server` for an A record, over TCP when `tcp`; empty when no
/// answer came (timeout, refused, or an empty answer).
fn dig(ns: &Netns, server: &str, name: &str, tcp: bool) -> String {
    let mut args = vec![
        "dig".to_string(),
        format!("@{server}"),
        "+short".into(),
        "+time=2".into(),
        "+tries=1".into(),
        name.to_string(),
    ];
    if tcp {
        args.push("+tcp".into());
    }
    let out = ns.exec(args);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // dig prints ";; communications error …" / ";; connection timed out" on stdout.
    if text.starts_with(";;") {
        String::new()
    } else {
        text
    }
}

/// Whether busybox `tftp` from `ns` fetches `remote` from `server` (into `local`).
fn tftp_get(ns: &Netns, server: &str, remote: &str, local: &Path) -> bool {
    let _ = std::fs::remove_file(local);
    let out = ns.exec([
        "busybox",
        "tftp",
        "-g",
        "-r",
        remote,
        "-l",
        &local.to_string_lossy(),
        server,
    ]);
    out.status.success() && local.exists()
}

/// A guest on `bridge` that leases its address with udhcpc (DHCP must work); returns it with
/// the leased address.
fn dhcp_guest(lab: &Lab, bridge: &str, hostname: &str) -> (Guest, String) {
    let guest = lab.guest_unattached();
    guest.attach(bridge);
    let dir = lab.tmp_dir().join(hostname);
    std::fs::create_dir_all(&dir).expect("script dir");
    guest.udhcpc(&udhcpc_script(&dir), hostname);
    let addrs = guest.ipv4_addrs();
    assert_eq!(addrs.len(), 1, "{hostname} leased one address: {addrs:?}");
    let addr = addrs[0].to_string();
    (guest, addr)
}

#[test]
fn the_lan_gets_no_dns_or_tftp_from_a_network_and_its_guests_still_do() {
    let lab = Lab::new("expose-lan");
    let _dns = upstream_dns(lab.upstream(), UPSTREAM_ADDR);
    // A TFTP root others may read (the lab's directory is 0700).
    let root = lab.tmp_dir().join("tftp");
    std::fs::create_dir_all(&root).expect("tftp root");
    for dir in [lab.tmp_dir(), root.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(root.join("pxelinux.0"), b"boot image").expect("boot file");
    let daemon = daemon(&lab);
    let name = daemon.define(&served_network(&root));
    daemon.cli_ok(&["net-start", &name]);
    // The LAN routes the network's subnet to the host, as a LAN router would.
    lab.upstream_route_to("192.168.122.0/24");
    let lan = lab.upstream();
    let fetched = lab.tmp_dir().join("fetched");

    // A guest on the bridge gets everything: DHCP, local and forwarded names over UDP and
    // TCP, the boot file.
    let (guest, _) = dhcp_guest(&lab, "virbr0", "vm1");
    for tcp in [false, true] {
        assert_eq!(
            dig(guest.ns(), "192.168.122.1", "printer", tcp),
            "192.168.122.7"
        );
        assert_eq!(
            dig(guest.ns(), "192.168.122.1", "www.example.org", tcp),
            "203.0.113.80"
        );
    }
    assert!(tftp_get(
        guest.ns(),
        "192.168.122.1",
        "pxelinux.0",
        &fetched
    ));
    // The host itself may ask too (libvirt's dnsmasq allows it: "loopback exception").
    assert_eq!(
        dig(lab.host(), "192.168.122.1", "printer", false),
        "192.168.122.7"
    );

    // The LAN reaches the gateway address (it answers ping) but none of the services.
    assert!(lan.ping("192.168.122.1"), "the route to the gateway works");
    let lan_gets_nothing = |why: &str| {
        for tcp in [false, true] {
            for name in ["printer", "www.example.org"] {
                assert_eq!(
                    dig(lan, "192.168.122.1", name, tcp),
                    "",
                    "{why}: the LAN asked for {name} (tcp: {tcp})"
                );
            }
        }
        assert!(
            !tftp_get(lan, "192.168.122.1", "pxelinux.0", &fetched),
            "{why}: the LAN fetched a file over TFTP"
        );
    };
    lan_gets_nothing("with virtnet's firewall");

    // Each layer holds on its own: without virtnet's table the servers' sockets, bound to the
    // bridge, still never see the LAN's queries.
    lab.host()
        .run_ok(["nft", "delete", "table", "inet", "virtnet"]);
    lan_gets_nothing("without virtnet's firewall");
    assert_eq!(
        dig(guest.ns(), "192.168.122.1", "printer", true),
        "192.168.122.7"
    );
}

/// An isolated network that opens TCP 2222 on the host to its guests, with a local name.
const ISOLATED: &str = "<network xmlns:virtnet='urn:virtnet:network:1'><name>iso</name>\
    <bridge name='virbr1' stp='off'/>\
    <dns><host ip='192.168.100.7'><hostname>printer</hostname></host></dns>\
    <ip address='192.168.100.1' prefix='24'><dhcp>\
    <range start='192.168.100.100' end='192.168.100.199'/></dhcp></ip>\
    <virtnet:host-access><virtnet:allow proto='tcp' port='2222'/></virtnet:host-access>\
    </network>";

/// A NAT network with no host access of its own.
const NAT: &str = "<network><name>nat</name><forward mode='nat'/>\
    <bridge name='virbr0' stp='off'/>\
    <dns><host ip='192.168.122.7'><hostname>printer</hostname></host></dns>\
    <ip address='192.168.122.1' prefix='24'><dhcp>\
    <range start='192.168.122.100' end='192.168.122.199'/></dhcp></ip></network>";

/// An open network: no forwarding rules at all, but guests are still kept off the host.
const OPEN: &str = "<network><name>open</name><forward mode='open'/>\
    <bridge name='virbr2' stp='off'/><ip address='192.168.130.1' prefix='24'/></network>";

#[test]
fn guests_reach_the_host_only_for_their_services_and_what_their_network_allows() {
    let lab = Lab::new("expose-host");
    let _dns = upstream_dns(lab.upstream(), UPSTREAM_ADDR);
    let daemon = daemon(&lab);
    for xml in [ISOLATED, NAT, OPEN] {
        let name = daemon.define(xml);
        daemon.cli_ok(&["net-start", &name]);
    }
    // A host service on every address (as sshd or a database would be), and the one port
    // the isolated network opens.
    let _service = lab.host().listen(8080);
    let _allowed = lab.host().listen(2222);
    let gateways = ["192.168.100.1", "192.168.122.1", "192.168.130.1"];

    // DHCP and DNS keep working.
    let (iso, _) = dhcp_guest(&lab, "virbr1", "iso1");
    let (nat, nat_addr) = dhcp_guest(&lab, "virbr0", "nat1");
    let open = lab.guest("virbr2", "192.168.130.50/24", Some("192.168.130.1"));
    // The udhcpc script sets only the address; a default route via the gateway lets the
    // guests try the host's other addresses (an isolated guest could add it too).
    for (guest, gw) in [(&iso, "192.168.100.1"), (&nat, "192.168.122.1")] {
        guest.ns().ip_ok(["route", "add", "default", "via", gw]);
    }
    assert_eq!(
        dig(iso.ns(), "192.168.100.1", "printer", false),
        "192.168.100.7"
    );
    assert_eq!(
        dig(iso.ns(), "192.168.100.1", "printer", true),
        "192.168.100.7"
    );
    assert_eq!(
        dig(nat.ns(), "192.168.122.1", "printer", false),
        "192.168.122.7"
    );
    assert_eq!(
        dig(nat.ns(), "192.168.122.1", "www.example.org", true),
        "203.0.113.80"
    );
    // Not another network's DNS, though.
    assert_eq!(dig(nat.ns(), "192.168.100.1", "printer", false), "");
    // ICMP echo to the gateway is allowed.
    for (guest, gw) in [
        (&iso, gateways[0]),
        (&nat, gateways[1]),
        (&open, gateways[2]),
    ] {
        assert!(guest.ping(gw), "{gw} answers ping");
    }

    // The host's service: on no gateway, not on the uplink address, from no guest.
    for (label, guest) in [("isolated", &iso), ("nat", &nat), ("open", &open)] {
        for addr in gateways.iter().copied().chain([HOST_UPLINK_ADDR]) {
            assert!(
                !guest.tcp_connect(addr, 8080),
                "a guest of the {label} network reached the host's service on {addr}"
            );
        }
    }
    // What the isolated network allows, its guests reach (on any host address); other
    // networks' guests do not.
    assert!(iso.tcp_connect("192.168.100.1", 2222));
    assert!(iso.tcp_connect(HOST_UPLINK_ADDR, 2222));
    assert!(!nat.tcp_connect("192.168.122.1", 2222));
    assert!(!open.tcp_connect("192.168.130.1", 2222));

    // Forwarding and the host's own connections to guests are untouched.
    assert!(nat.http_get(virtnet_testkit::UPSTREAM_URL).is_ok());
    let _in_guest = nat.listen(9000);
    assert!(
        lab.host().tcp_connect(&nat_addr, 9000),
        "the host reaches a guest's service (the replies are established traffic)"
    );
}
