//! End-to-end tests of `virtnetd`: real daemon processes with private state and run
//! directories, spoken to over their unix sockets. Nothing here touches the network stack.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{example, net_xml, request, send_head, spawn_raw, Daemon, Dirs};
use virtnet_api::{ChangeResult, ErrorCode, NetworkDetail, NetworkSummary, MAX_BODY_BYTES};
use virtnet_model::Network;

const DEFAULT_UUID: &str = "c6b8b176-175f-4957-a84e-d2283850eeb7";
const OTHER_UUID: &str = "0b9d1b3c-7e4c-4a52-9d63-3c1a1c0f0a01";

fn list(d: &Daemon) -> Vec<NetworkSummary> {
    let r = d.get("/v1/networks");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn names(d: &Daemon) -> Vec<String> {
    list(d).into_iter().map(|n| n.name).collect()
}

#[test]
fn define_list_get_autostart_undefine() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    assert!(list(&d).is_empty());

    let r = d.define(&example("default-nat.xml"));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"1\""));
    let c: ChangeResult = r.json();
    assert!(c.created);
    assert_eq!(c.etag, "\"1\"");
    assert_eq!(c.network.uuid.to_string(), DEFAULT_UUID);
    assert!(c.network.persistent && !c.network.active && !c.network.autostart);

    let r = d.define(&example("isolated.xml"));
    assert_eq!(r.status, 201, "{}", r.text());
    let isolated: ChangeResult = r.json();
    assert!(isolated.created);

    // List: sorted by name.
    let all = list(&d);
    assert_eq!(
        all.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["default", "isolated"]
    );
    assert_eq!(all[0].bridge.as_deref(), Some("virbr0"));
    assert_eq!(all[1].bridge.as_deref(), Some("virbr2"));

    // JSON detail, by name and by UUID.
    let r = d.get("/v1/networks/default");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let detail: NetworkDetail = r.json();
    assert_eq!(detail.definition.name, "default");
    assert_eq!(detail.etag, "\"1\"");
    let by_uuid: NetworkDetail = d.get(&format!("/v1/networks/{DEFAULT_UUID}")).json();
    assert_eq!(by_uuid, detail);

    // XML, by query and by Accept.
    let r = d.get("/v1/networks/default?format=xml");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    let parsed = Network::from_xml(&r.text()).expect("served XML parses");
    assert_eq!(parsed, detail.definition);
    let r = d.req(
        "GET",
        "/v1/networks/default",
        &[("Accept", "application/xml")],
        b"",
    );
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert!(r.text().starts_with("<network"));
    assert_eq!(d.get("/v1/networks/default?format=yaml").status, 400);

    // Autostart.
    let r = d.req(
        "PUT",
        "/v1/networks/default/autostart",
        &[("Content-Type", "application/json")],
        br#"{"autostart": true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"2\""));
    let c: ChangeResult = r.json();
    assert!(c.network.autostart);
    assert!(list(&d)[0].autostart);
    let r = d.req(
        "PUT",
        "/v1/networks/default/autostart",
        &[],
        b"{\"auto\":1}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error().code, ErrorCode::BadRequest);

    // Undefine an inactive network: gone.
    let r = d.req("DELETE", "/v1/networks/default", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let c: ChangeResult = r.json();
    assert!(!c.network.persistent);
    let r = d.get("/v1/networks/default");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.error().message,
        "Network not found: no network with matching name 'default'"
    );
    let r = d.get(&format!("/v1/networks/{DEFAULT_UUID}"));
    assert_eq!(
        r.error().message,
        format!("Network not found: no network with matching uuid '{DEFAULT_UUID}'")
    );
    assert_eq!(names(&d), ["isolated"]);
}

#[test]
fn names_are_percent_decoded() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    let r = d.define(&net_xml("my net+ü", None, Some("br-odd")));
    assert_eq!(r.status, 201, "{}", r.text());
    let path = virtnet_api::paths::network("my net+ü");
    let r = d.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    let detail: NetworkDetail = r.json();
    assert_eq!(detail.summary.name, "my net+ü");
}

#[test]
fn transient_networks_and_undefine_of_an_active_network() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);

    // create: transient and active.
    let r = d.create(&example("isolated.xml"));
    assert_eq!(r.status, 201, "{}", r.text());
    let c: ChangeResult = r.json();
    assert!(c.created && c.network.active && !c.network.persistent);
    let r = d.req(
        "PUT",
        "/v1/networks/isolated/autostart",
        &[],
        br#"{"autostart": true}"#,
    );
    assert_eq!(r.status, 409);
    let e = r.error();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.message, "cannot set autostart for transient network");
    assert_eq!(
        d.req("DELETE", "/v1/networks/isolated", &[], b"").status,
        409
    );
    // Creating it again while it runs is a conflict.
    let detail: NetworkDetail = d.get("/v1/networks/isolated").json();
    let again = net_xml(
        "isolated",
        Some(&detail.summary.uuid.to_string()),
        Some("virbr2"),
    );
    assert_eq!(d.create(&again).status, 409);

    // A persistent inactive network is started by create with the same name and UUID.
    assert_eq!(d.define(&example("default-nat.xml")).status, 201);
    let r = d.create(&example("default-nat.xml"));
    assert_eq!(r.status, 201, "{}", r.text());
    let c: ChangeResult = r.json();
    assert!(!c.created && c.network.active && c.network.persistent);
    let r = d.req(
        "PUT",
        "/v1/networks/default/autostart",
        &[],
        br#"{"autostart": true}"#,
    );
    assert_eq!(r.status, 200);

    // Redefining an active network changes only its persistent definition.
    let r = d.define(&example("default-nat.xml").replace("virbr0", "virbr8"));
    assert_eq!(r.status, 201, "{}", r.text());
    let live: NetworkDetail = d.get("/v1/networks/default").json();
    assert_eq!(live.definition.bridge_name(), Some("virbr0"));
    let config: NetworkDetail = d.get("/v1/networks/default?inactive=true").json();
    assert_eq!(config.definition.bridge_name(), Some("virbr8"));
    let xml = d
        .get("/v1/networks/default?inactive=true&format=xml")
        .text();
    assert!(xml.contains("virbr8"), "{xml}");

    // Undefine while active: stays, as a transient network without autostart.
    let r = d.req("DELETE", "/v1/networks/default", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let c: ChangeResult = r.json();
    assert!(c.network.active && !c.network.persistent && !c.network.autostart);
    let detail: NetworkDetail = d.get("/v1/networks/default").json();
    assert!(detail.summary.active && !detail.summary.persistent);
    assert_eq!(names(&d), ["default", "isolated"]);
}

#[test]
fn redefine_and_identity_conflicts_leave_the_store_unchanged() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    let xml = example("default-nat.xml");
    assert_eq!(d.define(&xml).status, 201);

    // Same name and UUID: a redefinition.
    let r = d.define(&xml.replace("virbr0", "virbr9"));
    assert_eq!(r.status, 201, "{}", r.text());
    let c: ChangeResult = r.json();
    assert!(!c.created);
    assert_eq!(c.etag, "\"2\"");
    assert_eq!(c.network.bridge.as_deref(), Some("virbr9"));

    let before = d.get("/v1/networks/default").text();
    let refused = [
        // Same name, other UUID.
        xml.replace(DEFAULT_UUID, OTHER_UUID),
        // Same UUID, other name.
        xml.replace("<name>default</name>", "<name>other</name>")
            .replace("virbr9", "virbr7"),
        // Duplicate bridge name.
        net_xml("other", Some(OTHER_UUID), Some("virbr9")),
    ];
    for bad in &refused {
        let r = d.define(bad);
        assert_eq!(r.status, 409, "{bad}: {}", r.text());
        assert_eq!(r.error().code, ErrorCode::Conflict);
    }
    // Invalid definitions: a field path in the error.
    let r = d.define(&net_xml("bad/name", None, None));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = d.define("<network><name>x</name><ip address='10.0.0.1' prefix='99'/></network>");
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.error();
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(e.field.is_some(), "{e:?}");

    assert_eq!(names(&d), ["default"]);
    assert_eq!(d.get("/v1/networks/default").text(), before);

    // And on disk: a restart sees exactly the same.
    assert!(d.terminate().success());
    let d = Daemon::start(&dirs);
    assert_eq!(names(&d), ["default"]);
    assert_eq!(d.get("/v1/networks/default").text(), before);
}

#[test]
fn edit_requires_a_current_etag() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    assert_eq!(d.define(&example("default-nat.xml")).status, 201);
    // No UUID: keeps the current one.
    let edited = net_xml("default", None, Some("virbr5"));

    let r = d.req("PUT", "/v1/networks/default", &[], edited.as_bytes());
    assert_eq!(r.status, 428);
    assert_eq!(r.error().code, ErrorCode::PreconditionRequired);

    let r = d.req(
        "PUT",
        "/v1/networks/default",
        &[("If-Match", "\"42\"")],
        edited.as_bytes(),
    );
    assert_eq!(r.status, 412);
    assert_eq!(r.error().code, ErrorCode::EtagMismatch);

    let etag = d
        .get("/v1/networks/default")
        .header("etag")
        .map(str::to_string);
    let etag = etag.expect("etag");
    let r = d.req(
        "PUT",
        "/v1/networks/default",
        &[("If-Match", &etag)],
        edited.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"2\""));
    let c: ChangeResult = r.json();
    assert_eq!(c.network.uuid.to_string(), DEFAULT_UUID);
    assert_eq!(c.network.bridge.as_deref(), Some("virbr5"));

    // The old ETag is stale now.
    let r = d.req(
        "PUT",
        "/v1/networks/default",
        &[("If-Match", &etag)],
        edited.as_bytes(),
    );
    assert_eq!(r.status, 412);

    // Name and UUID cannot change.
    let renamed = net_xml("renamed", None, None);
    let r = d.req(
        "PUT",
        "/v1/networks/default",
        &[("If-Match", "\"2\"")],
        renamed.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let other_uuid = net_xml("default", Some(OTHER_UUID), None);
    let r = d.req(
        "PUT",
        "/v1/networks/default",
        &[("If-Match", "\"2\"")],
        other_uuid.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let detail: NetworkDetail = d.get("/v1/networks/default").json();
    assert_eq!(detail.etag, "\"2\"");
}

#[test]
fn concurrent_defines_of_one_name_have_one_winner() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    const N: usize = 12;
    let socket = d.socket.clone();
    let barrier = Arc::new(std::sync::Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let socket = socket.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let xml = net_xml("race", None, Some(&format!("br-race{i}")));
                barrier.wait();
                request(&socket, "POST", "/v1/networks", &[], xml.as_bytes()).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(names(&d), ["race"]);
}

#[test]
fn two_daemons_side_by_side() {
    let a_dirs = Dirs::new();
    let b_dirs = Dirs::new();
    let a = Daemon::start(&a_dirs);
    let b = Daemon::start(&b_dirs);
    assert_eq!(a.define(&example("default-nat.xml")).status, 201);
    assert_eq!(b.define(&example("isolated.xml")).status, 201);
    assert_eq!(names(&a), ["default"]);
    assert_eq!(names(&b), ["isolated"]);
}

#[test]
fn restart_keeps_definitions_and_a_reboot_drops_live_state() {
    let dirs = Dirs::new();
    let boot = dirs.tmp.path().join("boot_id");
    std::fs::write(&boot, "boot-one\n").expect("boot id");
    let boot_arg = ["--boot-id-file", boot.to_str().expect("utf-8 path")];

    let d = Daemon::start_with(&dirs, &boot_arg);
    assert_eq!(d.define(&example("default-nat.xml")).status, 201);
    assert_eq!(d.create(&example("default-nat.xml")).status, 201);
    assert_eq!(d.create(&example("isolated.xml")).status, 201);
    let before = list(&d);
    assert!(before.iter().all(|n| n.active));
    assert!(d.terminate().success());

    // Same boot: running networks stay running (libvirt keeps them across a daemon restart).
    let d = Daemon::start_with(&dirs, &boot_arg);
    assert_eq!(list(&d), before);
    assert!(d.terminate().success());

    // Another boot: nothing runs any more; transient networks are gone.
    std::fs::write(&boot, "boot-two\n").expect("boot id");
    let d = Daemon::start_with(&dirs, &boot_arg);
    let after = list(&d);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].name, "default");
    assert!(!after[0].active && after[0].persistent);
}

#[test]
fn kill_9_during_a_stream_of_defines_loses_no_acknowledged_change() {
    let dirs = Dirs::new();
    let mut acked_all: Vec<String> = Vec::new();
    // Several rounds, killed at different points of the stream, on the same store.
    for (round, kill_after) in [(0, 40), (1, 7), (2, 25)] {
        let d = Daemon::start(&dirs);
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let socket = d.socket.clone();
        let writer = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    let name = format!("net-{round}-{i}");
                    let xml = net_xml(&name, None, Some(&format!("vnb{round}x{i}")));
                    let sent =
                        common::try_request(&socket, "POST", "/v1/networks", &[], xml.as_bytes());
                    match sent {
                        Ok(r) if r.status == 201 => acked.lock().expect("lock").push(name),
                        Ok(r) => panic!("define {name}: {} {}", r.status, r.text()),
                        // The daemon died under us: this one was not acknowledged.
                        Err(_) => return,
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().expect("lock").len() < kill_after {
            assert!(Instant::now() < deadline, "defines are too slow");
            std::thread::sleep(Duration::from_millis(2));
        }
        d.kill9();
        writer.join().expect("writer thread");
        let acked = acked.lock().expect("lock").clone();
        assert!(acked.len() >= kill_after && acked.len() < 2000);
        eprintln!(
            "round {round}: {} defines acknowledged before SIGKILL",
            acked.len()
        );
        acked_all.extend(acked);
        // The daemon had no chance to clean up: its socket is stale.
        assert!(dirs.socket().exists());
    }

    // The stale socket is replaced; every acknowledged network is there and readable.
    let d = Daemon::start(&dirs);
    let listed = names(&d);
    for name in &acked_all {
        assert!(listed.contains(name), "acknowledged {name} lost");
    }
    // At most the define in flight at each kill may have landed without its answer.
    assert!(
        listed.len() <= acked_all.len() + 3,
        "{} vs {}",
        listed.len(),
        acked_all.len()
    );
    for name in &listed {
        let r = d.get(&format!("/v1/networks/{name}?format=xml"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let net = Network::from_xml(&r.text()).expect("stored definition parses");
        assert_eq!(&net.name, name);
    }
    assert!(d.terminate().success());

    // And the raw store decodes record by record.
    let db = dirs.state.join(virtnetd::store::DB_FILE);
    let (_store, records, _) = virtnetd::store::Store::open(&db, None).expect("store opens");
    assert_eq!(records.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = listed.clone();
        sorted.sort();
        sorted
    });
}

#[test]
fn sigterm_exits_0_and_removes_the_socket_which_is_0660() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    let meta = std::fs::metadata(dirs.socket()).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    let state_mode = std::fs::metadata(&dirs.state)
        .expect("state")
        .permissions()
        .mode();
    assert_eq!(state_mode & 0o777, 0o700);
    let status = d.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(!dirs.socket().exists());

    // SIGINT too.
    let mut d = Daemon::start(&dirs);
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit().code(), Some(0));
    assert!(!dirs.socket().exists());
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);
    let xml = example("isolated.xml");
    let (first, rest) = xml.as_bytes().split_at(20);
    let mut stream = send_head(&d.socket, "POST", "/v1/networks", &[], xml.len()).expect("head");
    std::io::Write::write_all(&mut stream, first).expect("first part");
    // Wait until the daemon is inside the request (it logs its start at debug level).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d
        .log()
        .lines()
        .any(|l| l.contains("method=POST") && l.contains("received"))
    {
        assert!(Instant::now() < deadline, "request not seen: {}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    d.signal(libc::SIGTERM);
    while !d.log().contains("SIGTERM") {
        assert!(Instant::now() < deadline, "SIGTERM not seen: {}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    std::io::Write::write_all(&mut stream, rest).expect("rest");
    let r = common::read_response(&mut stream).expect("answer");
    assert_eq!(r.status, 201, "{}", r.text());
    let mut d = d;
    assert_eq!(d.wait_exit().code(), Some(0));
    assert!(!dirs.socket().exists());
    // The acknowledged define is in the store.
    let d = Daemon::start(&dirs);
    assert_eq!(names(&d), ["isolated"]);
}

#[test]
fn a_second_daemon_is_refused() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);

    // Same state directory, other run directory: the lock refuses it.
    let other_run = dirs.tmp.path().join("run2");
    let (mut child, log) = spawn_raw(&dirs.state, &other_run, &[], "second.log");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    let log = std::fs::read_to_string(log).expect("log");
    assert!(log.contains("is in use by another virtnetd"), "{log}");

    // Other state directory, same run directory: the live socket refuses it.
    let other_state = dirs.tmp.path().join("state2");
    let (mut child, log) = spawn_raw(&other_state, &dirs.run, &[], "third.log");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    let log = std::fs::read_to_string(log).expect("log");
    assert!(log.contains("already listening"), "{log}");

    // The first one is unharmed.
    assert!(names(&d).is_empty());
    assert_eq!(d.define(&example("isolated.xml")).status, 201);
}

#[test]
fn oversized_and_garbage_bodies_are_refused() {
    let dirs = Dirs::new();
    let d = Daemon::start(&dirs);

    // Announced too large.
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let r = d.req("POST", "/v1/networks", &[], &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error().code, ErrorCode::PayloadTooLarge);

    // Too large without announcing it (chunked).
    let mut stream = {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        s.write_all(
            b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .expect("head");
        let chunk = vec![b'<'; 64 * 1024];
        for _ in 0..(MAX_BODY_BYTES / chunk.len() + 2) {
            let head = format!("{:x}\r\n", chunk.len());
            if s.write_all(head.as_bytes()).is_err()
                || s.write_all(&chunk).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
        s
    };
    let r = common::read_response(&mut stream).expect("answer");
    assert_eq!(r.status, 413, "{}", r.text());

    // Binary: not UTF-8.
    let r = d.req("POST", "/v1/networks", &[], &[0xff, 0xfe, 0x00, 0x81, 0x01]);
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.error();
    assert_eq!(e.code, ErrorCode::InvalidXml);
    assert!(e.message.contains("not UTF-8"), "{e:?}");

    // Text that is not XML.
    let r = d.req("POST", "/v1/networks", &[], b"hello, world");
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.error();
    assert_eq!(e.code, ErrorCode::InvalidXml);
    assert!(!e.message.is_empty());

    // Hostile XML (entity expansion).
    let r = d.define(
        "<?xml version='1.0'?><!DOCTYPE n [<!ENTITY a 'aaaa'>]><network><name>&a;</name></network>",
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // Unknown paths and methods answer ApiError JSON too.
    let r = d.get("/v2/whatever");
    assert_eq!(r.status, 404);
    assert_eq!(r.error().code, ErrorCode::NotFound);
    let r = d.req("PATCH", "/v1/networks", &[], b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.error().code, ErrorCode::BadRequest);

    // Nothing was stored.
    assert!(names(&d).is_empty());
}
