//! The typed form of a libvirt `<network>` definition.
//!
//! Every field maps to one element or attribute of libvirt's network XML. Optional XML attributes
//! are `Option`s so that what the user wrote survives a round trip: libvirt prints an attribute
//! only when it was given (e.g. `localOnly`), except for the defaults it always prints (bridge
//! `stp`/`delay` on networks that own their bridge).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mac::MacAddr;
use crate::subnet::Subnet;

/// A libvirt virtual network definition (`<network>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `<name>`: unique per host; must not contain `/`.
    pub name: String,
    /// `<uuid>`: generated at define time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// `<title>`: a short one-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `<description>`: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `<metadata>`: the child elements exactly as written (applications' own namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// `ipv6='yes'` on `<network>`: guest-to-guest IPv6 even without an IPv6 gateway address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
    /// `trustGuestRxFilters` on `<network>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_guest_rx_filters: Option<bool>,
    /// `<forward>`; [`ForwardMode::None`] means an isolated network (no `<forward>` element).
    #[serde(default)]
    pub forward: Forward,
    /// `<bridge>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
    /// `<mtu size>` of the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `<mac address>` of the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// `<domain>`: the DNS domain of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// `<dns>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// `<vlan>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vlan>,
    /// `<bandwidth>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// `<ip>` elements, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpDef>,
    /// `<route>` elements: static routes via a guest acting as a router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `<virtualport>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualport: Option<VirtualPort>,
    /// `<portgroup>` elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portgroups: Vec<PortGroup>,
    /// `<port isolated>`: guests on this network cannot talk to each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_isolated: Option<bool>,
    /// `<dnsmasq:options>`: kept verbatim for round trips. virtnet does not run dnsmasq, so a
    /// network carrying these cannot be started (see [`Network::dnsmasq_options`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnsmasq_options: Vec<String>,
    /// `<virtnet:host-access>` (virtnet's extension, namespace `urn:virtnet:network:1`): the
    /// host services the network's guests may reach besides the network's own DHCP, DNS and
    /// TFTP. Without it guests reach nothing else on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_access: Vec<HostAllow>,
    /// `<virtnet:forwards>` (virtnet's extension): ports of the host forwarded to guests (see
    /// [`crate::portforward`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<crate::portforward::PortForward>,
    /// `<virtnet:overlay>` (virtnet's extension): the network is one segment across hosts,
    /// carried over VXLAN (see [`crate::overlay`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<crate::overlay::Overlay>,
}

/// `<virtnet:allow proto='tcp' port='22'/>`: guests may open connections (or send datagrams)
/// to this port on any of the host's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostAllow {
    /// `proto`: `tcp` or `udp`.
    pub proto: HostProto,
    /// `port`: 1 to 65535.
    pub port: u16,
}

/// The layer-4 protocol of a [`HostAllow`] (and of a port forward).
pub use crate::portforward::HostProto;

/// The forwarding mode of a network (`<forward mode>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// No `<forward>`: an isolated network.
    #[default]
    None,
    /// Masquerade / SNAT to the outside.
    Nat,
    /// Routed without NAT.
    Route,
    /// Routed, with no firewall rules at all.
    Open,
    /// A host bridge (`<bridge name>`) or macvtap bridge mode (`<interface dev>`).
    Bridge,
    /// macvtap private mode.
    Private,
    /// macvtap VEPA mode.
    Vepa,
    /// macvtap passthrough.
    Passthrough,
    /// PCI passthrough of SR-IOV virtual functions.
    Hostdev,
}

impl ForwardMode {
    /// All modes, in libvirt's enum order.
    pub const ALL: [ForwardMode; 9] = [
        ForwardMode::None,
        ForwardMode::Nat,
        ForwardMode::Route,
        ForwardMode::Open,
        ForwardMode::Bridge,
        ForwardMode::Private,
        ForwardMode::Vepa,
        ForwardMode::Passthrough,
        ForwardMode::Hostdev,
    ];

    /// The spelling used in XML (`mode='…'`).
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMode::None => "none",
            ForwardMode::Nat => "nat",
            ForwardMode::Route => "route",
            ForwardMode::Open => "open",
            ForwardMode::Bridge => "bridge",
            ForwardMode::Private => "private",
            ForwardMode::Vepa => "vepa",
            ForwardMode::Passthrough => "passthrough",
            ForwardMode::Hostdev => "hostdev",
        }
    }

    /// Parses the XML spelling.
    pub fn parse(s: &str) -> Option<ForwardMode> {
        ForwardMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Modes in which virtnet owns a bridge with addresses, DHCP and DNS
    /// (libvirt: none, nat, route, open).
    pub fn has_own_bridge(self) -> bool {
        matches!(
            self,
            ForwardMode::None | ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        )
    }
}

impl std::fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<forward>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Forward {
    /// `mode`.
    #[serde(default)]
    pub mode: ForwardMode,
    /// `managed` (hostdev only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
    /// `<driver name>` (hostdev only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `<nat>` (nat only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
    /// `<pf dev>`: the SR-IOV physical function whose VFs form the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<String>,
    /// `<interface dev>` elements. A `dev` attribute on `<forward>` is the first of these, as in
    /// libvirt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// `<address type='pci'>` elements (hostdev / passthrough pools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<PciAddress>,
}

impl Forward {
    /// The egress device (`<forward dev>`), if any: the first interface unless a PF is given.
    pub fn dev(&self) -> Option<&str> {
        if self.pf.is_some() {
            return None;
        }
        self.interfaces.first().map(String::as_str)
    }
}

/// `<nat>` inside `<forward mode='nat'>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nat {
    /// `ipv6='yes'`: also masquerade IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    /// `<address start end>`: SNAT to this IPv4 range instead of masquerading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddrRange<Ipv4Addr>>,
    /// `<port start end>`: source ports used by NAT (default 1024–65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortRange>,
}

/// An inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRange<A> {
    /// First address.
    pub start: A,
    /// Last address.
    pub end: A,
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

/// A PCI address (`<address type='pci' domain bus slot function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PciAddress {
    /// PCI domain.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Slot number (0–31).
    pub slot: u8,
    /// Function number (0–7).
    pub function: u8,
}

/// `<bridge>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bridge {
    /// `name`: the Linux bridge device; may be a template containing `%d` before define.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `zone`: firewalld zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `stp` (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<bool>,
    /// `delay`: STP forward delay in seconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// `macTableManager`: `kernel` or `libvirt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_table_manager: Option<MacTableManager>,
}

/// Who manages the bridge's forwarding database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacTableManager {
    /// The kernel learns MACs (flooding on).
    Kernel,
    /// libvirt/virtnet programs the FDB from known guest MACs.
    Libvirt,
}

/// `<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    /// `name`: the DNS domain of guests.
    pub name: String,
    /// `localOnly`: names in this domain are never forwarded upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_only: Option<bool>,
    /// `register`: register guest names with the host's resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<bool>,
}

/// `<dns>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// `enable`: `no` turns the DNS server off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// `forwardPlainNames`: forward names without a dot upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_plain_names: Option<bool>,
    /// `<forwarder>` elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarders: Vec<DnsForwarder>,
    /// `<txt>` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txts: Vec<DnsTxt>,
    /// `<srv>` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srvs: Vec<DnsSrv>,
    /// `<host>` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DnsHost>,
}

impl Dns {
    /// True when the element carries no records and no attributes (libvirt omits it then).
    pub fn is_empty(&self) -> bool {
        self.enable.is_none()
            && self.forward_plain_names.is_none()
            && self.forwarders.is_empty()
            && self.txts.is_empty()
            && self.srvs.is_empty()
            && self.hosts.is_empty()
    }
}

/// `<forwarder addr domain port>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsForwarder {
    /// Upstream server; absent with a domain means "resolve this domain locally only".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    /// Only queries for this domain go to `addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Upstream port (default 53).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `<txt name value>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsTxt {
    /// Record name.
    pub name: String,
    /// Record text.
    pub value: String,
}

/// `<srv service protocol domain target port priority weight>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSrv {
    /// Service name (without the leading underscore).
    pub service: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Domain the record lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Target host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Target port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
}

/// `<host ip><hostname>…</hostname></host>` inside `<dns>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsHost {
    /// Address the names resolve to.
    pub ip: IpAddr,
    /// One or more names.
    pub hostnames: Vec<String>,
}

/// Address family of an `<ip>` or `<route>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// `<ip>`: an address of the bridge, with optional DHCP and TFTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpDef {
    /// `family` as written (libvirt prints it only when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// `address`: the host's (gateway) address on the network.
    pub address: IpAddr,
    /// `netmask` (IPv4 only; exclusive with `prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Ipv4Addr>,
    /// `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// `localPtr`: answer reverse lookups for this subnet locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ptr: Option<bool>,
    /// `<tftp root>` (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftp_root: Option<String>,
    /// `<dhcp>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
}

/// `<dhcp>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// `<range>` elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<DhcpRange>,
    /// `<host>` elements: static leases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DhcpHost>,
    /// `<bootp file server>` (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootp: Option<Bootp>,
}

/// `<range start end>` with an optional `<lease>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpRange {
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// Lease time for addresses from this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// `<host mac|id name ip>`: a static DHCP assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpHost {
    /// Client MAC address (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Client identifier / DUID, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Host name given to the client (and published in DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fixed address.
    pub ip: IpAddr,
    /// Lease time for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// `<lease expiry unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Number of `unit`s; 0 means infinite.
    pub expiry: u64,
    /// Unit of `expiry` (default minutes).
    pub unit: LeaseUnit,
}

impl Lease {
    /// Lease length in seconds, `None` for an infinite lease.
    pub fn seconds(&self) -> Option<u64> {
        if self.expiry == 0 {
            return None;
        }
        Some(self.expiry.saturating_mul(self.unit.seconds()))
    }
}

/// Unit of a lease time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseUnit {
    /// Seconds.
    Seconds,
    /// Minutes (libvirt's default).
    Minutes,
    /// Hours.
    Hours,
}

impl LeaseUnit {
    /// The XML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseUnit::Seconds => "seconds",
            LeaseUnit::Minutes => "minutes",
            LeaseUnit::Hours => "hours",
        }
    }

    /// Seconds per unit.
    pub fn seconds(self) -> u64 {
        match self {
            LeaseUnit::Seconds => 1,
            LeaseUnit::Minutes => 60,
            LeaseUnit::Hours => 3600,
        }
    }
}

/// `<bootp file server>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootp {
    /// Boot file name.
    pub file: String,
    /// TFTP server (name or address); default the host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// `<route>`: a static route on the host via a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `family` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Destination network address.
    pub address: IpAddr,
    /// `netmask` (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Ipv4Addr>,
    /// `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// Next hop, on one of the network's subnets.
    pub gateway: IpAddr,
    /// Route metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

impl Route {
    /// The destination's prefix length: `prefix`, else from `netmask`, else the whole address
    /// (32 or 128).
    pub fn prefix_len(&self) -> u8 {
        match (self.prefix, self.netmask, self.address) {
            (Some(p), _, _) => p,
            (None, Some(m), _) => u32::from(m).count_ones() as u8,
            (None, None, IpAddr::V4(_)) => 32,
            (None, None, IpAddr::V6(_)) => 128,
        }
    }

    /// The destination subnet.
    pub fn destination(&self) -> Subnet {
        Subnet::of(self.address, self.prefix_len())
    }
}

/// `<vlan trunk><tag id nativeMode/></vlan>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vlan {
    /// `trunk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<bool>,
    /// Tags.
    pub tags: Vec<VlanTag>,
}

/// `<tag id nativeMode>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VlanTag {
    /// VLAN id (0–4095).
    pub id: u16,
    /// `tagged` or `untagged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_mode: Option<String>,
}

/// `<bandwidth>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// `<inbound>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<BandwidthRate>,
    /// `<outbound>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<BandwidthRate>,
}

/// Rates in KiB/s (`average`, `peak`, `floor`) and KiB (`burst`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandwidthRate {
    /// Average rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<u64>,
    /// Peak rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<u64>,
    /// Guaranteed minimum (inbound only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<u64>,
    /// Burst size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// `<virtualport type><parameters …/></virtualport>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualPort {
    /// `type`: `802.1Qbg`, `802.1Qbh`, `openvswitch` or `midonet`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `<parameters>` attributes in libvirt's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<(String, String)>,
}

/// `<portgroup name default trustGuestRxFilters>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortGroup {
    /// Name.
    pub name: String,
    /// `default='yes'`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// `trustGuestRxFilters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_guest_rx_filters: Option<bool>,
    /// `<vlan>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vlan>,
    /// `<virtualport>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualport: Option<VirtualPort>,
    /// `<bandwidth>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
}

impl IpDef {
    /// The family of `address`.
    pub fn family(&self) -> Family {
        Family::of(&self.address)
    }

    /// The prefix length: `prefix`, else from `netmask`, else libvirt's classful default for
    /// IPv4 (A=8, B=16, C=24) and 64 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        if let Some(p) = self.prefix {
            return p;
        }
        if let Some(m) = self.netmask {
            return u32::from(m).count_ones() as u8;
        }
        match self.address {
            IpAddr::V4(a) => classful_prefix(a),
            IpAddr::V6(_) => 64,
        }
    }
}

/// libvirt's "natural" prefix of an IPv4 address with neither netmask nor prefix.
pub fn classful_prefix(a: Ipv4Addr) -> u8 {
    let first = a.octets()[0];
    if first & 0x80 == 0 {
        8
    } else if first & 0xC0 == 0x80 {
        16
    } else {
        24
    }
}

impl Network {
    /// Gives back the spare capacity of the definition's lists. A list filled by pushes
    /// keeps room for four entries after its first: a parsed network's one `<ip>` held 608
    /// bytes for 152, and the daemon keeps every definition for as long as it runs.
    pub fn shrink_to_fit(&mut self) {
        self.ips.shrink_to_fit();
        for ip in &mut self.ips {
            if let Some(dhcp) = &mut ip.dhcp {
                dhcp.ranges.shrink_to_fit();
                dhcp.hosts.shrink_to_fit();
            }
        }
        self.routes.shrink_to_fit();
        self.portgroups.shrink_to_fit();
        self.dnsmasq_options.shrink_to_fit();
        self.host_access.shrink_to_fit();
        self.forwards.shrink_to_fit();
        self.forward.interfaces.shrink_to_fit();
        self.forward.addresses.shrink_to_fit();
        if let Some(dns) = &mut self.dns {
            dns.forwarders.shrink_to_fit();
            dns.txts.shrink_to_fit();
            dns.srvs.shrink_to_fit();
            dns.hosts.shrink_to_fit();
        }
    }

    /// A new isolated network with only a name: the start of a definition built in code.
    pub fn named(name: impl Into<String>) -> Network {
        Network {
            name: name.into(),
            uuid: None,
            title: None,
            description: None,
            metadata: None,
            ipv6: false,
            trust_guest_rx_filters: None,
            forward: Forward::default(),
            bridge: None,
            mtu: None,
            mac: None,
            domain: None,
            dns: None,
            vlan: None,
            bandwidth: None,
            ips: Vec::new(),
            routes: Vec::new(),
            virtualport: None,
            portgroups: Vec::new(),
            port_isolated: None,
            dnsmasq_options: Vec::new(),
            host_access: Vec::new(),
            forwards: Vec::new(),
            overlay: None,
        }
    }

    /// The bridge device name, if one is set (not a `%d` template).
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge
            .as_ref()
            .and_then(|b| b.name.as_deref())
            .filter(|n| !n.contains("%d"))
    }

    /// The `<dnsmasq:options>` values. virtnet serves DHCP and DNS itself and never runs dnsmasq;
    /// they are kept only so that a definition round-trips unchanged.
    pub fn dnsmasq_options(&self) -> &[String] {
        &self.dnsmasq_options
    }
}
