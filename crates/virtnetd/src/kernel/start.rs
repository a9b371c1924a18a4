//! Starting a network: checks, bridge (and an overlay's VXLAN device on it), sysctls,
//! addresses, routes, firewall, in that order,
//! everything made so far removed again when a step fails; other firewalls in the way are
//! checked first and let through after (`coexist`).

use std::time::Instant;

use tracing::{debug, warn};
use virtnet_host::sysctl;
use virtnet_plan::firewall::stop_any_script;
use virtnet_plan::NetworkPlan;

use super::{host, in_use, route_spec, Kernel};
use crate::error::Result;

impl Kernel {
    /// Starts a network: checks, bridge, sysctls, addresses, routes, firewall, in that order.
    /// On any failure everything made so far is removed again and the first error returned.
    pub fn start(&mut self, plan: &NetworkPlan) -> Result<Vec<String>> {
        let _busy = crate::reaper::busy();
        let t0 = Instant::now();
        let leftover = self.check_free(plan)?;
        self.check_router_advertisements(plan)?;
        // Another table that would drop the guests' traffic refuses the start now, before
        // anything is made (unless --firewall-integration lets virtnet accept it there).
        let guarded = super::coexist::guarded(plan);
        self.coexist.check(&guarded)?;
        // An overlay's VTEP and MTU come from the host's underlay; a VXLAN device name taken
        // by someone else refuses the start like a bridge name.
        let (bridge, vtep) = self.bridge_spec(plan)?;
        let leftover_vxlan = self.vxlan_of(plan)?;
        let checked = t0.elapsed();
        // A leftover bridge (or VXLAN device) of ours with this name (from a crash) is replaced.
        let leftovers: Vec<u32> = leftover.into_iter().chain(leftover_vxlan).collect();
        if !leftovers.is_empty() {
            self.delete_links(
                &leftovers,
                format!("delete leftover bridge {}", plan.bridge.name),
            )?;
        }
        let index = self
            .netlink
            .create_bridge(&bridge)
            .map_err(host("create bridge"))?;
        let created = t0.elapsed();
        let result = self.configure(plan, index, vtep);
        let configured = t0.elapsed();
        let result = result
            .and_then(|()| self.install_firewall(plan))
            .and_then(|()| self.coexist.guard(&guarded));
        debug!(
            network = %plan.network,
            check_us = checked.as_micros() as u64,
            bridge_us = (created - checked).as_micros() as u64,
            configure_us = (configured - created).as_micros() as u64,
            firewall_us = (t0.elapsed() - configured).as_micros() as u64,
            "start timings"
        );
        result.map_err(|e| {
            // Accepts already placed in other tables go with the network.
            self.coexist.release(&[plan.network.as_str()]);
            self.roll_back(plan, index, e)
        })
    }

    /// Undoes a failed start: the firewall entries, then the bridge. Returns `e`.
    fn roll_back(&mut self, plan: &NetworkPlan, index: u32, e: crate::Error) -> crate::Error {
        warn!(network = %plan.network, error = %e, "start failed; rolling back");
        if let Some(fw) = &plan.firewall {
            if let Err(undo) = self.nft.run(&stop_any_script(fw)) {
                warn!(network = %plan.network, error = %undo, "firewall rollback failed");
            }
            self.applied.remove(&plan.network);
        }
        self.unguard_overlays(&[plan]);
        let mut doomed = vec![index];
        if let Ok(Some(vxlan)) = self.vxlan_of(plan) {
            doomed.push(vxlan);
        }
        if let Err(undo) = self.delete_links(&doomed, "roll back the bridge") {
            warn!(network = %plan.network, error = %undo, "bridge rollback failed");
        }
        e
    }

    /// Refuses to turn IPv6 forwarding on while an interface relies on router advertisements
    /// for routes without `accept_ra=2`: the kernel stops accepting RAs on a forwarding host,
    /// and those routes (often the default route) would expire. libvirt refuses the same way.
    fn check_router_advertisements(&mut self, plan: &NetworkPlan) -> Result<()> {
        const RTPROT_RA: u8 = 9;
        let enables_v6_forwarding = plan
            .sysctls
            .iter()
            .any(|s| s.key == "net/ipv6/conf/all/forwarding" && s.value == "1");
        if !enables_v6_forwarding
            || sysctl::read("net/ipv6/conf/all/forwarding").is_ok_and(|v| v.trim() == "1")
        {
            return Ok(());
        }
        let mut indexes: Vec<u32> = self
            .view
            .routes()
            .iter()
            .filter(|r| r.dest.is_ipv6() && r.protocol == RTPROT_RA)
            .filter_map(|r| r.oif)
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut offending = Vec::new();
        for index in indexes {
            let Some(link) = self
                .netlink
                .link_by_index(index)
                .map_err(host("look up link"))?
            else {
                continue;
            };
            let key = format!("net/ipv6/conf/{}/accept_ra", link.name);
            if sysctl::read(&key).map_or(true, |v| v.trim() != "2") {
                offending.push(link.name);
            }
        }
        if offending.is_empty() {
            return Ok(());
        }
        Err(in_use(format!(
            "Check the host setup: enabling IPv6 forwarding with RA routes without accept_ra \
             set to 2 is likely to cause routes loss. Interfaces to look at: {}",
            offending.join(" ")
        )))
    }

    /// Sysctls, an overlay's VXLAN device, addresses and routes of a fresh bridge.
    pub(super) fn configure(
        &mut self,
        plan: &NetworkPlan,
        index: u32,
        vtep: Option<super::overlay::Vtep>,
    ) -> Result<()> {
        // Per-bridge sysctls first: with IPv6 disabled before the first address, the bridge
        // never gets a link-local address.
        for s in plan.sysctls.iter().filter(|s| s.per_bridge) {
            sysctl::write(&s.key, &s.value).map_err(host("configure bridge"))?;
        }
        // The VXLAN device joins after them: a port gives the bridge its carrier, and with it
        // the link-local address, which must not go through duplicate address detection on
        // an overlay (the same anycast address is on every host).
        self.make_vxlan(plan, vtep, index)?;
        self.guard_overlay(plan)?;
        for a in &plan.addresses {
            self.netlink
                .add_address(index, a.address, a.prefix)
                .map_err(host(format!("add address to {}", plan.bridge.name)))?;
        }
        for r in &plan.routes {
            self.netlink
                .add_route(&route_spec(r))
                .map_err(host(format!("add route of network '{}'", plan.network)))?;
        }
        for s in plan.sysctls.iter().filter(|s| !s.per_bridge) {
            sysctl::write(&s.key, &s.value).map_err(host("enable forwarding"))?;
        }
        Ok(())
    }
}
