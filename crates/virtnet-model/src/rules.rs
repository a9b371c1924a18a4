//! libvirt 9.0's define-time rules that the parser does not apply: the checks of the network
//! driver's `networkValidate` (`src/network/bridge_driver.c`) and the cross-element and value
//! checks of `virNetworkDefParseXML` and its helpers (`src/conf/network_conf.c`,
//! `netdev_bandwidth_conf.c`, `netdev_vlan_conf.c`, `netdev_vport_profile_conf.c`,
//! `networkcommon_conf.c`, `virSocketAddrGetRange`) that `Network::from_xml` leaves out.
//!
//! They run in `define::prepare` (define, create, edit, and `net-update` on the result), not in
//! the parser, for two reasons: libvirt's own corpus holds documents its parser accepts and its
//! driver refuses (`passthrough-pf` carries an `<ip>`), and a definition stored by an earlier
//! virtnet that breaks a rule added here must stay readable (the store reads with the parser).
//!
//! Each error names the field and carries libvirt's wording.

use crate::error::{ModelError, Result};
use crate::network::{Bandwidth, Dhcp, Family, ForwardMode, IpDef, Network, VirtualPort, Vlan};
use crate::subnet::in_subnet;

/// Which operation the rules guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `net-define`, `net-create`, `net-edit`: every rule.
    Define,
    /// `net-update`: the rules libvirt's own update corpus (`networkxml2xmlupdatetest`, which
    /// applies a section and formats the result) does not contradict. It adds a second
    /// `<forward><interface>` to a NAT network and edits the portgroups of a bridge network
    /// whose portgroups carry `<vlan>` with a type-less `<virtualport>`, both of which define
    /// refuses; an update keeps accepting them, as libvirt does.
    Update,
}

/// Every rule of this module, in libvirt's order (parser first, then the driver).
pub(crate) fn check(net: &Network, scope: Scope) -> Result<()> {
    check_forward_needs_ip(net, scope)?;
    check_bridge_options(net)?;
    check_mtu(net)?;
    check_forward_driver(net)?;
    check_virtualport(net)?;
    check_vlans(net)?;
    check_ip_details(net)?;
    check_srv_records(net)?;
    check_routes(net)?;
    check_mode_rules(net)?;
    check_bandwidth_allowed(net)?;
    check_device_pool(net)?;
    check_dhcp_per_family(net)?;
    check_forwards_mode(net)?;
    if scope == Scope::Define {
        check_vlan_allowed(net)?;
    }
    Ok(())
}

/// Port forwards DNAT into a network the host routes: nat and route networks only (an
/// isolated or open network gets no forwarding rules, a host device none of virtnet's).
fn check_forwards_mode(net: &Network) -> Result<()> {
    if net.forwards.is_empty() || matches!(net.forward.mode, ForwardMode::Nat | ForwardMode::Route)
    {
        return Ok(());
    }
    refuse(
        "virtnet:forwards",
        format!(
            "port forwards need a nat or route network; network '{}' has forward mode='{}'",
            net.name, net.forward.mode
        ),
    )
}

/// An error with libvirt's wording, in the field it is about.
fn refuse(field: impl Into<String>, reason: impl Into<String>) -> Result<()> {
    Err(ModelError::invalid(field, reason))
}

/// `virNetworkDefParseXML`: routed, NATed and open networks need an address ("it's pointless to
/// specify L3 forwarding without specifying the network we're on") and at most one egress
/// device.
fn check_forward_needs_ip(net: &Network, scope: Scope) -> Result<()> {
    let mode = net.forward.mode;
    if !matches!(
        mode,
        ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
    ) {
        return Ok(());
    }
    if net.ips.is_empty() {
        return refuse(
            "ip",
            format!(
                "{mode} forwarding requested, but no IP address provided for network '{}'",
                net.name
            ),
        );
    }
    if net.forward.interfaces.len() > 1 && scope == Scope::Define {
        return refuse(
            "forward.interface[1]",
            format!(
                "multiple forwarding interfaces specified for network '{}', only one is supported",
                net.name
            ),
        );
    }
    Ok(())
}

/// `virNetworkDefParseXML`: on networks whose bridge libvirt does not create, the bridge takes
/// no `zone` (macvtap/hostdev modes) and no `stp`, `delay` or `zone` at all (any mode without
/// its own bridge). The parser already refuses `stp='off'` and a non-zero delay there.
fn check_bridge_options(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    let Some(bridge) = &net.bridge else {
        return Ok(());
    };
    if mode.has_own_bridge() {
        return Ok(());
    }
    if mode != ForwardMode::Bridge && bridge.zone.is_some() {
        return refuse(
            "bridge.zone",
            format!(
                "bridge zone not allowed in {mode} mode (network '{}')",
                net.name
            ),
        );
    }
    let field = if bridge.stp.is_some() {
        "bridge.stp"
    } else if bridge.delay.is_some_and(|d| d > 0) {
        "bridge.delay"
    } else if bridge.zone.is_some() {
        "bridge.zone"
    } else {
        return Ok(());
    };
    refuse(
        field,
        format!(
            "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in \
             {mode} (network '{}')",
            net.name
        ),
    )
}

/// `virNetworkDefParseXML`: the MTU is set on the bridge libvirt creates, so only networks with
/// their own bridge may carry one.
fn check_mtu(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    if net.mtu.is_some() && !mode.has_own_bridge() {
        return refuse(
            "mtu",
            format!(
                "mtu size only allowed in open, route, nat, and isolated mode, not in {mode} \
                 (network '{}')",
                net.name
            ),
        );
    }
    Ok(())
}

/// `virNetworkForwardDefParseXML`: `default` is the value of a missing `<driver>`, not a name
/// one may write.
fn check_forward_driver(net: &Network) -> Result<()> {
    if net.forward.driver.as_deref() == Some("default") {
        return refuse(
            "forward.driver.name",
            format!(
                "Unknown forward <driver name='default'/> in network {}",
                net.name
            ),
        );
    }
    Ok(())
}

/// `virNetDevVPortProfileParse`: a network-wide `<virtualport>` needs a type; parameter values
/// must be in range; a type takes only its own parameters.
fn check_virtualport(net: &Network) -> Result<()> {
    if let Some(vp) = &net.virtualport {
        if vp.kind.is_none() {
            return refuse("virtualport.type", "missing required virtualport type");
        }
        check_virtualport_parameters("virtualport", vp)?;
    }
    for (i, pg) in net.portgroups.iter().enumerate() {
        if let Some(vp) = &pg.virtualport {
            check_virtualport_parameters(&format!("portgroup[{i}].virtualport"), vp)?;
        }
    }
    Ok(())
}

/// A number the way `virStrToLong_ui` with base 0 reads it (decimal, `0x` hex, `0` octal).
fn c_number(raw: &str) -> Option<u64> {
    let v = raw.trim();
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

/// Longest `profileid`: libvirt copies it into a 40-byte buffer with its NUL.
const PROFILE_ID_MAX: usize = 39;

fn check_virtualport_parameters(path: &str, vp: &VirtualPort) -> Result<()> {
    for (name, value) in &vp.parameters {
        let field = format!("{path}.parameters.{name}");
        let number = |max: u64, what: &str| match c_number(value) {
            None => refuse(&field, format!("cannot parse value of {what} parameter")),
            Some(n) if n > max => refuse(&field, format!("value of {what} out of range")),
            Some(_) => Ok(()),
        };
        match name.as_str() {
            "managerid" => number(0xff, "managerid")?,
            "typeid" => number(0xff_ffff, "typeid")?,
            "typeidversion" => number(0xff, "typeidversion")?,
            "instanceid" | "interfaceid" => {
                let compact: String = value.chars().filter(|c| *c != '-').collect();
                if compact.len() != 32 || !compact.chars().all(|c| c.is_ascii_hexdigit()) {
                    return refuse(field, format!("cannot parse {name} parameter as a uuid"));
                }
            }
            "profileid" if value.len() > PROFILE_ID_MAX => {
                return refuse(field, "profileid parameter too long");
            }
            _ => {}
        }
        // virNetDevVPortProfileCheckNoExtras: each type takes only its own parameters.
        let allowed: &[&str] = match vp.kind.as_deref() {
            Some("802.1Qbg") => &["managerid", "typeid", "typeidversion", "instanceid"],
            Some("802.1Qbh") => &["profileid"],
            Some("openvswitch") => &["profileid", "interfaceid"],
            Some("midonet") => &["interfaceid"],
            _ => continue,
        };
        if !allowed.contains(&name.as_str()) {
            return refuse(
                field,
                format!(
                    "attribute {name} not allowed for <virtualport type='{}'>",
                    vp.kind.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    Ok(())
}

/// `virNetDevVlanParse`: at most one tag carries a `nativeMode`, and `trunk='no'` takes none.
fn check_vlan(path: &str, vlan: &Vlan) -> Result<()> {
    let mut natives = vlan
        .tags
        .iter()
        .enumerate()
        .filter(|(_, t)| t.native_mode.is_some());
    let first = natives.next();
    if let Some((j, _)) = natives.next() {
        return refuse(
            format!("{path}.tag[{j}].nativeMode"),
            "duplicate native vlan setting",
        );
    }
    if let (Some((j, _)), Some(false)) = (first, vlan.trunk) {
        return refuse(
            format!("{path}.tag[{j}].nativeMode"),
            "invalid configuration in <vlan> - \"trunk='no'\" is not allowed with a native vlan id",
        );
    }
    Ok(())
}

fn check_vlans(net: &Network) -> Result<()> {
    if let Some(v) = &net.vlan {
        check_vlan("vlan", v)?;
    }
    for (i, pg) in net.portgroups.iter().enumerate() {
        if let Some(v) = &pg.vlan {
            check_vlan(&format!("portgroup[{i}].vlan"), v)?;
        }
    }
    Ok(())
}

/// Per `<ip>`: DHCP ranges within libvirt's size limit and IPv4 static hosts matched by MAC or
/// name. (libvirt's two-minute minimum lease is dnsmasq's limit; virtnet serves DHCP itself and
/// keeps accepting shorter leases, see docs/ARCHITECTURE.md.)
fn check_ip_details(net: &Network) -> Result<()> {
    for (i, ip) in net.ips.iter().enumerate() {
        if let Some(dhcp) = &ip.dhcp {
            check_dhcp(net, &format!("ip[{i}].dhcp"), ip, dhcp)?;
        }
    }
    Ok(())
}

fn check_dhcp(net: &Network, path: &str, ip: &IpDef, dhcp: &Dhcp) -> Result<()> {
    for (j, r) in dhcp.ranges.iter().enumerate() {
        if !range_size_ok(r.start, r.end) {
            return refuse(
                format!("{path}.range[{j}]"),
                format!("range {} - {} is too large (> 65535)", r.start, r.end),
            );
        }
    }
    for (j, h) in dhcp.hosts.iter().enumerate() {
        if ip.family() == Family::Ipv4 && h.mac.is_none() && h.name.is_none() {
            return refuse(
                format!("{path}.host[{j}]"),
                format!(
                    "Static host definition in IPv4 network '{}' must have mac or name attribute",
                    net.name
                ),
            );
        }
    }
    Ok(())
}

/// `virSocketAddrGetRange`: start and end may differ only in their last 16 bits (IPv4: the
/// last two octets).
fn range_size_ok(start: std::net::IpAddr, end: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) >> 16 == u32::from(b) >> 16,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) >> 16 == u128::from(b) >> 16,
        _ => false,
    }
}

/// Characters of a service name in an SRV record (`SERVICE_CHARS`): no `.`, which separates the
/// fields of the record name.
fn service_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+/*".contains(c)
}

/// `virNetworkDNSSrvDefParseXML`: the service name's characters, and port, priority and
/// weight only with a target, the port from 1 to 65535.
fn check_srv_records(net: &Network) -> Result<()> {
    let Some(dns) = &net.dns else {
        return Ok(());
    };
    for (k, srv) in dns.srvs.iter().enumerate() {
        let field = |attr: &str| format!("dns.srv[{k}].{attr}");
        let (svc, name) = (&srv.service, &net.name);
        if !srv.service.chars().all(service_char_ok) {
            return refuse(
                field("service"),
                format!(
                    "invalid character in service attribute '{svc}' in DNS SRV record of \
                     network '{name}'"
                ),
            );
        }
        let given = [
            ("port", srv.port.is_some()),
            ("priority", srv.priority.is_some()),
            ("weight", srv.weight.is_some()),
        ];
        if srv.target.is_none() {
            if let Some((attr, _)) = given.iter().find(|(_, set)| *set) {
                return refuse(
                    field(attr),
                    format!(
                        "DNS SRV {attr} attribute not permitted without target for service \
                         '{svc}' in network '{name}'"
                    ),
                );
            }
        }
        if srv.port == Some(0) {
            return refuse(
                field("port"),
                format!("invalid DNS SRV port attribute for service '{svc}' in network '{name}'"),
            );
        }
    }
    Ok(())
}

/// `virNetDevIPRouteParseXML` and `virNetworkDefParseXML`: a metric is not zero, and the
/// gateway of a static route is on one of the network's subnets.
fn check_routes(net: &Network) -> Result<()> {
    for (i, route) in net.routes.iter().enumerate() {
        if route.metric == Some(0) {
            return refuse(
                format!("route[{i}].metric"),
                "Invalid value for attribute 'metric' in element 'route': Zero is not permitted",
            );
        }
        let reachable = net.ips.iter().any(|ip| {
            Family::of(&ip.address) == Family::of(&route.gateway)
                && in_subnet(route.gateway, ip.address, ip.prefix_len())
        });
        if !reachable {
            return refuse(
                format!("route[{i}].gateway"),
                format!(
                    "unreachable static route gateway '{}' specified for network '{}'",
                    route.gateway, net.name
                ),
            );
        }
    }
    Ok(())
}

/// `networkValidate`: network-wide and portgroup bandwidth only where libvirt shapes a bridge
/// (its own, or a named host bridge); `floor` nowhere in a network definition
/// (`virNetDevBandwidthParse` with `allowFloor` false), `peak` and `burst` only with `average`.
fn check_bandwidth_allowed(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    let allowed =
        mode.has_own_bridge() || (mode == ForwardMode::Bridge && net.bridge_name().is_some());
    if let Some(bw) = &net.bandwidth {
        if !allowed {
            return refuse(
                "bandwidth",
                format!(
                    "Unsupported network-wide <bandwidth> element in network {} with forward \
                     mode='{mode}'",
                    net.name
                ),
            );
        }
        check_rates("bandwidth", bw)?;
    }
    for (i, pg) in net.portgroups.iter().enumerate() {
        let Some(bw) = &pg.bandwidth else { continue };
        if !allowed {
            return refuse(
                format!("portgroup[{i}].bandwidth"),
                format!(
                    "Unsupported <bandwidth> element in network '{}' in portgroup '{}' with \
                     forward mode='{mode}'",
                    net.name, pg.name
                ),
            );
        }
        check_rates(&format!("portgroup[{i}].bandwidth"), bw)?;
    }
    Ok(())
}

fn check_rates(path: &str, bw: &Bandwidth) -> Result<()> {
    for (dir, rate) in [("inbound", &bw.inbound), ("outbound", &bw.outbound)] {
        let Some(rate) = rate else { continue };
        // libvirt's order: peak/burst without an average first, then floor.
        if (rate.peak.is_some() || rate.burst.is_some()) && rate.average.is_none() {
            return refuse(
                format!("{path}.{dir}"),
                "'peak' and 'burst' require 'average' attribute",
            );
        }
        if rate.floor.is_some() {
            return refuse(
                format!("{path}.{dir}.floor"),
                "floor attribute is not supported for this config",
            );
        }
    }
    Ok(())
}

/// `networkValidate`: a device pool is one `<pf>`, or `<interface>` names, or PCI `<address>`es;
/// hostdev pools are PCI addresses, and only hostdev pools are.
fn check_device_pool(net: &Network) -> Result<()> {
    let (fwd, mode, name) = (&net.forward, net.forward.mode, &net.name);
    if mode == ForwardMode::Hostdev {
        if let Some(dev) = fwd.interfaces.first() {
            return refuse(
                "forward.interface[0].dev",
                format!(
                    "hostdev network '{name}' lists '{dev}' in the device pool, but hostdev \
                     networks require all devices to be listed by PCI address, not network \
                     device name"
                ),
            );
        }
    } else if !fwd.addresses.is_empty() {
        return refuse(
            "forward.address[0]",
            format!(
                "network '{name}' has forward mode '{mode}' but lists a device by PCI address in \
                 the device pool. This is only supported for networks with forward mode 'hostdev'"
            ),
        );
    }
    let kinds = usize::from(fwd.pf.is_some())
        + usize::from(!fwd.interfaces.is_empty())
        + usize::from(!fwd.addresses.is_empty());
    if kinds > 1 {
        return refuse(
            "forward",
            format!(
                "<address>, <interface>, and <pf> elements of <forward> in network {name} are \
                 mutually exclusive"
            ),
        );
    }
    Ok(())
}

/// `networkValidate`: VLAN tags only on networks that can apply them (hostdev, passthrough, or
/// a bridge with an Open vSwitch virtualport), checked per portgroup when there are some.
fn check_vlan_allowed(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    let is_ovs = |vp: &Option<VirtualPort>| {
        vp.as_ref()
            .is_some_and(|v| v.kind.as_deref() == Some("openvswitch"))
    };
    let allowed = matches!(mode, ForwardMode::Hostdev | ForwardMode::Passthrough)
        || (mode == ForwardMode::Bridge && is_ovs(&net.virtualport));
    let used = net.vlan.is_some();
    let mut bad = None;
    for (i, pg) in net.portgroups.iter().enumerate() {
        if !(used || pg.vlan.is_some()) {
            continue;
        }
        let ok = match &pg.virtualport {
            Some(_) => mode == ForwardMode::Bridge && is_ovs(&pg.virtualport),
            None => allowed,
        };
        if !ok && bad.is_none() {
            bad = Some(format!("portgroup[{i}].vlan"));
        }
    }
    let has_default = net.portgroups.iter().any(|p| p.default);
    if bad.is_none() && used && !allowed && !has_default {
        bad = Some("vlan".to_string());
    }
    match bad {
        Some(field) => refuse(
            field,
            format!(
                "<vlan> element specified for network {}, whose type doesn't support vlan \
                 configuration",
                net.name
            ),
        ),
        None => Ok(()),
    }
}

/// libvirt `networkValidate`: what each forward mode can carry and needs.
fn check_mode_rules(net: &Network) -> Result<()> {
    let mode = net.forward.mode;
    if mode.has_own_bridge() {
        return Ok(());
    }
    let unsupported = |field: &str, what: &str| {
        Err(ModelError::invalid(
            field,
            format!(
                "unsupported <{what}> element in network '{}' with forward mode='{mode}': \
                 only nat, route, open and isolated networks have host addresses, DHCP and DNS",
                net.name
            ),
        ))
    };
    if !net.ips.is_empty() {
        return unsupported("ip[0]", "ip");
    }
    if net.dns.as_ref().is_some_and(|d| !d.is_empty()) {
        return unsupported("dns", "dns");
    }
    if net.domain.is_some() {
        return unsupported("domain", "domain");
    }
    if net.mac.is_some() {
        return unsupported("mac", "mac");
    }
    if !net.routes.is_empty() {
        return unsupported("route[0]", "route");
    }
    if !net.host_access.is_empty() {
        // Guests of a host bridge or macvtap reach the host through the host's own firewall,
        // not virtnet's: there is nothing for virtnet to open.
        return unsupported("virtnet:host-access", "virtnet:host-access");
    }
    if net.overlay.is_some() {
        // The VXLAN device is enslaved to the network's bridge, and the gateway MAC and MTU
        // are the bridge's: virtnet changes neither on a host bridge it did not make, and a
        // macvtap or hostdev network has no bridge at all.
        return unsupported("virtnet:overlay", "virtnet:overlay");
    }
    // Like libvirt, a bridge/macvtap/hostdev network without a bridge name or device pool is
    // accepted here; it fails when a guest port is allocated on it (nothing to attach to).
    Ok(())
}

/// One DHCP server per family: libvirt refuses a second `<dhcp>` of the same family.
fn check_dhcp_per_family(net: &Network) -> Result<()> {
    for family in [Family::Ipv4, Family::Ipv6] {
        let mut with_dhcp = net
            .ips
            .iter()
            .enumerate()
            .filter(|(_, ip)| ip.family() == family)
            .filter(|(_, ip)| {
                ip.dhcp
                    .as_ref()
                    .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
            })
            .map(|(i, _)| i);
        if let (Some(_), Some(second)) = (with_dhcp.next(), with_dhcp.next()) {
            return Err(ModelError::invalid(
                format!("ip[{second}].dhcp"),
                format!(
                    "multiple {} <dhcp> sections: DHCP is supported for only one {} address \
                     per network",
                    family.as_str(),
                    family.as_str()
                ),
            ));
        }
    }
    Ok(())
}
