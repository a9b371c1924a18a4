//! The verbs, grouped by family.

pub mod define;
pub mod doctor;
pub mod edit;
pub mod fabric;
pub mod forwards;
pub mod generate;
pub mod hostbridge;
pub mod info;
pub mod leases;
pub mod lifecycle;
pub mod list;
pub mod netport;
pub mod ports;
pub mod update;
pub mod web;

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
        Command::NetStart(a) => lifecycle::net_start(ctx, &a.networks),
        Command::NetDestroy(a) => lifecycle::net_destroy(ctx, &a.networks),
        Command::IfaceBridges(a) => lifecycle::iface_bridges(ctx, a.json),
        Command::IfaceBridge(a) => hostbridge::iface_bridge(ctx, a),
        Command::IfaceUnbridge(a) => hostbridge::iface_unbridge(ctx, a),
        Command::IfaceConfirm(a) => hostbridge::iface_confirm(ctx, a),
        Command::NetDhcpLeases(a) => {
            leases::net_dhcp_leases(ctx, &a.network, a.mac.as_deref(), a.json)
        }
        Command::NetEvent(a) => {
            leases::net_event(ctx, a.network.as_deref(), a.looping, a.timeout, a.timestamp)
        }
        Command::AttachInterface(a) => ports::attach_interface(ctx, a),
        Command::DetachInterface(a) => ports::detach_interface(ctx, a),
        Command::AttachDevice(a) => ports::attach_device(ctx, a),
        Command::DetachDevice(a) => ports::detach_device(ctx, a),
        Command::UpdateDevice(a) => ports::update_device(ctx, a),
        Command::PortList(a) => ports::port_list(ctx, a.domain.as_deref(), a.json),
        Command::DomifSetlink(a) => ports::domif_setlink(ctx, a),
        Command::DomifGetlink(a) => ports::domif_getlink(ctx, &a.domain, &a.interface),
        Command::Domiflist(a) => ports::domiflist(ctx, &a.domain, a.json),
        Command::Domifaddr(a) => ports::domifaddr(ctx, a),
        Command::NetPortCreate(a) => netport::net_port_create(ctx, a),
        Command::NetPortList(a) => netport::net_port_list(ctx, a),
        Command::NetPortDumpxml(a) => netport::net_port_dumpxml(ctx, &a.network, &a.port),
        Command::NetPortDelete(a) => netport::net_port_delete(ctx, &a.network, &a.port),
        Command::ForwardAdd(a) => forwards::forward_add(ctx, a),
        Command::Doctor(a) => doctor::doctor(ctx, a.json),
        Command::WebToken(a) => web::web_token(ctx, a),
        Command::FabricSet(a) => fabric::fabric_set(ctx, a),
        Command::FabricStatus(a) => fabric::fabric_status(ctx, a.json),
        Command::ForwardList(a) => forwards::forward_list(ctx, a.network.as_deref(), a.json),
        Command::ForwardDel(a) => forwards::forward_del(ctx, a),
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}
