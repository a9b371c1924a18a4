//! The network procedures mapped onto virtnetd's core ([`AppState`]), the same calls the JSON
//! API makes, so that a network defined through either front end shows in both at once.
//! Everything here blocks (the registry commits to disk, the kernel is reached by netlink):
//! the connection runs it on the blocking pool.

use uuid::Uuid;
use virtnet_api::{NetworkSummary, UpdateRequest};
use virtnet_libvirt_rpc::remote::{
    list_flags, update_flags, AutostartRet, BridgeNameRet, DhcpLease, GetDhcpLeasesArgs,
    GetDhcpLeasesRet, IsActiveRet, IsPersistentRet, ListAllNetworksArgs, ListAllNetworksRet,
    ListNamesRet, NetRet, NonnullNetwork, NumRet, UpdateArgs, XmlRet, NETWORK_XML_INACTIVE,
};
use virtnet_libvirt_rpc::xdr::List;
use virtnet_libvirt_rpc::{code, domain, Call, Procedure, Reply};

use super::errors::{self, to_libvirt};
use crate::state::AppState;

/// The result of one call.
pub type Answer = std::result::Result<Reply, errors::Failure>;

/// libvirt's public API function behind a procedure that changes something (the name
/// libvirt's read-only refusal gives); `None` for a procedure that only reads.
pub fn write_api(procedure: Procedure) -> Option<&'static str> {
    Some(match procedure {
        Procedure::NetworkCreate => "virNetworkCreate",
        Procedure::NetworkCreateXml => "virNetworkCreateXML",
        Procedure::NetworkCreateXmlFlags => "virNetworkCreateXMLFlags",
        Procedure::NetworkDefineXml => "virNetworkDefineXML",
        Procedure::NetworkDefineXmlFlags => "virNetworkDefineXMLFlags",
        Procedure::NetworkDestroy => "virNetworkDestroy",
        Procedure::NetworkUndefine => "virNetworkUndefine",
        Procedure::NetworkUpdate => "virNetworkUpdate",
        Procedure::NetworkSetAutostart => "virNetworkSetAutostart",
        Procedure::NetworkPortCreateXml => "virNetworkPortCreateXML",
        Procedure::NetworkPortDelete => "virNetworkPortDelete",
        Procedure::NetworkPortSetParameters => "virNetworkPortSetParameters",
        Procedure::ConnectSetIdentity => "virConnectSetIdentity",
        _ => return None,
    })
}

/// A network handle as the wire carries it.
pub fn handle(summary: &NetworkSummary) -> NonnullNetwork {
    NonnullNetwork {
        name: summary.name.clone(),
        uuid: *summary.uuid.as_bytes(),
    }
}

fn net_ret(summary: &NetworkSummary) -> NetRet {
    NetRet {
        net: handle(summary),
    }
}

/// The network a handle names: by UUID, as libvirt's network driver finds it.
fn resolve(state: &AppState, net: &NonnullNetwork) -> Result<NetworkSummary, errors::Failure> {
    let uuid = Uuid::from_bytes(net.uuid);
    state
        .networks
        .get(&uuid.to_string(), false)
        .map(|d| d.summary)
        .map_err(|e| match e {
            crate::Error::NotFound { .. } => errors::no_network_with_uuid(&uuid, &net.name),
            e => to_libvirt(&e),
        })
}

fn flag(v: bool) -> i32 {
    i32::from(v)
}

/// Runs one network procedure against the core.
pub fn network_call(state: &AppState, call: Call) -> Answer {
    if let Some(answer) = super::ports::port_call(state, &call) {
        return answer;
    }
    let core = |e: crate::Error| to_libvirt(&e);
    Ok(match call {
        Call::NetworkLookupByName(a) => {
            let d = state.networks.get(&a.name, false).map_err(core)?;
            Reply::NetworkLookupByName(net_ret(&d.summary))
        }
        Call::NetworkLookupByUuid(a) => {
            let uuid = Uuid::from_bytes(a.uuid).to_string();
            let d = state.networks.get(&uuid, false).map_err(core)?;
            Reply::NetworkLookupByUuid(net_ret(&d.summary))
        }
        Call::NetworkDefineXml(a) => {
            let r = state.networks.define(&a.xml).map_err(core)?;
            Reply::NetworkDefineXml(net_ret(&r.network))
        }
        Call::NetworkDefineXmlFlags(a) => {
            let r = state.networks.define(&a.xml).map_err(core)?;
            Reply::NetworkDefineXmlFlags(net_ret(&r.network))
        }
        Call::NetworkCreateXml(a) => {
            let r = state.create_network(&a.xml).map_err(core)?;
            Reply::NetworkCreateXml(net_ret(&r.network))
        }
        Call::NetworkCreateXmlFlags(a) => {
            let r = state.create_network(&a.xml).map_err(core)?;
            Reply::NetworkCreateXmlFlags(net_ret(&r.network))
        }
        Call::NetworkCreate(a) => {
            let s = resolve(state, &a.net)?;
            if s.active {
                // libvirt's networkCreate words it without the name.
                return Err(errors::invalid("network is already active"));
            }
            state.start_network(&s.name).map_err(core)?;
            Reply::NetworkCreate(())
        }
        Call::NetworkDestroy(a) => {
            let s = resolve(state, &a.net)?;
            state.networks.destroy(&[s.name]).map_err(core)?;
            Reply::NetworkDestroy(())
        }
        Call::NetworkUndefine(a) => {
            let s = resolve(state, &a.net)?;
            if !s.persistent {
                // libvirt's networkUndefine words it so.
                return Err(errors::invalid("can't undefine transient network"));
            }
            state.networks.undefine(&s.name).map_err(core)?;
            Reply::NetworkUndefine(())
        }
        Call::NetworkGetXmlDesc(a) => {
            let s = resolve(state, &a.net)?;
            let inactive = a.flags & NETWORK_XML_INACTIVE != 0;
            let mut d = state.networks.get(&s.name, inactive).map_err(core)?;
            if s.active && !inactive {
                live_defaults(&mut d.definition);
            }
            Reply::NetworkGetXmlDesc(XmlRet {
                xml: d.definition.to_xml(),
            })
        }
        Call::NetworkGetBridgeName(a) => {
            let s = resolve(state, &a.net)?;
            let Some(name) = s.bridge else {
                return Err(errors::error(
                    code::INTERNAL_ERROR,
                    domain::NETWORK,
                    format!("network '{}' does not have a bridge name.", s.name),
                ));
            };
            Reply::NetworkGetBridgeName(BridgeNameRet { name })
        }
        Call::NetworkGetAutostart(a) => {
            let s = resolve(state, &a.net)?;
            Reply::NetworkGetAutostart(AutostartRet {
                autostart: flag(s.autostart),
            })
        }
        Call::NetworkSetAutostart(a) => {
            let s = resolve(state, &a.net)?;
            state
                .networks
                .set_autostart(&s.name, a.autostart != 0)
                .map_err(core)?;
            Reply::NetworkSetAutostart(())
        }
        Call::NetworkIsActive(a) => Reply::NetworkIsActive(IsActiveRet {
            active: flag(resolve(state, &a.net)?.active),
        }),
        Call::NetworkIsPersistent(a) => Reply::NetworkIsPersistent(IsPersistentRet {
            persistent: flag(resolve(state, &a.net)?.persistent),
        }),
        Call::ConnectNumOfNetworks(()) => Reply::ConnectNumOfNetworks(NumRet {
            num: count(state, true),
        }),
        Call::ConnectNumOfDefinedNetworks(()) => Reply::ConnectNumOfDefinedNetworks(NumRet {
            num: count(state, false),
        }),
        Call::ConnectListNetworks(a) => Reply::ConnectListNetworks(names(state, true, a.maxnames)),
        Call::ConnectListDefinedNetworks(a) => {
            Reply::ConnectListDefinedNetworks(names(state, false, a.maxnames))
        }
        Call::ConnectListAllNetworks(a) => Reply::ConnectListAllNetworks(list_all(state, &a)),
        Call::NetworkUpdate(a) => {
            update(state, &a)?;
            Reply::NetworkUpdate(())
        }
        Call::NetworkGetDhcpLeases(a) => Reply::NetworkGetDhcpLeases(leases(state, &a)?),
        other => {
            return Err(errors::rpc(format!(
                "procedure {} is not a network procedure",
                other.procedure().wire_name()
            )))
        }
    })
}

/// What libvirt's network driver adds to a running network's definition: the NAT source
/// ports of a `nat` network that names none (1024–65535, the ports virtnet's firewall uses).
fn live_defaults(net: &mut virtnet_model::Network) {
    if net.forward.mode == virtnet_model::ForwardMode::Nat {
        let nat = net.forward.nat.get_or_insert_with(Default::default);
        nat.port.get_or_insert(virtnet_model::PortRange {
            start: 1024,
            end: 65535,
        });
    }
}

fn count(state: &AppState, active: bool) -> i32 {
    let n = state
        .networks
        .list()
        .iter()
        .filter(|s| s.active == active)
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn names(state: &AppState, active: bool, max: i32) -> ListNamesRet {
    let max = usize::try_from(max).unwrap_or(0);
    ListNamesRet {
        names: List(
            state
                .networks
                .list()
                .into_iter()
                .filter(|s| s.active == active)
                .take(max)
                .map(|s| s.name)
                .collect(),
        ),
    }
}

/// Whether a network passes `virConnectListAllNetworks`' filter flags: each pair (active or
/// inactive, persistent or transient, autostart or not) filters only when one of it is set.
fn passes(flags: u32, s: &NetworkSummary) -> bool {
    let pair = |yes: u32, no: u32, value: bool| {
        flags & (yes | no) == 0 || (flags & yes != 0 && value) || (flags & no != 0 && !value)
    };
    pair(list_flags::ACTIVE, list_flags::INACTIVE, s.active)
        && pair(list_flags::PERSISTENT, list_flags::TRANSIENT, s.persistent)
        && pair(list_flags::AUTOSTART, list_flags::NO_AUTOSTART, s.autostart)
}

fn list_all(state: &AppState, a: &ListAllNetworksArgs) -> ListAllNetworksRet {
    let nets: Vec<NonnullNetwork> = state
        .networks
        .list()
        .iter()
        .filter(|s| passes(a.flags, s))
        .map(handle)
        .collect();
    let ret = nets.len() as u32;
    ListAllNetworksRet {
        nets: List(if a.need_results != 0 {
            nets
        } else {
            Vec::new()
        }),
        ret,
    }
}

/// `virNetworkUpdateCommand` as virtnet's update names it.
fn update_command(n: u32) -> Option<&'static str> {
    Some(match n {
        1 => "modify",
        2 => "delete",
        3 => "add-last",
        4 => "add-first",
        _ => return None,
    })
}

/// `virNetworkUpdateSection` as libvirt (and virtnet's update) names it.
fn update_section(n: u32) -> Option<&'static str> {
    Some(match n {
        1 => "bridge",
        2 => "domain",
        3 => "ip",
        4 => "ip-dhcp-host",
        5 => "ip-dhcp-range",
        6 => "forward",
        7 => "forward-interface",
        8 => "forward-pf",
        9 => "portgroup",
        10 => "dns-host",
        11 => "dns-txt",
        12 => "dns-srv",
        _ => return None,
    })
}

/// `NETWORK_UPDATE`: the client knows (`VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER`,
/// which virtnetd advertises) that command and section travel in their own fields.
fn update(state: &AppState, a: &UpdateArgs) -> Result<(), errors::Failure> {
    let s = resolve(state, &a.net)?;
    let command = update_command(a.command).ok_or_else(|| {
        errors::error(
            code::NO_SUPPORT,
            domain::NETWORK,
            format!("unrecognized network update command {}", a.command),
        )
    })?;
    let section = match update_section(a.section) {
        Some(section @ ("bridge" | "domain" | "ip" | "forward" | "forward-pf")) => {
            return Err(errors::error(
                code::OPERATION_UNSUPPORTED,
                domain::NETWORK,
                format!("can't update '{section}' section of network '{}'", s.name),
            ))
        }
        Some(section) => section,
        None => {
            return Err(errors::error(
                code::OPERATION_UNSUPPORTED,
                domain::NETWORK,
                "can't update unrecognized section of network",
            ))
        }
    };
    let request = UpdateRequest {
        command: command.to_string(),
        section: section.to_string(),
        xml: a.xml.clone(),
        parent_index: usize::try_from(a.parent_index).ok(),
        live: a.flags & update_flags::LIVE != 0,
        config: a.flags & update_flags::CONFIG != 0,
    };
    state
        .update_network(&s.name, &request)
        .map(|_| ())
        .map_err(|e| to_libvirt(&e))
}

/// `NETWORK_GET_DHCP_LEASES`: an inactive network has none (libvirt reads its lease file,
/// which an inactive network does not have).
fn leases(state: &AppState, a: &GetDhcpLeasesArgs) -> Result<GetDhcpLeasesRet, errors::Failure> {
    let s = resolve(state, &a.net)?;
    let leases = if s.active {
        state
            .networks
            .leases(&s.name, a.mac.as_deref())
            .map_err(|e| to_libvirt(&e))?
    } else {
        Vec::new()
    };
    let leases: Vec<DhcpLease> = leases
        .into_iter()
        .map(|l| DhcpLease {
            iface: l.iface,
            expirytime: l
                .expiry_time
                .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
            type_: if l.kind == "ipv6" { 1 } else { 0 },
            mac: Some(l.mac),
            iaid: l.iaid.map(|i| i.to_string()),
            ipaddr: l.ip_address,
            prefix: u32::from(l.prefix),
            hostname: l.hostname,
            clientid: l.client_id,
        })
        .collect();
    let ret = leases.len() as u32;
    Ok(GetDhcpLeasesRet {
        leases: List(if a.need_results != 0 {
            leases
        } else {
            Vec::new()
        }),
        ret,
    })
}
