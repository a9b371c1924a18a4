//! Keeps virtnet's nftables table in place when someone else removes it.
//!
//! An `nft flush ruleset` (an nftables service restart, a firewall's reload that starts with
//! one) deletes `table inet virtnet` with every other table: the guests of every running
//! network lose NAT, DHCP and DNS filtering at once, and before this watcher the table came
//! back only with the next `net-start`. The watcher follows the kernel's ruleset
//! announcements ([`NftWatch`], no polling) and, after a burst that deleted the table (or lost
//! announcements), looks whether it is there over an nfnetlink socket of its own (one
//! `NFT_MSG_GETTABLE`, whatever the table holds) — not after every burst: virtnet's own
//! transactions are announced too, and checking must neither take the kernel layer's lock a
//! `net-start` holds nor cost in proportion to the networks and ports (libnftables' `list
//! tables` dumps every set element first).
//! Only a missing table takes that lock, to repair it ([`Kernel::repair_firewall`]: a rebuild
//! from the firewalls it applied, one atomic transaction, logged). A burst that touched
//! another table is handed to the coexistence layer ([`super::coexist`]), which puts back
//! the accepts another firewall's reload deleted.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{info, warn};
use virtnet_host::nft_set::NFPROTO_INET;
use virtnet_host::nft_watch::NftWatch;
use virtnet_host::NftSets;
use virtnet_plan::firewall::TABLE_NAME;

use super::Kernel;
use crate::sync::lock;

/// How long a burst of announcements may go on before the table is checked: one transaction
/// announces each object it touched, and a flush announces every table, chain and set.
const SETTLE: Duration = Duration::from_millis(20);
/// virtnet's own tables as the kernel announces them (`NFPROTO_INET` 1, `NFPROTO_BRIDGE` 7).
const OWN_TABLES: [(u8, &str); 2] = [(NFPROTO_INET, TABLE_NAME), (7, virtnet_plan::spoof::TABLE)];
/// How often the thread wakes with nothing announced, to notice that the daemon is gone.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Starts the watcher thread in the calling thread's network namespace (virtnetd's). It ends
/// once `kernel` is dropped.
pub fn spawn(kernel: Weak<Mutex<Kernel>>) -> std::io::Result<()> {
    let coexist = match kernel.upgrade() {
        Some(k) => Arc::downgrade(&lock(&k).coexist()),
        None => return Ok(()),
    };
    let mut watch = NftWatch::open().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut nft = NftSets::open().map_err(|e| std::io::Error::other(e.to_string()))?;
    std::thread::Builder::new()
        .name("nft-watch".into())
        .spawn(move || loop {
            let changed = match watch.wait(IDLE_WAKE) {
                Ok(changed) => changed,
                Err(e) => {
                    warn!(error = %e, "nftables monitor failed; virtnet's table is no longer watched");
                    return;
                }
            };
            let Some(kernel) = kernel.upgrade() else {
                return;
            };
            if !changed {
                continue;
            }
            // Let the burst end (a flush, a whole ruleset loaded), then look once.
            while matches!(watch.wait(SETTLE), Ok(true)) {}
            let touched = watch.take_tables();
            // Only a burst that deleted virtnet's table (or lost announcements) is worth a
            // look: a listing costs as much as the table holds (thousands of map elements at
            // scale), and virtnet's own transactions are announced too.
            if touched.may_have_deleted(NFPROTO_INET, TABLE_NAME)
                && !matches!(nft.has_table(NFPROTO_INET, TABLE_NAME), Ok(true))
            {
                // Missing (or not listable): the kernel layer decides, under its lock,
                // whether running networks need it back.
                let repaired = lock(&kernel).repair_firewall();
                match repaired {
                    Ok(true) => {
                        info!("virtnet's nftables table rebuilt after it was deleted");
                        crate::limits::release_freed_memory();
                    }
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "cannot rebuild virtnet's nftables table"),
                }
            }
            drop(kernel);
            // Someone else's table changed (Docker re-created its chains, a firewall
            // reloaded): virtnet's accepts there, or its warnings, follow. Bursts of virtnet's
            // own transactions (every forward, every port) cost nothing here.
            if touched.beyond(&OWN_TABLES) {
                if let Some(coexist) = coexist.upgrade() {
                    coexist.ruleset_changed();
                }
            }
        })?;
    Ok(())
}
