//! Step 7 of `iface-bridge`: does the host still reach its LAN through the bridge? What to
//! ask (the default gateway or `--check`), how long to wait, and what counts as an answer
//! (an ICMP echo reply on the bridge, or a resolved neighbour for an on-link target).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use virtnet_api::ConnectivityCheck;
use virtnet_host::ping::Pinger;
use virtnet_host::{AddressEntry, Netlink, RouteEntry};

use super::record::Record;
use super::{NicSnapshot, CHECK_TIME};

/// Checks connectivity on `rec`'s new bridge and records the outcome in `rec.check` (or a
/// warning when there is nothing to check). `Err` carries why the change must be rolled
/// back.
pub(super) fn connectivity(
    nl: &mut Netlink,
    rec: &mut Record,
    req_check: Option<IpAddr>,
) -> Result<(), String> {
    let Some((target, kind)) = check_target(req_check, &rec.nic) else {
        rec.warnings.push(format!(
            "no default route through {} and no --check address: connectivity was not checked",
            rec.iface
        ));
        return Ok(());
    };
    let bridge_index = rec.bridge_index.unwrap_or(0);
    let stp_delay = if rec.stp {
        2 * rec.delay.clamp(2, 30)
    } else {
        0
    };
    let limit = CHECK_TIME + Duration::from_secs(u64::from(stp_delay));
    let onlink = on_link(target, &rec.nic.addresses, &rec.nic.routes);
    let t0 = Instant::now();
    let answer = check(nl, &rec.bridge, bridge_index, target, onlink, limit);
    let elapsed_ms = t0.elapsed().as_millis() as u64;
    rec.check = Some(ConnectivityCheck {
        target,
        kind: kind.to_string(),
        answered_by: answer.clone(),
        elapsed_ms,
    });
    if answer.is_none() {
        return Err(format!(
            "connectivity check failed: {kind} {target} did not answer on {} within {} s",
            rec.bridge,
            limit.as_secs()
        ));
    }
    tracing::info!(bridge = %rec.bridge, %target, elapsed_ms, by = ?answer, "iface-bridge: connectivity checked");
    Ok(())
}

/// The address to check: `--check`, else the gateway of the best default route (IPv4 first).
pub(super) fn check_target(
    req_check: Option<IpAddr>,
    nic: &NicSnapshot,
) -> Option<(IpAddr, &'static str)> {
    if let Some(a) = req_check {
        return Some((a, "address"));
    }
    let mut defaults: Vec<&RouteEntry> = nic
        .routes
        .iter()
        .filter(|r| r.prefix == 0 && r.gateway.is_some())
        .collect();
    defaults.sort_by_key(|r| (r.dest.is_ipv6(), r.metric.unwrap_or(0)));
    defaults
        .first()
        .and_then(|r| r.gateway)
        .map(|g| (g, "gateway"))
}

/// Whether `ip` lies in the subnet of one of `addrs` (resolvable by ARP/NDP on the link).
fn on_link(ip: IpAddr, addrs: &[AddressEntry], routes: &[RouteEntry]) -> bool {
    let in_net = |net: IpAddr, len: u8| match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    };
    addrs.iter().any(|a| in_net(a.local, a.prefix_len))
        || routes.iter().any(|r| r.gateway == Some(ip))
}

/// Waits until `target` answers on `bridge`: an ICMP echo reply, or (on-link) a resolved
/// neighbour entry on the bridge. Returns how it answered.
fn check(
    nl: &mut Netlink,
    bridge: &str,
    bridge_index: u32,
    target: IpAddr,
    onlink: bool,
    limit: Duration,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    let pinger = Pinger::open(bridge, target)
        .inspect_err(|e| tracing::warn!(error = %e, "no ICMP socket; checking ARP/NDP only"))
        .ok();
    let mut seq: u16 = 0;
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            seq = seq.wrapping_add(1);
            if let Some(p) = &pinger {
                if let Err(e) = p.send(seq) {
                    tracing::debug!(error = %e, "echo request not sent");
                }
            }
            next_send = Instant::now() + Duration::from_millis(200);
        }
        if let Some(p) = &pinger {
            if p.wait_reply(Duration::from_millis(50)) {
                return Some("icmp-echo".into());
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if onlink {
            if let Ok(ns) = nl.neighbours() {
                if ns
                    .iter()
                    .any(|n| n.ifindex == bridge_index && n.ip == target)
                {
                    return Some("neighbour".into());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_link_targets() {
        let a = AddressEntry::new(2, "198.51.100.10".parse().unwrap(), 24);
        assert!(on_link(
            "198.51.100.1".parse().unwrap(),
            std::slice::from_ref(&a),
            &[]
        ));
        assert!(!on_link("203.0.113.1".parse().unwrap(), &[a], &[]));
    }
}
