//! Leases and the sink that makes them durable.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// An address bound to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Client hardware address (`chaddr`).
    pub mac: [u8; 6],
    /// Client identifier (option 61) when the client sent one.
    pub client_id: Option<Vec<u8>>,
    /// The leased address.
    pub ip: Ipv4Addr,
    /// Host name: the static host's name, else the (sanitised) name the client sent.
    pub hostname: Option<String>,
    /// Expiry in unix seconds; `None` for an infinite lease.
    pub expires: Option<u64>,
}

impl Lease {
    /// Whether the lease has run out at `now` (unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// A change to the lease table, reported to the [`LeaseSink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    /// A new lease (REQUEST, INIT-REBOOT or rapid-commit DISCOVER for an address the client
    /// did not hold).
    Granted(Lease),
    /// An existing lease extended (RENEWING/REBINDING, or a REQUEST for the held address).
    Renewed(Lease),
    /// The client gave the address back (RELEASE) or declined it (DECLINE).
    Released(Lease),
    /// The lease ran out without renewal (expiry sweep).
    Expired(Lease),
}

impl LeaseChange {
    /// The lease the change is about.
    pub fn lease(&self) -> &Lease {
        match self {
            LeaseChange::Granted(l)
            | LeaseChange::Renewed(l)
            | LeaseChange::Released(l)
            | LeaseChange::Expired(l) => l,
        }
    }
}

/// Where lease changes go to be made durable (virtnetd: its store).
pub trait LeaseSink: Send + Sync + 'static {
    /// Called BEFORE the ACK leaves (so an acked lease is durable); an Err makes the server
    /// NAK/drop instead of ACK. virtnet drops the request then (no reply): the client retries,
    /// where a NAK would make a renewing client give up a working address over a transient
    /// storage error. Errors recording a release or an expiry are logged; the lease goes
    /// anyway. Called with the server's state locked, by the running server on tokio's
    /// blocking pool (never on an async worker), so it may block until the change is
    /// durable; keep it to one store commit.
    fn record(&self, network: &str, change: &LeaseChange) -> std::io::Result<()>;

    /// Records several changes at once, all or nothing: the server calls this for the leases
    /// of the requests it received together, so one store commit covers a whole burst.
    /// The default records them one by one.
    fn record_batch(&self, network: &str, changes: &[LeaseChange]) -> std::io::Result<()> {
        for change in changes {
            self.record(network, change)?;
        }
        Ok(())
    }
}

/// A sink that keeps nothing (for tests and for networks whose leases need not survive).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl LeaseSink for NullSink {
    fn record(&self, _network: &str, _change: &LeaseChange) -> std::io::Result<()> {
        Ok(())
    }
}
