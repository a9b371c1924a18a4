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
    // Graceful restart (RFC 4724) for the families FRR covers. Not EVPN in FRR 8.4 (FRR issue
    // #9749), and zebra drops a dead bgpd's remote MACs anyway: docs/FABRIC.md says what a
    // bgpd restart costs.
    let _ = writeln!(out, " bgp graceful-restart");
    let _ = writeln!(out, " bgp graceful-restart preserve-fw-state");
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
        if fabric.is_client(n) {
            let _ = writeln!(out, "  neighbor {n} route-reflector-client");
        }
    }
    let _ = writeln!(out, "  advertise-all-vni");
    let _ = writeln!(out, " exit-address-family");
    let _ = writeln!(out, "exit");
    let _ = writeln!(out, "!");
    out
}

/// The `vtysh` commands that take a running bgpd from `old` to `new` in place, keeping the
/// sessions that stay (adding a host to a reflector's clients must not drop the others'
/// routes); `None` when more than the neighbours changed (AS, router id, underlay, reflector
/// role), which needs bgpd restarted. No commands when nothing changed.
pub fn neighbour_changes(old: &Fabric, new: &Fabric) -> Option<Vec<String>> {
    let (before, after) = (old.neighbours(), new.neighbours());
    // A neighbour that stays but becomes or ceases to be a reflector's client.
    let role_changed = before
        .iter()
        .filter(|n| after.contains(n))
        .any(|n| old.is_client(n) != new.is_client(n));
    if old.asn != new.asn
        || old.router_id != new.router_id
        || old.underlay != new.underlay
        || old.is_reflector() != new.is_reflector()
        || role_changed
    {
        return None;
    }
    let gone: Vec<_> = before.iter().filter(|a| !after.contains(a)).collect();
    let added: Vec<_> = after.iter().filter(|a| !before.contains(a)).collect();
    if gone.is_empty() && added.is_empty() {
        return Some(Vec::new());
    }
    let mut cmds = vec![
        "configure terminal".to_string(),
        format!("router bgp {}", new.asn),
    ];
    cmds.extend(gone.iter().map(|n| format!("no neighbor {n}")));
    for n in &added {
        cmds.push(format!("neighbor {n} remote-as internal"));
        cmds.push(format!("neighbor {n} update-source {}", new.underlay));
        cmds.push(format!("neighbor {n} timers connect {CONNECT_RETRY_SECS}"));
    }
    if !added.is_empty() {
        cmds.push("address-family l2vpn evpn".to_string());
        for n in &added {
            cmds.push(format!("neighbor {n} activate"));
            if new.is_client(n) {
                cmds.push(format!("neighbor {n} route-reflector-client"));
            }
        }
        cmds.push("exit-address-family".to_string());
    }
    cmds.push("end".to_string());
    Some(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn fabric(peers: &[&str], rr: &[&str]) -> Fabric {
        Fabric {
            asn: 65000,
            router_id: Ipv4Addr::new(10, 201, 0, 1),
            underlay: "eth1".into(),
            peers: peers.iter().map(|p| p.parse().expect("address")).collect(),
            route_reflectors: rr
                .iter()
                .map(|r| r.parse::<IpAddr>().expect("address"))
                .collect(),
        }
    }

    #[test]
    fn two_hosts_peer_with_each_other_in_l2vpn_evpn_only() {
        assert_eq!(
            bgpd_conf("h1", &fabric(&["10.201.0.2"], &[])),
            "! Written by virtnetd from its fabric record (`virtnet fabric-set`).\n\
             ! Do not edit: virtnetd rewrites this file when the fabric changes.\n\
             frr defaults datacenter\n\
             hostname h1\n\
             log stdout informational\n\
             !\n\
             router bgp 65000\n \
             bgp router-id 10.201.0.1\n \
             bgp log-neighbor-changes\n \
             bgp graceful-restart\n \
             bgp graceful-restart preserve-fw-state\n \
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
        let conf = bgpd_conf("h2", &fabric(&[], &["10.201.0.9"]));
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
            &fabric(&["10.201.0.2", "10.201.0.3"], &["10.201.0.1"]),
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
    fn redundant_reflectors_peer_with_each_other_as_non_clients() {
        // On reflector 10.201.0.1, the other reflector .9 is a neighbour but no client.
        let conf = bgpd_conf(
            "rr1",
            &fabric(&["10.201.0.2"], &["10.201.0.1", "10.201.0.9"]),
        );
        assert!(conf.contains(" bgp cluster-id 10.201.0.1\n"));
        assert!(conf.contains("  neighbor 10.201.0.2 route-reflector-client\n"));
        assert!(conf.contains("  neighbor 10.201.0.9 activate\n"));
        assert!(!conf.contains("neighbor 10.201.0.9 route-reflector-client"));
        // A client peers with both.
        let client = Fabric {
            router_id: Ipv4Addr::new(10, 201, 0, 2),
            ..fabric(&[], &["10.201.0.1", "10.201.0.9"])
        };
        let conf = bgpd_conf("c", &client);
        for rr in ["10.201.0.1", "10.201.0.9"] {
            assert!(conf.contains(&format!(" neighbor {rr} remote-as internal\n")));
        }
        assert!(!conf.contains("route-reflector-client"));
        // A second reflector added later: a new non-client neighbour, in place.
        let one = fabric(&["10.201.0.2"], &["10.201.0.1"]);
        let two = fabric(&["10.201.0.2"], &["10.201.0.1", "10.201.0.9"]);
        let cmds = neighbour_changes(&one, &two).expect("in place");
        assert!(cmds.contains(&"neighbor 10.201.0.9 activate".to_string()));
        assert!(!cmds.iter().any(|c| c.contains("route-reflector-client")));
        // A client that becomes a reflector changes its role: a restart.
        let promoted = fabric(&["10.201.0.2"], &["10.201.0.1", "10.201.0.2"]);
        assert_eq!(neighbour_changes(&one, &promoted), None);
    }

    #[test]
    fn a_new_client_of_the_reflector_is_added_in_place() {
        let old = fabric(&["10.201.0.2"], &["10.201.0.1"]);
        let new = fabric(&["10.201.0.3", "10.201.0.2"], &["10.201.0.1"]);
        assert_eq!(
            neighbour_changes(&old, &new).expect("in place"),
            [
                "configure terminal",
                "router bgp 65000",
                "neighbor 10.201.0.3 remote-as internal",
                "neighbor 10.201.0.3 update-source eth1",
                "neighbor 10.201.0.3 timers connect 5",
                "address-family l2vpn evpn",
                "neighbor 10.201.0.3 activate",
                "neighbor 10.201.0.3 route-reflector-client",
                "exit-address-family",
                "end",
            ]
        );
        assert_eq!(
            neighbour_changes(&new, &old).expect("in place"),
            [
                "configure terminal",
                "router bgp 65000",
                "no neighbor 10.201.0.3",
                "end"
            ]
        );
        assert_eq!(neighbour_changes(&new, &new), Some(vec![]));
    }

    #[test]
    fn other_changes_need_a_restart() {
        let old = fabric(&["10.201.0.2"], &[]);
        let mut new = old.clone();
        new.asn = 65001;
        assert_eq!(neighbour_changes(&old, &new), None);
        let mut new = old.clone();
        new.underlay = "eth2".into();
        assert_eq!(neighbour_changes(&old, &new), None);
        // Becoming the reflector changes every session's role.
        let new = fabric(&["10.201.0.2"], &["10.201.0.1"]);
        assert_eq!(neighbour_changes(&old, &new), None);
    }

    #[test]
    fn zebra_has_no_routing_configuration() {
        let conf = zebra_conf("h1");
        assert!(conf.ends_with("frr defaults datacenter\nhostname h1\nlog stdout informational\n"));
        assert!(!conf.contains("router"));
    }
}
