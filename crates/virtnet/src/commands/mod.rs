//! The verbs, grouped by family.

pub mod define;
pub mod edit;
pub mod generate;
pub mod info;
pub mod leases;
pub mod lifecycle;
pub mod list;
pub mod update;

use crate::cli::Command;
use crate::output::{Ctx, Failure};

/// Runs one network verb. `completions` and `man` are handled before a context exists.
pub fn run(ctx: &Ctx, command: &Command) -> Result<(), Failure> {
    match command {
        Command::NetList(a) => list::net_list(ctx, a),
        Command::NetInfo(a) => info::net_info(ctx, &a.network, a.json),
        Command::NetUuid(a) => info::net_uuid(ctx, &a.network),
        Command::NetName(a) => info::net_name(ctx, &a.network),
        Command::NetDumpxml(a) => info::net_dumpxml(ctx, &a.network, a.inactive, a.json),
        Command::NetDefine(a) => define::net_define(ctx, &a.file),
        Command::NetCreate(a) => define::net_create(ctx, &a.file),
        Command::NetUndefine(a) => define::net_undefine(ctx, &a.network),
        Command::NetAutostart(a) => define::net_autostart(ctx, &a.network, a.disable),
        Command::NetEdit(a) => edit::net_edit(ctx, &a.network),
        Command::NetUpdate(a) => update::net_update(ctx, a),
        Command::NetStart(a) => lifecycle::net_start(ctx, &a.network),
        Command::NetDestroy(a) => lifecycle::net_destroy(ctx, &a.networks),
        Command::IfaceBridges(a) => lifecycle::iface_bridges(ctx, a.json),
        Command::NetDhcpLeases(a) => {
            leases::net_dhcp_leases(ctx, &a.network, a.mac.as_deref(), a.json)
        }
        Command::NetEvent(a) => {
            leases::net_event(ctx, a.network.as_deref(), a.looping, a.timeout, a.timestamp)
        }
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}
