//! ICMP echo on one device: a raw ICMP (or ICMPv6) socket bound to a link with
//! `SO_BINDTODEVICE`, so the echo leaves by that link whatever the routing table says.
//!
//! virtnetd's `iface-bridge` asks the gateway for an echo on the new bridge before it keeps
//! the change; what to ping and for how long is its decision, not this module's.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{HostError, Result};

/// ICMPv4 type of an echo request.
const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv4 type of an echo reply.
const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv6 type of an echo request.
const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 type of an echo reply.
const ICMPV6_ECHO_REPLY: u8 = 129;

/// A raw ICMP (or ICMPv6) socket bound to one device, sending echo requests to one target
/// and recognising its replies by their identifier.
#[derive(Debug)]
pub struct Pinger {
    fd: OwnedFd,
    target: IpAddr,
    id: u16,
}

fn last_err(op: &'static str, target: &str) -> HostError {
    HostError::new(op, target, std::io::Error::last_os_error())
}

impl Pinger {
    /// A raw socket for `target`'s family, bound to `device` (needs `CAP_NET_RAW`).
    pub fn open(device: &str, target: IpAddr) -> Result<Pinger> {
        let (domain, proto) = match target {
            IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
            IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(last_err("open ICMP socket", device));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = device.as_bytes();
        // SAFETY: the option value is the device name's bytes, with their length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_err("bind ICMP socket to device", device));
        }
        Ok(Pinger {
            fd,
            target,
            id: echo_id(),
        })
    }

    /// The address the echo requests go to.
    pub fn target(&self) -> IpAddr {
        self.target
    }

    /// Sends one echo request with sequence number `seq`.
    pub fn send(&self, seq: u16) -> Result<()> {
        let pkt = echo_request(self.target, self.id, seq);
        let rc = match self.target {
            IpAddr::V4(a) => {
                // SAFETY: zeroed sockaddr_in is valid; filled below.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                // SAFETY: valid buffer and address of the stated sizes.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            IpAddr::V6(a) => {
                // SAFETY: zeroed sockaddr_in6 is valid; filled below.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                // SAFETY: valid buffer and address of the stated sizes.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if rc < 0 {
            return Err(last_err("send echo request to", &self.target.to_string()));
        }
        Ok(())
    }

    /// Waits up to `wait` for an echo reply from the target with our identifier; other
    /// packets the raw socket sees are skipped.
    pub fn wait_reply(&self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            if n <= 0 {
                return false;
            }
            let mut buf = [0u8; 1500];
            // SAFETY: zeroed sockaddr_storage is valid for recvfrom to fill.
            let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: valid buffer and address storage of the stated sizes.
            let got = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_storage).cast(),
                    &mut len,
                )
            };
            if got <= 0 {
                if Instant::now() >= end {
                    return false;
                }
                continue;
            }
            let pkt = &buf[..got as usize];
            if self.is_reply(pkt, &from) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    fn is_reply(&self, pkt: &[u8], from: &libc::sockaddr_storage) -> bool {
        match self.target {
            IpAddr::V4(a) => is_echo_reply_v4(pkt, a.octets(), self.id),
            IpAddr::V6(a) => {
                // SAFETY: for an AF_INET6 socket the kernel fills a sockaddr_in6.
                let sa = unsafe {
                    &*(from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                sa.sin6_addr.s6_addr == a.octets() && is_echo_reply_v6(pkt, self.id)
            }
        }
    }
}

/// An identifier for this process's echo requests (pid mixed with the time, so that two
/// daemons' pingers rarely collide).
fn echo_id() -> u16 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (std::process::id() as u16) ^ (now as u16).rotate_left(7)
}

/// An echo request to `target` (ICMP or ICMPv6 by its family) with identifier `id` and
/// sequence number `seq`. The ICMPv4 checksum is filled in; ICMPv6's is the kernel's job on
/// raw ICMPv6 sockets (it covers a pseudo-header the kernel knows).
pub fn echo_request(target: IpAddr, id: u16, seq: u16) -> [u8; 16] {
    let mut pkt = [0u8; 16];
    pkt[0] = if target.is_ipv4() {
        ICMP_ECHO_REQUEST
    } else {
        ICMPV6_ECHO_REQUEST
    };
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(b"virtnet!");
    if target.is_ipv4() {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    pkt
}

/// Whether `pkt`, as a raw IPv4 ICMP socket hands it over (IP header included), is an echo
/// reply from `from` with identifier `id`.
fn is_echo_reply_v4(pkt: &[u8], from: [u8; 4], id: u16) -> bool {
    let Some(&vhl) = pkt.first() else {
        return false;
    };
    let ihl = usize::from(vhl & 0x0f) * 4;
    if pkt.len() < ihl + 8 || pkt.len() < 20 || pkt[12..16] != from {
        return false;
    }
    let icmp = &pkt[ihl..];
    icmp[0] == ICMP_ECHO_REPLY && icmp[4..6] == id.to_be_bytes()
}

/// Whether `pkt`, as a raw ICMPv6 socket hands it over (no IP header), is an echo reply
/// with identifier `id` (the sender is checked by the caller).
fn is_echo_reply_v6(pkt: &[u8], id: u16) -> bool {
    pkt.len() >= 8 && pkt[0] == ICMPV6_ECHO_REPLY && pkt[4..6] == id.to_be_bytes()
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        let mut pkt = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&pkt), 0);
    }

    #[test]
    fn checksum_of_an_odd_length() {
        // The last byte counts as the high half of a word padded with zero.
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn echo_requests_carry_id_and_sequence() {
        let v4 = echo_request("192.0.2.1".parse().unwrap(), 0xbeef, 7);
        assert_eq!(v4[0], ICMP_ECHO_REQUEST);
        assert_eq!(v4[4..6], [0xbe, 0xef]);
        assert_eq!(v4[6..8], [0, 7]);
        assert_eq!(checksum(&v4), 0, "the ICMPv4 checksum verifies");
        let v6 = echo_request("2001:db8::1".parse().unwrap(), 0xbeef, 7);
        assert_eq!(v6[0], ICMPV6_ECHO_REQUEST);
        assert_eq!(v6[2..4], [0, 0], "ICMPv6's checksum is left to the kernel");
    }

    #[test]
    fn replies_are_matched_by_sender_and_id() {
        let mut ip = [0u8; 28];
        ip[0] = 0x45;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[20] = ICMP_ECHO_REPLY;
        ip[24..26].copy_from_slice(&0xbeefu16.to_be_bytes());
        assert!(is_echo_reply_v4(&ip, [192, 0, 2, 1], 0xbeef));
        assert!(
            !is_echo_reply_v4(&ip, [192, 0, 2, 2], 0xbeef),
            "other sender"
        );
        assert!(!is_echo_reply_v4(&ip, [192, 0, 2, 1], 0xbeee), "other id");
        assert!(
            !is_echo_reply_v4(&ip[..24], [192, 0, 2, 1], 0xbeef),
            "short"
        );
        ip[20] = ICMP_ECHO_REQUEST;
        assert!(!is_echo_reply_v4(&ip, [192, 0, 2, 1], 0xbeef), "a request");

        let mut v6 = [0u8; 8];
        v6[0] = ICMPV6_ECHO_REPLY;
        v6[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        assert!(is_echo_reply_v6(&v6, 0xbeef));
        assert!(!is_echo_reply_v6(&v6, 0xbeee));
        assert!(!is_echo_reply_v6(&v6[..7], 0xbeef));
    }
}
