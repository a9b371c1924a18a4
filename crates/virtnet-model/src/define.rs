//! What `net-define` / `net-create` add on top of parsing: the identity rules against networks
//! already defined, the values libvirt generates when they are missing (UUID, a `52:54:00` MAC,
//! the next free `virbrN` bridge), and the rules libvirt's network driver checks at define time
//! (`networkValidate`), which the parser alone does not.

use uuid::Uuid;

use crate::error::{ErrorKind, ModelError, Result};
use crate::mac::MacAddr;
use crate::network::{Bridge, Network};
use crate::rules::{self, Scope};
pub use crate::subnet::{in_subnet, prefix_mask_v4, prefix_mask_v6};
use crate::{ifname, xml};

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
/// 1. every rule libvirt 9.0 checks when it defines a network and the parser leaves to define
///    (the `rules` module: libvirt's `networkValidate` and the cross-element checks of
///    `virNetworkDefParseXML`, e.g. a `nat` network needs an `<ip>`, `<mtu>` only on networks
///    with their own bridge);
/// 2. fills a missing UUID, a missing bridge MAC (`52:54:00:…`) and a missing bridge name (the
///    first `virbrN`, or the `%d` template given, not used by another network nor present on
///    the host according to `link_exists`);
/// 3. refuses a bridge name another network already uses, and an overlay VNI another
///    network already uses (an overlay network's missing MAC is its VNI's anycast MAC).
///
/// `others` are all networks except the one this definition redefines. Returns warnings to
/// show the user (the definition is accepted). On error `net` may be partly filled; callers
/// discard it.
pub fn prepare(
    net: &mut Network,
    others: &[&Network],
    link_exists: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    prepare_scoped(net, others, link_exists, Scope::Define)
}

/// [`prepare`] with the rules of `scope` (`net-update` checks its result with
/// [`Scope::Update`]).
pub(crate) fn prepare_scoped(
    net: &mut Network,
    others: &[&Network],
    link_exists: &dyn Fn(&str) -> bool,
    scope: Scope,
) -> Result<Vec<String>> {
    rules::check(net, scope)?;
    check_bridge_template(net)?;
    if net.uuid.is_none() {
        net.uuid = Some(Uuid::new_v4());
    }
    if net.forward.mode.has_own_bridge() {
        if net.mac.is_none() {
            // An overlay's gateway has the same MAC on every host (anycast gateway), derived
            // from the VNI; any other bridge gets libvirt's random one.
            net.mac = Some(match &net.overlay {
                Some(o) => crate::overlay::anycast_mac(o.vni),
                None => MacAddr::random_qemu(),
            });
        }
        assign_bridge_name(net, others, link_exists)?;
    }
    check_bridge_unique(net, others)?;
    check_vni_unique(net, others)?;
    if !net.forwards.is_empty() {
        let theirs: Vec<(&str, &[crate::portforward::PortForward])> = others
            .iter()
            .filter(|o| o.name != net.name)
            .map(|o| (o.name.as_str(), o.forwards.as_slice()))
            .collect();
        crate::portforward::check_against_others(&net.forwards, &theirs)?;
    }
    // Last, on the completed definition: what is stored must read back.
    xml::stored::checked_xml(net)?;
    Ok(warnings(net))
}

fn conflict(field: &str, value: &str, reason: String) -> ModelError {
    ModelError::bad_value(field, value, reason).with_kind(ErrorKind::Conflict)
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
        if candidate.len() > ifname::IFNAMSIZ_MAX {
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

/// Refuses a VNI another network on this host already uses: both would need the same VXLAN
/// identifier on the same UDP port, which the kernel refuses, and EVPN would merge them.
fn check_vni_unique(net: &Network, others: &[&Network]) -> Result<()> {
    let Some(mine) = &net.overlay else {
        return Ok(());
    };
    for other in others.iter().filter(|o| o.name != net.name) {
        if other.overlay.as_ref().is_some_and(|o| o.vni == mine.vni) {
            return Err(conflict(
                "virtnet:overlay.vni",
                &mine.vni.to_string(),
                format!(
                    "VNI {} is already used by network '{}'",
                    mine.vni, other.name
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
