//! The wire side of answering: decode one DNS message, answer it from a [`Zone`], encode the
//! reply. Pure (no sockets), so it is unit-tested and fuzzed directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};

use crate::resolve::{Answer, Zone};

/// The largest UDP payload this server sends or advertises (the DNS flag day 2020 value).
pub(crate) const UDP_PAYLOAD: u16 = 1232;

/// How a query arrived; it bounds the size of the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: replies larger than the client's buffer (512 or its EDNS size) are truncated.
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// What the server does with one received message.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Answered from local data (including NXDOMAIN and NODATA): send these bytes.
    Local(Vec<u8>),
    /// REFUSED (no upstream, class other than IN, zone transfer) or NOTIMP (opcode other than
    /// QUERY): send these bytes.
    Refused(Vec<u8>),
    /// Not a valid query: send FORMERR (`Some`) or nothing at all (`None`: too short to carry
    /// an id, or a response rather than a query).
    Malformed(Option<Vec<u8>>),
    /// Ask these upstream servers; `request` is the client's decoded query.
    Forward {
        /// The client's query.
        request: Message,
        /// Upstream servers, in order.
        upstreams: Vec<SocketAddr>,
    },
}

/// Decodes `bytes` as a DNS query and answers it from `zone`. Never panics, whatever the input.
pub fn handle_query(bytes: &[u8], zone: &Zone, transport: Transport) -> Outcome {
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        // No full header, or a response: never answer (no reflection, no loops).
        return Outcome::Malformed(None);
    }
    let request = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => return Outcome::Malformed(formerr(bytes)),
    };
    if request.metadata.message_type != MessageType::Query {
        return Outcome::Malformed(None);
    }
    let limit = reply_limit(&request, transport);
    if request.queries.len() != 1 {
        let reply = error_reply(&request, ResponseCode::FormErr);
        return Outcome::Malformed(Some(encode(&reply, limit)));
    }
    if request.metadata.op_code != OpCode::Query {
        let reply = error_reply(&request, ResponseCode::NotImp);
        return Outcome::Refused(encode(&reply, limit));
    }
    match zone.answer(&request.queries[0]) {
        Answer::Local(records) => {
            let mut reply = error_reply(&request, ResponseCode::NoError);
            reply.metadata.authoritative = true;
            reply.answers = records;
            Outcome::Local(encode(&reply, limit))
        }
        Answer::NxDomain => {
            let mut reply = error_reply(&request, ResponseCode::NXDomain);
            reply.metadata.authoritative = true;
            Outcome::Local(encode(&reply, limit))
        }
        Answer::Refused => {
            Outcome::Refused(encode(&error_reply(&request, ResponseCode::Refused), limit))
        }
        Answer::Forward(upstreams) => Outcome::Forward { request, upstreams },
    }
}

/// FORMERR for a message that has a query's header (12 bytes, QR clear) but cannot be
/// decoded; `None` for anything else (no reply).
pub(crate) fn formerr(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = bytes.get(..12)?;
    if header[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([header[0], header[1]]);
    let op_code = OpCode::from_u8((header[2] >> 3) & 0x0f);
    let mut reply = Message::error_msg(id, op_code, ResponseCode::FormErr);
    reply.metadata.recursion_desired = header[2] & 0x01 != 0;
    reply.metadata.recursion_available = true;
    Some(encode(&reply, 512))
}

/// What [`ReplyCache::handle_udp_into`] did with one message; the reply, if any, is in the
/// caller's buffer.
#[derive(Debug)]
pub(crate) enum Served {
    /// As [`Outcome::Local`].
    Local,
    /// As [`Outcome::Refused`].
    Refused,
    /// As [`Outcome::Malformed`]; an empty buffer means no reply.
    Malformed,
    /// As [`Outcome::Forward`]; the buffer is empty.
    Forward {
        /// The client's query.
        request: Message,
        /// Upstream servers, in order.
        upstreams: Vec<SocketAddr>,
    },
}

/// Queries longer than this are not cached (a normal query is 30-100 bytes).
const CACHE_MAX_QUERY: usize = 512;
/// The cache is emptied when its keys and replies exceed this many bytes (a guest asking for
/// ever new names cannot grow it further).
const CACHE_MAX_BYTES: usize = 256 * 1024;

/// Local answers already encoded, for one [`Zone`]: the query's bytes after its id (flags,
/// counts, the question exactly as sent, EDNS record) → the reply. [`handle_query`] is a pure
/// function of the query's bytes and the zone, and the reply's id is the query's, so a query
/// that differs from a cached one only in its id gets the cached reply with its own id: no
/// decoding, no record building, no encoding. Only local answers (NOERROR, NODATA, NXDOMAIN)
/// are kept; a new zone (reconfiguration, lease names) empties the cache.
#[derive(Debug, Default)]
pub struct ReplyCache {
    zone: Option<Arc<Zone>>,
    map: HashMap<Box<[u8]>, Box<[u8]>>,
    bytes: usize,
}

impl ReplyCache {
    /// An empty cache.
    pub fn new() -> ReplyCache {
        ReplyCache::default()
    }

    /// [`handle_query`] over UDP, answered from the cache when the same query (up to its id)
    /// was answered locally from the same `zone` before.
    pub fn handle_udp(&mut self, bytes: &[u8], zone: &Arc<Zone>) -> Outcome {
        let mut out = Vec::new();
        if self.cached_into(bytes, zone, &mut out) {
            return Outcome::Local(out);
        }
        let outcome = handle_query(bytes, zone, Transport::Udp);
        if let Outcome::Local(reply) = &outcome {
            self.remember(bytes, reply);
        }
        outcome
    }

    /// [`ReplyCache::handle_udp`] writing the reply into `out` (cleared first, and reused: a
    /// cached answer costs no allocation).
    pub(crate) fn handle_udp_into(
        &mut self,
        bytes: &[u8],
        zone: &Arc<Zone>,
        out: &mut Vec<u8>,
    ) -> Served {
        out.clear();
        if self.cached_into(bytes, zone, out) {
            return Served::Local;
        }
        match handle_query(bytes, zone, Transport::Udp) {
            Outcome::Local(reply) => {
                self.remember(bytes, &reply);
                *out = reply;
                Served::Local
            }
            Outcome::Refused(reply) => {
                *out = reply;
                Served::Refused
            }
            Outcome::Malformed(reply) => {
                *out = reply.unwrap_or_default();
                Served::Malformed
            }
            Outcome::Forward { request, upstreams } => Served::Forward { request, upstreams },
        }
    }

    /// Appends the cached reply to `bytes` (with `bytes`' id) to `out`, if there is one for
    /// `zone`; a new zone empties the cache.
    fn cached_into(&mut self, bytes: &[u8], zone: &Arc<Zone>, out: &mut Vec<u8>) -> bool {
        if !self.zone.as_ref().is_some_and(|z| Arc::ptr_eq(z, zone)) {
            self.map.clear();
            self.bytes = 0;
            self.zone = Some(zone.clone());
        }
        let (Some(id), Some(key)) = (bytes.get(..2), bytes.get(2..)) else {
            return false;
        };
        let Some(cached) = self.map.get(key) else {
            return false;
        };
        out.reserve(cached.len());
        out.extend_from_slice(id);
        out.extend_from_slice(cached.get(2..).unwrap_or_default());
        true
    }

    /// Keeps `reply`, a local answer to `bytes`.
    fn remember(&mut self, bytes: &[u8], reply: &[u8]) {
        if (12..=CACHE_MAX_QUERY).contains(&bytes.len()) && reply.len() >= 12 {
            let size = bytes.len() + reply.len();
            if self.bytes + size > CACHE_MAX_BYTES {
                self.map.clear();
                self.bytes = 0;
            }
            self.bytes += size;
            self.map.insert(bytes[2..].into(), reply.into());
        }
    }
}

/// The largest reply a client accepts over `transport`.
pub(crate) fn reply_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(request.max_payload().clamp(512, UDP_PAYLOAD.max(512))),
    }
}

/// A reply to `request` with its id, question, RD/CD echoed, RA set, no records.
pub(crate) fn error_reply(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = rcode;
    reply.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        if rcode.high() != 0 {
            edns.set_rcode_high(rcode.high());
        }
        reply.edns = Some(edns);
    }
    reply
}

/// SERVFAIL for `request` (every upstream failed), as wire bytes.
pub(crate) fn servfail(request: &Message, transport: Transport) -> Vec<u8> {
    encode(
        &error_reply(request, ResponseCode::ServFail),
        reply_limit(request, transport),
    )
}

/// Encodes `reply`; if it exceeds `limit`, drops the records and sets TC so that the client
/// retries over TCP.
fn encode(reply: &Message, limit: usize) -> Vec<u8> {
    match reply.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        Ok(_) => {
            let mut short = reply.clone();
            short.answers.clear();
            short.authorities.clear();
            short.additionals.clear();
            short.metadata.truncation = true;
            short.to_vec().unwrap_or_default()
        }
        Err(_) => {
            let mut fail = Message::error_msg(
                reply.metadata.id,
                reply.metadata.op_code,
                ResponseCode::ServFail,
            );
            fail.queries = reply.queries.clone();
            fail.to_vec().unwrap_or_default()
        }
    }
}
