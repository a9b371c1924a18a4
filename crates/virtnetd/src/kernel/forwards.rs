//! Port forwards in the kernel: elements of the forward maps of `inet virtnet` (see
//! `virtnet_plan::forward`), sent straight over nfnetlink so that a change costs the same with
//! ten forwards or ten thousand. Only the elements that differ from what was applied change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use tracing::warn;
use virtnet_host::nft_set::key_bytes;
use virtnet_host::{Field, SetChange, SetElement};
use virtnet_plan::firewall::TABLE_NAME;
use virtnet_plan::forward::ForwardEntry;

use super::{host, Kernel};
use crate::error::Result;

/// Elements per nfnetlink batch.
const CHUNK: usize = 1000;

/// The forwards applied, by network.
pub type AppliedForwards = BTreeMap<String, BTreeSet<ForwardEntry>>;

/// A forward's element over nfnetlink: the key (listen address, protocol, port) and, for
/// [`SetChange::Create`], the value (guest address, port).
fn element(e: &ForwardEntry, with_data: bool) -> SetElement {
    let mut key = Vec::new();
    if let Some(l) = e.listen {
        key.push(address(l));
    }
    key.push(Field::InetProto(if e.proto == "tcp" {
        libc::IPPROTO_TCP as u8
    } else {
        libc::IPPROTO_UDP as u8
    }));
    key.push(Field::Service(e.port));
    SetElement {
        set: e.map().to_string(),
        key: key_bytes(&key),
        key_end: None,
        flags: 0,
        data: with_data.then(|| key_bytes(&[address(e.to), Field::Service(e.to_port)])),
    }
}

fn address(a: IpAddr) -> Field {
    match a {
        IpAddr::V4(a) => Field::Ipv4(a),
        IpAddr::V6(a) => Field::Ipv6(a),
    }
}

impl Kernel {
    /// Lets the new connections `network`'s port forwards send into its guests through
    /// other tables' forward chains (a host firewall whose forward chain drops all but
    /// replies, as ufw's does): refused with the error naming the table, chain and rule in
    /// the way unless `--firewall-integration` lets virtnet add an accept there, which it
    /// then does. Nothing to do for a network that is not running.
    pub fn let_forwards_in(&mut self, network: &str) -> Result<()> {
        let Some(fw) = self.applied.get(network) else {
            return Ok(());
        };
        if self.coexist.lets_in(network) {
            return Ok(()); // looked at with its first forward, followed since
        }
        let g = super::coexist::guarded_with_forwards(network, fw);
        self.coexist.check(&g)?;
        self.coexist.guard(&g)?;
        Ok(())
    }

    /// Makes the kernel hold exactly `wanted` as the forwards of `network` (an active network):
    /// elements that went or changed are deleted, new or changed ones added. If virtnet's table
    /// is gone, it is rebuilt whole, forwards included.
    pub fn set_forwards(&mut self, network: &str, wanted: BTreeSet<ForwardEntry>) -> Result<()> {
        if !self.applied.contains_key(network) {
            // Not running: nothing in the kernel; the forwards go in when it starts.
            self.forwards.remove(network);
            return Ok(());
        }
        if !wanted.is_empty() {
            // The network runs already: a firewall in the way is reported, not refused.
            if let Err(e) = self.let_forwards_in(network) {
                warn!(network, error = %e, "another firewall drops the port forwards' connections");
            }
        }
        let old = self.forwards.get(network).cloned().unwrap_or_default();
        let gone: Vec<SetElement> = old.difference(&wanted).map(|e| element(e, false)).collect();
        let new: Vec<SetElement> = wanted.difference(&old).map(|e| element(e, true)).collect();
        self.forwards.insert(network.to_string(), wanted);
        let changed = self
            .apply_chunked(SetChange::Delete, &gone)
            .and_then(|()| self.apply_chunked(SetChange::Create, &new));
        if let Err(e) = changed {
            warn!(network, error = %e, "cannot change the forward maps; rebuilding virtnet's table");
            self.rebuild_firewall()?;
        }
        Ok(())
    }

    /// Adds `entries` (one forward's) to the forwards of `network` when it is active: one
    /// nfnetlink batch, whatever the maps hold. If that fails, virtnet's table is rebuilt whole.
    pub fn add_forwards(&mut self, network: &str, entries: Vec<ForwardEntry>) -> Result<()> {
        if !self.applied.contains_key(network) {
            return Ok(());
        }
        let applied = self.forwards.entry(network.to_string()).or_default();
        let new: Vec<SetElement> = entries
            .iter()
            .filter(|e| !applied.contains(e))
            .map(|e| element(e, true))
            .collect();
        applied.extend(entries);
        self.apply_or_rebuild(network, SetChange::Create, &new)
    }

    /// Removes the elements of `network`'s forwards for which `gone` holds (one forward's:
    /// its keys are its own).
    pub fn remove_forwards_where(
        &mut self,
        network: &str,
        gone: impl Fn(&ForwardEntry) -> bool,
    ) -> Result<()> {
        let Some(applied) = self.forwards.get_mut(network) else {
            return Ok(());
        };
        let mut removed = Vec::new();
        applied.retain(|e| {
            let keep = !gone(e);
            if !keep {
                removed.push(element(e, false));
            }
            keep
        });
        self.apply_or_rebuild(network, SetChange::Delete, &removed)
    }

    /// Applies `elements`; if the kernel refuses, rebuilds virtnet's table from what is
    /// applied (forwards included).
    fn apply_or_rebuild(
        &mut self,
        network: &str,
        change: SetChange,
        elements: &[SetElement],
    ) -> Result<()> {
        if let Err(e) = self.apply_chunked(change, elements) {
            warn!(network, error = %e, "cannot change the forward maps; rebuilding virtnet's table");
            self.rebuild_firewall()?;
        }
        Ok(())
    }

    /// Removes the forwards of stopped networks from the maps (best effort: a table that lost
    /// them already is fine).
    pub(super) fn remove_forwards(&mut self, networks: &[&str]) {
        let mut gone = Vec::new();
        for n in networks {
            if let Some(entries) = self.forwards.remove(*n) {
                gone.extend(entries.iter().map(|e| element(e, false)));
            }
        }
        if let Err(e) = self.apply_chunked(SetChange::Delete, &gone) {
            warn!(error = %e, "some forward elements were already gone");
        }
    }

    /// Puts every applied forward back, after the table was rebuilt.
    pub(super) fn reinstall_forwards(&mut self) -> Result<()> {
        self.forwards
            .retain(|network, _| self.applied.contains_key(network));
        let all: Vec<SetElement> = self
            .forwards
            .values()
            .flatten()
            .map(|e| element(e, true))
            .collect();
        self.apply_chunked(SetChange::Create, &all)
            .map_err(host("install the port forwards"))
    }

    /// Applies `elements` in batches of [`CHUNK`]: one batch is one `send`, which the kernel
    /// refuses beyond the socket's send buffer (~200 KiB; a forward's element is ~60 bytes).
    /// A forward-add is one batch; only a network starting with thousands of forwards (or a
    /// rebuild) takes several.
    fn apply_chunked(
        &mut self,
        change: SetChange,
        elements: &[SetElement],
    ) -> std::result::Result<(), virtnet_host::HostError> {
        for chunk in elements.chunks(CHUNK) {
            self.sets.apply(TABLE_NAME, change, chunk)?;
        }
        Ok(())
    }

    /// The forwards applied to `network`, as the kernel has them (for `forward-list`).
    pub fn applied_forwards(&self, network: &str) -> BTreeSet<ForwardEntry> {
        self.forwards.get(network).cloned().unwrap_or_default()
    }
}
