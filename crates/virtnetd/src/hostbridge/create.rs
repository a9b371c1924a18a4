//! `iface-bridge`: the request checked, the snapshot recorded, the move made and checked,
//! then kept, left waiting for `iface-confirm`, or rolled back.

use std::sync::Arc;
use std::time::Instant;

use virtnet_api::{HostBridge, HostBridgePhase, HostBridgeRequest};
use virtnet_host::{AddressEntry, Link, Netlink, RTPROT_DHCP};

use super::host_config::NOT_DETECTED;
use super::record::Record;
use super::{check, conflict, host, invalid, plan, snapshot_of, unix_now_ms, HostBridges};
use crate::error::Result;
use crate::sync::lock;

impl HostBridges {
    /// `POST /v1/host-bridges`: the whole change, the check, and the roll back on failure.
    /// Blocking (seconds: the check waits for answers). With a confirmation timeout, arms the
    /// timer on the current tokio runtime.
    pub fn create(self: &Arc<Self>, req: &HostBridgeRequest) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        let link = self.admissible(&mut nl, req)?;
        let nic = snapshot_of(&mut nl, &link)?;
        let dhcp = nic.addresses.iter().any(AddressEntry::is_dynamic)
            || nic.routes.iter().any(|r| r.protocol == RTPROT_DHCP);
        let mut rec = Record {
            bridge: req.bridge.clone(),
            iface: req.iface.clone(),
            phase: HostBridgePhase::Applying,
            stp: req.stp,
            delay: req.delay,
            nic: nic.clone(),
            restore: None,
            bridge_index: None,
            check: None,
            confirm_timeout: req.confirm_timeout,
            confirm_deadline: None,
            dhcp,
            steps: plan::steps(req, &nic),
            warnings: plan::warnings(req, &nic, dhcp),
            error: None,
            persisted: None,
            config: None,
        };
        if req.dry_run {
            rec.phase = HostBridgePhase::Planned;
            rec.config = Some(match self.host_config(&rec) {
                Ok(Some((method, change))) => format!(
                    "{} configuration, written when the change is kept:\n{}",
                    method.name(),
                    virtnet_hostcfg::describe(&change)
                ),
                Ok(None) => NOT_DETECTED.to_string(),
                Err(e) => format!("not persisted: {e}"),
            });
            return Ok(rec.view());
        }
        // Durable before anything changes: a crash from here on is rolled back at start.
        self.put(&rec)?;
        tracing::info!(iface = %req.iface, bridge = %req.bridge, addresses = nic.addresses.len(), routes = nic.routes.len(), "iface-bridge: snapshot recorded");
        let started = Instant::now();
        if let Err(e) = self.apply(&mut nl, &mut rec) {
            let reason = format!("{e}");
            tracing::error!(bridge = %rec.bridge, error = %reason, "iface-bridge failed; rolling back");
            return Err(self.fail(&mut nl, rec, format!("the change failed: {reason}")));
        }
        tracing::info!(bridge = %rec.bridge, elapsed_ms = started.elapsed().as_millis() as u64, "iface-bridge: change made; checking");
        rec.phase = HostBridgePhase::Checking;
        self.put(&rec)?;
        if let Err(reason) = check::connectivity(&mut nl, &mut rec, req.check) {
            return Err(self.fail(&mut nl, rec, reason));
        }
        match req.confirm_timeout {
            Some(secs) => {
                rec.phase = HostBridgePhase::AwaitingConfirm;
                let deadline = unix_now_ms() + 1000 * u64::from(secs);
                rec.confirm_deadline = Some(deadline);
                self.put(&rec)?;
                self.arm_timer(rec.bridge.clone(), deadline);
            }
            None => {
                rec.phase = HostBridgePhase::Active;
                self.persist(&mut rec);
                self.put(&rec)?;
            }
        }
        Ok(rec.view())
    }

    /// The NIC of `req`, when the request can be carried out: the names are usable, the NIC
    /// exists and is free, the bridge is new, and neither is behind a host bridge already.
    fn admissible(&self, nl: &mut Netlink, req: &HostBridgeRequest) -> Result<Link> {
        if req.iface == req.bridge {
            return Err(invalid("the interface and the bridge must differ"));
        }
        // virtnet's one interface-name rule (the bridge name also lands in host config files,
        // which virtnet-hostcfg checks again with its narrower set).
        for (field, name) in [("bridge", &req.bridge), ("iface", &req.iface)] {
            if let Err(e) = virtnet_model::ifname::check(name) {
                return Err(invalid(format!("{field} '{name}': {e}")));
            }
        }
        if req.delay > 30 {
            return Err(invalid("the forward delay is at most 30 seconds"));
        }
        let link = nl
            .link(&req.iface)
            .map_err(host(format!("look up interface {}", req.iface)))?
            .ok_or_else(|| invalid(format!("no interface '{}'", req.iface)))?;
        if link.name == "lo" || link.kind.as_deref() == Some("bridge") {
            return Err(invalid(format!(
                "'{}' cannot be put behind a bridge (it is a loopback or a bridge)",
                req.iface
            )));
        }
        if let Some(m) = link.master {
            return Err(conflict(format!(
                "'{}' is already enslaved to interface #{m}",
                req.iface
            )));
        }
        if nl
            .link(&req.bridge)
            .map_err(host("look up bridge"))?
            .is_some()
        {
            return Err(conflict(format!(
                "an interface named '{}' exists already",
                req.bridge
            )));
        }
        if self.record(&req.bridge)?.is_some() {
            return Err(conflict(format!(
                "host bridge '{}' is recorded already",
                req.bridge
            )));
        }
        if self.records()?.iter().any(|r| r.iface == req.iface) {
            return Err(conflict(format!(
                "'{}' is behind a host bridge already",
                req.iface
            )));
        }
        Ok(link)
    }
}
