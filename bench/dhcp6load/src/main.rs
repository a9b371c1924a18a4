//! `dhcp6load`: the load mode of `bench/ipv6probe.py` (DHCPv6 leases per second) in Rust, for
//! rates the Python probe cannot offer. Same clients, same messages, same JSON:
//!
//!     dhcp6load --ifaces l0,l1,... --clients-per-port 6 --seed 7 [--keep] [--timeout-ms 30000]
//!               [--retransmit-ms 1000] [--release-rate 100]
//!
//! Client `n` (counted over the interfaces in order, `--clients-per-port` each) has DUID-LL
//! `52:54:<seed>:<n>` and IAID `n`, as in the Python probe, so a run with the same seed and
//! interfaces is the same clients coming back ("known clients"). Each interface gets one UDP
//! socket on `[its link-local]:546`, bound to the device; every client sends SOLICIT to
//! `ff02::1:2` port 547 and, on an ADVERTISE with an address, REQUEST; a REPLY with an address
//! ends it. All clients start at once; one `poll()` loop drives them; a client that has had no
//! answer for `--retransmit-ms` sends again. leases/s = leases / (first SOLICIT → last REPLY).
//! Without `--keep` every lease is RELEASEd afterwards, paced at `--release-rate` per second.
//! Prints `{"clients","leases","failed","naks","retransmits","seconds","leases_per_s",
//! "solicit_to_reply_ms": {"n","p50","p99","min","max"}}`.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SOLICIT: u8 = 1;
const ADVERTISE: u8 = 2;
const REQUEST: u8 = 3;
const REPLY: u8 = 7;
const RELEASE: u8 = 8;
const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_ELAPSED: u16 = 8;
const OPT_STATUS: u16 = 13;
const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

struct Args {
    ifaces: Vec<String>,
    per_port: usize,
    seed: u32,
    keep: bool,
    timeout: Duration,
    retransmit: Duration,
    release_rate: f64,
}

fn die(msg: &str) -> ! {
    eprintln!("dhcp6load: {msg}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        ifaces: Vec::new(),
        per_port: 8,
        seed: 1,
        keep: false,
        timeout: Duration::from_millis(30_000),
        retransmit: Duration::from_millis(1000),
        release_rate: 100.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--keep" {
            a.keep = true;
            continue;
        }
        let v = it
            .next()
            .unwrap_or_else(|| die(&format!("{k} needs a value")));
        let num = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| die(&format!("{k}: not a number: {v}")))
        };
        match k.as_str() {
            "--ifaces" => {
                a.ifaces = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--clients-per-port" => a.per_port = num(&v) as usize,
            "--seed" => a.seed = num(&v) as u32,
            "--timeout-ms" => a.timeout = Duration::from_secs_f64(num(&v) / 1e3),
            "--retransmit-ms" => a.retransmit = Duration::from_secs_f64(num(&v) / 1e3),
            "--release-rate" => a.release_rate = num(&v),
            _ => die(&format!("unknown option {k}")),
        }
    }
    if a.ifaces.is_empty() {
        die("--ifaces is required");
    }
    a
}

/// The interface's link-local address (scope 0x20 in /proc/net/if_inet6).
fn link_local(name: &str) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 6 && f[5] == name && f[3] == "20" {
            u128::from_str_radix(f[0], 16).ok().map(Ipv6Addr::from)
        } else {
            None
        }
    })
}

fn ifindex(name: &str) -> u32 {
    let c = CString::new(name).unwrap_or_else(|_| die("bad interface name"));
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        die(&format!("no interface {name}"));
    }
    i
}

/// A UDP socket on [link-local of `name`]:546, bound to the device, non-blocking.
fn port_socket(name: &str) -> (UdpSocket, u32) {
    let idx = ifindex(name);
    let ll = link_local(name).unwrap_or_else(|| die(&format!("{name} has no link-local address")));
    // SAFETY: plain socket(2); owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        die(&format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let set = |level, opt, val: &[u8]| {
        // SAFETY: val points to len bytes.
        let r = unsafe { libc::setsockopt(fd, level, opt, val.as_ptr().cast(), val.len() as u32) };
        if r < 0 {
            die(&format!("setsockopt {opt}: {}", io::Error::last_os_error()));
        }
    };
    set(libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name.as_bytes());
    set(
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        &(1i32 << 20).to_ne_bytes(),
    );
    // SAFETY: sockaddr_in6 zeroed then filled.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_port = 546u16.to_be();
    sa.sin6_addr.s6_addr = ll.octets();
    sa.sin6_scope_id = idx;
    // SAFETY: sa is a valid sockaddr_in6.
    let r = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    if r < 0 {
        die(&format!("bind {name}: {}", io::Error::last_os_error()));
    }
    sock.set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("nonblocking: {e}")));
    (sock, idx)
}

fn opt(out: &mut Vec<u8>, code: u16, body: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// The options of a message body, first of each code.
fn parse_opts(mut data: &[u8]) -> HashMap<u16, &[u8]> {
    let mut out = HashMap::new();
    while data.len() >= 4 {
        let code = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        let body = &data[4..(4 + len).min(data.len())];
        out.entry(code).or_insert(body);
        data = &data[(4 + len).min(data.len())..];
    }
    out
}

/// An IA_NA body (iaid, t1, t2, options) with an IAADDR and no error status.
fn has_address(ia: &[u8]) -> bool {
    if ia.len() < 12 {
        return false;
    }
    let o = parse_opts(&ia[12..]);
    if let Some(st) = o.get(&OPT_STATUS) {
        if st.len() >= 2 && u16::from_be_bytes([st[0], st[1]]) != 0 {
            return false;
        }
    }
    o.contains_key(&OPT_IAADDR)
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Solicit,
    Request,
    Done,
}

struct Client {
    port: usize,
    duid: Vec<u8>,
    iaid: u32,
    xid: [u8; 3],
    state: State,
    server: Vec<u8>,
    ia: Vec<u8>,
    started: Instant,
    sent: Instant,
    replied: Option<Instant>,
    retransmits: u32,
}

impl Client {
    fn message(&self, kind: u8) -> Vec<u8> {
        let mut m = vec![kind, self.xid[0], self.xid[1], self.xid[2]];
        opt(&mut m, OPT_CLIENTID, &self.duid);
        opt(&mut m, OPT_ELAPSED, &[0, 0]);
        if kind == SOLICIT {
            let mut ia = self.iaid.to_be_bytes().to_vec();
            ia.extend_from_slice(&[0; 8]);
            opt(&mut m, OPT_IA_NA, &ia);
            opt(&mut m, OPT_ORO, &23u16.to_be_bytes());
        } else {
            opt(&mut m, OPT_SERVERID, &self.server);
            opt(&mut m, OPT_IA_NA, &self.ia);
            if kind == REQUEST {
                opt(&mut m, OPT_ORO, &23u16.to_be_bytes());
            }
        }
        m
    }
}

/// A pseudo-random xid (the clients' own; the server only echoes it).
fn xid(state: &mut u64) -> [u8; 3] {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let b = state.to_le_bytes();
    [b[0], b[1], b[2]]
}

fn send(socks: &[(UdpSocket, u32)], c: &mut Client, kind: u8) {
    let (s, idx) = &socks[c.port];
    let to = SocketAddrV6::new(ALL_DHCP, 547, 0, *idx);
    // A full socket buffer is a lost datagram, as on the wire: the retransmission covers it.
    let _ = s.send_to(&c.message(kind), to);
    c.sent = Instant::now();
}

fn pct(v: &[f64], p: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let k = (v.len() * p).div_ceil(100).clamp(1, v.len());
    Some(v[k - 1])
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"n": v.len(), "p50": pct(&v, 50), "p99": pct(&v, 99),
           "min": v.first(), "max": v.last()})
}

fn main() {
    let a = parse_args();
    let socks: Vec<(UdpSocket, u32)> = a.ifaces.iter().map(|i| port_socket(i)).collect();
    let mut rng = (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    let start = Instant::now();
    let mut clients = Vec::new();
    for port in 0..socks.len() {
        for _ in 0..a.per_port {
            let n = clients.len() as u32;
            let mac = [
                0x52,
                0x54,
                a.seed as u8,
                (n >> 16) as u8,
                (n >> 8) as u8,
                n as u8,
            ];
            let mut duid = vec![0, 3, 0, 1];
            duid.extend_from_slice(&mac);
            clients.push(Client {
                port,
                duid,
                iaid: n,
                xid: xid(&mut rng),
                state: State::Solicit,
                server: Vec::new(),
                ia: Vec::new(),
                started: start,
                sent: start,
                replied: None,
                retransmits: 0,
            });
        }
    }
    // (port, xid) -> client
    let by_xid: HashMap<(usize, [u8; 3]), usize> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.port, c.xid), i))
        .collect();
    let mut pfds: Vec<libc::pollfd> = socks
        .iter()
        .map(|(s, _)| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let t0 = Instant::now();
    for c in clients.iter_mut() {
        c.started = Instant::now();
        send(&socks, c, SOLICIT);
    }
    // What sending alone costs the client (each SOLICIT is multicast: the bridge floods it to
    // every port), before any answer is read.
    let solicits_sent = t0.elapsed();
    let mut pending = clients.len();
    let mut naks = 0u32;
    let mut buf = [0u8; 2048];
    while pending > 0 && t0.elapsed() < a.timeout {
        // SAFETY: pfds is a valid array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            die(&format!("poll: {}", io::Error::last_os_error()));
        }
        for (p, pfd) in pfds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            while let Ok(n) = socks[p].0.recv(&mut buf) {
                let t = Instant::now();
                if n < 4 {
                    continue;
                }
                let Some(&i) = by_xid.get(&(p, [buf[1], buf[2], buf[3]])) else {
                    continue;
                };
                let opts = parse_opts(&buf[4..n]);
                let c = &mut clients[i];
                match (buf[0], c.state) {
                    (ADVERTISE, State::Solicit) => {
                        let (Some(sid), Some(ia)) = (opts.get(&OPT_SERVERID), opts.get(&OPT_IA_NA))
                        else {
                            continue;
                        };
                        if !has_address(ia) {
                            continue;
                        }
                        c.server = sid.to_vec();
                        c.ia = ia.to_vec();
                        c.state = State::Request;
                        send(&socks, c, REQUEST);
                    }
                    (REPLY, State::Request) => {
                        let Some(ia) = opts.get(&OPT_IA_NA).filter(|ia| has_address(ia)) else {
                            naks += 1;
                            continue;
                        };
                        c.ia = ia.to_vec();
                        c.replied = Some(t);
                        c.state = State::Done;
                        pending -= 1;
                    }
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        for c in clients.iter_mut() {
            if c.state != State::Done && now.duration_since(c.sent) >= a.retransmit {
                c.retransmits += 1;
                let kind = if c.state == State::Solicit {
                    SOLICIT
                } else {
                    REQUEST
                };
                send(&socks, c, kind);
            }
        }
    }
    let done: Vec<&Client> = clients.iter().filter(|c| c.replied.is_some()).collect();
    let last = done.iter().filter_map(|c| c.replied).max().unwrap_or(t0);
    let secs = last.duration_since(t0).as_secs_f64();
    let lat: Vec<f64> = done
        .iter()
        .filter_map(|c| {
            c.replied
                .map(|r| r.duration_since(c.started).as_secs_f64() * 1e3)
        })
        .collect();
    let out = json!({
        "clients": clients.len(), "leases": done.len(), "failed": clients.len() - done.len(),
        "naks": naks, "retransmits": clients.iter().map(|c| c.retransmits).sum::<u32>(),
        "seconds": secs, "leases_per_s": if secs > 0.0 { Some(done.len() as f64 / secs) } else { None },
        "solicit_to_reply_ms": summary(lat), "client": "dhcp6load",
        "solicits_sent_ms": solicits_sent.as_secs_f64() * 1e3,
    });
    if !a.keep {
        let gap = if a.release_rate > 0.0 {
            Duration::from_secs_f64(1.0 / a.release_rate)
        } else {
            Duration::ZERO
        };
        for c in clients.iter_mut() {
            if c.state != State::Done {
                continue;
            }
            // A new exchange, a new xid (the answers are not read: drained below).
            c.xid = xid(&mut rng);
            send(&socks, c, RELEASE);
            std::thread::sleep(gap);
        }
        std::thread::sleep(Duration::from_millis(500));
        for (s, _) in &socks {
            while s.recv(&mut buf).is_ok() {}
        }
    }
    println!("{out}");
}
