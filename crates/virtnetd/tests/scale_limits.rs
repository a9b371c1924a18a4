//! Issue 18, item 1: the daemon's descriptor limit, reached the way thousands of networks
//! reach it. The daemon's `RLIMIT_NOFILE` is lowered from outside (`prlimit --pid`, as an
//! administrator's `LimitNOFILE=` would) to a few descriptors above what it holds, and
//! networks are started until one does not fit. That start must fail with a message naming
//! the limit (it used to name whatever step hit it: `configure bridge: write sysctl
//! net/ipv6/conf/virbr3986/disable_ipv6: Too many open files`), leave nothing of the failed
//! network in the kernel, and leave the daemon and the running networks serving: a guest
//! still leases an address (busybox `udhcpc`) and resolves names (`dig`). With the limit
//! raised again the same network starts.

use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{Daemon, Lab, Netns};

/// The network the guest uses: DHCP and a local name (`printer`).
const SERVED: &str = "<network><name>served</name><forward mode='nat'/>\
    <bridge name='virbr0' stp='off'/>\
    <dns><host ip='192.168.122.7'><hostname>printer</hostname></host></dns>\
    <ip address='192.168.122.1' prefix='24'><dhcp>\
    <range start='192.168.122.100' end='192.168.122.199'/></dhcp></ip></network>";

/// Networks tried once the limit is lowered: more than the headroom can hold.
const EXTRA: usize = 8;

/// NAT network `fill<i>` with DHCP on bridge `vbfill<i>`.
fn fill_network(i: usize) -> String {
    format!(
        "<network><name>fill{i}</name><forward mode='nat'/><bridge name='vbfill{i}' stp='off'/>\
         <ip address='10.99.{i}.1' prefix='24'><dhcp>\
         <range start='10.99.{i}.2' end='10.99.{i}.254'/></dhcp></ip></network>"
    )
}

/// The daemon's open descriptors once the last request's connection is closed (the least of
/// a few looks).
fn open_fds(pid: u32) -> usize {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .expect("the daemon's descriptors")
                .count()
        })
        .min()
        .unwrap_or(0)
}

/// `prlimit --pid PID --nofile=SOFT:HARD` (util-linux).
fn set_nofile(pid: u32, soft: u64, hard: u64) {
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={soft}:{hard}"),
        ])
        .output()
        .expect("run prlimit");
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The daemon's (soft, hard) open-file limit, from /proc/PID/limits.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// `dig +short` from `ns` to `server`.
fn dig(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.exec([
        "dig",
        &format!("@{server}"),
        "+short",
        "+time=2",
        "+tries=2",
        name,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits (up to a minute) until `done`; the bridges of a failed start are removed off the
/// request path, so their absence is awaited, not assumed at once.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Nothing of network `fill<i>` is in the kernel (bridge, firewall elements) and it is not
/// active.
fn assert_rolled_back(lab: &Lab, daemon: &Daemon, i: usize) {
    let bridge = format!("vbfill{i}");
    wait_until("the failed network's bridge is gone", || {
        !lab.host().link_names().contains(&bridge)
    });
    let ruleset = lab.host().run_ok(["nft", "list", "ruleset"]);
    assert!(
        !ruleset.contains(&bridge) && !ruleset.contains(&format!("10.99.{i}.")),
        "the failed network left firewall elements:\n{ruleset}"
    );
    let list = daemon.cli_ok(&["net-list", "--all"]);
    let row = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("fill{i}")))
        .unwrap_or_else(|| panic!("fill{i} listed:\n{list}"));
    assert!(row.contains("inactive"), "{row}");
}

#[test]
fn a_start_past_the_descriptor_limit_names_it_and_leaves_the_rest_serving() {
    let lab = Lab::new("fdlimit");
    let daemon = Daemon::start_in(lab.host());
    let pid = daemon.pid().expect("daemon pid");
    let served = daemon.define(SERVED);
    daemon.cli_ok(&["net-start", &served]);
    for i in 0..EXTRA {
        daemon.define(&fill_network(i));
    }
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    let script = udhcpc_script(lab.tmp_dir());

    // Room for a few more networks (two descriptors each) and the request itself. Only
    // the soft limit moves: raising a hard limit again needs CAP_SYS_RESOURCE, which a test
    // host (a container) may not grant.
    let (soft, hard) = nofile(pid);
    let lowered = (open_fds(pid) + 8) as u64;
    set_nofile(pid, lowered, hard);
    let mut started = 0;
    let mut failure = None;
    for i in 0..EXTRA {
        let out = daemon.cli(&["net-start", &format!("fill{i}")]);
        if out.status.success() {
            started += 1;
        } else {
            failure = Some((i, String::from_utf8_lossy(&out.stderr).into_owned()));
            break;
        }
    }
    let (failed, message) = failure
        .unwrap_or_else(|| panic!("{EXTRA} more networks started under RLIMIT_NOFILE={lowered}"));
    eprintln!("started {started} more, then: {message}");
    assert!(started >= 1, "the headroom held no network: {message}");
    assert!(
        message.contains(&format!(
            "the daemon's open-file limit (RLIMIT_NOFILE={lowered}) is reached"
        )),
        "the error names the limit: {message}"
    );

    assert_rolled_back(&lab, &daemon, failed);

    // Less headroom: the start fails earlier (whichever step meets the limit first, a sysctl
    // file, a DNS socket), and still names the limit and rolls back.
    let tight = (open_fds(pid) + 1) as u64;
    set_nofile(pid, tight, hard);
    let out = daemon.cli(&["net-start", &format!("fill{failed}")]);
    let message = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("with one descriptor left: {message}");
    assert!(!out.status.success(), "started with one descriptor left");
    assert!(
        message.contains(&format!(
            "the daemon's open-file limit (RLIMIT_NOFILE={tight}) is reached"
        )),
        "the error names the limit: {message}"
    );
    assert_rolled_back(&lab, &daemon, failed);
    set_nofile(pid, lowered, hard);

    // Still at the limit: the running network serves DHCP and DNS, the API answers.
    guest.udhcpc(&script, "vm1");
    let addr = guest.ipv4_addrs();
    assert_eq!(addr.len(), 1, "one leased address: {addr:?}");
    assert_eq!(dig(guest.ns(), "192.168.122.1", "printer"), "192.168.122.7");
    assert_eq!(dig(guest.ns(), "192.168.122.1", "vm1"), addr[0].to_string());
    let leases = daemon.cli_ok(&["net-dhcp-leases", "served"]);
    assert!(leases.contains(&addr[0].to_string()), "{leases}");

    // With the limit back where it was, the same network starts.
    set_nofile(pid, soft, hard);
    daemon.cli_ok(&["net-start", &format!("fill{failed}")]);
    let bridge = format!("vbfill{failed}");
    assert!(lab.host().link_names().contains(&bridge), "{bridge} exists");
}
