//! Per-port anti-spoofing in the kernel: the `bridge virtnet_ports` table of
//! `virtnet_plan::spoof`, whose per-port set elements go to nfnetlink directly (one batch per
//! change, as for the networks' firewall), so guarding a port, or changing one of its
//! addresses when a lease changes, costs the same however many ports there are and touches no
//! other port's elements.
//!
//! When virtnetd starts, a table left by the previous run is kept (it still guards the running
//! guests) until the ports' reconcile replaces it, with every guarded port's elements, in one
//! transaction: a guest is never unguarded across a restart. If someone deletes the table
//! meanwhile (`nft flush ruleset`), the next change finds it missing (ENOENT), recreates it
//! with every port's elements (again one transaction), and retries.
//!
//! The table is made when the first port is guarded. When the last guarded port goes, only its
//! elements go at once; the empty table is removed [`EMPTY_GRACE`] later if no port was guarded
//! meanwhile. A guest that restarts (its tap detached, then attached again a moment later: a
//! reboot under libvirt's QEMU daemon, `detach-interface` then `attach-interface`) thus costs
//! two element batches, not a table's deletion and creation through libnftables (2.3 ms more
//! per pair, measured with one guest on the host).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use virtnet_host::nft_set::{key_bytes, Field, SetChange, SetElement, NFPROTO_BRIDGE};
use virtnet_host::{nft_counters, NftSets, Nftables};
use virtnet_plan::spoof::{self, PortGuard, SpoofElement, SpoofKey, SpoofSet, TABLE};

use super::host;
use crate::error::{Error, Result};
use crate::sync::lock;

/// How long the table outlives the last guarded port (see the module's comment).
pub const EMPTY_GRACE: Duration = Duration::from_secs(30);

/// What is applied for one port.
#[derive(Debug, Clone)]
struct Applied {
    /// The network the port is on (lease changes are reported per network and MAC).
    network: String,
    /// The guest's MAC.
    mac: [u8; 6],
    /// Its elements in the table, without the port's name (the map's key): the set and
    /// the rest of the key. A guarded port is kept in a few dozen bytes this way, not in an
    /// allocated name per element (10,000 ports cost 3 MiB less).
    keys: Vec<(SpoofSet, SpoofKey)>,
    /// Its static IPv6 hosts (`PortGuard::hosts6`): allowed whether leased or not, so the
    /// end of a lease of one of them leaves its elements. Empty for nearly every port.
    hosts6: Vec<Ipv6Addr>,
}

impl Applied {
    /// The port's elements in full.
    fn elements(&self, port: &str) -> Vec<SpoofElement> {
        self.keys
            .iter()
            .map(|(set, key)| SpoofElement {
                set: *set,
                port: port.to_string(),
                key: *key,
            })
            .collect()
    }
}

/// What is applied for `g` on `network`.
fn applied(network: String, g: &PortGuard) -> Applied {
    Applied {
        network,
        mac: g.mac,
        keys: keys(&g.elements()),
        hosts6: g.hosts6.iter().copied().collect(),
    }
}

/// The set and rest of the key of each of a port's elements.
fn keys(elements: &[SpoofElement]) -> Vec<(SpoofSet, SpoofKey)> {
    elements.iter().map(|e| (e.set, e.key)).collect()
}

struct Inner {
    nft: Nftables,
    sets: NftSets,
    /// Guarded ports by tap name.
    applied: BTreeMap<String, Applied>,
    /// Whether this run has made the table: it exists while some port is guarded, and for
    /// [`EMPTY_GRACE`] after the last one went (a host without guarded ports carries no virtnet
    /// table, as with `inet virtnet`).
    present: bool,
    /// Counts the times the table became empty: a pending removal applies only if the table
    /// has not been used and emptied again since it was scheduled.
    emptied: u64,
}

/// The anti-spoofing table and the ports it guards.
pub struct Antispoof {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Antispoof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Antispoof").finish_non_exhaustive()
    }
}

/// The nfnetlink element of a plan element.
fn raw(e: &SpoofElement) -> SetElement {
    let port = Field::Ifname(e.port.clone());
    let (key, key_end) = match e.key {
        SpoofKey::Port => (key_bytes(&[port]), None),
        SpoofKey::Mac(m) => (key_bytes(&[port, Field::Ether(m)]), None),
        SpoofKey::Ipv4(a) => (key_bytes(&[port, Field::Ipv4(a)]), None),
        // A concatenated interval (pipapo) element: start and inclusive end.
        SpoofKey::Range6(a, b) => (
            key_bytes(&[port.clone(), Field::Ipv6(a)]),
            Some(key_bytes(&[port, Field::Ipv6(b)])),
        ),
    };
    SetElement {
        set: e.set.name().to_string(),
        key,
        key_end,
        flags: 0,
        data: None,
    }
}

fn raw_all(elements: &[SpoofElement]) -> Vec<SetElement> {
    elements.iter().map(raw).collect()
}

impl Inner {
    /// Sends one batch; on ENOENT (the table was deleted under us) rebuilds the table with
    /// every port's elements and sends it again.
    fn send(&mut self, change: SetChange, elements: &[SpoofElement]) -> Result<()> {
        match self
            .sets
            .apply_in(NFPROTO_BRIDGE, TABLE, change, &raw_all(elements))
        {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                tracing::warn!(table = TABLE, "anti-spoofing table missing; rebuilding it");
                self.rebuild()?;
                self.sets
                    .apply_in(NFPROTO_BRIDGE, TABLE, change, &raw_all(elements))
                    .map_err(host("change anti-spoofing elements"))
            }
            other => other.map_err(host("change anti-spoofing elements")),
        }
    }

    /// Replaces the table with one holding every applied port's elements, in one
    /// transaction (libnftables, as at start-up: a rare path, where its cost does not matter).
    /// With no port guarded, the table is removed instead.
    fn rebuild(&mut self) -> Result<()> {
        if self.applied.is_empty() {
            self.nft
                .run(&spoof::remove_table_script())
                .map_err(host("remove the anti-spoofing table"))?;
            self.present = false;
            return Ok(());
        }
        let all: Vec<SpoofElement> = self
            .applied
            .iter()
            .flat_map(|(port, a)| a.elements(port))
            .collect();
        let script = spoof::table_script() + &spoof::add_elements_script(&all);
        self.nft
            .run(&script)
            .map_err(host("create the anti-spoofing table"))?;
        self.present = true;
        Ok(())
    }

    /// Deletes the drop counter of a port no longer guarded, if it dropped anything (the
    /// element exists only then). Asked first, then deleted in a batch of its own: deleting a
    /// missing element fails its batch, and the kernel's abort of a batch waits for an RCU
    /// grace period (a detach took 13 ms instead of 1). The port's other elements are gone
    /// already, so no frame of it can add the counter between the two.
    fn forget_drops(&mut self, port: &str) {
        let element = raw(&PortGuard::drops_element(port));
        let forgotten = self
            .sets
            .has_element(NFPROTO_BRIDGE, TABLE, &element.set, &element.key)
            .and_then(|there| match there {
                true => self
                    .sets
                    .apply_in(NFPROTO_BRIDGE, TABLE, SetChange::Delete, &[element]),
                false => Ok(()),
            });
        if let Err(e) = forgotten {
            tracing::warn!(%port, error = %e, "cannot delete the port's drop counter");
        }
    }

    /// Deletes `del`, then adds `add`, for one port.
    fn change(&mut self, del: &[SpoofElement], add: &[SpoofElement]) -> Result<()> {
        self.send(SetChange::Delete, del)?;
        if let Err(e) = self.send(SetChange::Create, add) {
            // Put back what was deleted: the port keeps its old protection.
            let _ = self.send(SetChange::Create, del);
            return Err(e);
        }
        Ok(())
    }
}

impl Antispoof {
    /// Opens the handles in the calling thread's network namespace (virtnetd's). A table of
    /// the previous run is left as it is until [`Antispoof::restore`] replaces it.
    pub fn open() -> Result<Antispoof> {
        let inner = Inner {
            nft: Nftables::new().map_err(host("open libnftables"))?,
            sets: NftSets::open().map_err(host("open nfnetlink"))?,
            applied: BTreeMap::new(),
            present: false,
            emptied: 0,
        };
        Ok(Antispoof {
            inner: Mutex::new(inner),
        })
    }

    /// Start-up: the table becomes exactly these ports' guards (`(port, network, guard)`), in
    /// one transaction that replaces whatever table there was.
    pub fn restore(&self, guards: Vec<(String, String, PortGuard)>) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.applied = guards
            .into_iter()
            .map(|(port, network, g)| {
                let a = applied(network, &g);
                (port, a)
            })
            .collect();
        inner.rebuild()
    }

    /// Guards port `port` (on `network`) as `guard` says, or unguards it (`None`): only the
    /// elements that differ from what the port has are deleted and added, in one batch each.
    /// The first guarded port makes the table; the last one's removal schedules the empty
    /// table's removal ([`EMPTY_GRACE`]).
    pub fn set_port(self: &Arc<Self>, port: &str, guard: Option<(&str, &PortGuard)>) -> Result<()> {
        let mut inner = lock(&self.inner);
        let old = inner
            .applied
            .get(port)
            .map(|a| a.elements(port))
            .unwrap_or_default();
        let new = guard.map(|(_, g)| g.elements()).unwrap_or_default();
        if !inner.present {
            let Some((network, g)) = guard else {
                // No table, nothing guarded: nothing to take away.
                inner.applied.remove(port);
                return Ok(());
            };
            // The first guarded port makes the table.
            let before = inner
                .applied
                .insert(port.to_string(), applied(network.to_string(), g));
            if let Err(e) = inner.rebuild() {
                match before {
                    Some(b) => inner.applied.insert(port.to_string(), b),
                    None => inner.applied.remove(port),
                };
                return Err(e);
            }
            return Ok(());
        }
        let (add, del) = spoof::changes(&old, &new);
        inner.change(&del, &add)?;
        match guard {
            Some((network, g)) => {
                inner
                    .applied
                    .insert(port.to_string(), applied(network.to_string(), g));
            }
            None => {
                if inner.applied.remove(port).is_some() {
                    inner.forget_drops(port);
                    if inner.applied.is_empty() {
                        inner.emptied += 1;
                        self.remove_when_still_empty(inner.emptied);
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the table [`EMPTY_GRACE`] from now unless a port was guarded meanwhile (the
    /// table is then no longer empty, or was emptied again: `emptied` moved on).
    fn remove_when_still_empty(self: &Arc<Self>, emptied: u64) {
        let this: Weak<Antispoof> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("antispoof-idle".into())
            .spawn(move || {
                std::thread::sleep(EMPTY_GRACE);
                let Some(this) = this.upgrade() else { return };
                let mut inner = lock(&this.inner);
                if inner.present && inner.applied.is_empty() && inner.emptied == emptied {
                    if let Err(e) = inner.rebuild() {
                        tracing::warn!(table = TABLE, error = %e, "cannot remove the unused anti-spoofing table");
                    }
                }
            });
        if let Err(e) = spawned {
            // The empty table stays until the next time the last guarded port goes.
            tracing::warn!(error = %e, "cannot schedule the unused anti-spoofing table's removal");
        }
    }

    /// A lease of `network` for `mac` was granted (`present`) or ended: the ports of that
    /// guest on that network may now send from `addr`, or no longer. Other ports' elements
    /// are not touched.
    pub fn lease_changed(&self, network: &str, mac: [u8; 6], addr: Ipv4Addr, present: bool) {
        let mut inner = lock(&self.inner);
        let ports: Vec<String> = inner
            .applied
            .iter()
            .filter(|(_, a)| a.network == network && a.mac == mac)
            .map(|(p, _)| p.clone())
            .collect();
        for port in ports {
            let element = PortGuard::address_element(&port, addr);
            let Some(applied) = inner.applied.get(&port) else {
                continue;
            };
            let key = (element.set, element.key);
            let has = applied.keys.contains(&key);
            let result = match (present, has) {
                (true, false) => inner.send(SetChange::Create, std::slice::from_ref(&element)),
                (false, true) => inner.send(SetChange::Delete, std::slice::from_ref(&element)),
                _ => continue,
            };
            match result {
                Ok(()) => {
                    if let Some(a) = inner.applied.get_mut(&port) {
                        if present {
                            a.keys.push(key);
                        } else {
                            a.keys.retain(|k| *k != key);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(%port, %addr, error = %e, "cannot update the port's allowed addresses")
                }
            }
        }
    }

    /// A DHCPv6 lease of `network` was granted or renewed (`present`) or ended: the port it
    /// belongs to may now send from `addr` (and advertise it), or no longer. The lease is
    /// the port's whose tap its client's message came in on (`port`, an interface index:
    /// the guard makes a guarded port's frames carry its guest's MAC, so this is that guest,
    /// whatever DUID or link-local address it chose); when the capture could not name one,
    /// the ports of the lease's `mac` (a link-layer DUID's or an EUI-64 link-local
    /// address's). An interface index names one tap until it is deleted; the kernel hands
    /// indexes out cyclically, so a stale lease of a deleted tap names no other port before
    /// it expires in all but contrived cases, and even then only an address no other guest
    /// holds. Nothing is added where a SLAAC subnet of the port covers the address already,
    /// and a static host of the port keeps its address when its lease ends. Other ports'
    /// elements are not touched.
    pub fn lease6_changed(
        &self,
        network: &str,
        port: Option<u32>,
        mac: Option<[u8; 6]>,
        addr: Ipv6Addr,
        present: bool,
    ) {
        let mut inner = lock(&self.inner);
        let ports: Vec<String> = match (port, mac) {
            (Some(index), _) => virtnet_sockets::iface::name_of(index)
                .filter(|p| inner.applied.get(p).is_some_and(|a| a.network == network))
                .into_iter()
                .collect(),
            (None, Some(mac)) => inner
                .applied
                .iter()
                .filter(|(_, a)| a.network == network && a.mac == mac)
                .map(|(p, _)| p.clone())
                .collect(),
            (None, None) => Vec::new(),
        };
        for port in ports {
            let Some(applied) = inner.applied.get(&port) else {
                continue;
            };
            let elements = PortGuard::address6_elements(&port, addr);
            let own = (SpoofSet::Addrs6, SpoofKey::Range6(addr, addr));
            let has = applied.keys.contains(&own);
            let covered = applied.keys.iter().any(|(set, key)| {
                *set == SpoofSet::Addrs6
                    && matches!(key, SpoofKey::Range6(lo, hi) if *lo <= addr && addr <= *hi)
            });
            let result = match (present, has) {
                (true, _) if covered => continue,
                (true, _) => inner.send(SetChange::Create, &elements),
                (false, true) if !applied.hosts6.contains(&addr) => {
                    inner.send(SetChange::Delete, &elements)
                }
                _ => continue,
            };
            match result {
                Ok(()) => {
                    if let Some(a) = inner.applied.get_mut(&port) {
                        let changed: Vec<_> = elements.iter().map(|e| (e.set, e.key)).collect();
                        a.keys.retain(|k| !changed.contains(k));
                        if present {
                            a.keys.extend(changed);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(%port, %addr, error = %e, "cannot update the port's allowed IPv6 addresses")
                }
            }
        }
    }

    /// Whether port `port` is guarded and may send from some IPv4 address already (a lease,
    /// a reservation or a learned address): then it has nothing to learn.
    pub fn allows_ipv4(&self, port: &str) -> bool {
        lock(&self.inner)
            .applied
            .get(port)
            .is_some_and(|a| a.keys.iter().any(|(set, _)| *set == SpoofSet::Addrs4))
    }

    /// Whether port `port` is guarded now.
    pub fn is_guarded(&self, port: &str) -> bool {
        lock(&self.inner).applied.contains_key(port)
    }
}

/// Frames the anti-spoofing rules dropped per port since it was guarded: the counters of the
/// `drops` set, which holds only the ports that dropped a frame (see `virtnet_plan::spoof`).
#[derive(Debug, Default)]
pub struct DropCounts(HashMap<String, u64>);

impl DropCounts {
    /// One dump of the `drops` set (empty when there is no table: no port is guarded).
    pub fn read() -> Result<DropCounts> {
        let counts = nft_counters::set_counters(NFPROTO_BRIDGE, TABLE, SpoofSet::Drops.name())
            .map_err(|source| Error::Io {
                context: "cannot read anti-spoofing counters".into(),
                source,
            })?;
        Ok(DropCounts(counts.into_iter().collect()))
    }

    /// A guarded port's count: 0 when the set has no element for it (it dropped nothing).
    pub fn of(&self, port: &str) -> u64 {
        self.0.get(port).copied().unwrap_or(0)
    }
}
