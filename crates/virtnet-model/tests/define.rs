//! Define-time rules: identity against known networks, generated values, mode rules and
//! uniqueness of bridge names.

use virtnet_model::define::{identify, prepare, Identity};
use virtnet_model::network::{HostAllow, HostProto};
use virtnet_model::{ErrorKind, MacAddr, Network};

fn net(xml: &str) -> Network {
    Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}"))
}

fn no_links(_: &str) -> bool {
    false
}

#[test]
fn fills_uuid_mac_and_first_free_bridge() {
    let mut a = net("<network><name>a</name><forward mode='nat'/><ip address='10.1.0.1' prefix='24'/></network>");
    let warnings = prepare(&mut a, &[], &no_links).unwrap();
    assert!(warnings.is_empty());
    assert!(a.uuid.is_some());
    let mac = a.mac.expect("bridge MAC generated");
    assert!(mac.0.starts_with(&MacAddr::QEMU_OUI));
    assert_eq!(a.bridge_name(), Some("virbr0"));

    // The next network skips virbr0 (taken by a) and virbr1 (present on the host).
    let mut b = net("<network><name>b</name></network>");
    prepare(&mut b, &[&a], &|n: &str| n == "virbr1").unwrap();
    assert_eq!(b.bridge_name(), Some("virbr2"));

    // A template picks the lowest free number.
    let mut c = net("<network><name>c</name><bridge name='lab%d'/></network>");
    prepare(&mut c, &[&a, &b], &no_links).unwrap();
    assert_eq!(c.bridge_name(), Some("lab0"));
}

#[test]
fn keeps_given_values() {
    let path = virtnet_testkit::shared_dir().join("examples/default-nat.xml");
    let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut n = net(&xml);
    let before = n.clone();
    prepare(&mut n, &[], &no_links).unwrap();
    assert_eq!(n, before);
}

#[test]
fn bridge_and_identity_conflicts() {
    let mut a = net("<network><name>a</name><uuid>11111111-1111-1111-1111-111111111111</uuid><bridge name='virbr5'/></network>");
    prepare(&mut a, &[], &no_links).unwrap();
    let known = [("a", a.uuid.unwrap())];

    let same =
        net("<network><name>a</name><uuid>11111111-1111-1111-1111-111111111111</uuid></network>");
    assert_eq!(identify(&same, &known).unwrap(), Identity::Redefines);

    let other_uuid =
        net("<network><name>a</name><uuid>22222222-1111-1111-1111-111111111111</uuid></network>");
    let e = identify(&other_uuid, &known).unwrap_err();
    assert_eq!((e.kind, e.field.as_str()), (ErrorKind::Conflict, "name"));
    assert!(
        e.to_string().contains("already exists with uuid 11111111"),
        "{e}"
    );

    let no_uuid = net("<network><name>a</name></network>");
    assert!(
        identify(&no_uuid, &known).is_err(),
        "a new definition of a known name conflicts"
    );

    let other_name =
        net("<network><name>b</name><uuid>11111111-1111-1111-1111-111111111111</uuid></network>");
    assert_eq!(identify(&other_name, &known).unwrap_err().field, "uuid");

    assert_eq!(
        identify(&net("<network><name>c</name></network>"), &known).unwrap(),
        Identity::New
    );

    let mut dup = net("<network><name>d</name><bridge name='virbr5'/></network>");
    let e = prepare(&mut dup, &[&a], &no_links).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_str()),
        (ErrorKind::Conflict, "bridge.name")
    );
    assert!(e.to_string().contains("network 'a'"), "{e}");
}

#[test]
fn host_bridges_may_be_shared_by_bridge_mode_networks_only() {
    let mut a =
        net("<network><name>a</name><forward mode='bridge'/><bridge name='br0'/></network>");
    prepare(&mut a, &[], &no_links).unwrap();
    let mut b =
        net("<network><name>b</name><forward mode='bridge'/><bridge name='br0'/></network>");
    prepare(&mut b, &[&a], &no_links).unwrap();
    let mut c = net("<network><name>c</name><bridge name='br0'/></network>");
    assert!(prepare(&mut c, &[&a], &no_links).is_err());
    assert!(a.mac.is_none(), "host-bridge networks get no generated MAC");
}

#[test]
fn forward_modes_that_cannot_carry_ip_dns_or_domain() {
    for (xml, field) in [
        ("<network><name>x</name><forward mode='bridge'/><bridge name='br0'/><ip address='10.0.0.1' prefix='24'/></network>", "ip[0]"),
        ("<network><name>x</name><forward mode='passthrough'><pf dev='eth0'/></forward><ip address='192.168.122.1' netmask='255.255.255.0'/></network>", "ip[0]"),
        ("<network><name>x</name><forward mode='vepa'><interface dev='eth1'/></forward><dns><txt name='a' value='b'/></dns></network>", "dns"),
        ("<network><name>x</name><forward mode='private'><interface dev='eth1'/></forward><domain name='lab'/></network>", "domain"),
    ] {
        let mut n = net(xml);
        let e = prepare(&mut n, &[], &no_links).unwrap_err();
        assert_eq!(e.field, field, "{xml}: {e}");
    }
}

#[test]
fn one_dhcp_block_per_family() {
    let mut n = net("<network><name>x</name>\
        <ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip>\
        <ip address='10.0.1.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>");
    let e = prepare(&mut n, &[], &no_links).unwrap_err();
    assert_eq!(e.field, "ip[1].dhcp");
}

#[test]
fn dnsmasq_options_are_kept_with_a_warning() {
    let mut n = net(
        "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'><name>x</name>\
        <dnsmasq:options><dnsmasq:option value='foo=bar'/></dnsmasq:options></network>",
    );
    let w = prepare(&mut n, &[], &no_links).unwrap();
    assert!(w[0].contains("does not run dnsmasq"), "{w:?}");
    assert!(n.to_xml().contains("<dnsmasq:option value='foo=bar'/>"));
}

#[test]
fn host_access_round_trips_in_virtnets_namespace() {
    // Any prefix bound to virtnet's namespace is read; the output uses `virtnet:`.
    let n = net("<network xmlns:vn='urn:virtnet:network:1'><name>x</name>\
        <ip address='10.0.0.1' prefix='24'/>\
        <vn:host-access><vn:allow proto='tcp' port='22'/><vn:allow proto='udp' port='5353'/>\
        </vn:host-access></network>");
    assert_eq!(
        n.host_access,
        vec![
            HostAllow {
                proto: HostProto::Tcp,
                port: 22
            },
            HostAllow {
                proto: HostProto::Udp,
                port: 5353
            },
        ]
    );
    let xml = n.to_xml();
    assert!(
        xml.starts_with("<network xmlns:virtnet='urn:virtnet:network:1'>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "  <virtnet:host-access>\n    <virtnet:allow proto='tcp' port='22'/>\n    \
             <virtnet:allow proto='udp' port='5353'/>\n  </virtnet:host-access>\n"
        ),
        "{xml}"
    );
    assert_eq!(net(&xml).host_access, n.host_access, "read back the same");
    assert_eq!(net(&xml).to_xml(), xml, "fixed point");
}

#[test]
fn host_access_errors_name_the_field() {
    let doc = |allow: &str| {
        format!(
            "<network xmlns:virtnet='urn:virtnet:network:1'><name>x</name>\
             <virtnet:host-access>{allow}</virtnet:host-access></network>"
        )
    };
    let err = |allow: &str| Network::from_xml(&doc(allow)).unwrap_err();
    let e = err("<virtnet:allow proto='sctp' port='22'/>");
    assert_eq!(e.field, "virtnet:host-access.virtnet:allow[0].proto", "{e}");
    let e = err("<virtnet:allow proto='tcp' port='0'/>");
    assert_eq!(e.field, "virtnet:host-access.virtnet:allow[0].port", "{e}");
    let e = err("<virtnet:allow proto='tcp' port='65536'/>");
    assert_eq!(e.field, "virtnet:host-access.virtnet:allow[0].port", "{e}");
    let e = err("<virtnet:allow proto='tcp'/>");
    assert!(
        e.to_string().contains("missing required attribute 'port'"),
        "{e}"
    );
    let e = err("<virtnet:allow port='22'/>");
    assert!(
        e.to_string().contains("missing required attribute 'proto'"),
        "{e}"
    );
    let e = err("<virtnet:allow proto='tcp' port='22'/><virtnet:allow proto='tcp' port='22'/>");
    assert_eq!(e.field, "virtnet:host-access.virtnet:allow[1].port", "{e}");
    assert!(e.to_string().contains("allowed twice"), "{e}");
    let e = err("<virtnet:deny proto='tcp' port='22'/>");
    assert!(
        e.to_string().contains("unknown element <virtnet:deny>"),
        "{e}"
    );
    // Another namespace is still refused.
    let e =
        Network::from_xml("<network xmlns:x='urn:other'><name>x</name><x:host-access/></network>")
            .unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    // Only networks with their own bridge have a virtnet firewall to open.
    let mut n = net(
        "<network xmlns:virtnet='urn:virtnet:network:1'><name>x</name>\
         <forward mode='bridge'/><bridge name='br0'/>\
         <virtnet:host-access><virtnet:allow proto='tcp' port='22'/></virtnet:host-access>\
         </network>",
    );
    let e = prepare(&mut n, &[], &no_links).unwrap_err();
    assert_eq!(e.field, "virtnet:host-access", "{e}");
}

/// Issue 11, finding 9: `x%d%d` was accepted here (the first `%d` expanded to `x0%d`) and
/// failed only at `net-start`, when the kernel refused the name.
#[test]
fn a_bridge_template_with_two_formats_is_refused_at_define() {
    for bad in ["x%d%d", "br%s", "b%%d", "%"] {
        let mut n = net(&format!(
            "<network><name>t</name><bridge name='{bad}'/></network>"
        ));
        let e = prepare(&mut n, &[], &no_links).expect_err(bad);
        assert_eq!(e.field, "bridge.name", "{bad}: {e}");
        assert_eq!(e.value.as_deref(), Some(bad));
        assert!(e.reason.contains("one '%d'"), "{bad}: {e}");
    }
    let mut ok = net("<network><name>t</name><bridge name='x%d'/></network>");
    prepare(&mut ok, &[], &no_links).expect("one %d is a template");
    assert_eq!(ok.bridge_name(), Some("x0"));
}

/// Issue 11, finding 1: a definition whose stored (normalised) form is over the input limits
/// is refused by `prepare`, which every define, create and edit runs, naming the element.
#[test]
fn a_definition_whose_stored_form_is_too_large_is_refused() {
    let mut n = net(&format!(
        "<network><name>gt</name><description>{}</description></network>",
        ">".repeat(400_000)
    ));
    let e = prepare(&mut n, &[], &no_links).expect_err("1.6 MB once stored");
    assert_eq!(e.field, "description", "{e}");
    assert_eq!(e.kind, ErrorKind::Invalid);
}
