//! libvirt 9.0's `<networkport>` documents (`shared/conformance/libvirt-9.0/networkport/`,
//! libvirt's own round-trip corpus): each parses and is written back byte for byte, and the
//! written form is a fixed point.

use virtnet_model::{DirectPlugMode, NetworkPort, Plug};
use virtnet_testkit::shared_dir;

fn corpus() -> Vec<(String, String)> {
    let dir = shared_dir().join("conformance/libvirt-9.0/networkport");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, text)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_document_round_trips() {
    let docs = corpus();
    assert_eq!(docs.len(), 7, "the corpus has seven documents");
    let mut failures = Vec::new();
    for (name, text) in &docs {
        match NetworkPort::from_xml(text) {
            Ok(port) => {
                let got = port.to_xml();
                if got.trim_end() != text.trim_end() {
                    failures.push(format!("{name}:\n--- expected\n{text}\n--- got\n{got}"));
                }
                match NetworkPort::from_xml(&got) {
                    Ok(again) if again == port => {}
                    Ok(_) => failures.push(format!("{name}: not a fixed point")),
                    Err(e) => failures.push(format!("{name}: own output refused: {e}")),
                }
                // The store keeps the port as JSON: that must round-trip too.
                let json = serde_json::to_string(&port).expect("serialises");
                let back: NetworkPort = serde_json::from_str(&json).expect("deserialises");
                if back != port {
                    failures.push(format!("{name}: JSON round trip differs"));
                }
            }
            Err(e) => failures.push(format!("{name}: refused: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_plugs_are_read_as_typed() {
    let docs = corpus();
    let get = |n: &str| {
        let (_, text) = docs.iter().find(|(name, _)| name == n).expect("present");
        NetworkPort::from_xml(text).expect("parses")
    };
    assert_eq!(get("plug-none.xml").plug, None);
    assert_eq!(
        get("plug-direct.xml").plug,
        Some(Plug::Direct {
            dev: "ens3".into(),
            mode: DirectPlugMode::Vepa
        })
    );
    let net = get("plug-network.xml");
    assert_eq!(net.plug.as_ref().and_then(Plug::bridge), Some("virbr0"));
    assert_eq!(net.class_id, Some(1729));
    assert_eq!(net.group.as_deref(), Some("web1"));
    assert_eq!(net.owner_name, "memtest");
    let inbound = net.bandwidth.and_then(|b| b.inbound).expect("inbound");
    assert_eq!((inbound.average, inbound.floor), (Some(1000), Some(2000)));
    assert!(matches!(
        get("plug-hostdev-pci.xml").plug,
        Some(Plug::HostdevPci {
            managed: Some(true),
            ..
        })
    ));
}
