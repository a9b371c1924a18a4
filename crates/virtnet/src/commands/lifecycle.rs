//! `net-start`, `net-destroy` and `iface-bridges`: running networks.

use crate::output::{Ctx, Failure};
use crate::progress::{self, Progress};

/// `net-start NETWORK...`: builds each network in the kernel, in the order given.
///
/// virsh takes one name; with several, a failure does not stop the rest (as starting them
/// one by one in a loop would not): each failure prints its `error:` lines where it happens
/// and the command exits 1 at the end. On a terminal a progress line counts the starts.
pub fn net_start(ctx: &Ctx, ids: &[String]) -> Result<(), Failure> {
    if let [id] = ids {
        return start_one(ctx, id);
    }
    let progress = Progress::new(ctx.quiet);
    let mut failed = 0;
    for (i, id) in ids.iter().enumerate() {
        progress.show(&format!(
            "Starting networks {}: {id}",
            progress::count(i + 1, ids.len())
        ));
        let result = start_one_quietly(ctx, id);
        progress.clear();
        match result {
            Ok(warnings) => {
                ctx.extra(&format!("Network {id} started\n"));
                for w in &warnings {
                    ctx.warn(w);
                }
            }
            // Without a daemon every other start would fail the same way.
            Err(failure) if failure.connect => return Err(failure),
            Err(failure) => {
                failure.report();
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Failure::msg(format!(
            "{failed} of {} networks failed to start",
            ids.len()
        )));
    }
    Ok(())
}

fn start_one(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let warnings = start_one_quietly(ctx, id)?;
    ctx.extra(&format!("Network {id} started\n"));
    for w in &warnings {
        ctx.warn(w);
    }
    Ok(())
}

/// Starts `id`; its warnings, or how it failed, in virsh's words.
fn start_one_quietly(ctx: &Ctx, id: &str) -> Result<Vec<String>, Failure> {
    ctx.client
        .start(id)
        .map(|result| result.warnings)
        .map_err(|e| Failure::operation(id, format!("Failed to start network {id}"), &e))
}

/// `net-destroy NETWORK...`: stops the networks together (virsh takes one; several names are
/// stopped in one request, so the kernel's link-deletion wait is paid once).
pub fn net_destroy(ctx: &Ctx, ids: &[String]) -> Result<(), Failure> {
    ctx.client.destroy(ids).map_err(|e| {
        let first = ids.first().map(String::as_str).unwrap_or_default();
        Failure::operation(
            first,
            format!("Failed to destroy network {}", ids.join(", ")),
            &e,
        )
    })?;
    for id in ids {
        ctx.extra(&format!("Network {id} destroyed\n"));
    }
    Ok(())
}

/// `iface-bridges`: virtnet's bridges in `brctl show`'s layout (tab-separated columns, one
/// line per port, further ports on continuation lines).
pub fn iface_bridges(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let bridges = ctx.client.bridges().map_err(|e| Failure::client(&e))?;
    if json {
        return ctx.json(&bridges);
    }
    let mut out = String::from("bridge name\tbridge id\t\tSTP enabled\tinterfaces\n");
    for b in &bridges {
        let stp = if b.stp { "yes" } else { "no" };
        out.push_str(&format!("{}\t\t{}\t{}\t\t", b.name, b.bridge_id, stp));
        match b.interfaces.split_first() {
            None => out.push('\n'),
            Some((first, rest)) => {
                out.push_str(first);
                out.push('\n');
                for port in rest {
                    out.push_str(&format!("\t\t\t\t\t\t\t{port}\n"));
                }
            }
        }
    }
    ctx.print(&out);
    Ok(())
}
