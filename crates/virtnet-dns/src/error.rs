//! Errors of the DNS server.

use std::net::SocketAddr;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket operation failed for one listen address.
    #[error("dns: {syscall} on {proto} {addr} failed: {source}")]
    Socket {
        /// The address being bound.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The failing call (`socket`, `setsockopt(IP_FREEBIND)`, `bind`, `listen`, …).
        syscall: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A wildcard address (`0.0.0.0`, `::`) was asked for: the server must never be an open
    /// resolver, so it binds only the network's own addresses.
    #[error("dns: refusing to listen on the wildcard address {0}")]
    Wildcard(SocketAddr),
    /// `listen` was empty.
    #[error("dns: no listen address given")]
    NoListenAddress,
    /// [`crate::DnsServer::start`] was called outside a tokio runtime.
    #[error("dns: DnsServer::start must be called inside a tokio runtime: {0}")]
    NoRuntime(String),
}
