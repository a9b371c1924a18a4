//! DHCPv6 (issue 15, items 2 and 5) with a real client: ISC `dhclient -6` in guest
//! namespaces, run in the foreground with a script that applies the address to the guest's
//! `eth0` and logs every event (reason, address, DNS servers, search list); and busybox's
//! `udhcpc6`, which Debian 12's busybox leaves out: `scripts/build-busybox.sh` (run by
//! `scripts/setup.sh`) builds Debian's busybox source package with it (see [`busybox6`]).
//!
//! The IPv6 cases of libvirt's `dnsmasq-conf/` corpus (`dhcp6-network`,
//! `dhcp6host-routed-network`, `dhcp6-nat-network`) run as written there, with only the
//! uplink's name (`dev='eth1'`) taken out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use virtnet_testkit::dhcp::{udhcpc_script, write_script};
use virtnet_testkit::{eventually, Daemon, Guest, Lab, NsChild};

/// How long dhclient may take to bind: its first SOLICIT waits up to 1 s, and the bridge's
/// link-local address may still be tentative for the first ones.
const BIND_LIMIT: Duration = Duration::from_secs(40);

fn corpus(name: &str) -> String {
    let path = virtnet_testkit::libvirt_corpus_dir().join(format!("dnsmasq-conf/{name}.xml"));
    virtnet_testkit::read_corpus_file(&path).replace(" dev='eth1'", "")
}

fn start(lab: &Lab, xml: &str) -> (Daemon, String) {
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(xml);
    daemon.cli_ok(&["net-start", &name]);
    (daemon, name)
}

/// A guest on `bridge` (MAC `mac` when given) whose link-local address is usable at once.
fn guest6(lab: &Lab, bridge: &str, mac: Option<&str>) -> Guest {
    let guest = lab.guest_unattached();
    guest
        .ns()
        .run_ok(["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
    if let Some(mac) = mac {
        guest.ns().ip_ok(["link", "set", "eth0", "address", mac]);
    }
    guest.attach(bridge);
    guest.ns().ip_ok(["link", "set", "eth0", "down"]);
    guest.ns().ip_ok(["link", "set", "eth0", "up"]);
    guest
}

/// `dhclient -6` running in the foreground in a guest, with its own files.
struct Client6 {
    child: NsChild,
    log: PathBuf,
    /// dhclient's own output (for failure messages).
    output: PathBuf,
}

/// The files of one client in `dir`: script, config, lease file.
fn client_files(dir: &Path, tag: &str, conf: &str) -> (PathBuf, PathBuf, PathBuf) {
    let script = dir.join(format!("dhclient6-{tag}.sh"));
    write_script(&script, virtnet_testkit::dhcp::DHCLIENT6_SCRIPT);
    let cf = dir.join(format!("dhclient6-{tag}.conf"));
    std::fs::write(
        &cf,
        format!("timeout 30;\nrequest dhcp6.name-servers, dhcp6.domain-search;\n{conf}"),
    )
    .expect("write dhclient.conf");
    (script, cf, dir.join(format!("dhclient6-{tag}.leases")))
}

fn dhclient_args(dir: &Path, tag: &str, conf: &str, extra: &[&str]) -> (Vec<String>, PathBuf) {
    let (script, cf, lf) = client_files(dir, tag, conf);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "dhclient".into(),
        "-6".into(),
        "-v".into(),
        "-cf".into(),
        s(&cf),
        "-lf".into(),
        s(&lf),
        "-pf".into(),
        s(&dir.join(format!("dhclient6-{tag}.pid"))),
        "-sf".into(),
        s(&script),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push("eth0".into());
    (args, script.with_extension("sh.log"))
}

impl Client6 {
    /// Starts `dhclient -6 -d` (foreground) with `extra` options and `conf` lines.
    fn start(guest: &Guest, dir: &Path, tag: &str, conf: &str, extra: &[&str]) -> Client6 {
        let mut all = vec!["-d"];
        all.extend_from_slice(extra);
        let (args, log) = dhclient_args(dir, tag, conf, &all);
        let output = dir.join(format!("dhclient6-{tag}.out"));
        let file = std::fs::File::create(&output).expect("dhclient output file");
        let child = guest.ns().spawn_with(args, |cmd| {
            cmd.stdout(std::process::Stdio::null());
            cmd.stderr(file);
        });
        Client6 { child, log, output }
    }

    /// The logged events: `(reason, address, dns, search)`.
    fn events(&self) -> Vec<(String, String, String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut parts = l.split(' ');
                let reason = parts.next().unwrap_or_default().to_string();
                let field = |key: &str| {
                    l.split(' ')
                        .find_map(|p| p.strip_prefix(key))
                        .unwrap_or_default()
                        .to_string()
                };
                (reason, field("addr="), field("dns="), field("search="))
            })
            .collect()
    }

    /// Events of one of `reasons` that carry an address.
    fn bound(&self, reasons: &[&str]) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(r, a, _, _)| reasons.contains(&r.as_str()) && !a.is_empty())
            .map(|(_, a, _, _)| a)
            .collect()
    }

    /// Waits for the first bound address (BOUND6 or REBOOT6).
    fn wait_bound(&self) -> String {
        assert!(
            eventually(BIND_LIMIT, || !self
                .bound(&["BOUND6", "REBOOT6"])
                .is_empty()),
            "dhclient -6 did not bind; its events: {:?}\n{}",
            self.events(),
            std::fs::read_to_string(&self.output).unwrap_or_default()
        );
        self.bound(&["BOUND6", "REBOOT6"])[0].clone()
    }
}

impl Drop for Client6 {
    fn drop(&mut self) {
        self.child.kill();
    }
}

/// `net-dhcp-leases NETWORK --json`.
fn leases(daemon: &Daemon, net: &str) -> Vec<serde_json::Value> {
    let out = daemon.cli_ok(&["net-dhcp-leases", net, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("net-dhcp-leases --json");
    v.as_array().cloned().unwrap_or_default()
}

fn v6_leases(daemon: &Daemon, net: &str) -> Vec<serde_json::Value> {
    leases(daemon, net)
        .into_iter()
        .filter(|l| l["type"] == "ipv6")
        .collect()
}

/// Asserts that `guest` holds `addr` on its eth0 and that it is the network's one IPv6 lease;
/// returns the lease rows.
fn holds_the_only_lease(
    guest: &Guest,
    daemon: &Daemon,
    net: &str,
    addr: &str,
) -> Vec<serde_json::Value> {
    assert!(
        guest
            .ns()
            .ip_ok(["-6", "addr", "show", "dev", "eth0"])
            .contains(addr),
        "the guest holds {addr}"
    );
    let rows = v6_leases(daemon, net);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ipAddress"], addr);
    rows
}

fn in_range(addr: &str, low: u16, high: u16) -> bool {
    addr.parse::<std::net::Ipv6Addr>().is_ok_and(|a| {
        let s = a.segments();
        s[..4] == [0x2001, 0xdb8, 0xac10, 0xfd01]
            && s[4..7] == [0, 0, 1]
            && (low..=high).contains(&s[7])
    })
}

/// A NAT network with IPv6 DHCP: the `dhcp6-network` shape with a 20 s lease, so dhclient
/// renews (T1, 10 s) while the test watches.
const SHORT_LEASE_NET: &str = "<network><name>d6</name><forward mode='nat'/>\
    <bridge name='vd6a' stp='off'/><domain name='mynet'/>\
    <ip address='10.66.0.1' prefix='24'/>\
    <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'><dhcp>\
    <range start='2001:db8:ac10:fd01::1:10' end='2001:db8:ac10:fd01::1:ff'>\
    <lease expiry='20' unit='seconds'/></range></dhcp></ip></network>";

/// Item 5: a stateful lease in the range, renewed (RENEW6 with the same address), listed by
/// `net-dhcp-leases` as virsh lists IPv6 leases, kept over `kill -9` of virtnetd (still
/// listed after the restart, renewed again by the running client, and given again to a
/// fresh client process with the same DUID), and freed by RELEASE.
#[test]
fn dhclient6_leases_renews_and_keeps_its_address_across_kill_9() {
    let lab = Lab::new("dhcp6-renew");
    let (mut daemon, net) = start(&lab, SHORT_LEASE_NET);
    let guest = guest6(&lab, "vd6a", None);
    let dir = lab.tmp_dir();
    let client = Client6::start(&guest, dir, "a", "", &[]);
    let addr = client.wait_bound();
    assert!(in_range(&addr, 0x10, 0xff), "{addr}");
    let rows = holds_the_only_lease(&guest, &daemon, &net, &addr);
    assert_eq!(rows[0]["prefix"], 64);
    assert_eq!(rows[0]["iface"], "vd6a");
    // dhclient's DUID-LLT: type 1, Ethernet, a time, the guest's MAC.
    let duid = rows[0]["clientId"].as_str().unwrap_or_default().to_string();
    assert!(duid.starts_with("00:01:00:01:"), "{duid}");
    assert!(
        duid.ends_with(&guest.mac()),
        "{duid} ends with {}",
        guest.mac()
    );
    assert_eq!(rows[0]["mac"], guest.mac().as_str());
    // virsh's table: the ipv6 row with its prefix length and the DUID.
    let table = daemon.cli_ok(&["net-dhcp-leases", &net]);
    let row = table
        .lines()
        .find(|l| l.contains("ipv6"))
        .unwrap_or_default();
    assert!(row.contains(&format!("{addr}/64")), "{table}");
    assert!(row.contains(&duid), "{table}");

    // A renewal at T1 keeps the address.
    assert!(
        eventually(Duration::from_secs(40), || !client
            .bound(&["RENEW6"])
            .is_empty()),
        "no RENEW6: {:?}",
        client.events()
    );
    assert!(client
        .bound(&["RENEW6", "REBIND6"])
        .iter()
        .all(|a| *a == addr));

    // kill -9: the lease is in the store, listed at once after the restart.
    daemon.kill9();
    daemon.restart();
    let rows = v6_leases(&daemon, &net);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ipAddress"], addr.as_str());
    // The running client renews with the restarted daemon (same server DUID: the bridge's).
    let before = client.bound(&["RENEW6", "REBIND6"]).len();
    assert!(
        eventually(Duration::from_secs(40), || client
            .bound(&["RENEW6", "REBIND6"])
            .len()
            > before),
        "no renewal after the restart: {:?}",
        client.events()
    );
    assert!(client
        .bound(&["RENEW6", "REBIND6"])
        .iter()
        .all(|a| *a == addr));

    // A fresh client process (the same DUID, from the lease file) gets the same address.
    drop(client);
    let again = Client6::start(&guest, dir, "a", "", &[]);
    let events_before = again.bound(&["BOUND6", "REBOOT6"]).len();
    assert!(
        eventually(BIND_LIMIT, || again.bound(&["BOUND6", "REBOOT6"]).len()
            > events_before),
        "the fresh client did not bind: {:?}",
        again.events()
    );
    assert!(again
        .bound(&["BOUND6", "REBOOT6"])
        .iter()
        .all(|a| *a == addr));
    drop(again);

    // RELEASE frees it.
    let (args, _) = dhclient_args(dir, "a", "", &["-r"]);
    guest.ns().run_ok(args);
    assert!(
        eventually(Duration::from_secs(10), || v6_leases(&daemon, &net)
            .is_empty()),
        "the released lease is still listed"
    );
}

/// dhcp6-network: a static host by DUID (`<host id='0:3:0:1:0:16:3e:44:55:33' ip='…::1:23'/>`,
/// a DUID-LL of MAC 00:16:3e:44:55:33) gets its fixed address; a host by name
/// (`<host name='paul' ip='…::1:21'/>`) is matched by the name the client sends; stateless
/// `dhclient -6 -S` (INFORMATION-REQUEST) gets the gateway as DNS server and the domain.
#[test]
fn dhcp6_network_static_hosts_by_duid_and_name_and_stateless_information() {
    let lab = Lab::new("dhcp6-static");
    let (daemon, net) = start(&lab, &corpus("dhcp6-network"));
    let dir = lab.tmp_dir();

    let by_id = guest6(&lab, "virbr0", Some("00:16:3e:44:55:33"));
    let c = Client6::start(&by_id, dir, "id", "", &["-D", "LL"]);
    assert_eq!(c.wait_bound(), "2001:db8:ac10:fd01::1:23");

    let by_name = guest6(&lab, "virbr0", None);
    let c2 = Client6::start(&by_name, dir, "name", "send fqdn.fqdn \"paul\";\n", &[]);
    assert_eq!(c2.wait_bound(), "2001:db8:ac10:fd01::1:21");
    let rows = v6_leases(&daemon, &net);
    let paul = rows
        .iter()
        .find(|r| r["ipAddress"] == "2001:db8:ac10:fd01::1:21")
        .unwrap_or_else(|| panic!("paul's lease in {rows:?}"));
    assert_eq!(paul["hostname"], "paul");
    let peter = rows
        .iter()
        .find(|r| r["ipAddress"] == "2001:db8:ac10:fd01::1:23")
        .unwrap_or_else(|| panic!("the DUID host's lease in {rows:?}"));
    assert_eq!(peter["clientId"], "00:03:00:01:00:16:3e:44:55:33");

    // Stateless: no address, but DNS server = the gateway, search list = the domain.
    let stateless = guest6(&lab, "virbr0", None);
    let s = Client6::start(&stateless, dir, "stateless", "", &["-S"]);
    assert!(
        eventually(BIND_LIMIT, || s
            .events()
            .iter()
            .any(|(_, _, dns, _)| !dns.is_empty())),
        "no DNS servers from INFORMATION-REQUEST: {:?}",
        s.events()
    );
    let (_, addr, dns, search) = s
        .events()
        .into_iter()
        .find(|(_, _, dns, _)| !dns.is_empty())
        .unwrap_or_default();
    assert_eq!(dns, "2001:db8:ac10:fd01::1");
    assert!(search.starts_with("mynet"), "{search}");
    assert!(
        addr.is_empty(),
        "stateless configuration leases nothing: {addr}"
    );
    assert_eq!(v6_leases(&daemon, &net).len(), 2);
}

/// Sends N datagrams of random bytes (every third one a truncated SOLICIT/REQUEST header
/// with random options) to [ff02::1:2%IF]:547.
const GARBAGE: &str = r#"import os, random, socket, sys
ifname, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
idx = socket.if_nametoindex(ifname)
random.seed(15)
for i in range(n):
    if i % 3 == 0:
        d = bytes([random.choice([1, 3, 5, 6, 8, 9, 11]), 1, 2, 3]) + os.urandom(random.randrange(0, 80))
    else:
        d = os.urandom(random.randrange(0, 400))
    s.sendto(d, ('ff02::1:2', 547, 0, idx))
print('sent', n)
"#;

/// dhcp6host-routed-network: hosts and no range (dnsmasq's `dhcp-range=…,static`): a host
/// by DUID gets its address, an unknown client gets none (NoAddrsAvail).
#[test]
fn dhcp6host_routed_network_serves_its_static_hosts_only() {
    let lab = Lab::new("dhcp6-routed");
    let (daemon, net) = start(&lab, &corpus("dhcp6host-routed-network"));
    let dir = lab.tmp_dir();
    let known = guest6(&lab, "virbr1", Some("00:16:3e:11:22:33"));
    // Garbage first, through the real socket: random datagrams and truncated client
    // messages to ff02::1:2 port 547. The server drops them and keeps serving.
    let out = known
        .ns()
        .run_ok(["python3", "-c", GARBAGE, "eth0", "3000"]);
    assert_eq!(out.trim(), "sent 3000");
    let c = Client6::start(&known, dir, "known", "", &["-D", "LL"]);
    assert_eq!(c.wait_bound(), "2001:db8:ac10:fd01::1:22");
    let rows = v6_leases(&daemon, &net);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["hostname"], "peter.xyz");

    let unknown = guest6(&lab, "virbr1", None);
    let (args, _) = dhclient_args(dir, "unknown", "timeout 8;\n", &["-1"]);
    let out = unknown.ns().exec(args);
    assert!(!out.status.success(), "an unknown client got a lease");
    assert_eq!(v6_leases(&daemon, &net).len(), 1);
}

/// dhcp6-nat-network: DHCPv4 and DHCPv6 on one bridge; one guest gets both, and
/// `net-dhcp-leases` lists an ipv4 and an ipv6 row for it.
#[test]
fn dhcp6_nat_network_serves_ipv4_and_ipv6_on_one_bridge() {
    let lab = Lab::new("dhcp6-nat");
    let (daemon, net) = start(&lab, &corpus("dhcp6-nat-network"));
    let dir = lab.tmp_dir();
    let guest = guest6(&lab, "virbr0", None);
    let script = udhcpc_script(dir);
    guest.udhcpc(&script, "dual");
    // The udhcpc script flushes every address of eth0, the link-local one too: cycling the
    // link makes a new one (and keeps the IPv4 lease's address).
    guest.ns().ip_ok(["link", "set", "eth0", "down"]);
    guest.ns().ip_ok(["link", "set", "eth0", "up"]);
    let c = Client6::start(&guest, dir, "dual", "", &[]);
    let v6 = c.wait_bound();
    assert!(in_range(&v6, 0x10, 0xff), "{v6}");
    let rows = leases(&daemon, &net);
    let kinds: Vec<&str> = rows.iter().filter_map(|r| r["type"].as_str()).collect();
    assert!(
        kinds.contains(&"ipv4") && kinds.contains(&"ipv6"),
        "{rows:?}"
    );
    // `iaid` only on the IPv6 row.
    assert!(
        rows.iter()
            .all(|r| (r["type"] == "ipv6") == r.get("iaid").is_some()),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r["mac"] == guest.mac().as_str()),
        "{rows:?}"
    );

    // net-undefine forgets the DHCPv6 leases with the DHCPv4 ones: defined and started
    // again, the network has none.
    drop(c);
    daemon.cli_ok(&["net-destroy", &net]);
    daemon.cli_ok(&["net-undefine", &net]);
    let again = daemon.define(&corpus("dhcp6-nat-network"));
    daemon.cli_ok(&["net-start", &again]);
    assert!(
        leases(&daemon, &again).is_empty(),
        "{:?}",
        leases(&daemon, &again)
    );
}

/// `dig +short` from `guest` to the network's IPv6 gateway.
fn dig6(guest: &Guest, args: &[&str]) -> String {
    let mut all = vec![
        "dig",
        "@2001:db8:ac10:fd01::1",
        "+short",
        "+time=2",
        "+tries=2",
    ];
    all.extend_from_slice(args);
    guest.ns().run_ok(all).trim().to_string()
}

const NAMED_NET: &str = "<network><name>d6n</name><forward mode='nat'/>\
    <bridge name='vd6n' stp='off'/><domain name='mynet'/>\
    <ip address='10.67.0.1' prefix='24'/>\
    <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'><dhcp>\
    <range start='2001:db8:ac10:fd01::1:10' end='2001:db8:ac10:fd01::1:ff'/>\
    <host id='0:3:0:1:0:16:3e:11:22:33' name='peter' ip='2001:db8:ac10:fd01::1:22'/>\
    </dhcp></ip></network>";

/// Items 3 and 4: the name a DHCPv6 client sends gets an AAAA record and an ip6.arpa PTR,
/// answered on the IPv6 gateway address; a static IPv6 host's name resolves both ways; a
/// static host added with `net-update --live` applies at once (a new client with that DUID
/// gets its address) without restarting anything (the first lease stays, the bridge is the
/// same), and removing it takes its name out of DNS.
#[test]
fn dhcp6_names_resolve_and_net_update_of_ipv6_hosts_applies_live() {
    let lab = Lab::new("dhcp6-dns");
    let (daemon, net) = start(&lab, NAMED_NET);
    let dir = lab.tmp_dir();
    let events = lab.host().spawn_with(
        [
            virtnet_testkit::virtnet_bin()
                .to_string_lossy()
                .into_owned(),
            "--connect".into(),
            daemon.socket().to_string_lossy().into_owned(),
            "net-event".into(),
            "--loop".into(),
            "--timeout".into(),
            "60".into(),
        ],
        |cmd| {
            cmd.stdout(std::process::Stdio::piped());
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let guest = guest6(&lab, "vd6n", None);
    let c = Client6::start(&guest, dir, "named", "send fqdn.fqdn \"v6guest\";\n", &[]);
    let addr = c.wait_bound();
    events.signal(libc::SIGINT);
    let printed = events.with_child(|c| {
        let mut out = String::new();
        if let Some(mut stdout) = c.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        let _ = c.wait();
        out
    });
    assert!(
        printed.contains(&format!(
            "event 'lease-granted' for network {net}: {} {addr} v6guest",
            guest.mac()
        )),
        "{printed}"
    );
    // The guest's address is a /128: the prefix is on link through the bridge.
    guest.ns().ip_ok([
        "-6",
        "route",
        "replace",
        "2001:db8:ac10:fd01::/64",
        "dev",
        "eth0",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || dig6(
            &guest,
            &["AAAA", "v6guest.mynet"]
        ) == addr),
        "AAAA v6guest.mynet: {:?} (want {addr})",
        dig6(&guest, &["AAAA", "v6guest.mynet"])
    );
    assert_eq!(dig6(&guest, &["-x", &addr]), "v6guest.mynet.");
    assert_eq!(
        dig6(&guest, &["AAAA", "peter.mynet"]),
        "2001:db8:ac10:fd01::1:22"
    );
    assert_eq!(
        dig6(&guest, &["-x", "2001:db8:ac10:fd01::1:22"]),
        "peter.mynet."
    );

    let bridge_before = lab.host().ip_ok(["-o", "link", "show", "dev", "vd6n"]);
    let host = "<host id='0:3:0:1:0:16:3e:44:55:77' name='late' ip='2001:db8:ac10:fd01::1:77'/>";
    daemon.cli_ok(&[
        "net-update",
        &net,
        "add-last",
        "ip-dhcp-host",
        host,
        "--live",
        "--config",
    ]);
    let late = guest6(&lab, "vd6n", Some("00:16:3e:44:55:77"));
    let c2 = Client6::start(&late, dir, "late", "", &["-D", "LL"]);
    assert_eq!(c2.wait_bound(), "2001:db8:ac10:fd01::1:77");
    assert_eq!(
        dig6(&guest, &["AAAA", "late.mynet"]),
        "2001:db8:ac10:fd01::1:77"
    );
    // Nothing restarted: the same bridge, and the first lease is still there.
    let bridge_after = lab.host().ip_ok(["-o", "link", "show", "dev", "vd6n"]);
    assert_eq!(
        bridge_before.split(':').next(),
        bridge_after.split(':').next()
    );
    let rows = v6_leases(&daemon, &net);
    assert!(
        rows.iter().any(|r| r["ipAddress"] == addr.as_str()),
        "{rows:?}"
    );

    // A range changed live: a new client is served from the new range only.
    daemon.cli_ok(&[
        "net-update",
        &net,
        "delete",
        "ip-dhcp-range",
        "<range start='2001:db8:ac10:fd01::1:10' end='2001:db8:ac10:fd01::1:ff'/>",
        "--live",
    ]);
    daemon.cli_ok(&[
        "net-update",
        &net,
        "add",
        "ip-dhcp-range",
        "<range start='2001:db8:ac10:fd01::2:10' end='2001:db8:ac10:fd01::2:20'/>",
        "--live",
    ]);
    let third = guest6(&lab, "vd6n", None);
    let c3 = Client6::start(&third, dir, "third", "", &[]);
    let a3: std::net::Ipv6Addr = c3.wait_bound().parse().expect("an IPv6 address");
    let s = a3.segments();
    assert!(
        s[6] == 2 && (0x10..=0x20).contains(&s[7]),
        "{a3} in the new range"
    );
}

/// Item 4: the first IPv6 range added live to a running network without DHCPv6 starts
/// DHCPv6 there (and the firewall lets its guests reach it) without a restart.
#[test]
fn a_first_ipv6_range_added_live_starts_dhcp6() {
    let lab = Lab::new("dhcp6-first");
    let (daemon, net) = start(
        &lab,
        "<network><name>d6f</name><forward mode='nat'/><bridge name='vd6f' stp='off'/>\
         <ip family='ipv6' address='2001:db8:ac10:fd01::1' prefix='64'/></network>",
    );
    let out = daemon.cli_ok(&[
        "net-update",
        &net,
        "add",
        "ip-dhcp-range",
        "<range start='2001:db8:ac10:fd01::1:10' end='2001:db8:ac10:fd01::1:ff'/>",
        "--live",
    ]);
    assert!(out.contains("live state"), "{out}");
    let guest = guest6(&lab, "vd6f", None);
    let c = Client6::start(&guest, lab.tmp_dir(), "first", "", &[]);
    let addr = c.wait_bound();
    assert!(in_range(&addr, 0x10, 0xff), "{addr}");
    assert_eq!(v6_leases(&daemon, &net).len(), 1);
}

/// Sends a SOLICIT to `[dest%ifname]:547` from port 546, up to N times 1 s apart (the
/// bridge's link-local address may still be tentative for the first), and prints the type of
/// the first answer, or `none`.
const SOLICIT6: &str = r#"import socket, struct, sys
dest, ifname, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
duid = bytes([0, 3, 0, 1, 2, 0x66, 0, 0, 0, 7])
opt = lambda c, v: struct.pack('!HH', c, len(v)) + v
msg = bytes([1, 0x12, 0x34, 0x56]) + opt(1, duid) + opt(3, struct.pack('!III', 1, 0, 0))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.bind(('::', 546))
s.settimeout(1)
got = 'none'
for _ in range(tries):
    s.sendto(msg, (dest, 547, 0, socket.if_nametoindex(ifname)))
    try:
        d, a = s.recvfrom(2048)
        got = str(d[0]); break
    except socket.timeout:
        pass
print(got)
"#;

/// The shared socket answers only on bridges it serves: a SOLICIT from upstream to the host's
/// uplink address gets nothing, while the same SOLICIT from a guest gets an ADVERTISE (2).
#[test]
fn dhcp6_answers_on_its_bridges_only_never_on_the_uplink() {
    let lab = Lab::new("dhcp6-uplink");
    lab.uplink_v6();
    let (_daemon, _net) = start(&lab, SHORT_LEASE_NET);
    let guest = guest6(&lab, "vd6a", None);
    let from_guest = guest
        .ns()
        .run_ok(["python3", "-c", SOLICIT6, "ff02::1:2", "eth0", "20"]);
    assert_eq!(from_guest.trim(), "2", "a guest's SOLICIT is advertised");
    let from_upstream = lab.upstream().run_ok([
        "python3",
        "-c",
        SOLICIT6,
        virtnet_testkit::HOST_UPLINK_ADDR6,
        "up0",
        "5",
    ]);
    assert_eq!(
        from_upstream.trim(),
        "none",
        "nothing answers on the uplink"
    );
}

/// The busybox with `udhcpc6` that `scripts/build-busybox.sh` built: `$VIRTNET_BUSYBOX`, else
/// the newest complete `/var/cache/virtnet/busybox-*/busybox`. Missing is a failure, not a
/// skip: CI runs `scripts/setup.sh`, which builds it.
fn busybox6() -> PathBuf {
    if let Some(p) = std::env::var_os("VIRTNET_BUSYBOX") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "VIRTNET_BUSYBOX={} is not a file", p.display());
        return p;
    }
    let root = Path::new("/var/cache/virtnet");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("busybox-"))
                        && p.join(".complete").is_file()
                })
                .map(|p| p.join("busybox"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no busybox with udhcpc6 under {}/busybox-*/ and no VIRTNET_BUSYBOX: \
             run scripts/build-busybox.sh (scripts/setup.sh does)",
            root.display()
        )
    })
}

/// udhcpc6's script: logs the event with the address, DNS servers and search list, and
/// applies a bound address to the interface.
const UDHCPC6_SCRIPT: &str = "#!/bin/sh\n\
echo \"$1 addr=$ipv6 dns=$dns search=$search\" >> \"$0.log\"\n\
case \"$1\" in\n\
  bound|renew) [ -n \"$ipv6\" ] && ip -6 addr replace \"$ipv6/128\" dev \"$interface\" nodad ;;\n\
esac\n\
exit 0\n";

/// Item 5: busybox `udhcpc6` (Debian 12's busybox source, built with the applet) gets a
/// stateful address in the range with the gateway as DNS server and the domain as search
/// list; the lease is listed by `net-dhcp-leases` under udhcpc6's DUID.
#[test]
fn busybox_udhcpc6_gets_a_stateful_lease() {
    let busybox = busybox6();
    let lab = Lab::new("dhcp6-udhcpc6");
    let (daemon, net) = start(&lab, SHORT_LEASE_NET);
    let guest = guest6(&lab, "vd6a", None);
    let dir = lab.tmp_dir();
    let script = dir.join("udhcpc6.sh");
    write_script(&script, UDHCPC6_SCRIPT);
    let bb = busybox.to_string_lossy().into_owned();
    let sc = script.to_string_lossy().into_owned();
    // -f foreground, -q quit once bound, -n fail when no lease; up to 10 SOLICITs 2 s apart
    // (the bridge's link-local address may still be tentative for the first); -O asks for
    // the DNS servers and the search list.
    let args = [
        "timeout", "60", &bb, "udhcpc6", "-f", "-q", "-n", "-t", "10", "-T", "2", "-i", "eth0",
        "-s", &sc, "-O", "dns", "-O", "search",
    ];
    guest.ns().run_ok(args);
    let log = std::fs::read_to_string(script.with_extension("sh.log")).unwrap_or_default();
    let bound = log
        .lines()
        .find(|l| l.starts_with("bound "))
        .unwrap_or_else(|| panic!("udhcpc6 never bound: {log}"));
    let field = |key: &str| {
        bound
            .split(' ')
            .find_map(|p| p.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    // udhcpc6 writes addresses uncompressed (2001:0db8:…:00df): compared as addresses.
    let canonical = |text: String| {
        text.parse::<std::net::Ipv6Addr>()
            .map(|a| a.to_string())
            .unwrap_or(text)
    };
    let addr = canonical(field("addr="));
    assert!(in_range(&addr, 0x10, 0xff), "{bound}");
    assert_eq!(canonical(field("dns=")), "2001:db8:ac10:fd01::1", "{bound}");
    assert_eq!(field("search="), "mynet", "{bound}");
    let rows = holds_the_only_lease(&guest, &daemon, &net, &addr);
    // udhcpc6's DUID-LL: type 3, Ethernet, the guest's MAC.
    let duid = format!("00:03:00:01:{}", guest.mac());
    assert_eq!(rows[0]["clientId"], duid.as_str(), "{rows:?}");
    // The IA's id is in the JSON (item 4), as a number.
    assert!(rows[0]["iaid"].is_u64(), "{rows:?}");
}

/// A DHCPv6 flooder: from each of the source addresses given (already on `ifname`), `per`
/// rapid-commit SOLICITs, each with a new random DUID, one at a time (up to 3 tries, 1 s
/// apart); prints how many were answered with a REPLY holding an address.
const FLOOD6: &str = r#"import os, socket, struct, sys
ifname, per, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(',')
idx = socket.if_nametoindex(ifname)
opt = lambda c, v: struct.pack('!HH', c, len(v)) + v
bound = 0
for src in sources:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    s.bind((src, 546, 0, idx))
    s.settimeout(1)
    for _ in range(per):
        xid = os.urandom(3)
        duid = bytes([0, 4]) + os.urandom(16)
        msg = (bytes([1]) + xid + opt(1, duid) + opt(3, struct.pack('!III', 1, 0, 0))
               + opt(14, b''))
        for _ in range(3):
            s.sendto(msg, ('ff02::1:2', 547, 0, idx))
            try:
                while True:
                    d = s.recv(2048)
                    if d[1:4] == xid:
                        break
            except socket.timeout:
                continue
            # IA_NA (3) holding an IAADDR (5): REPLY (7) that bound an address.
            i, got = 4, False
            while i + 4 <= len(d):
                c, n = struct.unpack('!HH', d[i:i + 4])
                if c == 3 and n > 16 and d[i + 16:i + 18] == b'\x00\x05':
                    got = True
                i += 4 + n
            bound += d[0] == 7 and got
            break
    s.close()
print(bound)
"#;

/// Issue 15 item 2: DHCPv6 is charged to the bridge port a frame came in on, as DHCPv4 is.
/// A guest flooding rapid-commit SOLICITs with random DUIDs from four source addresses of
/// its one port gets 8 addresses (the port's cap), not 8 per source address (32, what the
/// per-source cap gave a guest that rotates its source addresses); a guest on another port
/// still gets its lease from dhclient.
#[test]
fn a_flood_of_random_duids_from_one_port_is_capped_and_another_port_is_served() {
    let lab = Lab::new("dhcp6-flood");
    let (daemon, net) = start(&lab, SHORT_LEASE_NET);
    let flooder = guest6(&lab, "vd6a", None);
    let sources: Vec<String> = (1..=4).map(|i| format!("fe80::f:{i}")).collect();
    for s in &sources {
        flooder.ns().ip_ok([
            "-6",
            "addr",
            "add",
            &format!("{s}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
    }
    // The bridge's own link-local address may still be tentative: the first SOLICITs may go
    // unanswered, which the flooder's retries cover.
    let granted = flooder
        .ns()
        .run_ok(["python3", "-c", FLOOD6, "eth0", "8", &sources.join(",")]);
    let granted: usize = granted.trim().parse().expect("a count");
    assert_eq!(granted, 8, "one port's cap, whatever its source addresses");
    assert_eq!(v6_leases(&daemon, &net).len(), 8);

    let other = guest6(&lab, "vd6a", None);
    let dir = lab.tmp_dir();
    let client = Client6::start(&other, dir, "other", "", &[]);
    let addr = client.wait_bound();
    assert!(in_range(&addr, 0x10, 0xff), "{addr}");
    let rows = v6_leases(&daemon, &net);
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert!(rows.iter().any(|r| r["ipAddress"] == addr.as_str()));
}
