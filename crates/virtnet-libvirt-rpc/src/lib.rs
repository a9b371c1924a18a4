//! # virtnet-libvirt-rpc
//!
//! libvirt's RPC protocol as its network daemon (`virtnetworkd`) speaks it, written from
//! libvirt 9.0's `.x` files (`shared/conformance/libvirt-9.0/rpc/`): XDR ([`xdr`]), framing and
//! the message header ([`frame`]), `virNetMessageError` with `virterror.h`'s codes and domains
//! ([`error`]), and `REMOTE_PROGRAM`'s connection, network, event and network-port procedures
//! plus the keepalive program ([`remote`]). Pure: no I/O besides reading and writing frames on
//! a caller's reader or writer.
//!
//! ## Why a hand-written codec
//! The network daemon needs some forty procedures out of `remote_protocol.x`'s four hundred,
//! and every one of them must enforce the `.x` file's limits before allocating (a string's
//! `<REMOTE_STRING_MAX>`, a list's `<REMOTE_NETWORK_LIST_MAX>`, the frame's
//! `VIR_NET_MESSAGE_MAX`), because the read-only socket is open to every local user. This
//! codec is small (a reader that checks each length against both the limit and the bytes left
//! in the frame, a writer, and a declarative macro for structs), and the limits are in the
//! types (`List<T, MAX>`). The XDR crates available were checked (docs.rs, lib.rs):
//! `xdrgen`/`xdr-codec` generate code at build time from a full rpcgen-style `.x` parser and
//! were last released in 2017 (Rust 2015 edition); `serde_xdr` (rust-xdr) is a 2017 hack-week
//! project; `libvirt-xdr` 0.1 is a new serde (de)serializer with no per-field limits, so
//! lengths up to 4 GiB would be honoured. None checks the `.x` limits before allocating.
//!
//! Decoding never panics and never allocates more than a small multiple of the frame's size;
//! a frame's length word is checked by [`frame::payload_len`] before the frame is read.

#![warn(missing_docs)]

pub mod error;
pub mod frame;
pub mod remote;
pub mod xdr;

pub use error::{code, domain, DecodeError, RpcError};
pub use frame::{Header, MessageType, Status};
pub use remote::{Body, Call, Keepalive, Message, Procedure, Reply};
