//! Tap devices for guest NICs, made through `/dev/net/tun` (rtnetlink cannot create them).
//!
//! A port's tap is made persistent (`TUNSETPERSIST`) and owned by the user QEMU runs as
//! (`TUNSETOWNER`/`TUNSETGROUP`), so that it outlives the daemon's file descriptor and an
//! unprivileged QEMU can attach to it by name (`-netdev tap,ifname=vnet0`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

use crate::error::{HostError, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// What a tap is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSpec {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Owning user (`TUNSETOWNER`); `None` leaves it to root.
    pub owner: Option<u32>,
    /// Owning group (`TUNSETGROUP`).
    pub group: Option<u32>,
    /// Created with `IFF_MULTI_QUEUE` (QEMU then opens one queue per vCPU).
    pub multi_queue: bool,
    /// Created with `IFF_VNET_HDR` (virtio-net offloads).
    pub vnet_hdr: bool,
}

/// `struct ifreq` as the tun ioctls read it: the name, then the flags in the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ioctl(
    fd: i32,
    request: libc::c_ulong,
    arg: libc::c_ulong,
    what: &'static str,
    name: &str,
) -> Result<()> {
    // SAFETY: the tun ioctls used here take an integer argument or a pointer to a live IfReq.
    let rc = unsafe { libc::ioctl(fd, request, arg) };
    if rc < 0 {
        return Err(HostError::new(what, name, io::Error::last_os_error()));
    }
    Ok(())
}

/// Creates a persistent tap named `spec.name` in the calling thread's network namespace. It
/// is down and on no bridge; configure it with [`crate::Netlink::set_port`]. Fails with
/// `EBUSY`/`EEXIST` style errors when a device of that name exists.
pub fn create_tap(spec: &TapSpec) -> Result<()> {
    const OP: &str = "create tap";
    let name = spec.name.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(HostError::invalid(
            OP,
            &spec.name,
            "a tap name has 1 to 15 bytes",
        ));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| HostError::new("open /dev/net/tun", &spec.name, e))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name);
    if spec.vnet_hdr {
        req.flags |= IFF_VNET_HDR;
    }
    if spec.multi_queue {
        req.flags |= IFF_MULTI_QUEUE;
    }
    let fd = tun.as_raw_fd();
    ioctl(
        fd,
        TUNSETIFF,
        &mut req as *mut IfReq as libc::c_ulong,
        OP,
        &spec.name,
    )?;
    // From here on a failure must not leave a half-made device: without TUNSETPERSIST the
    // tap disappears when `tun` is closed.
    if let Some(uid) = spec.owner {
        ioctl(
            fd,
            TUNSETOWNER,
            libc::c_ulong::from(uid),
            "set tap owner",
            &spec.name,
        )?;
    }
    if let Some(gid) = spec.group {
        ioctl(
            fd,
            TUNSETGROUP,
            libc::c_ulong::from(gid),
            "set tap group",
            &spec.name,
        )?;
    }
    ioctl(fd, TUNSETPERSIST, 1, "make tap persistent", &spec.name)
}
