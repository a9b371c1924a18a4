//! `net-update` against libvirt 9.0's own update corpus (`update-MANIFEST.tsv`): every row is
//! applied; `ok` rows must print libvirt's expected output, `fail` rows must be refused with
//! the network left unchanged. Then the error messages: each names the field and the reason.
//!
//! About the manifest's `parent_index` column: libvirt's `networkxml2xmlupdatetest.c` fills its
//! `struct testInfo` with `{…, command, section, flags, parentIndex, expectFailure}` while the
//! struct declares `parentIndex` before `flags`, so the index written in the test source lands in
//! `flags` and every case runs with parent index 0 (the expected outputs were made that way:
//! `append-dhcp-range`, written with index 1, adds the IPv4 range to `ip[0]`). The column holds
//! what the source says; the index libvirt applied, and that this test applies, is 0.
//! [`literal_parent_index_one_is_the_ipv6_ip`] shows what index 1 really does.

use std::path::Path;

use virtnet_model::{apply_update, ErrorKind, ModelError, Network, UpdateCommand, UpdateSection};
use virtnet_testkit::{canonical_xml as canonical, libvirt_corpus_dir, read_corpus_file};

/// One row of `update-MANIFEST.tsv`.
struct Row {
    name: String,
    ok: bool,
    section: String,
    command: String,
    parent_index: i64,
    update_file: String,
    network_file: String,
    expected_out: String,
}

fn manifest() -> Vec<Row> {
    let path = libvirt_corpus_dir().join("update-MANIFEST.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert_eq!(
        header,
        "name\texpect\tsection\tcommand\tparent_index\tupdate_file\tnetwork_file\texpected_out",
        "manifest columns changed"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), 8, "malformed manifest row: {line}");
            assert!(c[1] == "ok" || c[1] == "fail", "expectation {}", c[1]);
            Row {
                name: c[0].to_string(),
                ok: c[1] == "ok",
                section: c[2].to_string(),
                command: c[3].to_string(),
                parent_index: c[4].parse().expect("parent_index is a number"),
                update_file: c[5].to_string(),
                network_file: c[6].to_string(),
                expected_out: c[7].to_string(),
            }
        })
        .collect()
}

fn corpus(rel: &str) -> String {
    read_corpus_file(&libvirt_corpus_dir().join(Path::new(rel)))
}

/// The parent index libvirt's test harness really applied (see the module comment).
const APPLIED_PARENT_INDEX: Option<usize> = Some(0);

#[test]
fn libvirt_update_corpus() {
    let rows = manifest();
    assert_eq!(rows.len(), 41, "every manifest row is run");
    let mut failures = Vec::new();
    for row in &rows {
        let label = format!("{} ({} {})", row.name, row.command, row.section);
        let command: UpdateCommand = row.command.parse().expect("manifest command");
        let section: UpdateSection = row.section.parse().expect("manifest section");
        assert!(row.parent_index >= -1, "{label}: parent_index");
        let original = Network::from_xml(&corpus(&row.network_file))
            .unwrap_or_else(|e| panic!("{label}: network file rejected: {e}"));
        let update = corpus(&row.update_file);
        let mut net = original.clone();
        let result = apply_update(&mut net, command, section, APPLIED_PARENT_INDEX, &update);
        match (row.ok, result) {
            (true, Ok(())) => {
                let expected = corpus(&row.expected_out);
                let got = net.to_xml();
                if canonical(&got) != canonical(&expected) {
                    failures.push(format!(
                        "{label}: output differs\n--- expected\n{expected}\n--- got\n{got}"
                    ));
                }
            }
            (true, Err(e)) => failures.push(format!("{label}: refused: {e}")),
            (false, Ok(())) => failures.push(format!(
                "{label}: accepted but libvirt refuses it; result:\n{}",
                net.to_xml()
            )),
            (false, Err(e)) => {
                if e.reason.is_empty() || e.field.is_empty() {
                    failures.push(format!("{label}: error without field or reason: {e:?}"));
                }
                if net != original {
                    failures.push(format!("{label}: refused but the network changed"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Error messages and the rules behind them.

const NAT: &str = "<network><name>default</name><forward mode='nat'/>\
    <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
    <range start='192.168.122.100' end='192.168.122.254'/>\
    <host mac='52:54:00:00:00:01' name='one' ip='192.168.122.10'/>\
    <host mac='52:54:00:00:00:02' name='two' ip='192.168.122.11'/>\
    </dhcp></ip>\
    <ip family='ipv6' address='fd00::1' prefix='64'/>\
    <ip address='10.1.0.1' prefix='24'/></network>";

fn nat() -> Network {
    Network::from_xml(NAT).expect("test network")
}

/// Applies an update that must fail, checks that `net` did not change, returns the error.
fn refused(
    net: &Network,
    command: &str,
    section: &str,
    parent: Option<usize>,
    xml: &str,
) -> ModelError {
    let mut copy = net.clone();
    let command = command.parse().expect("command");
    let section = section.parse().expect("section");
    let e = apply_update(&mut copy, command, section, parent, xml)
        .expect_err("the update must be refused");
    assert_eq!(&copy, net, "a refused update changed the network");
    e
}

fn applied(
    net: &Network,
    command: &str,
    section: &str,
    parent: Option<usize>,
    xml: &str,
) -> Network {
    let mut copy = net.clone();
    let command = command.parse().expect("command");
    let section = section.parse().expect("section");
    apply_update(&mut copy, command, section, parent, xml)
        .unwrap_or_else(|e| panic!("{command} {section} {xml}: {e}"));
    copy
}

#[test]
fn literal_parent_index_one_is_the_ipv6_ip() {
    let net = Network::from_xml(&corpus("xml-in/dhcp6host-routed-network.xml")).expect("net");
    let e = refused(
        &net,
        "add-last",
        "ip-dhcp-range",
        Some(1),
        &corpus("update-in/dhcp-range.xml"),
    );
    assert_eq!(e.field, "ip-dhcp-range.start", "{e}");
    assert!(e.to_string().contains("192.168.122.10"), "{e}");
}

#[test]
fn duplicate_dhcp_host_names_the_attribute() {
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:01' ip='192.168.122.50'/>",
    );
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.field, "ip-dhcp-host.mac");
    assert_eq!(e.value.as_deref(), Some("52:54:00:00:00:01"));
    assert!(
        e.to_string().starts_with(
            "ip-dhcp-host.mac '52:54:00:00:00:01': there is already a host with this mac"
        ),
        "{e}"
    );
    assert!(e.reason.contains("ip[0].dhcp.host[0]"), "{e}");
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:09' name='two' ip='192.168.122.50'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host.name");
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:09' ip='192.168.122.11'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host.ip");
}

#[test]
fn dhcp_host_values_are_checked_like_a_definition() {
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:09' ip='10.9.9.9'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host.ip");
    assert!(
        e.reason.contains("outside the network 192.168.122.1/24"),
        "{e}"
    );
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='01:00:00:00:00:09' ip='192.168.122.60'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host.mac");
    let e = refused(&nat(), "add", "ip-dhcp-host", None, "<host name='x'/>");
    assert_eq!(e.field, "ip-dhcp-host.ip");
    assert!(e.reason.contains("missing required attribute 'ip'"), "{e}");
    let e = refused(&nat(), "delete", "ip-dhcp-host", None, "<host bogus='1'/>");
    assert_eq!(e.field, "ip-dhcp-host.bogus");
}

#[test]
fn element_name_must_fit_the_section() {
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<range start='192.168.122.2' end='192.168.122.9'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host");
    assert!(
        e.reason.contains(
            "unexpected element <range>, expecting <host>, while updating network 'default'"
        ),
        "{e}"
    );
}

#[test]
fn unsupported_sections_and_commands() {
    for section in ["bridge", "domain", "ip", "forward", "forward-pf"] {
        let e = refused(&nat(), "add", section, None, "<bridge name='x'/>");
        assert_eq!(e.kind, ErrorKind::Unsupported, "{section}");
        assert_eq!(e.field, section);
        assert!(e.reason.contains("can't update"), "{e}");
    }
    let e = refused(
        &nat(),
        "modify",
        "ip-dhcp-range",
        None,
        "<range start='192.168.122.100' end='192.168.122.254'/>",
    );
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.reason.contains("cannot be modified"), "{e}");
    for (section, xml) in [
        (
            "dns-host",
            "<host ip='10.0.0.1'><hostname>a</hostname></host>",
        ),
        ("dns-txt", "<txt name='a' value='b'/>"),
        ("dns-srv", "<srv service='a' protocol='tcp'/>"),
        ("forward-interface", "<interface dev='eth0'/>"),
    ] {
        let e = refused(&nat(), "modify", section, None, xml);
        assert_eq!(e.kind, ErrorKind::Unsupported, "{section}");
        assert_eq!(e.field, section);
    }
}

#[test]
fn parent_index_selects_the_ip() {
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-range",
        Some(7),
        "<range start='192.168.122.2' end='192.168.122.9'/>",
    );
    assert_eq!(e.field, "parent-index");
    assert!(e.reason.contains("no <ip> element found at index 7"), "{e}");
    // ip[2] is IPv4 too: a second IPv4 DHCP server is refused, naming the one that exists.
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-range",
        Some(2),
        "<range start='10.1.0.10' end='10.1.0.20'/>",
    );
    assert!(
        e.reason
            .contains("dhcp is supported only for a single IPv4 address on each network"),
        "{e}"
    );
    // The IPv6 <ip> may get its own DHCP.
    let net = applied(
        &nat(),
        "add",
        "ip-dhcp-range",
        Some(1),
        "<range start='fd00::10' end='fd00::20'/>",
    );
    assert_eq!(net.ips[1].dhcp.as_ref().map(|d| d.ranges.len()), Some(1));
    // Without an index: the <ip> that already has DHCP.
    let net = applied(
        &nat(),
        "add-first",
        "ip-dhcp-range",
        None,
        "<range start='192.168.122.20' end='192.168.122.30'/>",
    );
    let ranges = &net.ips[0].dhcp.as_ref().expect("dhcp").ranges;
    assert_eq!(ranges[0].start.to_string(), "192.168.122.20");
}

#[test]
fn without_dhcp_the_first_ipv4_is_chosen() {
    let net = Network::from_xml(
        "<network><name>n</name><ip family='ipv6' address='fd00::1' prefix='64'/>\
         <ip address='10.0.0.1' prefix='24'/></network>",
    )
    .expect("net");
    let net = applied(
        &net,
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:01' ip='10.0.0.5'/>",
    );
    assert_eq!(net.ips[1].dhcp.as_ref().map(|d| d.hosts.len()), Some(1));
    let none = Network::from_xml("<network><name>n</name></network>").expect("net");
    let e = refused(
        &none,
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:01' ip='10.0.0.5'/>",
    );
    assert_eq!(e.field, "parent-index");
    assert!(e.reason.contains("no <ip> element found"), "{e}");
}

#[test]
fn delete_and_modify_match_like_libvirt() {
    // delete: every given attribute must match.
    let e = refused(
        &nat(),
        "delete",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:01' name='two'/>",
    );
    assert_eq!(e.field, "ip-dhcp-host");
    assert!(
        e.reason.contains("couldn't locate a matching dhcp host"),
        "{e}"
    );
    let net = applied(
        &nat(),
        "delete",
        "ip-dhcp-host",
        None,
        "<host ip='192.168.122.11'/>",
    );
    assert_eq!(net.ips[0].dhcp.as_ref().map(|d| d.hosts.len()), Some(1));
    // modify: found by mac, name or ip; the entry is replaced in place.
    let net = applied(
        &nat(),
        "modify",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:07' name='two' ip='192.168.122.77'/>",
    );
    let hosts = &net.ips[0].dhcp.as_ref().expect("dhcp").hosts;
    assert_eq!(hosts[1].ip.to_string(), "192.168.122.77");
    assert_eq!(hosts.len(), 2);
    // A modify that would duplicate another host's address is refused by validation.
    let e = refused(
        &nat(),
        "modify",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:02' ip='192.168.122.10'/>",
    );
    assert!(e.reason.contains("would not be valid"), "{e}");
    assert!(e.field.starts_with("ip[0].dhcp.host["), "{e}");
}

#[test]
fn dns_records() {
    let net = applied(
        &nat(),
        "add",
        "dns-host",
        None,
        "<host ip='192.168.122.5'><hostname>a</hostname></host>",
    );
    let e = refused(
        &net,
        "add",
        "dns-host",
        None,
        "<host ip='192.168.122.5'><hostname>b</hostname></host>",
    );
    assert_eq!(e.field, "dns-host.ip");
    assert_eq!(e.kind, ErrorKind::Conflict);
    // Same name on another address is fine when adding; deleting by that name is ambiguous.
    let net = applied(
        &net,
        "add",
        "dns-host",
        None,
        "<host ip='192.168.122.6'><hostname>a</hostname></host>",
    );
    let e = refused(
        &net,
        "delete",
        "dns-host",
        None,
        "<host><hostname>a</hostname></host>",
    );
    assert!(
        e.reason.contains("multiple matching DNS host records"),
        "{e}"
    );
    let e = refused(&net, "delete", "dns-host", None, "<host/>");
    assert!(e.reason.contains("missing ip and hostname"), "{e}");

    let net = applied(&nat(), "add", "dns-txt", None, "<txt name='t' value='v'/>");
    let e = refused(
        &net,
        "add-first",
        "dns-txt",
        None,
        "<txt name='t' value='w'/>",
    );
    assert_eq!(e.field, "dns-txt.name");
    assert!(e.reason.contains("already a DNS TXT record"), "{e}");
    let e = refused(&net, "delete", "dns-txt", None, "<txt name='u'/>");
    assert!(
        e.reason
            .contains("couldn't locate a matching DNS TXT record"),
        "{e}"
    );
    let net = applied(&net, "delete", "dns-txt", None, "<txt name='t'/>");
    let txts = net.dns.as_ref().map(|d| d.txts.len()).unwrap_or_default();
    assert_eq!(txts, 0);

    let e = refused(&nat(), "delete", "dns-srv", None, "<srv service='a b'/>");
    assert_eq!(e.field, "dns-srv.service");
    let e = refused(&nat(), "add", "dns-srv", None, "<srv service='x'/>");
    assert_eq!(e.field, "dns-srv.protocol");
}

#[test]
fn portgroups_and_forward_interfaces() {
    let net = applied(
        &nat(),
        "add",
        "portgroup",
        None,
        "<portgroup name='a' default='yes'/>",
    );
    let e = refused(
        &net,
        "add",
        "portgroup",
        None,
        "<portgroup name='b' default='yes'/>",
    );
    assert_eq!(e.field, "portgroup.default");
    assert!(e.reason.contains("only one default"), "{e}");
    let e = refused(&net, "add", "portgroup", None, "<portgroup name='a'/>");
    assert_eq!(e.field, "portgroup.name");
    let e = refused(&net, "delete", "portgroup", None, "<portgroup name='zz'/>");
    assert_eq!(e.field, "portgroup.name");
    assert!(e.reason.contains("couldn't find a portgroup"), "{e}");

    let net = applied(
        &nat(),
        "add",
        "forward-interface",
        None,
        "<interface dev='eth0'/>",
    );
    assert_eq!(net.forward.dev(), Some("eth0"));
    let e = refused(
        &net,
        "add",
        "forward-interface",
        None,
        "<interface dev='eth0'/>",
    );
    assert_eq!(e.field, "forward-interface.dev");
    let e = refused(
        &net,
        "add",
        "forward-interface",
        None,
        "<interface dev='a/b'/>",
    );
    assert_eq!(e.field, "forward-interface.dev");
}

#[test]
fn hostile_update_xml_is_refused() {
    let deep = format!("<host>{}{}</host>", "<a>".repeat(5000), "</a>".repeat(5000));
    let e = refused(&nat(), "add", "ip-dhcp-host", None, &deep);
    assert_eq!(e.kind, ErrorKind::Xml);
    assert_eq!(e.field, "ip-dhcp-host");
    let dtd = "<!DOCTYPE h [<!ENTITY a 'x'>]><host name='&a;' ip='192.168.122.9'/>";
    assert_eq!(
        refused(&nat(), "add", "ip-dhcp-host", None, dtd).kind,
        ErrorKind::Xml
    );
    assert_eq!(
        refused(&nat(), "add", "ip-dhcp-host", None, "").kind,
        ErrorKind::Xml
    );
    assert_eq!(
        refused(&nat(), "add", "ip-dhcp-host", None, "<host").kind,
        ErrorKind::Xml
    );
    // A fragment cannot reach out of the place it is put in.
    let e = refused(
        &nat(),
        "add",
        "ip-dhcp-host",
        None,
        "<host mac='52:54:00:00:00:09' ip='192.168.122.9'/></dhcp></ip><ip address='10.9.0.1'/>",
    );
    assert_eq!(e.kind, ErrorKind::Xml);
}

/// Issue 12, item 6: `net-update` checks its result with libvirt's define-time rules too, so
/// an update cannot bring in what `net-define` refuses (here an SRV port without a target).
#[test]
fn updates_are_checked_with_the_define_time_rules() {
    let e = refused(
        &nat(),
        "add",
        "dns-srv",
        None,
        "<srv service='ldap' protocol='tcp' port='389'/>",
    );
    assert_eq!(e.field, "dns.srv[0].port", "{e}");
    assert!(
        e.reason
            .contains("DNS SRV port attribute not permitted without target"),
        "{e}"
    );
}

/// Issue 12, item 2: the update's element is loaded by the document's loader, with the
/// document's limits, and read by the document's element readers as its own element: errors
/// deep inside it name the section and the path below it, with no wrapper document around it.
#[test]
fn update_elements_are_read_as_their_own_element() {
    let cases = [
        (
            "portgroup",
            "<portgroup name='p'><vlan><tag id='5000'/></vlan></portgroup>",
            "portgroup.vlan.tag[0].id",
        ),
        (
            "ip-dhcp-host",
            "<host mac='52:54:00:00:00:09' ip='192.168.122.9'><lease expiry='soon'/></host>",
            "ip-dhcp-host.lease.expiry",
        ),
        (
            "ip-dhcp-range",
            "<range start='192.168.122.20' end='192.168.122.30'><bogus/></range>",
            "ip-dhcp-range.bogus",
        ),
        (
            "dns-host",
            "<host ip='192.168.122.9'><hostname>a b</hostname></host>",
            "dns-host.hostname[0]",
        ),
        ("dns-txt", "<txt name='a b' value='x'/>", "dns-txt.name"),
        (
            "forward-interface",
            "<interface dev='eth0' bogus='1'/>",
            "forward-interface.bogus",
        ),
    ];
    for (section, xml, field) in cases {
        let e = refused(&nat(), "add", section, None, xml);
        assert_eq!(e.field, field, "{section} {xml}: {e}");
    }

    // The limits are the document's: the same nesting limit (64), DTDs refused, errors on the
    // section's field.
    let nested = |depth: usize| {
        format!(
            "<host mac='52:54:00:00:00:09' ip='192.168.122.9'>{}{}</host>",
            "<lease>".repeat(depth - 1),
            "</lease>".repeat(depth - 1)
        )
    };
    let e = refused(&nat(), "add", "ip-dhcp-host", None, &nested(65));
    assert_eq!(e.kind, ErrorKind::Xml, "{e}");
    assert_eq!(e.field, "ip-dhcp-host", "{e}");
    assert!(e.reason.contains("nested more than 64"), "{e}");
    let e = refused(&nat(), "add", "ip-dhcp-host", None, &nested(20));
    assert_eq!(
        e.kind,
        ErrorKind::Invalid,
        "within the limit, read as XML: {e}"
    );
    let dtd = "<!DOCTYPE h [<!ENTITY a 'x'>]><host mac='52:54:00:00:00:09' ip='192.168.122.9' \
               name='&a;'/>";
    let e = refused(&nat(), "add", "ip-dhcp-host", None, dtd);
    assert_eq!(e.kind, ErrorKind::Xml, "{e}");
    assert_eq!(e.field, "ip-dhcp-host", "{e}");
    assert!(e.reason.contains("DTD"), "{e}");
}
