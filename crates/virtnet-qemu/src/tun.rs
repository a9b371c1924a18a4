//! `/dev/net/tun` and descriptor passing: what the bridge helper hands QEMU.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `TUNSETIFF`: attach the descriptor to a tap by name (creating it when allowed).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `TUNSETPERSIST`: whether the tap outlives its last descriptor.
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
/// `TUNGETFEATURES`: the `IFF_*` flags the kernel supports.
const TUNGETFEATURES: libc::c_ulong = 0x8004_54cf;
/// `TUNGETIFF`: the name and flags of the attached tap.
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;

/// A tap (not a tun).
pub const IFF_TAP: i16 = 0x0002;
/// No packet information header.
pub const IFF_NO_PI: i16 = 0x1000;
/// virtio-net header on every packet.
pub const IFF_VNET_HDR: i16 = 0x4000;
/// Made persistent (reported by `TUNGETIFF`).
pub const IFF_PERSIST: i16 = 0x0800;

/// `struct ifreq` as the tun ioctls use it: the name, then the flags in the union.
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
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNGETFEATURES, &mut features) };
    if rc < 0 {
        return Err(os_err("TUNGETFEATURES"));
    }
    Ok(features)
}

/// Attaches `tun` to the existing tap `name` with `flags` (`IFF_TAP | IFF_NO_PI`, maybe
/// `IFF_VNET_HDR`). The kernel allows it when the caller may administer the network or owns
/// the tap (its user and group).
pub fn attach(tun: &File, name: &str, flags: i16) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}' is not an interface name"),
        ));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads (and writes back) the live IfReq, laid out as struct ifreq.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(os_err(&format!("failed to open tap `{name}' (TUNSETIFF)")));
    }
    Ok(())
}

/// The name and flags of the tap `fd` is attached to.
pub fn attached(fd: RawFd) -> io::Result<(String, i16)> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    // SAFETY: TUNGETIFF writes into the live IfReq.
    let rc = unsafe { libc::ioctl(fd, TUNGETIFF, &mut req) };
    if rc < 0 {
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

/// Sets whether the tap outlives its last descriptor.
pub fn set_persist(tun: &File, persist: bool) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes an integer argument.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETPERSIST, libc::c_ulong::from(persist)) };
    if rc < 0 {
        return Err(os_err("TUNSETPERSIST"));
    }
    Ok(())
}

/// Checks that `fd` is an open socket (what QEMU's `--fd=` names).
pub fn check_socket(fd: RawFd) -> io::Result<()> {
    // SAFETY: fstat writes into the zeroed, live stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(os_err(&format!("--fd={fd}")));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--fd={fd} is not a socket"),
        ));
    }
    Ok(())
}

/// Sends `fd` over the unix socket `sock` as QEMU's helper protocol wants it: one data byte
/// (0) carrying one `SCM_RIGHTS` descriptor.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the pointers set below stay valid during sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds CMSG_SPACE(sizeof fd) bytes, so the first header and
    // its data fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the control message"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::new(
                e.kind(),
                format!("failed to write fd to unix socket: {e}"),
            ));
        }
    }
}

/// Receives one descriptor sent by [`send_fd`] (what QEMU does; for tests). `Ok(None)` when
/// the peer closed the socket without sending one.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: plain data; the pointers stay valid during recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled msg; CMSG_FIRSTHDR/CMSG_DATA stay within the control buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}
