//! Issue 14's coexistence, with real packets: a NAT network's guest (busybox `udhcpc`, `dig`,
//! HTTP and ping to the Lab's upstream) beside another firewall on the same host — Docker's
//! iptables-nft `filter` table with `FORWARD` policy drop and its `DOCKER-USER` chain, and a
//! ufw-style nftables table with input and forward policy drop. With `--firewall-integration`
//! virtnet lets its bridge's traffic through in that table's own terms, puts the accepts
//! back when the table is deleted and re-created (no polling: the ruleset watcher), and takes
//! them away at `net-destroy`. Without it, `net-start` is refused with the table, chain and
//! policy named, and nothing is changed.

use std::time::Duration;

use virtnet_testkit::dhcp::{dns_server, udhcpc_script};
use virtnet_testkit::{
    eventually, Daemon, Guest, Lab, Netns, NsChild, UPSTREAM_ADDR, UPSTREAM_URL,
};

/// The NAT network under test: libvirt's default, with DHCP.
const NETWORK: &str = "<network><name>default</name><forward mode='nat'/>\
    <bridge name='virbr0'/><ip address='192.168.122.1' prefix='24'><dhcp>\
    <range start='192.168.122.100' end='192.168.122.199'/></dhcp></ip></network>";

/// How long the watcher may take to put accepts back (it reacts to the kernel's
/// announcement; this only bounds a failing test).
const WATCH_LIMIT: Duration = Duration::from_secs(10);

/// A lab whose daemon forwards DNS to a dnsmasq upstream that knows `www.example.org`.
struct CoLab {
    lab: Lab,
    daemon: Daemon,
    _dns: NsChild,
}

fn co_lab(test: &str, integration: bool) -> CoLab {
    let lab = Lab::new(test);
    let resolv = lab.tmp_dir().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {UPSTREAM_ADDR}\n")).expect("write resolv.conf");
    let dns = dns_server(
        lab.upstream(),
        UPSTREAM_ADDR,
        &["--address=/example.org/203.0.113.80"],
    );
    let resolv = resolv.to_string_lossy().into_owned();
    let mut args = vec!["--resolv-conf", resolv.as_str()];
    if integration {
        args.push("--firewall-integration");
    }
    let daemon = Daemon::start_in_with(lab.host(), &args);
    CoLab {
        lab,
        daemon,
        _dns: dns,
    }
}

/// iptables-nft in the host namespace; panics with its message when it fails.
fn iptables(host: &Netns, args: &[&str]) -> String {
    let mut argv = vec!["iptables-nft", "-w"];
    argv.extend_from_slice(args);
    host.run_ok(argv)
}

/// Docker's filter tables as dockerd (20–27) sets them up with iptables-nft: FORWARD policy
/// drop, its chains, and FORWARD jumping to DOCKER-USER first; the same in ip6tables.
fn docker_like(host: &Netns) {
    iptables(host, &["-P", "FORWARD", "DROP"]);
    for chain in [
        "DOCKER",
        "DOCKER-ISOLATION-STAGE-1",
        "DOCKER-ISOLATION-STAGE-2",
        "DOCKER-USER",
    ] {
        iptables(host, &["-N", chain]);
    }
    iptables(host, &["-A", "DOCKER-USER", "-j", "RETURN"]);
    iptables(host, &["-A", "FORWARD", "-j", "DOCKER-USER"]);
    iptables(host, &["-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"]);
    iptables(
        host,
        &[
            "-A",
            "FORWARD",
            "-o",
            "docker0",
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
    );
    iptables(host, &["-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"]);
    iptables(
        host,
        &[
            "-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT",
        ],
    );
    iptables(host, &["-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"]);
    // Docker 27 and later set ip6tables' FORWARD policy to drop as well.
    for args in [
        &["-P", "FORWARD", "DROP"][..],
        &["-N", "DOCKER-USER"],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-A", "FORWARD", "-j", "DOCKER-USER"],
    ] {
        let mut argv = vec!["ip6tables-nft", "-w"];
        argv.extend_from_slice(args);
        host.run_ok(argv);
    }
}

/// Docker's restart as the kernel sees it: its tables deleted, then made again.
fn docker_restart(host: &Netns) {
    host.run_ok(["nft", "delete table ip filter; delete table ip6 filter"]);
    docker_like(host);
}

/// A ufw-style host firewall in nftables: input and forward policy drop, established
/// traffic, loopback and SSH accepted.
const UFW_LIKE: &str = "table inet ufw {
  chain input { type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname \"lo\" accept
    tcp dport 22 accept
  }
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept
  }
}
";

fn ufw_like(host: &Netns) {
    let path = std::env::temp_dir().join(format!("virtnet-ufw-{}.nft", std::process::id()));
    std::fs::write(&path, UFW_LIKE).expect("write ufw ruleset");
    host.run_ok(["nft", "-f", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
}

fn start_default(daemon: &Daemon) -> std::process::Output {
    daemon.define(NETWORK);
    daemon.cli(&["net-start", "default"])
}

/// [`start_default`], which must succeed (its warnings are in the output's stderr).
fn start_default_ok(daemon: &Daemon) -> std::process::Output {
    let out = start_default(daemon);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The guest leases an address, resolves through the network's DNS, reaches upstream by
/// HTTP and ping: the three things a foreign drop takes away.
fn guest_works(lab: &Lab) -> Guest {
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    let script = udhcpc_script(lab.tmp_dir());
    guest.udhcpc(&script, "coexist");
    let addrs = guest.ipv4_addrs();
    assert!(
        addrs.iter().any(|a| a.octets()[..3] == [192, 168, 122]),
        "no lease: {addrs:?}"
    );
    guest
        .ns()
        .ip_ok(["route", "add", "default", "via", "192.168.122.1"]);
    let answer = guest.ns().run_ok([
        "dig",
        "+short",
        "+time=2",
        "+tries=2",
        "@192.168.122.1",
        "www.example.org",
    ]);
    assert_eq!(answer.trim(), "203.0.113.80");
    assert!(guest.http_get(UPSTREAM_URL).is_ok(), "no NAT to upstream");
    assert!(guest.ping(UPSTREAM_ADDR), "no ping to upstream");
    guest
}

fn ruleset(host: &Netns) -> String {
    host.run_ok(["nft", "list", "ruleset"])
}

fn docker_user(host: &Netns) -> String {
    iptables(host, &["-S", "DOCKER-USER"])
}

fn ufw_table(host: &Netns) -> String {
    host.run_ok(["nft", "list", "table", "inet", "ufw"])
}

fn doctor(daemon: &Daemon) -> virtnet_api::DoctorReport {
    let out = daemon.cli_ok(&["doctor", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("doctor --json: {e}\n{out}"))
}

const ACCEPT_IN: &str =
    "-A DOCKER-USER -i virbr0 -m comment --comment \"virtnet:default\" -j ACCEPT";
const ACCEPT_OUT: &str =
    "-A DOCKER-USER -o virbr0 -m comment --comment \"virtnet:default\" -j ACCEPT";

/// (a) Docker's `FORWARD` policy drop: accepts go into DOCKER-USER through iptables-nft, the
/// guest works, Docker's restart (its table deleted and re-created) gets them back, and
/// `net-destroy` removes them.
#[test]
fn docker_forward_drop_is_let_through_docker_user_and_follows_a_docker_restart() {
    let co = co_lab("co-docker", true);
    let host = co.lab.host();
    docker_like(host);
    let out = start_default_ok(&co.daemon);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "warning: accepted bridge virbr0's traffic in chain DOCKER-USER of table ip filter \
             (through iptables-nft) (--firewall-integration)"
        ),
        "{stderr}"
    );
    let rules = docker_user(host);
    assert!(
        rules.contains(ACCEPT_IN) && rules.contains(ACCEPT_OUT),
        "{rules}"
    );
    // An IPv4-only network: Docker's ip6 table is not its business.
    let ip6 = host.run_ok(["ip6tables-nft", "-w", "-S", "DOCKER-USER"]);
    assert!(!ip6.contains("virtnet:"), "{ip6}");
    // Docker's own rule is still there, after virtnet's.
    assert!(rules.contains("-A DOCKER-USER -j RETURN"), "{rules}");
    let guest = guest_works(&co.lab);

    let report = doctor(&co.daemon);
    assert!(report.firewall_integration);
    assert!(report
        .docker_chains
        .contains(&"ip filter DOCKER-USER".to_string()));
    let forward = report
        .foreign_chains
        .iter()
        .find(|c| c.table == "ip filter" && c.chain == "FORWARD")
        .expect("FORWARD listed");
    assert_eq!(forward.policy, "drop");
    assert!(forward.blocks.is_empty(), "{forward:?}");
    assert_eq!(forward.accepts.len(), 2, "{forward:?}");
    // No firewalld runs in this namespace (installed or not on the machine).
    assert!(
        ["not installed", "not running"].contains(&report.firewalld.state.as_str()),
        "{:?}",
        report.firewalld
    );

    let text = co.daemon.cli_ok(&["doctor"]);
    assert!(
        text.contains(
            "  ip filter FORWARD (hook forward, policy drop): lets guest traffic through\n    \
             accept placed by virtnet: default: iptables-nft -t filter -I DOCKER-USER 1 -i \
             virbr0 -m comment --comment virtnet:default -j ACCEPT\n"
        ),
        "{text}"
    );

    // Docker restarts: its table goes and comes back without virtnet's rules.
    docker_restart(host);
    assert!(
        eventually(WATCH_LIMIT, || {
            let r = docker_user(host);
            r.contains(ACCEPT_IN) && r.contains(ACCEPT_OUT)
        }),
        "accepts not re-applied:\n{}\n{}",
        docker_user(host),
        co.daemon.log()
    );
    assert!(
        guest.http_get(UPSTREAM_URL).is_ok(),
        "NAT after Docker's restart"
    );
    let report = doctor(&co.daemon);
    assert!(
        report.actions.iter().any(|a| a.action == "re-applied"),
        "{:?}",
        report.actions
    );
    // Exactly one copy of each: re-applying never duplicates.
    assert_eq!(docker_user(host).matches("virtnet:default").count(), 2);

    co.daemon.cli_ok(&["net-destroy", "default"]);
    let rules = docker_user(host);
    assert!(!rules.contains("virtnet:"), "{rules}");
    assert!(rules.contains("-A DOCKER-USER -j RETURN"), "{rules}");
}

/// (b) A ufw-style table with input and forward policy drop: virtnet's accepts go at the head
/// of its chains, tagged, come back after the table is re-created, and go at `net-destroy`.
#[test]
fn ufw_style_input_drop_is_let_through_and_follows_the_table() {
    let co = co_lab("co-ufw", true);
    let host = co.lab.host();
    ufw_like(host);
    start_default_ok(&co.daemon);
    let table = ufw_table(host);
    assert!(
        table.contains("iifname \"virbr0\" accept comment \"virtnet:default\""),
        "{table}"
    );
    // Replies are accepted there already (ct state established): no oifname accept needed.
    assert!(!table.contains("oifname \"virbr0\""), "{table}");
    assert_eq!(table.matches("virtnet:default").count(), 2, "{table}");
    let guest = guest_works(&co.lab);

    host.run_ok(["nft", "delete", "table", "inet", "ufw"]);
    ufw_like(host);
    assert!(
        eventually(WATCH_LIMIT, || ufw_table(host)
            .matches("virtnet:default")
            .count()
            == 2),
        "accepts not re-applied:\n{}\n{}",
        ufw_table(host),
        co.daemon.log()
    );
    assert!(
        guest.http_get(UPSTREAM_URL).is_ok(),
        "NAT after the firewall's reload"
    );
    let script = udhcpc_script(co.lab.tmp_dir());
    assert!(
        guest.try_udhcpc(&script, 3),
        "DHCP after the firewall's reload"
    );

    co.daemon.cli_ok(&["net-destroy", "default"]);
    let table = ufw_table(host);
    assert!(!table.contains("virtnet:"), "{table}");
    assert!(table.contains("tcp dport 22 accept"), "{table}");
}

/// (c) Integration off (the default): `net-start` is refused with the table, chain and policy
/// named, and the host is left exactly as it was — Docker's case.
#[test]
fn without_integration_docker_forward_drop_refuses_the_start_and_changes_nothing() {
    let co = co_lab("co-off-docker", false);
    let host = co.lab.host();
    docker_like(host);
    co.daemon.define(NETWORK);
    let before = ruleset(host);
    let links = host.link_names();
    let out = co.daemon.cli(&["net-start", "default"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "error: Failed to start network default\nerror: network 'default' would not work: \
         chain FORWARD (hook forward) of table ip filter has policy drop: guests' forwarded \
         traffic on bridge virbr0 accepted by virtnet are still dropped there; chain FORWARD \
         (hook forward) of table ip filter has policy drop: replies forwarded to guests on \
         bridge virbr0 accepted by virtnet are still dropped there. An accept in virtnet's \
         table does not override another table's drop; start virtnetd with \
         --firewall-integration to let virtnet add accepts for bridge virbr0 there, or accept \
         that bridge's traffic in that chain yourself\n"
    );
    assert_eq!(ruleset(host), before);
    assert_eq!(host.link_names(), links);
    let report = doctor(&co.daemon);
    assert!(!report.firewall_integration);
    assert!(report.actions.is_empty());
}

/// (c) Integration off, a ufw-style input drop: refused, naming the input chain; once the
/// admin accepts the bridge there, the network starts and its guest works.
#[test]
fn without_integration_an_input_drop_refuses_until_the_admin_accepts_the_bridge() {
    let co = co_lab("co-off-ufw", false);
    let host = co.lab.host();
    ufw_like(host);
    let before = ruleset(host);
    let out = start_default(&co.daemon);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "chain input (hook input) of table inet ufw has policy drop: guests' DHCP and DNS \
             requests to the host on bridge virbr0 accepted by virtnet are still dropped there"
        ) && stderr.contains(
            "chain forward (hook forward) of table inet ufw has policy drop: guests' forwarded \
             traffic on bridge virbr0"
        ),
        "{stderr}"
    );
    assert_eq!(ruleset(host), before);
    assert!(!host.link_names().contains(&"virbr0".to_string()));

    host.run_ok(["nft", "insert rule inet ufw input iifname virbr0 accept"]);
    host.run_ok(["nft", "insert rule inet ufw forward iifname virbr0 accept"]);
    co.daemon.cli_ok(&["net-start", "default"]);
    guest_works(&co.lab);
    // virtnet added nothing of its own there.
    assert!(!ufw_table(host).contains("virtnet:"));
}

/// firewalld, for real when it is installed (Debian's `firewalld` package): it runs in the
/// lab's host namespace on a private system bus (its own `dbus-daemon`, never the machine's),
/// with its configuration in a scratch directory holding virtnet's zone. virtnetd puts the
/// bridge into the `virtnet` zone (firewalld's default zone would reject the guests' DHCP),
/// the guest works, a `firewall-cmd --reload` (which drops runtime bindings) is followed by
/// the binding coming back, and `net-destroy` takes the bridge out of the zone.
#[test]
fn firewalld_zone_binds_the_bridge_and_survives_a_reload() {
    assert!(
        std::path::Path::new("/usr/sbin/firewalld").exists(),
        "firewalld is not installed: scripts/setup.sh installs it (without starting it)"
    );
    let lab = Lab::new("co-fwd");
    let dir = lab.tmp_dir().to_path_buf();
    let bus = dir.join("bus");
    let conf = std::fs::read_to_string("/usr/share/dbus-1/system.conf").expect("dbus config");
    let conf = conf.replace("<standard_system_servicedirs/>", "").replace(
        "<includedir>system.d</includedir>",
        "<includedir>/usr/share/dbus-1/system.d</includedir>",
    );
    let conf = regex_free_replace(
        &conf,
        "<listen>",
        "</listen>",
        &format!("unix:path={}", bus.display()),
    );
    let conf = regex_free_replace(&conf, "<user>", "</user>", "root");
    let conf = regex_free_replace(
        &conf,
        "<pidfile>",
        "</pidfile>",
        &dir.join("dbus.pid").to_string_lossy(),
    );
    std::fs::write(dir.join("system.conf"), conf).expect("write dbus config");
    let etc = dir.join("firewalld");
    std::fs::create_dir_all(etc.join("zones")).expect("firewalld config dir");
    std::fs::copy("/etc/firewalld/firewalld.conf", etc.join("firewalld.conf"))
        .expect("copy firewalld.conf");
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib/firewalld/virtnet.xml");
    std::fs::copy(&zone, etc.join("zones/virtnet.xml")).expect("install the zone");
    let address = format!("unix:path={}", bus.display());
    // virtnetd and firewall-cmd find the private bus here (this test's daemons only: other
    // tests' namespaces have no firewalld table, so their daemons never call firewall-cmd).
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &address);
    let host = lab.host();
    let _dbus = host.spawn([
        "dbus-daemon",
        "--nofork",
        &format!("--config-file={}", dir.join("system.conf").display()),
    ]);
    assert!(
        eventually(WATCH_LIMIT, || bus.exists()),
        "private bus never appeared"
    );
    let _firewalld = host.spawn([
        "firewalld",
        "--nofork",
        "--nopid",
        "--system-config",
        &etc.to_string_lossy(),
    ]);
    let cmd = |args: &[&str]| -> String {
        let mut argv = vec!["firewall-cmd"];
        argv.extend_from_slice(args);
        String::from_utf8_lossy(&host.exec(argv).stdout)
            .trim()
            .to_string()
    };
    assert!(
        eventually(Duration::from_secs(60), || cmd(&["--state"]) == "running"),
        "firewalld did not start"
    );
    assert!(cmd(&["--get-zones"])
        .split_whitespace()
        .any(|z| z == "virtnet"));

    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {UPSTREAM_ADDR}\n")).expect("write resolv.conf");
    let _dns = dns_server(
        lab.upstream(),
        UPSTREAM_ADDR,
        &["--address=/example.org/203.0.113.80"],
    );
    let daemon = Daemon::start_in_with(host, &["--resolv-conf", &resolv.to_string_lossy()]);
    let out = start_default(&daemon);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cmd(&["--get-zone-of-interface=virbr0"]), "virtnet");
    let guest = guest_works(&lab);
    let report = doctor(&daemon);
    assert_eq!(report.firewalld.state, "running");
    assert_eq!(report.firewalld.zone.as_deref(), Some("virtnet"));
    assert_eq!(report.firewalld.bridges, vec!["virbr0".to_string()]);

    cmd(&["--reload"]);
    assert!(
        eventually(Duration::from_secs(30), || cmd(&[
            "--get-zone-of-interface=virbr0"
        ]) == "virtnet"),
        "the bridge is not back in the zone after a reload:\n{}",
        daemon.log()
    );
    assert!(
        guest.http_get(UPSTREAM_URL).is_ok(),
        "NAT after firewalld's reload"
    );
    let actions = doctor(&daemon).actions;
    assert!(
        actions
            .iter()
            .any(|a| a.action == "re-applied" && a.place == "firewalld zone virtnet"),
        "{actions:?}"
    );
    // (Last: the lease script flushes the address, and the default route with it.)
    let script = udhcpc_script(lab.tmp_dir());
    assert!(
        guest.try_udhcpc(&script, 3),
        "DHCP after firewalld's reload"
    );

    daemon.cli_ok(&["net-destroy", "default"]);
    assert_ne!(cmd(&["--get-zone-of-interface=virbr0"]), "virtnet");
}

/// Replaces the text between the first `open` and the following `close` with `with`.
fn regex_free_replace(text: &str, open: &str, close: &str, with: &str) -> String {
    let Some(start) = text.find(open) else {
        return text.to_string();
    };
    let from = start + open.len();
    let Some(len) = text[from..].find(close) else {
        return text.to_string();
    };
    format!("{}{with}{}", &text[..from], &text[from + len..])
}

/// A crash of the daemon leaves its accepts in Docker's and ufw's tables: the restarted daemon
/// keeps them (no second copy) and its `net-destroy` still removes them, though iptables'
/// comments are invisible in nft's listing and the new daemon never placed them itself.
#[test]
fn accepts_left_by_a_crashed_daemon_are_kept_once_and_removed_at_stop() {
    let mut co = co_lab("co-crash", true);
    let host = co.lab.host().clone();
    docker_like(&host);
    ufw_like(&host);
    start_default_ok(&co.daemon);
    assert_eq!(docker_user(&host).matches("virtnet:default").count(), 2);
    assert_eq!(ufw_table(&host).matches("virtnet:default").count(), 2);

    co.daemon.kill9();
    co.daemon.restart();
    assert_eq!(docker_user(&host).matches("virtnet:default").count(), 2);
    assert_eq!(ufw_table(&host).matches("virtnet:default").count(), 2);
    guest_works(&co.lab);

    co.daemon.cli_ok(&["net-destroy", "default"]);
    assert!(
        !docker_user(&host).contains("virtnet:"),
        "{}",
        docker_user(&host)
    );
    assert!(
        !ufw_table(&host).contains("virtnet:"),
        "{}",
        ufw_table(&host)
    );
}

/// Integration off and a host firewall loaded after the network started: nothing is changed
/// in its table, and the daemon's log names it at once (from the ruleset watcher).
#[test]
fn without_integration_a_firewall_loaded_later_is_logged() {
    let co = co_lab("co-later", false);
    start_default_ok(&co.daemon);
    ufw_like(co.lab.host());
    assert!(
        eventually(WATCH_LIMIT, || co.daemon.log().contains(
            "another table now drops guest traffic: chain input (hook input) of table inet ufw \
             has policy drop"
        )),
        "{}",
        co.daemon.log()
    );
    assert!(!ufw_table(co.lab.host()).contains("virtnet:"));
    let report = doctor(&co.daemon);
    let input = report
        .foreign_chains
        .iter()
        .find(|c| c.table == "inet ufw" && c.chain == "input")
        .expect("ufw's input chain listed");
    assert_eq!(input.blocks.len(), 1, "{input:?}");
    assert!(input.accepts.is_empty());
}

/// A TCP server on port 80 in the guest (python3's http.server), up once it accepts.
fn web_server(guest: &Guest) -> NsChild {
    let child = guest
        .ns()
        .spawn(["python3", "-m", "http.server", "80", "--bind", "0.0.0.0"]);
    assert!(
        eventually(Duration::from_secs(10), || guest.ns().tcp_connect_timeout(
            "127.0.0.1",
            80,
            Duration::from_millis(200)
        )),
        "the guest's web server did not start"
    );
    child
}

/// Whether a new TCP connection from upstream to the host's port 8080 gets through.
fn forwarded_from_outside(lab: &Lab) -> bool {
    lab.upstream().tcp_connect_timeout(
        virtnet_testkit::HOST_UPLINK_ADDR,
        8080,
        Duration::from_secs(2),
    )
}

/// ufw's forward chain drops everything but replies: a port forward's new connections into a
/// guest are dropped there although the guest's own traffic gets through. With integration
/// the first forward lets them in (an `oifname` accept in ufw's forward chain); the forward
/// then works from outside.
#[test]
fn a_port_forward_is_let_through_a_forward_drop_that_passes_only_replies() {
    let co = co_lab("co-ufw-fwd", true);
    let host = co.lab.host();
    ufw_like(host);
    start_default_ok(&co.daemon);
    assert!(!ufw_table(host).contains("oifname"), "{}", ufw_table(host));
    let guest = guest_works(&co.lab);
    let _web = web_server(&guest);
    let addr = guest.ipv4_addrs()[0].to_string();
    co.daemon.cli_ok(&[
        "forward-add",
        "default",
        "--proto",
        "tcp",
        "--port",
        "8080",
        "--to",
        &format!("{addr}:80"),
    ]);
    let table = ufw_table(host);
    assert!(
        table.contains("oifname \"virbr0\" accept comment \"virtnet:default\""),
        "{table}"
    );
    assert!(
        forwarded_from_outside(&co.lab),
        "the forward is dropped in ufw's forward chain"
    );
    co.daemon.cli_ok(&["net-destroy", "default"]);
    assert!(!ufw_table(host).contains("virtnet:"), "{}", ufw_table(host));
}

/// Integration off: a forward chain that accepts the bridge's own traffic and replies but
/// drops the rest refuses a port forward, naming the table and chain, and stores nothing.
#[test]
fn without_integration_a_forward_into_guests_that_would_be_dropped_is_refused() {
    let co = co_lab("co-off-fwd", false);
    let host = co.lab.host();
    let path = co.lab.tmp_dir().join("fw.nft");
    std::fs::write(
        &path,
        "table inet hostfw {\n  chain forward { type filter hook forward priority filter; policy drop;\n    \
         ct state established,related accept\n    iifname \"virbr0\" accept\n  }\n}\n",
    )
    .expect("write ruleset");
    host.run_ok(["nft", "-f", &path.to_string_lossy()]);
    start_default_ok(&co.daemon);
    let out = co.daemon.cli(&[
        "forward-add",
        "default",
        "--proto",
        "tcp",
        "--port",
        "8080",
        "--to",
        "192.168.122.50:80",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "forward-add should be refused");
    assert!(
        err.contains("table inet hostfw") && err.contains("port forwards"),
        "{err}"
    );
    let listed = co.daemon.cli_ok(&["forward-list", "default"]);
    assert!(!listed.contains("8080"), "{listed}");
}

/// strace attached to a running process (all its threads), ended by its PID when dropped.
struct Strace {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Strace {
    /// Traces `syscalls` of process `pid` into `out`; returns once strace has attached.
    fn attach(pid: u32, syscalls: &str, out: std::path::PathBuf) -> Strace {
        use std::io::BufRead;
        let mut child = std::process::Command::new("strace")
            .args(["-f", "-e", &format!("trace={syscalls}"), "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run strace (apt-get install strace)");
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("strace's stderr"));
        let mut first = String::new();
        let _ = stderr.read_line(&mut first);
        // Keep draining strace's stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let trace = Strace { child, out };
        assert!(first.contains("attached"), "strace did not attach: {first}");
        trace
    }

    /// Ends strace (it detaches on SIGINT) and returns what it wrote.
    fn finish(mut self) -> String {
        self.interrupt();
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn interrupt(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
        }
    }
}

/// The kernel answers the close of any nfnetlink socket by taking nftables' commit mutex and
/// waiting there for the clean-up of deleted elements (an RCU grace period): every nftables
/// transaction on the host, and every device rename or creation, waits meanwhile. A
/// `net-start` and a `net-destroy` used to open and close one each (the coexistence layer's
/// look for firewalld's table), which stalled the attaches and detaches running beside
/// them by 10–25 ms. They, and an attach and a detach, must open none.
#[test]
fn starts_stops_attaches_and_detaches_open_no_nfnetlink_socket() {
    let lab = Lab::new("co-nosock");
    let daemon = Daemon::start_in(lab.host());
    // The first start builds virtnet's table (with a libnftables context of its own).
    start_default_ok(&daemon);
    daemon.cli_ok(&["net-destroy", "default"]);
    let pid = daemon.pid().expect("the daemon's PID");
    let trace = Strace::attach(pid, "socket", lab.tmp_dir().join("strace.out"));
    for _ in 0..5 {
        daemon.cli_ok(&["net-start", "default"]);
        // A guarded port's anti-spoofing elements come and go with it.
        let mac = "52:54:00:00:aa:01";
        daemon.cli_ok(&[
            "attach-interface",
            "vm1",
            "network",
            "default",
            "--mac",
            mac,
        ]);
        daemon.cli_ok(&["detach-interface", "vm1", "network", "--mac", mac]);
        daemon.cli_ok(&["net-destroy", "default"]);
    }
    let calls = trace.finish();
    let opened: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("NETLINK_NETFILTER"))
        .collect();
    assert!(
        calls.contains("socket("),
        "strace saw no socket call at all (the trace is not working):\n{calls}"
    );
    assert!(opened.is_empty(), "nfnetlink sockets opened: {opened:#?}");
}
