//! Collisions with the host, checked against the followed view of its routes and addresses
//! ([`virtnet_host::HostView`]): a bridge name taken by a link that is not virtnet's, a subnet
//! already routed or addressed on the host. Deleting links keeps the view true.

use virtnet_host::{HostView, Netlink};
use virtnet_plan::{find_conflict, Conflict, HostAddress, HostRoute, NetworkPlan};

use super::{host, in_use, is_ours, Kernel};
use crate::error::Result;

/// The first collision of `plan` with the host's routes and addresses in `view`; `own` is the
/// index of a leftover bridge of virtnet's with the plan's name.
fn conflict_in(view: &HostView, plan: &NetworkPlan, own: Option<u32>) -> Option<Conflict> {
    let routes: Vec<HostRoute> = view
        .routes()
        .iter()
        .map(|r| HostRoute {
            destination: r.dest,
            prefix: r.prefix,
            ifindex: r.oif,
        })
        .collect();
    let addresses: Vec<HostAddress> = view
        .addresses()
        .iter()
        .map(|a| HostAddress {
            address: a.addr,
            prefix: a.prefix_len,
            ifindex: a.ifindex,
        })
        .collect();
    find_conflict(plan, own, &routes, &addresses)
}

/// Brings the view up to date, naming what failed.
fn refresh(view: &mut HostView, netlink: &mut Netlink) -> Result<()> {
    view.refresh(netlink)
        .map_err(host("follow the host's routes and addresses"))
}

/// Dumps the view again, naming what failed.
fn resync(view: &mut HostView, netlink: &mut Netlink) -> Result<()> {
    view.resync(netlink)
        .map_err(host("dump the host's routes and addresses"))
}

impl Kernel {
    /// Refuses a plan whose bridge name is taken by a link that is not virtnet's, or whose
    /// subnets are in use on the host. Returns the index of a leftover bridge of virtnet's with
    /// that name, if any.
    pub(super) fn check_free(&mut self, plan: &NetworkPlan) -> Result<Option<u32>> {
        let name = &plan.bridge.name;
        let own = match self.netlink.link(name).map_err(host("look up link"))? {
            Some(link) if !is_ours(&link) => {
                return Err(in_use(format!(
                    "bridge name '{name}' is already in use by an interface virtnet did not \
                     create"
                )));
            }
            Some(link) => Some(link.index),
            None => None,
        };
        refresh(&mut self.view, &mut self.netlink)?;
        let mut conflict = conflict_in(&self.view, plan, own);
        if conflict.is_some() {
            // The view may keep a route the kernel flushed without telling (IPv4 routes of a
            // link that went down): confirm with a fresh dump before refusing.
            resync(&mut self.view, &mut self.netlink)?;
            conflict = conflict_in(&self.view, plan, own);
        }
        let Some(conflict) = conflict else {
            return Ok(own);
        };
        let dev = match conflict.ifindex {
            Some(index) => self
                .netlink
                .link_by_index(index)
                .map_err(host("look up link"))?
                .map_or_else(|| format!("#{index}"), |l| l.name),
            None => "(none)".to_string(),
        };
        Err(in_use(conflict.describe(&dev)))
    }

    /// Brings the followed view of routes and addresses up to date.
    pub(super) fn refresh_view(&mut self) -> Result<()> {
        refresh(&mut self.view, &mut self.netlink)
    }

    /// Deletes links in one batch and forgets their routes and addresses.
    pub(super) fn delete_links(
        &mut self,
        indexes: &[u32],
        context: impl Into<String>,
    ) -> Result<()> {
        let deleted = self.netlink.delete_links(indexes).map_err(host(context));
        self.forget_deleted(indexes);
        deleted
    }

    /// Forgets the routes and addresses of deleted links.
    pub(super) fn forget_deleted(&mut self, indexes: &[u32]) {
        // Announcements still queued (the routes and addresses these links got) must be
        // applied before the links are forgotten, or they would bring them back.
        if self.view.refresh(&mut self.netlink).is_err() {
            self.view.invalidate();
        }
        self.view.forget_links(indexes);
    }
}
