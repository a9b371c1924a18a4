//! Anti-spoofing for the hypervisor daemon's taps. With libvirt, `virtqemud` makes a guest's
//! tap itself and plugs it into the bridge of the port it announced: virtnet never creates
//! it, so it learns its name from the kernel's link announcements ([`LinkWatch`]). A tap
//! that carries a hypervisor port's device MAC (the guest's with first byte `fe`) and sits on
//! that port's network bridge is guarded like virtnet's own ports — same elements, keyed by
//! the tap's name, the guest's leases, reservations and learned address — from the moment it
//! is plugged (before QEMU runs the guest, with libvirt's order of things), and unguarded
//! when it leaves the bridge, goes away, or its port is deleted.
//!
//! While the hypervisor has no port, the thread switches the announcements off: every
//! attach, detach, start and destroy changes links, and reading and parsing their
//! announcements for nothing cost the daemon 0.3–0.47 ms of CPU per attach/detach pair (measured,
//! 200 ports; BENCHMARKS.md, concurrency). A port's creation switches them on again before it
//! answers, and a tap can be plugged only after that (the hypervisor plugs the tap of a port
//! it was given), so none of its taps' announcements is missed.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use virtnet_host::{Link, LinkEvent, LinkEvents, LinkWatch, LinkWatchSwitch};
use virtnet_plan::spoof::PortGuard;

use super::hypervisor::{device_mac, HypervisorPort};
use super::{Ports, Serving};
use crate::sync::lock;

/// How often the thread wakes with nothing announced, to notice that the ports are gone.
const WAKE: Duration = Duration::from_secs(1);

impl Ports {
    /// Guards the hypervisor's taps plugged now, then starts the thread that follows the
    /// kernel's link announcements (in the calling thread's namespace: virtnetd's). It ends
    /// once the ports are dropped.
    pub fn start_hypervisor_guard(self: &Arc<Self>) -> std::io::Result<()> {
        let mut watch = LinkWatch::open().map_err(|e| std::io::Error::other(e.to_string()))?;
        let switch = watch.switch();
        // Set once: a second call has a watch of its own, switched as it is.
        let _ = self.hypervisor_watch.set(watch.switch());
        self.guard_hypervisor_taps();
        let ports = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("hypervisor-taps".into())
            .spawn(move || loop {
                let events = match watch.wait(WAKE) {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "link monitor failed; the hypervisor's taps are no longer guarded as they come");
                        return;
                    }
                };
                let Some(ports) = ports.upgrade() else {
                    return;
                };
                match events {
                    LinkEvents::Events(events) => {
                        for event in events {
                            ports.hypervisor_link_event(event);
                        }
                    }
                    LinkEvents::Lost => ports.guard_hypervisor_taps(),
                }
                ports.switch_hypervisor_watch_off_if_idle(&switch);
            })?;
        Ok(())
    }

    /// Switches the link announcements off while the hypervisor has no port and no tap is
    /// guarded (see the module doc).
    fn switch_hypervisor_watch_off_if_idle(&self, switch: &LinkWatchSwitch) {
        let idle =
            || self.hypervisor.read().is_empty() && lock(&self.hypervisor_guarded).is_empty();
        match switch.switch_off_if(idle) {
            Ok(true) => tracing::debug!("the hypervisor has no port: link announcements off"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot switch link announcements off"),
        }
    }

    /// Switches the link announcements on, before the hypervisor can plug a tap of a port
    /// just created (see the module doc).
    pub(super) fn switch_hypervisor_watch_on(&self) -> crate::error::Result<()> {
        let Some(switch) = self.hypervisor_watch.get() else {
            return Ok(()); // no thread (tests without one), nothing to switch
        };
        let on = switch
            .switch_on()
            .map_err(|source| crate::error::Error::Host {
                context: "watch the hypervisor's taps".into(),
                source,
            })?;
        if on {
            tracing::debug!("a hypervisor port: link announcements on");
        }
        Ok(())
    }

    /// Looks at every link: guards each hypervisor tap on its bridge, unguards the rest.
    pub(super) fn guard_hypervisor_taps(&self) {
        if self.hypervisor.read().is_empty() && lock(&self.hypervisor_guarded).is_empty() {
            return;
        }
        let links = match lock(&self.kernel).links() {
            Ok(links) => links,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list links to guard the hypervisor's taps");
                return;
            }
        };
        let guarded: Vec<String> = lock(&self.hypervisor_guarded).keys().cloned().collect();
        for name in guarded {
            if !links.iter().any(|l| l.name == name) {
                self.unguard_hypervisor_tap(&name);
            }
        }
        for link in links {
            self.consider_hypervisor_tap(link, true);
        }
    }

    /// One announcement: a tap plugged into its port's bridge is guarded, one that left it
    /// (or went away) unguarded.
    fn hypervisor_link_event(&self, event: LinkEvent) {
        match event {
            LinkEvent::Changed(link) => self.consider_hypervisor_tap(link, false),
            LinkEvent::Removed { name, .. } => self.unguard_hypervisor_tap(&name),
        }
    }

    /// Guards `link` when it is a hypervisor tap on its port's bridge (again with `again`,
    /// else only when it is not guarded for that port yet), unguards it when not.
    fn consider_hypervisor_tap(&self, link: Link, again: bool) {
        if self.book.read().contains_key(&link.name) {
            return; // one of virtnet's own ports
        }
        match self.hypervisor_port_on(&link) {
            Some(port) => {
                let known = lock(&self.hypervisor_guarded).get(&link.name) == Some(&port.port.uuid);
                if again || !known {
                    self.guard_hypervisor_tap(&link.name, &port);
                }
            }
            None => self.unguard_hypervisor_tap(&link.name),
        }
    }

    /// The hypervisor's port whose tap `link` is, when it sits on that port's network
    /// bridge.
    fn hypervisor_port_on(&self, link: &Link) -> Option<HypervisorPort> {
        let (mac, master) = (link.mac?, link.master?);
        if link.kind.as_deref() != Some("tun") || self.hypervisor.read().is_empty() {
            return None;
        }
        let port = self
            .hypervisor
            .read()
            .values()
            .find(|p| device_mac(&p.port) == mac)
            .cloned()?;
        let Ok(Serving::Bridge(bridge)) = self.directory.serving(&port.network) else {
            return None;
        };
        let index = lock(&self.kernel).bridge_index(&bridge).ok()??;
        (index == master).then_some(port)
    }

    /// What the hypervisor's tap `tap` of `port` may send; `None` when its network is not
    /// guarded (or not active).
    pub(super) fn hypervisor_guard_of(
        &self,
        tap: &str,
        port: &HypervisorPort,
    ) -> Option<(String, PortGuard)> {
        let net = self.directory.live_network(&port.network)?;
        let mac = port.port.mac;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let lease: Option<virtnet_dhcp::Lease> = self
            .store
            .lease_of(&net.name, &mac.to_string())
            .unwrap_or_default();
        let addrs = lease
            .into_iter()
            .filter(|l| l.mac == mac.0 && !l.expired(now))
            .map(|l| l.ip)
            .chain(port.learned_ipv4);
        let leases6 = self.leases6_of(&net, tap, mac, None);
        let guard = PortGuard::for_network(tap, mac.0, &net, addrs, leases6)?;
        Some((net.name.clone(), guard))
    }

    /// Guards `tap` as `port`'s (again, after a change of what it may send).
    pub(super) fn guard_hypervisor_tap(&self, tap: &str, port: &HypervisorPort) {
        let Some((network, guard)) = self.hypervisor_guard_of(tap, port) else {
            return;
        };
        match self.guard.set_port(tap, Some((&network, &guard))) {
            Ok(()) => {
                let first = lock(&self.hypervisor_guarded)
                    .insert(tap.to_string(), port.port.uuid)
                    .is_none();
                if first {
                    tracing::info!(%tap, %network, port = %port.port.uuid, "hypervisor's tap guarded");
                }
            }
            Err(e) => tracing::warn!(%tap, error = %e, "cannot guard the hypervisor's tap"),
        }
    }

    /// Guards again the hypervisor's taps guarded now whose port is on `network` (its
    /// definition changed).
    pub(super) fn reguard_hypervisor_taps(&self, network: &str) {
        let _changes = lock(&self.hypervisor_changes);
        let taps: Vec<(String, Uuid)> = lock(&self.hypervisor_guarded)
            .iter()
            .map(|(t, u)| (t.clone(), *u))
            .collect();
        for (tap, uuid) in taps {
            if let Some(port) = self.hypervisor_port(uuid).filter(|p| p.network == network) {
                self.guard_hypervisor_tap(&tap, &port);
            }
        }
    }

    /// Takes the guard off `tap`, if it is a hypervisor tap guarded now.
    fn unguard_hypervisor_tap(&self, tap: &str) {
        if lock(&self.hypervisor_guarded).remove(tap).is_some() {
            self.drop_guard(tap);
        }
    }

    /// Takes the guard off the tap of the hypervisor's port `uuid` (the port is forgotten).
    pub(super) fn unguard_hypervisor_port(&self, uuid: Uuid) {
        let taps: Vec<String> = lock(&self.hypervisor_guarded)
            .iter()
            .filter(|(_, u)| **u == uuid)
            .map(|(t, _)| t.clone())
            .collect();
        for tap in taps {
            self.unguard_hypervisor_tap(&tap);
        }
    }
}
