//! `virtnet net-update`: argument handling as virsh does it (checked before anything is sent),
//! and the update against a real `virtnetd`.

mod common;

use common::{example, offline, Daemon, Run};

const HOST: &str = "<host mac='52:54:00:00:00:10' name='vm1' ip='192.168.122.10'/>";

/// `virtnet net-update default add ip-dhcp-host HOST EXTRA…`, offline.
fn offline_add_host(extra: &[&str]) -> Run {
    let mut args = vec!["net-update", "default", "add", "ip-dhcp-host", HOST];
    args.extend_from_slice(extra);
    offline(&args)
}

#[test]
fn net_update_refuses_bad_arguments_before_sending() {
    offline(&["net-update", "default", "append", "ip-dhcp-host", HOST]).fails(
        "error: unrecognized command name 'append' (expected add, add-first, add-last, delete \
         or modify)\n",
        "\n",
    );
    offline(&["net-update", "default", "add", "dhcp-host", HOST]).fails(
        "error: unrecognized section name 'dhcp-host' (expected one of bridge, domain, ip, \
         ip-dhcp-host, ip-dhcp-range, forward, forward-interface, forward-pf, portgroup, \
         dns-host, dns-txt, dns-srv)\n",
        "\n",
    );
    offline_add_host(&["--current", "--config"]).fails(
        "error: Options --current and --config are mutually exclusive\n",
        "\n",
    );
    offline(&[
        "net-update",
        "default",
        "add",
        "ip-dhcp-host",
        "/nonexistent/host.xml",
    ])
    .fails(
        "error: Failed to open file '/nonexistent/host.xml': No such file or directory\n",
        "\n",
    );
    // Missing arguments and a malformed index are clap's errors: exit 1, usage on stderr.
    let r = offline(&["net-update", "default", "add", "ip-dhcp-host"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("<XML>"), "{}", r.stderr);
    let r = offline_add_host(&["--parent-index", "x"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--parent-index"), "{}", r.stderr);
    // Valid arguments (a negative index is libvirt's "automatic") get as far as connecting.
    let r = offline_add_host(&["--parent-index", "-1", "--live", "--config"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("failed to connect to the daemon"),
        "{}",
        r.stderr
    );
}

/// Needs the daemon's `POST /v1/networks/{id}/update`.
#[test]
fn net_update_dhcp_host_on_daemon() {
    let d = Daemon::start();
    let path = example("default-nat.xml").display().to_string();
    d.run(&["net-define", &path])
        .ok(&format!("Network default defined from {path}\n\n"));

    // Inactive network, no flag: the persistent config (virsh's --current).
    d.run(&["net-update", "default", "add", "ip-dhcp-host", HOST])
        .ok("Updated network default persistent config\n\n");
    let xml = d.run(&["net-dumpxml", "default", "--inactive"]);
    assert!(
        xml.stdout
            .contains("<host mac='52:54:00:00:00:10' name='vm1' ip='192.168.122.10'/>"),
        "{}",
        xml.stdout
    );

    // The same host again: refused, with virsh's line and the field named.
    let r = d.run(&[
        "net-update",
        "default",
        "add-last",
        "ip-dhcp-host",
        "<host mac='52:54:00:00:00:10' ip='192.168.122.20'/>",
        "--config",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("error: Failed to update network default\nerror: ip-dhcp-host.mac"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("there is already a host with this mac"),
        "{}",
        r.stderr
    );

    // From a file, deleting by mac alone.
    let file = d.file("host.xml", "<host mac='52:54:00:00:00:10'/>\n");
    d.run(&[
        "net-update",
        "default",
        "delete",
        "ip-dhcp-host",
        &file.display().to_string(),
        "--config",
    ])
    .ok("Updated network default persistent config\n\n");
    let xml = d.run(&["net-dumpxml", "default", "--inactive"]);
    assert!(!xml.stdout.contains("52:54:00:00:00:10"), "{}", xml.stdout);

    // An unknown network fails as virsh's lookup does.
    let r = d.run(&["net-update", "nosuch", "add", "ip-dhcp-host", HOST]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("error: failed to get network 'nosuch'\n"),
        "{}",
        r.stderr
    );
}
