//! Malformed and hostile input never panics and is answered with an error: every prefix of
//! every corpus document, byte flips, and random bytes.

use virtnet_model::{ErrorKind, Network};

fn corpus() -> Vec<String> {
    let dir = virtnet_testkit::libvirt_corpus_dir().join("xml-in");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        docs.push(virtnet_testkit::read_corpus_file(&path));
    }
    assert!(docs.len() > 40);
    docs
}

#[test]
fn truncated_documents_are_errors_not_panics() {
    for doc in corpus() {
        let end = doc.trim_end().len();
        for cut in (0..end).filter(|c| doc.is_char_boundary(*c)) {
            let r = Network::from_xml(&doc[..cut]);
            assert!(
                r.is_err(),
                "prefix of {cut} bytes accepted:\n{}",
                &doc[..cut]
            );
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    // A small deterministic generator keeps the test repeatable.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for doc in corpus() {
        for _ in 0..200 {
            let mut bytes = doc.clone().into_bytes();
            for _ in 0..3 {
                let i = (next() as usize) % bytes.len();
                bytes[i] = b"<>/='\"&;x0 \n:%"[(next() as usize) % 14];
            }
            if let Ok(text) = String::from_utf8(bytes) {
                if let Ok(net) = Network::from_xml(&text) {
                    // Whatever is accepted must print and parse again.
                    Network::from_xml(&net.to_xml()).expect("own output parses");
                }
            }
        }
    }
}

#[test]
fn binary_garbage_is_an_xml_error() {
    let garbage: String = (0..4096u32)
        .map(|i| char::from_u32(i * 7 % 0xD7FF).unwrap_or('x'))
        .collect();
    let e = Network::from_xml(&garbage).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Xml, "{e}");
    assert!(e.to_string().len() < 300, "error stays short: {e}");
}

#[test]
fn deep_nesting_and_many_nodes_are_refused() {
    let deep = format!(
        "<network><name>n</name><metadata>{}{}</metadata></network>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(Network::from_xml(&deep).unwrap_err().kind, ErrorKind::Xml);
    let wide = format!(
        "<network><name>n</name><metadata>{}</metadata></network>",
        "<a/>".repeat(50_000)
    );
    assert_eq!(Network::from_xml(&wide).unwrap_err().kind, ErrorKind::Xml);
}
