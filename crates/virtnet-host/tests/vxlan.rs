//! VXLAN devices against the real kernel, in a namespace of the test's own.

mod common;

use std::process::Command;

use common::{netns, spec};
use virtnet_host::VxlanSpec;

/// `ip -d link show NAME` as the kernel reports it (run from the test thread, so inside its
/// namespace).
fn ip_details(name: &str) -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show", name])
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_vxlan_enslaves_a_nolearning_device_with_its_vni() {
    let mut nl = netns();
    let under = nl.create_veth("under0", "under1", None).unwrap();
    nl.add_address(under, "10.200.0.1".parse().unwrap(), 24)
        .unwrap();
    let br = nl.create_bridge(&spec("vnbr0")).unwrap();
    let vx = VxlanSpec {
        name: "vxlan-4242".into(),
        vni: 4242,
        local: "10.200.0.1".parse().unwrap(),
        underlay: Some(under),
        dstport: 4789,
        mtu: Some(1450),
        master: br,
        alias: "virtnet:stretch".into(),
        group: 0x7674,
    };
    let index = nl.create_vxlan(&vx).unwrap();
    let link = nl.link("vxlan-4242").unwrap().expect("vxlan exists");
    assert_eq!(link.index, index);
    assert_eq!(link.kind.as_deref(), Some("vxlan"));
    assert_eq!(link.master, Some(br));
    assert_eq!(link.mtu, 1450);
    assert!(link.up);
    assert_eq!(link.alias.as_deref(), Some("virtnet:stretch"));
    assert_eq!(link.group, 0x7674);
    let details = ip_details("vxlan-4242");
    for want in [
        "vxlan id 4242 local 10.200.0.1 dev under0",
        "dstport 4789",
        "nolearning",
        "bridge_slave",
        "learning off",
    ] {
        assert!(details.contains(want), "no {want:?} in {details}");
    }

    // A second device with the same VNI and port is refused by the kernel, which is why a
    // VNI is one network's per host.
    let again = VxlanSpec {
        name: "vxlan-dup".into(),
        ..vx.clone()
    };
    let e = nl.create_vxlan(&again).unwrap_err();
    assert!(e.to_string().contains("vxlan-dup"), "{e}");
    assert!(nl.link("vxlan-dup").unwrap().is_none());
}
