//! What `iface-bridge` says it does and what it warns about (shown by `--dry-run` and kept
//! in the record).

use virtnet_api::HostBridgeRequest;

use super::check::check_target;
use super::NicSnapshot;

/// `aa:bb:cc:dd:ee:ff`, or `-` without a MAC.
fn mac_text(mac: Option<[u8; 6]>) -> String {
    mac.map_or_else(
        || "-".to_string(),
        |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        },
    )
}

/// The steps of `req` on `nic`, in the order they are made.
pub(super) fn steps(req: &HostBridgeRequest, nic: &NicSnapshot) -> Vec<String> {
    let mut s = vec![format!(
        "create bridge {} (mac {}, mtu {}, stp off, delay {} s) and bring it up",
        req.bridge,
        mac_text(nic.mac),
        nic.mtu,
        req.delay
    )];
    for a in &nic.addresses {
        s.push(format!(
            "add {}/{} to {}",
            a.local, a.prefix_len, req.bridge
        ));
    }
    s.push(format!("enslave {} to {}", req.iface, req.bridge));
    if req.stp {
        s.push(format!(
            "turn STP on for {} ({} keeps forwarding)",
            req.bridge, req.iface
        ));
    }
    for r in &nic.routes {
        s.push(format!(
            "move route {} from {} to {}",
            r.describe(),
            req.iface,
            req.bridge
        ));
    }
    for a in nic.addresses.iter().rev() {
        s.push(format!(
            "delete {}/{} from {}",
            a.local, a.prefix_len, req.iface
        ));
    }
    match check_target(req.check, nic) {
        Some((t, kind)) => s.push(format!(
            "check that {kind} {t} answers on {} (else roll back)",
            req.bridge
        )),
        None => s.push("no check: no default route and no --check address".into()),
    }
    if let Some(n) = req.confirm_timeout {
        s.push(format!(
            "wait {n} s for iface-confirm {} (else roll back)",
            req.bridge
        ));
    }
    s
}

/// The warnings `req` on `nic` deserves (`dhcp`: the NIC was configured by DHCP).
pub(super) fn warnings(req: &HostBridgeRequest, nic: &NicSnapshot, dhcp: bool) -> Vec<String> {
    let mut w = Vec::new();
    if dhcp {
        w.push(format!(
            "{iface} was configured by DHCP: the DHCP client must now run on {br}, not on \
             {iface} (stop it on {iface} and start it on {br}, e.g. `dhclient -r {iface}; \
             dhclient {br}`, or point systemd-networkd / NetworkManager / ifupdown at {br}). \
             {br} has {iface}'s MAC {mac}, so the server's lease stays valid and the address \
             keeps working until the client renews; the persistent configuration is rewritten \
             by virtnet-hostcfg.",
            iface = req.iface,
            br = req.bridge,
            mac = mac_text(nic.mac)
        ));
    }
    if req.stp {
        w.push(stp_warning(&req.iface, &req.bridge, req.delay, false));
    }
    w
}

/// What the output says about STP on the new bridge (`user`: run by a user-space daemon).
pub(super) fn stp_warning(iface: &str, bridge: &str, delay: u32, user: bool) -> String {
    let wait = 2 * delay.clamp(2, 30);
    if user {
        format!(
            "STP is on and run by a user-space daemon (the kernel handed it to \
             /sbin/bridge-stp): it may hold {iface} in listening and learning for up to \
             {wait} s, cutting the host off the LAN meanwhile; --no-stp avoids it"
        )
    } else {
        format!(
            "STP is on: {iface} was enslaved before STP was turned on, so it forwarded at once \
             (no outage); ports added to {bridge} later (guests) wait {wait} s in listening \
             and learning before they forward, and a loop through {iface} is blocked once STP \
             sees it; --no-stp turns STP off"
        )
    }
}
