//! Changes of the nftables ruleset as the kernel announces them (the `NFNLGRP_NFTABLES`
//! multicast group of `NETLINK_NETFILTER`), so that a table deleted by someone else — an
//! `nft flush ruleset`, a firewall service's reload — is noticed at once instead of at the
//! next change virtnet makes. Only *that* something changed is reported; what to check and
//! what to repair is the caller's policy.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;

/// A subscription to nftables ruleset changes in the calling thread's network namespace.
pub struct NftWatch {
    sock: Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for NftWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftWatch").finish_non_exhaustive()
    }
}

impl NftWatch {
    /// Subscribes (in the calling thread's network namespace: a socket stays in the
    /// namespace it was opened in).
    pub fn open() -> Result<NftWatch> {
        let err = |e| HostError::new("open nftables monitor", "NETLINK_NETFILTER", e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(err)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(err)?;
        sock.add_membership(NFNLGRP_NFTABLES).map_err(err)?;
        Ok(NftWatch {
            sock,
            rx: vec![0; 64 * 1024],
        })
    }

    /// Waits up to `timeout` for a ruleset change; then reads whatever else is already queued
    /// (a transaction announces each object it touched). True when anything changed — or
    /// when notifications were lost (`ENOBUFS`): the ruleset must be looked at either way.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
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
            return Err(HostError::new("wait for nftables changes", "", e));
        }
        if ready == 0 {
            return Ok(false);
        }
        self.drain()
    }

    /// Reads every queued notification without waiting; true when there was any.
    fn drain(&mut self) -> Result<bool> {
        let mut any = false;
        loop {
            match self.sock.recv(&mut &mut self.rx[..], libc::MSG_DONTWAIT) {
                Ok(0) => return Ok(any),
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                Err(e) => return Err(HostError::new("read nftables monitor", "", e)),
            }
        }
    }
}
