//! What `net-define` / `net-create` add on top of parsing: the identity rules against networks
//! already defined, the values libvirt generates when they are missing (UUID, a `52:54:00` MAC,
//! the next free `virbrN` bridge), and the rules libvirt's network driver checks at define time
//! (`networkValidate`), which the parser alone does not.

use std::net::IpAddr;

use uuid::Uuid;

use crate::error::{ErrorKind, ModelError, Result};
use crate::mac::MacAddr;
use crate::network::{Bridge, Family, Network};

/// How a new definition relates to the networks already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A network with a new name and UUID.
    New,
    /// Same name and same UUID as an existing network: the definition replaces its config.
    Redefines,
}

/// Decides whether `net` is new or redefines a known network, following libvirt: the same name
/// with another UUID, or the same UUID with another name, is a conflict. A definition without a
/// UUID is new (a UUID will be generated), so it conflicts with any network of the same name.
///
/// `known` lists `(name, uuid)` of every network the daemon knows, persistent or transient.
pub fn identify(net: &Network, known: &[(&str, Uuid)]) -> Result<Identity> {
    for (name, uuid) in known {
        let same_name = *name == net.name;
        let same_uuid = net.uuid == Some(*uuid);
        match (same_name, same_uuid) {
            (true, true) => return Ok(Identity::Redefines),
            (true, false) => {
                return Err(conflict(
                    "name",
                    &net.name,
                    format!("network '{name}' already exists with uuid {uuid}"),
                ))
            }
            (false, true) => {
                return Err(conflict(
                    "uuid",
                    &uuid.to_string(),
                    format!("network '{name}' is already defined with uuid {uuid}"),
                ))
            }
            (false, false) => {}
        }
    }
    Ok(Identity::New)
}

/// Completes and checks a definition before it is stored:
///
/// 1. libvirt's define-time rules for the forward mode (which modes may carry `<ip>`, `<dns>`,
///    `<domain>`, `<mac>`; one DHCP block per address family; what bridge/macvtap modes need);
/// 2. fills a missing UUID, a missing bridge MAC (`52:54:00:…`) and a missing bridge name (the
///    first `virbrN`, or the `%d` template given, not used by another network nor present on
///    the host according to `link_exists`);
/// 3. refuses a bridge name another network already uses.
///
/// `others` are all networks except the one this definition redefines. Returns warnings to
/// show the user (the definition is accepted). On error `net` may be partly filled; callers
/// discard it.
pub fn prepare(
    net: &mut Network,
    others: &[&Network],
    link_exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    check_mode_rules(net)?;
    check_dhcp_per_family(net)?;
    check_bridge_template(net)?;
    if net.uuid.is_none() {
        net.uuid = Some(Uuid::new_v4());
    }
    if net.forward.mode.has_own_bridge() {
        if net.mac.is_none() {
            net.mac = Some(MacAddr::random_qemu());
        }
        assign_bridge_name(net, others, link_exists)?;
    }
    check_bridge_unique(net, others)?;
    // Last, on the completed definition: what is stored must read back.
    net.to_checked_xml()?;
    Ok(warnings(net))
}

fn conflict(field: &str, value: &str, reason: String) -> ModelError {
    ModelError::bad_value(field, value, reason).with_kind(ErrorKind::Conflict)
}

/// libvirt `networkValidate`: what each forward mode can carry and needs.
fn check_mode_rules(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    if mode.has_own_bridge() {
        return Ok(());
    }
    let unsupported = |field: &str, what: &str| {
        Err(ModelError::invalid(
            field,
            format!(
                "unsupported <{what}> element in network '{}' with forward mode='{mode}': \
                 only nat, route, open and isolated networks have host addresses, DHCP and DNS",
                net.name
            ),
        ))
    };
    if !net.ips.is_empty() {
        return unsupported("ip[0]", "ip");
    }
    if net.dns.as_ref().is_some_and(|d| !d.is_empty()) {
        return unsupported("dns", "dns");
    }
    if net.domain.is_some() {
        return unsupported("domain", "domain");
    }
    if net.mac.is_some() {
        return unsupported("mac", "mac");
    }
    if !net.routes.is_empty() {
        return unsupported("route[0]", "route");
    }
    if !net.host_access.is_empty() {
        // Guests of a host bridge or macvtap reach the host through the host's own firewall,
        // not virtnet's: there is nothing for virtnet to open.
        return unsupported("virtnet:host-access", "virtnet:host-access");
    }
    // Like libvirt, a bridge/macvtap/hostdev network without a bridge name or device pool is
    // accepted here; it fails when a guest port is allocated on it (nothing to attach to).
    Ok(())
}

/// One DHCP server per family: libvirt refuses a second `<dhcp>` of the same family.
fn check_dhcp_per_family(net: &Network) -> Result<()> {
    for family in [Family::Ipv4, Family::Ipv6] {
        let mut with_dhcp = net
            .ips
            .iter()
            .enumerate()
            .filter(|(_, ip)| ip.family() == family)
            .filter(|(_, ip)| {
                ip.dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
            })
            .map(|(i, _)| i);
        if let (Some(_), Some(second)) = (with_dhcp.next(), with_dhcp.next()) {
            return Err(ModelError::invalid(
                format!("ip[{second}].dhcp"),
                format!(
                    "multiple {} <dhcp> sections: DHCP is supported for only one {} address \
                     per network",
                    family.as_str(),
                    family.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// A bridge name may hold one `%d` (replaced by the first free number) and no other `%`: the
/// kernel reads any `%` in a link name as a format of its own and refuses (`x%d%d` would
/// become `x0%d`, accepted here and failing at `net-start`).
fn check_bridge_template(net: &Network) -> Result<()> {
    let Some(name) = net.bridge.as_ref().and_then(|b| b.name.as_deref()) else {
        return Ok(());
    };
    let templates = name.matches("%d").count();
    let percents = name.matches('%').count();
    if templates > 1 || percents > templates {
        return Err(ModelError::bad_value(
            "bridge.name",
            name,
            "a bridge name may contain one '%d' (replaced by the first free number) and no \
             other '%'",
        ));
    }
    Ok(())
}

fn bridge_names<'a>(others: &'a [&Network]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    others
        .iter()
        .filter_map(|n| n.bridge_name().map(|b| (b, n.name.as_str())))
}

/// Gives the network a bridge name when it has none, or expands a `%d` template, choosing the
/// lowest number free among defined networks and host links (libvirt's `virbr%d` rule).
fn assign_bridge_name(
    net: &mut Network,
    others: &[&Network],
    link_exists: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let bridge = net.bridge.get_or_insert_with(Bridge::default);
    let template = match &bridge.name {
        Some(name) if !name.contains("%d") => return Ok(()),
        Some(template) => template.clone(),
        None => "virbr%d".to_string(),
    };
    for n in 0..4096u32 {
        let candidate = template.replacen("%d", &n.to_string(), 1);
        if candidate.len() > crate::xml::parse::IFNAMSIZ_MAX {
            break;
        }
        let taken = bridge_names(others).any(|(b, _)| b == candidate) || link_exists(&candidate);
        if !taken {
            bridge.name = Some(candidate);
            return Ok(());
        }
    }
    Err(ModelError::bad_value(
        "bridge.name",
        template,
        "no free bridge name left for this template",
    )
    .with_kind(ErrorKind::Conflict))
}

/// A bridge owned by a network (nat/route/open/isolated) may not be shared with any other
/// network; host bridges (`forward mode='bridge'`) may be shared among bridge-mode networks.
fn check_bridge_unique(net: &Network, others: &[&Network]) -> Result<()> {
    let Some(name) = net.bridge_name() else {
        return Ok(());
    };
    for other in others {
        if other.bridge_name() != Some(name) {
            continue;
        }
        let both_host_bridge =
            !net.forward.mode.has_own_bridge() && !other.forward.mode.has_own_bridge();
        if !both_host_bridge {
            return Err(conflict(
                "bridge.name",
                name,
                format!(
                    "bridge name '{name}' is already in use by network '{}'",
                    other.name
                ),
            ));
        }
    }
    Ok(())
}

fn warnings(net: &Network) -> Vec<String> {
    let mut out = Vec::new();
    if !net.dnsmasq_options.is_empty() {
        out.push(
            "dnsmasq:options are kept in the definition but never used: virtnet serves DHCP and \
             DNS itself and does not run dnsmasq"
                .to_string(),
        );
    }
    out
}

/// True when `addr` belongs to the subnet `net/prefix`.
pub fn in_subnet(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = prefix_mask_v4(prefix);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = prefix_mask_v6(prefix);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The IPv4 netmask of a prefix length, as an integer.
pub fn prefix_mask_v4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// The IPv6 netmask of a prefix length, as an integer.
pub fn prefix_mask_v6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)),
    }
}
