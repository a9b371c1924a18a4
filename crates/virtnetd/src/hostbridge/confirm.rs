//! `iface-confirm` and the confirmation timer: a change made with a confirmation timeout is
//! kept only when confirmed before its deadline, else rolled back (also after a restart:
//! the deadline is stored).

use std::sync::Arc;
use std::time::Duration;

use virtnet_api::{HostBridge, HostBridgePhase};
use virtnet_host::Netlink;

use super::{conflict, host, not_ours, unix_now_ms, HostBridges};
use crate::error::Result;
use crate::sync::lock;

impl HostBridges {
    /// `POST /v1/host-bridges/{bridge}/confirm`.
    pub fn confirm(&self, bridge: &str) -> Result<HostBridge> {
        let _op = lock(&self.op);
        let mut rec = self
            .record(bridge)?
            .ok_or_else(|| match lock(&self.recent).get(bridge) {
                Some(v) => conflict(format!(
                    "host bridge '{bridge}' was {} already",
                    v.phase.as_str()
                )),
                None => not_ours(bridge),
            })?;
        match rec.phase {
            HostBridgePhase::AwaitingConfirm => {
                rec.phase = HostBridgePhase::Active;
                rec.confirm_deadline = None;
                self.persist(&mut rec);
                self.put(&rec)?;
                tracing::info!(bridge, "host bridge confirmed");
                Ok(rec.view())
            }
            HostBridgePhase::Active => Ok(rec.view()),
            other => Err(conflict(format!(
                "host bridge '{bridge}' is {}, not waiting for a confirmation",
                other.as_str()
            ))),
        }
    }

    /// Called when a confirmation deadline passes.
    fn expire(&self, bridge: &str) -> Result<()> {
        let _op = lock(&self.op);
        let Some(mut rec) = self.record(bridge)? else {
            return Ok(());
        };
        if rec.phase != HostBridgePhase::AwaitingConfirm
            || rec.confirm_deadline.is_some_and(|d| d > unix_now_ms())
        {
            return Ok(());
        }
        rec.error = Some(format!(
            "not confirmed within {} s (iface-confirm {bridge})",
            rec.confirm_timeout.unwrap_or(0)
        ));
        let mut nl = Netlink::open().map_err(host("open rtnetlink"))?;
        self.roll_back(&mut nl, &mut rec)
    }

    /// Rolls `bridge` back at `deadline` (Unix ms) unless it is confirmed by then; a task on
    /// the current tokio runtime.
    pub(super) fn arm_timer(self: &Arc<Self>, bridge: String, deadline: u64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%bridge, "no runtime for the confirmation timer");
            return;
        };
        let me = Arc::clone(self);
        rt.spawn(async move {
            let wait = deadline.saturating_sub(unix_now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await;
            // A few hundred ms late at most; `expire` checks the deadline again.
            let mut tries = 0;
            loop {
                let me2 = Arc::clone(&me);
                let b = bridge.clone();
                let res = tokio::task::spawn_blocking(move || me2.expire(&b)).await;
                match res {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => tracing::error!(%bridge, error = %e, "roll back after a missed confirmation failed"),
                    Err(e) => tracing::error!(%bridge, error = %e, "confirmation timer task failed"),
                }
                tries += 1;
                if tries >= 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
