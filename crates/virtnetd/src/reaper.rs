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
//! How deletions are grouped is [`Batching`]: taps queued together go in batched deletions of
//! up to [`GROUP`] (one wait for the kernel each; a tap's teardown under RTNL is short, but
//! each waits for an expedited RCU grace period, so the 150 taps a busy minute of detaches
//! parks held RTNL for tens of milliseconds in one piece, and an attach or start waited for
//! all of it); bridges go one per request, because the kernel's bridge teardown
//! waits for an RCU grace period while it holds RTNL (~17 ms here, for each bridge), so a batch
//! of N bridges would hold RTNL N times as long in one piece and every attach, start or
//! address change on the host would wait for all of it. One by one, each waits at most one.
//!
//! When: a deletion holds RTNL, and so does every start, destroy, attach or detach. A reaper
//! that deleted while requests kept coming made each of them wait for the deletion under way
//! (up to one RCU grace period, longer the more links the host has): back-to-back destroys grew
//! from 5 to 9 ms between 10 and 4,000 networks. So a reaper defers its deletions while the
//! kernel layer is busy: it deletes once no kernel request ([`busy`]) has run for [`QUIET`],
//! or when the oldest link it holds has waited [`MAX_DEFERRAL`] (under endless requests the
//! parked links still go, as they did before). A burst of destroys costs each destroy only its
//! own work; the kernel catches up in the first pause.
//!
//! A parked link the reaper did not get to (virtnetd killed) carries virtnet's alias and is
//! removed as a leftover by the next start-up's reconcile.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How long the kernel layer must have been idle before a reaper deletes: well beyond the gap
/// between two back-to-back CLI requests (a process spawn: a few milliseconds, tens on a
/// loaded machine).
pub const QUIET: Duration = Duration::from_millis(200);

/// The longest a queued link waits for a quiet moment; then it is deleted regardless.
pub const MAX_DEFERRAL: Duration = Duration::from_secs(60);

/// Kernel requests under way and when the last one ended (see the module doc). One per
/// process: every kernel handle (networks, guest ports) and every reaper share it.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<(usize, Instant)>,
}

/// A kernel request under way; dropping it ends it.
#[derive(Debug)]
pub struct Busy(&'static Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

impl Activity {
    fn global() -> &'static Activity {
        static ACTIVITY: OnceLock<Activity> = OnceLock::new();
        ACTIVITY.get_or_init(|| Activity {
            state: Mutex::new((0, Instant::now())),
        })
    }

    /// How much longer a reaper must wait for [`QUIET`]; zero when it may delete now.
    fn quiet_in(&self) -> Duration {
        let (running, last) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if running > 0 {
            return QUIET;
        }
        QUIET.saturating_sub(last.elapsed())
    }
}

/// Marks a kernel request (a start, destroy, attach, detach) as under way until the returned
/// guard is dropped: the reapers defer their deletions meanwhile.
pub fn busy() -> Busy {
    let activity = Activity::global();
    activity
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0 += 1;
    Busy(activity)
}

/// How a reaper groups the deletions queued when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Up to [`GROUP`] links per request: one wait for the kernel per group (taps: each is
    /// cheap under RTNL, a group is bounded).
    Together,
    /// One request per link: RTNL is released between them (bridges: each holds it for an
    /// RCU grace period).
    OneByOne,
}

/// The most links one batched deletion ([`Batching::Together`]) takes.
pub const GROUP: usize = 16;

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

/// Links queued for deletion, each with the time it was queued.
type Backlog = VecDeque<(u32, Instant)>;

fn reap(mut netlink: Netlink, batching: Batching, jobs: &Receiver<Vec<u32>>, pending: &Pending) {
    let mut backlog = Backlog::new();
    let mut open = true;
    while open || !backlog.is_empty() {
        if open && backlog.is_empty() {
            match jobs.recv() {
                Ok(batch) => queue(&mut backlog, batch),
                Err(_) => open = false,
            }
            continue;
        }
        // Wait for a quiet moment, taking what is queued meanwhile. A closed queue (the
        // daemon stops) or a link deferred too long does not wait.
        let wait = if open {
            deferral(&backlog)
        } else {
            Duration::ZERO
        };
        if !wait.is_zero() {
            match jobs.recv_timeout(wait) {
                Ok(batch) => queue(&mut backlog, batch),
                Err(RecvTimeoutError::Disconnected) => open = false,
                Err(RecvTimeoutError::Timeout) => {}
            }
            continue;
        }
        while let Ok(more) = jobs.try_recv() {
            queue(&mut backlog, more);
        }
        let batch = next_batch(&mut backlog, batching);
        delete(&mut netlink, batching, &batch);
        pending.done(batch.len());
    }
}

/// Takes the next request's links off the front of the backlog (oldest first).
fn next_batch(backlog: &mut Backlog, batching: Batching) -> Vec<u32> {
    let most = match batching {
        Batching::OneByOne => 1,
        Batching::Together => GROUP,
    };
    let n = most.min(backlog.len());
    backlog.drain(..n).map(|(i, _)| i).collect()
}

fn queue(backlog: &mut Backlog, batch: Vec<u32>) {
    let now = Instant::now();
    backlog.extend(batch.into_iter().map(|i| (i, now)));
}

/// How long the reaper still waits before deleting: until the kernel layer has been quiet
/// for [`QUIET`], but never past the oldest link's [`MAX_DEFERRAL`].
fn deferral(backlog: &Backlog) -> Duration {
    let Some((_, oldest)) = backlog.front() else {
        return Duration::ZERO;
    };
    let left = MAX_DEFERRAL.saturating_sub(oldest.elapsed());
    Activity::global().quiet_in().min(left)
}

fn delete(netlink: &mut Netlink, batching: Batching, batch: &[u32]) {
    if batching == Batching::OneByOne {
        for &index in batch {
            let t0 = Instant::now();
            match netlink.delete_link(index) {
                Ok(()) => debug!(
                    links = 1,
                    elapsed_us = t0.elapsed().as_micros() as u64,
                    "parked link deleted"
                ),
                Err(e) => warn!(error = %e, "could not delete a parked link"),
            }
        }
        return;
    }
    let t0 = Instant::now();
    match netlink.delete_links(batch) {
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
            for &index in batch {
                if let Err(e) = netlink.delete_link(index) {
                    warn!(error = %e, "could not delete a parked link");
                }
            }
        }
        Err(e) => warn!(error = %e, "could not delete a parked link"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_the_oldest_links_and_are_bounded() {
        let mut backlog = Backlog::new();
        queue(&mut backlog, (1..=40).collect());
        assert_eq!(next_batch(&mut backlog, Batching::OneByOne), [1]);
        let group = next_batch(&mut backlog, Batching::Together);
        assert_eq!(group, (2..=17).collect::<Vec<u32>>());
        assert_eq!(next_batch(&mut backlog, Batching::Together).len(), GROUP);
        assert_eq!(
            next_batch(&mut backlog, Batching::Together),
            (34..=40).collect::<Vec<u32>>()
        );
        assert!(next_batch(&mut backlog, Batching::Together).is_empty());
    }
}
