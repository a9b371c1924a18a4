//! Descriptor passing (what the bridge helper hands QEMU), and the tun primitives it uses.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

// The tun ioctls live with the rest of the host layer, where virtnetd makes its taps too.
pub use virtnet_host::tap::{
    attach, attached, features, open_tun, set_persist, IFF_NO_PI, IFF_PERSIST, IFF_TAP,
    IFF_VNET_HDR,
};

fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
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

/// Runs `f` with a message header for one data byte and room for one `SCM_RIGHTS`
/// descriptor: the layout QEMU's helper protocol uses both ways.
fn with_fd_msghdr<R>(f: impl FnOnce(&mut libc::msghdr) -> R) -> R {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the pointers set below stay valid while `f` runs.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    f(&mut msg)
}

/// Retries `call` while it fails with `EINTR`; its result, or the error it set.
fn retrying_eintr(mut call: impl FnMut() -> isize) -> io::Result<isize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends `fd` over the unix socket `sock` as QEMU's helper protocol wants it: one data byte
/// (0) carrying one `SCM_RIGHTS` descriptor.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    with_fd_msghdr(|msg| {
        // SAFETY: the control buffer holds CMSG_SPACE(sizeof fd) bytes, so the first header
        // and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            if cmsg.is_null() {
                return Err(io::Error::other("no room for the control message"));
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        // SAFETY: msg points at live buffers.
        retrying_eintr(|| unsafe { libc::sendmsg(sock, msg, libc::MSG_NOSIGNAL) })
            .map(|_| ())
            .map_err(|e| {
                io::Error::new(e.kind(), format!("failed to write fd to unix socket: {e}"))
            })
    })
}

/// Receives one descriptor sent by [`send_fd`] (what QEMU does; for tests). `Ok(None)` when
/// the peer closed the socket without sending one.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    with_fd_msghdr(|msg| {
        // SAFETY: msg points at live buffers.
        let n = retrying_eintr(|| unsafe { libc::recvmsg(sock, msg, libc::MSG_CMSG_CLOEXEC) })?;
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: the kernel filled msg; CMSG_FIRSTHDR/CMSG_DATA stay within the control
        // buffer.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            if cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Ok(None);
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            Ok(Some(OwnedFd::from_raw_fd(fd)))
        }
    })
}
