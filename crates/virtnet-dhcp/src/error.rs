//! Errors starting a server.

use std::io;

/// Why a DHCP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// [`crate::DhcpServer::start`] was called outside a tokio runtime.
    #[error("DHCP server for bridge {bridge}: no tokio runtime in this context")]
    NoRuntime {
        /// The bridge.
        bridge: String,
    },
    /// The bridge does not exist (in the calling thread's network namespace).
    #[error("DHCP server: no interface {bridge}: {source}")]
    NoSuchBridge {
        /// The bridge.
        bridge: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// A socket call on the DHCP socket failed.
    #[error("DHCP server on {bridge}: {op}: {source}")]
    Socket {
        /// The bridge.
        bridge: String,
        /// The call, e.g. `setsockopt(SO_BINDTODEVICE)` or `bind(0.0.0.0:67)`.
        op: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// Opening the rtnetlink socket (link and neighbour lookups) failed.
    #[error("DHCP server on {bridge}: {op}: {source}")]
    Netlink {
        /// The bridge.
        bridge: String,
        /// The call.
        op: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}
