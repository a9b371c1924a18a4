//! `net-define`, `net-create`, `net-undefine`, `net-autostart`.

use std::path::Path;

use virtnet_api::ChangeResult;

use crate::output::{read_xml_file, Ctx, Failure};

fn print_warnings(ctx: &Ctx, result: &ChangeResult) {
    for w in &result.warnings {
        ctx.warn(w);
    }
}

/// `net-define FILE`.
pub fn net_define(ctx: &Ctx, file: &Path) -> Result<(), Failure> {
    let xml = read_xml_file(file)?;
    let result = ctx.client.define(&xml).map_err(|e| {
        Failure::with_context(
            format!("Failed to define network from {}", file.display()),
            &e,
        )
    })?;
    ctx.extra(&format!(
        "Network {} defined from {}\n",
        result.network.name,
        file.display()
    ));
    print_warnings(ctx, &result);
    Ok(())
}

/// `net-create FILE`.
pub fn net_create(ctx: &Ctx, file: &Path) -> Result<(), Failure> {
    let xml = read_xml_file(file)?;
    let result = ctx.client.create(&xml).map_err(|e| {
        Failure::with_context(
            format!("Failed to create network from {}", file.display()),
            &e,
        )
    })?;
    ctx.extra(&format!(
        "Network {} created from {}\n",
        result.network.name,
        file.display()
    ));
    print_warnings(ctx, &result);
    Ok(())
}

/// `net-undefine NETWORK`: virsh names the network as the user gave it.
pub fn net_undefine(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let result = ctx
        .client
        .undefine(id)
        .map_err(|e| Failure::operation(id, format!("Failed to undefine network {id}"), &e))?;
    ctx.extra(&format!("Network {id} has been undefined\n"));
    print_warnings(ctx, &result);
    Ok(())
}

/// `net-autostart NETWORK [--disable]`: virsh names the network as the user gave it.
pub fn net_autostart(ctx: &Ctx, id: &str, disable: bool) -> Result<(), Failure> {
    let result = ctx.client.set_autostart(id, !disable).map_err(|e| {
        let context = if disable {
            format!("failed to unmark network {id} as autostarted")
        } else {
            format!("failed to mark network {id} as autostarted")
        };
        Failure::operation(id, context, &e)
    })?;
    if disable {
        ctx.extra(&format!("Network {id} unmarked as autostarted\n"));
    } else {
        ctx.extra(&format!("Network {id} marked as autostarted\n"));
    }
    print_warnings(ctx, &result);
    Ok(())
}
