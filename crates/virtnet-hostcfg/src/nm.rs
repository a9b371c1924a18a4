//! NetworkManager keyfiles: `/etc/NetworkManager/system-connections/*.nmconnection`.
//!
//! Every connection profile of the NIC (`interface-name=<nic>`) becomes a bridge port:
//! `master=<bridge>` and `slave-type=bridge` in `[connection]` (the names every NetworkManager
//! version reads; 1.46+ also calls them `controller`/`port-type`), an empty `[bridge-port]`, no
//! `[ipv4]`/`[ipv6]`. A new `<bridge>.nmconnection` (mode 0600, as NetworkManager requires) holds
//! `type=bridge`, `[bridge] stp=`/`forward-delay=`, `[ethernet] cloned-mac-address=` and
//! `[ipv4] method=auto|manual|disabled` with `address1=`, `gateway=`, `dns=`; the NIC's other
//! `[ipv4]`/`[ipv6]` keys (`dns-search`, `route1`, `may-fail`, `dhcp-client-id`…) move verbatim.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::ini::{self, Ini, Section};
use crate::{static_or_none, Addressing, BridgePlan, Change, Detected, HostCfgError};

pub(crate) const DIR: &str = "/etc/NetworkManager/system-connections";

struct Conn {
    path: PathBuf,
    text: String,
    ini: Ini,
}

fn load(root: &Path) -> Result<Vec<Conn>, HostCfgError> {
    let mut out = Vec::new();
    for path in fsutil::list_dir(root, Path::new(DIR), |n| {
        n.ends_with(".nmconnection") && !n.starts_with('.')
    })? {
        let Some(text) = fsutil::read_text(root, &path)? else {
            continue;
        };
        let ini = Ini::parse(&path, &text)?;
        out.push(Conn { path, text, ini });
    }
    Ok(out)
}

fn iface_of(c: &Conn) -> Option<&str> {
    c.ini.get("connection", "interface-name")
}

fn controller_of(c: &Conn) -> Option<&str> {
    c.ini
        .get("connection", "controller")
        .or_else(|| c.ini.get("connection", "master"))
}

/// `a.b.c.d/24,gw` or `a.b.c.d/24` → address and optional gateway.
fn parse_addr(v: &str) -> (Option<(IpAddr, u8)>, Option<IpAddr>) {
    let mut parts = v.split(',');
    let addr = parts.next().and_then(crate::parse_cidr);
    let gw = parts.next().and_then(|g| g.trim().parse().ok());
    (addr, gw)
}

fn addressing(ini: &Ini) -> Addressing {
    let m4 = ini.get("ipv4", "method").unwrap_or("auto");
    if m4 == "auto" {
        return Addressing::Dhcp;
    }
    let mut addresses = Vec::new();
    let mut gateway = None;
    let mut dns = Vec::new();
    for fam in ["ipv4", "ipv6"] {
        let Some(s) = ini.section(fam) else { continue };
        if s.get("method") != Some("manual") {
            continue;
        }
        for (k, v) in s.entries() {
            let indexed = k
                .strip_prefix("address")
                .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()));
            if indexed || k == "addresses" {
                for item in v.split(';').filter(|i| !i.trim().is_empty()) {
                    let (a, g) = parse_addr(item);
                    addresses.extend(a);
                    if gateway.is_none() {
                        gateway = g;
                    }
                }
            }
        }
        if let Some(g) = s.get("gateway").and_then(|g| g.parse().ok()) {
            gateway.get_or_insert(g);
        }
        if let Some(d) = s.get("dns") {
            dns.extend(
                d.split([';', ','])
                    .filter_map(|x| x.trim().parse::<IpAddr>().ok()),
            );
        }
    }
    static_or_none(addresses, gateway, dns)
}

pub(crate) fn detect(
    root: &Path,
    iface: &str,
) -> Result<Option<(Vec<PathBuf>, Addressing)>, HostCfgError> {
    let conns: Vec<Conn> = load(root)?
        .into_iter()
        .filter(|c| iface_of(c) == Some(iface))
        .collect();
    let Some(first) = primary(&conns) else {
        return Ok(None);
    };
    let addressing = if controller_of(first).is_some() {
        Addressing::None
    } else {
        addressing(&first.ini)
    };
    Ok(Some((
        conns.iter().map(|c| c.path.clone()).collect(),
        addressing,
    )))
}

/// The profile that autoconnects (the first one not saying `autoconnect=false`).
fn primary<'a>(conns: impl IntoIterator<Item = &'a Conn> + Clone) -> Option<&'a Conn> {
    conns
        .clone()
        .into_iter()
        .find(|c| {
            !matches!(
                c.ini.get("connection", "autoconnect"),
                Some("false" | "0" | "no")
            )
        })
        .or_else(|| conns.into_iter().next())
}

fn entry(k: &str, v: &str) -> ini::Line {
    ini::Line::Entry {
        key: k.to_string(),
        value: v.to_string(),
        raw: format!("{k}={v}"),
    }
}

fn is_regenerated(k: &str, plan_static: bool) -> bool {
    k == "method"
        || (plan_static
            && (k == "gateway"
                || k == "dns"
                || k == "addresses"
                || k.strip_prefix("address")
                    .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))))
}

fn bridge_conn(plan: &BridgePlan, old4: Option<&Section>, old6: Option<&Section>) -> String {
    let mut sections = Vec::new();
    let mut conn = Section::new("connection");
    conn.lines.push(entry("id", &plan.bridge));
    conn.lines.push(entry(
        "uuid",
        &crate::stable_uuid(&format!("virtnet-bridge:{}", plan.bridge)),
    ));
    conn.lines.push(entry("type", "bridge"));
    conn.lines.push(entry("interface-name", &plan.bridge));
    conn.lines.push(entry("autoconnect-slaves", "1"));
    sections.push(conn);
    if plan.mac.is_some() || plan.mtu.is_some() {
        let mut eth = Section::new("ethernet");
        if let Some(mac) = &plan.mac {
            eth.lines
                .push(entry("cloned-mac-address", &crate::fmt_mac(mac)));
        }
        sections.push(eth);
    }
    let mut br = Section::new("bridge");
    br.lines
        .push(entry("stp", if plan.stp { "true" } else { "false" }));
    // NetworkManager accepts 2..=30 only; with STP off the delay has no effect anyway.
    br.lines
        .push(entry("forward-delay", &plan.delay.clamp(2, 30).to_string()));
    sections.push(br);

    let plan_static = matches!(plan.addressing, Addressing::Static { .. });
    let (v4, v6, gw, dns): (Vec<_>, Vec<_>, Option<IpAddr>, Vec<IpAddr>) = match &plan.addressing {
        Addressing::Static {
            addresses,
            gateway,
            dns,
        } => (
            addresses.iter().filter(|a| a.0.is_ipv4()).collect(),
            addresses.iter().filter(|a| a.0.is_ipv6()).collect(),
            *gateway,
            dns.clone(),
        ),
        _ => (vec![], vec![], None, vec![]),
    };
    for (fam, addrs, old) in [("ipv4", &v4, old4), ("ipv6", &v6, old6)] {
        let mut s = Section::new(fam);
        let method = if !addrs.is_empty() {
            "manual".to_string()
        } else if fam == "ipv4" {
            match plan.addressing {
                Addressing::Dhcp => "auto".into(),
                _ => "disabled".into(),
            }
        } else {
            old.and_then(|o| o.get("method"))
                .filter(|m| *m != "manual")
                .unwrap_or("auto")
                .to_string()
        };
        for (i, (a, p)) in addrs.iter().enumerate() {
            s.lines
                .push(entry(&format!("address{}", i + 1), &format!("{a}/{p}")));
        }
        if let Some(g) = gw.filter(|g| g.is_ipv4() == (fam == "ipv4")) {
            if !addrs.is_empty() {
                s.lines.push(entry("gateway", &g.to_string()));
            }
        }
        let fam_dns: Vec<String> = dns
            .iter()
            .filter(|d| d.is_ipv4() == (fam == "ipv4"))
            .map(|d| format!("{d};"))
            .collect();
        if !fam_dns.is_empty() && (method == "manual" || method == "auto") {
            s.lines.push(entry("dns", &fam_dns.concat()));
        }
        if let Some(old) = old {
            for l in &old.lines {
                if let ini::Line::Entry { key, .. } = l {
                    if !is_regenerated(key, plan_static) {
                        s.lines.push(l.clone());
                    }
                }
            }
        }
        s.lines.push(entry("method", &method));
        sections.push(s);
    }
    ini::render_sections(&sections)
}

pub(crate) fn render(
    plan: &BridgePlan,
    _detected: &Detected,
    root: &Path,
) -> Result<Change, HostCfgError> {
    let conns = load(root)?;
    let bridge_path = Path::new(DIR).join(format!("{}.nmconnection", plan.bridge));
    for c in &conns {
        if iface_of(c) == Some(plan.bridge.as_str()) || c.path == bridge_path {
            return Err(HostCfgError::Unsupported {
                path: c.path.clone(),
                reason: format!("{} is already configured", plan.bridge),
            });
        }
    }
    if fsutil::exists(root, &bridge_path)? {
        return Err(HostCfgError::Unsupported {
            path: bridge_path,
            reason: "already exists".into(),
        });
    }
    let mine: Vec<&Conn> = conns
        .iter()
        .filter(|c| iface_of(c) == Some(plan.iface.as_str()))
        .collect();
    let mut change = Change::default();
    let mut old4 = None;
    let mut old6 = None;
    let primary_path = primary(mine.iter().copied()).map(|c| c.path.clone());
    for c in &mine {
        if let Some(ctl) = controller_of(c) {
            return Err(HostCfgError::Unsupported {
                path: c.path.clone(),
                reason: format!("{} is already a port of {ctl}", plan.iface),
            });
        }
        let mut ini = c.ini.clone();
        let removed = ini.take_sections(|n| n == "ipv4" || n == "ipv6" || n == "proxy");
        if Some(&c.path) == primary_path.as_ref() {
            old4 = removed.iter().find(|s| s.name == "ipv4").cloned();
            old6 = removed.iter().find(|s| s.name == "ipv6").cloned();
        }
        let conn = ini.section_mut("connection");
        conn.take(|k| matches!(k, "controller" | "master" | "port-type" | "slave-type"));
        conn.set("master", &plan.bridge);
        conn.set("slave-type", "bridge");
        if let Some(mtu) = plan.mtu {
            ini.section_mut("ethernet").set("mtu", &mtu.to_string());
        }
        ini.section_mut("bridge-port");
        let mut text = ini.render();
        while text.ends_with("\n\n") {
            text.pop();
        }
        change.write.push((c.path.clone(), text));
        change.backup.push((c.path.clone(), c.text.clone()));
    }
    if mine.is_empty() {
        let path = Path::new(DIR).join(format!("{}.nmconnection", plan.iface));
        if fsutil::exists(root, &path)? {
            return Err(HostCfgError::Unsupported {
                path,
                reason: "already exists".into(),
            });
        }
        let mut conn = Section::new("connection");
        conn.lines.push(entry("id", &plan.iface));
        conn.lines.push(entry(
            "uuid",
            &crate::stable_uuid(&format!("virtnet-port:{}", plan.iface)),
        ));
        conn.lines.push(entry("type", "ethernet"));
        conn.lines.push(entry("interface-name", &plan.iface));
        conn.lines.push(entry("master", &plan.bridge));
        conn.lines.push(entry("slave-type", "bridge"));
        let mut sections = vec![conn];
        let mut eth = Section::new("ethernet");
        if let Some(mtu) = plan.mtu {
            eth.lines.push(entry("mtu", &mtu.to_string()));
        }
        sections.push(eth);
        sections.push(Section::new("bridge-port"));
        change.write.push((path, ini::render_sections(&sections)));
    }
    change
        .write
        .push((bridge_path, bridge_conn(plan, old4.as_ref(), old6.as_ref())));
    Ok(change)
}
