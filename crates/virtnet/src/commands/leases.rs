//! `net-dhcp-leases` and `net-event`: what the networks' DHCP servers hand out.

use std::time::{Duration, Instant};

use virtnet_api::{DhcpLease, Event};

use crate::output::{Ctx, Failure};
use crate::table::Table;

/// Seconds since the epoch as virsh prints them: local time, `%Y-%m-%d %H:%M:%S`.
pub(crate) fn local_time(secs: u64) -> String {
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return secs.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `net-dhcp-leases NETWORK [--mac MAC] [--json]`: virsh's table, sorted by MAC address. An
/// infinite lease has no expiry; virsh shows it as the epoch, and so does this table (scripts
/// parse it), while `--json` says `null`.
pub fn net_dhcp_leases(ctx: &Ctx, id: &str, mac: Option<&str>, json: bool) -> Result<(), Failure> {
    let mut leases = ctx
        .client
        .leases(id, mac)
        .map_err(|e| Failure::lookup(id, &e))?;
    leases.sort_by(|a, b| a.mac.cmp(&b.mac));
    if json {
        return ctx.json(&leases);
    }
    ctx.print(&leases_table(&leases).render(!ctx.quiet));
    Ok(())
}

fn leases_table(leases: &[DhcpLease]) -> Table {
    let mut table = Table::new([
        "Expiry Time",
        "MAC address",
        "Protocol",
        "IP address",
        "Hostname",
        "Client ID or DUID",
    ]);
    for l in leases {
        table.push([
            local_time(l.expiry_time.unwrap_or(0)),
            l.mac.clone(),
            l.kind.clone(),
            format!("{}/{}", l.ip_address, l.prefix),
            l.hostname.clone().unwrap_or_else(|| "-".into()),
            l.client_id.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}

/// One event as `net-event` prints it (virsh's `event '<kind>' for network <name>: ...`).
fn event_line(e: &Event, timestamp: bool) -> String {
    let mut line = String::new();
    if timestamp {
        line.push_str(&local_time(e.time));
        line.push_str(": ");
    }
    line.push_str(&format!(
        "event '{}' for network {}: {} {}",
        e.kind.as_str(),
        e.network,
        e.lease.mac,
        e.lease.ip_address
    ));
    if let Some(name) = &e.lease.hostname {
        line.push(' ');
        line.push_str(name);
    }
    line.push('\n');
    line
}

/// `net-event [--network NET] [--loop] [--timeout SECS] [--timestamp]`: waits for lease events
/// and prints them; without `--loop`, returns after the first one.
pub fn net_event(
    ctx: &Ctx,
    network: Option<&str>,
    looping: bool,
    timeout: Option<u64>,
    timestamp: bool,
) -> Result<(), Failure> {
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut after = ctx
        .client
        .events(None, 0)
        .map_err(|e| Failure::client(&e))?
        .next;
    let mut received = 0u64;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            ctx.print("event loop timed out\n");
            break;
        }
        let wait = left.map_or(30, |l| l.as_secs().clamp(1, 30));
        let batch = ctx
            .client
            .events(Some(after), wait)
            .map_err(|e| Failure::client(&e))?;
        if batch.lost {
            ctx.warn("some events were lost: the daemon's buffer overflowed");
        }
        after = batch.next;
        for e in batch
            .events
            .iter()
            .filter(|e| network.is_none_or(|n| n == e.network))
        {
            ctx.print(&event_line(e, timestamp));
            received += 1;
            if !looping {
                break;
            }
        }
        if !looping && received > 0 {
            break;
        }
    }
    ctx.extra(&format!("events received: {received}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_virsh_columns_and_dashes_for_missing_names() {
        let lease = DhcpLease {
            iface: "virbr0".into(),
            expiry_time: None,
            kind: "ipv4".into(),
            mac: "52:54:00:aa:bb:cc".into(),
            ip_address: "192.168.122.45".into(),
            prefix: 24,
            hostname: None,
            client_id: Some("01:52:54:00:aa:bb:cc".into()),
            iaid: None,
        };
        let text = leases_table(&[lease]).render(true);
        let mut lines = text.lines();
        assert_eq!(
            lines
                .next()
                .map(str::split_whitespace)
                .map(|w| w.collect::<Vec<_>>().join(" ")),
            Some("Expiry Time MAC address Protocol IP address Hostname Client ID or DUID".into())
        );
        let row = lines.nth(1).unwrap_or_default();
        assert!(
            row.contains("52:54:00:aa:bb:cc   ipv4       192.168.122.45/24"),
            "{row}"
        );
        assert!(row.contains("   -   "), "{row}");
        assert!(row.ends_with("01:52:54:00:aa:bb:cc"), "{row}");
    }
}
