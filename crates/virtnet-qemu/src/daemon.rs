//! Talking to virtnetd: which socket, which network a bridge belongs to.

use std::ffi::CString;
use std::path::PathBuf;

use virtnet_api::client::{default_socket_path, Client};
use virtnet_api::SOCKET_ENV;
use virtnet_model::InterfaceSource;

use crate::privilege::trusted_env;
use crate::Error;

/// The daemon's socket: `$VIRTNET_SOCKET` (not in secure-execution mode), else
/// `/run/virtnet/virtnet.sock`.
pub fn socket_path() -> PathBuf {
    trusted_env(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(default_socket_path)
}

/// A client of the daemon at [`socket_path`].
pub fn client() -> Client {
    Client::new(socket_path())
}

/// Whether an interface named `name` exists in our network namespace.
pub fn link_exists(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: if_nametoindex reads the NUL-terminated name.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// What a port on `bridge` attaches to: the virtnet network whose bridge it is (an active
/// one first), else the bridge itself as a host bridge.
pub fn source_for_bridge(client: &Client, bridge: &str) -> Result<InterfaceSource, Error> {
    let networks = client
        .list()
        .map_err(|e| Error::new(format!("cannot list virtnet's networks: {e}")))?;
    let mut inactive = None;
    for net in &networks {
        let bridge_name = match &net.bridge {
            Some(b) => Some(b.clone()),
            // The summary may leave it out; the definition knows.
            None if net.active => client
                .get(&net.name, false)
                .ok()
                .and_then(|d| d.definition.bridge_name().map(str::to_string)),
            None => None,
        };
        if bridge_name.as_deref() != Some(bridge) {
            continue;
        }
        if net.active {
            return Ok(InterfaceSource::Network(net.name.clone()));
        }
        inactive.get_or_insert_with(|| net.name.clone());
    }
    Ok(match inactive {
        // virtnetd then says that the network is not active, which is the truth.
        Some(name) => InterfaceSource::Network(name),
        None => InterfaceSource::Bridge(bridge.to_string()),
    })
}
