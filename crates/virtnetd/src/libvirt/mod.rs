//! The libvirt front end: virtnetd answers libvirt's RPC protocol (`virtnet-libvirt-rpc`) on
//! the network daemon's sockets, `<libvirt-run-dir>/virtnetworkd-sock` (read-write) and
//! `virtnetworkd-sock-ro` (read-only), so that `virsh`, virt-manager, the Python bindings and
//! the hypervisor daemon manage virtnet's networks as they would libvirt's.
//!
//! Who owns what:
//! - [`listener`]: binding the two sockets (refusing a path another process still serves,
//!   naming it) and accepting connections with the peer's credentials ([`crate::access`]);
//! - [`connection`]: one connection's frames, its state (opened, read-only, event callbacks)
//!   and keepalive;
//! - [`dispatch`]: each network procedure mapped onto the same core the JSON API calls
//!   ([`AppState`]), on the blocking pool;
//! - [`errors`]: virtnetd's typed [`crate::Error`] as libvirt's codes, domains and messages;
//! - [`events`]: the registry's lifecycle changes as `NETWORK_EVENT_LIFECYCLE` messages.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::state::AppState;

pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod events;
pub mod listener;
pub mod ports;

/// The read-write socket's file name (libvirt's `virtnetworkd`).
pub const SOCKET_NAME: &str = "virtnetworkd-sock";
/// The read-only socket's file name.
pub const RO_SOCKET_NAME: &str = "virtnetworkd-sock-ro";
/// libvirt's run directory, where clients look for the sockets.
pub const DEFAULT_RUN_DIR: &str = "/run/libvirt";

/// How the libvirt sockets are served.
#[derive(Debug, Clone)]
pub struct LibvirtConfig {
    /// Where the sockets go (`--libvirt-run-dir`); `None`: not served (`--no-libvirt-sockets`).
    pub run_dir: Option<PathBuf>,
    /// Group whose members may use the read-write socket besides root
    /// (`--libvirt-socket-group`).
    pub socket_gid: Option<u32>,
}

impl Default for LibvirtConfig {
    fn default() -> Self {
        LibvirtConfig {
            run_dir: Some(PathBuf::from(DEFAULT_RUN_DIR)),
            socket_gid: None,
        }
    }
}

/// Serves the bound sockets until `stop` turns true.
pub async fn serve(
    sockets: listener::Sockets,
    state: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> crate::Result<()> {
    listener::accept_loop(sockets, state, stop).await
}
