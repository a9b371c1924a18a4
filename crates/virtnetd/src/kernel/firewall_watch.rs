//! Keeps virtnet's nftables table in place when someone else removes it.
//!
//! An `nft flush ruleset` (an nftables service restart, a firewall's reload that starts with
//! one) deletes `table inet virtnet` with every other table: the guests of every running
//! network lose NAT, DHCP and DNS filtering at once, and before this watcher the table came
//! back only with the next `net-start`. The watcher follows the kernel's ruleset
//! announcements ([`NftWatch`], no polling) and, after a burst of them that deleted virtnet's
//! table (or lost announcements), looks whether the table is there with a libnftables handle
//! of its own. Every other burst — virtnet's own transactions are announced too, one per
//! start, forward or lease — is passed over without a look: a listing costs as much as the
//! table holds (thousands of map elements at scale), and must not take the kernel layer's
//! lock a `net-start` holds. Only a missing table takes that lock, to repair it
//! ([`Kernel::repair_firewall`]: a rebuild from the firewalls it applied, one atomic
//! transaction, logged).

use std::sync::{Mutex, Weak};
use std::time::Duration;

use tracing::{info, warn};
use virtnet_host::nft_watch::NftWatch;
use virtnet_host::Nftables;
use virtnet_plan::firewall::TABLE_NAME;

use super::Kernel;
use crate::sync::lock;

/// The quiet that ends a burst of announcements: one transaction announces each object it
/// touched, and a flush announces every table, chain and set.
const SETTLE: Duration = Duration::from_millis(20);
/// How often the thread wakes with nothing announced, to notice that the daemon is gone.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// `NFPROTO_INET`: the family of `table inet virtnet` in announcements.
const NFPROTO_INET: u8 = 1;

/// Starts the watcher thread in the calling thread's network namespace (virtnetd's). It ends
/// once `kernel` is dropped.
pub fn spawn(kernel: Weak<Mutex<Kernel>>) -> std::io::Result<()> {
    let mut watch = NftWatch::open().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut nft = Nftables::new().map_err(|e| std::io::Error::other(e.to_string()))?;
    std::thread::Builder::new()
        .name("nft-watch".into())
        .spawn(move || loop {
            let changes = match watch.wait_burst(IDLE_WAKE, SETTLE) {
                Ok(changes) => changes,
                Err(e) => {
                    warn!(error = %e, "nftables monitor failed; virtnet's table is no longer watched");
                    return;
                }
            };
            let Some(kernel) = kernel.upgrade() else {
                return;
            };
            if !changes.may_have_deleted(NFPROTO_INET, TABLE_NAME) {
                continue;
            }
            if matches!(nft.has_table("inet", TABLE_NAME), Ok(true)) {
                continue;
            }
            // Missing (or not listable): the kernel layer decides, under its lock, whether
            // running networks need it back.
            let repaired = lock(&kernel).repair_firewall();
            match repaired {
                Ok(true) => info!("virtnet's nftables table rebuilt after it was deleted"),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot rebuild virtnet's nftables table"),
            }
        })?;
    Ok(())
}
