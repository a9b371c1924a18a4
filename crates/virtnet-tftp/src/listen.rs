//! Sockets: the listening socket bound only to the network's address and bridge, and
//! per-transfer sockets on an ephemeral port of the same address and bridge, connected to the
//! client. Both come from [`virtnet_sockets::bound_socket`] (`SO_BINDTODEVICE`, FREEBIND,
//! `IPV6_V6ONLY`): a request arriving on another interface (the uplink) never reaches the
//! server. The listening socket lives in
//! a [`Slot`], so stopping the server closes it at once.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{SockAddr, Type};
use tokio::net::UdpSocket;
use virtnet_sockets::bound_socket;

use crate::error::TftpError;

/// The listening socket's slot (see [`virtnet_sockets::Slot`]).
pub(crate) type Slot = virtnet_sockets::Slot<UdpSocket>;

/// The listening socket on `addr` (never a wildcard) and on `device` if given, registered with
/// the current runtime.
pub(crate) fn bind_listen(addr: SocketAddr, device: Option<&str>) -> Result<UdpSocket, TftpError> {
    if addr.ip().is_unspecified() {
        return Err(TftpError::Wildcard(addr));
    }
    let err = |(syscall, source)| TftpError::Socket {
        addr,
        syscall,
        source,
    };
    let sock = bound_socket(addr, Type::DGRAM, device).map_err(|e| err((e.syscall, e.source)))?;
    UdpSocket::from_std(sock.into()).map_err(|e| err(("epoll_ctl", e)))
}

/// A transfer socket: an ephemeral port on `ip` and `device` (the server's, so replies come
/// from where the client sent its request), connected to `peer` so the kernel drops datagrams
/// from anyone else and an ICMP port unreachable ends the transfer early.
pub(crate) fn bind_transfer(
    ip: IpAddr,
    device: Option<&str>,
    peer: SocketAddr,
) -> io::Result<UdpSocket> {
    let sock = bound_socket(SocketAddr::new(ip, 0), Type::DGRAM, device).map_err(|e| e.source)?;
    sock.connect(&SockAddr::from(peer))?;
    UdpSocket::from_std(sock.into())
}
