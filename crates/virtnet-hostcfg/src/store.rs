//! Applying a [`Change`] under a root, atomically per file, with backups kept under
//! `<root>/var/lib/virtnet/hostcfg/<bridge>/`, and the exact reverse.
//!
//! The backup directory holds `manifest` (one line per file: `modified MODE N PATH`,
//! `removed MODE N PATH` or `created PATH`, the path hex-encoded) and `N.orig`, the original bytes
//! of file N. It is complete and synced before the first configuration file is touched, so a crash
//! in between leaves something [`revert`] can undo.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::{Change, HostCfgError};

pub(crate) const STATE: &str = "/var/lib/virtnet/hostcfg";
const MAGIC: &str = "virtnet-hostcfg 1";

fn io(path: &Path, source: std::io::Error) -> HostCfgError {
    HostCfgError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(p: &Path) -> String {
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(s: &str) -> Option<PathBuf> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes?)))
}

/// The real file to write for a host path: its parent directory must resolve inside the root
/// (created when missing); a symlink is followed to its target, which must be inside the root too.
fn target(root: &Path, host: &Path) -> Result<PathBuf, HostCfgError> {
    let real = fsutil::real(root, host)?;
    let parent = real.parent().ok_or_else(|| HostCfgError::Refused {
        path: host.to_path_buf(),
        reason: "no parent directory".into(),
    })?;
    if !parent.exists() {
        // Only create directories whose existing ancestors are inside the root.
        let mut anc = parent;
        while !anc.exists() {
            anc = anc.parent().unwrap_or(root);
        }
        fsutil::check_inside(root, host, anc)?;
        fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let cparent = fsutil::check_inside(root, host, parent)?;
    let name = real.file_name().ok_or_else(|| HostCfgError::Refused {
        path: host.to_path_buf(),
        reason: "no file name".into(),
    })?;
    let path = cparent.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            if fs::metadata(&path).is_err() {
                return Err(HostCfgError::Refused {
                    path: host.to_path_buf(),
                    reason: "dangling symlink".into(),
                });
            }
            let t = fsutil::check_inside(root, host, &path)?;
            if !t.is_file() {
                return Err(HostCfgError::Refused {
                    path: host.to_path_buf(),
                    reason: "not a regular file".into(),
                });
            }
            Ok(t)
        }
        Ok(m) if !m.is_file() => Err(HostCfgError::Refused {
            path: host.to_path_buf(),
            reason: "not a regular file".into(),
        }),
        _ => Ok(path),
    }
}

fn sync_dir(dir: &Path) -> Result<(), HostCfgError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. `mode` and `owner` are applied to the new file.
fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), HostCfgError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.virtnet-tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            // Best effort: only root may give a file away.
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    sync_dir(dir)
}

/// The mode for a file created from scratch: NetworkManager ignores keyfiles others can read and
/// netplan warns about world-readable files, so those get 0600.
fn new_mode(host: &Path) -> u32 {
    let s = host.to_string_lossy();
    if s.ends_with(".nmconnection") || s.starts_with("/etc/netplan/") {
        0o600
    } else {
        0o644
    }
}

enum Entry {
    Modified { mode: u32, n: usize, path: PathBuf },
    Removed { mode: u32, n: usize, path: PathBuf },
    Created { path: PathBuf },
}

fn state_dir(root: &Path, bridge: &str) -> Result<PathBuf, HostCfgError> {
    crate::check_name(bridge)?;
    fsutil::real(root, &Path::new(STATE).join(bridge))
}

/// Applies `change` under `root`: checks that every file still has the contents it had when the
/// change was rendered (and that files to create do not exist), saves the originals under
/// `root/var/lib/virtnet/hostcfg/<bridge>/`, then writes each file atomically (temporary file,
/// fsync, rename; mode and owner of the file it replaces) and removes the files to remove. On a
/// failure midway, what was done is undone.
pub fn apply(root: &Path, change: &Change) -> Result<(), HostCfgError> {
    let dir = state_dir(root, &change.bridge)?;
    if dir.join("manifest").exists() {
        return Err(HostCfgError::State {
            dir,
            reason: format!(
                "host configuration for {} is already applied; revert it first",
                change.bridge
            ),
        });
    }
    // Resolve and check everything before touching anything.
    let mut entries = Vec::new();
    let mut originals: Vec<(Vec<u8>, PathBuf, fs::Metadata)> = Vec::new();
    let original_of = |host: &Path| change.backup.iter().find(|(p, _)| p == host);
    let mut planned: Vec<(PathBuf, PathBuf, Option<usize>)> = Vec::new(); // host, real, backup index
    for host in change
        .write
        .iter()
        .map(|(p, _)| p)
        .chain(change.remove.iter())
    {
        let real = target(root, host)?;
        let on_disk = fsutil::read_text(root, host)?;
        match (original_of(host), on_disk) {
            (Some((_, expected)), Some(now)) if *expected == now => {
                let meta = fs::metadata(&real).map_err(|e| io(&real, e))?;
                originals.push((now.into_bytes(), real.clone(), meta));
                planned.push((host.clone(), real, Some(originals.len() - 1)));
            }
            (Some(_), Some(_)) => {
                return Err(HostCfgError::Conflict {
                    path: host.clone(),
                    reason: "contents differ from the rendered backup".into(),
                })
            }
            (Some(_), None) => {
                return Err(HostCfgError::Conflict {
                    path: host.clone(),
                    reason: "no longer exists".into(),
                })
            }
            (None, Some(_)) => {
                return Err(HostCfgError::Conflict {
                    path: host.clone(),
                    reason: "exists but was absent when the change was rendered".into(),
                })
            }
            (None, None) => planned.push((host.clone(), real, None)),
        }
    }
    let n_write = change.write.len();
    for (i, (host, _, idx)) in planned.iter().enumerate() {
        let mode = idx.map(|n| originals[n].2.permissions().mode() & 0o7777);
        entries.push(match (i < n_write, idx, mode) {
            (true, Some(n), Some(mode)) => Entry::Modified {
                mode,
                n: *n,
                path: host.clone(),
            },
            (false, Some(n), Some(mode)) => Entry::Removed {
                mode,
                n: *n,
                path: host.clone(),
            },
            (true, _, _) => Entry::Created { path: host.clone() },
            (false, _, _) => {
                return Err(HostCfgError::Conflict {
                    path: host.clone(),
                    reason: "to be removed but has no backup".into(),
                })
            }
        });
    }
    // Save the originals and the manifest.
    fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    fsutil::check_inside(root, Path::new(STATE), &dir)?;
    for (n, (bytes, _, _)) in originals.iter().enumerate() {
        write_atomic(&dir.join(format!("{n}.orig")), bytes, 0o600, None)?;
    }
    let mut manifest = format!("{MAGIC}\n");
    for e in &entries {
        manifest.push_str(&match e {
            Entry::Modified { mode, n, path } => format!("modified {mode:o} {n} {}\n", hex(path)),
            Entry::Removed { mode, n, path } => format!("removed {mode:o} {n} {}\n", hex(path)),
            Entry::Created { path } => format!("created {}\n", hex(path)),
        });
    }
    write_atomic(&dir.join("manifest"), manifest.as_bytes(), 0o600, None)?;
    // Now the configuration itself.
    let mut result = Ok(());
    for (i, (host, real, idx)) in planned.iter().enumerate() {
        let r = if i < n_write {
            let (mode, owner) = match idx {
                Some(n) => {
                    let m = &originals[*n].2;
                    (m.permissions().mode() & 0o7777, Some((m.uid(), m.gid())))
                }
                None => (new_mode(host), None),
            };
            write_atomic(real, change.write[i].1.as_bytes(), mode, owner)
        } else {
            fs::remove_file(real)
                .map_err(|e| io(real, e))
                .and_then(|_| sync_dir(real.parent().unwrap_or(Path::new("/"))))
        };
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    if let Err(e) = result {
        // Undo; the error that matters is the first one.
        let _ = revert(root, &change.bridge);
        return Err(e);
    }
    Ok(())
}

fn read_manifest(dir: &Path) -> Result<Vec<Entry>, HostCfgError> {
    let path = dir.join("manifest");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HostCfgError::State {
                dir: dir.to_path_buf(),
                reason: "no host configuration was applied for this bridge".into(),
            })
        }
        Err(e) => return Err(io(&path, e)),
    };
    let bad = |n: usize| HostCfgError::Parse {
        path: path.clone(),
        line: Some(n + 1),
        reason: "unreadable manifest line".into(),
    };
    let mut lines = text.lines().enumerate();
    if lines.next().map(|(_, l)| l) != Some(MAGIC) {
        return Err(bad(0));
    }
    let mut out = Vec::new();
    for (i, l) in lines {
        let w: Vec<&str> = l.split(' ').collect();
        out.push(match w.as_slice() {
            [kind @ ("modified" | "removed"), mode, n, p] => {
                let mode = u32::from_str_radix(mode, 8).map_err(|_| bad(i))?;
                let n = n.parse().map_err(|_| bad(i))?;
                let path = unhex(p).ok_or_else(|| bad(i))?;
                if *kind == "modified" {
                    Entry::Modified { mode, n, path }
                } else {
                    Entry::Removed { mode, n, path }
                }
            }
            ["created", p] => Entry::Created {
                path: unhex(p).ok_or_else(|| bad(i))?,
            },
            _ => return Err(bad(i)),
        });
    }
    Ok(out)
}

/// Undoes what [`apply`] did for `bridge`: every file it replaced or removed gets its original
/// bytes (and mode) back, every file it created is removed, then the backups go.
pub fn revert(root: &Path, bridge: &str) -> Result<(), HostCfgError> {
    let dir = state_dir(root, bridge)?;
    let entries = read_manifest(&dir)?;
    for e in &entries {
        match e {
            Entry::Modified { mode, n, path } | Entry::Removed { mode, n, path } => {
                let orig = dir.join(format!("{n}.orig"));
                let bytes = fs::read(&orig).map_err(|e| io(&orig, e))?;
                let real = target(root, path)?;
                let owner = fs::metadata(&real).ok().map(|m| (m.uid(), m.gid()));
                write_atomic(&real, &bytes, *mode, owner)?;
            }
            Entry::Created { path } => {
                let real = fsutil::real(root, path)?;
                if fs::symlink_metadata(&real).is_ok() {
                    let real = target(root, path)?;
                    fs::remove_file(&real).map_err(|e| io(&real, e))?;
                    sync_dir(real.parent().unwrap_or(Path::new("/")))?;
                }
            }
        }
    }
    fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    Ok(())
}
