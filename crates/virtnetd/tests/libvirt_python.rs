//! libvirt's Python bindings (Debian's `python3-libvirt`, `/usr/bin/python3`) against
//! virtnetd's libvirt socket: list, define, start, a lifecycle event received by a registered
//! callback, and a guest's DHCP lease (busybox udhcpc in a namespace) looked up by MAC.

use std::process::Command;

use serde_json::Value;
use virtnet_testkit::libvirtd::network_uri;
use virtnet_testkit::{Daemon, Lab};

const NET: &str = "<network><name>pynet</name><forward mode='nat'/><bridge name='pybr0'/>\
    <ip address='192.168.180.1' netmask='255.255.255.0'><dhcp>\
    <range start='192.168.180.100' end='192.168.180.199'/></dhcp></ip></network>";

/// Defines and starts the network with a lifecycle callback registered (the default event
/// loop runs on a thread), then prints what the bindings saw as JSON.
const DEFINE_AND_START: &str = r#"
import json, sys, threading, time
import libvirt
uri, xml = sys.argv[1], sys.argv[2]
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(uri)
events = []
def on_lifecycle(conn, net, event, detail, opaque):
    events.append([net.name(), event, detail])
cid = conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, on_lifecycle, None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
before = [n.name() for n in conn.listAllNetworks()]
net = conn.networkDefineXML(xml)
net.create()
deadline = time.monotonic() + 20
while len(events) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
conn.networkEventDeregisterAny(cid)
after = sorted((n.name(), n.isActive(), n.isPersistent(), n.bridgeName())
               for n in conn.listAllNetworks())
print(json.dumps({"before": before, "after": after, "events": events,
                  "uuid": net.UUIDString(),
                  "by_uuid": conn.networkLookupByUUIDString(net.UUIDString()).name()}))
conn.close()
"#;

/// Prints the network's leases, all and by one MAC, as JSON.
const LEASES: &str = r#"
import json, sys
import libvirt
uri, name, mac = sys.argv[1], sys.argv[2], sys.argv[3]
conn = libvirt.openReadOnly(uri)
net = conn.networkLookupByName(name)
try:
    net.portLookupByUUIDString("0f0e0d0c-0b0a-0908-0706-050403020100")
    missing = None
except libvirt.libvirtError as e:
    missing = {"code": e.get_error_code(), "domain": e.get_error_domain(),
               "message": e.get_error_message()}
print(json.dumps({"all": net.DHCPLeases(), "by_mac": net.DHCPLeases(mac),
                  "other": net.DHCPLeases("52:54:00:99:99:99"), "missing_port": missing}))
"#;

fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run /usr/bin/python3 (Debian's, with python3-libvirt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn python_bindings_list_define_start_get_events_and_leases() {
    let lab = Lab::new("lvpython");
    let daemon = Daemon::start_in(lab.host());
    let rw = network_uri(&daemon.libvirt_socket());
    let seen = python(DEFINE_AND_START, &[&rw, NET]);
    assert_eq!(seen["before"], serde_json::json!([]), "{seen}");
    assert_eq!(
        seen["after"],
        serde_json::json!([["pynet", 1, 1, "pybr0"]]),
        "{seen}"
    );
    // VIR_NETWORK_EVENT_DEFINED (0), then VIR_NETWORK_EVENT_STARTED (2), detail 0.
    assert_eq!(
        seen["events"],
        serde_json::json!([["pynet", 0, 0], ["pynet", 2, 0]]),
        "{seen}"
    );
    assert_eq!(seen["by_uuid"], "pynet");
    // virtnet's own client sees what the bindings made.
    assert!(daemon.cli_ok(&["net-list"]).contains("pynet"));

    let guest = lab.guest_unattached();
    guest.attach("pybr0");
    let script = virtnet_testkit::dhcp::udhcpc_script(lab.tmp_dir());
    guest.udhcpc(&script, "pyguest");
    let addr = guest.ipv4_addrs()[0].to_string();
    let mac = guest.mac();
    let ro = network_uri(&daemon.libvirt_ro_socket());
    let leases = python(LEASES, &[&ro, "pynet", &mac]);
    let all = leases["all"].as_array().expect("leases");
    assert_eq!(all.len(), 1, "{leases}");
    let lease = &all[0];
    assert_eq!(lease["iface"], "pybr0", "{lease}");
    assert_eq!(lease["ipaddr"], addr.as_str(), "{lease}");
    assert_eq!(lease["mac"], mac.as_str(), "{lease}");
    assert_eq!(lease["hostname"], "pyguest", "{lease}");
    assert_eq!(lease["prefix"], 24, "{lease}");
    assert_eq!(lease["type"], 0, "VIR_IP_ADDR_TYPE_IPV4: {lease}");
    assert!(lease["expirytime"].as_i64().unwrap_or(0) > 0, "{lease}");
    assert_eq!(leases["by_mac"], leases["all"]);
    assert_eq!(leases["other"], serde_json::json!([]));
    // An unknown network port: VIR_ERR_NO_NETWORK_PORT (107) in VIR_FROM_NETWORK (19), in
    // libvirt's words.
    let missing = &leases["missing_port"];
    assert_eq!(missing["code"], 107, "{missing}");
    assert_eq!(missing["domain"], 19, "{missing}");
    assert_eq!(
        missing["message"],
        "network port not found: Network port with UUID 0f0e0d0c-0b0a-0908-0706-050403020100 does not exist",
        "{missing}"
    );
}
