//! IP learning for guarded ports, as libvirt's `clean-traffic` does it (`CTRL_IP_LEARNING`):
//! a guest that configured its IPv4 address itself — no DHCP lease, no `<host>` reservation
//! for its MAC — would otherwise have every frame from that address dropped by its port's
//! anti-spoofing. Instead the first address it announces in ARP (a gratuitous ARP, or its
//! first request for the gateway; the frame itself is dropped, the guest's retry passes) is
//! learned and from then on allowed, and only that one: the port is locked to it, as libvirt
//! locks it. An address is learned only when it is in the network's IPv4 subnet, is neither
//! the network's nor its broadcast or gateway address, and no other guest holds it (a lease,
//! a reservation, another port's learned address). The learned address is kept in the port's
//! record, so it survives restarts of the daemon and of the network.
//!
//! Nothing is learned for IPv6 (see `virtnet_plan::spoof`: a SLAAC subnet allows the whole
//! prefix, and on a DHCPv6 subnet only DHCPv6 hands out addresses; libvirt's `clean-traffic`
//! learns IPv4 only too).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Weak;
use std::time::Duration;

use virtnet_host::arp_watch::{ArpSeen, ArpWatch};
use virtnet_model::{InterfaceSource, MacAddr, Network, Subnet};

use super::Ports;
use virtnet_sockets::iface::name_of as if_name;

/// How long a read of the ARP socket waits before it checks that the ports still exist.
const WAKE: Duration = Duration::from_secs(1);

impl Ports {
    /// Starts the thread that learns static guests' addresses from their ARP (in the calling
    /// thread's network namespace: virtnetd's). It ends once the ports are dropped.
    pub fn start_ip_learning(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        let mut watch = ArpWatch::open(WAKE)?;
        let ports: Weak<Ports> = std::sync::Arc::downgrade(self);
        std::thread::Builder::new()
            .name("ip-learning".into())
            .spawn(move || loop {
                let seen = match watch.next_arp() {
                    Ok(seen) => seen,
                    Err(e) => {
                        tracing::warn!(error = %e, "ARP watch failed; guests' static addresses are no longer learned");
                        return;
                    }
                };
                let Some(ports) = ports.upgrade() else {
                    return;
                };
                if let Some(seen) = seen {
                    ports.learn(seen);
                }
            })?;
        Ok(())
    }

    /// Learns `seen.sender_ip` for the guarded port the frame entered on, if that port may
    /// learn it (see the module docs).
    fn learn(&self, seen: ArpSeen) {
        if seen.sender_ip.is_unspecified() {
            return; // a probe
        }
        let Some(name) = if_name(seen.ifindex) else {
            return;
        };
        // Most ARP comes from guests that have their address: answered from memory, not by
        // reading their leases from the store for every frame.
        if !self.guard.is_guarded(&name) || self.guard.allows_ipv4(&name) {
            return;
        }
        let candidate = self.book.read().get(&name).cloned();
        let Some(record) = candidate else {
            self.learn_for_hypervisor_tap(&name, seen);
            return;
        };
        if record.learned_ipv4.is_some() || record.mac.0 != seen.sender_mac {
            return;
        }
        let Some((network, guard)) = self.guard_of(&record) else {
            return; // not guarded
        };
        if !guard.ipv4.is_empty() {
            return; // it has a lease or a reservation: nothing to learn
        }
        let Some(net) = self.network_of(&record) else {
            return;
        };
        if let Err(why) = self.may_learn(&net, &record.name, record.mac, seen.sender_ip) {
            tracing::debug!(port = %name, address = %seen.sender_ip, why, "address not learned");
            return;
        }
        let _shared = self.shared();
        let Ok((mut record, _claim)) = self.claim_existing(&name) else {
            return; // being changed: its next ARP will do
        };
        if record.learned_ipv4.is_some() {
            return;
        }
        record.learned_ipv4 = Some(seen.sender_ip);
        if let Err(e) = self.runtime.put_port(&name, &record) {
            tracing::warn!(port = %name, error = %e, "cannot store a learned address");
            return;
        }
        self.book.write().insert(name.clone(), record.clone());
        match self.apply_guard(&record) {
            Ok(()) => {
                tracing::info!(port = %name, domain = %record.domain, %network, address = %seen.sender_ip, "static address learned")
            }
            Err(e) => tracing::warn!(port = %name, error = %e, "cannot allow a learned address"),
        }
    }

    /// [`Ports::learn`] for a tap of the hypervisor's that is guarded now: the learned
    /// address goes into its port's record.
    fn learn_for_hypervisor_tap(&self, tap: &str, seen: ArpSeen) {
        let uuid = crate::sync::lock(&self.hypervisor_guarded)
            .get(tap)
            .copied();
        let Some(uuid) = uuid else {
            return;
        };
        let _changes = crate::sync::lock(&self.hypervisor_changes);
        let Some(mut port) = self.hypervisor_port(uuid) else {
            return;
        };
        if port.learned_ipv4.is_some() || port.port.mac.0 != seen.sender_mac {
            return;
        }
        let Some((network, guard)) = self.hypervisor_guard_of(tap, &port) else {
            return;
        };
        if !guard.ipv4.is_empty() {
            return;
        }
        let Some(net) = self.directory.live_network(&port.network) else {
            return;
        };
        if let Err(why) = self.may_learn(&net, tap, port.port.mac, seen.sender_ip) {
            tracing::debug!(%tap, address = %seen.sender_ip, why, "address not learned");
            return;
        }
        port.learned_ipv4 = Some(seen.sender_ip);
        if let Err(e) = self.store_hypervisor_port(&port) {
            tracing::warn!(%tap, error = %e, "cannot store a learned address");
            return;
        }
        self.hypervisor.write().insert(uuid, port.clone());
        self.guard_hypervisor_tap(tap, &port);
        tracing::info!(%tap, domain = %port.port.owner_name, %network, address = %seen.sender_ip, "static address learned");
    }

    /// Whether port `port` (guest MAC `mac`) of `net` may learn `addr`, or why not.
    fn may_learn(
        &self,
        net: &Network,
        port: &str,
        mac: MacAddr,
        addr: Ipv4Addr,
    ) -> std::result::Result<(), &'static str> {
        let subnet = net.ips.iter().find_map(|ip| match ip.address {
            IpAddr::V4(gateway) => {
                let prefix = ip.prefix_len();
                let (first, last) = Subnet::ipv4_ends(gateway, prefix);
                (Subnet::of(IpAddr::V4(addr), prefix) == Subnet::of(ip.address, prefix))
                    .then_some((gateway, first, last, prefix))
            }
            IpAddr::V6(_) => None,
        });
        let Some((gateway, first, last, prefix)) = subnet else {
            return Err("not in the network's IPv4 subnets");
        };
        if addr == gateway || (prefix < 31 && (addr == first || addr == last)) {
            return Err("the gateway, network or broadcast address");
        }
        let reserved = net
            .ips
            .iter()
            .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts))
            .any(|h| h.ip == IpAddr::V4(addr) && h.mac != Some(mac));
        if reserved {
            return Err("reserved for another guest");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let leased = self
            .store
            .leases::<virtnet_dhcp::Lease>(&net.name)
            .unwrap_or_default()
            .into_iter()
            .any(|l| l.ip == addr && l.mac != mac.0 && !l.expired(now));
        if leased {
            return Err("leased to another guest");
        }
        let source = InterfaceSource::Network(net.name.clone());
        let learned = self
            .book
            .read()
            .values()
            .any(|p| p.name != port && p.source == source && p.learned_ipv4 == Some(addr))
            || self.hypervisor.read().values().any(|p| {
                p.network == net.name && p.port.mac != mac && p.learned_ipv4 == Some(addr)
            });
        if learned {
            return Err("learned by another port");
        }
        Ok(())
    }
}
