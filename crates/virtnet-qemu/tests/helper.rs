//! `virtnet-bridge-helper` driven exactly as QEMU drives it (a socket pair, `--use-vnet
//! --fd=N --br=BRIDGE`, one descriptor back), against a virtnetd in a test namespace. Needs
//! root; everything happens in the lab's namespaces.

mod common;

use std::os::fd::AsRawFd;

use common::*;
use virtnet_model::InterfaceSource;
use virtnet_qemu::tun::{attached, IFF_NO_PI, IFF_PERSIST, IFF_TAP, IFF_VNET_HDR};

fn acl_file(lab: &virtnet_testkit::Lab, text: &str) -> String {
    let p = lab.tmp_dir().join("bridge.conf");
    std::fs::write(&p, text).expect("write the ACL");
    p.to_string_lossy().into_owned()
}

#[test]
fn helper_hands_qemu_a_tap_on_the_networks_bridge_and_cleans_up_after_it() {
    let (lab, daemon) = lab_with_default("helper_ok");
    let acl = acl_file(&lab, "# test ACL\nallow virbr0\n");
    let socket = daemon.socket().to_string_lossy().into_owned();
    let env = [
        ("VIRTNET_SOCKET", socket.as_str()),
        ("VIRTNET_BRIDGE_CONF", acl.as_str()),
        ("VIRTNET_DOMAIN", "vm-helper"),
        ("VIRTNET_MAC", "52:54:00:00:00:11"),
    ];
    let run = run_helper(lab.host(), &[HELPER.to_string()], "virbr0", &env);
    assert!(
        run.output.status.success(),
        "helper failed: {}",
        run.stderr()
    );
    let fd = run.fd.expect("the helper sent a descriptor");

    // The descriptor is attached to a tap, with QEMU's flags, and no longer persistent.
    let (name, flags) = attached(fd.as_raw_fd()).expect("TUNGETIFF");
    assert!(name.starts_with("vnet"), "{name}");
    assert_eq!(
        flags & (IFF_TAP | IFF_NO_PI),
        IFF_TAP | IFF_NO_PI,
        "{flags:#x}"
    );
    assert_ne!(
        flags & IFF_VNET_HDR,
        0,
        "--use-vnet asks for a vnet header: {flags:#x}"
    );
    assert_eq!(
        flags & IFF_PERSIST,
        0,
        "the tap must die with QEMU: {flags:#x}"
    );

    // virtnetd knows it as the guest's port on the network, owned by the caller (root here).
    let client = client(&daemon);
    let ports = client.ports(Some("vm-helper")).expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    let port = &ports[0];
    assert_eq!(port.name, name);
    assert_eq!(port.bridge, "virbr0");
    assert_eq!(port.source, InterfaceSource::Network("default".into()));
    assert_eq!(port.mac, "52:54:00:00:00:11");
    assert_eq!(port.tap_mac, "fe:54:00:00:00:11");
    assert_eq!((port.owner_uid, port.owner_gid), (Some(0), None));
    assert!(port.vnet_hdr);
    let link = link_details(lab.host(), &name);
    assert!(link.contains("master virbr0"), "{link}");
    assert!(link.contains("tun type tap"), "{link}");
    assert!(link.contains("state UP") || link.contains(",UP"), "{link}");

    // QEMU exits: the tap goes, and virtnetd's sweeper forgets the port.
    drop(fd);
    assert!(
        wait_link_gone(lab.host(), &name),
        "{name} survived its descriptor"
    );
    let again = run_helper(lab.host(), &[HELPER.to_string()], "virbr0", &env);
    assert!(
        again.output.status.success(),
        "helper failed: {}",
        again.stderr()
    );
    let fd2 = again.fd.expect("a descriptor");
    let (name2, _) = attached(fd2.as_raw_fd()).expect("TUNGETIFF");
    assert_ne!(name2, name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ports = client.ports(Some("vm-helper")).expect("ports");
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        if names == [name2.as_str()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stale port is not forgotten: {names:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn helper_refuses_bridges_the_acl_does_not_allow() {
    let (lab, daemon) = lab_with_default("helper_deny");
    let socket = daemon.socket().to_string_lossy().into_owned();
    let client = client(&daemon);
    for (acl_text, bridge) in [
        ("allow virbr0\n", "virbr1"),
        ("allow all\ndeny virbr0\n", "virbr0"),
        ("", "virbr0"),
    ] {
        let acl = acl_file(&lab, acl_text);
        let env = [
            ("VIRTNET_SOCKET", socket.as_str()),
            ("VIRTNET_BRIDGE_CONF", acl.as_str()),
        ];
        let run = run_helper(lab.host(), &[HELPER.to_string()], bridge, &env);
        assert!(
            !run.output.status.success(),
            "{acl_text:?} let {bridge} through"
        );
        assert!(run.fd.is_none());
        assert!(
            run.stderr().contains("access denied by acl file"),
            "{}",
            run.stderr()
        );
    }
    // No ACL file at all: refused too.
    let env = [
        ("VIRTNET_SOCKET", socket.as_str()),
        ("VIRTNET_BRIDGE_CONF", "/nonexistent/bridge.conf"),
    ];
    let run = run_helper(lab.host(), &[HELPER.to_string()], "virbr0", &env);
    assert!(!run.output.status.success());
    assert!(
        run.stderr().contains("failed to parse default acl file"),
        "{}",
        run.stderr()
    );
    // Bad arguments: QEMU's usage line.
    let out = lab.host().exec([HELPER, "--br=virbr0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: virtnet-bridge-helper"));
    assert!(client.ports(None).expect("ports").is_empty());
}

#[test]
fn setuid_helper_gives_an_unprivileged_caller_its_own_tap_and_reads_the_acl_as_the_caller() {
    let (lab, daemon) = lab_with_default("helper_suid");
    // The ACL only includes a file the caller cannot read: nothing is allowed for them.
    let suid = SetuidHelper::new(&daemon, "include /etc/virtnet/staff.conf\n");
    suid.etc_file("staff.conf", "allow virbr0\n", 0o600);
    let mut argv = suid.wrapper(Some((NOBODY, NOBODY)));
    argv.push(suid.helper_path());
    // The caller's environment must not redirect a setuid helper.
    let env = [
        ("VIRTNET_SOCKET", "/nonexistent/virtnet.sock"),
        ("VIRTNET_BRIDGE_CONF", "/nonexistent/allow-all.conf"),
        ("VIRTNET_DOMAIN", "vm-nobody"),
    ];
    let run = run_helper(lab.host(), &argv, "virbr0", &env);
    assert!(
        !run.output.status.success(),
        "unreadable include allowed virbr0"
    );
    assert!(
        run.stderr()
            .contains("access denied by acl file /etc/virtnet/bridge.conf"),
        "{}",
        run.stderr()
    );

    // Readable to the caller now: allowed, and the tap is theirs.
    suid.etc_file("staff.conf", "allow virbr0\n", 0o644);
    let run = run_helper(lab.host(), &argv, "virbr0", &env);
    assert!(
        run.output.status.success(),
        "setuid helper failed: {}",
        run.stderr()
    );
    let fd = run.fd.expect("a descriptor");
    let (name, _) = attached(fd.as_raw_fd()).expect("TUNGETIFF");
    let ports = client(&daemon).ports(Some("vm-nobody")).expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name, name);
    assert_eq!(
        (ports[0].owner_uid, ports[0].owner_gid),
        (Some(NOBODY), None)
    );
    let link = link_details(lab.host(), &name);
    assert!(link.contains("master virbr0"), "{link}");
    assert!(
        link.contains("user nobody") || link.contains(&format!("user {NOBODY}")),
        "{link}"
    );
    assert!(
        !link.contains("group nogroup") && !link.contains(&format!("group {NOBODY}")),
        "{link}"
    );
}
