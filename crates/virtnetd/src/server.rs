//! Start-up, the unix-socket listener and graceful shutdown.
//!
//! Start-up order matters: the state-directory lock comes first (two daemons must never share a
//! store), then the store (so the socket only appears once requests can be answered), then the
//! sockets (refusing to replace one another daemon still answers on).
//!
//! Two sockets are served (see [`crate::access`]): the read-write `virtnet.sock` and the
//! read-only `virtnet-ro.sock`. Each accepted connection carries the peer's kernel-reported
//! credentials to every request as axum's `ConnectInfo<Caller>`.

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

use crate::access::{Access, Caller};
use crate::error::{Error, IoContext, Result};
use crate::kernel::Kernel;
use crate::registry::host_link_exists;
use crate::state::AppState;
use crate::store::{DB_FILE, RUNTIME_DB_FILE};

/// Name of the lock file in the state directory.
pub const LOCK_FILE: &str = "lock";
/// Mode of the API socket: the owner and its group may talk to the daemon (and the peer
/// credential check still refuses anyone but root and the admin group).
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of the read-only socket when no group is configured for it: anyone may read.
pub const RO_SOCKET_MODE_OPEN: u32 = 0o666;
/// Connections open at once from peers other than root and the admin group (the read-only
/// socket is open to every local user): beyond it, new ones are closed at once, so nobody
/// can use up the daemon's file descriptors; root is never limited.
pub const MAX_UNPRIVILEGED_CONNECTIONS: usize = 128;
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
    /// Group owning the read-write socket, whose members may change things besides root
    /// (`None`: root only, socket group root).
    pub socket_gid: Option<u32>,
    /// Group owning the read-only socket, then mode 0660 (`None`: mode 0666, anyone may read).
    pub ro_socket_gid: Option<u32>,
    /// libvirt's network daemon sockets ([`crate::libvirt`]).
    pub libvirt: crate::libvirt::LibvirtConfig,
    /// `--firewall-integration`: add scoped accepts to other tables that would drop guest
    /// traffic instead of refusing to start the network ([`crate::kernel::coexist`]).
    pub firewall_integration: bool,
    /// `--web-listen`: where the web console listens (`None`: off; see [`crate::web`]).
    pub web_listen: Option<std::net::SocketAddr>,
    /// `--metrics-listen`: a TCP address serving `GET /metrics` only (`None`: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--frr-pathspace`: FRR's pathspace of virtnet's own zebra and bgpd ([`crate::fabric`]).
    pub frr_pathspace: String,
}

/// A daemon that holds its lock, its store and its bound socket, ready to serve.
pub struct Daemon {
    state: Arc<AppState>,
    listeners: Option<Listeners>,
    socket: SocketFile,
    ro_socket: SocketFile,
    admin_gid: Option<u32>,
    /// libvirt's sockets, bound and not yet served (`None` when turned off).
    libvirt: Option<crate::libvirt::listener::Sockets>,
    /// The web console, bound and not yet served (`None` when off).
    web: Option<crate::web::WebConsole>,
    /// The `--metrics-listen` socket, bound and not yet served.
    metrics: Option<std::net::TcpListener>,
    /// The guest-names file (`<run-dir>/guest-hosts`, see [`crate::guest_hosts`]).
    guest_hosts: PathBuf,
    // Held for the life of the daemon: the flock is released when the file is closed.
    _lock: File,
}

/// The socket file; removed when dropped, if it is still the one this daemon created.
pub(crate) struct SocketFile {
    path: PathBuf,
    /// `None`: systemd bound it (socket activation) and keeps it: never removed.
    dev_ino: Option<(u64, u64)>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.dev_ino {
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
        let api_socket = config.run_dir.join(virtnet_api::SOCKET_NAME);
        // A socket systemd passed answers connections itself: it is ours, not another daemon's.
        if !crate::activation::is_passed(&api_socket) {
            refuse_live_socket(&api_socket)?;
        }
        let boot_id = read_boot_id(&config.boot_id_file);
        let db_path = config.state_dir.join(DB_FILE);
        let kernel = Kernel::open()?;
        kernel
            .coexist()
            .set_integration(config.firewall_integration);
        let (state, report) = AppState::open(
            &db_path,
            &config.run_dir.join(RUNTIME_DB_FILE),
            boot_id.as_deref(),
            Box::new(host_link_exists),
            kernel,
            config.services.clone(),
            &crate::fabric::FrrOptions {
                pathspace: config.frr_pathspace.clone(),
                run_dir: config.run_dir.clone(),
            },
        )?;
        if report.rebooted {
            tracing::info!(
                deactivated = ?report.deactivated,
                removed = ?report.removed,
                "host rebooted since the last run: networks are inactive, transient ones are gone"
            );
        }
        tracing::info!(store = %db_path.display(), networks = state.networks.list().len(), "store open");
        let started = std::time::Instant::now();
        let failed = state.reconcile()?;
        crate::metrics::daemon::DAEMON
            .reconcile
            .observe(started.elapsed());
        tracing::info!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            failed = ?failed,
            "kernel reconciled with the store"
        );
        crate::limits::release_freed_memory();
        match state.host_bridges.recover() {
            Ok(restored) if !restored.is_empty() => {
                tracing::warn!(?restored, "unfinished iface-bridge changes restored");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot restore unfinished iface-bridge changes"),
        }
        // FRR last: the networks' VXLAN devices exist when zebra first reads the kernel.
        state.fabric.restore();
        state.fabric.watch();
        let state = Arc::new(state);
        state.start_firewall_watch().map_err(|e| Error::Io {
            context: "cannot watch the nftables ruleset".into(),
            source: e,
        })?;
        state.ports.start_ip_learning().map_err(|e| Error::Io {
            context: "cannot watch the guests' ARP for IP learning".into(),
            source: e,
        })?;
        state
            .ports
            .start_hypervisor_guard()
            .map_err(|e| Error::Io {
                context: "cannot follow the links to guard the hypervisor's taps".into(),
                source: e,
            })?;
        state
            .ports
            .start_helper_sweeper(config.helper_ports)
            .map_err(|e| Error::Io {
                context: "cannot start the bridge helper's port sweeper".into(),
                source: e,
            })?;
        let socket_path = config.run_dir.join(virtnet_api::SOCKET_NAME);
        let (listener, socket) = bind_socket(&socket_path, SOCKET_MODE, config.socket_gid)?;
        let ro_path = config.run_dir.join(virtnet_api::RO_SOCKET_NAME);
        let ro_mode = match config.ro_socket_gid {
            Some(_) => SOCKET_MODE,
            None => RO_SOCKET_MODE_OPEN,
        };
        let (ro_listener, ro_socket) = bind_socket(&ro_path, ro_mode, config.ro_socket_gid)?;
        tracing::info!(
            socket = %socket_path.display(),
            admin_gid = config.socket_gid,
            read_only_socket = %ro_path.display(),
            read_only_mode = format!("{ro_mode:o}"),
            read_only_gid = config.ro_socket_gid,
            "listening"
        );
        let libvirt = crate::libvirt::listener::bind(&config.libvirt)?;
        let web = config
            .web_listen
            .map(|listen| crate::web::WebConsole::bind(listen, &config.run_dir))
            .transpose()?;
        let unused = crate::activation::unused();
        if !unused.is_empty() {
            tracing::warn!(
                ?unused,
                "sockets passed by systemd that this daemon does not serve"
            );
        }
        let metrics = config
            .metrics_listen
            .map(crate::metrics::listen::bind)
            .transpose()?;
        if let Some(addr) = config.metrics_listen {
            tracing::info!(%addr, "serving /metrics over TCP");
        }
        Ok(Daemon {
            web,
            metrics,
            state,
            libvirt,
            listeners: Some(Listeners {
                rw: listener,
                ro: ro_listener,
            }),
            socket,
            ro_socket,
            admin_gid: config.socket_gid,
            guest_hosts: config.run_dir.join(virtnet_nss::HOSTS_FILE_NAME),
            _lock: lock,
        })
    }

    /// Serves the API until `shutdown` completes (see [`Shutdown`]), then stops accepting,
    /// lets in-flight requests finish and returns. Must run inside a tokio runtime.
    pub async fn serve(&mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let Some(listeners) = self.listeners.take() else {
            return Err(Error::Startup("the daemon is already serving".into()));
        };
        let paths = [self.socket.path.as_path(), self.ro_socket.path.as_path()];
        // Port forwards to names follow the guests' leases while the daemon serves.
        let follower = tokio::spawn(crate::forwards::follow_leases(Arc::clone(&self.state)));
        // The guest names the NSS module reads (`libnss_virtnet.so.2`).
        let names = tokio::spawn(crate::guest_hosts::keep_current(
            Arc::clone(&self.state),
            self.guest_hosts.clone(),
        ));
        // The libvirt front end stops with the JSON API: both stop accepting at once.
        let (stop_libvirt, stopped) = watch::channel(false);
        let libvirt = self.libvirt.take().map(|sockets| {
            tokio::spawn(crate::libvirt::serve(
                sockets,
                Arc::clone(&self.state),
                stopped,
            ))
        });
        let web_access = self.web.as_ref().map(crate::web::WebConsole::access);
        let web = match self.web.as_mut() {
            Some(console) => console.spawn(&self.state)?,
            None => None,
        };
        // The metrics listener stops with the JSON API.
        let metrics = self.metrics.take().map(|listener| {
            let mut stopped = stop_libvirt.subscribe();
            tokio::spawn(crate::metrics::listen::run(
                listener,
                Arc::clone(&self.state),
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        });
        let served = serve(
            listeners,
            paths,
            self.admin_gid,
            api_router(&self.state, web_access),
            shutdown,
        )
        .await;
        if let Some(task) = web {
            task.abort();
        }
        follower.abort();
        names.abort();
        let _ = stop_libvirt.send(true);
        if let Some(task) = metrics {
            let _ = task.await;
        }
        if let Some(task) = libvirt {
            match task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "libvirt front end failed"),
                Err(e) => tracing::warn!(error = %e, "libvirt front end task failed"),
                Ok(Ok(())) => {}
            }
        }
        served
    }

    /// Closes the store and removes the socket. Blocking work still running (a commit whose
    /// client went away) holds the store open until it is done; the runtime waits for it.
    pub fn close(self) {
        // Bridges of networks destroyed just before the stop are deleted before it ends.
        self.state.wait_for_deletions();
        // virtnet's FRR daemons end with virtnetd (by PID).
        self.state.fabric.shutdown();
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

/// The API's router, with `GET /v1/web-token` (root only; answers whether or not the web
/// console is on, see [`crate::web::token_route`]).
fn api_router(state: &Arc<AppState>, web: Option<Arc<crate::web::WebAccess>>) -> Router {
    crate::api::router(Arc::clone(state)).route(
        virtnet_api::WEB_TOKEN,
        axum::routing::get(move |req: axum::extract::Request| {
            crate::web::token_route(web.clone(), req)
        }),
    )
}

/// The bound sockets, not yet served: read-write and read-only.
struct Listeners {
    rw: StdUnixListener,
    ro: StdUnixListener,
}

/// Makes a bound socket a tokio listener.
fn async_listener(listener: StdUnixListener, path: &Path) -> Result<tokio::net::UnixListener> {
    listener
        .set_nonblocking(true)
        .with_path("cannot set non-blocking mode on", path)?;
    tokio::net::UnixListener::from_std(listener).with_path("cannot listen on", path)
}

/// Accepts connections on both sockets until `shutdown` completes, then drains.
async fn serve(
    listeners: Listeners,
    [rw_path, ro_path]: [&Path; 2],
    admin_gid: Option<u32>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let rw = async_listener(listeners.rw, rw_path)?;
    let ro = async_listener(listeners.ro, ro_path)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let unprivileged = Arc::new(tokio::sync::Semaphore::new(MAX_UNPRIVILEGED_CONNECTIONS));
    // Warn once per episode of refusals, not once per refused connection (a flood).
    let mut saturated = false;
    tokio::pin!(shutdown);
    loop {
        let (accepted, access) = tokio::select! {
            () = &mut shutdown => break,
            accepted = rw.accept() => (accepted, Access::ReadWrite),
            accepted = ro.accept() => (accepted, Access::ReadOnly),
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((stream, _)) => match Caller::of(&stream, access, admin_gid) {
                Ok(caller) => {
                    // Held for the life of the connection.
                    let permit = if caller.is_admin() {
                        None
                    } else {
                        match Arc::clone(&unprivileged).try_acquire_owned() {
                            Ok(permit) => {
                                saturated = false;
                                Some(permit)
                            }
                            Err(_) if saturated => continue,
                            Err(_) => {
                                saturated = true;
                                tracing::warn!(
                                    uid = caller.uid,
                                    pid = caller.pid,
                                    limit = MAX_UNPRIVILEGED_CONNECTIONS,
                                    "too many connections from unprivileged peers: closed"
                                );
                                continue;
                            }
                        }
                    };
                    let served = connection(stream, caller, router.clone(), stop_rx.clone());
                    connections.spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                // Without credentials nothing can be authorised: close the connection.
                Err(e) => tracing::warn!(error = %e, "cannot read the peer's credentials"),
            },
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(rw);
    drop(ro);
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

/// Serves one connection; on shutdown, finishes the request in flight and closes. Every
/// request carries the peer's credentials as `ConnectInfo<Caller>`.
async fn connection(
    stream: tokio::net::UnixStream,
    caller: Caller,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(caller.clone()));
        router.clone().oneshot(req)
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

/// The start-up error for a socket another live process answers on.
fn listening(path: &Path, stream: &StdUnixStream) -> Error {
    Error::Startup(format!(
        "another process is already listening on {}: {}",
        path.display(),
        socket_owner(stream)
    ))
}

/// Refuses to start when another daemon answers on the API socket of the run directory,
/// before anything in that directory (the runtime store) is opened: the error names the
/// socket, not the runtime store's lock.
fn refuse_live_socket(path: &Path) -> Result<()> {
    match StdUnixStream::connect(path) {
        Ok(stream) => Err(listening(path, &stream)),
        Err(_) => Ok(()),
    }
}

/// Binds an API socket with `mode`, group `gid` when given (else the daemon's own). An existing
/// socket file is removed only when nothing answers on it (a daemon that died without cleaning
/// up); a live one, or a file that is not a socket, makes start-up fail.
pub(crate) fn bind_socket(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<(StdUnixListener, SocketFile)> {
    if let Some(listener) = crate::activation::take(path) {
        return adopt_passed_socket(listener, path, mode, gid);
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Error::Startup(format!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            )));
        }
        Ok(_) => match StdUnixStream::connect(path) {
            Ok(stream) => return Err(listening(path, &stream)),
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
        dev_ino: Some((meta.dev(), meta.ino())),
    };
    set_owner_and_mode(path, mode, gid)?;
    Ok((listener, socket))
}

/// Serves a socket systemd bound at `path` (socket activation, [`crate::activation`]). The
/// daemon's flags still decide who may connect: the same group and mode as a socket it binds
/// itself (the socket units ship those modes too). Its file stays when the daemon exits.
fn adopt_passed_socket(
    listener: StdUnixListener,
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<(StdUnixListener, SocketFile)> {
    tracing::info!(path = %path.display(), "serving a socket passed by systemd");
    set_owner_and_mode(path, mode, gid)?;
    let socket = SocketFile {
        path: path.to_path_buf(),
        dev_ino: None,
    };
    Ok((listener, socket))
}

/// Gives a socket file its group (when given) and mode. The group first, then the mode: a
/// socket opened wider than 0660 (the read-only one) is only opened once it has its final owner.
fn set_owner_and_mode(path: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
    if let Some(gid) = gid {
        std::os::unix::fs::lchown(path, None, Some(gid))
            .with_path("cannot set the group of", path)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_path("cannot set the mode of", path)
}

/// Who listens at the other end of `stream`, for an error message: the process's name and pid
/// from `SO_PEERCRED` and `/proc/PID/comm` (`libvirtd (pid 812)`), or what is known of it.
fn socket_owner(stream: &StdUnixStream) -> String {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // pid 0: the listener lives in a pid namespace we cannot see into.
    if rc != 0 || cred.pid <= 0 {
        return "a process this daemon cannot identify (another pid namespace?)".into();
    }
    match fs::read_to_string(format!("/proc/{}/comm", cred.pid)) {
        Ok(comm) => format!("{} (pid {})", comm.trim(), cred.pid),
        Err(_) => format!("pid {}", cred.pid),
    }
}
