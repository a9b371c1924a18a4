//! Nothing a test starts outlives it (issue 11, finding 9): after one `bash scripts/test.sh`,
//! two `dhclient` processes of a lab test were still running 25 minutes later. `dhclient -1`
//! forks into the background once it has a lease, out of the harness's sight; a namespace
//! now kills every process still in it (`ip netns pids`) before it is deleted, also when the
//! test panics. Needs root, iproute2, isc-dhcp-client and the workspace's binaries.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use virtnet_testkit::{netns_pids, pid_running, Daemon, Lab, Netns};

/// PIDs of running processes whose command line contains `needle` (a path unique to this
/// test, so only its own processes match).
fn running_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|&pid| pid_running(pid))
        .collect()
}

/// Starts `sleep <marker>` in the background of a shell that then exits: the sleep leaves
/// the harness's sight. Returns its pid.
fn background_sleep(ns: &Netns, marker: &str) -> u32 {
    let out = ns.run_ok([
        "sh",
        "-c",
        &format!("sleep {marker} >/dev/null 2>&1 </dev/null & echo $!"),
    ]);
    out.trim().parse().expect("the shell prints the pid")
}

#[test]
fn processes_that_left_the_harness_die_with_their_namespace() {
    let ns = Netns::new("strays");
    let pid = background_sleep(&ns, "86401");
    assert!(pid_running(pid), "the background sleep runs");
    assert!(netns_pids(ns.name()).contains(&pid));
    drop(ns);
    assert!(!pid_running(pid), "sleep {pid} outlived its namespace");
}

#[test]
fn processes_that_left_the_harness_die_with_their_namespace_when_the_test_panics() {
    let mut started = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::new("panics");
        started = Some(background_sleep(&ns, "86402"));
        panic!("the test fails with a process in the background");
    }));
    assert!(result.is_err());
    let pid = started.expect("the sleep started");
    assert!(!pid_running(pid), "sleep {pid} outlived its failed test");
}

/// The way it was found: a guest leases with `dhclient -1` from virtnetd in a lab, and
/// dhclient stays in the background after the test.
#[test]
fn a_daemonized_dhclient_of_a_lab_guest_ends_with_the_lab() {
    let lab = Lab::new("dhclient-cleanup");
    let dir: PathBuf = lab.tmp_dir().to_path_buf();
    let leases = dir.join("dhclient.leases");
    let needle = leases.to_string_lossy().into_owned();
    {
        let daemon = Daemon::start_in(lab.host());
        let xml = "<network><name>clean</name><bridge name='vntclean0'/>\
                   <ip address='10.95.0.1' prefix='24'><dhcp>\
                   <range start='10.95.0.10' end='10.95.0.20'/></dhcp></ip></network>";
        let name = daemon.define(xml);
        daemon.cli_ok(&["net-start", &name]);
        let guest = lab.guest_unattached();
        guest.attach("vntclean0");
        let script = dir.join("dhclient.sh");
        virtnet_testkit::dhcp::write_script(&script, "#!/bin/sh\nexit 0\n");
        let pid_file = dir.join("dhclient.pid");
        guest.ns().run_ok([
            "dhclient",
            "-1",
            "-lf",
            &needle,
            "-pf",
            &pid_file.to_string_lossy(),
            "-sf",
            &script.to_string_lossy(),
            "eth0",
        ]);
        // dhclient exited in the foreground and runs on in the background: the bug's setup.
        let background = running_with(&needle);
        assert_eq!(background.len(), 1, "dhclient runs in the background");
        assert!(netns_pids(guest.ns().name()).contains(&background[0]));
    }
    drop(lab);
    assert_eq!(
        running_with(&needle),
        Vec::<u32>::new(),
        "dhclient outlived the lab"
    );
}
