//! Guest ports against the real kernel: taps made, attached, moved, re-attached after a
//! network restart, kept over a daemon restart and forgotten when they vanished meanwhile.

use virtnet_api::client::Client;
use virtnet_api::{AddressSource, PortRequest};
use virtnet_model::InterfaceSource;
use virtnet_testkit::{Daemon, Lab};

fn network(name: &str, bridge: &str, prefix3: &str, forward: &str) -> String {
    format!(
        "<network><name>{name}</name>{forward}<bridge name='{bridge}'/>\
         <ip address='{prefix3}.1' prefix='24'><dhcp><range start='{prefix3}.100' \
         end='{prefix3}.199'/></dhcp></ip></network>"
    )
}

fn request(domain: &str, network: &str, mac: &str) -> PortRequest {
    PortRequest {
        domain: domain.into(),
        source: InterfaceSource::Network(network.into()),
        mac: mac.into(),
        model: Some("virtio".into()),
        target: None,
        owner_uid: Some(65534),
        owner_gid: None,
        helper: false,
        no_spoof_check: false,
        isolated: false,
        queues: None,
        vnet_hdr: true,
    }
}

/// `ip -d link show` of a host-namespace link, or "" when it does not exist.
fn link(lab: &Lab, name: &str) -> String {
    let out = lab.host().ip(["-d", "link", "show", "dev", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ports_are_made_moved_reattached_and_survive_restarts() {
    let lab = Lab::new("ports");
    let mut daemon = Daemon::start_in(lab.host());
    for xml in [
        network("default", "virbr0", "192.168.122", "<forward mode='nat'/>"),
        network("isolated", "virbr1", "192.168.100", ""),
    ] {
        let name = daemon.define(&xml);
        daemon.cli_ok(&["net-start", &name]);
    }
    let client = Client::new(daemon.socket());

    let port = client
        .create_port(&request("vm1", "default", "52:54:00:12:34:56"))
        .expect("create port");
    assert_eq!(port.name, "vnet0");
    assert_eq!(port.tap_mac, "fe:54:00:12:34:56");
    assert_eq!(port.bridge, "virbr0");
    let shown = link(&lab, "vnet0");
    assert!(shown.contains("master virbr0"), "{shown}");
    assert!(shown.contains("fe:54:00:12:34:56"), "{shown}");
    assert!(
        shown.contains("persist on") && shown.contains("user nobody"),
        "{shown}"
    );
    assert!(shown.contains("vnet_hdr on"), "{shown}");

    // Bad input changes nothing and names the field.
    let err = client
        .create_port(&request("vm1", "default", "52:54:00:12:34:56"))
        .unwrap_err();
    assert!(err.to_string().contains("52:54:00:12:34:56"), "{err}");
    let err = client
        .create_port(&request("vm2", "default", "not-a-mac"))
        .unwrap_err();
    assert!(err.to_string().contains("mac"), "{err}");
    let err = client
        .create_port(&request("vm2", "nosuch", "52:54:00:00:00:09"))
        .unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
    assert_eq!(client.ports(None).expect("list").len(), 1);

    // A network restart takes the bridge away; the port comes back onto the new one.
    daemon.cli_ok(&["net-destroy", "default"]);
    assert!(
        !link(&lab, "vnet0").contains("master"),
        "tap stays, off any bridge"
    );
    daemon.cli_ok(&["net-start", "default"]);
    assert!(link(&lab, "vnet0").contains("master virbr0"));

    // Moved live to the isolated network, down and up again.
    let moved = client
        .move_port("vnet0", InterfaceSource::Network("isolated".into()))
        .expect("move");
    assert_eq!(moved.bridge, "virbr1");
    assert!(link(&lab, "vnet0").contains("master virbr1"));
    client.set_port_link("vnet0", false).expect("link down");
    assert!(link(&lab, "vnet0").contains("state DOWN"));
    client.set_port_link("vnet0", true).expect("link up");

    // A daemon killed and restarted keeps the port, where it was.
    let second = client
        .create_port(&request("vm2", "default", "52:54:00:00:00:02"))
        .expect("second port");
    assert_eq!(second.name, "vnet1");
    daemon.kill9();
    daemon.restart();
    let client = Client::new(daemon.socket());
    let names: Vec<String> = client
        .ports(None)
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["vnet0", "vnet1"]);
    assert!(link(&lab, "vnet0").contains("master virbr1"));

    // A tap deleted while virtnetd is down is forgotten at start.
    daemon.kill9();
    lab.host().ip_ok(["link", "del", "vnet1"]);
    daemon.restart();
    let client = Client::new(daemon.socket());
    assert_eq!(client.ports(None).expect("list").len(), 1);

    // Names move forward: a freed vnet1 is not reused at once.
    client.delete_port("vnet0").expect("delete");
    assert_eq!(link(&lab, "vnet0"), "");
    let third = client
        .create_port(&request("vm3", "default", "52:54:00:00:00:03"))
        .expect("third port");
    assert_eq!(third.name, "vnet2");

    // Unknown guests are refused by domifaddr; known ones without lease have no address.
    assert!(client
        .domain_addresses("nobody", AddressSource::Lease)
        .is_err());
    assert!(client
        .domain_addresses("vm3", AddressSource::Lease)
        .expect("addresses")
        .is_empty());
}

/// Port changes run side by side (each claims its tap name and guest MAC, no lock across the
/// kernel's work and the commit): many at once must still hand out distinct names, let
/// exactly one of several requests for the same guest MAC win, and delete cleanly.
#[test]
fn concurrent_port_changes_keep_names_and_guest_macs_unique() {
    let lab = Lab::new("portsconc");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&network(
        "default",
        "virbr0",
        "192.168.122",
        "<forward mode='nat'/>",
    ));
    daemon.cli_ok(&["net-start", &name]);
    let socket = daemon.socket().to_path_buf();
    let source = || InterfaceSource::Network("default".into());

    // Eight clients, five distinct ports each.
    let made: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8u8)
            .map(|t| {
                let socket = socket.clone();
                s.spawn(move || {
                    let client = Client::new(&socket);
                    (0..5u8)
                        .map(|i| {
                            let mac = format!("52:54:00:0c:{t:02x}:{i:02x}");
                            let req = PortRequest::new(format!("vm{t}"), source(), mac);
                            client.create_port(&req).expect("create").name
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let mut unique = made.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 40, "names handed out twice: {made:?}");
    for n in &made {
        assert!(link(&lab, n).contains("master virbr0"), "{n} not on virbr0");
    }

    // Eight clients ask for the same guest MAC at once: one port, seven conflicts.
    let outcomes: Vec<Result<String, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let socket = socket.clone();
                s.spawn(move || {
                    let req = PortRequest::new("twin", source(), "52:54:00:0d:00:01");
                    Client::new(&socket)
                        .create_port(&req)
                        .map(|p| p.name)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let won: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    for lost in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(lost.contains("already has an interface with MAC"), "{lost}");
    }

    // Everything deleted side by side, each name by two clients: one deletes, the other
    // finds it gone or being deleted; nothing is left in the kernel or the book.
    let mut all = made;
    all.push(won[0].clone().expect("won"));
    std::thread::scope(|s| {
        for chunk in all.chunks(11) {
            for _ in 0..2 {
                let socket = socket.clone();
                s.spawn(move || {
                    let client = Client::new(&socket);
                    for n in chunk {
                        if let Err(e) = client.delete_port(n) {
                            let e = e.to_string();
                            assert!(
                                e.contains("no port named") || e.contains("being changed"),
                                "{n}: {e}"
                            );
                        }
                    }
                });
            }
        }
    });
    let client = Client::new(&socket);
    assert!(client.ports(None).expect("list").is_empty());
    for n in &all {
        assert_eq!(link(&lab, n), "", "{n} left in the kernel");
    }
}

/// A `kill -9` while four clients attach ports side by side loses no acknowledged port: each
/// is committed (one checksummed fsync) before its answer, and after the restart every
/// acknowledged port is listed and its tap is on the bridge.
#[test]
fn kill_9_during_concurrent_attaches_loses_no_acknowledged_port() {
    let lab = Lab::new("portskill");
    let mut daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&network(
        "default",
        "virbr0",
        "192.168.122",
        "<forward mode='nat'/>",
    ));
    daemon.cli_ok(&["net-start", &name]);
    let socket = daemon.socket().to_path_buf();
    let acked = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let (socket, acked) = (socket.clone(), &acked);
            s.spawn(move || {
                let client = Client::new(&socket);
                for i in 0..200u8 {
                    let mac = format!("52:54:00:0e:{t:02x}:{i:02x}");
                    let req = PortRequest::new(
                        format!("vm{t}"),
                        InterfaceSource::Network("default".into()),
                        mac,
                    );
                    match client.create_port(&req) {
                        Ok(port) => acked.lock().expect("lock").push(port.name),
                        // The daemon died under us: not acknowledged.
                        Err(_) => return,
                    }
                }
            });
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while acked.lock().expect("lock").len() < 30 {
            assert!(
                std::time::Instant::now() < deadline,
                "attaches are too slow"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        daemon.kill9();
    });
    let acked = acked.into_inner().expect("lock");
    assert!(acked.len() >= 30 && acked.len() < 800, "{}", acked.len());
    daemon.restart();
    let listed: Vec<String> = Client::new(daemon.socket())
        .ports(None)
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    for n in &acked {
        assert!(listed.contains(n), "acknowledged port {n} lost");
        assert!(link(&lab, n).contains("master virbr0"), "{n} not on virbr0");
    }
    // At most the attaches in flight at the kill (one per client) landed unanswered.
    assert!(
        listed.len() <= acked.len() + 4,
        "{} vs {}",
        listed.len(),
        acked.len()
    );
}

/// `DELETE /v1/ports?domain=D&kind=K[&mac=M]` (`detach-interface` in one request) deletes
/// the one matching port, and refuses anything else — none, several, a MAC or kind it
/// cannot read — without deleting anything.
#[test]
fn a_guest_port_is_detached_by_guest_kind_and_mac_in_one_request() {
    use virtnet_api::ErrorCode;
    let lab = Lab::new("portsdel");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&network(
        "default",
        "virbr0",
        "192.168.122",
        "<forward mode='nat'/>",
    ));
    daemon.cli_ok(&["net-start", &name]);
    let client = Client::new(daemon.socket());
    for mac in ["52:54:00:00:00:01", "52:54:00:00:00:02"] {
        client
            .create_port(&request("vm1", "default", mac))
            .expect("create port");
    }
    let names = |client: &Client| -> Vec<String> {
        client
            .ports(Some("vm1"))
            .expect("list")
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    assert_eq!(names(&client), ["vnet0", "vnet1"]);

    let refused = [
        (None, "network", ErrorCode::Conflict, "2 matching"),
        (
            Some("52:54:00:00:00:09"),
            "network",
            ErrorCode::NotFound,
            "no matching",
        ),
        (
            Some("52:54:00:00:00:01"),
            "bridge",
            ErrorCode::NotFound,
            "no matching",
        ),
        (Some("52:54:zz"), "network", ErrorCode::Invalid, "mac"),
        (
            Some("52:54:00:00:00:01"),
            "direct",
            ErrorCode::Invalid,
            "kind",
        ),
    ];
    for (mac, kind, code, says) in refused {
        let err = client
            .delete_guest_port("vm1", kind, mac)
            .expect_err("refused");
        assert_eq!(err.code(), Some(code), "{mac:?} {kind}: {err}");
        assert!(err.to_string().contains(says), "{mac:?} {kind}: {err}");
        assert_eq!(names(&client), ["vnet0", "vnet1"], "nothing deleted");
    }
    let err = client
        .delete_guest_port("vm2", "network", None)
        .expect_err("no such guest");
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");

    let gone = client
        .delete_guest_port("vm1", "network", Some("52:54:00:00:00:02"))
        .expect("detach by MAC");
    assert_eq!(gone.name, "vnet1");
    assert!(link(&lab, "vnet1").is_empty(), "tap left");
    assert_eq!(names(&client), ["vnet0"]);
    // The last one needs no MAC.
    let gone = client
        .delete_guest_port("vm1", "network", None)
        .expect("detach the only one");
    assert_eq!(gone.name, "vnet0");
    assert!(names(&client).is_empty());
}
