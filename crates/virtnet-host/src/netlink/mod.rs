//! A synchronous rtnetlink client: one `NETLINK_ROUTE` socket, one request at
//! a time (or a small pipelined batch), every change acknowledged.
//!
//! The typed messages come from `netlink-packet-route`; this module only
//! frames them, sends them, and matches answers to requests by sequence
//! number. Kernel errors keep their errno and the kernel's extended-ACK text.

mod addr;
mod link;
mod link_watch;
mod monitor;
mod neigh;
mod route;
mod snapshot;
pub(crate) mod stats;
mod vxlan;

pub use addr::Address;
pub use link::{BridgeInfo, BridgeSpec, Link, MacvtapMode, PortSettings};
pub use link_watch::{LinkEvent, LinkEvents, LinkWatch, LinkWatchSwitch};
pub use monitor::{Change, Drained, Monitor};
pub use neigh::Neighbour;
pub use route::{Route, RouteSpec};
pub use snapshot::{
    AddressEntry, RouteEntry, FOREVER, IFA_F_NODAD, RTPROT_DHCP, RTPROT_KERNEL, RT_TABLE_LOCAL,
};
pub use stats::{link_stats, LinkKey, LinkStats};
pub use vxlan::VxlanSpec;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{HostError, Result};

/// Header flag on an error message: extended-ACK TLVs follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Header flag on an error message: the echoed request was capped to its header.
const NLM_F_CAPPED: u16 = 0x100;
/// Extended-ACK attribute carrying the kernel's message text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Netlink header size.
const NLMSG_HDRLEN: usize = 16;
/// How many requests a pipelined batch keeps in flight before reading ACKs.
const PIPELINE_WINDOW: usize = 64;
/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;

/// A kernel (or socket) failure before `op`/`target` context is attached.
#[derive(Debug)]
pub(crate) struct NlError {
    io: io::Error,
    ext: Option<String>,
}

impl NlError {
    fn io(io: io::Error) -> Self {
        NlError { io, ext: None }
    }

    fn decode(what: impl std::fmt::Display) -> Self {
        NlError::io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot decode netlink message: {what}"),
        ))
    }

    /// The errno, if any.
    pub(crate) fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }

    /// Attach context.
    pub(crate) fn ctx(self, op: &'static str, target: impl Into<String>) -> HostError {
        HostError::new(op, target, self.io).with_detail(self.ext)
    }
}

/// An rtnetlink connection (one `NETLINK_ROUTE` socket).
///
/// The socket is bound to the network namespace of the thread that called
/// [`Netlink::open`] and keeps acting in that namespace even if the thread
/// later moves, or the value is moved to another thread. All calls block until
/// the kernel has answered; every change is sent with `NLM_F_ACK`, so a
/// returned `Ok` means the kernel applied it.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
    rx: Vec<u8>,
}

impl Netlink {
    /// Opens a `NETLINK_ROUTE` socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let err = |e| HostError::new("open netlink socket", "NETLINK_ROUTE", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        // Best effort: only the errno is essential, the rest is detail.
        let _ = sock.set_ext_ack(true);
        // Strict checking lets dumps be filtered in the kernel (routes by table): without it
        // every route dump also walks the local table, which holds two entries per address
        // and so grows with every network.
        let _ = sock.set_netlink_get_strict_chk(true);
        let _ = sock.set_cap_ack(true);
        Ok(Netlink {
            sock,
            seq: 0,
            rx: vec![0; 64 * 1024],
        })
    }

    /// Bounds how long one read of an answer may block (`SO_RCVTIMEO`; `None`: forever, the
    /// default). A caller on a packet path (the DHCP server) sets it so that a kernel that
    /// does not answer costs it one failed lookup, not a stalled loop; a late answer is
    /// skipped by its sequence number.
    pub fn set_read_timeout(&mut self, timeout: Option<std::time::Duration>) -> Result<()> {
        let tv = timeout.map_or(
            libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            |t| libc::timeval {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                // Below 1,000,000: fits every suseconds_t.
                tv_usec: t.subsec_micros() as libc::suseconds_t,
            },
        );
        // SAFETY: setsockopt with a valid timeval of the right size on our own descriptor.
        let rc = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(HostError::new(
                "set netlink read timeout",
                "NETLINK_ROUTE",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Frames and sends one message; returns its sequence number.
    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32, NlError> {
        let seq = self.next_seq();
        let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        nl.header.flags = NLM_F_REQUEST | flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        loop {
            match self.sock.send(&buf, 0) {
                Ok(n) if n == buf.len() => return Ok(seq),
                Ok(n) => {
                    return Err(NlError::io(io::Error::other(format!(
                        "short netlink send: {n} of {} bytes",
                        buf.len()
                    ))))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NlError::io(e)),
            }
        }
    }

    /// Receives one datagram into `self.rx` (grown to fit); returns its length.
    fn recv_datagram(&mut self) -> Result<usize, NlError> {
        let fd = self.sock.as_raw_fd();
        loop {
            // SAFETY: a zero-length peek writes nothing; MSG_TRUNC makes the
            // kernel return the datagram's real length.
            let want = unsafe {
                libc::recv(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            if want < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NlError::io(e));
            }
            let want = want as usize;
            if self.rx.len() < want {
                self.rx.resize(want, 0);
            }
            // SAFETY: `rx` is a valid, writable buffer of `rx.len()` bytes.
            let n = unsafe {
                libc::recv(
                    fd,
                    self.rx.as_mut_ptr().cast::<libc::c_void>(),
                    self.rx.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NlError::io(e));
            }
            return Ok(n as usize);
        }
    }

    /// Reads datagrams and hands each message (with its header flags) to `f`
    /// until `f` says stop.
    fn read_until(
        &mut self,
        mut f: impl FnMut(u32, u16, NetlinkPayload<RouteNetlinkMessage>) -> Result<bool, NlError>,
    ) -> Result<(), NlError> {
        loop {
            let n = self.recv_datagram()?;
            let mut off = 0;
            let mut done = false;
            while off + NLMSG_HDRLEN <= n {
                let b = &self.rx[off..n];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(NlError::decode(format!(
                        "bad message length {len} in a {n}-byte datagram"
                    )));
                }
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len])
                    .map_err(NlError::decode)?;
                if !done && f(seq, flags, msg.payload)? {
                    done = true;
                }
                off += (len + 3) & !3;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Sends one change request and waits for its ACK.
    pub(crate) fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        let seq = self.send(msg, NLM_F_ACK | flags)?;
        let mut result = Ok(());
        self.read_until(|s, hflags, payload| {
            if s != seq {
                return Ok(false);
            }
            match payload {
                NetlinkPayload::Error(e) => {
                    if e.code.is_some() {
                        result = Err(NlError {
                            io: e.to_io(),
                            ext: ext_ack_message(hflags, &e.header),
                        });
                    }
                    Ok(true)
                }
                NetlinkPayload::Done(_) => Ok(true),
                _ => Ok(false),
            }
        })?;
        result
    }

    /// Sends several change requests back to back (at most
    /// [`PIPELINE_WINDOW`] in flight) and returns each one's result, in order.
    pub(crate) fn request_many(
        &mut self,
        msgs: Vec<RouteNetlinkMessage>,
        flags: u16,
    ) -> Result<Vec<Result<(), NlError>>, NlError> {
        let mut results: Vec<Result<(), NlError>> = Vec::with_capacity(msgs.len());
        let mut it = msgs.into_iter().peekable();
        while it.peek().is_some() {
            let mut pending: HashMap<u32, usize> = HashMap::new();
            for msg in it.by_ref().take(PIPELINE_WINDOW) {
                let seq = self.send(msg, NLM_F_ACK | flags)?;
                pending.insert(seq, results.len());
                results.push(Ok(()));
            }
            self.read_until(|s, hflags, payload| {
                let Some(&i) = pending.get(&s) else {
                    return Ok(false);
                };
                if let NetlinkPayload::Error(e) = payload {
                    if e.code.is_some() {
                        results[i] = Err(NlError {
                            io: e.to_io(),
                            ext: ext_ack_message(hflags, &e.header),
                        });
                    }
                    pending.remove(&s);
                }
                Ok(pending.is_empty())
            })?;
        }
        Ok(results)
    }

    /// Runs a dump request and returns every message of the answer. A dump
    /// interrupted by a concurrent change (`NLM_F_DUMP_INTR`) is retried.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.dump_map(msg, Some)
    }

    /// [`Netlink::dump`], with each message turned into what the caller keeps (or dropped) as
    /// it arrives: only one parsed message is alive at a time. A parsed link message holds
    /// every attribute the kernel sends (statistics, per-family settings: ~19 KiB each for a
    /// bridge), so
    /// collecting them all first made a dump of 14,000 links peak at ~250 MB, and the heap
    /// it fragmented stayed in the daemon's RSS (the restart with 10,000 ports).
    pub(crate) fn dump_map<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        mut keep: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>, NlError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seq = self.send(msg.clone(), NLM_F_DUMP)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            let mut failed = None;
            self.read_until(|s, hflags, payload| {
                if s != seq {
                    return Ok(false);
                }
                if hflags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.extend(keep(m));
                        Ok(false)
                    }
                    NetlinkPayload::Done(_) => Ok(true),
                    NetlinkPayload::Error(e) => {
                        if e.code.is_some() {
                            failed = Some(NlError {
                                io: e.to_io(),
                                ext: ext_ack_message(hflags, &e.header),
                            });
                        }
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })?;
            if let Some(e) = failed {
                if e.errno() == Some(libc::EINTR) && attempt < DUMP_RETRIES {
                    continue;
                }
                return Err(e);
            }
            if interrupted && attempt < DUMP_RETRIES {
                continue;
            }
            return Ok(out);
        }
    }
}

/// Extracts the kernel's extended-ACK text (`NLMSGERR_ATTR_MSG`) from the
/// payload of an `NLMSG_ERROR` message (the echoed request header, then TLVs).
fn ext_ack_message(hflags: u16, payload: &[u8]) -> Option<String> {
    if hflags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    let mut off = if hflags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let l = u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
        (l + 3) & !3
    };
    while off + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[off], payload[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[off + 2], payload[off + 3]]) & 0x3fff;
        if len < 4 || off + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let v = &payload[off + 4..off + len];
            let v = v.split(|&c| c == 0).next().unwrap_or(v);
            let s = String::from_utf8_lossy(v).trim().to_string();
            return (!s.is_empty()).then_some(s);
        }
        off += (len + 3) & !3;
    }
    None
}
