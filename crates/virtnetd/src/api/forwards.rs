//! Routes of port forwards (`docs/API.md`, "Port forwards"): `forward-add`, `forward-list`,
//! `forward-del` on the core's calls (`AppState::forward_*`).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use virtnet_model::portforward::{parse_listen, parse_proto};
use virtnet_model::PortForward;

use super::{blocking, json, path_id, query, with_id_and_json, Answer, PathArg, QueryArg, Shared};

/// Query of `GET /v1/forwards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only this network's forwards.
    network: Option<String>,
}

/// `GET /v1/forwards[?network=NET]`.
pub(super) async fn list(State(state): State<Shared>, q: QueryArg<ListQuery>) -> Answer {
    let q = query(q)?;
    json(blocking(move || state.forward_list(q.network.as_deref())).await?)
}

/// `POST /v1/networks/{id}/forwards` with a forward as JSON: `201` with the forward as listed.
pub(super) async fn add(State(state): State<Shared>, id: PathArg, req: Request) -> Answer {
    let info = with_id_and_json(
        id,
        req,
        "forward",
        "{\"proto\": \"tcp\", \"ports\": {\"start\": 8080, \"end\": 8080}, \
         \"to\": {\"name\": \"web\"}, \"to_port\": 80}",
        move |id, forward: PortForward| state.forward_add(&id, forward),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Query of `DELETE /v1/networks/{id}/forwards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteQuery {
    /// `tcp` or `udp`.
    proto: String,
    /// A port of the forward's range.
    port: u16,
    /// The forward's listen address; absent: the forward on every host address.
    listen: Option<String>,
}

/// `DELETE /v1/networks/{id}/forwards?proto=&port=[&listen=]`: the removed forward.
pub(super) async fn delete(
    State(state): State<Shared>,
    id: PathArg,
    q: QueryArg<DeleteQuery>,
) -> Answer {
    let network = path_id(id)?;
    let q = query(q)?;
    let proto = parse_proto("proto", &q.proto).map_err(crate::Error::from)?;
    let listen: Option<IpAddr> = q
        .listen
        .as_deref()
        .map(|l| parse_listen("listen", l))
        .transpose()
        .map_err(crate::Error::from)?;
    json(blocking(move || state.forward_del(&network, proto, q.port, listen)).await?)
}
