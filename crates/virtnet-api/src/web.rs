//! The web console's access token (`virtnet web-token`): `GET /v1/web-token` on the
//! read-write socket, for root only, answers [`WebToken`]; `409 conflict` when virtnetd runs
//! without `--web-listen`.

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};

/// `GET /v1/web-token`.
pub const WEB_TOKEN: &str = "/v1/web-token";

/// Name of the file in the daemon's run directory holding the token (mode 0600, root), for
/// scripts that read it without the CLI.
pub const WEB_TOKEN_FILE: &str = "web-token";

/// The web console's token and where the console listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebToken {
    /// The token: 64 hex digits (256 random bits), new at every start of the daemon.
    pub token: String,
    /// The `--web-listen` address (`127.0.0.1:8080`, `[::1]:8080`).
    pub listen: String,
    /// The URL that logs a browser in: `http://<listen>/login?token=<token>`.
    pub login_url: String,
}

impl Client {
    /// `GET /v1/web-token`.
    pub fn web_token(&self) -> Result<WebToken, ClientError> {
        let resp = self.checked("GET", WEB_TOKEN, &[], None)?;
        decode(&resp)
    }
}
