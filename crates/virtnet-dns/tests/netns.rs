//! The server on real sockets, asked by real `dig`, against real upstreams (dnsmasq), each test
//! inside a network namespace of its own: the test thread `unshare`s a new namespace, so the
//! runtime's worker threads and every child process (`ip`, `dig`, `dnsmasq`) started from it
//! live there too, and the namespace disappears with the thread. Nothing touches the root
//! namespace. Needs root, `ip`, `dig` and `dnsmasq` (scripts/setup.sh installs them).

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use virtnet_dns::{DnsConfig, DnsError, DnsServer, GuestName};
use virtnet_model::Network;

/// Runs `f` on a fresh thread inside a fresh network namespace with `lo` up and `addrs` on it.
fn in_netns<F: FnOnce() + Send + 'static>(addrs: &[&str], f: F) {
    virtnet_testkit::in_thread_netns(addrs, f);
}

fn run(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?}: {st}");
}

/// A child process killed when the test ends, even on panic.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An upstream DNS server (dnsmasq) on `addr`:53 answering `address=/domain/ip` pairs.
fn upstream(addr: &str, records: &[(&str, &str)]) -> Proc {
    let args: Vec<String> = records
        .iter()
        .map(|(d, ip)| format!("--address=/{d}/{ip}"))
        .collect();
    upstream_with(addr, &args)
}

/// An upstream DNS server (dnsmasq) on `addr`:53 with these extra dnsmasq options.
fn upstream_with(addr: &str, options: &[String]) -> Proc {
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--port=53",
        "--bind-interfaces",
        &format!("--listen-address={addr}"),
    ]);
    cmd.args(options);
    let p = Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq"),
    );
    // Wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dig(&[&format!("@{addr}"), "+tries=1", "+time=1", "probe.invalid"]).is_empty() {
        assert!(Instant::now() < deadline, "upstream {addr} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

fn dig(args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["+noall", "+comments", "+answer", "+tries=1", "+time=4"])
        .args(args)
        .output()
        .expect("dig (apt-get install bind9-dnsutils)");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    if s.contains("status:") {
        s
    } else {
        String::new()
    }
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
}

/// The RDATA column of each answer record.
fn answers(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 5).then(|| cols[4..].join(" "))
        })
        .collect()
}

fn ask(server: &str, name: &str, ty: &str, extra: &[&str]) -> (String, Vec<String>) {
    let mut args = vec![format!("@{server}"), name.to_string(), ty.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dig(&args);
    (status(&out).to_string(), answers(&out))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const GW: &str = "192.168.122.1";
/// The interface the gateway addresses are on, which the server binds to (as virtnetd binds
/// it to the network's bridge).
const LO: Option<&str> = Some("lo");

fn gw() -> Vec<IpAddr> {
    vec![GW.parse().unwrap()]
}

fn config(xml: &str, resolvers: &[&str]) -> DnsConfig {
    let net = Network::from_xml(xml).unwrap_or_else(|e| panic!("{e}"));
    let r: Vec<SocketAddr> = resolvers.iter().map(|s| s.parse().unwrap()).collect();
    DnsConfig::from_network(&net, &r).expect("dns enabled")
}

const LOCAL_XML: &str = r#"<network><name>t</name><forward mode='nat'/>
  <domain name='example.com' localOnly='yes'/>
  <dns forwardPlainNames='no'>
    <host ip='192.168.122.1'><hostname>gateway</hostname></host>
    <srv service='ldap' protocol='tcp' target='dc.example.com' port='389' priority='10' weight='5'/>
    <txt name='motd' value='hello guests'/>
  </dns>
  <ip address='192.168.122.1' prefix='24' localPtr='yes'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/>
      <host mac='52:54:00:00:00:11' name='db' ip='192.168.122.11'/></dhcp>
  </ip></network>"#;

#[test]
fn local_names_over_udp_and_tcp() {
    in_netns(&["192.168.122.1/24"], || {
        let rt = runtime();
        let _g = rt.enter();
        let srv = DnsServer::start(config(LOCAL_XML, &[]), LO, &gw(), 53).expect("start");
        srv.set_guests(vec![GuestName {
            name: "vm1".into(),
            ip: "192.168.122.50".parse().unwrap(),
        }]);
        let a = |n: &str, t: &str| ask(GW, n, t, &[]);
        assert_eq!(
            a("vm1", "A"),
            ("NOERROR".into(), vec!["192.168.122.50".into()])
        );
        assert_eq!(
            a("vm1.example.com", "A"),
            ("NOERROR".into(), vec!["192.168.122.50".into()])
        );
        assert_eq!(
            a("db.example.com", "A"),
            ("NOERROR".into(), vec!["192.168.122.11".into()])
        );
        assert_eq!(
            a("gateway", "A"),
            ("NOERROR".into(), vec!["192.168.122.1".into()])
        );
        assert_eq!(
            a("_ldap._tcp.example.com", "SRV"),
            ("NOERROR".into(), vec!["10 5 389 dc.example.com.".into()])
        );
        assert_eq!(
            a("motd", "TXT"),
            ("NOERROR".into(), vec!["\"hello guests\"".into()])
        );
        assert_eq!(
            ask(GW, "-x", "192.168.122.50", &[]),
            ("NOERROR".into(), vec!["vm1.example.com.".into()])
        );
        assert_eq!(
            ask(GW, "-x", "192.168.122.11", &[]),
            ("NOERROR".into(), vec!["db.example.com.".into()])
        );
        // localPtr: unknown reverse names in the subnet are local NXDOMAIN.
        assert_eq!(ask(GW, "-x", "192.168.122.99", &[]).0, "NXDOMAIN");
        // localOnly domain and plain names: NXDOMAIN, and with no upstream at all.
        assert_eq!(a("nosuch.example.com", "A").0, "NXDOMAIN");
        assert_eq!(a("nosuch", "A").0, "NXDOMAIN");
        // Known name, other type: NODATA.
        assert_eq!(a("vm1", "AAAA"), ("NOERROR".into(), vec![]));
        // TCP.
        assert_eq!(
            ask(GW, "vm1.example.com", "A", &["+tcp"]),
            ("NOERROR".into(), vec!["192.168.122.50".into()])
        );
        // Live updates.
        srv.set_guests(vec![]);
        assert_eq!(a("vm1", "A").0, "NXDOMAIN");
        srv.reconfigure(config(&LOCAL_XML.replace("hello guests", "bye"), &[]));
        assert_eq!(a("motd", "TXT").1, vec!["\"bye\"".to_string()]);
        // No upstream configured: anything else is REFUSED.
        assert_eq!(a("www.example.org", "A").0, "REFUSED");
        let s = srv.stats();
        assert_eq!(s.queries, 16, "{s:?}");
        assert_eq!(s.answered_local, 15, "{s:?}");
        assert_eq!((s.refused, s.forwarded, s.malformed), (1, 0, 0), "{s:?}");
        srv.stop();
        assert_eq!(
            a("gateway", "A").0,
            "NO ANSWER",
            "still answering after stop"
        );
    });
}

/// An IPv6 network with `localPtr='yes'` on one prefix and not on another (issue 15, item 3).
const V6_PTR_XML: &str = r#"<network><name>t6</name><forward mode='nat'/>
  <domain name='example.com'/>
  <ip address='192.168.122.1' prefix='24'/>
  <ip family='ipv6' address='fd00:6::1' prefix='64' localPtr='yes'/>
  <ip family='ipv6' address='fd00:7::1' prefix='64'/></network>"#;

/// dnsmasq's `local=/6.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa/` semantics for libvirt's
/// `localPtr='yes'` on an IPv6 `<ip>`: a reverse lookup in that prefix with no lease behind it
/// is NXDOMAIN from virtnet, never forwarded (the upstream here would answer it), also when
/// asked on the IPv6 gateway; a lease's address answers its name; the prefix without
/// `localPtr` is forwarded.
#[test]
fn ipv6_local_ptr_answers_nxdomain_locally_and_never_forwards() {
    in_netns(
        &["192.168.122.1/24", "fd00:6::1/64", "203.0.113.1/24"],
        || {
            // The upstream knows a PTR in both prefixes.
            let ptr = |digit: char, name: &str| {
                format!(
                    "--ptr-record={}.{digit}.0.0.0.0.0.d.f.ip6.arpa,{name}",
                    ["9", "9"]
                        .into_iter()
                        .chain(std::iter::repeat_n("0", 22))
                        .collect::<Vec<_>>()
                        .join(".")
                )
            };
            let _up = upstream_with(
                "203.0.113.1",
                &[ptr('6', "leak.example"), ptr('7', "up.example")],
            );
            let rt = runtime();
            let _g = rt.enter();
            let gws: Vec<IpAddr> = vec![GW.parse().unwrap(), "fd00:6::1".parse().unwrap()];
            let srv = DnsServer::start(config(V6_PTR_XML, &["203.0.113.1:53"]), LO, &gws, 53)
                .expect("start");
            srv.set_guests(vec![GuestName {
                name: "vm6".into(),
                ip: "fd00:6::50".parse().unwrap(),
            }]);
            // No lease at fd00:6::99: local NXDOMAIN, on the IPv4 and on the IPv6 gateway.
            assert_eq!(
                ask(GW, "-x", "fd00:6::99", &[]),
                ("NXDOMAIN".into(), vec![])
            );
            assert_eq!(
                ask("fd00:6::1", "-x", "fd00:6::99", &[]),
                ("NXDOMAIN".into(), vec![])
            );
            // A lease in the prefix answers with its name.
            assert_eq!(
                ask("fd00:6::1", "-x", "fd00:6::50", &[]),
                ("NOERROR".into(), vec!["vm6.example.com.".into()])
            );
            // Without localPtr the reverse lookup goes upstream, which answers.
            assert_eq!(
                ask("fd00:6::1", "-x", "fd00:7::99", &[]),
                ("NOERROR".into(), vec!["up.example.".into()])
            );
            let s = srv.stats();
            assert_eq!(
                s.forwarded, 1,
                "only the fd00:7:: lookup goes upstream: {s:?}"
            );
            srv.stop();
        },
    );
}

const FWD_XML: &str = r#"<network><name>t</name><forward mode='nat'/>
  <domain name='example.com' localOnly='yes'/>
  <dns>
    <forwarder domain='corp.test' addr='203.0.113.2'/>
  </dns>
  <ip address='192.168.122.1' prefix='24'/></network>"#;

#[test]
fn forwarding_to_upstreams() {
    in_netns(
        &["192.168.122.1/24", "203.0.113.1/24", "203.0.113.2/24"],
        || {
            let _up1 = upstream(
                "203.0.113.1",
                &[
                    ("example.test", "203.0.113.80"),
                    ("corp.test", "203.0.113.81"),
                    ("example.com", "203.0.113.82"),
                    ("plainup", "203.0.113.83"),
                    // `--address=/nx.test/`: NXDOMAIN.
                    ("nx.test", ""),
                ],
            );
            let _up2 = upstream("203.0.113.2", &[("corp.test", "203.0.113.90")]);
            let rt = runtime();
            let _g = rt.enter();
            // The host's resolver is the upstream: no global <forwarder>.
            let srv =
                DnsServer::start(config(FWD_XML, &["203.0.113.1:53"]), LO, &gw(), 53).unwrap();
            let a = |n: &str, extra: &[&str]| ask(GW, n, "A", extra);
            assert_eq!(
                a("www.example.test", &[]),
                ("NOERROR".into(), vec!["203.0.113.80".into()])
            );
            assert_eq!(
                a("www.example.test", &["+tcp"]).1,
                vec!["203.0.113.80".to_string()]
            );
            // Per-domain forwarder.
            assert_eq!(a("db.corp.test", &[]).1, vec!["203.0.113.90".to_string()]);
            // The upstream's rcode is relayed: NXDOMAIN, and REFUSED (dnsmasq without servers).
            assert_eq!(a("www.nx.test", &[]).0, "NXDOMAIN");
            assert_eq!(a("nothing.invalid", &[]).0, "REFUSED");
            // localOnly: the upstream knows example.com but is never asked.
            assert_eq!(a("www.example.com", &[]).0, "NXDOMAIN");
            // Plain names are forwarded by default (libvirt 9.0 without forwardPlainNames='no').
            assert_eq!(a("plainup", &[]).1, vec!["203.0.113.83".to_string()]);
            let s = srv.stats();
            assert_eq!((s.forwarded, s.answered_local), (6, 1), "{s:?}");

            // forwardPlainNames='no': not forwarded.
            srv.reconfigure(config(
                &FWD_XML.replace("<dns>", "<dns forwardPlainNames='no'>"),
                &["203.0.113.1:53"],
            ));
            assert_eq!(a("plainup", &[]).0, "NXDOMAIN");

            // A global forwarder replaces the host resolvers (no-resolv); a dead first upstream
            // is skipped after its timeout.
            let dead = std::net::UdpSocket::bind("203.0.113.1:5353").unwrap();
            srv.reconfigure(config(
            &FWD_XML.replace(
                "<dns>",
                "<dns><forwarder addr='203.0.113.1' port='5353'/><forwarder addr='203.0.113.2'/>",
            ),
            &["203.0.113.1:53"],
        ));
            let t = Instant::now();
            assert_eq!(a("x.corp.test", &[]).1, vec!["203.0.113.90".to_string()]);
            assert_eq!(
                a("www.example.test", &[]).0,
                "REFUSED",
                "203.0.113.2 refuses it"
            );
            assert!(
                t.elapsed() >= Duration::from_secs(2),
                "first upstream was not waited for"
            );
            // Every upstream silent: SERVFAIL after the timeout.
            srv.reconfigure(config(
                &FWD_XML.replace("<dns>", "<dns><forwarder addr='203.0.113.1' port='5353'/>"),
                &[],
            ));
            assert_eq!(a("www.example.test", &["+time=6"]).0, "SERVFAIL");
            drop(dead);
        },
    );
}

#[test]
fn coexists_with_another_dns_server_and_binds_only_its_addresses() {
    in_netns(&["192.168.122.1/24", "192.168.122.2/24"], || {
        // Another DNS server on 127.0.0.53:53 (systemd-resolved's address).
        let _other = upstream("127.0.0.53", &[("resolved.test", "127.0.0.99")]);
        let rt = runtime();
        let _g = rt.enter();
        let srv = DnsServer::start(config(LOCAL_XML, &[]), LO, &gw(), 53)
            .expect("start beside 127.0.0.53");
        assert_eq!(
            ask(GW, "gateway", "A", &[]).1,
            vec!["192.168.122.1".to_string()]
        );
        assert_eq!(
            ask("127.0.0.53", "resolved.test", "A", &[]).1,
            vec!["127.0.0.99".to_string()]
        );
        // Nothing on an address that is not in `listen`, nor on a wildcard.
        assert_eq!(
            ask("192.168.122.2", "gateway", "A", &["+time=1"]).0,
            "NO ANSWER"
        );
        assert_eq!(
            ask("192.168.122.2", "gateway", "A", &["+tcp", "+time=1"]).0,
            "NO ANSWER"
        );
        let ss = Command::new("ss").args(["-Hlnu", "sport = :53"]).output();
        if let Ok(ss) = ss {
            let text = String::from_utf8_lossy(&ss.stdout);
            assert!(
                !text.contains("0.0.0.0:53") && !text.contains("*:53"),
                "{text}"
            );
        }
        // Binding the other server's address fails, naming the address and the call.
        let err = DnsServer::start(
            config(LOCAL_XML, &[]),
            LO,
            &["127.0.0.53".parse().unwrap()],
            53,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("127.0.0.53:53") && msg.contains("bind"),
            "{msg}"
        );
        assert!(matches!(
            DnsServer::start(
                config(LOCAL_XML, &[]),
                LO,
                &["0.0.0.0".parse().unwrap()],
                53
            ),
            Err(DnsError::Wildcard(_))
        ));
        // stop() closes the sockets: the same address binds again at once.
        srv.stop();
        let again = DnsServer::start(config(LOCAL_XML, &[]), LO, &gw(), 53).expect("restart");
        assert_eq!(ask(GW, "gateway", "A", &[]).0, "NOERROR");
        drop(again);
    });
}

#[test]
fn freebind_allows_an_address_not_yet_configured() {
    in_netns(&[], || {
        let rt = runtime();
        let _g = rt.enter();
        let v6: IpAddr = "fd00:122::1".parse().unwrap();
        let srv = DnsServer::start(config(LOCAL_XML, &[]), LO, &[gw()[0], v6], 5353)
            .expect("IP_FREEBIND/IPV6_FREEBIND");
        run(&["ip", "addr", "add", "192.168.122.1/24", "dev", "lo"]);
        run(&["ip", "addr", "add", "fd00:122::1/64", "dev", "lo"]);
        assert_eq!(ask(GW, "gateway", "A", &["-p", "5353"]).0, "NOERROR");
        assert_eq!(
            ask("fd00:122::1", "gateway", "A", &["-p", "5353"]).0,
            "NOERROR"
        );
        assert_eq!(
            ask("fd00:122::1", "gateway", "A", &["-p", "5353", "+tcp"]).0,
            "NOERROR"
        );
        srv.stop();
    });
}

#[test]
fn malformed_packets_are_counted_not_fatal() {
    in_netns(&["192.168.122.1/24"], || {
        let rt = runtime();
        let _g = rt.enter();
        let srv = DnsServer::start(config(LOCAL_XML, &[]), LO, &gw(), 53).unwrap();
        let s = std::net::UdpSocket::bind("192.168.122.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for junk in [
            &b""[..],
            b"x",
            &[0u8; 11],
            &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9],
        ] {
            s.send_to(junk, "192.168.122.1:53").unwrap();
        }
        let mut buf = [0u8; 512];
        let (n, _) = s
            .recv_from(&mut buf)
            .expect("FORMERR for the one with a header");
        assert_eq!(&buf[..2], &[0xab, 0xcd]);
        assert_eq!(buf[3] & 0x0f, 1, "FORMERR");
        assert!(n >= 12);
        assert_eq!(ask(GW, "gateway", "A", &[]).0, "NOERROR", "still serving");
        let st = srv.stats();
        assert_eq!((st.malformed, st.queries), (4, 5), "{st:?}");
    });
}

/// Queries queued on the socket before the server reads any: the server takes them in batches
/// (`recvmmsg`) and replies in batches (`sendmmsg`); each client gets exactly its own answers,
/// with its own ids, and the counters add up. An oversized datagram in the middle is cut by
/// the batch's buffer and answered FORMERR.
#[test]
fn queries_queued_before_the_server_reads_are_all_answered_in_batches() {
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};

    const CLIENTS: u16 = 8;
    const PER_CLIENT: u16 = 12; // 96 queries: more than one batch of 64
    in_netns(&["192.168.122.1/24"], || {
        // A current-thread runtime runs its tasks only inside `block_on`: everything below is
        // queued on the server's socket before the server reads anything.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let srv = DnsServer::start(config(LOCAL_XML, &[]), LO, &gw(), 53).expect("start");
        srv.set_guests(
            (0..CLIENTS)
                .map(|c| GuestName {
                    name: format!("g{c}"),
                    ip: format!("192.168.122.{}", 100 + c).parse().unwrap(),
                })
                .collect(),
        );
        let clients: Vec<std::net::UdpSocket> = (0..CLIENTS)
            .map(|_| {
                let s = std::net::UdpSocket::bind("192.168.122.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        // Client c asks, with ids c*1000+j: its own name (A), its own address (PTR), and a
        // name that does not exist (NXDOMAIN), in turn.
        let question = |c: u16, j: u16| -> (Name, RecordType) {
            match j % 3 {
                0 => (
                    Name::from_ascii(format!("g{c}.example.com.")).unwrap(),
                    RecordType::A,
                ),
                1 => (
                    Name::from_ascii(format!("{}.122.168.192.in-addr.arpa.", 100 + c)).unwrap(),
                    RecordType::PTR,
                ),
                _ => (
                    Name::from_ascii(format!("none{c}-{j}.example.com.")).unwrap(),
                    RecordType::A,
                ),
            }
        };
        for j in 0..PER_CLIENT {
            for (c, s) in clients.iter().enumerate() {
                let c = c as u16;
                let (name, ty) = question(c, j);
                let mut m = Message::new(c * 1000 + j, MessageType::Query, OpCode::Query);
                m.metadata.recursion_desired = true;
                m.add_query(Query::query(name, ty));
                s.send_to(&m.to_vec().unwrap(), "192.168.122.1:53").unwrap();
            }
            if j == PER_CLIENT / 2 {
                let mut big = vec![0u8; 6000];
                big[..4].copy_from_slice(&[0xbe, 0xef, 0x01, 0x00]);
                clients[0].send_to(&big, "192.168.122.1:53").unwrap();
            }
        }
        rt.block_on(tokio::time::sleep(Duration::from_millis(300)));
        let mut buf = [0u8; 1500];
        let mut formerr = 0;
        for (c, s) in clients.iter().enumerate() {
            let c = c as u16;
            let mut seen = vec![false; usize::from(PER_CLIENT)];
            let expect = usize::from(PER_CLIENT) + usize::from(c == 0);
            for _ in 0..expect {
                let (n, from) = s.recv_from(&mut buf).expect("a reply for every query");
                assert_eq!(from, "192.168.122.1:53".parse().unwrap());
                let r = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(r.metadata.message_type, MessageType::Response);
                if r.metadata.id == 0xbeef {
                    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
                    formerr += 1;
                    continue;
                }
                let j = r.metadata.id.wrapping_sub(c * 1000);
                assert!(j < PER_CLIENT, "client {c} got id {}", r.metadata.id);
                assert!(
                    !seen[usize::from(j)],
                    "client {c}: id {} twice",
                    r.metadata.id
                );
                seen[usize::from(j)] = true;
                let (name, ty) = question(c, j);
                assert_eq!(r.queries.len(), 1);
                assert_eq!(
                    (r.queries[0].name(), r.queries[0].query_type()),
                    (&name, ty)
                );
                let data: Vec<String> = r.answers.iter().map(|a| a.data.to_string()).collect();
                match (j % 3, &r.answers.first().map(|a| &a.data)) {
                    (0, Some(RData::A(_))) => {
                        assert_eq!(data, vec![format!("192.168.122.{}", 100 + c)])
                    }
                    (1, Some(RData::PTR(_))) => {
                        assert_eq!(data, vec![format!("g{c}.example.com.")])
                    }
                    (2, None) => assert_eq!(r.metadata.response_code, ResponseCode::NXDomain),
                    other => panic!("client {c}, query {j}: {other:?}"),
                }
            }
            assert!(seen.iter().all(|s| *s), "client {c}: {seen:?}");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            assert!(s.recv_from(&mut buf).is_err(), "client {c}: an extra reply");
        }
        assert_eq!(formerr, 1);
        let st = srv.stats();
        let total = u64::from(CLIENTS * PER_CLIENT);
        assert_eq!(
            (st.queries, st.answered_local, st.malformed),
            (total + 1, total, 1),
            "{st:?}"
        );
    });
}
