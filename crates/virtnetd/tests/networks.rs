//! Behaviour of running networks, with real packets: a host namespace runs virtnetd, guests are
//! namespaces joined to its bridges by veth, and an upstream namespace (203.0.113.1, HTTP)
//! stands for the internet (see `virtnet_testkit::Lab`).

use virtnet_testkit::{Daemon, Lab, HOST_UPLINK_ADDR, UPSTREAM_ADDR, UPSTREAM_URL};

/// Defines and starts a network from XML.
fn start(daemon: &Daemon, xml: &str) {
    let name = daemon.define(xml);
    daemon.cli_ok(&["net-start", &name]);
}

fn network(name: &str, mode: Option<&str>, bridge: &str, prefix3: &str) -> String {
    let forward = match mode {
        Some(m) => format!("<forward mode='{m}'/>"),
        None => String::new(),
    };
    format!(
        "<network><name>{name}</name>{forward}<bridge name='{bridge}'/>\
         <ip address='{prefix3}.1' prefix='24'/></network>"
    )
}

fn lab_with_daemon(test: &str) -> (Lab, Daemon) {
    let lab = Lab::new(test);
    let daemon = Daemon::start_in(lab.host());
    (lab, daemon)
}

fn table(lab: &Lab) -> String {
    let out = lab.host().exec(["nft", "list", "table", "inet", "virtnet"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nat_guest_reaches_upstream_as_the_host_and_is_unreachable_from_it() {
    let (lab, daemon) = lab_with_daemon("nat");
    start(
        &daemon,
        &network("default", Some("nat"), "virbr0", "192.168.122"),
    );
    let guest = lab.guest("virbr0", "192.168.122.10/24", Some("192.168.122.1"));
    let answer = guest
        .http_get(UPSTREAM_URL)
        .expect("nat guest reaches upstream");
    assert_eq!(answer, format!("you are {HOST_UPLINK_ADDR}\n"));

    // Even with a route back, an unsolicited connection from upstream to the guest fails: only
    // established/related flows come in.
    let _listener = guest.listen(8080);
    lab.upstream_route_to("192.168.122.0/24");
    assert!(!lab.upstream_connect("192.168.122.10", 8080));
    // ...while the guest itself still reaches upstream.
    assert!(guest.tcp_connect(UPSTREAM_ADDR, 80));
}

/// `<nat><address>` (a custom NAT chain behind the prefix group's verdict map `nat4_map_24`)
/// and plain masquerade (`masq4_24`) side by side: each guest reaches upstream as its own
/// network's NAT says, and traffic within a subnet is not NATed.
#[test]
fn custom_snat_and_masquerade_networks_side_by_side() {
    let (lab, daemon) = lab_with_daemon("snat");
    lab.host()
        .ip_ok(["addr", "add", "203.0.113.50/24", "dev", "uplink0"]);
    start(
        &daemon,
        "<network><name>snat</name><forward mode='nat'><nat>\
         <address start='203.0.113.50' end='203.0.113.50'/></nat></forward>\
         <bridge name='vsnat'/><ip address='10.93.0.1' prefix='24'/></network>",
    );
    start(&daemon, &network("masq", Some("nat"), "vmasq", "10.94.0"));
    let snat = lab.guest("vsnat", "10.93.0.10/24", Some("10.93.0.1"));
    let masq = lab.guest("vmasq", "10.94.0.10/24", Some("10.94.0.1"));
    assert_eq!(
        snat.http_get(UPSTREAM_URL)
            .expect("SNAT guest reaches upstream"),
        "you are 203.0.113.50\n"
    );
    assert_eq!(
        masq.http_get(UPSTREAM_URL)
            .expect("masquerade guest reaches upstream"),
        format!("you are {HOST_UPLINK_ADDR}\n")
    );
    let t = table(&lab);
    assert!(
        t.contains("set masq4_24") && t.contains("map nat4_map_24"),
        "{t}"
    );
    assert!(!t.contains("flags interval"), "no interval set left: {t}");
}

#[test]
fn routed_guest_reaches_upstream_with_its_own_address_both_ways() {
    let (lab, daemon) = lab_with_daemon("route");
    start(
        &daemon,
        &network("routed", Some("route"), "virbr3", "10.10.20"),
    );
    lab.upstream_route_to("10.10.20.0/24");
    let guest = lab.guest("virbr3", "10.10.20.10/24", Some("10.10.20.1"));
    let answer = guest
        .http_get(UPSTREAM_URL)
        .expect("routed guest reaches upstream");
    assert_eq!(answer, "you are 10.10.20.10\n");
    let _listener = guest.listen(8080);
    assert!(lab.upstream_connect("10.10.20.10", 8080));
}

/// Subnets of several prefix lengths, and `<forward dev>`: each prefix length has its own sets
/// and masked rules in the table, so this checks that the masks match what they must, and only
/// that.
#[test]
fn prefix_lengths_and_forward_dev_keep_their_verdicts() {
    let (lab, daemon) = lab_with_daemon("prefixes");
    start(
        &daemon,
        "<network><name>wide</name><forward mode='nat' dev='uplink0'/><bridge name='virbr4'/>\
         <ip address='10.80.0.1' prefix='16'/></network>",
    );
    start(
        &daemon,
        "<network><name>small</name><forward mode='route'/><bridge name='virbr5'/>\
         <ip address='10.81.0.1' prefix='28'/></network>",
    );
    start(
        &daemon,
        "<network><name>elsewhere</name><forward mode='nat' dev='nosuch0'/>\
         <bridge name='virbr6'/><ip address='10.82.0.1' prefix='24'/></network>",
    );
    // Routes back for every guest address below, so that only the firewall can stop them.
    lab.upstream_route_to("10.81.0.0/24");
    lab.upstream_route_to("10.82.0.0/24");
    let wide = lab.guest("virbr4", "10.80.200.10/16", Some("10.80.0.1"));
    assert_eq!(
        wide.http_get(UPSTREAM_URL)
            .expect("/16 NAT guest via its dev"),
        format!("you are {HOST_UPLINK_ADDR}\n")
    );
    let small = lab.guest("virbr5", "10.81.0.10/28", Some("10.81.0.1"));
    assert_eq!(
        small.http_get(UPSTREAM_URL).expect("/28 routed guest"),
        "you are 10.81.0.10\n"
    );
    let _listener = small.listen(8080);
    assert!(lab.upstream_connect("10.81.0.10", 8080));
    // A source outside the /28 on the same bridge is spoofed: rejected, as libvirt does (the
    // host gets a route to it, so that only the firewall can stop it).
    let spoofed = lab.guest("virbr5", "10.81.0.20/24", Some("10.81.0.1"));
    lab.host()
        .ip_ok(["route", "add", "10.81.0.16/28", "dev", "virbr5"]);
    assert!(spoofed.http_get(UPSTREAM_URL).is_err());
    // NAT restricted to another interface does not leave through the uplink.
    let restricted = lab.guest("virbr6", "10.82.0.10/24", Some("10.82.0.1"));
    assert!(restricted.http_get(UPSTREAM_URL).is_err());
}

#[test]
fn isolated_guests_reach_the_host_and_each_other_but_not_upstream() {
    let (lab, daemon) = lab_with_daemon("isolated");
    start(&daemon, &network("isolated", None, "virbr2", "192.168.124"));
    lab.upstream_route_to("192.168.124.0/24");
    let a = lab.guest("virbr2", "192.168.124.10/24", Some("192.168.124.1"));
    let b = lab.guest("virbr2", "192.168.124.11/24", Some("192.168.124.1"));
    assert!(a.ping("192.168.124.1"), "guest cannot reach the host");
    assert!(a.ping("192.168.124.11"), "guests cannot reach each other");
    assert!(b.ping("192.168.124.10"));
    assert!(
        a.http_get(UPSTREAM_URL).is_err(),
        "isolated guest reached upstream"
    );
    let _listener = a.listen(8080);
    assert!(!lab.upstream_connect("192.168.124.10", 8080));
}

#[test]
fn open_network_installs_no_forward_rules_and_forwards() {
    let (lab, daemon) = lab_with_daemon("open");
    start(
        &daemon,
        &network("open", Some("open"), "virbr4", "10.10.30"),
    );
    // No forwarding verdicts; only what its guests may reach on the host (every mode).
    let set = |name: &str| {
        lab.host()
            .run_ok(["nft", "list", "set", "inet", "virtnet", name])
    };
    for forward_set in ["bridges", "cross"] {
        let listing = set(forward_set);
        assert!(
            !listing.contains("virbr4"),
            "open network in {forward_set}:\n{listing}"
        );
    }
    assert!(set("guest_bridges").contains("virbr4"));
    lab.upstream_route_to("10.10.30.0/24");
    let guest = lab.guest("virbr4", "10.10.30.10/24", Some("10.10.30.1"));
    assert_eq!(
        guest
            .http_get(UPSTREAM_URL)
            .expect("open guest reaches upstream"),
        "you are 10.10.30.10\n"
    );
}

#[test]
fn networks_cannot_reach_each_other_unless_routed() {
    let (lab, daemon) = lab_with_daemon("between");
    start(&daemon, &network("one", Some("nat"), "virbr1", "10.1.1"));
    start(&daemon, &network("two", Some("nat"), "virbr2", "10.1.2"));
    start(
        &daemon,
        &network("three", Some("route"), "virbr3", "10.1.3"),
    );
    let one = lab.guest("virbr1", "10.1.1.10/24", Some("10.1.1.1"));
    let two = lab.guest("virbr2", "10.1.2.10/24", Some("10.1.2.1"));
    let three = lab.guest("virbr3", "10.1.3.10/24", Some("10.1.3.1"));
    let _l2 = two.listen(8080);
    let _l3 = three.listen(8080);
    let _l1 = one.listen(8080);
    assert!(
        !one.tcp_connect("10.1.2.10", 8080),
        "nat network reached another nat network"
    );
    assert!(!two.tcp_connect("10.1.1.10", 8080));
    assert!(
        one.tcp_connect("10.1.3.10", 8080),
        "a routed network must be reachable"
    );
    assert!(
        !three.tcp_connect("10.1.1.10", 8080),
        "a routed guest opened a connection into nat"
    );
}

#[test]
fn a_subnet_in_use_or_a_foreign_bridge_name_is_refused_and_changes_nothing() {
    let (lab, daemon) = lab_with_daemon("conflict");
    // 203.0.113.0/24 is the host's uplink.
    daemon.define(&network("clash", Some("nat"), "virbr0", "203.0.113"));
    let before_links = lab.host().link_names();
    let out = daemon.cli(&["net-start", "clash"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Network is already in use by interface uplink0"),
        "{stderr}"
    );
    assert_eq!(lab.host().link_names(), before_links);
    assert!(daemon.cli_ok(&["net-list", "--inactive"]).contains("clash"));

    // A bridge name taken by a link virtnet did not make.
    lab.host()
        .ip_ok(["link", "add", "virbr9", "type", "bridge"]);
    daemon.define(&network("taken", Some("nat"), "virbr9", "10.9.9"));
    let out = daemon.cli(&["net-start", "taken"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'virbr9' is already in use"), "{stderr}");
    let addrs = lab.host().ip_ok(["-br", "addr", "show", "virbr9"]);
    assert!(!addrs.contains("10.9.9.1"), "{addrs}");
    assert!(!table(&lab).contains("virbr9"));
}

/// virtnetd follows the host's routes through kernel notifications instead of dumping them at
/// every start: a route added later must still block a start, and one the kernel flushed
/// silently (IPv4 routes of a link taken down) must not.
#[test]
fn later_route_changes_on_the_host_are_seen() {
    let (lab, daemon) = lab_with_daemon("routes");
    start(&daemon, &network("first", Some("nat"), "virbr1", "10.54.1"));
    lab.host()
        .ip_ok(["route", "add", "10.55.0.0/16", "via", UPSTREAM_ADDR]);
    daemon.define(&network("later", Some("nat"), "virbr2", "10.55.1"));
    let out = daemon.cli(&["net-start", "later"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by interface uplink0 (route 10.55.0.0/16 overlaps 10.55.1.0/24)"),
        "{stderr}"
    );
    lab.host().ip_ok(["route", "del", "10.55.0.0/16"]);
    daemon.cli_ok(&["net-start", "later"]);

    lab.host()
        .ip_ok(["link", "add", "br-x", "up", "type", "bridge"]);
    lab.host()
        .ip_ok(["route", "add", "10.56.0.0/16", "dev", "br-x"]);
    lab.host().ip_ok(["link", "set", "br-x", "down"]);
    assert!(!lab.host().ip_ok(["route"]).contains("10.56.0.0/16"));
    start(
        &daemon,
        &network("flushed", Some("nat"), "virbr3", "10.56.1"),
    );
}

/// Turning IPv6 forwarding on makes the kernel ignore router advertisements on interfaces
/// without `accept_ra=2`, and the routes they gave would expire: refused, as libvirt does.
#[test]
fn ipv6_forwarding_is_refused_while_an_uplink_needs_router_advertisements() {
    let (lab, daemon) = lab_with_daemon("ra");
    lab.host().ip_ok([
        "-6",
        "route",
        "add",
        "2001:db8:99::/64",
        "dev",
        "uplink0",
        "proto",
        "ra",
    ]);
    let xml = "<network><name>v6</name><forward mode='nat'/><bridge name='virbr6'/>\
               <ip address='10.66.0.1' prefix='24'/>\
               <ip family='ipv6' address='fd00:66::1' prefix='64'/></network>";
    daemon.define(xml);
    let out = daemon.cli(&["net-start", "v6"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without accept_ra set to 2") && stderr.contains("look at: uplink0"),
        "{stderr}"
    );
    assert!(!lab.host().link_names().contains(&"virbr6".to_string()));
    lab.host().sysctl("net.ipv6.conf.uplink0.accept_ra", "2");
    daemon.cli_ok(&["net-start", "v6"]);
    assert_eq!(
        lab.host()
            .run_ok(["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
}

#[test]
fn destroy_removes_exactly_what_start_made() {
    let (lab, daemon) = lab_with_daemon("destroy");
    let links = lab.host().link_names();
    let routes = lab.host().ip_ok(["route"]);
    let xml = "<network><name>lab</name><forward mode='nat'/><bridge name='virbr10'/>\
               <ip address='192.168.100.1' prefix='24'/>\
               <ip family='ipv6' address='fd00:100::1' prefix='64'/>\
               <route address='192.168.222.0' prefix='24' gateway='192.168.100.2'/></network>";
    start(&daemon, xml);
    assert!(lab
        .host()
        .ip_ok(["route"])
        .contains("192.168.222.0/24 via 192.168.100.2 dev virbr10 proto 86"));
    daemon.cli_ok(&["net-destroy", "lab"]);
    // The bridge's name, addresses and routes are gone at once; the parked bridge itself is
    // deleted in the background, moments later.
    assert!(!lab.host().link_names().contains(&"virbr10".to_string()));
    assert!(!lab.host().ip_ok(["addr"]).contains("192.168.100.1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lab.host().link_names() != links && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(lab.host().link_names(), links);
    assert_eq!(lab.host().ip_ok(["route"]), routes);
    let rules = table(&lab);
    assert!(!rules.contains("virbr10"), "{rules}");
    assert!(daemon.cli_ok(&["net-list", "--inactive"]).contains("lab"));
}

#[test]
fn a_network_restarted_at_once_is_whole_while_old_bridges_are_deleted_behind() {
    let (lab, daemon) = lab_with_daemon("restart");
    let links = lab.host().link_names();
    start(&daemon, &network("lab", Some("nat"), "virbr11", "10.66.0"));
    let guest = lab.guest("virbr11", "10.66.0.10/24", Some("10.66.0.1"));
    for _ in 0..5 {
        daemon.cli_ok(&["net-destroy", "lab"]);
        daemon.cli_ok(&["net-start", "lab"]);
    }
    // No parked bridge shows as virtnet's, whatever the reaper has done by now.
    let shown = daemon.cli_ok(&["iface-bridges"]);
    assert_eq!(shown.matches("virbr11").count(), 1, "{shown}");
    assert!(!shown.contains("vndel"), "{shown}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut expected = links.clone();
    expected.push("virbr11".to_string());
    expected.push(guest.host_if().to_string());
    expected.sort();
    while lab.host().link_names() != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(lab.host().link_names(), expected);
    // The last bridge kept its address and routes while the old ones went, and the guest
    // (attached again by hand: a plain veth is not a virtnet port) reaches upstream through it.
    let local = lab.host().ip_ok(["route", "show", "table", "local"]);
    assert!(local.contains("local 10.66.0.1 dev virbr11"), "{local}");
    assert!(lab
        .host()
        .ip_ok(["route"])
        .contains("10.66.0.0/24 dev virbr11"));
    let port = lab.host().ip_ok(["link", "show", "dev", guest.host_if()]);
    assert!(
        !port.contains("master"),
        "destroy took the port off: {port}"
    );
    guest.attach("virbr11");
    assert!(guest.http_get(UPSTREAM_URL).is_ok());
}

#[test]
fn net_info_and_iface_bridges_show_the_kernel_state() {
    let (lab, daemon) = lab_with_daemon("info");
    start(
        &daemon,
        "<network><name>default</name><forward mode='nat'/>\
         <bridge name='virbr0' stp='on' delay='0'/><mac address='52:54:00:0a:0b:0c'/>\
         <ip address='192.168.122.1' prefix='24'/></network>",
    );
    let a = lab.guest("virbr0", "192.168.122.10/24", None);
    let b = lab.guest("virbr0", "192.168.122.11/24", None);
    // A port with a lower MAC than the bridge's: a bridge whose MAC was not assigned would take
    // it (why libvirt once needed virbr0-nic); virtnet's keeps its own.
    lab.host()
        .ip_ok(["link", "set", a.host_if(), "address", "02:00:00:00:00:01"]);
    let info = daemon.cli_ok(&["net-info", "default"]);
    assert!(info.contains("Active:         yes"), "{info}");
    assert!(info.contains("Bridge:         virbr0"), "{info}");
    let mut ports = [a.host_if().to_string(), b.host_if().to_string()];
    ports.sort();
    let shown = daemon.cli_ok(&["iface-bridges"]);
    assert_eq!(
        shown,
        format!(
            "bridge name\tbridge id\t\tSTP enabled\tinterfaces\n\
             virbr0\t\t8000.5254000a0b0c\tyes\t\t{}\n\t\t\t\t\t\t\t{}\n\n",
            ports[0], ports[1]
        )
    );
}

/// Issue 14's coexistence, first part: an `nft flush ruleset` (an nftables service restart, a
/// firewall reload) deletes virtnet's table with every other one; virtnetd sees the kernel's
/// announcement and rebuilds it, so a NAT guest reaches upstream again without any `net-start`.
#[test]
fn a_flushed_ruleset_is_rebuilt_without_waiting_for_a_change() {
    let (lab, daemon) = lab_with_daemon("flush");
    start(
        &daemon,
        &network("default", Some("nat"), "virbr0", "192.168.122"),
    );
    let guest = lab.guest("virbr0", "192.168.122.10/24", Some("192.168.122.1"));
    assert!(guest.http_get(UPSTREAM_URL).is_ok(), "NAT works before");
    let before = table(&lab);
    assert!(before.contains("masquerade"), "{before}");

    lab.host().run_ok(["nft", "flush", "ruleset"]);
    assert!(
        virtnet_testkit::eventually(std::time::Duration::from_secs(10), || table(&lab)
            .contains("masquerade")),
        "virtnet's table was not rebuilt:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("deleted by someone else"),
        "{}",
        daemon.log()
    );
    let answer = guest.http_get(UPSTREAM_URL).expect("NAT works again");
    assert_eq!(answer, format!("you are {HOST_UPLINK_ADDR}\n"));
}
