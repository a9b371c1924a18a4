//! # virtnet-sockets
//!
//! What virtnet's DNS and TFTP servers share about sockets:
//!
//! - [`bound_socket`]: a non-blocking socket bound to one of the network's own addresses, never
//!   a wildcard, and to the network's bridge (`SO_BINDTODEVICE`) so that the kernel hands it
//!   only what arrives on that bridge (or from the host itself: local traffic to an address
//!   counts as arriving on the address's interface), never a query from the uplink routed to
//!   the gateway address; with `IP_FREEBIND` / `IPV6_FREEBIND` so that an address still in
//!   duplicate address detection (or not yet up) binds, `IPV6_V6ONLY` on IPv6, and a short
//!   retry of `EADDRINUSE` (see [`bound_socket`]).
//! - [`SharedTask`]: one state and its serving task, started by the first caller and aborted
//!   when dropped (the shared-socket servers of router advertisements and DHCPv6).
//! - [`Slot`]: a socket that can be closed from outside its serving task. The task uses it
//!   only inside a non-blocking poll, never across an `.await`, so [`Slot::close`] drops
//!   (closes) the socket synchronously, from any thread and whatever the runtime flavour,
//!   while the task is parked: the port is free at once. The task sees `None` when it next
//!   polls; a server that stops aborts its parked tasks after closing their slots, since a
//!   closed socket does not wake them.

#![warn(missing_docs)]

pub mod iface;
mod shared_task;
pub use shared_task::SharedTask;

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::ReadBuf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A socket that can be closed from outside its serving task.
#[derive(Debug)]
pub struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    /// A slot holding `socket`.
    pub fn new(socket: T) -> Slot<T> {
        Slot(Mutex::new(Some(socket)))
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the socket now; the serving task sees `None` on its next poll.
    pub fn close(&self) {
        let socket = self.lock().take();
        drop(socket);
    }

    /// Runs `f` on the socket, without waiting; `None` once the slot is closed. `f` must not
    /// block: the slot is locked meanwhile.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.lock().as_ref().map(f)
    }

    /// Polls `f` on the socket until it is ready; `None` once the slot is closed.
    async fn poll_with<R>(
        &self,
        mut f: impl FnMut(&T, &mut std::task::Context<'_>) -> Poll<R>,
    ) -> Option<R> {
        poll_fn(|cx| match self.lock().as_ref() {
            None => Poll::Ready(None),
            Some(sock) => f(sock, cx).map(Some),
        })
        .await
    }
}

impl Slot<UdpSocket> {
    /// Receives one datagram; `None` once the slot is closed.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Option<io::Result<(usize, SocketAddr)>> {
        self.poll_with(|sock, cx| {
            let mut rb = ReadBuf::new(buf);
            sock.poll_recv_from(cx, &mut rb)
                .map_ok(|peer| (rb.filled().len(), peer))
        })
        .await
    }

    /// Sends one datagram; `None` once the slot is closed.
    pub async fn send_to(&self, bytes: &[u8], peer: SocketAddr) -> Option<io::Result<usize>> {
        self.poll_with(|sock, cx| sock.poll_send_to(cx, bytes, peer))
            .await
    }

    /// Waits until the socket is readable; `None` once the slot is closed.
    pub async fn readable(&self) -> Option<()> {
        self.poll_with(|sock, cx| sock.poll_recv_ready(cx).map(|_| ()))
            .await
    }

    /// Waits until the socket is writable; `None` once the slot is closed.
    pub async fn writable(&self) -> Option<()> {
        self.poll_with(|sock, cx| sock.poll_send_ready(cx).map(|_| ()))
            .await
    }
}

impl Slot<TcpListener> {
    /// Accepts one connection; `None` once the slot is closed.
    pub async fn accept(&self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        self.poll_with(|l, cx| l.poll_accept(cx)).await
    }
}

/// A failed step of [`bound_socket`]: the system call and its error.
#[derive(Debug)]
pub struct SocketError {
    /// The system call that failed, e.g. `bind` or `setsockopt(IP_FREEBIND)`.
    pub syscall: &'static str,
    /// Its error.
    pub source: io::Error,
}

/// A non-blocking, `CLOEXEC` UDP (`Type::DGRAM`) or TCP (`Type::STREAM`, with `SO_REUSEADDR`)
/// socket bound to `addr` with FREEBIND (`IPV6_V6ONLY` too on IPv6), and to the interface
/// `device` when one is given (`SO_BINDTODEVICE`): the socket then receives only packets that
/// arrive on `device`, so a server bound to a bridge's gateway address does not answer a
/// client on the uplink that routes to that address (the CVE-2012-3411 pattern, an open
/// resolver). The host's own packets to the address still reach it: the kernel counts local
/// traffic as arriving on the interface that holds the destination address. The caller
/// refuses wildcard addresses: virtnet's servers listen on a network's own addresses only.
///
/// `EADDRINUSE` is retried for a short while (10 × 25 ms): a socket closed a moment ago (a
/// restart of the server) can still be held by a child process the daemon is forking
/// elsewhere, between its `fork` and its `exec` (which closes it: every socket here is
/// `CLOEXEC`).
pub fn bound_socket(
    addr: SocketAddr,
    ty: Type,
    device: Option<&str>,
) -> Result<Socket, SocketError> {
    let err = |syscall: &'static str| move |source| SocketError { syscall, source };
    let protocol = if ty == Type::STREAM {
        Protocol::TCP
    } else {
        Protocol::UDP
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
    if let Some(dev) = device {
        sock.bind_device(Some(dev.as_bytes()))
            .map_err(err("setsockopt(SO_BINDTODEVICE)"))?;
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

/// How often and how long [`bind_retrying`] waits: 10 × 25 ms.
const BIND_RETRIES: u32 = 10;
const BIND_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(25);

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

/// `socket` (non-blocking already) registered with the current tokio runtime for reading: the
/// raw sockets of the RA and DHCPv6 servers, read when the runtime says they are readable.
pub fn readable(
    socket: socket2::Socket,
) -> std::io::Result<tokio::io::unix::AsyncFd<socket2::Socket>> {
    // SAFETY: the Socket is moved into the AsyncFd, which owns its descriptor until it is
    // dropped, so the registration always refers to the same open descriptor.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_slot_answers_none_and_frees_the_port_at_once() {
        let sock = bound_socket("127.0.0.1:0".parse().unwrap(), Type::DGRAM, None).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let slot = Slot::new(UdpSocket::from_std(sock.into()).unwrap());
        assert_eq!(slot.with(|s| s.local_addr().ok()), Some(Some(addr)));
        slot.close();
        let mut buf = [0u8; 16];
        assert!(slot.recv_from(&mut buf).await.is_none());
        assert!(slot.send_to(b"x", addr).await.is_none());
        assert!(slot.readable().await.is_none());
        assert!(slot.with(|_| ()).is_none());
        bound_socket(addr, Type::DGRAM, None).expect("the port is free again");
    }

    #[tokio::test]
    async fn datagrams_go_through_an_open_slot() {
        let a = bound_socket("127.0.0.1:0".parse().unwrap(), Type::DGRAM, None).unwrap();
        let b = bound_socket("127.0.0.1:0".parse().unwrap(), Type::DGRAM, None).unwrap();
        let b_addr = b.local_addr().unwrap().as_socket().unwrap();
        let a = Slot::new(UdpSocket::from_std(a.into()).unwrap());
        let b = Slot::new(UdpSocket::from_std(b.into()).unwrap());
        assert_eq!(a.send_to(b"hello", b_addr).await.unwrap().unwrap(), 5);
        b.readable().await.unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = b.recv_from(&mut buf).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello");
        a.writable().await.unwrap();
    }

    #[test]
    fn a_taken_address_fails_naming_bind() {
        let first = bound_socket("127.0.0.1:0".parse().unwrap(), Type::DGRAM, None).unwrap();
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        let e = bound_socket(addr, Type::DGRAM, None).unwrap_err();
        assert_eq!(e.syscall, "bind");
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_missing_device_fails_naming_so_bindtodevice() {
        let e = bound_socket(
            "127.0.0.1:0".parse().unwrap(),
            Type::DGRAM,
            Some("vnt-no-such0"),
        )
        .unwrap_err();
        assert_eq!(e.syscall, "setsockopt(SO_BINDTODEVICE)");
        let lo = bound_socket("127.0.0.1:0".parse().unwrap(), Type::STREAM, Some("lo"))
            .expect("bound to lo");
        assert_eq!(lo.device().unwrap().as_deref(), Some(&b"lo"[..]));
    }
}
