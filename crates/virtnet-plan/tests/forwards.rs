//! Golden test of port forwarding in `inet virtnet`: its maps, chains and rules, and the map
//! elements of a network's forwards (an address, a range with a port shift, IPv6 on one
//! address). Set `VIRTNET_UPDATE_GOLDEN=1` to rewrite `tests/golden/forwards.nft`.

use std::path::Path;

use virtnet_model::{ForwardTarget, Network};
use virtnet_plan::forward::{add_script, delete_script, entries, objects_script};

#[test]
fn forwards_match_golden_file() {
    let net = Network::from_xml(
        "<network xmlns:virtnet='urn:virtnet:network:1'><name>x</name>\
         <forward mode='nat'/><ip address='10.0.0.1' prefix='24'/>\
         <ip family='ipv6' address='fd00:1::1' prefix='64'/>\
         <virtnet:forwards>\
         <virtnet:forward proto='tcp' port='8080' to='10.0.0.5' to-port='80'/>\
         <virtnet:forward proto='udp' port='5000-5002' listen='203.0.113.2' to='10.0.0.6'/>\
         <virtnet:forward proto='tcp' port='8443' listen='2001:db8::2' to='fd00:1::7' to-port='443'/>\
         <virtnet:forward proto='tcp' port='9000' to='fd00:1::7'/>\
         </virtnet:forwards></network>",
    )
    .unwrap();
    let mut all = Vec::new();
    for f in &net.forwards {
        let ForwardTarget::Address(to) = f.to else {
            panic!("addresses only here");
        };
        all.extend(entries(f, to));
    }
    let text = format!(
        "# objects\n{}\n# add\n{}\n# delete\n{}",
        objects_script(),
        add_script(&all),
        delete_script(&all)
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/forwards.nft");
    if std::env::var_os("VIRTNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &text).unwrap();
    }
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(want, text, "differs from {}", file.display());
}
