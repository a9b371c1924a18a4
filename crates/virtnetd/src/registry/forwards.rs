//! Port forwards as part of a network's definitions: `forward-add` and `forward-del` change the
//! persistent definition and, for an active network, the live one, in one commit, so the
//! forwards show in `net-dumpxml` and survive restarts (the store keeps the definitions).

use std::collections::HashSet;

use virtnet_model::portforward::check_forwards;
use virtnet_model::PortForward;

use super::{find, NetworkRegistry};
use crate::error::{Error, Result};

impl NetworkRegistry {
    /// Every network's forwards (persistent and live definitions, each forward once), with the
    /// network's name.
    pub fn all_forwards(&self) -> Vec<(String, PortForward)> {
        let mut out: Vec<(String, PortForward)> = Vec::new();
        for (name, record) in self.read().iter() {
            let mut seen: HashSet<&PortForward> = HashSet::new();
            for def in [&record.live, &record.config].into_iter().flatten() {
                for f in &def.forwards {
                    if seen.insert(f) {
                        out.push((name.clone(), f.clone()));
                    }
                }
            }
        }
        out
    }

    /// Changes the forwards of network `id` with `change`, in its persistent definition and in
    /// its live one when it runs. `change` returns false when it had nothing to change in a
    /// definition; when no definition changed, the error is `missing`. Returns the network's
    /// name and whether it is active.
    pub fn change_forwards(
        &self,
        id: &str,
        change: &dyn Fn(&mut Vec<PortForward>) -> bool,
        missing: &dyn Fn() -> Error,
    ) -> Result<(String, bool)> {
        self.with_network(id, |name| {
            let mut record = find(&self.read(), name)?.1.clone();
            let mut changed = false;
            for def in [&mut record.config, &mut record.live].into_iter().flatten() {
                if change(&mut def.forwards) {
                    check_forwards(&def.forwards)?;
                    // The stored form must stay a document `net-define` accepts.
                    def.to_checked_xml()?;
                    changed = true;
                }
            }
            if !changed {
                return Err(missing());
            }
            let active = record.is_active();
            record.generation += 1;
            self.commit(name, Some(record))?;
            Ok((name.to_string(), active))
        })
    }
}
