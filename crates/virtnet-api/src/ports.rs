//! Guest ports (taps on a network's bridge) and the guests' addresses: wire types, paths and
//! client calls.

use serde::{Deserialize, Serialize};

use crate::client::{decode, Client, ClientError};
use virtnet_model::InterfaceSource;

/// Body of `POST /v1/ports`: a port to create for a guest NIC (`attach-interface`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// The guest ("domain") the port belongs to.
    pub domain: String,
    /// The network (by name) or the bridge (by device name) to attach to.
    pub source: InterfaceSource,
    /// The guest NIC's MAC address (`52:54:00:…`); the tap gets `fe:…` (or `fa:…`).
    pub mac: String,
    /// The guest NIC model (virtio, e1000, rtl8139 …), recorded for `domiflist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The tap's name; default the next free `vnetN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner of the tap, so that an unprivileged QEMU can open it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    /// Group of the tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
    /// Queues (more than 1 makes a multiqueue tap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// Create the tap with `IFF_VNET_HDR` (virtio-net offloads).
    #[serde(default)]
    pub vnet_hdr: bool,
    /// Asked for by the setuid bridge helper on behalf of the unprivileged user `owner_uid`:
    /// such ports count against virtnetd's per-user limit, and virtnetd reaps them when their
    /// tap is gone or was never handed over (see `virtnet_qemu`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub helper: bool,
    /// `--no-spoof-check`: do not restrict the guest's source MAC and addresses (ports of
    /// nat, route and isolated networks are otherwise restricted to the guest's own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_spoof_check: bool,
    /// `<port isolated='yes'/>`: the port reaches the host and the outside, not other
    /// isolated ports (the network's `<port isolated='yes'/>` isolates all its ports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
}

impl PortRequest {
    /// A request for a virtio port of `domain` on `source` with the guest MAC `mac`; every
    /// other setting at its default (named tap, owner, queues left to virtnet; vnet header
    /// on; not the bridge helper's).
    pub fn new(domain: impl Into<String>, source: InterfaceSource, mac: impl Into<String>) -> Self {
        PortRequest {
            domain: domain.into(),
            source,
            mac: mac.into(),
            model: Some("virtio".into()),
            target: None,
            owner_uid: None,
            owner_gid: None,
            queues: None,
            vnet_hdr: true,
            helper: false,
            no_spoof_check: false,
            isolated: false,
        }
    }
}

/// Longest guest ("domain") name a port accepts, in bytes. The name becomes part of the tap's
/// alias (`virtnet-port:NAME`), which the kernel bounds at 255 bytes; libvirt itself sets no
/// bound, but 200 leaves the alias room and no real guest name comes near it.
pub const MAX_DOMAIN_NAME: usize = 200;

/// Checks a port's guest name as libvirt checks a domain name, plus a length bound: not empty
/// or blank, no control characters, no `/` (libvirt refuses it: names become file names), at
/// most [`MAX_DOMAIN_NAME`] bytes. The error is the reason, for a message naming the field.
pub fn check_domain_name(domain: &str) -> Result<(), String> {
    if domain.trim().is_empty() {
        return Err("the guest's name is empty".into());
    }
    if domain.len() > MAX_DOMAIN_NAME {
        return Err(format!(
            "the guest's name has {} bytes, more than {MAX_DOMAIN_NAME}",
            domain.len()
        ));
    }
    if let Some(c) = domain.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the guest's name contains the control character {:?}",
            c
        ));
    }
    if domain.contains('/') {
        return Err("the guest's name cannot contain '/'".into());
    }
    Ok(())
}

/// A guest port as virtnetd records and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The tap device (`vnetN`).
    pub name: String,
    /// The guest it belongs to.
    pub domain: String,
    /// What it is attached to.
    pub source: InterfaceSource,
    /// The bridge device the tap is enslaved to.
    pub bridge: String,
    /// The guest NIC's MAC address.
    pub mac: String,
    /// The tap's own MAC address.
    pub tap_mac: String,
    /// The guest NIC model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Administrative link state (`domif-setlink`).
    pub link_up: bool,
    /// MTU of the tap (the bridge's).
    pub mtu: u32,
    /// Owner of the tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    /// Group of the tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
    /// Queues of the tap.
    pub queues: u32,
    /// Created with `IFF_VNET_HDR`.
    pub vnet_hdr: bool,
    /// For a port libvirt's hypervisor daemon announced (`virNetworkPortCreateXML`; the
    /// hypervisor made the tap, found by its MAC): the port's UUID. Absent for virtnet's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_uuid: Option<String>,
    /// The port is under anti-spoofing rules now (its guest may send only its own MAC and
    /// addresses; see `virtnet_plan::spoof`).
    #[serde(default)]
    pub spoof_check: bool,
    /// The bridge port is isolated (`<port isolated='yes'/>`, the port's or its network's).
    #[serde(default)]
    pub isolated: bool,
    /// Frames the anti-spoofing rules dropped since the port was guarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoof_drops: Option<u64>,
}

/// Body of `PUT /v1/ports/{name}/source`: move a port to another network or bridge, live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRequest {
    /// The new network or bridge.
    pub source: InterfaceSource,
}

/// Body of `PUT /v1/ports/{name}/link` (`domif-setlink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    /// Up or down.
    pub up: bool,
}

/// Where `domifaddr` takes addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressSource {
    /// virtnet's DHCP leases.
    Lease,
    /// The kernel's neighbour table (works on bridged networks too).
    Arp,
}

impl AddressSource {
    /// The query-string spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressSource::Lease => "lease",
            AddressSource::Arp => "arp",
        }
    }
}

/// One address of a guest NIC (`domifaddr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// The port (`vnetN`).
    pub name: String,
    /// The guest NIC's MAC address.
    pub mac: String,
    /// `ipv4` or `ipv6`.
    pub protocol: String,
    /// The address.
    pub address: String,
    /// Its prefix length (0 when unknown, as from ARP).
    pub prefix: u8,
}

/// The port collection.
pub const PORTS: &str = "/v1/ports";

/// One port.
pub fn port_path(name: &str) -> String {
    format!("{PORTS}/{}", crate::paths::escape(name))
}

/// The addresses of a guest's ports.
pub fn domain_addresses_path(domain: &str, source: AddressSource) -> String {
    format!(
        "/v1/domains/{}/addresses?source={}",
        crate::paths::escape(domain),
        source.as_str()
    )
}

impl Client {
    /// `POST /v1/ports`: creates a tap for a guest NIC and attaches it.
    pub fn create_port(&self, request: &PortRequest) -> Result<Port, ClientError> {
        self.send_json("POST", PORTS, request)
    }

    /// `DELETE /v1/ports/{name}`: detaches and deletes a port.
    pub fn delete_port(&self, name: &str) -> Result<Port, ClientError> {
        let resp = self.checked("DELETE", &port_path(name), &[], None)?;
        decode(&resp)
    }

    /// `DELETE /v1/ports?domain=D&kind=K[&mac=M]`: detaches and deletes the one port of
    /// guest `domain` whose source is a `kind` (`network`, `bridge`) and, with `mac`, has that
    /// MAC. Not found when there is none, a conflict when there are several; then nothing is
    /// deleted.
    pub fn delete_guest_port(
        &self,
        domain: &str,
        kind: &str,
        mac: Option<&str>,
    ) -> Result<Port, ClientError> {
        let escape = crate::paths::escape;
        let mut path = format!("{PORTS}?domain={}&kind={}", escape(domain), escape(kind));
        if let Some(mac) = mac {
            path.push_str(&format!("&mac={}", escape(mac)));
        }
        let resp = self.checked("DELETE", &path, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/ports[?domain=D]`: every port, or one guest's, sorted by name.
    pub fn ports(&self, domain: Option<&str>) -> Result<Vec<Port>, ClientError> {
        let path = match domain {
            Some(d) => format!("{PORTS}?domain={}", crate::paths::escape(d)),
            None => PORTS.to_string(),
        };
        let resp = self.checked("GET", &path, &[], None)?;
        decode(&resp)
    }

    /// `GET /v1/ports?domain=D&counters=false`: a guest's ports without their anti-spoofing
    /// drop counters (`spoof_drops` is absent), for callers that only look ports up: the
    /// daemon then lists no counters, which is most of what a port listing costs.
    pub fn domain_ports(&self, domain: &str) -> Result<Vec<Port>, ClientError> {
        let path = format!(
            "{PORTS}?domain={}&counters=false",
            crate::paths::escape(domain)
        );
        let resp = self.checked("GET", &path, &[], None)?;
        decode(&resp)
    }

    /// `PUT /v1/ports/{name}/source`: moves a port to another network or bridge, live.
    pub fn move_port(&self, name: &str, source: InterfaceSource) -> Result<Port, ClientError> {
        self.send_json(
            "PUT",
            &format!("{}/source", port_path(name)),
            &MoveRequest { source },
        )
    }

    /// `PUT /v1/ports/{name}/link`: sets the port's link up or down.
    pub fn set_port_link(&self, name: &str, up: bool) -> Result<Port, ClientError> {
        self.send_json(
            "PUT",
            &format!("{}/link", port_path(name)),
            &LinkRequest { up },
        )
    }

    /// `GET /v1/domains/{domain}/addresses?source=…`: the addresses of a guest's ports.
    pub fn domain_addresses(
        &self,
        domain: &str,
        source: AddressSource,
    ) -> Result<Vec<InterfaceAddress>, ClientError> {
        let resp = self.checked("GET", &domain_addresses_path(domain, source), &[], None)?;
        decode(&resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_checked_as_libvirt_does_with_a_length_bound() {
        assert!(check_domain_name("vm1").is_ok());
        assert!(check_domain_name("ünïcode vm").is_ok());
        assert!(check_domain_name(&"x".repeat(MAX_DOMAIN_NAME)).is_ok());
        for bad in ["", "  ", "a\nb", "a\u{7}b", "a/b"] {
            assert!(check_domain_name(bad).is_err(), "{bad:?}");
        }
        let long = check_domain_name(&"x".repeat(300)).unwrap_err();
        assert!(long.contains("300 bytes"), "{long}");
    }
}
