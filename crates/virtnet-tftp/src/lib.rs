//! # virtnet-tftp
//!
//! The read-only TFTP server of virtnet, for PXE boot: what libvirt gets from dnsmasq's
//! `enable-tftp` / `tftp-root=` when a network has `<ip><tftp root='…'/></ip>`, without
//! dnsmasq.
//!
//! - RFC 1350 read requests in `octet` and `netascii` mode (netascii is converted on the fly:
//!   LF → CR LF, CR → CR NUL); write requests are refused with ERROR 2, as dnsmasq does.
//! - RFC 2347 option negotiation with `blksize` (RFC 2348, capped to [`MAX_BLKSIZE`] so that a
//!   block fits a 1500-byte MTU), `tsize` (RFC 2349, the file's size) and `timeout`
//!   (RFC 2349, 1–255 s).
//! - Every transfer runs on an ephemeral UDP socket of its own bound to the server's address
//!   and the network's bridge (never a wildcard, never another interface) and connected to the
//!   client, with retransmission, block-number wraparound and a cap on simultaneous transfers.
//! - Requests are confined to the root and served with the permissions of an unprivileged
//!   user: the path is walked one descriptor at a time from `/` (no check-then-open race),
//!   every directory must be searchable by others and the file readable by others; `..` in a
//!   request, absolute links and links that leave the root are refused.
//!
//! Module layout: `packet` (wire codec), `options` (RFC 2347 negotiation), `path`
//! (confinement), `listen` (sockets), `server` (tasks, transfers and lifecycle).

#![warn(missing_docs)]

mod error;
mod listen;
mod options;
mod packet;
mod path;
mod server;

pub use error::TftpError;
pub use options::MAX_BLKSIZE;
pub use server::{TftpServer, TftpStats};
