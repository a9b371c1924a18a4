//! The libvirt sockets: bound at start-up (with the JSON API's own socket code, which refuses
//! a path another process still listens on and names it), served until shutdown.

use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{LibvirtConfig, RO_SOCKET_NAME, SOCKET_NAME};
use crate::access::{Access, Caller};
use crate::error::{Error, IoContext, Result};
use crate::server::{
    bind_socket, SocketFile, MAX_UNPRIVILEGED_CONNECTIONS, RO_SOCKET_MODE_OPEN, SOCKET_MODE,
};
use crate::state::AppState;

/// The two bound sockets, not yet served; their files go when this is dropped.
pub struct Sockets {
    rw: StdUnixListener,
    ro: StdUnixListener,
    paths: [PathBuf; 2],
    admin_gid: Option<u32>,
    _files: [SocketFile; 2],
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Sockets {
    /// The read-write socket's path.
    pub fn path(&self) -> &Path {
        &self.paths[0]
    }
}

/// Binds `virtnetworkd-sock` (mode 0660, root and `socket_gid`) and `virtnetworkd-sock-ro`
/// (mode 0666) in the run directory, creating it; `None` when the sockets are turned off.
pub fn bind(config: &LibvirtConfig) -> Result<Option<Sockets>> {
    let Some(dir) = &config.run_dir else {
        return Ok(None);
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(dir)
        .with_path("cannot create directory", dir)?;
    let rw_path = dir.join(SOCKET_NAME);
    let ro_path = dir.join(RO_SOCKET_NAME);
    let (rw, rw_file) = bind_socket(&rw_path, SOCKET_MODE, config.socket_gid)?;
    let (ro, ro_file) = bind_socket(&ro_path, RO_SOCKET_MODE_OPEN, None)?;
    tracing::info!(
        socket = %rw_path.display(),
        read_only_socket = %ro_path.display(),
        admin_gid = config.socket_gid,
        "serving libvirt's network protocol"
    );
    Ok(Some(Sockets {
        rw,
        ro,
        paths: [rw_path, ro_path],
        admin_gid: config.socket_gid,
        _files: [rw_file, ro_file],
    }))
}

fn async_listener(listener: &StdUnixListener, path: &Path) -> Result<tokio::net::UnixListener> {
    let listener = listener
        .try_clone()
        .with_path("cannot duplicate the listener of", path)?;
    listener
        .set_nonblocking(true)
        .with_path("cannot set non-blocking mode on", path)?;
    tokio::net::UnixListener::from_std(listener).with_path("cannot listen on", path)
}

/// Accepts connections on both sockets until `stop` turns true, then closes them all (a
/// libvirt client reconnects; nothing of a connection outlives it).
pub async fn accept_loop(
    sockets: Sockets,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let rw = async_listener(&sockets.rw, &sockets.paths[0])?;
    let ro = async_listener(&sockets.ro, &sockets.paths[1])?;
    let unprivileged = Arc::new(Semaphore::new(MAX_UNPRIVILEGED_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let (accepted, access) = tokio::select! {
            _ = stop.changed() => break,
            accepted = rw.accept() => (accepted, Access::ReadWrite),
            accepted = ro.accept() => (accepted, Access::ReadOnly),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "libvirt socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let caller = match Caller::of(&stream, access, sockets.admin_gid) {
            Ok(caller) => caller,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials");
                continue;
            }
        };
        let permit = if caller.is_admin() {
            None
        } else {
            match Arc::clone(&unprivileged).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::debug!(
                        uid = caller.uid,
                        "too many unprivileged libvirt connections"
                    );
                    continue;
                }
            }
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            super::connection::serve(stream, caller, state).await;
            drop(permit);
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    drop(sockets);
    Ok::<(), Error>(())
}
