//! The one firewall rule overlay networks need: DHCP stays on each host.
//!
//! Every host of an overlay network serves DHCP (and DHCPv6) with the same server address,
//! the anycast gateway. A guest's broadcast DISCOVER would otherwise be flooded over VXLAN to
//! every host, each would offer from its own range, and a REQUEST naming the shared server
//! address would be taken (or refused) by all of them. So DHCP and DHCPv6 never cross a VXLAN
//! port of virtnet's: table `bridge virtnet_overlay` drops UDP to ports 67, 68, 546 and 547
//! arriving on, leaving by or bridged through an interface in its set `ports` (the running
//! overlays' VXLAN devices). The table is replaced whole in one transaction whenever that set
//! changes, and removed with the last overlay.

use std::fmt::Write as _;

/// The table's name (family `bridge`).
pub const OVERLAY_TABLE: &str = "virtnet_overlay";

/// The nftables script that makes `table bridge virtnet_overlay` hold exactly `ports` (VXLAN
/// device names, checked by the plan), or removes it when `ports` is empty. One transaction.
pub fn overlay_table_script(ports: &[&str]) -> String {
    let mut s = format!("add table bridge {OVERLAY_TABLE}\ndelete table bridge {OVERLAY_TABLE}\n");
    if ports.is_empty() {
        return s;
    }
    let elements = ports
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    const DHCP: &str = "udp dport { 67, 68, 546, 547 } drop";
    let _ = write!(
        s,
        "table bridge {OVERLAY_TABLE} {{\n\
         \tset ports {{\n\t\ttype ifname\n\t\telements = {{ {elements} }}\n\t}}\n\
         \tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n\
         \t\tiifname @ports {DHCP}\n\t}}\n\
         \tchain forward {{\n\t\ttype filter hook forward priority 0; policy accept;\n\
         \t\tiifname @ports {DHCP}\n\t\toifname @ports {DHCP}\n\t}}\n\
         \tchain output {{\n\t\ttype filter hook output priority 0; policy accept;\n\
         \t\toifname @ports {DHCP}\n\t}}\n}}\n"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_ports_or_goes() {
        assert_eq!(
            overlay_table_script(&[]),
            "add table bridge virtnet_overlay\ndelete table bridge virtnet_overlay\n"
        );
        let s = overlay_table_script(&["vxlan-7", "vxlan-9"]);
        assert!(s.contains("elements = { \"vxlan-7\", \"vxlan-9\" }"), "{s}");
        assert!(
            s.contains("iifname @ports udp dport { 67, 68, 546, 547 } drop"),
            "{s}"
        );
        assert!(
            s.contains("oifname @ports udp dport { 67, 68, 546, 547 } drop"),
            "{s}"
        );
    }
}
