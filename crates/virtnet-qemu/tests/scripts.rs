//! `virtnet-ifup` / `virtnet-ifdown` run as QEMU runs them (the tap's name as `$1`, QEMU's
//! environment), on a tap made the way QEMU makes it. Needs root; namespaces only.

mod common;

use common::*;
use virtnet_model::InterfaceSource;

#[test]
fn ifup_adopts_the_tap_and_ifdown_only_detaches_it() {
    let (lab, daemon) = lab_with_default("scripts");
    let host = lab.host();
    host.ip_ok(["tuntap", "add", "qtap0", "mode", "tap"]);
    let socket = daemon.socket().to_string_lossy().into_owned();
    let script = |bin: &str| {
        let mut cmd = host.command([bin, "qtap0"]);
        cmd.env("VIRTNET_SOCKET", &socket)
            .env("VIRTNET_NETWORK", "default")
            .env("VIRTNET_DOMAIN", "vm-script")
            .env("VIRTNET_MAC", "52:54:00:00:00:22");
        let out = cmd.output().expect("run the script");
        assert!(
            out.status.success(),
            "{bin} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let said = script(IFUP);
    assert!(said.contains("qtap0 attached to virbr0"), "{said}");
    let client = client(&daemon);
    let ports = client.ports(Some("vm-script")).expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name, "qtap0");
    assert_eq!(ports[0].source, InterfaceSource::Network("default".into()));
    assert_eq!(ports[0].mac, "52:54:00:00:00:22");
    assert!(link_details(host, "qtap0").contains("master virbr0"));

    // Again (a port of that name exists): re-attached, not refused.
    script(IFUP);
    assert_eq!(client.ports(Some("vm-script")).expect("ports").len(), 1);

    let said = script(IFDOWN);
    assert!(said.contains("qtap0 detached from virbr0"), "{said}");
    assert!(client.ports(None).expect("ports").is_empty());
    let link = link_details(host, "qtap0");
    assert!(
        !link.contains("master"),
        "adopted tap still enslaved: {link}"
    );

    // Nothing to do is no error; `--down` on virtnet-ifup works too.
    let said = script(IFDOWN);
    assert!(said.contains("was no virtnet port"), "{said}");
    let mut cmd = host.command([IFUP, "--down", "qtap0"]);
    cmd.env("VIRTNET_SOCKET", &socket);
    let out = cmd.output().expect("run ifup --down");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was no virtnet port"));
    // A network that does not exist fails the up script (QEMU then refuses the netdev).
    let mut cmd = host.command([IFUP, "qtap0"]);
    cmd.env("VIRTNET_SOCKET", &socket)
        .env("VIRTNET_NETWORK", "nosuch");
    let out = cmd.output().expect("run ifup");
    assert!(!out.status.success());
    assert!(client.ports(None).expect("ports").is_empty());
}
