//! DHCP leases and the event feed: wire types, paths and client calls.

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};

/// One DHCP lease as `GET /v1/networks/{id}/leases` reports it (`virtnet net-dhcp-leases`):
/// the fields of libvirt's `virNetworkDHCPLease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpLease {
    /// The network's bridge.
    pub iface: String,
    /// End of the lease, in seconds since the Unix epoch; `None` for an infinite lease.
    pub expiry_time: Option<u64>,
    /// `ipv4` (DHCPv6 leases will say `ipv6`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Client MAC address, lower case, colon separated.
    pub mac: String,
    /// Leased address.
    pub ip_address: String,
    /// Prefix length of the network.
    pub prefix: u8,
    /// Host name the client sent or the static host's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// DHCP client identifier, as colon-separated hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The identity association (IA_NA) id of a DHCPv6 lease (libvirt's `iaid`); absent for
    /// IPv4 leases. `--json` shows it; virsh's table has no column for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iaid: Option<u32>,
}

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A client got a new lease.
    LeaseGranted,
    /// A client renewed its lease.
    LeaseRenewed,
    /// A client released its lease.
    LeaseReleased,
    /// A lease ran out without renewal.
    LeaseExpired,
}

impl EventKind {
    /// The kebab-case name, as printed by `virtnet net-event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LeaseGranted => "lease-granted",
            EventKind::LeaseRenewed => "lease-renewed",
            EventKind::LeaseReleased => "lease-released",
            EventKind::LeaseExpired => "lease-expired",
        }
    }
}

/// One entry of the daemon's event feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the feed: strictly increasing for the daemon's lifetime.
    pub seq: u64,
    /// When it happened, seconds since the Unix epoch.
    pub time: u64,
    /// The network it concerns.
    pub network: String,
    /// What happened.
    pub kind: EventKind,
    /// The lease concerned.
    pub lease: DhcpLease,
}

/// Answer to `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Events after the requested position, oldest first.
    pub events: Vec<Event>,
    /// The position to ask after next time (the last event's `seq`, or the feed's current end).
    pub next: u64,
    /// True when events between the requested position and the first returned one were
    /// dropped from the daemon's bounded buffer.
    #[serde(default)]
    pub lost: bool,
}

/// The leases of one network.
pub fn leases_path(id: &str) -> String {
    format!("{}/leases", crate::paths::network(id))
}

/// The event feed (long poll: `?after=SEQ&wait=SECONDS`).
pub const EVENTS: &str = "/v1/events";

impl Client {
    /// `GET /v1/networks/{id}/leases[?mac=M]`: the network's DHCP leases.
    pub fn leases(&self, id: &str, mac: Option<&str>) -> Result<Vec<DhcpLease>, ClientError> {
        let mut path = leases_path(id);
        if let Some(mac) = mac {
            path.push_str("?mac=");
            path.push_str(&crate::paths::escape(mac));
        }
        let resp = self.checked("GET", &path, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/events?after=SEQ&wait=SECONDS`: events after `after`, waiting up to `wait`
    /// seconds for one to happen. `after = None` asks for the feed's current end only.
    pub fn events(&self, after: Option<u64>, wait: u64) -> Result<EventBatch, ClientError> {
        let path = match after {
            Some(a) => format!("{EVENTS}?after={a}&wait={wait}"),
            None => format!("{EVENTS}?wait=0"),
        };
        let resp = self.checked("GET", &path, &[], None)?;
        decode(&resp)
    }
}
