//! `net-port-create`, `net-port-list`, `net-port-dumpxml`, `net-port-delete`: the network
//! ports libvirt's hypervisor daemon announces, as virsh shows them.

use virtnet_api::NetworkPortInfo;

use crate::cli::{NetPortCreateArgs, NetPortListArgs};
use crate::output::{read_xml_file, Ctx, Failure};
use crate::table::Table;

/// libvirt's `VIR_NETWORK_PORT_CREATE_RECLAIM` and `VIR_NETWORK_PORT_CREATE_VALIDATE`.
const RECLAIM: u32 = 1;
const VALIDATE: u32 = 2;

/// `net-port-create NETWORK FILE [--validate] [--reclaim]`.
pub fn net_port_create(ctx: &Ctx, a: &NetPortCreateArgs) -> Result<(), Failure> {
    let xml = read_xml_file(&a.file)?;
    let flags = if a.reclaim { RECLAIM } else { 0 } | if a.validate { VALIDATE } else { 0 };
    let port = ctx
        .client
        .create_network_port(&a.network, &xml, flags)
        .map_err(|e| {
            Failure::with_context(
                format!("Failed to create network from {}", a.file.display()),
                &e,
            )
        })?;
    ctx.extra(&format!(
        "Network port {} created from {}\n",
        port.uuid,
        a.file.display()
    ));
    Ok(())
}

/// `net-port-list NETWORK [--uuid]`.
pub fn net_port_list(ctx: &Ctx, a: &NetPortListArgs) -> Result<(), Failure> {
    let ports = ctx
        .client
        .network_ports(&a.network)
        .map_err(|e| Failure::lookup(&a.network, &e))?;
    if a.json {
        return ctx.json(&ports);
    }
    if a.uuid {
        for p in &ports {
            ctx.print(&format!("{}\n", p.uuid));
        }
        return Ok(());
    }
    let mut table = Table::new(["UUID"]);
    for p in &ports {
        table.push([p.uuid.clone()]);
    }
    ctx.print(&table.render(!ctx.quiet));
    Ok(())
}

/// The port `uuid` of `network` (by name or UUID), as virsh finds it.
fn find(ctx: &Ctx, network: &str, uuid: &str) -> Result<NetworkPortInfo, Failure> {
    let ports = ctx
        .client
        .network_ports(network)
        .map_err(|e| Failure::lookup(network, &e))?;
    ports
        .into_iter()
        .find(|p| p.uuid.eq_ignore_ascii_case(uuid))
        .ok_or_else(|| {
            Failure::msg(format!(
                "network port not found: Network port with UUID {uuid} does not exist"
            ))
        })
}

/// `net-port-dumpxml NETWORK PORT`.
pub fn net_port_dumpxml(ctx: &Ctx, network: &str, uuid: &str) -> Result<(), Failure> {
    let port = find(ctx, network, uuid)?;
    ctx.print(&port.xml);
    Ok(())
}

/// `net-port-delete NETWORK PORT`.
pub fn net_port_delete(ctx: &Ctx, network: &str, uuid: &str) -> Result<(), Failure> {
    let port = find(ctx, network, uuid)?;
    ctx.client
        .delete_network_port(&port.uuid)
        .map_err(|e| Failure::with_context(format!("Failed to delete network port {uuid}"), &e))?;
    ctx.extra(&format!("Network port {} deleted\n", port.uuid));
    Ok(())
}
