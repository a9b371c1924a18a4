//! # virtnet-ra
//!
//! IPv6 router advertisements for virtnet's networks, without radvd or dnsmasq:
//!
//! - [`wire`]: the router solicitation and advertisement messages (RFC 4861, RFC 8106
//!   options), pure;
//! - [`config`]: what a network advertises, from its definition, as libvirt asks dnsmasq;
//! - [`server`]: one ICMPv6 socket and one timer for every network of the daemon.

#![warn(missing_docs)]

pub mod config;
pub mod server;
pub mod wire;

pub use config::RaConfig;
pub use server::RaServer;
