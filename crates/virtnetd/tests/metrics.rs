//! Prometheus metrics (`GET /metrics`), checked against real traffic and real consumers.
//!
//! A guest namespace sits on a virtnet port (a tap virtnetd made, joined to the namespace by
//! the relay that stands for QEMU, `tests/antispoof/guest.py`), leases its address with busybox
//! `udhcpc`, asks the network's DNS server with `dig` (a local name and a forwarded one, which
//! a dnsmasq in the upstream namespace answers), connects to the upstream through the NAT,
//! knocks on a gateway port the firewall rejects and sends a frame from an address it does not
//! hold. Then the scrape must show each of those events; the text is checked by Prometheus's
//! own `promtool check metrics`, and a real Prometheus server in the host namespace scrapes
//! `--metrics-listen` and is asked for `virtnet_network_active`.
use std::collections::BTreeMap;
use std::process::Stdio;

use virtnet_testkit::dhcp::{dns_server, udhcpc_script};
use virtnet_testkit::{Daemon, Lab, Netns, NsChild, UPSTREAM_ADDR};

#[path = "antispoof/tap_guest.rs"]
mod tap_guest;

#[path = "metrics/rtnl_held.rs"]
mod rtnl_held;

use tap_guest::{tool, wait_for, TapGuest};

const GATEWAY: &str = "192.168.160.1";
const MAC: &str = "52:54:00:00:16:01";
const LISTEN: &str = "127.0.0.1:9176";

fn network() -> String {
    format!(
        "<network><name>metnet</name><forward mode='nat'/><bridge name='vnmt0' stp='off'/>\
         <domain name='metrics.test' localOnly='yes'/>\
         <ip address='{GATEWAY}' netmask='255.255.255.0'><dhcp>\
         <range start='192.168.160.100' end='192.168.160.199'/></dhcp></ip></network>"
    )
}

/// The guest's address after a lease with busybox udhcpc.
fn lease(guest: &TapGuest, dir: &std::path::Path) -> String {
    let script = udhcpc_script(dir);
    guest.ns.run_ok([
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-f",
        "-q",
        "-n",
        "-t",
        "5",
        "-T",
        "1",
        "-x",
        "hostname:vm1",
        "-s",
        &script.to_string_lossy(),
    ]);
    let _ = guest.ns.ip(["route", "replace", "default", "via", GATEWAY]);
    let out = guest.ns.ip_ok(["-4", "-o", "addr", "show", "dev", "eth0"]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no address after the lease: {out}"))
}

fn dig(ns: &Netns, name: &str) -> String {
    let out = ns.exec([
        "dig",
        &format!("@{GATEWAY}"),
        "+short",
        "+time=2",
        "+tries=1",
        name,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `curl` in the host namespace; returns (status, content type, body).
fn curl(ns: &Netns, args: &[&str]) -> (u16, String, String) {
    let mut all = vec![
        "curl",
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{content_type}",
        "--max-time",
        "10",
    ];
    all.extend(args);
    let out = ns.exec(all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, ctype) = trailer.split_once(' ').unwrap_or((trailer, ""));
    (
        code.parse().unwrap_or(0),
        ctype.to_string(),
        body.to_string(),
    )
}

/// `GET /metrics` on the API's read-only socket.
fn scrape(daemon: &Daemon) -> String {
    let ro = daemon.run_dir().join(virtnet_api::RO_SOCKET_NAME);
    let (code, ctype, body) = curl(
        daemon.ns(),
        &[
            "--unix-socket",
            &ro.to_string_lossy(),
            "http://localhost/metrics",
        ],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "content type {ctype}"
    );
    body
}

/// The samples of an exposition: `name{labels}` → value, labels as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one series of `name` whose labels contain every `needles` text.
fn value(samples: &BTreeMap<String, f64>, name: &str, needles: &[&str]) -> f64 {
    let found: Vec<(&String, &f64)> = samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && needles.iter().all(|n| k.contains(n)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} {needles:?}: expected one series, found {found:?}"
    );
    *found[0].1
}

/// `promtool check metrics` (Prometheus's own parser and linter) on the exposition.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, scripts/setup.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server in `ns` scraping `--metrics-listen` every second; returns it and its
/// HTTP address.
fn prometheus(ns: &Netns, dir: &std::path::Path) -> (NsChild, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: virtnet\n    \
             static_configs:\n      - targets: ['{LISTEN}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let web = "127.0.0.1:9177".to_string();
    let child = ns.spawn_with(
        [
            "prometheus".to_string(),
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={web}"),
        ],
        |c| {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        },
    );
    (child, web)
}

#[test]
fn a_scrape_shows_a_real_lease_dns_queries_port_traffic_nat_and_drops() {
    let lab = Lab::new("metrics");
    let resolv = lab.tmp_dir().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {UPSTREAM_ADDR}\n")).expect("resolv.conf");
    let _upstream_dns = dns_server(
        lab.upstream(),
        UPSTREAM_ADDR,
        &["--address=/example.org/203.0.113.80"],
    );
    let daemon = Daemon::start_in_with(
        lab.host(),
        &[
            "--resolv-conf",
            &resolv.to_string_lossy(),
            "--metrics-listen",
            LISTEN,
        ],
    );
    let name = daemon.define(&network());
    daemon.cli_ok(&["net-start", &name]);
    let guest = TapGuest::attach(&lab, &daemon, "metnet", "vm1", MAC, &[]);
    let dir = guest.dir.clone();
    let addr = lease(&guest, &dir);

    // A local name and a forwarded one.
    assert_eq!(dig(&guest.ns, "vm1.metrics.test"), addr);
    assert_eq!(dig(&guest.ns, "www.example.org"), "203.0.113.80");
    // Through the NAT (a tracked, masqueraded connection).
    assert!(
        guest.ns.tcp_connect(UPSTREAM_ADDR, 80),
        "the guest reaches the upstream's HTTP server through the NAT"
    );
    // A port of the gateway no guest may reach: rejected by guest_to_host.
    let knocked = guest.ns.exec(["busybox", "nc", "-w", "2", GATEWAY, "22"]);
    assert!(
        !knocked.status.success(),
        "port 22 of the gateway is closed"
    );

    // A frame from an address the guest does not hold: dropped by the port's anti-spoofing.
    let tool = tool(&lab);
    guest.ns.run_ok([
        "python3",
        &tool.to_string_lossy(),
        "udp",
        "eth0",
        MAC,
        "192.168.160.77",
        "ff:ff:ff:ff:ff:ff",
        GATEWAY,
        "4000",
        "4000",
        "spoof",
    ]);

    // The NATed connections are counted in the background (conntrack's dump is too slow for
    // every scrape): the first scrape starts the count, a later one shows it. The spoofed
    // frame is counted once the relay has handed it to the tap.
    let spoofed = format!("virtnet_port_spoof_drops_total{{port=\"{}\"", guest.port);
    let mut text = String::new();
    wait_for(
        "the NATed connections and the spoofed frame to be counted",
        || {
            text = scrape(&daemon);
            text.contains("virtnet_nat_connections{network=\"metnet\"")
                && text
                    .lines()
                    .any(|l| l.starts_with(&spoofed) && !l.ends_with(" 0"))
        },
    );
    let s = samples(&text);
    let net = ["network=\"metnet\"", "bridge=\"vnmt0\"", "mode=\"nat\""];
    assert_eq!(value(&s, "virtnet_network_active", &net), 1.0);
    assert_eq!(value(&s, "virtnet_network_ports", &net), 1.0);
    let range = "range=\"192.168.160.100-192.168.160.199\"";
    assert_eq!(value(&s, "virtnet_dhcp_leases", &[net[0], range]), 1.0);
    assert_eq!(value(&s, "virtnet_dhcp_pool_size", &[net[0], range]), 100.0);
    let msgs = "virtnet_dhcp_messages_total";
    assert!(value(&s, msgs, &[net[0], "type=\"discover\"", "received"]) >= 1.0);
    assert!(value(&s, msgs, &[net[0], "type=\"request\"", "received"]) >= 1.0);
    assert!(value(&s, msgs, &[net[0], "type=\"ack\"", "sent"]) >= 1.0);
    let queries = "virtnet_dns_queries_total";
    assert!(value(&s, queries, &[net[0], "type=\"A\"", "rcode=\"NOERROR\""]) >= 2.0);
    assert!(value(&s, "virtnet_dns_forwarded_total", &[net[0]]) >= 1.0);
    assert!(value(&s, "virtnet_dns_forward_duration_seconds_count", &[net[0]]) >= 1.0);
    assert!(value(&s, "virtnet_nat_connections", &[net[0]]) >= 1.0);
    let port = [
        format!("port=\"{}\"", guest.port),
        "domain=\"vm1\"".to_string(),
        format!("mac=\"{MAC}\""),
        format!("ip=\"{addr}\""),
    ];
    let port: Vec<&str> = port.iter().map(String::as_str).collect();
    assert!(value(&s, "virtnet_port_receive_bytes_total", &port) > 0.0);
    assert!(value(&s, "virtnet_port_transmit_bytes_total", &port) > 0.0);
    assert!(value(&s, "virtnet_port_receive_packets_total", &port) > 0.0);
    assert!(value(&s, "virtnet_port_spoof_drops_total", &port) >= 1.0);
    assert!(
        value(
            &s,
            "virtnet_firewall_drops_total",
            &["reason=\"guest_to_host\""]
        ) >= 1.0,
        "the knock on port 22 was counted"
    );
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(value(&s, "virtnet_build_info", &[&version]), 1.0);
    let start = [
        "method=\"POST\"",
        "route=\"/v1/networks/:id/start\"",
        "le=\"+Inf\"",
    ];
    assert!(value(&s, "virtnet_api_request_duration_seconds_bucket", &start) >= 1.0);
    assert!(value(&s, "virtnet_store_commit_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(
        value(&s, "virtnet_reconcile_duration_seconds_count", &[]),
        1.0
    );
    promtool_accepts(&text);

    // A real Prometheus scrapes the TCP listener and answers a query about the network.
    let pdir = lab.tmp_dir().join("prometheus");
    std::fs::create_dir_all(&pdir).expect("prometheus dir");
    let (_prometheus, web) = prometheus(lab.host(), &pdir);
    let url = format!("http://{web}/api/v1/query?query=virtnet_network_active");
    let mut answer = String::new();
    wait_for("Prometheus to have scraped virtnet_network_active", || {
        answer = curl(lab.host(), &[&url]).2;
        answer.contains("\"network\":\"metnet\"")
    });
    let json: serde_json::Value = serde_json::from_str(&answer).expect("Prometheus answers JSON");
    assert_eq!(json["status"], "success", "{answer}");
    let result = &json["data"]["result"][0];
    assert_eq!(result["metric"]["bridge"], "vnmt0", "{answer}");
    assert_eq!(result["metric"]["mode"], "nat", "{answer}");
    assert_eq!(result["value"][1], "1", "{answer}");
    let up = curl(
        lab.host(),
        &[&format!("http://{web}/api/v1/query?query=up")],
    )
    .2;
    assert!(up.contains("\"value\":[") && up.contains(",\"1\"]"), "{up}");
}

#[test]
fn the_metrics_listener_serves_get_metrics_and_nothing_else() {
    let lab = Lab::new("metlisten");
    let daemon = Daemon::start_in_with(lab.host(), &["--metrics-listen", LISTEN]);
    let url = |path: &str| format!("http://{LISTEN}{path}");
    let (code, ctype, body) = curl(lab.host(), &[&url("/metrics")]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE virtnet_build_info gauge"), "{body}");
    promtool_accepts(&body);
    // The API is not there: not its paths, not its writes.
    for path in ["/", "/v1/networks", "/metrics/x", "/v1/doctor"] {
        assert_eq!(curl(lab.host(), &[&url(path)]).0, 404, "GET {path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        assert_eq!(
            curl(lab.host(), &["-X", method, &url("/metrics")]).0,
            405,
            "{method} /metrics"
        );
        assert_eq!(
            curl(lab.host(), &["-X", method, &url("/v1/networks")]).0,
            404,
            "{method} /v1/networks"
        );
    }
    let xml = "<network><name>x</name><bridge name='vnx0'/></network>";
    let (code, _, _) = curl(
        lab.host(),
        &["-X", "POST", "--data", xml, &url("/v1/networks")],
    );
    assert_eq!(code, 404);
    assert_eq!(daemon.cli_ok(&["net-list", "--all", "--name"]).trim(), "");
}

/// `GET /metrics` on the read-only socket, without curl (no process to start, no `ip netns
/// exec`): the answer's body.
fn get_metrics(socket: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Issue 16: a scrape read the ports' counters with rtnetlink, which waits for the kernel's
/// RTNL lock, so every link change anywhere on the host (another namespace's bridge deleted,
/// the kernel's link-watch work) delayed it. With RTNL held by a thread of this test in a
/// namespace of its own (and a request that needs RTNL seen waiting for it), the scrape must
/// answer, with the port's counters, before the lock is let go.
#[test]
fn a_scrape_reads_the_port_counters_while_another_namespace_holds_rtnl() {
    let lab = Lab::new("metrtnl");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&network());
    daemon.cli_ok(&["net-start", &name]);
    daemon.cli_ok(&[
        "attach-interface",
        "vmrtnl",
        "network",
        "metnet",
        "--mac",
        MAC,
    ]);
    let socket = daemon.run_dir().join(virtnet_api::RO_SOCKET_NAME);
    let counters = "virtnet_port_receive_bytes_total{port=";
    let before = get_metrics(&socket).expect("a scrape");
    assert!(
        before.contains(counters) && before.contains("domain=\"vmrtnl\""),
        "{before}"
    );

    let other = Netns::new("metrtnl-holder");
    let held = rtnl_held::RtnlHeld::hold(&other);
    let probe = rtnl_held::RtnlProbe::waiting(&other);
    let (tx, rx) = std::sync::mpsc::channel();
    let scraper = std::thread::spawn(move || {
        let _ = tx.send(get_metrics(&socket));
    });
    // A bound for the old code, which waits for RTNL: not a measurement (the scrape of one
    // port takes milliseconds).
    let during = rx.recv_timeout(std::time::Duration::from_secs(5));
    let still_held = !probe.answered();
    drop(held);
    probe.join();
    let _ = scraper.join();
    let text = match during {
        Ok(answer) => answer.expect("the scrape's answer"),
        Err(_) => panic!("no scrape answered while another namespace held RTNL"),
    };
    assert!(still_held, "RTNL was held until the scrape answered");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(counters) && text.contains("domain=\"vmrtnl\""),
        "{text}"
    );
}
