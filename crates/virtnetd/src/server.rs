//! Start-up, the unix-socket listener and graceful shutdown.
//!
//! Start-up order matters: the state-directory lock comes first (two daemons must never share a
//! store), then the store (so the socket only appears once requests can be answered), then the
//! socket (refusing to replace one another daemon still answers on).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::{Error, IoContext, Result};
use crate::kernel::Kernel;
use crate::service::{host_link_exists, Service};
use crate::store::DB_FILE;

/// Name of the lock file in the state directory.
pub const LOCK_FILE: &str = "lock";
/// Mode of the API socket: the owner and its group may talk to the daemon.
pub const SOCKET_MODE: u32 = 0o660;
/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon keeps its files.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state (the store, the lock file).
    pub state_dir: PathBuf,
    /// Runtime files (the API socket).
    pub run_dir: PathBuf,
    /// File holding the kernel's boot id.
    pub boot_id_file: PathBuf,
    /// Settings of the networks' DHCP and DNS servers.
    pub services: crate::services::ServiceOptions,
    /// Limits of the setuid bridge helper's ports.
    pub helper_ports: crate::ports::HelperPortPolicy,
}

/// A daemon that holds its lock, its store and its bound socket, ready to serve.
pub struct Daemon {
    service: Arc<Service>,
    listener: Option<StdUnixListener>,
    socket: SocketFile,
    // Held for the life of the daemon: the flock is released when the file is closed.
    _lock: File,
}

/// The socket file; removed when dropped, if it is still the one this daemon created.
struct SocketFile {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours == Some(self.dev_ino) {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket");
            }
        }
    }
}

impl Daemon {
    /// Takes the state directory, opens the store and binds the socket. Synchronous: nothing
    /// is served yet.
    pub fn start(config: &Config) -> Result<Daemon> {
        make_dir(&config.state_dir, 0o700)?;
        make_dir(&config.run_dir, 0o755)?;
        let lock = lock_state_dir(&config.state_dir)?;
        let boot_id = read_boot_id(&config.boot_id_file);
        let db_path = config.state_dir.join(DB_FILE);
        let kernel = Kernel::open()?;
        let (service, report) = Service::open(
            &db_path,
            boot_id.as_deref(),
            Box::new(host_link_exists),
            kernel,
            config.services.clone(),
        )?;
        if report.rebooted {
            tracing::info!(
                deactivated = ?report.deactivated,
                removed = ?report.removed,
                "host rebooted since the last run: networks are inactive, transient ones are gone"
            );
        }
        tracing::info!(store = %db_path.display(), networks = service.list().len(), "store open");
        let started = std::time::Instant::now();
        let failed = service.reconcile()?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            failed = ?failed,
            "kernel reconciled with the store"
        );
        match service.host_bridges.recover() {
            Ok(restored) if !restored.is_empty() => {
                tracing::warn!(?restored, "unfinished iface-bridge changes restored");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot restore unfinished iface-bridge changes"),
        }
        let service = Arc::new(service);
        service
            .start_helper_sweeper(config.helper_ports)
            .map_err(|e| Error::Io {
                context: "cannot start the bridge helper's port sweeper".into(),
                source: e,
            })?;
        let socket_path = config.run_dir.join(virtnet_api::SOCKET_NAME);
        let (listener, socket) = bind_socket(&socket_path)?;
        tracing::info!(socket = %socket_path.display(), "listening");
        Ok(Daemon {
            service,
            listener: Some(listener),
            socket,
            _lock: lock,
        })
    }

    /// Serves the API until `shutdown` completes (see [`Shutdown`]), then stops accepting,
    /// lets in-flight requests finish and returns. Must run inside a tokio runtime.
    pub async fn serve(&mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let Some(listener) = self.listener.take() else {
            return Err(Error::Startup("the daemon is already serving".into()));
        };
        serve(
            listener,
            &self.socket.path,
            api_router(&self.service),
            shutdown,
        )
        .await
    }

    /// Closes the store and removes the socket. Blocking work still running (a commit whose
    /// client went away) holds the store open until it is done; the runtime waits for it.
    pub fn close(self) {
        // Bridges of networks destroyed just before the stop are deleted before it ends.
        crate::service::lock(&self.service.kernel).wait_for_deletions();
        drop(self);
        tracing::info!("stopped");
    }
}

/// SIGTERM and SIGINT, caught from the moment [`Shutdown::install`] runs (install it before
/// the slow parts of start-up, so a stop request during start-up still ends cleanly).
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    /// Installs the handlers. Must run inside a tokio runtime.
    pub fn install() -> Result<Shutdown> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Error::Io {
                context: format!("cannot install a handler for {name}"),
                source: e,
            })
        };
        Ok(Shutdown {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// Completes when either signal arrives.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}

fn api_router(service: &Arc<Service>) -> Router {
    crate::api::router(Arc::clone(service))
}

/// Accepts connections until `shutdown` completes, then drains.
async fn serve(
    listener: StdUnixListener,
    path: &Path,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    listener
        .set_nonblocking(true)
        .with_path("cannot set non-blocking mode on", path)?;
    let listener =
        tokio::net::UnixListener::from_std(listener).with_path("cannot listen on", path)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, router.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Receivers may all be gone already (no connection open): nothing to tell then.
    let _ = stop_tx.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, "waiting for in-flight requests");
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight requests did not finish in time; closing their connections");
        connections.abort_all();
    }
    Ok(())
}

/// Serves one connection; on shutdown, finishes the request in flight and closes.
async fn connection(
    stream: tokio::net::UnixStream,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Creates a directory (and parents) with `mode` when missing; an existing one is left alone.
fn make_dir(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_path("cannot create directory", path)
}

/// Takes an exclusive `flock` on `<state-dir>/lock` and writes our pid in it (for the error
/// message another daemon shows).
fn lock_state_dir(state_dir: &Path) -> Result<File> {
    let path = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_path("cannot open lock file", &path)?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == ErrorKind::WouldBlock {
            let mut holder = String::new();
            // Best effort: the pid is only there to make the message more useful.
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(Error::Startup(format!(
                "state directory {} is in use by another virtnetd{by}: {} is locked",
                state_dir.display(),
                path.display()
            )));
        }
        return Err(Error::io("cannot lock", &path, err));
    }
    file.set_len(0).with_path("cannot write", &path)?;
    file.rewind().with_path("cannot write", &path)?;
    writeln!(file, "{}", std::process::id()).with_path("cannot write", &path)?;
    Ok(file)
}

/// The kernel's boot id; `None` (with a warning) when it cannot be read, in which case the
/// daemon keeps live definitions as they are.
fn read_boot_id(path: &Path) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "boot id file is empty");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read boot id");
            None
        }
    }
}

/// Binds the API socket with mode [`SOCKET_MODE`]. An existing socket file is removed only when
/// nothing answers on it (a daemon that died without cleaning up); a live one, or a file that is
/// not a socket, makes start-up fail.
fn bind_socket(path: &Path) -> Result<(StdUnixListener, SocketFile)> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Error::Startup(format!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            )));
        }
        Ok(_) => match StdUnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::Startup(format!(
                    "another virtnetd is already listening on {}",
                    path.display()
                )));
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing stale socket");
                fs::remove_file(path).with_path("cannot remove stale socket", path)?;
            }
            Err(e) => return Err(Error::io("cannot probe existing socket", path, e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("cannot inspect", path, e)),
    }
    // The umask makes the socket 0660 from the moment it exists, so there is no window in
    // which it is more open; the chmod below makes the mode independent of the inherited umask.
    // The umask is process-wide: this runs during start-up, before any task that creates files.
    // SAFETY: umask only changes the process's file-creation mask; restored right after bind.
    let old = unsafe { libc::umask(0o117) };
    let bound = StdUnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.with_path("cannot bind socket", path)?;
    let meta = fs::symlink_metadata(path).with_path("cannot inspect", path)?;
    let socket = SocketFile {
        path: path.to_path_buf(),
        dev_ino: (meta.dev(), meta.ino()),
    };
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
        .with_path("cannot set the mode of", path)?;
    Ok((listener, socket))
}
