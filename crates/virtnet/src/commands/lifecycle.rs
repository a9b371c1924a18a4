//! `net-start`, `net-destroy` and `iface-bridges`: running networks.

use crate::output::{Ctx, Failure};

/// `net-start NETWORK`: builds the network in the kernel.
pub fn net_start(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let result = ctx
        .client
        .start(id)
        .map_err(|e| Failure::operation(id, format!("Failed to start network {id}"), &e))?;
    ctx.extra(&format!("Network {id} started\n"));
    for w in &result.warnings {
        ctx.warn(w);
    }
    Ok(())
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
