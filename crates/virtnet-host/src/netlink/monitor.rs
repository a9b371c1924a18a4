//! Route and address changes as the kernel announces them (rtnetlink multicast groups).
//!
//! A caller that needs the host's routes and addresses for every operation can dump them once
//! and then follow these notifications, instead of dumping again each time: the cost of an
//! operation then no longer grows with the number of routes (one per network virtnet runs).

use std::io;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::addr::address_from;
use super::route::route_from;
use super::{Address, Route};
use crate::error::{HostError, Result};

const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// One announced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A main-table unicast route appeared.
    RouteAdded(Route),
    /// A main-table unicast route went away.
    RouteRemoved(Route),
    /// An address appeared.
    AddressAdded(Address),
    /// An address went away.
    AddressRemoved(Address),
}

/// What [`Monitor::drain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// Every change since the last drain, in order.
    Changes(Vec<Change>),
    /// The kernel dropped notifications (the socket's buffer overflowed): dump again.
    Lost,
}

/// A socket subscribed to route and address changes, read without blocking.
pub struct Monitor {
    sock: Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Subscribes, in the calling thread's network namespace. Open it before dumping, so that
    /// no change between the dump and the first drain is missed.
    pub fn open() -> Result<Monitor> {
        let err = |e| HostError::new("open netlink monitor", "NETLINK_ROUTE", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(err)?;
        for group in [
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
        ] {
            sock.add_membership(group).map_err(err)?;
        }
        sock.set_non_blocking(true).map_err(err)?;
        Ok(Monitor {
            sock,
            rx: vec![0; 256 * 1024],
        })
    }

    /// Reads every pending notification without waiting.
    pub fn drain(&mut self) -> Result<Drained> {
        let mut changes = Vec::new();
        loop {
            let n = match self.sock.recv(&mut &mut self.rx[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(Drained::Lost),
                Err(e) => return Err(HostError::new("read netlink monitor", "", e)),
            };
            if !for_each_message(&self.rx[..n], |m| changes.extend(change_of(m))) {
                // A truncated datagram: the view can no longer be trusted.
                return Ok(Drained::Lost);
            }
        }
        Ok(Drained::Changes(changes))
    }
}

/// Hands every rtnetlink message of one datagram to `f`; `false` when the datagram is
/// truncated (a message runs past its end).
pub(super) fn for_each_message(datagram: &[u8], mut f: impl FnMut(RouteNetlinkMessage)) -> bool {
    let mut off = 0;
    while off + 16 <= datagram.len() {
        let b = &datagram[off..];
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            return false;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len]) {
            if let NetlinkPayload::InnerMessage(m) = msg.payload {
                f(m);
            }
        }
        off += (len + 3) & !3;
    }
    true
}

fn change_of(m: RouteNetlinkMessage) -> Option<Change> {
    match m {
        RouteNetlinkMessage::NewRoute(r) => route_from(r).map(Change::RouteAdded),
        RouteNetlinkMessage::DelRoute(r) => route_from(r).map(Change::RouteRemoved),
        RouteNetlinkMessage::NewAddress(a) => address_from(a).map(Change::AddressAdded),
        RouteNetlinkMessage::DelAddress(a) => address_from(a).map(Change::AddressRemoved),
        _ => None,
    }
}
