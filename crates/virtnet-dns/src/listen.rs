//! Listening sockets, bound only to the network's own addresses and its bridge by
//! [`virtnet_sockets::bound_socket`] (`SO_BINDTODEVICE`, FREEBIND, `IPV6_V6ONLY`), each in a
//! [`virtnet_sockets::Slot`] so that stopping the server closes it at once; and batched
//! datagram I/O on those slots ([`BatchIo`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::Type;
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};
use virtnet_sockets::{bound_socket, Slot};

use crate::batch::{UdpBatch, BATCH};
use crate::error::DnsError;

/// Batched datagram I/O on a UDP slot: one `recvmmsg` or `sendmmsg` per call.
pub(crate) trait BatchIo {
    /// Takes the datagrams queued on the socket, up to [`BATCH`], without waiting; `None` once
    /// the slot is closed.
    fn try_recv_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>>;

    /// Sends the batch's queued replies not yet sent; `None` once the slot is closed.
    fn try_send_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>>;
}

impl BatchIo for Slot<UdpSocket> {
    /// Takes the datagrams queued on the socket, up to [`BATCH`], without waiting (one
    /// `recvmmsg`). `WouldBlock` when none was queued: the readiness is then cleared, so
    /// [`Slot::readable`] waits for the next datagram.
    ///
    /// Fewer than `BATCH` datagrams means the kernel found the queue empty after them, so the
    /// readiness is cleared then too, which saves the `recvmmsg` that would only say `EAGAIN`.
    /// No datagram can be missed: the socket is registered edge-triggered and each datagram
    /// queued after that `recvmmsg` is a new edge, and tokio clears readiness only if no event
    /// arrived since it was last reported.
    fn try_recv_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>> {
        self.with(|sock| {
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
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
                other => other,
            }
        })
    }

    fn try_send_batch(&self, batch: &mut UdpBatch) -> Option<io::Result<usize>> {
        self.with(|sock| sock.try_io(Interest::WRITABLE, || batch.send(sock.as_raw_fd())))
    }
}

fn new_socket(
    addr: SocketAddr,
    device: Option<&str>,
    ty: Type,
    proto: &'static str,
) -> Result<socket2::Socket, DnsError> {
    if addr.ip().is_unspecified() {
        return Err(DnsError::Wildcard(addr));
    }
    bound_socket(addr, ty, device).map_err(|e| DnsError::Socket {
        addr,
        proto,
        syscall: e.syscall,
        source: e.source,
    })
}

/// A UDP socket bound to `addr` (never a wildcard) and to `device` if given, registered with
/// the current runtime.
pub(crate) fn bind_udp(addr: SocketAddr, device: Option<&str>) -> Result<UdpSocket, DnsError> {
    let sock = new_socket(addr, device, Type::DGRAM, "udp")?;
    UdpSocket::from_std(sock.into()).map_err(|source| DnsError::Socket {
        addr,
        proto: "udp",
        syscall: "epoll_ctl",
        source,
    })
}

/// A TCP listener on `addr` (never a wildcard) and on `device` if given, registered with the
/// current runtime.
pub(crate) fn bind_tcp(addr: SocketAddr, device: Option<&str>) -> Result<TcpListener, DnsError> {
    let sock = new_socket(addr, device, Type::STREAM, "tcp")?;
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
