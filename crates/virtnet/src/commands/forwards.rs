//! `forward-add`, `forward-list`, `forward-del`: port forwards to guests.

use virtnet_api::ForwardInfo;
use virtnet_model::portforward::{parse_listen, parse_proto, parse_to};
use virtnet_model::{ForwardPorts, PortForward};

use crate::cli::{ForwardAddArgs, ForwardDelArgs};
use crate::output::{Ctx, Failure};
use crate::table::Table;

/// A model error about an option, as the CLI reports it.
fn bad(e: virtnet_model::ModelError) -> Failure {
    Failure::msg(format!("invalid argument: {e}"))
}

/// `forward-add NETWORK --proto tcp|udp --port P[-Q] [--listen ADDR] --to GUEST[:PORT[-PORT]]`.
pub fn forward_add(ctx: &Ctx, a: &ForwardAddArgs) -> Result<(), Failure> {
    let ports = ForwardPorts::parse("--port", &a.port).map_err(bad)?;
    let (to, to_port) = parse_to("--to", &a.to, ports).map_err(bad)?;
    let forward = PortForward {
        proto: parse_proto("--proto", &a.proto).map_err(bad)?,
        ports,
        listen: a
            .listen
            .as_deref()
            .map(|l| parse_listen("--listen", l))
            .transpose()
            .map_err(bad)?,
        to,
        to_port,
    };
    let info = ctx
        .client
        .forward_add(&a.network, &forward)
        .map_err(|e| Failure::with_context("failed to add the forward", &e))?;
    ctx.extra(&format!(
        "Forward added to network {}: {}\n",
        info.network, info.forward
    ));
    Ok(())
}

/// `forward-del NETWORK --proto tcp|udp --port P [--listen ADDR]`.
pub fn forward_del(ctx: &Ctx, a: &ForwardDelArgs) -> Result<(), Failure> {
    let proto = parse_proto("--proto", &a.proto).map_err(bad)?;
    let listen = a
        .listen
        .as_deref()
        .map(|l| parse_listen("--listen", l))
        .transpose()
        .map_err(bad)?;
    let info = ctx
        .client
        .forward_del(&a.network, proto.as_str(), a.port, listen)
        .map_err(|e| Failure::with_context("failed to remove the forward", &e))?;
    ctx.extra(&format!(
        "Forward removed from network {}: {}\n",
        info.network, info.forward
    ));
    Ok(())
}

/// `forward-list [NETWORK] [--json]`: one row per forward, with the guest addresses it goes
/// to now.
pub fn forward_list(ctx: &Ctx, network: Option<&str>, json: bool) -> Result<(), Failure> {
    let list = ctx
        .client
        .forwards(network)
        .map_err(|e| Failure::with_context("failed to list the forwards", &e))?;
    if json {
        return ctx.json(&list);
    }
    ctx.print(&table(&list).render(!ctx.quiet));
    Ok(())
}

fn table(list: &[ForwardInfo]) -> Table {
    let mut t = Table::new(["Network", "Proto", "Listen", "Port", "To", "Guest address"]);
    for f in list {
        let fw = &f.forward;
        let to = match fw.to_port {
            Some(p) => {
                let last = u32::from(p) + fw.ports.len() - 1;
                if last == u32::from(p) {
                    format!("{}:{p}", fw.to)
                } else {
                    format!("{}:{p}-{last}", fw.to)
                }
            }
            None => fw.to.to_string(),
        };
        let addresses: Vec<String> = f.guest_addresses.iter().map(ToString::to_string).collect();
        let shown = if !f.active {
            "(inactive)".to_string()
        } else if addresses.is_empty() {
            "(unresolved)".to_string()
        } else {
            addresses.join(", ")
        };
        t.push([
            f.network.clone(),
            fw.proto.as_str().to_string(),
            fw.listen.map_or("*".to_string(), |l| l.to_string()),
            fw.ports.to_string(),
            to,
            shown,
        ]);
    }
    t
}
