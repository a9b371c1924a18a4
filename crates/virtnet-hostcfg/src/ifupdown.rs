//! Debian's ifupdown: `/etc/network/interfaces` and the files it pulls in with `source` and
//! `source-directory`.
//!
//! The NIC's stanzas become one `iface <nic> inet manual` (keeping its link options: `mtu`,
//! `hwaddress`, `up`/`down` commands, unknown options); right after it come `auto <bridge>` and
//! `iface <bridge> inet static|dhcp|manual` with the addressing (`address`/`netmask`/`broadcast`/
//! `gateway`/`dns-nameservers`, regenerated from the plan; other IP options such as `dns-search`
//! or `metric` moved verbatim), then `bridge_ports`, `bridge_stp`, `bridge_waitport 0`,
//! `bridge_fd` and `bridge_hw` (bridge-utils' hook), the shape of a hand-written
//! `interfaces.d` bridge. Extra addresses get extra `iface <bridge> inet[6] static` stanzas; an
//! `inet6 auto|dhcp` stanza moves to the bridge.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, glob_match};
use crate::{static_or_none, Addressing, BridgePlan, Change, Detected, HostCfgError};

/// The directory of ifupdown's configuration (its main file and, usually, what it sources).
pub(crate) const DIR: &str = "/etc/network";
const MAIN: &str = "/etc/network/interfaces";
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 256;

/// A logical line: one or more physical lines (joined by trailing `\`).
#[derive(Clone, Debug)]
struct Logical {
    raw: Vec<String>,
    words: Vec<String>,
}

impl Logical {
    fn keyword(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn is_stanza_start(&self) -> bool {
        let k = self.keyword();
        matches!(
            k,
            "iface"
                | "mapping"
                | "auto"
                | "source"
                | "source-directory"
                | "source-dir"
                | "no-auto-down"
                | "no-scripts"
                | "rename"
                | "template"
        ) || k.starts_with("allow-")
    }
    fn is_blank_or_comment(&self) -> bool {
        self.words.is_empty()
    }
}

struct IfFile {
    path: PathBuf,
    text: String,
    lines: Vec<Logical>,
}

fn parse(path: &Path, text: &str) -> IfFile {
    let mut lines = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for raw in text.lines() {
        pending.push(raw.to_string());
        if raw.ends_with('\\') && !raw.trim_start().starts_with('#') {
            continue;
        }
        let joined: String = pending
            .iter()
            .map(|l| l.strip_suffix('\\').unwrap_or(l))
            .collect::<Vec<_>>()
            .join(" ");
        let t = joined.trim();
        let words = if t.starts_with('#') {
            Vec::new()
        } else {
            t.split_whitespace().map(str::to_string).collect()
        };
        lines.push(Logical {
            raw: std::mem::take(&mut pending),
            words,
        });
    }
    if !pending.is_empty() {
        lines.push(Logical {
            words: pending
                .join(" ")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            raw: pending,
        });
    }
    IfFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        lines,
    }
}

/// Host paths a `source` pattern names (glob in the last component only).
fn expand_source(root: &Path, base: &Path, pattern: &str) -> Result<Vec<PathBuf>, HostCfgError> {
    let p = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    if !name.contains(['*', '?', '[']) {
        return Ok(if fsutil::exists(root, &p)? {
            vec![p]
        } else {
            vec![]
        });
    }
    let dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
    fsutil::list_dir(root, &dir, |n| glob_match(&name, n) && !n.starts_with('.'))
}

/// Every file ifupdown reads, in order, parsed.
fn load(root: &Path) -> Result<Vec<IfFile>, HostCfgError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(root, Path::new(MAIN), 0, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(
    root: &Path,
    path: &Path,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<IfFile>,
) -> Result<(), HostCfgError> {
    if depth > MAX_DEPTH || out.len() >= MAX_FILES || !seen.insert(path.to_path_buf()) {
        return Ok(());
    }
    let r = fsutil::real(root, path)?;
    if r.is_dir() {
        return Ok(());
    }
    let Some(text) = fsutil::read_text(root, path)? else {
        return Ok(());
    };
    let file = parse(path, &text);
    let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut includes = Vec::new();
    for l in &file.lines {
        match (l.keyword(), l.words.get(1)) {
            ("source", Some(pat)) => includes.extend(expand_source(root, &base, pat)?),
            ("source-directory" | "source-dir", Some(dir)) => {
                let d = if dir.starts_with('/') {
                    PathBuf::from(dir)
                } else {
                    base.join(dir)
                };
                includes.extend(fsutil::list_dir(root, &d, |n| {
                    !n.is_empty()
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })?);
            }
            _ => {}
        }
    }
    out.push(file);
    for inc in includes {
        walk(root, &inc, depth + 1, seen, out)?;
    }
    Ok(())
}

/// A stanza `iface <name> <family> <method>` and the indices of its logical lines.
struct Stanza {
    file: usize,
    start: usize,
    /// One past the last option line.
    end: usize,
    family: String,
    method: String,
}

fn stanzas(files: &[IfFile], iface: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let mut i = 0;
        while i < f.lines.len() {
            let l = &f.lines[i];
            if l.keyword() == "iface" && l.words.get(1).map(String::as_str) == Some(iface) {
                let mut end = i + 1;
                let mut j = i + 1;
                while j < f.lines.len() && !f.lines[j].is_stanza_start() {
                    if !f.lines[j].is_blank_or_comment() {
                        end = j + 1;
                    }
                    j += 1;
                }
                out.push(Stanza {
                    file: fi,
                    start: i,
                    end,
                    family: l.words.get(2).cloned().unwrap_or_default(),
                    method: l.words.get(3).cloned().unwrap_or_default(),
                });
                i = j;
            } else {
                i += 1;
            }
        }
    }
    out
}

fn mentions(f: &IfFile, iface: &str) -> bool {
    f.lines.iter().any(|l| {
        let k = l.keyword();
        (k == "iface" && l.words.get(1).map(String::as_str) == Some(iface))
            || ((k == "auto" || k.starts_with("allow-")) && l.words[1..].iter().any(|w| w == iface))
            || (matches!(k, "bridge_ports" | "bridge-ports")
                && l.words[1..].iter().any(|w| w == iface))
    })
}

fn options<'a>(files: &'a [IfFile], s: &Stanza) -> impl Iterator<Item = &'a Logical> {
    files[s.file].lines[s.start + 1..s.end]
        .iter()
        .filter(|l| !l.is_blank_or_comment())
}

fn addressing(files: &[IfFile], st: &[Stanza]) -> Addressing {
    if st.iter().any(|s| s.family == "inet" && s.method == "dhcp") {
        return Addressing::Dhcp;
    }
    let mut addresses = Vec::new();
    let mut gateway = None;
    let mut dns = Vec::new();
    for s in st.iter().filter(|s| s.method == "static") {
        let mut addr: Option<(IpAddr, u8)> = None;
        let mut mask: Option<u8> = None;
        for o in options(files, s) {
            let v = o.words.get(1).map(String::as_str).unwrap_or("");
            match o.keyword() {
                "address" => {
                    addr =
                        crate::parse_cidr(v).map(|(a, p)| (a, if v.contains('/') { p } else { 0 }))
                }
                "netmask" => {
                    mask = crate::mask_to_prefix(v).or_else(|| v.parse().ok());
                }
                "gateway" if gateway.is_none() => gateway = v.parse().ok(),
                "dns-nameservers" => {
                    dns.extend(o.words[1..].iter().filter_map(|w| w.parse::<IpAddr>().ok()))
                }
                _ => {}
            }
        }
        if let Some((a, p)) = addr {
            let p = if p != 0 {
                p
            } else {
                mask.unwrap_or(if a.is_ipv4() { 24 } else { 64 })
            };
            addresses.push((a, p));
        }
    }
    static_or_none(addresses, gateway, dns)
}

pub(crate) fn detect(
    root: &Path,
    iface: &str,
) -> Result<Option<(Vec<PathBuf>, Addressing)>, HostCfgError> {
    let files = load(root)?;
    let hit: Vec<PathBuf> = files
        .iter()
        .filter(|f| mentions(f, iface))
        .map(|f| f.path.clone())
        .collect();
    if hit.is_empty() {
        return Ok(None);
    }
    let st = stanzas(&files, iface);
    Ok(Some((hit, addressing(&files, &st))))
}

/// Options that are about IP configuration: they leave the NIC.
fn is_ip_option(k: &str) -> bool {
    k.starts_with("dns-")
        || matches!(
            k,
            "address"
                | "netmask"
                | "broadcast"
                | "network"
                | "gateway"
                | "pointopoint"
                | "metric"
                | "scope"
                | "hostname"
                | "leasehours"
                | "leasetime"
                | "vendor"
                | "client"
                | "accept_ra"
                | "autoconf"
                | "privext"
                | "dhcp"
                | "request_prefix"
                | "ll-interval"
                | "ll-attempts"
                | "preferred-lifetime"
                | "dad-attempts"
                | "dad-interval"
        )
}

/// Options regenerated from the plan for a static stanza.
fn is_regenerated(k: &str) -> bool {
    matches!(
        k,
        "address" | "netmask" | "broadcast" | "network" | "gateway" | "dns-nameservers"
    )
}

pub(crate) fn render(
    plan: &BridgePlan,
    _detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    let files = load(root)?;
    let br = &plan.bridge;
    for f in &files {
        if mentions(f, br) {
            return Err(HostCfgError::Unsupported {
                path: f.path.clone(),
                reason: format!("{br} is already configured"),
            });
        }
        for l in &f.lines {
            if matches!(l.keyword(), "bridge_ports" | "bridge-ports")
                && l.words[1..].contains(&plan.iface)
            {
                return Err(HostCfgError::Unsupported {
                    path: f.path.clone(),
                    reason: format!("{} is already a bridge port", plan.iface),
                });
            }
        }
    }
    let st = stanzas(&files, &plan.iface);
    let indent = st
        .iter()
        .flat_map(|s| options(&files, s))
        .next()
        .and_then(|l| l.raw.first())
        .map(|r| r[..r.len() - r.trim_start().len()].to_string())
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "    ".to_string());

    // Collect: link options (stay on the NIC), IP options moved per family.
    let mut keep: Vec<String> = Vec::new();
    let mut moved4: Vec<String> = Vec::new();
    let mut moved6: Vec<String> = Vec::new();
    let mut inet6_method: Option<String> = None;
    for s in &st {
        if s.family == "inet6" && s.method != "static" && s.method != "manual" {
            inet6_method.get_or_insert_with(|| s.method.clone());
        }
        for o in options(&files, s) {
            let k = o.keyword();
            if k == "mtu" && plan.mtu.is_some() {
                continue;
            }
            if is_ip_option(k) {
                if !is_regenerated(k) {
                    let line = o.words.join(" ");
                    let target = if s.family == "inet6" {
                        &mut moved6
                    } else {
                        &mut moved4
                    };
                    if !target.contains(&line) {
                        target.push(line);
                    }
                }
            } else {
                let mut line = o.raw.join("\n");
                line.replace_range(..line.len() - line.trim_start().len(), "");
                if !keep.contains(&line) {
                    keep.push(line);
                }
            }
        }
    }
    if let Some(mtu) = plan.mtu {
        keep.push(format!("mtu {mtu}"));
    }
    let mut nic = format!("iface {} inet manual\n", plan.iface);
    for k in &keep {
        nic.push_str(&format!("{indent}{k}\n"));
    }
    let bridge = bridge_stanzas(plan, &indent, &moved4, &moved6, inet6_method.as_deref());
    let block = format!("{nic}\n{bridge}");

    let mut change = Change::default();
    if st.is_empty() {
        // Nothing configured the NIC: append to the main file.
        let text = fsutil::read_text(root, Path::new(MAIN))?;
        let mut new = text.clone().unwrap_or_default();
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        if !new.is_empty() {
            new.push('\n');
        }
        new.push_str(&block);
        if let Some(t) = text {
            change.backup.push((PathBuf::from(MAIN), t));
        }
        change.write.push((PathBuf::from(MAIN), new));
        return Ok(change);
    }
    // Rewrite each file that has stanzas of the NIC: the first stanza becomes the block, the
    // others go.
    for (fi, f) in files.iter().enumerate() {
        let mine: Vec<&Stanza> = st.iter().filter(|s| s.file == fi).collect();
        if mine.is_empty() {
            continue;
        }
        let mut out = String::new();
        let mut i = 0;
        while i < f.lines.len() {
            if let Some(s) = mine.iter().find(|s| s.start == i) {
                if std::ptr::eq(*s, &st[0]) {
                    out.push_str(&block);
                }
                i = s.end;
                continue;
            }
            for r in &f.lines[i].raw {
                out.push_str(r);
                out.push('\n');
            }
            i += 1;
        }
        change.write.push((f.path.clone(), out));
        change.backup.push((f.path.clone(), f.text.clone()));
    }
    Ok(change)
}

fn bridge_stanzas(
    plan: &BridgePlan,
    ind: &str,
    moved4: &[String],
    moved6: &[String],
    inet6_method: Option<&str>,
) -> String {
    let br = &plan.bridge;
    let mut out = format!("auto {br}\n");
    type Split = (
        Vec<(IpAddr, u8)>,
        Vec<(IpAddr, u8)>,
        Option<IpAddr>,
        Vec<IpAddr>,
    );
    let (v4, v6, gateway, dns): Split = match &plan.addressing {
        Addressing::Static {
            addresses,
            gateway,
            dns,
        } => (
            addresses
                .iter()
                .filter(|a| a.0.is_ipv4())
                .copied()
                .collect(),
            addresses
                .iter()
                .filter(|a| a.0.is_ipv6())
                .copied()
                .collect(),
            *gateway,
            dns.clone(),
        ),
        _ => (vec![], vec![], None, vec![]),
    };
    let dns_line = (!dns.is_empty()).then(|| {
        format!(
            "dns-nameservers {}",
            dns.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )
    });
    let method = match &plan.addressing {
        Addressing::Dhcp => "dhcp",
        Addressing::Static { .. } if !v4.is_empty() => "static",
        _ => "manual",
    };
    out.push_str(&format!("iface {br} inet {method}\n"));
    let mut opt = |s: &str| out.push_str(&format!("{ind}{s}\n"));
    if let Some((IpAddr::V4(a), p)) = v4.first().copied() {
        opt(&format!("address {a}"));
        opt(&format!("netmask {}", crate::netmask(p)));
        if p < 31 {
            opt(&format!("broadcast {}", crate::broadcast(a, p)));
        }
        if let Some(IpAddr::V4(g)) = gateway {
            opt(&format!("gateway {g}"));
        }
    }
    if method != "manual" || v6.is_empty() {
        if let Some(d) = &dns_line {
            opt(d);
        }
    }
    if method != "manual" {
        for m in moved4 {
            opt(m);
        }
    }
    opt(&format!("bridge_ports {}", plan.iface));
    opt(&format!(
        "bridge_stp {}",
        if plan.stp { "on" } else { "off" }
    ));
    opt("bridge_waitport 0");
    opt(&format!("bridge_fd {}", plan.delay));
    if let Some(mac) = &plan.mac {
        opt(&format!("bridge_hw {}", crate::fmt_mac(mac)));
    }
    for (a, p) in v4.iter().skip(1) {
        out.push_str(&format!("\niface {br} inet static\n"));
        out.push_str(&format!(
            "{ind}address {a}\n{ind}netmask {}\n",
            match a {
                IpAddr::V4(_) => crate::netmask(*p).to_string(),
                IpAddr::V6(_) => p.to_string(),
            }
        ));
    }
    for (i, (a, p)) in v6.iter().enumerate() {
        out.push_str(&format!(
            "\niface {br} inet6 static\n{ind}address {a}\n{ind}netmask {p}\n"
        ));
        if i == 0 {
            if let Some(IpAddr::V6(g)) = gateway {
                out.push_str(&format!("{ind}gateway {g}\n"));
            }
            if method == "manual" {
                if let Some(d) = &dns_line {
                    out.push_str(&format!("{ind}{d}\n"));
                }
            }
            for m in moved6 {
                out.push_str(&format!("{ind}{m}\n"));
            }
        }
    }
    if v6.is_empty() {
        if let Some(m) = inet6_method {
            out.push_str(&format!("\niface {br} inet6 {m}\n"));
            for m in moved6 {
                out.push_str(&format!("{ind}{m}\n"));
            }
        }
    }
    out
}
