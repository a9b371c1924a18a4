//! `iface-bridge`, `iface-unbridge` and `iface-confirm`: a host NIC behind a new bridge.
//!
//! The CLI only asks; virtnetd makes the change, checks connectivity and rolls back by itself
//! (also when this process dies while it waits for a confirmation).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use virtnet_api::client::Client;
use virtnet_api::{HostBridge, HostBridgePhase, HostBridgeRequest};

use crate::cli::{IfaceBridgeArgs, IfaceConfirmArgs, IfaceUnbridgeArgs};
use crate::output::{Ctx, Failure};
use crate::progress::Progress;

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
    let done = AtomicBool::new(false);
    let created = std::thread::scope(|s| {
        if !a.dry_run && Progress::new(ctx.quiet).is_on() {
            let watcher = ctx.client.clone();
            let done = &done;
            s.spawn(move || show_change(&watcher, a, done));
        }
        let created = client.create_host_bridge(&request);
        done.store(true, Ordering::Release);
        created
    });
    let hb = created
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
    let progress = Progress::new(ctx.quiet);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = match ctx.client.host_bridge(&a.bridge) {
            Ok(hb) => hb,
            Err(e) if Instant::now() < give_up && e.is_connect() => continue,
            Err(e) => return Err(Failure::client(&e)),
        };
        if let Some(left) = now.confirm_remaining {
            progress.show(&format!(
                "{}: waiting for 'virtnet iface-confirm {}', {left} s left",
                a.bridge, a.bridge
            ));
        }
        if !matches!(now.phase, HostBridgePhase::AwaitingConfirm) {
            progress.clear();
        }
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

/// While the create request runs (seconds; a minute with STP), draws where the change stands
/// from the daemon's record of it, until `done`.
fn show_change(client: &Client, a: &IfaceBridgeArgs, done: &AtomicBool) {
    let progress = Progress::new(false);
    let started = Instant::now();
    let mut what = format!("preparing to move {} behind {}", a.iface, a.bridge);
    let mut polls = 0u32;
    while !done.load(Ordering::Acquire) {
        // Ask twice a second; redraw the seconds ten times a second.
        if polls.is_multiple_of(5) {
            if let Ok(hb) = client.host_bridge(&a.bridge) {
                what = change_phase(hb.phase, &a.iface, &a.bridge);
            }
        }
        polls += 1;
        progress.show(&format!(
            "{}: {what} ({} s)",
            a.bridge,
            started.elapsed().as_secs()
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a phase of `iface-bridge` means for the user waiting on it.
fn change_phase(phase: HostBridgePhase, iface: &str, bridge: &str) -> String {
    match phase {
        HostBridgePhase::Applying => format!("moving {iface}'s addresses and routes to {bridge}"),
        HostBridgePhase::Checking => "checking connectivity".to_string(),
        HostBridgePhase::RollingBack => {
            format!("rolling back: {iface} gets its configuration back")
        }
        other => other.as_str().to_string(),
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
