//! # virtnet-api
//!
//! The contract between `virtnetd` and its clients: HTTP/1.1 with JSON (and libvirt XML) bodies
//! over the unix socket `<run-dir>/virtnet.sock`. The full table of resources is in
//! `docs/API.md`; this crate holds the wire types both sides compile against.

pub mod client;
mod doctor;
pub use doctor::{DoctorAction, DoctorChain, DoctorFirewalld, DoctorReport, DoctorTable, DOCTOR};
mod fabric;
pub use fabric::{
    Fabric, FabricRequest, FabricSettings, FabricStatus, PeerStatus, VniStatus, FABRIC,
    FABRIC_STATUS,
};
mod forwards;
pub use forwards::{network_forwards_path, ForwardInfo, FORWARDS};
mod leases;
pub use leases::{leases_path, DhcpLease, Event, EventBatch, EventKind, EVENTS};
mod hostbridge;
pub use hostbridge::{
    host_bridge_path, ConnectivityCheck, HostBridge, HostBridgePhase, HostBridgeRequest,
    HOST_BRIDGES,
};
mod networkport;
pub use networkport::{
    network_port_path, network_ports_path, NetworkPortInfo, NetworkPortParameters, NETWORK_PORTS,
};
mod ports;
pub use ports::{
    check_domain_name, domain_addresses_path, port_path, AddressSource, InterfaceAddress,
    LinkRequest, MoveRequest, Port, PortRequest, MAX_DOMAIN_NAME, PORTS,
};
mod web;
pub use web::{WebToken, WEB_TOKEN, WEB_TOKEN_FILE};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use virtnet_model::{ForwardMode, Network};

/// Name of the socket file inside the daemon's run directory.
pub const SOCKET_NAME: &str = "virtnet.sock";
/// Name of the read-only socket file inside the daemon's run directory: it answers reads
/// (`GET`) only, and every change with `403` [`ErrorCode::ReadOnly`].
pub const RO_SOCKET_NAME: &str = "virtnet-ro.sock";
/// Default run directory of `virtnetd`.
pub const DEFAULT_RUN_DIR: &str = "/run/virtnet";
/// Default state directory of `virtnetd`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/virtnet";
/// Environment variable naming the socket the CLI connects to.
pub const SOCKET_ENV: &str = "VIRTNET_SOCKET";
/// Media type of libvirt XML bodies.
pub const XML_MEDIA_TYPE: &str = "application/xml";
/// Largest request body the daemon reads (a network definition is a few KiB).
pub const MAX_BODY_BYTES: usize = virtnet_model::MAX_XML_BYTES;

/// One row of `GET /v1/networks`: what `net-list` and `net-info` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Network name.
    pub name: String,
    /// Network UUID.
    pub uuid: Uuid,
    /// Running (has a live definition).
    pub active: bool,
    /// Has a persistent definition (survives `net-destroy`).
    pub persistent: bool,
    /// Started when virtnetd starts.
    pub autostart: bool,
    /// Bridge device, if the network has one.
    pub bridge: Option<String>,
    /// Forward mode.
    pub forward_mode: ForwardMode,
}

/// One row of `GET /v1/unreadable-networks`: a stored network record virtnetd could not read
/// at start (written by another version, or damaged). It is set aside: kept in the store as
/// it is, not started, and removed by `net-undefine <name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableNetwork {
    /// Network name (the record's key).
    pub name: String,
    /// Why it could not be read.
    pub reason: String,
}

/// Stored network records set aside because they cannot be read (outside `/v1/networks/` so
/// that it cannot shadow a network of that name).
pub const UNREADABLE_NETWORKS: &str = "/v1/unreadable-networks";

/// `GET /v1/networks/{id}` (JSON form): the summary, the definition shown and its ETag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDetail {
    /// State flags.
    #[serde(flatten)]
    pub summary: NetworkSummary,
    /// The live definition when active, else the persistent one (`?inactive=true`: the
    /// persistent one when there is one).
    pub definition: Network,
    /// Version tag of the network's record; send it back in `If-Match` to edit.
    pub etag: String,
}

/// Answer to a define, create, edit, undefine or autostart request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeResult {
    /// The network after the change.
    pub network: NetworkSummary,
    /// Version tag after the change (empty when the network is gone).
    pub etag: String,
    /// False when a define replaced an existing definition.
    #[serde(default)]
    pub created: bool,
    /// Things the user should know although the request succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Body of `PUT /v1/networks/{id}/autostart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutostartRequest {
    /// New autostart flag.
    pub autostart: bool,
}

/// Body of `POST /v1/networks/{id}/update` (`virsh net-update`): one section of the definition
/// changed with libvirt's semantics (`virtnet_model::update::apply_update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// `add`, `add-first`, `add-last`, `delete` or `modify`.
    pub command: String,
    /// libvirt's section name: `ip-dhcp-host`, `ip-dhcp-range`, `forward-interface`,
    /// `portgroup`, `dns-host`, `dns-txt` or `dns-srv`.
    pub section: String,
    /// The one element to add, delete or modify (`<host mac=… ip=…/>`).
    pub xml: String,
    /// Which `<ip>` the `ip-dhcp-*` sections change; absent: libvirt's choice (`-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_index: Option<usize>,
    /// Change the running network (`--live`).
    #[serde(default)]
    pub live: bool,
    /// Change the persistent definition (`--config`).
    #[serde(default)]
    pub config: bool,
}

/// Body of `POST /v1/destroy`: the networks to stop together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyRequest {
    /// Names or UUIDs of active networks.
    pub networks: Vec<String>,
}

/// Answer to `POST /v1/destroy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyResult {
    /// The networks after the change, in request order (a transient network is gone: not
    /// persistent, not active).
    pub networks: Vec<NetworkSummary>,
}

/// One of virtnet's bridges, as `GET /v1/bridges` reports it (`virtnet iface-bridges`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// Bridge device name.
    pub name: String,
    /// Bridge id as brctl prints it: priority, `.`, MAC (`8000.525400a1b2c3`).
    pub bridge_id: String,
    /// Spanning tree protocol enabled.
    pub stp: bool,
    /// Enslaved interfaces, sorted by name.
    pub interfaces: Vec<String>,
}

/// Stable error codes of the API (the `code` field of [`ApiError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// 400: the body is not acceptable XML (malformed, DTD, too deep).
    InvalidXml,
    /// 400: the definition is not valid.
    Invalid,
    /// 400: malformed request (bad query, bad JSON).
    BadRequest,
    /// 404: no such network.
    NotFound,
    /// 409: clashes with another network, or the operation does not fit the network's state.
    Conflict,
    /// 400: asks for something virtnet does not do.
    Unsupported,
    /// 412: `If-Match` does not match the current ETag.
    EtagMismatch,
    /// 428: an edit without `If-Match`.
    PreconditionRequired,
    /// 413: body larger than [`MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// 403: a change sent to the read-only socket ([`RO_SOCKET_NAME`]).
    ReadOnly,
    /// 403: the peer (by its `SO_PEERCRED` credentials) may not use the read-write socket:
    /// only root and the daemon's admin group may.
    Forbidden,
    /// 500: the daemon failed (store I/O…).
    Internal,
    /// 507: no space left on the state directory; the change was not made. virtnetd works
    /// again by itself once space is freed.
    NoSpace,
}

impl ErrorCode {
    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidXml
            | ErrorCode::Invalid
            | ErrorCode::BadRequest
            | ErrorCode::Unsupported => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::EtagMismatch => 412,
            ErrorCode::PreconditionRequired => 428,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::ReadOnly | ErrorCode::Forbidden => 403,
            ErrorCode::Internal => 500,
            ErrorCode::NoSpace => 507,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message, in virsh's wording where virsh has one.
    pub message: String,
    /// Field path of the offending element/attribute, for definition errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The offending value, for definition errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl ApiError {
    /// A new error without field information.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            value: None,
        }
    }
}

impl From<virtnet_model::ModelError> for ApiError {
    fn from(e: virtnet_model::ModelError) -> ApiError {
        use virtnet_model::ErrorKind;
        let code = match e.kind {
            ErrorKind::Xml => ErrorCode::InvalidXml,
            ErrorKind::Invalid => ErrorCode::Invalid,
            ErrorKind::Conflict => ErrorCode::Conflict,
            ErrorKind::Unsupported => ErrorCode::Unsupported,
        };
        ApiError {
            code,
            message: e.to_string(),
            field: (!e.field.is_empty()).then(|| e.field.clone()),
            value: e.value.clone(),
        }
    }
}

/// The API's paths.
pub mod paths {
    /// Collection of networks.
    pub const NETWORKS: &str = "/v1/networks";

    /// One network, by name or UUID (path-escaped).
    pub fn network(id: &str) -> String {
        format!("{NETWORKS}/{}", escape(id))
    }

    /// Stops several active networks at once (outside `/v1/networks/` so that it cannot shadow a
    /// network named `destroy`).
    pub const DESTROY: &str = "/v1/destroy";

    /// virtnet's bridges with their ports.
    pub const BRIDGES: &str = "/v1/bridges";

    /// Starts one inactive persistent network.
    pub fn start(id: &str) -> String {
        format!("{}/start", network(id))
    }

    /// The autostart flag of one network.
    pub fn autostart(id: &str) -> String {
        format!("{}/autostart", network(id))
    }

    /// Changes one section of a network's definition (`net-update`).
    pub fn update(id: &str) -> String {
        format!("{}/update", network(id))
    }

    /// Percent-escapes a path segment (network names may contain any character but `/`).
    pub fn escape(segment: &str) -> String {
        let mut out = String::with_capacity(segment.len());
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}
