//! The embedded transactional store: one redb file, `<state-dir>/virtnet.redb`.
//!
//! Layout:
//! - table `networks`: network name → JSON [`Record`] (`{config, live, autostart, generation}`);
//! - table `meta`: `format` (layout version of this file) and `boot_id` (the kernel boot the
//!   live definitions belong to);
//! - table `leases`: `<network>\n<client key>` → JSON DHCP lease. A lease is written before the
//!   DHCP server acknowledges it, so a client keeps its address across daemon restarts. Leases
//!   outlive `net-destroy` (the guests keep their addresses over a network restart, as with
//!   libvirt's lease files) and go with `net-undefine`;
//! - table `ports`: tap name → JSON guest port (`attach-interface`), written before the port is
//!   reported created, so ports survive daemon restarts.
//! - table `host_bridges`: bridge name → JSON host bridge (`iface-bridge`: the NIC's snapshot and
//!   the phase), written before each step changes the kernel, so a crash is undone at start.
//!
//! Durability: every change is one redb write transaction committed with
//! [`Durability::Immediate`] and two-phase commit, and the caller answers the client only after
//! [`Store::put`] / [`Store::delete`] returned. redb's copy-on-write B-trees never overwrite the
//! last committed root, so a crash (`kill -9`, power loss) at any moment leaves either the old or
//! the new state, never a mix, and nothing acknowledged is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use virtnet_model::Network;

use crate::error::{Error, Result};

/// File name of the store inside the state directory.
pub const DB_FILE: &str = "virtnet.redb";

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const PORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("ports");
const HOST_BRIDGES: TableDefinition<&str, &[u8]> = TableDefinition::new("host_bridges");
const META_FORMAT: &str = "format";
const META_BOOT_ID: &str = "boot_id";
/// Layout version written by this daemon; a newer one is refused rather than misread.
const FORMAT_VERSION: &str = "1";

/// Everything the daemon knows about one network, as stored. This is libvirt's object model:
/// `config` is the persistent definition (libvirt's `def`/`newDef` of an inactive/active
/// network), `live` the definition the network runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The persistent definition; `None` for a transient network.
    #[serde(with = "stored_xml")]
    pub config: Option<Network>,
    /// The running definition; `None` when the network is inactive.
    #[serde(with = "stored_xml")]
    pub live: Option<Network>,
    /// Start the network when the daemon starts (persistent networks only).
    #[serde(default)]
    pub autostart: bool,
    /// Bumped by every change of the record; the API's ETag.
    pub generation: u64,
}

impl Record {
    /// Has a live definition.
    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }

    /// Has a persistent definition.
    pub fn is_persistent(&self) -> bool {
        self.config.is_some()
    }

    /// The definition shown by default: the live one when active, else the persistent one.
    pub fn shown(&self) -> Option<&Network> {
        self.live.as_ref().or(self.config.as_ref())
    }

    /// The network's UUID (both definitions carry the same one once prepared).
    pub fn uuid(&self) -> Option<Uuid> {
        self.shown().and_then(|n| n.uuid)
    }

    /// The network's definitions, live and persistent (one or two).
    pub fn defs(&self) -> impl Iterator<Item = &Network> {
        self.live.iter().chain(self.config.iter())
    }
}

/// What happened to the stored state when the daemon started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// The host was rebooted since the last run: live definitions were dropped.
    pub rebooted: bool,
    /// Networks that became inactive because of the reboot.
    pub deactivated: Vec<String>,
    /// Transient networks removed because of the reboot.
    pub removed: Vec<String>,
}

/// The open store. redb serialises write transactions itself; the service adds its own lock
/// so that check-then-write sequences are atomic too.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `path` and loads every record.
    ///
    /// `boot_id` is the current kernel boot id, when known. If the store was last used during
    /// another boot, the networks it lists as running are not running any more: their live
    /// definitions are dropped and transient networks (which only existed while running) are
    /// deleted, in the same transaction that records the new boot id.
    pub fn open(
        path: &Path,
        boot_id: Option<&str>,
    ) -> Result<(Store, BTreeMap<String, Record>, StartReport)> {
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => Error::Startup(format!(
                "store {} is already open in another process",
                path.display()
            )),
            other => Error::store(format!("cannot open store {}", path.display()), other),
        })?;
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        let (records, report) = store.start(boot_id)?;
        Ok((store, records, report))
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The start-up transaction: checks the format, loads the records, applies the reboot
    /// rule and records the boot id.
    fn start(&self, boot_id: Option<&str>) -> Result<(BTreeMap<String, Record>, StartReport)> {
        let ctx = |what: &str| format!("{what} in store {}", self.path.display());
        let txn = self.begin_write()?;
        let mut report = StartReport::default();
        let mut records = BTreeMap::new();
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::store(ctx("cannot open table meta"), e))?;
            let format = meta
                .get(META_FORMAT)
                .map_err(|e| Error::store(ctx("cannot read format"), e))?
                .map(|v| v.value().to_string());
            match format.as_deref() {
                None => {
                    meta.insert(META_FORMAT, FORMAT_VERSION)
                        .map_err(|e| Error::store(ctx("cannot write format"), e))?;
                }
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(Error::Startup(format!(
                        "store {} has format {other}, this virtnetd reads format \
                         {FORMAT_VERSION}: refusing to touch it",
                        self.path.display()
                    )))
                }
            }
            let stored_boot = meta
                .get(META_BOOT_ID)
                .map_err(|e| Error::store(ctx("cannot read boot id"), e))?
                .map(|v| v.value().to_string());
            // No stored boot id means a new store: nothing can be running from an older boot.
            report.rebooted =
                matches!((&stored_boot, boot_id), (Some(old), Some(new)) if old != new);
            if let Some(new) = boot_id {
                meta.insert(META_BOOT_ID, new)
                    .map_err(|e| Error::store(ctx("cannot write boot id"), e))?;
            }

            let mut table = txn
                .open_table(NETWORKS)
                .map_err(|e| Error::store(ctx("cannot open table networks"), e))?;
            for item in table
                .iter()
                .map_err(|e| Error::store(ctx("cannot list networks"), e))?
            {
                let (key, value) = item.map_err(|e| Error::store(ctx("cannot read network"), e))?;
                let name = key.value().to_string();
                let record = decode(&name, value.value())?;
                records.insert(name, record);
            }
            if report.rebooted {
                for (name, record) in records.iter_mut() {
                    if !record.is_active() {
                        continue;
                    }
                    if record.is_persistent() {
                        record.live = None;
                        record.generation += 1;
                        table
                            .insert(name.as_str(), encode(name, record)?.as_slice())
                            .map_err(|e| Error::store(ctx("cannot write network"), e))?;
                        report.deactivated.push(name.clone());
                    } else {
                        table
                            .remove(name.as_str())
                            .map_err(|e| Error::store(ctx("cannot remove network"), e))?;
                        report.removed.push(name.clone());
                    }
                }
                for name in &report.removed {
                    records.remove(name);
                }
            }
        }
        txn.commit()
            .map_err(|e| Error::store(ctx("cannot commit start-up transaction"), e))?;
        Ok((records, report))
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(|e| {
            Error::store(
                format!("cannot begin transaction on {}", self.path.display()),
                e,
            )
        })?;
        // Immediate: commit() returns only once the data is on disk. Two-phase commit: the new
        // root is made durable before it is pointed at, so recovery never has to trust a
        // checksum to tell a torn commit from a good one.
        txn.set_durability(Durability::Immediate);
        txn.set_two_phase_commit(true);
        Ok(txn)
    }

    /// Writes one record durably (one transaction).
    pub fn put(&self, name: &str, record: &Record) -> Result<()> {
        let bytes = encode(name, record)?;
        let ctx = || format!("cannot store network '{name}' in {}", self.path.display());
        let txn = self.begin_write()?;
        {
            let mut table = txn
                .open_table(NETWORKS)
                .map_err(|e| Error::store(ctx(), e))?;
            table
                .insert(name, bytes.as_slice())
                .map_err(|e| Error::store(ctx(), e))?;
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Deletes one record durably (one transaction).
    pub fn delete(&self, name: &str) -> Result<()> {
        let ctx = || {
            format!(
                "cannot delete network '{name}' from {}",
                self.path.display()
            )
        };
        let txn = self.begin_write()?;
        {
            let mut table = txn
                .open_table(NETWORKS)
                .map_err(|e| Error::store(ctx(), e))?;
            table.remove(name).map_err(|e| Error::store(ctx(), e))?;
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Reads every record (one read transaction: a consistent snapshot).
    pub fn load(&self) -> Result<BTreeMap<String, Record>> {
        let ctx = || format!("cannot read networks from {}", self.path.display());
        let txn = self.db.begin_read().map_err(|e| Error::store(ctx(), e))?;
        let table = txn
            .open_table(NETWORKS)
            .map_err(|e| Error::store(ctx(), e))?;
        let mut out = BTreeMap::new();
        for item in table.iter().map_err(|e| Error::store(ctx(), e))? {
            let (key, value) = item.map_err(|e| Error::store(ctx(), e))?;
            let name = key.value().to_string();
            let record = decode(&name, value.value())?;
            out.insert(name, record);
        }
        Ok(out)
    }
}

/// The lease table's key: network names cannot hold a line break (the model refuses control
/// characters), so `network\n` is a prefix no other network shares.
fn lease_key(network: &str, client: &str) -> String {
    format!("{network}\n{client}")
}

impl Store {
    /// Writes (or replaces) one lease of `network` durably, keyed by `client` (its MAC).
    pub fn put_lease<T: Serialize>(&self, network: &str, client: &str, lease: &T) -> Result<()> {
        self.apply_leases(network, &[(client.to_string(), Some(lease))])
    }

    /// Writes and deletes several leases of `network` in one durable transaction, all or
    /// nothing: `(client, Some(lease))` writes, `(client, None)` deletes.
    pub fn apply_leases<T: Serialize>(
        &self,
        network: &str,
        changes: &[(String, Option<&T>)],
    ) -> Result<()> {
        let ctx = || {
            format!(
                "cannot store {} lease changes on network '{network}'",
                changes.len()
            )
        };
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(LEASES).map_err(|e| Error::store(ctx(), e))?;
            for (client, lease) in changes {
                let key = lease_key(network, client);
                match lease {
                    Some(lease) => {
                        let bytes = serde_json::to_vec(lease).map_err(|source| Error::Record {
                            context: ctx(),
                            source,
                        })?;
                        table
                            .insert(key.as_str(), bytes.as_slice())
                            .map_err(|e| Error::store(ctx(), e))?;
                    }
                    None => {
                        table
                            .remove(key.as_str())
                            .map_err(|e| Error::store(ctx(), e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Deletes one lease durably; deleting an absent lease is not an error.
    pub fn delete_lease(&self, network: &str, client: &str) -> Result<()> {
        self.apply_leases::<()>(network, &[(client.to_string(), None)])
    }

    /// Deletes every lease of `network` (on undefine).
    pub fn delete_leases(&self, network: &str) -> Result<()> {
        let ctx = || format!("cannot delete the leases of network '{network}'");
        let prefix = lease_key(network, "");
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(LEASES).map_err(|e| Error::store(ctx(), e))?;
            let keys: Vec<String> = table
                .range(prefix.as_str()..)
                .map_err(|e| Error::store(ctx(), e))?
                .map_while(|item| {
                    let key = item.ok()?.0.value().to_string();
                    key.starts_with(&prefix).then_some(key)
                })
                .collect();
            for key in keys {
                table
                    .remove(key.as_str())
                    .map_err(|e| Error::store(ctx(), e))?;
            }
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Reads the leases of `network`. A lease that no longer decodes is skipped with a warning
    /// (the client simply asks again) rather than keeping the network from starting.
    pub fn leases<T: serde::de::DeserializeOwned>(&self, network: &str) -> Result<Vec<T>> {
        let ctx = || format!("cannot read the leases of network '{network}'");
        let prefix = lease_key(network, "");
        let txn = self.db.begin_read().map_err(|e| Error::store(ctx(), e))?;
        let table = match txn.open_table(LEASES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Error::store(ctx(), e)),
        };
        let mut out = Vec::new();
        for item in table
            .range(prefix.as_str()..)
            .map_err(|e| Error::store(ctx(), e))?
        {
            let (key, value) = item.map_err(|e| Error::store(ctx(), e))?;
            if !key.value().starts_with(&prefix) {
                break;
            }
            match serde_json::from_slice(value.value()) {
                Ok(lease) => out.push(lease),
                Err(e) => {
                    tracing::warn!(network, key = key.value(), error = %e, "unreadable lease skipped")
                }
            }
        }
        Ok(out)
    }
}

/// A table of JSON records keyed by name (ports, host bridges).
type RecordTable = TableDefinition<'static, &'static str, &'static [u8]>;

impl Store {
    /// Writes (or replaces) one JSON record of `table` durably; `what` names it in errors.
    fn put_record<T: Serialize>(
        &self,
        table: RecordTable,
        what: &str,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let ctx = || format!("cannot store {what} '{key}'");
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Record {
            context: ctx(),
            source,
        })?;
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(table).map_err(|e| Error::store(ctx(), e))?;
            t.insert(key, bytes.as_slice())
                .map_err(|e| Error::store(ctx(), e))?;
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Deletes one record of `table` durably; an absent one is not an error.
    fn delete_record(&self, table: RecordTable, what: &str, key: &str) -> Result<()> {
        let ctx = || format!("cannot delete {what} '{key}'");
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(table).map_err(|e| Error::store(ctx(), e))?;
            t.remove(key).map_err(|e| Error::store(ctx(), e))?;
        }
        txn.commit().map_err(|e| Error::store(ctx(), e))
    }

    /// Reads every record of `table` (one read transaction).
    fn records<T: serde::de::DeserializeOwned>(
        &self,
        table: RecordTable,
        what: &str,
    ) -> Result<Vec<T>> {
        let ctx = || format!("cannot read the {what}s");
        let txn = self.db.begin_read().map_err(|e| Error::store(ctx(), e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Error::store(ctx(), e)),
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| Error::store(ctx(), e))? {
            let (_, value) = item.map_err(|e| Error::store(ctx(), e))?;
            out.push(
                serde_json::from_slice(value.value()).map_err(|source| Error::Record {
                    context: ctx(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Writes (or replaces) one guest port durably.
    pub fn put_port<T: Serialize>(&self, name: &str, port: &T) -> Result<()> {
        self.put_record(PORTS, "port", name, port)
    }

    /// Deletes one guest port durably.
    pub fn delete_port(&self, name: &str) -> Result<()> {
        self.delete_record(PORTS, "port", name)
    }

    /// Reads every guest port.
    pub fn ports<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(PORTS, "port")
    }

    /// Writes (or replaces) one host bridge record (`iface-bridge`) durably.
    pub fn put_host_bridge<T: Serialize>(&self, bridge: &str, record: &T) -> Result<()> {
        self.put_record(HOST_BRIDGES, "host bridge", bridge, record)
    }

    /// Deletes one host bridge record durably.
    pub fn delete_host_bridge(&self, bridge: &str) -> Result<()> {
        self.delete_record(HOST_BRIDGES, "host bridge", bridge)
    }

    /// Reads every host bridge record.
    pub fn host_bridges<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(HOST_BRIDGES, "host bridge")
    }
}

/// Definitions are stored as libvirt network XML, the format virtnet promises to keep reading,
/// rather than as the model's serde form, which may change as the model grows.
mod stored_xml {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use virtnet_model::Network;

    pub fn serialize<S: Serializer>(net: &Option<Network>, s: S) -> Result<S::Ok, S::Error> {
        net.as_ref().map(Network::to_xml).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Network>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|xml| Network::from_xml(&xml).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn encode(name: &str, record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|source| Error::Record {
        context: format!("cannot encode network '{name}'"),
        source,
    })
}

fn decode(name: &str, bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(|source| Error::Record {
        context: format!("stored network '{name}' is unreadable"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, config: bool, live: bool) -> Record {
        let mut net = Network::named(name);
        net.uuid = Some(Uuid::new_v4());
        Record {
            config: config.then(|| net.clone()),
            live: live.then_some(net),
            autostart: false,
            generation: 1,
        }
    }

    #[test]
    fn records_survive_reopen_on_the_same_boot() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
        let path = dir.path().join(DB_FILE);
        {
            let (store, records, _) = Store::open(&path, Some("boot-a"))?;
            assert!(records.is_empty());
            store.put("a", &record("a", true, true))?;
            store.put("t", &record("t", false, true))?;
            store.put("gone", &record("gone", true, false))?;
            store.delete("gone")?;
        }
        let (store, records, report) = Store::open(&path, Some("boot-a"))?;
        assert!(!report.rebooted);
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a", "t"]);
        assert!(records["a"].is_active());
        assert_eq!(store.load()?, records);
        Ok(())
    }

    #[test]
    fn leases_are_kept_per_network_and_survive_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
        let path = dir.path().join(DB_FILE);
        {
            let (store, _, _) = Store::open(&path, Some("boot-a"))?;
            assert!(store.leases::<String>("a")?.is_empty());
            store.put_lease("a", "m1", &"a-1".to_string())?;
            store.put_lease("a", "m2", &"a-2".to_string())?;
            store.put_lease("ab", "m1", &"ab-1".to_string())?;
            store.put_lease("a", "m1", &"a-1b".to_string())?;
            store.delete_lease("a", "m2")?;
            store.delete_lease("a", "absent")?;
        }
        let (store, _, _) = Store::open(&path, Some("boot-a"))?;
        assert_eq!(store.leases::<String>("a")?, ["a-1b"]);
        assert_eq!(store.leases::<String>("ab")?, ["ab-1"]);
        let one = "a-3".to_string();
        store.apply_leases(
            "a",
            &[("m3".to_string(), Some(&one)), ("m1".to_string(), None)],
        )?;
        assert_eq!(store.leases::<String>("a")?, ["a-3"]);
        store.delete_leases("a")?;
        assert!(store.leases::<String>("a")?.is_empty());
        assert_eq!(store.leases::<String>("ab")?, ["ab-1"]);
        Ok(())
    }

    #[test]
    fn a_newer_format_is_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
        let path = dir.path().join(DB_FILE);
        {
            let db = Database::create(&path).map_err(|e| Error::store("create", e))?;
            let txn = db.begin_write().map_err(|e| Error::store("begin", e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| Error::store("meta", e))?;
                meta.insert(META_FORMAT, "99")
                    .map_err(|e| Error::store("insert", e))?;
            }
            txn.commit().map_err(|e| Error::store("commit", e))?;
        }
        match Store::open(&path, None) {
            Err(Error::Startup(message)) => assert!(message.contains("format 99"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_reboot_drops_live_definitions_and_transient_networks() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
        let path = dir.path().join(DB_FILE);
        {
            let (store, _, _) = Store::open(&path, Some("boot-a"))?;
            store.put("a", &record("a", true, true))?;
            store.put("t", &record("t", false, true))?;
            store.put("i", &record("i", true, false))?;
        }
        let (store, records, report) = Store::open(&path, Some("boot-b"))?;
        assert!(report.rebooted);
        assert_eq!(report.deactivated, ["a"]);
        assert_eq!(report.removed, ["t"]);
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a", "i"]);
        assert!(!records["a"].is_active());
        assert_eq!(records["a"].generation, 2);
        assert_eq!(records["i"].generation, 1);
        assert_eq!(store.load()?, records);
        Ok(())
    }
}
