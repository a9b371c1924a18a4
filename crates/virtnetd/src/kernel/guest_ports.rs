//! Guest ports in the kernel: a tap created (or adopted from QEMU) and attached to its
//! network's bridge, or a macvtap device on a host NIC. The devices are made by
//! `virtnet-host` ([`virtnet_host::tap::create_tap`], [`virtnet_host::Netlink::create_macvtap`]);
//! what is decided here is whether a name may be used, adopted or created, what a port gets
//! from its bridge, and what is undone when a step fails.

use super::{host, in_use, Kernel};
use crate::error::{Error, Result};

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
    /// Owner, group, queues and vnet header of a tap virtnet creates; `None` adopts an
    /// existing tap (QEMU's `script=` mode made it).
    pub create: Option<virtnet_host::tap::TapSpec>,
}

impl Kernel {
    /// The index and MTU of a bridge, `None` when there is no bridge of that name.
    pub(super) fn bridge_of(&mut self, name: &str) -> Result<Option<(u32, u32)>> {
        Ok(self
            .netlink
            .link(name)
            .map_err(host("look up bridge"))?
            .filter(|l| l.kind.as_deref() == Some("bridge"))
            .map(|l| (l.index, l.mtu)))
    }

    /// Creates (or adopts) a tap and attaches it; on failure nothing made here remains.
    /// Returns the MTU the port got (its bridge's).
    pub fn add_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let existing = self.netlink.link(&tap.name).map_err(host("look up tap"))?;
        match (&tap.create, &existing) {
            (Some(_), Some(_)) => {
                return Err(in_use(format!(
                    "interface name '{}' is already in use on the host",
                    tap.name
                )))
            }
            (None, None) => {
                return Err(Error::missing(format!(
                    "no tap named '{}' to adopt",
                    tap.name
                )))
            }
            (None, Some(l)) if l.kind.as_deref() != Some("tun") => {
                return Err(in_use(format!("'{}' is not a tap device", tap.name)))
            }
            _ => {}
        }
        if let Some(spec) = &tap.create {
            virtnet_host::tap::create_tap(spec).map_err(host("create tap"))?;
        }
        self.configure_port(tap).inspect_err(|_| {
            if tap.create.is_some() {
                let _ = self.remove_port(&tap.name, true);
            }
        })
    }

    /// Points an existing port at its bridge with its MAC, MTU and state; returns the MTU.
    pub fn configure_port(&mut self, tap: &TapPlan) -> Result<u32> {
        let link = self
            .netlink
            .link(&tap.name)
            .map_err(host("look up tap"))?
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
                },
            )
            .map_err(host("configure port"))?;
        Ok(mtu)
    }

    /// Sets a port's link state only.
    pub fn set_port_up(&mut self, name: &str, up: bool) -> Result<()> {
        let Some(link) = self.netlink.link(name).map_err(host("look up tap"))? else {
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

    /// Deletes a port's tap (`delete`), or only takes it off its bridge (an adopted tap
    /// belongs to QEMU). A tap that is already gone is fine.
    pub fn remove_port(&mut self, name: &str, delete: bool) -> Result<()> {
        let Some(link) = self.netlink.link(name).map_err(host("look up tap"))? else {
            return Ok(());
        };
        if delete {
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
