//! End to end with a real QEMU guest (Debian's kernel and a busybox initramfs built by
//! `tests/guest/build.sh`, emulated with TCG when there is no KVM): it boots on a tap of a NAT
//! network virtnetd runs, leases an address, resolves its own name and a neighbour's through
//! virtnetd's DNS and reaches the upstream HTTP server through NAT; its port then moves live to
//! an isolated network, and upstream is out of reach. On a network with an IPv6 prefix the
//! guest configures itself from virtnetd's router advertisements and reaches upstream over IPv6.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{
    eventually, Daemon, Guest, Lab, QemuGuest, HOST_UPLINK_ADDR, HOST_UPLINK_ADDR6, UPSTREAM_ADDR6,
    UPSTREAM_URL,
};

const VM_MAC: &str = "52:54:00:12:34:56";
const GATEWAY: &str = "192.168.122.1";
const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 122, 1);

fn nat_network() -> String {
    "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
     <domain name='example.test'/>\
     <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
       <range start='192.168.122.100' end='192.168.122.199'/>\
     </dhcp></ip></network>"
        .to_string()
}

fn in_range(addr: &str) -> bool {
    addr.parse::<Ipv4Addr>()
        .map(|a| a.octets()[..3] == [192, 168, 122] && (100..=199).contains(&a.octets()[3]))
        .unwrap_or(false)
}

/// A namespace guest on virbr0 that leases an address with busybox udhcpc, sending
/// `hostname`; returns it with the leased address.
fn namespace_guest(lab: &Lab, hostname: &str) -> (Guest, String) {
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    guest.udhcpc(&udhcpc_script(lab.tmp_dir()), hostname);
    let addrs = guest.ipv4_addrs();
    assert_eq!(
        addrs.len(),
        1,
        "{hostname} should hold one lease: {addrs:?}"
    );
    let addr = addrs[0].to_string();
    (guest, addr)
}

/// The `Address:` lines busybox nslookup printed for the answer (not the server's).
fn answers(nslookup: &str) -> Vec<String> {
    nslookup
        .split("Name:")
        .skip(1)
        .flat_map(|block| {
            block
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn qemu_guest_leases_resolves_and_reaches_upstream_through_nat() {
    let started = Instant::now();
    let lab = Lab::new("qemu_guest");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&nat_network());
    daemon.cli_ok(&["net-start", &name]);
    let isolated = daemon.define(
        "<network><name>isolated</name><bridge name='virbr1'/>\
         <ip address='192.168.100.1' prefix='24'/></network>",
    );
    daemon.cli_ok(&["net-start", &isolated]);

    // virtnet makes the guest's port; QEMU opens the tap by name.
    let tap = daemon
        .cli_ok(&[
            "-q",
            "attach-interface",
            "vm1",
            "network",
            "default",
            "--mac",
            VM_MAC,
            "--model",
            "virtio",
        ])
        .trim()
        .to_string();
    assert_eq!(tap, "vnet0");
    let vm = QemuGuest::boot(lab.host(), &tap, VM_MAC, "vm1");
    let boot = vm.boot_time();
    let lease = vm.lease();
    let ready = vm.wait_ready();
    eprintln!(
        "qemu guest: init after {:.2}s, lease and command loop after {:.2}s",
        boot.as_secs_f64(),
        ready.as_secs_f64()
    );

    // The lease: in the range, with the network's gateway, DNS server and domain.
    let ip = lease.ip.to_string();
    assert!(in_range(&ip), "{ip} is outside the DHCP range");
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.routers, vec![GATEWAY_IP]);
    assert_eq!(lease.dns, vec![GATEWAY_IP]);
    assert_eq!(lease.domain.as_deref(), Some("example.test"));
    let shown = vm.run_ok("ip -4 -o addr show dev eth0", Duration::from_secs(10));
    assert!(shown.contains(&format!("inet {ip}/24")), "{shown}");

    // virtnet knows the lease, under the name the guest sent.
    let rows: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["net-dhcp-leases", "default", "--json"]))
            .expect("net-dhcp-leases --json is JSON");
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["mac"] == VM_MAC))
        .unwrap_or_else(|| panic!("no lease for {VM_MAC}: {rows}"));
    assert_eq!(row["ipAddress"], ip.as_str(), "{row}");
    assert_eq!(row["hostname"], "vm1", "{row}");

    // A second guest (a namespace) leases with its own name.
    let (_peer, peer_ip) = namespace_guest(&lab, "peer");
    assert!(in_range(&peer_ip), "{peer_ip} is outside the DHCP range");
    assert_ne!(peer_ip, ip);

    // Names resolve in the guest through virtnetd's DNS (the guest's resolv.conf, written from
    // the lease, searches example.test): its own and its neighbour's, bare and qualified.
    let resolv = vm.run_ok("cat /etc/resolv.conf", Duration::from_secs(10));
    assert!(
        resolv.contains("search example.test") && resolv.contains("nameserver 192.168.122.1"),
        "{resolv}"
    );
    for (host, want) in [
        ("vm1", &ip),
        ("vm1.example.test", &ip),
        ("peer", &peer_ip),
        ("peer.example.test", &peer_ip),
    ] {
        let out = vm.run_ok(&format!("nslookup -type=a {host}"), Duration::from_secs(20));
        assert_eq!(answers(&out), vec![want.clone()], "nslookup {host}:\n{out}");
    }
    // On-link neighbours answer; upstream sees the host's uplink address (NAT).
    vm.run_ok(
        &format!("ping -c 1 -W 2 {GATEWAY}"),
        Duration::from_secs(10),
    );
    vm.run_ok(
        &format!("ping -c 1 -W 2 {peer_ip}"),
        Duration::from_secs(10),
    );
    let body = vm.run_ok(
        &format!("wget -q -O - {UPSTREAM_URL}"),
        Duration::from_secs(20),
    );
    assert_eq!(body.trim(), format!("you are {HOST_UPLINK_ADDR}"));

    // virsh's views of the guest: its interface, and its address from the lease and from ARP.
    let list = daemon.cli_ok(&["domiflist", "vm1"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["vnet0", "network", "default", "virtio", VM_MAC]),
        "{list}"
    );
    let by_lease = daemon.cli_ok(&["domifaddr", "vm1"]);
    assert!(by_lease.contains(&format!("{ip}/24")), "{by_lease}");
    let by_arp = daemon.cli_ok(&["domifaddr", "vm1", "--source", "arp"]);
    assert!(by_arp.contains(&ip), "{by_arp}");

    // Moved live to the isolated network (no guest restart): upstream is out of reach.
    let mut iface = std::fs::read_to_string(
        virtnet_testkit::shared_dir().join("examples/guest-interface-nat.xml"),
    )
    .expect("example interface XML")
    .replace("52:54:00:12:0e:f7", VM_MAC)
    .replace("rtl8139", "virtio")
    .replace("network='default'", "network='isolated'");
    iface = iface.replace(
        "<interface type='network'>",
        "<interface type='network'>\n  <target dev='vnet0'/>",
    );
    let file = lab.tmp_dir().join("moved.xml");
    std::fs::write(&file, iface).expect("write interface XML");
    let out = daemon.cli_ok(&["update-device", "vm1", &file.to_string_lossy()]);
    assert!(out.contains("Device updated successfully"), "{out}");
    assert!(lab
        .host()
        .ip_ok(["-d", "link", "show", "dev", "vnet0"])
        .contains("master virbr1"));
    let (rc, out) = vm.run(
        &format!("wget -q -T 3 -O - {UPSTREAM_URL}"),
        Duration::from_secs(20),
    );
    assert_ne!(
        rc, 0,
        "upstream must be unreachable from the isolated network: {out}"
    );
    let (rc, _) = vm.run(
        &format!("ping -c 1 -W 2 {GATEWAY}"),
        Duration::from_secs(10),
    );
    assert_ne!(
        rc, 0,
        "the NAT network's gateway is gone from the guest's segment"
    );

    // Shown with --nocapture: what the guest printed, with timings.
    eprintln!("console of vm1:\n{}", vm.console_log());

    // QEMU is killed by its PID and reaped when the guest is dropped.
    let pid = vm.pid();
    drop(vm);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU (pid {pid}) survived its QemuGuest"
    );
    eprintln!("qemu guest test: {:.1}s", started.elapsed().as_secs_f64());
}

/// The upstream namespace's TCP server on [`ECHO_PORT`]: answers every connection with the
/// client's address, so the test sees the source the guest's IPv6 traffic arrived with.
const ECHO: &str = include_str!("scripts/echo_source.py");
const ECHO_PORT: u16 = 7007;

/// The usable global IPv6 addresses (scope global, past duplicate address detection) that
/// `ip -6 -o addr show dev eth0` printed in the guest, without their prefix length.
fn guest_global_v6(shown: &str) -> Vec<String> {
    shown
        .lines()
        .filter(|l| l.contains("scope global") && !l.contains("tentative"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet6")?;
            Some(words.next()?.split('/').next()?.to_string())
        })
        .collect()
}

/// Issue 15, item 5: the QEMU guest (Debian's kernel, which has IPv6 built in; busybox has no
/// DHCPv6 client in its init, so the guest configures itself from virtnetd's router
/// advertisements alone) on a NAT network with an IPv6 prefix gets a SLAAC address in it and a
/// default route via the bridge's link-local address, and reaches the upstream IPv6 address
/// with its own source (libvirt routes IPv6 on a NAT network unless `<nat ipv6='yes'/>`).
#[test]
fn qemu_guest_gets_slaac_address_and_reaches_upstream_over_ipv6() {
    let lab = Lab::new("qemu_guest6");
    lab.uplink_v6();
    let _echo = lab
        .upstream()
        .spawn(["python3", "-c", ECHO, &ECHO_PORT.to_string()]);
    assert!(
        eventually(Duration::from_secs(10), || lab
            .upstream()
            .tcp_connect_timeout(
                UPSTREAM_ADDR6,
                ECHO_PORT,
                Duration::from_millis(200)
            )),
        "upstream echo server did not start"
    );
    // Upstream routes the guests' prefix to the host, as a routed prefix would be.
    lab.upstream().ip_ok([
        "-6",
        "route",
        "add",
        "fd00:610::/64",
        "via",
        HOST_UPLINK_ADDR6,
    ]);
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(
        "<network><name>v6</name><forward mode='nat'/><bridge name='virbr6'/>\
         <ip address='192.168.126.1' prefix='24'><dhcp>\
           <range start='192.168.126.100' end='192.168.126.199'/></dhcp></ip>\
         <ip family='ipv6' address='fd00:610::1' prefix='64'/></network>",
    );
    daemon.cli_ok(&["net-start", &name]);
    let tap = daemon
        .cli_ok(&[
            "-q",
            "attach-interface",
            "vm6",
            "network",
            "v6",
            "--mac",
            VM_MAC,
            "--model",
            "virtio",
        ])
        .trim()
        .to_string();
    let vm = QemuGuest::boot(lab.host(), &tap, VM_MAC, "vm6");
    vm.wait_ready();

    // SLAAC: the EUI-64 address of the guest's MAC in the advertised prefix (the kernel
    // solicits after DAD of its link-local address; a TCG guest may take a few seconds).
    let want = "fd00:610::5054:ff:fe12:3456";
    let mut shown = String::new();
    let got = eventually(Duration::from_secs(60), || {
        shown = vm.run_ok("ip -6 -o addr show dev eth0", Duration::from_secs(10));
        guest_global_v6(&shown).iter().any(|a| a == want)
    });
    assert!(got, "no SLAAC address {want} in the guest:\n{shown}");
    // The default route points at the bridge's link-local address.
    let bridge_ll = lab
        .host()
        .ip_ok(["-6", "-o", "addr", "show", "dev", "virbr6", "scope", "link"]);
    let bridge_ll = bridge_ll
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("the bridge has a link-local address")
        .to_string();
    let mut routes = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            routes = vm.run_ok("ip -6 route show default", Duration::from_secs(10));
            routes.contains(&format!("via {bridge_ll}"))
        }),
        "no default route via {bridge_ll}:\n{routes}"
    );

    // Upstream over IPv6: ping answers, and the echo server sees the guest's own address.
    vm.run_ok(
        &format!("ping -c 1 -W 3 {UPSTREAM_ADDR6}"),
        Duration::from_secs(20),
    );
    let seen = vm.run_ok(
        &format!("nc {UPSTREAM_ADDR6} {ECHO_PORT} </dev/null"),
        Duration::from_secs(20),
    );
    assert_eq!(seen.trim(), want, "upstream saw another source");
}
