//! libvirt 9.0's own network XML test corpus (`shared/conformance/libvirt-9.0`): every input
//! marked `ok` parses and re-serialises to libvirt's expected output; every `fail` input is
//! rejected.

use virtnet_model::{GuestInterface, InterfaceSource, Network};
use virtnet_testkit::{
    canonical_xml as canonical, corpus_cases, corpus_input, corpus_output, shared_dir,
};

#[test]
fn libvirt_xml_corpus() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in corpus_cases() {
        let name = case.name.as_str();
        let expect = if case.ok { "ok" } else { "fail" };
        let input = corpus_input(name);
        let parsed = Network::from_xml(&input);
        checked += 1;
        match (expect, parsed) {
            ("ok", Ok(net)) => {
                let expected = corpus_output(name);
                let got = net.to_xml();
                if canonical(&got) != canonical(&expected) {
                    failures.push(format!(
                        "{name}: output differs\n--- expected\n{expected}\n--- got\n{got}"
                    ));
                }
                // What we print must parse back and print the same again (normalised form is
                // a fixed point).
                match Network::from_xml(&got) {
                    Ok(again) if again.to_xml() == got => {}
                    Ok(_) => failures.push(format!("{name}: output is not a fixed point")),
                    Err(e) => failures.push(format!("{name}: own output rejected: {e}")),
                }
            }
            ("ok", Err(e)) => failures.push(format!("{name}: rejected: {e}")),
            ("fail", Ok(_)) => failures.push(format!("{name}: accepted but libvirt rejects it")),
            ("fail", Err(e)) => assert!(!e.reason.is_empty(), "{name}: empty error"),
            (other, _) => unreachable!("expectation {other}"),
        }
    }
    assert!(checked >= 46, "only {checked} corpus entries found");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every example network of the seeds parses; the RHEL5 one with its truncated UUID is refused
/// with an error that names `uuid` and shows the value.
#[test]
fn shared_examples() {
    let dir = shared_dir().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("dir entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        if !file.ends_with(".xml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("read example");
        if file.starts_with("guest-interface") {
            let iface = GuestInterface::from_xml(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                iface.mac.map(|m| m.to_string()).as_deref(),
                Some("52:54:00:12:0e:f7")
            );
            let expected = if file.contains("bridge") {
                InterfaceSource::Bridge("virbr1".into())
            } else {
                InterfaceSource::Network("default".into())
            };
            assert_eq!(iface.source, expected, "{file}");
            continue;
        }
        let parsed = Network::from_xml(&text);
        if file == "default-rhel5-bad-uuid.xml" {
            let e = parsed.expect_err("bad uuid must be rejected");
            assert_eq!(e.field, "uuid");
            let msg = e.to_string();
            assert!(
                msg.contains("uuid") && msg.contains("49a0ceb-5662-4a61-8149-98ea750d393b"),
                "{msg}"
            );
        } else {
            let net = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
            let again = Network::from_xml(&net.to_xml())
                .unwrap_or_else(|e| panic!("{file} round trip: {e}"));
            assert_eq!(again.to_xml(), net.to_xml(), "{file} round trip");
        }
    }
    assert!(seen >= 8, "examples not found in {}", dir.display());
}
