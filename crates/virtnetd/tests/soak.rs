//! Issue 12: a short soak (the CI version of `bench/soak.sh`). 8 clients do every verb at
//! random on 10 networks for ~25 s against one daemon in a private namespace. Then:
//! - no request failed other than with an expected conflict (not found / conflict with the
//!   current state), and none hung (each request has a timeout; one that hits it is a
//!   deadlock);
//! - the kernel holds exactly what the store says is active (bridges, their addresses and
//!   routes, the taps of the stored ports, the names and subnets in virtnet's nftables table,
//!   no parked link once the reaper is done), after the soak and after a restart, with the same
//!   networks active;
//! - once every network is destroyed and every port detached, nothing of virtnet is left.
//!
//! Nothing here depends on timing: the clients run for a while, then what they did is checked.
//! `VIRTNET_SOAK_SECONDS` lengthens the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtnet_api::client::{Client, ClientError};
use virtnet_api::{ErrorCode, PortRequest, UpdateRequest};
use virtnet_model::InterfaceSource;
use virtnet_testkit::{Daemon, Lab, Netns};

const NETWORKS: usize = 10;
const CLIENTS: usize = 8;
/// A request that takes longer than this is taken for a deadlock.
const HANG: Duration = Duration::from_secs(60);

fn name(i: usize) -> String {
    format!("sk{i}")
}

fn bridge(i: usize) -> String {
    format!("vbsk{i}")
}

fn xml(i: usize) -> String {
    format!(
        "<network><name>sk{i}</name><uuid>5eed0000-0000-4000-8000-0000000000{i:02}</uuid>\
         <forward mode='nat'/><bridge name='vbsk{i}' stp='off'/>\
         <ip address='10.160.{i}.1' prefix='24'><dhcp><range start='10.160.{i}.10' \
         end='10.160.{i}.200'/></dhcp></ip></network>"
    )
}

/// xorshift64*: the clients' choices, reproducible from the seed printed on failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[derive(Default)]
struct Tally {
    calls: BTreeMap<&'static str, usize>,
    ok: usize,
    conflicts: usize,
    unexpected: Vec<String>,
    hangs: Vec<String>,
}

/// One random call; returns the verb and its result (errors as `ClientError`).
fn one_call(c: &Client, k: usize, rng: &mut Rng) -> (&'static str, Result<(), ClientError>) {
    let i = rng.below(NETWORKS);
    let net = name(i);
    let domain = format!("c{k}");
    let mac = |rng: &mut Rng| {
        format!(
            "52:54:{k:02x}:{:02x}:{:02x}:{:02x}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        )
    };
    match rng.below(16) {
        0 => ("define", c.define(&xml(i)).map(drop)),
        1 => ("create", c.create(&xml(i)).map(drop)),
        2 | 3 => ("start", c.start(&net).map(drop)),
        4 | 5 => ("destroy", c.destroy(&[net]).map(drop)),
        6 => ("undefine", c.undefine(&net).map(drop)),
        7 => (
            "autostart",
            c.set_autostart(&net, rng.below(2) == 0).map(drop),
        ),
        8 => {
            let host = format!(
                "<host mac='52:54:{k:02x}:ee:00:{:02x}' ip='10.160.{i}.{}'/>",
                rng.below(4),
                201 + k
            );
            let command = if rng.below(2) == 0 { "add" } else { "delete" };
            let req = UpdateRequest {
                command: command.into(),
                section: "ip-dhcp-host".into(),
                xml: host,
                parent_index: None,
                live: false,
                config: true,
            };
            ("update", c.update(&net, &req).map(drop))
        }
        9 => ("list", c.list().map(drop)),
        10 => ("get", c.get(&net, false).map(drop)),
        11 => ("dumpxml", c.get_xml(&net, false).map(drop)),
        12 => ("leases", c.leases(&net, None).map(drop)),
        13 => ("bridges", c.bridges().map(drop)),
        14 => {
            let req = PortRequest::new(domain, InterfaceSource::Network(net), mac(rng));
            ("attach", c.create_port(&req).map(drop))
        }
        _ => match c.ports(Some(&domain)) {
            Ok(ports) if !ports.is_empty() => {
                let p = &ports[rng.below(ports.len())];
                ("detach", c.delete_port(&p.name).map(drop))
            }
            other => ("ports", other.map(drop)),
        },
    }
}

fn client(socket: std::path::PathBuf, k: usize, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let c = Client::new(socket).with_timeout(HANG);
    let seed = 0x5eed_0000 + k as u64;
    let mut rng = Rng(seed);
    while !stop.load(Ordering::Relaxed) {
        let (verb, result) = one_call(&c, k, &mut rng);
        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
        *t.calls.entry(verb).or_default() += 1;
        match result {
            Ok(()) => t.ok += 1,
            Err(e) => match e.code() {
                // The request did not fit the state another client had just made.
                Some(ErrorCode::NotFound | ErrorCode::Conflict) => t.conflicts += 1,
                // Deleting a DHCP host another client deleted first (libvirt's
                // "operation invalid" too).
                Some(ErrorCode::Invalid)
                    if verb == "update" && e.to_string().contains("couldn't locate") =>
                {
                    t.conflicts += 1
                }
                Some(_) => t
                    .unexpected
                    .push(format!("client {k} (seed {seed}): {verb}: {e}")),
                None if matches!(&e, ClientError::Io { source, .. }
                    if matches!(source.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) =>
                {
                    t.hangs.push(format!("client {k}: {verb}: {e}"))
                }
                None => t
                    .unexpected
                    .push(format!("client {k} (seed {seed}): {verb}: {e}")),
            },
        }
    }
}

/// What the kernel of `ns` holds of virtnet, named so it compares with the store.
#[derive(Debug, PartialEq, Eq)]
struct KernelState {
    bridges: BTreeSet<String>,
    taps: BTreeSet<String>,
    addresses: BTreeSet<(String, String)>,
    route_devices: BTreeSet<String>,
    nft_bridges: BTreeSet<String>,
    nft_subnets: BTreeSet<String>,
}

fn json(ns: &Netns, args: &[&str]) -> serde_json::Value {
    let out = ns.ip_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip {args:?}: {e}: {out}"))
}

fn parked(ns: &Netns) -> Vec<String> {
    json(ns, &["-j", "link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("vndel"))
        .map(String::from)
        .collect()
}

fn kernel_state(ns: &Netns) -> KernelState {
    // The reaper deletes parked links in the background: wait for it (a hang guard only).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !parked(ns).is_empty() {
        assert!(
            Instant::now() < deadline,
            "parked links never deleted: {:?}",
            parked(ns)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = |prefix: &str| -> BTreeSet<String> {
        json(ns, &["-j", "link", "show"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| n.starts_with(prefix))
            .map(String::from)
            .collect()
    };
    let mut addresses = BTreeSet::new();
    for link in json(ns, &["-j", "-4", "addr", "show"])
        .as_array()
        .into_iter()
        .flatten()
    {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let local = a["local"].as_str().unwrap_or_default();
            if local.starts_with("10.160.") {
                let dev = link["ifname"].as_str().unwrap_or_default();
                addresses.insert((dev.to_string(), local.to_string()));
            }
        }
    }
    let route_devices = json(ns, &["-j", "-4", "route", "show", "table", "all"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dst"].as_str().is_some_and(|d| d.starts_with("10.160.")))
        .filter_map(|r| r["dev"].as_str().map(String::from))
        .collect();
    let nft = ns.exec(["nft", "list", "table", "inet", "virtnet"]);
    let nft = String::from_utf8_lossy(&nft.stdout).into_owned();
    let words = |prefix: &str, end: &[char]| -> BTreeSet<String> {
        nft.match_indices(prefix)
            .map(|(at, _)| {
                let rest = &nft[at..];
                let len = rest.find(end).unwrap_or(rest.len());
                rest[..len].to_string()
            })
            .collect()
    };
    KernelState {
        bridges: names("vbsk"),
        taps: names("vnet"),
        addresses,
        route_devices,
        nft_bridges: words("vbsk", &['"', ',', ' ', '}', '\n']),
        nft_subnets: words("10.160.", &['/', ',', ' ', '}', '\n', '-']),
    }
}

/// The active networks and stored ports, and the kernel state they call for.
/// Also returns the persistent networks marked autostart (a restart starts those too).
fn store_state(
    c: &Client,
    kernel: &KernelState,
) -> (BTreeSet<String>, BTreeSet<String>, KernelState) {
    let networks = c.list().expect("list");
    let autostart = networks
        .iter()
        .filter(|n| n.autostart && n.persistent)
        .map(|n| n.name.clone())
        .collect();
    let active: BTreeSet<String> = networks
        .into_iter()
        .filter(|n| n.active)
        .map(|n| n.name)
        .collect();
    let index = |n: &String| n.trim_start_matches("sk").parse::<usize>().expect("sk<i>");
    let bridges: BTreeSet<String> = active.iter().map(|n| bridge(index(n))).collect();
    let taps = c
        .ports(None)
        .expect("ports")
        .into_iter()
        .map(|p| p.name)
        .collect();
    let want = KernelState {
        addresses: active
            .iter()
            .map(|n| (bridge(index(n)), format!("10.160.{}.1", index(n))))
            .collect(),
        route_devices: bridges.clone(),
        // The table may leave out what a network does not need, never hold an inactive one's.
        nft_bridges: kernel.nft_bridges.intersection(&bridges).cloned().collect(),
        nft_subnets: kernel
            .nft_subnets
            .iter()
            .filter(|s| {
                active
                    .iter()
                    .any(|n| s.starts_with(&format!("10.160.{}.", index(n))))
            })
            .cloned()
            .collect(),
        bridges,
        taps,
    };
    (active, autostart, want)
}

#[test]
fn concurrent_clients_leave_no_deadlock_no_error_and_no_leak() {
    let lab = Lab::new("soak");
    let mut daemon = Daemon::start_in(lab.host());
    let c = Client::new(daemon.socket()).with_timeout(HANG);
    for i in 0..NETWORKS {
        c.define(&xml(i)).expect("define");
        if i % 2 == 0 {
            c.start(&name(i)).expect("start");
        }
    }
    let seconds = std::env::var("VIRTNET_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (socket, stop, tally) = (daemon.socket(), Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || client(socket, k, &stop, &tally))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    let calls: usize = t.calls.values().sum();
    eprintln!(
        "soak: {calls} calls {:?}: {} ok, {} expected conflicts",
        t.calls, t.ok, t.conflicts
    );
    assert!(t.hangs.is_empty(), "hung requests: {:#?}", t.hangs);
    assert!(
        t.unexpected.is_empty(),
        "unexpected errors: {:#?}",
        t.unexpected
    );
    // The soak did something: every verb ran, and a good share of the calls succeeded
    // (about 60 % do; the rest are conflicts between clients).
    assert!(t.calls.len() >= 15, "{:?}", t.calls);
    assert!(t.ok * 4 > calls, "{} of {calls} succeeded", t.ok);

    let kernel = kernel_state(lab.host());
    let (active, autostart, want) = store_state(&c, &kernel);
    assert_eq!(kernel, want, "after the soak");

    daemon.restart();
    let c = Client::new(daemon.socket()).with_timeout(HANG);
    let kernel = kernel_state(lab.host());
    let (again, _, want) = store_state(&c, &kernel);
    // The same networks, and the autostart ones that were not running (as at every start).
    let expected: BTreeSet<String> = active.union(&autostart).cloned().collect();
    assert_eq!(again, expected, "the networks active after a restart");
    assert_eq!(kernel, want, "after a restart");

    let names: Vec<String> = again.into_iter().collect();
    if !names.is_empty() {
        c.destroy(&names).expect("destroy all");
    }
    for p in c.ports(None).expect("ports") {
        c.delete_port(&p.name).expect("detach");
    }
    let empty = kernel_state(lab.host());
    assert!(
        empty.bridges.is_empty()
            && empty.taps.is_empty()
            && empty.addresses.is_empty()
            && empty.route_devices.is_empty()
            && empty.nft_bridges.is_empty()
            && empty.nft_subnets.is_empty(),
        "left after teardown: {empty:?}"
    );
}
