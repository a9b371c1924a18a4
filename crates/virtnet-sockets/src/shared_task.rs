//! One state and the one background task that serves it, started by the first caller that
//! needs them and stopped when their owner is dropped: the daemon's shared-socket servers
//! (router advertisements, DHCPv6) open their socket only once a network needs it.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::JoinHandle;

/// See the module docs.
pub struct SharedTask<S> {
    running: Mutex<Option<(Arc<S>, JoinHandle<()>)>>,
}

impl<S> Default for SharedTask<S> {
    fn default() -> Self {
        SharedTask {
            running: Mutex::new(None),
        }
    }
}

impl<S> SharedTask<S> {
    fn lock(&self) -> MutexGuard<'_, Option<(Arc<S>, JoinHandle<()>)>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, when it was started.
    pub fn get(&self) -> Option<Arc<S>> {
        self.lock().as_ref().map(|(s, _)| s.clone())
    }

    /// The state, made by `make` and served by a task running `serve` (spawned on the current
    /// tokio runtime) the first time. A failing `make` starts nothing.
    pub fn get_or_start<F>(
        &self,
        make: impl FnOnce() -> io::Result<S>,
        serve: impl FnOnce(Arc<S>) -> F,
    ) -> io::Result<Arc<S>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut running = self.lock();
        if let Some((state, _)) = running.as_ref() {
            return Ok(state.clone());
        }
        let state = Arc::new(make()?);
        let task = tokio::spawn(serve(state.clone()));
        *running = Some((state.clone(), task));
        Ok(state)
    }
}

impl<S> Drop for SharedTask<S> {
    fn drop(&mut self) {
        if let Some((_, task)) = self.lock().take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_once_and_stops_when_dropped() {
        let shared: SharedTask<u32> = SharedTask::default();
        assert!(shared.get().is_none());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let a = shared
            .get_or_start(
                || Ok(7),
                |_| async move {
                    let _keep = tx;
                    std::future::pending::<()>().await
                },
            )
            .expect("start");
        let b = shared
            .get_or_start(|| Err(io::Error::other("not again")), |_| async {})
            .expect("running already");
        assert!(Arc::ptr_eq(&a, &b) && *a == 7);
        drop(shared);
        // The task was aborted: its sender is gone.
        assert!(rx.await.is_err());
        let failing: SharedTask<u32> = SharedTask::default();
        assert!(failing
            .get_or_start(|| Err(io::Error::other("no socket")), |_| async {})
            .is_err());
        assert!(failing.get().is_none());
    }
}
