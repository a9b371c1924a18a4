//! Taps for guest ports against the real kernel, each test in its own network namespace.

mod common;

use common::{netns, spec};
use virtnet_host::tap::{create_tap, TapSpec};
use virtnet_host::PortSettings;

/// `ip -d link show` of a link, run from this thread (so in its namespace; /sys would show the
/// namespace that mounted it instead).
fn details(name: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_tap_is_persistent_owned_and_joins_a_bridge() {
    let mut nl = netns();
    let br = nl.create_bridge(&spec("virbr0")).unwrap();
    create_tap(&TapSpec {
        name: "vnet0".into(),
        owner: Some(65534),
        group: Some(65534),
        multi_queue: true,
        vnet_hdr: true,
    })
    .unwrap();
    // The creating descriptor is closed: only TUNSETPERSIST keeps it.
    let tap = nl.link("vnet0").unwrap().expect("persistent tap");
    assert_eq!(tap.kind.as_deref(), Some("tun"));
    let d = details("vnet0");
    assert!(d.contains("tun type tap"), "{d}");
    assert!(
        d.contains("vnet_hdr on") && d.contains("multi_queue"),
        "{d}"
    );
    assert!(d.contains("persist on"), "{d}");
    assert!(
        d.contains("user nobody") && d.contains("group nogroup"),
        "{d}"
    );
    let mac = [0xfe, 0x54, 0x00, 0x12, 0x34, 0x56];
    nl.set_port(
        tap.index,
        &PortSettings {
            mac: Some(mac),
            mtu: Some(1400),
            alias: Some("virtnet-port:vm1".into()),
            master: Some(Some(br)),
            up: Some(true),
            isolated: Some(true),
        },
    )
    .unwrap();
    // The bridge-port flag went with it (a second message, once the tap is on the bridge).
    let shown = std::process::Command::new("ip")
        .args(["-d", "link", "show", "vnet0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("isolated on"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    let tap = nl.link("vnet0").unwrap().unwrap();
    assert_eq!(tap.mac, Some(mac));
    assert_eq!(tap.mtu, 1400);
    assert_eq!(tap.master, Some(br));
    assert!(tap.up);
    assert_eq!(tap.alias.as_deref(), Some("virtnet-port:vm1"));
    // Off the bridge and down again.
    nl.set_port(
        tap.index,
        &PortSettings {
            master: Some(None),
            up: Some(false),
            ..PortSettings::default()
        },
    )
    .unwrap();
    let tap = nl.link("vnet0").unwrap().unwrap();
    assert_eq!(tap.master, None);
    assert!(!tap.up);
    // A second tap of the same name is refused by the kernel itself (IFF_TUN_EXCL), even
    // with the very flags the first was made with (root could otherwise attach to it); a bad
    // name never reaches the kernel.
    let again = create_tap(&TapSpec {
        name: "vnet0".into(),
        owner: Some(65534),
        group: Some(65534),
        multi_queue: true,
        vnet_hdr: true,
    })
    .unwrap_err();
    assert_eq!(again.errno(), Some(libc::EBUSY));
    let err = create_tap(&TapSpec {
        name: "a-name-longer-than-15".into(),
        owner: None,
        group: None,
        multi_queue: false,
        vnet_hdr: false,
    })
    .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    nl.delete_link(tap.index).unwrap();
    assert!(nl.link("vnet0").unwrap().is_none());
}
