//! The runtime store: `<run-dir>/runtime.redb`, the records that describe this boot's kernel
//! state only — guest ports (taps) and the hypervisor daemon's network ports.
//!
//! A tap does not outlive the kernel that made it: after a reboot every port is gone, and the
//! start-up reconcile forgets a port whose tap is missing. So these records need to survive a
//! daemon restart or `kill -9` (the kernel's page cache does that), never a power loss (a
//! power loss takes the taps with it). Commits here therefore write without `fsync` — half a
//! millisecond off every `attach-interface` and `detach-interface`, and no wait behind the
//! disk — and the file lives beside the socket in the run directory, as libvirt keeps an
//! active network's status under `/run/libvirt`. A file from another boot (a run directory
//! that is not a tmpfs), or one a power loss tore, is started afresh: none of it can describe
//! a kernel object that still exists. Definitions, leases and host bridges stay in the durable
//! store of the state directory.

use std::fs::OpenOptions;
use std::path::Path;

use redb::backends::FileBackend;
use redb::{ReadableTable, StorageBackend, TableDefinition};

use super::{begin_write, Commit, Store, HYPERVISOR_PORTS, META, META_BOOT_ID, PORTS};
use crate::error::{Error, Result};

/// File name of the runtime store inside the run directory.
pub const RUNTIME_DB_FILE: &str = "runtime.redb";

/// The tables the runtime store holds (the durable store held them before).
const TABLES: [TableDefinition<&str, &[u8]>; 2] = [PORTS, HYPERVISOR_PORTS];

/// A file whose writes reach the kernel's page cache and are never forced to the disk.
#[derive(Debug)]
pub(super) struct Unsynced(FileBackend);

impl Unsynced {
    /// Opens (or creates) the file at `path`.
    pub(super) fn open(path: &Path) -> std::result::Result<Unsynced, redb::DatabaseError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Unsynced(FileBackend::new(file)?))
    }
}

impl StorageBackend for Unsynced {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, len: usize) -> std::result::Result<Vec<u8>, std::io::Error> {
        self.0.read(offset, len)
    }

    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.0.set_len(len)
    }

    /// Nothing to force: see the module comment.
    fn sync_data(&self, _eventual: bool) -> std::result::Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
}

impl Store {
    /// Opens (or creates) the runtime store at `path` for boot `boot_id`, and moves into it
    /// the port records an older virtnetd kept in the durable store `durable`. A file that
    /// cannot be opened (torn by a power loss) is replaced by an empty one; one written
    /// during another boot is emptied.
    pub fn open_runtime(path: &Path, boot_id: Option<&str>, durable: &Store) -> Result<Store> {
        let store = match Store::open_volatile(path) {
            Ok(store) => store,
            Err(e @ Error::Startup(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(store = %path.display(), error = %e, "runtime store unreadable; starting it empty (it describes this boot's taps only)");
                std::fs::remove_file(path)
                    .map_err(|source| Error::io("cannot remove", path, source))?;
                Store::open_volatile(path)?
            }
        };
        store.with_db(|db| store.start_runtime(db, boot_id))?;
        store.take_over_ports(durable)?;
        Ok(store)
    }

    /// Records the boot and empties the tables when they belong to another one.
    fn start_runtime(&self, db: &redb::Database, boot_id: Option<&str>) -> Result<()> {
        let ctx = |what: &str| format!("{what} in store {}", self.path.display());
        let txn = begin_write(db, &self.path, Commit::Checksummed)?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::store(ctx("cannot open table meta"), e))?;
            let stored = meta
                .get(META_BOOT_ID)
                .map_err(|e| Error::store(ctx("cannot read boot id"), e))?
                .map(|v| v.value().to_string());
            if let (Some(old), Some(new)) = (stored.as_deref(), boot_id) {
                if old != new {
                    tracing::info!(store = %self.path.display(), "runtime store of another boot: emptied");
                    for table in TABLES {
                        txn.delete_table(table)
                            .map_err(|e| Error::store(ctx("cannot empty a table"), e))?;
                    }
                }
            }
            if let Some(new) = boot_id {
                meta.insert(META_BOOT_ID, new)
                    .map_err(|e| Error::store(ctx("cannot write boot id"), e))?;
            }
        }
        txn.commit()
            .map_err(|e| Error::store(ctx("cannot commit start-up transaction"), e))
    }

    /// Copies the port tables of `durable` (written there by an older virtnetd) into this
    /// store where a key is not here yet, then deletes them there. Run again after a crash
    /// in between, it copies nothing twice.
    fn take_over_ports(&self, durable: &Store) -> Result<()> {
        let mut moved = 0;
        for table in TABLES {
            let rows = durable.raw_rows(table)?;
            if rows.is_empty() {
                continue;
            }
            moved += rows.len();
            self.with_db(|db| {
                let ctx = || format!("cannot move port records into {}", self.path.display());
                let txn = begin_write(db, &self.path, Commit::Checksummed)?;
                {
                    let mut t = txn.open_table(table).map_err(|e| Error::store(ctx(), e))?;
                    for (key, value) in &rows {
                        let here = t.get(key.as_str()).map_err(|e| Error::store(ctx(), e))?;
                        if here.is_none() {
                            drop(here);
                            t.insert(key.as_str(), value.as_slice())
                                .map_err(|e| Error::store(ctx(), e))?;
                        }
                    }
                }
                txn.commit().map_err(|e| Error::store(ctx(), e))
            })?;
            durable.drop_table(table)?;
        }
        if moved > 0 {
            tracing::info!(records = moved, store = %self.path.display(), "port records moved to the runtime store");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str) -> serde_json::Value {
        serde_json::json!({ "name": name })
    }

    fn names(store: &Store) -> Result<Vec<String>> {
        Ok(store
            .ports::<serde_json::Value>()?
            .into_iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect())
    }

    #[test]
    fn ports_stay_for_the_same_boot_and_go_with_another() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("/tmp"), e))?;
        let (durable, _, _) = Store::open(&dir.path().join("state.redb"), Some("boot-a"))?;
        let path = dir.path().join(RUNTIME_DB_FILE);
        {
            let runtime = Store::open_runtime(&path, Some("boot-a"), &durable)?;
            runtime.put_port("vnet0", &port("vnet0"))?;
            runtime.put_port("vnet1", &port("vnet1"))?;
            runtime.delete_port("vnet1")?;
            runtime.put_hypervisor_port("u1", &port("u1"))?;
        }
        let runtime = Store::open_runtime(&path, Some("boot-a"), &durable)?;
        assert_eq!(names(&runtime)?, ["vnet0"]);
        drop(runtime);
        let runtime = Store::open_runtime(&path, Some("boot-b"), &durable)?;
        assert!(names(&runtime)?.is_empty(), "a port of another boot");
        assert!(runtime.hypervisor_ports::<serde_json::Value>()?.is_empty());
        Ok(())
    }

    #[test]
    fn ports_of_an_older_virtnetd_move_out_of_the_durable_store() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("/tmp"), e))?;
        let (durable, _, _) = Store::open(&dir.path().join("state.redb"), Some("boot-a"))?;
        durable.put_port("vnet3", &port("vnet3"))?;
        durable.put_hypervisor_port("u3", &port("u3"))?;
        let path = dir.path().join(RUNTIME_DB_FILE);
        let runtime = Store::open_runtime(&path, Some("boot-a"), &durable)?;
        assert_eq!(names(&runtime)?, ["vnet3"]);
        assert_eq!(runtime.hypervisor_ports::<serde_json::Value>()?.len(), 1);
        assert!(names(&durable)?.is_empty(), "left in the durable store");
        assert!(durable.hypervisor_ports::<serde_json::Value>()?.is_empty());
        Ok(())
    }

    #[test]
    fn a_torn_file_is_started_afresh() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("/tmp"), e))?;
        let (durable, _, _) = Store::open(&dir.path().join("state.redb"), Some("boot-a"))?;
        let path = dir.path().join(RUNTIME_DB_FILE);
        std::fs::write(&path, b"not a database at all, just what a power loss left")
            .map_err(|e| Error::io("write", &path, e))?;
        let runtime = Store::open_runtime(&path, Some("boot-a"), &durable)?;
        runtime.put_port("vnet0", &port("vnet0"))?;
        assert_eq!(names(&runtime)?, ["vnet0"]);
        Ok(())
    }
}
