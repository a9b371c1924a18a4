//! # virtnet-dhcp6
//!
//! virtnet's DHCPv6 server (RFC 8415), for networks with
//! `<ip family='ipv6'><dhcp><range/><host/></dhcp></ip>`, as libvirt has dnsmasq serve them:
//!
//! - [`wire`]: a codec of its own that checks every length (hostile bytes end in `None`);
//! - [`Dhcp6Config::from_network`]: ranges, static hosts by DUID (`<host id>`) or by name
//!   (`<host name>`, matched against the name the client sends), `<lease>` times, DNS server
//!   (the gateway) and search list (the domain);
//! - [`Engine`]: the pure protocol core of one network: SOLICIT → ADVERTISE (or REPLY with
//!   rapid commit), REQUEST, RENEW, REBIND, RELEASE, DECLINE, CONFIRM and stateless
//!   INFORMATION-REQUEST; IA_NA only. Leases go to a [`Lease6Sink`] before the REPLY leaves;
//! - [`Dhcp6Server`]: one UDP socket on `[::]:547` for every bridge of the daemon, the
//!   arrival interface from `IPV6_PKTINFO`, replies only on that bridge.
//!
//! ## Address choice
//! A static host gets its address (unless another client holds it); a client keeps the
//! address of its binding (DUID + IAID; leases are handed in at start, so across restarts);
//! else an address it asks for, if free and in a range; else a deterministic pick from a hash
//! (FNV-1a) of DUID and IAID, probing forward (at most [`engine::MAX_PICK`] addresses). Never
//! handed out dynamically: the gateway, static addresses, declined addresses (10 minutes),
//! addresses held by another binding. A network with hosts but no range serves only its hosts
//! (dnsmasq's `static` mode): everyone else gets NoAddrsAvail.
//!
//! ## Limits
//! Every datagram is charged to the bridge port its frame came in on, as DHCPv4's are: the
//! DHCP capture of `virtnet-dhcp` (`ingress.rs`, one `AF_PACKET` socket per namespace) also
//! keeps IPv6 UDP to port 547, and each datagram of the shared socket is paired with its
//! captured frame by the kernel's receive stamp (`SO_TIMESTAMPNS`), source and payload. Per
//! port ([`Limits6`]): a token bucket (100 messages/s, burst 200) and at most 8 dynamic
//! bindings (static hosts exempt), so a guest rotating DUIDs, or source addresses with raw
//! sockets, takes 8 addresses, not the range. A datagram whose port is unknown (sent by the
//! host itself, its capture lost) is charged to its source address instead (the same cap).
//! On top, one token bucket per bridge (2,000 messages/s, burst 4,000) bounds what one
//! network costs.
//!
//! ## Durability
//! A new binding is stored durably before its REPLY leaves. A REPLY that only extends a
//! binding on the address it already has (RENEW, REBIND, a REQUEST of a client coming back)
//! does not wait for the store: [`Lease6Sink::record_extensions`] says why that is harmless.

#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod lease;
pub mod server;
mod table;
pub mod wire;

pub use config::{
    format_duid, parse_duid, Dhcp6Config, Host6, Limits6, Range6, DEFAULT_LEASE_SECS,
};
pub use engine::{Engine, PortId, Stats6};
pub use lease::{client_mac, Lease6, Lease6Change, Lease6Sink, NullSink6};
pub use server::Dhcp6Server;
