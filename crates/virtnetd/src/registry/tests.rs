//! The registry's rules, run against the real kernel in a private network namespace.

use super::*;
use crate::kernel::Kernel;
use crate::services::{EventFeed, ServiceOptions, Services};
use crate::store::DB_FILE;
use virtnet_api::ErrorCode;

struct Fixture {
    _dir: tempfile::TempDir,
    service: NetworkRegistry,
}

/// A registry over a new store in `dir`, on the real kernel and servers.
fn open_registry(dir: &Path, link_exists: LinkExists, kernel: Kernel) -> Result<NetworkRegistry> {
    let (store, records, _) = Store::open(&dir.join(DB_FILE), Some("boot"))?;
    let store = Arc::new(store);
    let services = Services::new(
        store.clone(),
        Arc::new(EventFeed::default()),
        ServiceOptions::default(),
    );
    Ok(NetworkRegistry::new(RegistryParts {
        store,
        records,
        unreadable: BTreeMap::new(),
        link_exists,
        kernel: Arc::new(Mutex::new(kernel)),
        services: Arc::new(services),
        writer: Arc::new(Mutex::new(())),
    }))
}

/// Moves the calling test thread into a new, empty network namespace (a namespace is
/// per thread, and cargo runs each test on its own thread), so that starting networks
/// never touches the host. Panics rather than go on in the host's namespace.
fn private_netns() {
    // SAFETY: unshare only changes the calling thread's namespace membership.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) failed ({}); these tests need root",
        std::io::Error::last_os_error()
    );
}

/// The DHCP and DNS servers run on the daemon's async runtime: give the test thread one
/// (leaked: it lives as long as the test process, like the daemon's).
fn enter_runtime() {
    let runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}")),
    ));
    std::mem::forget(runtime.enter());
}

fn fixture() -> Fixture {
    private_netns();
    enter_runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let kernel = Kernel::open().unwrap_or_else(|e| panic!("kernel: {e}"));
    let service = open_registry(dir.path(), Box::new(|_| false), kernel)
        .unwrap_or_else(|e| panic!("open: {e}"));
    Fixture { _dir: dir, service }
}

const UUID_A: &str = "11111111-2222-3333-4444-555555555555";
const UUID_B: &str = "11111111-2222-3333-4444-666666666666";

use virtnet_testkit::network_xml as xml;

fn code(r: Result<ChangeResult>) -> ErrorCode {
    match r {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => crate::api::errors::to_api(&e).code,
    }
}

#[test]
fn define_then_redefine() -> Result<()> {
    let f = fixture();
    let first = f.service.define(&xml("a", Some(UUID_A), None))?;
    assert!(first.created);
    assert_eq!(first.etag, "\"1\"");
    assert_eq!(first.network.bridge.as_deref(), Some("virbr0"));
    let again = f.service.define(&xml("a", Some(UUID_A), Some("br-a")))?;
    assert!(!again.created);
    assert_eq!(again.etag, "\"2\"");
    assert_eq!(
        f.service.get("a", false)?.summary.bridge.as_deref(),
        Some("br-a")
    );
    Ok(())
}

#[test]
fn identity_conflicts() -> Result<()> {
    let f = fixture();
    f.service.define(&xml("a", Some(UUID_A), Some("br0")))?;
    assert_eq!(
        code(f.service.define(&xml("a", Some(UUID_B), None))),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(f.service.define(&xml("a", None, None))),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(f.service.define(&xml("b", Some(UUID_A), None))),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(f.service.define(&xml("b", None, Some("br0")))),
        ErrorCode::Conflict
    );
    assert_eq!(f.service.list().len(), 1);
    Ok(())
}

#[test]
fn bridge_auto_naming_skips_host_links_and_other_networks() -> Result<()> {
    private_netns();
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", Path::new("."), e))?;
    let service = open_registry(
        dir.path(),
        Box::new(|name| name == "virbr0"),
        Kernel::open()?,
    )?;
    let a = service.define(&xml("a", None, None))?;
    assert_eq!(a.network.bridge.as_deref(), Some("virbr1"));
    let b = service.define(&xml("b", None, None))?;
    assert_eq!(b.network.bridge.as_deref(), Some("virbr2"));
    Ok(())
}

#[test]
fn lookup_by_uuid_and_not_found_messages() -> Result<()> {
    let f = fixture();
    f.service.define(&xml("a", Some(UUID_A), None))?;
    assert_eq!(f.service.get(UUID_A, false)?.summary.name, "a");
    let missing = f
        .service
        .get("nope", false)
        .map(|_| ())
        .map_err(|e| crate::api::errors::to_api(&e));
    assert_eq!(
        missing.err().map(|e| e.message),
        Some("Network not found: no network with matching name 'nope'".to_string())
    );
    let missing = f
        .service
        .get(UUID_B, false)
        .map(|_| ())
        .map_err(|e| crate::api::errors::to_api(&e));
    assert_eq!(
        missing.err().map(|e| e.message),
        Some(format!(
            "Network not found: no network with matching uuid '{UUID_B}'"
        ))
    );
    Ok(())
}

#[test]
fn create_undefine_autostart_lifecycle() -> Result<()> {
    let f = fixture();
    // Transient: no autostart, no undefine.
    let t = f.service.create(&xml("t", None, None))?;
    assert!(t.network.active && !t.network.persistent);
    assert_eq!(
        code(f.service.set_autostart("t", true)),
        ErrorCode::Conflict
    );
    assert_eq!(code(f.service.undefine("t")), ErrorCode::Conflict);
    assert_eq!(
        code(f.service.create(&xml("t", None, None))),
        ErrorCode::Conflict
    );

    // Persistent inactive, then started by create with the same name and UUID.
    f.service.define(&xml("p", Some(UUID_A), Some("br-p")))?;
    let auto = f.service.set_autostart("p", true)?;
    assert!(auto.network.autostart);
    let started = f.service.create(&xml("p", Some(UUID_A), Some("br-p")))?;
    assert!(!started.created && started.network.active && started.network.persistent);
    assert_eq!(
        code(f.service.create(&xml("p", Some(UUID_A), Some("br-p")))),
        ErrorCode::Conflict
    );

    // Undefine an active network: it stays, transient, autostart off.
    let u = f.service.undefine("p")?;
    assert!(u.network.active && !u.network.persistent && !u.network.autostart);

    // Undefine an inactive network: gone.
    f.service.define(&xml("i", None, None))?;
    let gone = f.service.undefine("i")?;
    assert_eq!(gone.etag, "");
    assert_eq!(code(f.service.undefine("i")), ErrorCode::NotFound);
    Ok(())
}

#[test]
fn redefine_of_active_network_keeps_live_definition() -> Result<()> {
    let f = fixture();
    f.service.define(&xml("p", Some(UUID_A), Some("br-p")))?;
    f.service.create(&xml("p", Some(UUID_A), Some("br-p")))?;
    f.service.define(&xml("p", Some(UUID_A), Some("br-q")))?;
    assert_eq!(
        f.service.get("p", false)?.summary.bridge.as_deref(),
        Some("br-p")
    );
    let inactive = f.service.get("p", true)?;
    assert_eq!(inactive.definition.bridge_name(), Some("br-q"));
    Ok(())
}

#[test]
fn edit_needs_a_current_etag_and_keeps_identity() -> Result<()> {
    let f = fixture();
    f.service.define(&xml("a", Some(UUID_A), Some("br-a")))?;
    let new = xml("a", None, Some("br-b"));
    assert_eq!(
        code(f.service.edit("a", &new, None)),
        ErrorCode::PreconditionRequired
    );
    assert_eq!(
        code(f.service.edit("a", &new, Some("\"7\""))),
        ErrorCode::EtagMismatch
    );
    assert_eq!(
        code(f.service.edit("x", &new, Some("\"1\""))),
        ErrorCode::NotFound
    );
    let renamed = xml("b", None, None);
    assert_eq!(
        code(f.service.edit("a", &renamed, Some("\"1\""))),
        ErrorCode::Invalid
    );
    let other_uuid = xml("a", Some(UUID_B), None);
    assert_eq!(
        code(f.service.edit("a", &other_uuid, Some("\"1\""))),
        ErrorCode::Invalid
    );
    let done = f.service.edit("a", &new, Some("\"1\""))?;
    assert_eq!(done.etag, "\"2\"");
    assert_eq!(done.network.uuid.to_string(), UUID_A);
    assert_eq!(done.network.bridge.as_deref(), Some("br-b"));
    assert_eq!(
        code(f.service.edit("a", &new, Some("\"1\""))),
        ErrorCode::EtagMismatch
    );
    Ok(())
}

#[test]
fn etag_matching() {
    assert!(etag_matches("\"3\"", 3));
    assert!(etag_matches("3", 3));
    assert!(etag_matches("*", 3));
    assert!(etag_matches("\"1\", \"3\"", 3));
    assert!(!etag_matches("\"33\"", 3));
    assert!(!etag_matches("", 3));
}
