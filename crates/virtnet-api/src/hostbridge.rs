//! Host bridges made from a NIC (`iface-bridge`, `iface-unbridge`, `iface-confirm`): wire
//! types, paths and client calls. virtnetd makes the change, checks connectivity and rolls
//! back by itself; the client only asks.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};

/// Body of `POST /v1/host-bridges`: put the host NIC `iface` behind a new bridge `bridge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBridgeRequest {
    /// The NIC to enslave (`eth0`).
    pub iface: String,
    /// The bridge to create (`br0`).
    pub bridge: String,
    /// Spanning tree on the new bridge (virsh's default: on).
    #[serde(default = "yes")]
    pub stp: bool,
    /// Forward delay in seconds (virsh's default: 0).
    #[serde(default)]
    pub delay: u32,
    /// Check that this address answers instead of the default route's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<IpAddr>,
    /// After the check passed, keep the change only if `iface-confirm` comes within this many
    /// seconds; the daemon rolls back otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_timeout: Option<u32>,
    /// Only report what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

/// Where a host bridge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostBridgePhase {
    /// Nothing changed (`--dry-run`).
    Planned,
    /// The change is being made.
    Applying,
    /// The change is made; connectivity is being checked.
    Checking,
    /// Checked; waiting for `iface-confirm` until the deadline.
    AwaitingConfirm,
    /// In place and kept.
    Active,
    /// Being undone after a failed check, a missed confirmation or a crash.
    RollingBack,
    /// Undone: the NIC has its configuration back.
    RolledBack,
    /// `iface-unbridge` is moving the configuration back to the NIC.
    Unbridging,
    /// `iface-unbridge` finished: the bridge is gone.
    Removed,
}

impl HostBridgePhase {
    /// The kebab-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HostBridgePhase::Planned => "planned",
            HostBridgePhase::Applying => "applying",
            HostBridgePhase::Checking => "checking",
            HostBridgePhase::AwaitingConfirm => "awaiting-confirm",
            HostBridgePhase::Active => "active",
            HostBridgePhase::RollingBack => "rolling-back",
            HostBridgePhase::RolledBack => "rolled-back",
            HostBridgePhase::Unbridging => "unbridging",
            HostBridgePhase::Removed => "removed",
        }
    }
}

/// The outcome of the connectivity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectivityCheck {
    /// The address that had to answer.
    pub target: IpAddr,
    /// `gateway` (of the default route) or `address` (`--check`).
    pub kind: String,
    /// How it answered: `icmp-echo` or `neighbour` (ARP/NDP resolution on the bridge);
    /// `None` when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// Milliseconds from the end of the change to the answer (or to giving up).
    pub elapsed_ms: u64,
}

/// A host bridge as virtnetd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBridge {
    /// The bridge.
    pub bridge: String,
    /// The NIC behind it.
    pub iface: String,
    /// Where it stands.
    pub phase: HostBridgePhase,
    /// The addresses moved (`198.51.100.10/24`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The routes moved (`default via 198.51.100.1 metric 100 proto 16`).
    #[serde(default)]
    pub routes: Vec<String>,
    /// The connectivity check, once run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ConnectivityCheck>,
    /// Seconds left for `iface-confirm` (phase `awaiting-confirm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_remaining: Option<u64>,
    /// The NIC was configured by DHCP (dynamic addresses or `proto dhcp` routes).
    #[serde(default)]
    pub dhcp: bool,
    /// The steps taken (or, for a dry run, to take), in order.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Why it was rolled back, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the user must know (DHCP client, STP delay …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The host's network configuration: with `dry_run`, the files virtnet would write (each
    /// as `# <path>` and its contents); otherwise which method was written, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// The host-bridge collection.
pub const HOST_BRIDGES: &str = "/v1/host-bridges";

/// One host bridge.
pub fn host_bridge_path(bridge: &str) -> String {
    format!("{HOST_BRIDGES}/{}", crate::paths::escape(bridge))
}

impl Client {
    /// `POST /v1/host-bridges`: makes the bridge, checks connectivity (rolling back by itself
    /// on failure, then answering with an error) and answers once checked.
    pub fn create_host_bridge(
        &self,
        request: &HostBridgeRequest,
    ) -> Result<HostBridge, ClientError> {
        self.send_json("POST", HOST_BRIDGES, request)
    }

    /// `GET /v1/host-bridges`: the bridges virtnet made from NICs.
    pub fn host_bridges(&self) -> Result<Vec<HostBridge>, ClientError> {
        let resp = self.checked("GET", HOST_BRIDGES, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/host-bridges/{bridge}`: one of them, also shortly after it was rolled back.
    pub fn host_bridge(&self, bridge: &str) -> Result<HostBridge, ClientError> {
        let resp = self.checked("GET", &host_bridge_path(bridge), &[], None)?;
        decode(&resp)
    }

    /// `POST /v1/host-bridges/{bridge}/confirm`: keeps a change waiting for confirmation.
    pub fn confirm_host_bridge(&self, bridge: &str) -> Result<HostBridge, ClientError> {
        let resp = self.checked(
            "POST",
            &format!("{}/confirm", host_bridge_path(bridge)),
            &[],
            None,
        )?;
        decode(&resp)
    }

    /// `DELETE /v1/host-bridges/{bridge}`: gives the NIC its configuration back and deletes
    /// the bridge (`iface-unbridge`).
    pub fn delete_host_bridge(&self, bridge: &str) -> Result<HostBridge, ClientError> {
        let resp = self.checked("DELETE", &host_bridge_path(bridge), &[], None)?;
        decode(&resp)
    }
}
