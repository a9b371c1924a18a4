//! The server against real clients (busybox udhcpc, ISC dhclient), as root, in network
//! namespaces the tests make and remove (virtnet-testkit). Nothing touches the root namespace:
//! bridges, veths and addresses are made with `ip -n <ns>`, the server runs on a thread that
//! entered the host namespace.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtnet_dhcp::{
    DhcpConfig, DhcpServer, Lease, LeaseChange, LeaseSink, Limits, Range, StaticHost,
};
use virtnet_testkit::Netns;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (passes with a note) when the test cannot run here; CI runs as root.
macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root for network namespaces");
            return;
        }
    };
}

#[derive(Default)]
struct Sink(Mutex<Vec<LeaseChange>>);

impl LeaseSink for Sink {
    fn record(&self, _network: &str, change: &LeaseChange) -> std::io::Result<()> {
        self.0.lock().unwrap().push(change.clone());
        Ok(())
    }
}

impl Sink {
    fn has(&self, f: impl Fn(&LeaseChange) -> bool) -> bool {
        self.0.lock().unwrap().iter().any(f)
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(net: &str, third: u8) -> DhcpConfig {
    let ip = |last| Ipv4Addr::new(10, 77, third, last);
    DhcpConfig {
        network: net.into(),
        server: ip(1),
        prefix: 24,
        ranges: vec![Range {
            start: ip(100),
            end: ip(199),
            lease_secs: Some(600),
        }],
        hosts: vec![StaticHost {
            mac: Some([0x52, 0x54, 0, 0xaa, 0xbb, third]),
            client_id: None,
            ip: ip(42),
            name: Some("fixed".into()),
            lease_secs: Some(1200),
        }],
        router: Some(ip(1)),
        dns: Some(ip(1)),
        domain: Some("test".into()),
        mtu: None,
        boot: None,
        limits: Limits::default(),
    }
}

/// A bridge `name` with `10.77.<third>.1/24` in `host`.
fn bridge(host: &Netns, name: &str, third: u8) {
    host.ip_ok([
        "link",
        "add",
        name,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ]);
    host.ip_ok(["addr", "add", &format!("10.77.{third}.1/24"), "dev", name]);
    host.ip_ok(["link", "set", name, "up"]);
}

/// A guest namespace whose `eth0` (MAC `mac`) is a veth to `port` on `br` in `host`.
fn guest(host: &Netns, br: &str, port: &str, mac: &str) -> Netns {
    let g = Netns::new("dg");
    g.ip_ok([
        "link",
        "add",
        "eth0",
        "address",
        mac,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        host.name(),
    ]);
    host.ip_ok(["link", "set", port, "master", br, "up"]);
    g.ip_ok(["link", "set", "eth0", "up"]);
    g
}

fn guest_addrs(g: &Netns) -> Vec<Ipv4Addr> {
    let out = g.ip_ok(["-4", "-o", "addr", "show", "dev", "eth0"]);
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// udhcpc script: configure the address (so renew and release are unicast from it), log events.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
echo "$1 ip=$ip mask=$mask router=$router dns=$dns domain=$domain hostname=$hostname lease=$lease" >> "$LOG"
case "$1" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
"#;

/// dhclient script: configure the address, log events.
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
echo "$reason $new_ip_address $new_subnet_mask $new_host_name" >> "$LOG"
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn udhcpc_lease_renew_release() {
    require_root!();
    let host = Netns::new("dhcph");
    bridge(&host, "br0", 1);
    let g = guest(&host, "br0", "vp0", "52:54:00:12:34:01");
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("udhcpc.sh");
    let log = tmp.path().join("udhcpc.log");
    write_script(&script, UDHCPC_SCRIPT);
    let sink = Arc::new(Sink::default());
    let sink2 = sink.clone();
    host.in_ns(|| {
        let rt = runtime();
        let _enter = rt.enter();
        let server =
            DhcpServer::start(config("n1", 1), "br0", vec![], sink2.clone()).expect("start");
        let client = g.spawn_with(
            [
                "busybox",
                "udhcpc",
                "-f",
                "-R",
                "-i",
                "eth0",
                "-s",
                script.to_str().unwrap(),
                "-x",
                "hostname:guest1",
                "-t",
                "5",
                "-T",
                "1",
            ],
            |cmd| {
                cmd.env("LOG", &log)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            },
        );
        wait_for("udhcpc lease", Duration::from_secs(20), || {
            !guest_addrs(&g).is_empty() && server.leases().len() == 1
        });
        let addr = guest_addrs(&g)[0];
        assert!(
            (Ipv4Addr::new(10, 77, 1, 100)..=Ipv4Addr::new(10, 77, 1, 199)).contains(&addr),
            "{addr}"
        );
        let lease: Lease = server.leases()[0].clone();
        assert_eq!(lease.ip, addr);
        assert_eq!(lease.mac, [0x52, 0x54, 0, 0x12, 0x34, 1]);
        assert_eq!(lease.hostname.as_deref(), Some("guest1"));
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("router=10.77.1.1"), "{logged}");
        assert!(logged.contains("dns=10.77.1.1"), "{logged}");
        assert!(logged.contains("domain=test"), "{logged}");
        assert!(logged.contains("lease=600"), "{logged}");
        // Renew (SIGUSR1): a unicast REQUEST from the leased address keeps it.
        assert!(client.signal(libc::SIGUSR1));
        wait_for("renewal", Duration::from_secs(10), || {
            sink2.has(|c| matches!(c, LeaseChange::Renewed(l) if l.ip == addr))
        });
        assert_eq!(guest_addrs(&g), vec![addr]);
        // Exit with -R: RELEASE frees it.
        client.terminate(Duration::from_secs(5));
        wait_for("release", Duration::from_secs(10), || {
            server.leases().is_empty()
        });
        assert!(sink2.has(|c| matches!(c, LeaseChange::Released(l) if l.ip == addr)));
        let s = server.stats();
        assert!(s.offers >= 1 && s.acks >= 2 && s.releases == 1, "{s:?}");
        assert_eq!(s.malformed, 0);
        server.stop();
    });
    assert!(sink.has(|c| matches!(c, LeaseChange::Granted(_))));
}

#[test]
fn dhclient_static_host_and_reboot() {
    require_root!();
    if !Path::new("/usr/sbin/dhclient").exists() && !Path::new("/sbin/dhclient").exists() {
        eprintln!("skipped: dhclient not installed");
        return;
    }
    let host = Netns::new("dhcph");
    bridge(&host, "br0", 2);
    // The static host's MAC.
    let g = guest(&host, "br0", "vp0", "52:54:00:aa:bb:02");
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("dhclient.sh");
    let log = tmp.path().join("dhclient.log");
    let conf = tmp.path().join("dhclient.conf");
    let leases = tmp.path().join("dhclient.leases");
    let pid = tmp.path().join("dhclient.pid");
    // dhclient runs its script with a clean environment: the log path goes into the text.
    write_script(
        &script,
        &DHCLIENT_SCRIPT.replace("$LOG", log.to_str().unwrap()),
    );
    std::fs::write(
        &conf,
        "request subnet-mask, broadcast-address, routers, domain-name-servers, host-name;\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "timeout",
            "40",
            "dhclient",
            "-1",
            "-v",
            "-sf",
            script.to_str().unwrap(),
            "-cf",
            conf.to_str().unwrap(),
            "-lf",
            leases.to_str().unwrap(),
            "-pf",
            pid.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push("eth0");
        let out = g.command(&args).output().expect("run dhclient");
        assert!(
            out.status.success(),
            "dhclient {extra:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let sink = Arc::new(Sink::default());
    let sink2 = sink.clone();
    host.in_ns(|| {
        let rt = runtime();
        let _enter = rt.enter();
        let server =
            DhcpServer::start(config("n2", 2), "br0", vec![], sink2.clone()).expect("start");
        let fixed = Ipv4Addr::new(10, 77, 2, 42);
        run(&[]);
        assert_eq!(guest_addrs(&g), vec![fixed]);
        let l = server.leases();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].ip, fixed);
        assert_eq!(l[0].hostname.as_deref(), Some("fixed"));
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains("BOUND 10.77.2.42 255.255.255.0 fixed"),
            "{logged}"
        );
        // Run again with the lease file: INIT-REBOOT keeps the address.
        g.ip_ok(["addr", "flush", "dev", "eth0"]);
        run(&[]);
        assert_eq!(guest_addrs(&g), vec![fixed]);
        assert!(sink2.has(|c| matches!(c, LeaseChange::Renewed(l) if l.ip == fixed)));
        // Release.
        run(&["-r"]);
        wait_for("release", Duration::from_secs(10), || {
            server.leases().is_empty()
        });
        server.stop();
    });
}

#[test]
fn two_networks_bind_port_67_on_their_own_bridges() {
    require_root!();
    let host = Netns::new("dhcph");
    bridge(&host, "br1", 3);
    bridge(&host, "br2", 4);
    let g1 = guest(&host, "br1", "vp1", "52:54:00:12:34:03");
    let g2 = guest(&host, "br2", "vp2", "52:54:00:12:34:04");
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("udhcpc.sh");
    write_script(&script, UDHCPC_SCRIPT);
    let log = tmp.path().join("log");
    let udhcpc = |g: &Netns| {
        let out = g
            .command([
                "busybox",
                "udhcpc",
                "-f",
                "-q",
                "-n",
                "-i",
                "eth0",
                "-s",
                script.to_str().unwrap(),
                "-t",
                "5",
                "-T",
                "1",
            ])
            .env("LOG", &log)
            .output()
            .expect("udhcpc");
        assert!(
            out.status.success(),
            "udhcpc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guest_addrs(g)
    };
    let sink: Arc<dyn LeaseSink> = Arc::new(Sink::default());
    host.in_ns(|| {
        let rt = runtime();
        let _enter = rt.enter();
        let s1 =
            DhcpServer::start(config("n3", 3), "br1", vec![], sink.clone()).expect("start br1");
        let s2 =
            DhcpServer::start(config("n4", 4), "br2", vec![], sink.clone()).expect("start br2");
        let a1 = udhcpc(&g1);
        let a2 = udhcpc(&g2);
        assert_eq!(a1.len(), 1);
        assert_eq!(a2.len(), 1);
        assert_eq!(a1[0].octets()[2], 3, "{a1:?}");
        assert_eq!(a2[0].octets()[2], 4, "{a2:?}");
        assert_eq!(s1.leases().len(), 1);
        assert_eq!(s2.leases().len(), 1);
        // Stop closes the socket at once: the port can be bound again on the same bridge.
        s1.stop();
        let s1 =
            DhcpServer::start(config("n3", 3), "br1", vec![], sink.clone()).expect("restart br1");
        drop(s1);
        drop(s2);
        // A missing bridge is a clear error.
        let err = DhcpServer::start(config("n5", 5), "nosuchbr", vec![], sink.clone()).unwrap_err();
        assert!(err.to_string().contains("nosuchbr"), "{err}");
    });
}
