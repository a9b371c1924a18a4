//! libvirt's own client against virtnetd's libvirt sockets: Debian 12's `virsh` (libvirt 9.0)
//! runs every `net-*` verb through `network+unix:///system?socket=<virtnetworkd-sock>`, and
//! what it changes is what virtnet's JSON API shows (one core behind both front ends).

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Output;

use virtnet_testkit::libvirtd::network_uri;
use virtnet_testkit::{virsh, virsh_with, Daemon, Lab, Netns};

const NET: &str = "<network>\n  <name>lvnet</name>\n  <forward mode='nat'/>\n  \
    <bridge name='lvbr0'/>\n  <ip address='192.168.160.1' netmask='255.255.255.0'>\n    \
    <dhcp>\n      <range start='192.168.160.100' end='192.168.160.199'/>\n    </dhcp>\n  \
    </ip>\n</network>\n";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// virsh's stdout; panics (with the daemon's log) when it fails.
fn ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = virsh(&daemon.libvirt_socket(), args);
    assert!(
        out.status.success(),
        "virsh {args:?} failed: {}\ndaemon log:\n{}",
        text(&out),
        daemon.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// virsh's stderr; panics when it succeeds.
fn fails(socket: &Path, options: &[&str], args: &[&str]) -> String {
    let out = virsh_with(socket, options, args);
    assert!(
        !out.status.success(),
        "virsh {args:?} succeeded: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_xml(daemon: &Daemon, name: &str, xml: &str) -> String {
    let path = daemon.dir().join(name);
    std::fs::write(&path, xml).expect("write xml");
    path.to_string_lossy().into_owned()
}

fn daemon(test: &str) -> Daemon {
    Daemon::start_in(&Netns::new(test))
}

#[test]
fn virsh_manages_a_network_the_json_api_sees() {
    let d = daemon("lvverbs");
    let file = write_xml(&d, "lvnet.xml", NET);
    assert_eq!(
        ok(&d, &["net-define", &file]),
        format!("Network lvnet defined from {file}\n\n")
    );
    // The JSON API's client sees it at once, and the other way round.
    assert!(d.cli_ok(&["net-list", "--all"]).contains("lvnet"));
    d.define(
        "<network><name>jsonnet</name><bridge name='lvbr1'/>\
         <ip address='192.168.161.1' prefix='24'/></network>",
    );
    let all = ok(&d, &["net-list", "--all"]);
    assert!(
        all.contains(" jsonnet   inactive   no          yes"),
        "{all}"
    );
    assert!(
        all.contains(" lvnet     inactive   no          yes"),
        "{all}"
    );

    assert_eq!(ok(&d, &["net-start", "lvnet"]), "Network lvnet started\n\n");
    assert!(d.cli_ok(&["net-list"]).contains("lvnet"));
    assert!(d.ns().link_names().contains(&"lvbr0".to_string()));
    let info = ok(&d, &["net-info", "lvnet"]);
    let uuid = ok(&d, &["net-uuid", "lvnet"]).trim().to_string();
    assert_eq!(
        info,
        format!(
            "Name:           lvnet\nUUID:           {uuid}\nActive:         yes\n\
             Persistent:     yes\nAutostart:      no\nBridge:         lvbr0\n\n"
        )
    );
    assert_eq!(ok(&d, &["net-name", &uuid]), "lvnet\n\n");
    let xml = ok(&d, &["net-dumpxml", "lvnet"]);
    assert!(xml.contains(&format!("<uuid>{uuid}</uuid>")), "{xml}");
    assert!(xml.contains("<range start='192.168.160.100' end='192.168.160.199'/>"));
    assert!(ok(&d, &["net-dumpxml", "--inactive", "lvnet"]).contains("<name>lvnet</name>"));

    assert_eq!(
        ok(&d, &["net-autostart", "lvnet"]),
        "Network lvnet marked as autostarted\n\n"
    );
    // Every filter of net-list (virConnectListAllNetworks' flags).
    let names = |flags: &[&str]| {
        let mut args = vec!["net-list", "--name"];
        args.extend_from_slice(flags);
        ok(&d, &args)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&[]), ["lvnet"]);
    assert_eq!(names(&["--all"]), ["jsonnet", "lvnet"]);
    assert_eq!(names(&["--inactive"]), ["jsonnet"]);
    assert_eq!(names(&["--all", "--autostart"]), ["lvnet"]);
    assert_eq!(names(&["--all", "--no-autostart"]), ["jsonnet"]);
    assert_eq!(names(&["--all", "--persistent"]), ["jsonnet", "lvnet"]);
    assert!(names(&["--all", "--transient"]).is_empty());
    assert_eq!(
        ok(&d, &["net-list", "--uuid"]).trim(),
        uuid,
        "net-list --uuid"
    );
    assert_eq!(
        ok(&d, &["net-autostart", "--disable", "lvnet"]),
        "Network lvnet unmarked as autostarted\n\n"
    );
    assert_eq!(names(&["--all", "--autostart"]), Vec::<String>::new());

    assert_eq!(
        ok(&d, &["net-destroy", "lvnet"]),
        "Network lvnet destroyed\n\n"
    );
    assert!(!d.ns().link_names().contains(&"lvbr0".to_string()));
    assert_eq!(
        ok(&d, &["net-undefine", "lvnet"]),
        "Network lvnet has been undefined\n\n"
    );
    assert!(!d.cli_ok(&["net-list", "--all"]).contains("lvnet"));

    // A transient network: net-create.
    let file = write_xml(&d, "lvnet.xml", NET);
    assert_eq!(
        ok(&d, &["net-create", &file]),
        format!("Network lvnet created from {file}\n\n")
    );
    assert_eq!(names(&["--transient"]), ["lvnet"]);
    assert_eq!(
        ok(&d, &["net-destroy", "lvnet"]),
        "Network lvnet destroyed\n\n"
    );
    assert_eq!(names(&["--all"]), ["jsonnet"]);
}

#[test]
fn virsh_prints_libvirts_errors() {
    let d = daemon("lverrors");
    let rw = d.libvirt_socket();
    assert_eq!(
        fails(&rw, &[], &["net-info", "nosuchnet"]),
        "error: failed to get network 'nosuchnet'\n\
         error: Network not found: no network with matching name 'nosuchnet'\n"
    );
    let bad = write_xml(&d, "bad.xml", "<network><name>x</name><bridge name='b'/>");
    let err = fails(&rw, &[], &["net-define", &bad]);
    assert!(
        err.starts_with(&format!(
            "error: Failed to define network from {bad}\nerror: XML error: "
        )),
        "{err}"
    );
    let file = write_xml(&d, "lvnet.xml", NET);
    ok(&d, &["net-define", &file]);
    ok(&d, &["net-start", "lvnet"]);
    assert_eq!(
        fails(&rw, &[], &["net-start", "lvnet"]),
        "error: Failed to start network lvnet\n\
         error: Requested operation is not valid: network is already active\n"
    );
    assert_eq!(
        fails(
            &rw,
            &[],
            &["net-update", "lvnet", "add", "bridge", "<bridge name='x'/>"]
        ),
        "error: Failed to update network lvnet\n\
         error: Operation not supported: can't update 'bridge' section of network 'lvnet'\n"
    );

    // The read-only socket reads, and refuses every change with libvirt's words, whether the
    // client opened it read-only (virsh -r) or not.
    let ro = d.libvirt_ro_socket();
    let listed = virsh_with(&ro, &["-r"], &["net-list", "--name"]);
    assert_eq!(text(&listed), "lvnet\n\n");
    for options in [&["-r"][..], &[][..]] {
        assert_eq!(
            fails(&ro, options, &["net-destroy", "lvnet"]),
            "error: Failed to destroy network lvnet\n\
             error: operation forbidden: read only access prevents virNetworkDestroy\n"
        );
        let err = fails(&ro, options, &["net-define", &file]);
        assert!(
            err.ends_with(
                "error: operation forbidden: read only access prevents virNetworkDefineXML\n"
            ),
            "{err}"
        );
    }
    assert!(
        ok(&d, &["net-list", "--name"]).contains("lvnet"),
        "nothing changed"
    );
}

#[test]
fn net_update_changes_sections_live_and_config() {
    let d = daemon("lvupdate");
    let file = write_xml(&d, "lvnet.xml", NET);
    ok(&d, &["net-define", &file]);
    ok(&d, &["net-start", "lvnet"]);
    let host = "<host mac='52:54:00:00:00:07' name='h7' ip='192.168.160.7'/>";
    assert_eq!(
        ok(
            &d,
            &[
                "net-update",
                "lvnet",
                "add",
                "ip-dhcp-host",
                host,
                "--live",
                "--config"
            ]
        ),
        "Updated network lvnet persistent config and live state\n"
    );
    assert!(ok(&d, &["net-dumpxml", "lvnet"]).contains(host));
    assert!(ok(&d, &["net-dumpxml", "--inactive", "lvnet"]).contains(host));
    // --config only: the running definition keeps the old entry.
    let dns = "<host ip='192.168.160.9'><hostname>printer</hostname></host>";
    assert_eq!(
        ok(
            &d,
            &[
                "net-update",
                "lvnet",
                "add-last",
                "dns-host",
                dns,
                "--config"
            ]
        ),
        "Updated network lvnet persistent config\n"
    );
    assert!(ok(&d, &["net-dumpxml", "--inactive", "lvnet"]).contains("printer"));
    assert!(!ok(&d, &["net-dumpxml", "lvnet"]).contains("printer"));
    assert_eq!(
        ok(&d, &["net-update", "lvnet", "delete", "ip-dhcp-host", host]),
        "Updated network lvnet live state\n"
    );
    assert!(!ok(&d, &["net-dumpxml", "lvnet"]).contains("h7"));
    // libvirt's rule: a range is added or deleted, never modified; nothing changes.
    let range = "<range start='192.168.160.100' end='192.168.160.150'/>";
    let err = fails(
        &d.libvirt_socket(),
        &[],
        &[
            "net-update",
            "lvnet",
            "modify",
            "ip-dhcp-range",
            range,
            "--config",
        ],
    );
    assert!(
        err.contains("dhcp ranges cannot be modified, only added or deleted"),
        "{err}"
    );
    assert!(ok(&d, &["net-dumpxml", "--inactive", "lvnet"]).contains("end='192.168.160.199'"));
}

#[test]
fn net_event_reports_lifecycle_as_libvirt_does() {
    let d = daemon("lvevents");
    let file = write_xml(&d, "lvnet.xml", NET);
    let events_file = d.dir().join("events.txt");
    let mut watcher = std::process::Command::new("virsh")
        .args(["-c", &network_uri(&d.libvirt_socket())])
        .args([
            "net-event",
            "--event",
            "lifecycle",
            "--loop",
            "--timeout",
            "15",
        ])
        .stdout(std::fs::File::create(&events_file).expect("events file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("virsh net-event");
    // Changes start once the watcher's callback is registered (the daemon logs it).
    let registered = "network event callback registered";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !d.log().contains(registered) {
        assert!(
            std::time::Instant::now() < deadline,
            "no registration:\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&d, &["net-define", &file]);
    ok(&d, &["net-start", "lvnet"]);
    ok(&d, &["net-destroy", "lvnet"]);
    ok(&d, &["net-undefine", "lvnet"]);
    ok(&d, &["net-create", &file]);
    ok(&d, &["net-destroy", "lvnet"]);
    // virsh --loop --timeout ends by itself.
    let status = watcher.wait().expect("virsh net-event");
    let events = std::fs::read_to_string(&events_file).expect("events");
    assert!(status.success(), "{events}");
    let lines: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("event '"))
        .collect();
    assert_eq!(
        lines,
        [
            "event 'lifecycle' for network lvnet: Defined",
            "event 'lifecycle' for network lvnet: Started",
            "event 'lifecycle' for network lvnet: Stopped",
            "event 'lifecycle' for network lvnet: Undefined",
            "event 'lifecycle' for network lvnet: Started",
            "event 'lifecycle' for network lvnet: Stopped",
        ],
        "{events}"
    );
    assert!(events.contains("events received: 6"), "{events}");
}

#[test]
fn net_dhcp_leases_shows_a_udhcpc_lease() {
    let lab = Lab::new("lvlease");
    let d = Daemon::start_in(lab.host());
    let file = write_xml(&d, "lvnet.xml", NET);
    ok(&d, &["net-define", &file]);
    ok(&d, &["net-start", "lvnet"]);
    let guest = lab.guest_unattached();
    guest.attach("lvbr0");
    let script = virtnet_testkit::dhcp::udhcpc_script(lab.tmp_dir());
    guest.udhcpc(&script, "vm1");
    let addr = guest.ipv4_addrs()[0].to_string();
    let mac = guest.mac();
    let table = ok(&d, &["net-dhcp-leases", "lvnet"]);
    let row = table
        .lines()
        .find(|l| l.contains(&mac))
        .unwrap_or_else(|| panic!("no lease of {mac}: {table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // Expiry date, time, MAC, protocol, address, host name, client id.
    assert_eq!(
        cols[2..6],
        [mac.as_str(), "ipv4", &format!("{addr}/24"), "vm1"],
        "{row}"
    );
    let by_mac = ok(&d, &["net-dhcp-leases", "lvnet", "--mac", &mac]);
    assert!(by_mac.contains(&addr), "{by_mac}");
    let other = ok(
        &d,
        &["net-dhcp-leases", "lvnet", "--mac", "52:54:00:99:99:99"],
    );
    assert!(!other.contains(&addr), "{other}");
}

#[test]
fn a_live_socket_is_refused_naming_its_owner_and_a_stale_one_replaced() {
    let first = daemon("lvown1");
    let dir = first.libvirt_run_dir();
    let ns = Netns::new("lvown2");
    let second = virtnet_testkit::virtnetd_bin();
    let tmp = tempfile::tempdir().expect("tmp");
    let out = ns.exec([
        second.to_string_lossy().as_ref(),
        "--state-dir",
        &tmp.path().join("state").to_string_lossy(),
        "--run-dir",
        &tmp.path().join("run").to_string_lossy(),
        "--libvirt-run-dir",
        &dir.to_string_lossy(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = first.pid().expect("first daemon runs");
    assert!(
        err.contains(&format!(
            "another process is already listening on {}: virtnetd (pid {pid})",
            first.libvirt_socket().display()
        )),
        "{err}"
    );
    assert!(
        ok(&first, &["net-list", "--all"]).contains("Name"),
        "first still serves"
    );

    // A socket file nobody listens on (a daemon killed without cleaning up) is replaced.
    let stale_dir = tmp.path().join("stale");
    std::fs::create_dir_all(&stale_dir).expect("dir");
    drop(UnixListener::bind(stale_dir.join("virtnetworkd-sock")).expect("bind"));
    let third = Daemon::start_in_with(
        &Netns::new("lvown3"),
        &["--libvirt-run-dir", &stale_dir.to_string_lossy()],
    );
    let out = virsh(
        &stale_dir.join("virtnetworkd-sock"),
        &["net-list", "--name"],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), third.log());
}

#[test]
fn no_libvirt_sockets_serves_none() {
    let d = Daemon::start_in_with(&Netns::new("lvnone"), &["--no-libvirt-sockets"]);
    assert!(!d.libvirt_socket().exists());
    assert!(!d.libvirt_ro_socket().exists());
}

/// `virsh` run as `uid` with supplementary `groups` (`setpriv`), options then the command.
fn virsh_as(uid: u32, groups: &[u32], socket: &Path, options: &[&str], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("virsh")
        .args(options)
        .arg("-c")
        .arg(network_uri(socket))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("setpriv virsh")
}

#[test]
fn the_read_write_socket_serves_root_and_the_socket_group_and_refuses_others() {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65534;
    const GROUP: u32 = 4242;
    let d = Daemon::start_in_with(
        &Netns::new("lvaccess"),
        &["--libvirt-socket-group", &GROUP.to_string()],
    );
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = write_xml(&d, "lvnet.xml", NET);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (rw, ro) = (d.libvirt_socket(), d.libvirt_ro_socket());
    let meta = std::fs::metadata(&rw).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), GROUP);

    // Anyone reads through the read-only socket.
    let out = virsh_as(NOBODY, &[], &ro, &["-r"], &["net-list", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    // A member of the group changes things through the read-write socket.
    let out = virsh_as(NOBODY, &[GROUP], &rw, &[], &["net-define", &file]);
    assert!(out.status.success(), "{}", text(&out));
    // Anyone else is refused by the peer's credentials, even with the socket's mode opened.
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = virsh_as(NOBODY, &[], &rw, &[], &["net-undefine", "lvnet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "authentication failed: access denied: uid {NOBODY} may not use virtnetworkd-sock"
        )),
        "{err}"
    );
    assert!(
        ok(&d, &["net-list", "--name", "--all"]).contains("lvnet"),
        "nothing changed"
    );
    // Every change asked for is in the audit log with who asked and how it ended.
    let log = d.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("virtnetd::audit: change"))
        .collect();
    let logged = |what: &str| {
        audit
            .iter()
            .any(|l| l.contains(&format!("uid={NOBODY} ")) && l.contains(what))
    };
    assert!(
        logged("verb=libvirt virNetworkDefineXML object=\"lvnet\" error=0"),
        "{audit:?}"
    );
    // The stranger was refused when it connected (AUTH_LIST), before it could ask anything.
    assert!(
        log.lines().any(|l| l.contains("virtnetd::audit")
            && l.contains(&format!("uid={NOBODY} "))
            && l.contains("libvirt request refused")
            && l.contains("procedure=\"AUTH_LIST\"")),
        "{log}"
    );
}
