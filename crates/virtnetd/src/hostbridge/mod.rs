//! Host bridges made from a NIC: `iface-bridge`, `iface-unbridge`, `iface-confirm`.
//!
//! virtnetd, not the CLI, makes the change, checks connectivity and rolls back, so a client
//! that dies (or a connection that drops because the host's only NIC moved) cannot leave the
//! host half-changed. Every step is preceded by a durable record (table `host_bridges`: the
//! NIC's snapshot and the phase), so a crash of virtnetd is undone at its next start.
//!
//! Order of `iface-bridge IFACE BRIDGE` (the host stays reachable throughout):
//! 1. snapshot IFACE: addresses with all attributes (flags, label, lifetimes), every route
//!    through it (all tables but `local`; not the `proto kernel` ones, which follow the
//!    addresses), MTU, MAC, up state; record it (phase `applying`);
//! 2. create BRIDGE with IFACE's MAC (neighbours' ARP caches and the DHCP server's lease stay
//!    valid) and MTU, forward delay as asked and STP off, up, marked with the alias
//!    `virtnet-hostbridge:IFACE`;
//! 3. add IFACE's addresses to BRIDGE (IPv6 without DAD: the address is already ours);
//! 4. enslave IFACE (its port forwards at once: STP is off), then turn STP on when asked
//!    (the default): a forwarding port stays forwarding, so the host never drops off its LAN
//!    (with STP on at enslaving, the port spent 2 × the forward delay, at least 4 s, in
//!    listening and learning);
//! 5. move each route: add it on BRIDGE (`NLM_F_APPEND`), then delete it from IFACE;
//! 6. delete the addresses from IFACE (secondaries first);
//! 7. check (phase `checking`): the default route's gateway, or `--check ADDR`, must answer
//!    an ICMP echo sent on BRIDGE, or — for an on-link target — be resolved in BRIDGE's
//!    neighbour table (ARP/NDP), within [`CHECK_TIME`], plus twice the forward delay when STP
//!    runs (a user-space STP daemon such as mstpd, which the kernel hands STP to in the root
//!    namespace, may still take the port through listening and learning). Else roll back;
//! 8. with a confirmation timeout, wait for `iface-confirm` (phase `awaiting-confirm`, the
//!    deadline stored; a daemon task rolls back when it passes, also after a restart); else
//!    `active`.
//!
//! Roll back and `iface-unbridge` run the same idempotent restore: addresses back on IFACE,
//! release IFACE, routes back on IFACE, delete BRIDGE (which takes its own copies along),
//! then IFACE's MTU, MAC and state as recorded.
//!
//! The kernel mechanisms live in `virtnet-host` ([`virtnet_host::snapshot`]: the NIC's
//! snapshot and its restore; [`virtnet_host::ping`]: the ICMP echo); this module is the
//! policy, one file per job:
//! - `record`: the stored record, its API view and the recently finished bridges;
//! - `create`: `iface-bridge` from the request to its outcome (checks, dry run, phases);
//! - `plan`: the steps and warnings shown before and after the change;
//! - `apply`: steps 2–6, the ordered move of the NIC behind the bridge;
//! - `check`: step 7, what to check and how it answered;
//! - `confirm`: `iface-confirm` and the confirmation timer;
//! - `restore`: roll back and `iface-unbridge`;
//! - `recover`: what a previous run left, at start;
//! - `host_config`: the host's persistent network configuration (`virtnet-hostcfg`).

mod apply;
mod check;
mod confirm;
mod create;
mod host_config;
mod plan;
mod record;
mod recover;
mod restore;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use virtnet_api::HostBridge;
use virtnet_host::snapshot::SnapshotError;
use virtnet_host::{HostError, Link};

use crate::error::Error;
use crate::store::Store;

pub use virtnet_host::snapshot::NicSnapshot;

/// Alias prefix of the bridges `iface-bridge` makes (not `virtnet:`: the network reconciler
/// must never take them for a network's leftovers).
pub const HOSTBRIDGE_ALIAS_PREFIX: &str = "virtnet-hostbridge:";
/// How long the connectivity check waits for an answer (without STP).
pub const CHECK_TIME: Duration = Duration::from_secs(5);

/// The host bridges of this daemon.
pub struct HostBridges {
    store: Arc<Store>,
    /// Root of the host's filesystem for its network configuration ("/"; tests use a copy).
    config_root: std::path::PathBuf,
    /// Serialises changes (held across a whole change, check included).
    op: Mutex<()>,
    /// Bridges rolled back or removed lately, for `GET` (a client waiting for a confirmation
    /// learns the outcome there).
    recent: Mutex<BTreeMap<String, HostBridge>>,
}

impl std::fmt::Debug for HostBridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBridges").finish_non_exhaustive()
    }
}

impl HostBridges {
    /// The host bridges recorded in `store`.
    pub fn new(store: Arc<Store>, config_root: std::path::PathBuf) -> HostBridges {
        HostBridges {
            store,
            config_root,
            op: Mutex::new(()),
            recent: Mutex::new(BTreeMap::new()),
        }
    }
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn host(context: impl Into<String>) -> impl FnOnce(HostError) -> Error {
    let context = context.into();
    move |source| Error::Host { context, source }
}

/// A snapshot or restore failure as the daemon reports it.
fn snapshot_error(e: SnapshotError) -> Error {
    match e {
        SnapshotError::Step { step, source } => Error::Host {
            context: step.to_string(),
            source,
        },
        gone @ SnapshotError::NicGone(_) => Error::failed(gone.to_string()),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::rejected(message)
}

fn conflict(message: impl Into<String>) -> Error {
    Error::conflict(message)
}

fn not_ours(bridge: &str) -> Error {
    Error::missing(format!(
        "bridge '{bridge}' was not made by virtnet iface-bridge"
    ))
}

fn is_hostbridge_of(link: &Link, iface: &str) -> bool {
    link.kind.as_deref() == Some("bridge")
        && link.alias.as_deref() == Some(format!("{HOSTBRIDGE_ALIAS_PREFIX}{iface}").as_str())
}

/// Step 1: the snapshot of `link` (multipath routes, which cannot move, are left as they
/// are and logged).
fn snapshot_of(nl: &mut virtnet_host::Netlink, link: &Link) -> crate::error::Result<NicSnapshot> {
    let (nic, multipath) = NicSnapshot::take(nl, link).map_err(snapshot_error)?;
    if let Some(r) = multipath.first() {
        tracing::warn!(route = %r.describe(), "multipath route left as it is");
    }
    Ok(nic)
}
