//! FRR's configuration for the fabric: pure text from a [`Fabric`] record (golden-tested).
//!
//! Two files, one per daemon, both wholly virtnet's: virtnet's FRR instance runs under its
//! own pathspace, so nothing here is merged with an operator's `/etc/frr/frr.conf`
//! (`docs/FABRIC.md`).
//!
//! - `zebra.conf`: the host name and logging only (zebra learns the VXLAN devices from the
//!   kernel and programs the remote VTEPs' flood entries itself);
//! - `bgpd.conf`: one iBGP session per neighbour, sourced from the underlay interface, in
//!   the `l2vpn evpn` address family only, with `advertise-all-vni` (every VXLAN device in
//!   the namespace is announced: type-3 routes for flooding, type-2 for MACs).

use std::fmt::Write;

use virtnet_api::Fabric;

/// The first lines of every rendered file.
const HEADER: &str = "! Written by virtnetd from its fabric record (`virtnet fabric-set`).\n\
                      ! Do not edit: virtnetd rewrites this file when the fabric changes.\n";

/// Seconds between connection attempts to a peer that is not up (FRR's default is 120 s
/// with `traditional` defaults, 10 s with `datacenter`): a host that starts after its peer
/// is reached again within seconds.
const CONNECT_RETRY_SECS: u32 = 5;

/// zebra's configuration.
pub fn zebra_conf(hostname: &str) -> String {
    format!("{HEADER}frr defaults datacenter\nhostname {hostname}\nlog stdout informational\n")
}

/// bgpd's configuration for `fabric`.
pub fn bgpd_conf(hostname: &str, fabric: &Fabric) -> String {
    let neighbours = fabric.neighbours();
    let reflector = fabric.is_reflector();
    let mut out = String::from(HEADER);
    // `datacenter`: keepalive 3 s, hold 9 s, the timers of a fabric rather than the internet.
    let _ = writeln!(out, "frr defaults datacenter");
    let _ = writeln!(out, "hostname {hostname}");
    let _ = writeln!(out, "log stdout informational");
    let _ = writeln!(out, "!");
    let _ = writeln!(out, "router bgp {}", fabric.asn);
    let _ = writeln!(out, " bgp router-id {}", fabric.router_id);
    let _ = writeln!(out, " bgp log-neighbor-changes");
    // EVPN only: no IPv4 unicast session is opened by default.
    let _ = writeln!(out, " no bgp default ipv4-unicast");
    if reflector {
        let _ = writeln!(out, " bgp cluster-id {}", fabric.router_id);
    }
    for n in &neighbours {
        let _ = writeln!(out, " neighbor {n} remote-as internal");
        let _ = writeln!(out, " neighbor {n} update-source {}", fabric.underlay);
        let _ = writeln!(out, " neighbor {n} timers connect {CONNECT_RETRY_SECS}");
    }
    let _ = writeln!(out, " !");
    let _ = writeln!(out, " address-family l2vpn evpn");
    for n in &neighbours {
        let _ = writeln!(out, "  neighbor {n} activate");
        if reflector {
            let _ = writeln!(out, "  neighbor {n} route-reflector-client");
        }
    }
    let _ = writeln!(out, "  advertise-all-vni");
    let _ = writeln!(out, " exit-address-family");
    let _ = writeln!(out, "exit");
    let _ = writeln!(out, "!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn fabric(peers: &[&str], rr: Option<&str>) -> Fabric {
        Fabric {
            asn: 65000,
            router_id: Ipv4Addr::new(10, 201, 0, 1),
            underlay: "eth1".into(),
            peers: peers.iter().map(|p| p.parse().expect("address")).collect(),
            route_reflector: rr.map(|r| r.parse::<IpAddr>().expect("address")),
        }
    }

    #[test]
    fn two_hosts_peer_with_each_other_in_l2vpn_evpn_only() {
        assert_eq!(
            bgpd_conf("h1", &fabric(&["10.201.0.2"], None)),
            "! Written by virtnetd from its fabric record (`virtnet fabric-set`).\n\
             ! Do not edit: virtnetd rewrites this file when the fabric changes.\n\
             frr defaults datacenter\n\
             hostname h1\n\
             log stdout informational\n\
             !\n\
             router bgp 65000\n \
             bgp router-id 10.201.0.1\n \
             bgp log-neighbor-changes\n \
             no bgp default ipv4-unicast\n \
             neighbor 10.201.0.2 remote-as internal\n \
             neighbor 10.201.0.2 update-source eth1\n \
             neighbor 10.201.0.2 timers connect 5\n \
             !\n \
             address-family l2vpn evpn\n  \
             neighbor 10.201.0.2 activate\n  \
             advertise-all-vni\n \
             exit-address-family\n\
             exit\n\
             !\n"
        );
    }

    #[test]
    fn a_reflector_client_peers_with_the_reflector_only() {
        let conf = bgpd_conf("h2", &fabric(&[], Some("10.201.0.9")));
        assert!(conf.contains(" neighbor 10.201.0.9 remote-as internal\n"));
        assert!(conf.contains("  neighbor 10.201.0.9 activate\n"));
        assert_eq!(conf.matches("remote-as").count(), 1);
        assert!(!conf.contains("route-reflector-client"));
        assert!(!conf.contains("cluster-id"));
    }

    #[test]
    fn the_reflector_makes_every_peer_its_client() {
        let conf = bgpd_conf(
            "rr",
            &fabric(&["10.201.0.2", "10.201.0.3"], Some("10.201.0.1")),
        );
        assert!(conf.contains(" bgp cluster-id 10.201.0.1\n"));
        for p in ["10.201.0.2", "10.201.0.3"] {
            assert!(conf.contains(&format!(
                "  neighbor {p} activate\n  neighbor {p} route-reflector-client\n"
            )));
        }
        // It does not peer with itself.
        assert!(!conf.contains("neighbor 10.201.0.1 "));
    }

    #[test]
    fn zebra_has_no_routing_configuration() {
        let conf = zebra_conf("h1");
        assert!(conf.ends_with("frr defaults datacenter\nhostname h1\nlog stdout informational\n"));
        assert!(!conf.contains("router"));
    }
}
