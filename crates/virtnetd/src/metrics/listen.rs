//! `--metrics-listen ADDR:PORT`: a TCP listener that serves `GET /metrics` and nothing else
//! (404 on any other path, 405 on any other method), without authentication: what it shows is
//! what the read-only API socket shows. Off by default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{Error, Result};
use crate::state::AppState;

/// The path of the exposition, on the API sockets and on the listener.
pub const PATH: &str = "/metrics";

/// The listener's router: `GET /metrics` only.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(PATH, get(serve))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: only GET /metrics\n") })
        .with_state(state)
}

/// `GET /metrics`: the exposition, scraped on the blocking pool.
pub async fn serve(State(state): State<Arc<AppState>>) -> Response {
    let scraped = tokio::task::spawn_blocking(move || state.metrics.scrape(&state)).await;
    match scraped {
        Ok(text) => ([(CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics: the scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n").into_response()
        }
    }
}

/// Binds `addr` (at start-up, so that a port in use fails the start with a clear error).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| Error::Io {
        context: format!("--metrics-listen: cannot listen on {addr}"),
        source: e,
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::Io {
        context: format!("--metrics-listen: cannot set {addr} non-blocking"),
        source: e,
    })?;
    Ok(listener)
}

/// Serves the listener until `stop` completes.
pub async fn run(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, "metrics: cannot serve the listener");
            return;
        }
    };
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "metrics: the listener failed");
    }
}
