//! Taking a host bridge apart: the roll back of a failed or unconfirmed `iface-bridge`
//! (the NIC as it was before) and `iface-unbridge` (the NIC gets the bridge's configuration
//! of now). Both run [`virtnet_host::snapshot::restore`], which is idempotent, after
//! recording what they restore, so a crash in between is finished at the next start.

use virtnet_api::{HostBridge, HostBridgePhase};
use virtnet_host::snapshot::{same_address, same_route};
use virtnet_host::{AddressEntry, Netlink, IFA_F_NODAD};

use super::apply::{moved_address, moved_route};
use super::record::Record;
use super::{
    conflict, host, is_hostbridge_of, not_ours, snapshot_error, snapshot_of, HostBridges,
    NicSnapshot,
};
use crate::error::{Error, Result};
use crate::sync::lock;

impl HostBridges {
    /// Rolls `rec` back and turns `reason` into the error the client gets.
    pub(super) fn fail(&self, nl: &mut Netlink, mut rec: Record, reason: String) -> Error {
        rec.error = Some(reason.clone());
        match self.roll_back(nl, &mut rec) {
            Ok(()) => conflict(format!(
                "{reason}; rolled back: {} has its addresses and routes again and {} is gone",
                rec.iface, rec.bridge
            )),
            Err(e) => Error::failed(format!("{reason}; the roll back failed too (it is retried at the next start of virtnetd): {e}"),
            ),
        }
    }

    /// Restores the NIC as recorded before `iface-bridge` and forgets the record.
    pub(super) fn roll_back(&self, nl: &mut Netlink, rec: &mut Record) -> Result<()> {
        rec.phase = HostBridgePhase::RollingBack;
        self.put(rec)?;
        let target = rec.nic.clone();
        restore(nl, rec, &target)?;
        self.store.delete_host_bridge(&rec.bridge)?;
        rec.phase = HostBridgePhase::RolledBack;
        tracing::info!(bridge = %rec.bridge, iface = %rec.iface, reason = ?rec.error, "host bridge rolled back");
        self.remember(rec.view());
        Ok(())
    }

    /// `DELETE /v1/host-bridges/{bridge}` (`iface-unbridge`): the bridge's addresses and
    /// routes back to the NIC, release it, delete the bridge.
    pub fn unbridge(&self, bridge: &str) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut rec = self.record(bridge)?.ok_or_else(|| not_ours(bridge))?;
        if !matches!(
            rec.phase,
            HostBridgePhase::Active | HostBridgePhase::AwaitingConfirm
        ) {
            return Err(conflict(format!(
                "host bridge '{bridge}' is {}",
                rec.phase.as_str()
            )));
        }
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        let link = nl
            .link(bridge)
            .map_err(host("look up bridge"))?
            .filter(|l| is_hostbridge_of(l, &rec.iface))
            .ok_or_else(|| not_ours(bridge))?;
        let now = snapshot_of(&mut nl, &link)?;
        let target = unbridged(&rec, &now);
        rec.restore = Some(target.clone());
        rec.phase = HostBridgePhase::Unbridging;
        self.put(&rec)?;
        restore(&mut nl, &rec, &target)?;
        if rec.persisted.take().is_some() {
            if let Err(e) = virtnet_hostcfg::revert(&self.config_root, bridge) {
                rec.warnings.push(format!(
                    "the host's configuration could not be restored: {e}"
                ));
            }
        }
        self.store.delete_host_bridge(bridge)?;
        rec.phase = HostBridgePhase::Removed;
        tracing::info!(bridge, iface = %rec.iface, "host bridge removed");
        let view = rec.view();
        self.remember(view.clone());
        Ok(view)
    }
}

/// What the NIC of `rec` gets back at `iface-unbridge`: the bridge's configuration `now` (a
/// DHCP client on the bridge may have renewed), with the NIC's own labels and flags where
/// the entry is the same.
fn unbridged(rec: &Record, now: &NicSnapshot) -> NicSnapshot {
    let addresses = now
        .addresses
        .iter()
        .map(|a| {
            let base = rec.nic.addresses.iter().find(|o| same_address(o, a));
            match base {
                Some(o) => AddressEntry {
                    valid_lft: a.valid_lft,
                    preferred_lft: a.preferred_lft,
                    ..o.clone()
                },
                None => {
                    let mut m = moved_address(a, &rec.bridge, &rec.iface, rec.nic.index, false);
                    m.flags &= !IFA_F_NODAD;
                    m
                }
            }
        })
        .collect();
    let routes = now
        .routes
        .iter()
        .map(|r| {
            rec.nic
                .routes
                .iter()
                .find(|o| same_route(o, r))
                .cloned()
                .unwrap_or_else(|| moved_route(r, rec.nic.index))
        })
        .collect();
    NicSnapshot {
        addresses,
        routes,
        ..rec.nic.clone()
    }
}

/// Puts `target` back on the NIC and deletes the bridge (if it is ours: a link of that name
/// without our alias is left alone). Idempotent (see [`virtnet_host::snapshot::restore`]).
pub(super) fn restore(nl: &mut Netlink, rec: &Record, target: &NicSnapshot) -> Result<()> {
    let bridge = nl
        .link(&rec.bridge)
        .map_err(host("look up the bridge"))?
        .filter(|l| is_hostbridge_of(l, &rec.iface));
    virtnet_host::snapshot::restore(nl, target, bridge.as_ref()).map_err(snapshot_error)
}
