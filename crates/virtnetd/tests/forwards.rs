//! Port forwards with real packets (issue 14, items 1 and 4), in the testkit's namespaces: the
//! upstream namespace (203.0.113.1, 2001:db8:ff::1) stands for the internet and connects to the
//! host's uplink address; guests run a small echo server that answers with its name and the
//! address it sees the client at, so each test checks both who answered and whether the source
//! was rewritten (hairpin) or kept (from outside).

use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{Daemon, Guest, Lab, Netns, NsChild, HOST_UPLINK_ADDR, UPSTREAM_ADDR};

const HOST6: &str = virtnet_testkit::HOST_UPLINK_ADDR6;
const UP6: &str = virtnet_testkit::UPSTREAM_ADDR6;

/// A NAT network with IPv4 and IPv6 and a DHCP range (for the name test).
const NET: &str = "<network><name>fwd</name><forward mode='nat'/>\
    <bridge name='vnf0' stp='off'/>\
    <ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.100' end='10.77.0.199'/>\
    </dhcp></ip>\
    <ip family='ipv6' address='fd00:77::1' prefix='64'/></network>";

/// Answers every TCP connection and UDP datagram on `port` (IPv4 and IPv6) with
/// `NAME PEER-ADDRESS`.
const ECHO: &str = r#"import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port)); s.listen(64)
    while True:
        c, a = s.accept()
        c.sendall(('%s %s\n' % (name, a[0].replace('::ffff:', ''))).encode()); c.close()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', port))
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(('%s %s\n' % (name, a[0].replace('::ffff:', ''))).encode(), a)
threading.Thread(target=udp, daemon=True).start()
tcp()
"#;

/// Asks `addr:port` over `proto` from `ns` and returns the answer's line ("" when none came
/// within 2 s).
const ASK: &str = r#"import socket, sys
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
try:
    if proto == 'tcp':
        s = socket.create_connection((addr, port), timeout=2)
        sys.stdout.write(s.recv(200).decode().strip())
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(b'hi', (addr, port))
        sys.stdout.write(s.recvfrom(200)[0].decode().strip())
except Exception:
    pass
"#;

fn ask(ns: &Netns, proto: &str, addr: &str, port: u16) -> String {
    let out = ns.exec(["python3", "-c", ASK, proto, addr, &port.to_string()]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The echo server in a guest, on `port`; returns once it accepts TCP.
fn echo(guest: &Guest, name: &str, port: u16) -> NsChild {
    let child = guest
        .ns()
        .spawn(["python3", "-c", ECHO, name, &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guest
        .ns()
        .tcp_connect_timeout("127.0.0.1", port, Duration::from_millis(200))
    {
        assert!(
            Instant::now() < deadline,
            "echo server in {name} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A guest with static IPv4 and IPv6 addresses and default routes via the gateways, and
/// nothing from router advertisements: with a SLAAC address beside its static one, the UDP
/// echo server (bound to `::`) would answer from whichever the kernel prefers (both match
/// the gateway's /64 equally), not from the address the forward sent to, and conntrack could
/// not match the answer to the forwarded flow.
fn guest(lab: &Lab, v4: &str, v6: &str) -> Guest {
    let g = lab.guest("vnf0", &format!("{v4}/24"), Some("10.77.0.1"));
    g.ns()
        .run_ok(["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0"]);
    // What arrived before the sysctl took effect.
    g.ns().ip_ok([
        "-6", "addr", "flush", "dev", "eth0", "scope", "global", "dynamic",
    ]);
    g.ns().ip_ok(["-6", "route", "flush", "proto", "ra"]);
    g.ns().ip_ok([
        "-6",
        "addr",
        "add",
        &format!("{v6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    g.ns()
        .ip_ok(["-6", "route", "add", "default", "via", "fd00:77::1"]);
    g
}

/// The elements of one of the forward maps, as `nft` lists them (one line per element).
fn map_elements(host: &Netns, map: &str) -> Vec<String> {
    let out = host.exec(["nft", "-j", "list", "map", "inet", "virtnet", map]);
    let text = String::from_utf8_lossy(&out.stdout);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["map"]["elem"].as_array().into_iter().flatten() {
            out.push(e.to_string());
        }
    }
    out
}

fn start(lab: &Lab) -> Daemon {
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(NET);
    daemon.cli_ok(&["net-start", &name]);
    daemon
}

#[test]
fn forwards_reach_a_guest_from_outside_from_the_host_and_from_other_guests() {
    let lab = Lab::new("fwd-paths");
    lab.uplink_v6();
    let mut daemon = start(&lab);
    let web = guest(&lab, "10.77.0.7", "fd00:77::7");
    let client = guest(&lab, "10.77.0.8", "fd00:77::8");
    let _echo = echo(&web, "web", 80);
    let _echo_udp = echo(&web, "web-udp", 7000);

    for args in [
        &["--proto", "tcp", "--port", "8080", "--to", "10.77.0.7:80"][..],
        &["--proto", "udp", "--port", "5000", "--to", "10.77.0.7:7000"],
        &[
            "--proto",
            "tcp",
            "--port",
            "8443",
            "--listen",
            HOST6,
            "--to",
            "[fd00:77::7]:80",
        ],
        &[
            "--proto",
            "udp",
            "--port",
            "5001",
            "--to",
            "[fd00:77::7]:7000",
        ],
    ] {
        let mut cmd = vec!["forward-add", "fwd"];
        cmd.extend_from_slice(args);
        daemon.cli_ok(&cmd);
    }
    let up = lab.upstream();
    let host = lab.host();
    let all_paths_work = |when: &str| {
        // From outside: the guest sees the real client.
        assert_eq!(
            ask(up, "tcp", HOST_UPLINK_ADDR, 8080),
            format!("web {UPSTREAM_ADDR}"),
            "{when}"
        );
        assert_eq!(
            ask(up, "udp", HOST_UPLINK_ADDR, 5000),
            format!("web-udp {UPSTREAM_ADDR}"),
            "{when}"
        );
        assert_eq!(ask(up, "tcp", HOST6, 8443), format!("web {UP6}"), "{when}");
        assert_eq!(
            ask(up, "udp", HOST6, 5001),
            format!("web-udp {UP6}"),
            "{when}"
        );
        // From the host itself, to its own public address.
        assert_eq!(
            ask(host, "tcp", HOST_UPLINK_ADDR, 8080),
            format!("web {HOST_UPLINK_ADDR}"),
            "{when}"
        );
        assert_eq!(
            ask(host, "udp", HOST_UPLINK_ADDR, 5000),
            format!("web-udp {HOST_UPLINK_ADDR}"),
            "{when}"
        );
        assert_eq!(
            ask(host, "tcp", HOST6, 8443),
            format!("web {HOST6}"),
            "{when}"
        );
        // Hairpin: another guest through the public address; the source is rewritten to the
        // gateway so the reply comes back through the host.
        assert_eq!(
            ask(client.ns(), "tcp", HOST_UPLINK_ADDR, 8080),
            "web 10.77.0.1",
            "{when}"
        );
        assert_eq!(
            ask(client.ns(), "udp", HOST_UPLINK_ADDR, 5000),
            "web-udp 10.77.0.1",
            "{when}"
        );
        assert_eq!(
            ask(client.ns(), "tcp", HOST6, 8443),
            "web fd00:77::1",
            "{when}"
        );
        assert_eq!(
            ask(client.ns(), "udp", HOST6, 5001),
            "web-udp fd00:77::1",
            "{when}"
        );
    };
    // IPv6 needs a moment before its first packet can pass: the bridge's and the guest's
    // addresses leave duplicate address detection and the host resolves the guest's by
    // neighbour discovery. Wait for that (not for the forward, which is in place), then
    // check every path.
    assert!(
        virtnet_testkit::eventually(Duration::from_secs(20), || !ask(up, "tcp", HOST6, 8443)
            .is_empty()),
        "the IPv6 forward never answered"
    );
    all_paths_work("after forward-add");
    // Not on the network's own address: guests do not get forwarded through their gateway.
    assert_eq!(ask(client.ns(), "tcp", "10.77.0.1", 8080), "");
    // A port not forwarded stays closed from outside (NAT as before).
    assert_eq!(ask(up, "tcp", HOST_UPLINK_ADDR, 8081), "");

    // The same listen address, protocol and port again, on any network: refused, naming the
    // forward that has it.
    let out = daemon.cli(&[
        "forward-add",
        "fwd",
        "--proto",
        "tcp",
        "--port",
        "8000-8100",
        "--listen",
        HOST_UPLINK_ADDR,
        "--to",
        "10.77.0.9",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("network 'fwd'")
            && err.contains("tcp 8080 on every host address -> 10.77.0.7:80"),
        "{err}"
    );

    // Listed, in the definition (under virtnet's namespace), and kept across a restart.
    let list: serde_json::Value =
        serde_json::from_str(&daemon.cli_ok(&["forward-list", "fwd", "--json"])).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(4), "{list}");
    let xml = daemon.cli_ok(&["net-dumpxml", "fwd"]);
    assert!(
        xml.contains("<virtnet:forward proto='tcp' port='8080' to='10.77.0.7' to-port='80'/>"),
        "{xml}"
    );
    daemon.restart();
    all_paths_work("after a restart of virtnetd");

    // forward-del removes exactly its element.
    let before = map_elements(host, "fwd4_any");
    assert_eq!(before.len(), 2, "{before:?}");
    daemon.cli_ok(&["forward-del", "fwd", "--proto", "tcp", "--port", "8080"]);
    let after = map_elements(host, "fwd4_any");
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].contains("5000"), "{after:?}");
    assert_eq!(map_elements(host, "fwd6").len(), 1);
    assert_eq!(map_elements(host, "fwd6_any").len(), 1);
    assert_eq!(ask(up, "tcp", HOST_UPLINK_ADDR, 8080), "");
    assert_eq!(
        ask(up, "udp", HOST_UPLINK_ADDR, 5000),
        format!("web-udp {UPSTREAM_ADDR}")
    );
    let out = daemon.cli(&["forward-del", "fwd", "--proto", "tcp", "--port", "8080"]);
    assert!(!out.status.success(), "a second delete finds nothing");

    // Nothing is left once the network is destroyed; the definition keeps the forwards.
    daemon.cli_ok(&["net-destroy", "fwd"]);
    let ruleset = host.run_ok(["nft", "list", "ruleset"]);
    assert!(
        !ruleset.contains("10.77.0.7") && !ruleset.contains("fd00:77::7"),
        "{ruleset}"
    );
    let xml = daemon.cli_ok(&["net-dumpxml", "fwd"]);
    assert!(xml.contains("port='5000'"), "{xml}");
}

#[test]
fn a_forward_to_a_name_follows_the_guests_new_lease() {
    let lab = Lab::new("fwd-lease");
    let daemon = start(&lab);
    let web = lab.guest_unattached();
    web.attach("vnf0");
    let dir = lab.tmp_dir().join("web");
    std::fs::create_dir_all(&dir).expect("script dir");
    let script = udhcpc_script(&dir);
    web.udhcpc(&script, "web");
    let first = web.ipv4_addrs();
    assert_eq!(first.len(), 1, "{first:?}");
    web.ns()
        .ip_ok(["route", "replace", "default", "via", "10.77.0.1"]);
    let _echo = echo(&web, "web", 80);
    daemon.cli_ok(&[
        "forward-add",
        "fwd",
        "--proto",
        "tcp",
        "--port",
        "8080",
        "--to",
        "web:80",
    ]);
    assert_eq!(
        ask(lab.upstream(), "tcp", HOST_UPLINK_ADDR, 8080),
        format!("web {UPSTREAM_ADDR}")
    );
    let listed = daemon.cli_ok(&["forward-list", "--json"]);
    assert!(listed.contains(&first[0].to_string()), "{listed}");

    // The guest comes back with another MAC, so another lease and address.
    web.ns().ip_ok(["link", "set", "eth0", "down"]);
    web.ns()
        .ip_ok(["link", "set", "eth0", "address", "52:54:00:77:00:99"]);
    web.ns().ip_ok(["link", "set", "eth0", "up"]);
    web.udhcpc(&script, "web");
    let second = web.ipv4_addrs();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(first, second, "a new MAC gets a new address");
    web.ns()
        .ip_ok(["route", "replace", "default", "via", "10.77.0.1"]);
    // The map element follows the lease event (the daemon acts on the event; wait for it).
    let want = second[0].to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let elements = map_elements(lab.host(), "fwd4_any");
        if elements.len() == 1 && elements[0].contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the forward still goes to {elements:?}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        ask(lab.upstream(), "tcp", HOST_UPLINK_ADDR, 8080),
        format!("web {UPSTREAM_ADDR}")
    );
}

#[test]
fn a_network_defined_with_thousands_of_forwards_starts_with_all_of_them() {
    // 4,000 elements are ~240 KB of nfnetlink: more than one batch may carry (the socket's
    // send buffer), which once left the maps empty.
    let lab = Lab::new("fwd-many");
    let daemon = Daemon::start_in(lab.host());
    let forwards: String = (0..4000)
        .map(|i| {
            format!(
                "<virtnet:forward proto='udp' port='{}' to='10.77.0.7'/>",
                20000 + i
            )
        })
        .collect();
    let xml = format!(
        "<network xmlns:virtnet='urn:virtnet:network:1'><name>many</name><forward mode='nat'/>\
         <bridge name='vnf1' stp='off'/><ip address='10.77.0.1' prefix='24'/>\
         <virtnet:forwards>{forwards}</virtnet:forwards></network>"
    );
    let name = daemon.define(&xml);
    daemon.cli_ok(&["net-start", &name]);
    assert_eq!(map_elements(lab.host(), "fwd4_any").len(), 4000);
    daemon.cli_ok(&["net-destroy", &name]);
    assert_eq!(map_elements(lab.host(), "fwd4_any").len(), 0);
}

/// `n` UDP forwards from port `first` on, to one guest, as `<virtnet:forward>` elements.
fn udp_forwards(first: u16, n: u16) -> String {
    (0..n)
        .map(|i| {
            format!(
                "<virtnet:forward proto='udp' port='{}' to='10.77.0.7'/>",
                first + i
            )
        })
        .collect()
}

fn forwards_network(name: &str, bridge: &str, subnet: &str, forwards: &str) -> String {
    format!(
        "<network xmlns:virtnet='urn:virtnet:network:1'><name>{name}</name><forward mode='nat'/>\
         <bridge name='{bridge}' stp='off'/><ip address='{subnet}.1' prefix='24'/>\
         <virtnet:forwards>{forwards}</virtnet:forwards></network>"
    )
}

#[test]
fn forward_changes_survive_a_crash_and_the_definition_stays_within_the_limits() {
    // A forward change is stored as a record of its own, replayed on the definition when the
    // store is read and folded into it at the network's next write: checked here across a
    // SIGKILL, a later change of the network and restarts, with the kernel's maps.
    let lab = Lab::new("fwd-ops");
    let host = lab.host();
    let mut daemon = Daemon::start_in(host);
    let many = daemon.define(&forwards_network(
        "many",
        "vnf2",
        "10.77.0",
        &udp_forwards(20000, 4000),
    ));
    daemon.cli_ok(&["net-start", &many]);
    for args in [
        &["--proto", "tcp", "--port", "80", "--to", "10.77.0.7"][..],
        &["--proto", "tcp", "--port", "81", "--to", "web"],
        &[
            "--proto",
            "udp",
            "--port",
            "5000-5009",
            "--to",
            "10.77.0.8:6000",
        ],
    ] {
        let mut cmd = vec!["forward-add", "many"];
        cmd.extend(args);
        daemon.cli_ok(&cmd);
    }
    // The forward to a name has no lease to go to yet: 4,000 + 1 + 10 elements.
    assert_eq!(map_elements(host, "fwd4_any").len(), 4011);
    // net-define checks a definition's forwards against every other network's, as
    // forward-add does, and defines nothing when one is taken.
    let clash = forwards_network(
        "clash",
        "vnf4",
        "10.79.0",
        "<virtnet:forward proto='udp' port='23990-24010' to='10.79.0.7'/>",
    );
    let file = daemon.dir().join("clash.xml");
    std::fs::write(&file, &clash).expect("write clash.xml");
    let out = daemon.cli(&["net-define", &file.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a taken forward was defined");
    assert!(
        err.contains("forward[0].port '23990-24010'")
            && err.contains("already forwarded by network 'many'"),
        "{err}"
    );
    assert!(daemon.cli(&["net-info", "clash"]).status.code() != Some(0));

    daemon.kill9();
    daemon.restart();
    let xml = daemon.cli_ok(&["net-dumpxml", "many"]);
    for wanted in [
        "<virtnet:forward proto='tcp' port='80' to='10.77.0.7'/>",
        "<virtnet:forward proto='tcp' port='81' to='web'/>",
        "<virtnet:forward proto='udp' port='5000-5009' to='10.77.0.8' to-port='6000'/>",
    ] {
        assert!(xml.contains(wanted), "{wanted} lost in the crash");
    }
    assert_eq!(map_elements(host, "fwd4_any").len(), 4011);

    daemon.cli_ok(&["forward-del", "many", "--proto", "udp", "--port", "5005"]);
    assert_eq!(map_elements(host, "fwd4_any").len(), 4001);
    // Another change of the network writes its record, with every forward in it.
    daemon.cli_ok(&["net-autostart", "many"]);
    daemon.restart();
    let xml = daemon.cli_ok(&["net-dumpxml", "many"]);
    assert!(
        xml.contains("port='80'") && xml.contains("port='81'"),
        "{xml}"
    );
    assert!(!xml.contains("port='5000-5009'"), "deleted forward is back");
    assert_eq!(xml.matches("<virtnet:forward ").count(), 4002);
    assert_eq!(map_elements(host, "fwd4_any").len(), 4001);

    // Near the limit of what net-define accepts (20,000 XML nodes in the stored form, where
    // each forward is two): forward-add is refused naming the limit and the element, and
    // changes nothing — also after a restart.
    let edge = daemon.define(&forwards_network(
        "edge",
        "vnf3",
        "10.78.0",
        &udp_forwards(30000, 9970),
    ));
    let mut accepted = 0;
    let refusal = loop {
        assert!(accepted < 40, "never refused");
        let port = (40000 + accepted).to_string();
        let out = daemon.cli(&[
            "forward-add",
            &edge,
            "--proto",
            "udp",
            "--port",
            &port,
            "--to",
            "10.78.0.9",
        ]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        accepted += 1;
    };
    assert!(
        refusal.contains("limit of 20000") && refusal.contains("forwards takes"),
        "{refusal}"
    );
    let count = |d: &Daemon| {
        d.cli_ok(&["net-dumpxml", "edge"])
            .matches("<virtnet:forward ")
            .count()
    };
    assert_eq!(count(&daemon), 9970 + accepted as usize);
    daemon.restart();
    assert_eq!(count(&daemon), 9970 + accepted as usize);
    // What net-dumpxml prints, net-define takes back.
    let dumped = daemon.cli_ok(&["net-dumpxml", "edge"]);
    daemon.cli_ok(&["net-undefine", "edge"]);
    daemon.define(&dumped);
    assert_eq!(count(&daemon), 9970 + accepted as usize);
}
