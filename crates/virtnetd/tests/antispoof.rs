//! Per-port anti-spoofing and port isolation, with real frames.
//!
//! Each guest is a network namespace whose `eth0` is a tap joined to the guest's port (a tap
//! virtnetd made) by a relay process, as QEMU joins a guest NIC to it: the namespace's kernel
//! is the guest's stack (busybox `udhcpc`, `ping`, TCP), and raw `AF_PACKET` frames from
//! `tests/antispoof/guest.py` are what a hostile guest kernel would write. A victim guest
//! runs a sniffer that prints the markers of the test frames it sees; every attack is
//! followed by a frame the guest may send (its own MAC and leased address), and the sniffer is
//! read once that one has arrived: counted events, no timing.

use std::path::PathBuf;

use virtnet_api::Port;
use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{Daemon, Lab, Netns, NsChild};

#[path = "antispoof/tap_guest.rs"]
mod tap_guest;

use tap_guest::{tool, wait_for, TapGuest};
const GATEWAY: &str = "192.168.150.1";

fn network(extra: &str) -> String {
    format!(
        "<network><name>spoofnet</name><forward mode='nat'/><bridge name='vnsp0' stp='off'/>{extra}\
         <ip address='{GATEWAY}' netmask='255.255.255.0'><dhcp>\
         <range start='192.168.150.100' end='192.168.150.200'/></dhcp></ip></network>"
    )
}

impl TapGuest {
    /// Leases an address with busybox udhcpc; returns it.
    fn lease(&self) -> String {
        let script = udhcpc_script(&self.dir);
        let s = script.to_string_lossy().into_owned();
        self.ns.run_ok([
            "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", &s,
        ]);
        // The event script sets only the address.
        let _ = self.ns.ip(["route", "replace", "default", "via", GATEWAY]);
        self.ns
            .route_addr()
            .unwrap_or_else(|| panic!("{} has no address after its lease", self.port))
    }

    /// Sends one test frame: `guest.py KIND ARGS…` from the guest's `eth0`.
    fn send(&self, lab: &Lab, args: &[&str]) {
        let tool = tool(lab).to_string_lossy().into_owned();
        let mut all = vec!["python3", &tool, args[0], "eth0"];
        all.extend(&args[1..]);
        self.ns.run_ok(all);
    }
}

trait AddrOf {
    fn route_addr(&self) -> Option<String>;
}

impl AddrOf for Netns {
    /// The IPv4 address on `eth0`.
    fn route_addr(&self) -> Option<String> {
        let out = self.ip_ok(["-4", "-o", "addr", "show", "dev", "eth0"]);
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_string)
    }
}

/// A sniffer on a guest's `eth0`, printing test markers to a file.
struct Sniffer {
    _child: NsChild,
    out: PathBuf,
}

impl Sniffer {
    fn start(lab: &Lab, guest: &TapGuest) -> Sniffer {
        let out = guest.dir.join("sniffed");
        let file = std::fs::File::create(&out).expect("sniffer output");
        let tool = tool(lab).to_string_lossy().into_owned();
        let child = guest
            .ns
            .spawn_with(["python3", "-u", &tool, "sniff", "eth0"], |c| {
                c.stdout(file);
            });
        let sniffer = Sniffer { _child: child, out };
        wait_for("the sniffer", || {
            sniffer.seen().iter().any(|l| l == "ready")
        });
        sniffer
    }

    fn seen(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits for marker `name`, then returns every marker seen so far.
    fn until(&self, name: &str) -> Vec<String> {
        wait_for(&format!("marker {name}"), || {
            self.seen().iter().any(|l| l == name)
        });
        self.seen()
    }
}

fn ports(daemon: &Daemon) -> Vec<Port> {
    serde_json::from_str(&daemon.cli_ok(&["port-list", "--json"])).expect("port-list --json")
}

fn port(daemon: &Daemon, name: &str) -> Port {
    ports(daemon)
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no port {name}"))
}

fn drops(daemon: &Daemon, name: &str) -> u64 {
    port(daemon, name).spoof_drops.unwrap_or(0)
}

fn start(lab: &Lab, extra: &str) -> Daemon {
    let daemon = Daemon::start_in(lab.host());
    daemon.define(&network(extra));
    daemon.cli_ok(&["net-start", "spoofnet"]);
    daemon
}

const MAC_A: &str = "52:54:00:5a:00:01";
const MAC_V: &str = "52:54:00:5a:00:02";
const MAC_FREE: &str = "52:54:00:5a:00:03";
const FOREIGN_MAC: &str = "52:54:00:66:66:66";

#[test]
fn a_guest_that_spoofs_is_dropped_while_its_own_traffic_flows() {
    let lab = Lab::new("spoof_drops");
    let daemon = start(&lab, "");
    let attacker = TapGuest::attach(&lab, &daemon, "spoofnet", "attacker", MAC_A, &[]);
    let victim = TapGuest::attach(&lab, &daemon, "spoofnet", "victim", MAC_V, &[]);
    assert!(
        port(&daemon, &attacker.port).spoof_check,
        "guarded by default"
    );
    let a_ip = attacker.lease();
    let v_ip = victim.lease();

    // Its own traffic flows: ping the gateway and the other guest, TCP to the outside.
    assert!(attacker.ns.ping(GATEWAY), "ping the gateway");
    assert!(attacker.ns.ping(&v_ip), "ping the other guest");
    assert!(attacker.ns.tcp_connect("203.0.113.1", 80), "TCP upstream");
    // The host knows the victim's MAC: a poisoning ARP would replace it.
    assert!(lab.host().ping(&v_ip));

    let sniffer = Sniffer::start(&lab, &victim);
    let before = drops(&daemon, &attacker.port);
    let attacks: &[&[&str]] = &[
        // Another source MAC.
        &[
            "udp",
            FOREIGN_MAC,
            &a_ip,
            MAC_V,
            &v_ip,
            "4000",
            "4000",
            "mac",
        ],
        // Another source address.
        &[
            "udp",
            MAC_A,
            "192.168.150.77",
            MAC_V,
            &v_ip,
            "4000",
            "4000",
            "ip",
        ],
        // A DHCP server's answer.
        &[
            "udp",
            MAC_A,
            &a_ip,
            "ff:ff:ff:ff:ff:ff",
            "255.255.255.255",
            "67",
            "68",
            "dhcp",
        ],
        // Gratuitous ARP and an ARP reply for the victim's address.
        &["arp", "1", MAC_A, MAC_A, &v_ip, &v_ip, "garp"],
        &["arp", "2", MAC_A, MAC_A, &v_ip, GATEWAY, "arpreply"],
        // ARP whose sender hardware address is not the guest's.
        &["arp", "1", MAC_A, FOREIGN_MAC, &a_ip, GATEWAY, "arpmac"],
        // A router advertisement.
        &["ra", MAC_A, "ra"],
    ];
    for a in attacks {
        attacker.send(&lab, a);
    }
    // What the guest may send: its own MAC and leased address, ARP for itself.
    attacker.send(&lab, &["arp", "1", MAC_A, MAC_A, &a_ip, &a_ip, "owngarp"]);
    attacker.send(
        &lab,
        &["udp", MAC_A, &a_ip, MAC_V, &v_ip, "4000", "4000", "own"],
    );
    let seen = sniffer.until("own");
    for name in ["mac", "ip", "dhcp", "garp", "arpreply", "arpmac", "ra"] {
        assert!(
            !seen.iter().any(|l| l == name),
            "{name} got through: {seen:?}"
        );
    }
    assert!(seen.iter().any(|l| l == "owngarp"), "own ARP: {seen:?}");
    let after = drops(&daemon, &attacker.port);
    assert!(
        after >= before + attacks.len() as u64,
        "drop counter moved from {before} to {after}, {} attacks",
        attacks.len()
    );
    // The host's neighbour entry for the victim still names the victim.
    let neigh = lab.host().ip_ok(["neigh", "show", &v_ip]);
    assert!(
        neigh.contains(MAC_V),
        "host neighbour entry poisoned: {neigh}"
    );
    assert_eq!(
        drops(&daemon, &victim.port),
        0,
        "the victim's counter is its own"
    );
    // A look-up by guest that asks for no counters (`detach-interface`, `domiflist`) gets
    // the port without them, and the listing with them still counts.
    let client = virtnet_api::client::Client::new(daemon.socket());
    let brief = client
        .domain_ports("attacker")
        .expect("ports without counters");
    assert_eq!(brief.len(), 1);
    assert_eq!(brief[0].name, attacker.port);
    assert!(brief[0].spoof_check);
    assert_eq!(brief[0].spoof_drops, None, "no counter asked for");
    let full = client.ports(Some("attacker")).expect("ports with counters");
    assert!(
        full[0].spoof_drops >= Some(after),
        "{:?}",
        full[0].spoof_drops
    );

    // A port attached with --no-spoof-check sends any source.
    let free = TapGuest::attach(
        &lab,
        &daemon,
        "spoofnet",
        "free",
        MAC_FREE,
        &["--no-spoof-check"],
    );
    assert!(!port(&daemon, &free.port).spoof_check);
    free.send(
        &lab,
        &[
            "udp",
            FOREIGN_MAC,
            "192.168.150.88",
            MAC_V,
            &v_ip,
            "1",
            "2",
            "freemac",
        ],
    );
    free.send(&lab, &["ra", MAC_FREE, "freera"]);
    let seen = sniffer.until("freemac");
    let seen = if seen.iter().any(|l| l == "freera") {
        seen
    } else {
        sniffer.until("freera")
    };
    assert!(seen.iter().any(|l| l == "freera"));
}

#[test]
fn a_lease_change_moves_the_allowed_address() {
    let lab = Lab::new("spoof_lease");
    let daemon = start(&lab, "");
    let guest = TapGuest::attach(&lab, &daemon, "spoofnet", "mover", MAC_A, &[]);
    // udhcpc stays running: SIGUSR2 releases the lease, SIGUSR1 asks for one again.
    let script = udhcpc_script(&guest.dir).to_string_lossy().into_owned();
    let client = guest.ns.spawn([
        "busybox", "udhcpc", "-i", "eth0", "-f", "-R", "-t", "5", "-T", "1", "-s", &script,
    ]);
    let leased = || {
        wait_for("a lease", || guest.ns.route_addr().is_some());
        let _ = guest.ns.ip(["route", "replace", "default", "via", GATEWAY]);
        guest.ns.route_addr().unwrap_or_default()
    };
    let ip = leased();
    assert!(guest.ns.ping(GATEWAY), "its lease {ip}");

    // An address it was not given: dropped, and counted.
    let before = drops(&daemon, &guest.port);
    let use_addr = |addr: &str| {
        guest.ns.ip_ok(["addr", "flush", "dev", "eth0"]);
        guest
            .ns
            .ip_ok(["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        let _ = guest.ns.ip(["route", "replace", "default", "via", GATEWAY]);
    };
    use_addr("192.168.150.99");
    assert!(!guest.ns.ping(GATEWAY), "an address it was not leased");
    assert!(
        drops(&daemon, &guest.port) > before,
        "the drop counter moves"
    );
    use_addr(&ip);
    assert!(guest.ns.ping(GATEWAY), "its lease again");

    // Released: its old address is no longer its own.
    assert!(client.signal(libc::SIGUSR2));
    wait_for("the release", || {
        !daemon
            .cli_ok(&["net-dhcp-leases", "spoofnet"])
            .contains(&ip)
    });
    use_addr(&ip);
    assert!(!guest.ns.ping(GATEWAY), "the released address {ip}");

    // A new lease: allowed again, at once.
    guest.ns.ip_ok(["addr", "flush", "dev", "eth0"]);
    assert!(client.signal(libc::SIGUSR1));
    let again = leased();
    assert!(guest.ns.ping(GATEWAY), "the new lease {again}");
}

#[test]
fn isolated_ports_cannot_reach_each_other_but_reach_the_gateway() {
    let lab = Lab::new("spoof_isolated");
    let daemon = start(&lab, "<port isolated='yes'/>");
    let a = TapGuest::attach(&lab, &daemon, "spoofnet", "isoa", MAC_A, &[]);
    let b = TapGuest::attach(&lab, &daemon, "spoofnet", "isob", MAC_V, &[]);
    assert!(port(&daemon, &a.port).isolated);
    let a_ip = a.lease();
    let b_ip = b.lease();
    assert!(
        a.ns.ping(GATEWAY) && b.ns.ping(GATEWAY),
        "both reach the gateway"
    );
    assert!(a.ns.tcp_connect("203.0.113.1", 80), "and the outside");
    assert!(!a.ns.ping(&b_ip), "a reached b");
    assert!(!b.ns.ping(&a_ip), "b reached a");
    let shown = lab.host().ip_ok(["-d", "link", "show", &a.port]);
    assert!(shown.contains("isolated on"), "{shown}");
}

#[test]
fn a_port_isolated_by_itself_reaches_only_ports_that_are_not() {
    let lab = Lab::new("spoof_port_iso");
    let daemon = start(&lab, "");
    let a = TapGuest::attach(&lab, &daemon, "spoofnet", "pisoa", MAC_A, &["--isolated"]);
    let b = TapGuest::attach(&lab, &daemon, "spoofnet", "pisob", MAC_V, &["--isolated"]);
    let c = TapGuest::attach(&lab, &daemon, "spoofnet", "pisoc", MAC_FREE, &[]);
    let (_a_ip, b_ip, c_ip) = (a.lease(), b.lease(), c.lease());
    assert!(!port(&daemon, &c.port).isolated);
    assert!(!a.ns.ping(&b_ip), "two isolated ports");
    assert!(a.ns.ping(&c_ip), "an isolated port and one that is not");
}

#[test]
fn the_guard_survives_a_daemon_restart_and_a_deleted_table() {
    let lab = Lab::new("spoof_restart");
    let mut daemon = start(&lab, "");
    let attacker = TapGuest::attach(&lab, &daemon, "spoofnet", "rattacker", MAC_A, &[]);
    let victim = TapGuest::attach(&lab, &daemon, "spoofnet", "rvictim", MAC_V, &[]);
    let a_ip = attacker.lease();
    let v_ip = victim.lease();
    let sniffer = Sniffer::start(&lab, &victim);
    let attack_and_check = |round: &str| {
        let (spoofed, own) = (format!("spoofed{round}"), format!("own{round}"));
        attacker.send(
            &lab,
            &["udp", FOREIGN_MAC, &a_ip, MAC_V, &v_ip, "1", "2", &spoofed],
        );
        attacker.send(&lab, &["udp", MAC_A, &a_ip, MAC_V, &v_ip, "1", "2", &own]);
        let seen = sniffer.until(&own);
        assert!(!seen.contains(&spoofed), "{spoofed} got through: {seen:?}");
    };
    attack_and_check("0");
    // A restart: the previous run's table guards until the new one replaces it, with the
    // stored lease still allowed.
    daemon.restart();
    attack_and_check("1");
    assert!(attacker.ns.ping(GATEWAY), "its lease after the restart");
    // Someone deletes the table: the next change (a new port) rebuilds it with every port.
    lab.host()
        .run_ok(["nft", "delete", "table", "bridge", "virtnet_ports"]);
    let _third = TapGuest::attach(&lab, &daemon, "spoofnet", "rthird", MAC_FREE, &[]);
    attack_and_check("2");
    assert!(attacker.ns.ping(GATEWAY), "its lease after the rebuild");
}

/// A port's drop counter is an element of `drops` only once the port dropped a frame (a
/// metrics scrape then reads the ports that dropped something, not every guarded port); the
/// listing shows 0 before that, and the counter goes with the port: a later port of the same
/// name starts from 0.
#[test]
fn a_ports_drop_counter_appears_with_its_first_drop_and_goes_with_the_port() {
    const TAP: &str = "spcount0";
    let lab = Lab::new("spoof_count");
    let daemon = start(&lab, "");
    let counters = || {
        lab.host()
            .run_ok(["nft", "list", "set", "bridge", "virtnet_ports", "drops"])
    };
    let attach = || {
        daemon.cli_ok(&[
            "attach-interface",
            "counted",
            "network",
            "spoofnet",
            "--mac",
            MAC_A,
            "--target",
            TAP,
        ]);
        TapGuest::relay_on(&lab, "counted", TAP, MAC_A)
    };

    let guest = attach();
    assert!(port(&daemon, TAP).spoof_check);
    assert_eq!(
        port(&daemon, TAP).spoof_drops,
        Some(0),
        "nothing dropped yet"
    );
    assert!(!counters().contains(TAP), "no counter yet: {}", counters());

    let spoofed = [
        "udp",
        FOREIGN_MAC,
        "192.168.150.77",
        "ff:ff:ff:ff:ff:ff",
        GATEWAY,
        "4000",
        "4000",
        "spoofed",
    ];
    guest.send(&lab, &spoofed);
    wait_for("the spoofed frame counted", || drops(&daemon, TAP) > 0);
    assert!(counters().contains(TAP), "{}", counters());

    drop(guest);
    daemon.cli_ok(&["detach-interface", "counted", "network", "--mac", MAC_A]);
    assert!(
        !counters().contains(TAP),
        "the detached port's counter is gone: {}",
        counters()
    );

    let again = attach();
    assert_eq!(
        port(&daemon, TAP).spoof_drops,
        Some(0),
        "a new port of the same name starts from 0"
    );
    again.send(&lab, &spoofed);
    wait_for("the new port's drop counted", || drops(&daemon, TAP) > 0);
}

/// The table of the last guarded port outlives it for a grace period: a guest whose port is
/// detached and attached again (a restart) does not pay the table's deletion and creation.
/// Then, with no port guarded, the table goes: a host without guests carries no virtnet table.
#[test]
fn the_table_outlives_the_last_guarded_port_for_a_while_then_goes() {
    let lab = Lab::new("spoof_grace");
    let daemon = start(&lab, "");
    // (whether the table is there, the `macs` set's listing)
    let elements = || {
        let out = lab
            .host()
            .exec(["nft", "list", "set", "bridge", "virtnet_ports", "macs"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let attach = || {
        daemon.cli_ok(&[
            "attach-interface",
            "graceful",
            "network",
            "spoofnet",
            "--mac",
            MAC_A,
        ]);
        ports(&daemon)
            .into_iter()
            .find(|p| p.domain == "graceful")
            .expect("the guest's port")
            .name
    };
    let detach = || daemon.cli_ok(&["detach-interface", "graceful", "network", "--mac", MAC_A]);

    let first = attach();
    assert!(elements().1.contains(&first), "{first} guarded");
    detach();
    let (kept, listing) = elements();
    assert!(kept, "the table is kept right after its last port went");
    assert!(
        !listing.contains(&first),
        "{first}'s elements are gone: {listing}"
    );

    let second = attach();
    assert!(
        elements().1.contains(&second),
        "{second} guarded in the kept table"
    );
    detach();
    // Nothing guarded any more: the table is removed once the grace period (30 s) has passed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while elements().0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the unused table is still there two minutes after its last port went"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A guest that configured its address itself (no lease, no `<host>`) is not cut off: the
/// first address it announces in ARP is learned, as libvirt's `clean-traffic` learns it, and
/// the port is then locked to it; an address another guest holds is never learned; the
/// learned address survives a daemon restart.
#[test]
fn a_static_guest_is_learned_once_and_locked_to_its_address() {
    const A: &str = "192.168.150.50";
    let lab = Lab::new("spoof_learn");
    let mut daemon = start(&lab, "");
    let first = TapGuest::attach(&lab, &daemon, "spoofnet", "lstatic", MAC_A, &[]);
    first
        .ns
        .ip_ok(["addr", "add", &format!("{A}/24"), "dev", "eth0"]);
    // Its first ARP for the gateway is dropped (and learned from); a retry gets through.
    wait_for("the static guest reaching its gateway", || {
        first.ns.ping(GATEWAY)
    });
    assert!(
        daemon.log().contains("static address learned"),
        "{}",
        daemon.log()
    );

    // Locked: a second address of the same guest stays dropped, and counted.
    let before = drops(&daemon, &first.port);
    first
        .ns
        .ip_ok(["addr", "add", "192.168.150.51/24", "dev", "eth0"]);
    let out = first.ns.exec([
        "busybox",
        "ping",
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        "192.168.150.51",
        GATEWAY,
    ]);
    assert!(!out.status.success(), "a second address got through");
    let after = drops(&daemon, &first.port);
    assert!(after > before, "not counted: {before} -> {after}: {out:?}");
    first
        .ns
        .ip_ok(["addr", "del", "192.168.150.51/24", "dev", "eth0"]);

    // Another guest cannot take the learned address; it learns a free one.
    let second = TapGuest::attach(&lab, &daemon, "spoofnet", "lsecond", MAC_V, &[]);
    second
        .ns
        .ip_ok(["addr", "add", &format!("{A}/24"), "dev", "eth0"]);
    let out = second
        .ns
        .exec(["busybox", "ping", "-c", "3", "-W", "1", GATEWAY]);
    assert!(!out.status.success(), "the second guest took {A}");
    second.ns.ip_ok(["addr", "flush", "dev", "eth0"]);
    second
        .ns
        .ip_ok(["addr", "add", "192.168.150.60/24", "dev", "eth0"]);
    wait_for("the second guest's own address", || second.ns.ping(GATEWAY));

    // Kept in the port's record: allowed at once after a restart.
    daemon.restart();
    assert!(
        first.ns.ping(GATEWAY),
        "the learned address after a restart"
    );
}

/// The hypervisor daemon's taps (`virtqemud` makes them and plugs them into the bridge of the
/// port it announced) are guarded like virtnet's own ports, from the moment they are plugged,
/// and unguarded when they leave the bridge. The daemon stops listening to link announcements
/// while the hypervisor has no port; the first port's creation turns them on again, so its tap
/// is guarded when plugged right after.
#[test]
fn the_hypervisors_taps_are_guarded_like_virtnets_own() {
    const TAP: &str = "vnet70";
    let lab = Lab::new("spoof_hyp");
    let daemon = start(&lab, "");
    wait_for("the link announcements off (no hypervisor port)", || {
        daemon.log().contains("link announcements off")
    });
    let xml = format!(
        "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207e</uuid><owner><name>hvm</name>\
         <uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2d</uuid></owner>\
         <mac address='{MAC_A}'/></networkport>"
    );
    let path = lab.tmp_dir().join("port.xml");
    std::fs::write(&path, xml).expect("write port XML");
    daemon.cli_ok(&["net-port-create", "spoofnet", &path.to_string_lossy()]);
    // The hypervisor's part: its own tap with libvirt's MAC, plugged into the bridge.
    lab.host()
        .ip_ok(["tuntap", "add", "dev", TAP, "mode", "tap"]);
    let tap_mac = MAC_A.replacen("52", "fe", 1);
    lab.host().ip_ok([
        "link", "set", "dev", TAP, "address", &tap_mac, "master", "vnsp0", "up",
    ]);
    wait_for("the hypervisor's tap guarded", || {
        port(&daemon, TAP).spoof_check
    });
    assert!(
        daemon.log().contains("link announcements on"),
        "switched on by the port's creation"
    );

    let guest = TapGuest::relay_on(&lab, "hguest", TAP, MAC_A);
    let ip = guest.lease();
    assert!(guest.ns.ping(GATEWAY), "its own traffic flows");
    let before = drops(&daemon, TAP);
    guest.send(
        &lab,
        &[
            "udp",
            FOREIGN_MAC,
            &ip,
            "ff:ff:ff:ff:ff:ff",
            GATEWAY,
            "1",
            "2",
            "hspoof",
        ],
    );
    wait_for("the spoofed frame counted", || drops(&daemon, TAP) > before);
    assert!(guest.ns.ping(GATEWAY), "still flows after a dropped frame");

    // Off the bridge: no longer the port's tap, no longer guarded.
    lab.host().ip_ok(["link", "set", "dev", TAP, "nomaster"]);
    wait_for("the tap unguarded", || !port(&daemon, TAP).spoof_check);
}

/// An IPv4-less network for the IPv6 case: a SLAAC subnet (no `<dhcp>`) and a DHCPv6 subnet.
const SLAAC_GW: &str = "fd00:151::1";
const DHCP6_GW: &str = "fd00:152::1";
const NETWORK6: &str = "<network><name>spoof6net</name><forward mode='nat'/>\
    <bridge name='vnsp6' stp='off'/><ip address='192.168.152.1' netmask='255.255.255.0'/>\
    <ip family='ipv6' address='fd00:151::1' prefix='64'/>\
    <ip family='ipv6' address='fd00:152::1' prefix='64'><dhcp>\
    <range start='fd00:152::100' end='fd00:152::1ff'/></dhcp></ip></network>";

impl TapGuest {
    /// Makes `eth0`'s link-local address usable at once (no DAD) and, with `random`, not
    /// derived from the MAC (`addrgenmode random`: a guest whose link-local address names no
    /// MAC, as stable-privacy ones do).
    fn ipv6_ready(&self, random: bool) {
        self.ns
            .run_ok(["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
        self.ns.ip_ok(["link", "set", "eth0", "down"]);
        if random {
            self.ns
                .ip_ok(["link", "set", "eth0", "addrgenmode", "random"]);
        }
        self.ns.ip_ok(["link", "set", "eth0", "up"]);
    }

    /// `dhclient -6` with the guest's files and `conf` lines, `extra` options before `eth0`.
    fn dhclient6_args(&self, conf: &str, extra: &[&str]) -> Vec<String> {
        let script = self.dir.join("dhclient6.sh");
        virtnet_testkit::dhcp::write_script(&script, virtnet_testkit::dhcp::DHCLIENT6_SCRIPT);
        let cf = self.dir.join("dhclient6.conf");
        std::fs::write(&cf, format!("timeout 30;\n{conf}")).expect("write dhclient.conf");
        let s = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
        let mut args: Vec<String> = ["dhclient", "-6", "-v", "-cf"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend([
            s("dhclient6.conf"),
            "-lf".into(),
            s("dhclient6.leases"),
            "-pf".into(),
            s("dhclient6.pid"),
            "-sf".into(),
            s("dhclient6.sh"),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push("eth0".into());
        args
    }

    /// Starts `dhclient -6` in the foreground and waits for its address on `eth0`.
    fn lease6(&self, conf: &str) -> (NsChild, String) {
        let out = std::fs::File::create(self.dir.join("dhclient6.out")).expect("output file");
        let child = self.ns.spawn_with(self.dhclient6_args(conf, &["-d"]), |c| {
            c.stdout(std::process::Stdio::null());
            c.stderr(out);
        });
        let log = self.dir.join("dhclient6.sh.log");
        let mut addr = String::new();
        wait_for("a DHCPv6 lease", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            addr = text
                .lines()
                .filter(|l| l.starts_with("BOUND6") || l.starts_with("REBOOT6"))
                .find_map(|l| {
                    l.split(' ')
                        .nth(1)?
                        .strip_prefix("addr=")
                        .filter(|a| !a.is_empty())
                })
                .unwrap_or_default()
                .to_string();
            !addr.is_empty()
        });
        (child, addr)
    }

    /// Gives `eth0` the extra IPv6 address `addr` (a /128, no duplicate address detection).
    fn add6(&self, addr: &str) {
        self.ns.ip_ok(self.add6_args(addr));
    }

    /// [`TapGuest::add6`], which may fail (the address may be there already).
    fn try_add6(&self, addr: &str) -> std::process::Output {
        self.ns.ip(self.add6_args(addr))
    }

    fn add6_args(&self, addr: &str) -> [String; 7] {
        [
            "-6",
            "addr",
            "add",
            &format!("{addr}/128"),
            "dev",
            "eth0",
            "nodad",
        ]
        .map(String::from)
    }

    /// Whether one of three echo requests from `src` to `dst` is answered.
    fn ping6_from(&self, src: &str, dst: &str) -> bool {
        self.ns
            .exec(["busybox", "ping6", "-c", "3", "-W", "1", "-I", src, dst])
            .status
            .success()
    }

    /// Waits until `src` reaches `dst` (the bridge's address and the guest's may be new).
    fn reaches6(&self, src: &str, dst: &str) {
        wait_for(&format!("{src} reaching {dst}"), || {
            self.ns
                .exec(["busybox", "ping6", "-c", "1", "-W", "1", "-I", src, dst])
                .status
                .success()
        });
    }

    /// The global addresses on `eth0` in `prefix` (a textual prefix such as `fd00:151:`).
    fn global6(&self, prefix: &str) -> Vec<String> {
        let out = self
            .ns
            .ip_ok(["-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]);
        out.split_whitespace()
            .filter_map(|w| w.split('/').next().filter(|_| w.contains('/')))
            .filter(|a| a.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }
}

/// Issue 14 item 2 on a network with DHCPv6 (issue 15): a guarded port may send IPv6 only from
/// its own DHCPv6 lease on the DHCPv6 subnet — not from another address of that prefix, not
/// from another guest's lease, not from its lease once released — while the SLAAC subnet of
/// the same network still allows the guest's own SLAAC addresses. The first guest's DUID is a
/// DUID-UUID and its link-local address random: neither names its MAC, so only the port its
/// DHCPv6 messages came in on ties the lease to it.
#[test]
fn a_dhcpv6_subnet_allows_only_the_ports_own_lease() {
    let lab = Lab::new("spoof_dhcp6");
    let mut daemon = Daemon::start_in(lab.host());
    daemon.define(NETWORK6);
    daemon.cli_ok(&["net-start", "spoof6net"]);
    let a = TapGuest::attach(&lab, &daemon, "spoof6net", "six_a", MAC_A, &[]);
    let b = TapGuest::attach(&lab, &daemon, "spoof6net", "six_b", MAC_V, &[]);
    a.ipv6_ready(true);
    b.ipv6_ready(false);

    // Leases: A's client id is a DUID-UUID (type 4), B's dhclient's default DUID-LLT.
    let duid_uuid = "0:4:9f:1e:54:c1:3a:11:4e:8b:a0:2d:77:6e:10:42:55:01";
    let (a_client, a_ip) = a.lease6(&format!("send dhcp6.client-id {duid_uuid};\n"));
    let (_b_client, b_ip) = b.lease6("");
    let rows = daemon.cli_ok(&["net-dhcp-leases", "spoof6net"]);
    assert!(rows.contains("00:04:9f:1e"), "A's DUID-UUID: {rows}");
    a.reaches6(&a_ip, DHCP6_GW);
    b.reaches6(&b_ip, DHCP6_GW);

    // The SLAAC subnet: the guest's own SLAAC address, and any other of that prefix.
    wait_for("a SLAAC address", || !a.global6("fd00:151:").is_empty());
    let slaac = a.global6("fd00:151:")[0].clone();
    a.reaches6(&slaac, SLAAC_GW);
    a.ns.ip_ok([
        "-6",
        "addr",
        "add",
        "fd00:151::77/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    a.reaches6("fd00:151::77", SLAAC_GW);

    // Another address of the DHCPv6 prefix: dropped, and counted on A's port only.
    let before = drops(&daemon, &a.port);
    a.add6("fd00:152::77");
    assert!(
        !a.ping6_from("fd00:152::77", DHCP6_GW),
        "an address it was not leased"
    );
    let after = drops(&daemon, &a.port);
    assert!(after > before, "not counted: {before} -> {after}");
    // Another guest's lease: dropped on B's port, while B's own lease still flows.
    b.add6(&a_ip);
    assert!(!b.ping6_from(&a_ip, DHCP6_GW), "B sent from A's lease");
    b.ns.ip_ok(["-6", "addr", "del", &format!("{a_ip}/128"), "dev", "eth0"]);
    assert!(drops(&daemon, &b.port) > 0, "B's own counter");
    assert!(a.ping6_from(&a_ip, DHCP6_GW), "A's lease flows");
    assert!(b.ping6_from(&b_ip, DHCP6_GW), "B's lease flows");

    // A restart rebuilds the guards from the stored leases (with their ports).
    daemon.restart();
    assert!(a.ping6_from(&a_ip, DHCP6_GW), "A's lease after a restart");
    assert!(
        !a.ping6_from("fd00:152::77", DHCP6_GW),
        "another address after a restart"
    );

    // Released: A's old address is refused again; B is untouched.
    drop(a_client);
    a.ns.run_ok(a.dhclient6_args(&format!("send dhcp6.client-id {duid_uuid};\n"), &["-r"]));
    wait_for("the release", || {
        !daemon
            .cli_ok(&["net-dhcp-leases", "spoof6net"])
            .contains(&a_ip)
    });
    let _ = a.try_add6(&a_ip);
    let before = drops(&daemon, &a.port);
    assert!(
        !a.ping6_from(&a_ip, DHCP6_GW),
        "the released address {a_ip}"
    );
    assert!(
        drops(&daemon, &a.port) > before,
        "the release's drops counted"
    );
    assert!(b.ping6_from(&b_ip, DHCP6_GW), "B's lease after A's release");

    // A static host for A's MAC (its DUID-LL), added live with net-update: A may send from
    // it at once, before asking for it; B may not (nor advertise it).
    const HOST: &str = "fd00:152::50";
    a.add6(HOST);
    assert!(!a.ping6_from(HOST, DHCP6_GW), "before the host exists");
    let host = format!("<host id='0:3:0:1:{MAC_A}' ip='{HOST}'/>");
    daemon.cli_ok(&[
        "net-update",
        "spoof6net",
        "add-last",
        "ip-dhcp-host",
        &host,
        "--parent-index",
        "2",
        "--live",
        "--config",
    ]);
    a.reaches6(HOST, DHCP6_GW);
    b.add6(HOST);
    assert!(!b.ping6_from(HOST, DHCP6_GW), "B sent from A's static host");
    assert!(b.ping6_from(&b_ip, DHCP6_GW), "B's lease still flows");
}
