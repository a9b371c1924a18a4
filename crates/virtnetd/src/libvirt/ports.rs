//! The network-port procedures, as libvirt's hypervisor daemon uses them: a guest with a NIC
//! of type `network` starts (`NETWORK_PORT_CREATE_XML`, then `NETWORK_PORT_GET_XML_DESC` for
//! the plug), stops (`NETWORK_PORT_LOOKUP_BY_UUID`, `NETWORK_PORT_DELETE`), or the hypervisor
//! daemon reconnects after its restart (`NETWORK_LIST_ALL_PORTS`). Served by the ports'
//! core ([`AppState::network_port_create`] and its siblings), which the JSON API calls too.

use virtnet_libvirt_rpc::remote::{
    ListAllPortsArgs, ListAllPortsRet, NonnullNetwork, NonnullNetworkPort, PortGetParametersArgs,
    PortGetParametersRet, PortRet, TypedParam, TypedParamValue, XmlRet,
};
use virtnet_libvirt_rpc::xdr::List;
use virtnet_libvirt_rpc::{code, domain, Call, Reply};

use super::dispatch::Answer;
use super::errors::{self, to_libvirt};
use crate::ports::BANDWIDTH_PARAMETERS;
use crate::state::AppState;

/// Runs one network-port procedure; `None` when `call` is not one.
pub fn port_call(state: &AppState, call: &Call) -> Option<Answer> {
    Some(match call {
        Call::NetworkPortCreateXml(a) => create(state, &a.network, &a.xml, a.flags),
        Call::NetworkPortLookupByUuid(a) => lookup(state, &a.network, a.uuid),
        Call::NetworkPortGetXmlDesc(a) => state
            .network_port_lookup(Some(&net_id(&a.port.net)), a.port.uuid)
            .map(|p| Reply::NetworkPortGetXmlDesc(XmlRet { xml: p.xml }))
            .map_err(|e| to_libvirt(&e)),
        Call::NetworkPortDelete(a) => state
            .network_port_delete(Some(&net_id(&a.port.net)), a.port.uuid)
            .map(|()| Reply::NetworkPortDelete(()))
            .map_err(|e| to_libvirt(&e)),
        Call::NetworkListAllPorts(a) => list_all(state, a),
        Call::NetworkPortGetParameters(a) => parameters(state, a),
        Call::NetworkPortSetParameters(a) => set_parameters(state, &a.port, &a.params.0),
        _ => return None,
    })
}

/// The network of a handle, by UUID (as libvirt's driver finds it).
fn net_id(net: &NonnullNetwork) -> String {
    uuid::Uuid::from_bytes(net.uuid).to_string()
}

fn handle(net: &NonnullNetwork, uuid: [u8; 16]) -> NonnullNetworkPort {
    NonnullNetworkPort {
        net: net.clone(),
        uuid,
    }
}

fn create(state: &AppState, net: &NonnullNetwork, xml: &str, flags: u32) -> Answer {
    let port = state
        .network_port_create(&net_id(net), xml, flags)
        .map_err(|e| to_libvirt(&e))?;
    Ok(Reply::NetworkPortCreateXml(PortRet {
        port: handle(net, port.uuid),
    }))
}

fn lookup(state: &AppState, net: &NonnullNetwork, uuid: [u8; 16]) -> Answer {
    let port = state
        .network_port_lookup(Some(&net_id(net)), uuid)
        .map_err(|e| to_libvirt(&e))?;
    Ok(Reply::NetworkPortLookupByUuid(PortRet {
        port: handle(net, port.uuid),
    }))
}

fn list_all(state: &AppState, a: &ListAllPortsArgs) -> Answer {
    if a.flags != 0 {
        return Err(errors::error(
            code::INVALID_ARG,
            domain::NETWORK,
            format!(
                "unsupported flags (0x{:x}) in function networkListAllPorts",
                a.flags
            ),
        ));
    }
    let ports = state
        .network_ports(&net_id(&a.network))
        .map_err(|e| to_libvirt(&e))?;
    let count = u32::try_from(ports.len()).unwrap_or(u32::MAX);
    let handles = if a.need_results != 0 {
        ports.iter().map(|p| handle(&a.network, p.uuid)).collect()
    } else {
        Vec::new()
    };
    Ok(Reply::NetworkListAllPorts(ListAllPortsRet {
        ports: List(handles),
        ret: count,
    }))
}

/// `virNetworkPortGetParameters`: the bandwidth fields, as libvirt's network driver answers
/// them (unsigned ints, every field, zero when unset). With `nparams` 0 the caller asks only
/// how many there are.
fn parameters(state: &AppState, a: &PortGetParametersArgs) -> Answer {
    let values = state
        .network_port_parameters(Some(&net_id(&a.port.net)), a.port.uuid)
        .map_err(|e| to_libvirt(&e))?;
    let count = i32::try_from(values.len()).unwrap_or(i32::MAX);
    let params = if a.nparams == 0 {
        Vec::new()
    } else {
        values
            .into_iter()
            .take(usize::try_from(a.nparams).unwrap_or(0))
            .map(|(field, v)| TypedParam {
                field,
                value: TypedParamValue::UInt(u32::try_from(v).unwrap_or(u32::MAX)),
            })
            .collect()
    };
    Ok(Reply::NetworkPortGetParameters(PortGetParametersRet {
        params: List(params),
        nparams: count,
    }))
}

/// `virNetworkPortSetParameters`: bandwidth fields only, unsigned ints, as libvirt checks
/// them (`virTypedParamsValidate`).
fn set_parameters(state: &AppState, port: &NonnullNetworkPort, params: &[TypedParam]) -> Answer {
    let mut values = Vec::with_capacity(params.len());
    for p in params {
        if !BANDWIDTH_PARAMETERS.contains(&p.field.as_str()) {
            return Err(errors::error(
                code::INVALID_ARG,
                domain::NONE,
                format!("parameter '{}' not supported", p.field),
            ));
        }
        let TypedParamValue::UInt(v) = p.value else {
            return Err(errors::error(
                code::INVALID_ARG,
                domain::NONE,
                format!(
                    "invalid type '{}' for parameter '{}', expected 'uint'",
                    type_name(&p.value),
                    p.field
                ),
            ));
        };
        values.push((p.field.clone(), u64::from(v)));
    }
    state
        .network_port_set_parameters(Some(&net_id(&port.net)), port.uuid, &values)
        .map(|()| Reply::NetworkPortSetParameters(()))
        .map_err(|e| to_libvirt(&e))
}

/// libvirt's name of a typed parameter's type (`virTypedParameterTypeToString`).
fn type_name(v: &TypedParamValue) -> &'static str {
    match v {
        TypedParamValue::Int(_) => "int",
        TypedParamValue::UInt(_) => "uint",
        TypedParamValue::LLong(_) => "llong",
        TypedParamValue::ULLong(_) => "ullong",
        TypedParamValue::Double(_) => "double",
        TypedParamValue::Boolean(_) => "boolean",
        TypedParamValue::String(_) => "string",
    }
}
