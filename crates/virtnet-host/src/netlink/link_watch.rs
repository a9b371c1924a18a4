//! Links as the kernel announces them (`RTNLGRP_LINK`): which interface appeared, changed
//! (a new master, a new MAC) or went away, the moment it happens. virtnetd learns this way
//! when the hypervisor daemon plugs a guest's tap into a network's bridge, to guard it.

use std::io;
use std::time::Duration;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::monitor::for_each_message;
use super::Link;
use crate::error::{HostError, Result};

/// `RTNLGRP_LINK` (linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;

/// One announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link appeared or changed; as it is now.
    Changed(Link),
    /// A link went away.
    Removed {
        /// Its index.
        index: u32,
        /// Its last name.
        name: String,
    },
}

/// What [`LinkWatch::wait`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvents {
    /// The announcements, in order (none when the wait timed out).
    Events(Vec<LinkEvent>),
    /// Announcements were lost (the socket's buffer overflowed): look at every link again.
    Lost,
}

/// A subscription to link announcements in the calling thread's network namespace.
pub struct LinkWatch {
    sock: Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatch").finish_non_exhaustive()
    }
}

impl LinkWatch {
    /// Subscribes. Open it before looking at the links, so that no change in between is lost.
    pub fn open() -> Result<LinkWatch> {
        let err = |e| HostError::new("open link monitor", "NETLINK_ROUTE", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(err)?;
        sock.add_membership(RTNLGRP_LINK).map_err(err)?;
        Ok(LinkWatch {
            sock,
            // One datagram per read: link announcements come a few KiB at a time.
            rx: vec![0; 64 * 1024],
        })
    }

    /// Waits up to `timeout` for announcements, then reads every one queued.
    pub fn wait(&mut self, timeout: Duration) -> Result<LinkEvents> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.sock);
        if !crate::poll::readable_within(fd, timeout)
            .map_err(|e| HostError::new("wait for link changes", "", e))?
        {
            return Ok(LinkEvents::Events(Vec::new()));
        }
        let mut events = Vec::new();
        loop {
            let n = match self.sock.recv(&mut &mut self.rx[..], libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(LinkEvents::Lost),
                Err(e) => return Err(HostError::new("read link monitor", "", e)),
            };
            if !for_each_message(&self.rx[..n], |m| events.extend(event_of(m))) {
                return Ok(LinkEvents::Lost);
            }
        }
        Ok(LinkEvents::Events(events))
    }
}

fn event_of(m: RouteNetlinkMessage) -> Option<LinkEvent> {
    // A bridge also announces its ports' bridge-port state (family `AF_BRIDGE`): those
    // messages lack the link's kind and are not the link's own announcement.
    if let RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) = &m {
        if u8::from(l.header.interface_family) == libc::AF_BRIDGE as u8 {
            return None;
        }
    }
    match m {
        RouteNetlinkMessage::NewLink(l) => Link::from_message(l).map(LinkEvent::Changed),
        RouteNetlinkMessage::DelLink(l) => Link::from_message(l).map(|l| LinkEvent::Removed {
            index: l.index,
            name: l.name,
        }),
        _ => None,
    }
}
