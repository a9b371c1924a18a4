//! The fabric (issue 17, item 1): `fabric-set`, virtnet's own FRR daemons (zebra and bgpd
//! under `--frr-pathspace`) and `fabric-status`, between hosts that are network namespaces,
//! each with its own virtnetd, joined by an underlay veth (10.201.0.1/24 — 10.201.0.2/24).
//!
//! Needs root and Debian's `frr` (`scripts/setup.sh`). Every host namespace, daemon and FRR
//! runtime directory is removed by drop guards, also when a test fails: the daemons end
//! their FRR by PID at SIGTERM, and the namespace's guard kills whatever is left in it.

use std::time::{Duration, Instant};

use serde_json::Value;
use virtnet_testkit::{pid_running, Daemon, FrrPathspace, Netns};

/// Generous bound for FRR to bring a session up or carry a route (it takes seconds): a test
/// that waits longer has found a bug, not a slow machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// One host: its namespace, its virtnetd and its FRR pathspace.
struct Host {
    daemon: Daemon,
    ns: Netns,
    // After the daemon: ends the FRR daemons virtnetd leaves running, and their directory.
    pathspace: FrrPathspace,
    addr: &'static str,
}

impl Host {
    /// A host namespace with a virtnetd whose FRR runs under a pathspace unique to this test
    /// run, test and host.
    fn new(ns: Netns, test: &str, n: u32, addr: &'static str) -> Host {
        let pathspace = FrrPathspace::new("t", &format!("{test}-h{n}"));
        ns.ip_ok(["addr", "add", &format!("{addr}/24"), "dev", "under0"]);
        let daemon = Daemon::start_in_with(
            &ns,
            &["--frr-pathspace", pathspace.name(), "--no-libvirt-sockets"],
        );
        Host {
            daemon,
            ns,
            pathspace,
            addr,
        }
    }

    fn fabric_set(&self, peer: &str) {
        self.fabric_set_with(&["--peer", peer]);
    }

    /// `fabric-set` in AS 65000 with this host's address as router id, over `under0`.
    fn fabric_set_with(&self, more: &[&str]) {
        let mut args = vec![
            "fabric-set",
            "--asn",
            "65000",
            "--router-id",
            self.addr,
            "--underlay",
            "under0",
        ];
        args.extend_from_slice(more);
        self.daemon.cli_ok(&args);
    }

    /// FRR's own summary of one session (`vtysh … show bgp l2vpn evpn summary json`).
    fn frr_peer(&self, peer: &str) -> Value {
        let json = self.vtysh("show bgp l2vpn evpn summary json");
        let summary: Value = serde_json::from_str(&json).expect("vtysh prints JSON");
        summary["peers"][peer].clone()
    }

    /// Waits until zebra floods VNI 100 to `peer` (its flood entry on vx100).
    fn wait_flood_to(&self, peer: &str) {
        let flood = format!("00:00:00:00:00:00 dst {peer}");
        wait_until(
            &format!("{} floods VNI 100 to {peer}", self.addr),
            || {
                self.ns
                    .run_ok(["bridge", "fdb", "show", "dev", "vx100"])
                    .contains(&flood)
            },
            || self.ns.run_ok(["bridge", "fdb", "show", "dev", "vx100"]),
        );
    }

    fn status(&self) -> Value {
        let out = self.daemon.cli_ok(&["fabric-status", "--json"]);
        serde_json::from_str(&out).expect("fabric-status --json prints JSON")
    }

    fn established(&self, peer: &str) -> bool {
        self.status()["peers"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["address"] == peer && p["established"] == true)
        })
    }

    /// `vtysh -N <pathspace> -c <command>` (run in the host's namespace, as an operator would).
    fn vtysh(&self, command: &str) -> String {
        self.ns
            .run_ok(["vtysh", "-N", self.pathspace.name(), "-c", command])
    }

    /// The PID in an FRR daemon's pid file, if the file is there.
    fn frr_pid(&self, daemon: &str) -> Option<u32> {
        self.pathspace.pid(daemon)
    }

    /// What the overlay networks make (issue 17, item 2), by hand: a bridge with a VXLAN device
    /// of VNI 100 on the underlay address, without learning (EVPN fills the forwarding table).
    fn add_vni_100(&self) {
        let local = self.addr;
        for args in [
            vec!["link", "add", "br-test", "type", "bridge"],
            vec![
                "link",
                "add",
                "vx100",
                "type",
                "vxlan",
                "id",
                "100",
                "local",
                local,
                "dstport",
                "4789",
                "nolearning",
            ],
            vec!["link", "set", "vx100", "master", "br-test"],
            vec!["link", "set", "br-test", "up"],
            vec!["link", "set", "vx100", "up"],
        ] {
            self.ns.ip_ok(args);
        }
    }
}

/// Two hosts joined by the underlay veth.
fn two_hosts(test: &str) -> (Host, Host) {
    let (ns1, ns2) = (Netns::new("fab1"), Netns::new("fab2"));
    ns1.veth_to("under0", &ns2, "under0");
    let h1 = Host::new(ns1, test, 1, "10.201.0.1");
    let h2 = Host::new(ns2, test, 2, "10.201.0.2");
    (h1, h2)
}

/// Three hosts on one underlay switch (a bridge in a namespace of its own).
fn three_hosts(test: &str) -> (Netns, [Host; 3]) {
    let (switch, hosts) = hosts_on_a_switch(test, 3);
    let [a, b, c]: [Host; 3] = hosts.try_into().unwrap_or_else(|_| unreachable!());
    (switch, [a, b, c])
}

/// `n` hosts (10.201.0.1 …) on one underlay switch (a bridge in a namespace of its own).
fn hosts_on_a_switch(test: &str, n: u32) -> (Netns, Vec<Host>) {
    const ADDRS: [&str; 4] = ["10.201.0.1", "10.201.0.2", "10.201.0.3", "10.201.0.4"];
    let switch = Netns::new("fabsw");
    switch.ip_ok(["link", "add", "sw", "type", "bridge"]);
    switch.ip_ok(["link", "set", "sw", "up"]);
    let hosts = (1..=n)
        .map(|i| {
            let ns = Netns::new(&format!("fab{i}"));
            let port = format!("p{i}");
            switch.veth_to(&port, &ns, "under0");
            switch.ip_ok(["link", "set", &port, "master", "sw"]);
            Host::new(ns, test, i, ADDRS[i as usize - 1])
        })
        .collect();
    (switch, hosts)
}

/// One host with an underlay and no peer reachable.
fn one_host(test: &str) -> Host {
    let ns = Netns::new("fab");
    // No dummy driver on every kernel: a veth pair whose far end nobody answers on.
    ns.ip_ok([
        "link", "add", "under0", "type", "veth", "peer", "name", "under0p",
    ]);
    ns.ip_ok(["link", "set", "under0", "up"]);
    Host::new(ns, test, 1, "10.201.0.1")
}

/// Polls `check` until it holds or [`CONVERGE`] passes; panics with `what` and `context()`.
fn wait_until(what: &str, mut check: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + CONVERGE;
    while !check() {
        if Instant::now() > deadline {
            panic!("{what}: not within {CONVERGE:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_hosts_establish_ibgp_evpn_and_learn_each_others_vni() {
    let (h1, h2) = two_hosts("evpn");
    h1.fabric_set(h2.addr);
    h2.fabric_set(h1.addr);
    for (h, peer) in [(&h1, h2.addr), (&h2, h1.addr)] {
        wait_until(
            &format!("session {} -> {peer} Established", h.addr),
            || h.established(peer),
            || format!("{:#}\n{}", h.status(), h.daemon.log()),
        );
    }
    h1.add_vni_100();
    h2.add_vni_100();
    for (h, peer) in [(&h1, h2.addr), (&h2, h1.addr)] {
        // The other host's type-3 (inclusive multicast) route for VNI 100, in bgpd…
        let imet = format!("[3]:[0]:[32]:[{peer}]");
        wait_until(
            &format!("{} learns {imet}", h.addr),
            || {
                h.vtysh("show bgp l2vpn evpn route type multicast json")
                    .contains(&imet)
            },
            || h.vtysh("show bgp l2vpn evpn route"),
        );
        // …as a remote VTEP of the VNI in zebra, which fabric-status reports…
        wait_until(
            &format!("{} lists {peer} as a remote VTEP of VNI 100", h.addr),
            || {
                h.status()["vnis"].as_array().is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v["vni"] == 100
                            && v["vxlan_if"] == "vx100"
                            && v["remote_vteps"]
                                .as_array()
                                .is_some_and(|r| r.iter().any(|a| a == peer))
                    })
                })
            },
            || format!("{:#}", h.status()),
        );
        // …and as the flood entry zebra installed on the VXLAN device.
        h.wait_flood_to(peer);
    }
    let status = h1.status();
    assert_eq!(status["running"], true);
    assert_eq!(status["fabric"]["asn"], 65000);
    let peer = &status["peers"][0];
    assert!(
        peer["prefixes_received"].as_u64().unwrap_or(0) >= 1,
        "{status:#}"
    );
    // The human form shows the same session.
    let text = h1.daemon.cli_ok(&["fabric-status"]);
    assert!(
        text.contains("10.201.0.2") && text.contains("Established"),
        "{text}"
    );
    assert!(text.contains("100 on vx100: 10.201.0.2"), "{text}");
}

#[test]
fn bad_fabric_input_is_refused_naming_the_field_and_changes_nothing() {
    let h = one_host("bad");
    h.fabric_set("10.201.0.2");
    wait_until(
        "FRR runs",
        || h.status()["running"] == true && h.frr_pid("bgpd").is_some(),
        || h.daemon.log(),
    );
    let before = h.status()["fabric"].clone();
    let bgpd = h.frr_pid("bgpd");
    // (asn, router id, underlay, more flags) and the refusal expected.
    let cases: [(&str, &str, &str, &[&str], &str); 6] = [
        (
            "0",
            "10.201.0.1",
            "under0",
            &[],
            "asn: 0 is not an AS number",
        ),
        (
            "4294967296",
            "10.201.0.1",
            "under0",
            &[],
            "asn: 4294967296 is not an AS number",
        ),
        (
            "65000",
            "2001:db8::1",
            "under0",
            &[],
            "router_id: '2001:db8::1' is not an IPv4 address",
        ),
        (
            "65000",
            "10.201.0.1",
            "eth9",
            &[],
            "underlay: no interface 'eth9'",
        ),
        (
            "65000",
            "10.201.0.1",
            "under0",
            &["--peer", "10.201.0.2", "--peer", "10.201.0.300"],
            "peers[1]: '10.201.0.300' is not an IP address",
        ),
        (
            "65000",
            "10.201.0.1",
            "under0",
            &["--route-reflector", "nope"],
            "route_reflectors[0]: 'nope' is not an IP address",
        ),
    ];
    for (asn, router_id, underlay, more, message) in cases {
        let mut args = vec![
            "fabric-set",
            "--asn",
            asn,
            "--router-id",
            router_id,
            "--underlay",
            underlay,
        ];
        args.extend_from_slice(more);
        let out = h.daemon.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(
        h.status()["fabric"],
        before,
        "a refused request changed the record"
    );
    assert_eq!(h.frr_pid("bgpd"), bgpd, "a refused request restarted bgpd");
    assert!(bgpd.is_some_and(pid_running));
}

/// zebra's and bgpd's PIDs once both pid files name running processes (a daemon writes its
/// pid file shortly after it starts).
fn running_pids(h: &Host) -> [u32; 2] {
    let pids = || [h.frr_pid("zebra"), h.frr_pid("bgpd")];
    wait_until(
        "zebra and bgpd run",
        || pids().iter().all(|p| p.is_some_and(pid_running)),
        || h.daemon.log(),
    );
    pids().map(|p| p.unwrap_or(0))
}

/// FRR outlives virtnetd as the networks do: a clean stop and a `kill -9` both leave zebra
/// and bgpd running, and the next virtnetd adopts them (the same PIDs) because they run the
/// recorded fabric. Daemons running another configuration (edited while virtnetd was down)
/// are ended and replaced.
#[test]
fn the_fabric_persists_across_restarts_and_virtnetd_adopts_its_frr() {
    let mut h = one_host("restart");
    h.fabric_set("10.201.0.2");
    let first = running_pids(&h);
    assert_eq!(h.status()["running"], true);
    let recorded = h.status()["fabric"].clone();

    // A clean stop leaves both daemons (and their directory) for the next virtnetd.
    assert!(h.daemon.stop().success());
    for pid in first {
        assert!(pid_running(pid), "FRR daemon {pid} ended with virtnetd");
    }
    // The record survives; the next virtnetd adopts the running daemons.
    h.daemon.restart();
    let status = h.status();
    assert_eq!(status["fabric"], recorded);
    assert_eq!(status["running"], true, "{status:#}");
    assert_eq!(running_pids(&h), first, "{}", h.daemon.log());
    let conf = std::fs::read_to_string(h.pathspace.dir().join("bgpd.conf")).expect("bgpd.conf");
    assert!(
        conf.contains("neighbor 10.201.0.2 remote-as internal"),
        "{conf}"
    );

    // A virtnetd killed outright: the same.
    h.daemon.kill9();
    assert!(first.iter().all(|&p| pid_running(p)), "SIGKILL reached FRR");
    h.daemon.restart();
    assert_eq!(h.status()["running"], true);
    assert_eq!(running_pids(&h), first, "{}", h.daemon.log());

    // Daemons that do not run what virtnetd would write are not adopted: ended, replaced.
    h.daemon.kill9();
    let bgpd_conf = h.pathspace.dir().join("bgpd.conf");
    let edited = conf.replace("timers connect 5", "timers connect 6");
    std::fs::write(&bgpd_conf, edited).expect("edit bgpd.conf");
    h.daemon.restart();
    for pid in first {
        wait_until(
            &format!("FRR daemon {pid} with another configuration ended"),
            || !pid_running(pid),
            || h.daemon.log(),
        );
    }
    assert_eq!(h.status()["running"], true);
    let second = running_pids(&h);
    assert!(second
        .iter()
        .all(|&p| pid_running(p) && !first.contains(&p)));
    assert_eq!(
        std::fs::read_to_string(&bgpd_conf).expect("bgpd.conf"),
        conf,
        "the recorded fabric's configuration is back"
    );

    // A daemon that dies (a crash, an operator's kill) is started again by the watchdog.
    let bgpd = second[1];
    // SAFETY: kill(2) on the bgpd this test's virtnetd started (checked running above).
    unsafe { libc::kill(bgpd as i32, libc::SIGKILL) };
    wait_until(
        "the watchdog starts bgpd again",
        || {
            h.frr_pid("bgpd")
                .is_some_and(|p| p != bgpd && pid_running(p))
        },
        || h.daemon.log(),
    );
    assert_eq!(h.frr_pid("zebra"), Some(second[0]), "zebra was left alone");
    assert_eq!(h.status()["running"], true);
}

#[test]
fn clients_of_a_route_reflector_learn_each_other_and_a_new_client_keeps_the_others_up() {
    let (_switch, [r, a, b]) = three_hosts("rr");
    // R reflects; A and B peer with R only.
    r.fabric_set_with(&["--route-reflector", r.addr, "--peer", a.addr]);
    a.fabric_set_with(&["--route-reflector", r.addr]);
    b.fabric_set_with(&["--route-reflector", r.addr]);
    wait_until(
        "R -> A Established",
        || r.established(a.addr),
        || format!("{:#}", r.status()),
    );
    let bgpd = r.frr_pid("bgpd");
    assert!(bgpd.is_some_and(pid_running));
    // B joins: R's bgpd takes the new client in place, A's session stays up.
    r.fabric_set_with(&[
        "--route-reflector",
        r.addr,
        "--peer",
        a.addr,
        "--peer",
        b.addr,
    ]);
    assert_eq!(r.frr_pid("bgpd"), bgpd, "adding a client restarted bgpd");
    wait_until(
        "R -> B Established",
        || r.established(b.addr),
        || format!("{:#}", r.status()),
    );
    let session_a = r.frr_peer(a.addr);
    assert_eq!(session_a["state"], "Established", "{session_a:#}");
    assert_eq!(session_a["connectionsDropped"], 0, "{session_a:#}");
    assert_eq!(session_a["connectionsEstablished"], 1, "{session_a:#}");
    let conf = std::fs::read_to_string(r.pathspace.dir().join("bgpd.conf")).expect("bgpd.conf");
    assert!(
        conf.contains(&format!("  neighbor {} route-reflector-client", b.addr)),
        "{conf}"
    );
    // The clients, which have no session with each other, flood VNI 100 to each other.
    a.add_vni_100();
    b.add_vni_100();
    a.wait_flood_to(b.addr);
    b.wait_flood_to(a.addr);
    assert!(!a.established(b.addr) && a.status()["peers"].as_array().map_or(0, Vec::len) == 1);
}

/// Two route reflectors (issue 17, item 5: a restart of FRR loses no guest traffic on other
/// hosts). Each client peers with both; when one reflector's bgpd dies (the watchdog starts it
/// again), the clients still learn each other through the other: A's flood entry towards B,
/// read every 50 ms while R1's bgpd is down and comes back, never goes.
#[test]
fn with_two_reflectors_a_reflector_restart_keeps_its_clients_flooding_to_each_other() {
    let (_switch, hosts) = hosts_on_a_switch("rr2", 4);
    let [r1, r2, a, b] = &hosts[..] else {
        unreachable!()
    };
    let reflectors = ["--route-reflector", r1.addr, "--route-reflector", r2.addr];
    for rr in [r1, r2] {
        let mut args = reflectors.to_vec();
        args.extend(["--peer", a.addr, "--peer", b.addr]);
        rr.fabric_set_with(&args);
    }
    for client in [a, b] {
        client.fabric_set_with(&reflectors);
    }
    let conf = std::fs::read_to_string(r1.pathspace.dir().join("bgpd.conf")).expect("bgpd.conf");
    assert!(
        conf.contains(&format!("  neighbor {} route-reflector-client", a.addr)),
        "{conf}"
    );
    assert!(
        !conf.contains(&format!("neighbor {} route-reflector-client", r2.addr)),
        "{conf}"
    );
    a.add_vni_100();
    b.add_vni_100();
    a.wait_flood_to(b.addr);
    b.wait_flood_to(a.addr);
    for rr in [r1, r2] {
        wait_until(
            "A's sessions to both reflectors are up",
            || a.established(rr.addr),
            || format!("{:#}", a.status()),
        );
    }

    let bgpd = r1.frr_pid("bgpd").expect("R1's bgpd");
    // SAFETY: kill(2) on the bgpd of this test's reflector R1 (from its pid file).
    unsafe { libc::kill(bgpd as i32, libc::SIGKILL) };
    let flood = format!("00:00:00:00:00:00 dst {}", b.addr);
    let mut looks = 0;
    let deadline = Instant::now() + CONVERGE;
    // Until R1 is back (a new bgpd, A's session to it up again), A floods to B every time.
    while !(r1
        .frr_pid("bgpd")
        .is_some_and(|p| p != bgpd && pid_running(p))
        && a.established(r1.addr))
    {
        let fdb = a.ns.run_ok(["bridge", "fdb", "show", "dev", "vx100"]);
        assert!(
            fdb.contains(&flood),
            "A lost its flood entry to B while R1 restarted:\n{fdb}"
        );
        looks += 1;
        assert!(
            Instant::now() < deadline,
            "R1 did not come back: {:#}",
            r1.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        looks > 5,
        "R1 came back before anything could be seen ({looks} looks)"
    );
}
