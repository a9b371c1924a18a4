//! Ports of libvirt's hypervisor daemon (issue 13, item 4), with the real kernel in the
//! testkit's namespaces. The test plays the hypervisor the way `virtqemud` does: it announces
//! the port (`net-port-create`, the call `virNetworkPortCreateXML` makes), then creates the
//! guest's tap itself (`vnet7`, the guest's MAC with the first byte `fe`), plugs it into the
//! bridge the answer's `<plug>` names and boots a QEMU guest on it. virtnet records the port
//! before it answers, shows the guest in `port-list`, `domiflist`, `domifaddr` and
//! `net-dhcp-leases`, plugs the tap into the new bridge when the network is restarted (libvirt
//! leaves the guest cut off), keeps the port across its own restart, and on delete forgets the
//! port but leaves the hypervisor's tap alone.

use std::net::Ipv4Addr;
use std::time::Duration;

use virtnet_api::client::Client;
use virtnet_api::NetworkPortParameters;
use virtnet_testkit::{Daemon, Lab, QemuGuest};

const VM_MAC: &str = "52:54:00:12:34:57";
/// libvirt's tap MAC for [`VM_MAC`].
const TAP_MAC: &str = "fe:54:00:12:34:57";
const TAP: &str = "vnet7";
const PORT_UUID: &str = "5d744f21-ba4a-4d6e-bdb2-30a35ff3207d";
const GATEWAY: &str = "192.168.122.1";

fn nat_network() -> &'static str {
    "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
     <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
       <range start='192.168.122.100' end='192.168.122.199'/>\
     </dhcp></ip></network>"
}

/// What `virtqemud` sends for `<interface type='network'><source network='default'/>` of
/// guest `vm1`.
fn port_xml(uuid: &str, mac: &str) -> String {
    format!(
        "<networkport>\n  <uuid>{uuid}</uuid>\n  <owner>\n    <name>vm1</name>\n    \
         <uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid>\n  </owner>\n  \
         <mac address='{mac}'/>\n</networkport>\n"
    )
}

fn write(lab: &Lab, name: &str, text: &str) -> String {
    let path = lab.tmp_dir().join(name);
    std::fs::write(&path, text).expect("write port XML");
    path.to_string_lossy().into_owned()
}

/// `virtnet ARGS` must fail; returns its stderr.
fn cli_err(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "virtnet {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The master of a link (`master virbr0`), from `ip -d link show`.
fn master(lab: &Lab, link: &str) -> Option<String> {
    let shown = lab.host().ip_ok(["-d", "link", "show", "dev", link]);
    let words: Vec<&str> = shown.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "master")
        .and_then(|i| words.get(i + 1))
        .map(|w| w.to_string())
}

/// The hypervisor's part: its own tap with libvirt's MAC, on the bridge the plug names.
fn hypervisor_makes_tap(lab: &Lab, bridge: &str) {
    lab.host()
        .ip_ok(["tuntap", "add", "dev", TAP, "mode", "tap"]);
    lab.host().ip_ok([
        "link", "set", "dev", TAP, "address", TAP_MAC, "master", bridge, "up",
    ]);
}

fn in_range(addr: &str) -> bool {
    addr.parse::<Ipv4Addr>()
        .map(|a| a.octets()[..3] == [192, 168, 122] && (100..=199).contains(&a.octets()[3]))
        .unwrap_or(false)
}

#[test]
fn hypervisor_port_lives_through_network_and_daemon_restarts() {
    let lab = Lab::new("hv_ports");
    let mut daemon = Daemon::start_in(lab.host());
    let net = daemon.define(nat_network());
    daemon.cli_ok(&["net-start", &net]);

    // The hypervisor announces the port; the answer names the bridge.
    let file = write(&lab, "port.xml", &port_xml(PORT_UUID, VM_MAC));
    let out = daemon.cli_ok(&["net-port-create", "default", &file]);
    assert!(
        out.contains(&format!("Network port {PORT_UUID} created")),
        "{out}"
    );
    let xml = daemon.cli_ok(&["net-port-dumpxml", "default", PORT_UUID]);
    assert!(
        xml.contains("<plug type='network' bridge='virbr0'/>"),
        "{xml}"
    );
    assert!(xml.contains("<name>vm1</name>"), "{xml}");

    // The hypervisor makes its tap and boots the guest on it; the guest leases from virtnet.
    hypervisor_makes_tap(&lab, "virbr0");
    let vm = QemuGuest::boot(lab.host(), TAP, VM_MAC, "vm1");
    let lease = vm.lease();
    vm.wait_ready();
    let ip = lease.ip.to_string();
    assert!(in_range(&ip), "{ip} is outside the DHCP range");

    // virtnet shows the guest like its own ports, the tap found by MAC.
    let ports: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["port-list", "--json"])).expect("JSON");
    let row = ports
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["port_uuid"] == PORT_UUID))
        .unwrap_or_else(|| panic!("no hypervisor port in {ports}"));
    assert_eq!(row["name"], TAP, "{row}");
    assert_eq!(row["domain"], "vm1", "{row}");
    assert_eq!(row["bridge"], "virbr0", "{row}");
    assert_eq!(row["tap_mac"], TAP_MAC, "{row}");
    let list = daemon.cli_ok(&["domiflist", "vm1"]);
    assert!(
        list.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&TAP) && w.contains(&"default") && w.contains(&VM_MAC)
        }),
        "{list}"
    );
    let addrs = daemon.cli_ok(&["domifaddr", "vm1"]);
    assert!(addrs.contains(&format!("{ip}/24")), "{addrs}");
    let leases = daemon.cli_ok(&["net-dhcp-leases", "default"]);
    assert!(leases.contains(VM_MAC) && leases.contains(&ip), "{leases}");

    vm.run_ok(
        &format!("ping -c 1 -w 10 {GATEWAY}"),
        Duration::from_secs(20),
    );
    // The network restarts: its bridge is new, and the hypervisor's tap is on no bridge (and
    // down, as virtnet leaves a tap it takes off a bridge) until virtnet plugs it in again;
    // the guest reaches its gateway again.
    daemon.cli_ok(&["net-destroy", "default"]);
    assert_eq!(master(&lab, TAP), None, "the old bridge is gone");
    daemon.cli_ok(&["net-start", "default"]);
    assert_eq!(master(&lab, TAP).as_deref(), Some("virbr0"));
    vm.run_ok(
        // The new bridge's port goes through STP's listening and learning states first (2 s
        // each): busybox ping succeeds when any of its 15 echoes is answered.
        &format!("ping -c 15 {GATEWAY}"),
        Duration::from_secs(40),
    );

    // virtnetd restarts: the port is still recorded and shown.
    daemon.restart();
    let listed = daemon.cli_ok(&["net-port-list", "default", "--uuid"]);
    assert_eq!(listed.trim(), PORT_UUID);
    assert!(daemon.cli_ok(&["domiflist", "vm1"]).contains(TAP));
    assert_eq!(master(&lab, TAP).as_deref(), Some("virbr0"));

    // Its bandwidth parameters are stored as given (applying them comes with QoS).
    let client = Client::new(daemon.socket());
    let mut params = NetworkPortParameters::default();
    params.parameters.insert("inbound.average".into(), 1000);
    params.parameters.insert("outbound.average".into(), 128);
    client
        .set_network_port_parameters(PORT_UUID, &params)
        .expect("set parameters");
    let stored = client
        .network_port_parameters(PORT_UUID)
        .expect("get parameters");
    assert_eq!(stored.parameters.get("inbound.average"), Some(&1000));
    assert_eq!(stored.parameters.get("outbound.average"), Some(&128));
    let xml = daemon.cli_ok(&["net-port-dumpxml", "default", PORT_UUID]);
    assert!(xml.contains("<inbound average='1000'/>"), "{xml}");

    // The same UUID again is libvirt's error, and changes nothing.
    let e = cli_err(&daemon, &["net-port-create", "default", &file]);
    assert!(
        e.contains(&format!(
            "network port already exists: Network port with UUID {PORT_UUID} already exists"
        )),
        "{e}"
    );

    // Delete: the record goes, the hypervisor's tap stays where it is.
    let out = daemon.cli_ok(&["net-port-delete", "default", PORT_UUID]);
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(
        daemon
            .cli_ok(&["net-port-list", "default", "--uuid"])
            .trim(),
        ""
    );
    assert_eq!(master(&lab, TAP).as_deref(), Some("virbr0"));
    let shown = lab.host().ip_ok(["link", "show", "dev", TAP]);
    assert!(shown.contains(TAP_MAC), "{shown}");
    assert!(!daemon.cli_ok(&["port-list"]).contains(TAP));
    drop(vm);
}

#[test]
fn hypervisor_port_refusals_are_libvirts() {
    let lab = Lab::new("hv_port_err");
    let daemon = Daemon::start_in(lab.host());
    let net = daemon.define(nat_network());
    daemon.cli_ok(&["net-start", &net]);
    daemon.define("<network><name>down</name><bridge name='virbr9'/></network>");
    let good = write(
        &lab,
        "good.xml",
        &port_xml("11111111-2222-3333-4444-555555555555", VM_MAC),
    );

    let e = cli_err(&daemon, &["net-port-create", "nosuch", &good]);
    assert!(
        e.contains("Network not found: no network with matching name 'nosuch'"),
        "{e}"
    );
    let e = cli_err(&daemon, &["net-port-create", "down", &good]);
    assert!(
        e.contains("Requested operation is not valid: network 'down' is not active"),
        "{e}"
    );
    // Bad XML: the error names the field.
    let bad = write(&lab, "bad.xml", &port_xml(PORT_UUID, "01:00:5e:00:00:01"));
    let e = cli_err(&daemon, &["net-port-create", "default", &bad]);
    assert!(e.contains("mac.address"), "{e}");
    let no_owner = write(
        &lab,
        "no-owner.xml",
        &format!("<networkport><uuid>{PORT_UUID}</uuid><mac address='{VM_MAC}'/></networkport>"),
    );
    let e = cli_err(&daemon, &["net-port-create", "default", &no_owner]);
    assert!(e.contains("owner"), "{e}");
    // A plug without --reclaim is libvirt's invalid argument.
    let plugged = write(
        &lab,
        "plugged.xml",
        &port_xml(PORT_UUID, VM_MAC).replace(
            "</networkport>",
            "  <plug type='network' bridge='virbr0'/>\n</networkport>",
        ),
    );
    let e = cli_err(&daemon, &["net-port-create", "default", &plugged]);
    assert!(
        e.contains("Port reclaim not requested but plug type is not none"),
        "{e}"
    );
    // A hostdev network (PCI passthrough) never runs under virtnet, so no port is made on it.
    daemon.define(
        "<network><name>hd</name><forward mode='hostdev' managed='yes'>\
         <address type='pci' domain='0' bus='4' slot='0' function='1'/></forward></network>",
    );
    let start = daemon.cli(&["net-start", "hd"]);
    assert!(!start.status.success(), "a hostdev network must not start");
    let e = cli_err(&daemon, &["net-port-create", "hd", &good]);
    assert!(
        e.contains("Requested operation is not valid: network 'hd' is not active"),
        "{e}"
    );
    // Nothing was recorded by any refusal.
    assert_eq!(
        daemon
            .cli_ok(&["net-port-list", "default", "--uuid"])
            .trim(),
        ""
    );
    // An unknown port.
    let e = cli_err(&daemon, &["net-port-dumpxml", "default", PORT_UUID]);
    assert!(e.contains("network port not found"), "{e}");
}
