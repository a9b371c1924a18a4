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
//! - tables `ports` (tap name → JSON guest port, `attach-interface`) and `hypervisor_ports`
//!   are not here but in the runtime store, `<run-dir>/runtime.redb` ([`runtime`]): they
//!   describe this boot's taps, survive daemon restarts and `kill -9`, and are committed
//!   without waiting for the disk (an older virtnetd's are moved there at start-up);
//! - table `forward_ops`: `<network>/<sequence>` → a port-forward change made since the
//!   network's record was last written ([`forward_ops`]: replayed on the record when read,
//!   cleared when the record is written);
//! - table `host_bridges`: bridge name → JSON host bridge (`iface-bridge`: the NIC's snapshot and
//!   the phase), written before each step changes the kernel, so a crash is undone at start;
//! - table `fabric`: key `fabric` → JSON fabric record (`fabric-set`, [`crate::fabric`]).
//!
//! Durability: every change is one redb write transaction committed with
//! [`Durability::Immediate`], and the caller answers the client only after [`Store::put`] /
//! [`Store::delete`] returned. redb's copy-on-write B-trees never overwrite the last committed
//! root, so a crash (`kill -9`, power loss) at any moment leaves either the old or the new
//! state, never a mix, and nothing acknowledged is lost. Definitions, leases and host bridges
//! commit in two phases (two fsyncs: the new root is durable before it is pointed at); the
//! runtime store's port records commit with redb's checksummed commit slot
//! ([`Commit::Checksummed`]: a torn commit fails its checksum and the previous one is kept)
//! and no fsync at all — what a power loss could take from them, it takes from the kernel
//! too (see [`runtime`]).
//!
//! Failures: redb refuses every transaction after one I/O error ("Previous I/O error
//! occurred"), so the store closes the database after such an error and opens it again (redb
//! then repairs it from the last commit) — at once, and before the next operation while that
//! fails. A full disk therefore costs only the changes made while it is full: they are
//! refused with [`Error::NoSpace`] (HTTP 507), and the store works again by itself once space
//! is freed, with no restart. A damaged file (truncated, say) is refused with one clear
//! error instead of redb's assertion panic.
//!
//! Unreadable records: a network record that no longer decodes (written by another version,
//! damaged) is set aside — left in the store untouched, logged and listed in
//! [`StartReport::unreadable`] — and never keeps the daemon from starting. Definitions are
//! read back with [`Network::from_stored_xml`], without the input limits.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, PoisonError, RwLock};

use redb::{Database, DatabaseError, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use virtnet_model::Network;

use crate::error::{Error, Result};

mod forward_ops;
mod runtime;
pub use forward_ops::ForwardOp;
use forward_ops::FORWARD_OPS;
pub use runtime::RUNTIME_DB_FILE;

/// File name of the store inside the state directory.
pub const DB_FILE: &str = "virtnet.redb";

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const PORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("ports");
const HOST_BRIDGES: TableDefinition<&str, &[u8]> = TableDefinition::new("host_bridges");
/// Ports libvirt's hypervisor daemon announced (`virNetworkPortCreateXML`), by port UUID.
const HYPERVISOR_PORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hypervisor_ports");
/// The fabric record (one row, key [`FABRIC_KEY`]).
const FABRIC: TableDefinition<&str, &[u8]> = TableDefinition::new("fabric");
/// The members (VTEPs) each overlay network's DHCP server has seen, with when
/// (`services/ownership.rs`), keyed by network.
const OVERLAY_MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("overlay_members");
const FABRIC_KEY: &str = "fabric";
const META_FORMAT: &str = "format";
const META_BOOT_ID: &str = "boot_id";
/// Layout version written by this daemon; a newer one is refused rather than misread.
const FORMAT_VERSION: &str = "1";

/// Everything the daemon knows about one network, as stored. This is libvirt's object model:
/// `config` is the persistent definition (libvirt's `def`/`newDef` of an inactive/active
/// network), `live` the definition the network runs with.
///
/// Both are shared (`Arc`): a started network's `live` is its `config` until one of them
/// changes, and a copy of a record (the registry's snapshots) copies two pointers. A
/// definition is 816 bytes before its strings and lists; held inline twice in each entry of
/// the registry's map, 4,000 networks took about 10 MB more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The persistent definition; `None` for a transient network.
    #[serde(with = "stored_xml")]
    pub config: Option<Arc<Network>>,
    /// The running definition; `None` when the network is inactive.
    #[serde(with = "stored_xml")]
    pub live: Option<Arc<Network>>,
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

    /// Makes equal `config` and `live` one shared copy (a running network that runs its
    /// definition): after a read-back, which decodes them apart, and after a change made to
    /// both, which copies each.
    pub fn share_definitions(&mut self) {
        if let (Some(config), Some(live)) = (&self.config, &self.live) {
            if !Arc::ptr_eq(config, live) && config == live {
                self.live = Some(Arc::clone(config));
            }
        }
    }

    /// Has a persistent definition.
    pub fn is_persistent(&self) -> bool {
        self.config.is_some()
    }

    /// The definition shown by default: the live one when active, else the persistent one.
    pub fn shown(&self) -> Option<&Network> {
        self.live.as_deref().or(self.config.as_deref())
    }

    /// The network's UUID (both definitions carry the same one once prepared).
    pub fn uuid(&self) -> Option<Uuid> {
        self.shown().and_then(|n| n.uuid)
    }

    /// The network's definitions, live and persistent (one or two).
    pub fn defs(&self) -> impl Iterator<Item = &Network> {
        self.live.iter().chain(self.config.iter()).map(|n| &**n)
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
    /// Network records that could not be read, set aside (see the module comment).
    pub unreadable: Vec<Unreadable>,
}

/// A network record set aside because it could not be read; it stays in the store as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The network's name (the record's key).
    pub name: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The open store. redb serialises write transactions itself; the service adds its own lock
/// so that check-then-write sequences are atomic too.
pub struct Store {
    /// The database, behind a lock only so that it can be closed and opened again after an
    /// I/O error: every operation holds the read side for its transaction.
    handle: RwLock<Handle>,
    path: PathBuf,
    /// The sequence numbers of port-forward changes.
    forward_seq: forward_ops::Sequence,
    /// The runtime store ([`runtime`]): commits never wait for the disk.
    volatile: bool,
}

/// The database when it is open, and what the last failure was.
struct Handle {
    /// `None` while closed after an I/O error that reopening has not cleared yet.
    db: Option<Database>,
    /// Counts the openings, so that of several operations failing on the same database only
    /// the first closes it.
    opened: u64,
    /// The failure that closed it ran out of disk space.
    no_space: bool,
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
        let store = Store::with_database(path, open_database(path, false)?, false);
        let (records, report) = store.with_db(|db| store.start(db, boot_id))?;
        for bad in &report.unreadable {
            tracing::error!(network = %bad.name, reason = %bad.reason, "stored network is unreadable; set aside (left in the store, not started)");
        }
        Ok((store, records, report))
    }

    /// A store around an opened database.
    fn with_database(path: &Path, db: Database, volatile: bool) -> Store {
        Store {
            handle: RwLock::new(Handle {
                db: Some(db),
                opened: 1,
                no_space: false,
            }),
            path: path.to_path_buf(),
            forward_seq: forward_ops::Sequence::default(),
            volatile,
        }
    }

    /// Opens the file at `path` as a runtime store ([`runtime`]), loading nothing.
    fn open_volatile(path: &Path) -> Result<Store> {
        Ok(Store::with_database(path, open_database(path, true)?, true))
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the open database. When the database is closed after an I/O error it is
    /// opened again first; when `f` fails with an I/O error the database is closed and
    /// reopened, so that redb's "previous I/O error" state never outlives the cause. A full
    /// disk is reported as [`Error::NoSpace`].
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        let (result, opened) = {
            let handle = self.open_handle()?;
            match &handle.db {
                Some(db) => (f(db), handle.opened),
                None if handle.no_space => return Err(self.no_space_error()),
                None => {
                    return Err(Error::io(
                        "cannot use the store (closed after I/O errors; retry)",
                        &self.path,
                        std::io::Error::other("closed"),
                    ))
                }
            }
        };
        match result {
            Err(e) if is_io_failure(&e) => {
                let no_space = is_no_space(&e);
                self.close_after(opened, no_space, &e);
                // A transient cause may be gone already: the next operation should not pay.
                if let Err(reopen) = self.ensure_open() {
                    tracing::warn!(error = %reopen, "store stays closed until it can be opened again");
                }
                Err(if no_space { self.no_space_error() } else { e })
            }
            other => other,
        }
    }

    /// The lock on the open database: opens it first when it is closed. Another operation
    /// failing in between may close it again; a few tries cover that race.
    fn open_handle(&self) -> Result<std::sync::RwLockReadGuard<'_, Handle>> {
        let mut tries = 0;
        loop {
            self.ensure_open()?;
            let handle = self.handle.read().unwrap_or_else(PoisonError::into_inner);
            tries += 1;
            if handle.db.is_some() || tries == 3 {
                return Ok(handle);
            }
        }
    }

    /// Opens the database if it is closed; returns the number of its opening.
    fn ensure_open(&self) -> Result<u64> {
        {
            let handle = self.handle.read().unwrap_or_else(PoisonError::into_inner);
            if handle.db.is_some() {
                return Ok(handle.opened);
            }
        }
        let mut handle = self.handle.write().unwrap_or_else(PoisonError::into_inner);
        if handle.db.is_some() {
            return Ok(handle.opened);
        }
        match open_database(&self.path, self.volatile) {
            Ok(db) => {
                handle.db = Some(db);
                handle.opened += 1;
                handle.no_space = false;
                tracing::info!(store = %self.path.display(), "store reopened after an I/O error");
                Ok(handle.opened)
            }
            Err(e) if is_no_space(&e) => {
                handle.no_space = true;
                Err(self.no_space_error())
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the database after `error` (an I/O failure) if it is still the opening
    /// `opened`: redb refuses every later transaction on it.
    fn close_after(&self, opened: u64, no_space: bool, error: &Error) {
        let mut handle = self.handle.write().unwrap_or_else(PoisonError::into_inner);
        if handle.opened != opened || handle.db.is_none() {
            return;
        }
        tracing::error!(%error, no_space, "store I/O failed; closing it to open it again");
        // Dropping it releases the file lock; redb repairs the file from its last commit at
        // the next opening.
        handle.db = None;
        handle.no_space = no_space;
    }

    /// The error of an operation refused because the state directory is full.
    fn no_space_error(&self) -> Error {
        Error::NoSpace {
            dir: self.path.parent().unwrap_or(&self.path).to_path_buf(),
        }
    }

    /// The start-up transaction: checks the format, loads the records, applies the reboot
    /// rule and records the boot id.
    fn start(
        &self,
        db: &Database,
        boot_id: Option<&str>,
    ) -> Result<(BTreeMap<String, Record>, StartReport)> {
        let ctx = |what: &str| format!("{what} in store {}", self.path.display());
        let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
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
                match decode(&name, value.value()) {
                    Ok(record) => {
                        records.insert(name, record);
                    }
                    Err(e) => report.unreadable.push(Unreadable {
                        name,
                        reason: e.to_string(),
                    }),
                }
            }
            let mut ops = txn
                .open_table(FORWARD_OPS)
                .map_err(|e| Error::store(ctx("cannot open table forward_ops"), e))?;
            forward_ops::replay(&ops, &mut records, &self.forward_seq)?;
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
                        forward_ops::clear(&mut ops, name)?;
                        report.deactivated.push(name.clone());
                    } else {
                        table
                            .remove(name.as_str())
                            .map_err(|e| Error::store(ctx("cannot remove network"), e))?;
                        forward_ops::clear(&mut ops, name)?;
                        report.removed.push(name.clone());
                    }
                }
                for name in &report.removed {
                    records.remove(name);
                }
            }
        }
        timed_commit(txn)
            .map_err(|e| Error::store(ctx("cannot commit start-up transaction"), e))?;
        Ok((records, report))
    }

    /// Writes one record durably (one transaction).
    pub fn put(&self, name: &str, record: &Record) -> Result<()> {
        let bytes = encode(name, record)?;
        self.put_raw(name, &bytes)
    }

    /// Writes `bytes` as the record of network `name`, as they are: [`Store::put`] writes
    /// through it, and for tests and repair tools it is how a record that cannot be read
    /// gets into a store.
    #[doc(hidden)]
    pub fn put_raw(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let ctx = || format!("cannot store network '{name}' in {}", self.path.display());
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
            {
                let mut table = txn
                    .open_table(NETWORKS)
                    .map_err(|e| Error::store(ctx(), e))?;
                table
                    .insert(name, bytes)
                    .map_err(|e| Error::store(ctx(), e))?;
                // The record holds every forward now.
                let mut ops = txn
                    .open_table(FORWARD_OPS)
                    .map_err(|e| Error::store(ctx(), e))?;
                forward_ops::clear(&mut ops, name)?;
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Deletes one record durably (one transaction).
    pub fn delete(&self, name: &str) -> Result<()> {
        let ctx = || {
            format!(
                "cannot delete network '{name}' from {}",
                self.path.display()
            )
        };
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
            {
                let mut table = txn
                    .open_table(NETWORKS)
                    .map_err(|e| Error::store(ctx(), e))?;
                table.remove(name).map_err(|e| Error::store(ctx(), e))?;
                let mut ops = txn
                    .open_table(FORWARD_OPS)
                    .map_err(|e| Error::store(ctx(), e))?;
                forward_ops::clear(&mut ops, name)?;
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Stores one change of network `name`'s forwards durably (one small transaction, whatever
    /// the definition holds); reading the store applies it to the network's record.
    pub fn append_forward_op(&self, name: &str, op: &ForwardOp) -> Result<()> {
        let ctx = || format!("cannot store a port-forward change of network '{name}'");
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
            {
                let mut ops = txn
                    .open_table(FORWARD_OPS)
                    .map_err(|e| Error::store(ctx(), e))?;
                forward_ops::append(&mut ops, &self.forward_seq, name, op)?;
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Reads every record (one read transaction: a consistent snapshot), and the records set
    /// aside because they cannot be read.
    pub fn load(&self) -> Result<(BTreeMap<String, Record>, Vec<Unreadable>)> {
        let ctx = || format!("cannot read networks from {}", self.path.display());
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| Error::store(ctx(), e))?;
            let table = txn
                .open_table(NETWORKS)
                .map_err(|e| Error::store(ctx(), e))?;
            let mut out = BTreeMap::new();
            let mut unreadable = Vec::new();
            for item in table.iter().map_err(|e| Error::store(ctx(), e))? {
                let (key, value) = item.map_err(|e| Error::store(ctx(), e))?;
                let name = key.value().to_string();
                match decode(&name, value.value()) {
                    Ok(record) => {
                        out.insert(name, record);
                    }
                    Err(e) => unreadable.push(Unreadable {
                        name,
                        reason: e.to_string(),
                    }),
                }
            }
            if let Some(ops) = open_for_reading(&txn, FORWARD_OPS, ctx)? {
                forward_ops::replay(&ops, &mut out, &self.forward_seq)?;
            }
            Ok((out, unreadable))
        })
    }
}

/// How a durable write transaction commits (see the module's "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Two fsyncs: the new root is made durable before it is pointed at, so recovery never
    /// has to trust a checksum to tell a torn commit from a good one.
    TwoPhase,
    /// One fsync: the commit slot carries a checksum, and recovery falls back to the previous
    /// commit when it does not match.
    Checksummed,
}

/// Commits `txn`, recording how long it took in the daemon's metrics
/// (`virtnet_store_commit_duration_seconds`).
fn timed_commit(txn: redb::WriteTransaction) -> std::result::Result<(), redb::CommitError> {
    let started = std::time::Instant::now();
    let done = txn.commit();
    crate::metrics::daemon::DAEMON
        .store_commit
        .observe(started.elapsed());
    done
}

/// Begins a durable write transaction on `db` (the store at `path`) that commits `how`.
fn begin_write(db: &Database, path: &Path, how: Commit) -> Result<redb::WriteTransaction> {
    let mut txn = db
        .begin_write()
        .map_err(|e| Error::store(format!("cannot begin transaction on {}", path.display()), e))?;
    // Immediate: commit() returns only once the data is on disk.
    txn.set_durability(Durability::Immediate);
    txn.set_two_phase_commit(how == Commit::TwoPhase);
    Ok(txn)
}

/// redb's page cache (its default, 1 GiB, keeps every page ever read or written: the whole
/// file, tens of KiB per network, resident for the daemon's lifetime). The daemon reads the
/// store once at start-up into its own index; a commit reads only the B-tree path it changes,
/// which the kernel's page cache serves when redb's does not.
const CACHE_BYTES: usize = 4 << 20;
/// The runtime store's page cache: its pages live in the kernel's page cache already (a file
/// in the run directory, never forced to the disk), and a port's commit reads one B-tree
/// path; 10,000 ports' records must not also stay resident in the daemon.
const RUNTIME_CACHE_BYTES: usize = 256 << 10;

/// Opens (or creates) the redb file at `path`. redb asserts rather than returns an error on
/// some damaged files (a truncated one): that panic is caught and reported as
/// [`Error::Damaged`], one clear line instead of a backtrace.
/// Opens (or creates) the database at `path`; `volatile`: one whose commits do not wait for
/// the disk ([`runtime`]).
fn open_database(path: &Path, volatile: bool) -> Result<Database> {
    match quietly(|| {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(if volatile {
            RUNTIME_CACHE_BYTES
        } else {
            CACHE_BYTES
        });
        match volatile {
            false => builder.create(path),
            true => builder.create_with_backend(runtime::Unsynced::open(path)?),
        }
    }) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(Error::Startup(format!(
            "store {} is already open in another process",
            path.display()
        ))),
        Ok(Err(other)) => Err(Error::store(
            format!("cannot open store {}", path.display()),
            other,
        )),
        Err(message) => Err(Error::Damaged {
            path: path.to_path_buf(),
            message,
        }),
    }
}

thread_local! {
    /// Set while [`quietly`] runs on this thread: its panics are caught, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(message)` without the panic hook's output (message
/// and backtrace on stderr). Only panics on the calling thread during `f` are silenced: the
/// hook installed here hands every other panic to the hook that was there before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_string())
    })
}

/// The redb error inside a store error, if it is one.
fn redb_error(e: &Error) -> Option<&redb::Error> {
    match e {
        Error::Store { source, .. } => Some(source),
        _ => None,
    }
}

/// An I/O failure of the file (now or earlier): redb refuses every transaction after one,
/// until the database is opened again.
fn is_io_failure(e: &Error) -> bool {
    matches!(
        redb_error(e),
        Some(redb::Error::Io(_) | redb::Error::PreviousIo)
    )
}

/// The file system holding the store is full (or the quota is).
fn is_no_space(e: &Error) -> bool {
    match (e, redb_error(e)) {
        (Error::NoSpace { .. }, _) => true,
        (_, Some(redb::Error::Io(io))) => {
            matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
                || io.kind() == std::io::ErrorKind::StorageFull
        }
        _ => false,
    }
}

/// The lease table's key: network names cannot hold a line break (the model refuses control
/// characters), so `network\n` is a prefix no other network shares.
fn lease_key(network: &str, client: &str) -> String {
    format!("{network}\n{client}")
}

/// The lease changes of one network in a group commit: `(network, [(client, Some(lease) to
/// write | None to delete)])`.
pub type LeaseGroup<'a, T> = (&'a str, &'a [(String, Option<T>)]);

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
        self.apply_lease_groups(&[(network, changes)])
    }

    /// Group commit: the lease changes of several networks (each `(network, changes)` as in
    /// [`Store::apply_leases`]) in ONE durable transaction, all or nothing, so that one
    /// fsync covers what many DHCP servers want written at the same moment (the lease writer
    /// in `services.rs` gathers them).
    pub fn apply_lease_groups<T: Serialize>(&self, groups: &[LeaseGroup<'_, T>]) -> Result<()> {
        let ctx = || match groups {
            [(network, changes)] => format!(
                "cannot store {} lease changes on network '{network}'",
                changes.len()
            ),
            _ => format!(
                "cannot store {} lease changes of {} networks",
                groups.iter().map(|(_, c)| c.len()).sum::<usize>(),
                groups.len()
            ),
        };
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
            {
                let mut table = txn.open_table(LEASES).map_err(|e| Error::store(ctx(), e))?;
                for (network, changes) in groups {
                    for (client, lease) in *changes {
                        let key = lease_key(network, client);
                        match lease {
                            Some(lease) => {
                                let bytes =
                                    serde_json::to_vec(lease).map_err(|source| Error::Record {
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
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Deletes one lease durably; deleting an absent lease is not an error.
    pub fn delete_lease(&self, network: &str, client: &str) -> Result<()> {
        self.apply_leases::<()>(network, &[(client.to_string(), None)])
    }

    /// Deletes every lease of `network` (on undefine).
    pub fn delete_leases(&self, network: &str) -> Result<()> {
        let ctx = || format!("cannot delete the leases of network '{network}'");
        let prefix = lease_key(network, "");
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
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
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Reads the lease of one client of `network` (its key in the lease table: the MAC as
    /// `52:54:00:…`), with one look-up rather than a read of the network's every lease (a
    /// port's anti-spoofing asks for its guest's at every attach). `None` when there is none or
    /// it no longer decodes.
    pub fn lease_of<T: serde::de::DeserializeOwned>(
        &self,
        network: &str,
        client: &str,
    ) -> Result<Option<T>> {
        let ctx = || format!("cannot read a lease of network '{network}'");
        let key = lease_key(network, client);
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| Error::store(ctx(), e))?;
            let Some(table) = open_for_reading(&txn, LEASES, ctx)? else {
                return Ok(None);
            };
            let value = table
                .get(key.as_str())
                .map_err(|e| Error::store(ctx(), e))?;
            Ok(value.and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Reads the leases of `network`. A lease that no longer decodes is skipped with a warning
    /// (the client simply asks again) rather than keeping the network from starting.
    pub fn leases<T: serde::de::DeserializeOwned>(&self, network: &str) -> Result<Vec<T>> {
        let ctx = || format!("cannot read the leases of network '{network}'");
        let prefix = lease_key(network, "");
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| Error::store(ctx(), e))?;
            let Some(table) = open_for_reading(&txn, LEASES, ctx)? else {
                return Ok(Vec::new());
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
        })
    }
}

/// A table of JSON records keyed by name (ports, host bridges).
type RecordTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Opens `table` in the read transaction `txn`: `None` when it was never written (nothing
/// stored yet), an error in the words of `ctx` when it cannot be opened.
fn open_for_reading(
    txn: &redb::ReadTransaction,
    table: RecordTable,
    ctx: impl Fn() -> String,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(Error::store(ctx(), e)),
    }
}

impl Store {
    /// Writes (or replaces) one JSON record of `table` durably; `what` names it in errors.
    fn put_record<T: Serialize>(
        &self,
        table: RecordTable,
        how: Commit,
        what: &str,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let ctx = || format!("cannot store {what} '{key}'");
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Record {
            context: ctx(),
            source,
        })?;
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, how)?;
            {
                let mut t = txn.open_table(table).map_err(|e| Error::store(ctx(), e))?;
                t.insert(key, bytes.as_slice())
                    .map_err(|e| Error::store(ctx(), e))?;
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Deletes one record of `table` durably; an absent one is not an error.
    fn delete_record(&self, table: RecordTable, how: Commit, what: &str, key: &str) -> Result<()> {
        let ctx = || format!("cannot delete {what} '{key}'");
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, how)?;
            {
                let mut t = txn.open_table(table).map_err(|e| Error::store(ctx(), e))?;
                t.remove(key).map_err(|e| Error::store(ctx(), e))?;
            }
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }

    /// Reads every record of `table` (one read transaction).
    fn records<T: serde::de::DeserializeOwned>(
        &self,
        table: RecordTable,
        what: &str,
    ) -> Result<Vec<T>> {
        let ctx = || format!("cannot read the {what}s");
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| Error::store(ctx(), e))?;
            let Some(t) = open_for_reading(&txn, table, ctx)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| Error::store(ctx(), e))? {
                let (_, value) = item.map_err(|e| Error::store(ctx(), e))?;
                out.push(serde_json::from_slice(value.value()).map_err(|source| {
                    Error::Record {
                        context: ctx(),
                        source,
                    }
                })?);
            }
            Ok(out)
        })
    }

    /// Writes (or replaces) one guest port (in the runtime store: see [`runtime`]).
    pub fn put_port<T: Serialize>(&self, name: &str, port: &T) -> Result<()> {
        self.put_record(PORTS, Commit::Checksummed, "port", name, port)
    }

    /// Deletes one guest port.
    pub fn delete_port(&self, name: &str) -> Result<()> {
        self.delete_record(PORTS, Commit::Checksummed, "port", name)
    }

    /// Reads every guest port.
    pub fn ports<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(PORTS, "port")
    }

    /// Writes (or replaces) one host bridge record (`iface-bridge`) durably.
    pub fn put_host_bridge<T: Serialize>(&self, bridge: &str, record: &T) -> Result<()> {
        self.put_record(
            HOST_BRIDGES,
            Commit::TwoPhase,
            "host bridge",
            bridge,
            record,
        )
    }

    /// Deletes one host bridge record durably.
    pub fn delete_host_bridge(&self, bridge: &str) -> Result<()> {
        self.delete_record(HOST_BRIDGES, Commit::TwoPhase, "host bridge", bridge)
    }

    /// Reads every host bridge record.
    pub fn host_bridges<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(HOST_BRIDGES, "host bridge")
    }

    /// Writes (or replaces) the fabric record durably.
    pub fn put_fabric<T: Serialize>(&self, record: &T) -> Result<()> {
        self.put_record(FABRIC, Commit::TwoPhase, "fabric", FABRIC_KEY, record)
    }

    /// Reads the fabric record, if one was written.
    pub fn fabric<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        Ok(self.records(FABRIC, "fabric")?.into_iter().next())
    }

    /// Writes (or replaces) the members an overlay network's DHCP server has seen.
    pub fn put_overlay_members<T: Serialize>(&self, network: &str, record: &T) -> Result<()> {
        self.put_record(
            OVERLAY_MEMBERS,
            Commit::Checksummed,
            "overlay members",
            network,
            record,
        )
    }

    /// Reads every overlay network's members record.
    pub fn overlay_members<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(OVERLAY_MEMBERS, "overlay members")
    }

    /// Writes (or replaces) one port of the hypervisor daemon, keyed by its UUID (in the
    /// runtime store).
    pub fn put_hypervisor_port<T: Serialize>(&self, uuid: &str, record: &T) -> Result<()> {
        self.put_record(
            HYPERVISOR_PORTS,
            Commit::Checksummed,
            "network port",
            uuid,
            record,
        )
    }

    /// Deletes one port of the hypervisor daemon.
    pub fn delete_hypervisor_port(&self, uuid: &str) -> Result<()> {
        self.delete_record(HYPERVISOR_PORTS, Commit::Checksummed, "network port", uuid)
    }

    /// Reads every port of the hypervisor daemon.
    pub fn hypervisor_ports<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.records(HYPERVISOR_PORTS, "network port")
    }

    /// Every key and value of `table`, undecoded (none when there is no such table).
    fn raw_rows(&self, table: RecordTable) -> Result<Vec<(String, Vec<u8>)>> {
        let ctx = || format!("cannot read table {} of {}", table, self.path.display());
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| Error::store(ctx(), e))?;
            let Some(t) = open_for_reading(&txn, table, ctx)? else {
                return Ok(Vec::new());
            };
            let mut rows = Vec::new();
            for item in t.iter().map_err(|e| Error::store(ctx(), e))? {
                let (key, value) = item.map_err(|e| Error::store(ctx(), e))?;
                rows.push((key.value().to_string(), value.value().to_vec()));
            }
            Ok(rows)
        })
    }

    /// Deletes `table` with everything in it, durably.
    fn drop_table(&self, table: RecordTable) -> Result<()> {
        let ctx = || format!("cannot delete table {} of {}", table, self.path.display());
        self.with_db(|db| {
            let txn = begin_write(db, &self.path, Commit::TwoPhase)?;
            txn.delete_table(table)
                .map_err(|e| Error::store(ctx(), e))?;
            timed_commit(txn).map_err(|e| Error::store(ctx(), e))
        })
    }
}

/// Definitions are stored as libvirt network XML, the format virtnet promises to keep reading,
/// rather than as the model's serde form, which may change as the model grows.
mod stored_xml {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use virtnet_model::Network;

    use std::sync::Arc;

    pub fn serialize<S: Serializer>(net: &Option<Arc<Network>>, s: S) -> Result<S::Ok, S::Error> {
        net.as_deref().map(Network::to_xml).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<Network>>, D::Error> {
        Option::<String>::deserialize(d)?
            // Read without the input limits: the store's own records are trusted to be
            // complete, and a record accepted once must stay readable.
            .map(|xml| {
                Network::from_stored_xml(&xml)
                    .map(Arc::new)
                    .map_err(serde::de::Error::custom)
            })
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
    let mut record: Record = serde_json::from_slice(bytes).map_err(|source| Error::Record {
        context: format!("stored network '{name}' is unreadable"),
        source,
    })?;
    record.share_definitions();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network that runs its definition is read back holding one copy of it (the two are
    /// stored apart).
    #[test]
    fn a_record_read_back_shares_a_definition_it_runs() {
        let r = record("n", true, true);
        let bytes = encode("n", &r).expect("encode");
        let back = decode("n", &bytes).expect("decode");
        match (&back.config, &back.live) {
            (Some(c), Some(l)) => assert!(Arc::ptr_eq(c, l)),
            other => panic!("{other:?}"),
        }
        let mut changed = r.clone();
        if let Some(live) = &mut changed.live {
            Arc::make_mut(live).uuid = Some(Uuid::new_v4());
        }
        let bytes = encode("n", &changed).expect("encode");
        let back = decode("n", &bytes).expect("decode");
        match (&back.config, &back.live) {
            (Some(c), Some(l)) => assert!(!Arc::ptr_eq(c, l) && c != l),
            other => panic!("{other:?}"),
        }
    }

    fn record(name: &str, config: bool, live: bool) -> Record {
        let mut net = Network::named(name);
        net.uuid = Some(Uuid::new_v4());
        Record {
            config: config.then(|| Arc::new(net.clone())),
            live: live.then(|| Arc::new(net)),
            autostart: false,
            generation: 1,
        }
    }

    /// A fresh directory for a store file; the file goes with the returned directory guard.
    fn temp_db() -> Result<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
        let path = dir.path().join(DB_FILE);
        Ok((dir, path))
    }

    /// Opens the store at `path` on boot `boot`, writes `records` and closes it again.
    fn seed(path: &Path, boot: &str, records: &[(&str, Record)]) -> Result<()> {
        let (store, _, _) = Store::open(path, Some(boot))?;
        for (name, record) in records {
            store.put(name, record)?;
        }
        Ok(())
    }

    #[test]
    fn records_survive_reopen_on_the_same_boot() -> Result<()> {
        let (_dir, path) = temp_db()?;
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
        assert_eq!(store.load()?, (records, Vec::new()));
        Ok(())
    }

    fn forward(port: u16) -> virtnet_model::PortForward {
        serde_json::from_str(&format!(
            r#"{{"proto": "tcp", "ports": {{"start": {port}, "end": {port}}}, "to": {{"address": "10.0.0.5"}}}}"#
        ))
        .expect("forward")
    }

    fn ports_of(record: &Record) -> Vec<u16> {
        let def = record.config.as_ref().expect("persistent");
        def.forwards.iter().map(|f| f.ports.start).collect()
    }

    #[test]
    fn forward_changes_replay_in_order_until_the_record_is_written() -> Result<()> {
        let (_dir, path) = temp_db()?;
        seed(
            &path,
            "b1",
            &[
                ("web", record("web", true, true)),
                ("web2", record("web2", true, false)),
            ],
        )?;
        {
            let (store, _, _) = Store::open(&path, Some("b1"))?;
            store.append_forward_op("web", &ForwardOp::Add(forward(80)))?;
            store.append_forward_op("web2", &ForwardOp::Add(forward(90)))?;
            store.append_forward_op("web", &ForwardOp::Add(forward(81)))?;
            store.append_forward_op(
                "web",
                &ForwardOp::Remove {
                    proto: virtnet_model::portforward::HostProto::Tcp,
                    port: 80,
                    listen: None,
                },
            )?;
            store.append_forward_op("web", &ForwardOp::Add(forward(82)))?;
        }
        let (store, records, _) = Store::open(&path, Some("b1"))?;
        let web = &records["web"];
        assert_eq!(ports_of(web), vec![81, 82]);
        let live = web.live.as_ref().expect("live");
        assert_eq!(live.forwards.len(), 2, "the live definition too");
        assert_eq!(web.generation, 1 + 4, "each change moves the generation on");
        assert_eq!(ports_of(&records["web2"]), vec![90]);
        // Numbers go on after a reopen: a new change sorts after the replayed ones.
        store.append_forward_op("web", &ForwardOp::Add(forward(83)))?;
        assert_eq!(ports_of(&store.load()?.0["web"]), vec![81, 82, 83]);
        // Writing the record folds the changes in; they are not applied twice.
        let folded = store.load()?.0["web"].clone();
        store.put("web", &folded)?;
        drop(store);
        let (store, records, _) = Store::open(&path, Some("b1"))?;
        assert_eq!(ports_of(&records["web"]), vec![81, 82, 83]);
        assert_eq!(
            ports_of(&records["web2"]),
            vec![90],
            "other networks' changes stay"
        );
        // A deleted network's changes go with it.
        store.delete("web2")?;
        store.put("web2", &record("web2", true, false))?;
        assert!(ports_of(&store.load()?.0["web2"]).is_empty());
        Ok(())
    }

    #[test]
    fn leases_are_kept_per_network_and_survive_reopen() -> Result<()> {
        let (_dir, path) = temp_db()?;
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

    /// Issue 11, finding 1: one record that cannot be read is set aside, not fatal.
    #[test]
    fn an_unreadable_record_is_set_aside() -> Result<()> {
        let (_dir, path) = temp_db()?;
        {
            let (store, _, _) = Store::open(&path, Some("boot-a"))?;
            store.put("a", &record("a", true, false))?;
            store.put_raw("bad", b"{\"config\": \"<network>\", \"generation\": 1}")?;
        }
        let (store, records, report) = Store::open(&path, Some("boot-b"))?;
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(report.unreadable.len(), 1);
        assert_eq!(report.unreadable[0].name, "bad");
        assert!(
            report.unreadable[0]
                .reason
                .contains("stored network 'bad' is unreadable"),
            "{:?}",
            report.unreadable
        );
        // Left in the store as it is.
        let (_, unreadable) = store.load()?;
        assert_eq!(unreadable, report.unreadable);
        Ok(())
    }

    /// Issue 11, finding 2: redb asserts on a truncated file; the store reports it.
    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() -> Result<()> {
        let (_dir, path) = temp_db()?;
        seed(&path, "boot-a", &[("a", record("a", true, false))])?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        file.set_len(4096)
            .map_err(|e| Error::io("truncate", &path, e))?;
        match Store::open(&path, Some("boot-a")) {
            Err(e @ Error::Damaged { .. }) => {
                assert!(e.to_string().contains("is damaged"), "{e}")
            }
            other => panic!("expected Damaged, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_newer_format_is_refused() -> Result<()> {
        let (_dir, path) = temp_db()?;
        {
            let db = Database::create(&path).map_err(|e| Error::store("create", e))?;
            let txn = db.begin_write().map_err(|e| Error::store("begin", e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| Error::store("meta", e))?;
                meta.insert(META_FORMAT, "99")
                    .map_err(|e| Error::store("insert", e))?;
            }
            timed_commit(txn).map_err(|e| Error::store("commit", e))?;
        }
        match Store::open(&path, None) {
            Err(Error::Startup(message)) => assert!(message.contains("format 99"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_reboot_drops_live_definitions_and_transient_networks() -> Result<()> {
        let (_dir, path) = temp_db()?;
        seed(
            &path,
            "boot-a",
            &[
                ("a", record("a", true, true)),
                ("t", record("t", false, true)),
                ("i", record("i", true, false)),
            ],
        )?;
        let (store, records, report) = Store::open(&path, Some("boot-b"))?;
        assert!(report.rebooted);
        assert_eq!(report.deactivated, ["a"]);
        assert_eq!(report.removed, ["t"]);
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a", "i"]);
        assert!(!records["a"].is_active());
        assert_eq!(records["a"].generation, 2);
        assert_eq!(records["i"].generation, 1);
        assert_eq!(store.load()?, (records, Vec::new()));
        Ok(())
    }
}
