//! The daemon's own metrics: API request latency per verb, store commit latency, reconcile
//! duration and build information.
//!
//! They are recorded where the work happens (the API's `trace` middleware, the store's
//! commit, start-up's reconcile), which have no handle on the daemon's state: so they live in
//! one process-wide [`DAEMON`] (one daemon per process).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use virtnet_dns::Histogram;

use super::encode::{Encoder, Kind};

/// The daemon's metrics.
pub static DAEMON: LazyLock<DaemonMetrics> = LazyLock::new(DaemonMetrics::default);

/// Route label of a request that matched no route (its path is not used as a label: any
/// client could make the series unbounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency histograms of the daemon's work.
#[derive(Debug, Default)]
pub struct DaemonMetrics {
    /// API requests by (method, route template).
    requests: RwLock<BTreeMap<(String, String), Arc<Histogram>>>,
    /// Durable commits of the store.
    pub store_commit: Histogram,
    /// Reconciles of the kernel with the store (at start-up).
    pub reconcile: Histogram,
}

impl DaemonMetrics {
    /// Records one API request's time to its answer. `route` is the matched route's template
    /// (`/v1/networks/:id`) or [`UNMATCHED_ROUTE`]: the label set stays bounded.
    pub fn request(&self, method: &str, route: &str, elapsed: Duration) {
        let key = (method.to_string(), route.to_string());
        let found = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let histogram = match found {
            Some(h) => h,
            None => self
                .requests
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .clone(),
        };
        histogram.observe(elapsed);
    }

    /// Writes the daemon's families.
    pub(super) fn encode(&self, e: &mut Encoder) {
        let name = "virtnet_build_info";
        e.family(
            name,
            Kind::Gauge,
            "The running virtnetd's version (value 1).",
        );
        e.sample(name, &[("version", env!("CARGO_PKG_VERSION"))], 1);
        let name = "virtnet_api_request_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Time from an API request's arrival to its answer, by method and route.",
        );
        let requests = self.requests.read().unwrap_or_else(|e| e.into_inner());
        for ((method, route), h) in requests.iter() {
            e.histogram(name, &[("method", method), ("route", route)], &h.snapshot());
        }
        drop(requests);
        let name = "virtnet_store_commit_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Time of the store's durable commits (fsync included).",
        );
        e.histogram(name, &[], &self.store_commit.snapshot());
        let name = "virtnet_reconcile_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Time of the reconciles of the kernel with the store (daemon start-up).",
        );
        e.histogram(name, &[], &self.reconcile.snapshot());
    }
}
