//! # virtnet-testkit
//!
//! Support shared by virtnet's test suites. Today: finding `../shared` (libvirt's conformance
//! corpus, the seeds' example XML) and comparing XML the way the corpus README asks; and the
//! network-namespace harness for integration tests (needs root and iproute2):
//!
//! - [`Netns`]: a namespace owned by the test, removed with everything started in it;
//! - [`Lab`] and [`Guest`]: a host, an upstream serving HTTP on 203.0.113.1, and guests
//!   joined to host bridges;
//! - [`Daemon`]: a real virtnetd in a namespace, with the `virtnet` CLI pointed at it;
//! - [`dhcp`]: busybox `udhcpc` in a guest ([`Guest::udhcpc`]) with a lease-applying script;
//! - [`Virtqemud`]: libvirt 9.0's QEMU daemon (built by `scripts/build-libvirt.sh`) isolated in
//!   a namespace, `/run/libvirt` a directory of the test's, driven with Debian's `virsh`; and
//!   [`Virtnetworkd`], libvirt's own network daemon, run the same way.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

mod daemon;
pub mod dhcp;
pub mod fabric;
pub mod frr;
pub mod libvirtd;
mod netns;
pub mod pty;
pub mod qemu;
mod thread_netns;
mod topology;
pub mod virtqemud;

pub use daemon::{virtnet_bin, virtnetd_bin, Daemon};
pub use frr::FrrPathspace;
pub use libvirtd::{virsh, virsh_with, Libvirtd};
pub use netns::{netns_pids, pid_running, Netns, NsChild};
pub use qemu::{Lease, QemuGuest};
pub use thread_netns::{enter_thread_netns, in_thread_netns};
pub use topology::{
    Guest, Lab, HOST_UPLINK_ADDR, HOST_UPLINK_ADDR6, UPLINK_PREFIX, UPSTREAM_ADDR, UPSTREAM_ADDR6,
    UPSTREAM_URL,
};
pub use virtqemud::{DomainSpec, LibvirtDaemon, Nic, Virtnetworkd, Virtqemud};

/// Runs a build script (`bash SCRIPT`) that prints the directory it built into as its last
/// line of output; panics with its output when it fails.
pub(crate) fn run_build_script(script: &Path) -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout: {}\nstderr: {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// `unshare` in front of a daemon the testkit isolates: its own mount namespace (private
/// propagation) and PID namespace, whose processes all die with its first one.
pub(crate) const UNSHARE_ISOLATED: [&str; 8] = [
    "unshare",
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--propagation",
    "private",
];

/// Polls `done` every 100 ms for up to `limit`; whether it became true. For what the system
/// reaches by itself a moment later (a process gone, a record written), never for speed.
pub fn eventually(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The shared directory: `$VIRTNET_SHARED_DIR`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIRTNET_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// `shared/conformance/libvirt-9.0`.
pub fn libvirt_corpus_dir() -> PathBuf {
    shared_dir().join("conformance/libvirt-9.0")
}

/// One entry of `xml-MANIFEST.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusCase {
    /// File stem in `xml-in/` and `xml-out/`.
    pub name: String,
    /// libvirt accepts the input (`ok`) or rejects it (`fail`).
    pub ok: bool,
}

/// The cases of libvirt's network XML corpus, in manifest order. Panics with the path when the
/// corpus is missing: a test that cannot find its data must fail, not pass.
pub fn corpus_cases() -> Vec<CorpusCase> {
    let path = libvirt_corpus_dir().join("xml-MANIFEST.tsv");
    let manifest = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let name = cols.next().unwrap_or_default().to_string();
            let ok = cols.next() == Some("ok");
            CorpusCase { name, ok }
        })
        .collect()
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
        let dir = path.parent().unwrap_or(Path::new("."));
        return read_corpus_file(&dir.join(target));
    }
    text
}

/// The input (`xml-in/NAME.xml`) of a corpus case.
pub fn corpus_input(name: &str) -> String {
    read_corpus_file(
        &libvirt_corpus_dir()
            .join("xml-in")
            .join(format!("{name}.xml")),
    )
}

/// libvirt's expected output (`xml-out/NAME.xml`) of a corpus case.
pub fn corpus_output(name: &str) -> String {
    read_corpus_file(
        &libvirt_corpus_dir()
            .join("xml-out")
            .join(format!("{name}.xml")),
    )
}

/// A canonical form of an XML document: whitespace-only text dropped, attributes sorted,
/// `<x></x>` equal to `<x/>` — the comparison the corpus README asks for.
pub fn canonical_xml(xml: &str) -> String {
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

/// A minimal isolated network definition with an optional UUID and bridge name.
pub fn network_xml(name: &str, uuid: Option<&str>, bridge: Option<&str>) -> String {
    let uuid = uuid
        .map(|u| format!("<uuid>{u}</uuid>"))
        .unwrap_or_default();
    let bridge = bridge
        .map(|b| format!("<bridge name='{b}'/>"))
        .unwrap_or_default();
    format!("<network><name>{name}</name>{uuid}{bridge}</network>")
}

/// An `nft list table` listing in a canonical form for comparisons: the table's objects sorted
/// by their text and each set's elements sorted (nft lists objects in creation order and
/// interval-set elements in the kernel's order, neither of which changes a verdict). An empty
/// listing (no table) stays empty.
pub fn canonical_nft_table(listing: &str) -> String {
    let inner = listing.trim();
    let inner = match inner.find('{') {
        Some(open) if inner.starts_with("table ") => inner[open + 1..].trim_end_matches('}'),
        _ => inner,
    };
    let mut blocks: Vec<String> = inner
        .split("\n\n")
        .map(|block| {
            block
                .replace(",\n", ", ")
                .lines()
                .map(|line| match line.trim().strip_prefix("elements = { ") {
                    Some(rest) => {
                        let mut items: Vec<&str> =
                            rest.trim_end_matches(" }").split(", ").collect();
                        items.sort();
                        format!("elements = {{ {} }}", items.join(", "))
                    }
                    None => line.trim().to_string(),
                })
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|b| !b.is_empty())
        .collect();
    blocks.sort();
    blocks.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ignores_attribute_order_whitespace_and_empty_forms() {
        assert_eq!(
            canonical_xml("<a y='1' x=\"2\">\n  <b></b>\n</a>"),
            canonical_xml("<a x='2' y='1'><b/></a>")
        );
        assert_ne!(canonical_xml("<a x='1'/>"), canonical_xml("<a x='2'/>"));
    }
}
