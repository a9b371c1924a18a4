//! Firewall drops per reason: the named counters of virtnet's own table
//! ([`virtnet_plan::firewall::DROP_COUNTERS`]), read with one nfnetlink dump per scrape.

use std::collections::BTreeMap;

use virtnet_host::nft_counters;
use virtnet_host::nft_set::NFPROTO_INET;
use virtnet_plan::firewall::{DROP_COUNTERS, TABLE_NAME};

use super::encode::{Encoder, Kind};

/// Packets dropped or rejected, by reason label, from one nfnetlink dump of the table's
/// named counters; `None` when they cannot be read (logged at debug level: a scrape goes on).
/// Empty when the table does not exist (no network ever started).
pub(super) fn read_drops() -> Option<BTreeMap<&'static str, u64>> {
    let counters = match nft_counters::named_counters(NFPROTO_INET, TABLE_NAME) {
        Ok(counters) => counters,
        Err(error) => {
            tracing::debug!(%error, "metrics: cannot read the firewall's counters");
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for (name, packets) in counters {
        if let Some((_, reason)) = DROP_COUNTERS.iter().find(|(n, _)| *n == name) {
            out.insert(*reason, packets);
        }
    }
    Some(out)
}

/// Writes the drops family.
pub(super) fn encode(e: &mut Encoder, drops: Option<&BTreeMap<&'static str, u64>>) {
    let name = "virtnet_firewall_drops_total";
    e.family(
        name,
        Kind::Counter,
        "Packets virtnet's firewall dropped or rejected, by reason (host-wide: the rules are \
         shared by every network).",
    );
    if let Some(drops) = drops {
        for (reason, v) in drops {
            e.sample(name, &[("reason", reason)], v);
        }
    }
}
