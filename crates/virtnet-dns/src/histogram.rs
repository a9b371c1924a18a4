//! A lock-free latency histogram with fixed bucket bounds, recorded from any thread and read
//! by a metrics scrape (`virtnetd`'s `/metrics` renders it as a Prometheus histogram).
//!
//! It lives here because the DNS server records its forwarded queries' latency with it; the
//! daemon reuses the same type for its own request, commit and reconcile latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: 100 µs to 10 s, roughly ×2.5 apart (cumulative
/// counts are derived at read time; `+Inf` is the total count).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// Observations of a duration, by bucket, with their count and sum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most `LATENCY_BUCKETS[i]` and above the previous bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Every observation (the `+Inf` bucket).
    count: AtomicU64,
    /// Sum of the observations, in nanoseconds.
    sum_ns: AtomicU64,
}

/// What a [`Histogram`] held when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Cumulative counts: observations at most `LATENCY_BUCKETS[i]`.
    pub cumulative: [u64; LATENCY_BUCKETS.len()],
    /// Every observation.
    pub count: u64,
    /// Sum of the observations, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now (each counter read once; a concurrent observation may show in the
    /// count and not yet in its bucket, which Prometheus tolerates as a scrape race).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            ..Default::default()
        };
        let mut running = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            running += b.load(Ordering::Relaxed);
            out.cumulative[i] = running;
        }
        // Keep the exposition monotonic whatever the race: `+Inf` never below a bucket.
        out.count = out.count.max(running);
        out
    }
}

impl HistogramSnapshot {
    /// Adds another snapshot's counts (several servers summed into one series).
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.cumulative.iter_mut().zip(other.cumulative) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1, "50 µs <= 100 µs");
        assert_eq!(s.cumulative[4], 1, "3 ms > 2.5 ms");
        assert_eq!(s.cumulative[5], 2, "3 ms <= 5 ms");
        assert_eq!(s.cumulative[11], 2, "60 s only in +Inf");
        assert_eq!(s.sum_ns, 60_003_050_000);
    }
}
