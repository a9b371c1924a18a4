//! Port forwards (`forward-add`, `forward-list`, `forward-del`):
//!
//! - `GET /v1/forwards[?network=NET]`: every forward (of one network), as [`ForwardInfo`];
//! - `POST /v1/networks/{id}/forwards` with a [`PortForward`] body: adds one; `409` with the
//!   other forward named when one already takes the same listen address, protocol and port;
//! - `DELETE /v1/networks/{id}/forwards?proto=tcp&port=P[&listen=ADDR]`: removes the forward
//!   whose range holds `P` on that listen address.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use virtnet_model::PortForward;

use crate::client::{decode, Client, ClientError};

/// `GET /v1/forwards`.
pub const FORWARDS: &str = "/v1/forwards";

/// `/v1/networks/{id}/forwards`.
pub fn network_forwards_path(id: &str) -> String {
    format!("{}/forwards", crate::paths::network(id))
}

/// One forward as `forward-list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardInfo {
    /// The network.
    pub network: String,
    /// The forward as defined.
    #[serde(flatten)]
    pub forward: PortForward,
    /// The network runs (only then is the forward in the kernel).
    pub active: bool,
    /// The guest addresses the forward goes to now: the address itself, or what the name
    /// resolves to through the network's leases and static hosts (empty: not resolved).
    pub guest_addresses: Vec<IpAddr>,
}

impl Client {
    /// `GET /v1/forwards[?network=NET]`.
    pub fn forwards(&self, network: Option<&str>) -> Result<Vec<ForwardInfo>, ClientError> {
        let mut path = FORWARDS.to_string();
        if let Some(n) = network {
            path.push_str("?network=");
            path.push_str(&crate::paths::escape(n));
        }
        let resp = self.checked("GET", &path, &[], None)?;
        decode(&resp)
    }

    /// `POST /v1/networks/{id}/forwards`.
    pub fn forward_add(&self, id: &str, forward: &PortForward) -> Result<ForwardInfo, ClientError> {
        self.send_json("POST", &network_forwards_path(id), forward)
    }

    /// `DELETE /v1/networks/{id}/forwards?proto=&port=[&listen=]`.
    pub fn forward_del(
        &self,
        id: &str,
        proto: &str,
        port: u16,
        listen: Option<IpAddr>,
    ) -> Result<ForwardInfo, ClientError> {
        let mut path = format!("{}?proto={proto}&port={port}", network_forwards_path(id));
        if let Some(l) = listen {
            path.push_str("&listen=");
            path.push_str(&crate::paths::escape(&l.to_string()));
        }
        let resp = self.checked("DELETE", &path, &[], None)?;
        decode(&resp)
    }
}
