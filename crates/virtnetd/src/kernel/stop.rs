//! Stopping networks: bridges parked (down, ports off, addresses removed, renamed) and handed
//! to the reaper, firewall entries removed in one transaction.

use std::time::Instant;

use tracing::{debug, warn};
use virtnet_host::{SetChange, SetElement};
use virtnet_plan::firewall::{stop_any_script, stop_script, TABLE_NAME};
use virtnet_plan::{NetworkFirewall, NetworkPlan, PARKED_ALIAS, PARKED_NAME_PREFIX};

use super::{host, is_ours, raw_elements, Kernel};
use crate::error::Result;

impl Kernel {
    /// Stops networks: their bridges are parked (down, ports off, addresses removed, renamed),
    /// then their firewall entries removed in one transaction, and the parked bridges handed
    /// to the reaper, which deletes them in one batch without making the caller wait for the
    /// kernel's RCU barriers (~40 ms per deletion here).
    pub fn stop(&mut self, plans: &[&NetworkPlan]) -> Result<()> {
        let _busy = crate::reaper::busy();
        let t0 = Instant::now();
        let result = self.stop_inner(plans);
        debug!(
            networks = plans.len(),
            elapsed_us = t0.elapsed().as_micros() as u64,
            "stop timings"
        );
        result
    }

    fn stop_inner(&mut self, plans: &[&NetworkPlan]) -> Result<()> {
        let mut doomed = Vec::new();
        // Overlays' VXLAN devices are deleted at once, not parked (see `overlay`).
        let mut vxlans = Vec::new();
        for plan in plans {
            if let Some(index) = self.vxlan_of(plan).ok().flatten() {
                vxlans.push(index);
            }
            if let Some(link) = self
                .netlink
                .link(&plan.bridge.name)
                .map_err(host("look up link"))?
            {
                if is_ours(&link) {
                    doomed.push(link.index);
                }
            }
        }
        let firewalls: Vec<&NetworkFirewall> =
            plans.iter().filter_map(|p| p.firewall.as_ref()).collect();
        let raw: Option<Vec<SetElement>> = firewalls
            .iter()
            .map(|fw| raw_elements(fw))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        // The bridges go out of service first, then their firewall entries: a bridge that is
        // up never exists without its firewall.
        let t0 = Instant::now();
        let (parked, unparked) = self.park(&doomed);
        let links_done = t0.elapsed();
        let removed = match raw {
            Some(elements) => self
                .sets
                .apply(TABLE_NAME, SetChange::Delete, &elements)
                .is_ok(),
            None => {
                let exact: String = firewalls.iter().map(|fw| stop_script(fw)).collect();
                self.nft.run(&exact).is_ok()
            }
        };
        debug!(
            park_us = links_done.as_micros() as u64,
            firewall_us = (t0.elapsed() - links_done).as_micros() as u64,
            "stop: bridges parked, then firewall"
        );
        self.unguard_overlays(plans);
        let names: Vec<&str> = plans.iter().map(|p| p.network.as_str()).collect();
        self.remove_forwards(&names);
        self.coexist.release(&names);
        for plan in plans {
            self.applied.remove(&plan.network);
        }
        if !removed {
            // Something was already missing: remove whatever is left, and if even that fails
            // the table is damaged: rebuild it without these networks.
            let any: String = firewalls.iter().map(|fw| stop_any_script(fw)).collect();
            if self.nft.run(&any).is_err() {
                self.rebuild_firewall()?;
            }
        }
        self.forget_deleted(&doomed);
        // A bridge that could not be parked, or that the reaper cannot take, is deleted here,
        // waiting for the kernel.
        let mut now = unparked;
        now.extend(vxlans);
        if let Err(back) = self.reaper.delete(parked) {
            now.extend(back);
        }
        self.netlink
            .delete_links(&now)
            .map_err(host("delete bridges"))
    }

    /// Parks bridges for the reaper. Returns the parked ones and those that could not be
    /// parked (a name clash, say), which the caller deletes itself.
    fn park(&mut self, indexes: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let mut parked = Vec::with_capacity(indexes.len());
        let mut unparked = Vec::new();
        for &index in indexes {
            let name = format!("{PARKED_NAME_PREFIX}{index}");
            match self.netlink.park_link(index, &name, PARKED_ALIAS) {
                Ok(true) => parked.push(index),
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "could not park a bridge; deleting it at once");
                    unparked.push(index);
                }
            }
        }
        (parked, unparked)
    }

    /// Blocks until the bridges of destroyed networks are deleted.
    pub fn wait_for_deletions(&self) {
        self.reaper.wait_idle();
    }
}
