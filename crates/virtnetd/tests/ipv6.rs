//! IPv6 for guests (issue 15, items 1 and 4) with real clients: the guest namespaces use the
//! kernel's own SLAAC (accept_ra=2, autoconf=1) and `rdisc6` (package `ndisc6`) on the
//! advertisements virtnetd sends on the bridge; the upstream namespace (2001:db8:ff::1) runs a
//! TCP server that answers with the client's address, so the tests see whether a guest's
//! IPv6 traffic left with its own source (routed), the host's (`<nat ipv6='yes'/>`), or not
//! at all (isolated).

use std::time::{Duration, Instant};

use virtnet_testkit::{eventually, Daemon, Guest, Lab, Netns, NsChild};

const HOST6: &str = virtnet_testkit::HOST_UPLINK_ADDR6;
const UP6: &str = virtnet_testkit::UPSTREAM_ADDR6;
const ECHO_PORT: u16 = 7007;

/// How long a guest may take to configure itself: its router solicitations are retried every
/// 4 s, and the first one can meet a bridge whose link-local address is still tentative.
const SLAAC_LIMIT: Duration = Duration::from_secs(40);

/// Answers every TCP connection on the port with the client's address.
const ECHO: &str = include_str!("scripts/echo_source.py");

/// Connects to `[addr]:port` and prints the answer ("" when none came within 3 s).
const ASK: &str = r#"import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    sys.stdout.write(s.recv(200).decode().strip())
except Exception:
    pass
"#;

/// Sends N router solicitations on the interface, 200 ms apart, each waiting up to 2 s for an
/// advertisement; prints each one's delay in milliseconds, or `lost`.
const SOLICIT: &str = r#"import socket, struct, sys, time
ifname, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
idx = socket.if_nametoindex(ifname)
out = []
for _ in range(n):
    s.setblocking(False)
    while True:  # drop advertisements already queued
        try: s.recv(2048)
        except (BlockingIOError, TimeoutError): break
    t0 = time.monotonic()
    s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ('ff02::2', 0, 0, idx))
    got = 'lost'
    s.settimeout(2)
    try:
        while True:
            d = s.recv(2048)
            if d[0] == 134:
                got = '%.2f' % ((time.monotonic() - t0) * 1000); break
    except socket.timeout:
        pass
    out.append(got)
    time.sleep(0.2)
print(' '.join(out))
"#;

fn ask(ns: &Netns, addr: &str, port: u16) -> String {
    let out = ns.exec(["python3", "-c", ASK, addr, &port.to_string()]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// IPv6 on the uplink (both ends) and the upstream echo server, running once this returns.
fn upstream_v6(lab: &Lab) -> NsChild {
    lab.uplink_v6();
    let child = lab
        .upstream()
        .spawn(["python3", "-c", ECHO, &ECHO_PORT.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab
        .upstream()
        .tcp_connect_timeout(UP6, ECHO_PORT, Duration::from_millis(200))
    {
        assert!(
            Instant::now() < deadline,
            "upstream echo server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn start(lab: &Lab, xml: &str) -> Daemon {
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(xml);
    daemon.cli_ok(&["net-start", &name]);
    daemon
}

/// A guest on `bridge` that configures IPv6 from router advertisements only (as a host, the
/// kernel's SLAAC): its link is cycled after joining, so that its solicitations go out on
/// the bridge rather than into the void before it was attached.
fn slaac_guest(lab: &Lab, bridge: &str) -> Guest {
    let guest = lab.guest_unattached();
    for (key, value) in [("accept_ra", "2"), ("autoconf", "1"), ("accept_dad", "0")] {
        guest.ns().run_ok([
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.eth0.{key}={value}"),
        ]);
    }
    guest.attach(bridge);
    guest.ns().ip_ok(["link", "set", "eth0", "down"]);
    guest.ns().ip_ok(["link", "set", "eth0", "up"]);
    guest
}

/// The guest's global IPv6 addresses.
fn global_v6(guest: &Guest) -> Vec<String> {
    let out = guest
        .ns()
        .ip_ok(["-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]);
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next())
        .map(str::to_string)
        .collect()
}

/// The guest's IPv6 default route, as `ip` prints it ("" when none).
fn default_v6(guest: &Guest) -> String {
    guest
        .ns()
        .ip_ok(["-6", "route", "show", "default"])
        .trim()
        .to_string()
}

/// The bridge's link-local address (what a guest's default route must point to).
fn bridge_link_local(lab: &Lab, bridge: &str) -> String {
    let out = lab
        .host()
        .ip_ok(["-6", "-o", "addr", "show", "dev", bridge, "scope", "link"]);
    out.split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// One router advertisement as `rdisc6 -1` prints it (after soliciting one).
fn rdisc6(guest: &Guest) -> String {
    let out = guest.ns().exec(["rdisc6", "-1", "-w", "3000", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rdisc6 saw no advertisement: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The value of `name` in rdisc6's output (`Name   :   value`, or `from <address>`), its
/// padding removed.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        if name == "from" {
            return l.strip_prefix("from ").map(|a| a.trim().to_string());
        }
        let (key, value) = l.split_once(':')?;
        (key.trim() == name).then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// The bridge's MAC address as rdisc6 prints it (upper case).
fn bridge_mac(lab: &Lab, bridge: &str) -> String {
    let out = lab.host().ip_ok(["-o", "link", "show", "dev", bridge]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_uppercase()
}

/// Waits for a SLAAC address in `prefix` ("fd00:100:") and returns it.
fn slaac_address(guest: &Guest, prefix: &str) -> String {
    let mut found = String::new();
    let ok = eventually(SLAAC_LIMIT, || {
        found = global_v6(guest)
            .into_iter()
            .find(|a| a.starts_with(prefix))
            .unwrap_or_default();
        !found.is_empty()
    });
    assert!(
        ok,
        "no SLAAC address in {prefix}: {:?}",
        guest.ns().ip_ok(["-6", "addr"])
    );
    found
}

const LAB_NET: &str = "<network><name>lab6</name><forward mode='nat'/>\
    <bridge name='vr6a' stp='off'/><domain name='lab.example'/>\
    <ip address='10.61.0.1' prefix='24'/>\
    <ip family='ipv6' address='fd00:100::1' prefix='64'/></network>";

/// Item 1 and 5: a guest gets an address in the prefix and a default route via the bridge's
/// link-local address by itself; rdisc6 sees the prefix (autonomous, no DHCPv6), RDNSS,
/// DNSSL, MTU and a router lifetime; stopping the network takes the default route away
/// (the final advertisement with lifetime 0), long before its 1,800 s would end.
#[test]
fn slaac_guest_gets_prefix_and_default_route_and_loses_it_when_the_network_stops() {
    let lab = Lab::new("ipv6-slaac");
    let daemon = start(&lab, LAB_NET);
    let guest = slaac_guest(&lab, "vr6a");
    slaac_address(&guest, "fd00:100:");
    let ll = bridge_link_local(&lab, "vr6a");
    assert!(ll.starts_with("fe80:"), "bridge link-local: {ll}");
    assert!(
        eventually(SLAAC_LIMIT, || default_v6(&guest)
            .contains(&format!("via {ll} dev eth0"))),
        "default route: {:?} (bridge {ll})",
        default_v6(&guest)
    );

    let ra = rdisc6(&guest);
    for (name, want) in [
        ("Prefix", "fd00:100::/64"),
        ("Autonomous address conf.", "Yes"),
        ("On-link", "Yes"),
        ("Recursive DNS server", "fd00:100::1"),
        ("DNS search list", "lab.example"),
        ("MTU", "1500 bytes (valid)"),
        ("Router lifetime", "1800 (0x00000708) seconds"),
        ("Stateful address conf.", "No"),
        ("Stateful other conf.", "No"),
        ("Source link-layer address", &bridge_mac(&lab, "vr6a")),
        ("from", &ll),
    ] {
        assert_eq!(field(&ra, name), Some(want.to_string()), "{name} in\n{ra}");
    }

    // Every solicitation is answered (counted, not timed; the delays are printed for the
    // record: the answer is sent as soon as the solicitation is read).
    let out = guest.ns().exec(["python3", "-c", SOLICIT, "eth0", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("RS->RA delays (ms): {text}");
    assert_eq!(
        text.split_whitespace().filter(|w| *w != "lost").count(),
        10,
        "unanswered solicitations: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Never on the uplink: a solicitation from upstream to the host's uplink is not answered
    // (the host's own forwarding joins ff02::2 there, so virtnetd's socket does see it), and
    // the bridge itself takes no advertisements.
    let out = lab
        .upstream()
        .exec(["rdisc6", "-1", "-r", "2", "-w", "1000", "up0"]);
    assert!(
        !out.status.success(),
        "an advertisement came on the uplink: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let accept_ra = lab
        .host()
        .run_ok(["cat", "/proc/sys/net/ipv6/conf/vr6a/accept_ra"]);
    assert_eq!(accept_ra.trim(), "0");

    daemon.cli_ok(&["net-destroy", "lab6"]);
    // The bridge is gone with the network; what counts is that the guest dropped the route
    // because it was told to (its link stays up: the veth's host end is merely unbridged).
    assert!(
        eventually(Duration::from_secs(10), || default_v6(&guest).is_empty()),
        "default route stayed after the network stopped: {}",
        default_v6(&guest)
    );
}

/// Item 1: an isolated network advertises its prefix but no router (libvirt's `ra-param=*,0,0`),
/// and item 4: it forwards nothing, even for a guest that routes through it by hand.
#[test]
fn isolated_guest_gets_an_address_but_no_router_and_nothing_forwards() {
    let lab = Lab::new("ipv6-isolated");
    let _echo = upstream_v6(&lab);
    let started = Instant::now();
    let _daemon = start(
        &lab,
        "<network><name>iso6</name><bridge name='vr6i' stp='off'/>\
         <ip family='ipv6' address='fd00:300::1' prefix='64'/></network>",
    );
    // The host forwards IPv6 (as it does once any forwarding network runs): only virtnet's
    // firewall stands between the isolated guests and the uplink.
    lab.host()
        .run_ok(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let guest = slaac_guest(&lab, "vr6i");
    slaac_address(&guest, "fd00:300:");
    let ra = rdisc6(&guest);
    assert_eq!(
        field(&ra, "Router lifetime").as_deref(),
        Some("0 (0x00000000) seconds"),
        "{ra}"
    );
    assert_eq!(
        field(&ra, "Prefix").as_deref(),
        Some("fd00:300::/64"),
        "{ra}"
    );
    assert_eq!(
        default_v6(&guest),
        "",
        "isolated network became a default router"
    );
    // Solicitations to ff02::2 are answered on an isolated bridge too (it joins the
    // all-routers group): asked after the first unsolicited advertisements (0, 4 and 8 s
    // after the start; the next is 198 s or more later), each of three single solicitations
    // with 1 s to wait gets its answer.
    std::thread::sleep(
        (started + Duration::from_secs(10)).saturating_duration_since(Instant::now()),
    );
    for _ in 0..3 {
        let out = guest
            .ns()
            .exec(["rdisc6", "-1", "-r", "1", "-w", "1000", "eth0"]);
        assert!(
            out.status.success(),
            "solicitation unanswered: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // By hand, with a route back from upstream: still nothing passes the host.
    guest
        .ns()
        .ip_ok(["-6", "route", "add", "default", "via", "fd00:300::1"]);
    lab.upstream()
        .ip_ok(["-6", "route", "add", "fd00:300::/64", "via", HOST6]);
    assert_eq!(ask(guest.ns(), UP6, ECHO_PORT), "");
}

/// Item 4: a routed IPv6 network forwards with the guest's own (SLAAC) source address.
#[test]
fn routed_guest_reaches_upstream_with_its_own_ipv6_address() {
    let lab = Lab::new("ipv6-routed");
    let _echo = upstream_v6(&lab);
    let _daemon = start(
        &lab,
        "<network><name>rt6</name><forward mode='route'/><bridge name='vr6r' stp='off'/>\
         <ip family='ipv6' address='fd00:200::1' prefix='64'/></network>",
    );
    lab.upstream()
        .ip_ok(["-6", "route", "add", "fd00:200::/64", "via", HOST6]);
    let guest = slaac_guest(&lab, "vr6r");
    let addr = slaac_address(&guest, "fd00:200:");
    assert!(eventually(SLAAC_LIMIT, || !default_v6(&guest).is_empty()));
    assert_eq!(ask(guest.ns(), UP6, ECHO_PORT), addr);
}

/// Item 4: `<nat ipv6='yes'/>` masquerades the network's prefix to the host's uplink address.
#[test]
fn nat66_guest_reaches_upstream_as_the_host() {
    let lab = Lab::new("ipv6-nat66");
    let _echo = upstream_v6(&lab);
    let _daemon = start(
        &lab,
        "<network><name>nat6</name><forward mode='nat'><nat ipv6='yes'/></forward>\
         <bridge name='vr6n' stp='off'/><ip address='10.62.0.1' prefix='24'/>\
         <ip family='ipv6' address='fd00:400::1' prefix='64'/></network>",
    );
    let guest = slaac_guest(&lab, "vr6n");
    slaac_address(&guest, "fd00:400:");
    assert!(eventually(SLAAC_LIMIT, || !default_v6(&guest).is_empty()));
    // Upstream has no route to fd00:400::/64: only the host's address can be answered.
    assert_eq!(ask(guest.ns(), UP6, ECHO_PORT), HOST6);
}

/// Item 1: an `<ip>` with a DHCPv6 range is advertised as dnsmasq does for libvirt's
/// `dhcp-range` + `enable-ra`: M and O set, the prefix on-link but not for SLAAC.
#[test]
fn dhcpv6_network_advertises_managed_and_other_without_slaac() {
    let lab = Lab::new("ipv6-managed");
    let _daemon = start(
        &lab,
        "<network><name>m6</name><forward mode='route'/><bridge name='vr6m' stp='off'/>\
         <ip family='ipv6' address='fd00:500::1' prefix='64'><dhcp>\
         <range start='fd00:500::10' end='fd00:500::ff'/></dhcp></ip></network>",
    );
    let guest = slaac_guest(&lab, "vr6m");
    let mut ra = String::new();
    assert!(
        eventually(SLAAC_LIMIT, || {
            let out = guest
                .ns()
                .exec(["rdisc6", "-1", "-r", "1", "-w", "1000", "eth0"]);
            ra = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success()
        }),
        "no advertisement: {ra}"
    );
    for (name, want) in [
        ("Stateful address conf.", "Yes"),
        ("Stateful other conf.", "Yes"),
        ("Prefix", "fd00:500::/64"),
        ("On-link", "Yes"),
        ("Autonomous address conf.", "No"),
        ("Router lifetime", "1800 (0x00000708) seconds"),
    ] {
        assert_eq!(field(&ra, name), Some(want.to_string()), "{name} in\n{ra}");
    }
    // No SLAAC address for the guest: its address would come from DHCPv6.
    assert!(global_v6(&guest).is_empty(), "{:?}", global_v6(&guest));
}
