//! HTTP routes (`docs/API.md`) mapped onto the daemon's parts ([`AppState`]): each handler
//! calls the part that owns its request.
//!
//! This layer only translates: it reads bodies within [`MAX_BODY_BYTES`], picks JSON or XML,
//! sets `ETag`, and turns every failure into an [`ApiError`] body with the status of its code.
//! Calls into the parts run on the blocking pool because a commit waits for the disk; they also
//! run to completion when the client goes away, so a change is either fully made (and
//! durable) or not made at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use virtnet_api::{
    paths, ApiError, AutostartRequest, ChangeResult, DestroyRequest, DestroyResult, ErrorCode,
    MAX_BODY_BYTES, XML_MEDIA_TYPE,
};

pub(crate) mod errors;
mod forwards;
mod network_ports;

use crate::error::{Error, Result};
use crate::state::AppState;

/// Shared state of the handlers.
type Shared = Arc<AppState>;

/// The API's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(paths::NETWORKS, get(list).post(define))
        .route("/v1/networks/:id", get(show).put(edit).delete(undefine))
        .route(paths::DESTROY, post(destroy))
        .route(virtnet_api::UNREADABLE_NETWORKS, get(list_unreadable))
        .route("/v1/networks/:id/autostart", put(autostart))
        .route("/v1/networks/:id/start", post(start))
        .route(paths::BRIDGES, get(bridges))
        .route("/v1/networks/:id/leases", get(leases))
        .route("/v1/networks/:id/update", post(update))
        .route(virtnet_api::EVENTS, get(events))
        .route(
            virtnet_api::PORTS,
            get(list_ports)
                .post(create_port)
                .delete(delete_matching_port),
        )
        .route("/v1/ports/:name", axum::routing::delete(delete_port))
        .route("/v1/ports/:name/source", put(move_port))
        .route("/v1/ports/:name/link", put(set_port_link))
        .route("/v1/domains/:domain/addresses", get(domain_addresses))
        .route(
            "/v1/networks/:id/network-ports",
            get(network_ports::list).post(network_ports::create),
        )
        .route(
            "/v1/network-ports/:uuid",
            get(network_ports::show).delete(network_ports::delete),
        )
        .route(
            "/v1/network-ports/:uuid/parameters",
            get(network_ports::parameters).put(network_ports::set_parameters),
        )
        .route(virtnet_api::FORWARDS, get(forwards::list))
        .route(virtnet_api::DOCTOR, get(doctor))
        .route(
            crate::metrics::listen::PATH,
            get(crate::metrics::listen::serve),
        )
        .route(
            "/v1/networks/:id/forwards",
            post(forwards::add).delete(forwards::delete),
        )
        .route(
            virtnet_api::HOST_BRIDGES,
            get(list_host_bridges).post(create_host_bridge),
        )
        .route(
            "/v1/host-bridges/:bridge",
            get(show_host_bridge).delete(delete_host_bridge),
        )
        .route(
            "/v1/host-bridges/:bridge/confirm",
            post(confirm_host_bridge),
        )
        .route(virtnet_api::FABRIC, get(fabric).put(set_fabric))
        .route(virtnet_api::FABRIC_STATUS, get(fabric_status))
        .method_not_allowed_fallback(bad_method)
        .fallback(no_route)
        // Inside the request's span: who may do what on which socket, and the audit log.
        .layer(middleware::from_fn(crate::access::guard))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// An error on its way to the client: the daemon's (mapped by `api/errors.rs`), or one of
/// this front end's own about the HTTP request itself (body, path, method, headers).
enum Failure {
    /// A typed error of the daemon.
    Daemon(Error),
    /// A malformed HTTP request, already in the wire's terms.
    Wire(ApiError),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Daemon(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = match &self {
            Failure::Daemon(e) if e.is_internal() => {
                tracing::error!(error = %e, "request failed");
                errors::to_api(e)
            }
            Failure::Daemon(e) => errors::to_api(e),
            Failure::Wire(e) => e.clone(),
        };
        if !matches!(&self, Failure::Daemon(e) if e.is_internal()) {
            tracing::info!(code = ?body.code, message = %body.message, "request refused");
        }
        let status = StatusCode::from_u16(body.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(body)).into_response()
    }
}

type Answer = std::result::Result<Response, Failure>;

/// The `{id}` of a route's path, or why axum could not extract it.
type PathArg = std::result::Result<Path<String>, PathRejection>;

/// A route's query string, or why axum could not parse it.
type QueryArg<T> = std::result::Result<Query<T>, QueryRejection>;

/// A `200 OK` answer with `value` as its JSON body.
fn json<T: Serialize>(value: T) -> Answer {
    Ok(Json(value).into_response())
}

/// Takes the id from the path and runs `call` with it on the blocking pool.
async fn with_id<T: Send + 'static>(
    id: PathArg,
    call: impl FnOnce(String) -> Result<T> + Send + 'static,
) -> std::result::Result<T, Failure> {
    let id = path_id(id)?;
    Ok(blocking(move || call(id)).await?)
}

/// Takes the id from the path, reads the JSON body of `req` (see [`read_json`] for `what`
/// and `expected`) and runs `call` with both on the blocking pool.
async fn with_id_and_json<R, T>(
    id: PathArg,
    req: Request,
    what: &str,
    expected: &str,
    call: impl FnOnce(String, R) -> Result<T> + Send + 'static,
) -> std::result::Result<T, Failure>
where
    R: serde::de::DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let id = path_id(id)?;
    let (parts, body) = req.into_parts();
    let request: R = read_json(&parts.headers, body, what, expected).await?;
    Ok(blocking(move || call(id, request)).await?)
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure::Wire(ApiError::new(ErrorCode::BadRequest, message))
}

/// One span per request, with a short id to tie the log lines of a request together.
async fn trace(req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // The route's template, not the path: the metrics' label set stays bounded.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(crate::metrics::daemon::UNMATCHED_ROUTE.to_string(), |m| {
            m.as_str().to_string()
        });
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        id,
        method = %req.method(),
        path = %req.uri().path()
    );
    async move {
        let started = Instant::now();
        tracing::debug!("received");
        let response = next.run(req).await;
        let elapsed = started.elapsed();
        crate::metrics::daemon::DAEMON.request(method.as_str(), &route, elapsed);
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = elapsed.as_micros() as u64,
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}

/// Runs a call into the daemon's parts on the blocking pool, inside the request's span.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| Error::Task {
            context: "request worker".into(),
            message: e.to_string(),
        })?
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] (early when the client
/// announces the length, so a huge upload is not even read).
async fn read_body(headers: &HeaderMap, body: Body) -> std::result::Result<Bytes, Failure> {
    let too_large = || {
        Failure::Wire(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        ))
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                bad_request("cannot read the request body")
            }
        })
}

/// Reads a libvirt XML body as text.
/// Reads a JSON body; a bad one is a 400 naming the request and the expected shape.
async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    what: &str,
    expected: &str,
) -> std::result::Result<T, Failure> {
    let bytes = read_body(headers, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| bad_request(format!("bad {what} request: {e} (expected {expected})")))
}

async fn read_xml(headers: &HeaderMap, body: Body) -> std::result::Result<String, Failure> {
    let bytes = read_body(headers, body).await?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        Failure::Wire(ApiError::new(
            ErrorCode::InvalidXml,
            format!(
                "the request body is not UTF-8 text (invalid byte at offset {}): send the \
                 network definition as libvirt XML",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}

fn path_id(id: PathArg) -> std::result::Result<String, Failure> {
    id.map(|Path(id)| id)
        .map_err(|e| bad_request(format!("bad network id in path: {}", e.body_text())))
}

fn query<T>(q: QueryArg<T>) -> std::result::Result<T, Failure> {
    q.map(|Query(q)| q)
        .map_err(|e| bad_request(format!("bad query string: {}", e.body_text())))
}

fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        if !etag.is_empty() {
            response.headers_mut().insert(ETAG, value);
        }
    }
    response
}

fn changed(status: StatusCode, result: ChangeResult) -> Response {
    let etag = result.etag.clone();
    let name = result.network.name.clone();
    let response = with_etag((status, Json(result)).into_response(), &etag);
    crate::access::with_object(response, name)
}

async fn list(State(state): State<Shared>) -> Answer {
    let networks = blocking(move || Ok(state.networks.list())).await?;
    Ok(Json(networks).into_response())
}

/// `GET /v1/unreadable-networks`: stored records set aside at start.
async fn list_unreadable(State(state): State<Shared>) -> Answer {
    json(state.networks.unreadable())
}

/// Query of `GET /v1/networks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    #[serde(default)]
    inactive: bool,
    format: Option<String>,
}

/// True when the client asked for XML (`?format=xml`, or `Accept` names an XML type and no
/// explicit format was given).
fn wants_xml(format: Option<&str>, headers: &HeaderMap) -> std::result::Result<bool, Failure> {
    match format {
        Some("xml") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(bad_request(format!(
            "unknown format '{other}': use 'json' or 'xml'"
        ))),
        None => Ok(headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(XML_MEDIA_TYPE) || v.contains("text/xml"))),
    }
}

async fn show(
    State(state): State<Shared>,
    id: PathArg,
    q: QueryArg<ShowQuery>,
    headers: HeaderMap,
) -> Answer {
    let id = path_id(id)?;
    let q = query(q)?;
    let xml = wants_xml(q.format.as_deref(), &headers)?;
    let inactive = q.inactive;
    let detail = blocking(move || state.networks.get(&id, inactive)).await?;
    let response = if xml {
        let text = detail.definition.to_xml();
        ([(CONTENT_TYPE, XML_MEDIA_TYPE)], text).into_response()
    } else {
        Json(&detail).into_response()
    };
    Ok(with_etag(response, &detail.etag))
}

/// Query of `POST /v1/networks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefineQuery {
    #[serde(default)]
    transient: bool,
}

async fn define(
    State(state): State<Shared>,
    q: QueryArg<DefineQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let q = query(q)?;
    let xml = read_xml(&headers, body).await?;
    let result = if q.transient {
        blocking(move || state.create_network(&xml)).await?
    } else {
        blocking(move || state.networks.define(&xml)).await?
    };
    Ok(changed(StatusCode::CREATED, result))
}

async fn edit(State(state): State<Shared>, id: PathArg, headers: HeaderMap, body: Body) -> Answer {
    let id = path_id(id)?;
    let if_match = match headers.get(IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| bad_request("If-Match is not ASCII"))?
                .to_string(),
        ),
    };
    let xml = read_xml(&headers, body).await?;
    let result = blocking(move || state.networks.edit(&id, &xml, if_match.as_deref())).await?;
    Ok(changed(StatusCode::OK, result))
}

async fn undefine(State(state): State<Shared>, id: PathArg) -> Answer {
    let result = with_id(id, move |id| state.networks.undefine(&id)).await?;
    Ok(changed(StatusCode::OK, result))
}

async fn autostart(State(state): State<Shared>, id: PathArg, req: Request) -> Answer {
    let result = with_id_and_json(
        id,
        req,
        "autostart",
        "{\"autostart\": true|false}",
        move |id, request: AutostartRequest| state.networks.set_autostart(&id, request.autostart),
    )
    .await?;
    Ok(changed(StatusCode::OK, result))
}

async fn start(State(state): State<Shared>, id: PathArg) -> Answer {
    let result = with_id(id, move |id| state.start_network(&id)).await?;
    Ok(changed(StatusCode::OK, result))
}

async fn destroy(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let request: DestroyRequest =
        read_json(&headers, body, "destroy", "{\"networks\": [\"name\", ...]}").await?;
    if request.networks.is_empty() {
        return Err(bad_request(
            "bad destroy request: networks: the list is empty",
        ));
    }
    let names = request.networks.join(",");
    let networks = blocking(move || state.networks.destroy(&request.networks)).await?;
    let response = Json(DestroyResult { networks }).into_response();
    Ok(crate::access::with_object(response, names))
}

/// `GET /v1/doctor`: the other firewalls found and what virtnet did about them.
async fn doctor(State(state): State<Shared>) -> Answer {
    json(blocking(move || state.doctor()).await?)
}

async fn bridges(State(state): State<Shared>) -> Answer {
    json(blocking(move || state.networks.bridges()).await?)
}

async fn update(State(state): State<Shared>, id: PathArg, req: Request) -> Answer {
    let result = with_id_and_json(
        id,
        req,
        "update",
        "{\"command\": \"add-last\", \"section\": \"ip-dhcp-host\", \"xml\": \"<host .../>\", \
         \"parentIndex\": null, \"live\": true, \"config\": true}",
        move |id, request: virtnet_api::UpdateRequest| state.update_network(&id, &request),
    )
    .await?;
    Ok(changed(StatusCode::OK, result))
}

/// Query of `GET /v1/networks/{id}/leases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeasesQuery {
    /// Only the leases of this MAC address.
    mac: Option<String>,
}

async fn leases(State(state): State<Shared>, id: PathArg, q: QueryArg<LeasesQuery>) -> Answer {
    let id = path_id(id)?;
    let q = query(q)?;
    json(blocking(move || state.networks.leases(&id, q.mac.as_deref())).await?)
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Return the events after this position; absent: only tell the current position.
    after: Option<u64>,
    /// Seconds to wait for an event when there is none yet (at most [`MAX_EVENT_WAIT`]).
    #[serde(default)]
    wait: u64,
}

/// The longest an event poll is held open, so that clients and proxies never time out first.
const MAX_EVENT_WAIT: u64 = 60;

async fn events(State(state): State<Shared>, q: QueryArg<EventsQuery>) -> Answer {
    let q = query(q)?;
    let wait = std::time::Duration::from_secs(q.wait.min(MAX_EVENT_WAIT));
    json(state.events.wait_after(q.after, wait).await)
}

/// Query of `GET /v1/ports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortsQuery {
    /// Only this guest's ports.
    domain: Option<String>,
    /// `false`: leave out the anti-spoofing drop counters (`spoof_drops`), which cost a
    /// listing of every guarded port's counter; a client that only looks ports up (the
    /// CLI's `detach-interface`, `domiflist`) does not pay for it. Default `true`.
    counters: Option<bool>,
}

async fn list_ports(State(state): State<Shared>, q: QueryArg<PortsQuery>) -> Answer {
    let q = query(q)?;
    json(
        blocking(move || {
            Ok(state
                .ports
                .list(q.domain.as_deref(), q.counters.unwrap_or(true)))
        })
        .await?,
    )
}

/// Query of `DELETE /v1/ports`: which port of which guest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetachQuery {
    /// The guest.
    domain: String,
    /// `network` or `bridge`: the kind of the port's source.
    kind: String,
    /// The guest MAC, when the guest may have several such ports.
    mac: Option<String>,
}

/// `DELETE /v1/ports?domain=D&kind=K[&mac=M]`: `detach-interface` in one request.
async fn delete_matching_port(State(state): State<Shared>, q: QueryArg<DetachQuery>) -> Answer {
    let q = query(q)?;
    json(
        blocking(move || {
            state
                .ports
                .delete_matching(&q.domain, &q.kind, q.mac.as_deref())
        })
        .await?,
    )
}

async fn create_port(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let request: virtnet_api::PortRequest = read_json(
        &headers,
        body,
        "port",
        "{\"domain\": \"vm1\", \"source\": {\"type\": \"network\", \"name\": \"default\"}, \
         \"mac\": \"52:54:00:12:34:56\"}",
    )
    .await?;
    let port = blocking(move || state.ports.create(&request)).await?;
    let name = port.name.clone();
    let response = (StatusCode::CREATED, Json(port)).into_response();
    Ok(crate::access::with_object(response, name))
}

async fn delete_port(State(state): State<Shared>, name: PathArg) -> Answer {
    json(with_id(name, move |name| state.ports.delete(&name)).await?)
}

async fn move_port(State(state): State<Shared>, name: PathArg, req: Request) -> Answer {
    json(
        with_id_and_json(
            name,
            req,
            "move",
            "{\"source\": {\"type\": \"bridge\", \"name\": \"br0\"}}",
            move |name, request: virtnet_api::MoveRequest| {
                state.ports.move_to(&name, request.source)
            },
        )
        .await?,
    )
}

async fn set_port_link(State(state): State<Shared>, name: PathArg, req: Request) -> Answer {
    json(
        with_id_and_json(
            name,
            req,
            "link",
            "{\"up\": true|false}",
            move |name, request: virtnet_api::LinkRequest| state.ports.set_link(&name, request.up),
        )
        .await?,
    )
}

/// Query of `GET /v1/domains/{domain}/addresses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressesQuery {
    /// `lease` (default) or `arp`.
    source: Option<virtnet_api::AddressSource>,
}

async fn domain_addresses(
    State(state): State<Shared>,
    domain: PathArg,
    q: QueryArg<AddressesQuery>,
) -> Answer {
    let domain = path_id(domain)?;
    let source = query(q)?
        .source
        .unwrap_or(virtnet_api::AddressSource::Lease);
    json(blocking(move || state.domain_addresses(&domain, source)).await?)
}

async fn list_host_bridges(State(state): State<Shared>) -> Answer {
    json(blocking(move || state.host_bridges.list()).await?)
}

/// Runs to completion on the blocking pool even when the client goes away: the change, the
/// check and any roll back belong to the daemon.
async fn create_host_bridge(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let request: virtnet_api::HostBridgeRequest = read_json(
        &headers,
        body,
        "host bridge",
        "{\"iface\": \"eth0\", \"bridge\": \"br0\"}",
    )
    .await?;
    let hb = state.host_bridges.clone();
    let created = blocking(move || hb.create(&request)).await?;
    let name = created.bridge.clone();
    let response = (StatusCode::CREATED, Json(created)).into_response();
    Ok(crate::access::with_object(response, name))
}

async fn show_host_bridge(State(state): State<Shared>, bridge: PathArg) -> Answer {
    json(with_id(bridge, move |bridge| state.host_bridges.get(&bridge)).await?)
}

async fn confirm_host_bridge(State(state): State<Shared>, bridge: PathArg) -> Answer {
    json(with_id(bridge, move |bridge| state.host_bridges.confirm(&bridge)).await?)
}

async fn delete_host_bridge(State(state): State<Shared>, bridge: PathArg) -> Answer {
    json(with_id(bridge, move |bridge| state.host_bridges.unbridge(&bridge)).await?)
}

/// `GET /v1/fabric`.
async fn fabric(State(state): State<Shared>) -> Answer {
    json(blocking(move || Ok(state.fabric.settings())).await?)
}

/// `PUT /v1/fabric` (`fabric-set`): runs to completion (record, then FRR) on the blocking pool.
async fn set_fabric(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Answer {
    let request: virtnet_api::FabricRequest = read_json(
        &headers,
        body,
        "fabric",
        "{\"asn\": 65000, \"router_id\": \"10.0.0.1\", \"underlay\": \"eth1\", \
         \"peers\": [\"10.0.0.2\"]}",
    )
    .await?;
    json(blocking(move || state.fabric.set(&request)).await?)
}

/// `GET /v1/fabric/status` (`fabric-status`): asks FRR (vtysh) on the blocking pool.
async fn fabric_status(State(state): State<Shared>) -> Answer {
    json(blocking(move || Ok(state.fabric.status())).await?)
}

async fn no_route(uri: Uri) -> Failure {
    Failure::Wire(ApiError::new(
        ErrorCode::NotFound,
        format!("no such API path: {}", uri.path()),
    ))
}

async fn bad_method(method: Method, uri: Uri) -> Failure {
    bad_request(format!("method {method} is not allowed on {}", uri.path()))
}
