//! netplan: `/etc/netplan/*.yaml`.
//!
//! The NIC's definition (under `ethernets`, `bonds` or `vlans`; found by id, `set-name` or an exact
//! `match: name:`) loses its IP keys and gets `dhcp4: false`; the file that defines it gets
//! `bridges: <bridge>:` with `interfaces: [<id>]`, `dhcp4: true` or `addresses`,
//! `routes: - to: default via:` and `nameservers`, the NIC's other IP keys moved verbatim (for
//! example `dhcp-identifier`, `nameservers.search`, non-default routes), `macaddress` and
//! `parameters: {stp, forward-delay}`. Keys netplan does not know stay where they were. Comments
//! other than the file's leading block are not kept (the original is in the backup).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

use crate::fsutil;
use crate::{static_or_none, Addressing, BridgePlan, Change, Detected, HostCfgError};

pub(crate) const DIR: &str = "/etc/netplan";
const KINDS: [&str; 4] = ["ethernets", "bonds", "vlans", "bridges"];

fn key(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

fn truthy(v: &Yaml) -> bool {
    match v {
        Yaml::Boolean(b) => *b,
        Yaml::String(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "y" | "true" | "on"),
        _ => false,
    }
}

struct NpFile {
    path: PathBuf,
    text: String,
    doc: Yaml,
}

fn load(root: &Path) -> Result<Vec<NpFile>, HostCfgError> {
    let mut out = Vec::new();
    for path in fsutil::list_dir(root, Path::new(DIR), |n| {
        n.ends_with(".yaml") && !n.starts_with('.')
    })? {
        let Some(text) = fsutil::read_text(root, &path)? else {
            continue;
        };
        let docs = YamlLoader::load_from_str(&text).map_err(|e| HostCfgError::Parse {
            path: path.clone(),
            line: Some(e.marker().line()),
            reason: e.to_string(),
        })?;
        let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
        out.push(NpFile { path, text, doc });
    }
    Ok(out)
}

/// The `(kind, id)` under which `iface` is defined in `doc`.
fn find_def(doc: &Yaml, iface: &str) -> Option<(&'static str, String)> {
    let net = &doc["network"];
    for kind in KINDS {
        let Yaml::Hash(defs) = &net[kind] else {
            continue;
        };
        for (id, def) in defs {
            let Some(id) = id.as_str() else { continue };
            let set_name = def["set-name"].as_str();
            let match_name = def["match"]["name"].as_str();
            if set_name == Some(iface)
                || (set_name.is_none() && (id == iface || match_name == Some(iface)))
            {
                return Some((kind, id.to_string()));
            }
        }
    }
    None
}

/// Whether a bridge's `interfaces` already lists `id`, or `name` is defined as a bridge.
fn bridge_conflict(doc: &Yaml, id: &str, name: &str) -> Option<String> {
    let Yaml::Hash(bridges) = &doc["network"]["bridges"] else {
        return None;
    };
    for (b, def) in bridges {
        let b = b.as_str().unwrap_or("");
        if b == name {
            return Some(format!("{name} is already configured"));
        }
        if let Yaml::Array(ifs) = &def["interfaces"] {
            if ifs.iter().any(|i| i.as_str() == Some(id)) {
                return Some(format!("{id} is already a port of {b}"));
            }
        }
    }
    None
}

fn is_default_route(r: &Yaml) -> bool {
    matches!(r["to"].as_str(), Some("default" | "0.0.0.0/0" | "::/0"))
}

fn addressing(defs: &[&Yaml]) -> Addressing {
    let mut dhcp = false;
    let mut addresses = Vec::new();
    let mut gateway: Option<IpAddr> = None;
    let mut dns = Vec::new();
    for def in defs {
        if !def["dhcp4"].is_badvalue() {
            dhcp = truthy(&def["dhcp4"]);
        }
        if let Yaml::Array(a) = &def["addresses"] {
            for item in a {
                let s = match item {
                    Yaml::String(s) => Some(s.as_str()),
                    Yaml::Hash(h) => h.keys().next().and_then(|k| k.as_str()),
                    _ => None,
                };
                addresses.extend(s.and_then(crate::parse_cidr));
            }
        }
        for gw in ["gateway4", "gateway6"] {
            if let Some(g) = def[gw].as_str().and_then(|g| g.parse().ok()) {
                gateway.get_or_insert(g);
            }
        }
        if let Yaml::Array(routes) = &def["routes"] {
            for r in routes.iter().filter(|r| is_default_route(r)) {
                if let Some(g) = r["via"].as_str().and_then(|g| g.parse().ok()) {
                    gateway.get_or_insert(g);
                }
            }
        }
        if let Yaml::Array(a) = &def["nameservers"]["addresses"] {
            dns.extend(a.iter().filter_map(|d| d.as_str()?.parse::<IpAddr>().ok()));
        }
    }
    if dhcp {
        Addressing::Dhcp
    } else {
        static_or_none(addresses, gateway, dns)
    }
}

pub(crate) fn detect(
    root: &Path,
    iface: &str,
) -> Result<Option<(Vec<PathBuf>, Addressing)>, HostCfgError> {
    let files = load(root)?;
    let mut hit = Vec::new();
    let mut defs = Vec::new();
    for f in &files {
        if let Some((kind, id)) = find_def(&f.doc, iface) {
            hit.push(f.path.clone());
            defs.push(&f.doc["network"][kind][id.as_str()]);
        }
    }
    if hit.is_empty() {
        return Ok(None);
    }
    Ok(Some((hit, addressing(&defs))))
}

/// Keys that are about IP configuration: they leave the NIC.
const IP_KEYS: [&str; 17] = [
    "addresses",
    "dhcp4",
    "dhcp6",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "dhcp-identifier",
    "gateway4",
    "gateway6",
    "routes",
    "routing-policy",
    "nameservers",
    "accept-ra",
    "ipv6-privacy",
    "ipv6-address-generation",
    "ipv6-address-token",
    "link-local",
    "optional-addresses",
];

fn leading_comments(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('#') || (t.is_empty() && !out.is_empty()) {
            out.push_str(l);
            out.push('\n');
        } else if !t.is_empty() {
            break;
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn bridge_def(plan: &BridgePlan, id: &str, moved: &Hash) -> Hash {
    let mut b = Hash::new();
    b.insert(key("interfaces"), Yaml::Array(vec![key(id)]));
    let mut routes: Vec<Yaml> = Vec::new();
    let mut ns = Hash::new();
    match &plan.addressing {
        Addressing::Dhcp => {
            b.insert(key("dhcp4"), Yaml::Boolean(true));
        }
        Addressing::None => {}
        Addressing::Static {
            addresses,
            gateway,
            dns,
        } => {
            b.insert(
                key("addresses"),
                Yaml::Array(
                    addresses
                        .iter()
                        .map(|(a, p)| key(&format!("{a}/{p}")))
                        .collect(),
                ),
            );
            if let Some(g) = gateway {
                let mut r = Hash::new();
                r.insert(key("to"), key("default"));
                r.insert(key("via"), key(&g.to_string()));
                routes.push(Yaml::Hash(r));
            }
            if !dns.is_empty() {
                ns.insert(
                    key("addresses"),
                    Yaml::Array(dns.iter().map(|d| key(&d.to_string())).collect()),
                );
            }
        }
    }
    let plan_static = matches!(plan.addressing, Addressing::Static { .. });
    if let Some(Yaml::Array(old)) = moved.get(&key("routes")) {
        routes.extend(
            old.iter()
                .filter(|r| !(plan_static && is_default_route(r)))
                .cloned(),
        );
    }
    if !routes.is_empty() {
        b.insert(key("routes"), Yaml::Array(routes));
    }
    if let Some(Yaml::Hash(old)) = moved.get(&key("nameservers")) {
        for (k, v) in old {
            if !(plan_static && k.as_str() == Some("addresses")) {
                ns.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if !ns.is_empty() {
        b.insert(key("nameservers"), Yaml::Hash(ns));
    }
    for (k, v) in moved {
        let name = k.as_str().unwrap_or("");
        let regenerated = matches!(name, "routes" | "nameservers" | "gateway4" | "gateway6")
            || (plan_static && matches!(name, "addresses" | "dhcp4"))
            || (!plan_static && matches!(name, "dhcp4"))
            || (!plan_static && name == "addresses" && plan.addressing == Addressing::None);
        if !regenerated {
            b.insert(k.clone(), v.clone());
        }
    }
    if let Some(mac) = &plan.mac {
        b.insert(key("macaddress"), key(&crate::fmt_mac(mac)));
    }
    let mut params = Hash::new();
    params.insert(key("stp"), Yaml::Boolean(plan.stp));
    params.insert(key("forward-delay"), Yaml::Integer(i64::from(plan.delay)));
    b.insert(key("parameters"), Yaml::Hash(params));
    b
}

fn emit(path: &Path, text: &str, doc: &Yaml) -> Result<String, HostCfgError> {
    let body = crate::yaml::emit(doc).map_err(|reason| HostCfgError::Parse {
        path: path.to_path_buf(),
        line: None,
        reason,
    })?;
    let head = leading_comments(text);
    Ok(if head.is_empty() {
        body
    } else {
        format!("{head}{body}")
    })
}

pub(crate) fn render(
    plan: &BridgePlan,
    _detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    let files = load(root)?;
    let mut change = Change::default();
    let mut found: Vec<(usize, &'static str, String)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if let Some((kind, id)) = find_def(&f.doc, &plan.iface) {
            found.push((i, kind, id));
        }
    }
    for f in &files {
        let id = found.first().map(|x| x.2.as_str()).unwrap_or(&plan.iface);
        if let Some(reason) = bridge_conflict(&f.doc, id, &plan.bridge) {
            return Err(HostCfgError::Unsupported {
                path: f.path.clone(),
                reason,
            });
        }
    }
    if found.is_empty() {
        let path = Path::new(DIR).join(format!("90-virtnet-{}.yaml", plan.bridge));
        if fsutil::exists(root, &path)? {
            return Err(HostCfgError::Unsupported {
                path,
                reason: "already exists".into(),
            });
        }
        let mut eth = Hash::new();
        eth.insert(key("dhcp4"), Yaml::Boolean(false));
        if let Some(mtu) = plan.mtu {
            eth.insert(key("mtu"), Yaml::Integer(i64::from(mtu)));
        }
        let mut ethernets = Hash::new();
        ethernets.insert(key(&plan.iface), Yaml::Hash(eth));
        let mut bridges = Hash::new();
        bridges.insert(
            key(&plan.bridge),
            Yaml::Hash(bridge_def(plan, &plan.iface, &Hash::new())),
        );
        let mut net = Hash::new();
        net.insert(key("version"), Yaml::Integer(2));
        net.insert(key("ethernets"), Yaml::Hash(ethernets));
        net.insert(key("bridges"), Yaml::Hash(bridges));
        let mut doc = Hash::new();
        doc.insert(key("network"), Yaml::Hash(net));
        let text = emit(&path, "", &Yaml::Hash(doc))?;
        change.write.push((path, text));
        return Ok(change);
    }
    // Strip the IP keys from every definition of the NIC, collecting them (later files win).
    let mut moved = Hash::new();
    let mut docs: Vec<Yaml> = Vec::new();
    for (fi, kind, id) in &found {
        let mut doc = files[*fi].doc.clone();
        let def =
            hash_mut(&mut doc, &["network", kind, id]).ok_or_else(|| HostCfgError::Parse {
                path: files[*fi].path.clone(),
                line: None,
                reason: format!("network.{kind}.{id} is not a mapping"),
            })?;
        for k in IP_KEYS {
            if let Some(v) = def.remove(&key(k)) {
                moved.insert(key(k), v);
            }
        }
        def.insert(key("dhcp4"), Yaml::Boolean(false));
        if let Some(mtu) = plan.mtu {
            def.insert(key("mtu"), Yaml::Integer(i64::from(mtu)));
        }
        docs.push(doc);
    }
    // The bridge goes into the first file that defines the NIC.
    let (fi0, _, id0) = &found[0];
    {
        let net = hash_mut(&mut docs[0], &["network"]).ok_or_else(|| HostCfgError::Parse {
            path: files[*fi0].path.clone(),
            line: None,
            reason: "network is not a mapping".into(),
        })?;
        let bridges = net
            .entry(key("bridges"))
            .or_insert_with(|| Yaml::Hash(Hash::new()));
        if !matches!(bridges, Yaml::Hash(_)) {
            *bridges = Yaml::Hash(Hash::new());
        }
        if let Yaml::Hash(b) = bridges {
            b.insert(key(&plan.bridge), Yaml::Hash(bridge_def(plan, id0, &moved)));
        }
    }
    for ((fi, _, _), doc) in found.iter().zip(docs) {
        let f = &files[*fi];
        change
            .write
            .push((f.path.clone(), emit(&f.path, &f.text, &doc)?));
        change.backup.push((f.path.clone(), f.text.clone()));
    }
    Ok(change)
}

fn hash_mut<'a>(doc: &'a mut Yaml, path: &[&str]) -> Option<&'a mut Hash> {
    let mut cur = doc;
    for p in path {
        match cur {
            Yaml::Hash(h) => cur = h.get_mut(&key(p))?,
            _ => return None,
        }
    }
    match cur {
        Yaml::Hash(h) => Some(h),
        Yaml::Null => {
            *cur = Yaml::Hash(Hash::new());
            match cur {
                Yaml::Hash(h) => Some(h),
                _ => None,
            }
        }
        _ => None,
    }
}
