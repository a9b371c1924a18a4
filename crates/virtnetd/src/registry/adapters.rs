//! The registry's host traits implemented by the daemon's real kernel and servers: each
//! method is one call, taking the kernel lock only for that call.

use std::sync::Mutex;

use virtnet_api::{BridgeStatus, DhcpLease};
use virtnet_model::Network;
use virtnet_plan::NetworkPlan;

use super::host::{NetworkKernel, NetworkServices};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::services::Services;
use crate::sync::lock;

impl NetworkKernel for Mutex<Kernel> {
    fn start(&self, plan: &NetworkPlan) -> Result<Vec<String>> {
        lock(self).start(plan)
    }

    fn check_device(&self, net: &Network) -> Result<()> {
        crate::external::check(&mut lock(self), net)
    }

    fn stop(&self, plans: &[&NetworkPlan]) -> Result<()> {
        lock(self).stop(plans)
    }

    fn reconcile(&self, plans: &[NetworkPlan]) -> Vec<(String, Error)> {
        lock(self).reconcile(plans)
    }

    fn bridges(&self) -> Result<Vec<BridgeStatus>> {
        lock(self).bridges()
    }
}

impl NetworkServices for Services {
    fn start(&self, net: &Network) -> Result<()> {
        Services::start(self, net)
    }

    fn stop(&self, network: &str) {
        Services::stop(self, network)
    }

    fn reconfigure(&self, net: &Network) -> Result<()> {
        Services::reconfigure(self, net)
    }

    fn forget(&self, network: &str) -> Result<()> {
        Services::forget(self, network)
    }

    fn leases(&self, net: &Network) -> Result<Vec<DhcpLease>> {
        Services::leases(self, net)
    }

    fn lifecycle(&self, name: &str, uuid: uuid::Uuid, kind: crate::services::LifecycleKind) {
        self.events().lifecycle.publish(name, uuid, kind)
    }
}
