//! Networks on host devices: `forward mode='bridge'` on an existing host bridge (ports are taps
//! on it; virtnet adds nothing else) and the direct modes (ports are macvtap devices on a host
//! NIC). A veth stands for the host's NIC.

use virtnet_api::client::Client;
use virtnet_api::PortRequest;
use virtnet_model::InterfaceSource;
use virtnet_testkit::{Daemon, Lab};

fn request(domain: &str, network: &str, mac: &str) -> PortRequest {
    PortRequest {
        domain: domain.into(),
        source: InterfaceSource::Network(network.into()),
        mac: mac.into(),
        model: None,
        target: None,
        owner_uid: None,
        owner_gid: None,
        helper: false,
        no_spoof_check: false,
        isolated: false,
        queues: None,
        vnet_hdr: false,
    }
}

fn link(lab: &Lab, name: &str) -> String {
    let out = lab.host().ip(["-d", "link", "show", "dev", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn host_bridge_and_macvtap_networks_get_their_ports_and_build_nothing_else() {
    let lab = Lab::new("hostdev");
    // The host's NIC (a veth whose peer stays in the host namespace) and its bridge br0.
    lab.host().ip_ok([
        "link", "add", "eth0", "type", "veth", "peer", "name", "lan0",
    ]);
    lab.host().ip_ok(["link", "set", "eth0", "up"]);
    lab.host().ip_ok(["link", "set", "lan0", "up"]);
    lab.host().ip_ok(["link", "add", "br0", "type", "bridge"]);
    lab.host().ip_ok(["link", "set", "br0", "up"]);
    let daemon = Daemon::start_in(lab.host());
    let table_before = lab.host().exec(["nft", "list", "ruleset"]).stdout;

    for xml in [
        "<network><name>host-bridge</name><forward mode='bridge'/><bridge name='br0'/></network>",
        "<network><name>macvtap</name><forward mode='bridge'><interface dev='lan0'/></forward></network>",
        "<network><name>nowhere</name><forward mode='bridge'/><bridge name='br9'/></network>",
    ] {
        daemon.define(xml);
    }
    daemon.cli_ok(&["net-start", "host-bridge"]);
    daemon.cli_ok(&["net-start", "macvtap"]);
    let missing = daemon.cli(&["net-start", "nowhere"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("br9"));
    // Nothing was built: no address on br0, no firewall, no DHCP.
    assert!(!lab
        .host()
        .ip_ok(["-4", "addr", "show", "dev", "br0"])
        .contains("inet "));
    assert_eq!(
        lab.host().exec(["nft", "list", "ruleset"]).stdout,
        table_before
    );

    let client = Client::new(daemon.socket());
    let tap = client
        .create_port(&request("vm1", "host-bridge", "52:54:00:00:01:01"))
        .expect("port on the host bridge");
    assert_eq!(tap.bridge, "br0");
    assert!(link(&lab, &tap.name).contains("master br0"));

    let mv = client
        .create_port(&request("vm2", "macvtap", "52:54:00:00:01:02"))
        .expect("macvtap port");
    assert_eq!(mv.name, "macvtap0");
    let shown = link(&lab, "macvtap0");
    assert!(shown.contains("macvtap mode bridge"), "{shown}");
    assert!(
        shown.contains("52:54:00:00:01:02"),
        "the guest's own MAC: {shown}"
    );
    assert!(shown.contains("macvtap0@lan0"), "on the NIC: {shown}");
    // One domain cannot have two interfaces with one MAC, on a direct network as anywhere.
    let twice = client
        .create_port(&request("vm2", "macvtap", "52:54:00:00:01:02"))
        .unwrap_err();
    assert!(
        twice.to_string().contains("already has an interface"),
        "{twice}"
    );
    assert_eq!(
        link(&lab, "macvtap1"),
        "",
        "nothing made for the refused port"
    );
    // A macvtap port cannot move to a bridge network while QEMU holds its device.
    assert!(client
        .move_port("macvtap0", InterfaceSource::Network("host-bridge".into()))
        .is_err());
    client.set_port_link("macvtap0", false).expect("link down");
    assert!(link(&lab, "macvtap0").contains("state DOWN"));
    client.delete_port("macvtap0").expect("delete");
    assert_eq!(link(&lab, "macvtap0"), "");

    // Destroying the networks leaves the host's bridge and NIC alone.
    daemon.cli_ok(&["net-destroy", "host-bridge", "macvtap"]);
    assert!(link(&lab, "br0").contains("br0"));
    assert!(link(&lab, "lan0").contains("lan0"));
}
