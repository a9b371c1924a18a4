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
    /// The route reflectors (one, or several for redundancy): this host's own router id
    /// among them makes this host a reflector (every peer is then its client, the other
    /// reflectors its non-client neighbours); otherwise this host is a client of each.
    /// Also read from `route_reflector` (one address), the field's name before.
    #[serde(
        default,
        alias = "route_reflector",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub route_reflectors: Vec<String>,
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
    /// The route reflectors (see [`FabricRequest::route_reflectors`]); records written
    /// before several were allowed hold one, as `route_reflector`.
    #[serde(
        default,
        alias = "route_reflector",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub route_reflectors: Vec<IpAddr>,
}

impl Fabric {
    /// This host is a route reflector of the fabric.
    pub fn is_reflector(&self) -> bool {
        self.route_reflectors.contains(&IpAddr::V4(self.router_id))
    }

    /// The BGP neighbours: the peers, and every reflector but this host itself.
    pub fn neighbours(&self) -> Vec<IpAddr> {
        let mut all = self.peers.clone();
        for rr in &self.route_reflectors {
            if *rr != IpAddr::V4(self.router_id) && !all.contains(rr) {
                all.push(*rr);
            }
        }
        all
    }

    /// Whether neighbour `n` is this reflector's client (a peer that is not itself a
    /// reflector); false on a host that is no reflector.
    pub fn is_client(&self, n: &IpAddr) -> bool {
        self.is_reflector() && !self.route_reflectors.contains(n)
    }
}

/// A list given as one value, as a list, or as `null` (a field that held one value before).
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(v)) => vec![v],
        Some(OneOrMany::Many(v)) => v,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_one_reflector_written_before_still_reads() {
        let old = r#"{"asn":65000,"router_id":"10.201.0.2","underlay":"eth1","peers":[],"route_reflector":"10.201.0.1"}"#;
        let f: Fabric = serde_json::from_str(old).expect("the old record reads");
        assert_eq!(
            f.route_reflectors,
            vec!["10.201.0.1".parse::<IpAddr>().expect("ip")]
        );
        let none = r#"{"asn":65000,"router_id":"10.201.0.2","underlay":"eth1"}"#;
        let f: Fabric = serde_json::from_str(none).expect("no reflector");
        assert!(f.route_reflectors.is_empty());
        // A request as clients sent it before, and as they send it now.
        let req = r#"{"asn":65000,"router_id":"10.201.0.2","underlay":"eth1","route_reflector":"10.201.0.1"}"#;
        let r: FabricRequest = serde_json::from_str(req).expect("the old request reads");
        assert_eq!(r.route_reflectors, vec!["10.201.0.1".to_string()]);
        let now = serde_json::to_string(&r).expect("serialises");
        assert!(
            now.contains(r#""route_reflectors":["10.201.0.1"]"#),
            "{now}"
        );
    }
}
