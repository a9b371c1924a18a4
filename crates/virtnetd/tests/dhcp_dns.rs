//! DHCP and DNS served by virtnetd itself, with real clients: busybox `udhcpc` and ISC
//! `dhclient` lease addresses in guest namespaces, `dig` asks the network's DNS server, and a
//! DNS server in the upstream namespace (dnsmasq at 203.0.113.1) stands for the internet's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::{dns_server, udhcpc_script, write_script};
use virtnet_testkit::{Daemon, Guest, Lab, Netns, NsChild, HOST_UPLINK_ADDR, UPSTREAM_ADDR};

const STATIC_MAC: &str = "52:54:00:00:00:42";

/// The default NAT network, with a domain, a static host and DNS records.
fn nat_network(lease: &str) -> String {
    format!(
        "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
         <domain name='example.test' localOnly='yes'/>\
         <dns forwardPlainNames='no'>\
           <txt name='info' value='virtnet test'/>\
           <srv service='ldap' protocol='tcp' domain='example.test' target='fixed.example.test' \
                port='389' priority='10' weight='5'/>\
           <host ip='192.168.122.7'><hostname>printer</hostname></host>\
         </dns>\
         <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
           <range start='192.168.122.100' end='192.168.122.199'>{lease}</range>\
           <host mac='{STATIC_MAC}' name='fixed' ip='192.168.122.42'/>\
         </dhcp></ip></network>"
    )
}

/// A lab whose daemon forwards DNS to a dnsmasq in the upstream namespace, which knows
/// `www.example.org` and the plain name `plainhost`.
struct DnsLab {
    lab: Lab,
    daemon: Daemon,
    _upstream_dns: NsChild,
}

fn dns_lab(test: &str, lease: &str) -> DnsLab {
    let lab = Lab::new(test);
    let resolv = lab.tmp_dir().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {UPSTREAM_ADDR}\n")).expect("write resolv.conf");
    let upstream_dns = dns_server(
        lab.upstream(),
        UPSTREAM_ADDR,
        &[
            "--address=/example.org/203.0.113.80",
            "--address=/plainhost/203.0.113.81",
        ],
    );
    let daemon = Daemon::start_in_with(lab.host(), &["--resolv-conf", &resolv.to_string_lossy()]);
    let name = daemon.define(&nat_network(lease));
    daemon.cli_ok(&["net-start", &name]);
    DnsLab {
        lab,
        daemon,
        _upstream_dns: upstream_dns,
    }
}

/// A guest on virbr0 without an address, with MAC `mac` when given.
fn dhcp_guest(lab: &Lab, mac: Option<&str>) -> Guest {
    let guest = lab.guest_unattached();
    if let Some(mac) = mac {
        guest.ns().ip_ok(["link", "set", "eth0", "address", mac]);
    }
    guest.attach("virbr0");
    guest
}

/// A dhclient script that applies the lease to the interface only (the default
/// dhclient-script would rewrite the host's /etc/resolv.conf).
fn dhclient_script(dir: &Path) -> PathBuf {
    let path = dir.join("dhclient.sh");
    write_script(
        &path,
        "#!/bin/sh\ncase \"$reason\" in\n  BOUND|RENEW|REBIND|REBOOT)\n    \
         ip addr flush dev \"$interface\"\n    \
         ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\" ;;\n  \
         RELEASE|EXPIRE|FAIL|STOP) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n",
    );
    path
}

fn the_address(guest: &Guest) -> String {
    let addrs = guest.ipv4_addrs();
    assert_eq!(
        addrs.len(),
        1,
        "the guest should hold one leased address: {addrs:?}"
    );
    addrs[0].to_string()
}

fn in_range(addr: &str) -> bool {
    addr.parse::<std::net::Ipv4Addr>()
        .map(|a| (100..=199).contains(&a.octets()[3]) && a.octets()[..3] == [192, 168, 122])
        .unwrap_or(false)
}

/// `dig +short` from `ns` to `server`.
fn dig(ns: &Netns, server: &str, args: &[&str]) -> String {
    let mut all = vec![
        "dig".to_string(),
        format!("@{server}"),
        "+short".into(),
        "+time=2".into(),
        "+tries=1".into(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = ns.exec(all);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The full `dig` answer (for status codes).
fn dig_status(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.exec(["dig", &format!("@{server}"), "+time=2", "+tries=1", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

fn leases(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.cli_ok(&["net-dhcp-leases", "default", "--json"]);
    serde_json::from_str(&out).expect("net-dhcp-leases --json is JSON")
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn udhcpc_leases_in_range_with_the_options_and_its_name_resolves() {
    let t = dns_lab("udhcpc", "");
    let guest = dhcp_guest(&t.lab, None);
    let script = udhcpc_script(t.lab.tmp_dir());
    guest.udhcpc(&script, "vm1");
    let addr = the_address(&guest);
    assert!(in_range(&addr), "{addr} is not in the range");
    let log = std::fs::read_to_string(format!("{}.log", script.display())).expect("script log");
    assert!(log.contains("router=192.168.122.1"), "{log}");
    assert!(log.contains("dns=192.168.122.1"), "{log}");
    assert!(log.contains("domain=example.test"), "{log}");
    assert!(
        log.contains("lease=3600"),
        "default lease is one hour: {log}"
    );

    let rows = leases(&t.daemon);
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ipAddress"], addr.as_str());
    assert_eq!(rows[0]["hostname"], "vm1");
    assert_eq!(rows[0]["mac"], guest.mac().as_str());
    let table = t.daemon.cli_ok(&["net-dhcp-leases", "default"]);
    assert!(table.contains("Client ID or DUID"), "{table}");
    assert!(
        table.contains(&format!("ipv4       {addr}/24   vm1")),
        "{table}"
    );

    // The name answers on the gateway, forward and reverse, bare and in the domain.
    assert_eq!(
        dig(guest.ns(), "192.168.122.1", &["vm1.example.test"]),
        addr
    );
    assert_eq!(dig(guest.ns(), "192.168.122.1", &["vm1"]), addr);
    assert_eq!(
        dig(guest.ns(), "192.168.122.1", &["-x", &addr]),
        "vm1.example.test."
    );
    // Never on the uplink: the server is not an open resolver.
    assert_eq!(
        dig_status(t.lab.upstream(), HOST_UPLINK_ADDR, "vm1.example.test"),
        "no answer"
    );
}

#[test]
fn static_hosts_and_records_resolve_and_only_foreign_names_are_forwarded() {
    let t = dns_lab("records", "");
    let guest = dhcp_guest(&t.lab, Some(STATIC_MAC));
    let script = udhcpc_script(t.lab.tmp_dir());
    guest.udhcpc(&script, "whatever");
    assert_eq!(the_address(&guest), "192.168.122.42");
    let rows = leases(&t.daemon);
    assert_eq!(rows[0]["hostname"], "fixed", "the static host's name wins");

    let ns = guest.ns();
    let gw = "192.168.122.1";
    assert_eq!(dig(ns, gw, &["fixed.example.test"]), "192.168.122.42");
    assert_eq!(dig(ns, gw, &["printer"]), "192.168.122.7");
    // The network has a domain, so plain host names are expanded (dnsmasq's expand-hosts).
    assert_eq!(
        dig(ns, gw, &["-x", "192.168.122.7"]),
        "printer.example.test."
    );
    assert_eq!(
        dig(ns, gw, &["SRV", "_ldap._tcp.example.test"]),
        "10 5 389 fixed.example.test."
    );
    assert_eq!(dig(ns, gw, &["TXT", "info"]), "\"virtnet test\"");
    // Forwarded to the host's resolver (the upstream dnsmasq).
    assert_eq!(dig(ns, gw, &["www.example.org"]), "203.0.113.80");
    // localOnly: an unknown name of the network's domain is not asked upstream.
    assert_eq!(dig_status(ns, gw, "nobody.example.test"), "NXDOMAIN");
    // Plain names stay local with forwardPlainNames='no' (libvirt forwards them otherwise).
    assert_ne!(dig(ns, gw, &["plainhost"]), "203.0.113.81");
    // TCP works too.
    assert_eq!(
        dig(ns, gw, &["+tcp", "fixed.example.test"]),
        "192.168.122.42"
    );
}

#[test]
fn dhclient_keeps_its_address_across_renewal_and_daemon_restart_and_release_frees_it() {
    let lab = Lab::new("dhclient");
    let mut daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&nat_network(""));
    daemon.cli_ok(&["net-start", &name]);
    let guest = dhcp_guest(&lab, None);
    let dir = lab.tmp_dir();
    let script = dhclient_script(dir);
    let lease_file = dir.join("dhclient.leases");
    let pid_file = dir.join("dhclient.pid");
    let dhclient = |extra: &[&str]| {
        let mut args = vec![
            "dhclient".to_string(),
            "-v".into(),
            "-lf".into(),
            lease_file.to_string_lossy().into_owned(),
            "-pf".into(),
            pid_file.to_string_lossy().into_owned(),
            "-sf".into(),
            script.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("eth0".into());
        let out = guest.ns().exec(args);
        assert!(
            out.status.success(),
            "dhclient {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    dhclient(&["-1"]);
    let first = the_address(&guest);
    assert!(in_range(&first), "{first}");

    // Renewal (dhclient asks for its recorded lease again) keeps the address.
    dhclient(&["-1"]);
    assert_eq!(the_address(&guest), first);

    // The lease is durable: a killed daemon comes back with it, and the client keeps it.
    daemon.kill9();
    daemon.restart();
    assert_eq!(leases(&daemon)[0]["ipAddress"], first.as_str());
    dhclient(&["-1"]);
    assert_eq!(the_address(&guest), first);

    // Release frees it.
    dhclient(&["-r"]);
    wait_for("the released lease to go", Duration::from_secs(5), || {
        leases(&daemon).as_array().is_some_and(Vec::is_empty)
    });
}

#[test]
fn leases_expire_and_every_change_is_an_event() {
    let t = dns_lab("expiry", "<lease expiry='4' unit='seconds'/>");
    let events = t.lab.host().spawn_with(
        [
            virtnet_testkit::virtnet_bin()
                .to_string_lossy()
                .into_owned(),
            "--connect".into(),
            t.daemon.socket().to_string_lossy().into_owned(),
            "net-event".into(),
            "--loop".into(),
            "--timeout".into(),
            "20".into(),
        ],
        |cmd| {
            cmd.stdout(std::process::Stdio::piped());
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let guest = dhcp_guest(&t.lab, None);
    let script = udhcpc_script(t.lab.tmp_dir());
    guest.udhcpc(&script, "shortlived");
    let addr = the_address(&guest);
    assert_eq!(dig(guest.ns(), "192.168.122.1", &["shortlived"]), addr);
    // udhcpc -q exits without renewing: the lease runs out and is reclaimed.
    wait_for("the lease to expire", Duration::from_secs(15), || {
        leases(&t.daemon).as_array().is_some_and(Vec::is_empty)
    });
    // The expiry sweep (every few seconds) also takes the name out of DNS.
    wait_for(
        "the expired name to leave DNS",
        Duration::from_secs(10),
        || dig(guest.ns(), "192.168.122.1", &["shortlived"]).is_empty(),
    );
    events.signal(libc::SIGINT);
    let output = events.with_child(|c| {
        let mut out = String::new();
        if let Some(mut stdout) = c.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        let _ = c.wait();
        out
    });
    assert!(
        output.contains(&format!(
            "event 'lease-granted' for network default: {} {addr} shortlived",
            guest.mac()
        )),
        "{output}"
    );
    assert!(output.contains("event 'lease-expired'"), "{output}");
}

#[test]
fn live_updates_reach_dhcp_and_dns_without_a_restart() {
    let t = dns_lab("update", "");
    // Another DNS server already listens on port 53 of the host (systemd-resolved's
    // address): the network's server binds its own addresses only, so both run.
    let resolved = dns_server(t.lab.host(), "127.0.0.53", &[]);
    std::thread::sleep(Duration::from_millis(300));
    t.daemon.cli_ok(&["net-destroy", "default"]);
    t.daemon.cli_ok(&["net-start", "default"]);
    assert!(
        resolved.try_wait().is_none(),
        "the other DNS server on 127.0.0.53 kept running"
    );
    let bridge_before = t.lab.host().ip_ok(["-d", "link", "show", "dev", "virbr0"]);

    let mac = "52:54:00:00:00:77";
    let out = t.daemon.cli_ok(&[
        "net-update",
        "default",
        "add-last",
        "ip-dhcp-host",
        &format!("<host mac='{mac}' name='late' ip='192.168.122.77'/>"),
        "--live",
        "--config",
    ]);
    assert!(
        out.contains("Updated network default persistent config and live state"),
        "{out}"
    );
    t.daemon.cli_ok(&[
        "net-update",
        "default",
        "add",
        "dns-host",
        "<host ip='192.168.122.8'><hostname>scanner</hostname></host>",
    ]);
    // The network was not restarted: the same bridge (its index is in the first word).
    let bridge_after = t.lab.host().ip_ok(["-d", "link", "show", "dev", "virbr0"]);
    assert_eq!(
        bridge_before.split(':').next(),
        bridge_after.split(':').next()
    );

    let guest = dhcp_guest(&t.lab, Some(mac));
    let script = udhcpc_script(t.lab.tmp_dir());
    guest.udhcpc(&script, "ignored");
    assert_eq!(the_address(&guest), "192.168.122.77");
    assert_eq!(
        dig(guest.ns(), "192.168.122.1", &["late.example.test"]),
        "192.168.122.77"
    );
    assert_eq!(
        dig(guest.ns(), "192.168.122.1", &["scanner"]),
        "192.168.122.8"
    );
    // --current on an active network changed the live definition only.
    let inactive = t.daemon.cli_ok(&["net-dumpxml", "default", "--inactive"]);
    assert!(inactive.contains("late"), "{inactive}");
    assert!(!inactive.contains("scanner"), "{inactive}");
    let live = t.daemon.cli_ok(&["net-dumpxml", "default"]);
    assert!(live.contains("scanner"), "{live}");

    // A bad update changes nothing and names the field.
    let bad = t.daemon.cli(&[
        "net-update",
        "default",
        "add",
        "ip-dhcp-host",
        &format!("<host mac='{mac}' name='dup' ip='192.168.122.78'/>"),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("mac"), "{err}");
    assert_eq!(t.daemon.cli_ok(&["net-dumpxml", "default"]), live);
}

/// Sends `count` DHCPDISCOVERs from `eth0` of the guest, each from a new random MAC (both the
/// frame's source and the DHCP client address, as flooding tools do), as raw Ethernet frames.
const DISCOVER_FLOOD: &str = r#"
import os, socket, struct, sys
count = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
for _ in range(count):
    mac = bytes([0x02]) + os.urandom(5)
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0,
                        struct.unpack("!I", os.urandom(4))[0], 0, 0x8000,
                        b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                        mac + b"\0" * 10, b"\0" * 64, b"\0" * 128)
    bootp += bytes([99, 130, 83, 99, 53, 1, 1, 255])
    bootp += b"\0" * (300 - len(bootp))
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(b"\xff" * 6 + mac + b"\x08\x00" + ip + udp)
"#;

#[test]
fn a_random_mac_discover_flood_from_one_port_leaves_the_pool_to_the_others() {
    let t = dns_lab("flood", "");
    let attacker = dhcp_guest(&t.lab, None);
    // 300 DISCOVERs in a burst: without per-port limits, their offers would hold all 100
    // addresses of the range for the offer time, and the next guest would get none.
    attacker
        .ns()
        .run_ok(["python3", "-c", DISCOVER_FLOOD, "300"]);
    let guest = dhcp_guest(&t.lab, None);
    let script = udhcpc_script(t.lab.tmp_dir());
    guest.udhcpc(&script, "honest");
    assert!(in_range(&the_address(&guest)));
    // And a second, slower wave from the same port changes nothing.
    attacker
        .ns()
        .run_ok(["python3", "-c", DISCOVER_FLOOD, "50"]);
    let late = dhcp_guest(&t.lab, None);
    late.udhcpc(&script, "late");
    assert!(in_range(&the_address(&late)));
}

#[test]
fn pxe_guests_get_the_boot_file_and_fetch_it_over_tftp() {
    let lab = Lab::new("pxe");
    let root = lab.tmp_dir().join("tftp");
    std::fs::create_dir_all(&root).expect("tftp root");
    // The lab's directory is private (0700); TFTP serves only what others may reach.
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(lab.tmp_dir(), open.clone()).expect("chmod");
    std::fs::set_permissions(&root, open).expect("chmod");
    let image: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("pxelinux.0"), &image).expect("boot image");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&format!(
        "<network><name>netboot</name><forward mode='nat'/><bridge name='virbr0'/>\
         <ip address='192.168.122.1' prefix='24'><tftp root='{}'/><dhcp>\
         <range start='192.168.122.100' end='192.168.122.199'/>\
         <bootp file='pxelinux.0'/></dhcp></ip></network>",
        root.display()
    ));
    daemon.cli_ok(&["net-start", &name]);
    let guest = dhcp_guest(&lab, None);
    let script = udhcpc_script(lab.tmp_dir());
    guest.udhcpc(&script, "pxe");
    let log = std::fs::read_to_string(format!("{}.log", script.display())).expect("script log");
    assert!(log.contains("boot_file=pxelinux.0"), "{log}");
    assert!(log.contains("siaddr=192.168.122.1"), "{log}");
    let local = lab.tmp_dir().join("fetched");
    guest.ns().run_ok([
        "busybox",
        "tftp",
        "-g",
        "-r",
        "pxelinux.0",
        "-l",
        &local.to_string_lossy(),
        "192.168.122.1",
    ]);
    assert_eq!(std::fs::read(&local).expect("fetched image"), image);
    // Only the root is served.
    let escape = guest.ns().exec([
        "busybox",
        "tftp",
        "-g",
        "-r",
        "../../../etc/passwd",
        "-l",
        "/dev/null",
        "192.168.122.1",
    ]);
    assert!(!escape.status.success());
}
