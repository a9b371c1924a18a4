//! `fabric-set` and `fabric-status`: this host's place in the BGP EVPN fabric and the state
//! of its sessions, which virtnetd runs through its own FRR daemons (`docs/FABRIC.md`).

use std::time::Duration;

use virtnet_api::{FabricRequest, FabricStatus};

use crate::cli::FabricSetArgs;
use crate::output::{Ctx, Failure};

/// Setting the fabric (re)starts FRR's daemons, which takes a few seconds.
const SET_TIMEOUT: Duration = Duration::from_secs(60);

/// `fabric-set --asn N --router-id ADDR --underlay IFACE [--peer ADDR]… [--route-reflector ADDR]…`.
pub fn fabric_set(ctx: &Ctx, a: &FabricSetArgs) -> Result<(), Failure> {
    let request = FabricRequest {
        asn: a.asn,
        router_id: a.router_id.clone(),
        underlay: a.underlay.clone(),
        peers: a.peers.clone(),
        route_reflectors: a.route_reflectors.clone(),
    };
    let client = ctx.client.clone().with_timeout(SET_TIMEOUT);
    let settings = client
        .set_fabric(&request)
        .map_err(|e| Failure::with_context("Failed to set the fabric", &e))?;
    if a.json {
        return ctx.json(&settings);
    }
    ctx.extra(&format!(
        "Fabric set: AS {}, router id {}, FRR pathspace {}\n",
        a.asn, a.router_id, settings.pathspace
    ));
    Ok(())
}

/// `fabric-status [--json]`.
pub fn fabric_status(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let status = ctx
        .client
        .fabric_status()
        .map_err(|e| Failure::client(&e))?;
    if json {
        return ctx.json(&status);
    }
    ctx.print(&render(&status));
    Ok(())
}

/// The status as text: the fabric, then a table of peers, then the VNIs.
fn render(s: &FabricStatus) -> String {
    let Some(f) = &s.fabric else {
        return "No fabric set (virtnet fabric-set).\n".to_string();
    };
    let mut out = format!(
        "AS {}, router id {}, underlay {}, FRR pathspace {} ({})\n",
        f.asn,
        f.router_id,
        f.underlay,
        s.pathspace,
        if s.running { "running" } else { "NOT RUNNING" }
    );
    if let Some(e) = &s.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out.push_str(&format!(
        " {:<40} {:<12} {:>10} {:>8} {:>8}\n",
        "Peer", "State", "Up/Down", "Rcvd", "Sent"
    ));
    out.push_str(&format!("{}\n", "-".repeat(83)));
    for p in &s.peers {
        out.push_str(&format!(
            " {:<40} {:<12} {:>10} {:>8} {:>8}\n",
            p.address,
            p.state,
            duration(p.uptime_ms),
            p.prefixes_received,
            p.prefixes_sent
        ));
    }
    out.push_str("VNIs:");
    if s.vnis.is_empty() {
        out.push_str(" none\n");
    } else {
        out.push('\n');
        for v in &s.vnis {
            let remote = if v.remote_vteps.is_empty() {
                "no remote VTEPs".to_string()
            } else {
                v.remote_vteps.join(" ")
            };
            out.push_str(&format!("  {} on {}: {remote}\n", v.vni, v.vxlan_if));
        }
    }
    out
}

/// `1h02m03s`-style, as FRR's summary shows it.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_api::{Fabric, PeerStatus, VniStatus};

    #[test]
    fn peers_and_vnis_are_listed() {
        let status = FabricStatus {
            pathspace: "virtnet".into(),
            fabric: Some(Fabric {
                asn: 65000,
                router_id: "10.201.0.1".parse().expect("ip"),
                underlay: "eth1".into(),
                peers: vec!["10.201.0.2".parse().expect("ip")],
                route_reflectors: Vec::new(),
            }),
            running: true,
            peers: vec![PeerStatus {
                address: "10.201.0.2".into(),
                state: "Established".into(),
                established: true,
                uptime_ms: 3_723_000,
                prefixes_received: 1,
                prefixes_sent: 1,
            }],
            vnis: vec![VniStatus {
                vni: 100,
                vxlan_if: "vx100".into(),
                remote_vteps: vec!["10.201.0.2".into()],
            }],
            error: None,
        };
        let text = render(&status);
        assert!(text.starts_with(
            "AS 65000, router id 10.201.0.1, underlay eth1, FRR pathspace virtnet (running)\n"
        ));
        assert!(text.contains(" 10.201.0.2"));
        assert!(text.contains("Established"));
        assert!(text.contains("1h02m03s"));
        assert!(text.ends_with("VNIs:\n  100 on vx100: 10.201.0.2\n"));
    }

    #[test]
    fn no_fabric_says_so() {
        let status = FabricStatus {
            pathspace: "virtnet".into(),
            fabric: None,
            running: false,
            peers: vec![],
            vnis: vec![],
            error: None,
        };
        assert_eq!(render(&status), "No fabric set (virtnet fabric-set).\n");
    }
}
