//! # virtnet-dhcp
//!
//! virtnet's DHCPv4 server, one per network, built on [`dhcproto`]. It behaves like dnsmasq
//! as libvirt configures it (`dhcp-authoritative`, `dhcp-no-override`, one-hour default
//! leases, static hosts from `<host>`), with two defences dnsmasq does not have.
//!
//! - [`DhcpConfig::from_network`] turns a libvirt `<network>` into what the server hands out.
//! - [`DhcpServer::start`] runs it on a bridge; lease changes go to a [`LeaseSink`] before the
//!   ACK leaves, so an acknowledged lease is durable. All networks of a namespace share one
//!   socket on port 67 (`hub.rs`): each datagram goes to the server of the bridge it arrived
//!   on (`IP_PKTINFO`), anything that arrived elsewhere is dropped, and replies leave on that
//!   bridge. Group commit: the network's worker takes whatever of its datagrams is already
//!   queued (up to [`MAX_BATCH`], never waiting for more), serves them as one batch and
//!   records all their lease changes
//!   with one [`LeaseSink::record_batch`] (one store commit) before any reply of the batch
//!   leaves; a batch that cannot be stored is rolled back and none of its ACKs is sent
//!   ([`Engine::handle_batch`]). The batch is served on tokio's blocking pool (the sink may
//!   wait for an fsync; no async worker waits with it) while the worker awaits it. The socket
//!   has a [`RCVBUF`] receive buffer so that a burst of guests booting together is queued,
//!   not dropped.
//! - [`Engine`] is the pure protocol core (no sockets, no clock): every message type, address
//!   choice, limits. The hub (`hub.rs`) only moves bytes and asks the kernel.
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
mod hub;
mod ingress;
mod lease;
mod netlink;
mod ownership;
mod pool;
mod ratelimit;
mod reply;
mod server;
mod socket;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::{Boot, DhcpConfig, Limits, Range, StaticHost, DEFAULT_LEASE_SECS};
pub use error::DhcpError;
pub use hub::foreign_datagrams;
pub use ingress::Ingress;
pub use lease::{Lease, LeaseChange, LeaseSink, NullSink};
pub use ownership::{Membership, Ownership, SharedOwnership, BLOCK_SIZE};
pub use ratelimit::{PortId, RateLimiter};
pub use reply::{Destination, Reply};
pub use server::{
    client_mac, sanitize_hostname, Engine, NoProbe, Probe, Request, Stats, DECLINE_QUARANTINE_SECS,
    MAX_PROBES, OFFER_SECS,
};
pub use socket::{set_rcvbuf, CLIENT_PORT, MAX_BATCH, RCVBUF, SERVER_PORT, SWEEP_INTERVAL};
pub use wire::decode;

/// How long [`DhcpServer::stop`] waits for a batch being served to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The running DHCPv4 server of one network: its engine, registered on the namespace's one
/// DHCP socket (see `hub.rs`) for its bridge.
pub struct DhcpServer {
    hub: Arc<hub::Hub>,
    slot: Option<Arc<hub::Slot>>,
    bridge: String,
}

impl std::fmt::Debug for DhcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpServer")
            .field("bridge", &self.bridge)
            .finish_non_exhaustive()
    }
}

impl DhcpServer {
    /// Synchronous; must be called inside a tokio runtime context (the namespace's DHCP task
    /// runs there).
    ///
    /// Registers the server for `bridge` on the namespace's DHCP socket (0.0.0.0:67, opened
    /// by the first server of this process in the calling thread's network namespace and
    /// shared by all of them, as are the ingress capture socket and an rtnetlink socket),
    /// loads `leases` (expired ones are reported as [`LeaseChange::Expired`] at once), and
    /// serves until [`DhcpServer::stop`] or drop. Only datagrams that arrived on `bridge` reach
    /// this server; its replies leave on `bridge`.
    pub fn start(
        config: DhcpConfig,
        bridge: &str,
        leases: Vec<Lease>,
        sink: Arc<dyn LeaseSink>,
    ) -> Result<DhcpServer, DhcpError> {
        Self::start_with(config, bridge, leases, sink, None)
    }

    /// [`DhcpServer::start`]; `ownership` makes it an overlay network's server, which picks
    /// new addresses only from this host's blocks ([`Engine::set_ownership`]).
    pub fn start_with(
        config: DhcpConfig,
        bridge: &str,
        leases: Vec<Lease>,
        sink: Arc<dyn LeaseSink>,
        ownership: Option<SharedOwnership>,
    ) -> Result<DhcpServer, DhcpError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| DhcpError::NoRuntime {
            bridge: bridge.to_string(),
        })?;
        let _guard = handle.enter();
        let hub = hub::Hub::get(bridge)?;
        let ifindex = hub.ifindex(bridge)?;
        let ingress = ingress::Ingress::open(ifindex).map_err(|source| DhcpError::Socket {
            bridge: bridge.to_string(),
            op: "open the ingress capture (AF_PACKET, ETH_P_ALL)",
            source,
        })?;
        let probe = netlink::NeighProbe {
            nl: ingress.links(),
            bridge: ifindex,
        };
        let network = config.network.clone();
        let mut engine = Engine::new(config, leases, sink, Box::new(probe));
        if let Some(ownership) = ownership {
            engine.set_ownership(ownership);
        }
        engine.sweep(socket::now());
        let slot = hub.register(Arc::new(Mutex::new(engine)), ingress, bridge, ifindex);
        tracing::info!(%network, %bridge, "DHCPv4 server started");
        Ok(DhcpServer {
            hub,
            slot: Some(slot),
            bridge: bridge.to_string(),
        })
    }

    fn engine(&self) -> Option<&Arc<Mutex<Engine>>> {
        self.slot.as_ref().map(|s| &s.engine)
    }

    /// Live update (ranges/hosts changed); keeps leases.
    pub fn reconfigure(&self, config: DhcpConfig) {
        if let Some(e) = self.engine() {
            socket::lock(e).reconfigure(config);
        }
        self.hub.sweep_soon();
    }

    /// The current (unexpired) leases, ordered by address.
    pub fn leases(&self) -> Vec<Lease> {
        self.engine()
            .map(|e| socket::lock(e).leases(socket::now()))
            .unwrap_or_default()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.engine()
            .map(|e| socket::lock(e).stats())
            .unwrap_or_default()
    }

    /// Sweeps expired leases now (the namespace's task also does every [`SWEEP_INTERVAL`]).
    pub fn sweep(&self) {
        if let Some(e) = self.engine() {
            socket::lock(e).sweep(socket::now());
        }
    }

    /// Stops serving; also on Drop. Once this returns, nothing more reaches the server and
    /// none of its replies is sent; a batch being served is waited for (up to 2 s), except on
    /// a current-thread runtime called from that runtime's own thread (the batch could not
    /// end while this waits).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let own_current_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        let wait = (!own_current_thread).then_some(STOP_WAIT);
        self.hub.unregister(&slot, wait);
    }
}
