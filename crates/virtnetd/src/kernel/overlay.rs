//! Overlay networks (`<virtnet:overlay>`): the VXLAN device enslaved to the network's bridge.
//!
//! The plan says what the device is; what depends on the host is resolved here when the
//! network starts (or is reconciled): the VTEP address (`local`, else the first global
//! address of `underlay`, IPv4 first), the lower link (`underlay`, else the link holding
//! `local`), and the bridge's MTU (`<mtu>`, else the lower link's MTU less the VXLAN overhead,
//! 50 bytes over IPv4; 1500 less it when no lower link is known). Guests learn that MTU from
//! DHCP option 26 and the RA MTU option, both of which read the bridge.
//!
//! DHCP never crosses a VXLAN device: `table bridge virtnet_overlay` (see
//! `virtnet_plan::overlay`) holds the running overlays' devices.
//!
//! The device is deleted at once when its network stops, not parked for the reaper like the
//! bridge: a parked device would keep its VNI on its UDP port, and the kernel refuses a second
//! device with the same VNI and port, so the network could not start again until the reaper ran.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tracing::warn;
use virtnet_host::{BridgeSpec, Link, PortSettings, VxlanSpec};
use virtnet_plan::overlay::overlay_table_script;
use virtnet_plan::{NetworkPlan, VxlanPlan, LINK_GROUP};

use super::{host, in_use, is_ours, spec, Kernel};
use crate::error::{Error, Result};

/// The MTU of a link when nothing says otherwise (Ethernet's).
const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// An overlay network's VTEP as resolved on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vtep {
    /// The VXLAN source address.
    pub local: IpAddr,
    /// The link the tunnel runs over, when known.
    pub underlay: Option<u32>,
    /// The MTU of the bridge and of the VXLAN device.
    pub mtu: u32,
}

impl Kernel {
    /// The bridge of `plan` as it is created here, with its VTEP when the network is an overlay:
    /// the bridge's MTU is then the overlay's (see the module's doc).
    pub(super) fn bridge_spec(&mut self, plan: &NetworkPlan) -> Result<(BridgeSpec, Option<Vtep>)> {
        let mut bridge = spec(plan);
        let Some(vx) = &plan.vxlan else {
            return Ok((bridge, None));
        };
        let vtep = self.resolve_vtep(plan, vx)?;
        bridge.mtu = Some(vtep.mtu);
        Ok((bridge, Some(vtep)))
    }

    fn resolve_vtep(&mut self, plan: &NetworkPlan, vx: &VxlanPlan) -> Result<Vtep> {
        let underlay: Option<Link> = match &vx.underlay {
            Some(name) => Some(
                self.netlink
                    .link(name)
                    .map_err(host("look up the overlay's underlay"))?
                    .ok_or_else(|| {
                        Error::invalid(
                            "virtnet:overlay.underlay",
                            format!(
                                "network '{}': there is no interface '{name}' on this host",
                                plan.network
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        self.refresh_view()?;
        let local = match (vx.local, &underlay) {
            (Some(local), _) => local,
            (None, Some(link)) => self.first_address(link.index).ok_or_else(|| {
                Error::invalid(
                    "virtnet:overlay.underlay",
                    format!(
                        "network '{}': interface '{}' has no address to be the VTEP; give \
                         local='ADDR'",
                        plan.network, link.name
                    ),
                )
            })?,
            (None, None) => {
                return Err(Error::invalid(
                    "virtnet:overlay",
                    format!(
                        "network '{}' has no VTEP address: give underlay='IFACE' or \
                         local='ADDR'",
                        plan.network
                    ),
                ))
            }
        };
        let lower = match underlay {
            Some(link) => Some(link),
            None => self.link_holding(local)?,
        };
        let Some(lower) = lower else {
            return Err(Error::invalid(
                "virtnet:overlay.local",
                format!(
                    "network '{}': {local} is not an address of this host",
                    plan.network
                ),
            ));
        };
        let mtu = plan.bridge.mtu.unwrap_or_else(|| {
            let under = if lower.mtu == 0 {
                DEFAULT_UNDERLAY_MTU
            } else {
                lower.mtu
            };
            under.saturating_sub(VxlanPlan::overhead(local))
        });
        Ok(Vtep {
            local,
            underlay: Some(lower.index),
            mtu,
        })
    }

    /// The first global address of link `index`: IPv4 before IPv6, then the lowest.
    fn first_address(&self, index: u32) -> Option<IpAddr> {
        let mut addrs: Vec<IpAddr> = self
            .view
            .addresses()
            .iter()
            .filter(|a| a.ifindex == index && !virtnet_plan::is_link_local(a.addr))
            .map(|a| a.addr)
            .collect();
        addrs.sort_by_key(|a| (a.is_ipv6(), *a));
        addrs.first().copied()
    }

    /// The link that holds address `local`, if any.
    fn link_holding(&mut self, local: IpAddr) -> Result<Option<Link>> {
        let index = self
            .view
            .addresses()
            .iter()
            .find(|a| a.addr == local)
            .map(|a| a.ifindex);
        match index {
            Some(i) => self
                .netlink
                .link_by_index(i)
                .map_err(host("look up the overlay's underlay")),
            None => Ok(None),
        }
    }

    /// The index of `plan`'s VXLAN device if it exists and is virtnet's. A link of that name
    /// that is not virtnet's is refused, as a bridge name would be.
    pub(super) fn vxlan_of(&mut self, plan: &NetworkPlan) -> Result<Option<u32>> {
        let Some(vx) = &plan.vxlan else {
            return Ok(None);
        };
        match self
            .netlink
            .link(&vx.name)
            .map_err(host("look up vxlan device"))?
        {
            Some(link) if is_ours(&link) => Ok(Some(link.index)),
            Some(_) => Err(in_use(format!(
                "vxlan device name '{}' is already in use by an interface virtnet did not \
                 create",
                vx.name
            ))),
            None => Ok(None),
        }
    }

    /// Creates `plan`'s VXLAN device on bridge `bridge` (nothing for a network on this host
    /// only). Returns its index.
    pub(super) fn make_vxlan(
        &mut self,
        plan: &NetworkPlan,
        vtep: Option<Vtep>,
        bridge: u32,
    ) -> Result<Option<u32>> {
        let (Some(vx), Some(vtep)) = (&plan.vxlan, vtep) else {
            return Ok(None);
        };
        let spec = VxlanSpec {
            name: vx.name.clone(),
            vni: vx.vni,
            local: vtep.local,
            underlay: vtep.underlay,
            dstport: vx.dstport,
            mtu: Some(vtep.mtu),
            master: bridge,
            alias: vx.alias.clone(),
            group: LINK_GROUP,
        };
        let index = self.netlink.create_vxlan(&spec).map_err(host(format!(
            "create the overlay of network '{}'",
            plan.network
        )))?;
        Ok(Some(index))
    }

    /// Start-up reconcile of an existing bridge: its VXLAN device is made if missing, and put
    /// back on the bridge, up, with the overlay's MTU if it is there.
    pub(super) fn converge_vxlan(
        &mut self,
        plan: &NetworkPlan,
        vtep: Option<Vtep>,
        bridge: u32,
    ) -> Result<()> {
        let Some(vtep) = vtep else {
            return Ok(());
        };
        match self.vxlan_of(plan)? {
            None => self.make_vxlan(plan, Some(vtep), bridge).map(|_| ()),
            Some(index) => self
                .netlink
                .set_port(
                    index,
                    &PortSettings {
                        mtu: Some(vtep.mtu),
                        master: Some(Some(bridge)),
                        up: Some(true),
                        ..PortSettings::default()
                    },
                )
                .map_err(host("put the vxlan device back on its bridge")),
        }
    }

    /// Puts `plan`'s VXLAN device into the DHCP guard's set (nothing for a network on this
    /// host only).
    pub(super) fn guard_overlay(&mut self, plan: &NetworkPlan) -> Result<()> {
        let Some(vx) = &plan.vxlan else {
            return Ok(());
        };
        let mut ports = self.overlays.clone();
        ports.insert(vx.name.clone());
        self.set_overlay_ports(ports)
    }

    /// Takes the VXLAN devices of `plans` out of the DHCP guard's set; a failure is logged
    /// (the devices go anyway, and the next change or restart writes the table whole).
    pub(super) fn unguard_overlays(&mut self, plans: &[&NetworkPlan]) {
        let mut ports = self.overlays.clone();
        let mut changed = false;
        for vx in plans.iter().filter_map(|p| p.vxlan.as_ref()) {
            changed |= ports.remove(&vx.name);
        }
        if changed {
            if let Err(e) = self.set_overlay_ports(ports) {
                warn!(error = %e, "could not update the overlays' DHCP guard");
            }
        }
    }

    /// Makes the DHCP guard's set exactly `ports`, in one transaction.
    pub(super) fn set_overlay_ports(&mut self, ports: BTreeSet<String>) -> Result<()> {
        let names: Vec<&str> = ports.iter().map(String::as_str).collect();
        self.nft
            .run(&overlay_table_script(&names))
            .map_err(host("keep DHCP off the overlays"))?;
        self.overlays = ports;
        Ok(())
    }
}
