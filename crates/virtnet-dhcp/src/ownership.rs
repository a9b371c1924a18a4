//! Which host of an overlay network may hand out which addresses (issue 17, "addresses unique
//! across hosts").
//!
//! An overlay network (`<virtnet:overlay type='evpn'>`) is one subnet served by a DHCP server
//! on every host. To keep them from handing the same address to two guests, the address space
//! is cut into blocks of [`BLOCK_SIZE`] consecutive addresses (block `b` is every address whose
//! value divided by [`BLOCK_SIZE`] is `b`, so hosts agree on the blocks even if their ranges
//! differ) and each block is given to ONE member of the VNI by rendezvous (highest random
//! weight) hashing: the member `m` with the highest `hash(b, m)`. The members are the VTEP
//! addresses: this host's own and the remote VTEPs BGP EVPN's type-3 routes announce for the
//! VNI. Every host computes the same owner from the same member list, with no messages
//! between them; a member that joins takes about 1/N of the blocks, each from the member that
//! held it, and nobody else's blocks move; a member that leaves gives only its own blocks away.
//!
//! A host that has just started an overlay network does not know the other members yet (BGP
//! takes seconds): its ownership is *unsettled* ([`Ownership::unsettled`]) and it hands out no
//! new address until its follower settles it — once the remote members have been stable for a
//! moment, or after a while with none (a lone host). See `virtnetd`'s `services/ownership.rs`.
//!
//! [`Membership`] remembers a member that vanished (its type-3 route withdrawn: dead,
//! partitioned, or its network stopped) for the network's longest lease time: its blocks stay
//! its own, so the leases it gave are not handed out again before they expire.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, PoisonError, RwLock};

/// Addresses per block.
pub const BLOCK_SIZE: u32 = 16;

/// The block owners of an overlay network as this host sees them: an immutable snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    local: IpAddr,
    /// Sorted, without duplicates, always holding `local`.
    members: Vec<IpAddr>,
    /// False while the members may not all be known yet: no address is this host's then.
    settled: bool,
}

impl Ownership {
    /// The ownership among `local` (this host's VTEP) and `others` (the remote VTEPs; `local`
    /// among them or duplicates are ignored).
    pub fn new(local: IpAddr, others: impl IntoIterator<Item = IpAddr>) -> Ownership {
        let mut members: Vec<IpAddr> = others.into_iter().chain([local]).collect();
        members.sort_unstable();
        members.dedup();
        Ownership {
            local,
            members,
            settled: true,
        }
    }

    /// The same members, not settled yet: [`Ownership::owns`] is false for every address
    /// (this host may not know every member yet, so it hands out nothing new).
    pub fn unsettled(self) -> Ownership {
        Ownership {
            settled: false,
            ..self
        }
    }

    /// Whether the members are settled (see [`Ownership::unsettled`]).
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// This host's VTEP address.
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// Every member, this host included, in order.
    pub fn members(&self) -> &[IpAddr] {
        &self.members
    }

    /// The block `ip` is in.
    pub fn block_of(ip: Ipv4Addr) -> u32 {
        u32::from(ip) / BLOCK_SIZE
    }

    /// The member that owns `block`: the highest weight wins (ties, which need a 64-bit hash
    /// collision, go to the lower address).
    pub fn owner_of_block(&self, block: u32) -> IpAddr {
        let mut best = self.local;
        let mut best_weight = None;
        for m in &self.members {
            let w = weight(block, m);
            if best_weight.is_none_or(|b| w > b) {
                best = *m;
                best_weight = Some(w);
            }
        }
        best
    }

    /// Whether this host may hand `ip` out dynamically (never while unsettled).
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.settled
            && (self.members.len() <= 1 || self.owner_of_block(Self::block_of(ip)) == self.local)
    }
}

/// The rendezvous weight of `member` for `block`: FNV-1a over both, then a 64-bit finaliser
/// (splitmix64's) so that neighbouring blocks and addresses get unrelated weights. Stable
/// across hosts, versions and restarts: every host must compute the same.
fn weight(block: u32, member: &IpAddr) -> u64 {
    let mut bytes = Vec::with_capacity(21);
    bytes.extend_from_slice(&block.to_be_bytes());
    match member {
        IpAddr::V4(a) => {
            bytes.push(4);
            bytes.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            bytes.push(6);
            bytes.extend_from_slice(&a.octets());
        }
    }
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The members of an overlay network over time: those present now and those that vanished
/// less than `hold_secs` ago (their blocks stay theirs until every lease they gave expired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    local: IpAddr,
    hold_secs: u64,
    /// Each remote member and when it was last seen (seconds, the DHCP clock).
    last_seen: BTreeMap<IpAddr, u64>,
}

impl Membership {
    /// A membership with nobody else yet. `hold_secs` is how long a vanished member is
    /// remembered: the network's longest lease time (`u64::MAX` for infinite leases: never
    /// forgotten).
    pub fn new(local: IpAddr, hold_secs: u64) -> Membership {
        Membership {
            local,
            hold_secs,
            last_seen: BTreeMap::new(),
        }
    }

    /// Picks up members remembered before (from the store, after a restart): each with when it
    /// was last seen; the local address and members already known are left as they are.
    pub fn restore(&mut self, remembered: impl IntoIterator<Item = (IpAddr, u64)>) {
        for (m, seen) in remembered {
            if m != self.local {
                self.last_seen.entry(m).or_insert(seen);
            }
        }
    }

    /// Records the remote members present at `now` and forgets those gone for longer than
    /// the hold time. True when the set of members (present or remembered) changed.
    pub fn observe(&mut self, now: u64, present: &[IpAddr]) -> bool {
        let before: Vec<IpAddr> = self.last_seen.keys().copied().collect();
        for m in present.iter().filter(|m| **m != self.local) {
            self.last_seen.insert(*m, now);
        }
        let hold = self.hold_secs;
        self.last_seen
            .retain(|_, seen| seen.saturating_add(hold) >= now);
        !self.last_seen.keys().copied().eq(before)
    }

    /// Whether no remote member is present or remembered.
    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    /// Every remote member with when it was last seen (what [`Membership::restore`] takes).
    pub fn remembered(&self) -> Vec<(IpAddr, u64)> {
        self.last_seen.iter().map(|(m, s)| (*m, *s)).collect()
    }

    /// The ownership among this host and every member present or remembered.
    pub fn ownership(&self) -> Ownership {
        Ownership::new(self.local, self.last_seen.keys().copied())
    }
}

/// The current [`Ownership`] of a network, shared between whoever follows the members (a
/// writer, rarely) and the DHCP engine (a reader, once per address pick). A read takes the
/// lock only to clone an `Arc`; a write only to swap it: neither holds it while computing, so
/// the packet path never waits for the follower's netlink reads.
#[derive(Clone, Debug, Default)]
pub struct SharedOwnership(Arc<RwLock<Option<Arc<Ownership>>>>);

impl SharedOwnership {
    /// A handle with no ownership yet: everything is this host's until the first
    /// [`SharedOwnership::set`].
    pub fn new() -> SharedOwnership {
        SharedOwnership::default()
    }

    /// Puts `ownership` in force.
    pub fn set(&self, ownership: Ownership) {
        let new = Arc::new(ownership);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(new);
    }

    /// The ownership in force, if any.
    pub fn get(&self) -> Option<Arc<Ownership>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsettled_host_owns_nothing_even_alone() {
        let local: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let ip = Ipv4Addr::new(10, 77, 0, 20);
        assert!(Ownership::new(local, []).owns(ip));
        let unsettled = Ownership::new(local, []).unsettled();
        assert!(!unsettled.is_settled());
        assert!(!unsettled.owns(ip));
    }

    fn vtep(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 201, 0, n))
    }

    /// 10.0.0.0/16: 4096 blocks.
    const BLOCKS: std::ops::Range<u32> = (0x0a00_0000 / BLOCK_SIZE)..(0x0a01_0000 / BLOCK_SIZE);

    #[test]
    fn every_host_computes_the_same_owner_whatever_the_order() {
        let a = Ownership::new(vtep(1), [vtep(2), vtep(3)]);
        let b = Ownership::new(vtep(2), [vtep(3), vtep(1), vtep(1)]);
        let c = Ownership::new(vtep(3), [vtep(1), vtep(2)]);
        assert_eq!(a.members(), b.members());
        for block in BLOCKS {
            let o = a.owner_of_block(block);
            assert_eq!(o, b.owner_of_block(block));
            assert_eq!(o, c.owner_of_block(block));
        }
        // And the same across runs: a fixed answer (the hash is part of the protocol).
        let owners: Vec<IpAddr> = (0..4).map(|b| a.owner_of_block(b)).collect();
        assert_eq!(
            owners,
            (0..4).map(|b| c.owner_of_block(b)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn blocks_are_disjoint_and_shared_fairly() {
        let hosts: Vec<Ownership> = (1..=3)
            .map(|n| Ownership::new(vtep(n), (1..=3).map(vtep)))
            .collect();
        let mut counts = [0u32; 3];
        for block in BLOCKS {
            let first = Ipv4Addr::from(block * BLOCK_SIZE);
            let owners: Vec<usize> = (0..3).filter(|&i| hosts[i].owns(first)).collect();
            assert_eq!(owners.len(), 1, "block {block} owned by {owners:?}");
            counts[owners[0]] += 1;
            // Every address of a block has the block's owner.
            let last = Ipv4Addr::from(block * BLOCK_SIZE + BLOCK_SIZE - 1);
            assert!(hosts[owners[0]].owns(last));
        }
        // 4096 blocks among 3: each gets a third, give or take 10 %.
        for c in counts {
            assert!((1229..=1502).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_joining_host_takes_about_a_quarter_and_moves_nothing_else() {
        let three = Ownership::new(vtep(1), (1..=3).map(vtep));
        let four = Ownership::new(vtep(1), (1..=4).map(vtep));
        let mut moved = 0u32;
        for block in BLOCKS {
            let (before, after) = (three.owner_of_block(block), four.owner_of_block(block));
            if before != after {
                // Only to the newcomer.
                assert_eq!(after, vtep(4), "block {block} moved between old members");
                moved += 1;
            }
        }
        let total = BLOCKS.len() as u32;
        assert!(
            (total * 9 / 40..=total * 11 / 40).contains(&moved),
            "{moved} of {total} moved"
        );
    }

    #[test]
    fn alone_a_host_owns_everything() {
        let alone = Ownership::new(vtep(1), []);
        assert!(alone.owns(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(alone.owns(Ipv4Addr::new(192, 168, 1, 200)));
    }

    #[test]
    fn a_departed_member_keeps_its_blocks_for_the_lease_time() {
        let mut m = Membership::new(vtep(1), 3600);
        assert!(m.observe(100, &[vtep(2), vtep(3)]));
        assert!(!m.observe(101, &[vtep(2), vtep(3), vtep(1)]));
        let full = m.ownership();
        // Host 3 vanishes: it stays a member (its blocks its own) until 3600 s after it was
        // last seen.
        assert!(!m.observe(200, &[vtep(2)]));
        assert_eq!(m.ownership(), full);
        assert!(!m.observe(101 + 3600, &[vtep(2)]));
        assert_eq!(m.ownership(), full);
        assert!(m.observe(102 + 3600, &[vtep(2)]));
        assert_eq!(m.ownership().members(), &[vtep(1), vtep(2)]);
        // What is remembered survives a restart through restore().
        let mut again = Membership::new(vtep(1), 3600);
        again.restore(m.remembered());
        assert_eq!(again.ownership(), m.ownership());
        // Infinite leases: never forgotten.
        let mut forever = Membership::new(vtep(1), u64::MAX);
        forever.observe(1, &[vtep(2)]);
        assert!(!forever.observe(u64::MAX - 1, &[]));
        assert_eq!(forever.ownership().members().len(), 2);
    }

    #[test]
    fn the_shared_handle_swaps_whole_snapshots() {
        let shared = SharedOwnership::new();
        assert!(shared.get().is_none());
        let reader = shared.clone();
        shared.set(Ownership::new(vtep(1), [vtep(2)]));
        assert_eq!(reader.get().map(|o| o.members().len()), Some(2));
    }
}
