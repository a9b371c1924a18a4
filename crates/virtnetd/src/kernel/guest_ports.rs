//! Guest ports in the kernel: a tap created (or adopted from QEMU) and attached to its
//! network's bridge, or a macvtap device on a host NIC. The devices are made by
//! `virtnet-host` ([`virtnet_host::tap::create_tap`], [`virtnet_host::Netlink::create_macvtap`]);
//! what is decided here is whether a name may be used, adopted or created, what a port gets
//! from its bridge, and what is undone when a step fails.
//!
//! A detached tap is parked, not deleted in the request: deleting a network device waits for
//! the kernel's RCU barriers (20–40 ms here), which would make every `detach-interface` wait
//! too. Parking (off its bridge, down, renamed `vndel<index>` with the parked alias) takes well
//! under a millisecond, frees the name at once and leaves nothing in service; the reaper then
//! deletes it in a batch with whatever else is queued, like the bridges of destroyed networks.

use std::collections::{HashMap, HashSet};

use tracing::warn;
use virtnet_host::link_brief::{self, Brief, LinkBrief};
use virtnet_host::{Link, Netlink};
use virtnet_plan::{PARKED_ALIAS, PARKED_NAME_PREFIX};

use super::{host, in_use, link_names};
use crate::error::{Error, Result};
use crate::reaper::{Batching, Reaper};

/// The kernel handle of guest ports: an rtnetlink socket and a link reaper of their own, apart
/// from the networks' [`super::Kernel`]. A `net-start` or `net-destroy` holds the networks'
/// kernel handle for its whole kernel step (bridge, addresses, routes, firewall: tens of
/// milliseconds); an `attach-interface` needs none of that and no longer waits for it. The
/// kernel itself still serialises both on its RTNL lock, one request at a time.
pub struct PortKernel {
    netlink: Netlink,
    /// Deletes detached taps off the request path.
    reaper: Reaper,
}

impl std::fmt::Debug for PortKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortKernel").finish_non_exhaustive()
    }
}

/// A guest port's tap as the kernel layer makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPlan {
    /// Tap name.
    pub name: String,
    /// The tap's own MAC address.
    pub mac: [u8; 6],
    /// Alias marking it as a virtnet port.
    pub alias: String,
    /// Bridge to enslave it to, if that bridge exists now.
    pub bridge: Option<String>,
    /// Link state.
    pub up: bool,
    /// The bridge port's `isolated` flag (`<port isolated='yes'/>`).
    pub isolated: bool,
    /// Owner, group, queues and vnet header of a tap virtnet creates; `None` adopts an
    /// existing tap (QEMU's `script=` mode made it).
    pub create: Option<virtnet_host::tap::TapSpec>,
}

impl PortKernel {
    /// Opens the handle in the calling thread's network namespace (virtnetd's).
    pub fn open() -> Result<PortKernel> {
        Ok(PortKernel {
            netlink: Netlink::open().map_err(host("open rtnetlink"))?,
            reaper: Reaper::spawn(Batching::Together).map_err(host("start the tap reaper"))?,
        })
    }

    /// Link `name` as a port sees it, `None` when there is none. Read without RTNL
    /// ([`link_brief`]): a bridge deletion elsewhere (a `net-destroy`) holds RTNL for tens
    /// of milliseconds, and an attach used to wait for it once per look-up. rtnetlink answers
    /// only when sysfs cannot be trusted to show this namespace.
    fn brief(&mut self, name: &str) -> Result<Option<LinkBrief>> {
        let fail = |e: std::io::Error| Error::Io {
            context: format!("cannot look up link '{name}'"),
            source: e,
        };
        match link_brief::brief(name).map_err(fail)? {
            Brief::Link(l) => Ok(Some(l)),
            Brief::Missing => Ok(None),
            Brief::Unknown => Ok(self
                .netlink
                .link(name)
                .map_err(host("look up link"))?
                .map(|l| LinkBrief {
                    index: l.index,
                    mtu: l.mtu,
                    is_bridge: l.kind.as_deref() == Some("bridge"),
                    is_tun: l.kind.as_deref() == Some("tun"),
                })),
        }
    }

    /// The index and MTU of a bridge, `None` when there is no bridge of that name.
    fn bridge_of(&mut self, name: &str) -> Result<Option<(u32, u32)>> {
        Ok(self
            .brief(name)?
            .filter(|l| l.is_bridge)
            .map(|l| (l.index, l.mtu)))
    }

    /// Whether the link of that name is a bridge, from one look-up; `None` when there is no
    /// link of that name.
    pub fn is_bridge_link(&mut self, name: &str) -> Result<Option<bool>> {
        Ok(self.brief(name)?.map(|l| l.is_bridge))
    }

    /// The index of a link by name (one ioctl, no RTNL).
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        link_brief::index_of(name).map_err(|e| Error::Io {
            context: format!("cannot look up link '{name}'"),
            source: e,
        })
    }

    /// Names of the links that exist now.
    pub fn link_names(&mut self) -> Result<HashSet<String>> {
        link_names(&mut self.netlink)
    }

    /// Every link, from one dump: the taps the hypervisor daemon made are found by MAC.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        self.netlink.links().map_err(host("list links"))
    }

    /// Enslaves the link `index` (a hypervisor's tap) to `bridge` and brings it up, changing
    /// nothing else (its MAC and MTU are the hypervisor's). It must be brought up because
    /// virtnet itself took it down when the network's old bridge was parked (a tap up on no
    /// bridge would be a routed interface of the host). False when there is no such bridge.
    pub fn plug_into(&mut self, index: u32, bridge: &str) -> Result<bool> {
        let Some((bridge_index, _)) = self.bridge_of(bridge)? else {
            return Ok(false);
        };
        self.netlink
            .set_port(
                index,
                &virtnet_host::PortSettings {
                    master: Some(Some(bridge_index)),
                    up: Some(true),
                    ..Default::default()
                },
            )
            .map_err(host("plug a hypervisor's tap into its bridge"))?;
        Ok(true)
    }

    /// The index of a bridge by name, `None` when there is no bridge of that name.
    pub fn bridge_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.bridge_of(name)?.map(|(index, _)| index))
    }

    /// The neighbour table: (interface index, IP address, MAC) of every resolved entry.
    pub fn neighbours(&mut self) -> Result<Vec<virtnet_host::Neighbour>> {
        self.netlink.neighbours().map_err(host("list neighbours"))
    }

    /// Waits until every detached tap queued for the reaper is deleted.
    pub fn wait_for_deletions(&self) {
        self.reaper.wait_idle();
    }

    /// Creates (or adopts) a tap and attaches it; on failure nothing made here remains.
    /// Returns the MTU the port got (its bridge's).
    pub fn add_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let _busy = crate::reaper::busy();
        if let Some(spec) = &tap.create {
            // No look-up first: the kernel refuses an existing name itself (IFF_TUN_EXCL).
            virtnet_host::tap::create_tap(spec).map_err(|e| {
                if e.errno() == Some(libc::EBUSY) {
                    in_use(format!(
                        "interface name '{}' is already in use on the host",
                        tap.name
                    ))
                } else {
                    host("create tap")(e)
                }
            })?;
            return self.configure_port(tap).inspect_err(|_| {
                let _ = self.remove_port(&tap.name, true);
            });
        }
        let existing = self.netlink.link(&tap.name).map_err(host("look up tap"))?;
        match &existing {
            None => {
                return Err(Error::missing(format!(
                    "no tap named '{}' to adopt",
                    tap.name
                )))
            }
            Some(l) if l.kind.as_deref() != Some("tun") => {
                return Err(in_use(format!("'{}' is not a tap device", tap.name)))
            }
            // A detached tap waiting for the reaper: it goes away under whoever adopts it.
            Some(l) if l.alias.as_deref() == Some(PARKED_ALIAS) => {
                return Err(in_use(format!("'{}' is being deleted", tap.name)))
            }
            Some(_) => {}
        }
        self.configure_port(tap)
    }

    /// Points an existing port at its bridge with its MAC, MTU and state; returns the MTU.
    pub fn configure_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let _busy = crate::reaper::busy();
        let link = self
            .brief(&tap.name)?
            .ok_or_else(|| Error::missing(format!("tap '{}' does not exist", tap.name)))?;
        let bridge = match &tap.bridge {
            Some(b) => self.bridge_of(b)?,
            None => None,
        };
        let mtu = bridge.map_or(link.mtu, |(_, mtu)| mtu);
        self.netlink
            .set_port(
                link.index,
                &virtnet_host::PortSettings {
                    mac: Some(tap.mac),
                    mtu: Some(mtu),
                    alias: Some(tap.alias.clone()),
                    master: Some(bridge.map(|(index, _)| index)),
                    // A tap on no bridge stays down: the tun driver then refuses what the
                    // guest writes (EIO), so it can never be a routed interface of the host.
                    up: Some(tap.up && bridge.is_some()),
                    // Only a port on a bridge has the flag, and a port joining a bridge starts
                    // without it (the kernel makes its bridge-port state anew): set only when
                    // wanted, which keeps an ordinary attach at one request.
                    isolated: (bridge.is_some() && tap.isolated).then_some(true),
                },
            )
            .map_err(host("configure port"))?;
        Ok(mtu)
    }

    /// Start-up: puts each of `taps` on its bridge with its MAC, MTU, alias and state as
    /// [`PortKernel::configure_port`] would, judged from `links` (one dump, [`PortKernel::links`],
    /// taken by the caller): a port that is already so (after a clean restart, every one) costs
    /// no request, and only the others are configured. Three look-ups and a change per port
    /// took 4.5 s for 10,000 ports (issue 18). Returns the ports that could not be configured,
    /// with why.
    pub fn configure_ports(
        &mut self,
        links: &[Link],
        taps: &[TapPlan],
    ) -> Result<Vec<(String, Error)>> {
        let _busy = crate::reaper::busy();
        let by_name: HashMap<&str, &Link> = links.iter().map(|l| (l.name.as_str(), l)).collect();
        let mut failed = Vec::new();
        for tap in taps {
            if by_name
                .get(tap.name.as_str())
                .is_some_and(|link| in_place(link, tap, &by_name))
            {
                continue;
            }
            if let Err(e) = self.configure_port(tap) {
                failed.push((tap.name.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Sets a port's link state only.
    pub fn set_port_up(&mut self, name: &str, up: bool) -> Result<()> {
        let Some(link) = self.brief(name)? else {
            return Err(Error::missing(format!("tap '{name}' does not exist")));
        };
        self.netlink
            .set_port(
                link.index,
                &virtnet_host::PortSettings {
                    up: Some(up),
                    ..Default::default()
                },
            )
            .map_err(host("set port link"))
    }

    /// Deletes a port's device (`delete`), or only takes it off its bridge (an adopted tap
    /// belongs to QEMU). A device that is already gone is fine.
    ///
    /// A tap is parked and handed to the reaper (see the module doc): its name is free when
    /// this returns, and the device is gone shortly after. That is what a deletion does to a
    /// tap QEMU still holds open, too: the kernel unregisters it at once and QEMU's reads and
    /// writes fail (a parked tap is down: writes fail with EIO until the reaper deletes it,
    /// then with EBADFD, as after an immediate deletion). A macvtap is deleted here: parked,
    /// it would keep its MAC on the host NIC, and the guest's next attach with the same MAC
    /// would be refused (EADDRINUSE).
    pub fn remove_port(&mut self, name: &str, delete: bool) -> Result<()> {
        let _busy = crate::reaper::busy();
        let Some(link) = self.brief(name)? else {
            return Ok(());
        };
        if delete {
            if link.is_tun && self.park_tap(name, link.index) {
                return Ok(());
            }
            self.netlink
                .delete_link(link.index)
                .map_err(host("delete tap"))
        } else {
            self.netlink
                .set_port(
                    link.index,
                    &virtnet_host::PortSettings {
                        master: Some(None),
                        // Off its bridge, a tap is down (see configure_port).
                        up: Some(false),
                        ..Default::default()
                    },
                )
                .map_err(host("detach tap"))
        }
    }

    /// Takes a tap out of service (off its bridge, down, renamed, marked parked) and queues
    /// it for the reaper. `false` when it could not be parked or queued: the caller then
    /// deletes it itself. A parked tap the reaper does not get to (virtnetd killed) carries
    /// virtnet's alias and is removed as a leftover by the next start-up's reconcile.
    fn park_tap(&mut self, name: &str, index: u32) -> bool {
        let parked_name = format!("{PARKED_NAME_PREFIX}{index}");
        match self.netlink.park_port(index, &parked_name, PARKED_ALIAS) {
            // Gone meanwhile: nothing left to delete.
            Ok(false) => true,
            Ok(true) => match self.reaper.delete(vec![index]) {
                Ok(()) => true,
                Err(_) => {
                    warn!(tap = %name, "the reaper is gone; deleting the tap at once");
                    false
                }
            },
            Err(e) => {
                warn!(tap = %name, error = %e, "could not park a tap; deleting it at once");
                false
            }
        }
    }

    /// Creates a macvtap port on host NIC `dev` with the guest's MAC; returns its index.
    pub fn add_macvtap(
        &mut self,
        name: &str,
        dev: &str,
        mode: virtnet_host::MacvtapMode,
        mac: [u8; 6],
    ) -> Result<u32> {
        let parent = self
            .link_index(dev)?
            .ok_or_else(|| Error::missing(format!("host interface '{dev}' does not exist")))?;
        self.netlink
            .create_macvtap(name, parent, mode, mac)
            .map_err(host("create macvtap"))
    }
}

/// Whether `link` already is what [`PortKernel::configure_port`] makes of `tap`: on the bridge
/// (a bridge of that name, else none), with the tap's MAC and alias, the bridge's MTU (its own
/// without one), up only when asked and on a bridge. The `isolated` flag is not in a link dump:
/// a port that wants it is always configured.
fn in_place(link: &Link, tap: &TapPlan, by_name: &HashMap<&str, &Link>) -> bool {
    if tap.isolated {
        return false;
    }
    let bridge = tap
        .bridge
        .as_deref()
        .and_then(|b| by_name.get(b))
        .filter(|b| b.kind.as_deref() == Some("bridge"));
    link.master == bridge.map(|b| b.index)
        && link.mac == Some(tap.mac)
        && link.mtu == bridge.map_or(link.mtu, |b| b.mtu)
        && link.alias.as_deref() == Some(tap.alias.as_str())
        && link.up == (tap.up && bridge.is_some())
}
