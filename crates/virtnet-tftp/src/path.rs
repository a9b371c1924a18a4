//! Confinement of requested file names to the TFTP root.
//!
//! The name is taken as dnsmasq takes it: backslashes (Windows PXE clients) become slashes; an
//! absolute name that starts with the root itself is relative to `/`, any other leading `/` is
//! stripped. Then a `..` component is refused outright, the path is canonicalized (symlinks
//! resolved) and must still lie under the canonical root, and the file opened (without
//! following a final symlink) must be a regular file readable by everyone: the daemon runs as
//! root, and dnsmasq running as root serves only world-readable files.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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

/// Opens the file `name` under `root` (canonical) for reading, with its size. `given` is the
/// root as configured, also accepted as a prefix of absolute names.
pub(crate) fn open(root: &Path, given: &Path, name: &[u8]) -> Result<(File, u64), Refusal> {
    let rel = split(strip_root(name, &[given, root]))?;
    let joined = root.join(rel);
    let real = joined.canonicalize().map_err(|e| refusal(&e))?;
    if !real.starts_with(root) {
        return Err(Refusal::Access);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&real)
        .map_err(|e| refusal(&e))?;
    let meta = file.metadata().map_err(|e| refusal(&e))?;
    if !meta.file_type().is_file() {
        return Err(Refusal::NotAFile);
    }
    // S_IROTH: world-readable.
    if meta.mode() & 0o004 == 0 {
        return Err(Refusal::Access);
    }
    Ok((file, meta.len()))
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
        let root = base.join("root");
        std::fs::create_dir_all(root.join("boot/grub")).expect("mkdir");
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
}
