//! The registry's rules (identity, transient and persistent networks, define/undefine/edit
//! while active, conflicts, failures) as plain unit tests: a real store in a temporary
//! directory, and a fake kernel and fake servers that record what the registry asked of them
//! and fail on demand. No root, no network namespace.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::store::DB_FILE;
use virtnet_api::{BridgeStatus, DhcpLease};
use virtnet_model::ErrorKind;
use virtnet_testkit::network_xml as xml;

/// The networks the fake kernel holds (by name, with their bridge), and which start fails.
#[derive(Default)]
struct FakeKernel {
    /// Network → bridge of every network "in the kernel".
    running: Mutex<BTreeMap<String, String>>,
    /// A network whose start the kernel refuses.
    refuse_start: Mutex<Option<String>>,
    /// Networks the start-up reconcile cannot realise.
    refuse_reconcile: Mutex<BTreeSet<String>>,
    /// A network whose start waits in the kernel until the test lets it go.
    gate: Mutex<Option<(String, Arc<Gate>)>>,
}

/// Holds a start inside the kernel: says when it is there, waits for the release.
struct Gate {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl FakeKernel {
    fn holds(&self) -> BTreeMap<String, String> {
        lock(&self.running).clone()
    }
}

/// A failure of the (fake) host, as the real kernel reports one.
fn host_failure(what: &str) -> Error {
    Error::Task {
        context: "fake kernel".into(),
        message: what.into(),
    }
}

impl NetworkKernel for FakeKernel {
    fn start(&self, plan: &NetworkPlan) -> Result<Vec<String>> {
        let gate = lock(&self.gate)
            .as_ref()
            .filter(|(n, _)| *n == plan.network)
            .map(|(_, g)| g.clone());
        if let Some(gate) = gate {
            let _ = lock(&gate.entered).send(());
            let _ = lock(&gate.release).recv();
        }
        if lock(&self.refuse_start).as_deref() == Some(plan.network.as_str()) {
            return Err(host_failure("start refused"));
        }
        lock(&self.running).insert(plan.network.clone(), plan.bridge.name.clone());
        Ok(Vec::new())
    }

    fn check_device(&self, _net: &Network) -> Result<()> {
        Ok(())
    }

    fn stop(&self, plans: &[&NetworkPlan]) -> Result<()> {
        let mut running = lock(&self.running);
        for p in plans {
            running.remove(&p.network);
        }
        Ok(())
    }

    fn reconcile(&self, plans: &[NetworkPlan]) -> Vec<(String, Error)> {
        let refused = lock(&self.refuse_reconcile).clone();
        let mut running = lock(&self.running);
        running.clear();
        let mut failed = Vec::new();
        for p in plans {
            if refused.contains(&p.network) {
                failed.push((p.network.clone(), host_failure("reconcile refused")));
            } else {
                running.insert(p.network.clone(), p.bridge.name.clone());
            }
        }
        failed
    }

    fn bridges(&self) -> Result<Vec<BridgeStatus>> {
        Ok(Vec::new())
    }
}

/// Which networks' servers run, whose leases were forgotten, and which start fails.
#[derive(Default)]
struct FakeServices {
    running: Mutex<BTreeSet<String>>,
    forgotten: Mutex<Vec<String>>,
    refuse_start: Mutex<Option<String>>,
}

impl NetworkServices for FakeServices {
    fn start(&self, net: &Network) -> Result<()> {
        if lock(&self.refuse_start).as_deref() == Some(net.name.as_str()) {
            return Err(host_failure("DHCP refused"));
        }
        lock(&self.running).insert(net.name.clone());
        Ok(())
    }

    fn stop(&self, network: &str) {
        lock(&self.running).remove(network);
    }

    fn reconfigure(&self, _net: &Network) -> Result<()> {
        Ok(())
    }

    fn forget(&self, network: &str) -> Result<()> {
        lock(&self.forgotten).push(network.to_string());
        Ok(())
    }

    fn leases(&self, _net: &Network) -> Result<Vec<DhcpLease>> {
        Ok(Vec::new())
    }
}

/// A registry over a store in a temporary directory, with a fake kernel and fake servers.
struct Fixture {
    dir: tempfile::TempDir,
    kernel: Arc<FakeKernel>,
    services: Arc<FakeServices>,
    service: Arc<NetworkRegistry>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_links(Box::new(|_| false))
    }

    fn with_links(link_exists: LinkExists) -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let kernel = Arc::new(FakeKernel::default());
        let services = Arc::new(FakeServices::default());
        let service = open(dir.path(), link_exists, &kernel, &services);
        Fixture {
            dir,
            kernel,
            services,
            service,
        }
    }

    /// Closes the registry and opens it again on the same store (a daemon restart in the
    /// same boot), with the same fakes.
    fn reopen(self) -> Fixture {
        let Fixture {
            dir,
            kernel,
            services,
            service,
        } = self;
        drop(service);
        let service = open(dir.path(), Box::new(|_| false), &kernel, &services);
        Fixture {
            dir,
            kernel,
            services,
            service,
        }
    }

    fn active(&self, name: &str) -> bool {
        self.service
            .list()
            .iter()
            .any(|n| n.name == name && n.active)
    }
}

fn open(
    dir: &Path,
    link_exists: LinkExists,
    kernel: &Arc<FakeKernel>,
    services: &Arc<FakeServices>,
) -> Arc<NetworkRegistry> {
    let (store, records, _) =
        Store::open(&dir.join(DB_FILE), Some("boot")).unwrap_or_else(|e| panic!("store: {e}"));
    Arc::new(NetworkRegistry::new(RegistryParts {
        store: Arc::new(store),
        records,
        unreadable: BTreeMap::new(),
        link_exists,
        kernel: kernel.clone(),
        services: services.clone(),
    }))
}

const UUID_A: &str = "11111111-2222-3333-4444-555555555555";
const UUID_B: &str = "11111111-2222-3333-4444-666666666666";

/// The kind of refusal, in the domain's terms (no HTTP code involved).
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    NotFound,
    Conflict,
    Invalid,
    PreconditionRequired,
    Stale,
    Unsupported,
}

fn refused<T: std::fmt::Debug>(r: Result<T>) -> Refused {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(Error::NotFound { .. }) => Refused::NotFound,
        Err(Error::Conflict { .. }) => Refused::Conflict,
        Err(Error::Invalid { .. }) => Refused::Invalid,
        Err(Error::PreconditionRequired { .. }) => Refused::PreconditionRequired,
        Err(Error::Stale { .. }) => Refused::Stale,
        Err(Error::Unsupported { .. }) => Refused::Unsupported,
        Err(Error::Model(e)) => match e.kind {
            ErrorKind::Conflict => Refused::Conflict,
            ErrorKind::Invalid | ErrorKind::Xml => Refused::Invalid,
            ErrorKind::Unsupported => Refused::Unsupported,
        },
        Err(other) => panic!("expected a refusal, got a failure: {other}"),
    }
}

#[test]
fn define_then_redefine() -> Result<()> {
    let f = Fixture::new();
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
    // Defining does not start anything.
    assert!(f.kernel.holds().is_empty());
    Ok(())
}

#[test]
fn identity_conflicts() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", Some(UUID_A), Some("br0")))?;
    // Same name, other UUID (libvirt: "network 'a' is already defined with uuid …").
    assert_eq!(
        refused(f.service.define(&xml("a", Some(UUID_B), None))),
        Refused::Conflict
    );
    // Same name, no UUID: a new definition, not a redefinition of 'a'.
    assert_eq!(
        refused(f.service.define(&xml("a", None, None))),
        Refused::Conflict
    );
    // Same UUID, other name.
    assert_eq!(
        refused(f.service.define(&xml("b", Some(UUID_A), None))),
        Refused::Conflict
    );
    // Another network's bridge.
    assert_eq!(
        refused(f.service.define(&xml("b", None, Some("br0")))),
        Refused::Conflict
    );
    // A transient network cannot take a defined one's UUID under another name either.
    assert_eq!(
        refused(f.service.create(&xml("c", Some(UUID_A), None))),
        Refused::Conflict
    );
    assert_eq!(f.service.list().len(), 1);
    assert!(f.kernel.holds().is_empty());
    Ok(())
}

#[test]
fn bridge_auto_naming_skips_host_links_and_other_networks() -> Result<()> {
    let f = Fixture::with_links(Box::new(|name| name == "virbr0"));
    let a = f.service.define(&xml("a", None, None))?;
    assert_eq!(a.network.bridge.as_deref(), Some("virbr1"));
    let b = f.service.define(&xml("b", None, None))?;
    assert_eq!(b.network.bridge.as_deref(), Some("virbr2"));
    Ok(())
}

#[test]
fn lookup_by_uuid_and_not_found_messages() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", Some(UUID_A), None))?;
    assert_eq!(f.service.get(UUID_A, false)?.summary.name, "a");
    let missing = f.service.get("nope", false).map(|_| ()).err();
    assert!(
        matches!(&missing, Some(Error::NotFound { kind: Kind::Network, name }) if name == "nope")
    );
    assert_eq!(
        missing.map(|e| e.to_string()),
        Some("Network not found: no network with matching name 'nope'".to_string())
    );
    let missing = f.service.get(UUID_B, false).map(|_| ()).err();
    assert_eq!(
        missing.map(|e| e.to_string()),
        Some(format!(
            "Network not found: no network with matching uuid '{UUID_B}'"
        ))
    );
    Ok(())
}

#[test]
fn create_undefine_autostart_lifecycle() -> Result<()> {
    let f = Fixture::new();
    // Transient: runs at once; no autostart, no undefine, no second create.
    let t = f.service.create(&xml("t", None, None))?;
    assert!(t.network.active && !t.network.persistent);
    assert!(f.kernel.holds().contains_key("t"));
    assert!(lock(&f.services.running).contains("t"));
    assert_eq!(
        refused(f.service.set_autostart("t", true)),
        Refused::Conflict
    );
    assert_eq!(refused(f.service.undefine("t")), Refused::Conflict);
    assert_eq!(
        refused(f.service.create(&xml("t", None, None))),
        Refused::Conflict
    );

    // Persistent inactive, then started by create with the same name and UUID.
    f.service.define(&xml("p", Some(UUID_A), Some("br-p")))?;
    let auto = f.service.set_autostart("p", true)?;
    assert!(auto.network.autostart);
    assert_eq!(f.service.autostart_pending(), vec!["p".to_string()]);
    let started = f.service.create(&xml("p", Some(UUID_A), Some("br-p")))?;
    assert!(!started.created && started.network.active && started.network.persistent);
    assert!(f.service.autostart_pending().is_empty());
    assert_eq!(
        refused(f.service.create(&xml("p", Some(UUID_A), Some("br-p")))),
        Refused::Conflict
    );

    // Undefine an active network: it stays, transient, autostart off, still in the kernel.
    let u = f.service.undefine("p")?;
    assert!(u.network.active && !u.network.persistent && !u.network.autostart);
    assert!(f.kernel.holds().contains_key("p"));
    // Destroying it now makes it disappear, and its leases with it.
    f.service.destroy(&["p".to_string()])?;
    assert_eq!(refused(f.service.get("p", false)), Refused::NotFound);
    assert!(!f.kernel.holds().contains_key("p"));
    assert!(lock(&f.services.forgotten).contains(&"p".to_string()));

    // Undefine an inactive network: gone, leases forgotten.
    f.service.define(&xml("i", None, None))?;
    let gone = f.service.undefine("i")?;
    assert_eq!(gone.etag, "");
    assert!(lock(&f.services.forgotten).contains(&"i".to_string()));
    assert_eq!(refused(f.service.undefine("i")), Refused::NotFound);
    Ok(())
}

#[test]
fn redefine_of_active_network_keeps_live_definition() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("p", Some(UUID_A), Some("br-p")))?;
    f.service.create(&xml("p", Some(UUID_A), Some("br-p")))?;
    f.service.define(&xml("p", Some(UUID_A), Some("br-q")))?;
    assert_eq!(
        f.service.get("p", false)?.summary.bridge.as_deref(),
        Some("br-p")
    );
    let inactive = f.service.get("p", true)?;
    assert_eq!(inactive.definition.bridge_name(), Some("br-q"));
    // The kernel still runs the live definition; the new one takes effect at the next start
    // (libvirt's newDef).
    assert_eq!(f.kernel.holds().get("p").map(String::as_str), Some("br-p"));
    f.service.destroy(&["p".to_string()])?;
    f.service.start("p")?;
    assert_eq!(f.kernel.holds().get("p").map(String::as_str), Some("br-q"));
    Ok(())
}

#[test]
fn edit_needs_a_current_etag_and_keeps_identity() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", Some(UUID_A), Some("br-a")))?;
    let new = xml("a", None, Some("br-b"));
    assert_eq!(
        refused(f.service.edit("a", &new, None)),
        Refused::PreconditionRequired
    );
    assert_eq!(
        refused(f.service.edit("a", &new, Some("\"7\""))),
        Refused::Stale
    );
    assert_eq!(
        refused(f.service.edit("x", &new, Some("\"1\""))),
        Refused::NotFound
    );
    let renamed = xml("b", None, None);
    assert_eq!(
        refused(f.service.edit("a", &renamed, Some("\"1\""))),
        Refused::Invalid
    );
    let other_uuid = xml("a", Some(UUID_B), None);
    assert_eq!(
        refused(f.service.edit("a", &other_uuid, Some("\"1\""))),
        Refused::Invalid
    );
    let done = f.service.edit("a", &new, Some("\"1\""))?;
    assert_eq!(done.etag, "\"2\"");
    assert_eq!(done.network.uuid.to_string(), UUID_A);
    assert_eq!(done.network.bridge.as_deref(), Some("br-b"));
    assert_eq!(
        refused(f.service.edit("a", &new, Some("\"1\""))),
        Refused::Stale
    );
    Ok(())
}

#[test]
fn edit_of_active_network_changes_only_the_persistent_definition() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", Some(UUID_A), Some("br-a")))?;
    f.service.start("a")?;
    let etag = f.service.get("a", false)?.etag;
    f.service
        .edit("a", &xml("a", None, Some("br-b")), Some(&etag))?;
    assert_eq!(
        f.service.get("a", false)?.summary.bridge.as_deref(),
        Some("br-a")
    );
    assert_eq!(
        f.service.get("a", true)?.definition.bridge_name(),
        Some("br-b")
    );
    assert_eq!(f.kernel.holds().get("a").map(String::as_str), Some("br-a"));
    Ok(())
}

#[test]
fn edit_of_transient_network_makes_it_persistent() -> Result<()> {
    let f = Fixture::new();
    let t = f.service.create(&xml("t", None, Some("br-t")))?;
    let done = f
        .service
        .edit("t", &xml("t", None, Some("br-u")), Some(&t.etag))?;
    assert!(done.network.persistent && done.network.active);
    // It survives its destroy now, inactive, with the new definition.
    f.service.destroy(&["t".to_string()])?;
    let after = f.service.get("t", false)?;
    assert!(!after.summary.active);
    assert_eq!(after.definition.bridge_name(), Some("br-u"));
    Ok(())
}

#[test]
fn a_start_the_kernel_refuses_leaves_the_network_inactive() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", None, Some("br-a")))?;
    let before = f.service.get("a", false)?.etag;
    *lock(&f.kernel.refuse_start) = Some("a".into());
    assert!(f.service.start("a").is_err());
    assert!(!f.active("a"));
    assert_eq!(f.service.get("a", false)?.etag, before);
    assert!(f.kernel.holds().is_empty());
    assert!(lock(&f.services.running).is_empty());
    // A new transient network the kernel refuses is not recorded at all.
    *lock(&f.kernel.refuse_start) = Some("t".into());
    assert!(f.service.create(&xml("t", None, Some("br-t"))).is_err());
    assert_eq!(refused(f.service.get("t", false)), Refused::NotFound);
    Ok(())
}

#[test]
fn a_start_whose_servers_fail_is_undone_in_the_kernel() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", None, Some("br-a")))?;
    *lock(&f.services.refuse_start) = Some("a".into());
    assert!(f.service.start("a").is_err());
    assert!(!f.active("a"));
    assert!(f.kernel.holds().is_empty(), "{:?}", f.kernel.holds());
    // Once the servers can start, the network starts.
    *lock(&f.services.refuse_start) = None;
    assert!(f.service.start("a")?.network.active);
    assert_eq!(refused(f.service.start("a")), Refused::Conflict);
    Ok(())
}

#[test]
fn destroy_is_all_or_nothing() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", None, Some("br-a")))?;
    f.service.define(&xml("b", None, Some("br-b")))?;
    f.service.start("a")?;
    assert_eq!(
        refused(f.service.destroy(&["a".to_string(), "b".to_string()])),
        Refused::Conflict
    );
    assert_eq!(
        refused(f.service.destroy(&["a".to_string(), "zz".to_string()])),
        Refused::NotFound
    );
    assert!(f.active("a"));
    assert!(f.kernel.holds().contains_key("a"));
    let stopped = f.service.destroy(&["a".to_string(), "a".to_string()])?;
    assert_eq!(stopped.len(), 1);
    assert!(!stopped[0].active && stopped[0].persistent);
    assert!(f.kernel.holds().is_empty());
    assert!(lock(&f.services.running).is_empty());
    Ok(())
}

#[test]
fn autostart_changes_the_etag_only_when_it_changes() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("a", None, None))?;
    assert_eq!(f.service.set_autostart("a", false)?.etag, "\"1\"");
    assert_eq!(f.service.set_autostart("a", true)?.etag, "\"2\"");
    assert_eq!(f.service.set_autostart("a", true)?.etag, "\"2\"");
    Ok(())
}

#[test]
fn update_refuses_a_definition_that_does_not_exist() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("p", None, Some("br-p")))?;
    f.service.create(&xml("t", None, Some("br-t")))?;
    let request = |live, config| virtnet_api::UpdateRequest {
        command: "add-last".into(),
        section: "dns-host".into(),
        xml: "<host ip='192.0.2.1'><hostname>h</hostname></host>".into(),
        parent_index: None,
        live,
        config,
    };
    // The live definition of an inactive network, the persistent one of a transient network.
    assert_eq!(
        refused(f.service.update("p", &request(true, false))),
        Refused::Conflict
    );
    assert_eq!(
        refused(f.service.update("t", &request(false, true))),
        Refused::Conflict
    );
    Ok(())
}

#[test]
fn restart_marks_networks_the_kernel_cannot_realise_inactive() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("p", None, Some("br-p")))?;
    f.service.start("p")?;
    f.service.create(&xml("t", None, Some("br-t")))?;
    f.service.define(&xml("ok", None, Some("br-ok")))?;
    f.service.start("ok")?;
    let f = f.reopen();
    lock(&f.kernel.refuse_reconcile).extend(["p".to_string(), "t".to_string()]);
    let mut failed = f.service.restore()?;
    failed.sort();
    assert_eq!(failed, vec!["p".to_string(), "t".to_string()]);
    // The persistent one stays, inactive; the transient one is gone; the other one runs.
    assert!(!f.active("p") && f.service.get("p", false).is_ok());
    assert_eq!(refused(f.service.get("t", false)), Refused::NotFound);
    assert!(f.active("ok"));
    assert_eq!(
        f.kernel.holds().keys().collect::<Vec<_>>(),
        vec![&"ok".to_string()]
    );
    assert!(lock(&f.services.running).contains("ok"));
    Ok(())
}

/// Runs `define` of each XML on its own thread, all released at once; returns the results.
fn define_at_once(f: &Fixture, xmls: Vec<String>) -> Vec<Result<ChangeResult>> {
    let barrier = Arc::new(std::sync::Barrier::new(xmls.len()));
    let threads: Vec<_> = xmls
        .into_iter()
        .map(|x| {
            let (service, barrier) = (f.service.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                service.define(&x)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| panic!("define thread panicked"))
        })
        .collect()
}

/// Of concurrent defines that all want something unique, exactly one wins and the others
/// are refused as conflicts.
fn one_winner(results: Vec<Result<ChangeResult>>) {
    let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "winners: {won:?}");
    for r in lost {
        assert_eq!(refused(r), Refused::Conflict);
    }
}

#[test]
fn concurrent_defines_of_one_name_have_one_winner() {
    let f = Fixture::new();
    let xmls = (0..8)
        .map(|i| xml("race", None, Some(&format!("br-race{i}"))))
        .collect();
    one_winner(define_at_once(&f, xmls));
    assert_eq!(f.service.list().len(), 1);
}

#[test]
fn concurrent_defines_of_one_bridge_under_different_names_have_one_winner() {
    // Different names take different network locks: only the reservation keeps the bridge
    // unique.
    let f = Fixture::new();
    let xmls = (0..8)
        .map(|i| xml(&format!("n{i}"), None, Some("br-shared")))
        .collect();
    one_winner(define_at_once(&f, xmls));
    assert_eq!(f.service.list().len(), 1);
}

#[test]
fn concurrent_defines_of_one_uuid_under_different_names_have_one_winner() {
    let f = Fixture::new();
    let xmls = (0..8)
        .map(|i| xml(&format!("n{i}"), Some(UUID_A), Some(&format!("br-u{i}"))))
        .collect();
    one_winner(define_at_once(&f, xmls));
    assert_eq!(f.service.list().len(), 1);
}

#[test]
fn concurrent_auto_named_bridges_are_all_different() {
    let f = Fixture::new();
    let xmls = (0..8).map(|i| xml(&format!("n{i}"), None, None)).collect();
    let results = define_at_once(&f, xmls);
    let mut bridges: Vec<String> = results
        .into_iter()
        .map(|r| match r {
            Ok(c) => c.network.bridge.unwrap_or_default(),
            Err(e) => panic!("define: {e}"),
        })
        .collect();
    bridges.sort();
    bridges.dedup();
    assert_eq!(bridges.len(), 8, "{bridges:?}");
}

#[test]
fn a_start_held_in_the_kernel_blocks_no_other_network_and_no_read() -> Result<()> {
    let f = Fixture::new();
    f.service.define(&xml("slow", None, Some("br-slow")))?;
    f.service.define(&xml("b", None, Some("br-b")))?;
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *lock(&f.kernel.gate) = Some((
        "slow".into(),
        Arc::new(Gate {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        }),
    ));
    let service = f.service.clone();
    let slow = std::thread::spawn(move || service.start("slow").map(|c| c.network.active));
    entered
        .recv()
        .unwrap_or_else(|e| panic!("the start never reached the kernel: {e}"));
    // While "slow" is inside the kernel: reads, and changes of other networks, go through.
    let service = f.service.clone();
    let (done_tx, done) = mpsc::channel();
    let others = std::thread::spawn(move || {
        let result = (|| -> Result<()> {
            assert_eq!(service.list().len(), 2);
            service.get("slow", false)?;
            service.define(&xml("c", None, Some("br-c")))?;
            service.start("b")?;
            service.set_autostart("c", true)?;
            service.destroy(&["b".to_string()])?;
            Ok(())
        })();
        let _ = done_tx.send(result);
    });
    // A deadlock detector, not a timing: the other requests need no time to speak of, and a
    // global lock would hold them until "slow" is released, which happens only afterwards.
    let outcome = done.recv_timeout(Duration::from_secs(60));
    let _ = release.send(());
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "requests on other networks waited for a start in the kernel: {outcome:?}"
    );
    let _ = others.join();
    assert!(slow
        .join()
        .unwrap_or_else(|_| panic!("start thread panicked"))?);
    // A second change of "slow" itself waited for the first and sees it done.
    assert_eq!(refused(f.service.start("slow")), Refused::Conflict);
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
