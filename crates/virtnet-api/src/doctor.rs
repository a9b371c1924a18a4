//! `virtnet doctor` (`GET /v1/doctor`): what virtnetd found of the other firewalls on the
//! host and what it did about them (issue 14's coexistence).

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};

/// `GET /v1/doctor`.
pub const DOCTOR: &str = "/v1/doctor";

/// The daemon's findings about the host's firewalls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// `--firewall-integration`: virtnet adds scoped accepts to other tables that would drop
    /// guest traffic (off: it refuses to start networks such a table would break).
    pub firewall_integration: bool,
    /// virtnet's own tables and whether each is present now.
    pub own_tables: Vec<DoctorTable>,
    /// Base chains of other tables on the input and forward hooks, with what they do to the
    /// running networks' guest traffic.
    pub foreign_chains: Vec<DoctorChain>,
    /// Docker's chains found in iptables' tables (`DOCKER-USER`, `DOCKER`…), as
    /// `family table chain`.
    pub docker_chains: Vec<String>,
    /// firewalld.
    pub firewalld: DoctorFirewalld,
    /// What virtnet changed in other tables, oldest first (the last 64 changes).
    pub actions: Vec<DoctorAction>,
}

/// A table of virtnet's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorTable {
    /// `inet virtnet`, `bridge virtnet_ports`.
    pub table: String,
    /// It exists now.
    pub present: bool,
    /// It is needed now (`inet virtnet`: a network with a firewall runs); `None` when the
    /// daemon does not say (`bridge virtnet_ports` exists exactly while a port is guarded).
    pub needed: Option<bool>,
}

/// A base chain of another table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorChain {
    /// `family table`.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// Its hook (`input`, `forward`).
    pub hook: String,
    /// Its policy (`accept`, `drop`).
    pub policy: String,
    /// What it drops of the running networks' guest traffic now (empty: nothing).
    pub blocks: Vec<String>,
    /// The accepts virtnet placed for it, as `network: rule`.
    pub accepts: Vec<String>,
}

/// firewalld's state as virtnet sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorFirewalld {
    /// `not installed` (no `firewall-cmd`), `not running`, or `running`.
    pub state: String,
    /// The zone virtnet's bridges go into (`virtnet`, or libvirt's `libvirt`), when running.
    pub zone: Option<String>,
    /// The bridges virtnet put into that zone.
    pub bridges: Vec<String>,
}

/// One change virtnet made to another firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorAction {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// The network it was for.
    pub network: String,
    /// `inserted`, `re-applied` (after the other firewall re-created its table or chain),
    /// `removed`, `zone`.
    pub action: String,
    /// Where (`chain DOCKER-USER of table ip filter (through iptables-nft)`).
    pub place: String,
    /// The rule or command.
    pub rule: String,
}

impl Client {
    /// `GET /v1/doctor`.
    pub fn doctor(&self) -> Result<DoctorReport, ClientError> {
        let resp = self.checked("GET", DOCTOR, &[], None)?;
        decode(&resp)
    }
}
