//! `iface-bridge`, `iface-unbridge` and `iface-confirm`: a host NIC behind a new bridge.
//!
//! The CLI only asks; virtnetd makes the change, checks connectivity and rolls back by itself
//! (also when this process dies while it waits for a confirmation).

use std::time::{Duration, Instant};

use virtnet_api::{HostBridge, HostBridgePhase, HostBridgeRequest};

use crate::cli::{IfaceBridgeArgs, IfaceConfirmArgs, IfaceUnbridgeArgs};
use crate::output::{Ctx, Failure};

/// The change and the check take a few seconds; with a user-space STP daemon (mstpd) the
/// check may wait out 2 × 30 s of forward delay: the request may take that long.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

fn show_warnings(ctx: &Ctx, hb: &HostBridge) {
    for w in &hb.warnings {
        ctx.warn(w);
    }
}

/// `iface-bridge IFACE BRIDGE [--no-stp] [--delay N] [--check ADDR] [--confirm-timeout N]
/// [--dry-run]`.
pub fn iface_bridge(ctx: &Ctx, a: &IfaceBridgeArgs) -> Result<(), Failure> {
    let request = HostBridgeRequest {
        iface: a.iface.clone(),
        bridge: a.bridge.clone(),
        stp: !a.no_stp,
        delay: a.delay,
        check: a.check,
        confirm_timeout: a.confirm_timeout,
        dry_run: a.dry_run,
    };
    let client = ctx.client.clone().with_timeout(CREATE_TIMEOUT);
    let hb = client
        .create_host_bridge(&request)
        .map_err(|e| Failure::with_context(format!("Failed to create bridge {}", a.bridge), &e))?;
    if a.json && (a.dry_run || a.confirm_timeout.is_none()) {
        return ctx.json(&hb);
    }
    if a.dry_run {
        let mut out = String::new();
        for (i, s) in hb.steps.iter().enumerate() {
            out.push_str(&format!("{:>2}. {s}\n", i + 1));
        }
        ctx.print(&out);
        show_warnings(ctx, &hb);
        return Ok(());
    }
    ctx.extra(&format!(
        "Created bridge {} with attached device {}\n",
        a.bridge, a.iface
    ));
    ctx.extra(&format!("Bridge interface {} started\n", a.bridge));
    show_warnings(ctx, &hb);
    let Some(secs) = a.confirm_timeout else {
        return Ok(());
    };
    ctx.extra(&format!(
        "Waiting {secs} s for 'virtnet iface-confirm {}'; without it virtnetd rolls the change back\n",
        a.bridge
    ));
    // virtnetd owns the timer: this loop only reports what it decides.
    let give_up = Instant::now() + Duration::from_secs(u64::from(secs) + 30);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = match ctx.client.host_bridge(&a.bridge) {
            Ok(hb) => hb,
            Err(e) if Instant::now() < give_up && e.is_connect() => continue,
            Err(e) => return Err(Failure::client(&e)),
        };
        match now.phase {
            HostBridgePhase::Active => {
                if a.json {
                    return ctx.json(&now);
                }
                ctx.extra(&format!("Bridge {} confirmed\n", a.bridge));
                return Ok(());
            }
            HostBridgePhase::RolledBack => {
                if a.json {
                    ctx.json(&now)?;
                }
                return Err(Failure::msg(format!(
                    "Bridge {} rolled back: {}",
                    a.bridge,
                    now.error.as_deref().unwrap_or("not confirmed")
                )));
            }
            _ if Instant::now() > give_up => {
                return Err(Failure::msg(format!(
                    "Bridge {} is still {} after the confirmation timeout",
                    a.bridge,
                    now.phase.as_str()
                )))
            }
            _ => {}
        }
    }
}

/// `iface-unbridge BRIDGE`.
pub fn iface_unbridge(ctx: &Ctx, a: &IfaceUnbridgeArgs) -> Result<(), Failure> {
    let hb = ctx
        .client
        .delete_host_bridge(&a.bridge)
        .map_err(|e| Failure::with_context(format!("Failed to detach bridge {}", a.bridge), &e))?;
    if a.json {
        return ctx.json(&hb);
    }
    ctx.extra(&format!(
        "Device {} un-attached from bridge {}\n",
        hb.iface, a.bridge
    ));
    ctx.extra(&format!("Bridge interface {} destroyed\n", a.bridge));
    show_warnings(ctx, &hb);
    Ok(())
}

/// `iface-confirm BRIDGE`: keeps a change made with `--confirm-timeout`.
pub fn iface_confirm(ctx: &Ctx, a: &IfaceConfirmArgs) -> Result<(), Failure> {
    let hb = ctx
        .client
        .confirm_host_bridge(&a.bridge)
        .map_err(|e| Failure::with_context(format!("Failed to confirm bridge {}", a.bridge), &e))?;
    if a.json {
        return ctx.json(&hb);
    }
    ctx.extra(&format!("Bridge {} confirmed\n", a.bridge));
    Ok(())
}
