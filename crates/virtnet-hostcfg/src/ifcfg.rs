//! RHEL initscripts / NetworkManager ifcfg-rh: `/etc/sysconfig/network-scripts/ifcfg-*`.
//!
//! The NIC's file keeps everything that is about the link (`DEVICE`, `HWADDR`, `NAME`, `UUID`,
//! `NM_CONTROLLED`, `ONBOOT`, `ETHTOOL_OPTS`, unknown keys, comments) and gets `BOOTPROTO=none` and
//! `BRIDGE=<bridge>`; its IP keys move to a new `ifcfg-<bridge>` (`TYPE=Bridge`), the addressing
//! regenerated from the plan in the shape admins write (`BOOTPROTO=static`, `IPADDR`, `NETMASK`,
//! `GATEWAY`, `DEFROUTE`, `DNS1`…), the rest (`DOMAIN`, `PEERDNS`, `ZONE`, `IPV6_*`…) verbatim.
//! `route-<nic>`/`route6-`/`rule-`/`rule6-` files are renamed to the bridge.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::{static_or_none, Addressing, BridgePlan, Change, Detected, HostCfgError};

pub(crate) const DIR: &str = "/etc/sysconfig/network-scripts";
const IGNORED_SUFFIXES: [&str; 8] = [
    "~", ".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", ".old", ".swp",
];
const SIDE_FILES: [&str; 4] = ["route-", "route6-", "rule-", "rule6-"];

/// One line of a shell-variable file.
#[derive(Clone, Debug)]
enum ShLine {
    Var {
        key: String,
        value: String,
        raw: String,
    },
    Other(String),
}

/// A parsed `ifcfg-*` file.
#[derive(Clone, Debug, Default)]
struct ShFile {
    lines: Vec<ShLine>,
}

/// Unquotes a shell value: `"..."` (with `\` escapes), `'...'`, or bare up to whitespace/`#`.
fn unquote(v: &str) -> String {
    let v = v.trim_start();
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                if !matches!(n, '"' | '\\' | '$' | '`') {
                                    out.push('\\');
                                }
                                out.push(n);
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    out
}

/// Quotes a value for a shell-variable file when it needs it.
fn quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/@+-,%".contains(c))
    {
        v.to_string()
    } else {
        let mut s = String::from("\"");
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

impl ShFile {
    fn parse(text: &str) -> ShFile {
        let lines = text
            .lines()
            .map(|raw| {
                let t = raw.trim_start();
                let t = t.strip_prefix("export ").unwrap_or(t);
                if t.starts_with('#') {
                    return ShLine::Other(raw.to_string());
                }
                match t.split_once('=') {
                    Some((k, v))
                        if !k.is_empty()
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        ShLine::Var {
                            key: k.to_string(),
                            value: unquote(v),
                            raw: raw.to_string(),
                        }
                    }
                    _ => ShLine::Other(raw.to_string()),
                }
            })
            .collect();
        ShFile { lines }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .filter_map(|l| match l {
                ShLine::Var { key: k, value, .. } if k == key => Some(value.as_str()),
                _ => None,
            })
            .next()
    }

    fn var(key: &str, value: &str) -> ShLine {
        ShLine::Var {
            key: key.to_string(),
            value: value.to_string(),
            raw: format!("{key}={}", quote(value)),
        }
    }

    /// Sets `key` in place (first occurrence), or inserts it after `after` (or at the end).
    fn set(&mut self, key: &str, value: &str, after: Option<&str>) {
        let mut done = false;
        self.lines.retain_mut(|l| match l {
            ShLine::Var { key: k, .. } if k == key => {
                if done {
                    return false;
                }
                done = true;
                *l = ShFile::var(key, value);
                true
            }
            _ => true,
        });
        if done {
            return;
        }
        let at = after
            .and_then(|a| {
                self.lines
                    .iter()
                    .rposition(|l| matches!(l, ShLine::Var { key: k, .. } if k == a))
            })
            .map(|i| i + 1)
            .unwrap_or_else(|| {
                self.lines
                    .iter()
                    .rposition(|l| matches!(l, ShLine::Var { .. }))
                    .map(|i| i + 1)
                    .unwrap_or(self.lines.len())
            });
        self.lines.insert(at, ShFile::var(key, value));
    }

    /// Removes the variables whose key satisfies `pred`, returning their raw lines.
    fn take(&mut self, pred: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.lines.retain(|l| match l {
            ShLine::Var { key, raw, .. } if pred(key) => {
                out.push((key.clone(), raw.clone()));
                false
            }
            _ => true,
        });
        out
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                ShLine::Var { raw, .. } | ShLine::Other(raw) => out.push_str(raw),
            }
            out.push('\n');
        }
        out
    }
}

fn ignored(name: &str) -> bool {
    IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The device a `ifcfg-*` file configures: `DEVICE=`, else the file name's suffix.
fn device_of(name: &str, f: &ShFile) -> String {
    f.get("DEVICE")
        .map(str::to_string)
        .unwrap_or_else(|| name.trim_start_matches("ifcfg-").to_string())
}

struct Found {
    path: PathBuf,
    file: ShFile,
}

fn find(root: &Path, iface: &str) -> Result<Vec<Found>, HostCfgError> {
    let files = fsutil::list_dir(root, Path::new(DIR), |n| {
        n.starts_with("ifcfg-") && !ignored(n) && !n.contains(':') && n != "ifcfg-lo"
    })?;
    let mut out = Vec::new();
    for path in files {
        let Some(text) = fsutil::read_text(root, &path)? else {
            continue;
        };
        let file = ShFile::parse(&text);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if device_of(name, &file) == iface {
            out.push(Found { path, file });
        }
    }
    Ok(out)
}

fn side_files(root: &Path, iface: &str) -> Result<Vec<PathBuf>, HostCfgError> {
    let mut out = Vec::new();
    for p in SIDE_FILES {
        let path = Path::new(DIR).join(format!("{p}{iface}"));
        if fsutil::exists(root, &path)? {
            out.push(path);
        }
    }
    Ok(out)
}

fn addressing(f: &ShFile) -> Addressing {
    let proto = f.get("BOOTPROTO").unwrap_or("").to_ascii_lowercase();
    if proto == "dhcp" || proto == "bootp" {
        return Addressing::Dhcp;
    }
    let mut addresses = Vec::new();
    for suffix in std::iter::once(String::new()).chain((0..=255).map(|i| i.to_string())) {
        let Some(ip) = f
            .get(&format!("IPADDR{suffix}"))
            .and_then(|v| v.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let prefix = f
            .get(&format!("PREFIX{suffix}"))
            .and_then(|p| p.parse().ok())
            .or_else(|| {
                f.get(&format!("NETMASK{suffix}"))
                    .and_then(crate::mask_to_prefix)
            })
            .unwrap_or(24);
        addresses.push((ip, prefix));
    }
    if let Some(v6) = f.get("IPV6ADDR") {
        addresses
            .extend(crate::parse_cidr(v6).map(|(a, p)| (a, if v6.contains('/') { p } else { 64 })));
    }
    if let Some(sec) = f.get("IPV6ADDR_SECONDARIES") {
        addresses.extend(sec.split_whitespace().filter_map(crate::parse_cidr));
    }
    let gateway = f.get("GATEWAY").and_then(|g| g.parse().ok()).or_else(|| {
        f.get("IPV6_DEFAULTGW")
            .and_then(|g| g.split('%').next().and_then(|g| g.parse().ok()))
    });
    let dns = (1..=9)
        .filter_map(|i| f.get(&format!("DNS{i}")).and_then(|d| d.parse().ok()))
        .collect();
    static_or_none(addresses, gateway, dns)
}

pub(crate) fn detect(
    root: &Path,
    iface: &str,
) -> Result<Option<(Vec<PathBuf>, Addressing)>, HostCfgError> {
    let found = find(root, iface)?;
    let Some(first) = found.first() else {
        return Ok(None);
    };
    let addressing = addressing(&first.file);
    let mut files: Vec<PathBuf> = found.iter().map(|f| f.path.clone()).collect();
    files.extend(side_files(root, iface)?);
    Ok(Some((files, addressing)))
}

/// Keys that are about IP configuration: they leave the NIC.
fn is_ip_key(k: &str) -> bool {
    let digits = |rest: &str| rest.chars().all(|c| c.is_ascii_digit());
    [
        "IPADDR",
        "PREFIX",
        "NETMASK",
        "GATEWAY",
        "DNS",
        "BROADCAST",
        "NETWORK",
    ]
    .iter()
    .any(|p| k.strip_prefix(p).is_some_and(digits))
        || k.starts_with("IPV6")
        || k.starts_with("DHCP")
        || matches!(
            k,
            "BOOTPROTO"
                | "DEFROUTE"
                | "PEERDNS"
                | "PEERROUTES"
                | "DOMAIN"
                | "IPV4_FAILURE_FATAL"
                | "IPV4_ROUTE_METRIC"
                | "PERSISTENT_DHCLIENT"
                | "METRIC"
                | "ZONE"
                | "ARPCHECK"
                | "ARPING_WAIT"
                | "SRCADDR"
        )
}

/// Keys regenerated from the plan rather than carried over.
fn is_regenerated(k: &str, plan_static: bool) -> bool {
    let digits = |rest: &str| rest.chars().all(|c| c.is_ascii_digit());
    let v4 = ["IPADDR", "PREFIX", "NETMASK", "GATEWAY", "DNS"]
        .iter()
        .any(|p| k.strip_prefix(p).is_some_and(digits))
        || k == "BOOTPROTO";
    let v6 = matches!(
        k,
        "IPV6ADDR" | "IPV6ADDR_SECONDARIES" | "IPV6_DEFAULTGW" | "IPV6INIT"
    );
    v4 || (plan_static && v6) || k.starts_with("BROADCAST") || k.starts_with("NETWORK")
}

/// How a generated variable is written.
#[derive(Clone, Copy)]
enum Raw {
    Quoted,
    Plain,
    Verbatim,
}

fn bridge_file(
    plan: &BridgePlan,
    moved: &[(String, String)],
    nm_controlled: Option<&str>,
) -> String {
    let mut lines: Vec<ShLine> = Vec::new();
    let mut push = |k: &str, v: &str, how: Raw| {
        lines.push(ShLine::Var {
            key: k.into(),
            value: v.into(),
            raw: match how {
                Raw::Quoted => format!("{k}=\"{v}\""),
                Raw::Plain => format!("{k}={}", quote(v)),
                Raw::Verbatim => v.to_string(),
            },
        })
    };
    push("DEVICE", &plan.bridge, Raw::Quoted);
    push("ONBOOT", "yes", Raw::Quoted);
    push("TYPE", "Bridge", Raw::Quoted);
    let moved_has = |key: &str| moved.iter().any(|(k, _)| k == key);
    match &plan.addressing {
        Addressing::Dhcp => push("BOOTPROTO", "dhcp", Raw::Plain),
        Addressing::None => push("BOOTPROTO", "none", Raw::Plain),
        Addressing::Static {
            addresses,
            gateway,
            dns,
        } => {
            push("BOOTPROTO", "static", Raw::Plain);
            let v4: Vec<_> = addresses.iter().filter(|(a, _)| a.is_ipv4()).collect();
            let v6: Vec<_> = addresses.iter().filter(|(a, _)| a.is_ipv6()).collect();
            for (i, (a, p)) in v4.iter().enumerate() {
                let suffix = if i == 0 { String::new() } else { i.to_string() };
                push(&format!("IPADDR{suffix}"), &a.to_string(), Raw::Plain);
                push(
                    &format!("NETMASK{suffix}"),
                    &crate::netmask(*p).to_string(),
                    Raw::Plain,
                );
            }
            if let Some(IpAddr::V4(g)) = gateway {
                push("GATEWAY", &g.to_string(), Raw::Plain);
                if !moved_has("DEFROUTE") {
                    push("DEFROUTE", "yes", Raw::Plain);
                }
            }
            for (i, d) in dns.iter().enumerate() {
                push(&format!("DNS{}", i + 1), &d.to_string(), Raw::Plain);
            }
            if !v6.is_empty() {
                push("IPV6INIT", "yes", Raw::Plain);
                push("IPV6ADDR", &format!("{}/{}", v6[0].0, v6[0].1), Raw::Plain);
                if v6.len() > 1 {
                    let rest: Vec<String> =
                        v6[1..].iter().map(|(a, p)| format!("{a}/{p}")).collect();
                    push("IPV6ADDR_SECONDARIES", &rest.join(" "), Raw::Plain);
                }
                if let Some(IpAddr::V6(g)) = gateway {
                    push("IPV6_DEFAULTGW", &g.to_string(), Raw::Plain);
                }
            }
        }
    }
    for (k, raw) in moved {
        push(k, raw.trim_start(), Raw::Verbatim);
    }
    push("STP", if plan.stp { "on" } else { "off" }, Raw::Plain);
    push("DELAY", &plan.delay.to_string(), Raw::Plain);
    if let Some(mac) = &plan.mac {
        let m = crate::fmt_mac(mac);
        push("MACADDR", &m, Raw::Plain);
        push("BRIDGE_MACADDR", &m, Raw::Plain);
    }
    if let Some(nc) = nm_controlled {
        push("NM_CONTROLLED", nc, Raw::Quoted);
    }
    ShFile { lines }.render()
}

pub(crate) fn render(
    plan: &BridgePlan,
    detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    let mut change = Change::default();
    let bridge_path = Path::new(DIR).join(format!("ifcfg-{}", plan.bridge));
    if fsutil::exists(root, &bridge_path)? || !find(root, &plan.bridge)?.is_empty() {
        return Err(HostCfgError::Unsupported {
            path: bridge_path,
            reason: format!("{} is already configured", plan.bridge),
        });
    }
    // IPv6 address keys are regenerated only when the plan has IPv6 addresses.
    let plan_static = matches!(&plan.addressing, Addressing::Static { addresses, .. } if addresses.iter().any(|a| a.0.is_ipv6()));
    let found = find(root, &plan.iface)?;
    let mut moved: Vec<(String, String)> = Vec::new();
    let mut nm_controlled = None;
    for (i, Found { path, file }) in found.into_iter().enumerate() {
        let text = fsutil::read_text(root, &path)?.unwrap_or_default();
        let mut file = file;
        if let Some(b) = file.get("BRIDGE").filter(|b| !b.is_empty()) {
            return Err(HostCfgError::Unsupported {
                path,
                reason: format!("{} is already a port of {b}", plan.iface),
            });
        }
        if i == 0 {
            nm_controlled = file.get("NM_CONTROLLED").map(str::to_string);
        }
        let had_proto = file.get("BOOTPROTO").is_some();
        // Keep BOOTPROTO in place (rewritten to none) so BRIDGE lands right after it.
        let taken = file.take(|k| is_ip_key(k) && k != "BOOTPROTO");
        if i == 0 {
            moved = taken
                .into_iter()
                .filter(|(k, _)| !is_regenerated(k, plan_static))
                .collect();
        }
        if had_proto {
            file.set("BOOTPROTO", "none", None);
        } else {
            file.set("BOOTPROTO", "none", Some("TYPE"));
        }
        file.set("BRIDGE", &plan.bridge, Some("BOOTPROTO"));
        if let Some(mtu) = plan.mtu {
            file.set("MTU", &mtu.to_string(), None);
        }
        change.write.push((path.clone(), file.render()));
        change.backup.push((path, text));
    }
    if detected.files.is_empty() || change.write.is_empty() {
        let mut f = ShFile::default();
        for (k, v) in [
            ("DEVICE", plan.iface.as_str()),
            ("ONBOOT", "yes"),
            ("TYPE", "Ethernet"),
            ("BOOTPROTO", "none"),
            ("BRIDGE", plan.bridge.as_str()),
        ] {
            f.lines.push(ShFile::var(k, v));
        }
        if let Some(mtu) = plan.mtu {
            f.lines.push(ShFile::var("MTU", &mtu.to_string()));
        }
        change.write.push((
            Path::new(DIR).join(format!("ifcfg-{}", plan.iface)),
            f.render(),
        ));
    }
    change.write.push((
        bridge_path,
        bridge_file(plan, &moved, nm_controlled.as_deref()),
    ));
    for side in side_files(root, &plan.iface)? {
        let name = side.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let prefix = SIDE_FILES
            .iter()
            .find(|p| name.starts_with(*p))
            .copied()
            .unwrap_or("route-");
        let text = fsutil::read_text(root, &side)?.unwrap_or_default();
        let new_path = Path::new(DIR).join(format!("{prefix}{}", plan.bridge));
        if fsutil::exists(root, &new_path)? {
            return Err(HostCfgError::Unsupported {
                path: new_path,
                reason: "already exists".into(),
            });
        }
        let renamed = rename_dev(&text, &plan.iface, &plan.bridge);
        change.write.push((new_path, renamed));
        change.remove.push(side.clone());
        change.backup.push((side, text));
    }
    Ok(change)
}

/// Replaces `dev <from>` by `dev <to>` in route/rule files.
fn rename_dev(text: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split(' ').collect();
        let mut new = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let prev = if i > 0 { words[i - 1] } else { "" };
            let (core, tail) = match w.strip_suffix('\n') {
                Some(c) => (c, "\n"),
                None => (*w, ""),
            };
            if prev == "dev" && core == from {
                new.push(format!("{to}{tail}"));
            } else {
                new.push(w.to_string());
            }
        }
        out.push_str(&new.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(unquote("\"br0\""), "br0");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(unquote("yes # comment"), "yes");
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
        assert_eq!(quote("br0"), "br0");
        assert_eq!(quote("System eth0"), "\"System eth0\"");
    }

    #[test]
    fn routes_follow() {
        assert_eq!(
            rename_dev("10.1.0.0/16 via 10.0.0.2 dev eth0\n", "eth0", "br0"),
            "10.1.0.0/16 via 10.0.0.2 dev br0\n"
        );
    }
}
