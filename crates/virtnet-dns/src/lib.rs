//! # virtnet-dns
//!
//! The per-network DNS server of virtnet: what libvirt gets from dnsmasq, without dnsmasq.
//!
//! - [`DnsConfig::from_network`] turns a [`virtnet_model::Network`] into what the server needs
//!   (local records, local-only domains, forwarders), with dnsmasq's semantics for each libvirt
//!   XML construct.
//! - [`Zone`] is the pure answering logic: for one question it says
//!   [`Answer::Local`], [`Answer::NxDomain`], [`Answer::Refused`] or [`Answer::Forward`].
//! - [`handle_query`] decodes a wire message and answers it from a [`Zone`] (the fuzzed path);
//!   [`ReplyCache`] keeps its encoded local answers so that a repeated question (up to its id)
//!   costs one hash lookup and a copy over UDP.
//! - [`DnsServer`] binds UDP and TCP on the network's gateway addresses only (never a
//!   wildcard), answers from the zone and forwards the rest upstream. Over UDP, each wake-up
//!   takes every queued query with one `recvmmsg` and sends the local answers with one
//!   `sendmmsg`.
//!
//! Module layout: `config` (XML → [`DnsConfig`]), `resolve` (names → answers), `handle` (wire
//! format), `forward` (upstream exchanges), `listen` (sockets), `batch` (`recvmmsg`/`sendmmsg`
//! of queued UDP queries and their replies), `server` (tasks and lifecycle).

#![warn(missing_docs)]

mod batch;
mod config;
mod error;
mod forward;
mod handle;
pub mod histogram;
mod listen;
mod names;
mod query_stats;
mod resolve;
mod server;

pub use config::{host_resolvers, DnsConfig, DomainRoute, HostRecord, SrvRecord, TxtRecord};
pub use error::DnsError;
pub use handle::{handle_query, Outcome, ReplyCache, Transport};
pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
pub use query_stats::QTYPES;
pub use resolve::{Answer, GuestName, Zone};
pub use server::{DnsServer, DnsStats};
