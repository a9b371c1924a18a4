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

// ---------------------------------------------------------------------------------------------
// libvirt 9.0's define-time rules (issue 12, item 6): one test per rule. Each document parses
// (libvirt's parser or ours accepts it), `prepare` refuses it naming the field with libvirt's
// wording, and a corrected document is accepted, so the test fails if the rule is missing.

/// Parses `xml`, expects `prepare` to refuse it, and returns the error.
fn refused(xml: &str) -> virtnet_model::ModelError {
    let mut n = net(xml);
    prepare(&mut n, &[], &no_links).expect_err(xml)
}

/// Parses `xml` and expects `prepare` to accept it.
fn accepted(xml: &str) {
    let mut n = net(xml);
    if let Err(e) = prepare(&mut n, &[], &no_links) {
        panic!("{xml}: {e}");
    }
}

fn assert_refused(xml: &str, field: &str, wording: &str) {
    let e = refused(xml);
    assert_eq!(e.field, field, "{xml}: {e}");
    assert!(e.reason.contains(wording), "{xml}: {e}");
}

#[test]
fn l3_forwarding_needs_an_ip_address() {
    for mode in ["nat", "route", "open"] {
        assert_refused(
            &format!("<network><name>X</name><forward mode='{mode}'/></network>"),
            "ip",
            &format!("{mode} forwarding requested, but no IP address provided for network 'X'"),
        );
        accepted(&format!(
            "<network><name>X</name><forward mode='{mode}'/><ip address='10.9.0.1' prefix='24'/></network>"
        ));
    }
    // An isolated network needs no address.
    accepted("<network><name>X</name></network>");
}

#[test]
fn l3_forwarding_takes_one_forward_interface() {
    let two = "<network><name>X</name><forward mode='nat'><interface dev='eth0'/><interface dev='eth1'/></forward><ip address='10.9.0.1' prefix='24'/></network>";
    assert_refused(
        two,
        "forward.interface[1]",
        "multiple forwarding interfaces specified for network 'X', only one is supported",
    );
    accepted("<network><name>X</name><forward mode='nat' dev='eth0'/><ip address='10.9.0.1' prefix='24'/></network>");
}

#[test]
fn mtu_only_on_networks_with_their_own_bridge() {
    for (mode, fwd) in [
        ("bridge", "<forward mode='bridge'/><bridge name='br0'/>"),
        ("private", "<forward mode='private' dev='eth0'/>"),
        ("vepa", "<forward mode='vepa' dev='eth0'/>"),
        ("passthrough", "<forward mode='passthrough' dev='eth0'/>"),
    ] {
        assert_refused(
            &format!("<network><name>X</name>{fwd}<mtu size='9000'/></network>"),
            "mtu",
            &format!("mtu size only allowed in open, route, nat, and isolated mode, not in {mode}"),
        );
        accepted(&format!("<network><name>X</name>{fwd}</network>"));
    }
    accepted("<network><name>X</name><mtu size='9000'/></network>");
}

#[test]
fn bridge_zone_not_in_macvtap_or_hostdev_modes() {
    assert_refused(
        "<network><name>X</name><forward mode='vepa' dev='eth0'/><bridge zone='trusted'/></network>",
        "bridge.zone",
        "bridge zone not allowed in vepa mode (network 'X')",
    );
    accepted("<network><name>X</name><bridge zone='trusted'/></network>");
}

#[test]
fn bridge_stp_delay_zone_only_on_own_bridges() {
    for (attr, field) in [
        ("stp='on'", "bridge.stp"),
        ("zone='trusted'", "bridge.zone"),
    ] {
        assert_refused(
            &format!("<network><name>X</name><forward mode='bridge'/><bridge name='br0' {attr}/></network>"),
            field,
            "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in bridge",
        );
    }
    accepted(
        "<network><name>X</name><forward mode='bridge'/><bridge name='br0' delay='0'/></network>",
    );
}

#[test]
fn forward_driver_default_is_not_a_name() {
    let pool = "<address type='pci' domain='0' bus='4' slot='0' function='1'/>";
    assert_refused(
        &format!("<network><name>X</name><forward mode='hostdev'><driver name='default'/>{pool}</forward></network>"),
        "forward.driver.name",
        "Unknown forward <driver name='default'/> in network X",
    );
    accepted(&format!(
        "<network><name>X</name><forward mode='hostdev'><driver name='vfio'/>{pool}</forward></network>"
    ));
}

#[test]
fn network_virtualport_needs_a_type() {
    let fwd = "<forward mode='bridge'/><bridge name='br0'/>";
    assert_refused(
        &format!("<network><name>X</name>{fwd}<virtualport><parameters profileid='p'/></virtualport></network>"),
        "virtualport.type",
        "missing required virtualport type",
    );
    accepted(&format!(
        "<network><name>X</name>{fwd}<virtualport type='openvswitch'><parameters profileid='p'/></virtualport></network>"
    ));
}

#[test]
fn virtualport_parameter_values() {
    let doc = |params: &str| {
        format!("<network><name>X</name><forward mode='private' dev='eth0'/><virtualport type='802.1Qbg'><parameters {params}/></virtualport></network>")
    };
    assert_refused(
        &doc("managerid='256'"),
        "virtualport.parameters.managerid",
        "value of managerid out of range",
    );
    assert_refused(
        &doc("typeid='x'"),
        "virtualport.parameters.typeid",
        "cannot parse value of typeid parameter",
    );
    assert_refused(
        &doc("instanceid='nope'"),
        "virtualport.parameters.instanceid",
        "cannot parse instanceid parameter as a uuid",
    );
    accepted(&doc(
        "managerid='11' typeid='0x123456' typeidversion='2' instanceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'",
    ));
}

#[test]
fn virtualport_types_take_only_their_parameters() {
    let doc = |params: &str| {
        format!("<network><name>X</name><forward mode='bridge'/><bridge name='br0'/><virtualport type='openvswitch'><parameters {params}/></virtualport></network>")
    };
    assert_refused(
        &doc("managerid='1'"),
        "virtualport.parameters.managerid",
        "attribute managerid not allowed for <virtualport type='openvswitch'>",
    );
    accepted(&doc(
        "profileid='p' interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'",
    ));
}

#[test]
fn one_native_vlan_and_none_without_trunk() {
    let doc = |vlan: &str| {
        format!("<network><name>X</name><forward mode='hostdev'><address type='pci' domain='0' bus='4' slot='0' function='1'/></forward>{vlan}</network>")
    };
    assert_refused(
        &doc("<vlan trunk='yes'><tag id='1' nativeMode='tagged'/><tag id='2' nativeMode='untagged'/></vlan>"),
        "vlan.tag[1].nativeMode",
        "duplicate native vlan setting",
    );
    assert_refused(
        &doc("<vlan trunk='no'><tag id='1' nativeMode='untagged'/></vlan>"),
        "vlan.tag[0].nativeMode",
        "\"trunk='no'\" is not allowed with a native vlan id",
    );
    accepted(&doc(
        "<vlan trunk='yes'><tag id='1' nativeMode='untagged'/><tag id='2'/></vlan>",
    ));
}

#[test]
fn vlan_only_where_the_network_can_tag() {
    assert_refused(
        "<network><name>X</name><forward mode='private' dev='eth0'/><vlan><tag id='5'/></vlan></network>",
        "vlan",
        "<vlan> element specified for network X, whose type doesn't support vlan configuration",
    );
    assert_refused(
        "<network><name>X</name><forward mode='bridge'/><virtualport type='openvswitch'/>\
         <portgroup name='p'><vlan><tag id='5'/></vlan><virtualport><parameters profileid='x'/></virtualport></portgroup></network>",
        "portgroup[0].vlan",
        "whose type doesn't support vlan configuration",
    );
    accepted(
        "<network><name>X</name><forward mode='bridge'/><virtualport type='openvswitch'/>\
         <portgroup name='p'><vlan><tag id='5'/></vlan></portgroup><vlan><tag id='6'/></vlan></network>",
    );
    accepted("<network><name>X</name><forward mode='passthrough' dev='eth0'/><vlan><tag id='5'/></vlan></network>");
}

#[test]
fn dhcp_ranges_span_at_most_65535_addresses() {
    assert_refused(
        "<network><name>X</name><ip address='10.0.0.1' prefix='8'><dhcp><range start='10.0.0.2' end='10.1.0.1'/></dhcp></ip></network>",
        "ip[0].dhcp.range[0]",
        "range 10.0.0.2 - 10.1.0.1 is too large (> 65535)",
    );
    assert_refused(
        "<network><name>X</name><ip family='ipv6' address='fd00::1' prefix='64'><dhcp><range start='fd00::2' end='fd00::1:0'/></dhcp></ip></network>",
        "ip[0].dhcp.range[0]",
        "is too large (> 65535)",
    );
    accepted("<network><name>X</name><ip address='10.0.0.1' prefix='8'><dhcp><range start='10.0.0.2' end='10.0.255.254'/></dhcp></ip></network>");
}

#[test]
fn ipv4_static_hosts_need_a_mac_or_a_name() {
    assert_refused(
        "<network><name>X</name><ip address='10.0.0.1' prefix='24'><dhcp><host id='01:02:03' ip='10.0.0.5'/></dhcp></ip></network>",
        "ip[0].dhcp.host[0]",
        "Static host definition in IPv4 network 'X' must have mac or name attribute",
    );
    accepted("<network><name>X</name><ip address='10.0.0.1' prefix='24'><dhcp><host id='01:02:03' name='h' ip='10.0.0.5'/></dhcp></ip></network>");
}

fn srv_net(srv: &str) -> String {
    format!("<network><name>X</name><dns>{srv}</dns><ip address='10.0.0.1' prefix='24'/></network>")
}

#[test]
fn srv_service_names_have_no_dot() {
    assert_refused(
        &srv_net("<srv service='a.b' protocol='tcp'/>"),
        "dns.srv[0].service",
        "invalid character in service attribute 'a.b' in DNS SRV record of network 'X'",
    );
    accepted(&srv_net("<srv service='a_b-c' protocol='tcp'/>"));
}

#[test]
fn srv_port_priority_weight_need_a_target() {
    for attr in ["port", "priority", "weight"] {
        assert_refused(
            &srv_net(&format!("<srv service='ldap' protocol='tcp' {attr}='1'/>")),
            &format!("dns.srv[0].{attr}"),
            &format!("DNS SRV {attr} attribute not permitted without target for service 'ldap'"),
        );
        accepted(&srv_net(&format!(
            "<srv service='ldap' protocol='tcp' target='h.example' {attr}='1'/>"
        )));
    }
}

#[test]
fn srv_port_is_not_zero() {
    assert_refused(
        &srv_net("<srv service='ldap' protocol='tcp' target='h.example' port='0'/>"),
        "dns.srv[0].port",
        "invalid DNS SRV port attribute for service 'ldap' in network 'X'",
    );
}

#[test]
fn route_metric_is_not_zero() {
    let doc = |metric: &str| {
        format!("<network><name>X</name><forward mode='route'/><ip address='10.0.0.1' prefix='24'/><route address='10.1.0.0' prefix='16' gateway='10.0.0.2' metric='{metric}'/></network>")
    };
    assert_refused(&doc("0"), "route[0].metric", "Zero is not permitted");
    accepted(&doc("1"));
}

#[test]
fn route_gateway_is_on_a_network_subnet() {
    let doc = |gw: &str| {
        format!("<network><name>X</name><forward mode='route'/><ip address='10.0.0.1' prefix='24'/><route address='10.1.0.0' prefix='16' gateway='{gw}'/></network>")
    };
    assert_refused(
        &doc("10.5.0.2"),
        "route[0].gateway",
        "unreachable static route gateway '10.5.0.2' specified for network 'X'",
    );
    accepted(&doc("10.0.0.2"));
}

#[test]
fn network_bandwidth_only_where_libvirt_shapes_a_bridge() {
    let bw = "<bandwidth><inbound average='1000'/></bandwidth>";
    assert_refused(
        &format!("<network><name>X</name><forward mode='private' dev='eth0'/>{bw}</network>"),
        "bandwidth",
        "Unsupported network-wide <bandwidth> element in network X with forward mode='private'",
    );
    assert_refused(
        &format!("<network><name>X</name><forward mode='bridge' dev='eth0'/>{bw}</network>"),
        "bandwidth",
        "forward mode='bridge'",
    );
    accepted(&format!(
        "<network><name>X</name><forward mode='bridge'/><bridge name='br0'/>{bw}</network>"
    ));
    accepted(&format!("<network><name>X</name>{bw}</network>"));
}

#[test]
fn portgroup_bandwidth_only_where_libvirt_shapes_a_bridge() {
    let pg = "<portgroup name='p'><bandwidth><inbound average='1000'/></bandwidth></portgroup>";
    assert_refused(
        &format!("<network><name>X</name><forward mode='hostdev'><address type='pci' domain='0' bus='4' slot='0' function='1'/></forward>{pg}</network>"),
        "portgroup[0].bandwidth",
        "Unsupported <bandwidth> element in network 'X' in portgroup 'p' with forward mode='hostdev'",
    );
    accepted(&format!("<network><name>X</name>{pg}</network>"));
}

#[test]
fn bandwidth_floor_is_not_for_networks() {
    assert_refused(
        "<network><name>X</name><bandwidth><inbound average='10' floor='5'/></bandwidth></network>",
        "bandwidth.inbound.floor",
        "floor attribute is not supported for this config",
    );
}

#[test]
fn bandwidth_peak_and_burst_need_an_average() {
    assert_refused(
        "<network><name>X</name><bandwidth><inbound floor='5' peak='20'/></bandwidth></network>",
        "bandwidth.inbound",
        "'peak' and 'burst' require 'average' attribute",
    );
    accepted("<network><name>X</name><bandwidth><inbound average='10' peak='20' burst='5'/></bandwidth></network>");
}

#[test]
fn hostdev_pools_list_pci_addresses_only() {
    assert_refused(
        "<network><name>X</name><forward mode='hostdev'><interface dev='eth1'/></forward></network>",
        "forward.interface[0].dev",
        "hostdev network 'X' lists 'eth1' in the device pool, but hostdev networks require all devices to be listed by PCI address",
    );
    assert_refused(
        "<network><name>X</name><forward mode='passthrough'><address type='pci' domain='0' bus='4' slot='0' function='1'/></forward></network>",
        "forward.address[0]",
        "network 'X' has forward mode 'passthrough' but lists a device by PCI address in the device pool",
    );
}

#[test]
fn a_device_pool_is_a_pf_or_interfaces_or_addresses() {
    assert_refused(
        "<network><name>X</name><forward mode='passthrough'><pf dev='eth0'/><interface dev='eth1'/></forward></network>",
        "forward",
        "<address>, <interface>, and <pf> elements of <forward> in network X are mutually exclusive",
    );
    accepted(
        "<network><name>X</name><forward mode='passthrough'><pf dev='eth0'/></forward></network>",
    );
}
