//! Which addresses of an overlay network this host's DHCP server may hand out
//! (`virtnet_dhcp::Ownership`, docs/FABRIC.md "Addresses unique across hosts").
//!
//! A follower thread per running overlay network with DHCP re-reads, every
//! [`FOLLOW_INTERVAL`], the flood entries of the network's VXLAN device (the remote VTEPs FRR's
//! zebra installs from BGP EVPN's type-3 routes: one netlink dump) and puts the resulting
//! ownership in force in the DHCP engine (a pointer swap; the packet path never waits for the
//! dump). A member that vanished stays a member for the network's longest lease time
//! ([`hold_secs`]), so the addresses it leased are not given out elsewhere before they expire.
//! What was seen is kept in the store (table `overlay_members`), written when the set of
//! members changes, so a restarted virtnetd (whose FRR starts again and takes seconds to learn
//! its peers) starts with the members it knew instead of believing itself alone.
//!
//! A network that starts with no member known (none stored) is *unsettled*: its DHCP server
//! hands out no new address (renewals, static hosts and addresses clients ask for are served)
//! until the remote members have been the same for [`SETTLE_STABLE`] after the first one
//! appeared, or [`SETTLE_ALONE`] passed with none (the first host of the fabric, or a host
//! without one). A host joining a fabric thus does not pick from the whole range, as if alone,
//! in the seconds before BGP brings it its peers' type-3 routes.

use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use virtnet_dhcp::{DhcpConfig, Membership, SharedOwnership};
use virtnet_host::Netlink;
use virtnet_model::Network;

use crate::store::Store;

/// How often the VXLAN device's flood entries are re-read.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How often the members' last-seen times are stored when nothing else changed.
const STORE_EVERY_SECS: u64 = 60;
/// How long the remote members must stay the same, once one is known, before new addresses
/// are handed out (a peer's type-3 routes for the VNI arrive together; the other peers'
/// sessions may come up a moment later).
pub const SETTLE_STABLE: Duration = Duration::from_secs(2);
/// How long a network with no member known waits for one before it hands out addresses as
/// the only host (BGP EVPN sessions come up within seconds; the tests see under 8 s).
pub const SETTLE_ALONE: Duration = Duration::from_secs(10);

/// The stored record of one overlay network's members.
#[derive(Debug, Serialize, Deserialize)]
struct MembersRecord {
    network: String,
    /// This host's VTEP when the record was written: a record of another VTEP is not used.
    local: IpAddr,
    /// Each remote member with when it was last seen (Unix seconds).
    members: Vec<(IpAddr, u64)>,
}

/// How long a vanished member keeps its blocks: the longest lease time of the network's
/// ranges (`u64::MAX`, never forgotten, when a range gives infinite leases).
pub fn hold_secs(config: &DhcpConfig) -> u64 {
    config
        .ranges
        .iter()
        .map(|r| r.lease_secs.map_or(u64::MAX, u64::from))
        .max()
        .unwrap_or(u64::from(virtnet_dhcp::DEFAULT_LEASE_SECS))
}

/// This host's VTEP address of `net`'s overlay, as `kernel/overlay.rs` resolves it: `local`,
/// else the first global address of `underlay` (IPv4 first).
fn local_vtep(net: &Network, nl: &mut Netlink) -> Option<IpAddr> {
    let overlay = net.overlay.as_ref()?;
    if let Some(local) = overlay.local {
        return Some(local);
    }
    let link = nl.link(overlay.underlay.as_deref()?).ok()??;
    let mut addrs: Vec<IpAddr> = nl
        .addresses_of(link.index)
        .ok()?
        .into_iter()
        .map(|a| a.addr)
        .filter(|a| !virtnet_plan::is_link_local(*a))
        .collect();
    addrs.sort_by_key(|a| (a.is_ipv6(), *a));
    addrs.first().copied()
}

/// The follower of one network; stopped (and its thread joined) on drop.
#[derive(Debug)]
pub struct OwnershipFollower {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Follow {
    network: String,
    vxlan: String,
    membership: Membership,
    shared: SharedOwnership,
    store: Arc<Store>,
    nl: Netlink,
    /// When the record was last stored.
    stored_at: u64,
    /// Whether new addresses may be handed out (see the module's comment).
    settled: bool,
    /// When following started, and when the members last changed.
    started: Instant,
    changed_at: Instant,
}

impl OwnershipFollower {
    /// Starts following `net`'s members (an overlay network with DHCP): the members stored
    /// before and those present now are read before this returns, so the DHCP server starts
    /// with them. `None` (with a warning) when this host's VTEP cannot be told: the server
    /// then treats every address as its own, as on a network of one host.
    pub fn start(
        net: &Network,
        config: &DhcpConfig,
        store: Arc<Store>,
    ) -> Option<(OwnershipFollower, SharedOwnership)> {
        let vni = net.overlay.as_ref()?.vni;
        let mut nl = match Netlink::open() {
            Ok(nl) => nl,
            Err(e) => {
                tracing::warn!(network = %net.name, error = %e, "cannot follow the overlay's members");
                return None;
            }
        };
        let Some(local) = local_vtep(net, &mut nl) else {
            tracing::warn!(network = %net.name, "no VTEP address; DHCP uses the whole range");
            return None;
        };
        let mut membership = Membership::new(local, hold_secs(config));
        match store.overlay_members::<MembersRecord>() {
            Ok(records) => {
                if let Some(r) = records
                    .into_iter()
                    .find(|r| r.network == net.name && r.local == local)
                {
                    membership.restore(r.members);
                }
            }
            Err(e) => {
                tracing::warn!(network = %net.name, error = %e, "cannot read the overlay's members")
            }
        }
        let shared = SharedOwnership::new();
        // Members known from before (a restart): settled at once.
        let settled = !membership.is_empty();
        let now = Instant::now();
        let mut follow = Follow {
            network: net.name.clone(),
            vxlan: format!("vxlan-{vni}"),
            membership,
            shared: shared.clone(),
            store,
            nl,
            stored_at: 0,
            settled,
            started: now,
            changed_at: now,
        };
        follow.step(true);
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("members-{}", net.name))
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(FOLLOW_INTERVAL) {
                    follow.step(false);
                }
            });
        match thread {
            Ok(t) => Some((
                OwnershipFollower {
                    stop: Some(tx),
                    thread: Some(t),
                },
                shared,
            )),
            Err(e) => {
                // The ownership read now stays in force; it is just not followed.
                tracing::warn!(network = %net.name, error = %e, "cannot start the members' follower");
                Some((
                    OwnershipFollower {
                        stop: None,
                        thread: None,
                    },
                    shared,
                ))
            }
        }
    }
}

impl Follow {
    /// One look at the flood entries; the ownership is put in force (and stored) when the
    /// members changed, or at once when `first`.
    fn step(&mut self, first: bool) {
        let present = match self.remote_vteps() {
            Ok(p) => p,
            Err(e) => {
                // Keep what is known: a failed read is not everyone leaving.
                tracing::debug!(network = %self.network, error = %e, "cannot read the flood entries");
                if first {
                    self.shared.set(self.ownership());
                }
                return;
            }
        };
        let now = super::now();
        let changed = self.membership.observe(now, &present);
        if changed {
            self.changed_at = Instant::now();
        }
        let settles = !self.settled && self.settles();
        if settles {
            self.settled = true;
            tracing::info!(network = %self.network, members = ?self.membership.ownership().members(),
                "overlay DHCP members settled: new addresses are handed out");
        }
        if changed || first || settles {
            let ownership = self.ownership();
            tracing::info!(network = %self.network, members = ?ownership.members(),
                settled = self.settled, "overlay DHCP members");
            self.shared.set(ownership);
        } else if now.saturating_sub(self.stored_at) < STORE_EVERY_SECS {
            return;
        }
        self.stored_at = now;
        let record = MembersRecord {
            network: self.network.clone(),
            local: self.membership.ownership().local(),
            members: self.membership.remembered(),
        };
        if let Err(e) = self.store.put_overlay_members(&self.network, &record) {
            tracing::warn!(network = %self.network, error = %e, "cannot store the overlay's members");
        }
    }

    /// The ownership to put in force: the members, unsettled until [`Follow::settles`].
    fn ownership(&self) -> virtnet_dhcp::Ownership {
        let ownership = self.membership.ownership();
        if self.settled {
            ownership
        } else {
            ownership.unsettled()
        }
    }

    /// Whether the members may now be taken as complete: stable for [`SETTLE_STABLE`] since
    /// the last change with one known at least, or none after [`SETTLE_ALONE`].
    fn settles(&self) -> bool {
        settles(
            !self.membership.is_empty(),
            self.changed_at.elapsed(),
            self.started.elapsed(),
        )
    }

    fn remote_vteps(&mut self) -> Result<Vec<IpAddr>, virtnet_host::HostError> {
        match self.nl.link(&self.vxlan)? {
            Some(link) => self.nl.flood_destinations(link.index),
            None => Ok(Vec::new()),
        }
    }
}

/// The settling rule: some remote member `known` and no change for [`SETTLE_STABLE`], or
/// [`SETTLE_ALONE`] since following started.
fn settles(known: bool, since_change: Duration, since_start: Duration) -> bool {
    (known && since_change >= SETTLE_STABLE) || since_start >= SETTLE_ALONE
}

impl Drop for OwnershipFollower {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use virtnet_dhcp::Range;

    fn config(leases: &[Option<u32>]) -> DhcpConfig {
        DhcpConfig {
            ranges: leases
                .iter()
                .map(|l| Range {
                    start: Ipv4Addr::new(10, 0, 0, 2),
                    end: Ipv4Addr::new(10, 0, 0, 9),
                    lease_secs: *l,
                })
                .collect(),
            ..DhcpConfig::new("n", Ipv4Addr::new(10, 0, 0, 1), 24)
        }
    }

    #[test]
    fn members_settle_once_stable_or_after_a_while_alone() {
        let s = Duration::from_secs;
        assert!(!settles(false, s(0), s(0)), "nothing known at start");
        assert!(!settles(true, s(1), s(5)), "a member just appeared");
        assert!(settles(true, s(2), s(5)), "stable for SETTLE_STABLE");
        assert!(!settles(false, s(9), s(9)), "still waiting for a peer");
        assert!(settles(false, s(10), s(10)), "alone after SETTLE_ALONE");
    }

    #[test]
    fn a_departed_member_is_held_for_the_longest_lease() {
        assert_eq!(hold_secs(&config(&[Some(600), Some(7200)])), 7200);
        assert_eq!(hold_secs(&config(&[Some(600), None])), u64::MAX);
        assert_eq!(
            hold_secs(&config(&[])),
            u64::from(virtnet_dhcp::DEFAULT_LEASE_SECS)
        );
    }
}
