//! Shared helpers for the model's corpus tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared` next to the repository (override with `VIRTNET_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("VIRTNET_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Reads a corpus file. libvirt's corpus stores some files as symlinks, which arrive here as
/// one-line files holding the link target (`../networkxml2confdata/x.xml`); follow those.
pub fn read_corpus_file(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let trimmed = text.trim();
    if !trimmed.starts_with('<') && trimmed.ends_with(".xml") && !trimmed.contains('\n') {
        let target = trimmed
            .replace("networkxml2confdata", "dnsmasq-conf")
            .replace("networkxml2xmlin", "xml-in")
            .replace("networkxml2xmlout", "xml-out");
        let dir = path.parent().expect("corpus file has a parent");
        return read_corpus_file(&dir.join(target));
    }
    text
}

/// A canonical form of an XML document: whitespace-only text dropped, attributes sorted,
/// `<x></x>` equal to `<x/>`. This is the comparison the corpus README asks for.
pub fn canonical(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad XML {e}:\n{xml}"));
    let mut out = String::new();
    walk(doc.root_element(), 0, &mut out);
    out
}

fn walk(node: roxmltree::Node, depth: usize, out: &mut String) {
    let tag = node.tag_name();
    out.push_str(&"  ".repeat(depth));
    out.push('<');
    if let Some(ns) = tag.namespace() {
        out.push_str(&format!("{{{ns}}}"));
    }
    out.push_str(tag.name());
    let mut attrs: Vec<String> = node
        .attributes()
        .map(|a| format!(" {}={:?}", a.name(), a.value()))
        .collect();
    attrs.sort();
    for a in attrs {
        out.push_str(&a);
    }
    out.push_str(">\n");
    for child in node.children() {
        if child.is_element() {
            walk(child, depth + 1, out);
        } else if let Some(t) = child.text().map(str::trim).filter(|t| !t.is_empty()) {
            out.push_str(&"  ".repeat(depth + 1));
            out.push_str(&format!("{t:?}\n"));
        }
    }
}
