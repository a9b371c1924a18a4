//! Waiting for a descriptor to become readable, for the watchers that wake on kernel
//! announcements (`nft_watch`, `LinkWatch`) and otherwise on a timeout.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Whether `fd` became readable within `timeout`: `false` on the timeout and on a signal
/// (the caller simply waits again).
pub(crate) fn readable_within(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(ready > 0)
}
