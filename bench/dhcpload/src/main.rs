//! dhcpload: a DHCPv4 load generator for virtnet's benchmarks (see bench/dhcp_dns.sh).
//!
//! It plays many guests at once from one network namespace: one UDP socket per guest
//! interface, bound to 0.0.0.0:68 with SO_BINDTODEVICE (so several interfaces share port 68) and
//! SO_BROADCAST. Each client is a fresh MAC address that does a full DORA exchange (DISCOVER,
//! OFFER, REQUEST, ACK) with the broadcast flag set, so the server answers by broadcast and the
//! interfaces need no address. Replies are matched to clients by xid (and chaddr). Requests are
//! sent by default on an AF_PACKET socket per interface, with the client MAC as the Ethernet
//! source (`--send raw`), so that the bridge learns each client on its port as for a real guest.
//!
//! Modes:
//! * `latency`: one client at a time (concurrency 1), `--pause-ms` between clients; each sample
//!   is the time from sending DISCOVER to receiving the ACK (and DISCOVER→OFFER).
//! * `throughput`: `--clients` clients, at most `--concurrency` in flight, spread round-robin over
//!   the interfaces; reports completed leases per second over `--rounds` rounds. With
//!   `--release`, every lease is released (DHCPRELEASE) after its round, and the next round
//!   starts after `--round-gap-ms`, so the same ports can be reused without hitting per-port caps.
//!
//! Output: a human summary on stderr, and with `--json` one JSON object on stdout.

use std::collections::HashMap;
use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use dhcproto::v4::{
    DhcpOption, Flags, HType, Message, MessageType, OptionCode,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde_json::{json, Value};

const USAGE: &str = "\
usage: dhcpload --iface IF[,IF...] | --iface-range PREFIX:N  [options]
  --mode latency|throughput   (default latency)
  --clients N                 clients (latency: samples), default 32
  --concurrency N             clients in flight at once (throughput), default 256
  --rounds N                  throughput rounds, default 1
  --release                   release every lease after its round (DHCPRELEASE)
  --round-gap-ms MS           pause between rounds, default 2500
  --pause-ms MS               pause between latency samples, default 20
  --timeout-ms MS             give up on a client after this, default 15000
  --retransmit-ms MS          resend the pending message after this (0: never), default 4000
  --mac-seed N                third and fourth MAC bytes (0..65535) so runs use unseen MACs
  --hostname PREFIX           send option 12 (host name) PREFIX-<n>
  --send raw|udp              raw (default): AF_PACKET frames whose Ethernet source is the
                              client's MAC (the bridge learns it on the port, as for a real
                              guest); udp: the UDP socket (source MAC = the interface's)
  --json                      print a JSON summary on stdout";

struct Args {
    ifaces: Vec<String>,
    mode: String,
    clients: usize,
    concurrency: usize,
    rounds: usize,
    release: bool,
    round_gap: Duration,
    pause: Duration,
    timeout: Duration,
    retransmit: Option<Duration>,
    mac_seed: u16,
    hostname: Option<String>,
    json: bool,
    raw: bool,
}

fn die(msg: &str) -> ! {
    eprintln!("dhcpload: error: {msg}");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        ifaces: vec![],
        mode: "latency".into(),
        clients: 32,
        concurrency: 256,
        rounds: 1,
        release: false,
        round_gap: Duration::from_millis(2500),
        pause: Duration::from_millis(20),
        timeout: Duration::from_millis(15000),
        retransmit: Some(Duration::from_millis(4000)),
        mac_seed: 0,
        hostname: None,
        json: false,
        raw: true,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, name: &str| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("{name} needs a number")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--iface" => {
                let v = it.next().unwrap_or_else(|| die("--iface needs a value"));
                a.ifaces.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from));
            }
            "--iface-range" => {
                let v = it.next().unwrap_or_else(|| die("--iface-range needs PREFIX:N"));
                let (p, n) = v.rsplit_once(':').unwrap_or_else(|| die("--iface-range PREFIX:N"));
                let n: usize = n.parse().unwrap_or_else(|_| die("--iface-range PREFIX:N"));
                a.ifaces.extend((0..n).map(|i| format!("{p}{i}")));
            }
            "--mode" => a.mode = it.next().unwrap_or_else(|| die("--mode needs a value")),
            "--clients" => a.clients = num(it.next(), "--clients") as usize,
            "--concurrency" => a.concurrency = num(it.next(), "--concurrency").max(1) as usize,
            "--rounds" => a.rounds = num(it.next(), "--rounds").max(1) as usize,
            "--release" => a.release = true,
            "--round-gap-ms" => a.round_gap = Duration::from_millis(num(it.next(), "--round-gap-ms")),
            "--pause-ms" => a.pause = Duration::from_millis(num(it.next(), "--pause-ms")),
            "--timeout-ms" => a.timeout = Duration::from_millis(num(it.next(), "--timeout-ms")),
            "--retransmit-ms" => {
                let ms = num(it.next(), "--retransmit-ms");
                a.retransmit = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--mac-seed" => a.mac_seed = num(it.next(), "--mac-seed") as u16,
            "--hostname" => a.hostname = Some(it.next().unwrap_or_else(|| die("--hostname needs a value"))),
            "--json" => a.json = true,
            "--send" => match it.next().as_deref() {
                Some("raw") => a.raw = true,
                Some("udp") => a.raw = false,
                _ => die("--send is raw or udp"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.ifaces.is_empty() {
        die(&format!("no interface given\n{USAGE}"));
    }
    if a.mode != "latency" && a.mode != "throughput" {
        die("--mode is latency or throughput");
    }
    if a.mode == "latency" {
        a.concurrency = 1;
    }
    a
}

/// A UDP socket on 0.0.0.0:68 bound to one interface.
fn client_socket(iface: &str) -> UdpSocket {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            die(&format!("socket: {}", std::io::Error::last_os_error()));
        }
        let one: libc::c_int = 1;
        let setopt = |level, name, val: *const libc::c_void, len| {
            if libc::setsockopt(fd, level, name, val, len as libc::socklen_t) != 0 {
                die(&format!("setsockopt on {iface}: {}", std::io::Error::last_os_error()));
            }
        };
        let p = &one as *const libc::c_int as *const libc::c_void;
        let sz = std::mem::size_of::<libc::c_int>();
        setopt(libc::SOL_SOCKET, libc::SO_REUSEADDR, p, sz);
        setopt(libc::SOL_SOCKET, libc::SO_BROADCAST, p, sz);
        let rcvbuf: libc::c_int = 4 << 20;
        setopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf as *const libc::c_int as *const _, sz);
        let name = CString::new(iface).unwrap();
        setopt(
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            iface.len() + 1,
        );
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = 68u16.to_be();
        sa.sin_addr.s_addr = 0;
        if libc::bind(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            die(&format!("bind 0.0.0.0:68 on {iface}: {}", std::io::Error::last_os_error()));
        }
        UdpSocket::from_raw_fd(fd)
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    Idle,
    Discovering,
    Requesting,
    Done,
    Failed,
}

struct Client {
    iface: usize,
    mac: [u8; 6],
    xid: u32,
    state: State,
    start: Instant,
    last_send: Instant,
    offer_at: Option<Instant>,
    ack_at: Option<Instant>,
    offered: Ipv4Addr,
    server: Ipv4Addr,
    pending: Vec<u8>,
    hostname: Option<String>,
}

#[derive(Default)]
struct Counters {
    naks: u64,
    retransmits: u64,
    timeouts: u64,
    foreign: u64,
    send_errors: u64,
}

fn base_msg(c: &Client, ty: MessageType) -> Message {
    let mut m = Message::new_with_id(
        c.xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &c.mac,
    );
    m.set_htype(HType::Eth);
    m.set_flags(Flags::default().set_broadcast());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(ty));
    let mut cid = vec![1u8];
    cid.extend_from_slice(&c.mac);
    o.insert(DhcpOption::ClientIdentifier(cid));
    o.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
    ]));
    if let Some(h) = &c.hostname {
        o.insert(DhcpOption::Hostname(h.clone()));
    }
    m
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(320);
    m.encode(&mut Encoder::new(&mut buf)).expect("encode");
    buf
}

fn discover(c: &Client) -> Vec<u8> {
    encode(&base_msg(c, MessageType::Discover))
}

fn request(c: &Client) -> Vec<u8> {
    let mut m = base_msg(c, MessageType::Request);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(c.offered));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(c.server));
    encode(&m)
}

fn release(c: &Client) -> Vec<u8> {
    let mut m = Message::new_with_id(
        c.xid.wrapping_add(0x8000_0000),
        c.offered,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &c.mac,
    );
    m.set_htype(HType::Eth);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Release));
    o.insert(DhcpOption::ServerIdentifier(c.server));
    let mut cid = vec![1u8];
    cid.extend_from_slice(&c.mac);
    o.insert(DhcpOption::ClientIdentifier(cid));
    encode(&m)
}

const BCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);

/// One guest interface: a UDP socket on port 68 (receives the broadcast replies) and, with
/// `--send raw`, an AF_PACKET socket that sends each client's frames with the client's MAC as
/// the Ethernet source, as a real guest would, so that the bridge learns every client MAC on
/// its port (a server that keys per-port limits on the bridge FDB needs that).
struct Iface {
    udp: UdpSocket,
    raw: Option<libc::c_int>,
}

fn packet_socket(iface: &str) -> libc::c_int {
    unsafe {
        let name = CString::new(iface).unwrap();
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            die(&format!("no interface {iface}"));
        }
        // Protocol 0: this socket only sends, it receives nothing.
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            die(&format!("AF_PACKET socket: {}", std::io::Error::last_os_error()));
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        ) != 0
        {
            die(&format!("bind AF_PACKET on {iface}: {}", std::io::Error::last_os_error()));
        }
        fd
    }
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for ch in data.chunks(2) {
        let w = if ch.len() == 2 { u16::from_be_bytes([ch[0], ch[1]]) } else { u16::from(ch[0]) << 8 };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP (68 -> 67) around a DHCP payload, broadcast, from `mac`/`src`.
fn frame(mac: &[u8; 6], src: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&Ipv4Addr::BROADCAST.octets());
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&68u16.to_be_bytes());
    udp.extend_from_slice(&67u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    // pseudo-header: src, dst, proto, length
    let mut pseudo = 0u32;
    for w in [src.octets(), Ipv4Addr::BROADCAST.octets()] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]])) + u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += 17 + udp_len as u32;
    let mut c = csum(&udp, pseudo);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

fn send_payload(ifc: &Iface, mac: &[u8; 6], src: Ipv4Addr, payload: &[u8]) -> bool {
    match ifc.raw {
        Some(fd) => {
            let f = frame(mac, src, payload);
            unsafe { libc::send(fd, f.as_ptr() as *const libc::c_void, f.len(), 0) == f.len() as isize }
        }
        None => ifc.udp.send_to(payload, BCAST).is_ok(),
    }
}

fn send(socks: &[Iface], c: &mut Client, cnt: &mut Counters) {
    c.last_send = Instant::now();
    if !send_payload(&socks[c.iface], &c.mac, Ipv4Addr::UNSPECIFIED, &c.pending) {
        cnt.send_errors += 1;
    }
}

/// Runs the clients `idx` (indices into `clients`) to completion: at most `concurrency` in
/// flight. Returns the wall-clock time from the first DISCOVER to the last ACK or failure.
fn run_batch(
    socks: &[Iface],
    clients: &mut [Client],
    idx: &[usize],
    a: &Args,
    cnt: &mut Counters,
) -> Duration {
    let mut by_xid: HashMap<u32, usize> = HashMap::with_capacity(idx.len() * 2);
    let mut next = 0usize;
    let mut inflight = 0usize;
    let mut finished = 0usize;
    let t0 = Instant::now();
    let mut t_end = t0;
    let mut pfds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd { fd: s.udp.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    let mut buf = [0u8; 1500];
    let mut last_start = t0 - Duration::from_secs(3600);
    while finished < idx.len() {
        // Start new clients while there is room (in latency mode: one at a time, paused).
        while inflight < a.concurrency && next < idx.len() {
            if a.concurrency == 1 && !a.pause.is_zero() && last_start.elapsed() < a.pause {
                break;
            }
            let ci = idx[next];
            next += 1;
            let c = &mut clients[ci];
            c.start = Instant::now();
            c.state = State::Discovering;
            c.pending = discover(c);
            by_xid.insert(c.xid, ci);
            send(socks, c, cnt);
            c.start = c.last_send;
            inflight += 1;
            last_start = Instant::now();
        }
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 5) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                die(&format!("poll: {e}"));
            }
        }
        for (si, pfd) in pfds.iter_mut().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            loop {
                let n = match socks[si].udp.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(_) => break,
                };
                let now = Instant::now();
                if n < 240 || buf[0] != 2 {
                    continue;
                }
                let xid = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                let Some(&ci) = by_xid.get(&xid) else {
                    cnt.foreign += 1;
                    continue;
                };
                let c = &mut clients[ci];
                // Broadcast replies reach every interface on the bridge: take the copy that
                // came in on the client's own interface.
                if c.iface != si || buf[28..34] != c.mac {
                    continue;
                }
                let Ok(msg) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                match (c.state, msg.opts().msg_type()) {
                    (State::Discovering, Some(MessageType::Offer)) => {
                        c.offer_at = Some(now);
                        c.offered = msg.yiaddr();
                        c.server = match msg.opts().get(OptionCode::ServerIdentifier) {
                            Some(DhcpOption::ServerIdentifier(s)) => *s,
                            _ => msg.siaddr(),
                        };
                        c.state = State::Requesting;
                        c.pending = request(c);
                        send(socks, c, cnt);
                    }
                    (State::Requesting, Some(MessageType::Ack)) => {
                        c.ack_at = Some(now);
                        c.state = State::Done;
                        by_xid.remove(&xid);
                        inflight -= 1;
                        finished += 1;
                        t_end = now;
                    }
                    (State::Requesting, Some(MessageType::Nak)) => {
                        cnt.naks += 1;
                        c.state = State::Failed;
                        by_xid.remove(&xid);
                        inflight -= 1;
                        finished += 1;
                        t_end = now;
                    }
                    _ => {}
                }
            }
        }
        // Timeouts and retransmissions.
        let now = Instant::now();
        for &ci in &idx[..next] {
            let c = &mut clients[ci];
            if !matches!(c.state, State::Discovering | State::Requesting) {
                continue;
            }
            if now.duration_since(c.start) >= a.timeout {
                cnt.timeouts += 1;
                c.state = State::Failed;
                by_xid.remove(&c.xid);
                inflight -= 1;
                finished += 1;
                t_end = now;
            } else if let Some(rt) = a.retransmit {
                if now.duration_since(c.last_send) >= rt {
                    cnt.retransmits += 1;
                    send(socks, c, cnt);
                }
            }
        }
    }
    t_end.duration_since(t0)
}

fn stats(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return json!({"n": 0});
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| {
        // nearest-rank percentile
        let k = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[k]
    };
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "n": v.len(),
        "min": r3(v[0]),
        "median": r3(median),
        "p90": r3(q(0.90)),
        "p95": r3(q(0.95)),
        "p99": r3(q(0.99)),
        "max": r3(v[v.len() - 1]),
        "mean": r3(v.iter().sum::<f64>() / v.len() as f64),
    })
}

fn main() {
    let a = parse_args();
    let socks: Vec<Iface> = a
        .ifaces
        .iter()
        .map(|i| Iface { udp: client_socket(i), raw: a.raw.then(|| packet_socket(i)) })
        .collect();
    let total = if a.mode == "latency" { a.clients } else { a.clients * a.rounds };
    let pid = std::process::id();
    let mut clients: Vec<Client> = (0..total)
        .map(|i| {
            let now = Instant::now();
            let [s0, s1] = a.mac_seed.to_be_bytes();
            let mac = [0x52, 0x54, s0, s1, (i >> 8) as u8, i as u8];
            Client {
                iface: (i % a.clients.max(1)) % a.ifaces.len(),
                mac,
                xid: (pid << 20) ^ (u32::from(a.mac_seed) << 16) ^ (i as u32).wrapping_mul(2654435761),
                state: State::Idle,
                start: now,
                last_send: now,
                offer_at: None,
                ack_at: None,
                offered: Ipv4Addr::UNSPECIFIED,
                server: Ipv4Addr::UNSPECIFIED,
                pending: vec![],
                hostname: a.hostname.as_ref().map(|p| format!("{p}-{i}")),
            }
        })
        .collect();
    // xids must be unique: fix collisions (vanishingly rare) deterministically.
    {
        let mut seen = std::collections::HashSet::new();
        for c in clients.iter_mut() {
            while !seen.insert(c.xid) {
                c.xid = c.xid.wrapping_add(1);
            }
        }
    }
    let mut cnt = Counters::default();
    let mut rounds_out = vec![];
    let rounds = if a.mode == "latency" { 1 } else { a.rounds };
    for r in 0..rounds {
        let idx: Vec<usize> = if a.mode == "latency" {
            (0..total).collect()
        } else {
            (r * a.clients..(r + 1) * a.clients).collect()
        };
        if r > 0 {
            std::thread::sleep(a.round_gap);
        }
        let elapsed = run_batch(&socks, &mut clients, &idx, &a, &mut cnt);
        let ok = idx.iter().filter(|&&i| clients[i].state == State::Done).count();
        let secs = elapsed.as_secs_f64();
        let lps = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
        eprintln!(
            "dhcpload: round {}: {ok}/{} leases in {:.3} s = {:.1} leases/s",
            r + 1,
            idx.len(),
            secs,
            lps
        );
        rounds_out.push(json!({"ok": ok, "clients": idx.len(), "elapsed_s": secs, "leases_per_s": lps}));
        if a.release {
            for &i in &idx {
                let c = &clients[i];
                if c.state == State::Done {
                    let _ = send_payload(&socks[c.iface], &c.mac, c.offered, &release(c));
                }
            }
        }
    }
    let done: Vec<&Client> = clients.iter().filter(|c| c.state == State::Done).collect();
    let dora: Vec<f64> = done
        .iter()
        .map(|c| c.ack_at.unwrap().duration_since(c.start).as_secs_f64() * 1000.0)
        .collect();
    let disc_offer: Vec<f64> = done
        .iter()
        .map(|c| c.offer_at.unwrap().duration_since(c.start).as_secs_f64() * 1000.0)
        .collect();
    let req_ack: Vec<f64> = done
        .iter()
        .map(|c| c.ack_at.unwrap().duration_since(c.offer_at.unwrap()).as_secs_f64() * 1000.0)
        .collect();
    let mut lps: Vec<f64> = rounds_out.iter().map(|r| r["leases_per_s"].as_f64().unwrap()).collect();
    lps.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let out = json!({
        "mode": a.mode,
        "interfaces": a.ifaces.len(),
        "clients": total,
        "concurrency": a.concurrency,
        "send": if a.raw { "raw" } else { "udp" },
        "rounds": rounds_out,
        "ok": done.len(),
        "failed": total - done.len(),
        "naks": cnt.naks,
        "timeouts": cnt.timeouts,
        "retransmits": cnt.retransmits,
        "send_errors": cnt.send_errors,
        "leases_per_s_median": if lps.is_empty() { 0.0 } else { lps[lps.len() / 2] },
        "discover_to_ack_ms": stats(dora.clone()),
        "discover_to_offer_ms": stats(disc_offer),
        "request_to_ack_ms": stats(req_ack),
        "samples_discover_to_ack_ms": if a.mode == "latency" { json!(dora) } else { Value::Null },
        "addresses": done.iter().take(4).map(|c| c.offered.to_string()).collect::<Vec<_>>(),
    });
    eprintln!(
        "dhcpload: {} ok, {} failed (naks {}, timeouts {}, retransmits {}); DISCOVER->ACK ms {}",
        done.len(),
        total - done.len(),
        cnt.naks,
        cnt.timeouts,
        cnt.retransmits,
        out["discover_to_ack_ms"]
    );
    if a.json {
        println!("{out}");
    }
    if done.is_empty() {
        std::process::exit(1);
    }
}
