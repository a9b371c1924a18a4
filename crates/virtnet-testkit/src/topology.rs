//! The integration-test topology: a KVM host, an upstream "internet" and guests.
//!
//! ```text
//!  guest ns            host ns                          upstream ns
//!  eth0 ──veth── vgN ─ <bridge made by virtnetd>
//!                      uplink0 203.0.113.2/24 ──veth── up0 203.0.113.1/24
//!                      default via 203.0.113.1          HTTP server :80 ("you are <client>")
//! ```
//!
//! Upstream has no route back to guest subnets, as the internet has none to a host's private
//! networks: a guest gets answers only through NAT on the host, unless a route-mode test adds
//! the route with [`Lab::upstream_route_to`].

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::netns::{owned_temp_dir, python3, write_file, Netns, NsChild, TMP_PREFIX_LAB};

/// The upstream router's address (and the HTTP server's), on `up0` in the upstream namespace.
pub const UPSTREAM_ADDR: &str = "203.0.113.1";

/// The host's address on its uplink `uplink0`, the source of traffic it NATs.
pub const HOST_UPLINK_ADDR: &str = "203.0.113.2";

/// The prefix length of the uplink subnet 203.0.113.0/24 (TEST-NET-3, never routed).
pub const UPLINK_PREFIX: u8 = 24;

/// URL of the upstream HTTP server, which answers `you are <client-ip>\n`.
pub const UPSTREAM_URL: &str = "http://203.0.113.1/";

/// The upstream router's IPv6 address on `up0`, once [`Lab::uplink_v6`] added it.
pub const UPSTREAM_ADDR6: &str = "2001:db8:ff::1";

/// The host's IPv6 address on `uplink0`, once [`Lab::uplink_v6`] added it.
pub const HOST_UPLINK_ADDR6: &str = "2001:db8:ff::2";

/// The upstream HTTP server: answers every GET with the client's source address, so tests see
/// whether (and to what) NAT rewrote it.
const HTTP_SERVER: &str = r#"import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = ("you are %s\n" % self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"#;

/// A host namespace wired to an upstream namespace serving HTTP; guests join host bridges.
///
/// Dropping it removes both namespaces and everything in them (guests have their own
/// namespaces, removed when each [`Guest`] is dropped).
#[derive(Debug)]
pub struct Lab {
    test_name: String,
    // Declared before the namespaces so the server is gone before they are deleted (the
    // namespace would kill it anyway; this keeps the order obvious).
    http: NsChild,
    host: Netns,
    upstream: Netns,
    tmp: tempfile::TempDir,
    guests: AtomicU32,
}

impl Lab {
    /// Builds the topology for the test `test_name` (used in messages and the temporary
    /// directory's name) and returns once the upstream HTTP server accepts connections.
    pub fn new(test_name: &str) -> Lab {
        let host = Netns::new("host");
        let upstream = Netns::new("up");
        // Both ends are made inside namespaces: the veth is created in upstream with its peer
        // placed directly in host, never touching the root namespace.
        upstream.ip_ok([
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "uplink0",
            "netns",
            host.name(),
        ]);
        let up_cidr = format!("{UPSTREAM_ADDR}/{UPLINK_PREFIX}");
        let host_cidr = format!("{HOST_UPLINK_ADDR}/{UPLINK_PREFIX}");
        upstream.ip_ok(["addr", "add", &up_cidr, "dev", "up0"]);
        upstream.ip_ok(["link", "set", "up0", "up"]);
        host.ip_ok(["addr", "add", &host_cidr, "dev", "uplink0"]);
        host.ip_ok(["link", "set", "uplink0", "up"]);
        host.ip_ok(["route", "add", "default", "via", UPSTREAM_ADDR]);

        let tmp = owned_temp_dir(TMP_PREFIX_LAB, test_name);
        let script = tmp.path().join("http_server.py");
        write_file(&script, HTTP_SERVER);
        let script = script.to_string_lossy().into_owned();
        let http = upstream.spawn_with([python3(), &script, UPSTREAM_ADDR, "80"], |cmd| {
            cmd.stderr(Stdio::piped());
        });
        upstream.wait_listening(&http, UPSTREAM_ADDR, 80, "upstream HTTP server");
        Lab {
            test_name: test_name.to_string(),
            http,
            host,
            upstream,
            tmp,
            guests: AtomicU32::new(0),
        }
    }

    /// The test this lab belongs to.
    pub fn test_name(&self) -> &str {
        &self.test_name
    }

    /// The host namespace (where virtnetd runs).
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// The upstream namespace (the internet).
    pub fn upstream(&self) -> &Netns {
        &self.upstream
    }

    /// A temporary directory removed with the lab, for files tests need (network XML, ...).
    pub fn tmp_dir(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// The upstream HTTP server's process.
    pub fn http_server(&self) -> &NsChild {
        &self.http
    }

    /// Routes `subnet` (CIDR) from upstream to the host's uplink address: what route-mode
    /// networks need, since upstream has no route to guest subnets by default.
    pub fn upstream_route_to(&self, subnet: &str) {
        self.upstream
            .ip_ok(["route", "replace", subnet, "via", HOST_UPLINK_ADDR]);
    }

    /// IPv6 on the uplink, both ends ([`UPSTREAM_ADDR6`], [`HOST_UPLINK_ADDR6`] in a /64, no
    /// duplicate address detection), as the IPv4 the lab always sets up.
    pub fn uplink_v6(&self) {
        for (ns, addr, dev) in [
            (&self.upstream, UPSTREAM_ADDR6, "up0"),
            (&self.host, HOST_UPLINK_ADDR6, "uplink0"),
        ] {
            ns.ip_ok([
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
    }

    /// Whether a TCP connection from upstream to `addr:port` opens (3 s limit): unsolicited
    /// inbound traffic, which NAT must not let through.
    pub fn upstream_connect(&self, addr: &str, port: u16) -> bool {
        self.upstream.tcp_connect(addr, port)
    }

    /// A guest joined to the host bridge `bridge` (which must exist already: virtnetd makes
    /// it when the network starts), with `addr_cidr` on its `eth0` and a default route via
    /// `gateway` when given.
    pub fn guest(&self, bridge: &str, addr_cidr: &str, gateway: Option<&str>) -> Guest {
        let guest = self.guest_unattached();
        // On failure the guest is dropped while unwinding, removing its veth and namespace.
        guest.attach(bridge);
        guest.ns.ip_ok(["addr", "add", addr_cidr, "dev", "eth0"]);
        if let Some(gw) = gateway {
            guest.ns.ip_ok(["route", "add", "default", "via", gw]);
        }
        let mut guest = guest;
        guest.addr = addr_cidr.split('/').next().map(str::to_string);
        guest
    }

    /// A guest whose `eth0` is up but has no address, its host end `vgN` up but on no bridge:
    /// for DHCP clients, or to [`Guest::attach`] later.
    pub fn guest_unattached(&self) -> Guest {
        let n = self.guests.fetch_add(1, Ordering::Relaxed);
        let ns = Netns::new(&format!("g{n}"));
        // "vg" + a counter fits the 15-character limit on interface names; names are per
        // namespace, so labs running in parallel do not collide.
        let host_if = format!("vg{n}");
        ns.veth_to("eth0", &self.host, &host_if);
        Guest {
            ns,
            host: self.host.clone(),
            host_if,
            addr: None,
        }
    }
}

/// A guest: its own namespace with `eth0`, whose veth peer `vgN` sits in the host namespace.
/// Dropping it deletes the namespace, which removes both ends of the veth.
#[derive(Debug)]
pub struct Guest {
    ns: Netns,
    host: Netns,
    host_if: String,
    addr: Option<String>,
}

impl Drop for Guest {
    fn drop(&mut self) {
        // Deleting the host end removes both ends at once; left to the namespace's deletion,
        // the kernel removes them asynchronously and a test checking the bridge's ports right
        // after the drop would race. Errors are ignored: the namespace goes next anyway.
        let _ = self.host.ip(["link", "del", &self.host_if]);
    }
}

impl Guest {
    /// The guest's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The name of the guest's veth end in the host namespace (`vgN`), as a tap would be.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// The static address given to [`Lab::guest`], without prefix length.
    pub fn addr(&self) -> Option<&str> {
        self.addr.as_deref()
    }

    /// The MAC address of the guest's `eth0`.
    pub fn mac(&self) -> String {
        let out = self.ns.ip_ok(["-br", "link", "show", "dev", "eth0"]);
        out.split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string()
    }

    /// Enslaves the guest's host end to `bridge` in the host namespace and waits until the
    /// port forwards; panics (with `ip`'s message) when the bridge does not exist.
    ///
    /// With STP on (libvirt's default), a new port listens and learns for twice the forward
    /// delay before it forwards, and the kernel keeps that delay at 2 s or more while STP
    /// runs: a guest that sends at once would see its first packets dropped.
    pub fn attach(&self, bridge: &str) {
        self.host
            .ip_ok(["link", "set", &self.host_if, "master", bridge, "up"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let shown = self
                .host
                .ip_ok(["-d", "link", "show", "dev", &self.host_if]);
            if shown.contains("state forwarding") || shown.contains("state FORWARDING") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {} of {bridge} never reached the forwarding state:\n{shown}",
                self.host_if
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `url` from the guest (see [`Netns::http_get`]).
    pub fn http_get(&self, url: &str) -> Result<String, String> {
        self.ns.http_get(url)
    }

    /// One ping from the guest (see [`Netns::ping`]).
    pub fn ping(&self, addr: &str) -> bool {
        self.ns.ping(addr)
    }

    /// Whether a TCP connection from the guest to `addr:port` opens (3 s limit).
    pub fn tcp_connect(&self, addr: &str, port: u16) -> bool {
        self.ns.tcp_connect(addr, port)
    }

    /// Starts a TCP listener on `port` in the guest (see [`Netns::listen`]).
    pub fn listen(&self, port: u16) -> NsChild {
        self.ns.listen(port)
    }

    /// The guest's IPv4 addresses on `eth0` (for checking a DHCP lease, say).
    pub fn ipv4_addrs(&self) -> Vec<Ipv4Addr> {
        let out = self.ns.ip_ok(["-4", "-o", "addr", "show", "dev", "eth0"]);
        out.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .collect()
    }
}
