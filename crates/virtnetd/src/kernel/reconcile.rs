//! Start-up reconcile: the host converges on the networks that should be active, after a
//! clean restart or a crash. Existing bridges are kept with their ports; what is missing is
//! made, what is wrong corrected, and virtnet's leftovers removed.

use std::collections::HashSet;
use std::net::IpAddr;

use tracing::{info, warn};
use virtnet_host::{sysctl, Link, RouteSpec};
use virtnet_plan::{is_link_local, NetworkPlan, ROUTE_PROTOCOL};

use super::{host, in_use, is_ours, route_spec, Kernel};
use crate::error::{Error, Result};

impl Kernel {
    /// Converges the host on `plans`, the networks that should be active, after a restart
    /// (clean or not): missing parts are created, wrong ones corrected, and virtnet's leftovers
    /// of networks no longer active are removed. Existing bridges are kept, with their ports,
    /// so running guests stay connected. Returns the networks that could not be realised.
    pub fn reconcile(&mut self, plans: &[NetworkPlan]) -> Vec<(String, Error)> {
        let t0 = std::time::Instant::now();
        // The links as they were before anything is made: the leftovers are among them (one
        // dump for the whole reconcile; 14,000 links take a second to dump and parse).
        let existing = self.netlink.links().map_err(host("list links"));
        let mut failed = Vec::new();
        let mut realised = HashSet::new();
        for plan in plans {
            match self.converge(plan) {
                Ok(()) => {
                    realised.insert(plan.bridge.name.clone());
                    if let Some(vx) = &plan.vxlan {
                        realised.insert(vx.name.clone());
                    }
                    if let Some(fw) = &plan.firewall {
                        self.applied.insert(plan.network.clone(), fw.clone());
                    }
                }
                Err(e) => failed.push((plan.network.clone(), e)),
            }
        }
        let overlays = plans
            .iter()
            .filter(|p| realised.contains(&p.bridge.name))
            .filter_map(|p| p.vxlan.as_ref().map(|vx| vx.name.clone()))
            .collect();
        if let Err(e) = self.set_overlay_ports(overlays) {
            // The overlays carry traffic all the same; DHCP may then cross them.
            warn!(error = %e, "could not install the overlays' DHCP guard");
        }
        let converged = t0.elapsed();
        if let Err(e) = self.rebuild_firewall() {
            // Without a firewall no network may be called active.
            for plan in plans {
                if realised.contains(&plan.bridge.name) {
                    failed.push((
                        plan.network.clone(),
                        Error::failed(format!("install the firewall: {e}")),
                    ));
                }
            }
            self.applied.clear();
            realised.clear();
        }
        // The networks that run again are let through other firewalls as at their start; a
        // table in the way is logged (the network keeps running: its guests are there).
        for plan in plans.iter().filter(|p| realised.contains(&p.bridge.name)) {
            let guarded = super::coexist::guarded(plan);
            let refused = self.coexist.check(&guarded).err();
            let unfixed = self.coexist.guard(&guarded).err();
            if let Some(e) = refused.or(unfixed) {
                warn!(network = %plan.network, error = %e, "another firewall drops guest traffic");
            }
        }
        let firewall = t0.elapsed();
        if let Err(e) = existing.and_then(|links| self.remove_leftovers(links, &realised)) {
            warn!(error = %e, "could not remove leftover bridges");
        }
        info!(
            networks = plans.len(),
            converge_ms = converged.as_millis() as u64,
            firewall_ms = (firewall - converged).as_millis() as u64,
            leftovers_ms = (t0.elapsed() - firewall).as_millis() as u64,
            "kernel reconcile timings"
        );
        failed
    }

    /// Makes one network's bridge, addresses, routes and sysctls match its plan.
    fn converge(&mut self, plan: &NetworkPlan) -> Result<()> {
        let name = &plan.bridge.name;
        let (bridge, vtep) = self.bridge_spec(plan)?;
        let Some(link) = self.netlink.link(name).map_err(host("look up link"))? else {
            self.check_free(plan)?;
            if let Some(stale) = self.vxlan_of(plan)? {
                self.delete_links(&[stale], "delete a stale vxlan device")?;
            }
            let index = self
                .netlink
                .create_bridge(&bridge)
                .map_err(host("create bridge"))?;
            info!(network = %plan.network, bridge = %name, "bridge was missing; recreated");
            return self.configure(plan, index, vtep).inspect_err(|_| {
                let mut doomed = vec![index];
                doomed.extend(self.vxlan_of(plan).ok().flatten());
                let _ = self.delete_links(&doomed, "roll back the bridge");
            });
        };
        if !is_ours(&link) {
            return Err(in_use(format!(
                "bridge name '{name}' is now used by an interface virtnet did not create"
            )));
        }
        self.netlink
            .update_bridge(link.index, &bridge)
            .map_err(host("update bridge"))?;
        self.converge_vxlan(plan, vtep, link.index)?;
        for s in &plan.sysctls {
            sysctl::write(&s.key, &s.value).map_err(host("write sysctl"))?;
        }
        // The view is dumped once for the whole reconcile and then follows the kernel's
        // announcements, instead of a dump of every address and route per network.
        self.refresh_view()?;
        self.converge_addresses(plan, link.index)?;
        self.converge_routes(plan, link.index)
    }

    fn converge_addresses(&mut self, plan: &NetworkPlan, index: u32) -> Result<()> {
        let present: Vec<(IpAddr, u8)> = self
            .view
            .addresses()
            .iter()
            .filter(|a| a.ifindex == index && !is_link_local(a.addr))
            .map(|a| (a.addr, a.prefix_len))
            .collect();
        let wanted: Vec<(IpAddr, u8)> = plan
            .addresses
            .iter()
            .map(|a| (a.address, a.prefix))
            .collect();
        for &(addr, prefix) in present.iter().filter(|p| !wanted.contains(p)) {
            self.netlink
                .del_address(index, addr, prefix)
                .map_err(host("remove stray address"))?;
        }
        for &(addr, prefix) in wanted.iter().filter(|w| !present.contains(w)) {
            self.netlink
                .add_address(index, addr, prefix)
                .map_err(host("add address"))?;
        }
        Ok(())
    }

    fn converge_routes(&mut self, plan: &NetworkPlan, index: u32) -> Result<()> {
        let ours: Vec<RouteSpec> = self
            .view
            .routes()
            .iter()
            .filter(|r| r.protocol == ROUTE_PROTOCOL && r.oif == Some(index))
            .map(|r| RouteSpec {
                dest: r.dest,
                prefix: r.prefix,
                gateway: r.gateway,
                oif: None,
                metric: r.metric,
                protocol: ROUTE_PROTOCOL,
            })
            .collect();
        let wanted: Vec<RouteSpec> = plan.routes.iter().map(route_spec).collect();
        let same = |a: &RouteSpec, b: &RouteSpec| {
            a.dest == b.dest && a.prefix == b.prefix && a.gateway == b.gateway
        };
        for r in ours.iter().filter(|r| !wanted.iter().any(|w| same(r, w))) {
            self.netlink
                .del_route(r)
                .map_err(host("remove stray route"))?;
        }
        for w in wanted.iter().filter(|w| !ours.iter().any(|r| same(r, w))) {
            self.netlink.add_route(w).map_err(host("add route"))?;
        }
        Ok(())
    }

    /// Deletes every link of `links` (the links before the reconcile) carrying virtnet's alias
    /// that is not in `keep`, in one batch. Parked links carry virtnet's alias too
    /// (`virtnet:/parked`), so bridges and guest taps that were parked for the reaper when
    /// virtnetd was killed go in the same batch.
    fn remove_leftovers(&mut self, links: Vec<Link>, keep: &HashSet<String>) -> Result<()> {
        let doomed: Vec<u32> = links
            .into_iter()
            .filter(|l| is_ours(l) && !keep.contains(&l.name))
            .map(|l| {
                info!(link = %l.name, "removing leftover link");
                l.index
            })
            .collect();
        self.delete_links(&doomed, "delete leftover bridges")
    }
}
