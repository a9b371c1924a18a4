//! The ARP frames guests send, seen as they enter a bridge port: the IP learning of
//! anti-spoofing reads from here which address a guest with a static configuration uses.
//!
//! One `AF_PACKET` socket, `SOCK_DGRAM`, `ETH_P_ALL`, not bound to an interface, with
//! `PACKET_IGNORE_OUTGOING` and a classic BPF filter that keeps ARP only. `ETH_P_ALL` because
//! only such taps run before a bridge's receive handler: a socket of protocol `ETH_P_ARP` is
//! handed frames after the bridge took them, and so sees none that enter through a port. The
//! frame's receiving interface (`sll_ifindex`) is the port.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h): no copies of transmitted frames.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// One ARP frame as it entered an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSeen {
    /// The interface it was received on.
    pub ifindex: u32,
    /// The sender's hardware address.
    pub sender_mac: [u8; 6],
    /// The sender's protocol address (`0.0.0.0` in a probe).
    pub sender_ip: Ipv4Addr,
}

/// The socket; see the module docs.
#[derive(Debug)]
pub struct ArpWatch {
    fd: OwnedFd,
}

impl ArpWatch {
    /// Opens the socket in the calling thread's network namespace; reads wait at most
    /// `timeout`.
    pub fn open(timeout: Duration) -> io::Result<ArpWatch> {
        let proto = libc::c_int::from((libc::ETH_P_ALL as u16).to_be());
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just returned by socket(2) and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach_arp_filter(fd.as_raw_fd())?;
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &1 as &libc::c_int,
        )?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        Ok(ArpWatch { fd })
    }

    /// The next IPv4-over-Ethernet ARP frame received, `None` when none came within the
    /// timeout. Other ARP (malformed, other hardware) is skipped.
    pub fn next_arp(&mut self) -> io::Result<Option<ArpSeen>> {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: sockaddr_ll is plain data; recvfrom writes at most `len` bytes of it.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are valid for the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if let Some(seen) = parse(&buf[..n as usize], from.sll_ifindex as u32) {
                return Ok(Some(seen));
            }
        }
    }
}

/// An ARP packet (from its header on) for IPv4 over Ethernet.
fn parse(p: &[u8], ifindex: u32) -> Option<ArpSeen> {
    if p.len() < 28 || p[0..2] != [0, 1] || p[2..4] != [8, 0] || p[4] != 6 || p[5] != 4 {
        return None;
    }
    Some(ArpSeen {
        ifindex,
        sender_mac: p[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
    })
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: setsockopt with a value of its own size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Classic BPF on the frame's EtherType (`skb->protocol`): ARP is kept, the rest dropped in
/// the kernel.
fn attach_arp_filter(fd: RawFd) -> io::Result<()> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = [
        ins(
            LD_W_ABS,
            0,
            0,
            (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32,
        ),
        ins(JEQ, 0, 1, libc::ETH_P_ARP as u32),
        ins(RET, 0, 0, 64),
        ins(RET, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
    // Frames queued before the filter applied: read and dropped.
    let mut buf = [0u8; 64];
    // SAFETY: a non-blocking read into `buf` on a valid descriptor.
    while unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } >= 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv4_over_ethernet_arp_parses() {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend([0x52, 0x54, 0, 0, 0, 1, 192, 168, 1, 50]);
        p.extend([0; 6]);
        p.extend([192, 168, 1, 1]);
        assert_eq!(
            parse(&p, 7),
            Some(ArpSeen {
                ifindex: 7,
                sender_mac: [0x52, 0x54, 0, 0, 0, 1],
                sender_ip: Ipv4Addr::new(192, 168, 1, 50)
            })
        );
        let mut ieee1394 = p.clone();
        ieee1394[1] = 24;
        assert_eq!(parse(&ieee1394, 7), None);
        assert_eq!(parse(&p[..20], 7), None);
    }
}
