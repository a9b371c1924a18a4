//! The console's static files, compiled into the binary (no external assets: it works
//! offline and needs no files on disk).

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The page.
const INDEX: &str = include_str!("static/index.html");
/// Its script (vanilla JS).
const SCRIPT: &str = include_str!("static/app.js");
/// Its style sheet.
const STYLE: &str = include_str!("static/style.css");

/// `GET /`.
pub(super) async fn index() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

/// `GET /app.js`.
pub(super) async fn script() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT)
}

/// `GET /style.css`.
pub(super) async fn style() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
