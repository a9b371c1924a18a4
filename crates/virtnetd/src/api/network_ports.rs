//! Routes of the ports libvirt's hypervisor daemon announces (`docs/API.md`, "Network
//! ports"): the same core calls libvirt's RPC front end makes (`AppState::network_port_*`),
//! for the CLI and tests.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use virtnet_api::{NetworkPortInfo, NetworkPortParameters};

use super::{
    blocking, json, path_id, query, read_json, read_xml, Answer, Failure, PathArg, QueryArg, Shared,
};
use crate::error::Error;
use crate::ports::HypervisorPortInfo;

/// The wire form of a port.
fn wire(info: HypervisorPortInfo) -> NetworkPortInfo {
    NetworkPortInfo {
        network: info.network,
        uuid: uuid::Uuid::from_bytes(info.uuid).to_string(),
        xml: info.xml,
    }
}

/// The UUID of a route's path.
fn path_uuid(id: PathArg) -> std::result::Result<[u8; 16], Failure> {
    let raw = path_id(id)?;
    uuid::Uuid::parse_str(&raw)
        .map(|u| *u.as_bytes())
        .map_err(|e| {
            Failure::Daemon(Error::BadArgument {
                field: "uuid".into(),
                reason: format!("'{raw}' is not a UUID: {e}"),
            })
        })
}

/// Query of `POST /v1/networks/{id}/network-ports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateQuery {
    /// libvirt's `virNetworkPortCreateFlags` (1: reclaim, 2: validate).
    #[serde(default)]
    flags: u32,
}

/// `POST /v1/networks/{id}/network-ports`: records a port (`<networkport>` body) and answers
/// with its plug.
pub(super) async fn create(
    State(state): State<Shared>,
    id: PathArg,
    q: QueryArg<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let network = path_id(id)?;
    let flags = query(q)?.flags;
    let xml = read_xml(&headers, body).await?;
    let info = blocking(move || state.network_port_create(&network, &xml, flags)).await?;
    Ok((StatusCode::CREATED, Json(wire(info))).into_response())
}

/// `GET /v1/networks/{id}/network-ports`: the network's ports.
pub(super) async fn list(State(state): State<Shared>, id: PathArg) -> Answer {
    let network = path_id(id)?;
    let ports = blocking(move || state.network_ports(&network)).await?;
    json(ports.into_iter().map(wire).collect::<Vec<_>>())
}

/// `GET /v1/network-ports/{uuid}`: one port.
pub(super) async fn show(State(state): State<Shared>, id: PathArg) -> Answer {
    let uuid = path_uuid(id)?;
    json(wire(
        blocking(move || state.network_port_lookup(None, uuid)).await?,
    ))
}

/// `DELETE /v1/network-ports/{uuid}`: forgets a port; the hypervisor's tap stays.
pub(super) async fn delete(State(state): State<Shared>, id: PathArg) -> Answer {
    let uuid = path_uuid(id)?;
    blocking(move || state.network_port_delete(None, uuid)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/network-ports/{uuid}/parameters`: the port's bandwidth parameters.
pub(super) async fn parameters(State(state): State<Shared>, id: PathArg) -> Answer {
    let uuid = path_uuid(id)?;
    let params = blocking(move || state.network_port_parameters(None, uuid)).await?;
    json(NetworkPortParameters {
        parameters: params.into_iter().collect(),
    })
}

/// `PUT /v1/network-ports/{uuid}/parameters`: replaces them; answers with what is stored.
pub(super) async fn set_parameters(
    State(state): State<Shared>,
    id: PathArg,
    req: Request,
) -> Answer {
    let uuid = path_uuid(id)?;
    let (parts, body) = req.into_parts();
    let request: NetworkPortParameters = read_json(
        &parts.headers,
        body,
        "parameters",
        "{\"parameters\": {\"inbound.average\": 1000, ...}}",
    )
    .await?;
    let params = blocking(move || {
        let given: Vec<(String, u64)> = request.parameters.into_iter().collect();
        state.network_port_set_parameters(None, uuid, &given)?;
        state.network_port_parameters(None, uuid)
    })
    .await?;
    json(NetworkPortParameters {
        parameters: params.into_iter().collect(),
    })
}
