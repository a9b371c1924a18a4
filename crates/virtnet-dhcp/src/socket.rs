//! Socket helpers of the network side: the namespace's one UDP socket on port 67 (served by
//! `hub.rs`), sending on a given interface, and the shared constants.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::DhcpError;
use crate::server::Engine;

/// DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// How often expired leases are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// At most this many datagrams already queued for a network are served as one batch (one
/// store commit for their leases).
pub const MAX_BATCH: usize = 64;
/// Receive buffer asked for the DHCP socket (one per namespace, shared by its networks).
/// The default (`net.core.rmem_default`, ~208 KiB)
/// holds only ~100-200 DHCP datagrams (each costs its skb's truesize, 1-2 KiB, not its ~300
/// bytes), so 256 guests booting at once overflowed it and lost DISCOVERs and RELEASEs. The
/// memory is only used while datagrams wait.
pub const RCVBUF: usize = 4 << 20;

/// Receive buffer for one datagram (a DHCP message is at most 576 bytes unless the client
/// allows more; longer ones are cut and fail to decode).
pub(crate) const RECV_BUF: usize = 4096;

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Locks the engine even if a panic poisoned the mutex (the state is still consistent: every
/// change is applied under the lock in one step).
pub(crate) fn lock(m: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the namespace's one DHCP socket: 0.0.0.0:67 on no particular device, with
/// SO_REUSEADDR (other DHCP servers bound to other devices, and another virtnetd in the same
/// namespace, still bind port 67), SO_BROADCAST, IP_PKTINFO (each datagram's arrival
/// interface, which decides the network) and SO_TIMESTAMPNS (the kernel's receive time pairs
/// a datagram with its frame), and a receive buffer of [`RCVBUF`] (SO_RCVBUFFORCE when
/// permitted, else SO_RCVBUF, which the kernel caps at `net.core.rmem_max`). `bridge` only
/// names the network whose start opened it, in errors.
///
/// One socket for every network, not one bound to each bridge (SO_BINDTODEVICE): sockets
/// bound to the same address and port share one slot of the kernel's UDP hash, and every
/// bind scanned all the others (`udp_lib_lport_inuse`), 15 % of a network start at 3,000
/// networks; each also cost a descriptor, a task and a receive queue per network.
pub(crate) fn bind_shared(bridge: &str) -> Result<std::net::UdpSocket, DhcpError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |op: &'static str| {
        let bridge = bridge.to_string();
        move |source: io::Error| DhcpError::Socket { bridge, op, source }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .map_err(err("socket(AF_INET, SOCK_DGRAM)"))?;
    s.set_reuse_address(true)
        .map_err(err("setsockopt(SO_REUSEADDR)"))?;
    s.set_broadcast(true)
        .map_err(err("setsockopt(SO_BROADCAST)"))?;
    setsockopt_on(&s, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)
        .map_err(err("setsockopt(SO_TIMESTAMPNS)"))?;
    setsockopt_on(&s, libc::IPPROTO_IP, libc::IP_PKTINFO).map_err(err("setsockopt(IP_PKTINFO)"))?;
    set_rcvbuf(&s, RCVBUF);
    s.set_nonblocking(true).map_err(err("fcntl(O_NONBLOCK)"))?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    s.bind(&addr.into()).map_err(err("bind(0.0.0.0:67)"))?;
    Ok(s.into())
}

/// Turns a boolean socket option on.
fn setsockopt_on(s: &socket2::Socket, level: libc::c_int, opt: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on our own descriptor with a valid c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `bytes` to `to` out of interface `ifindex` (an `IP_PKTINFO` control message: the
/// socket is bound to no device, so this is what keeps a reply, broadcast or unicast, on the
/// bridge its request came in on; the source address is the one the kernel picks on that
/// interface, as it did for the socket bound to the bridge). Never blocks.
pub(crate) fn send_on(fd: RawFd, bytes: &[u8], to: SocketAddrV4, ifindex: u32) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_in and in_pktinfo.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = to.port().to_be();
    sin.sin_addr.s_addr = u32::from(*to.ip()).to_be();
    let mut info: libc::in_pktinfo = unsafe { std::mem::zeroed() };
    info.ipi_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // Room for one in_pktinfo control message (CMSG_SPACE(12) = 32), u64-aligned.
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr; its pointers are set just below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sin as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) } as _;
    // SAFETY: the control buffer holds CMSG_SPACE(in_pktinfo) bytes (checked above by its
    // size: 32 <= 32); CMSG_FIRSTHDR points into it and the data is written unaligned.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*c).cmsg_level = libc::IPPROTO_IP;
        (*c).cmsg_type = libc::IP_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), info);
    }
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The interface index of `bridge`, asked on the namespace's DHCP socket (`SIOCGIFINDEX`): no
/// descriptor of its own, where glibc's `if_nametoindex` opens one, and at the open-file limit
/// failed with a misleading `ENOENT`.
pub(crate) fn ifindex(sock: &std::net::UdpSocket, bridge: &str) -> Result<u32, DhcpError> {
    let no_such = |source| DhcpError::NoSuchBridge {
        bridge: bridge.to_string(),
        source,
    };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = bridge.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return Err(no_such(io::Error::from_raw_os_error(libc::ENODEV)));
    }
    for (dst, &b) in req.ifr_name.iter_mut().zip(name) {
        *dst = b as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads the NUL-terminated name and writes the index into `req`,
    // which lives for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
    if rc != 0 {
        return Err(no_such(io::Error::last_os_error()));
    }
    // SAFETY: after a successful SIOCGIFINDEX the union holds the index.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index)
        .ok()
        .filter(|&i| i != 0)
        .ok_or_else(|| no_such(io::Error::from_raw_os_error(libc::ENODEV)))
}

/// Asks for a receive buffer of `bytes`: SO_RCVBUFFORCE (needs CAP_NET_ADMIN, ignores
/// `net.core.rmem_max`), else SO_RCVBUF. Best effort: a smaller buffer still works.
pub fn set_rcvbuf(s: &socket2::Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on our own descriptor with a valid c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        if let Err(e) = s.set_recv_buffer_size(bytes) {
            tracing::debug!(error = %e, "setsockopt(SO_RCVBUF) failed; default buffer");
        }
    }
}
