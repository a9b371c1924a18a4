//! Port forwards (`forward-add`, `forward-list`, `forward-del`): kept in the networks'
//! definitions (the registry), resolved to guest addresses here, and applied as elements of
//! the forward maps of `inet virtnet` (the kernel).
//!
//! A forward to a name follows the guest: its address is looked up in the network's current
//! leases (the newest lease of that host name first), then its static `<dhcp><host name>` and
//! `<dns><host>` entries; each lease event of a network with such a forward re-resolves the
//! network's forwards, and only map elements that changed are rewritten.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use virtnet_api::{DhcpLease, EventKind, ForwardInfo};
use virtnet_model::{ForwardTarget, HostProto, Network, PortForward};
use virtnet_plan::forward::{entries, ForwardEntry};

use crate::error::{Error, Kind, Result};
use crate::state::AppState;
use crate::store::ForwardOp;
use crate::sync::lock;

/// Serialises forward changes across networks, so two requests cannot both pass the conflict
/// check with the same listen address, protocol and port.
static CHANGES: Mutex<()> = Mutex::new(());

/// The addresses `fwd` goes to on `net` (at most one per family).
fn resolve(fwd: &PortForward, net: &Network, leases: &[DhcpLease]) -> Vec<IpAddr> {
    let name = match &fwd.to {
        ForwardTarget::Address(a) => return vec![*a],
        ForwardTarget::Name(n) => n,
    };
    let mut found: Vec<IpAddr> = Vec::new();
    let mut newest: Vec<&DhcpLease> = leases
        .iter()
        .filter(|l| {
            l.hostname
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(name))
        })
        .collect();
    // Infinite leases (`None`) count as newest.
    newest.sort_by_key(|l| std::cmp::Reverse(l.expiry_time.unwrap_or(u64::MAX)));
    found.extend(
        newest
            .iter()
            .filter_map(|l| l.ip_address.parse::<IpAddr>().ok()),
    );
    for ip in &net.ips {
        for h in ip.dhcp.iter().flat_map(|d| &d.hosts) {
            if h.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
            {
                found.push(h.ip);
            }
        }
    }
    for h in net.dns.iter().flat_map(|d| &d.hosts) {
        if h.hostnames.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            found.push(h.ip);
        }
    }
    let first = |v4: bool| found.iter().find(|a| a.is_ipv4() == v4).copied();
    [first(true), first(false)].into_iter().flatten().collect()
}

/// The map elements of `fwd` going to `addresses`.
fn fwd_entries(fwd: &PortForward, addresses: &[IpAddr]) -> Vec<ForwardEntry> {
    addresses.iter().flat_map(|a| entries(fwd, *a)).collect()
}

impl AppState {
    /// `POST /v1/networks/{id}/forwards` (`forward-add`): refused, naming the other forward,
    /// when a forward of any network already takes the same listen address, protocol and port.
    pub fn forward_add(&self, id: &str, fwd: PortForward) -> Result<ForwardInfo> {
        fwd.check("forward")?;
        let _one_at_a_time = lock(&CHANGES);
        if let Some((network, other)) = self.networks.find_forward(|o| o.collides(&fwd)) {
            return Err(Error::conflict(format!(
                "{} is already forwarded by network '{network}': {other}",
                describe_key(&fwd)
            )));
        }
        // Another firewall that would drop the forward's connections refuses it before
        // anything is stored (or, with --firewall-integration, lets them through).
        if let Ok(detail) = self.networks.get(id, false) {
            if detail.summary.active {
                lock(&self.kernel).let_forwards_in(&detail.summary.name)?;
            }
        }
        let (name, active) =
            self.networks
                .change_forwards(id, &ForwardOp::Add(fwd.clone()), &|| {
                    Error::failed("no definition to add the forward to")
                })?;
        let info = self.forward_info(&name, &fwd)?;
        if active {
            let entries = fwd_entries(&fwd, &info.guest_addresses);
            lock(&self.kernel).add_forwards(&name, entries)?;
        }
        Ok(info)
    }

    /// `DELETE /v1/networks/{id}/forwards` (`forward-del`): removes the forward of `proto`
    /// whose range holds `port` on `listen` (`None`: every host address).
    pub fn forward_del(
        &self,
        id: &str,
        proto: HostProto,
        port: u16,
        listen: Option<IpAddr>,
    ) -> Result<ForwardInfo> {
        let _one_at_a_time = lock(&CHANGES);
        let found = self.networks.find_forward(|f| f.is_at(proto, port, listen));
        let what = || {
            let on = listen.map_or("every host address".to_string(), |a| a.to_string());
            format!("{} port {port} on {on}", proto.as_str())
        };
        let (name, _) = self.networks.change_forwards(
            id,
            &ForwardOp::Remove {
                proto,
                port,
                listen,
            },
            &|| Error::not_found(Kind::Forward, what()),
        )?;
        let fwd = found
            .map(|(_, f)| f)
            .ok_or_else(|| Error::not_found(Kind::Forward, what()))?;
        // Its elements, whatever address they went to (only this forward has its keys).
        lock(&self.kernel).remove_forwards_where(&name, |e| {
            e.proto == fwd.proto.as_str()
                && e.listen == fwd.listen
                && fwd.ports.start <= e.port
                && e.port <= fwd.ports.end
        })?;
        Ok(ForwardInfo {
            network: name,
            forward: fwd,
            active: false,
            guest_addresses: Vec::new(),
        })
    }

    /// `GET /v1/forwards` (`forward-list`): the forwards of one network or of all, with the
    /// guest addresses they go to now.
    pub fn forward_list(&self, network: Option<&str>) -> Result<Vec<ForwardInfo>> {
        if let Some(n) = network {
            // A name that is no network is an error, not an empty list.
            self.networks.get(n, false)?;
        }
        let mut out = Vec::new();
        for (name, fwd) in self.networks.all_forwards() {
            if network.is_some_and(|n| n != name) {
                continue;
            }
            out.push(self.forward_info(&name, &fwd)?);
        }
        Ok(out)
    }

    fn forward_info(&self, network: &str, fwd: &PortForward) -> Result<ForwardInfo> {
        let by_name = matches!(fwd.to, ForwardTarget::Name(_));
        let (active, guest_addresses) = self
            .networks
            .with_live(network, by_name, |net, leases| {
                if net.forwards.contains(fwd) {
                    (true, resolve(fwd, net, leases))
                } else {
                    (false, Vec::new())
                }
            })
            .unwrap_or((false, Vec::new()));
        Ok(ForwardInfo {
            network: network.to_string(),
            forward: fwd.clone(),
            active,
            guest_addresses,
        })
    }

    /// Makes the kernel's forward maps hold the forwards of `network` as its live definition
    /// and leases say now (nothing when it is not running).
    pub fn sync_forwards(&self, network: &str) -> Result<()> {
        self.sync_forwards_with(network, Vec::new())
    }

    /// [`AppState::sync_forwards`] with `fresh` leases that the DHCP server may not list
    /// yet (a lease's event is published before the server's table holds it).
    fn sync_forwards_with(&self, network: &str, fresh: Vec<DhcpLease>) -> Result<()> {
        let wanted: BTreeSet<ForwardEntry> = match self.networks.live_definition(network) {
            Ok(net) => {
                let mut leases = fresh;
                if net
                    .forwards
                    .iter()
                    .any(|f| matches!(f.to, ForwardTarget::Name(_)))
                {
                    leases.extend(self.networks.leases(network, None).unwrap_or_default());
                }
                net.forwards
                    .iter()
                    .flat_map(|f| fwd_entries(f, &resolve(f, &net, &leases)))
                    .collect()
            }
            Err(_) => BTreeSet::new(),
        };
        lock(&self.kernel).set_forwards(network, wanted)
    }

    /// Applies the forwards of every active network (at start-up, after the reconcile).
    pub fn sync_all_forwards(&self) {
        for summary in self.networks.list() {
            if summary.active {
                if let Err(error) = self.sync_forwards(&summary.name) {
                    tracing::error!(network = %summary.name, %error, "cannot apply the port forwards");
                }
            }
        }
    }

    /// True when `network` runs with a forward to a name (which a lease change may move).
    fn forwards_follow_leases(&self, network: &str) -> bool {
        self.networks.live_definition(network).is_ok_and(|net| {
            net.forwards
                .iter()
                .any(|f| matches!(f.to, ForwardTarget::Name(_)))
        })
    }
}

/// "tcp port 8080 on every host address" (what a conflict is about).
fn describe_key(f: &PortForward) -> String {
    let on = f
        .listen
        .map_or("every host address".to_string(), |a| a.to_string());
    format!("{} port {} on {on}", f.proto.as_str(), f.ports)
}

/// Follows the lease events: every event of a network whose forwards go to names re-resolves
/// them. Runs until the task is aborted.
pub async fn follow_leases(state: Arc<AppState>) {
    let mut after = state.events.after(None).next;
    loop {
        let batch = state
            .events
            .wait_after(Some(after), std::time::Duration::from_secs(60))
            .await;
        after = batch.next;
        let mut networks: Vec<String> = batch.events.iter().map(|e| e.network.clone()).collect();
        networks.sort();
        networks.dedup();
        for network in networks {
            let fresh: Vec<DhcpLease> = batch
                .events
                .iter()
                .filter(|e| e.network == network)
                .filter(|e| matches!(e.kind, EventKind::LeaseGranted | EventKind::LeaseRenewed))
                .map(|e| e.lease.clone())
                .collect();
            let state = Arc::clone(&state);
            let synced = tokio::task::spawn_blocking(move || {
                if state.forwards_follow_leases(&network) {
                    if let Err(error) = state.sync_forwards_with(&network, fresh) {
                        tracing::error!(%network, %error, "cannot follow a lease with the port forwards");
                    }
                }
            })
            .await;
            if let Err(e) = synced {
                tracing::error!(error = %e, "the lease follower failed");
            }
        }
    }
}
