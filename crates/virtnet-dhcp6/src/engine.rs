//! The protocol core: one network's DHCPv6 state machine, free of sockets and clocks.
//!
//! [`Engine::handle_batch`] takes the datagrams received together (each with its source
//! address) and the time, and returns the replies to send. Group commit, as DHCPv4: the
//! messages are served in order with their lease changes applied to the table (journaled)
//! and collected; then ONE [`Lease6Sink::record`] stores them all before any reply is
//! returned — except when every change of the batch only extends a binding on the address it
//! already has: those go to [`Lease6Sink::record_extensions`], which need not wait for the
//! store (a lost extension leaves the earlier expiry on record, which is harmless: see there). When that fails, the table is rolled back and the batch served again with the
//! store treated as failing: no REPLY grants or renews anything (the client retries),
//! releases and declines take effect in memory only, ADVERTISEs, CONFIRM and
//! INFORMATION-REQUEST answers go out as they would have.

use std::net::Ipv6Addr;
use std::sync::Arc;

use crate::config::Dhcp6Config;
use crate::lease::{client_mac, Lease6, Lease6Change, Lease6Sink};
use crate::table::{Binding, Charge, Table};
use crate::wire::{self, IaAddr, IaNa, Message, Reply, Status};
pub use virtnet_dhcp::PortId;

/// How long a DECLINEd address stays out of the pool (as DHCPv4: 10 minutes).
pub const DECLINE_QUARANTINE_SECS: u64 = 600;
/// At most this many addresses are tried when picking a free one from the ranges.
pub const MAX_PICK: u128 = 4096;
/// Wire value of an infinite lifetime.
const INFINITE: u32 = u32::MAX;

/// Counters of one network's server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats6 {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped as malformed (or as server/relay messages).
    pub malformed: u64,
    /// Datagrams dropped by the bridge's rate limit.
    pub rate_limited: u64,
    /// Datagrams dropped as invalid for their type (a missing client id, another server's id).
    pub ignored: u64,
    /// ADVERTISEs sent.
    pub advertises: u64,
    /// REPLYs sent.
    pub replies: u64,
    /// IAs answered with NoAddrsAvail.
    pub no_addrs: u64,
    /// Bindings released.
    pub releases: u64,
    /// Addresses declined.
    pub declines: u64,
    /// INFORMATION-REQUESTs answered.
    pub informs: u64,
}

/// What happens to lease changes while a batch is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Applied and collected, recorded with the whole batch.
    Defer,
    /// The batch could not be stored: grants and renewals are refused (no REPLY), releases
    /// and declines take effect in memory only.
    Refuse,
}

/// Where a datagram came from: its source address (the client's MAC may be in it) and what
/// its bindings count against.
#[derive(Clone, Copy, Debug)]
struct Src {
    ip: Ipv6Addr,
    charge: Charge,
}

/// An address chosen for an IA.
#[derive(Clone, Debug)]
struct Choice {
    ip: Ipv6Addr,
    lease_secs: Option<u32>,
    name: Option<String>,
    is_static: bool,
}

/// The state of one network's DHCPv6 server.
pub struct Engine {
    config: Dhcp6Config,
    server_duid: Vec<u8>,
    table: Table,
    mode: Mode,
    pending: Vec<Lease6Change>,
    /// Whether a change in `pending` must be durable before the REPLYs leave (anything but
    /// an extension of a binding on its address: [`Lease6Change::is_extension`]).
    pending_durable: bool,
    /// Token bucket of the bridge: tokens, last refill (seconds).
    bucket: (u32, u64),
    /// Token buckets of the bridge's ports.
    ports: virtnet_dhcp::RateLimiter,
    stats: Stats6,
    sink: Arc<dyn Lease6Sink>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("network", &self.config.network)
            .field("leases", &self.table.leases().count())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// FNV-1a: stable across restarts, so a client maps to the same address.
fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The server's DUID on a bridge: DUID-LL (type 3, Ethernet) of the bridge's MAC, stable
/// across daemon restarts, so a client's RENEW still names this server after one.
pub fn server_duid(bridge_mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&bridge_mac);
    d
}

fn lifetimes(lease_secs: Option<u32>) -> (u32, u32, u32) {
    match lease_secs {
        // T1 at half, T2 at 80 % of the lease (RFC 8415 §21.4 recommends 0.5 and 0.8).
        Some(s) => (s / 2, s / 5 * 4, s),
        None => (INFINITE, INFINITE, INFINITE),
    }
}

impl Engine {
    /// A server for `config` answering as `server_duid`, starting from `leases` (from the
    /// store; expired ones are dropped at the first sweep).
    pub fn new(
        config: Dhcp6Config,
        server_duid: Vec<u8>,
        leases: Vec<Lease6>,
        sink: Arc<dyn Lease6Sink>,
    ) -> Engine {
        let burst = config.limits.burst;
        let mut e = Engine {
            config,
            server_duid,
            table: Table::default(),
            mode: Mode::Defer,
            pending: Vec::new(),
            pending_durable: false,
            bucket: (burst, 0),
            ports: virtnet_dhcp::RateLimiter::default(),
            stats: Stats6::default(),
            sink,
        };
        for l in leases {
            e.table.insert(l);
        }
        e
    }

    /// The configuration in force.
    pub fn config(&self) -> &Dhcp6Config {
        &self.config
    }

    /// Replaces the configuration (`net-update`); leases stay. A lease no longer valid is
    /// replaced at its next RENEW (its address sent with lifetime 0) and expires as usual.
    pub fn reconfigure(&mut self, config: Dhcp6Config) {
        self.config = config;
    }

    /// The counters.
    pub fn stats(&self) -> Stats6 {
        self.stats
    }

    /// The server's DUID.
    pub fn server_duid(&self) -> &[u8] {
        &self.server_duid
    }

    /// The leases not expired at `now`, by address.
    pub fn leases(&self, now: u64) -> Vec<Lease6> {
        let mut v: Vec<Lease6> = self
            .table
            .leases()
            .filter(|l| !l.expired(now))
            .cloned()
            .collect();
        v.sort_by_key(|l| l.ip);
        v
    }

    /// Whether `source` (a port, or a source address) holds its cap of dynamic bindings.
    fn at_cap(&self, source: Charge) -> bool {
        self.table.held_by(source) >= self.config.limits.max_leases_per_source
    }

    /// Whether a sweep at `now` has an expired lease to remove (and so to record).
    pub fn sweep_records(&self, now: u64) -> bool {
        self.table.leases().any(|l| l.expired(now))
    }

    /// Removes expired leases (recorded as [`Lease6Change::Expired`]; they go even if that
    /// fails) and quarantine entries; how many leases went.
    pub fn sweep(&mut self, now: u64) -> usize {
        self.table.sweep_quarantine(now);
        self.ports.sweep(now);
        let gone: Vec<Ipv6Addr> = self
            .table
            .leases()
            .filter(|l| l.expired(now))
            .map(|l| l.ip)
            .collect();
        let changes: Vec<Lease6Change> = gone
            .into_iter()
            .filter_map(|ip| self.table.remove(ip))
            .map(Lease6Change::Expired)
            .collect();
        if !changes.is_empty() {
            if let Err(e) = self.sink.record(&self.config.network, &changes) {
                tracing::warn!(network = %self.config.network, error = %e, "cannot record expired DHCPv6 leases");
            }
        }
        changes.len()
    }

    fn allow(&mut self, now: u64) -> bool {
        let lim = &self.config.limits;
        let burst = lim.burst.max(1);
        let (tokens, last) = &mut self.bucket;
        if now > *last {
            let elapsed = u32::try_from(now - *last).unwrap_or(u32::MAX);
            *tokens = tokens
                .saturating_add(elapsed.saturating_mul(lim.per_sec))
                .min(burst);
            *last = now;
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }

    /// One datagram from `source`, port unknown: the reply to send to it, if any (a batch
    /// of one).
    pub fn handle(&mut self, now: u64, bytes: &[u8], source: Ipv6Addr) -> Option<Reply> {
        self.handle_from(now, bytes, source, PortId::Unknown)
    }

    /// One datagram from `source` that came in on `port`: the reply to send, if any.
    pub fn handle_from(
        &mut self,
        now: u64,
        bytes: &[u8],
        source: Ipv6Addr,
        port: PortId,
    ) -> Option<Reply> {
        self.handle_ported(now, &[(bytes, source, port)])
            .pop()
            .flatten()
    }

    /// [`Engine::handle_ported`] of datagrams whose ports are unknown (each charged to its
    /// source address).
    pub fn handle_batch(&mut self, now: u64, batch: &[(&[u8], Ipv6Addr)]) -> Vec<Option<Reply>> {
        let ported: Vec<(&[u8], Ipv6Addr, PortId)> = batch
            .iter()
            .map(|(b, s)| (*b, *s, PortId::Unknown))
            .collect();
        self.handle_ported(now, &ported)
    }

    /// Datagrams received together, each with its source address and the bridge port it
    /// came in on, served in order with ONE [`Lease6Sink::record`] for all their lease
    /// changes (see the module docs); one reply slot per datagram, in order, to be sent only
    /// after this returns.
    pub fn handle_ported(
        &mut self,
        now: u64,
        batch: &[(&[u8], Ipv6Addr, PortId)],
    ) -> Vec<Option<Reply>> {
        // Admission (decoding, the buckets) once: a re-run below must not charge again.
        let admitted: Vec<Option<Message>> = batch
            .iter()
            .map(|(b, _, port)| self.admit(now, b, *port))
            .collect();
        let stats = self.stats;
        self.pending.clear();
        self.pending_durable = false;
        self.mode = Mode::Defer;
        self.table.begin();
        let replies = self.serve_all(now, batch, &admitted);
        if self.pending.is_empty() {
            self.table.commit();
            return replies;
        }
        let changes = std::mem::take(&mut self.pending);
        // A batch that only extends bindings on their addresses need not wait for the store
        // (why that is safe: `Lease6Sink::record_extensions`); anything else makes the whole
        // batch durable, extensions included (one commit either way).
        let recorded = if self.pending_durable {
            self.sink.record(&self.config.network, &changes)
        } else {
            self.sink.record_extensions(&self.config.network, &changes)
        };
        match recorded {
            Ok(()) => {
                self.table.commit();
                replies
            }
            Err(e) => {
                tracing::warn!(network = %self.config.network, error = %e,
                    changes = changes.len(), requests = batch.len(),
                    "cannot record DHCPv6 leases; not replying to their requests (clients retry)");
                self.table.rollback();
                self.stats = stats;
                self.mode = Mode::Refuse;
                let replies = self.serve_all(now, batch, &admitted);
                self.mode = Mode::Defer;
                self.pending.clear();
                replies
            }
        }
    }

    fn serve_all(
        &mut self,
        now: u64,
        batch: &[(&[u8], Ipv6Addr, PortId)],
        admitted: &[Option<Message>],
    ) -> Vec<Option<Reply>> {
        batch
            .iter()
            .zip(admitted)
            .map(|((_, ip, port), m)| {
                let charge = match port {
                    PortId::Port(i) => Charge::Port(*i),
                    PortId::Unknown => Charge::Source(*ip),
                };
                let src = Src { ip: *ip, charge };
                m.as_ref().and_then(|m| self.serve(now, m, src))
            })
            .collect()
    }

    /// Counts, decodes, rate-limits (its port's bucket, then the bridge's) and checks one
    /// datagram; the message when it is served.
    fn admit(&mut self, now: u64, bytes: &[u8], port: PortId) -> Option<Message> {
        self.stats.received += 1;
        let Some(msg) = wire::decode(bytes) else {
            self.stats.malformed += 1;
            return None;
        };
        let lim = &self.config.limits;
        let port_ok = match port {
            PortId::Port(_) => self
                .ports
                .allow(port, now, lim.per_port_sec, lim.per_port_burst),
            PortId::Unknown => true,
        };
        if !port_ok || !self.allow(now) {
            self.stats.rate_limited += 1;
            return None;
        }
        let ours = msg.server_id.as_deref() == Some(self.server_duid.as_slice());
        // RFC 8415 §16: which messages must (not) carry a client and a server identifier.
        let valid = match msg.kind {
            wire::SOLICIT | wire::CONFIRM | wire::REBIND => {
                msg.client_id.is_some() && msg.server_id.is_none()
            }
            wire::REQUEST | wire::RENEW | wire::RELEASE | wire::DECLINE => {
                msg.client_id.is_some() && ours
            }
            wire::INFORMATION_REQUEST => msg.server_id.is_none() || ours,
            _ => false,
        };
        if !valid {
            self.stats.ignored += 1;
            return None;
        }
        Some(msg)
    }

    fn serve(&mut self, now: u64, msg: &Message, source: Src) -> Option<Reply> {
        let reply = match msg.kind {
            wire::SOLICIT => self.solicit(now, msg, source),
            wire::REQUEST => self.request(now, msg, source),
            wire::RENEW | wire::REBIND => self.renew(now, msg, source),
            wire::RELEASE => Some(self.release(msg)),
            wire::DECLINE => Some(self.decline(now, msg)),
            wire::CONFIRM => self.confirm(msg),
            _ => Some(self.inform(msg)),
        }?;
        if reply.kind() == wire::ADVERTISE {
            self.stats.advertises += 1;
        } else {
            self.stats.replies += 1;
        }
        Some(reply)
    }

    /// A reply of `kind` with the identifiers and the configuration every answer carries.
    fn base(&self, kind: u8, msg: &Message) -> Reply {
        Reply::new(kind, msg.xid)
            .ids(&self.server_duid, msg.client_id.as_deref())
            .dns_servers(&self.config.dns)
            .domains(&self.config.domains)
    }

    fn static_for(&self, duid: &[u8], hostname: Option<&str>) -> Option<&crate::config::Host6> {
        let hosts = &self.config.hosts;
        hosts
            .iter()
            .find(|h| h.duid.is_some() && h.matches(duid, hostname))
            .or_else(|| hosts.iter().find(|h| h.matches(duid, hostname)))
    }

    /// Who holds `ip` at `now`.
    fn owner(&self, ip: Ipv6Addr, now: u64) -> Option<Binding> {
        self.table
            .lease_at(ip)
            .filter(|l| !l.expired(now))
            .map(|l| (l.duid.clone(), l.iaid))
    }

    /// Whether `ip` may be handed out dynamically to `binding`.
    fn usable(&self, ip: Ipv6Addr, binding: &Binding, now: u64) -> bool {
        self.config.range_of(ip).is_some()
            && ip != self.config.gateway
            && !self.config.hosts.iter().any(|h| h.ip == ip)
            && !self.table.quarantined(ip, now)
            && self.owner(ip, now).is_none_or(|o| &o == binding)
    }

    fn dynamic(&self, ip: Ipv6Addr) -> Choice {
        Choice {
            ip,
            lease_secs: self
                .config
                .range_of(ip)
                .map_or(Some(crate::config::DEFAULT_LEASE_SECS), |r| r.lease_secs),
            name: None,
            is_static: false,
        }
    }

    /// The address for one IA: the static host's, the binding's, a hint of the client's, or
    /// (when `fresh`) one picked from the ranges.
    fn choose(
        &self,
        now: u64,
        msg: &Message,
        ia: &IaNa,
        source: Src,
        fresh: bool,
    ) -> Option<Choice> {
        let duid = msg.client_id.as_deref()?;
        let binding = (duid.to_vec(), ia.iaid);
        if let Some(h) = self.static_for(duid, msg.hostname.as_deref()) {
            if self.owner(h.ip, now).is_some_and(|o| o != binding) {
                tracing::warn!(network = %self.config.network, ip = %h.ip, "static IPv6 address held by another client");
                return None;
            }
            return Some(Choice {
                ip: h.ip,
                lease_secs: h.lease_secs,
                name: h.name.clone(),
                is_static: true,
            });
        }
        if let Some(ip) = self.table.address_of(&binding) {
            if self.usable(ip, &binding, now) {
                return Some(self.dynamic(ip));
            }
        }
        if self.at_cap(source.charge) {
            tracing::debug!(network = %self.config.network, source = %source.ip,
                charge = ?source.charge, "port (or source address) at its lease cap");
            return None;
        }
        if let Some(a) = ia.addrs.iter().find(|a| self.usable(a.addr, &binding, now)) {
            return Some(self.dynamic(a.addr));
        }
        if !fresh {
            return None;
        }
        self.pick(now, &binding).map(|ip| self.dynamic(ip))
    }

    /// A deterministic start from the binding's hash, then forward to the first free
    /// address (at most [`MAX_PICK`] tried).
    fn pick(&self, now: u64, binding: &Binding) -> Option<Ipv6Addr> {
        let total: u128 = self
            .config
            .ranges
            .iter()
            .fold(0u128, |t, r| t.saturating_add(r.len()));
        if total == 0 {
            return None;
        }
        let seed = fnv(binding.0.iter().copied().chain(binding.1.to_be_bytes()));
        let start = u128::from(seed) % total;
        (0..total.min(MAX_PICK))
            .filter_map(|i| self.nth((start + i) % total))
            .find(|ip| self.usable(*ip, binding, now))
    }

    fn nth(&self, mut n: u128) -> Option<Ipv6Addr> {
        for r in &self.config.ranges {
            let len = r.len();
            if n < len {
                return u128::from(r.start).checked_add(n).map(Ipv6Addr::from);
            }
            n -= len;
        }
        None
    }

    fn bound_ia(iaid: u32, c: &Choice, dropped: impl Iterator<Item = Ipv6Addr>) -> IaNa {
        let (t1, t2, valid) = lifetimes(c.lease_secs);
        let mut addrs = vec![IaAddr {
            addr: c.ip,
            preferred: valid,
            valid,
        }];
        // Addresses the client holds that it must stop using (RFC 8415 §18.3.4).
        addrs.extend(dropped.filter(|a| *a != c.ip).map(|addr| IaAddr {
            addr,
            preferred: 0,
            valid: 0,
        }));
        IaNa {
            iaid,
            t1,
            t2,
            addrs,
            status: None,
        }
    }

    fn status_ia(iaid: u32, status: Status, text: &str) -> IaNa {
        IaNa {
            iaid,
            t1: 0,
            t2: 0,
            addrs: Vec::new(),
            status: Some((status, text.to_string())),
        }
    }

    /// Applies the bindings of `chosen`, to be recorded with the batch; `None` (bind
    /// nothing, send nothing) when the batch could not be stored.
    fn commit(
        &mut self,
        now: u64,
        msg: &Message,
        source: Src,
        chosen: &[(u32, Choice)],
    ) -> Option<()> {
        if chosen.is_empty() {
            return Some(());
        }
        if self.mode == Mode::Refuse {
            tracing::debug!(network = %self.config.network, "DHCPv6 leases not stored; not replying");
            return None;
        }
        let duid = msg.client_id.clone()?;
        for (iaid, c) in chosen {
            let binding = (duid.clone(), *iaid);
            let previous = self.table.lease_at(c.ip);
            let renewed = previous.is_some_and(|l| l.duid == duid && l.iaid == *iaid);
            let hostname = c.name.clone().or_else(|| msg.hostname.clone()).or_else(|| {
                previous
                    .filter(|_| renewed)
                    .and_then(|l| l.hostname.clone())
            });
            let lease = Lease6 {
                duid: duid.clone(),
                iaid: *iaid,
                ip: c.ip,
                mac: client_mac(&duid, source.ip),
                // The port it came in on; a renewal whose port is unknown keeps the one its
                // binding had (the guest did not move: its port's capture missed a frame).
                port: match source.charge {
                    Charge::Port(i) => Some(i),
                    Charge::Source(_) => previous.filter(|_| renewed).and_then(|l| l.port),
                },
                hostname,
                expires: c.lease_secs.map(|s| now + u64::from(s)),
            };
            let change = if renewed {
                Lease6Change::Renewed(lease.clone())
            } else {
                Lease6Change::Granted(lease.clone())
            };
            let extension = change.is_extension(previous);
            // The binding's earlier address, if it moves, is released.
            if let Some(old) = self.table.address_of(&binding).filter(|o| *o != c.ip) {
                if let Some(l) = self.table.lease_at(old) {
                    self.pending.push(Lease6Change::Released(l.clone()));
                    self.pending_durable = true;
                }
            }
            self.pending_durable |= !extension;
            self.pending.push(change);
            self.table.insert(lease);
            if !c.is_static {
                self.table.count(binding, source.charge);
            }
        }
        Some(())
    }

    /// SOLICIT: an ADVERTISE of what a REQUEST would get, or with rapid commit the REPLY.
    fn solicit(&mut self, now: u64, msg: &Message, source: Src) -> Option<Reply> {
        let chosen: Vec<(u32, Option<Choice>)> = msg
            .ias
            .iter()
            .map(|ia| (ia.iaid, self.choose(now, msg, ia, source, true)))
            .collect();
        let any = chosen.iter().any(|(_, c)| c.is_some());
        if !any {
            // RFC 8415 §18.3.9: only a NoAddrsAvail status when nothing would be assigned.
            self.stats.no_addrs += 1;
            return Some(
                Reply::new(wire::ADVERTISE, msg.xid)
                    .ids(&self.server_duid, msg.client_id.as_deref())
                    .status(Status::NoAddrsAvail, "no addresses available"),
            );
        }
        let rapid = msg.rapid_commit;
        if rapid {
            let granted: Vec<(u32, Choice)> = chosen
                .iter()
                .filter_map(|(iaid, c)| Some((*iaid, c.clone()?)))
                .collect();
            self.commit(now, msg, source, &granted)?;
        }
        let mut reply = self.base(if rapid { wire::REPLY } else { wire::ADVERTISE }, msg);
        if rapid {
            reply = reply.rapid_commit();
        } else {
            // Authoritative for its link: the client need not wait for other servers.
            reply = reply.preference(255);
        }
        for (iaid, c) in &chosen {
            reply = match c {
                Some(c) => reply.ia(&Self::bound_ia(*iaid, c, std::iter::empty())),
                None => {
                    self.stats.no_addrs += 1;
                    reply.ia(&Self::status_ia(
                        *iaid,
                        Status::NoAddrsAvail,
                        "no addresses available",
                    ))
                }
            };
        }
        Some(reply)
    }

    /// REQUEST: binds what can be bound, one store commit for all the IAs.
    fn request(&mut self, now: u64, msg: &Message, source: Src) -> Option<Reply> {
        let chosen: Vec<(u32, Option<Choice>)> = msg
            .ias
            .iter()
            .map(|ia| (ia.iaid, self.choose(now, msg, ia, source, true)))
            .collect();
        let granted: Vec<(u32, Choice)> = chosen
            .iter()
            .filter_map(|(iaid, c)| Some((*iaid, c.clone()?)))
            .collect();
        self.commit(now, msg, source, &granted)?;
        let mut reply = self.base(wire::REPLY, msg);
        for (ia, (_, c)) in msg.ias.iter().zip(&chosen) {
            reply = match c {
                Some(c) => reply.ia(&Self::bound_ia(ia.iaid, c, ia.addrs.iter().map(|a| a.addr))),
                None => {
                    self.stats.no_addrs += 1;
                    reply.ia(&Self::status_ia(
                        ia.iaid,
                        Status::NoAddrsAvail,
                        "no addresses available",
                    ))
                }
            };
        }
        Some(reply)
    }

    /// RENEW and REBIND: extends the binding (or recreates it on the address the client
    /// holds, when that is still free); what the client may no longer use goes back with
    /// lifetime 0.
    fn renew(&mut self, now: u64, msg: &Message, source: Src) -> Option<Reply> {
        let chosen: Vec<(u32, Option<Choice>)> = msg
            .ias
            .iter()
            .map(|ia| (ia.iaid, self.choose(now, msg, ia, source, false)))
            .collect();
        let granted: Vec<(u32, Choice)> = chosen
            .iter()
            .filter_map(|(iaid, c)| Some((*iaid, c.clone()?)))
            .collect();
        self.commit(now, msg, source, &granted)?;
        let mut reply = self.base(wire::REPLY, msg);
        for (ia, (_, c)) in msg.ias.iter().zip(&chosen) {
            reply = match c {
                Some(c) => reply.ia(&Self::bound_ia(ia.iaid, c, ia.addrs.iter().map(|a| a.addr))),
                None if msg.kind == wire::RENEW => {
                    reply.ia(&Self::status_ia(ia.iaid, Status::NoBinding, "no binding"))
                }
                // REBIND of addresses this server will not extend: lifetime 0 (§18.3.5).
                None => reply.ia(&IaNa {
                    iaid: ia.iaid,
                    t1: 0,
                    t2: 0,
                    addrs: ia
                        .addrs
                        .iter()
                        .map(|a| IaAddr {
                            addr: a.addr,
                            preferred: 0,
                            valid: 0,
                        })
                        .collect(),
                    status: None,
                }),
            };
        }
        Some(reply)
    }

    /// The client's leases among the addresses of `ia`.
    fn owned(&self, msg: &Message, ia: &IaNa) -> Vec<Ipv6Addr> {
        let Some(duid) = msg.client_id.as_deref() else {
            return Vec::new();
        };
        ia.addrs
            .iter()
            .map(|a| a.addr)
            .filter(|ip| {
                self.table
                    .lease_at(*ip)
                    .is_some_and(|l| l.duid == duid && l.iaid == ia.iaid)
            })
            .collect()
    }

    /// Removes leases the client gave back: recorded with the batch; when the batch could
    /// not be stored they go anyway (the client has let them go), in memory only.
    fn drop_leases(&mut self, ips: &[Ipv6Addr]) {
        let gone: Vec<Lease6> = ips.iter().filter_map(|ip| self.table.remove(*ip)).collect();
        match self.mode {
            Mode::Defer => {
                self.pending_durable |= !gone.is_empty();
                self.pending
                    .extend(gone.into_iter().map(Lease6Change::Released));
            }
            Mode::Refuse if !gone.is_empty() => {
                tracing::warn!(network = %self.config.network, released = gone.len(),
                    "released DHCPv6 leases not recorded");
            }
            Mode::Refuse => {}
        }
    }

    fn release(&mut self, msg: &Message) -> Reply {
        let mut reply = Reply::new(wire::REPLY, msg.xid)
            .ids(&self.server_duid, msg.client_id.as_deref())
            .status(Status::Success, "released");
        for ia in &msg.ias {
            let ips = self.owned(msg, ia);
            if ips.is_empty() {
                reply = reply.ia(&Self::status_ia(ia.iaid, Status::NoBinding, "no binding"));
                continue;
            }
            self.stats.releases += ips.len() as u64;
            self.drop_leases(&ips);
        }
        reply
    }

    fn decline(&mut self, now: u64, msg: &Message) -> Reply {
        let mut reply = Reply::new(wire::REPLY, msg.xid)
            .ids(&self.server_duid, msg.client_id.as_deref())
            .status(Status::Success, "declined");
        for ia in &msg.ias {
            // Only an address this client was given can be declined: otherwise any guest
            // could take addresses out of the pool.
            let ips = self.owned(msg, ia);
            if ips.is_empty() {
                reply = reply.ia(&Self::status_ia(ia.iaid, Status::NoBinding, "no binding"));
                continue;
            }
            for ip in &ips {
                tracing::warn!(network = %self.config.network, %ip,
                    "client declined IPv6 address (in use by someone else); quarantined");
                self.table.quarantine(*ip, now + DECLINE_QUARANTINE_SECS);
            }
            self.stats.declines += ips.len() as u64;
            self.drop_leases(&ips);
        }
        reply
    }

    /// CONFIRM: whether the client's addresses are on this link (RFC 8415 §18.3.3); no
    /// reply when it names none.
    fn confirm(&self, msg: &Message) -> Option<Reply> {
        let addrs: Vec<Ipv6Addr> = msg
            .ias
            .iter()
            .flat_map(|ia| ia.addrs.iter().map(|a| a.addr))
            .collect();
        if addrs.is_empty() {
            return None;
        }
        let on_link = addrs.iter().all(|a| self.config.on_link(*a));
        let (status, text) = if on_link {
            (Status::Success, "on link")
        } else {
            (Status::NotOnLink, "not on link")
        };
        Some(
            Reply::new(wire::REPLY, msg.xid)
                .ids(&self.server_duid, msg.client_id.as_deref())
                .status(status, text),
        )
    }

    /// INFORMATION-REQUEST (stateless): DNS servers and the search list.
    fn inform(&mut self, msg: &Message) -> Reply {
        self.stats.informs += 1;
        self.base(wire::REPLY, msg)
    }
}
