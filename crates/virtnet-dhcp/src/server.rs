//! The protocol core: one network's DHCPv4 state machine, free of sockets and clocks.
//!
//! [`Engine::handle`] takes a decoded message, the bridge port it came from and the time, and
//! returns the reply to send, if any; [`Engine::handle_batch`] does the same for several
//! messages received together. Lease changes go to the [`LeaseSink`] before the replies are
//! returned; address conflicts are asked of a [`Probe`] (the kernel's neighbour table in
//! production, a fake in tests).
//!
//! ## Group commit
//! The messages of a batch are served in order with their lease changes (grants, renewals,
//! releases, declines) collected, not recorded; then ONE [`LeaseSink::record_batch`] stores
//! them all (one store commit for a burst, where one per ACK would queue the burst behind the
//! disk), and only then are the replies handed back. If that fails, the table is rolled back
//! to where it was before the batch (a journal of every change, see `pool.rs`) and the batch
//! is served again with the store treated as failing: no ACK for a new or renewed lease (the
//! client retries; a NAK would make a renewing client drop a working address over a
//! transient storage error), releases and declines take effect in memory only (logged), and
//! OFFERs, NAKs and INFORM answers go out as they would have. So the engine never holds a
//! lease the store was not told about, and a failed batch ends exactly as the same messages
//! would each have ended against a failing store.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};

use crate::config::{DhcpConfig, DEFAULT_LEASE_SECS};
use crate::lease::{Lease, LeaseChange, LeaseSink};
use crate::ownership::SharedOwnership;
use crate::pool::{ClientKey, Offer, Pool};
use crate::ratelimit::{PortId, RateLimiter};
use crate::reply::{self, Destination, Grant, Reply};
use crate::wire::decode;

/// How long an OFFER reserves its address.
pub const OFFER_SECS: u64 = 30;
/// How long a DECLINEd address stays out of the pool (dnsmasq: 10 minutes).
pub const DECLINE_QUARANTINE_SECS: u64 = 600;
/// At most this many neighbour-table conflicts are skipped while picking one address.
pub const MAX_PROBES: usize = 16;
/// Longest host name recorded from a client (one DNS label).
pub const MAX_HOSTNAME: usize = 63;

/// Counters of one server since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped as undecodable or without a message type.
    pub malformed: u64,
    /// Messages dropped by a port's rate limit.
    pub rate_limited: u64,
    /// Datagrams whose ingress port was not found (the host's own, or their frame's capture
    /// was lost), charged to the shared unknown-port bucket.
    pub unknown_port: u64,
    /// DISCOVERs served (admitted: well formed, within their port's rate limit).
    pub discovers: u64,
    /// REQUESTs served (admitted, as [`Stats::discovers`]).
    pub requests: u64,
    /// OFFERs sent.
    pub offers: u64,
    /// ACKs sent (including INFORM's and rapid commit's).
    pub acks: u64,
    /// NAKs sent.
    pub naks: u64,
    /// DECLINEs accepted.
    pub declines: u64,
    /// RELEASEs accepted.
    pub releases: u64,
    /// INFORMs answered.
    pub informs: u64,
}

/// Asks whether an address is in use by someone other than the client about to get it.
pub trait Probe: Send {
    /// True when `ip` is known to belong to a MAC other than `mac`.
    fn conflict(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) -> bool;

    /// The IPv4 address the network's neighbour table gives to `mac`, if any: on an overlay
    /// network, a guest that moved here from another host has its MAC/IP route (EVPN type
    /// 2) from there. `None` by default.
    fn address_of(&mut self, _mac: &[u8; 6]) -> Option<Ipv4Addr> {
        None
    }

    /// Makes a lease just granted known at once (an overlay network's neighbour entry, which
    /// EVPN announces to the other hosts as a MAC/IP route). Nothing by default.
    fn announce(&mut self, _ip: Ipv4Addr, _mac: &[u8; 6]) {}
}

/// A probe that never finds a conflict.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn conflict(&mut self, _ip: Ipv4Addr, _mac: &[u8; 6]) -> bool {
        false
    }
}

/// A decoded request and the bridge port it came from.
#[derive(Clone, Debug)]
pub struct Request {
    /// The message.
    pub msg: Message,
    /// The bridge port the request's frame came in on.
    pub port: PortId,
}

/// The client MAC of a BOOTREQUEST from an Ethernet client (`htype` 1, `hlen` 6); `None` for
/// anything else, which the server ignores.
pub fn client_mac(msg: &Message) -> Option<[u8; 6]> {
    if msg.opcode() != Opcode::BootRequest || msg.htype() != HType::Eth || msg.hlen() != 6 {
        return None;
    }
    // hlen is 6, so chaddr() cannot slice past its 16 bytes.
    msg.chaddr().try_into().ok()
}

/// Keeps letters, digits and '-' of the first label, at most 63 of them.
pub fn sanitize_hostname(name: &str) -> Option<String> {
    let label = name.split('.').next().unwrap_or("");
    let s: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_HOSTNAME)
        .collect();
    let s = s.trim_matches('-').to_string();
    (!s.is_empty()).then_some(s)
}

/// FNV-1a: a stable hash, so a MAC maps to the same address across restarts.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The address chosen for a client.
struct Choice {
    ip: Ipv4Addr,
    lease_secs: Option<u32>,
    static_name: Option<String>,
    is_static: bool,
}

/// What the client said about itself, pulled out of the options once.
struct Client {
    mac: [u8; 6],
    client_id: Option<Vec<u8>>,
    key: ClientKey,
    port: PortId,
    hostname: Option<String>,
}

/// What happens to a lease change while a batch is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Collected in `pending`, recorded with the whole batch.
    Defer,
    /// The batch could not be stored: new and renewed leases are refused (no ACK), releases
    /// and declines take effect in memory only.
    Refuse,
}

/// The state machine of one network's DHCPv4 server.
pub struct Engine {
    config: DhcpConfig,
    pool: Pool,
    limiter: RateLimiter,
    stats: Stats,
    sink: Arc<dyn LeaseSink>,
    probe: Box<dyn Probe>,
    mode: Mode,
    pending: Vec<LeaseChange>,
    /// An overlay network's block owners (`ownership.rs`): dynamic picks only from this
    /// host's blocks. `None` on other networks: every address is this host's.
    ownership: Option<SharedOwnership>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("network", &self.config.network)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A server for `config` starting from `leases` (from the store: clients keep their
    /// addresses across daemon restarts).
    pub fn new(
        config: DhcpConfig,
        leases: Vec<Lease>,
        sink: Arc<dyn LeaseSink>,
        probe: Box<dyn Probe>,
    ) -> Engine {
        let mut pool = Pool::default();
        for l in leases {
            pool.insert_lease(l, None);
        }
        Engine {
            config,
            pool,
            limiter: RateLimiter::default(),
            stats: Stats::default(),
            sink,
            probe,
            mode: Mode::Defer,
            pending: Vec::new(),
            ownership: None,
        }
    }

    /// Makes this an overlay network's engine: new addresses are picked only from the blocks
    /// `ownership` gives this host; a client's own lease or offer, a static host and an
    /// address a client asks for (checked against the neighbour table) are served as before;
    /// granted leases are announced through the [`Probe`].
    pub fn set_ownership(&mut self, ownership: SharedOwnership) {
        self.ownership = Some(ownership);
    }

    /// The configuration in force.
    pub fn config(&self) -> &DhcpConfig {
        &self.config
    }

    /// Replaces the configuration; leases stay (a lease no longer valid is NAKed at its next
    /// renewal and expires as usual).
    pub fn reconfigure(&mut self, config: DhcpConfig) {
        self.config = config;
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The leases not expired at `now`.
    pub fn leases(&self, now: u64) -> Vec<Lease> {
        let mut v: Vec<Lease> = self
            .pool
            .leases()
            .filter(|l| !l.expired(now))
            .cloned()
            .collect();
        v.sort_by_key(|l| l.ip);
        v
    }

    /// Whether [`Engine::sweep`] has a lease to remove (and so something to record, which may
    /// wait for the store). A sweep without one only drops expired offers, quarantine entries
    /// and idle rate-limit buckets: memory only, cheap enough for an async worker.
    pub fn sweep_records(&self, now: u64) -> bool {
        self.pool.any_lease_expired(now)
    }

    /// Removes expired leases (reporting them as [`LeaseChange::Expired`], all in one
    /// [`LeaseSink::record_batch`]), offers and quarantine. The leases go even if recording
    /// fails (logged): they ran out.
    pub fn sweep(&mut self, now: u64) -> usize {
        let gone = self.pool.sweep(now);
        self.limiter.sweep(now);
        if gone.is_empty() {
            return 0;
        }
        for l in &gone {
            tracing::debug!(network = %self.config.network, ip = %l.ip, "lease expired");
        }
        let changes: Vec<LeaseChange> = gone.into_iter().map(LeaseChange::Expired).collect();
        if let Err(e) = self.sink.record_batch(&self.config.network, &changes) {
            tracing::warn!(network = %self.config.network, error = %e, expired = changes.len(),
                "cannot record expired leases");
        }
        changes.len()
    }

    /// One datagram from the socket, decoded (counted in [`Stats::received`] and
    /// [`Stats::malformed`]), with its port looked up with `port_of` (only for a well-formed
    /// Ethernet request); `None` when it is to be ignored. Feed the results to
    /// [`Engine::handle_batch`].
    pub fn accept_datagram(
        &mut self,
        bytes: &[u8],
        port_of: impl FnOnce(&[u8; 6]) -> PortId,
    ) -> Option<Request> {
        self.stats.received += 1;
        let Some(msg) = decode(bytes) else {
            self.stats.malformed += 1;
            return None;
        };
        let mac = client_mac(&msg)?;
        let port = port_of(&mac);
        if port == PortId::Unknown {
            self.stats.unknown_port += 1;
        }
        Some(Request { msg, port })
    }

    /// One datagram from the socket: [`Engine::accept_datagram`], then handled alone.
    pub fn handle_datagram(
        &mut self,
        now: u64,
        bytes: &[u8],
        port_of: impl FnOnce(&[u8; 6]) -> PortId,
    ) -> Option<Reply> {
        let req = self.accept_datagram(bytes, port_of)?;
        self.serve_batch(now, std::slice::from_ref(&req))
            .pop()
            .flatten()
    }

    /// Handles one decoded request (a batch of one: at most one store commit).
    pub fn handle(&mut self, now: u64, req: Request) -> Option<Reply> {
        self.stats.received += 1;
        self.serve_batch(now, std::slice::from_ref(&req))
            .pop()
            .flatten()
    }

    /// Handles requests received together, in order, with ONE [`LeaseSink::record_batch`]
    /// for all their lease changes (see the module docs, "Group commit"). The replies, one per
    /// request in the same order, are to be sent only after this returns.
    pub fn handle_batch(&mut self, now: u64, reqs: &[Request]) -> Vec<Option<Reply>> {
        self.stats.received += reqs.len() as u64;
        self.serve_batch(now, reqs)
    }

    /// [`Engine::handle_batch`] for requests already counted as received.
    pub(crate) fn serve_batch(&mut self, now: u64, reqs: &[Request]) -> Vec<Option<Reply>> {
        // Admission (message type, rate limits) once: a re-run below must not charge again.
        let kinds: Vec<Option<MessageType>> = reqs.iter().map(|r| self.admit(now, r)).collect();
        let stats = self.stats;
        self.pending.clear();
        self.mode = Mode::Defer;
        self.pool.begin();
        let replies = self.serve_all(now, reqs, &kinds);
        if self.pending.is_empty() {
            self.pool.commit();
            return replies;
        }
        let changes = std::mem::take(&mut self.pending);
        match self.sink.record_batch(&self.config.network, &changes) {
            Ok(()) => {
                self.pool.commit();
                self.announce(&changes);
                replies
            }
            Err(e) => {
                tracing::warn!(network = %self.config.network, error = %e,
                    changes = changes.len(), requests = reqs.len(),
                    "cannot record lease changes; not acknowledging them (clients retry)");
                self.pool.rollback();
                self.stats = stats;
                self.mode = Mode::Refuse;
                let replies = self.serve_all(now, reqs, &kinds);
                self.mode = Mode::Defer;
                self.pending.clear();
                replies
            }
        }
    }

    /// On an overlay network, the neighbour entries of leases just granted or renewed (see
    /// [`Probe::announce`]), so the other hosts' probes see them before the guest speaks.
    fn announce(&mut self, changes: &[LeaseChange]) {
        if self.ownership.is_none() {
            return;
        }
        for change in changes {
            if let LeaseChange::Granted(l) | LeaseChange::Renewed(l) = change {
                self.probe.announce(l.ip, &l.mac);
            }
        }
    }

    fn serve_all(
        &mut self,
        now: u64,
        reqs: &[Request],
        kinds: &[Option<MessageType>],
    ) -> Vec<Option<Reply>> {
        reqs.iter()
            .zip(kinds)
            .map(|(r, k)| k.and_then(|k| self.dispatch(now, r, k)))
            .collect()
    }

    /// Whether the request is served at all: an Ethernet BOOTREQUEST with a message type, not
    /// relayed, within its port's rate limit. Its message type when it is.
    fn admit(&mut self, now: u64, req: &Request) -> Option<MessageType> {
        let msg = &req.msg;
        client_mac(msg)?;
        let Some(kind) = msg_type(msg) else {
            self.stats.malformed += 1;
            return None;
        };
        // Relayed requests cannot reach a bridge-bound server legitimately.
        if !msg.giaddr().is_unspecified() {
            return None;
        }
        let lim = &self.config.limits;
        if !self
            .limiter
            .allow(req.port, now, lim.requests_per_port_per_sec, lim.burst)
        {
            self.stats.rate_limited += 1;
            return None;
        }
        Some(kind)
    }

    fn dispatch(&mut self, now: u64, req: &Request, kind: MessageType) -> Option<Reply> {
        let msg = &req.msg;
        let mac = client_mac(msg)?;
        let client_id = match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        };
        let hostname = match msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => sanitize_hostname(h),
            _ => None,
        };
        let client = Client {
            mac,
            key: client_id.clone().map_or(ClientKey::Mac(mac), ClientKey::Id),
            client_id,
            port: req.port,
            hostname,
        };
        match kind {
            MessageType::Discover => {
                self.stats.discovers += 1;
                self.discover(now, msg, &client)
            }
            MessageType::Request => {
                self.stats.requests += 1;
                self.request(now, msg, &client)
            }
            MessageType::Decline => self.decline(now, msg, &client),
            MessageType::Release => self.release(msg, &client),
            MessageType::Inform => self.inform(msg, &client),
            _ => None,
        }
    }

    fn static_for(&self, c: &Client) -> Option<&crate::config::StaticHost> {
        if let Some(id) = &c.client_id {
            if let Some(h) = self
                .config
                .hosts
                .iter()
                .find(|h| h.client_id.as_ref() == Some(id))
            {
                return Some(h);
            }
        }
        self.config.hosts.iter().find(|h| h.mac == Some(c.mac))
    }

    /// Whether `ip` may be handed out dynamically to `key` at `now`.
    fn usable(&self, ip: Ipv4Addr, key: &ClientKey, now: u64) -> bool {
        let cfg = &self.config;
        cfg.in_subnet(ip)
            && ip != cfg.server
            && ip != cfg.network_addr()
            && ip != cfg.broadcast()
            && cfg.range_of(ip).is_some()
            && !cfg.hosts.iter().any(|h| h.ip == ip)
            && !self.pool.quarantined(ip, now)
            && self.pool.owner_at(ip, now).is_none_or(|k| &k == key)
    }

    fn range_lease(&self, ip: Ipv4Addr) -> Option<u32> {
        self.config
            .range_of(ip)
            .map_or(Some(DEFAULT_LEASE_SECS), |r| r.lease_secs)
    }

    fn dynamic(&self, ip: Ipv4Addr) -> Choice {
        Choice {
            ip,
            lease_secs: self.range_lease(ip),
            static_name: None,
            is_static: false,
        }
    }

    /// Whether the client already holds something (lease or offer) counted on its port.
    fn holds_something(&self, c: &Client, now: u64) -> bool {
        self.pool.lease_of(&c.key).is_some() || self.pool.offer_of(&c.key, now).is_some()
    }

    /// Whether the client's port holds its cap of dynamic addresses (expired offers are
    /// dropped first, so a burst of DISCOVERs holds addresses only briefly).
    fn over_cap(&mut self, c: &Client, now: u64) -> bool {
        let cap = self.config.limits.max_leases_per_port;
        if self.pool.held(c.port) < cap {
            return false;
        }
        self.pool.drop_expired_offers(now);
        self.pool.held(c.port) >= cap
    }

    /// The address to offer: static, previous, requested, or picked from the MAC's hash.
    fn choose(&mut self, now: u64, c: &Client, requested: Option<Ipv4Addr>) -> Option<Choice> {
        if let Some(h) = self.static_for(c) {
            let (ip, lease_secs, name) = (h.ip, h.lease_secs, h.name.clone());
            if self.pool.owner_at(ip, now).is_some_and(|k| k != c.key) {
                tracing::warn!(network = %self.config.network, %ip, "static address held by another client");
                return None;
            }
            return Some(Choice {
                ip,
                lease_secs,
                static_name: name,
                is_static: true,
            });
        }
        if let Some(ip) = self.pool.lease_of(&c.key).map(|l| l.ip) {
            if self.usable(ip, &c.key, now) {
                return Some(self.dynamic(ip));
            }
        }
        if let Some(ip) = self.pool.offer_of(&c.key, now).map(|o| o.ip) {
            if self.usable(ip, &c.key, now) {
                return Some(self.dynamic(ip));
            }
        }
        if !self.holds_something(c, now) && self.over_cap(c, now) {
            tracing::debug!(network = %self.config.network, port = ?c.port, "port at its lease cap");
            return None;
        }
        if let Some(ip) = requested.or_else(|| self.handed_over(c)) {
            if self.usable(ip, &c.key, now) && !self.probe.conflict(ip, &c.mac) {
                return Some(self.dynamic(ip));
            }
        }
        self.pick(now, c).map(|ip| self.dynamic(ip))
    }

    /// On an overlay network, the address EVPN shows for the client's MAC (its MAC/IP route
    /// from the host it moved from): a moved guest keeps its address even when it is in
    /// another host's block (issue 17, item 4). `choose` still checks it is free here and
    /// held by no other MAC.
    fn handed_over(&mut self, c: &Client) -> Option<Ipv4Addr> {
        self.ownership.as_ref()?;
        self.probe.address_of(&c.mac)
    }

    /// A deterministic start from the MAC's hash, then forward to the first free address
    /// (of this host's blocks, on an overlay network).
    fn pick(&mut self, now: u64, c: &Client) -> Option<Ipv4Addr> {
        let total: u64 = self.config.ranges.iter().map(|r| r.len()).sum();
        if total == 0 {
            return None;
        }
        let ownership = self.ownership.as_ref().and_then(SharedOwnership::get);
        let start = fnv(&c.mac) % total;
        let mut conflicts = 0;
        for i in 0..total {
            let Some(ip) = self.nth_address((start + i) % total) else {
                continue;
            };
            if ownership.as_ref().is_some_and(|o| !o.owns(ip)) || !self.usable(ip, &c.key, now) {
                continue;
            }
            if self.probe.conflict(ip, &c.mac) {
                conflicts += 1;
                if conflicts >= MAX_PROBES {
                    break;
                }
                continue;
            }
            return Some(ip);
        }
        None
    }

    /// The `n`th address over all ranges, in order.
    fn nth_address(&self, mut n: u64) -> Option<Ipv4Addr> {
        for r in &self.config.ranges {
            let len = r.len();
            if n < len {
                let v = u64::from(u32::from(r.start)) + n;
                return u32::try_from(v).ok().map(Ipv4Addr::from);
            }
            n -= len;
        }
        None
    }

    fn discover(&mut self, now: u64, msg: &Message, c: &Client) -> Option<Reply> {
        let requested = requested_ip(msg);
        let choice = self.choose(now, c, requested)?;
        if msg.opts().get(OptionCode::RapidCommit).is_some() {
            return self.commit(now, msg, c, choice, true);
        }
        let counted = (!choice.is_static && self.pool.lease_of(&c.key).is_none()).then_some(c.port);
        self.pool.insert_offer(
            c.key.clone(),
            Offer {
                ip: choice.ip,
                expires: now + OFFER_SECS,
                counted,
            },
        );
        let hostname = choice.static_name.clone().or_else(|| c.hostname.clone());
        let m = self.granting(msg, c, MessageType::Offer, &choice, hostname.as_deref());
        self.stats.offers += 1;
        Some(Reply {
            msg: m,
            dest: Destination::Broadcast,
        })
    }

    fn nak(&mut self, msg: &Message, c: &Client, why: &str) -> Option<Reply> {
        tracing::debug!(network = %self.config.network, mac = ?c.mac, why, "NAK");
        self.stats.naks += 1;
        Some(reply::nak(msg, &c.mac, &self.config, why))
    }

    fn request(&mut self, now: u64, msg: &Message, c: &Client) -> Option<Reply> {
        let ciaddr = msg.ciaddr();
        let requested = requested_ip(msg);
        let ip = match server_id(msg) {
            Some(sid) if sid != self.config.server => {
                // The client chose another server's offer: release ours.
                self.pool.remove_offer(&c.key);
                return None;
            }
            // SELECTING.
            Some(_) => requested.or((!ciaddr.is_unspecified()).then_some(ciaddr))?,
            // INIT-REBOOT.
            None if ciaddr.is_unspecified() => requested?,
            // RENEWING (unicast) or REBINDING (broadcast).
            None => ciaddr,
        };
        if !self.config.in_subnet(ip) {
            return self.nak(msg, c, "address not on this network");
        }
        if let Some(h) = self.static_for(c) {
            let choice = Choice {
                ip: h.ip,
                lease_secs: h.lease_secs,
                static_name: h.name.clone(),
                is_static: true,
            };
            if choice.ip != ip {
                return self.nak(msg, c, "wrong address");
            }
            if self.pool.owner_at(ip, now).is_some_and(|k| k != c.key) {
                return self.nak(msg, c, "address in use");
            }
            return self.commit(now, msg, c, choice, false);
        }
        if !self.usable(ip, &c.key, now) {
            return self.nak(msg, c, "address not available");
        }
        let held = self.pool.lease_of(&c.key).is_some_and(|l| l.ip == ip);
        let offered = self.pool.offer_of(&c.key, now).is_some_and(|o| o.ip == ip);
        if !held && !offered {
            // An address we never offered (INIT-REBOOT after our state was lost, or an offer
            // that ran out): authoritative like libvirt's dnsmasq, if it is free.
            if !self.holds_something(c, now) && self.over_cap(c, now) {
                return self.nak(msg, c, "too many leases on this port");
            }
            if self.probe.conflict(ip, &c.mac) {
                return self.nak(msg, c, "address in use");
            }
        }
        let choice = self.dynamic(ip);
        self.commit(now, msg, c, choice, false)
    }

    /// Applies the lease and builds the ACK; the change is recorded with the batch, before the
    /// ACK leaves.
    fn commit(
        &mut self,
        now: u64,
        msg: &Message,
        c: &Client,
        choice: Choice,
        rapid: bool,
    ) -> Option<Reply> {
        let previous = self.pool.lease_at(choice.ip).cloned();
        let renewed = previous
            .as_ref()
            .is_some_and(|l| ClientKey::of_lease(l) == c.key);
        let hostname = choice
            .static_name
            .clone()
            .or_else(|| c.hostname.clone())
            .or_else(|| {
                previous
                    .as_ref()
                    .filter(|_| renewed)
                    .and_then(|l| l.hostname.clone())
            });
        let lease = Lease {
            mac: c.mac,
            client_id: c.client_id.clone(),
            ip: choice.ip,
            hostname: hostname.clone(),
            expires: choice.lease_secs.map(|s| now + u64::from(s)),
        };
        let change = if renewed {
            LeaseChange::Renewed(lease.clone())
        } else {
            LeaseChange::Granted(lease.clone())
        };
        match self.mode {
            Mode::Defer => self.pending.push(change),
            Mode::Refuse => {
                tracing::debug!(network = %self.config.network, ip = %choice.ip,
                    "lease not stored; not acknowledging");
                return None;
            }
        }
        self.pool.remove_offer(&c.key);
        let counted = (!choice.is_static).then_some(c.port);
        self.pool.insert_lease(lease, counted);
        let mut m = self.granting(msg, c, MessageType::Ack, &choice, hostname.as_deref());
        if rapid {
            m.opts_mut().insert(DhcpOption::RapidCommit);
        }
        let ciaddr = msg.ciaddr();
        if !ciaddr.is_unspecified() {
            m.set_ciaddr(ciaddr);
        }
        self.stats.acks += 1;
        Some(Reply {
            msg: m,
            dest: if ciaddr.is_unspecified() {
                Destination::Broadcast
            } else {
                Destination::Unicast(ciaddr)
            },
        })
    }

    fn decline(&mut self, now: u64, msg: &Message, c: &Client) -> Option<Reply> {
        if server_id(msg).is_some_and(|s| s != self.config.server) {
            return None;
        }
        let ip = requested_ip(msg)?;
        // Only an address this client was given can be declined: otherwise any guest could
        // take addresses out of the pool by declining them.
        let leased = self
            .pool
            .lease_at(ip)
            .is_some_and(|l| ClientKey::of_lease(l) == c.key);
        let offered = self.pool.offer_of(&c.key, now).is_some_and(|o| o.ip == ip);
        if !leased && !offered {
            return None;
        }
        tracing::warn!(network = %self.config.network, %ip, mac = ?c.mac,
            "client declined address (in use by someone else); quarantined");
        self.pool.remove_offer(&c.key);
        if leased {
            if let Some(l) = self.pool.remove_lease(ip) {
                self.record_best_effort(LeaseChange::Released(l));
            }
        }
        self.pool.quarantine(ip, now + DECLINE_QUARANTINE_SECS);
        self.stats.declines += 1;
        None
    }

    fn release(&mut self, msg: &Message, c: &Client) -> Option<Reply> {
        if server_id(msg).is_some_and(|s| s != self.config.server) {
            return None;
        }
        let ip = msg.ciaddr();
        self.pool.remove_offer(&c.key);
        let mine = self
            .pool
            .lease_at(ip)
            .is_some_and(|l| ClientKey::of_lease(l) == c.key);
        if mine {
            if let Some(l) = self.pool.remove_lease(ip) {
                self.record_best_effort(LeaseChange::Released(l));
            }
            self.stats.releases += 1;
        }
        None
    }

    /// An OFFER or ACK of `choice` to `c`, with the options every grant carries.
    fn granting(
        &self,
        msg: &Message,
        c: &Client,
        kind: MessageType,
        choice: &Choice,
        hostname: Option<&str>,
    ) -> Message {
        let mut m = reply::skeleton(msg, &c.mac, kind, &self.config);
        reply::fill(
            &mut m,
            &self.config,
            Some(&Grant {
                yiaddr: choice.ip,
                lease_secs: choice.lease_secs,
                hostname,
            }),
        );
        m
    }

    fn inform(&mut self, msg: &Message, c: &Client) -> Option<Reply> {
        let ciaddr = msg.ciaddr();
        if !ciaddr.is_unspecified() && !self.config.in_subnet(ciaddr) {
            return None;
        }
        let mut m = reply::skeleton(msg, &c.mac, MessageType::Ack, &self.config);
        reply::fill(&mut m, &self.config, None);
        m.set_ciaddr(ciaddr);
        self.stats.informs += 1;
        self.stats.acks += 1;
        Some(Reply {
            msg: m,
            dest: if ciaddr.is_unspecified() {
                Destination::Broadcast
            } else {
                Destination::Unicast(ciaddr)
            },
        })
    }

    /// A release or decline: recorded with the batch; when the batch could not be stored it
    /// takes effect anyway (the client has let the address go), in memory only.
    fn record_best_effort(&mut self, change: LeaseChange) {
        match self.mode {
            Mode::Defer => self.pending.push(change),
            Mode::Refuse => {
                tracing::warn!(network = %self.config.network, ?change, "lease change not recorded");
            }
        }
    }
}

fn msg_type(msg: &Message) -> Option<MessageType> {
    match msg.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

fn requested_ip(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}
