//! Steps 2–6 of `iface-bridge`: the ordered move of the NIC behind the new bridge (the host
//! keeps an address and its routes at every moment), and STP turned on once the NIC is a
//! forwarding port.

use virtnet_host::snapshot::{ok_if_exists, ok_if_missing};
use virtnet_host::{AddressEntry, BridgeSpec, Netlink, PortSettings, RouteEntry, IFA_F_NODAD};

use super::plan::stp_warning;
use super::record::Record;
use super::{host, HostBridges, HOSTBRIDGE_ALIAS_PREFIX};
use crate::error::Result;

impl HostBridges {
    /// Steps 2–6 of the module comment.
    pub(super) fn apply(&self, nl: &mut Netlink, rec: &mut Record) -> Result<()> {
        let nic = rec.nic.clone();
        let spec = BridgeSpec {
            name: rec.bridge.clone(),
            mac: nic.mac,
            mtu: Some(nic.mtu),
            alias: format!("{HOSTBRIDGE_ALIAS_PREFIX}{}", nic.name),
            // STP off while the NIC is enslaved, so its port forwards at once; turned on
            // below (see `start_stp`).
            stp: false,
            forward_delay_cs: rec.delay * 100,
            group: 0,
        };
        let index = nl
            .create_bridge(&spec)
            .map_err(host(format!("create bridge {}", rec.bridge)))?;
        rec.bridge_index = Some(index);
        self.put(rec)?;
        for a in &nic.addresses {
            let m = moved_address(a, &nic.name, &rec.bridge, index, true);
            ok_if_exists(nl.add_address_entry(&m)).map_err(host("add address to the bridge"))?;
        }
        nl.set_port(
            nic.index,
            &PortSettings {
                master: Some(Some(index)),
                ..PortSettings::default()
            },
        )
        .map_err(host(format!("enslave {} to {}", nic.name, rec.bridge)))?;
        if rec.stp && start_stp(nl, index, &spec)? {
            // A user-space STP daemon decides the port's state: the outage may be back.
            let kernel = stp_warning(&rec.iface, &rec.bridge, rec.delay, false);
            let user = stp_warning(&rec.iface, &rec.bridge, rec.delay, true);
            match rec.warnings.iter_mut().find(|w| **w == kernel) {
                Some(w) => *w = user,
                None => rec.warnings.push(user),
            }
        }
        for r in &nic.routes {
            ok_if_exists(nl.add_route_entry(&moved_route(r, index)))
                .map_err(host("add route to the bridge"))?;
            ok_if_missing(nl.del_route_entry(r)).map_err(host("delete route from the NIC"))?;
        }
        // Secondaries first: deleting a primary takes its secondaries along.
        for a in nic.addresses.iter().rev() {
            ok_if_missing(nl.del_address_entry(a)).map_err(host("delete address from the NIC"))?;
        }
        Ok(())
    }
}

/// Turns STP on for the bridge `index` (`spec` with STP) once the NIC is its port.
///
/// The kernel puts a port added to an STP bridge in listening, then learning, for the
/// forward delay each (at least 2 s each) before it forwards: enslaving the host's NIC that
/// way cut the host off its LAN for 4 s (issue 11, finding 8). A port added while STP is off
/// forwards at once, and starting STP leaves it so (`br_stp_start` →
/// `br_port_state_selection` → `br_make_forwarding` only moves ports that are blocking);
/// STP then runs as asked: BPDUs are sent and received and a loop it detects is blocked.
/// Ports added later (guests' taps) go through listening and learning as usual.
///
/// Returns whether a user-space STP daemon took STP over (then the port's state is its
/// decision, not the kernel's).
fn start_stp(nl: &mut Netlink, index: u32, spec: &BridgeSpec) -> Result<bool> {
    let on = BridgeSpec {
        stp: true,
        ..spec.clone()
    };
    nl.update_bridge(index, &on)
        .map_err(host(format!("turn STP on for {}", spec.name)))?;
    let link = nl
        .link_by_index(index)
        .map_err(host(format!("look up bridge {}", spec.name)))?;
    Ok(link.and_then(|l| l.bridge).is_some_and(|b| b.user_stp))
}

/// `label` of an address moved from link `from` to link `to` (`eth0:1` → `br0:1`).
fn relabel(label: &Option<String>, from: &str, to: &str) -> Option<String> {
    label.as_ref().map(|l| match l.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => to.to_string(),
    })
}

/// The address `a` as it goes on link `to` (`to_name`): relabelled; IPv6 without DAD when
/// it goes to the bridge (it is already ours).
pub(super) fn moved_address(
    a: &AddressEntry,
    from: &str,
    to_name: &str,
    to: u32,
    nodad: bool,
) -> AddressEntry {
    let mut m = a.clone();
    m.ifindex = to;
    m.label = relabel(&a.label, from, to_name);
    if nodad && a.local.is_ipv6() {
        m.flags |= IFA_F_NODAD;
    }
    m
}

/// The route `r` through link `to`.
pub(super) fn moved_route(r: &RouteEntry, to: u32) -> RouteEntry {
    let mut m = r.clone();
    m.oif = Some(to);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_link() {
        assert_eq!(
            relabel(&Some("eth0:1".into()), "eth0", "br0"),
            Some("br0:1".into())
        );
        assert_eq!(
            relabel(&Some("eth0".into()), "eth0", "br0"),
            Some("br0".into())
        );
        assert_eq!(relabel(&None, "eth0", "br0"), None);
    }
}
