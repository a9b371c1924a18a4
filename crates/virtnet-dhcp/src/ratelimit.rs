//! Per-port token buckets.

use std::collections::HashMap;

/// The bridge port a message came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortId {
    /// The bridge port (interface index) the message's frame was received on.
    Port(u32),
    /// No port is known for the message (sent by the host itself, or its frame's capture was
    /// lost): all such messages share one bucket and one cap.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    last: u64,
}

/// Token buckets keyed by port, refilled once per second (`now` is in seconds). DHCPv4's
/// servers and the DHCPv6 server (`virtnet-dhcp6`) charge their ports with it.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<PortId, Bucket>,
}

/// Buckets idle this long are forgotten (they would be full again anyway).
const IDLE_SECS: u64 = 60;

impl RateLimiter {
    /// Takes one token from `port`'s bucket; false when it is empty.
    pub fn allow(&mut self, port: PortId, now: u64, rate: u32, burst: u32) -> bool {
        let burst = burst.max(1);
        let b = self.buckets.entry(port).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        if now > b.last {
            let elapsed = u32::try_from(now - b.last).unwrap_or(u32::MAX);
            b.tokens = b
                .tokens
                .saturating_add(elapsed.saturating_mul(rate))
                .min(burst);
            b.last = now;
        }
        if b.tokens == 0 {
            return false;
        }
        b.tokens -= 1;
        true
    }

    /// Forgets idle buckets (so the map holds only recently active ports).
    pub fn sweep(&mut self, now: u64) {
        self.buckets
            .retain(|_, b| now.saturating_sub(b.last) < IDLE_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_and_refills() {
        let mut r = RateLimiter::default();
        let p = PortId::Port(3);
        let ok = (0..50).filter(|_| r.allow(p, 100, 20, 40)).count();
        assert_eq!(ok, 40);
        // Another port is unaffected.
        assert!(r.allow(PortId::Port(4), 100, 20, 40));
        // One second later: 20 more.
        let ok = (0..50).filter(|_| r.allow(p, 101, 20, 40)).count();
        assert_eq!(ok, 20);
        r.sweep(1000);
        assert!(r.buckets.is_empty());
    }
}
