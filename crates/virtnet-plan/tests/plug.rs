//! Golden tests of the `<plug>` a hypervisor's port gets ([`virtnet_plan::allocate_port`]):
//! for each network below (libvirt's kinds: nat, route, open, isolated, a host bridge, the
//! direct modes, hostdev) the completed `<networkport>` or libvirt's error, compared with
//! `tests/golden/plugs.txt`. Set `VIRTNET_UPDATE_GOLDEN=1` to rewrite it after a deliberate
//! change, then review the diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use virtnet_model::{Network, NetworkPort};
use virtnet_plan::{allocate_port, PlugError};

const PORT: &str = "<networkport>
  <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
  <owner>
    <name>memtest</name>
    <uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid>
  </owner>
  <mac address='52:54:00:7b:35:93'/>
</networkport>";

/// (case, network XML, port XML or `None` for [`PORT`], NICs in use).
/// One case: its name, the network, the port (`None`: [`PORT`]), NICs in use.
type Case = (
    &'static str,
    &'static str,
    Option<String>,
    &'static [(&'static str, usize)],
);

fn cases() -> Vec<Case> {
    let with =
        |extra: &str| Some(PORT.replace("</networkport>", &format!("{extra}</networkport>")));
    vec![
        ("nat", "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/></network>", None, &[]),
        ("nat-mac-table-kernel", "<network><name>default</name><forward mode='nat'/><bridge name='virbr0' macTableManager='kernel'/></network>", None, &[]),
        ("nat-mac-table-libvirt", "<network><name>default</name><forward mode='nat'/><bridge name='virbr0' macTableManager='libvirt'/></network>", None, &[]),
        ("route", "<network><name>r</name><forward mode='route'/><bridge name='virbr5'/></network>", None, &[]),
        ("open", "<network><name>o</name><forward mode='open'/><bridge name='virbr6'/></network>", None, &[]),
        ("isolated", "<network><name>i</name><bridge name='virbr7'/></network>", None, &[]),
        ("nat-virtualport-refused", "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/></network>",
            with("<virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' typeidversion='2'/></virtualport>"), &[]),
        ("nat-portgroup-and-network-settings",
            "<network trustGuestRxFilters='yes'><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
             <port isolated='yes'/>\
             <portgroup name='web' default='yes'><bandwidth><inbound average='100'/></bandwidth></portgroup></network>", None, &[]),
        ("nat-port-bandwidth-kept",
            "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
             <portgroup name='web' default='yes'><bandwidth><inbound average='100'/></bandwidth></portgroup></network>",
            with("<bandwidth classID='3'><inbound average='1000' peak='4000' floor='2000' burst='1024'/><outbound average='128'/></bandwidth>"), &[]),
        ("host-bridge", "<network><name>host</name><forward mode='bridge'/><bridge name='br0'/></network>", None, &[]),
        ("host-bridge-openvswitch", "<network><name>ovs</name><forward mode='bridge'/><bridge name='ovsbr0'/><virtualport type='openvswitch'/></network>", None, &[]),
        ("host-bridge-qbg-refused", "<network><name>host</name><forward mode='bridge'/><bridge name='br0'/></network>",
            with("<virtualport type='802.1Qbg'/>"), &[]),
        ("direct-bridge", "<network><name>mv</name><forward mode='bridge'><interface dev='eth1'/><interface dev='eth2'/></forward></network>", None, &[]),
        ("direct-bridge-least-used", "<network><name>mv</name><forward mode='bridge'><interface dev='eth1'/><interface dev='eth2'/><interface dev='eth3'/></forward></network>", None, &[("eth1", 2), ("eth2", 1), ("eth3", 1)]),
        ("direct-vepa", "<network><name>v</name><forward mode='vepa' dev='eth0'/></network>", None, &[("eth0", 5)]),
        ("direct-private", "<network><name>p</name><forward mode='private'><interface dev='eth0'/></forward></network>", None, &[]),
        ("direct-passthrough-first-free", "<network><name>pt</name><forward mode='passthrough'><interface dev='eth1'/><interface dev='eth2'/></forward></network>", None, &[("eth1", 1)]),
        ("direct-passthrough-exhausted", "<network><name>pt</name><forward mode='passthrough'><interface dev='eth1'/></forward></network>", None, &[("eth1", 1)]),
        ("direct-private-qbh-exclusive", "<network><name>p</name><forward mode='private'><interface dev='eth0'/></forward></network>",
            with("<virtualport type='802.1Qbh'><parameters profileid='x'/></virtualport>"), &[("eth0", 1)]),
        ("direct-openvswitch-refused", "<network><name>v</name><forward mode='vepa' dev='eth0'/></network>",
            with("<virtualport type='openvswitch'/>"), &[]),
        ("direct-pf-only", "<network><name>pf</name><forward mode='passthrough'><pf dev='eth0'/></forward></network>", None, &[]),
        ("hostdev-refused", "<network><name>hd</name><forward mode='hostdev' managed='yes'><address type='pci' domain='0' bus='4' slot='0' function='1'/></forward></network>", None, &[]),
    ]
}

fn render() -> String {
    let mut out = String::new();
    for (name, net_xml, port_xml, used) in cases() {
        let net = Network::from_xml(net_xml).unwrap_or_else(|e| panic!("{name}: network: {e}"));
        let port = NetworkPort::from_xml(port_xml.as_deref().unwrap_or(PORT))
            .unwrap_or_else(|e| panic!("{name}: port: {e}"));
        let used: BTreeMap<&str, usize> = used.iter().copied().collect();
        let connections = |dev: &str| used.get(dev).copied().unwrap_or(0);
        let _ = writeln!(out, "## {name}");
        match allocate_port(&net, &port, &connections) {
            Ok(p) => out.push_str(&p.to_xml()),
            Err(e) => {
                let kind = match e {
                    PlugError::Unsupported(_) => "unsupported",
                    PlugError::NoDevice(_) => "no-device",
                    PlugError::Exhausted(_) => "exhausted",
                };
                let _ = writeln!(out, "error ({kind}): {e}");
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn plugs_match_the_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plugs.txt");
    let got = render();
    if std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(got == want, "plugs differ from {}:\n{got}", path.display());
}

/// The answers are documents libvirt's schema accepts: they parse back unchanged.
#[test]
fn every_answer_parses_back() {
    for (name, net_xml, port_xml, _) in cases() {
        let net = Network::from_xml(net_xml).expect("network");
        let port = NetworkPort::from_xml(port_xml.as_deref().unwrap_or(PORT)).expect("port");
        if let Ok(p) = allocate_port(&net, &port, &|_| 0) {
            let again =
                NetworkPort::from_xml(&p.to_xml()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(again, p, "{name}");
        }
    }
}
