//! Reading FRR's state: the JSON of `show bgp l2vpn evpn summary json` and `show evpn vni
//! json` (asked through `vtysh -N <pathspace>`), turned into the API's types. Fields FRR
//! leaves out (no session yet, no VNI yet) read as empty rather than as errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use virtnet_api::{PeerStatus, VniStatus};

/// `show bgp l2vpn evpn summary json` (the fields virtnet reads). FRR answers `{}` when no
/// neighbour is active in the address family.
#[derive(Debug, Default, Deserialize)]
struct Summary {
    #[serde(default)]
    peers: BTreeMap<String, SummaryPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryPeer {
    #[serde(default)]
    state: String,
    #[serde(default)]
    peer_uptime_msec: u64,
    #[serde(default)]
    pfx_rcd: u64,
    #[serde(default)]
    pfx_snt: u64,
}

/// One entry of `show evpn vni json` (keyed by the VNI as text).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vni {
    vni: u32,
    #[serde(default)]
    vxlan_if: String,
    #[serde(default)]
    remote_vteps: Vec<String>,
}

/// The BGP sessions of a summary.
pub fn parse_summary(json: &str) -> Result<Vec<PeerStatus>, serde_json::Error> {
    let summary: Summary = serde_json::from_str(json)?;
    Ok(summary
        .peers
        .into_iter()
        .map(|(address, p)| PeerStatus {
            address,
            established: p.state == "Established",
            state: p.state,
            uptime_ms: p.peer_uptime_msec,
            prefixes_received: p.pfx_rcd,
            prefixes_sent: p.pfx_snt,
        })
        .collect())
}

/// The VNIs zebra knows, by number.
pub fn parse_vnis(json: &str) -> Result<Vec<VniStatus>, serde_json::Error> {
    let vnis: BTreeMap<String, Vni> = serde_json::from_str(json)?;
    let mut out: Vec<VniStatus> = vnis
        .into_values()
        .map(|v| VniStatus {
            vni: v.vni,
            vxlan_if: v.vxlan_if,
            remote_vteps: v.remote_vteps,
        })
        .collect();
    out.sort_by_key(|v| v.vni);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from FRR 8.4.4 (Debian 12) between two namespaced hosts.
    const SUMMARY: &str = r#"{
      "routerId":"10.201.0.1","as":65000,"vrfId":0,"vrfName":"default","peerCount":1,
      "peers":{"10.201.0.2":{"hostname":"h2","remoteAs":65000,"localAs":65000,"version":4,
        "msgRcvd":5,"msgSent":5,"peerUptime":"00:00:08","peerUptimeMsec":8000,
        "peerUptimeEstablishedEpoch":1796646758,"pfxRcd":1,"pfxSnt":1,"state":"Established",
        "peerState":"OK","connectionsEstablished":1,"connectionsDropped":0,"idType":"ipv4"}},
      "failedPeers":0,"displayedPeers":1,"totalPeers":1,"dynamicPeers":0}"#;

    /// Also captured from FRR 8.4.4: one L2 VNI with the other host as remote VTEP.
    const VNIS: &str = r#"{"100":{"vni":100,"type":"L2","vxlanIf":"vx100","numMacs":0,
      "numArpNd":0,"numRemoteVteps":1,"tenantVrf":"default","remoteVteps":["10.201.0.2"]}}"#;

    #[test]
    fn an_established_session_with_its_prefixes() {
        let peers = parse_summary(SUMMARY).expect("parses");
        assert_eq!(
            peers,
            vec![PeerStatus {
                address: "10.201.0.2".into(),
                state: "Established".into(),
                established: true,
                uptime_ms: 8000,
                prefixes_received: 1,
                prefixes_sent: 1,
            }]
        );
    }

    #[test]
    fn a_session_not_up_and_an_empty_summary() {
        let peers =
            parse_summary(r#"{"peers":{"10.201.0.3":{"state":"Active"}}}"#).expect("parses");
        assert!(!peers[0].established);
        assert_eq!(peers[0].state, "Active");
        assert!(parse_summary("{}").expect("parses").is_empty());
    }

    #[test]
    fn vnis_with_their_remote_vteps() {
        let vnis = parse_vnis(VNIS).expect("parses");
        assert_eq!(
            vnis,
            vec![VniStatus {
                vni: 100,
                vxlan_if: "vx100".into(),
                remote_vteps: vec!["10.201.0.2".into()],
            }]
        );
        assert!(parse_vnis("{}").expect("parses").is_empty());
    }
}
