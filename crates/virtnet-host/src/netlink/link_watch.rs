//! Links as the kernel announces them (`RTNLGRP_LINK`): which interface appeared, changed
//! (a new master, a new MAC) or went away, the moment it happens. virtnetd learns this way
//! when the hypervisor daemon plugs a guest's tap into a network's bridge, to guard it.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
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
    /// The socket (read here) and its subscription (switched from anywhere).
    switch: LinkWatchSwitch,
    rx: Vec<u8>,
}

/// Turns a [`LinkWatch`]'s subscription off and on again, from any thread.
///
/// Every link change on the host wakes a subscribed watcher, which reads and parses each
/// announcement (a few KiB). A watcher with nothing to look for can switch itself off
/// instead; whoever gives it something to look for switches it on again before that thing
/// can change. The announcements in between are not delivered, so the caller must know that
/// none of them mattered (or look at the links again after switching on).
#[derive(Clone)]
pub struct LinkWatchSwitch {
    sock: Arc<Socket>,
    /// Whether the socket is in `RTNLGRP_LINK`; the lock makes a check and a switch one step.
    on: Arc<Mutex<bool>>,
}

impl std::fmt::Debug for LinkWatchSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatchSwitch").finish_non_exhaustive()
    }
}

impl LinkWatchSwitch {
    /// Subscribes again, if off. `Ok(true)` when this call switched it on.
    pub fn switch_on(&self) -> Result<bool> {
        let mut on = self.on.lock().unwrap_or_else(PoisonError::into_inner);
        if *on {
            return Ok(false);
        }
        self.sock
            .add_membership(RTNLGRP_LINK)
            .map_err(|e| HostError::new("switch link monitor on", "NETLINK_ROUTE", e))?;
        *on = true;
        Ok(true)
    }

    /// Unsubscribes when on and `idle()` says nothing is to be watched; `idle` runs under the
    /// switch's lock, so a [`LinkWatchSwitch::switch_on`] after the caller's state changed
    /// cannot be undone by a check that saw the state before. `Ok(true)` when this call
    /// switched it off.
    pub fn switch_off_if(&self, idle: impl FnOnce() -> bool) -> Result<bool> {
        let mut on = self.on.lock().unwrap_or_else(PoisonError::into_inner);
        if !*on || !idle() {
            return Ok(false);
        }
        self.sock
            .drop_membership(RTNLGRP_LINK)
            .map_err(|e| HostError::new("switch link monitor off", "NETLINK_ROUTE", e))?;
        *on = false;
        Ok(true)
    }
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
            switch: LinkWatchSwitch {
                sock: Arc::new(sock),
                on: Arc::new(Mutex::new(true)),
            },
            // One datagram per read: link announcements come a few KiB at a time.
            rx: vec![0; 64 * 1024],
        })
    }

    /// The switch of this subscription (on when opened).
    pub fn switch(&self) -> LinkWatchSwitch {
        self.switch.clone()
    }

    /// Waits up to `timeout` for announcements, then reads every one queued.
    pub fn wait(&mut self, timeout: Duration) -> Result<LinkEvents> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*self.switch.sock);
        if !crate::poll::readable_within(fd, timeout)
            .map_err(|e| HostError::new("wait for link changes", "", e))?
        {
            return Ok(LinkEvents::Events(Vec::new()));
        }
        let mut events = Vec::new();
        loop {
            let n = match self
                .switch
                .sock
                .recv(&mut &mut self.rx[..], libc::MSG_DONTWAIT)
            {
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
