//! Reading under the root, defensively: host paths only, no `..`, nothing larger than
//! [`MAX_FILE`], text only, and no symlink that leads outside the root.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::HostCfgError;

/// The largest configuration file read (1 MiB): network configuration is never that big.
pub(crate) const MAX_FILE: u64 = 1 << 20;
/// The most entries looked at in one configuration directory.
pub(crate) const MAX_ENTRIES: usize = 4096;

/// The real path of a host path under `root`. Host paths must be absolute and free of `..`.
pub(crate) fn real(root: &Path, host: &Path) -> Result<PathBuf, HostCfgError> {
    let mut out = root.to_path_buf();
    let mut absolute = false;
    for c in host.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(HostCfgError::Refused {
                    path: host.to_path_buf(),
                    reason: "path with `..`".into(),
                })
            }
        }
    }
    if !absolute {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "not an absolute host path".into(),
        });
    }
    Ok(out)
}

fn io(path: &Path, source: std::io::Error) -> HostCfgError {
    HostCfgError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fails unless `real` (which exists) resolves, symlinks followed, to somewhere inside `root`.
pub(crate) fn check_inside(root: &Path, host: &Path, real: &Path) -> Result<PathBuf, HostCfgError> {
    let croot = fs::canonicalize(root).map_err(|e| io(root, e))?;
    let target = fs::canonicalize(real).map_err(|e| io(real, e))?;
    if !target.starts_with(&croot) {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: format!("leads outside the root (to {})", target.display()),
        });
    }
    Ok(target)
}

/// Whether something (even a dangling symlink) exists at the host path.
pub(crate) fn exists(root: &Path, host: &Path) -> Result<bool, HostCfgError> {
    let r = real(root, host)?;
    Ok(fs::symlink_metadata(&r).is_ok())
}

/// Reads a text file at a host path; `None` when it does not exist.
pub(crate) fn read_text(root: &Path, host: &Path) -> Result<Option<String>, HostCfgError> {
    let r = real(root, host)?;
    match fs::symlink_metadata(&r) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&r, e)),
        Ok(_) => {}
    }
    if fs::metadata(&r).is_err() {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "dangling symlink".into(),
        });
    }
    let target = check_inside(root, host, &r)?;
    let meta = fs::metadata(&target).map_err(|e| io(&target, e))?;
    if !meta.is_file() {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_FILE {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: format!("larger than {MAX_FILE} bytes"),
        });
    }
    let file = fs::File::open(&target).map_err(|e| io(&target, e))?;
    let mut buf = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io(&target, e))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: format!("larger than {MAX_FILE} bytes"),
        });
    }
    if buf.contains(&0) {
        return Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "not text (NUL bytes)".into(),
        });
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "not UTF-8 text".into(),
        })
}

/// The entries of a directory at a host path (host paths, sorted by name) whose names satisfy
/// `keep`; empty when the directory does not exist.
pub(crate) fn list_dir(
    root: &Path,
    host_dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<PathBuf>, HostCfgError> {
    let r = real(root, host_dir)?;
    if !r.exists() {
        return Ok(Vec::new());
    }
    let target = check_inside(root, host_dir, &r)?;
    if !target.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for (i, entry) in fs::read_dir(&target)
        .map_err(|e| io(&target, e))?
        .enumerate()
    {
        if i >= MAX_ENTRIES {
            return Err(HostCfgError::Refused {
                path: host_dir.to_path_buf(),
                reason: format!("more than {MAX_ENTRIES} entries"),
            });
        }
        let entry = entry.map_err(|e| io(&target, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if keep(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| host_dir.join(n)).collect())
}

/// Shell-style matching of `*`, `?` and `[...]` (for file globs and networkd `Name=`).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if p.len() > 256 || n.len() > 256 {
        return pattern == name;
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("en*", "enp3s0"));
        assert!(glob_match("*", "eth0"));
        assert!(!glob_match("en*", "eth0"));
        assert!(glob_match("eth[0-3]", "eth2"));
        assert!(!glob_match("eth[!0-3]", "eth2"));
        assert!(glob_match("eth?", "eth0"));
        assert!(glob_match("eth0", "eth0"));
    }

    #[test]
    fn host_paths() {
        let root = Path::new("/r");
        assert_eq!(
            real(root, Path::new("/etc/x")).unwrap(),
            PathBuf::from("/r/etc/x")
        );
        assert!(real(root, Path::new("/etc/../x")).is_err());
        assert!(real(root, Path::new("etc/x")).is_err());
    }
}
