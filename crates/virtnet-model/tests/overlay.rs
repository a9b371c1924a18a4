//! `<virtnet:overlay>`: parse, format, validation with the field named, define-time rules
//! (anycast MAC, modes, VNI uniqueness).

use virtnet_model::define::prepare;
use virtnet_model::overlay::anycast_mac;
use virtnet_model::{ErrorKind, MacAddr, Network, Overlay, OverlayType};

fn no_links(_: &str) -> bool {
    false
}

/// A nat network with `overlay` as its `<virtnet:overlay>` element.
fn with_overlay(name: &str, overlay: &str) -> String {
    format!(
        "<network xmlns:virtnet='urn:virtnet:network:1'><name>{name}</name>\
         <forward mode='nat'/><ip address='10.77.0.1' prefix='24'/>{overlay}</network>"
    )
}

fn parsed(xml: &str) -> Network {
    Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn overlay_round_trips_through_xml() {
    let net = parsed(&with_overlay(
        "ov",
        "<virtnet:overlay type='evpn' vni='4242' underlay='eth0' local='10.200.0.1' dstport='4790'/>",
    ));
    assert_eq!(
        net.overlay,
        Some(Overlay {
            kind: OverlayType::Evpn,
            vni: 4242,
            underlay: Some("eth0".into()),
            local: Some("10.200.0.1".parse().unwrap()),
            dstport: Some(4790),
        })
    );
    let xml = net.to_xml();
    assert!(
        xml.contains("xmlns:virtnet='urn:virtnet:network:1'"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<virtnet:overlay type='evpn' vni='4242' underlay='eth0' local='10.200.0.1' \
             dstport='4790'/>"
        ),
        "{xml}"
    );
    // libvirt's normalisation adds the bridge defaults once; then the form is stable.
    assert_eq!(parsed(&xml).overlay, net.overlay);
    assert_eq!(parsed(&xml).to_xml(), xml);

    // Only what was given is written back.
    let minimal = parsed(&with_overlay(
        "ov",
        "<virtnet:overlay type='evpn' vni='7'/>",
    ));
    let xml = minimal.to_xml();
    assert!(
        xml.contains("<virtnet:overlay type='evpn' vni='7'/>"),
        "{xml}"
    );
    assert_eq!(minimal.overlay.as_ref().map(Overlay::port), Some(4789));
    assert_eq!(parsed(&xml).overlay, minimal.overlay);
}

#[test]
fn bad_overlays_are_refused_naming_the_field() {
    let cases = [
        (
            "<virtnet:overlay type='evpn' vni='0'/>",
            "virtnet:overlay.vni",
        ),
        (
            "<virtnet:overlay type='evpn' vni='16777216'/>",
            "virtnet:overlay.vni",
        ),
        (
            "<virtnet:overlay type='evpn' vni='ten'/>",
            "virtnet:overlay.vni",
        ),
        ("<virtnet:overlay type='evpn'/>", "virtnet:overlay.vni"),
        (
            "<virtnet:overlay type='geneve' vni='5'/>",
            "virtnet:overlay.type",
        ),
        ("<virtnet:overlay vni='5'/>", "virtnet:overlay.type"),
        (
            "<virtnet:overlay type='evpn' vni='5' underlay='a*b'/>",
            "virtnet:overlay.underlay",
        ),
        (
            "<virtnet:overlay type='evpn' vni='5' local='239.1.1.1'/>",
            "virtnet:overlay.local",
        ),
        (
            "<virtnet:overlay type='evpn' vni='5' local='nowhere'/>",
            "virtnet:overlay.local",
        ),
        (
            "<virtnet:overlay type='evpn' vni='5' dstport='0'/>",
            "virtnet:overlay.dstport",
        ),
        (
            "<virtnet:overlay type='evpn' vni='5' dstport='70000'/>",
            "virtnet:overlay.dstport",
        ),
        (
            "<virtnet:overlay type='evpn' vni='5' group='239.1.1.1'/>",
            "virtnet:overlay.group",
        ),
    ];
    for (element, field) in cases {
        let e = Network::from_xml(&with_overlay("ov", element))
            .expect_err(&format!("{element} must be refused"));
        assert_eq!(e.field, field, "{element}: {e}");
        assert!(e.to_string().starts_with(field), "{e}");
    }
}

#[test]
fn the_gateway_mac_is_derived_from_the_vni_unless_given() {
    let mut a = parsed(&with_overlay(
        "a",
        "<virtnet:overlay type='evpn' vni='258'/>",
    ));
    prepare(&mut a, &[], &no_links).unwrap();
    assert_eq!(a.mac, Some(anycast_mac(258)));
    assert_eq!(
        a.mac.map(|m| m.to_string()).as_deref(),
        Some("02:76:6e:00:01:02")
    );
    // The same definition on another host gets the same MAC.
    let mut again = parsed(&with_overlay(
        "a",
        "<virtnet:overlay type='evpn' vni='258'/>",
    ));
    prepare(&mut again, &[], &no_links).unwrap();
    assert_eq!(again.mac, a.mac);

    let given = with_overlay(
        "b",
        "<mac address='52:54:00:aa:bb:cc'/><virtnet:overlay type='evpn' vni='259'/>",
    );
    let mut b = parsed(&given);
    prepare(&mut b, &[], &no_links).unwrap();
    assert_eq!(b.mac, Some("52:54:00:aa:bb:cc".parse::<MacAddr>().unwrap()));
}

#[test]
fn a_vni_is_used_by_one_network_per_host() {
    let mut a = parsed(&with_overlay(
        "a",
        "<virtnet:overlay type='evpn' vni='100'/>",
    ));
    prepare(&mut a, &[], &no_links).unwrap();
    let mut b = parsed(
        &with_overlay("b", "<virtnet:overlay type='evpn' vni='100'/>")
            .replace("10.77.0.1", "10.78.0.1"),
    );
    let e = prepare(&mut b, &[&a], &no_links).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.field, "virtnet:overlay.vni");
    assert!(e.reason.contains("network 'a'"), "{e}");
    // Redefining the same network with its own VNI is fine.
    let mut a2 = parsed(&with_overlay(
        "a",
        "<virtnet:overlay type='evpn' vni='100'/>",
    ));
    a2.uuid = a.uuid;
    prepare(&mut a2, &[&a], &no_links).unwrap();
    // Another VNI is fine.
    let mut c = parsed(
        &with_overlay("c", "<virtnet:overlay type='evpn' vni='101'/>")
            .replace("10.77.0.1", "10.79.0.1"),
    );
    prepare(&mut c, &[&a], &no_links).unwrap();
}

#[test]
fn overlays_need_a_bridge_of_their_own() {
    for mode in ["nat", "route", "open"] {
        let mut n = parsed(
            &with_overlay("m", "<virtnet:overlay type='evpn' vni='9'/>")
                .replace("'nat'", &format!("'{mode}'")),
        );
        prepare(&mut n, &[], &no_links).unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
    let mut isolated = parsed(
        &with_overlay("i", "<virtnet:overlay type='evpn' vni='9'/>")
            .replace("<forward mode='nat'/>", ""),
    );
    prepare(&mut isolated, &[], &no_links).unwrap();

    let host_bridge = "<network xmlns:virtnet='urn:virtnet:network:1'><name>hb</name>\
        <forward mode='bridge'/><bridge name='br0'/>\
        <virtnet:overlay type='evpn' vni='9'/></network>";
    let mut n = parsed(host_bridge);
    let e = prepare(&mut n, &[], &no_links).unwrap_err();
    assert_eq!(e.field, "virtnet:overlay", "{e}");
}
