//! The stored record of one host bridge (table `host_bridges`), its API view, and the
//! bridges rolled back or removed lately.

use serde::{Deserialize, Serialize};
use virtnet_api::{ConnectivityCheck, HostBridge, HostBridgePhase};
use virtnet_host::RouteEntry;

use super::{not_ours, unix_now_ms, HostBridges, NicSnapshot};
use crate::error::Result;
use crate::sync::lock;

/// How many rolled-back or removed bridges are remembered for `GET` (the CLI polls).
const RECENT: usize = 32;

/// The stored record of one host bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) bridge: String,
    pub(super) iface: String,
    pub(super) phase: HostBridgePhase,
    pub(super) stp: bool,
    pub(super) delay: u32,
    /// The NIC before `iface-bridge`.
    pub(super) nic: NicSnapshot,
    /// During `iface-unbridge`: what the NIC gets back (the bridge's configuration then).
    #[serde(default)]
    pub(super) restore: Option<NicSnapshot>,
    #[serde(default)]
    pub(super) bridge_index: Option<u32>,
    #[serde(default)]
    pub(super) check: Option<ConnectivityCheck>,
    #[serde(default)]
    pub(super) confirm_timeout: Option<u32>,
    /// Unix time in milliseconds by which `iface-confirm` must come.
    #[serde(default)]
    pub(super) confirm_deadline: Option<u64>,
    #[serde(default)]
    pub(super) dhcp: bool,
    #[serde(default)]
    pub(super) steps: Vec<String>,
    #[serde(default)]
    pub(super) warnings: Vec<String>,
    #[serde(default)]
    pub(super) error: Option<String>,
    /// The host configuration method the bridge was written to (`apply`ed), so that
    /// `iface-unbridge` reverts it; `None` when nothing was written.
    #[serde(default)]
    pub(super) persisted: Option<String>,
    /// What the view says about the host's configuration (see `HostBridge::config`).
    #[serde(default)]
    pub(super) config: Option<String>,
}

impl Record {
    /// The record as the API shows it.
    pub(super) fn view(&self) -> HostBridge {
        let shown = self.restore.as_ref().unwrap_or(&self.nic);
        HostBridge {
            bridge: self.bridge.clone(),
            iface: self.iface.clone(),
            phase: self.phase,
            addresses: shown
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.local, a.prefix_len))
                .collect(),
            routes: shown.routes.iter().map(RouteEntry::describe).collect(),
            check: self.check.clone(),
            confirm_remaining: match (self.phase, self.confirm_deadline) {
                (HostBridgePhase::AwaitingConfirm, Some(d)) => {
                    Some(d.saturating_sub(unix_now_ms()).div_ceil(1000))
                }
                _ => None,
            },
            dhcp: self.dhcp,
            steps: self.steps.clone(),
            error: self.error.clone(),
            warnings: self.warnings.clone(),
            config: self.config.clone(),
        }
    }
}

impl HostBridges {
    pub(super) fn records(&self) -> Result<Vec<Record>> {
        self.store.host_bridges()
    }

    pub(super) fn record(&self, bridge: &str) -> Result<Option<Record>> {
        Ok(self.records()?.into_iter().find(|r| r.bridge == bridge))
    }

    pub(super) fn put(&self, rec: &Record) -> Result<()> {
        self.store.put_host_bridge(&rec.bridge, rec)
    }

    pub(super) fn remember(&self, view: HostBridge) {
        let mut recent = lock(&self.recent);
        recent.insert(view.bridge.clone(), view);
        while recent.len() > RECENT {
            let Some(k) = recent.keys().next().cloned() else {
                break;
            };
            recent.remove(&k);
        }
    }

    /// `GET /v1/host-bridges`.
    pub fn list(&self) -> Result<Vec<HostBridge>> {
        Ok(self.records()?.iter().map(Record::view).collect())
    }

    /// `GET /v1/host-bridges/{bridge}`: recorded, else lately rolled back or removed.
    pub fn get(&self, bridge: &str) -> Result<HostBridge> {
        if let Some(r) = self.record(bridge)? {
            return Ok(r.view());
        }
        lock(&self.recent)
            .get(bridge)
            .cloned()
            .ok_or_else(|| not_ours(bridge))
    }
}
