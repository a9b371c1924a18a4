//! Reading and writing kernel parameters under `/proc/sys`.
//!
//! Keys are paths relative to `/proc/sys` with `/` separators, e.g.
//! `net/ipv4/ip_forward` or `net/ipv6/conf/virbr0/disable_ipv6`. Everything
//! under `/proc/sys/net` belongs to the network namespace of the thread that
//! opens the file, so these functions act in the calling thread's namespace.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{HostError, Result};

fn path(op: &'static str, key: &str) -> Result<PathBuf> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\0')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(HostError::invalid(
            op,
            key,
            "sysctl keys are relative paths under /proc/sys without '..', '.' or empty parts",
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

/// Reads a sysctl; the value is returned without its trailing newline.
pub fn read(key: &str) -> Result<String> {
    const OP: &str = "read sysctl";
    let p = path(OP, key)?;
    let s = fs::read_to_string(&p).map_err(|e| HostError::new(OP, key, e))?;
    Ok(s.trim_end_matches('\n').to_string())
}

/// Writes a sysctl if its current value differs from `value` (compared with
/// surrounding whitespace ignored, so `"1"` matches `"1\n"`); returns whether
/// it wrote.
pub fn write(key: &str, value: &str) -> Result<bool> {
    const OP: &str = "write sysctl";
    let p = path(OP, key)?;
    let cur = fs::read_to_string(&p).map_err(|e| HostError::new(OP, key, e))?;
    if cur.trim() == value.trim() {
        return Ok(false);
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(|e| HostError::new(OP, key, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| HostError::new(OP, key, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_refused() {
        for k in [
            "",
            "/net/ipv4/ip_forward",
            "net/../kernel/x",
            "net//x",
            "net/./x",
            "a\0b",
        ] {
            let e = read(k).unwrap_err();
            assert_eq!(e.errno(), Some(libc::EINVAL), "{k:?}");
            let e = write(k, "1").unwrap_err();
            assert_eq!(e.errno(), Some(libc::EINVAL), "{k:?}");
        }
    }
}
