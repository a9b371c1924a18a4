//! Restarts of virtnetd, clean or by `kill -9` at any point of a start or destroy: the kernel
//! always converges on the store, nothing of virtnet's is left over, and running guests keep
//! their traffic flowing while the daemon is away.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use virtnet_testkit::{
    canonical_nft_table, Daemon, Lab, HOST_UPLINK_ADDR, UPSTREAM_ADDR, UPSTREAM_URL,
};

/// The destination of the network's static route: `10.250.<third octet>.0/24`.
fn route_dest(prefix3: &str) -> String {
    let third = prefix3.rsplit('.').next().unwrap_or("0");
    format!("10.250.{third}.0")
}

fn define(daemon: &Daemon, name: &str, bridge: &str, prefix3: &str, mode: &str) {
    let dest = route_dest(prefix3);
    let xml = format!(
        "<network><name>{name}</name><forward mode='{mode}'/><bridge name='{bridge}' stp='off'/>\
         <ip address='{prefix3}.1' prefix='24'/>\
         <route address='{dest}' prefix='24' gateway='{prefix3}.2'/></network>"
    );
    daemon.define(&xml);
}

/// The `inet virtnet` table in canonical form, or an empty string when there is none.
fn table(lab: &Lab) -> String {
    let out = lab.host().exec(["nft", "list", "table", "inet", "virtnet"]);
    canonical_nft_table(&String::from_utf8_lossy(&out.stdout))
}

/// `name → active` from `net-list --all`.
fn states(daemon: &Daemon) -> BTreeMap<String, bool> {
    daemon
        .cli_ok(&["net-list", "--all"])
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?.to_string(), cols.next()? == "active"))
        })
        .collect()
}

/// Everything virtnet should have in the kernel for `active` networks and nothing more:
/// bridges (with their address and route) exactly for the active ones, firewall entries
/// exactly for the active ones.
fn assert_converged(lab: &Lab, daemon: &Daemon, nets: &[(&str, &str, &str)]) -> usize {
    let states = states(daemon);
    let links = lab.host().ip_ok(["-br", "link"]);
    let rules = table(lab);
    let routes = lab.host().ip_ok(["route"]);
    for (name, bridge, prefix3) in nets {
        let active = states[*name];
        let has_link = links.lines().any(|l| l.starts_with(&format!("{bridge} ")));
        assert_eq!(
            has_link,
            active,
            "{name}: bridge {bridge} present={has_link} but active={active}\n{links}\n{}",
            daemon.log()
        );
        let has_rules = rules.contains(&format!("\"{bridge}\""));
        assert_eq!(
            has_rules, active,
            "{name}: firewall present={has_rules} but active={active}\n{rules}"
        );
        if active {
            let addrs = lab.host().ip_ok(["-br", "addr", "show", bridge]);
            assert!(
                addrs.contains(&format!("{prefix3}.1/24")),
                "{name}: {addrs}"
            );
            assert!(
                routes.contains(&format!(
                    "{}/24 via {prefix3}.2 dev {bridge} proto 86",
                    route_dest(prefix3)
                )),
                "{name}: static route missing\n{routes}"
            );
        }
    }
    let extra: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("virbr") && !nets.iter().any(|(_, b, _)| b == n))
        .collect();
    assert!(extra.is_empty(), "unexpected bridges {extra:?}");
    states.values().filter(|a| **a).count()
}

#[test]
fn kill9_at_any_point_of_starts_and_destroys_converges_on_restart() {
    let lab = Lab::new("kill9");
    let mut daemon = Daemon::start_in(lab.host());
    let nets = [
        ("n1", "virbr1", "10.71.1"),
        ("n2", "virbr2", "10.71.2"),
        ("n3", "virbr3", "10.71.3"),
    ];
    for (name, bridge, prefix3) in nets {
        define(&daemon, name, bridge, prefix3, "nat");
    }
    let mut active_seen = Vec::new();
    for round in 0..12u64 {
        // A client flipping the networks on and off as fast as it can...
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            let socket = daemon.socket();
            let host = lab.host().clone();
            std::thread::spawn(move || {
                let bin = virtnet_testkit::virtnet_bin();
                let sock = socket.to_string_lossy().into_owned();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let name = ["n1", "n2", "n3"][i % 3];
                    let verb = if (i / 3).is_multiple_of(2) {
                        "net-start"
                    } else {
                        "net-destroy"
                    };
                    let _ = host
                        .command([
                            bin.to_string_lossy().as_ref(),
                            "--connect",
                            &sock,
                            verb,
                            name,
                        ])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    i += 1;
                }
            })
        };
        // ...until the daemon is killed at some point of it.
        std::thread::sleep(Duration::from_millis(40 + (round * 37) % 160));
        daemon.kill9();
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("client thread");
        daemon.restart();
        active_seen.push(assert_converged(&lab, &daemon, &nets));
    }
    // The kills landed in different states: the test saw networks both up and down.
    assert!(
        active_seen.iter().any(|&n| n > 0) && active_seen.iter().any(|&n| n < nets.len()),
        "active networks after each kill: {active_seen:?}"
    );
}

#[test]
fn restarts_do_not_interrupt_guest_traffic() {
    let lab = Lab::new("restart");
    let mut daemon = Daemon::start_in(lab.host());
    define(&daemon, "default", "virbr0", "192.168.122", "nat");
    daemon.cli_ok(&["net-start", "default"]);
    let guest = lab.guest("virbr0", "192.168.122.10/24", Some("192.168.122.1"));
    assert_eq!(
        guest
            .http_get(UPSTREAM_URL)
            .expect("guest reaches upstream"),
        format!("you are {HOST_UPLINK_ADDR}\n")
    );
    let before = table(&lab);
    let bridges = daemon.cli_ok(&["iface-bridges"]);

    // 100 pings, 20 ms apart, through NAT, across a clean restart and a kill -9 + restart.
    let ping = guest.ns().spawn_with(
        [
            "busybox",
            "ping",
            "-c",
            "100",
            "-i",
            "0.02",
            "-W",
            "2",
            UPSTREAM_ADDR,
        ],
        |cmd| {
            cmd.stdout(Stdio::piped());
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    daemon.restart();
    daemon.kill9();
    daemon.restart();
    let output = ping.with_child(|c| {
        let mut out = String::new();
        if let Some(mut stdout) = c.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        let _ = c.wait();
        out
    });
    let answered: Vec<u32> = output
        .lines()
        .filter_map(|l| l.split("seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let missing: Vec<u32> = (0..100).filter(|s| !answered.contains(s)).collect();
    assert!(
        output.contains("100 packets transmitted, 100 packets received"),
        "guest traffic was interrupted by the restarts: no answer to seq {missing:?}\n{}",
        output.lines().rev().take(4).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(table(&lab), before, "the firewall changed across restarts");
    assert_eq!(
        daemon.cli_ok(&["iface-bridges"]),
        bridges,
        "the guest lost its port"
    );
    assert_eq!(
        guest
            .http_get(UPSTREAM_URL)
            .expect("guest still reaches upstream"),
        format!("you are {HOST_UPLINK_ADDR}\n")
    );
}

#[test]
fn leftovers_are_removed_and_a_wiped_table_is_rebuilt() {
    let lab = Lab::new("leftover");
    let mut daemon = Daemon::start_in(lab.host());
    let nets = [("keep", "virbr1", "10.72.1"), ("gone", "virbr2", "10.72.2")];
    for (name, bridge, prefix3) in nets {
        define(&daemon, name, bridge, prefix3, "route");
        daemon.cli_ok(&["net-start", name]);
    }
    daemon.cli_ok(&["net-destroy", "gone"]);
    daemon.kill9();
    // What a crash between the kernel and the store leaves: a bridge of virtnet's in its link
    // group (the alias is set by a second message), one with only the alias, and firewall
    // chains for a network the store does not know as active.
    lab.host().ip_ok([
        "link",
        "add",
        "virbr5",
        "group",
        &0x7674.to_string(),
        "type",
        "bridge",
    ]);
    lab.host()
        .ip_ok(["link", "add", "virbr6", "type", "bridge"]);
    lab.host()
        .ip_ok(["link", "set", "virbr6", "alias", "virtnet:old"]);
    lab.host().run_ok([
        "nft",
        "add element inet virtnet bridges { \"virbr5\" } ; add element inet virtnet cross { \"virbr5\" . \"virbr5\" }",
    ]);
    // A bridge parked by a destroy that the reaper did not get to delete.
    lab.host()
        .ip_ok(["link", "add", "vndel77", "type", "bridge"]);
    lab.host()
        .ip_ok(["link", "set", "vndel77", "alias", "virtnet:/parked"]);
    // Someone else's bridge is never touched.
    lab.host()
        .ip_ok(["link", "add", "br-admin", "type", "bridge"]);
    daemon.restart();
    let links = lab.host().ip_ok(["-br", "link"]);
    assert!(
        !links.contains("virbr5") && !links.contains("virbr6") && !links.contains("vndel77"),
        "{links}"
    );
    assert!(links.contains("br-admin"), "{links}");
    assert!(!table(&lab).contains("virbr5"));
    assert_converged(
        &lab,
        &daemon,
        &[("keep", "virbr1", "10.72.1"), ("gone", "virbr2", "10.72.2")],
    );

    // `nft flush ruleset` (an nftables service restart) wipes virtnet's table: the next start
    // installs the whole table again, with the networks already running.
    lab.host().run_ok(["nft", "flush", "ruleset"]);
    daemon.cli_ok(&["net-start", "gone"]);
    assert_converged(
        &lab,
        &daemon,
        &[("keep", "virbr1", "10.72.1"), ("gone", "virbr2", "10.72.2")],
    );
}

#[test]
fn autostart_networks_start_with_the_daemon() {
    let lab = Lab::new("autostart");
    let mut daemon = Daemon::start_in(lab.host());
    define(&daemon, "auto", "virbr1", "10.73.1", "nat");
    define(&daemon, "manual", "virbr2", "10.73.2", "nat");
    daemon.cli_ok(&["net-autostart", "auto"]);
    daemon.restart();
    let s = states(&daemon);
    assert!(s["auto"] && !s["manual"], "{s:?}");
    assert_converged(
        &lab,
        &daemon,
        &[
            ("auto", "virbr1", "10.73.1"),
            ("manual", "virbr2", "10.73.2"),
        ],
    );
}
