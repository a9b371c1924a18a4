//! The web console (`virtnetd --web-listen ADDR:PORT`, off by default; `docs/WEB.md`).
//!
//! One page (embedded, see [`assets`]) draws the topology, lists networks, leases and forwards,
//! follows the daemon's event feed ([`events`], Server-Sent Events) and starts, stops and
//! defines networks. It is a front end like the CLI: its data and its changes go through the
//! very API router the unix socket serves (`/api/v1/...` is forwarded to `/v1/...`), so every
//! check is the API's; only an allow-list of routes is offered.
//!
//! Access ([`auth`]): a 256-bit token, new at each start, kept in `<run-dir>/web-token` (0600)
//! and handed to root by `GET /v1/web-token` (`virtnet web-token`). `/login?token=…` sets an
//! HttpOnly, SameSite=Strict cookie; every other request needs it (401 otherwise), also on
//! 127.0.0.1. A change must carry the console's own `Origin` (CSRF).

mod assets;
mod auth;
mod events;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tower::ServiceExt;
use virtnet_api::{ApiError, ErrorCode, WebToken};

use crate::access::{Access, Caller, AUDIT_TARGET};
use crate::error::{Error, IoContext, Result};
use crate::state::AppState;

pub use auth::{Token, TokenFile};

/// What the console's requests are checked against.
#[derive(Debug)]
pub struct WebAccess {
    token: Token,
    listen: SocketAddr,
}

impl WebAccess {
    /// The token as `GET /v1/web-token` answers it.
    fn answer(&self) -> WebToken {
        WebToken {
            token: self.token.as_str().to_string(),
            listen: self.listen.to_string(),
            login_url: format!("http://{}/login?token={}", self.listen, self.token.as_str()),
        }
    }
}

/// The console, bound and not yet served; its token file goes when it is dropped.
pub struct WebConsole {
    listener: Option<std::net::TcpListener>,
    access: Arc<WebAccess>,
    _token_file: TokenFile,
}

impl WebConsole {
    /// Binds `listen` and writes a new token to `<run_dir>/web-token`. Synchronous (start-up).
    pub fn bind(listen: SocketAddr, run_dir: &Path) -> Result<WebConsole> {
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Startup(format!("--web-listen {listen}: cannot listen: {e}")))?;
        // Port 0 (tests) becomes the port the kernel chose.
        let listen = listener.local_addr().unwrap_or(listen);
        let token = Token::generate().map_err(|e| Error::Io {
            context: "cannot draw the web console's token".into(),
            source: e,
        })?;
        let file = TokenFile::write(&run_dir.join(virtnet_api::WEB_TOKEN_FILE), &token)?;
        tracing::info!(%listen, "web console listening");
        Ok(WebConsole {
            listener: Some(listener),
            access: Arc::new(WebAccess { token, listen }),
            _token_file: file,
        })
    }

    /// The access data the API's `/v1/web-token` route hands out.
    pub fn access(&self) -> Arc<WebAccess> {
        Arc::clone(&self.access)
    }

    /// Starts serving on the runtime; the task runs until aborted (at shutdown: a change in
    /// flight still completes, the API runs its calls to the end).
    pub fn spawn(&mut self, state: &Arc<AppState>) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(listener) = self.listener.take() else {
            return Ok(None);
        };
        let listen = self.access.listen;
        let path = Path::new("web console");
        listener
            .set_nonblocking(true)
            .with_path("cannot set non-blocking mode on", path)?;
        let listener =
            tokio::net::TcpListener::from_std(listener).with_path("cannot listen on", path)?;
        let app = router(Arc::clone(state), self.access());
        Ok(Some(tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
            if let Err(e) = served {
                tracing::error!(%listen, error = %e, "web console stopped");
            }
        })))
    }
}

/// State of the console's handlers.
#[derive(Clone)]
struct WebState {
    app: Arc<AppState>,
    /// The API's router, which `/api/...` requests are forwarded to.
    api: Router,
}

/// The console's router.
fn router(app: Arc<AppState>, access: Arc<WebAccess>) -> Router {
    let web = WebState {
        api: crate::api::router(Arc::clone(&app)),
        app,
    };
    let guarded = Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .route("/events", get(events::stream))
        .route("/api/*rest", any(forward))
        .with_state(web)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&access),
            auth::require,
        ));
    Router::new()
        .route("/login", get(auth::login))
        .with_state(access)
        .merge(guarded)
        .layer(middleware::from_fn(security_headers))
}

/// Headers on every answer: nothing but the console's own files may load or be fetched
/// (CSP), no framing, no sniffing, no referrer (the login URL holds the token), no caching.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The API routes the console offers, by method and path segments (`*`: any one segment).
const ALLOWED: &[(&str, &[&str])] = &[
    ("GET", &["v1", "networks"]),
    ("GET", &["v1", "networks", "*"]),
    ("GET", &["v1", "networks", "*", "leases"]),
    ("GET", &["v1", "ports"]),
    ("GET", &["v1", "forwards"]),
    ("GET", &["v1", "host-bridges"]),
    ("GET", &["v1", "bridges"]),
    ("POST", &["v1", "networks"]),
    ("POST", &["v1", "networks", "*", "start"]),
    ("POST", &["v1", "destroy"]),
];

/// Whether the console offers `method path` (`path` without `/api`).
fn allowed(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ALLOWED.iter().any(|(m, pattern)| {
        method.as_str() == *m
            && pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| (*p == "*" && !s.is_empty()) || p == s)
    })
}

/// The identity the API sees for the console's requests: the token is root's (only root
/// may read it), so its holder acts as root on the read-write socket would.
fn console_caller() -> Caller {
    Caller {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        pid: None,
        access: Access::ReadWrite,
        admin_gid: None,
    }
}

/// `/api/v1/...`: hands the request to the API's router as `/v1/...`, when allowed.
async fn forward(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(path) = parts.uri.path().strip_prefix("/api").map(str::to_string) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = path.as_str();
    if !allowed(&parts.method, path) {
        let error = ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the web console does not offer {} {path}: use the CLI",
                parts.method
            ),
        );
        return (StatusCode::FORBIDDEN, Json(error)).into_response();
    }
    let target = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    parts.uri = match target.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    if !crate::access::is_read(&parts.method) {
        // The API's audit line says uid 0; this one says it came from the console, and whence.
        tracing::info!(target: AUDIT_TARGET, front = "web", %peer, verb = %parts.method, path, "web console change");
    }
    // A fresh request: none of this router's extensions (its path parameters would confuse
    // the API's extractors), only the caller the API's access guard expects.
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = parts.uri;
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers;
    req.extensions_mut().insert(ConnectInfo(console_caller()));
    match web.api.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `GET /v1/web-token` on the API socket: the console's token, for root on the read-write
/// socket only (`403` to anyone else, also on the read-only socket, where reads are open);
/// `409` when the console is off.
pub async fn token_route(access: Option<Arc<WebAccess>>, req: Request) -> Response {
    let caller = req.extensions().get::<ConnectInfo<Caller>>().map(|c| &c.0);
    let root = caller.is_some_and(|c| c.uid == 0 && c.access == Access::ReadWrite);
    let refuse = |code: ErrorCode, message: &str| {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        (status, Json(ApiError::new(code, message))).into_response()
    };
    if !root {
        return refuse(
            ErrorCode::Forbidden,
            "only root, on the read-write socket, may read the web console's token",
        );
    }
    match access {
        Some(access) => Json(access.answer()).into_response(),
        None => refuse(
            ErrorCode::Conflict,
            "the web console is off: start virtnetd with --web-listen ADDR:PORT",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_routes_are_offered() {
        assert!(allowed(&Method::GET, "/v1/networks"));
        assert!(allowed(&Method::GET, "/v1/networks/default/leases"));
        assert!(allowed(&Method::POST, "/v1/networks/default/start"));
        assert!(allowed(&Method::POST, "/v1/destroy"));
        assert!(!allowed(&Method::DELETE, "/v1/networks/default"));
        assert!(!allowed(&Method::POST, "/v1/host-bridges"));
        assert!(!allowed(&Method::GET, "/v1/web-token"));
        assert!(!allowed(&Method::POST, "/v1/networks//start"));
    }
}
