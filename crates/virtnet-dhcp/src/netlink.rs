//! The two rtnetlink questions the server asks, through `virtnet-host`'s client
//! ([`virtnet_host::Netlink`]), synchronously (one request, one answer, microseconds):
//!
//! - which bridge an interface is a port of (`RTM_GETLINK`, `IFLA_MASTER`: `ip link show`),
//!   for the ingress port of a DHCP frame (`ingress.rs`);
//! - which MAC the bridge's neighbour table has for an IPv4 address (`RTM_GETNEIGH`,
//!   `AF_INET`, `NDA_DST`: `ip neigh get`), for the conflict check ([`NeighProbe`]);
//! - on an overlay network, which address the table gives a MAC (a guest moved from another
//!   host, its EVPN MAC/IP route), and adding a new lease's entry so EVPN announces it.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use virtnet_host::Netlink;

/// How long one answer may take before the lookup counts as failed.
const TIMEOUT: Duration = Duration::from_millis(200);

/// An rtnetlink socket in the calling thread's namespace whose reads give up after
/// [`TIMEOUT`]: these lookups run on the packet path.
pub(crate) fn open() -> io::Result<Netlink> {
    let mut nl = Netlink::open().map_err(io::Error::other)?;
    nl.set_read_timeout(Some(TIMEOUT))
        .map_err(io::Error::other)?;
    Ok(nl)
}

/// The bridge (ifindex) that link `ifindex` is a port of; `None` when it has no master
/// or does not exist.
pub(crate) fn link_master(nl: &mut Netlink, ifindex: u32) -> io::Result<Option<u32>> {
    Ok(nl
        .link_by_index(ifindex)
        .map_err(io::Error::other)?
        .and_then(|l| l.master))
}

/// The [`crate::Probe`] of a running server: the bridge's neighbour table, asked through the
/// namespace's shared rtnetlink socket (one per namespace, not one per network).
#[derive(Debug)]
pub(crate) struct NeighProbe {
    pub(crate) nl: Arc<Mutex<Netlink>>,
    pub(crate) bridge: u32,
}

impl crate::server::Probe for NeighProbe {
    fn conflict(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) -> bool {
        let answer = self
            .nl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .neighbour(self.bridge, IpAddr::V4(ip));
        match answer {
            Ok(Some(other)) => &other.mac != mac,
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "neighbour lookup failed; assuming free");
                false
            }
        }
    }

    fn address_of(&mut self, mac: &[u8; 6]) -> Option<Ipv4Addr> {
        let answer = self
            .nl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ipv4_of_mac(self.bridge, mac);
        answer
            .map_err(|e| tracing::debug!(error = %e, "neighbour dump failed; no hand-over"))
            .ok()
            .flatten()
    }

    fn announce(&mut self, ip: Ipv4Addr, mac: &[u8; 6]) {
        let answer = self
            .nl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_neighbour(self.bridge, IpAddr::V4(ip), mac);
        if let Err(e) = answer {
            tracing::warn!(%ip, error = %e, "cannot add the lease's neighbour entry");
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
            let mut nl = open().unwrap();
            let mac = [0x52, 0x54, 0, 0, 0, 0x77];
            assert_eq!(link_master(&mut nl, port).unwrap(), Some(br));
            assert_eq!(link_master(&mut nl, br).unwrap(), None);
            assert_eq!(link_master(&mut nl, 99_999).unwrap(), None);
            let seen = nl.neighbour(br, IpAddr::V4(Ipv4Addr::new(10, 78, 0, 7)));
            assert_eq!(seen.unwrap().map(|n| n.mac), Some(mac));
            let absent = nl.neighbour(br, IpAddr::V4(Ipv4Addr::new(10, 78, 0, 99)));
            assert_eq!(absent.unwrap(), None);
            let mut probe = NeighProbe {
                nl: Arc::new(Mutex::new(nl)),
                bridge: br,
            };
            use crate::server::Probe;
            assert!(probe.conflict(Ipv4Addr::new(10, 78, 0, 7), &[2, 0, 0, 0, 0, 1]));
            assert!(!probe.conflict(Ipv4Addr::new(10, 78, 0, 7), &mac));
            assert!(!probe.conflict(Ipv4Addr::new(10, 78, 0, 8), &[2, 0, 0, 0, 0, 1]));
        });
    }
}
