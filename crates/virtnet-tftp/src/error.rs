//! Errors of the TFTP server.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the TFTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// A socket operation failed for the listen address.
    #[error("tftp: {syscall} on udp {addr} failed: {source}")]
    Socket {
        /// The address being bound.
        addr: SocketAddr,
        /// The failing call (`socket`, `setsockopt(IP_FREEBIND)`, `bind`, …).
        syscall: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A wildcard address (`0.0.0.0`, `::`) was asked for: the server binds only the
    /// network's own address, so that guests of other networks (and the outside) never reach
    /// the files.
    #[error("tftp: refusing to listen on the wildcard address {0}")]
    Wildcard(SocketAddr),
    /// The root directory cannot be used (dnsmasq refuses to start in that case too).
    #[error("tftp: {syscall} on root {path} failed: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// The failing call (`realpath` or `stat`).
        syscall: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The root exists but is not a directory.
    #[error("tftp: root {0} is not a directory")]
    RootNotDirectory(PathBuf),
    /// [`crate::TftpServer::start`] was called outside a tokio runtime.
    #[error("tftp: TftpServer::start must be called inside a tokio runtime: {0}")]
    NoRuntime(String),
}
