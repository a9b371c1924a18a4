//! Identity and trust in a program that may run setuid root.
//!
//! `virtnet-bridge-helper` is installed like `qemu-bridge-helper`: owned by root, mode 4755,
//! so that an unprivileged QEMU can get a tap on a bridge the ACL allows. It then runs with
//! the caller's real uid and gid and root's effective uid, in "secure execution" mode
//! (`AT_SECURE`). In that mode:
//!
//! - the environment is the caller's: the variables that choose files or sockets
//!   (`VIRTNET_BRIDGE_CONF`, `VIRTNET_SOCKET`) are ignored, and only the fixed paths are used
//!   ([`trusted_env`]). `VIRTNET_DOMAIN` and `VIRTNET_MAC` are still read: they only label
//!   the port the caller gets, and virtnetd checks them like any client's;
//! - the ACL is read with the caller's permissions ([`as_real_user`]), as QEMU's helper
//!   does, so files the caller cannot read grant nothing;
//! - the tap is opened by name with the caller's effective identity too, so the kernel only
//!   lets the helper attach a tap that virtnetd made for that caller (owner and group).
//!
//! Rust's runtime already reopens closed stdin/stdout/stderr on `/dev/null` before `main`,
//! so a caller cannot make the helper's messages land in a file it opens.

use std::ffi::OsString;
use std::io;

/// The process's user and group ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// Real uid: the user who ran the program.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Effective uid (0 in a setuid-root program).
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
}

impl Ids {
    /// The ids of the running process.
    pub fn current() -> Ids {
        // SAFETY: these calls cannot fail and touch no memory.
        unsafe {
            Ids {
                uid: libc::getuid(),
                gid: libc::getgid(),
                euid: libc::geteuid(),
                egid: libc::getegid(),
            }
        }
    }
}

/// Whether the program runs in secure-execution mode: setuid, setgid or with file
/// capabilities (the kernel's `AT_SECURE`), or with real and effective ids that differ.
pub fn is_secure() -> bool {
    let ids = Ids::current();
    // SAFETY: getauxval only reads the auxiliary vector.
    let at_secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    at_secure || ids.uid != ids.euid || ids.gid != ids.egid
}

/// The variable `name`, unless the program runs in secure-execution mode (then `None`: the
/// caller's environment must not choose what a privileged program opens or connects to).
pub fn trusted_env(name: &str) -> Option<OsString> {
    if is_secure() {
        return None;
    }
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Runs `f` with the effective uid and gid set to the real ones (the saved set-user-ID stays
/// root, so the privileges come back afterwards). Without a difference between the two, `f`
/// simply runs. Fails when the ids cannot be switched (and then `f` does not run) or cannot be
/// switched back.
pub fn as_real_user<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let ids = Ids::current();
    if ids.uid == ids.euid && ids.gid == ids.egid {
        return Ok(f());
    }
    // SAFETY: setresgid/setresuid change only this process's credentials (-1 keeps a value;
    // u32::MAX is (uid_t)-1).
    unsafe {
        check(libc::setresgid(u32::MAX, ids.gid, u32::MAX), "setegid")?;
        if let Err(e) = check(libc::setresuid(u32::MAX, ids.uid, u32::MAX), "seteuid") {
            let _ = libc::setresgid(u32::MAX, ids.egid, u32::MAX);
            return Err(e);
        }
    }
    let out = f();
    // SAFETY: as above; the saved ids are still the privileged ones.
    unsafe {
        check(
            libc::setresuid(u32::MAX, ids.euid, u32::MAX),
            "restore euid",
        )?;
        check(
            libc::setresgid(u32::MAX, ids.egid, u32::MAX),
            "restore egid",
        )?;
    }
    Ok(out)
}

/// Gives up the privileged identity for good: real, effective and saved ids all become the
/// real ones. Checks that they did.
pub fn drop_privileges() -> io::Result<()> {
    let ids = Ids::current();
    if ids.uid == ids.euid && ids.gid == ids.egid {
        return Ok(());
    }
    // SAFETY: as in as_real_user.
    unsafe {
        check(libc::setresgid(ids.gid, ids.gid, ids.gid), "setresgid")?;
        check(libc::setresuid(ids.uid, ids.uid, ids.uid), "setresuid")?;
    }
    let now = Ids::current();
    if now.euid != ids.uid || now.egid != ids.gid {
        return Err(io::Error::other(
            "the privileged identity survived setresuid",
        ));
    }
    Ok(())
}
