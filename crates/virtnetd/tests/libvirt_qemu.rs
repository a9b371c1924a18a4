//! virtnetd as the network daemon of libvirt's hypervisor daemon: libvirt 9.0's `virtqemud`
//! (the testkit's [`Virtqemud`], built from Debian's source package) finds virtnetd's
//! `virtnetworkd-sock` where it looks on a split-daemon host, and a guest whose NIC is
//! `<interface type='network'><source network='default'/>` boots under it: virtqemud asks
//! virtnetd for the port (`NETWORK_PORT_CREATE_XML`), plugs its tap into the bridge virtnetd
//! names, the guest leases from virtnetd and reaches upstream through its NAT; `virsh
//! domifaddr --source lease` and `domiflist` through virtqemud, and virtnet's own listings,
//! show it; a restart of virtnetd, and one of virtqemud, while the guest runs lose nothing; a
//! hot-plugged second NIC leases too; `virsh destroy` deletes the ports. Debian's `virt-install --network
//! network=default` creates such a guest as well.

use std::net::Ipv4Addr;
use std::time::Duration;

use virtnet_testkit::qemu::BOOT_TIMEOUT;
use virtnet_testkit::{
    eventually, Daemon, DomainSpec, Lab, Nic, Virtqemud, HOST_UPLINK_ADDR, UPSTREAM_URL,
};

const VM_MAC: &str = "52:54:00:5a:00:02";
const DEFAULT_NETWORK: &str = "<network><name>default</name><forward mode='nat'/>\
     <bridge name='virbr0' stp='on' delay='0'/>\
     <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
     <range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";
/// A command on the guest's console (a fetch through NAT, a ping).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The hypervisor's ports virtnet lists (`virtnet port-list --json`: those with a port UUID).
fn hypervisor_ports(daemon: &Daemon) -> Vec<serde_json::Value> {
    let out = daemon.cli_ok(&["port-list", "--json"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).expect("port-list --json");
    all.into_iter()
        .filter(|p| p.get("port_uuid").is_some_and(|u| !u.is_null()))
        .collect()
}

/// virtnetd (with the default NAT network) and virtqemud in the lab's host namespace, sharing
/// virtnetd's libvirt socket directory as virtqemud's `/run/libvirt`.
fn stack(lab: &Lab) -> (Daemon, Virtqemud) {
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(DEFAULT_NETWORK);
    daemon.cli_ok(&["net-start", &name]);
    let qemud = Virtqemud::start(lab.host(), &daemon.libvirt_run_dir());
    (daemon, qemud)
}

#[test]
fn a_guest_of_virtqemud_leases_from_virtnetd_and_keeps_working_across_its_restart() {
    let lab = Lab::new("lvqemu");
    let (mut daemon, qemud) = stack(&lab);

    let spec = DomainSpec::new(&qemud, "vm1", VM_MAC, Nic::Network("default".into()));
    qemud.create(&spec);
    let lease = qemud.wait_lease("vm1", BOOT_TIMEOUT);
    assert!(lease.ip.octets()[..3] == [192, 168, 122], "{lease:?}");
    assert_eq!(lease.routers, vec![Ipv4Addr::new(192, 168, 122, 1)]);

    // The port virtqemud asked virtnetd for: recorded with its owner, its tap on virbr0.
    let ports = hypervisor_ports(&daemon);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let tap = ports[0]["name"].as_str().expect("tap name").to_string();
    assert_eq!(ports[0]["domain"], "vm1", "{ports:?}");
    assert_eq!(ports[0]["bridge"], "virbr0", "{ports:?}");
    let link = lab.host().ip_ok(["-d", "link", "show", "dev", &tap]);
    assert!(link.contains("master virbr0"), "{link}");
    // Guarded against spoofing like virtnet's own ports, with its lease allowed.
    assert_eq!(ports[0]["spoof_check"], true, "{ports:?}");
    let allowed = lab
        .host()
        .run_ok(["nft", "list", "set", "bridge", "virtnet_ports", "addrs4"]);
    assert!(
        allowed.contains(&format!("\"{tap}\" . {}", lease.ip)),
        "{allowed}"
    );

    // Through virtqemud: the NIC, and its address from virtnet's leases.
    let iflist = qemud.virsh_ok(&["domiflist", "vm1"]);
    assert!(
        iflist
            .lines()
            .any(|l| l.contains(&tap) && l.contains("network") && l.contains("default")),
        "{iflist}"
    );
    assert!(
        eventually(Duration::from_secs(20), || qemud
            .virsh_ok(&["domifaddr", "vm1", "--source", "lease"])
            .contains(&lease.ip.to_string())),
        "domifaddr never showed {}",
        lease.ip
    );
    // virsh on the hypervisor daemon's connection reaches virtnetd's networks through it (the
    // split-daemon way: virtqemud forwards network calls to network:///system).
    let listed = qemud.virsh_ok(&["net-list", "--all"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("default") && l.contains("active")),
        "{listed}"
    );
    let info = qemud.virsh_ok(&["net-info", "default"]);
    assert!(info.contains("virbr0"), "{info}");
    // And through virtnet's own verbs.
    let leases = daemon.cli_ok(&["net-dhcp-leases", "default"]);
    assert!(leases.contains(&lease.ip.to_string()), "{leases}");
    let addrs = daemon.cli_ok(&["domifaddr", "vm1"]);
    assert!(addrs.contains(&lease.ip.to_string()), "{addrs}");

    // Upstream through virtnet's NAT.
    let page = qemud.console_run_ok(
        "vm1",
        &format!("wget -q -O - {UPSTREAM_URL}"),
        COMMAND_TIMEOUT,
    );
    // The upstream server answers with the address it saw: the host's, masqueraded.
    assert_eq!(page.trim(), format!("you are {HOST_UPLINK_ADDR}"));

    // virtnetd killed and restarted while the guest runs: the port, its tap's place on the
    // bridge and the guest's connectivity are all still there.
    daemon.kill9();
    daemon.restart();
    assert_eq!(hypervisor_ports(&daemon).len(), 1, "the port survived");
    let link = lab.host().ip_ok(["-d", "link", "show", "dev", &tap]);
    assert!(link.contains("master virbr0"), "{link}");
    qemud.console_run_ok("vm1", "ping -c 1 -W 2 192.168.122.1", COMMAND_TIMEOUT);
    assert!(qemud
        .virsh_ok(&["domifaddr", "vm1", "--source", "lease"])
        .contains(&lease.ip.to_string()));

    // virtqemud restarted while the guest runs: it reconnects to virtnetd and takes its port
    // back (the reclaim path); the guest keeps its connectivity, and one port stays recorded.
    qemud.restart_daemon();
    assert_eq!(
        hypervisor_ports(&daemon).len(),
        1,
        "{:?}",
        hypervisor_ports(&daemon)
    );
    qemud.console_run_ok("vm1", "ping -c 1 -W 2 192.168.122.1", COMMAND_TIMEOUT);

    // A second NIC hot-plugged on the network: a second port, a second lease.
    let mac2 = "52:54:00:5a:00:03";
    let lease2 = qemud.hotplug_network_nic("vm1", "default", mac2);
    assert!(
        lease2.ip.octets()[..3] == [192, 168, 122] && lease2.ip != lease.ip,
        "{lease2:?}"
    );

    // virsh destroy: virtqemud deletes both ports on virtnetd.
    qemud.destroy("vm1");
    assert!(
        eventually(Duration::from_secs(10), || hypervisor_ports(&daemon)
            .is_empty()),
        "ports outlived their guest: {:?}",
        hypervisor_ports(&daemon)
    );
}

#[test]
fn virt_install_network_default_creates_a_guest_that_leases_from_virtnetd() {
    let lab = Lab::new("lvvirtinst");
    let (daemon, qemud) = stack(&lab);
    let spec = DomainSpec::new(&qemud, "vinet", VM_MAC, Nic::Network("default".into()));
    let out = qemud.virt_install(&spec.virt_install_args());
    assert!(
        out.status.success(),
        "virt-install failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        qemud.diagnostics()
    );
    let lease = qemud.wait_lease("vinet", BOOT_TIMEOUT);
    assert!(lease.ip.octets()[..3] == [192, 168, 122], "{lease:?}");
    let leases = daemon.cli_ok(&["net-dhcp-leases", "default"]);
    assert!(leases.contains(&lease.ip.to_string()), "{leases}");
    assert_eq!(hypervisor_ports(&daemon).len(), 1);
    qemud.virsh_ok(&["destroy", "vinet"]);
    assert!(
        eventually(Duration::from_secs(10), || hypervisor_ports(&daemon)
            .is_empty()),
        "destroy deletes the port"
    );
}
