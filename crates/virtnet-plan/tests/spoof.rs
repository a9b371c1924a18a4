//! Golden test of the anti-spoofing table (`table bridge virtnet_ports`) and of the elements
//! a port gets on each example network, compared with `tests/golden/spoof.nft`.
//!
//! Set `VIRTNET_UPDATE_GOLDEN=1` to rewrite the file after a deliberate change.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use virtnet_model::Network;
use virtnet_plan::spoof::{add_elements_script, changes, table_script, PortGuard};
use virtnet_testkit::shared_dir;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x6c, 0x3c, 0x01];

fn render() -> String {
    let mut s = String::from("# table\n");
    s.push_str(&table_script());
    for example in [
        "default-nat",
        "full-featured",
        "isolated",
        "routed",
        "open",
        "host-bridge",
    ] {
        let path = shared_dir().join("examples").join(format!("{example}.xml"));
        let xml = std::fs::read_to_string(&path).expect("example");
        let net = Network::from_xml(&xml).expect("example parses");
        let _ = writeln!(s, "\n# port vnet0 on {example} (mode {})", net.forward.mode);
        match PortGuard::for_network("vnet0", MAC, &net, [Ipv4Addr::new(192, 168, 122, 50)]) {
            None => s.push_str("# not guarded\n"),
            Some(g) => s.push_str(&add_elements_script(&g.elements())),
        }
    }
    s
}

#[test]
fn the_anti_spoofing_table_matches_its_golden_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/spoof.nft");
    let text = render();
    if std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("golden file (VIRTNET_UPDATE_GOLDEN=1)");
    assert_eq!(text, want, "spoof plan differs from {}", path.display());
}

#[test]
fn a_lease_change_touches_only_that_address_of_that_port() {
    let xml = std::fs::read_to_string(shared_dir().join("examples/default-nat.xml")).expect("x");
    let net = Network::from_xml(&xml).expect("parses");
    let a = Ipv4Addr::new(192, 168, 122, 50);
    let b = Ipv4Addr::new(192, 168, 122, 51);
    let old = PortGuard::for_network("vnet0", MAC, &net, [a]).expect("guarded");
    let new = PortGuard::for_network("vnet0", MAC, &net, [b]).expect("guarded");
    let (add, del) = changes(&old.elements(), &new.elements());
    assert_eq!(add, vec![PortGuard::address_element("vnet0", b)]);
    assert_eq!(del, vec![PortGuard::address_element("vnet0", a)]);
}
