//! Sockets: the listening socket bound only to the network's address (with `IP_FREEBIND` /
//! `IPV6_FREEBIND`, so an address not yet up binds; `IPV6_V6ONLY` on IPv6), and per-transfer
//! sockets on an ephemeral port of the same address, connected to the client.
//!
//! The listening socket lives in a [`Slot`]: the serving task uses it only inside a
//! non-blocking poll, never across an `.await`, so [`Slot::close`] drops (closes) it
//! synchronously, from any thread and whatever the runtime flavour.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::error::TftpError;

/// A socket that can be closed from outside its serving task.
pub(crate) struct Slot(Mutex<Option<UdpSocket>>);

impl Slot {
    pub(crate) fn new(socket: UdpSocket) -> Slot {
        Slot(Mutex::new(Some(socket)))
    }

    fn lock(&self) -> MutexGuard<'_, Option<UdpSocket>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the socket now; the serving task sees `None` on its next poll.
    pub(crate) fn close(&self) {
        let socket = self.lock().take();
        drop(socket);
    }

    /// Receives one datagram; `None` once the slot is closed.
    pub(crate) async fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        poll_fn(|cx| {
            let guard = self.lock();
            let Some(sock) = guard.as_ref() else {
                return Poll::Ready(None);
            };
            let mut rb = ReadBuf::new(buf);
            match sock.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(peer)) => Poll::Ready(Some(Ok((rb.filled().len(), peer)))),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

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

/// A non-blocking, `CLOEXEC` UDP socket bound to `addr` with FREEBIND.
fn new_socket(addr: SocketAddr) -> Result<Socket, (&'static str, io::Error)> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| ("socket", e))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)
            .map_err(|e| ("setsockopt(IPV6_V6ONLY)", e))?;
        sock.set_freebind_v6(true)
            .map_err(|e| ("setsockopt(IPV6_FREEBIND)", e))?;
    } else {
        sock.set_freebind_v4(true)
            .map_err(|e| ("setsockopt(IP_FREEBIND)", e))?;
    }
    sock.set_nonblocking(true)
        .map_err(|e| ("fcntl(O_NONBLOCK)", e))?;
    bind_retrying(&sock, addr).map_err(|e| ("bind", e))?;
    Ok(sock)
}

/// Binds, retrying `EADDRINUSE` for a short while: a socket closed a moment ago (a restart
/// of the server) can still be held by a child process the daemon is forking elsewhere,
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

/// The listening socket on `addr` (never a wildcard), registered with the current runtime.
pub(crate) fn bind_listen(addr: SocketAddr) -> Result<UdpSocket, TftpError> {
    if addr.ip().is_unspecified() {
        return Err(TftpError::Wildcard(addr));
    }
    let err = |(syscall, source)| TftpError::Socket {
        addr,
        syscall,
        source,
    };
    let sock = new_socket(addr).map_err(err)?;
    UdpSocket::from_std(sock.into()).map_err(|e| err(("epoll_ctl", e)))
}

/// A transfer socket: an ephemeral port on `ip` (the server's address, so replies come from
/// where the client sent its request), connected to `peer` so the kernel drops datagrams from
/// anyone else and an ICMP port unreachable ends the transfer early.
pub(crate) fn bind_transfer(ip: IpAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let sock = new_socket(SocketAddr::new(ip, 0)).map_err(|(_, e)| e)?;
    sock.connect(&SockAddr::from(peer))?;
    UdpSocket::from_std(sock.into())
}
