//! Two rtnetlink questions, asked synchronously (one request, one answer, microseconds):
//!
//! - which bridge an interface is a port of (`RTM_GETLINK`, `IFLA_MASTER`: `ip link show`),
//!   for the ingress port of a DHCP frame (`ingress.rs`);
//! - which MAC the bridge's neighbour table has for an IPv4 address (`RTM_GETNEIGH`,
//!   `AF_INET`, `NDA_DST`: `ip neigh get`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long one answer may take before the lookup counts as failed.
const TIMEOUT_MS: i64 = 200;

/// An rtnetlink socket in the namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct Neigh {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Neigh {
    /// Opens the socket (in the calling thread's network namespace).
    pub(crate) fn open() -> io::Result<Neigh> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Single-entry gets need strict checking on older kernels; best effort.
        let _ = sock.set_netlink_get_strict_chk(true);
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: TIMEOUT_MS * 1000,
        };
        // SAFETY: setsockopt with a valid timeval of the right size on our own descriptor.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Neigh {
            sock,
            seq: 0,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Sends one get request; the kernel's answer, or `None` when it has no such entry.
    fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<Option<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        nl.header.flags = NLM_F_REQUEST;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0)?;
        loop {
            // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = usize::try_from(n).unwrap_or(0);
            let mut off = 0;
            while let Some(rest) = self.buf.get(off..n) {
                if rest.len() < 16 {
                    break;
                }
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len < 16 || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink message length",
                    ));
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                off += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(None),
                            Some(_) => {
                                let err = e.to_io();
                                if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) {
                                    Ok(None)
                                } else {
                                    Err(err)
                                }
                            }
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(None),
                    _ => {}
                }
            }
        }
    }

    /// The bridge (ifindex) that link `ifindex` is a port of; `None` when it has no master
    /// or does not exist.
    pub(crate) fn link_master(&mut self, ifindex: u32) -> io::Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        let Some(RouteNetlinkMessage::NewLink(r)) = self.get(RouteNetlinkMessage::GetLink(m))?
        else {
            return Ok(None);
        };
        Ok(r.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::Controller(master) => Some(master),
            _ => None,
        }))
    }

    /// The MAC the neighbour table of `ifindex` holds for `ip`, when the entry is live
    /// (REACHABLE, STALE, DELAY, PROBE or PERMANENT).
    pub(crate) fn neighbour_mac(
        &mut self,
        ifindex: u32,
        ip: Ipv4Addr,
    ) -> io::Result<Option<Vec<u8>>> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = ifindex;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        let Some(RouteNetlinkMessage::NewNeighbour(r)) =
            self.get(RouteNetlinkMessage::GetNeighbour(m))?
        else {
            return Ok(None);
        };
        if !matches!(
            r.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        ) {
            return Ok(None);
        }
        Ok(r.attributes.into_iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(l) => Some(l),
            _ => None,
        }))
    }
}

/// The [`crate::Probe`] of a running server: the bridge's neighbour table.
#[derive(Debug)]
pub(crate) struct NeighProbe {
    pub(crate) nl: Neigh,
    pub(crate) bridge: u32,
}

impl crate::server::Probe for NeighProbe {
    fn conflict(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) -> bool {
        match self.nl.neighbour_mac(self.bridge, ip) {
            Ok(Some(other)) => other.as_slice() != mac,
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "neighbour lookup failed; assuming free");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_testkit::Netns;

    fn ifindex(name: &str) -> u32 {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    }

    /// The master and neighbour lookups against a real bridge in a namespace (root only).
    #[test]
    fn master_and_neighbour_lookups() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let host = Netns::new("dnl");
        host.ip_ok(["link", "add", "br0", "type", "bridge", "stp_state", "0"]);
        host.ip_ok(["addr", "add", "10.78.0.1/24", "dev", "br0"]);
        host.ip_ok(["link", "set", "br0", "up"]);
        let g = Netns::new("dnlg");
        g.ip_ok([
            "link",
            "add",
            "eth0",
            "address",
            "52:54:00:00:00:77",
            "type",
            "veth",
            "peer",
            "name",
            "vp7",
            "netns",
            host.name(),
        ]);
        host.ip_ok(["link", "set", "vp7", "master", "br0", "up"]);
        g.ip_ok(["addr", "add", "10.78.0.7/24", "dev", "eth0"]);
        g.ip_ok(["link", "set", "eth0", "up"]);
        // Traffic from the guest teaches the bridge its MAC and the host its neighbour entry.
        assert!(g.ping("10.78.0.1") || g.ping("10.78.0.1"));
        host.in_ns(|| {
            let (br, port) = (ifindex("br0"), ifindex("vp7"));
            assert!(br != 0 && port != 0);
            let mut nl = Neigh::open().unwrap();
            let mac = [0x52, 0x54, 0, 0, 0, 0x77];
            assert_eq!(nl.link_master(port).unwrap(), Some(br));
            assert_eq!(nl.link_master(br).unwrap(), None);
            assert_eq!(nl.link_master(99_999).unwrap(), None);
            assert_eq!(
                nl.neighbour_mac(br, Ipv4Addr::new(10, 78, 0, 7)).unwrap(),
                Some(mac.to_vec())
            );
            assert_eq!(
                nl.neighbour_mac(br, Ipv4Addr::new(10, 78, 0, 99)).unwrap(),
                None
            );
            let mut probe = NeighProbe { nl, bridge: br };
            use crate::server::Probe;
            assert!(probe.conflict(Ipv4Addr::new(10, 78, 0, 7), &[2, 0, 0, 0, 0, 1]));
            assert!(!probe.conflict(Ipv4Addr::new(10, 78, 0, 7), &mac));
            assert!(!probe.conflict(Ipv4Addr::new(10, 78, 0, 8), &[2, 0, 0, 0, 0, 1]));
        });
    }
}
