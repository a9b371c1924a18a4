//! DHCPv6 leases and the sink that makes them durable.

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// An address bound to one identity association (IA_NA) of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6 {
    /// The client's DUID.
    pub duid: Vec<u8>,
    /// The IA's id.
    pub iaid: u32,
    /// The leased address.
    pub ip: Ipv6Addr,
    /// The client's MAC when known: from a link-layer DUID (types 1 and 3) or an EUI-64
    /// link-local source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<[u8; 6]>,
    /// The bridge port (the tap's interface index) the client's last granting or renewing
    /// message came in on, when the capture named it. Anti-spoofing ties the lease to that
    /// port: the frame entered through it, whatever DUID or link-local address the guest
    /// chose (a DUID-EN or -UUID and a stable-privacy link-local address carry no MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The static host's name, else the first label of the name the client sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Expiry in unix seconds; `None` for an infinite lease.
    pub expires: Option<u64>,
}

impl Lease6 {
    /// Whether it ran out at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The key of its binding: DUID (hex) and IAID, `0003000102..:iaid`. Stable, so a store
    /// keyed by it holds one lease per binding.
    pub fn key(&self) -> String {
        let hex: String = self.duid.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}:{}", self.iaid)
    }
}

/// A change to the lease table, reported to the [`Lease6Sink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease6Change {
    /// A new binding (REQUEST, rapid-commit SOLICIT, or a RENEW/REBIND that recreated it).
    Granted(Lease6),
    /// A binding extended (RENEW, REBIND, or a REQUEST for the held address).
    Renewed(Lease6),
    /// Given back (RELEASE) or declined (DECLINE).
    Released(Lease6),
    /// Ran out without renewal.
    Expired(Lease6),
}

impl Lease6Change {
    /// The lease the change is about.
    pub fn lease(&self) -> &Lease6 {
        match self {
            Lease6Change::Granted(l)
            | Lease6Change::Renewed(l)
            | Lease6Change::Released(l)
            | Lease6Change::Expired(l) => l,
        }
    }

    /// Whether the lease exists after the change.
    pub fn present(&self) -> bool {
        matches!(self, Lease6Change::Granted(_) | Lease6Change::Renewed(_))
    }

    /// Whether it only moves the expiry of `previous`, the same binding on the same address
    /// (client, IAID, address, MAC, port and name unchanged): what
    /// [`Lease6Sink::record_extensions`] may record without waiting.
    pub fn is_extension(&self, previous: Option<&Lease6>) -> bool {
        let Lease6Change::Renewed(l) = self else {
            return false;
        };
        previous.is_some_and(|p| {
            p.duid == l.duid
                && p.iaid == l.iaid
                && p.ip == l.ip
                && p.mac == l.mac
                && p.port == l.port
                && p.hostname == l.hostname
        })
    }
}

/// Where lease changes go to be made durable (virtnetd: its store, through the lease writer
/// that DHCPv4 uses).
pub trait Lease6Sink: Send + Sync + 'static {
    /// Records `changes` of `network` all or nothing; called BEFORE the REPLY that grants or
    /// renews them leaves, so an acknowledged lease survives `kill -9`. An error withholds
    /// the REPLY (the client retries). Called on tokio's blocking pool, never on an async
    /// worker: it may wait for an fsync.
    fn record(&self, network: &str, changes: &[Lease6Change]) -> std::io::Result<()>;

    /// Records `changes` that only move the expiry of bindings the client already holds
    /// ([`Lease6Change::is_extension`]), without making the REPLY wait for them to be
    /// durable: a sink may queue them and return at once. The default records them as
    /// [`Lease6Sink::record`] does.
    ///
    /// Why losing such a write (a crash before it is committed) is harmless: the store still
    /// holds the same binding (same DUID, IAID and address) with the previous, earlier
    /// expiry. Until that expiry the restarted server has the address on record for that
    /// binding: it gives it to no one else and extends it at the client's next RENEW or
    /// REBIND (the binding's address is chosen first). After it, the address is released
    /// in the server's view while the client may still use it; its next RENEW or REBIND
    /// recreates the binding on the same address if still free (the address the client
    /// names is taken when free), and a newcomer would reach it only by a pick that lands on
    /// exactly that address in that window, after which the client is told lifetime 0 and
    /// moves. The previous expiry is at least half a lease after the lost write was made
    /// (clients renew at T1 = lease / 2), so that window needs a crash and a client that is
    /// late by at least half a lease. What is never deferred: a new binding or a new
    /// address (a REPLY for it must survive `kill -9`, or the address could be given twice),
    /// releases, declines and expiries.
    fn record_extensions(&self, network: &str, changes: &[Lease6Change]) -> std::io::Result<()> {
        self.record(network, changes)
    }
}

/// A sink that keeps nothing (tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink6;

impl Lease6Sink for NullSink6 {
    fn record(&self, _network: &str, _changes: &[Lease6Change]) -> std::io::Result<()> {
        Ok(())
    }
}

/// The MAC address behind a client: from its DUID when it is link-layer based (DUID-LLT,
/// type 1, or DUID-LL, type 3, with Ethernet hardware type 1), else from an EUI-64 link-local
/// source address (`fe80::XXYY:ZZff:feUU:VVWW`, universal/local bit flipped back).
pub fn client_mac(duid: &[u8], source: Ipv6Addr) -> Option<[u8; 6]> {
    let from_duid = match duid {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] => {
            <[u8; 6]>::try_from(mac).ok()
        }
        _ => None,
    };
    from_duid.or_else(|| {
        let o = source.octets();
        let link_local = o[0] == 0xfe && (o[1] & 0xc0) == 0x80;
        (link_local && o[11] == 0xff && o[12] == 0xfe)
            .then(|| [o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_come_from_link_layer_duids_or_eui64_sources() {
        let none: Ipv6Addr = "fe80::1".parse().expect("addr");
        assert_eq!(
            client_mac(&[0, 3, 0, 1, 0, 0x16, 0x3e, 0x11, 0x22, 0x33], none),
            Some([0, 0x16, 0x3e, 0x11, 0x22, 0x33])
        );
        assert_eq!(
            client_mac(
                &[0, 1, 0, 1, 0x18, 0xaa, 0x62, 0xfe, 0, 0x16, 0x3e, 0x44, 0x55, 0x66],
                none
            ),
            Some([0, 0x16, 0x3e, 0x44, 0x55, 0x66])
        );
        let eui: Ipv6Addr = "fe80::5054:ff:fe12:3456".parse().expect("addr");
        assert_eq!(
            client_mac(&[0, 4, 1, 2], eui),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(client_mac(&[0, 4, 1, 2], none), None);
    }
}
