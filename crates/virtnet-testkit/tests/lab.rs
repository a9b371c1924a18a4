//! The harness itself: namespaces come and go (also on panic), labs do not collide, the
//! topology carries traffic before virtnetd exists, and a daemon runs in a namespace.
//! Needs root, iproute2, python3 and busybox.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use virtnet_testkit::{network_xml, Daemon, Lab, Netns, HOST_UPLINK_ADDR, UPSTREAM_URL};

/// Names listed by `ip netns list` (each line is `name` or `name (id: N)`).
fn netns_list() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn netns_is_created_with_lo_up_and_removed_on_drop() {
    let ns = Netns::new("basic");
    let name = ns.name().to_string();
    assert!(
        name.starts_with(&format!("vnt-{}-", std::process::id())),
        "{name}"
    );
    assert!(name.ends_with("-basic"), "{name}");
    assert!(netns_list().contains(&name));
    let lo = ns.ip_ok(["-br", "link", "show", "lo"]);
    assert!(lo.contains("UNKNOWN") || lo.contains("UP"), "{lo}");
    assert!(ns.ping("127.0.0.1"), "loopback ping inside {name}");
    // A fresh namespace has only lo.
    let links = ns.run_ok(["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    drop(ns);
    assert!(!netns_list().contains(&name));
}

#[test]
fn processes_started_in_a_netns_are_killed_with_it() {
    let ns = Netns::new("procs");
    let sleeper = ns.spawn(["sleep", "1000"]);
    let pid = sleeper.pid();
    assert!(alive(pid));
    // A clone keeps the namespace (and the process) alive.
    let other = ns.clone();
    drop(ns);
    assert!(alive(pid));
    assert!(netns_list().contains(other.name()));
    let name = other.name().to_string();
    drop(other);
    assert!(!alive(pid), "the sleeper {pid} survived its namespace");
    assert!(sleeper.try_wait().is_some());
    assert!(!netns_list().contains(&name));
}

#[test]
fn exec_run_ok_and_ip_run_inside_the_namespace() {
    let ns = Netns::new("exec");
    ns.ip_ok(["link", "add", "dummy7", "type", "bridge"]);
    assert!(ns
        .run_ok(["ip", "link", "show", "dummy7"])
        .contains("dummy7"));
    assert!(ns.exec(["ip", "link", "show", "dummy7"]).status.success());
    assert!(!ns.ip(["link", "show", "nosuchlink"]).status.success());
    let failed = catch_unwind(AssertUnwindSafe(|| ns.run_ok(["false"])));
    assert!(failed.is_err(), "run_ok must panic on failure");
    // Root is untouched.
    let root = Command::new("ip")
        .args(["link", "show", "dummy7"])
        .output()
        .unwrap();
    assert!(
        !root.status.success(),
        "dummy7 leaked into the root namespace"
    );
}

#[test]
fn a_panicking_test_still_removes_its_namespaces() {
    let names = Mutex::new(Vec::new());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("panicking");
        let guest = lab.guest_unattached();
        names.lock().unwrap().extend([
            lab.host().name().to_string(),
            lab.upstream().name().to_string(),
            guest.ns().name().to_string(),
        ]);
        let server = lab.http_server().pid();
        names.lock().unwrap().push(server.to_string());
        panic!("deliberate failure inside a test");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 4);
    let listed = netns_list();
    for name in &names[..3] {
        assert!(!listed.contains(name), "{name} left behind after a panic");
    }
    let server: u32 = names[3].parse().unwrap();
    assert!(!alive(server), "the HTTP server survived the panic");
}

#[test]
fn sweep_stale_removes_namespaces_of_dead_processes_only() {
    // A PID that is certainly dead: a child we reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("vnt-{dead}-0-stale");
    let ours = Netns::new("keep");
    let status = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(status.success());
    let stale_dir = std::env::temp_dir().join(format!("vnt-lab-{dead}-stale-abc123"));
    std::fs::create_dir_all(stale_dir.join("sub")).unwrap();
    Netns::sweep_stale();
    assert!(
        !stale_dir.exists(),
        "sweep_stale left {}",
        stale_dir.display()
    );
    let listed = netns_list();
    // Deleting our own test's namespace by hand if the sweep missed it keeps the host clean.
    if listed.contains(&stale) {
        let _ = Command::new("ip").args(["netns", "del", &stale]).status();
        panic!("sweep_stale left {stale}");
    }
    assert!(
        listed.contains(ours.name()),
        "sweep_stale removed a live namespace"
    );
}

#[test]
fn two_labs_in_parallel_do_not_collide() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Lab::new("parallel_a"));
        let b = s.spawn(|| Lab::new("parallel_b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let names: BTreeSet<&str> = [a.host(), a.upstream(), b.host(), b.upstream()]
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(names.len(), 4);
    for lab in [&a, &b] {
        assert_eq!(
            lab.host().http_get(UPSTREAM_URL).unwrap(),
            format!("you are {HOST_UPLINK_ADDR}\n")
        );
    }
}

#[test]
fn upstream_http_answers_the_host_with_its_uplink_address() {
    let lab = Lab::new("host_to_upstream");
    assert_eq!(
        lab.host().http_get(UPSTREAM_URL).unwrap(),
        "you are 203.0.113.2\n"
    );
    assert!(lab.host().ping("203.0.113.1"));
    // Nothing of the lab is visible from the root namespace.
    let root = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&root.stdout).contains("203.0.113."));
}

#[test]
fn guest_on_a_plain_bridge_reaches_upstream_only_with_a_route_back() {
    let lab = Lab::new("plain_bridge");
    let host = lab.host();
    host.ip_ok(["link", "add", "br-t", "type", "bridge"]);
    host.ip_ok(["addr", "add", "10.9.0.1/24", "dev", "br-t"]);
    host.ip_ok(["link", "set", "br-t", "up"]);
    host.sysctl("net.ipv4.ip_forward", "1");

    let guest = lab.guest("br-t", "10.9.0.2/24", Some("10.9.0.1"));
    assert_eq!(guest.addr(), Some("10.9.0.2"));
    assert!(guest.host_if().len() <= 15);
    assert_eq!(
        guest.ipv4_addrs(),
        vec!["10.9.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    let master = host.ip_ok(["-o", "link", "show", guest.host_if()]);
    assert!(master.contains("master br-t"), "{master}");
    assert!(guest.ping("10.9.0.1"), "guest cannot ping its gateway");

    // No NAT and no route back: requests leave, answers cannot return.
    assert!(guest.http_get(UPSTREAM_URL).is_err());

    lab.upstream_route_to("10.9.0.0/24");
    assert_eq!(guest.http_get(UPSTREAM_URL).unwrap(), "you are 10.9.0.2\n");
    assert!(guest.tcp_connect("203.0.113.1", 80));
    assert!(guest.ping("203.0.113.1"));

    // Inbound from upstream: a listening port opens (routed, no firewall), a closed one not.
    let _listener = guest.listen(8080);
    assert!(lab.upstream_connect("10.9.0.2", 8080));
    assert!(!lab.upstream_connect("10.9.0.2", 8081));

    // The guest's veth goes with the guest.
    let host_if = guest.host_if().to_string();
    drop(guest);
    assert!(!host.ip(["link", "show", &host_if]).status.success());
}

#[test]
fn guest_attach_fails_loudly_without_the_bridge() {
    let lab = Lab::new("no_bridge");
    let result = catch_unwind(AssertUnwindSafe(|| {
        lab.guest("nosuchbr", "10.9.1.2/24", None)
    }));
    assert!(result.is_err());
}

#[test]
fn daemon_starts_serves_the_cli_and_survives_kill9_and_restart() {
    let ns = Netns::new("daemon");
    let mut daemon = Daemon::start_in(&ns);
    assert!(daemon.socket().ends_with("virtnet.sock"));
    let pid = daemon.pid().expect("running");
    // It runs inside the namespace.
    let own = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(own, mine, "virtnetd runs in the root namespace");

    let list = daemon.cli_ok(&["net-list", "--all"]);
    assert!(!list.contains("lab1"), "{list}");
    let xml = daemon.dir().join("lab1.xml");
    std::fs::write(&xml, network_xml("lab1", None, Some("vntbr1"))).unwrap();
    daemon.cli_ok(&["net-define", xml.to_str().unwrap()]);
    assert!(daemon.cli_ok(&["net-list", "--all"]).contains("lab1"));
    assert!(!daemon.cli(&["net-info", "nosuchnet"]).status.success());

    daemon.kill9();
    assert!(daemon.pid().is_none());
    assert!(!alive(pid));
    daemon.restart();
    assert!(daemon.cli_ok(&["net-list", "--all"]).contains("lab1"));

    let pid = daemon.pid().unwrap();
    daemon.restart();
    assert!(!alive(pid));
    assert!(daemon.cli_ok(&["net-list", "--all"]).contains("lab1"));

    let status = daemon.stop();
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(daemon.pid().is_none());
}

#[test]
fn daemon_dropped_while_running_is_terminated() {
    let ns = Netns::new("dmndrop");
    let daemon = Daemon::start_in(&ns);
    let pid = daemon.pid().unwrap();
    let name = ns.name().to_string();
    drop(ns);
    // The daemon's handle keeps its namespace.
    assert!(netns_list().contains(&name));
    drop(daemon);
    assert!(!alive(pid));
    assert!(!netns_list().contains(&name));
}
