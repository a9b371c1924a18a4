//! virtnet's `inet virtnet` nftables table: a network's entries added in one transaction (set
//! elements straight over nfnetlink where it can), the prefix groups' sets and rules added as
//! they are first needed, and the whole table rebuilt atomically when it went missing.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tracing::warn;
use virtnet_host::nft_set::{key_bytes, INTERVAL_END};
use virtnet_host::{Field, Nftables, SetChange, SetElement};
use virtnet_plan::firewall::{
    groups_script, rebuild_script, remove_table_script, start_script, KeyField, NfProto,
    PrefixGroup, TABLE_NAME,
};
use virtnet_plan::{NetworkFirewall, NetworkPlan};

use super::{host, Kernel};
use crate::error::Result;

/// A network's firewall as nfnetlink set elements (see `virtnet_host::nft_set`), or `None`
/// when it needs a custom NAT chain, which only libnftables installs.
pub fn raw_elements(fw: &NetworkFirewall) -> Option<Vec<SetElement>> {
    if fw.has_nat_chain() {
        return None;
    }
    let mut out = Vec::new();
    for e in fw.elements() {
        if e.jump.is_some() {
            return None;
        }
        let starts: Vec<Field> = e.key.iter().map(field).collect();
        let set = e.set.to_string();
        if !e.in_interval_set() {
            out.push(SetElement {
                set,
                key: key_bytes(&starts),
                key_end: None,
                flags: 0,
                data: None,
            });
        } else {
            // One-field ranges (rbtree): a start element, and an end element one past the
            // range unless the range ends at the last address.
            out.push(SetElement {
                set: set.clone(),
                key: key_bytes(&starts),
                key_end: None,
                flags: 0,
                data: None,
            });
            if let Some(after) = e.key.first().and_then(one_past) {
                out.push(SetElement {
                    set,
                    key: key_bytes(&[after]),
                    key_end: None,
                    flags: INTERVAL_END,
                    data: None,
                });
            }
        }
    }
    Some(out)
}

/// A key field as nfnetlink carries it; a subnet (the start of a range) is its first address.
fn field(k: &KeyField) -> Field {
    match k {
        KeyField::Ifname(n) => Field::Ifname(n.clone()),
        KeyField::Net(s) | KeyField::NetAddr(s) => address_field(s.address),
        KeyField::NfProto(NfProto::Ipv4) => Field::NfProto(libc::NFPROTO_IPV4 as u8),
        KeyField::NfProto(NfProto::Ipv6) => Field::NfProto(libc::NFPROTO_IPV6 as u8),
        KeyField::L4(p) => Field::InetProto(if *p == "tcp" {
            libc::IPPROTO_TCP as u8
        } else {
            libc::IPPROTO_UDP as u8
        }),
        KeyField::Port(p) => Field::Service(*p),
    }
}

fn address_field(a: IpAddr) -> Field {
    match a {
        IpAddr::V4(a) => Field::Ipv4(a),
        IpAddr::V6(a) => Field::Ipv6(a),
    }
}

/// The address right after a subnet, or `None` when the subnet ends the address space.
fn one_past(k: &KeyField) -> Option<Field> {
    let KeyField::Net(s) = k else {
        return None;
    };
    match s.last_address() {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| Field::Ipv4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| Field::Ipv6(n.into())),
    }
}

impl Kernel {
    /// Installs the network's firewall in one transaction. If virtnet's table is gone (an
    /// `nft flush ruleset` or an nftables service restart), rebuilds it whole.
    pub(super) fn install_firewall(&mut self, plan: &NetworkPlan) -> Result<()> {
        let Some(fw) = &plan.firewall else {
            return Ok(());
        };
        self.applied.insert(plan.network.clone(), fw.clone());
        if self.add_groups(fw) && self.add_elements(fw) {
            return Ok(());
        }
        warn!(network = %plan.network, "virtnet's nftables table is missing or damaged; rebuilding it");
        self.rebuild_firewall()
    }

    /// Adds the sets and rules of the prefix groups `fw` needs and the table lacks (a prefix
    /// length seen for the first time). False when that fails.
    fn add_groups(&mut self, fw: &NetworkFirewall) -> bool {
        let needed = fw.groups();
        if needed.is_subset(&self.groups) {
            return true;
        }
        let all: BTreeSet<PrefixGroup> = self.groups.union(&needed).copied().collect();
        if self.nft.run(&groups_script(&all)).is_err() {
            return false;
        }
        self.groups = all;
        true
    }

    /// Adds the network's set elements in one transaction. False when that fails.
    fn add_elements(&mut self, fw: &NetworkFirewall) -> bool {
        match raw_elements(fw) {
            Some(elements) => self
                .sets
                .apply(TABLE_NAME, SetChange::Create, &elements)
                .is_ok(),
            None => self.nft.run(&start_script(fw)).is_ok(),
        }
    }

    /// Puts virtnet's table back when someone else deleted it (an `nft flush ruleset`, a
    /// firewall service's reload) while networks that need it run. True when it was rebuilt.
    /// Run when the kernel announces a ruleset change (see [`super::firewall_watch`]).
    pub(super) fn repair_firewall(&mut self) -> Result<bool> {
        if self.applied.is_empty() {
            return Ok(false);
        }
        let present = self
            .sets
            .has_table(virtnet_host::nft_set::NFPROTO_INET, TABLE_NAME)
            .map_err(host("look up nftables table"))?;
        if present {
            return Ok(false);
        }
        warn!(
            networks = self.applied.len(),
            "virtnet's nftables table was deleted by someone else (nft flush ruleset, a firewall \
             reload); rebuilding it"
        );
        self.rebuild_firewall()?;
        // A flushed ruleset took the overlays' DHCP guard too.
        if !self.overlays.is_empty() {
            self.set_overlay_ports(self.overlays.clone())?;
        }
        Ok(true)
    }

    /// Replaces the whole `inet virtnet` table with the applied firewalls, atomically. With no
    /// firewall to hold, the table is removed: a host without virtnet networks carries no
    /// virtnet rules.
    pub(super) fn rebuild_firewall(&mut self) -> Result<()> {
        let all: Vec<&NetworkFirewall> = self.applied.values().collect();
        let script = if all.is_empty() {
            remove_table_script()
        } else {
            rebuild_script(&all)
        };
        self.groups.clear();
        self.nft
            .run(&script)
            .map_err(host("install the firewall"))?;
        // libnftables keeps its cache of what the script loaded (every element of every
        // network: ~27 MB at 1,500 networks) for as long as the context lives; a fresh one
        // holds nothing, and the next start loads only what it needs.
        match Nftables::new() {
            Ok(fresh) => self.nft = fresh,
            Err(e) => {
                warn!(error = %e, "cannot open a fresh libnftables context; keeping the old one")
            }
        }
        self.groups = all.iter().flat_map(|fw| fw.groups()).collect();
        if !self.applied.is_empty() {
            self.reinstall_forwards()?;
        }
        Ok(())
    }
}
