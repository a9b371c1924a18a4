//! The console's token, its file, the login cookie, and the checks every request passes:
//! the cookie (constant-time compare), and for changes the `Origin` (CSRF).

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::WebAccess;
use crate::error::{Error, IoContext, Result};

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "virtnet_web";

/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// A secret token: [`TOKEN_BYTES`] random bytes as lowercase hex.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    // Never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A new token from the kernel's random source (`getrandom(2)`).
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; TOKEN_BYTES];
        let mut filled = 0;
        while filled < bytes.len() {
            let rest = &mut bytes[filled..];
            // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`, which we own.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            filled += n as usize;
        }
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the token, in time independent of where they differ (a
    /// length mismatch returns at once: the length is no secret).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        // Keeps the compiler from turning the fold into an early-exit comparison.
        std::hint::black_box(diff) == 0
    }
}

/// `<run-dir>/web-token`, mode 0600: the token for root's scripts. Removed when dropped.
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// Writes `token` to a new file at `path` (a stale one is replaced, never reused: its
    /// mode could be wider).
    pub fn write(path: &Path, token: &Token) -> Result<TokenFile> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove the stale", path, e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_path("cannot create", path)?;
        writeln!(file, "{}", token.as_str()).with_path("cannot write", path)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the web token");
        }
    }
}

/// The session cookie of a request, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// 401 with a page that says how to log in.
fn unauthorized() -> Response {
    let body = "<!doctype html><title>virtnet: log in</title><h1>401: not logged in</h1>\
        <p>Open the login URL that <code>virtnet web-token --url</code> prints (as root on \
        the host).</p>";
    (
        StatusCode::UNAUTHORIZED,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Why a change is refused as a possible cross-site request, if it is.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (None, _) => Some("a change must carry the Origin header of the console's page"),
        (_, None) => Some("a change must carry a Host header"),
        (Some(o), Some(h)) if o.strip_prefix("http://") != Some(h) => {
            Some("the Origin header is not the console's own")
        }
        _ => None,
    }
}

/// The middleware in front of everything but `/login`: the cookie must hold the token, and a
/// change (any method but `GET`/`HEAD`) must come from the console's own page.
pub async fn require(State(access): State<Arc<WebAccess>>, req: Request, next: Next) -> Response {
    if !cookie(req.headers()).is_some_and(|c| access.token.matches(c)) {
        return unauthorized();
    }
    if !crate::access::is_read(req.method()) {
        if let Some(reason) = cross_site(req.headers()) {
            tracing::info!(method = %req.method(), path = %req.uri().path(), reason, "web: cross-site change refused");
            let body = virtnet_api::ApiError::new(virtnet_api::ErrorCode::Forbidden, reason);
            return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        }
    }
    next.run(req).await
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
}

/// `GET /login?token=T`: with the right token, sets the session cookie (HttpOnly,
/// SameSite=Strict) and sends the browser to `/`, which takes the token out of the address
/// bar; else 401.
pub async fn login(State(access): State<Arc<WebAccess>>, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(t) if access.token.matches(&t) => {
            let cookie = format!(
                "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict",
                access.token.as_str()
            );
            (
                StatusCode::SEE_OTHER,
                [(SET_COOKIE, cookie), (LOCATION, "/".to_string())],
            )
                .into_response()
        }
        _ => unauthorized(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_hex_and_differ() {
        let a = Token::generate().expect("getrandom");
        let b = Token::generate().expect("getrandom");
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn matches_only_the_exact_token() {
        let t = Token::generate().expect("getrandom");
        assert!(t.matches(t.as_str()));
        let mut wrong = t.as_str().to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(63.., last);
        assert!(!t.matches(&wrong));
        assert!(!t.matches(""));
        assert!(!t.matches(&t.as_str()[..63]));
    }

    #[test]
    fn changes_need_the_consoles_origin() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "127.0.0.1:8080".parse().expect("header"));
        assert!(cross_site(&h).is_some(), "no Origin");
        h.insert(ORIGIN, "http://evil.example".parse().expect("header"));
        assert!(cross_site(&h).is_some(), "foreign Origin");
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().expect("header"));
        assert!(cross_site(&h).is_none());
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; virtnet_web=abc; b=2".parse().expect("header"));
        assert_eq!(cookie(&h), Some("abc"));
    }
}
