//! Deletes parked links (bridges of destroyed networks, taps of detached ports) on a thread of
//! its own.
//!
//! Deleting a bridge (or a tap) blocks the deleting thread for the kernel's RCU barriers: ~40 ms here,
//! about half of it holding the RTNL lock and half after it. A network's destroy does not wait
//! for that: the kernel layer parks the bridge first (down, ports off, addresses removed,
//! renamed; see [`virtnet_host::Netlink::park_link`]), which takes well under a millisecond and
//! leaves nothing of the network visible, and hands its index to the reaper. A detached guest
//! port's tap is parked the same way (off its bridge, down, renamed), so `detach-interface`
//! does not wait either, and its name is free at once.
//!
//! How deletions are grouped is [`Batching`]: taps queued together go in one batched deletion
//! (one wait for the kernel); bridges go one per request, because the kernel's bridge teardown
//! waits for an RCU grace period while it holds RTNL (~17 ms here, for each bridge), so a batch
//! of N bridges would hold RTNL N times as long in one piece and every attach, start or
//! address change on the host would wait for all of it. One by one, each waits at most one.
//!
//! A parked link the reaper did not get to (virtnetd killed) carries virtnet's alias and is
//! removed as a leftover by the next start-up's reconcile.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, warn};
use virtnet_host::Netlink;

/// How many deletions are queued or running.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Pending {
    fn add(&self, n: usize) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += n;
    }

    fn done(&self, n: usize) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.idle.notify_all();
        }
    }

    fn wait_idle(&self) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count > 0 {
            count = self
                .idle
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// How a reaper groups the deletions queued when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// All in one request: one wait for the kernel (taps: cheap under RTNL).
    Together,
    /// One request per link: RTNL is released between them (bridges: each holds it for an
    /// RCU grace period).
    OneByOne,
}

/// The background deleter of parked links.
pub struct Reaper {
    queue: Option<Sender<Vec<u32>>>,
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").finish_non_exhaustive()
    }
}

impl Reaper {
    /// Starts the reaper thread with a netlink socket opened here, in the calling thread's
    /// network namespace (a socket stays in the namespace it was opened in).
    pub fn spawn(batching: Batching) -> virtnet_host::Result<Reaper> {
        let netlink = Netlink::open()?;
        let (queue, jobs) = mpsc::channel();
        let pending = Arc::new(Pending::default());
        let counter = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("link-reaper".into())
            .spawn(move || reap(netlink, batching, &jobs, &counter))
            .map_err(|e| virtnet_host::HostError::new("start the link reaper", "", e))?;
        Ok(Reaper {
            queue: Some(queue),
            pending,
            thread: Some(thread),
        })
    }

    /// Queues parked links for deletion. Returns them back when the reaper is gone (its
    /// thread panicked): the caller then deletes them itself.
    pub fn delete(&self, indexes: Vec<u32>) -> Result<(), Vec<u32>> {
        if indexes.is_empty() {
            return Ok(());
        }
        let n = indexes.len();
        self.pending.add(n);
        let Some(queue) = &self.queue else {
            self.pending.done(n);
            return Err(indexes);
        };
        queue.send(indexes).map_err(|back| {
            self.pending.done(n);
            back.0
        })
    }

    /// Blocks until every queued deletion has been done.
    pub fn wait_idle(&self) {
        self.pending.wait_idle();
    }
}

impl Drop for Reaper {
    /// Finishes the queued deletions: a clean stop of virtnetd leaves no parked link.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reap(mut netlink: Netlink, batching: Batching, jobs: &Receiver<Vec<u32>>, pending: &Pending) {
    while let Ok(mut batch) = jobs.recv() {
        if batching == Batching::OneByOne {
            for &index in &batch {
                let t0 = Instant::now();
                match netlink.delete_link(index) {
                    Ok(()) => debug!(
                        links = 1,
                        elapsed_us = t0.elapsed().as_micros() as u64,
                        "parked link deleted"
                    ),
                    Err(e) => warn!(error = %e, "could not delete a parked link"),
                }
                pending.done(1);
            }
            continue;
        }
        // Everything queued meanwhile goes in the same deletion: one wait for the kernel.
        while let Ok(more) = jobs.try_recv() {
            batch.extend(more);
        }
        let t0 = Instant::now();
        match netlink.delete_links(&batch) {
            Ok(()) => debug!(
                links = batch.len(),
                elapsed_us = t0.elapsed().as_micros() as u64,
                "parked links deleted"
            ),
            // One link that cannot go must not keep the others: each on its own, then.
            // Those that still fail stay parked (down, without addresses or ports) until the
            // next start-up removes them as leftovers.
            Err(e) if batch.len() > 1 => {
                warn!(error = %e, "batched deletion of parked links failed; deleting them one by one");
                for &index in &batch {
                    if let Err(e) = netlink.delete_link(index) {
                        warn!(error = %e, "could not delete a parked link");
                    }
                }
            }
            Err(e) => warn!(error = %e, "could not delete a parked link"),
        }
        pending.done(batch.len());
    }
}
