//! What the registry needs of the host, as two narrow traits: the kernel objects of a network
//! and its DHCP/DNS servers. The daemon implements them with the real kernel and servers
//! (`adapters.rs`); the registry's unit tests with fakes, so libvirt's rules run without root.

use virtnet_api::{BridgeStatus, DhcpLease};
use virtnet_model::Network;
use virtnet_plan::NetworkPlan;

use crate::error::{Error, Result};

/// The kernel side of networks.
pub trait NetworkKernel: Send + Sync {
    /// Builds a network's kernel objects from its plan; returns warnings for the client.
    fn start(&self, plan: &NetworkPlan) -> Result<Vec<String>>;
    /// Checks that the host device a network without a bridge of its own uses is there.
    fn check_device(&self, net: &Network) -> Result<()>;
    /// Removes the kernel objects of networks, together.
    fn stop(&self, plans: &[&NetworkPlan]) -> Result<()>;
    /// Start-up: makes the kernel hold exactly `plans`; returns the networks it could not
    /// realise, with why.
    fn reconcile(&self, plans: &[NetworkPlan]) -> Vec<(String, Error)>;
    /// virtnet's bridges as the kernel has them.
    fn bridges(&self) -> Result<Vec<BridgeStatus>>;
}

/// The DHCP and DNS servers of running networks, and their leases.
pub trait NetworkServices: Send + Sync {
    /// Starts the servers of a network that now exists in the kernel.
    fn start(&self, net: &Network) -> Result<()>;
    /// Stops a network's servers (its leases stay stored).
    fn stop(&self, network: &str);
    /// Applies a changed live definition to the running servers.
    fn reconfigure(&self, net: &Network) -> Result<()>;
    /// Deletes a network's stored leases.
    fn forget(&self, network: &str) -> Result<()>;
    /// A network's current leases.
    fn leases(&self, net: &Network) -> Result<Vec<DhcpLease>>;
    /// Tells the lifecycle listeners (libvirt's event clients) what happened to a network.
    fn lifecycle(&self, _name: &str, _uuid: uuid::Uuid, _kind: crate::services::LifecycleKind) {}
}
