//! # virtnet-dhcp
//!
//! virtnet's DHCPv4 server, one per network, built on [`dhcproto`]. It behaves like dnsmasq
//! as libvirt configures it (`dhcp-authoritative`, `dhcp-no-override`, one-hour default
//! leases, static hosts from `<host>`), with two defences dnsmasq does not have.
//!
//! - [`DhcpConfig::from_network`] turns a libvirt `<network>` into what the server hands out.
//! - [`DhcpServer::start`] runs it on a bridge; lease changes go to a [`LeaseSink`] before the
//!   ACK leaves, so an acknowledged lease is durable. Group commit: when a datagram arrives,
//!   the loop also takes whatever else is already queued on the socket (up to [`MAX_BATCH`],
//!   never waiting for more), serves them as one batch and records all their lease changes
//!   with one [`LeaseSink::record_batch`] (one store commit) before any reply of the batch
//!   leaves; a batch that cannot be stored is rolled back and none of its ACKs is sent
//!   ([`Engine::handle_batch`]). The batch is served on tokio's blocking pool (the sink may
//!   wait for an fsync; no async worker waits with it) while the loop awaits it. The socket
//!   has a [`RCVBUF`] receive buffer so that a burst of guests booting together is queued,
//!   not dropped.
//! - [`Engine`] is the pure protocol core (no sockets, no clock): every message type, address
//!   choice, limits. The socket loop (`socket.rs`) only moves bytes and asks the kernel.
//!
//! ## Address choice
//! A client (by client identifier when it sends one, else by MAC) keeps its previous address
//! (leases are handed in at start, so also across daemon restarts); a static host gets its fixed
//! address, name and lease time; otherwise the requested address (option 50) if free and in a
//! range; otherwise a deterministic pick from a hash (FNV-1a) of the MAC, probing forward to the
//! first free address. Never handed out: the server's address, the network and broadcast
//! addresses, static addresses to anyone else, declined (quarantined, 10 minutes) addresses,
//! addresses leased or offered to another client.
//!
//! ## Conflict detection without stalling
//! dnsmasq pings an address for up to ~3 s before offering it. virtnet instead looks the
//! address up in the kernel's neighbour table on the bridge (`RTM_GETNEIGH`, one netlink round
//! trip, microseconds) and skips it when a live entry (REACHABLE, STALE, DELAY, PROBE,
//! PERMANENT) names another MAC: a guest that configured the address by hand has talked to the
//! host and so is in that table. Together with DECLINE quarantine (the client's own ARP check)
//! this catches what the ping would, without delaying the OFFER. At most [`MAX_PROBES`]
//! conflicts are skipped per pick.
//!
//! ## Flood protection: per-port limits
//! Every message is charged to the bridge port its frame came in on, taken from the frame
//! itself: neither `chaddr` nor the Ethernet source, which a guest can forge (charging the
//! port where `chaddr` was learned let a guest flooding DISCOVERs with a neighbour's MAC
//! empty the neighbour's bucket). A capture socket sees each DHCP frame on the port it enters,
//! with the kernel's receive timestamp, which the UDP socket reports too; the datagram is
//! paired with the frame of the same stamp, source and payload (`ingress.rs` explains why the
//! bridge itself cannot tell, and what pairing costs). Per port ([`Limits`], defaults in
//! [`Limits::default`]):
//!
//! - a token bucket on messages: 20/s, burst 40; excess is dropped and counted in
//!   [`Stats::rate_limited`]. A normal exchange is 2–4 messages with retries seconds apart, so
//!   no real client comes near it, while a flood costs one bucket check per packet.
//! - a cap on dynamic leases plus outstanding offers held by MACs on that port: 8 (static hosts
//!   exempt). One port is one guest NIC; 8 covers nested guests or containers bridged inside
//!   one, and a guest flooding DISCOVERs with random MACs takes at most 8 addresses, not the
//!   pool. Offers reserve an address for only [`OFFER_SECS`] (30 s).
//!
//! Datagrams with no port (sent by the host itself, or whose frame's capture was lost) share
//! one "unknown port" bucket with the same limits.
//!
//! ## Hostile input
//! Anything that does not decode is dropped and counted in [`Stats::malformed`]; BOOTREPLYs,
//! non-Ethernet `htype`, `hlen` ≠ 6 and relayed (`giaddr` set) requests are ignored. Nothing
//! on the packet path unwraps or indexes unchecked; a stable random-bytes test and a cargo-fuzz
//! target (`fuzz/`) exercise it.
//!
//! ## Replies
//! To `ciaddr`:68 when the client has an address (RENEWING, INFORM), else broadcast to
//! 255.255.255.255:68 on the bridge (what busybox udhcpc and ISC dhclient accept). NAKs are
//! broadcast. Options in OFFER/ACK: 1, 3 (only with a router), 6 (with DNS), 12, 15, 26, 28,
//! 51 (0xffffffff for infinite), 54, 58/59 (50 % / 87.5 %, finite leases), 66/67 and
//! `siaddr`/`file` for network boot, 80 on rapid-commit ACKs. dhcproto writes options in code
//! order, not in the client's parameter-request-list order; RFC 2131 allows any order and the
//! clients tested accept it. Every reply carries all configured options, so nothing a client
//! must have depends on its request list.

#![warn(missing_docs)]

mod config;
mod error;
mod ingress;
mod lease;
mod netlink;
mod pool;
mod ratelimit;
mod reply;
mod server;
mod socket;
mod wire;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub use config::{Boot, DhcpConfig, Limits, Range, StaticHost, DEFAULT_LEASE_SECS};
pub use error::DhcpError;
pub use lease::{Lease, LeaseChange, LeaseSink, NullSink};
pub use ratelimit::PortId;
pub use reply::{Destination, Reply};
pub use server::{
    client_mac, sanitize_hostname, Engine, NoProbe, Probe, Request, Stats, DECLINE_QUARANTINE_SECS,
    MAX_PROBES, OFFER_SECS,
};
pub use socket::{bind, set_rcvbuf, CLIENT_PORT, MAX_BATCH, RCVBUF, SERVER_PORT, SWEEP_INTERVAL};
pub use wire::decode;

/// How long [`DhcpServer::stop`] waits for the serving task to close its socket.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The running DHCPv4 server of one network.
#[derive(Debug)]
pub struct DhcpServer {
    engine: Arc<Mutex<Engine>>,
    sweep: Arc<tokio::sync::Notify>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    closed: mpsc::Receiver<()>,
    bridge: String,
}

impl DhcpServer {
    /// Synchronous; must be called inside a tokio runtime context (uses Handle::current() to
    /// spawn its task).
    ///
    /// Opens the socket (0.0.0.0:67 bound to `bridge`) and (once per namespace and process,
    /// shared by every server there) the ingress capture socket and an rtnetlink socket in
    /// the calling thread's network namespace, loads `leases` (expired ones are reported as
    /// [`LeaseChange::Expired`] at once), and serves until [`DhcpServer::stop`] or drop.
    pub fn start(
        config: DhcpConfig,
        bridge: &str,
        leases: Vec<Lease>,
        sink: Arc<dyn LeaseSink>,
    ) -> Result<DhcpServer, DhcpError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| DhcpError::NoRuntime {
            bridge: bridge.to_string(),
        })?;
        let std_sock = socket::bind(bridge)?;
        let ifindex = socket::ifindex(&std_sock, bridge)?;
        let (sock, ingress) = {
            let _guard = handle.enter();
            let sock =
                tokio::net::UdpSocket::from_std(std_sock).map_err(|source| DhcpError::Socket {
                    bridge: bridge.to_string(),
                    op: "register with tokio",
                    source,
                })?;
            let ingress = ingress::Ingress::open(ifindex).map_err(|source| DhcpError::Socket {
                bridge: bridge.to_string(),
                op: "open the ingress capture (AF_PACKET, ETH_P_ALL)",
                source,
            })?;
            (sock, ingress)
        };
        let probe = netlink::NeighProbe {
            nl: ingress.links(),
            bridge: ifindex,
        };
        let network = config.network.clone();
        let mut engine = Engine::new(config, leases, sink, Box::new(probe));
        engine.sweep(socket::now());
        let engine = Arc::new(Mutex::new(engine));
        let sweep = Arc::new(tokio::sync::Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (closed_tx, closed_rx) = mpsc::channel();
        handle.spawn(
            socket::Loop {
                sock,
                engine: engine.clone(),
                ingress,
                stop: stop_rx,
                sweep: sweep.clone(),
                bridge: bridge.to_string(),
                closed: closed_tx,
            }
            .run(),
        );
        tracing::info!(%network, %bridge, "DHCPv4 server started");
        Ok(DhcpServer {
            engine,
            sweep,
            stop: Some(stop_tx),
            closed: closed_rx,
            bridge: bridge.to_string(),
        })
    }

    /// Live update (ranges/hosts changed); keeps leases.
    pub fn reconfigure(&self, config: DhcpConfig) {
        socket::lock(&self.engine).reconfigure(config);
        self.sweep.notify_one();
    }

    /// The current (unexpired) leases, ordered by address.
    pub fn leases(&self) -> Vec<Lease> {
        socket::lock(&self.engine).leases(socket::now())
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        socket::lock(&self.engine).stats()
    }

    /// Sweeps expired leases now (the loop also does every [`SWEEP_INTERVAL`]).
    pub fn sweep(&self) {
        socket::lock(&self.engine).sweep(socket::now());
    }

    /// Stops serving; also on Drop: the socket is closed when this returns.
    ///
    /// The serving task closes the socket; this waits (up to 2 s) until it has. On a
    /// current-thread runtime, called from that runtime's own thread, the task cannot run
    /// while this waits, so it does not wait and the socket closes when the runtime next runs.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        let _ = stop.send(());
        let own_current_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if own_current_thread {
            return;
        }
        if self.closed.recv_timeout(STOP_WAIT).is_err() {
            tracing::warn!(bridge = %self.bridge, "DHCP task did not confirm closing its socket");
        }
    }
}
