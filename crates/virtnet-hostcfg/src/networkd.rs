//! systemd-networkd: `/etc/systemd/network/*.network` and `*.netdev`.
//!
//! networkd applies the first `.network` file (in lexical order) whose `[Match]` fits a link. When
//! that file names only the NIC, it is rewritten: its IP configuration (`[Network]` keys such as
//! `Address=`, `Gateway=`, `DNS=`, `DHCP=`, `Domains=`; `[Address]`, `[Route]`, `[DHCPv4]`…
//! sections) moves to a new `<bridge>.network` (the addressing regenerated from the plan) and it
//! gets `Bridge=<bridge>`; `[Match]`, `[Link]` and unknown keys stay. When it matches by glob or
//! names several links, it is left alone and a new `00-virtnet-<nic>.network`, sorted before it,
//! enslaves just the NIC. `<bridge>.netdev` has `[NetDev] Kind=bridge`, `MACAddress=` and
//! `[Bridge] STP=`, `ForwardDelaySec=`. New files take the NIC file's numeric prefix.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, glob_match};
use crate::ini::{self, Ini, Line, Section};
use crate::{static_or_none, Addressing, BridgePlan, Change, Detected, HostCfgError};

pub(crate) const DIR: &str = "/etc/systemd/network";

struct Unit {
    path: PathBuf,
    text: String,
    ini: Ini,
}

fn load(root: &Path, suffix: &str) -> Result<Vec<Unit>, HostCfgError> {
    let mut out = Vec::new();
    for path in fsutil::list_dir(root, Path::new(DIR), |n| {
        n.ends_with(suffix) && !n.starts_with('.')
    })? {
        let r = fsutil::real(root, &path)?;
        // A symlink to /dev/null masks a unit.
        if std::fs::read_link(&r).is_ok_and(|t| t == Path::new("/dev/null")) {
            continue;
        }
        let Some(text) = fsutil::read_text(root, &path)? else {
            continue;
        };
        let ini = Ini::parse(&path, &text)?;
        out.push(Unit { path, text, ini });
    }
    Ok(out)
}

/// The `Name=` patterns of `[Match]` (all lines, whitespace-separated).
fn names(u: &Unit) -> Vec<String> {
    u.ini
        .sections("Match")
        .flat_map(|s| s.get_all("Name"))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

/// Whether the `[Match] Name=` of a unit fits `iface` (with `!` negation and globs).
fn matches(u: &Unit, iface: &str) -> bool {
    let pats = names(u);
    if pats.is_empty() {
        return false;
    }
    let (neg, pos): (Vec<_>, Vec<_>) = pats.iter().partition(|p| p.starts_with('!'));
    if !neg.is_empty() {
        return !neg.iter().any(|p| glob_match(&p[1..], iface))
            && (pos.is_empty() || pos.iter().any(|p| glob_match(p, iface)));
    }
    pos.iter().any(|p| glob_match(p, iface))
}

fn exact(u: &Unit, iface: &str) -> bool {
    names(u) == [iface.to_string()]
}

fn addressing(ini: &Ini) -> Addressing {
    let net = ini.section("Network");
    if let Some(d) = net.and_then(|n| n.get("DHCP")) {
        if matches!(
            d.to_ascii_lowercase().as_str(),
            "yes" | "true" | "ipv4" | "1" | "on"
        ) {
            return Addressing::Dhcp;
        }
    }
    let mut addresses = Vec::new();
    let mut gateway: Option<IpAddr> = None;
    let mut dns = Vec::new();
    for s in ini.sections("Network") {
        addresses.extend(
            s.get_all("Address")
                .into_iter()
                .filter_map(crate::parse_cidr),
        );
        for g in s.get_all("Gateway") {
            if gateway.is_none() {
                gateway = g.parse().ok();
            }
        }
        for d in s.get_all("DNS") {
            dns.extend(
                d.split_whitespace()
                    .filter_map(|x| x.parse::<IpAddr>().ok()),
            );
        }
    }
    for s in ini.sections("Address") {
        addresses.extend(
            s.get_all("Address")
                .into_iter()
                .filter_map(crate::parse_cidr),
        );
    }
    for s in ini.sections("Route") {
        if s.get("Destination").is_none() && gateway.is_none() {
            gateway = s.get("Gateway").and_then(|g| g.parse().ok());
        }
    }
    static_or_none(addresses, gateway, dns)
}

pub(crate) fn detect(
    root: &Path,
    iface: &str,
) -> Result<Option<(Vec<PathBuf>, Addressing)>, HostCfgError> {
    let units: Vec<Unit> = load(root, ".network")?
        .into_iter()
        .filter(|u| matches(u, iface))
        .collect();
    let Some(first) = units.first() else {
        return Ok(None);
    };
    let addressing = if first.ini.get("Network", "Bridge").is_some() {
        Addressing::None
    } else {
        addressing(&first.ini)
    };
    Ok(Some((
        units.iter().map(|u| u.path.clone()).collect(),
        addressing,
    )))
}

/// `[Network]` keys about IP configuration: they leave the NIC.
fn is_ip_key(k: &str) -> bool {
    matches!(
        k,
        "DHCP"
            | "Address"
            | "Gateway"
            | "DNS"
            | "Domains"
            | "DNSDefaultRoute"
            | "NTP"
            | "IPv6AcceptRA"
            | "IPv6PrivacyExtensions"
            | "IPv6Token"
            | "IPForward"
            | "IPMasquerade"
            | "LinkLocalAddressing"
            | "IPv4LLRoute"
            | "DefaultRouteOnDevice"
            | "LLMNR"
            | "MulticastDNS"
            | "DNSSEC"
            | "DNSOverTLS"
            | "ConfigureWithoutCarrier"
            | "IgnoreCarrierLoss"
            | "KeepConfiguration"
            | "DHCPServer"
            | "IPv6SendRA"
    )
}

/// Sections that are all about IP configuration.
fn is_ip_section(name: &str) -> bool {
    matches!(
        name,
        "Address"
            | "Route"
            | "RoutingPolicyRule"
            | "DHCP"
            | "DHCPv4"
            | "DHCPv6"
            | "DHCPPrefixDelegation"
            | "IPv6AcceptRA"
            | "IPv6Prefix"
            | "IPv6SendRA"
            | "DHCPServer"
            | "Neighbor"
    )
}

fn entry(k: &str, v: &str) -> Line {
    Line::Entry {
        key: k.to_string(),
        value: v.to_string(),
        raw: format!("{k}={v}"),
    }
}

/// `10-` of `10-eth0.network`.
fn prefix_of(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty() && name[digits.len()..].starts_with('-') {
        format!("{digits}-")
    } else {
        String::new()
    }
}

pub(crate) fn render(
    plan: &BridgePlan,
    _detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    let networks = load(root, ".network")?;
    let netdevs = load(root, ".netdev")?;
    for u in &netdevs {
        if u.ini.get("NetDev", "Name") == Some(plan.bridge.as_str()) {
            return Err(HostCfgError::Unsupported {
                path: u.path.clone(),
                reason: format!("{} is already defined", plan.bridge),
            });
        }
    }
    let first = networks.iter().find(|u| matches(u, &plan.iface));
    let mut change = Change::default();
    let plan_static = matches!(plan.addressing, Addressing::Static { .. });
    let mut moved_keys: Vec<Line> = Vec::new();
    let mut moved_sections: Vec<Section> = Vec::new();
    let prefix;
    match first {
        Some(u) if exact(u, &plan.iface) => {
            if let Some(b) = u.ini.get("Network", "Bridge") {
                return Err(HostCfgError::Unsupported {
                    path: u.path.clone(),
                    reason: format!("{} is already a port of {b}", plan.iface),
                });
            }
            prefix = prefix_of(&u.path);
            let mut ini = u.ini.clone();
            moved_sections = ini.take_sections(is_ip_section);
            for s in ini.sections.iter_mut().filter(|s| s.name == "Network") {
                for (k, _, raw) in s.take(is_ip_key) {
                    let regenerated = k == "DHCP"
                        || (plan_static && matches!(k.as_str(), "Address" | "Gateway" | "DNS"));
                    if !regenerated {
                        moved_keys.push(Line::Entry {
                            key: k.clone(),
                            value: String::new(),
                            raw: raw.trim_start().to_string(),
                        });
                    }
                }
            }
            if plan_static {
                // Regenerated from the plan: drop [Address] and gateway-only [Route] sections.
                moved_sections.retain(|s| {
                    s.name != "Address" && !(s.name == "Route" && s.get("Destination").is_none())
                });
            }
            ini.section_mut("Network").set("Bridge", &plan.bridge);
            if let Some(mtu) = plan.mtu {
                ini.section_mut("Link").set("MTUBytes", &mtu.to_string());
            }
            let mut text = ini.render();
            while text.ends_with("\n\n") {
                text.pop();
            }
            change.write.push((u.path.clone(), text));
            change.backup.push((u.path.clone(), u.text.clone()));
        }
        other => {
            let path = Path::new(DIR).join(format!("00-virtnet-{}.network", plan.iface));
            if let Some(u) = other {
                if path >= u.path {
                    return Err(HostCfgError::Unsupported {
                        path: u.path.clone(),
                        reason: format!(
                            "matches {} by pattern and sorts before {}",
                            plan.iface,
                            path.display()
                        ),
                    });
                }
            }
            if fsutil::exists(root, &path)? {
                return Err(HostCfgError::Unsupported {
                    path,
                    reason: "already exists".into(),
                });
            }
            prefix = "00-virtnet-".to_string();
            // The shared file stays as it is; the bridge gets a copy of its IP settings.
            if let Some(u) = other {
                moved_sections = u
                    .ini
                    .sections
                    .iter()
                    .filter(|s| is_ip_section(&s.name))
                    .filter(|s| !(plan_static && s.name == "Address"))
                    .cloned()
                    .collect();
                for s in u.ini.sections("Network") {
                    for l in &s.lines {
                        if let Line::Entry { key, raw, .. } = l {
                            let regenerated = key == "DHCP"
                                || (plan_static
                                    && matches!(key.as_str(), "Address" | "Gateway" | "DNS"));
                            if is_ip_key(key) && !regenerated {
                                moved_keys.push(Line::Entry {
                                    key: key.clone(),
                                    value: String::new(),
                                    raw: raw.trim_start().to_string(),
                                });
                            }
                        }
                    }
                }
            }
            let mut m = Section::new("Match");
            m.lines.push(entry("Name", &plan.iface));
            let mut sections = vec![m];
            if let Some(mtu) = plan.mtu {
                let mut l = Section::new("Link");
                l.lines.push(entry("MTUBytes", &mtu.to_string()));
                sections.push(l);
            }
            let mut n = Section::new("Network");
            n.lines.push(entry("Bridge", &plan.bridge));
            sections.push(n);
            change.write.push((path, ini::render_sections(&sections)));
        }
    }
    // The bridge's files.
    let netdev_path = Path::new(DIR).join(format!("{prefix}{}.netdev", plan.bridge));
    let network_path = Path::new(DIR).join(format!("{prefix}{}.network", plan.bridge));
    for p in [&netdev_path, &network_path] {
        if fsutil::exists(root, p)? {
            return Err(HostCfgError::Unsupported {
                path: p.clone(),
                reason: "already exists".into(),
            });
        }
    }
    if let Some(u) = networks.iter().find(|u| matches(u, &plan.bridge)) {
        if u.path < network_path {
            return Err(HostCfgError::Unsupported {
                path: u.path.clone(),
                reason: format!(
                    "matches {} and sorts before {}",
                    plan.bridge,
                    network_path.display()
                ),
            });
        }
    }
    let mut nd = Section::new("NetDev");
    nd.lines.push(entry("Name", &plan.bridge));
    nd.lines.push(entry("Kind", "bridge"));
    if let Some(mac) = &plan.mac {
        nd.lines.push(entry("MACAddress", &crate::fmt_mac(mac)));
    }
    let mut br = Section::new("Bridge");
    br.lines
        .push(entry("STP", if plan.stp { "yes" } else { "no" }));
    br.lines
        .push(entry("ForwardDelaySec", &plan.delay.to_string()));
    change
        .write
        .push((netdev_path, ini::render_sections(&[nd, br])));

    let mut m = Section::new("Match");
    m.lines.push(entry("Name", &plan.bridge));
    let mut n = Section::new("Network");
    match &plan.addressing {
        Addressing::Dhcp => {
            let dhcp = first
                .and_then(|u| u.ini.get("Network", "DHCP"))
                .unwrap_or("ipv4");
            n.lines.push(entry("DHCP", dhcp));
        }
        Addressing::None => {}
        Addressing::Static {
            addresses,
            gateway,
            dns,
        } => {
            for (a, p) in addresses {
                n.lines.push(entry("Address", &format!("{a}/{p}")));
            }
            if let Some(g) = gateway {
                n.lines.push(entry("Gateway", &g.to_string()));
            }
            for d in dns {
                n.lines.push(entry("DNS", &d.to_string()));
            }
        }
    }
    n.lines.extend(moved_keys);
    let mut sections = vec![m, n];
    for mut s in moved_sections {
        while matches!(s.lines.last(), Some(Line::Other(t)) if t.trim().is_empty()) {
            s.lines.pop();
        }
        sections.push(s);
    }
    change
        .write
        .push((network_path, ini::render_sections(&sections)));
    Ok(change)
}
