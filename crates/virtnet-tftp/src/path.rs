//! Confinement of requested file names to the TFTP root, with the permissions of an
//! unprivileged user.
//!
//! The name is taken as dnsmasq takes it: backslashes (Windows PXE clients) become slashes; an
//! absolute name that starts with the root itself is relative to `/`, any other leading `/` is
//! stripped, and a `..` component is refused outright.
//!
//! Then the path is walked one component at a time, each opened with `O_PATH | O_NOFOLLOW`
//! relative to the directory opened before it and checked on that descriptor (`fstat`), from
//! `/` through the root down to the file. Nothing is looked up by path twice, so nothing can be
//! swapped between a check and an open. On the way:
//!
//! - every directory, the root and its ancestors included, must let others search it (`o+x`),
//!   and the file must be a regular file others may read (`o+r`): what the daemon serves is
//!   what `nobody` could read, although the daemon runs as root (a world-readable file inside a
//!   `0700` directory is refused; dnsmasq serves as an unprivileged user too);
//! - a symbolic link is followed by the walk itself, only when it is relative and stays inside
//!   the root (`..` never climbs above it); absolute links and links that escape are refused
//!   (PXE trees such as Debian's netboot use relative links inside the root), at most
//!   [`MAX_LINKS`] per request;
//! - the file found is opened for reading relative to its directory, again without following
//!   links, and must be the very inode that was checked.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// ERROR 1: no such file (or a path through a non-directory).
    NotFound,
    /// ERROR 2: outside the root, not world-readable, or unreadable.
    Access,
    /// ERROR 1: a directory or special file.
    NotAFile,
}

impl Refusal {
    /// The ERROR packet's code and message.
    pub(crate) fn error(self) -> (u16, &'static str) {
        use crate::packet::code;
        match self {
            Refusal::NotFound => (code::NOT_FOUND, "file not found"),
            Refusal::Access => (code::ACCESS, "access violation"),
            Refusal::NotAFile => (code::NOT_FOUND, "not a regular file"),
        }
    }
}

/// The relative path a name stands for, before touching the file system: `..` is refused,
/// `.` and empty components are dropped, and a name that is only slashes names nothing.
pub(crate) fn split(name: &[u8]) -> Result<PathBuf, Refusal> {
    let name: Vec<u8> = name
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let mut out = PathBuf::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Refusal::Access),
            p => out.push(OsStr::from_bytes(p)),
        }
    }
    // Belt and braces: what was pushed are plain names only.
    if out.as_os_str().is_empty() {
        return Err(Refusal::NotAFile);
    }
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Refusal::Access);
    }
    Ok(out)
}

/// Strips the root from an absolute name that starts with it (dnsmasq accepts
/// `/var/lib/tftp/pxelinux.0` for root `/var/lib/tftp`).
fn strip_root<'a>(name: &'a [u8], roots: &[&Path]) -> &'a [u8] {
    for root in roots {
        let r = root.as_os_str().as_bytes();
        let r = r.strip_suffix(b"/").unwrap_or(r);
        if r.is_empty() {
            continue;
        }
        if let Some(rest) = name.strip_prefix(r) {
            if rest.first() == Some(&b'/') {
                return rest;
            }
        }
    }
    name
}

fn refusal(e: &io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG) => Refusal::NotFound,
        _ => Refusal::Access,
    }
}

/// Symbolic links followed for one request at most (the kernel's own limit is 40).
pub(crate) const MAX_LINKS: u32 = 40;

/// `S_IXOTH`: others may search a directory.
const OTHERS_SEARCH: u32 = 0o001;
/// `S_IROTH`: others may read a file.
const OTHERS_READ: u32 = 0o004;

/// `openat(dir, name, flags)` with `O_NOFOLLOW | O_CLOEXEC`; `name` is one component.
fn open_at(dir: libc::c_int, name: &OsStr, flags: libc::c_int) -> Result<OwnedFd, Refusal> {
    let c = CString::new(name.as_bytes()).map_err(|_| Refusal::NotFound)?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned descriptor is owned below.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(refusal(&io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` of a descriptor.
fn stat(fd: &OwnedFd) -> Result<libc::stat, Refusal> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(refusal(&io::Error::last_os_error()));
    }
    Ok(st)
}

/// The target of the symbolic link `fd` (opened with `O_PATH | O_NOFOLLOW`).
fn read_link(fd: &OwnedFd) -> Result<Vec<u8>, Refusal> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the empty path names `fd` itself; `buf` is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(refusal(&io::Error::last_os_error()));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The kind of inode `st` describes.
fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Walks `rel` from the directory `start` (the root) as described in the module comment: every
/// directory searchable by others, relative links followed inside the root only. Returns the
/// directory holding the file, the file's name there and its `fstat`.
fn walk(start: OwnedFd, rel: &Path) -> Result<(OwnedFd, OsString, libc::stat), Refusal> {
    let mut dirs: Vec<OwnedFd> = vec![start];
    let mut pending: VecDeque<OsString> = rel
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        match name.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                // Only a link's target can say `..`; it may not climb above the root.
                if dirs.len() <= 1 {
                    return Err(Refusal::Access);
                }
                dirs.pop();
                continue;
            }
            _ => {}
        }
        let parent = dirs.last().ok_or(Refusal::Access)?.as_raw_fd();
        let fd = open_at(parent, &name, libc::O_PATH)?;
        let st = stat(&fd)?;
        match kind(&st) {
            libc::S_IFLNK => {
                links += 1;
                let target = read_link(&fd)?;
                if links > MAX_LINKS || target.first() == Some(&b'/') {
                    return Err(Refusal::Access);
                }
                for part in target.split(|&b| b == b'/').rev() {
                    pending.push_front(OsString::from_vec(part.to_vec()));
                }
            }
            libc::S_IFDIR if pending.is_empty() => return Err(Refusal::NotAFile),
            libc::S_IFDIR if st.st_mode & OTHERS_SEARCH == 0 => return Err(Refusal::Access),
            libc::S_IFDIR => dirs.push(fd),
            _ if !pending.is_empty() => return Err(Refusal::NotFound),
            _ => {
                let dir = dirs.pop().ok_or(Refusal::Access)?;
                return Ok((dir, name, st));
            }
        }
    }
    Err(Refusal::NotAFile)
}

/// Opens the directory `root` (canonical, absolute) from `/`, one component at a time: each
/// must be a directory (not a link: the root was canonical when the server started) that
/// others may search.
fn open_root(root: &Path) -> Result<OwnedFd, Refusal> {
    let mut dir = open_at(
        libc::AT_FDCWD,
        OsStr::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
    )?;
    for c in root.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let next = open_at(dir.as_raw_fd(), name, libc::O_PATH)?;
        let st = stat(&next)?;
        if kind(&st) != libc::S_IFDIR || st.st_mode & OTHERS_SEARCH == 0 {
            return Err(Refusal::Access);
        }
        dir = next;
    }
    Ok(dir)
}

/// Opens the file `name` under `root` (canonical) for reading, with its size. `given` is the
/// root as configured, also accepted as a prefix of absolute names.
pub(crate) fn open(root: &Path, given: &Path, name: &[u8]) -> Result<(File, u64), Refusal> {
    let rel = split(strip_root(name, &[given, root]))?;
    let (dir, name, checked) = walk(open_root(root)?, &rel)?;
    if kind(&checked) != libc::S_IFREG {
        return Err(Refusal::NotAFile);
    }
    if checked.st_mode & OTHERS_READ == 0 {
        return Err(Refusal::Access);
    }
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = open_at(dir.as_raw_fd(), &name, flags)?;
    let st = stat(&fd)?;
    if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino) {
        // Replaced between the check and the open: refuse rather than serve the unchecked one.
        return Err(Refusal::Access);
    }
    Ok((File::from(fd), st.st_size as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// `<tmp>/root` with files, links and a directory; `<tmp>/secret` outside it.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().canonicalize().expect("canonicalize");
        // tempdir makes 0700 directories: open it to others, as a TFTP root's parents are.
        chmod(&base, 0o755);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("boot/grub")).expect("mkdir");
        for d in [&root, &root.join("boot"), &root.join("boot/grub")] {
            chmod(d, 0o755);
        }
        let outside = base.join("secret");
        std::fs::write(&outside, b"secret").expect("write");
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        for (p, body) in [("pxelinux.0", &b"pxe"[..]), ("boot/grub/grub.cfg", b"cfg")] {
            std::fs::write(root.join(p), body).expect("write");
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        std::fs::write(root.join("private"), b"x").expect("write");
        std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        symlink(&outside, root.join("escape")).expect("symlink");
        symlink("/etc", root.join("etc")).expect("symlink");
        symlink("boot/grub/grub.cfg", root.join("inside")).expect("symlink");
        symlink("../../secret", root.join("boot/up")).expect("symlink");
        Tree {
            _dir: dir,
            root,
            outside,
        }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn get(t: &Tree, name: &str) -> Result<Vec<u8>, Refusal> {
        use std::io::Read;
        let (mut f, size) = open(&t.root, &t.root, name.as_bytes())?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).expect("read");
        assert_eq!(v.len() as u64, size);
        Ok(v)
    }

    #[test]
    fn split_drops_dots_and_refuses_parent() {
        assert_eq!(split(b"/a//./b"), Ok(PathBuf::from("a/b")));
        assert_eq!(split(b"a\\b"), Ok(PathBuf::from("a/b")));
        assert_eq!(split(b"../etc/passwd"), Err(Refusal::Access));
        assert_eq!(split(b"/../../x"), Err(Refusal::Access));
        assert_eq!(split(b"a/b/.."), Err(Refusal::Access));
        assert_eq!(split(b"..\\x"), Err(Refusal::Access));
        assert_eq!(split(b"/"), Err(Refusal::NotAFile));
        assert_eq!(split(b"."), Err(Refusal::NotAFile));
        // `..x` and `x..` are ordinary names.
        assert_eq!(split(b"..x/y.."), Ok(PathBuf::from("..x/y..")));
    }

    #[test]
    fn files_inside_the_root_are_served() {
        let t = tree();
        assert_eq!(get(&t, "pxelinux.0"), Ok(b"pxe".to_vec()));
        assert_eq!(get(&t, "/pxelinux.0"), Ok(b"pxe".to_vec()));
        assert_eq!(get(&t, "boot\\grub\\grub.cfg"), Ok(b"cfg".to_vec()));
        assert_eq!(
            get(&t, "inside"),
            Ok(b"cfg".to_vec()),
            "symlink within the root"
        );
        let abs = format!("{}/boot/grub/grub.cfg", t.root.display());
        assert_eq!(
            get(&t, &abs),
            Ok(b"cfg".to_vec()),
            "absolute name under the root"
        );
    }

    #[test]
    fn escapes_are_refused() {
        let t = tree();
        assert_eq!(get(&t, "../secret"), Err(Refusal::Access));
        assert_eq!(get(&t, "../etc/passwd"), Err(Refusal::Access));
        assert_eq!(get(&t, "/../../x"), Err(Refusal::Access));
        assert_eq!(
            get(&t, "escape"),
            Err(Refusal::Access),
            "symlink to a file outside"
        );
        assert_eq!(
            get(&t, "etc/passwd"),
            Err(Refusal::Access),
            "symlinked directory outside"
        );
        assert_eq!(
            get(&t, "boot/up"),
            Err(Refusal::Access),
            "relative symlink climbing out"
        );
        // An absolute path outside the root is taken relative to the root: not found there
        // (here `etc` is a symlink out of the root, hence refused).
        assert_eq!(get(&t, "/etc/passwd"), Err(Refusal::Access));
        assert_eq!(get(&t, "/usr/bin/env"), Err(Refusal::NotFound));
        let abs = t.outside.display().to_string();
        assert_eq!(get(&t, &abs), Err(Refusal::NotFound));
    }

    #[test]
    fn missing_directories_and_private_files() {
        let t = tree();
        assert_eq!(get(&t, "nope"), Err(Refusal::NotFound));
        assert_eq!(get(&t, "pxelinux.0/x"), Err(Refusal::NotFound));
        assert_eq!(get(&t, "boot"), Err(Refusal::NotAFile));
        assert_eq!(get(&t, "/"), Err(Refusal::NotAFile));
        assert_eq!(get(&t, "private"), Err(Refusal::Access));
        assert_eq!(get(&t, &"a".repeat(5000)), Err(Refusal::NotFound));
    }

    /// Finding: the daemon runs as root and served world-readable files inside directories
    /// that an unprivileged user could not enter.
    #[test]
    fn files_nobody_could_reach_are_refused() {
        let t = tree();
        let dir = t.root.join("locked");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("f"), b"inside").expect("write");
        chmod(&dir.join("f"), 0o644);
        chmod(&dir, 0o700);
        assert_eq!(get(&t, "locked/f"), Err(Refusal::Access), "0700 directory");
        // A link into it from elsewhere in the root does not help.
        symlink("locked/f", t.root.join("via")).expect("symlink");
        assert_eq!(
            get(&t, "via"),
            Err(Refusal::Access),
            "link into a 0700 directory"
        );
        chmod(&dir, 0o750);
        assert_eq!(get(&t, "locked/f"), Err(Refusal::Access), "group only");
        // Search permission is enough for others to reach a file by name.
        chmod(&dir, 0o711);
        assert_eq!(get(&t, "locked/f"), Ok(b"inside".to_vec()));
        assert_eq!(get(&t, "via"), Ok(b"inside".to_vec()));
        // The root itself and its parents count too.
        chmod(&t.root, 0o700);
        assert_eq!(get(&t, "pxelinux.0"), Err(Refusal::Access), "0700 root");
        chmod(&t.root, 0o755);
        let parent = t.root.parent().expect("parent").to_path_buf();
        chmod(&parent, 0o700);
        assert_eq!(get(&t, "pxelinux.0"), Err(Refusal::Access), "0700 parent");
        chmod(&parent, 0o755);
        assert_eq!(get(&t, "pxelinux.0"), Ok(b"pxe".to_vec()));
    }

    #[test]
    fn links_are_followed_inside_the_root_only() {
        let t = tree();
        // Relative links between directories inside the root, as in Debian's netboot tree.
        symlink("boot/grub", t.root.join("grub")).expect("symlink");
        assert_eq!(get(&t, "grub/grub.cfg"), Ok(b"cfg".to_vec()));
        symlink("../pxelinux.0", t.root.join("boot/pxe")).expect("symlink");
        assert_eq!(get(&t, "boot/pxe"), Ok(b"pxe".to_vec()));
        // An absolute link is refused even when it points inside the root.
        let abs = t.root.join("pxelinux.0");
        symlink(&abs, t.root.join("abs")).expect("symlink");
        assert_eq!(get(&t, "abs"), Err(Refusal::Access));
        // Loops end.
        symlink("loop2", t.root.join("loop1")).expect("symlink");
        symlink("loop1", t.root.join("loop2")).expect("symlink");
        assert_eq!(get(&t, "loop1"), Err(Refusal::Access));
        // A link to a directory names no file.
        assert_eq!(get(&t, "grub"), Err(Refusal::NotAFile));
        // Dangling.
        symlink("nothing", t.root.join("dangling")).expect("symlink");
        assert_eq!(get(&t, "dangling"), Err(Refusal::NotFound));
    }
}
