//! What a guest port needs to know about a link — its index, MTU, and whether it is a bridge
//! or a tap — read without the kernel's RTNL lock.
//!
//! An rtnetlink `RTM_GETLINK` waits for RTNL like any change does, and RTNL is held for tens
//! of milliseconds by every bridge deletion (a `net-destroy`): a guest port's attach that
//! looked its links up over rtnetlink waited once per lookup while other networks were
//! destroyed. The interface ioctls `SIOCGIFINDEX`/`SIOCGIFMTU` and the net device's sysfs
//! `uevent` are served under RCU instead.
//!
//! sysfs shows the network namespace it was mounted in, which is not always the caller's (a
//! daemon started with `unshare --net` and no fresh `/sys`): the index sysfs gives must match
//! the one the ioctl (always the caller's namespace) gives, or [`brief`] says it cannot tell
//! ([`Brief::Unknown`]) and the caller asks rtnetlink.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A link as a guest port sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkBrief {
    /// Interface index.
    pub index: u32,
    /// MTU.
    pub mtu: u32,
    /// A Linux bridge.
    pub is_bridge: bool,
    /// A tun/tap device.
    pub is_tun: bool,
}

/// The answer of [`brief`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brief {
    /// The link, as read.
    Link(LinkBrief),
    /// No link of that name in the caller's namespace.
    Missing,
    /// sysfs does not show the caller's namespace, or the link changed between two reads
    /// (renamed, recreated): ask rtnetlink.
    Unknown,
}

/// Reads link `name` without RTNL (see the module doc).
pub fn brief(name: &str) -> io::Result<Brief> {
    virtnet_ifname::check(name)
        .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason.to_string()))?;
    let sock = ioctl_socket()?;
    let Some(index) = if_ioctl(&sock, name, libc::SIOCGIFINDEX)? else {
        return Ok(Brief::Missing);
    };
    let Some(mtu) = if_ioctl(&sock, name, libc::SIOCGIFMTU)? else {
        return Ok(Brief::Missing);
    };
    let uevent = match std::fs::read_to_string(format!("/sys/class/net/{name}/uevent")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Brief::Unknown),
        Err(e) => return Err(e),
    };
    let mut sysfs_index = None;
    let mut is_bridge = false;
    for line in uevent.lines() {
        match line.split_once('=') {
            Some(("IFINDEX", v)) => sysfs_index = v.trim().parse::<i32>().ok(),
            Some(("DEVTYPE", v)) => is_bridge = v.trim() == "bridge",
            _ => {}
        }
    }
    if sysfs_index != Some(index) {
        return Ok(Brief::Unknown);
    }
    let is_tun = std::path::Path::new(&format!("/sys/class/net/{name}/tun_flags")).exists();
    // Read last, the index again: the same device answered all three reads.
    if if_ioctl(&sock, name, libc::SIOCGIFINDEX)? != Some(index) {
        return Ok(Brief::Unknown);
    }
    Ok(Brief::Link(LinkBrief {
        index: index.unsigned_abs(),
        mtu: mtu.unsigned_abs(),
        is_bridge,
        is_tun,
    }))
}

/// The index of link `name` in the caller's namespace, `None` when there is none (one ioctl,
/// no RTNL).
pub fn index_of(name: &str) -> io::Result<Option<u32>> {
    virtnet_ifname::check(name)
        .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason.to_string()))?;
    let sock = ioctl_socket()?;
    Ok(if_ioctl(&sock, name, libc::SIOCGIFINDEX)?.map(i32::unsigned_abs))
}

/// A datagram socket to ask interface ioctls on, in the caller's network namespace.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct ifreq` with the int member of its union (`ifr_ifindex`, `ifr_mtu`).
#[repr(C)]
struct IfReqInt {
    name: [u8; libc::IFNAMSIZ],
    value: i32,
    _pad: [u8; 20],
}

/// One `SIOCGIF*` ioctl answering an int; `None` when there is no such device (`ENODEV`).
fn if_ioctl(sock: &OwnedFd, name: &str, request: libc::c_ulong) -> io::Result<Option<i32>> {
    let mut req = IfReqInt {
        name: [0; libc::IFNAMSIZ],
        value: 0,
        _pad: [0; 20],
    };
    // `check` bounds the name below IFNAMSIZ, so the terminating NUL fits.
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the request reads the name from and writes an int into the live IfReqInt,
    // which is as large as the kernel's struct ifreq (40 bytes).
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(req.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_as_large_as_the_kernels_ifreq() {
        assert_eq!(std::mem::size_of::<IfReqInt>(), 40);
    }

    #[test]
    fn loopback_is_read_and_a_missing_link_is_missing() -> io::Result<()> {
        // Every namespace has `lo` at index 1; a test process may run in one whose sysfs is
        // another's, in which case `Unknown` is the honest answer.
        match brief("lo")? {
            Brief::Link(l) => {
                assert_eq!(l.index, 1);
                assert!(!l.is_bridge && !l.is_tun);
                assert!(l.mtu > 0);
            }
            Brief::Unknown => {}
            Brief::Missing => panic!("no lo"),
        }
        assert_eq!(index_of("lo")?, Some(1));
        assert_eq!(brief("vnnosuch0")?, Brief::Missing);
        assert_eq!(index_of("vnnosuch0")?, None);
        assert!(brief("bad/name").is_err());
        Ok(())
    }
}
