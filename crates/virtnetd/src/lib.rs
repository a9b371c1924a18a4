//! # virtnetd
//!
//! The virtnet daemon: an HTTP/JSON API (`docs/API.md`) on a unix socket in front of an
//! embedded transactional store of network definitions with libvirt's semantics.
//!
//! - [`state`]: the daemon's parts and who owns what ([`state::AppState`]);
//! - [`store`]: the redb file and its durability rules;
//! - [`registry`]: the network registry (define, create, edit, undefine, autostart);
//! - [`services`]: DHCP and DNS of the running networks, leases and the event feed;
//! - [`kernel`]: networks in the kernel (bridges, addresses, routes, firewall), reconcile;
//! - [`reaper`]: deletes the bridges of destroyed networks off the request path;
//! - [`forwards`]: port forwards (resolved guests, map elements, following leases);
//! - [`guest_hosts`]: the guest-names file the NSS module answers from;
//! - [`ports`]: guest ports (taps), their moves and the guests' addresses;
//! - [`hostbridge`]: bridges made from host NICs;
//! - [`fabric`]: the BGP EVPN fabric through virtnet's own FRR daemons;
//! - [`api`]: the axum routes;
//! - [`libvirt`]: libvirt's RPC protocol on the network daemon's sockets (`virsh`, …);
//! - [`access`]: who may use which socket, and the audit log of changes;
//! - [`metrics`]: Prometheus metrics (`GET /metrics`, `--metrics-listen`);
//! - [`limits`]: the open-file limit raised at start, and errors naming a limit reached;
//! - [`server`]: start-up (locks, socket), serving and graceful shutdown.

#![warn(missing_docs)]

pub mod access;
pub mod activation;
pub mod api;
pub mod error;
pub mod external;
pub mod fabric;
pub mod forwards;
pub mod guest_hosts;
pub mod hostbridge;
pub mod kernel;
pub mod libvirt;
pub mod limits;
pub mod metrics;
pub mod ports;
pub mod reaper;
pub mod registry;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
mod sync;
pub mod web;

pub use error::{Error, Result};
