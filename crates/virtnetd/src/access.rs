//! Who may do what on the API sockets, and the audit log of every change.
//!
//! The daemon listens on two sockets (see `docs/API.md`, "Sockets and access"):
//!
//! - the read-write socket `<run-dir>/virtnet.sock`, mode 0660: besides its file mode, every
//!   connection is checked by the kernel-reported credentials of the peer (`SO_PEERCRED`,
//!   `SO_PEERGROUPS`, taken at `connect()`): only uid 0 and members of the configured admin
//!   group (`--socket-group`) are served; anyone else gets `403 forbidden` to every request,
//!   even when the file's mode was loosened;
//! - the read-only socket `<run-dir>/virtnet-ro.sock`, mode 0666 (or 0660 with
//!   `--ro-socket-group`): anyone who can open it reads (`GET` and `HEAD`), and every other
//!   method answers `403 read-only`, whatever the peer's credentials.
//!
//! Reads are recognised by their HTTP method: the API is REST-shaped, every change is a
//! `POST`, `PUT` or `DELETE`, and a route added later is refused on the read-only socket
//! unless it is a `GET`.
//!
//! Every change that is let through is logged once, with `tracing` at info level under the
//! target `virtnetd::audit` (uid, gid, pid, verb, object, status). Under systemd the daemon's
//! stderr is the journal, so `journalctl -u virtnetd` shows who changed what.

use std::os::fd::AsRawFd;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use virtnet_api::{ApiError, ErrorCode};

/// Target of the audit log lines (`RUST_LOG`-style filters can select it).
pub const AUDIT_TARGET: &str = "virtnetd::audit";

/// Which API socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `virtnet.sock`: reads and changes, for root and the admin group.
    ReadWrite,
    /// `virtnet-ro.sock`: reads only, for anyone who can open it.
    ReadOnly,
}

/// The process at the other end of a connection, as the kernel reported it when it connected,
/// and the socket it used. Handed to every request as axum's [`ConnectInfo`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// Effective uid of the peer.
    pub uid: u32,
    /// Effective gid of the peer.
    pub gid: u32,
    /// Supplementary groups of the peer (empty when the kernel cannot tell).
    pub groups: Vec<u32>,
    /// Process id of the peer (absent when it is in another pid namespace).
    pub pid: Option<i32>,
    /// The socket the connection came in on.
    pub access: Access,
    /// The group whose members may use the read-write socket besides root.
    pub admin_gid: Option<u32>,
}

impl Caller {
    /// Reads the peer's credentials of a freshly accepted connection.
    pub fn of(
        stream: &tokio::net::UnixStream,
        access: Access,
        admin_gid: Option<u32>,
    ) -> std::io::Result<Caller> {
        let cred = stream.peer_cred()?;
        // Only needed to tell a member of the admin group by a supplementary group.
        let groups = match admin_gid {
            Some(_) => peer_groups(stream).unwrap_or_else(|e| {
                tracing::debug!(error = %e, "SO_PEERGROUPS failed: primary group only");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Ok(Caller {
            uid: cred.uid(),
            gid: cred.gid(),
            groups,
            pid: cred.pid(),
            access,
            admin_gid,
        })
    }

    /// Whether the peer may use the read-write socket: root, or a member of the admin group.
    pub fn is_admin(&self) -> bool {
        self.uid == 0
            || self
                .admin_gid
                .is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }

    /// `Ok` when the peer may make `method`'s request on its socket; else the error to answer.
    pub fn authorize(&self, method: &Method, path: &str) -> Result<(), ApiError> {
        match self.access {
            Access::ReadOnly if is_read(method) => Ok(()),
            Access::ReadOnly => Err(ApiError::new(
                ErrorCode::ReadOnly,
                format!(
                    "{method} {path} changes state, and this is the read-only socket \
                     ({}): send changes to the read-write socket ({}) as root or as a member \
                     of virtnetd's --socket-group",
                    virtnet_api::RO_SOCKET_NAME,
                    virtnet_api::SOCKET_NAME
                ),
            )),
            Access::ReadWrite if self.is_admin() => Ok(()),
            Access::ReadWrite => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "uid {} may not use the read-write socket ({}): only root{} may; use \
                     the read-only socket ({}) to read (virtnet --readonly)",
                    self.uid,
                    virtnet_api::SOCKET_NAME,
                    match self.admin_gid {
                        Some(g) => format!(" and members of group {g}"),
                        None => String::new(),
                    },
                    virtnet_api::RO_SOCKET_NAME
                ),
            )),
        }
    }
}

/// Whether a request with this method only reads.
pub fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The object a change touched, when the path does not name it (a network defined by `POST
/// /v1/networks` is named in its XML): a handler puts it in the response's extensions.
#[derive(Debug, Clone)]
pub struct AuditObject(pub String);

/// Adds `object` to a response for the audit line.
pub fn with_object(mut response: Response, object: impl Into<String>) -> Response {
    response.extensions_mut().insert(AuditObject(object.into()));
    response
}

/// The middleware: refuses what the caller may not do, and logs every change it lets through.
pub async fn guard(
    params: Option<RawPathParams>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(caller)) = req.extensions().get::<ConnectInfo<Caller>>().cloned() else {
        // Every connection the server accepts carries one; a request without it did not come
        // through a socket we can vouch for.
        return refuse(ApiError::new(
            ErrorCode::Forbidden,
            "the peer's credentials are unknown",
        ));
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Err(error) = caller.authorize(&method, &path) {
        tracing::info!(
            target: AUDIT_TARGET,
            uid = caller.uid,
            gid = caller.gid,
            pid = caller.pid,
            verb = %method,
            path = ?path,
            code = ?error.code,
            "request refused"
        );
        return refuse(error);
    }
    if is_read(&method) {
        return next.run(req).await;
    }
    let verb = match &matched {
        Some(m) => format!("{method} {}", m.as_str()),
        None => format!("{method} {path}"),
    };
    let object = params
        .map(|p| p.iter().map(|(_, v)| v).collect::<Vec<_>>().join("/"))
        .unwrap_or_default();
    let mut record = AuditRecord {
        caller,
        verb,
        object,
        status: None,
    };
    let response = next.run(req).await;
    record.status = Some(response.status().as_u16());
    if let Some(AuditObject(o)) = response.extensions().get::<AuditObject>() {
        if record.object.is_empty() {
            record.object = o.clone();
        }
    }
    response
}

/// One change, logged when dropped: after the answer, or when the client went away before it
/// (the change itself still runs to completion on the blocking pool), so each change is
/// logged exactly once.
struct AuditRecord {
    caller: Caller,
    verb: String,
    object: String,
    status: Option<u16>,
}

impl Drop for AuditRecord {
    fn drop(&mut self) {
        // Debug formatting quotes the object and escapes control characters: a network name
        // cannot forge a log line.
        tracing::info!(
            target: AUDIT_TARGET,
            uid = self.caller.uid,
            gid = self.caller.gid,
            pid = self.caller.pid,
            verb = %self.verb,
            object = ?self.object,
            status = self.status,
            "change"
        );
    }
}

fn refuse(error: ApiError) -> Response {
    let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    (status, Json(error)).into_response()
}

/// `SO_PEERGROUPS` (Linux 4.13): the peer's supplementary groups at `connect()`.
#[cfg(not(target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 59;
#[cfg(target_arch = "sparc64")]
const SO_PEERGROUPS: libc::c_int = 0x3d;

/// The peer's supplementary groups, from the kernel (no `/proc` lookup that a recycled pid
/// could fool).
fn peer_groups(stream: &tokio::net::UnixStream) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into the buffer we own and sets `len`
        // to the size it wrote (or, on ERANGE, the size it needs).
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

/// The gid of a group given by name or number (for `--socket-group` and `--ro-socket-group`).
pub fn lookup_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let cname = std::ffi::CString::new(name)
        .map_err(|_| format!("group name {name:?} contains a NUL byte"))?;
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: all-zero is a valid `struct group` (pointers null, gid 0) to be filled in.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: getgrnam_r fills `grp` with pointers into `buf`, both ours and alive for the
        // call; we only read `gr_gid` afterwards.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up group {name:?}: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if result.is_null() {
            return Err(format!("no such group: {name:?}"));
        }
        return Ok(grp.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gid: u32, groups: &[u32], access: Access, admin: Option<u32>) -> Caller {
        Caller {
            uid,
            gid,
            groups: groups.to_vec(),
            pid: Some(1),
            access,
            admin_gid: admin,
        }
    }

    #[test]
    fn read_only_socket_serves_reads_to_anyone_and_refuses_every_change() {
        for uid in [0, 1000] {
            let c = caller(uid, uid, &[], Access::ReadOnly, None);
            assert!(c.authorize(&Method::GET, "/v1/networks").is_ok());
            assert!(c.authorize(&Method::HEAD, "/v1/networks").is_ok());
            for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
                let e = c.authorize(&m, "/v1/networks").unwrap_err();
                assert_eq!(e.code, ErrorCode::ReadOnly);
                assert_eq!(e.code.http_status(), 403);
            }
        }
    }

    #[test]
    fn read_write_socket_serves_root_and_the_admin_group_only() {
        let rw = Access::ReadWrite;
        assert!(caller(0, 0, &[], rw, None).is_admin());
        assert!(!caller(1000, 1000, &[], rw, None).is_admin());
        assert!(!caller(1000, 1000, &[], rw, Some(50)).is_admin());
        assert!(caller(1000, 50, &[], rw, Some(50)).is_admin());
        assert!(caller(1000, 1000, &[7, 50], rw, Some(50)).is_admin());
        let e = caller(1000, 1000, &[], rw, None)
            .authorize(&Method::GET, "/v1/networks")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    #[test]
    fn groups_resolve_by_name_and_number() {
        assert_eq!(lookup_group("0"), Ok(0));
        assert_eq!(lookup_group("root"), Ok(0));
        let e = lookup_group("no-such-group-virtnet").unwrap_err();
        assert!(e.contains("no such group"), "{e}");
    }
}
