//! The daemon's parts and who owns what ([`AppState`]). Each part owns its records and its
//! store table; the parts meet only here:
//!
//! - [`NetworkRegistry`] owns the network records and libvirt's rules about them;
//! - [`Ports`] owns the guest ports; it learns which bridge serves a network through the
//!   [`BridgeDirectory`] view of the registry, and is told when a network starts;
//! - [`HostBridges`] owns the bridges made from host NICs;
//! - [`Services`] runs the networks' DHCP, DNS and TFTP servers and keeps their leases;
//! - [`EventFeed`] carries lease events to clients.
//!
//! Requests that touch one part go straight to it; the few that need two (starting a network
//! re-attaches its ports, a guest's addresses come from the leases) are orchestrated here.

use std::path::Path;
use std::sync::{Arc, Mutex};

use virtnet_api::{AddressSource, ChangeResult, InterfaceAddress};

use crate::error::Result;
use crate::external::{attachment, Attachment};
use crate::hostbridge::HostBridges;
use crate::kernel::{Antispoof, Kernel, PortKernel};
use crate::ports::{BridgeDirectory, Ports, Serving};
use crate::registry::{LinkExists, NetworkRegistry, RegistryParts};
use crate::services::{EventFeed, ServiceOptions, Services};
use crate::store::{StartReport, Store};
use crate::sync::lock;

/// Everything the daemon serves requests from.
pub struct AppState {
    /// The network registry.
    pub networks: Arc<NetworkRegistry>,
    /// The guest ports.
    pub ports: Arc<Ports>,
    /// Bridges made from host NICs (`iface-bridge`).
    pub host_bridges: Arc<HostBridges>,
    /// DHCP, DNS and TFTP of the running networks.
    pub services: Arc<Services>,
    /// Lease events for clients.
    pub events: Arc<EventFeed>,
    /// The kernel of virtnetd's network namespace, shared by the registry and the ports (and
    /// the port forwards, `forwards.rs`).
    pub(crate) kernel: Arc<Mutex<Kernel>>,
    /// The metrics scrape's kernel handles (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The BGP EVPN fabric and virtnet's FRR daemons (`fabric-set`, `fabric-status`).
    pub fabric: Arc<crate::fabric::FabricControl>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("networks", &self.networks)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the store at `db_path` and the runtime store at `runtime_path`, and builds
    /// every part from them.
    pub fn open(
        db_path: &Path,
        runtime_path: &Path,
        boot_id: Option<&str>,
        link_exists: LinkExists,
        kernel: Kernel,
        options: ServiceOptions,
        frr: &crate::fabric::FrrOptions,
    ) -> Result<(AppState, StartReport)> {
        let (store, records, report) = Store::open(db_path, boot_id)?;
        let unreadable = report
            .unreadable
            .iter()
            .map(|u| (u.name.clone(), u.reason.clone()))
            .collect();
        let runtime = Arc::new(Store::open_runtime(runtime_path, boot_id, &store)?);
        let store = Arc::new(store);
        let fabric = Arc::new(crate::fabric::FabricControl::open(
            store.clone(),
            frr,
            crate::registry::host_link_exists,
        )?);
        let host_bridges = Arc::new(HostBridges::new(
            store.clone(),
            options.host_config_root.clone(),
        ));
        let events = Arc::new(EventFeed::default());
        let services = Arc::new(Services::new(store.clone(), events.clone(), options));
        let kernel = Arc::new(Mutex::new(kernel));
        let networks = Arc::new(NetworkRegistry::new(RegistryParts {
            store: store.clone(),
            records,
            unreadable,
            link_exists,
            kernel: kernel.clone(),
            services: services.clone(),
        }));
        // Ports get a kernel handle of their own: an attach never waits for another
        // network's start or stop (see `PortKernel`).
        let port_kernel = Arc::new(Mutex::new(PortKernel::open()?));
        // Per-port anti-spoofing: its table, and the lease changes that move its addresses.
        let antispoof = Arc::new(Antispoof::open()?);
        let observer = antispoof.clone();
        services.observe_leases(Arc::new(move |network: &str, mac, addr, present| {
            observer.lease_changed(network, mac, addr, present)
        }));
        let observer = antispoof.clone();
        services.observe_leases6(Arc::new(move |network: &str, lease, present| {
            observer.lease6_changed(network, lease.port, lease.mac, lease.ip, present)
        }));
        let ports = Arc::new(Ports::open(
            store,
            runtime,
            port_kernel,
            networks.clone(),
            antispoof,
        )?);
        let state = AppState {
            networks,
            ports,
            host_bridges,
            services,
            events,
            kernel,
            metrics: crate::metrics::Metrics::default(),
            fabric,
        };
        Ok((state, report))
    }

    /// Starts watching the nftables ruleset, so that virtnet's table is rebuilt as soon as
    /// someone else deletes it ([`crate::kernel::firewall_watch`]).
    pub fn start_firewall_watch(&self) -> std::io::Result<()> {
        crate::kernel::firewall_watch::spawn(Arc::downgrade(&self.kernel))
    }

    /// `GET /v1/doctor` (`virtnet doctor`): the other firewalls found and what virtnet did.
    pub fn doctor(&self) -> Result<virtnet_api::DoctorReport> {
        // The kernel's lock only to fetch the handles: the listing runs under coexist's own.
        let (coexist, firewall) = {
            let k = lock(&self.kernel);
            (k.coexist(), k.needs_firewall())
        };
        coexist.doctor(&[Some(firewall), None])
    }

    /// Start-up: makes the kernel match the store, re-attaches the ports, then starts the
    /// autostart networks that are not running. Returns the networks that could not be
    /// restored or autostarted (logged; the daemon still starts).
    pub fn reconcile(&self) -> Result<Vec<String>> {
        let t0 = std::time::Instant::now();
        let mut names = self.networks.restore()?;
        let networks = t0.elapsed();
        self.sync_all_forwards();
        let forwards = t0.elapsed();
        self.ports.reconcile()?;
        tracing::info!(
            networks_ms = networks.as_millis() as u64,
            forwards_ms = (forwards - networks).as_millis() as u64,
            ports_ms = (t0.elapsed() - forwards).as_millis() as u64,
            "reconcile timings"
        );
        for name in self.networks.autostart_pending() {
            if let Err(error) = self.start_network(&name) {
                tracing::error!(network = %name, %error, "autostart failed");
                names.push(name);
            } else {
                tracing::info!(network = %name, "autostarted");
            }
        }
        Ok(names)
    }

    /// `POST /v1/networks/{id}/start` (`net-start`): the registry starts the network, then
    /// its ports are re-attached to its new bridge.
    pub fn start_network(&self, id: &str) -> Result<ChangeResult> {
        let result = self.networks.start(id)?;
        self.ports.network_started(&result.network.name);
        self.forwards_started(&result.network.name);
        Ok(result)
    }

    /// `net-update` (API and libvirt RPC): the registry changes the definition, then a
    /// running network's ports' anti-spoofing follows its new hosts, ranges and subnets.
    pub fn update_network(
        &self,
        id: &str,
        request: &virtnet_api::UpdateRequest,
    ) -> Result<ChangeResult> {
        let result = self.networks.update(id, request)?;
        if result.network.active {
            self.ports.network_updated(&result.network.name);
        }
        Ok(result)
    }

    /// `POST /v1/networks?transient=true` (`net-create`): as [`AppState::start_network`].
    pub fn create_network(&self, xml: &str) -> Result<ChangeResult> {
        let result = self.networks.create(xml)?;
        self.ports.network_started(&result.network.name);
        self.forwards_started(&result.network.name);
        Ok(result)
    }

    /// Applies the port forwards of a network that just started. A failure is logged, not
    /// returned: the network runs, and the next change of its forwards or restart retries.
    fn forwards_started(&self, network: &str) {
        if let Err(error) = self.sync_forwards(network) {
            tracing::error!(%network, %error, "cannot apply the port forwards");
        }
    }

    /// `GET /v1/domains/{domain}/addresses` (`domifaddr`): from the ports and the leases.
    pub fn domain_addresses(
        &self,
        domain: &str,
        source: AddressSource,
    ) -> Result<Vec<InterfaceAddress>> {
        self.ports.domain_addresses(domain, source, |network, mac| {
            self.networks.leases(network, Some(mac))
        })
    }

    /// Waits until the bridges of destroyed networks and detached taps are deleted (at
    /// shutdown).
    pub fn wait_for_deletions(&self) {
        lock(&self.kernel).wait_for_deletions();
        self.ports.wait_for_deletions();
    }
}

/// The registry answers the ports' one question about networks.
impl BridgeDirectory for NetworkRegistry {
    fn serving(&self, network: &str) -> Result<Serving> {
        let live = self.live_definition(network)?;
        if !live.forward.mode.has_own_bridge() {
            if let Attachment::Macvtap { devs, mode } = attachment(&live)? {
                return Ok(Serving::Macvtap { devs, mode });
            }
        }
        live.bridge_name()
            .map(|b| Serving::Bridge(b.to_string()))
            .ok_or_else(|| {
                crate::Error::unsupported(format!(
                    "network '{network}' has no bridge to attach ports to"
                ))
            })
    }

    fn shown_bridge(&self, network: &str) -> Option<String> {
        NetworkRegistry::shown_bridge(self, network)
    }

    fn live_network(&self, network: &str) -> Option<Arc<virtnet_model::Network>> {
        self.live_definition(network).ok()
    }
}
