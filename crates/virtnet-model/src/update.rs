//! `net-update`: changes one part of a network definition in place, the way libvirt 9.0's
//! `virNetworkDefUpdateSection` (`src/conf/network_conf.c`) does.
//!
//! - The update XML is one element whose name must fit the section (`<host>` for
//!   `ip-dhcp-host` and `dns-host`, `<range>`, `<txt>`, `<srv>`, `<interface>`, `<portgroup>`).
//! - The element is loaded by the same loader, with the same limits, as a whole document. For
//!   `add-*` and `modify` it is read and checked by the same element readers as inside a
//!   `<network>` document, as its own element (errors name `ip-dhcp-host.mac`); for `delete` of
//!   DHCP hosts and DNS
//!   host, TXT and SRV records a partial element is enough, because it only selects the entry to
//!   remove (libvirt's `partialOkay`).
//! - Matching follows libvirt: a DHCP host is found by mac, name or ip (modify: any of them;
//!   delete: every attribute given must match), a DHCP range by start and end, a DNS host by
//!   address (delete: by address or any hostname, exactly one match), an SRV record by the
//!   domain, service, protocol and target given, a TXT record by name, a forward interface by
//!   dev, a portgroup by name.
//! - After the change the whole network must still pass the model's checks (parse rules and the
//!   define-time rules of [`crate::define::prepare`]); otherwise nothing changes.
//!
//! virtnet's parser is stricter than libvirt's in the same ways for updates as for whole
//! documents: unknown attributes or child elements are refused, overlapping DHCP ranges and
//! duplicate static hosts are refused.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use roxmltree::{Document, Node};

use crate::error::{ErrorKind, ModelError, Result};
use crate::mac::MacAddr;
use crate::network::{Dhcp, DhcpHost, Dns, DnsSrv, Family, IpDef, Network};
use crate::rules::Scope;
use crate::xml::load::{load, Input, Limits};
use crate::xml::parse;

/// What to do with the element (`virsh net-update NETWORK COMMAND …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateCommand {
    /// `add`: the same as `add-last`.
    Add,
    /// `add-first`: insert before the existing entries.
    AddFirst,
    /// `add-last`: append after the existing entries.
    AddLast,
    /// `delete`: remove the matching entry.
    Delete,
    /// `modify`: replace the matching entry.
    Modify,
}

impl UpdateCommand {
    /// Every command, in the order virsh documents them.
    pub const ALL: [UpdateCommand; 5] = [
        UpdateCommand::Add,
        UpdateCommand::AddFirst,
        UpdateCommand::AddLast,
        UpdateCommand::Delete,
        UpdateCommand::Modify,
    ];

    /// The spelling virsh accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateCommand::Add => "add",
            UpdateCommand::AddFirst => "add-first",
            UpdateCommand::AddLast => "add-last",
            UpdateCommand::Delete => "delete",
            UpdateCommand::Modify => "modify",
        }
    }

    fn is_add(self) -> bool {
        matches!(
            self,
            UpdateCommand::Add | UpdateCommand::AddFirst | UpdateCommand::AddLast
        )
    }
}

impl fmt::Display for UpdateCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateCommand {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<UpdateCommand> {
        UpdateCommand::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                ModelError::bad_value(
                    "command",
                    s,
                    "unrecognized command name (expected add, add-first, add-last, delete or \
                     modify)",
                )
            })
    }
}

/// Which part of the network to change (`virsh net-update NETWORK COMMAND SECTION …`): every
/// section name libvirt 9.0 knows. `bridge`, `domain`, `ip`, `forward` and `forward-pf` are
/// known but cannot be updated (libvirt refuses them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateSection {
    /// `bridge` (not updatable).
    Bridge,
    /// `domain` (not updatable).
    Domain,
    /// `ip` (not updatable).
    Ip,
    /// `ip-dhcp-host`: `<host>` in an `<ip>`'s `<dhcp>`.
    IpDhcpHost,
    /// `ip-dhcp-range`: `<range>` in an `<ip>`'s `<dhcp>`.
    IpDhcpRange,
    /// `forward` (not updatable).
    Forward,
    /// `forward-interface`: `<interface dev>` in `<forward>`.
    ForwardInterface,
    /// `forward-pf` (not updatable).
    ForwardPf,
    /// `portgroup`.
    Portgroup,
    /// `dns-host`: `<host>` in `<dns>`.
    DnsHost,
    /// `dns-txt`: `<txt>` in `<dns>`.
    DnsTxt,
    /// `dns-srv`: `<srv>` in `<dns>`.
    DnsSrv,
}

impl UpdateSection {
    /// Every section, in libvirt's enum order.
    pub const ALL: [UpdateSection; 12] = [
        UpdateSection::Bridge,
        UpdateSection::Domain,
        UpdateSection::Ip,
        UpdateSection::IpDhcpHost,
        UpdateSection::IpDhcpRange,
        UpdateSection::Forward,
        UpdateSection::ForwardInterface,
        UpdateSection::ForwardPf,
        UpdateSection::Portgroup,
        UpdateSection::DnsHost,
        UpdateSection::DnsTxt,
        UpdateSection::DnsSrv,
    ];

    /// The spelling virsh accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateSection::Bridge => "bridge",
            UpdateSection::Domain => "domain",
            UpdateSection::Ip => "ip",
            UpdateSection::IpDhcpHost => "ip-dhcp-host",
            UpdateSection::IpDhcpRange => "ip-dhcp-range",
            UpdateSection::Forward => "forward",
            UpdateSection::ForwardInterface => "forward-interface",
            UpdateSection::ForwardPf => "forward-pf",
            UpdateSection::Portgroup => "portgroup",
            UpdateSection::DnsHost => "dns-host",
            UpdateSection::DnsTxt => "dns-txt",
            UpdateSection::DnsSrv => "dns-srv",
        }
    }

    /// True for the sections that can be updated.
    pub fn is_supported(self) -> bool {
        self.element().is_some()
    }

    /// The element an update of this section carries, `None` for sections that cannot be
    /// updated.
    pub fn element(self) -> Option<&'static str> {
        match self {
            UpdateSection::IpDhcpHost | UpdateSection::DnsHost => Some("host"),
            UpdateSection::IpDhcpRange => Some("range"),
            UpdateSection::ForwardInterface => Some("interface"),
            UpdateSection::Portgroup => Some("portgroup"),
            UpdateSection::DnsTxt => Some("txt"),
            UpdateSection::DnsSrv => Some("srv"),
            UpdateSection::Bridge
            | UpdateSection::Domain
            | UpdateSection::Ip
            | UpdateSection::Forward
            | UpdateSection::ForwardPf => None,
        }
    }
}

impl fmt::Display for UpdateSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateSection {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<UpdateSection> {
        UpdateSection::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = UpdateSection::ALL.iter().map(|s| s.as_str()).collect();
                ModelError::bad_value(
                    "section",
                    s,
                    format!("unrecognized section name (expected {})", names.join(", ")),
                )
            })
    }
}

/// Applies one update to `net` in place, following libvirt 9.0's `virNetworkDefUpdateSection`:
/// the matching rules for delete and modify, the duplicate checks on add and the errors it
/// raises. `parent_index` selects the `<ip>` for the `ip-dhcp-*` sections (libvirt's
/// `--parent-index`; `None` is libvirt's `-1`: the `<ip>` that already has DHCP ranges or
/// hosts, else the first IPv4 one, else the first IPv6 one); other sections ignore it.
///
/// The result must still be a valid network (the parser's rules and the define-time rules of
/// [`crate::define::prepare`]). On any error `net` is unchanged.
pub fn apply_update(
    net: &mut Network,
    command: UpdateCommand,
    section: UpdateSection,
    parent_index: Option<usize>,
    xml: &str,
) -> Result<()> {
    let mut candidate = net.clone();
    apply_section(&mut candidate, command, section, parent_index, xml)?;
    validate(&candidate, section)?;
    *net = candidate;
    Ok(())
}

fn apply_section(
    net: &mut Network,
    command: UpdateCommand,
    section: UpdateSection,
    parent_index: Option<usize>,
    xml: &str,
) -> Result<()> {
    let Some(element) = section.element() else {
        return Err(ModelError::invalid(
            section.as_str(),
            format!(
                "can't update '{section}' section of network '{}': only ip-dhcp-host, \
                 ip-dhcp-range, forward-interface, portgroup, dns-host, dns-txt and dns-srv can \
                 be updated",
                net.name
            ),
        )
        .with_kind(ErrorKind::Unsupported));
    };
    let doc = load_element(xml, section)?;
    let root = doc.root_element();
    check_element_name(net, root, element, section)?;
    let el = Element {
        node: root,
        source: xml,
    };
    match section {
        UpdateSection::IpDhcpHost => update_dhcp_host(net, command, parent_index, el),
        UpdateSection::IpDhcpRange => update_dhcp_range(net, command, parent_index, el),
        UpdateSection::ForwardInterface => update_forward_interface(net, command, el),
        UpdateSection::Portgroup => update_portgroup(net, command, el),
        UpdateSection::DnsHost => update_dns_host(net, command, el),
        UpdateSection::DnsTxt => update_dns_txt(net, command, el),
        UpdateSection::DnsSrv => update_dns_srv(net, command, el),
        UpdateSection::Bridge
        | UpdateSection::Domain
        | UpdateSection::Ip
        | UpdateSection::Forward
        | UpdateSection::ForwardPf => unreachable!("refused above: no element"),
    }
}

/// The whole network must still be valid: what the parser checks (via a round trip through
/// libvirt XML) and what `net-define` checks.
fn validate(net: &Network, section: UpdateSection) -> Result<()> {
    let wrap = |e: ModelError| ModelError {
        reason: format!(
            "the network would not be valid after this {section} update: {}",
            e.reason
        ),
        ..e
    };
    // The stored form must be a document virtnet accepts, or the network could not be read
    // back (nor dumped and defined again); the error names the element that outgrew it.
    let stored = crate::xml::stored::checked_xml(net).map_err(wrap)?;
    let mut reparsed = crate::xml::parse::parse_network(&stored).map_err(wrap)?;
    crate::define::prepare_scoped(&mut reparsed, &[], &|_| false, Scope::Update).map_err(wrap)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the update element.

/// Loads the update XML with the loader and limits of a whole document; errors name the
/// section.
fn load_element(xml: &str, section: UpdateSection) -> Result<Document<'_>> {
    load(
        xml,
        Limits::INPUT,
        Input::Update {
            section: section.as_str(),
        },
    )
}

/// The update's element and the text it was loaded from.
#[derive(Clone, Copy)]
struct Element<'a, 'input> {
    node: Node<'a, 'input>,
    source: &'input str,
}

/// libvirt's `virNetworkDefUpdateCheckElementName`.
fn check_element_name(
    net: &Network,
    root: Node,
    expected: &str,
    section: UpdateSection,
) -> Result<()> {
    let tag = root.tag_name();
    if tag.name() != expected || tag.namespace().is_some() {
        return Err(ModelError::bad_value(
            section.as_str(),
            tag.name(),
            format!(
                "unexpected element <{}>, expecting <{expected}>, while updating network '{}'",
                tag.name(),
                net.name
            ),
        ));
    }
    Ok(())
}

/// Refuses attributes outside `allowed` (the parser's strictness, for partial elements).
fn allow_attrs(node: Node, allowed: &[&str], section: UpdateSection) -> Result<()> {
    for a in node.attributes() {
        if a.namespace().is_some() || !allowed.contains(&a.name()) {
            return Err(ModelError::invalid(
                format!("{section}.{}", a.name()),
                format!(
                    "unknown attribute '{}' on <{}> (allowed: {})",
                    a.name(),
                    node.tag_name().name(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses child elements outside `allowed`.
fn allow_children(node: Node, allowed: &[&str], section: UpdateSection) -> Result<()> {
    for c in node.children().filter(|c| c.is_element()) {
        let name = c.tag_name().name();
        if c.tag_name().namespace().is_some() || !allowed.contains(&name) {
            return Err(ModelError::invalid(
                format!("{section}.{name}"),
                format!(
                    "unknown element <{name}> in <{}> (allowed: {})",
                    node.tag_name().name(),
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

fn parse_ip(raw: &str, field: String) -> Result<IpAddr> {
    raw.trim()
        .parse()
        .map_err(|_| ModelError::bad_value(field, raw, "not a valid IPv4 or IPv6 address"))
}

fn insert_at<T>(list: &mut Vec<T>, command: UpdateCommand, item: T) {
    if command == UpdateCommand::AddFirst {
        list.insert(0, item);
    } else {
        list.push(item);
    }
}

fn conflict(field: String, value: String, reason: String) -> ModelError {
    ModelError::bad_value(field, value, reason).with_kind(ErrorKind::Conflict)
}

fn unsupported(section: UpdateSection, reason: &str) -> ModelError {
    ModelError::invalid(section.as_str(), reason).with_kind(ErrorKind::Unsupported)
}

// ---------------------------------------------------------------------------------------------
// ip-dhcp-host and ip-dhcp-range.

/// libvirt's `virNetworkIPDefByIndex`: the `<ip>` whose `<dhcp>` an update changes.
fn ip_by_index(net: &Network, parent_index: Option<usize>) -> Result<usize> {
    if let Some(n) = parent_index {
        if n < net.ips.len() {
            return Ok(n);
        }
        return Err(ModelError::bad_value(
            "parent-index",
            n.to_string(),
            format!(
                "couldn't update dhcp entry - no <ip> element found at index {n} in network \
                 '{}' (it has {})",
                net.name,
                net.ips.len()
            ),
        ));
    }
    let has_dhcp = |ip: &IpDef| {
        ip.dhcp
            .as_ref()
            .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
    };
    net.ips
        .iter()
        .position(has_dhcp)
        .or_else(|| net.ips.iter().position(|ip| ip.family() == Family::Ipv4))
        .or_else(|| net.ips.iter().position(|ip| ip.family() == Family::Ipv6))
        .ok_or_else(|| {
            ModelError::invalid(
                "parent-index",
                format!(
                    "couldn't update dhcp entry - no <ip> element found in network '{}'",
                    net.name
                ),
            )
        })
}

/// libvirt's `virNetworkDefUpdateCheckMultiDHCP`: one DHCP server per address family.
fn check_multi_dhcp(net: &Network, index: usize, section: UpdateSection) -> Result<()> {
    let family = net.ips[index].family();
    for (i, ip) in net.ips.iter().enumerate() {
        if i == index || ip.family() != family {
            continue;
        }
        if ip
            .dhcp
            .as_ref()
            .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
        {
            return Err(ModelError::invalid(
                section.as_str(),
                format!(
                    "dhcp is supported only for a single {} address on each network, and \
                     ip[{i}] already has DHCP (choose it with --parent-index {i})",
                    if family == Family::Ipv4 {
                        "IPv4"
                    } else {
                        "IPv6"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// One list of the `<dhcp>` of `ip` (empty without `<dhcp>`).
fn dhcp_entries<T>(ip: &IpDef, list: fn(&Dhcp) -> &Vec<T>) -> &[T] {
    ip.dhcp
        .as_ref()
        .map(|d| list(d).as_slice())
        .unwrap_or_default()
}

/// A `<host>` that only selects entries (delete): mac, id, name, ip, each optional.
struct HostPattern {
    mac: Option<MacAddr>,
    name: Option<String>,
    ip: Option<IpAddr>,
}

/// libvirt's `virNetworkDHCPHostDefParseXML` with `partialOkay`.
fn parse_partial_dhcp_host(ip: &IpDef, node: Node) -> Result<HostPattern> {
    let section = UpdateSection::IpDhcpHost;
    allow_attrs(node, &["mac", "id", "name", "ip"], section)?;
    allow_children(node, &["lease"], section)?;
    let field = |a: &str| format!("{section}.{a}");
    let mac = match node.attribute("mac") {
        None => None,
        Some(raw) => {
            if ip.family() == Family::Ipv6 {
                return Err(ModelError::bad_value(
                    field("mac"),
                    raw,
                    "IPv6 static hosts are matched by 'id' (DUID) or 'name', not by 'mac'",
                ));
            }
            let mac: MacAddr = raw.trim().parse().map_err(|e: crate::mac::MacParseError| {
                ModelError::bad_value(field("mac"), raw, e.to_string())
            })?;
            if mac.is_multicast() {
                return Err(ModelError::bad_value(
                    field("mac"),
                    raw,
                    "expected a unicast MAC address, found a multicast one",
                ));
            }
            Some(mac)
        }
    };
    if let Some(id) = node.attribute("id") {
        if !id.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(ModelError::bad_value(
                field("id"),
                id,
                "client id / DUID must be hexadecimal octets separated by ':'",
            ));
        }
    }
    let name = node.attribute("name").map(|n| n.trim().to_string());
    if let Some(n) = &name {
        if !n.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(ModelError::bad_value(
                field("name"),
                n.clone(),
                "host name must start with a letter or a digit",
            ));
        }
    }
    let ip_addr = match node.attribute("ip") {
        None => None,
        Some(raw) => Some(parse_ip(raw, field("ip"))?),
    };
    if mac.is_none() && name.is_none() && ip_addr.is_none() {
        return Err(ModelError::invalid(
            section.as_str(),
            "at least one of name, mac, or ip attribute must be specified to select a static \
             host",
        ));
    }
    Ok(HostPattern {
        mac,
        name,
        ip: ip_addr,
    })
}

fn describe_host(mac: Option<MacAddr>, name: Option<&str>, ip: Option<IpAddr>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = mac {
        parts.push(format!("mac='{m}'"));
    }
    if let Some(n) = name {
        parts.push(format!("name='{n}'"));
    }
    if let Some(a) = ip {
        parts.push(format!("ip='{a}'"));
    }
    format!("<host {}/>", parts.join(" "))
}

/// libvirt's `virNetworkDefUpdateIPDHCPHost`.
fn update_dhcp_host(
    net: &mut Network,
    command: UpdateCommand,
    parent_index: Option<usize>,
    el: Element,
) -> Result<()> {
    let section = UpdateSection::IpDhcpHost;
    let index = ip_by_index(net, parent_index)?;
    let ip_path = format!("ip[{index}]");
    if command == UpdateCommand::Delete {
        let pattern = parse_partial_dhcp_host(&net.ips[index], el.node)?;
        let hosts = dhcp_entries(&net.ips[index], |d| &d.hosts);
        // Every attribute given must match (a host without a mac matches any mac).
        let found = hosts.iter().position(|h| {
            (pattern.mac.is_none() || h.mac.is_none() || pattern.mac == h.mac)
                && (pattern.name.is_none() || pattern.name == h.name)
                && (pattern.ip.is_none() || pattern.ip == Some(h.ip))
        });
        let Some(i) = found else {
            return Err(ModelError::bad_value(
                section.as_str(),
                describe_host(pattern.mac, pattern.name.as_deref(), pattern.ip),
                format!(
                    "couldn't locate a matching dhcp host entry in {ip_path} of network '{}'",
                    net.name
                ),
            ));
        };
        if let Some(d) = net.ips[index].dhcp.as_mut() {
            d.hosts.remove(i);
        }
        return Ok(());
    }

    let host = parse::dhcp_host(el.node, section.as_str(), el.source, &net.ips[index])?;
    let hosts = dhcp_entries(&net.ips[index], |d| &d.hosts);
    let same_mac = |h: &DhcpHost| host.mac.is_some() && h.mac.is_some() && host.mac == h.mac;
    let same_name = |h: &DhcpHost| host.name.is_some() && host.name == h.name;
    let same_ip = |h: &DhcpHost| host.ip == h.ip;
    if command == UpdateCommand::Modify {
        let Some(i) = hosts
            .iter()
            .position(|h| same_mac(h) || same_ip(h) || same_name(h))
        else {
            return Err(ModelError::bad_value(
                section.as_str(),
                describe_host(host.mac, host.name.as_deref(), Some(host.ip)),
                format!(
                    "couldn't locate an existing dhcp host entry with this mac, name or ip in \
                     {ip_path} of network '{}'",
                    net.name
                ),
            ));
        };
        if let Some(d) = net.ips[index].dhcp.as_mut() {
            d.hosts[i] = host;
        }
        return Ok(());
    }

    check_multi_dhcp(net, index, section)?;
    for (i, h) in hosts.iter().enumerate() {
        let clash = if same_mac(h) {
            Some(("mac", host.mac.map(|m| m.to_string()).unwrap_or_default()))
        } else if same_name(h) {
            Some(("name", host.name.clone().unwrap_or_default()))
        } else if same_ip(h) {
            Some(("ip", host.ip.to_string()))
        } else {
            None
        };
        if let Some((attr, value)) = clash {
            return Err(conflict(
                format!("{section}.{attr}"),
                value,
                format!(
                    "there is already a host with this {attr} in network '{}' ({ip_path}.dhcp.\
                     host[{i}] {})",
                    net.name,
                    describe_host(h.mac, h.name.as_deref(), Some(h.ip))
                ),
            ));
        }
    }
    let dhcp = net.ips[index].dhcp.get_or_insert_with(Default::default);
    insert_at(&mut dhcp.hosts, command, host);
    Ok(())
}

/// libvirt's `virNetworkDefUpdateIPDHCPRange`.
fn update_dhcp_range(
    net: &mut Network,
    command: UpdateCommand,
    parent_index: Option<usize>,
    el: Element,
) -> Result<()> {
    let section = UpdateSection::IpDhcpRange;
    let index = ip_by_index(net, parent_index)?;
    if command == UpdateCommand::Modify {
        return Err(unsupported(
            section,
            "dhcp ranges cannot be modified, only added or deleted",
        ));
    }
    let ip_path = format!("ip[{index}]");
    let range = parse::dhcp_range(el.node, section.as_str(), el.source, &net.ips[index])?;
    let shown = format!("<range start='{}' end='{}'/>", range.start, range.end);
    let ranges = dhcp_entries(&net.ips[index], |d| &d.ranges);
    let found = ranges
        .iter()
        .position(|r| r.start == range.start && r.end == range.end);
    if command == UpdateCommand::Delete {
        let Some(i) = found else {
            return Err(ModelError::bad_value(
                section.as_str(),
                shown,
                format!(
                    "couldn't locate a matching dhcp range entry in {ip_path} of network '{}'",
                    net.name
                ),
            ));
        };
        if let Some(d) = net.ips[index].dhcp.as_mut() {
            d.ranges.remove(i);
        }
        return Ok(());
    }
    check_multi_dhcp(net, index, section)?;
    if let Some(i) = found {
        return Err(conflict(
            section.as_str().to_string(),
            shown,
            format!(
                "there is already a dhcp range with this start and end in network '{}' \
                 ({ip_path}.dhcp.range[{i}])",
                net.name
            ),
        ));
    }
    let dhcp = net.ips[index].dhcp.get_or_insert_with(Default::default);
    insert_at(&mut dhcp.ranges, command, range);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// forward-interface and portgroup.

/// libvirt's `virNetworkDefUpdateForwardInterface`. (libvirt also refuses to delete an
/// interface guests are connected to; the model does not know connections, the daemon does.)
fn update_forward_interface(net: &mut Network, command: UpdateCommand, el: Element) -> Result<()> {
    let section = UpdateSection::ForwardInterface;
    if command == UpdateCommand::Modify {
        return Err(unsupported(
            section,
            "forward interface entries cannot be modified, only added or deleted",
        ));
    }
    let dev = parse::forward_interface(el.node, section.as_str(), el.source)?;
    let found = net.forward.interfaces.iter().position(|i| *i == dev);
    match (command, found) {
        (UpdateCommand::Delete, Some(i)) => {
            net.forward.interfaces.remove(i);
        }
        (UpdateCommand::Delete, None) => {
            return Err(ModelError::bad_value(
                format!("{section}.dev"),
                dev,
                format!(
                    "couldn't find an interface entry in network '{}' with this dev",
                    net.name
                ),
            ))
        }
        (_, Some(i)) => {
            return Err(conflict(
                format!("{section}.dev"),
                dev,
                format!(
                    "there is already an interface with this dev in network '{}' \
                     (forward.interface[{i}])",
                    net.name
                ),
            ))
        }
        (_, None) => insert_at(&mut net.forward.interfaces, command, dev),
    }
    Ok(())
}

/// libvirt's `virNetworkDefUpdatePortGroup`: the element is always read in full, also to
/// delete.
fn update_portgroup(net: &mut Network, command: UpdateCommand, el: Element) -> Result<()> {
    let section = UpdateSection::Portgroup;
    let pg = parse::portgroup(el.node, section.as_str(), el.source)?;
    let found = net.portgroups.iter().position(|p| p.name == pg.name);
    let default = net.portgroups.iter().position(|p| p.default);
    match (command, found) {
        (UpdateCommand::Delete | UpdateCommand::Modify, None) => {
            return Err(ModelError::bad_value(
                format!("{section}.name"),
                pg.name,
                format!(
                    "couldn't find a portgroup entry in network '{}' with this name",
                    net.name
                ),
            ))
        }
        (c, Some(i)) if c.is_add() => {
            return Err(conflict(
                format!("{section}.name"),
                pg.name,
                format!(
                    "there is already a portgroup with this name in network '{}' \
                     (portgroup[{i}])",
                    net.name
                ),
            ))
        }
        _ => {}
    }
    if command != UpdateCommand::Delete && pg.default {
        if let Some(d) = default.filter(|d| Some(*d) != found) {
            return Err(conflict(
                format!("{section}.default"),
                "yes".to_string(),
                format!(
                    "portgroup '{}' (portgroup[{d}]) is already the default of network '{}'; \
                     only one default is allowed",
                    net.portgroups[d].name, net.name
                ),
            ));
        }
    }
    match (command, found) {
        (UpdateCommand::Modify, Some(i)) => net.portgroups[i] = pg,
        (UpdateCommand::Delete, Some(i)) => {
            net.portgroups.remove(i);
        }
        _ => insert_at(&mut net.portgroups, command, pg),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// dns-host, dns-txt, dns-srv.

/// One list of the network's `<dns>` (empty without `<dns>`).
fn dns_entries<T>(net: &Network, list: fn(&Dns) -> &Vec<T>) -> &[T] {
    net.dns
        .as_ref()
        .map(|d| list(d).as_slice())
        .unwrap_or_default()
}

/// Adds `entry` to one list of the network's `<dns>` unless `matches` names a clash.
fn add_dns_entry<T>(
    net: &mut Network,
    command: UpdateCommand,
    list: fn(&mut Dns) -> &mut Vec<T>,
    entry: T,
    matches: &[usize],
    clash: impl FnOnce(usize, &str) -> ModelError,
) -> Result<()> {
    if let Some(i) = matches.first() {
        return Err(clash(*i, &net.name));
    }
    let dns = net.dns.get_or_insert_with(Default::default);
    insert_at(list(dns), command, entry);
    Ok(())
}

/// Removes the one entry of a `<dns>` list that `matches` names (`path` as in `dns.host`), or
/// refuses when none or several match.
#[allow(clippy::too_many_arguments)]
fn remove_one_dns_match<T>(
    net: &mut Network,
    section: UpdateSection,
    list: fn(&mut Dns) -> &mut Vec<T>,
    matches: &[usize],
    shown: String,
    path: &str,
    none: &str,
    many: &str,
) -> Result<()> {
    match matches {
        [i] => {
            if let Some(d) = net.dns.as_mut() {
                list(d).remove(*i);
            }
            Ok(())
        }
        [] => Err(ModelError::bad_value(
            section.as_str(),
            shown,
            format!("couldn't locate {none} in network '{}'", net.name),
        )),
        several => Err(ModelError::bad_value(
            section.as_str(),
            shown,
            format!(
                "{many} were found in network '{}' ({})",
                net.name,
                several
                    .iter()
                    .map(|i| format!("{path}[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn dns_modify_refused(section: UpdateSection, what: &str) -> ModelError {
    unsupported(
        section,
        &format!("DNS {what} records cannot be modified, only added or deleted"),
    )
}

/// libvirt's `virNetworkDefUpdateDNSHost`.
fn update_dns_host(net: &mut Network, command: UpdateCommand, el: Element) -> Result<()> {
    let section = UpdateSection::DnsHost;
    if command == UpdateCommand::Modify {
        return Err(dns_modify_refused(section, "HOST"));
    }
    let (ip, names, entry) = if command.is_add() {
        let host = parse::dns_host(el.node, section.as_str(), el.source)?;
        (Some(host.ip), host.hostnames.clone(), Some(host))
    } else {
        let (ip, names) = parse_partial_dns_host(el.node)?;
        (ip, names, None)
    };
    let hosts = dns_entries(net, |d| &d.hosts);
    // Adding checks only the address: several addresses may carry the same name.
    let matches: Vec<usize> = hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            Some(h.ip) == ip || (!command.is_add() && names.iter().any(|n| h.hostnames.contains(n)))
        })
        .map(|(i, _)| i)
        .collect();
    if let Some(host) = entry {
        let ip = host.ip.to_string();
        return add_dns_entry(
            net,
            command,
            |d| &mut d.hosts,
            host,
            &matches,
            |i, net| {
                conflict(
                    format!("{section}.ip"),
                    ip,
                    format!(
                        "there is already a DNS host record with this ip in network '{net}' \
                     (dns.host[{i}])"
                    ),
                )
            },
        );
    }
    let shown = match ip {
        Some(a) => format!("ip='{a}' {}", names.join(" ")),
        None => names.join(" "),
    };
    remove_one_dns_match(
        net,
        section,
        |d| &mut d.hosts,
        &matches,
        shown,
        "dns.host",
        "a matching DNS host record",
        "multiple matching DNS host records",
    )
}

/// libvirt's `virNetworkDNSHostDefParseXML` with `partialOkay`: an address, hostnames, or both.
fn parse_partial_dns_host(node: Node) -> Result<(Option<IpAddr>, Vec<String>)> {
    let section = UpdateSection::DnsHost;
    allow_attrs(node, &["ip"], section)?;
    allow_children(node, &["hostname"], section)?;
    let ip = match node.attribute("ip") {
        None => None,
        Some(raw) => Some(parse_ip(raw, format!("{section}.ip"))?),
    };
    let mut names = Vec::new();
    for c in node.children().filter(|c| c.is_element()) {
        let text: String = c.children().filter_map(|t| t.text()).collect();
        let name = text.trim();
        if name.is_empty() {
            return Err(ModelError::invalid(
                format!("{section}.hostname"),
                "missing hostname in DNS host record",
            ));
        }
        names.push(name.to_string());
    }
    if ip.is_none() && names.is_empty() {
        return Err(ModelError::invalid(
            section.as_str(),
            "missing ip and hostname in DNS host record: give at least one to select it",
        ));
    }
    Ok((ip, names))
}

/// libvirt's `virNetworkDefUpdateDNSTxt`: records are found by name.
fn update_dns_txt(net: &mut Network, command: UpdateCommand, el: Element) -> Result<()> {
    let section = UpdateSection::DnsTxt;
    if command == UpdateCommand::Modify {
        return Err(dns_modify_refused(section, "TXT"));
    }
    let (name, entry) = if command.is_add() {
        let txt = parse::dns_txt(el.node, section.as_str(), el.source)?;
        (txt.name.clone(), Some(txt))
    } else {
        allow_attrs(el.node, &["name", "value"], section)?;
        allow_children(el.node, &[], section)?;
        let name = el.node.attribute("name").ok_or_else(|| {
            ModelError::invalid(
                format!("{section}.name"),
                "missing required name attribute in DNS TXT record",
            )
        })?;
        if name.contains([' ', ',']) {
            return Err(ModelError::bad_value(
                format!("{section}.name"),
                name,
                "prohibited character in DNS TXT record name (space or comma)",
            ));
        }
        (name.to_string(), None)
    };
    let found = net
        .dns
        .as_ref()
        .and_then(|d| d.txts.iter().position(|t| t.name == name));
    match (entry, found) {
        (Some(_), Some(i)) => Err(conflict(
            format!("{section}.name"),
            name,
            format!(
                "there is already a DNS TXT record with this name in network '{}' \
                 (dns.txt[{i}])",
                net.name
            ),
        )),
        (Some(txt), None) => {
            let dns = net.dns.get_or_insert_with(Default::default);
            insert_at(&mut dns.txts, command, txt);
            Ok(())
        }
        (None, Some(i)) => {
            if let Some(d) = net.dns.as_mut() {
                d.txts.remove(i);
            }
            Ok(())
        }
        (None, None) => Err(ModelError::bad_value(
            format!("{section}.name"),
            name,
            format!(
                "couldn't locate a matching DNS TXT record in network '{}'",
                net.name
            ),
        )),
    }
}

/// libvirt's `SERVICE_CHARS` and `PROTOCOL_CHARS`.
fn srv_chars_ok(value: &str, extra: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// libvirt's `virNetworkDNSSrvDefParseXML` with `partialOkay`: every attribute optional.
fn parse_partial_srv(node: Node) -> Result<DnsSrv> {
    let section = UpdateSection::DnsSrv;
    allow_attrs(
        node,
        &[
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ],
        section,
    )?;
    allow_children(node, &[], section)?;
    let field = |a: &str| format!("{section}.{a}");
    let text = |a: &str| node.attribute(a).map(|v| v.trim().to_string());
    let service = text("service");
    if let Some(s) = &service {
        if !srv_chars_ok(s, "_-+/*") {
            return Err(ModelError::bad_value(
                field("service"),
                s.clone(),
                "invalid character in SRV service name",
            ));
        }
    }
    let protocol = text("protocol");
    if let Some(p) = &protocol {
        if !srv_chars_ok(p, "-+/") {
            return Err(ModelError::bad_value(
                field("protocol"),
                p.clone(),
                "invalid character in SRV protocol",
            ));
        }
    }
    let number = |a: &str| -> Result<Option<u16>> {
        match node.attribute(a) {
            None => Ok(None),
            Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
                ModelError::bad_value(field(a), raw, "expected an unsigned integer up to 65535")
            }),
        }
    };
    Ok(DnsSrv {
        service: service.unwrap_or_default(),
        protocol: protocol.unwrap_or_default(),
        domain: text("domain"),
        target: text("target"),
        port: number("port")?,
        priority: number("priority")?,
        weight: number("weight")?,
    })
}

/// libvirt's `virNetworkDefUpdateDNSSrv`: a record matches when every one of domain, service,
/// protocol and target that the update gives is equal.
fn update_dns_srv(net: &mut Network, command: UpdateCommand, el: Element) -> Result<()> {
    let section = UpdateSection::DnsSrv;
    if command == UpdateCommand::Modify {
        return Err(dns_modify_refused(section, "SRV"));
    }
    let srv = if command.is_add() {
        parse::dns_srv(el.node, section.as_str(), el.source)?
    } else {
        parse_partial_srv(el.node)?
    };
    let given = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let (service, protocol) = (given(&srv.service), given(&srv.protocol));
    let srvs = dns_entries(net, |d| &d.srvs);
    let matches: Vec<usize> = srvs
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            (srv.domain.is_none() || srv.domain == s.domain)
                && (service.is_none() || service.as_deref() == Some(s.service.as_str()))
                && (protocol.is_none() || protocol.as_deref() == Some(s.protocol.as_str()))
                && (srv.target.is_none() || srv.target == s.target)
        })
        .map(|(i, _)| i)
        .collect();
    let shown = describe_srv(&srv);
    if command.is_add() {
        return add_dns_entry(
            net,
            command,
            |d| &mut d.srvs,
            srv,
            &matches,
            |i, net| {
                conflict(
                    section.as_str().to_string(),
                    shown,
                    format!(
                        "there is already a DNS SRV record matching all the given fields in \
                     network '{net}' (dns.srv[{i}])"
                    ),
                )
            },
        );
    }
    remove_one_dns_match(
        net,
        section,
        |d| &mut d.srvs,
        &matches,
        shown,
        "dns.srv",
        "a matching DNS SRV record",
        "multiple DNS SRV records matching all the given fields",
    )
}

fn describe_srv(srv: &DnsSrv) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        (
            "service",
            Some(srv.service.as_str()).filter(|s| !s.is_empty()),
        ),
        (
            "protocol",
            Some(srv.protocol.as_str()).filter(|s| !s.is_empty()),
        ),
        ("domain", srv.domain.as_deref()),
        ("target", srv.target.as_deref()),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name}='{v}'"));
        }
    }
    format!("<srv {}/>", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in UpdateCommand::ALL {
            assert_eq!(c.as_str().parse::<UpdateCommand>().ok(), Some(c));
        }
        for s in UpdateSection::ALL {
            assert_eq!(s.as_str().parse::<UpdateSection>().ok(), Some(s));
        }
        let e = "none".parse::<UpdateCommand>().unwrap_err();
        assert_eq!(e.field, "command");
        let e = "dns-forwarder".parse::<UpdateSection>().unwrap_err();
        assert_eq!(e.field, "section");
        assert!(e.reason.contains("ip-dhcp-host"), "{e}");
    }
}
