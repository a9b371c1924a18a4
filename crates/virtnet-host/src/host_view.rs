//! The host's routes and addresses, dumped once and then kept current from the kernel's
//! notifications (a [`Monitor`]).
//!
//! A caller that checks every change against the host's routes and addresses (virtnetd's
//! collision check when a network starts) would otherwise dump them each time: with one route
//! and one address per network, each dump grows with every network. The view costs one dump at
//! the start, after lost notifications, and when the caller asks for a fresh one.

use std::collections::HashSet;

use crate::error::Result;
use crate::netlink::{Address, Change, Drained, Monitor, Netlink, Route};

/// The host's main-table routes and its addresses, followed from the kernel's announcements.
pub struct HostView {
    monitor: Monitor,
    routes: HashSet<Route>,
    addresses: HashSet<Address>,
    /// False until the first dump, and again after notifications were lost.
    synced: bool,
}

impl std::fmt::Debug for HostView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostView")
            .field("routes", &self.routes.len())
            .field("addresses", &self.addresses.len())
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

impl HostView {
    /// Subscribes to route and address changes in the calling thread's network namespace. The
    /// view is empty until the first [`HostView::refresh`], which dumps.
    pub fn open() -> Result<HostView> {
        Ok(HostView {
            monitor: Monitor::open()?,
            routes: HashSet::new(),
            addresses: HashSet::new(),
            synced: false,
        })
    }

    /// Applies the changes announced since the last call (or dumps, the first time, after lost
    /// notifications and after [`HostView::invalidate`]).
    pub fn refresh(&mut self, netlink: &mut Netlink) -> Result<()> {
        if !self.synced {
            return self.resync(netlink);
        }
        match self.monitor.drain()? {
            Drained::Changes(changes) => {
                for change in changes {
                    match change {
                        Change::RouteAdded(r) => self.routes.insert(r),
                        Change::RouteRemoved(r) => self.routes.remove(&r),
                        Change::AddressAdded(a) => self.addresses.insert(a),
                        Change::AddressRemoved(a) => self.addresses.remove(&a),
                    };
                }
                Ok(())
            }
            Drained::Lost => self.resync(netlink),
        }
    }

    /// Forgets the view and dumps routes and addresses again. What was announced before the
    /// dump is dropped first: the dump already holds it.
    pub fn resync(&mut self, netlink: &mut Netlink) -> Result<()> {
        self.synced = false;
        let _ = self.monitor.drain()?;
        self.routes = netlink.routes()?.into_iter().collect();
        self.addresses = netlink.addresses()?.into_iter().collect();
        self.synced = true;
        Ok(())
    }

    /// Makes the next [`HostView::refresh`] dump again (after a refresh failed half-way, say).
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// Forgets the routes and addresses of links being deleted: the kernel flushes a deleted
    /// link's IPv4 routes without announcing it.
    pub fn forget_links(&mut self, indexes: &[u32]) {
        self.routes
            .retain(|r| !r.oif.is_some_and(|i| indexes.contains(&i)));
        self.addresses.retain(|a| !indexes.contains(&a.ifindex));
    }

    /// The main-table unicast routes, as of the last refresh.
    pub fn routes(&self) -> &HashSet<Route> {
        &self.routes
    }

    /// The addresses of every link, as of the last refresh.
    pub fn addresses(&self) -> &HashSet<Address> {
        &self.addresses
    }
}
