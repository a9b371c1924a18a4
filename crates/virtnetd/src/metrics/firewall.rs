//! Firewall drops per reason: the named counters of virtnet's own table
//! ([`virtnet_plan::firewall::DROP_COUNTERS`]), read with one `list counters` per scrape.

use std::collections::BTreeMap;

use virtnet_host::Nftables;
use virtnet_plan::firewall::{DROP_COUNTERS, TABLE};

use super::encode::{Encoder, Kind};

/// Packets dropped or rejected, by reason label; `None` when the table does not exist (no
/// network ever started) or cannot be read (logged at debug level: a scrape goes on).
pub(super) fn read_drops(nft: &mut Nftables) -> Option<BTreeMap<&'static str, u64>> {
    nft.set_json(true);
    let listed = nft.run(&format!("list counters table {TABLE}"));
    nft.set_json(false);
    let text = match listed {
        Ok(text) => text,
        Err(error) => {
            tracing::debug!(%error, "metrics: cannot list the firewall's counters");
            return None;
        }
    };
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut out = BTreeMap::new();
    for item in json["nftables"].as_array()? {
        let counter = &item["counter"];
        let (Some(name), Some(packets)) = (counter["name"].as_str(), counter["packets"].as_u64())
        else {
            continue;
        };
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
