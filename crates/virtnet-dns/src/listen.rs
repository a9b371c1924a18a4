//! Listening sockets: bound only to the network's own addresses, with `IP_FREEBIND` /
//! `IPV6_FREEBIND` so that an address still in duplicate address detection (or not yet up)
//! binds, and `IPV6_V6ONLY` on IPv6.
//!
//! Each socket lives in a [`Slot`]: the serving task uses it only inside a non-blocking poll,
//! never across an `.await`, so [`Slot::close`] drops (closes) the socket synchronously, from
//! any thread and whatever the runtime flavour, while the task is parked.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::batch::{UdpBatch, BATCH};
use crate::error::DnsError;

/// A socket that can be closed from outside its serving task.
pub(crate) struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    pub(crate) fn new(socket: T) -> Slot<T> {
        Slot(Mutex::new(Some(socket)))
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the socket now; the serving task sees `None` on its next poll.
    pub(crate) fn close(&self) {
        let socket = self.lock().take();
        drop(socket);
    }
}

impl Slot<UdpSocket> {
    /// Sends one datagram; `None` once the slot is closed.
    pub(crate) async fn send_to(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
    ) -> Option<io::Result<usize>> {
        poll_fn(|cx| {
            let guard = self.lock();
            match guard.as_ref() {
                None => Poll::Ready(None),
                Some(sock) => sock.poll_send_to(cx, bytes, peer).map(Some),
            }
        })
        .await
    }
}

impl Slot<UdpSocket> {
    /// Waits until the socket is readable; `None` once the slot is closed.
    pub(crate) async fn readable(&self) -> Option<()> {
        poll_fn(|cx| {
            let guard = self.lock();
            match guard.as_ref() {
                None => Poll::Ready(None),
                Some(sock) => sock.poll_recv_ready(cx).map(|_| Some(())),
            }
        })
        .await
    }

    /// Waits until the socket is writable; `None` once the slot is closed.
    pub(crate) async fn writable(&self) -> Option<()> {
        poll_fn(|cx| {
            let guard = self.lock();
            match guard.as_ref() {
                None => Poll::Ready(None),
                Some(sock) => sock.poll_send_ready(cx).map(|_| Some(())),
            }
        })
        .await
    }

    /// Takes the datagrams queued on the socket, up to [`BATCH`], without waiting (one
    /// `recvmmsg`). `WouldBlock` when none was queued: the readiness is then cleared, so
    /// [`Slot::readable`] waits for the next datagram.
    ///
    /// Fewer than `BATCH` datagrams means the kernel found the queue empty after them, so the
    /// readiness is cleared then too, which saves the `recvmmsg` that would only say `EAGAIN`.
    /// No datagram can be missed: the socket is registered edge-triggered and each datagram
    /// queued after that `recvmmsg` is a new edge, and tokio clears readiness only if no event
    /// arrived since it was last reported.
    pub(crate) fn try_recv_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>> {
        let guard = self.lock();
        let sock = guard.as_ref()?;
        let fd = sock.as_raw_fd();
        let mut got = 0;
        let res = sock.try_io(Interest::READABLE, || {
            got = batch.recv(fd)?;
            if got < BATCH {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        Some(match res {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            other => other,
        })
    }

    /// Sends the batch's queued replies not yet sent (one `sendmmsg`); `None` once the slot is
    /// closed.
    pub(crate) fn try_send_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>> {
        let guard = self.lock();
        let sock = guard.as_ref()?;
        let fd = sock.as_raw_fd();
        Some(sock.try_io(Interest::WRITABLE, || batch.send(fd)))
    }
}

impl Slot<TcpListener> {
    /// Accepts one connection; `None` once the slot is closed.
    pub(crate) async fn accept(&self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        poll_fn(|cx| {
            let guard = self.lock();
            match guard.as_ref() {
                None => Poll::Ready(None),
                Some(l) => l.poll_accept(cx).map(Some),
            }
        })
        .await
    }
}

fn new_socket(addr: SocketAddr, ty: Type, proto: &'static str) -> Result<Socket, DnsError> {
    let err = |syscall: &'static str| {
        move |source| DnsError::Socket {
            addr,
            proto,
            syscall,
            source,
        }
    };
    if addr.ip().is_unspecified() {
        return Err(DnsError::Wildcard(addr));
    }
    let protocol = if ty == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let sock = Socket::new(Domain::for_address(addr), ty, Some(protocol)).map_err(err("socket"))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)
            .map_err(err("setsockopt(IPV6_V6ONLY)"))?;
        sock.set_freebind_v6(true)
            .map_err(err("setsockopt(IPV6_FREEBIND)"))?;
    } else {
        sock.set_freebind_v4(true)
            .map_err(err("setsockopt(IP_FREEBIND)"))?;
    }
    if ty == Type::STREAM {
        sock.set_reuse_address(true)
            .map_err(err("setsockopt(SO_REUSEADDR)"))?;
    }
    sock.set_nonblocking(true)
        .map_err(err("fcntl(O_NONBLOCK)"))?;
    bind_retrying(&sock, addr).map_err(err("bind"))?;
    Ok(sock)
}

/// Binds, retrying `EADDRINUSE` for a short while: a socket closed a moment ago (a restart
/// of the server) can still be held by a child process this daemon is forking elsewhere,
/// between its `fork` and its `exec` (which closes it: every socket here is `CLOEXEC`).
fn bind_retrying(sock: &Socket, addr: SocketAddr) -> io::Result<()> {
    let addr = SockAddr::from(addr);
    let mut tries = 0;
    loop {
        match sock.bind(&addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < BIND_RETRIES => {
                tries += 1;
                std::thread::sleep(BIND_RETRY_DELAY);
            }
            other => return other,
        }
    }
}

/// How often and how long [`bind_retrying`] waits: 10 × 25 ms.
const BIND_RETRIES: u32 = 10;
const BIND_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(25);

/// A UDP socket bound to `addr` (never a wildcard), registered with the current runtime.
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, DnsError> {
    let sock = new_socket(addr, Type::DGRAM, "udp")?;
    UdpSocket::from_std(sock.into()).map_err(|source| DnsError::Socket {
        addr,
        proto: "udp",
        syscall: "epoll_ctl",
        source,
    })
}

/// A TCP listener on `addr` (never a wildcard), registered with the current runtime.
pub(crate) fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, DnsError> {
    let sock = new_socket(addr, Type::STREAM, "tcp")?;
    sock.listen(128).map_err(|source| DnsError::Socket {
        addr,
        proto: "tcp",
        syscall: "listen",
        source,
    })?;
    TcpListener::from_std(sock.into()).map_err(|source| DnsError::Socket {
        addr,
        proto: "tcp",
        syscall: "epoll_ctl",
        source,
    })
}
