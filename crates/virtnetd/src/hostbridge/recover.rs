//! Start-up: what a previous run of virtnetd left half-done is finished or undone.

use std::sync::Arc;

use virtnet_api::HostBridgePhase;
use virtnet_host::Netlink;

use super::restore::restore;
use super::{host, unix_now_ms, HostBridges};
use crate::error::Result;
use crate::sync::lock;

impl HostBridges {
    /// Start-up: finishes or undoes what a previous run left: `active` bridges stay,
    /// `awaiting-confirm` ones get their timer again (or are rolled back when it passed),
    /// `unbridging` ones are finished, anything else is rolled back. Returns the bridges
    /// restored.
    pub fn recover(self: &Arc<Self>) -> Result<Vec<String>> {
        let records = self.records()?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        let mut done = Vec::new();
        for mut rec in records {
            let _op = lock(&self.op);
            match rec.phase {
                HostBridgePhase::Active => {
                    // Not written to the host's configuration: after a reboot the bridge is
                    // gone, and virtnetd makes it again from the record.
                    let present = nl
                        .link(&rec.bridge)
                        .map_err(host("look up bridge"))?
                        .is_some();
                    if present || rec.persisted.is_some() {
                        continue;
                    }
                    tracing::info!(bridge = %rec.bridge, iface = %rec.iface, "host bridge missing at start; re-creating it");
                    if let Err(e) = self.apply(&mut nl, &mut rec) {
                        tracing::error!(bridge = %rec.bridge, error = %e, "cannot re-create the host bridge");
                    }
                    self.put(&rec)?;
                    continue;
                }
                HostBridgePhase::AwaitingConfirm => {
                    if let Some(d) = rec.confirm_deadline.filter(|d| *d > unix_now_ms()) {
                        self.arm_timer(rec.bridge.clone(), d);
                        continue;
                    }
                    rec.error = Some("not confirmed in time (virtnetd was restarted)".into());
                    self.roll_back(&mut nl, &mut rec)?;
                }
                HostBridgePhase::Unbridging => {
                    let target = rec.restore.clone().unwrap_or_else(|| rec.nic.clone());
                    restore(&mut nl, &rec, &target)?;
                    self.store.delete_host_bridge(&rec.bridge)?;
                    rec.phase = HostBridgePhase::Removed;
                    self.remember(rec.view());
                }
                _ => {
                    rec.error = Some(format!(
                        "virtnetd stopped while the change was {}",
                        rec.phase.as_str()
                    ));
                    self.roll_back(&mut nl, &mut rec)?;
                }
            }
            tracing::warn!(bridge = %rec.bridge, iface = %rec.iface, "unfinished iface-bridge restored at start");
            done.push(rec.bridge.clone());
        }
        Ok(done)
    }
}
