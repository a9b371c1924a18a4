//! Tap devices through `/dev/net/tun` (rtnetlink cannot create them): the ioctl primitives,
//! shared with QEMU's bridge helper (`virtnet-qemu`), and [`create_tap`] for guest ports.
//!
//! A port's tap is made persistent (`TUNSETPERSIST`) and owned by the user QEMU runs as
//! (`TUNSETOWNER`/`TUNSETGROUP`), so that it outlives the daemon's file descriptor and an
//! unprivileged QEMU can attach to it by name (`-netdev tap,ifname=vnet0`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::error::{HostError, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;
const TUNGETFEATURES: libc::c_ulong = 0x8004_54cf;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;

/// A tap (not a tun).
pub const IFF_TAP: i16 = 0x0002;
/// No packet information header.
pub const IFF_NO_PI: i16 = 0x1000;
/// virtio-net header on every packet.
pub const IFF_VNET_HDR: i16 = 0x4000;
/// One queue per descriptor (QEMU opens one per vCPU).
pub const IFF_MULTI_QUEUE: i16 = 0x0100;
/// Made persistent (reported by `TUNGETIFF`).
pub const IFF_PERSIST: i16 = 0x0800;
/// Create only: `TUNSETIFF` fails with `EBUSY` when a device of that name exists, instead of
/// attaching to it (the kernel's check and creation are one step, under its lock).
pub const IFF_TUN_EXCL: i16 = 0x8000_u16 as i16;

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

fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// An ioctl of the tun driver with an integer argument.
fn ioctl_int(fd: RawFd, request: libc::c_ulong, arg: libc::c_ulong, what: &str) -> io::Result<()> {
    // SAFETY: the tun ioctls used with this take an integer argument.
    if unsafe { libc::ioctl(fd, request, arg) } < 0 {
        return Err(os_err(what));
    }
    Ok(())
}

/// Opens `/dev/net/tun` (close-on-exec).
pub fn open_tun() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("failed to open /dev/net/tun: {e}")))
}

/// The `IFF_*` features the kernel's tun driver supports.
pub fn features(tun: &File) -> io::Result<u32> {
    let mut features: libc::c_uint = 0;
    // SAFETY: TUNGETFEATURES writes one unsigned int into the live variable.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNGETFEATURES, &mut features) } < 0 {
        return Err(os_err("TUNGETFEATURES"));
    }
    Ok(features)
}

/// Attaches `tun` to the tap `name` with `flags` (`IFF_TAP | IFF_NO_PI`, maybe
/// `IFF_VNET_HDR`, `IFF_MULTI_QUEUE`), creating it when the caller may administer the
/// network; an existing tap may also be attached to by its owner.
pub fn attach(tun: &File, name: &str, flags: i16) -> io::Result<()> {
    set_iff(tun, name, flags).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("failed to open tap `{name}' (TUNSETIFF): {e}"),
        )
    })
}

/// `TUNSETIFF` of [`attach`]; its error is the kernel's errno as is.
fn set_iff(tun: &File, name: &str, flags: i16) -> io::Result<()> {
    check_name(name)?;
    let bytes = name.as_bytes();
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads (and writes back) the live IfReq, laid out as struct ifreq.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// virtnet's one interface-name rule ([`virtnet_ifname::check`]) as an I/O error: the name
/// goes into a `struct ifreq` and a sysfs path.
fn check_name(name: &str) -> io::Result<()> {
    virtnet_ifname::check(name).map_err(|reason| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}' is not an interface name: {reason}"),
        )
    })
}

/// The name and flags of the tap `fd` is attached to.
pub fn attached(fd: RawFd) -> io::Result<(String, i16)> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    // SAFETY: TUNGETIFF writes into the live IfReq.
    if unsafe { libc::ioctl(fd, TUNGETIFF, &mut req) } < 0 {
        return Err(os_err("TUNGETIFF"));
    }
    let end = req
        .name
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(req.name.len());
    Ok((
        String::from_utf8_lossy(&req.name[..end]).into_owned(),
        req.flags,
    ))
}

/// The `IFF_*` flags of the tun/tap device `name` (`/sys/class/net/NAME/tun_flags`, which
/// includes [`IFF_PERSIST`]), read without attaching to it; `None` when there is no tun/tap
/// device of that name. sysfs shows the network namespace it was mounted in: the calling
/// process's, for a daemon.
pub fn tun_flags(name: &str) -> io::Result<Option<u32>> {
    check_name(name)?;
    let path = format!("/sys/class/net/{name}/tun_flags");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
    };
    let hex = text.trim().trim_start_matches("0x");
    u32::from_str_radix(hex, 16).map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: `{}' is not a hexadecimal number", text.trim()),
        )
    })
}

/// Sets whether the tap outlives its last descriptor.
pub fn set_persist(tun: &File, persist: bool) -> io::Result<()> {
    ioctl_int(
        tun.as_raw_fd(),
        TUNSETPERSIST,
        libc::c_ulong::from(persist),
        "TUNSETPERSIST",
    )
}

/// Turns IPv6 off on a new tap, before it is ever up. A port needs no address of its own
/// (its bridge carries the guest's traffic); without this, a tap that is ever up on no bridge
/// gets a link-local address and the host routes IPv6 the guest writes into it. A kernel
/// without IPv6 has nothing to turn off.
fn disable_ipv6(name: &str) -> Result<()> {
    match crate::sysctl::write(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1") {
        Ok(_) => Ok(()),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a persistent tap named `spec.name` in the calling thread's network namespace. It
/// is down and on no bridge; configure it with [`crate::Netlink::set_port`]. Fails with
/// `EBUSY` when a device of that name exists ([`IFF_TUN_EXCL`]: no look-up beforehand, no
/// race with whoever makes one meanwhile).
pub fn create_tap(spec: &TapSpec) -> Result<()> {
    const OP: &str = "create tap";
    if let Err(reason) = virtnet_ifname::check(&spec.name) {
        return Err(HostError::invalid(OP, &spec.name, reason.to_string()));
    }
    let fail = |op: &'static str| move |e: io::Error| HostError::new(op, spec.name.clone(), e);
    let tun = open_tun().map_err(fail("open /dev/net/tun"))?;
    let mut flags = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL;
    if spec.vnet_hdr {
        flags |= IFF_VNET_HDR;
    }
    if spec.multi_queue {
        flags |= IFF_MULTI_QUEUE;
    }
    set_iff(&tun, &spec.name, flags).map_err(fail(OP))?;
    // From here on a failure leaves nothing behind: without TUNSETPERSIST the tap
    // disappears when `tun` is closed.
    disable_ipv6(&spec.name)?;
    let fd = tun.as_raw_fd();
    if let Some(uid) = spec.owner {
        ioctl_int(fd, TUNSETOWNER, libc::c_ulong::from(uid), "TUNSETOWNER")
            .map_err(fail("set tap owner"))?;
    }
    if let Some(gid) = spec.group {
        ioctl_int(fd, TUNSETGROUP, libc::c_ulong::from(gid), "TUNSETGROUP")
            .map_err(fail("set tap group"))?;
    }
    set_persist(&tun, true).map_err(fail("make tap persistent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: the tap paths checked only the length (`attach`, `create_tap`) or `/` and a
    /// leading dot (`tun_flags`); they now refuse what the shared rule refuses, before any
    /// ioctl or sysfs read.
    #[test]
    fn tap_names_follow_the_shared_rule() {
        for bad in [
            "br*",
            "br\"0",
            "br:0",
            "a b",
            "..",
            "",
            "a-name-longer-than-15",
        ] {
            let e = check_name(bad).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(tun_flags(bad).is_err(), "{bad:?}");
            let spec = TapSpec {
                name: bad.into(),
                owner: None,
                group: None,
                multi_queue: false,
                vnet_hdr: false,
            };
            let e = create_tap(&spec).expect_err(bad);
            assert_eq!(e.errno(), Some(libc::EINVAL), "{bad:?}");
        }
        assert!(check_name("vnet0").is_ok());
        assert!(check_name("vnet%d").is_ok());
    }
}
