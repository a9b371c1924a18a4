//! Guest ports through the `virtnet` binary: `attach-interface`, `domiflist`, `port-list`,
//! `domif-setlink`/`domif-getlink`, `detach-interface`, `attach-device`, `update-device`,
//! `detach-device` and `domifaddr`, in virsh 9's wording and layouts.
//!
//! Every daemon runs in a namespace of its own ([`virtnet_testkit::Netns`]); the taps and
//! bridges these tests create never reach the host's network namespace. The tests marked
//! "offline" need no daemon: what they check is refused before a request is sent.

use virtnet_testkit::{shared_dir, Daemon, Netns};

mod common;

use common::{offline, Run};

/// The test network: NAT, bridge `virbr5`.
const NET: &str = "portnet";
const NET_BRIDGE: &str = "virbr5";
const NET_XML: &str = "<network>
  <name>portnet</name>
  <forward mode='nat'/>
  <bridge name='virbr5' stp='on' delay='0'/>
  <ip address='192.168.150.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.150.2' end='192.168.150.254'/>
    </dhcp>
  </ip>
</network>
";

/// A daemon in a fresh namespace with [`NET`] defined and started.
fn lab() -> Daemon {
    let ns = Netns::new("ports");
    let d = Daemon::start_in(&ns);
    let name = d.define(NET_XML);
    assert_eq!(name, NET);
    d.cli_ok(&["net-start", NET]);
    d
}

fn run(d: &Daemon, args: &[&str]) -> Run {
    Run::from_output(d.cli(args))
}

/// `ip -d link show DEV` in the daemon's namespace, or None when the device does not exist.
fn link(d: &Daemon, dev: &str) -> Option<String> {
    let out = d.ns().ip(["-d", "link", "show", dev]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The ifindex of a device (the number before the first colon of `ip link show`).
fn ifindex(d: &Daemon, dev: &str) -> String {
    let shown = link(d, dev).unwrap_or_else(|| panic!("{dev} does not exist:\n{}", d.log()));
    shown
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The flags of a device (`<BROADCAST,MULTICAST,UP,LOWER_UP>`).
fn flags(d: &Daemon, dev: &str) -> String {
    let shown = link(d, dev).unwrap_or_else(|| panic!("{dev} does not exist:\n{}", d.log()));
    shown
        .split('<')
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or_default()
        .to_string()
}

/// A shared guest-interface example with its source rewritten.
fn nic_file(d: &Daemon, example: &str, from: &str, to: &str) -> String {
    let path = shared_dir().join("examples").join(example);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(text.contains(from), "{} lacks {from}", path.display());
    let file = d.dir().join(example);
    std::fs::write(&file, text.replace(from, to)).expect("write the NIC's XML");
    file.display().to_string()
}

const DOMIFADDR_HEADER: &str = " Name       MAC address          Protocol     Address\n";

fn domifaddr_dashes() -> String {
    format!("{}\n", "-".repeat(79))
}

#[test]
fn attach_interface_list_setlink_detach() {
    let d = lab();

    run(
        &d,
        &[
            "attach-interface",
            "vm1",
            "network",
            NET,
            "--mac",
            "52:54:00:AA:00:01",
            "--model",
            "virtio",
            "--persistent",
        ],
    )
    .ok("Interface attached successfully\nvnet0\n\n");
    let shown = link(&d, "vnet0").unwrap_or_else(|| panic!("no vnet0:\n{}", d.log()));
    assert!(shown.contains(&format!("master {NET_BRIDGE}")), "{shown}");

    // -q: the name alone, for scripts; a random 52:54:00 MAC without --mac.
    run(&d, &["-q", "attach-interface", "vm1", "network", NET]).ok("vnet1\n");
    assert!(link(&d, "vnet1").is_some_and(|s| s.contains(&format!("master {NET_BRIDGE}"))));

    let list = run(&d, &["domiflist", "vm1"]);
    assert_eq!((list.code, list.stderr.as_str()), (0, ""));
    let mut lines = list.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(" Interface   Type      Source    Model    MAC")
    );
    assert_eq!(lines.next(), Some("-".repeat(61).as_str()));
    assert_eq!(
        lines.next(),
        Some(" vnet0       network   portnet   virtio   52:54:00:aa:00:01")
    );
    let second = lines.next().unwrap_or_default();
    assert!(
        second.starts_with(" vnet1       network   portnet   -        52:54:00:"),
        "{second}"
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(lines.next(), None);

    let json = run(&d, &["domiflist", "vm1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v[0]["interface"], "vnet0");
    assert_eq!(v[0]["type"], "network");
    assert_eq!(v[0]["source"], NET);
    assert_eq!(v[0]["model"], "virtio");
    assert_eq!(v[1]["model"], serde_json::Value::Null);

    let ports = run(&d, &["-q", "port-list"]);
    assert_eq!(ports.code, 0, "{}", ports.stderr);
    assert!(
        ports.stdout.starts_with(&format!(
            " vnet0   vm1   {NET}   {NET_BRIDGE}   52:54:00:aa:00:01   virtio   up\n"
        )),
        "{}",
        ports.stdout
    );
    let json = run(&d, &["port-list", "--domain", "vm1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["bridge"], NET_BRIDGE);
    run(&d, &["-q", "port-list", "--domain", "nosuch"]).ok("");

    // Link state, by tap name and by MAC.
    run(&d, &["domif-getlink", "vm1", "vnet0"]).ok("vnet0 up\n");
    run(&d, &["domif-setlink", "vm1", "vnet0", "down"]).ok("Device updated successfully\n\n");
    run(&d, &["domif-getlink", "vm1", "vnet0"]).ok("vnet0 down\n");
    run(&d, &["domif-getlink", "vm1", "52:54:00:aa:00:01"]).ok("52:54:00:aa:00:01 down\n");
    assert!(
        !flags(&d, "vnet0").split(',').any(|f| f == "UP"),
        "{}",
        flags(&d, "vnet0")
    );
    run(&d, &["domif-setlink", "vm1", "52:54:00:aa:00:01", "up"])
        .ok("Device updated successfully\n\n");
    run(&d, &["-q", "domif-getlink", "vm1", "vnet0"]).ok("vnet0 up");
    assert!(flags(&d, "vnet0").split(',').any(|f| f == "UP"));
    run(&d, &["domif-setlink", "vm1", "vnet0", "sideways"])
        .fails("error: invalid link state 'sideways'\n", "\n");
    run(&d, &["domif-setlink", "vm1", "vnet9", "up"])
        .fails("error: interface (target: vnet9) not found\n", "\n");
    run(&d, &["domif-getlink", "vm1", "vnet9"])
        .fails("error: Interface (dev: vnet9) not found.\n", "\n");

    // Two network interfaces: virsh wants --mac.
    run(&d, &["detach-interface", "vm1", "network"]).fails(
        "error: Domain has 2 interfaces. Please specify which one to detach using --mac\n\
         error: Failed to detach interface\n",
        "\n",
    );
    run(&d, &["detach-interface", "vm1", "bridge"]).fails(
        "error: No interface found whose type is bridge\nerror: Failed to detach interface\n",
        "\n",
    );
    run(
        &d,
        &[
            "detach-interface",
            "vm1",
            "network",
            "--mac",
            "52:54:00:00:00:99",
        ],
    )
    .fails(
        "error: No interface with MAC address 52:54:00:00:00:99 was found\n\
         error: Failed to detach interface\n",
        "\n",
    );
    run(
        &d,
        &[
            "detach-interface",
            "--domain",
            "vm1",
            "--type",
            "network",
            "--mac",
            "52:54:00:aa:00:01",
            "--config",
        ],
    )
    .ok("Interface detached successfully\n\n");
    assert!(link(&d, "vnet0").is_none(), "vnet0 still exists");
    // One left: no --mac needed.
    run(&d, &["detach-interface", "vm1", "network"]).ok("Interface detached successfully\n\n");
    assert!(link(&d, "vnet1").is_none(), "vnet1 still exists");
    run(&d, &["domiflist", "vm1"]).fails("error: failed to get domain 'vm1'\n", "\n");
}

#[test]
fn attach_device_update_device_moves_it_live_detach_device() {
    let d = lab();
    // The seed's host bridge, made in the daemon's namespace.
    d.ns().ip_ok(["link", "add", "virbr1", "type", "bridge"]);
    d.ns().ip_ok(["link", "set", "virbr1", "up"]);

    let nat = nic_file(
        &d,
        "guest-interface-nat.xml",
        "network='default'",
        &format!("network='{NET}'"),
    );
    let bridged = nic_file(&d, "guest-interface-bridge.xml", "virbr1", "virbr1");

    run(&d, &["attach-device", "vm2", &nat]).ok("Device attached successfully\n\n");
    run(&d, &["-q", "domiflist", "vm2"])
        .ok(" vnet0   network   portnet   rtl8139   52:54:00:12:0e:f7\n");
    assert!(link(&d, "vnet0").is_some_and(|s| s.contains(&format!("master {NET_BRIDGE}"))));
    let before = ifindex(&d, "vnet0");

    // `virsh edit` from the NAT network to the bridge, without restarting the guest.
    run(&d, &["update-device", "vm2", &bridged, "--live"]).ok("Device updated successfully\n\n");
    run(&d, &["-q", "domiflist", "vm2"])
        .ok(" vnet0   bridge   virbr1   rtl8139   52:54:00:12:0e:f7\n");
    let shown = link(&d, "vnet0").unwrap_or_default();
    assert!(shown.contains("master virbr1"), "{shown}");
    assert_eq!(
        ifindex(&d, "vnet0"),
        before,
        "the tap was recreated, not moved"
    );

    // And back.
    run(&d, &["update-device", "vm2", &nat]).ok("Device updated successfully\n\n");
    assert!(link(&d, "vnet0").is_some_and(|s| s.contains(&format!("master {NET_BRIDGE}"))));
    assert_eq!(ifindex(&d, "vnet0"), before);

    // Same source again: nothing to do, still success.
    run(&d, &["update-device", "vm2", &nat]).ok("Device updated successfully\n\n");

    // A NIC the domain does not have.
    let stranger = d.dir().join("stranger.xml");
    std::fs::write(
        &stranger,
        format!(
            "<interface type='network'><mac address='52:54:00:99:99:99'/>\
             <source network='{NET}'/></interface>"
        ),
    )
    .expect("write");
    let stranger = stranger.display().to_string();
    run(&d, &["update-device", "vm2", &stranger]).fails(
        &format!(
            "error: Failed to update device from {stranger}\n\
             error: device not found: no device matching MAC address 52:54:00:99:99:99 found\n"
        ),
        "\n",
    );
    run(&d, &["detach-device", "vm2", &stranger]).fails(
        &format!(
            "error: Failed to detach device from {stranger}\n\
             error: device not found: no device matching MAC address 52:54:00:99:99:99 found\n"
        ),
        "\n",
    );

    run(&d, &["detach-device", "vm2", &bridged]).ok("Device detached successfully\n\n");
    assert!(link(&d, "vnet0").is_none(), "vnet0 still exists");
    run(&d, &["domiflist", "vm2"]).fails("error: failed to get domain 'vm2'\n", "\n");
}

#[test]
fn unknown_domains_and_bad_requests() {
    let d = lab();
    for args in [
        &["domiflist", "nosuch"][..],
        &["domifaddr", "nosuch"],
        &["domif-getlink", "nosuch", "vnet0"],
        &["domif-setlink", "nosuch", "vnet0", "up"],
        &["detach-interface", "nosuch", "network"],
    ] {
        run(&d, args).fails("error: failed to get domain 'nosuch'\n", "\n");
    }
    run(&d, &["-q", "domiflist", "nosuch"]).fails("error: failed to get domain 'nosuch'\n", "");

    let out = run(&d, &["attach-interface", "vm1", "network", "nosuchnet"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: Failed to attach interface\nerror: "),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
    assert_eq!(out.stdout, "\n");
    run(&d, &["-q", "port-list"]).ok("");

    // A taken tap name.
    run(
        &d,
        &[
            "-q",
            "attach-interface",
            "vm1",
            "network",
            NET,
            "--target",
            "tap7",
        ],
    )
    .ok("tap7\n");
    let out = run(
        &d,
        &[
            "attach-interface",
            "vm3",
            "network",
            NET,
            "--target",
            "tap7",
        ],
    );
    assert!(
        out.code == 1
            && out
                .stderr
                .starts_with("error: Failed to attach interface\n"),
        "{out:?}"
    );
}

#[test]
fn domifaddr_layout() {
    let d = lab();
    run(
        &d,
        &[
            "-q",
            "attach-interface",
            "vm1",
            "network",
            NET,
            "--mac",
            "52:54:00:aa:00:02",
        ],
    )
    .ok("vnet0\n");
    // No guest runs, so nothing leased and no neighbours: virsh's header alone.
    let header = format!("{DOMIFADDR_HEADER}{}", domifaddr_dashes());
    run(&d, &["domifaddr", "vm1"]).ok(&format!("{header}\n"));
    run(&d, &["domifaddr", "vm1", "--source", "arp", "--full"]).ok(&format!("{header}\n"));
    run(&d, &["domifaddr", "vm1", "vnet0", "--source", "lease"]).ok(&format!("{header}\n"));
    run(&d, &["-q", "domifaddr", "vm1"]).ok("");
    let json = run(&d, &["domifaddr", "vm1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!([]));
    run(&d, &["domifaddr", "vm1", "--source", "bogus"])
        .fails("error: Unknown data source 'bogus'\n", "\n");
    run(&d, &["domifaddr", "vm1", "--source", "agent"]).fails(
        "error: Failed to query for interfaces addresses\n\
         error: argument unsupported: virtnet has no guest agent; use --source lease or \
         --source arp\n",
        "\n",
    );
}

#[test]
fn offline_argument_checks() {
    offline(&["attach-interface", "vm1", "direct", "eth0"]).fails(
        "error: No support for direct in command 'attach-interface'\n",
        "\n",
    );
    offline(&["attach-interface", "vm1", "network"]).fails(
        "error: command 'attach-interface' requires <source> option\n",
        "\n",
    );
    offline(&["attach-interface", "vm1", "network", "default", "x"])
        .fails("error: unexpected data 'x'\n", "\n");
    offline(&[
        "attach-interface",
        "vm1",
        "network",
        "default",
        "--mac",
        "52:54:00:zz:00:01",
    ])
    .fails(
        "error: Failed to attach interface\n\
         error: XML error: unable to parse mac address '52:54:00:zz:00:01'\n",
        "\n",
    );
    offline(&["domif-setlink", "vm1", "vnet0", "sideways"])
        .fails("error: invalid link state 'sideways'\n", "\n");
    offline(&["domifaddr", "vm1", "--source", "dhcp"])
        .fails("error: Unknown data source 'dhcp'\n", "\n");
    offline(&["detach-interface", "vm1"]).fails(
        "error: command 'detach-interface' requires <type> option\n",
        "\n",
    );
    offline(&["attach-device", "vm1"]).fails(
        "error: command 'attach-device' requires <file> option\n",
        "\n",
    );
    let missing = "/nonexistent/nic.xml";
    offline(&["attach-device", "vm1", missing]).fails(
        &format!("error: Failed to open file '{missing}': No such file or directory\n"),
        "\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("nic.xml");
    std::fs::write(
        &bad,
        "<interface type='direct'><source dev='eth0'/></interface>",
    )
    .expect("write");
    let bad = bad.display().to_string();
    let out = offline(&["attach-device", "vm1", &bad]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "error: Failed to attach device from {bad}\nerror: "
        )),
        "{}",
        out.stderr
    );
}
