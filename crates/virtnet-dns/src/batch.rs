//! Batched UDP I/O: up to [`BATCH`] datagrams received with one `recvmmsg` and their replies
//! sent with one `sendmmsg`, on the raw descriptor of a non-blocking socket.
//!
//! Per query, the kernel's UDP receive and send (and the wake-ups of the task) cost an order of
//! magnitude more than answering a local name from the reply cache; a loaded server finds
//! several queries queued each time it wakes, and takes them all with one system call.
//!
//! Every buffer here is owned by the [`UdpBatch`] and reused; the `mmsghdr`/`iovec` arrays that
//! point into them are built on the stack for each call, so nothing self-referential is kept
//! (and the batch stays `Send`).
//!
//! A batch (about 270 KiB of address space, touched only where datagrams land) belongs to no
//! network: a server takes one from its thread's spare list ([`UdpBatch::take`]) when a
//! datagram arrives and gives it back when it has answered what was queued
//! ([`UdpBatch::give_back`]). Only as many batches exist as bursts are served at the same
//! moment (one per runtime worker, plus those waiting to send) and [`MAX_SPARE`] per thread,
//! however many networks there are, and an idle network holds none.

use std::cell::RefCell;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams taken per `recvmmsg` (and replies per `sendmmsg`).
pub(crate) const BATCH: usize = 64;
/// Receive buffer per datagram. A longer datagram is cut (`MSG_TRUNC`) and answered FORMERR:
/// a DNS query is a header, one question (≤ 260 bytes) and at most an EDNS record, well under
/// this; dnsmasq drops truncated queries with a buffer of about the same size.
pub(crate) const SLOT: usize = 4096;

/// Spare batches kept per thread for the next burst; more are freed when given back.
const MAX_SPARE: usize = 2;

thread_local! {
    /// Batches not in use, on this thread (a runtime worker): the next burst served here takes
    /// one whose buffers this core touched last. Boxed on purpose: a server's task holds its
    /// batch across an await only as a pointer (an inline batch, about 1 KiB of arrays, would
    /// enlarge every network's task, idle or not).
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<UdpBatch>>> = const { RefCell::new(Vec::new()) };
}

/// The datagrams of one `recvmmsg` and the replies to them.
pub(crate) struct UdpBatch {
    /// `BATCH` receive buffers of `SLOT` bytes each.
    buf: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    addr_lens: [libc::socklen_t; BATCH],
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    /// Datagrams received by the last [`UdpBatch::recv`].
    n: usize,
    /// Reply to datagram `i` (empty: none), reused from batch to batch.
    replies: Vec<Vec<u8>>,
    /// Indices of the datagrams with a reply, in order, and how many of them are sent.
    queue: [u8; BATCH],
    queued: usize,
    sent: usize,
}

impl UdpBatch {
    pub(crate) fn new() -> UdpBatch {
        UdpBatch {
            buf: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
            addrs: vec![unsafe { zeroed::<libc::sockaddr_storage>() }; BATCH].into_boxed_slice(),
            addr_lens: [0; BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            n: 0,
            replies: (0..BATCH).map(|_| Vec::new()).collect(),
            queue: [0; BATCH],
            queued: 0,
            sent: 0,
        }
    }

    /// A batch for one burst: a spare one, or a new one when none is spare.
    pub(crate) fn take() -> Box<UdpBatch> {
        let spare = SPARE.with(|s| s.borrow_mut().pop());
        spare.unwrap_or_else(|| Box::new(UdpBatch::new()))
    }

    /// Gives a batch back after its burst: kept for the next one (emptied, so nothing of one
    /// network's datagrams can be read through another's use of it), or freed when
    /// [`MAX_SPARE`] are kept already.
    pub(crate) fn give_back(mut batch: Box<UdpBatch>) {
        batch.n = 0;
        batch.queued = 0;
        batch.sent = 0;
        SPARE.with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(batch);
            }
        });
    }

    /// Datagrams held.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Datagram `i` (as received, cut to `SLOT`), whether it was longer than `SLOT`, and the
    /// buffer for its reply (cleared).
    pub(crate) fn datagram(&mut self, i: usize) -> (&[u8], bool, &mut Vec<u8>) {
        let start = i * SLOT;
        let bytes = self
            .buf
            .get(start..start + self.lens[i].min(SLOT))
            .unwrap_or_default();
        let reply = &mut self.replies[i];
        reply.clear();
        (bytes, self.truncated[i], reply)
    }

    /// The sender of datagram `i`.
    pub(crate) fn peer(&self, i: usize) -> Option<SocketAddr> {
        to_socket_addr(&self.addrs[i], self.addr_lens[i])
    }

    /// Receives up to `BATCH` datagrams without waiting (`MSG_DONTWAIT`), replacing those held;
    /// the reply queue is emptied.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.n = 0;
        self.queued = 0;
        self.sent = 0;
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for ((iov, chunk), (hdr, addr)) in iovs
            .iter_mut()
            .zip(self.buf.chunks_exact_mut(SLOT))
            .zip(hdrs.iter_mut().zip(self.addrs.iter_mut()))
        {
            iov.iov_base = chunk.as_mut_ptr().cast();
            iov.iov_len = SLOT;
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live iovec of this frame, which points at SLOT bytes
        // of self.buf, and at one sockaddr_storage of self.addrs; none of them moves or is
        // otherwise borrowed during the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(rc).unwrap_or(0).min(BATCH);
        for (i, hdr) in hdrs.iter().take(n).enumerate() {
            self.lens[i] = (hdr.msg_len as usize).min(SLOT);
            self.addr_lens[i] = hdr.msg_hdr.msg_namelen;
            self.truncated[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.n = n;
        Ok(n)
    }

    /// Queues the non-empty replies, in order, for [`UdpBatch::send`].
    pub(crate) fn queue_replies(&mut self) {
        self.queued = 0;
        self.sent = 0;
        for i in 0..self.n {
            if !self.replies[i].is_empty() {
                self.queue[self.queued] = i as u8;
                self.queued += 1;
            }
        }
    }

    /// Whether every queued reply was sent (or given up).
    pub(crate) fn all_sent(&self) -> bool {
        self.sent >= self.queued
    }

    /// Gives up the next queued reply (its send failed with an error other than `EAGAIN`:
    /// the client retries, as after a lost datagram).
    pub(crate) fn skip_one(&mut self) {
        self.sent = (self.sent + 1).min(self.queued);
    }

    /// Sends the queued replies not yet sent, each to the sender of its query, with one
    /// `sendmmsg`; returns how many left. An error is the first unsent reply's.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        let pending = self.queued.saturating_sub(self.sent);
        if pending == 0 {
            return Ok(0);
        }
        // SAFETY: as in recv.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (k, &i) in self.queue[self.sent..self.queued].iter().enumerate() {
            let i = usize::from(i);
            let reply = &self.replies[i];
            iovs[k].iov_base = reply.as_ptr() as *mut libc::c_void;
            iovs[k].iov_len = reply.len();
            hdrs[k].msg_hdr.msg_name = (&self.addrs[i] as *const libc::sockaddr_storage
                as *mut libc::sockaddr_storage)
                .cast();
            hdrs[k].msg_hdr.msg_namelen = self.addr_lens[i];
            hdrs[k].msg_hdr.msg_iov = &mut iovs[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `pending` headers point at live iovecs of this frame, which point
        // at the replies' bytes, and at the senders' addresses; the kernel only reads them.
        let rc = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                pending as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let k = usize::try_from(rc).unwrap_or(0).min(pending);
        self.sent += k;
        Ok(k)
    }
}

/// A socket address from the kernel (`None` for a family other than IPv4/IPv6).
fn to_socket_addr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
