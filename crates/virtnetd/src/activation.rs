//! Socket activation: listening sockets systemd passes to the daemon (`sd_listen_fds(3)`).
//!
//! With the socket units (`contrib/systemd/virtnetd*.socket`) systemd binds the API and
//! libvirt sockets itself and starts virtnetd on the first connection, passing the bound
//! sockets as descriptors 3, 4, … with `LISTEN_FDS=N` and `LISTEN_PID=<our pid>`. Each
//! passed socket is matched to the path the daemon would bind by its own bound address
//! (`getsockname`), so the order of the units' `ListenStream=` lines does not matter and a
//! socket the daemon is not configured for is simply not used. A passed socket belongs to
//! systemd: the daemon serves it, but neither probes it as "another daemon's" nor removes its
//! file on exit (systemd keeps listening and starts the daemon again on the next connection).
//!
//! Without those variables (or when `LISTEN_PID` names another process: a child inherited
//! them) nothing is passed and the daemon binds its sockets itself, as before. The variables
//! are left in the environment (changing it while the runtime's threads run is unsound);
//! the pid check keeps children from taking them, and the descriptors are made close-on-exec.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// More descriptors than this are not believed (a corrupt environment).
const MAX_PASSED: u32 = 64;

/// The passed listening unix sockets not yet taken, with their bound paths.
static PASSED: OnceLock<Mutex<Vec<(PathBuf, UnixListener)>>> = OnceLock::new();

fn passed() -> &'static Mutex<Vec<(PathBuf, UnixListener)>> {
    PASSED.get_or_init(|| Mutex::new(from_env()))
}

/// How many descriptors systemd passed to the process `own_pid`, from the values of
/// `LISTEN_PID` and `LISTEN_FDS`: `None` when they are missing, malformed or meant for
/// another process.
pub fn passed_count(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    own_pid: u32,
) -> Option<u32> {
    let pid: u32 = listen_pid?.trim().parse().ok()?;
    if pid != own_pid {
        return None;
    }
    let count: u32 = listen_fds?.trim().parse().ok()?;
    (count > 0 && count <= MAX_PASSED).then_some(count)
}

/// Adopts the passed descriptors that are listening unix stream sockets bound to a path.
fn from_env() -> Vec<(PathBuf, UnixListener)> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let Some(count) = passed_count(pid.as_deref(), fds.as_deref(), std::process::id()) else {
        return Vec::new();
    };
    let mut sockets = Vec::new();
    for offset in 0..count {
        // `count` is at most MAX_PASSED, so the sum cannot overflow.
        let fd = LISTEN_FDS_START + offset as RawFd;
        match adopt(fd) {
            Ok(socket) => sockets.push(socket),
            Err(reason) => tracing::warn!(fd, reason, "passed descriptor not used"),
        }
    }
    sockets
}

/// An integer socket option of `fd`.
fn sockopt(fd: RawFd, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// Takes ownership of `fd` when it is a listening unix stream socket bound to a path.
fn adopt(fd: RawFd) -> Result<(PathBuf, UnixListener), &'static str> {
    // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err("not an open descriptor");
    }
    // The daemon's children (nft is in process, but helpers may be spawned) must not inherit it.
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    if sockopt(fd, libc::SO_DOMAIN) != Some(libc::AF_UNIX)
        || sockopt(fd, libc::SO_TYPE) != Some(libc::SOCK_STREAM)
    {
        return Err("not a unix stream socket");
    }
    if sockopt(fd, libc::SO_ACCEPTCONN) != Some(1) {
        return Err("not a listening socket");
    }
    // SAFETY: fd is open, is a listening unix stream socket, and systemd handed it to this
    // process alone; it is adopted exactly once (from_env runs once).
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    let path = listener
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_pathname().map(normalise))
        .ok_or("not bound to a path")?;
    Ok((path, listener))
}

/// `path` with its directory resolved (symlinks, `..`), so that `/run/virtnet/virtnet.sock`
/// and `/var/run/virtnet/virtnet.sock` name one socket; unchanged when it cannot be resolved.
fn normalise(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|dir| dir.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Whether systemd passed a listening socket bound to `path` (and it is not taken yet).
pub fn is_passed(path: &Path) -> bool {
    let wanted = normalise(path);
    let sockets = passed().lock().unwrap_or_else(|e| e.into_inner());
    sockets.iter().any(|(p, _)| *p == wanted)
}

/// The listening socket systemd passed for `path`, taken (a second call returns `None`).
pub fn take(path: &Path) -> Option<UnixListener> {
    let wanted = normalise(path);
    let mut sockets = passed().lock().unwrap_or_else(|e| e.into_inner());
    let index = sockets.iter().position(|(p, _)| *p == wanted)?;
    Some(sockets.swap_remove(index).1)
}

/// The paths of the passed sockets nothing took (logged after start-up: a socket unit
/// listening where the daemon was not told to serve).
pub fn unused() -> Vec<PathBuf> {
    let sockets = passed().lock().unwrap_or_else(|e| e.into_inner());
    sockets.iter().map(|(p, _)| p.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_count_needs_our_pid_and_a_sane_count() {
        assert_eq!(passed_count(Some("42"), Some("2"), 42), Some(2));
        assert_eq!(passed_count(Some("42"), Some("2"), 43), None, "a child's");
        assert_eq!(passed_count(None, Some("2"), 42), None);
        assert_eq!(passed_count(Some("42"), None, 42), None);
        assert_eq!(passed_count(Some("42"), Some("0"), 42), None);
        assert_eq!(passed_count(Some("42"), Some("x"), 42), None);
        assert_eq!(passed_count(Some("42"), Some("100000"), 42), None);
    }
}
