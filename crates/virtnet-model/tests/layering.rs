//! The modules of `virtnet-model` form layers: each module uses only modules of lower layers,
//! so there is no import cycle (issue 12, item 1). The test reads the sources, collects every
//! `crate::…` and `super::…` path outside comments, and checks each edge against the table.
//! A new module must be added to the table, which is where its place in the layering is
//! decided.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Module → layer. A module may use modules of strictly lower layers only.
const LAYERS: &[(&str, u32)] = &[
    // Leaves: no `crate::` use at all.
    ("error", 0),
    ("mac", 0),
    ("subnet", 0),
    ("ifname", 0),
    ("portforward", 5),
    // `<virtnet:overlay>`'s type (its uniqueness among networks is define's).
    ("overlay", 7),
    // The typed definition.
    ("network", 10),
    ("interface", 20),
    // libvirt XML in and out.
    ("xml", 30),
    ("xml::load", 31),
    ("xml::parse", 32),
    ("xml::format", 33),
    ("xml::stored", 34),
    // libvirt's <networkport>: its own types, read and written with the XML layers' parts.
    ("networkport", 35),
    // What define adds, and net-update on top of it.
    ("rules", 40),
    ("define", 50),
    ("update", 60),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/xml/parse.rs` → `xml::parse`, `src/xml/mod.rs` → `xml`, `src/lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The module a path after `crate::` (or `super::` in `parent`) names.
fn target(path: &str, parent: Option<&str>) -> String {
    let segs: Vec<&str> = path
        .split("::")
        .map(|s| s.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_')))
        .collect();
    let first = segs.first().copied().unwrap_or_default();
    let base = match parent {
        Some(p) => format!("{p}::{first}"),
        None => first.to_string(),
    };
    let sub = segs.get(1).copied().unwrap_or_default();
    let nested = format!("{base}::{sub}");
    if layer(&nested).is_some() {
        nested
    } else if layer(&base).is_some() {
        base
    } else if parent.is_some() {
        // `super::NAME` in a submodule of `xml` names an item of `xml` itself.
        parent.unwrap_or_default().to_string()
    } else {
        format!("<crate root: {first}>")
    }
}

fn edges() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let from = module_of(&src, &file);
        if from == "lib" {
            continue; // The crate root is the facade: it declares and re-exports everything.
        }
        let parent = from.rsplit_once("::").map(|(p, _)| p.to_string());
        let text = std::fs::read_to_string(&file).expect("read source");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (marker, base) in [("crate::", None), ("super::", parent.as_deref())] {
                for (i, _) in code.match_indices(marker) {
                    let rest = &code[i + marker.len()..];
                    if marker == "super::" && base.is_none() {
                        continue;
                    }
                    if let Some(group) = rest.strip_prefix('{') {
                        // `use crate::{a, b::c};`
                        let inner = group.split('}').next().unwrap_or_default();
                        for item in inner.split(',') {
                            let to = target(item.trim(), base);
                            if to != from {
                                out.insert((from.clone(), to));
                            }
                        }
                    } else {
                        let to = target(rest, base);
                        if to != from && !rest.starts_with("tests") {
                            out.insert((from.clone(), to));
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn model_modules_form_layers_without_cycles() {
    let edges = edges();
    let mut bad = Vec::new();
    for (from, to) in &edges {
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) => bad.push(format!("{from}: module missing from LAYERS")),
            _ => bad.push(format!("{from} -> {to}: not a lower layer")),
        }
    }
    let listing: Vec<String> = edges.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
    println!("{}", listing.join("\n"));
    assert!(
        bad.is_empty(),
        "{}\nedges:\n{}",
        bad.join("\n"),
        listing.join("\n")
    );
    // The test sees the edges it checks (a parser that found none would pass vacuously).
    assert!(edges.contains(&("xml::parse".to_string(), "subnet".to_string())));
    assert!(edges.contains(&("define".to_string(), "rules".to_string())));
}
