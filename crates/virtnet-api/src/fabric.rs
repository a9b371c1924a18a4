//! The fabric (`fabric-set`, `fabric-status`; issue 17): this host's place in a BGP EVPN
//! fabric, which virtnetd runs through its own FRR daemons (`docs/FABRIC.md`). Wire types,
//! paths and client calls.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};

/// `PUT /v1/fabric` (set), `GET /v1/fabric` (the record).
pub const FABRIC: &str = "/v1/fabric";
/// `GET /v1/fabric/status`: the BGP sessions and the VNIs FRR knows.
pub const FABRIC_STATUS: &str = "/v1/fabric/status";

/// Body of `PUT /v1/fabric`. Addresses travel as text so that the daemon's refusal names the
/// field (`peers[1]: …`) instead of a JSON decoding error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricRequest {
    /// The autonomous system number of the fabric (iBGP: the same on every host), 1..=4294967295.
    pub asn: u64,
    /// BGP router id: an IPv4 address, usually the underlay address.
    pub router_id: String,
    /// The interface facing the other hosts (sessions are sourced from it).
    pub underlay: String,
    /// iBGP peers (the other hosts, or a reflector's clients).
    #[serde(default)]
    pub peers: Vec<String>,
    /// The route reflector: this host's own router id makes this host the reflector (every
    /// peer is then its client); another address makes this host a client peering with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_reflector: Option<String>,
}

/// The fabric as virtnetd records it (validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fabric {
    /// Autonomous system number.
    pub asn: u32,
    /// BGP router id.
    pub router_id: Ipv4Addr,
    /// The underlay interface.
    pub underlay: String,
    /// iBGP peers.
    #[serde(default)]
    pub peers: Vec<IpAddr>,
    /// The route reflector (see [`FabricRequest::route_reflector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_reflector: Option<IpAddr>,
}

impl Fabric {
    /// This host is the route reflector of the fabric.
    pub fn is_reflector(&self) -> bool {
        self.route_reflector == Some(IpAddr::V4(self.router_id))
    }

    /// The BGP neighbours: the peers, and the reflector when this host is its client.
    pub fn neighbours(&self) -> Vec<IpAddr> {
        let mut all = self.peers.clone();
        if let Some(rr) = self.route_reflector.filter(|_| !self.is_reflector()) {
            if !all.contains(&rr) {
                all.push(rr);
            }
        }
        all
    }
}

/// Answer of `GET /v1/fabric` and `PUT /v1/fabric`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricSettings {
    /// FRR's pathspace virtnetd runs its daemons under (`virtnetd --frr-pathspace`).
    pub pathspace: String,
    /// The recorded fabric; `None` until `fabric-set`.
    pub fabric: Option<Fabric>,
}

/// One BGP session, as FRR reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The neighbour's address.
    pub address: String,
    /// FRR's state (`Established`, `Active`, `Connect`, `Idle`, …).
    pub state: String,
    /// The session is up.
    pub established: bool,
    /// Milliseconds since the session came up (or went down, when it is not up).
    pub uptime_ms: u64,
    /// EVPN prefixes received from the peer.
    pub prefixes_received: u64,
    /// EVPN prefixes sent to the peer.
    pub prefixes_sent: u64,
}

/// One VNI FRR's zebra knows (a VXLAN device in virtnetd's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VniStatus {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The VXLAN device.
    pub vxlan_if: String,
    /// The other hosts (VTEPs) that announced this VNI (type-3 routes).
    pub remote_vteps: Vec<String>,
}

/// Answer of `GET /v1/fabric/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricStatus {
    /// FRR's pathspace.
    pub pathspace: String,
    /// The recorded fabric (`None`: not set, FRR is not running).
    pub fabric: Option<Fabric>,
    /// virtnet's zebra and bgpd run.
    pub running: bool,
    /// The BGP sessions.
    pub peers: Vec<PeerStatus>,
    /// The VNIs.
    pub vnis: Vec<VniStatus>,
    /// Why FRR could not be asked, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Client {
    /// `PUT /v1/fabric`: records the fabric and (re)starts virtnet's FRR daemons with it.
    pub fn set_fabric(&self, request: &FabricRequest) -> Result<FabricSettings, ClientError> {
        self.send_json("PUT", FABRIC, request)
    }

    /// `GET /v1/fabric`.
    pub fn fabric(&self) -> Result<FabricSettings, ClientError> {
        let resp = self.checked("GET", FABRIC, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/fabric/status`.
    pub fn fabric_status(&self) -> Result<FabricStatus, ClientError> {
        let resp = self.checked("GET", FABRIC_STATUS, &[], None)?;
        decode(&resp)
    }
}
