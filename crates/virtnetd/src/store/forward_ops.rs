//! Port-forward changes as small records of their own, so that `forward-add` and
//! `forward-del` write what changed instead of the whole definition.
//!
//! A network's forwards live in its definitions (they show in `net-dumpxml` and round-trip
//! through `net-define`), and a definition is stored whole, as its XML. Rewriting it for each
//! forward made the 10,000th `forward-add` cost ~30 times the first. Instead, a forward change
//! appends one [`ForwardOp`] to table `forward_ops` under `"<network>/<sequence>"` (a network
//! name has no `/`); reading the store replays a network's ops, in order, on its record. The
//! next write of the record itself (any other change of the network) holds every forward, so
//! it deletes the network's ops in the same transaction: ops only ever describe changes made
//! after the record they follow.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use virtnet_model::portforward::HostProto;
use virtnet_model::PortForward;

use super::Record;
use crate::error::{Error, Result};

/// `"<network>/<sequence, 20 digits>"` → JSON [`ForwardOp`].
pub(super) const FORWARD_OPS: TableDefinition<&str, &[u8]> = TableDefinition::new("forward_ops");

/// One change of a network's forwards, applied to each of its definitions (the persistent and
/// the live one) as `forward-add` and `forward-del` apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardOp {
    /// `forward-add`: the forward is appended.
    Add(PortForward),
    /// `forward-del`: the forward of `proto` whose range holds `port` on `listen` (`None`:
    /// every host address) is removed.
    Remove {
        /// Its protocol.
        proto: HostProto,
        /// A port of its range.
        port: u16,
        /// Its listen address.
        listen: Option<IpAddr>,
    },
}

impl ForwardOp {
    /// Applies the change to one definition's forwards; true when they changed.
    pub fn apply(&self, forwards: &mut Vec<PortForward>) -> bool {
        match self {
            ForwardOp::Add(f) => {
                forwards.push(f.clone());
                true
            }
            ForwardOp::Remove {
                proto,
                port,
                listen,
            } => {
                let before = forwards.len();
                forwards.retain(|f| !f.is_at(*proto, *port, *listen));
                forwards.len() != before
            }
        }
    }

    /// Applies the change to every definition of `record`; true when any changed (the record's
    /// generation then moves on, as for any change).
    pub fn apply_to(&self, record: &mut Record) -> bool {
        let mut changed = false;
        for def in [&mut record.config, &mut record.live].into_iter().flatten() {
            // Changed on a copy first: a definition the op leaves alone stays shared.
            let mut forwards = def.forwards.clone();
            if self.apply(&mut forwards) {
                Arc::make_mut(def).forwards = forwards;
                changed = true;
            }
        }
        if changed {
            // Both got the same change: one copy again.
            record.share_definitions();
            record.generation += 1;
        }
        changed
    }
}

/// The key range of `network`'s ops: from `"<network>/"` up to `"<network>0"` (`'0'` follows
/// `'/'`).
fn range_of(network: &str) -> (String, String) {
    (format!("{network}/"), format!("{network}0"))
}

fn key(network: &str, seq: u64) -> String {
    format!("{network}/{seq:020}")
}

/// The sequence numbers of new ops: one above every stored one.
#[derive(Debug, Default)]
pub(super) struct Sequence(AtomicU64);

impl Sequence {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Moves past `seq` (read from the store).
    fn past(&self, seq: u64) {
        self.0.fetch_max(seq + 1, Ordering::Relaxed);
    }
}

/// Replays every stored op on `records` (in key order: per network, oldest first) and moves
/// `sequence` past them. An op that does not decode, or whose network has no readable record,
/// is skipped with a warning: it cannot be applied, and the next write of the network's
/// record removes it.
pub(super) fn replay(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    records: &mut std::collections::BTreeMap<String, Record>,
    sequence: &Sequence,
) -> Result<()> {
    let ctx = "cannot read the port forwards' changes";
    for item in table.iter().map_err(|e| Error::store(ctx, e))? {
        let (k, v) = item.map_err(|e| Error::store(ctx, e))?;
        let Some((network, seq)) = k.value().rsplit_once('/') else {
            continue;
        };
        if let Ok(seq) = seq.parse::<u64>() {
            sequence.past(seq);
        }
        let op: ForwardOp = match serde_json::from_slice(v.value()) {
            Ok(op) => op,
            Err(e) => {
                tracing::warn!(network, error = %e, "a stored port-forward change is unreadable; skipped");
                continue;
            }
        };
        match records.get_mut(network) {
            Some(record) => {
                op.apply_to(record);
            }
            None => tracing::warn!(
                network,
                "a port-forward change of a network without a readable record; skipped"
            ),
        }
    }
    Ok(())
}

/// Appends `op` for `network` in `table` (the caller commits).
pub(super) fn append(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    sequence: &Sequence,
    network: &str,
    op: &ForwardOp,
) -> Result<()> {
    let ctx = || format!("cannot store a port-forward change of network '{network}'");
    let bytes = serde_json::to_vec(op).map_err(|source| Error::Record {
        context: ctx(),
        source,
    })?;
    table
        .insert(key(network, sequence.next()).as_str(), bytes.as_slice())
        .map_err(|e| Error::store(ctx(), e))?;
    Ok(())
}

/// Deletes `network`'s ops from `table` (its record was just written whole, or deleted).
pub(super) fn clear(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    network: &str,
) -> Result<()> {
    let (from, to) = range_of(network);
    table
        .retain_in(from.as_str()..to.as_str(), |_, _| false)
        .map_err(|e| {
            Error::store(
                format!("cannot clear the port-forward changes of network '{network}'"),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_range_holds_its_ops_and_no_other_networks() {
        let (from, to) = range_of("web");
        let inside = |k: &str| from.as_str() <= k && k < to.as_str();
        assert!(inside(&key("web", 0)));
        assert!(inside(&key("web", u64::MAX)));
        assert!(!inside(&key("web2", 1)));
        assert!(!inside(&key("we", 1)));
        assert!(!inside(&key("web-a", 1)));
        assert!(!inside("web"));
    }

    #[test]
    fn ops_apply_as_forward_add_and_del_do() {
        let fwd: PortForward = serde_json::from_str(
            r#"{"proto": "tcp", "ports": {"start": 80, "end": 89}, "to": {"address": "10.0.0.5"}}"#,
        )
        .expect("forward");
        let mut forwards = Vec::new();
        assert!(ForwardOp::Add(fwd.clone()).apply(&mut forwards));
        let other_listen = ForwardOp::Remove {
            proto: HostProto::Tcp,
            port: 85,
            listen: Some("10.1.1.1".parse().expect("ip")),
        };
        assert!(!other_listen.apply(&mut forwards));
        let del = ForwardOp::Remove {
            proto: HostProto::Tcp,
            port: 85,
            listen: None,
        };
        let json = serde_json::to_string(&del).expect("encode");
        let back: ForwardOp = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, del);
        assert!(back.apply(&mut forwards));
        assert!(forwards.is_empty());
    }

    /// A running network's two definitions are one shared copy; an op that changes both
    /// keeps it one, an op that changes nothing copies nothing.
    #[test]
    fn ops_keep_a_running_networks_one_copy_of_its_definition() {
        let net = Arc::new(virtnet_model::Network::named("web"));
        let mut record = Record {
            config: Some(Arc::clone(&net)),
            live: Some(net),
            autostart: false,
            generation: 1,
        };
        let fwd: PortForward = serde_json::from_str(
            r#"{"proto": "udp", "ports": {"start": 53, "end": 53}, "to": {"address": "10.0.0.5"}}"#,
        )
        .expect("forward");
        let shared = |r: &Record| match (&r.config, &r.live) {
            (Some(c), Some(l)) => Arc::ptr_eq(c, l),
            _ => false,
        };
        let nothing = ForwardOp::Remove {
            proto: HostProto::Udp,
            port: 53,
            listen: None,
        };
        assert!(!nothing.apply_to(&mut record));
        assert!(shared(&record) && record.generation == 1);
        assert!(ForwardOp::Add(fwd).apply_to(&mut record));
        assert!(shared(&record), "the same change made two copies");
        assert_eq!(record.config.as_ref().map(|c| c.forwards.len()), Some(1));
        assert_eq!(record.generation, 2);
    }
}
