//! Reading libvirt network XML into a [`Network`].
//!
//! The reader is strict where libvirt's is silent: an unknown element or attribute is an error
//! naming its path, because a typo (`<forwrad mode='route'/>`) would otherwise quietly yield a
//! different network. Values are checked as libvirt's parser checks them, plus the checks about
//! the document itself that libvirt leaves to dnsmasq or to start time (DHCP ranges and static
//! hosts inside their subnet, no duplicates).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use roxmltree::Node;
use uuid::Uuid;

use crate::error::{ErrorKind, ModelError, Result};
use crate::ifname;
use crate::interface::{GuestInterface, InterfaceSource};
use crate::mac::MacAddr;
use crate::network::*;
use crate::subnet::{in_subnet, Subnet};

use super::load::{load, Input, Limits};

/// Namespace of `<dnsmasq:options>`.
pub(crate) const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";
/// Namespace of virtnet's own extensions (`<virtnet:host-access>`); libvirt ignores it.
pub(crate) const VIRTNET_NS: &str = "urn:virtnet:network:1";

/// Parses and checks a `<network>` document.
pub(crate) fn parse_network(text: &str) -> Result<Network> {
    parse_network_with(text, Limits::INPUT)
}

/// Parses and checks a `<network>` document with the given limits.
pub(crate) fn parse_network_with(text: &str, limits: Limits) -> Result<Network> {
    let doc = load(text, limits, Input::Document)?;
    let root = doc.root_element();
    if root.tag_name().name() != "network" || root.tag_name().namespace().is_some() {
        return Err(xml_error(format!(
            "the root element must be <network>, found <{}>",
            root.tag_name().name()
        )));
    }
    read_network(&El::document(root, text))
}

/// Parses a guest `<interface type='network|bridge'>` fragment of domain XML.
pub(crate) fn parse_interface(text: &str) -> Result<GuestInterface> {
    let doc = load(text, Limits::INPUT, Input::Document)?;
    let root = doc.root_element();
    if root.tag_name().name() != "interface" {
        return Err(xml_error(format!(
            "the root element must be <interface>, found <{}>",
            root.tag_name().name()
        )));
    }
    let el = El::new(root, "interface".into(), text);
    let kind = el.required("type")?;
    let mut source = None;
    let mut iface = GuestInterface {
        source: InterfaceSource::Network(String::new()),
        mac: None,
        model: None,
        target: None,
        address: None,
    };
    for c in el.node.children().filter(|c| c.is_element()) {
        let c = El::new(c, format!("interface.{}", c.tag_name().name()), text);
        match c.name() {
            "source" => {
                source = match kind {
                    "network" => c
                        .attr("network")
                        .map(|n| InterfaceSource::Network(n.to_string())),
                    "bridge" => {
                        let b = c.required("bridge")?;
                        check_ifname(&c.field("bridge"), b)?;
                        Some(InterfaceSource::Bridge(b.to_string()))
                    }
                    _ => None,
                }
            }
            "mac" => {
                iface.mac = Some(parse_unicast_mac(
                    &c.field("address"),
                    c.required("address")?,
                )?)
            }
            "model" => iface.model = Some(c.required("type")?.to_string()),
            "target" => {
                let dev = c.required("dev")?;
                check_ifname(&c.field("dev"), dev)?;
                iface.target = Some(dev.to_string());
            }
            "address" if c.attr("type") == Some("pci") => {
                iface.address = Some(read_pci_address(&c)?)
            }
            _ => {}
        }
    }
    if !matches!(kind, "network" | "bridge") {
        return Err(ModelError::bad_value(
            "interface.type",
            kind,
            "virtnet connects interfaces of type 'network' or 'bridge'",
        ));
    }
    iface.source = source.ok_or_else(|| {
        ModelError::invalid(
            "interface.source",
            format!("an interface of type '{kind}' needs <source {kind}='…'/>"),
        )
    })?;
    Ok(iface)
}

fn xml_error(reason: impl Into<String>) -> ModelError {
    ModelError::invalid("", reason).with_kind(ErrorKind::Xml)
}

/// An element together with its field path, with strict accessors.
pub(crate) struct El<'a, 'input> {
    pub(crate) node: Node<'a, 'input>,
    pub(crate) path: String,
    source: &'input str,
    /// The `<network>` of a document: its children's paths leave it out (`ip[0]`).
    document: bool,
}

impl<'a, 'input> El<'a, 'input> {
    /// An element at `path` (`ip[0].dhcp`, or the section of an update: `ip-dhcp-host`).
    pub(crate) fn new(node: Node<'a, 'input>, path: String, source: &'input str) -> Self {
        El {
            node,
            path,
            source,
            document: false,
        }
    }

    /// The `<network>` element of a document.
    fn document(node: Node<'a, 'input>, source: &'input str) -> Self {
        El::root(node, "network", source)
    }

    /// The root element `name` of a document: its children's paths leave it out (`uuid`,
    /// `owner.name`).
    pub(crate) fn root(node: Node<'a, 'input>, name: &str, source: &'input str) -> Self {
        El {
            document: true,
            ..El::new(node, name.into(), source)
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.node.tag_name().name()
    }

    pub(crate) fn field(&self, attr: &str) -> String {
        format!("{}.{attr}", self.path)
    }

    /// Path of a child element: relative to the document, so `<network>` itself is left out.
    fn child_path(&self, key: &str) -> String {
        if self.document {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Refuses attributes not in `allowed`.
    pub(crate) fn allow_attrs(&self, allowed: &[&str]) -> Result<()> {
        for a in self.node.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                return Err(ModelError::invalid(
                    self.field(a.name()),
                    format!(
                        "unknown attribute '{}' on <{}> (allowed: {})",
                        a.name(),
                        self.name(),
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn attr(&self, name: &str) -> Option<&'a str> {
        self.node.attribute(name)
    }

    pub(crate) fn required(&self, name: &str) -> Result<&'a str> {
        self.attr(name).ok_or_else(|| {
            ModelError::invalid(
                self.field(name),
                format!("missing required attribute '{name}' on <{}>", self.name()),
            )
        })
    }

    /// Parses an attribute with `parse`, or gives a field error with `what` as the reason.
    fn parsed<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => parse(v.trim())
                .map(Some)
                .ok_or_else(|| ModelError::bad_value(self.field(name), v, what.to_string())),
        }
    }

    pub(crate) fn yes_no(&self, name: &str) -> Result<Option<bool>> {
        self.parsed(name, "expected 'yes' or 'no'", |v| match v {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        })
    }

    fn on_off(&self, name: &str) -> Result<Option<bool>> {
        self.parsed(name, "expected 'on' or 'off'", |v| match v {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
    }

    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.parsed(name, "expected an unsigned integer in range", |v| {
            v.parse().ok()
        })
    }

    fn ip(&self, name: &str) -> Result<Option<IpAddr>> {
        self.parsed(name, "not a valid IPv4 or IPv6 address", |v| v.parse().ok())
    }

    fn required_ip(&self, name: &str) -> Result<IpAddr> {
        self.required(name)?;
        self.ip(name)?
            .ok_or_else(|| ModelError::invalid(self.field(name), "missing address"))
    }

    pub(crate) fn text(&self) -> String {
        self.node
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// The element children with their paths (`ip[0]`, `dhcp`, …), refusing unknown ones.
    /// `repeated` lists names that may occur many times (indexed paths); `single` names that
    /// occur at most once.
    pub(crate) fn children(
        &self,
        single: &[&str],
        repeated: &[&str],
    ) -> Result<Vec<El<'a, 'input>>> {
        let mut out = Vec::new();
        let mut seen_single: HashSet<String> = HashSet::new();
        let mut counts: Vec<(String, usize)> = Vec::new();
        for child in self.node.children().filter(|c| c.is_element()) {
            let tag = child.tag_name();
            let name = tag.name();
            let ns = tag.namespace();
            let key = match ns {
                Some(DNSMASQ_NS) => format!("dnsmasq:{name}"),
                Some(VIRTNET_NS) => format!("virtnet:{name}"),
                Some(_) => {
                    return Err(ModelError::invalid(
                        self.child_path(name),
                        format!(
                            "element <{name}> of namespace '{}' is not allowed in <{}> (put \
                             application data in <metadata>)",
                            ns.unwrap_or_default(),
                            self.name()
                        ),
                    ))
                }
                None => name.to_string(),
            };
            let path = if single.contains(&key.as_str()) {
                if !seen_single.insert(key.clone()) {
                    return Err(ModelError::invalid(
                        self.child_path(&key),
                        format!("only one <{key}> element is allowed in <{}>", self.name()),
                    ));
                }
                self.child_path(&key)
            } else if repeated.contains(&key.as_str()) {
                let idx = match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => {
                        *n += 1;
                        *n - 1
                    }
                    None => {
                        counts.push((key.clone(), 1));
                        0
                    }
                };
                self.child_path(&format!("{key}[{idx}]"))
            } else {
                let mut allowed: Vec<&str> = single.iter().chain(repeated).copied().collect();
                allowed.sort_unstable();
                return Err(ModelError::invalid(
                    self.child_path(&key),
                    format!(
                        "unknown element <{key}> in <{}> (allowed: {})",
                        self.name(),
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            };
            out.push(El::new(child, path, self.source));
        }
        Ok(out)
    }
}

fn read_network(el: &El) -> Result<Network> {
    el.allow_attrs(&["connections", "ipv6", "trustGuestRxFilters"])?;
    let mut net = Network::named(String::new());
    net.ipv6 = el.yes_no("ipv6")?.unwrap_or(false);
    net.trust_guest_rx_filters = el.yes_no("trustGuestRxFilters")?;
    let mut name = None;
    let children = el.children(
        &[
            "name",
            "uuid",
            "title",
            "description",
            "metadata",
            "forward",
            "bridge",
            "mtu",
            "mac",
            "domain",
            "dns",
            "bandwidth",
            "vlan",
            "port",
            "virtualport",
            "dnsmasq:options",
            "virtnet:host-access",
            "virtnet:forwards",
            "virtnet:overlay",
        ],
        &["ip", "route", "portgroup"],
    )?;
    for c in &children {
        match c.path.as_str() {
            "name" => name = Some(read_name(c)?),
            "uuid" => net.uuid = Some(read_uuid(c)?),
            "title" => net.title = Some(read_title(c)?),
            "description" => {
                c.allow_attrs(&[])?;
                net.description = Some(c.text());
            }
            "metadata" => net.metadata = Some(read_metadata(c)?),
            "forward" => net.forward = read_forward(c)?,
            "bridge" => net.bridge = Some(read_bridge(c)?),
            "mtu" => net.mtu = Some(read_mtu(c)?),
            "mac" => net.mac = Some(read_bridge_mac(c)?),
            "domain" => net.domain = Some(read_domain(c)?),
            "dns" => net.dns = Some(read_dns(c)?),
            "bandwidth" => net.bandwidth = Some(read_bandwidth(c)?),
            "vlan" => net.vlan = Some(read_vlan(c)?),
            "port" => {
                c.allow_attrs(&["isolated"])?;
                no_children(c)?;
                net.port_isolated = c.yes_no("isolated")?;
            }
            "virtualport" => net.virtualport = Some(read_virtualport(c)?),
            "dnsmasq:options" => net.dnsmasq_options = read_dnsmasq_options(c)?,
            "virtnet:host-access" => net.host_access = read_host_access(c)?,
            "virtnet:forwards" => net.forwards = read_forwards(c)?,
            "virtnet:overlay" => net.overlay = Some(read_overlay(c)?),
            p if p.starts_with("ip[") => net.ips.push(read_ip(c)?),
            p if p.starts_with("route[") => net.routes.push(read_route(c)?),
            p if p.starts_with("portgroup[") => net.portgroups.push(read_portgroup(c)?),
            _ => {}
        }
    }
    net.name = name.ok_or_else(|| ModelError::invalid("name", "missing network name"))?;
    check_network(&net)?;
    net.shrink_to_fit();
    Ok(net)
}

pub(crate) fn no_children(el: &El) -> Result<()> {
    el.children(&[], &[]).map(|_| ())
}

fn read_name(el: &El) -> Result<String> {
    el.allow_attrs(&[])?;
    let name = el.text();
    let bad = |reason: &str| {
        Err(ModelError::bad_value(
            "name",
            name.clone(),
            reason.to_string(),
        ))
    };
    if name.is_empty() {
        return Err(ModelError::invalid("name", "network name is empty"));
    }
    if name.len() > 255 {
        return bad("network name is longer than 255 bytes");
    }
    if name.contains('/') {
        return bad("network name must not contain '/'");
    }
    if name.chars().any(char::is_control) {
        return bad("network name must not contain control characters");
    }
    Ok(name)
}

pub(crate) fn read_uuid(el: &El) -> Result<Uuid> {
    el.allow_attrs(&[])?;
    let raw = el.text();
    // libvirt accepts 32 hex digits, optionally split by dashes; so do we.
    let compact: String = raw.chars().filter(|c| *c != '-').collect();
    if compact.len() != 32 || !compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ModelError::bad_value(
            el.path.clone(),
            raw,
            "malformed <uuid> element: expected 32 hexadecimal digits, e.g. \
             c6b8b176-175f-4957-a84e-d2283850eeb7",
        ));
    }
    Uuid::parse_str(&compact).map_err(|e| {
        ModelError::bad_value(
            el.path.clone(),
            raw,
            format!("malformed <uuid> element: {e}"),
        )
    })
}

fn read_title(el: &El) -> Result<String> {
    el.allow_attrs(&[])?;
    let title = el.text();
    if title.contains('\n') {
        return Err(ModelError::bad_value(
            "title",
            title,
            "title must be a single line",
        ));
    }
    Ok(title)
}

/// Keeps the children of `<metadata>` exactly as written.
fn read_metadata(el: &El) -> Result<String> {
    el.allow_attrs(&[])?;
    let parts: Vec<&str> = el
        .node
        .children()
        .filter(|c| c.is_element())
        .map(|c| &el.source[c.range()])
        .collect();
    Ok(parts.join("\n"))
}

fn read_forward(el: &El) -> Result<Forward> {
    el.allow_attrs(&["dev", "mode", "managed"])?;
    let mut f = Forward {
        mode: match el.attr("mode") {
            None => ForwardMode::Nat,
            Some(m) => ForwardMode::parse(m.trim()).ok_or_else(|| {
                ModelError::bad_value(
                    el.field("mode"),
                    m,
                    "unknown forward mode (expected nat, route, open, bridge, private, vepa, \
                     passthrough or hostdev)",
                )
            })?,
        },
        managed: el.yes_no("managed")?,
        ..Forward::default()
    };
    let dev = el.attr("dev").map(str::trim);
    if let Some(d) = dev {
        check_ifname(&el.field("dev"), d)?;
    }
    let children = el.children(&["pf", "driver", "nat"], &["interface", "address"])?;
    for c in &children {
        match c.name() {
            "interface" => {
                let d = read_forward_interface(c)?;
                if f.interfaces.contains(&d) {
                    return Err(ModelError::bad_value(
                        c.field("dev"),
                        d,
                        "duplicate forward interface",
                    ));
                }
                f.interfaces.push(d);
            }
            "address" => {
                let a = read_pci_address(c)?;
                if f.addresses.contains(&a) {
                    return Err(ModelError::invalid(
                        c.path.clone(),
                        "duplicate PCI address in <forward>",
                    ));
                }
                f.addresses.push(a);
            }
            "pf" => {
                c.allow_attrs(&["dev"])?;
                no_children(c)?;
                let d = c.required("dev")?.trim();
                check_ifname(&c.field("dev"), d)?;
                f.pf = Some(d.to_string());
            }
            "driver" => {
                c.allow_attrs(&["name"])?;
                no_children(c)?;
                let name = c.required("name")?;
                if !["kvm", "vfio", "xen", "default"].contains(&name) {
                    return Err(ModelError::bad_value(
                        c.field("name"),
                        name,
                        "expected kvm, vfio, xen or default",
                    ));
                }
                f.driver = Some(name.to_string());
            }
            "nat" => f.nat = Some(read_nat(c)?),
            _ => {}
        }
    }
    if !f.interfaces.is_empty() && !f.addresses.is_empty() {
        return Err(ModelError::invalid(
            el.path.clone(),
            "<forward> may list <interface> or <address> elements, not both",
        ));
    }
    match (dev, f.interfaces.first()) {
        (Some(d), None) => f.interfaces.push(d.to_string()),
        (Some(d), Some(first)) if d != first => {
            return Err(ModelError::bad_value(
                el.field("dev"),
                d,
                format!("forward dev must match the first <interface dev='{first}'>"),
            ))
        }
        _ => {}
    }
    if f.nat.is_some() && f.mode != ForwardMode::Nat {
        return Err(ModelError::invalid(
            "forward.nat",
            format!(
                "<nat> is only allowed with forward mode='nat', not '{}'",
                f.mode
            ),
        ));
    }
    if f.mode == ForwardMode::Open && !f.interfaces.is_empty() {
        return Err(ModelError::bad_value(
            "forward.dev",
            f.interfaces[0].clone(),
            "forward dev is not allowed with forward mode='open' (open networks do not \
             restrict egress)",
        ));
    }
    if f.managed.is_some() && f.mode != ForwardMode::Hostdev {
        return Err(ModelError::invalid(
            "forward.managed",
            "'managed' is only allowed with forward mode='hostdev'",
        ));
    }
    Ok(f)
}

/// A `<forward>`'s `<interface dev>`: the device name.
fn read_forward_interface(el: &El) -> Result<String> {
    el.allow_attrs(&["dev", "connections"])?;
    no_children(el)?;
    let dev = el.required("dev")?.trim();
    check_ifname(&el.field("dev"), dev)?;
    Ok(dev.to_string())
}

fn read_pci_address(el: &El) -> Result<PciAddress> {
    el.allow_attrs(&["type", "domain", "bus", "slot", "function", "connections"])?;
    no_children(el)?;
    let kind = el.required("type")?;
    if kind != "pci" {
        return Err(ModelError::bad_value(
            el.field("type"),
            kind,
            "only type='pci' addresses are supported in <forward>",
        ));
    }
    pci_address_fields(el)
}

/// The `domain`, `bus`, `slot` and `function` attributes of a PCI `<address>` (decimal or
/// `0x` hex, each within its width), the element's other attributes checked by the caller.
pub(crate) fn pci_address_fields(el: &El) -> Result<PciAddress> {
    let num = |name: &str, max: u32| -> Result<u32> {
        let raw = el.required(name)?;
        let v = raw.trim();
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        };
        parsed.filter(|n| *n <= max).ok_or_else(|| {
            ModelError::bad_value(
                el.field(name),
                raw,
                format!("expected a number up to {max:#x}"),
            )
        })
    };
    // The bounds make the narrowing casts exact.
    Ok(PciAddress {
        domain: num("domain", 0xffff)? as u16,
        bus: num("bus", 0xff)? as u8,
        slot: num("slot", 0x1f)? as u8,
        function: num("function", 7)? as u8,
    })
}

fn read_nat(el: &El) -> Result<Nat> {
    el.allow_attrs(&["ipv6"])?;
    let mut nat = Nat {
        ipv6: el.yes_no("ipv6")?,
        ..Nat::default()
    };
    for c in el.children(&["address", "port"], &[])? {
        c.allow_attrs(&["start", "end"])?;
        no_children(&c)?;
        if c.name() == "address" {
            let v4 = |name: &str| -> Result<Ipv4Addr> {
                let raw = c.required(name)?;
                raw.trim().parse().map_err(|_| {
                    ModelError::bad_value(c.field(name), raw, "not a valid IPv4 address")
                })
            };
            let (start, end) = (v4("start")?, v4("end")?);
            if start > end {
                return Err(ModelError::invalid(
                    c.path.clone(),
                    format!("NAT address range is reversed: start {start} is after end {end}"),
                ));
            }
            nat.address = Some(AddrRange { start, end });
        } else {
            let port = |name: &str| -> Result<u16> {
                c.required(name)?;
                c.number::<u16>(name)?
                    .ok_or_else(|| ModelError::invalid(c.field(name), "missing port"))
            };
            let (start, end) = (port("start")?, port("end")?);
            if start > end || start == 0 {
                return Err(ModelError::invalid(
                    c.path.clone(),
                    format!("invalid NAT port range {start}-{end}: need 1 <= start <= end"),
                ));
            }
            nat.port = Some(PortRange { start, end });
        }
    }
    Ok(nat)
}

/// virtnet's one interface-name rule ([`ifname::check`]: Linux's `dev_valid_name`, narrowed
/// to names safe in nftables strings and file names).
pub(crate) fn check_ifname(field: &str, name: &str) -> Result<()> {
    ifname::check(name).map_err(|reason| ModelError::bad_value(field, name, reason.to_string()))
}

fn read_bridge(el: &El) -> Result<Bridge> {
    el.allow_attrs(&["name", "zone", "stp", "delay", "macTableManager"])?;
    no_children(el)?;
    let name = el.attr("name").map(|n| n.trim().to_string());
    if let Some(n) = &name {
        // A `%d` template is expanded at define time; check what it can become.
        let probe = n.replacen("%d", "0", 1);
        check_ifname(&el.field("name"), &probe).map_err(|mut e| {
            e.value = Some(n.clone());
            e
        })?;
    }
    Ok(Bridge {
        name,
        zone: el.attr("zone").map(str::to_string),
        stp: el.on_off("stp")?,
        delay: el.number("delay")?,
        mac_table_manager: el.parsed("macTableManager", "expected 'kernel' or 'libvirt'", |v| {
            match v {
                "kernel" => Some(MacTableManager::Kernel),
                "libvirt" => Some(MacTableManager::Libvirt),
                _ => None,
            }
        })?,
    })
}

fn read_mtu(el: &El) -> Result<u32> {
    el.allow_attrs(&["size"])?;
    no_children(el)?;
    el.required("size")?;
    let size: u32 = el.number("size")?.unwrap_or(0);
    if !(68..=65535).contains(&size) {
        return Err(ModelError::bad_value(
            el.field("size"),
            el.attr("size").unwrap_or_default(),
            "MTU must be between 68 and 65535",
        ));
    }
    Ok(size)
}

pub(crate) fn parse_unicast_mac(field: &str, raw: &str) -> Result<MacAddr> {
    let mac: MacAddr = raw
        .trim()
        .parse()
        .map_err(|e: crate::mac::MacParseError| ModelError::bad_value(field, raw, e.to_string()))?;
    if mac.is_multicast() {
        return Err(ModelError::bad_value(
            field,
            raw,
            "expected a unicast MAC address, found a multicast one (low bit of the first \
             octet set)",
        ));
    }
    if mac.is_zero() {
        return Err(ModelError::bad_value(
            field,
            raw,
            "the all-zero MAC address is not usable",
        ));
    }
    Ok(mac)
}

fn read_bridge_mac(el: &El) -> Result<MacAddr> {
    el.allow_attrs(&["address"])?;
    no_children(el)?;
    parse_unicast_mac(&el.field("address"), el.required("address")?)
}

fn check_dns_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ModelError::bad_value(
            field,
            name,
            "not a valid DNS name (letters, digits, '-', '_' and '.', at most 253 bytes)",
        ))
    }
}

fn read_domain(el: &El) -> Result<Domain> {
    el.allow_attrs(&["name", "localOnly", "register"])?;
    no_children(el)?;
    let name = el.required("name")?.trim().to_string();
    check_dns_name(&el.field("name"), &name)?;
    Ok(Domain {
        name,
        local_only: el.yes_no("localOnly")?,
        register: el.yes_no("register")?,
    })
}

fn read_dns(el: &El) -> Result<Dns> {
    el.allow_attrs(&["enable", "forwardPlainNames"])?;
    let mut dns = Dns {
        enable: el.yes_no("enable")?,
        forward_plain_names: el.yes_no("forwardPlainNames")?,
        ..Dns::default()
    };
    for c in el.children(&[], &["forwarder", "txt", "srv", "host"])? {
        match c.name() {
            "forwarder" => {
                c.allow_attrs(&["addr", "domain", "port"])?;
                no_children(&c)?;
                let fwd = DnsForwarder {
                    addr: c.ip("addr")?,
                    domain: c.attr("domain").map(|d| d.trim().to_string()),
                    port: c.number("port")?,
                };
                if let Some(d) = &fwd.domain {
                    check_dns_name(&c.field("domain"), d)?;
                }
                if fwd.addr.is_none() && fwd.domain.is_none() {
                    return Err(ModelError::invalid(
                        c.path.clone(),
                        "a <forwarder> needs an 'addr', a 'domain' or both",
                    ));
                }
                if fwd.port.is_some() && fwd.addr.is_none() {
                    return Err(ModelError::invalid(
                        c.field("port"),
                        "a forwarder 'port' needs an 'addr'",
                    ));
                }
                dns.forwarders.push(fwd);
            }
            "txt" => dns.txts.push(read_dns_txt(&c)?),
            "srv" => dns.srvs.push(read_srv(&c)?),
            "host" => dns.hosts.push(read_dns_host(&c)?),
            _ => {}
        }
    }
    let has_records = !(dns.forwarders.is_empty()
        && dns.txts.is_empty()
        && dns.srvs.is_empty()
        && dns.hosts.is_empty());
    if dns.enable == Some(false) && (has_records || dns.forward_plain_names.is_some()) {
        return Err(ModelError::invalid(
            el.path.clone(),
            "extra data in disabled DNS: <dns enable='no'> cannot carry forwarders, records or \
             forwardPlainNames",
        ));
    }
    Ok(dns)
}

fn read_dns_txt(el: &El) -> Result<DnsTxt> {
    el.allow_attrs(&["name", "value"])?;
    no_children(el)?;
    let name = el.required("name")?.to_string();
    if name.contains(' ') {
        return Err(ModelError::bad_value(
            el.field("name"),
            name,
            "TXT record names must not contain spaces",
        ));
    }
    check_dns_name(&el.field("name"), &name)?;
    let value = el.required("value")?.to_string();
    Ok(DnsTxt { name, value })
}

fn read_srv(el: &El) -> Result<DnsSrv> {
    el.allow_attrs(&[
        "service", "protocol", "domain", "target", "port", "priority", "weight",
    ])?;
    no_children(el)?;
    let service = el.required("service")?.trim().to_string();
    if service.is_empty() || service.len() > 15 {
        return Err(ModelError::bad_value(
            el.field("service"),
            service,
            "SRV service name must be 1 to 15 bytes",
        ));
    }
    check_dns_name(&el.field("service"), &service)?;
    let protocol = el.required("protocol")?.trim().to_string();
    if protocol.is_empty()
        || !protocol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ModelError::bad_value(
            el.field("protocol"),
            protocol,
            "SRV protocol must be a name such as 'tcp' or 'udp'",
        ));
    }
    let domain = el.attr("domain").map(|d| d.trim().to_string());
    if let Some(d) = &domain {
        check_dns_name(&el.field("domain"), d)?;
    }
    let target = el.attr("target").map(|t| t.trim().to_string());
    if let Some(t) = target.as_deref().filter(|t| *t != ".") {
        check_dns_name(&el.field("target"), t)?;
    }
    Ok(DnsSrv {
        service,
        protocol,
        domain,
        target,
        port: el.number("port")?,
        priority: el.number("priority")?,
        weight: el.number("weight")?,
    })
}

fn read_dns_host(el: &El) -> Result<DnsHost> {
    el.allow_attrs(&["ip"])?;
    let ip = el.required_ip("ip")?;
    let mut hostnames = Vec::new();
    for c in el.children(&[], &["hostname"])? {
        c.allow_attrs(&[])?;
        let name = c.text();
        check_dns_name(&c.path, &name)?;
        hostnames.push(name);
    }
    if hostnames.is_empty() {
        return Err(ModelError::invalid(
            el.path.clone(),
            "a DNS <host> needs at least one <hostname>",
        ));
    }
    Ok(DnsHost { ip, hostnames })
}

fn read_bandwidth(el: &El) -> Result<Bandwidth> {
    el.allow_attrs(&[])?;
    read_bandwidth_rates(el)
}

/// The `<inbound>`/`<outbound>` rates of a `<bandwidth>` whose own attributes the caller
/// checked (a network port's carries `classID`).
pub(crate) fn read_bandwidth_rates(el: &El) -> Result<Bandwidth> {
    let mut bw = Bandwidth::default();
    for c in el.children(&["inbound", "outbound"], &[])? {
        c.allow_attrs(&["average", "peak", "floor", "burst"])?;
        no_children(&c)?;
        let rate = BandwidthRate {
            average: c.number("average")?,
            peak: c.number("peak")?,
            floor: c.number("floor")?,
            burst: c.number("burst")?,
        };
        if rate.average.is_none() && rate.floor.is_none() {
            return Err(ModelError::invalid(
                c.path.clone(),
                "bandwidth needs an 'average' (or, inbound, a 'floor') rate",
            ));
        }
        if c.name() == "inbound" {
            bw.inbound = Some(rate);
        } else {
            if rate.floor.is_some() {
                return Err(ModelError::invalid(
                    c.field("floor"),
                    "'floor' is only supported on <inbound>",
                ));
            }
            bw.outbound = Some(rate);
        }
    }
    Ok(bw)
}

pub(crate) fn read_vlan(el: &El) -> Result<Vlan> {
    el.allow_attrs(&["trunk"])?;
    let mut vlan = Vlan {
        trunk: el.yes_no("trunk")?,
        tags: Vec::new(),
    };
    for c in el.children(&[], &["tag"])? {
        c.allow_attrs(&["id", "nativeMode"])?;
        no_children(&c)?;
        c.required("id")?;
        let id: u16 = c.number("id")?.unwrap_or(u16::MAX);
        if id > 4095 {
            return Err(ModelError::bad_value(
                c.field("id"),
                c.attr("id").unwrap_or_default(),
                "VLAN id must be between 0 and 4095",
            ));
        }
        let native_mode = match c.attr("nativeMode") {
            None => None,
            Some(m @ ("tagged" | "untagged")) => Some(m.to_string()),
            Some(m) => {
                return Err(ModelError::bad_value(
                    c.field("nativeMode"),
                    m,
                    "expected 'tagged' or 'untagged'",
                ))
            }
        };
        vlan.tags.push(VlanTag { id, native_mode });
    }
    if vlan.tags.is_empty() {
        return Err(ModelError::invalid(
            el.path.clone(),
            "<vlan> needs at least one <tag>",
        ));
    }
    if vlan.tags.len() > 1 && vlan.trunk == Some(false) {
        return Err(ModelError::invalid(
            el.field("trunk"),
            "a <vlan trunk='no'> cannot have more than one <tag>",
        ));
    }
    Ok(vlan)
}

/// `<parameters>` attributes of `<virtualport>`, in the order libvirt prints them.
pub(crate) const VIRTUALPORT_PARAMS: [&str; 6] = [
    "managerid",
    "typeid",
    "typeidversion",
    "instanceid",
    "profileid",
    "interfaceid",
];

pub(crate) fn read_virtualport(el: &El) -> Result<VirtualPort> {
    el.allow_attrs(&["type"])?;
    let kind = el.attr("type").map(str::to_string);
    if let Some(k) = &kind {
        if !["802.1Qbg", "802.1Qbh", "openvswitch", "midonet"].contains(&k.as_str()) {
            return Err(ModelError::bad_value(
                el.field("type"),
                k.clone(),
                "expected 802.1Qbg, 802.1Qbh, openvswitch or midonet",
            ));
        }
    }
    let mut vp = VirtualPort {
        kind,
        parameters: Vec::new(),
    };
    for c in el.children(&["parameters"], &[])? {
        c.allow_attrs(&VIRTUALPORT_PARAMS)?;
        no_children(&c)?;
        for p in VIRTUALPORT_PARAMS {
            if let Some(v) = c.attr(p) {
                vp.parameters.push((p.to_string(), v.to_string()));
            }
        }
    }
    Ok(vp)
}

fn read_portgroup(el: &El) -> Result<PortGroup> {
    el.allow_attrs(&["name", "default", "trustGuestRxFilters"])?;
    let name = el.required("name")?.trim().to_string();
    if name.is_empty() {
        return Err(ModelError::invalid(
            el.field("name"),
            "portgroup name is empty",
        ));
    }
    let mut pg = PortGroup {
        name,
        default: el.yes_no("default")?.unwrap_or(false),
        trust_guest_rx_filters: el.yes_no("trustGuestRxFilters")?,
        vlan: None,
        virtualport: None,
        bandwidth: None,
    };
    for c in el.children(&["vlan", "virtualport", "bandwidth"], &[])? {
        match c.name() {
            "vlan" => pg.vlan = Some(read_vlan(&c)?),
            "virtualport" => pg.virtualport = Some(read_virtualport(&c)?),
            _ => pg.bandwidth = Some(read_bandwidth(&c)?),
        }
    }
    Ok(pg)
}

fn read_dnsmasq_options(el: &El) -> Result<Vec<String>> {
    el.allow_attrs(&[])?;
    let mut out = Vec::new();
    for c in el.children(&[], &["dnsmasq:option"])? {
        c.allow_attrs(&["value"])?;
        out.push(c.required("value")?.to_string());
    }
    Ok(out)
}

/// `<virtnet:host-access>`: `<virtnet:allow proto='tcp|udp' port='1-65535'/>` children, each
/// protocol and port at most once.
fn read_host_access(el: &El) -> Result<Vec<HostAllow>> {
    el.allow_attrs(&[])?;
    let mut out: Vec<HostAllow> = Vec::new();
    for c in el.children(&[], &["virtnet:allow"])? {
        c.allow_attrs(&["proto", "port"])?;
        no_children(&c)?;
        c.required("proto")?;
        let proto = c
            .parsed("proto", "expected 'tcp' or 'udp'", |v| match v {
                "tcp" => Some(HostProto::Tcp),
                "udp" => Some(HostProto::Udp),
                _ => None,
            })?
            .ok_or_else(|| ModelError::invalid(c.field("proto"), "missing protocol"))?;
        c.required("port")?;
        let port = c
            .parsed("port", "expected a port from 1 to 65535", |v| {
                v.parse::<u16>().ok().filter(|p| *p != 0)
            })?
            .ok_or_else(|| ModelError::invalid(c.field("port"), "missing port"))?;
        let allow = HostAllow { proto, port };
        if out.contains(&allow) {
            return Err(ModelError::invalid(
                c.field("port"),
                format!("{} port {port} is allowed twice", proto.as_str()),
            ));
        }
        out.push(allow);
    }
    Ok(out)
}

/// `<virtnet:overlay type='evpn' vni='1-16777215' [underlay='IFACE'] [local='ADDR']
/// [dstport='PORT']/>`.
fn read_overlay(el: &El) -> Result<crate::overlay::Overlay> {
    use crate::overlay::{Overlay, OverlayType};
    el.allow_attrs(&["type", "vni", "underlay", "local", "dstport"])?;
    no_children(el)?;
    el.required("type")?;
    let kind = el
        .parsed("type", "expected 'evpn'", |v| {
            (v == "evpn").then_some(OverlayType::Evpn)
        })?
        .ok_or_else(|| ModelError::invalid(el.field("type"), "missing overlay type"))?;
    el.required("vni")?;
    let vni = el
        .parsed("vni", "expected a VNI from 1 to 16777215", |v| {
            v.parse::<u32>().ok()
        })?
        .ok_or_else(|| ModelError::invalid(el.field("vni"), "missing VNI"))?;
    let dstport = el.parsed("dstport", "expected a UDP port from 1 to 65535", |v| {
        v.parse::<u16>().ok().filter(|p| *p != 0)
    })?;
    let overlay = Overlay {
        kind,
        vni,
        underlay: el.attr("underlay").map(str::to_string),
        local: el.ip("local")?,
        dstport,
    };
    overlay.check(&el.path)?;
    Ok(overlay)
}

/// `<virtnet:forwards>`: `<virtnet:forward proto port [listen] to [to-port]/>` children (see
/// [`crate::portforward`]); no two may take the same packets.
fn read_forwards(el: &El) -> Result<Vec<crate::portforward::PortForward>> {
    use crate::portforward::{
        check_forwards, parse_listen, parse_proto, ForwardPorts, ForwardTarget,
    };
    el.allow_attrs(&[])?;
    let mut out = Vec::new();
    for c in el.children(&[], &["virtnet:forward"])? {
        c.allow_attrs(&["proto", "port", "listen", "to", "to-port"])?;
        no_children(&c)?;
        let to_port = match c.attr("to-port") {
            Some(v) => Some(ForwardPorts::parse(&c.field("to-port"), v)?.start),
            None => None,
        };
        out.push(crate::portforward::PortForward {
            proto: parse_proto(&c.field("proto"), c.required("proto")?)?,
            ports: ForwardPorts::parse(&c.field("port"), c.required("port")?)?,
            listen: c
                .attr("listen")
                .map(|v| parse_listen(&c.field("listen"), v))
                .transpose()?,
            to: ForwardTarget::parse(&c.field("to"), c.required("to")?)?,
            to_port,
        });
    }
    check_forwards(&out)?;
    Ok(out)
}

fn parse_family(el: &El) -> Result<Option<Family>> {
    el.parsed("family", "expected 'ipv4' or 'ipv6'", |v| match v {
        "ipv4" => Some(Family::Ipv4),
        "ipv6" => Some(Family::Ipv6),
        _ => None,
    })
}

/// Reads `address`, `family`, `netmask` and `prefix`, shared by `<ip>` and `<route>`:
/// the family must match the address, netmask is IPv4-only and contiguous, not both.
/// `address`, `family`, `netmask` and `prefix` as read from an `<ip>` or `<route>`.
struct Prefixed {
    address: IpAddr,
    family: Option<Family>,
    netmask: Option<Ipv4Addr>,
    prefix: Option<u8>,
}

fn read_prefixed(el: &El) -> Result<Prefixed> {
    let address = el.required_ip("address")?;
    let family = parse_family(el)?;
    if let Some(f) = family {
        if f != Family::of(&address) {
            return Err(ModelError::bad_value(
                el.field("address"),
                address.to_string(),
                format!(
                    "address is not an {} address as family='{}' says",
                    f.as_str(),
                    f.as_str()
                ),
            ));
        }
    }
    let netmask = match el.attr("netmask") {
        None => None,
        Some(raw) => {
            let m: Ipv4Addr = raw.trim().parse().map_err(|_| {
                ModelError::bad_value(el.field("netmask"), raw, "not a valid IPv4 netmask")
            })?;
            if address.is_ipv6() {
                return Err(ModelError::bad_value(
                    el.field("netmask"),
                    raw,
                    "netmask is only for IPv4 addresses; use prefix for IPv6",
                ));
            }
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(ModelError::bad_value(
                    el.field("netmask"),
                    raw,
                    "netmask bits are not contiguous",
                ));
            }
            Some(m)
        }
    };
    let prefix: Option<u8> = el.number("prefix")?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    if let Some(p) = prefix {
        if p > max {
            return Err(ModelError::bad_value(
                el.field("prefix"),
                p.to_string(),
                format!("prefix must be at most {max} for this address"),
            ));
        }
    }
    if netmask.is_some() && prefix.is_some() {
        return Err(ModelError::invalid(
            el.field("prefix"),
            "give either netmask or prefix, not both",
        ));
    }
    Ok(Prefixed {
        address,
        family,
        netmask,
        prefix,
    })
}

fn read_ip(el: &El) -> Result<IpDef> {
    el.allow_attrs(&["address", "netmask", "prefix", "family", "localPtr"])?;
    let Prefixed {
        address,
        family,
        netmask,
        prefix,
    } = read_prefixed(el)?;
    let mut ip = IpDef {
        family,
        address,
        netmask,
        prefix,
        local_ptr: el.yes_no("localPtr")?,
        tftp_root: None,
        dhcp: None,
    };
    for c in el.children(&["tftp", "dhcp"], &[])? {
        if c.name() == "tftp" {
            c.allow_attrs(&["root"])?;
            no_children(&c)?;
            if address.is_ipv6() {
                return Err(ModelError::invalid(
                    c.path.clone(),
                    "<tftp> is only supported on IPv4 addresses",
                ));
            }
            ip.tftp_root = Some(c.required("root")?.to_string());
        } else {
            ip.dhcp = Some(read_dhcp(&c, &ip)?);
        }
    }
    check_ip_address(el, &ip)?;
    Ok(ip)
}

/// The gateway address must be a host address of its subnet.
fn check_ip_address(el: &El, ip: &IpDef) -> Result<()> {
    if let IpAddr::V4(a) = ip.address {
        let prefix = ip.prefix_len();
        if prefix < 31 {
            let (network, broadcast) = Subnet::ipv4_ends(a, prefix);
            if a == network || a == broadcast {
                return Err(ModelError::bad_value(
                    el.field("address"),
                    a.to_string(),
                    format!("is the network or broadcast address of its /{prefix} subnet"),
                ));
            }
        }
    }
    Ok(())
}

/// Network and broadcast addresses of an IPv4 subnet, which no guest may get.
fn reserved_v4(ip: &IpDef) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let IpAddr::V4(a) = ip.address else {
        return None;
    };
    Some(Subnet::ipv4_ends(a, ip.prefix_len()))
}

fn read_lease(el: &El) -> Result<Lease> {
    el.allow_attrs(&["expiry", "unit"])?;
    no_children(el)?;
    el.required("expiry")?;
    let expiry: u64 = el.number("expiry")?.unwrap_or(0);
    let unit = el
        .parsed("unit", "expected seconds, minutes or hours", |v| match v {
            "seconds" => Some(LeaseUnit::Seconds),
            "minutes" => Some(LeaseUnit::Minutes),
            "hours" => Some(LeaseUnit::Hours),
            _ => None,
        })?
        .unwrap_or(LeaseUnit::Minutes);
    Ok(Lease { expiry, unit })
}

fn read_dhcp(el: &El, ip: &IpDef) -> Result<Dhcp> {
    el.allow_attrs(&[])?;
    let mut dhcp = Dhcp::default();
    let family = ip.family();
    for c in el.children(&["bootp"], &["range", "host"])? {
        match c.name() {
            "range" => dhcp.ranges.push(read_dhcp_range(&c, ip)?),
            "host" => dhcp.hosts.push(read_dhcp_host(&c, ip)?),
            _ => {
                if family == Family::Ipv6 {
                    return Err(ModelError::invalid(
                        c.path.clone(),
                        "<bootp> is only supported on IPv4 addresses",
                    ));
                }
                c.allow_attrs(&["file", "server"])?;
                no_children(&c)?;
                dhcp.bootp = Some(Bootp {
                    file: c.required("file")?.to_string(),
                    server: c.attr("server").map(str::to_string),
                });
            }
        }
    }
    check_ranges_disjoint(el, &dhcp)?;
    check_hosts_unique(el, &dhcp)?;
    Ok(dhcp)
}

/// A `<range>` of the `<dhcp>` of `ip`: inside its subnet, in order, clear of the network,
/// broadcast and gateway addresses.
fn read_dhcp_range(el: &El, ip: &IpDef) -> Result<DhcpRange> {
    let family = ip.family();
    let prefix = ip.prefix_len();
    let in_net = |a: IpAddr| in_subnet(a, ip.address, prefix);
    el.allow_attrs(&["start", "end"])?;
    let start = el.required_ip("start")?;
    let end = el.required_ip("end")?;
    for (name, a) in [("start", start), ("end", end)] {
        if Family::of(&a) != family {
            return Err(ModelError::bad_value(
                el.field(name),
                a.to_string(),
                format!(
                    "is not an {} address like the <ip> it belongs to",
                    family.as_str()
                ),
            ));
        }
        if !in_net(a) {
            return Err(ModelError::bad_value(
                el.field(name),
                a.to_string(),
                format!("is outside the network {}/{prefix}", ip.address),
            ));
        }
    }
    if start > end {
        return Err(ModelError::invalid(
            el.path.clone(),
            format!("DHCP range is reversed: start {start} is after end {end}"),
        ));
    }
    let covers = |x: IpAddr| start <= x && x <= end;
    if let Some((network, broadcast)) = reserved_v4(ip) {
        if covers(network.into()) || covers(broadcast.into()) {
            return Err(ModelError::invalid(
                el.path.clone(),
                format!(
                    "DHCP range {start}-{end} covers the network address {network} \
                         or the broadcast address {broadcast}"
                ),
            ));
        }
    }
    if covers(ip.address) {
        return Err(ModelError::invalid(
            el.path.clone(),
            format!(
                "DHCP range {start}-{end} covers the gateway address {} of the \
                     network",
                ip.address
            ),
        ));
    }
    let mut lease = None;
    for l in el.children(&["lease"], &[])? {
        lease = Some(read_lease(&l)?);
    }
    Ok(DhcpRange { start, end, lease })
}

fn check_ranges_disjoint(el: &El, dhcp: &Dhcp) -> Result<()> {
    for (i, a) in dhcp.ranges.iter().enumerate() {
        for (j, b) in dhcp.ranges.iter().enumerate().skip(i + 1) {
            if a.start <= b.end && b.start <= a.end {
                return Err(ModelError::invalid(
                    format!("{}.range[{j}]", el.path),
                    format!(
                        "DHCP range {}-{} overlaps range[{i}] {}-{}",
                        b.start, b.end, a.start, a.end
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn read_dhcp_host(el: &El, ip: &IpDef) -> Result<DhcpHost> {
    el.allow_attrs(&["mac", "id", "name", "ip"])?;
    let mac = match el.attr("mac") {
        Some(raw) => Some(parse_unicast_mac(&el.field("mac"), raw)?),
        None => None,
    };
    let id = el.attr("id").map(|s| s.trim().to_string());
    if let Some(i) = &id {
        if i.is_empty() || !i.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(ModelError::bad_value(
                el.field("id"),
                i.clone(),
                "client id / DUID must be hexadecimal octets separated by ':'",
            ));
        }
    }
    let name = el.attr("name").map(|s| s.trim().to_string());
    if let Some(n) = &name {
        if !n.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(ModelError::bad_value(
                el.field("name"),
                n.clone(),
                "host name must start with a letter",
            ));
        }
        check_dns_name(&el.field("name"), n)?;
    }
    let family = ip.family();
    if family == Family::Ipv6 && mac.is_some() {
        return Err(ModelError::invalid(
            el.field("mac"),
            "IPv6 static hosts are matched by 'id' (DUID) or 'name', not by 'mac'",
        ));
    }
    if mac.is_none() && id.is_none() && name.is_none() {
        return Err(ModelError::invalid(
            el.path.clone(),
            "a static DHCP host needs a 'mac', an 'id' or a 'name'",
        ));
    }
    if mac.is_some() && id.is_some() {
        return Err(ModelError::invalid(
            el.field("id"),
            "a static DHCP host is matched by 'mac' or by 'id', not both",
        ));
    }
    let addr = el.required_ip("ip")?;
    let prefix = ip.prefix_len();
    if Family::of(&addr) != family || !in_subnet(addr, ip.address, prefix) {
        return Err(ModelError::bad_value(
            el.field("ip"),
            addr.to_string(),
            format!("is outside the network {}/{prefix}", ip.address),
        ));
    }
    if addr == ip.address {
        return Err(ModelError::bad_value(
            el.field("ip"),
            addr.to_string(),
            "is the gateway address of the network",
        ));
    }
    if let Some((network, broadcast)) = reserved_v4(ip) {
        if addr == IpAddr::V4(network) || addr == IpAddr::V4(broadcast) {
            return Err(ModelError::bad_value(
                el.field("ip"),
                addr.to_string(),
                "is the network or broadcast address of the subnet",
            ));
        }
    }
    let mut lease = None;
    for l in el.children(&["lease"], &[])? {
        lease = Some(read_lease(&l)?);
    }
    Ok(DhcpHost {
        mac,
        id,
        name,
        ip: addr,
        lease,
    })
}

/// No two static hosts may share a MAC, a client id, an address or a name.
fn check_hosts_unique(el: &El, dhcp: &Dhcp) -> Result<()> {
    for (j, b) in dhcp.hosts.iter().enumerate() {
        for a in &dhcp.hosts[..j] {
            let field = |attr: &str| format!("{}.host[{j}].{attr}", el.path);
            if a.mac.is_some() && a.mac == b.mac {
                let v = b.mac.map(|m| m.to_string()).unwrap_or_default();
                return Err(ModelError::bad_value(
                    field("mac"),
                    v,
                    "duplicate static host MAC",
                ));
            }
            if a.id.is_some() && a.id == b.id {
                let v = b.id.clone().unwrap_or_default();
                return Err(ModelError::bad_value(
                    field("id"),
                    v,
                    "duplicate static host id",
                ));
            }
            if a.ip == b.ip {
                return Err(ModelError::bad_value(
                    field("ip"),
                    b.ip.to_string(),
                    "duplicate static host address",
                ));
            }
            if a.name.is_some() && a.name == b.name {
                let v = b.name.clone().unwrap_or_default();
                return Err(ModelError::bad_value(
                    field("name"),
                    v,
                    "duplicate static host name",
                ));
            }
        }
    }
    Ok(())
}

fn read_route(el: &El) -> Result<Route> {
    el.allow_attrs(&[
        "family", "address", "netmask", "prefix", "gateway", "metric",
    ])?;
    no_children(el)?;
    let Prefixed {
        address,
        family,
        netmask,
        prefix,
    } = read_prefixed(el)?;
    let gateway = el.required_ip("gateway")?;
    if Family::of(&gateway) != Family::of(&address) {
        return Err(ModelError::bad_value(
            el.field("gateway"),
            gateway.to_string(),
            "gateway and address must be of the same family",
        ));
    }
    let route = Route {
        family,
        address,
        netmask,
        prefix,
        gateway,
        metric: el.number("metric")?,
    };
    let plen = route.prefix_len();
    if route.destination().address != address {
        return Err(ModelError::bad_value(
            el.field("address"),
            address.to_string(),
            format!("has host bits set for a /{plen} route"),
        ));
    }
    Ok(route)
}

/// Rules that involve several elements (libvirt's checks in `virNetworkDefParseXML`).
fn check_network(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    if let Some(bridge) = &net.bridge {
        if !mode.has_own_bridge() {
            if bridge.stp == Some(false) || bridge.delay.is_some_and(|d| d > 0) {
                return Err(ModelError::invalid(
                    "bridge",
                    format!(
                        "bridge delay/stp options are only allowed in route, nat, open and \
                         isolated mode, not in {mode} mode"
                    ),
                ));
            }
            if mode != ForwardMode::Bridge {
                if bridge.name.is_some() {
                    return Err(ModelError::invalid(
                        "bridge.name",
                        format!("a bridge name is not allowed in {mode} mode"),
                    ));
                }
                if bridge.mac_table_manager.is_some() {
                    return Err(ModelError::invalid(
                        "bridge.macTableManager",
                        format!("macTableManager is not allowed in {mode} mode"),
                    ));
                }
            }
            if bridge.name.is_some()
                && (!net.forward.interfaces.is_empty() || net.forward.pf.is_some())
            {
                return Err(ModelError::invalid(
                    "bridge.name",
                    format!(
                        "a network with forward mode='{mode}' can name a bridge or a forward \
                         dev, but not both"
                    ),
                ));
            }
        }
    }
    let mut defaults = net.portgroups.iter().enumerate().filter(|(_, p)| p.default);
    if let (Some(_), Some((i, _))) = (defaults.next(), defaults.next()) {
        return Err(ModelError::invalid(
            format!("portgroup[{i}].default"),
            "only one portgroup can be the default",
        ));
    }
    for (j, p) in net.portgroups.iter().enumerate() {
        if net.portgroups[..j].iter().any(|q| q.name == p.name) {
            return Err(ModelError::bad_value(
                format!("portgroup[{j}].name"),
                p.name.clone(),
                "duplicate portgroup name",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One element read on its own: the element of a `net-update`, loaded by the same loader as a
// document and read by the same readers, at `path` (the section, e.g. `ip-dhcp-host`), so its
// errors name `ip-dhcp-host.mac` directly. `source` is the text `node` was loaded from.

/// A DHCP `<host>` for the `<dhcp>` of `ip`.
pub(crate) fn dhcp_host(node: Node, path: &str, source: &str, ip: &IpDef) -> Result<DhcpHost> {
    read_dhcp_host(&El::new(node, path.into(), source), ip)
}

/// A DHCP `<range>` for the `<dhcp>` of `ip`.
pub(crate) fn dhcp_range(node: Node, path: &str, source: &str, ip: &IpDef) -> Result<DhcpRange> {
    read_dhcp_range(&El::new(node, path.into(), source), ip)
}

/// A `<forward>`'s `<interface dev>`: the device name.
pub(crate) fn forward_interface(node: Node, path: &str, source: &str) -> Result<String> {
    read_forward_interface(&El::new(node, path.into(), source))
}

/// A `<portgroup>`.
pub(crate) fn portgroup(node: Node, path: &str, source: &str) -> Result<PortGroup> {
    read_portgroup(&El::new(node, path.into(), source))
}

/// A DNS `<host>`.
pub(crate) fn dns_host(node: Node, path: &str, source: &str) -> Result<DnsHost> {
    read_dns_host(&El::new(node, path.into(), source))
}

/// A DNS `<txt>` record.
pub(crate) fn dns_txt(node: Node, path: &str, source: &str) -> Result<DnsTxt> {
    read_dns_txt(&El::new(node, path.into(), source))
}

/// A DNS `<srv>` record.
pub(crate) fn dns_srv(node: Node, path: &str, source: &str) -> Result<DnsSrv> {
    read_srv(&El::new(node, path.into(), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(xml: &str) -> ModelError {
        match parse_network(xml) {
            Ok(n) => panic!("expected an error, parsed {n:?}"),
            Err(e) => e,
        }
    }

    const NAT: &str = "<network><name>n</name><forward mode='nat'/>\
        <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>RANGE</dhcp></ip></network>";

    fn with_range(range: &str) -> String {
        NAT.replace("RANGE", range)
    }

    #[test]
    fn parses_minimal_nat() {
        let n = parse_network(&with_range(
            "<range start='192.168.122.2' end='192.168.122.254'/>",
        ))
        .unwrap();
        assert_eq!(n.forward.mode, ForwardMode::Nat);
        assert_eq!(n.ips[0].prefix_len(), 24);
    }

    #[test]
    fn dhcp_range_errors_name_the_field() {
        let e = err(&with_range(
            "<range start='192.168.123.2' end='192.168.123.9'/>",
        ));
        assert_eq!(e.field, "ip[0].dhcp.range[0].start");
        let e = err(&with_range(
            "<range start='192.168.122.9' end='192.168.122.2'/>",
        ));
        assert!(e.reason.contains("reversed"), "{e}");
        let e = err(&with_range(
            "<range start='192.168.122.0' end='192.168.122.9'/>",
        ));
        assert!(e.reason.contains("network address"), "{e}");
        let e = err(&with_range(
            "<range start='192.168.122.200' end='192.168.122.255'/>",
        ));
        assert!(e.reason.contains("broadcast"), "{e}");
        let e = err(&with_range(
            "<range start='192.168.122.1' end='192.168.122.9'/>",
        ));
        assert!(e.reason.contains("gateway"), "{e}");
        let e = err(&with_range(
            "<range start='192.168.122.2' end='192.168.122.9'/><range start='192.168.122.5' end='192.168.122.20'/>",
        ));
        assert_eq!(e.field, "ip[0].dhcp.range[1]");
    }

    #[test]
    fn static_hosts_are_checked() {
        let e = err(&with_range("<host mac='52:54:00:00:00:01' ip='10.0.0.5'/>"));
        assert_eq!(e.field, "ip[0].dhcp.host[0].ip");
        let e = err(&with_range(
            "<host mac='52:54:00:00:00:01' ip='192.168.122.5'/><host mac='52:54:00:00:00:01' ip='192.168.122.6'/>",
        ));
        assert_eq!(e.field, "ip[0].dhcp.host[1].mac");
        let e = err(&with_range(
            "<host mac='52:54:00:00:00:01' ip='192.168.122.5'/><host mac='52:54:00:00:00:02' ip='192.168.122.5'/>",
        ));
        assert_eq!(e.field, "ip[0].dhcp.host[1].ip");
        let e = err(&with_range(
            "<host mac='52:54:00:00:00:01' name='a' ip='192.168.122.5'/><host mac='52:54:00:00:00:02' name='a' ip='192.168.122.6'/>",
        ));
        assert_eq!(e.field, "ip[0].dhcp.host[1].name");
        let e = err(&with_range(
            "<host mac='01:54:00:00:00:01' ip='192.168.122.5'/>",
        ));
        assert!(e.reason.contains("multicast"), "{e}");
    }

    #[test]
    fn netmask_and_prefix_conflict() {
        let e = err("<network><name>n</name><ip address='10.0.0.1' netmask='255.0.0.0' prefix='8'/></network>");
        assert_eq!(e.field, "ip[0].prefix");
        let e =
            err("<network><name>n</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>");
        assert_eq!(e.field, "ip[0].netmask");
        let e = err("<network><name>n</name><ip address='fd00::1' netmask='255.0.0.0'/></network>");
        assert_eq!(e.field, "ip[0].netmask");
    }

    #[test]
    fn bridge_names_follow_linux_rules() {
        let e = err("<network><name>n</name><bridge name='averyveryverylongname0'/></network>");
        assert_eq!(e.field, "bridge.name");
        assert!(e.reason.contains("15"), "{e}");
        let e = err("<network><name>n</name><bridge name='br 0'/></network>");
        assert_eq!(e.field, "bridge.name");
        assert!(parse_network("<network><name>n</name><bridge name='vb%d'/></network>").is_ok());
    }

    #[test]
    fn names_and_uuids() {
        assert_eq!(err("<network><name>a/b</name></network>").field, "name");
        assert_eq!(err("<network><name></name></network>").field, "name");
        assert_eq!(err("<network/>").field, "name");
        let e = err(
            "<network><name>x</name><uuid>49a0ceb-5662-4a61-8149-98ea750d393b</uuid></network>",
        );
        assert_eq!(e.field, "uuid");
        assert!(e
            .to_string()
            .contains("49a0ceb-5662-4a61-8149-98ea750d393b"));
    }

    #[test]
    fn strict_about_unknown_things() {
        let e = err("<network><name>n</name><forwrad mode='nat'/></network>");
        assert_eq!(e.field, "forwrad");
        let e = err("<network><name>n</name><bridge nmae='x'/></network>");
        assert_eq!(e.field, "bridge.nmae");
        let e = err("<network><name>n</name><bridge/><bridge/></network>");
        assert_eq!(e.field, "bridge");
    }

    #[test]
    fn hostile_documents_are_refused() {
        let lol = "<?xml version='1.0'?><!DOCTYPE n [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><network><name>&b;</name></network>";
        assert_eq!(err(lol).kind, ErrorKind::Xml);
        let deep = format!(
            "<network><name>n</name><metadata>{}{}</metadata></network>",
            "<a>".repeat(200),
            "</a>".repeat(200)
        );
        assert!(err(&deep).reason.contains("nested"));
        let big = format!(
            "<network><name>{}</name></network>",
            "x".repeat(MAX_XML_BYTES_TEST)
        );
        assert_eq!(err(&big).kind, ErrorKind::Xml);
        assert_eq!(err("\u{0}\u{1}garbage").kind, ErrorKind::Xml);
        assert_eq!(err("").kind, ErrorKind::Xml);
        assert_eq!(err("<domain/>").kind, ErrorKind::Xml);
    }

    const MAX_XML_BYTES_TEST: usize = super::super::MAX_XML_BYTES + 1;

    #[test]
    fn forward_dev_must_match_first_interface() {
        let e = err("<network><name>n</name><forward mode='bridge' dev='eth0'><interface dev='eth1'/></forward></network>");
        assert_eq!(e.field, "forward.dev");
        let n = parse_network("<network><name>n</name><forward mode='route' dev='eth1'/><ip address='10.0.0.1' prefix='24'/></network>").unwrap();
        assert_eq!(n.forward.interfaces, vec!["eth1".to_string()]);
    }
}
