//! libvirt's `<networkport>`: the record of one guest NIC on a network, as the hypervisor
//! daemon announces it (`virNetworkPortCreateXML`) and the network driver answers it, with the
//! `<plug>` saying where the hypervisor attaches its tap (a bridge, a host NIC for macvtap, or
//! a PCI device).
//!
//! [`NetworkPort::from_xml`] reads a document with the model's one XML loader and limits and
//! the readers shared with `<network>` (`<bandwidth>`, `<vlan>`, `<virtualport>`);
//! [`NetworkPort::to_xml`] writes libvirt's form (`virNetworkPortDefFormat`: element order,
//! two-space indentation, single quotes). Every error names its field (`owner.uuid`,
//! `plug.mode`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ErrorKind, ModelError, Result};
use crate::mac::MacAddr;
use crate::network::{Bandwidth, MacTableManager, PciAddress, VirtualPort, Vlan};
use crate::xml::format::{format_bandwidth_with, format_virtualport, format_vlan, some, Writer};
use crate::xml::load::{load, Input, Limits};
use crate::xml::parse::{
    check_ifname, no_children, parse_unicast_mac, read_bandwidth_rates, read_uuid,
    read_virtualport, read_vlan, El,
};

/// One `<networkport>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPort {
    /// `<uuid>`: the port's identity, chosen by the hypervisor.
    pub uuid: Uuid,
    /// `<owner><name>`: the guest (domain) the port belongs to.
    pub owner_name: String,
    /// `<owner><uuid>`: the guest's UUID.
    pub owner_uuid: Uuid,
    /// `<group>`: the network's `<portgroup>` the port asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `<mac address>`: the guest's MAC.
    pub mac: MacAddr,
    /// `<virtualport>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualport: Option<VirtualPort>,
    /// `<bandwidth>`: stored as given (applying it comes with QoS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// `classID` of `<bandwidth>`: the tc class of a port with a `floor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    /// `<vlan>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vlan>,
    /// `<port isolated>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    /// `<rxfilters trustGuest>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_guest_rx_filters: Option<bool>,
    /// `<plug>`: where the hypervisor attaches the guest; `None` in a request (the network
    /// driver fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plug: Option<Plug>,
}

/// `<plug>`: how the hypervisor connects the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Plug {
    /// `type='network'`: a tap on the bridge of a network the network driver runs.
    Network {
        /// `bridge`.
        bridge: String,
        /// `macTableManager`, when the network sets it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac_table_manager: Option<MacTableManager>,
    },
    /// `type='bridge'`: a tap on a host bridge (`<forward mode='bridge'>` with a
    /// `<bridge name>`).
    Bridge {
        /// `bridge`.
        bridge: String,
        /// `macTableManager`, when the network sets it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac_table_manager: Option<MacTableManager>,
    },
    /// `type='direct'`: a macvtap device on a host NIC.
    Direct {
        /// `dev`: the host NIC.
        dev: String,
        /// `mode`.
        mode: DirectPlugMode,
    },
    /// `type='hostdev-pci'`: a PCI device (an SR-IOV virtual function) given to the guest.
    HostdevPci {
        /// `managed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        managed: Option<bool>,
        /// `<driver name>`: `kvm` or `vfio`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        driver: Option<String>,
        /// `<address>`.
        address: PciAddress,
    },
}

/// The macvtap mode of a `type='direct'` plug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectPlugMode {
    /// `vepa` (libvirt's default when `mode` is left out).
    Vepa,
    /// `private`.
    Private,
    /// `bridge`.
    Bridge,
    /// `passthrough`.
    Passthrough,
}

impl DirectPlugMode {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectPlugMode::Vepa => "vepa",
            DirectPlugMode::Private => "private",
            DirectPlugMode::Bridge => "bridge",
            DirectPlugMode::Passthrough => "passthrough",
        }
    }

    fn parse(value: &str) -> Option<DirectPlugMode> {
        Some(match value {
            "vepa" => DirectPlugMode::Vepa,
            "private" => DirectPlugMode::Private,
            "bridge" => DirectPlugMode::Bridge,
            "passthrough" => DirectPlugMode::Passthrough,
            _ => return None,
        })
    }
}

impl Plug {
    /// The `type` attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            Plug::Network { .. } => "network",
            Plug::Bridge { .. } => "bridge",
            Plug::Direct { .. } => "direct",
            Plug::HostdevPci { .. } => "hostdev-pci",
        }
    }

    /// The bridge the guest's tap joins (`network` and `bridge` plugs).
    pub fn bridge(&self) -> Option<&str> {
        match self {
            Plug::Network { bridge, .. } | Plug::Bridge { bridge, .. } => Some(bridge),
            Plug::Direct { .. } | Plug::HostdevPci { .. } => None,
        }
    }
}

impl NetworkPort {
    /// Parses a `<networkport>` document with the input limits.
    pub fn from_xml(text: &str) -> Result<NetworkPort> {
        parse_with(text, Limits::INPUT)
    }

    /// Parses a port virtnet stored itself (no size limits; see
    /// `Network::from_stored_xml`).
    pub fn from_stored_xml(text: &str) -> Result<NetworkPort> {
        parse_with(text, Limits::STORED)
    }

    /// libvirt's form of the port (`virsh net-port-dumpxml`).
    pub fn to_xml(&self) -> String {
        format_port(self)
    }
}

fn parse_with(text: &str, limits: Limits) -> Result<NetworkPort> {
    let doc = load(text, limits, Input::Document)?;
    let root = doc.root_element();
    if root.tag_name().name() != "networkport" || root.tag_name().namespace().is_some() {
        return Err(ModelError::invalid(
            "",
            format!(
                "unknown root element for network port: expected <networkport>, found <{}>",
                root.tag_name().name()
            ),
        )
        .with_kind(ErrorKind::Xml));
    }
    read_port(&El::root(root, "networkport", text))
}

/// The elements of `<networkport>` (all at most once, in any order, as libvirt's schema
/// interleaves them).
const PORT_ELEMENTS: [&str; 10] = [
    "uuid",
    "owner",
    "group",
    "mac",
    "virtualport",
    "bandwidth",
    "vlan",
    "port",
    "rxfilters",
    "plug",
];

fn missing(field: &str, what: &str) -> ModelError {
    ModelError::invalid(field, format!("network port has no {what}"))
}

fn read_port(el: &El) -> Result<NetworkPort> {
    el.allow_attrs(&[])?;
    let mut uuid = None;
    let mut owner = None;
    let mut mac = None;
    let mut port = NetworkPort {
        uuid: Uuid::nil(),
        owner_name: String::new(),
        owner_uuid: Uuid::nil(),
        group: None,
        mac: MacAddr([0; 6]),
        virtualport: None,
        bandwidth: None,
        class_id: None,
        vlan: None,
        isolated: None,
        trust_guest_rx_filters: None,
        plug: None,
    };
    for c in el.children(&PORT_ELEMENTS, &[])? {
        match c.name() {
            "uuid" => uuid = Some(read_uuid(&c)?),
            "owner" => owner = Some(read_owner(&c)?),
            "group" => port.group = Some(read_group(&c)?),
            "mac" => {
                c.allow_attrs(&["address"])?;
                no_children(&c)?;
                mac = Some(parse_unicast_mac(
                    &c.field("address"),
                    c.required("address")?,
                )?);
            }
            "virtualport" => port.virtualport = Some(read_virtualport(&c)?),
            "bandwidth" => {
                c.allow_attrs(&["classID"])?;
                port.class_id = c.number("classID")?;
                port.bandwidth = Some(read_bandwidth_rates(&c)?);
            }
            "vlan" => port.vlan = Some(read_vlan(&c)?),
            "port" => {
                c.allow_attrs(&["isolated"])?;
                no_children(&c)?;
                port.isolated = c.yes_no("isolated")?;
            }
            "rxfilters" => {
                c.allow_attrs(&["trustGuest"])?;
                no_children(&c)?;
                c.required("trustGuest")?;
                port.trust_guest_rx_filters = c.yes_no("trustGuest")?;
            }
            _ => port.plug = Some(read_plug(&c)?),
        }
    }
    port.uuid = uuid.ok_or_else(|| missing("uuid", "uuid"))?;
    (port.owner_name, port.owner_uuid) = owner.ok_or_else(|| missing("owner", "owner"))?;
    port.mac = mac.ok_or_else(|| missing("mac", "mac"))?;
    Ok(port)
}

fn read_owner(el: &El) -> Result<(String, Uuid)> {
    el.allow_attrs(&[])?;
    let mut name = None;
    let mut uuid = None;
    for c in el.children(&["name", "uuid"], &[])? {
        if c.name() == "name" {
            c.allow_attrs(&[])?;
            no_children(&c)?;
            let text = c.text();
            if text.is_empty() {
                return Err(ModelError::invalid(c.path.clone(), "owner name is empty"));
            }
            if text.chars().any(char::is_control) {
                return Err(ModelError::bad_value(
                    c.path.clone(),
                    text,
                    "owner name must not contain control characters",
                ));
            }
            name = Some(text);
        } else {
            uuid = Some(read_uuid(&c)?);
        }
    }
    let name = name.ok_or_else(|| missing("owner.name", "owner name"))?;
    let uuid = uuid.ok_or_else(|| missing("owner.uuid", "owner UUID"))?;
    Ok((name, uuid))
}

fn read_group(el: &El) -> Result<String> {
    el.allow_attrs(&[])?;
    no_children(el)?;
    let group = el.text();
    // The schema's `deviceName`: no whitespace, slashes or control characters.
    if group.is_empty()
        || group.len() > 255
        || group
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(ModelError::bad_value(
            el.path.clone(),
            group,
            "expected a port group name (1-255 characters, no whitespace or '/')",
        ));
    }
    Ok(group)
}

fn read_mac_table_manager(el: &El) -> Result<Option<MacTableManager>> {
    match el.attr("macTableManager") {
        None => Ok(None),
        Some("kernel") => Ok(Some(MacTableManager::Kernel)),
        Some("libvirt") => Ok(Some(MacTableManager::Libvirt)),
        Some(other) => Err(ModelError::bad_value(
            el.field("macTableManager"),
            other,
            "Invalid macTableManager setting in network port: expected 'kernel' or 'libvirt'",
        )),
    }
}

fn read_plug(el: &El) -> Result<Plug> {
    let kind = el.required("type")?;
    match kind {
        "network" | "bridge" => {
            el.allow_attrs(&["type", "bridge", "macTableManager"])?;
            no_children(el)?;
            let bridge = el.required("bridge")?;
            check_ifname(&el.field("bridge"), bridge)?;
            let bridge = bridge.to_string();
            let mac_table_manager = read_mac_table_manager(el)?;
            Ok(if kind == "network" {
                Plug::Network {
                    bridge,
                    mac_table_manager,
                }
            } else {
                Plug::Bridge {
                    bridge,
                    mac_table_manager,
                }
            })
        }
        "direct" => {
            el.allow_attrs(&["type", "dev", "mode"])?;
            no_children(el)?;
            let dev = el.required("dev")?;
            check_ifname(&el.field("dev"), dev)?;
            let mode = match el.attr("mode") {
                None => DirectPlugMode::Vepa,
                Some(m) => DirectPlugMode::parse(m).ok_or_else(|| {
                    ModelError::bad_value(
                        el.field("mode"),
                        m,
                        "Invalid mode setting in network port: expected bridge, passthrough, \
                         private or vepa",
                    )
                })?,
            };
            Ok(Plug::Direct {
                dev: dev.to_string(),
                mode,
            })
        }
        "hostdev-pci" => read_hostdev_plug(el),
        other => Err(ModelError::bad_value(
            el.field("type"),
            other,
            "expected network, bridge, direct or hostdev-pci",
        )),
    }
}

fn read_hostdev_plug(el: &El) -> Result<Plug> {
    el.allow_attrs(&["type", "managed"])?;
    let managed = el.yes_no("managed")?;
    let mut driver = None;
    let mut address = None;
    for c in el.children(&["driver", "address"], &[])? {
        if c.name() == "driver" {
            c.allow_attrs(&["name"])?;
            no_children(&c)?;
            let name = c.required("name")?;
            if !matches!(name, "kvm" | "vfio") {
                return Err(ModelError::bad_value(
                    c.field("name"),
                    name,
                    "expected 'kvm' or 'vfio'",
                ));
            }
            driver = Some(name.to_string());
        } else {
            address = Some(read_pci_address(&c)?);
        }
    }
    let address = address
        .ok_or_else(|| ModelError::invalid("plug.address", "Missing network port PCI address"))?;
    Ok(Plug::HostdevPci {
        managed,
        driver,
        address,
    })
}

/// `<address domain bus slot function/>` of a hostdev plug (no `type`: it is always PCI).
fn read_pci_address(el: &El) -> Result<PciAddress> {
    el.allow_attrs(&["domain", "bus", "slot", "function"])?;
    no_children(el)?;
    crate::xml::parse::pci_address_fields(el)
}

fn mac_table_manager(m: Option<MacTableManager>) -> Option<String> {
    m.map(|m| {
        match m {
            MacTableManager::Kernel => "kernel",
            MacTableManager::Libvirt => "libvirt",
        }
        .to_string()
    })
}

fn yes_no(v: Option<bool>) -> Option<String> {
    v.map(|b| if b { "yes" } else { "no" }.to_string())
}

/// `virNetworkPortDefFormat`'s order: uuid, owner, group, mac, virtualport, bandwidth, vlan,
/// port, rxfilters, plug.
fn format_port(p: &NetworkPort) -> String {
    let mut w = Writer::default();
    w.open("networkport", &[]);
    w.text("uuid", &p.uuid.to_string());
    w.open("owner", &[]);
    w.text("name", &p.owner_name);
    w.text("uuid", &p.owner_uuid.to_string());
    w.close("owner");
    if let Some(g) = &p.group {
        w.text("group", g);
    }
    w.empty("mac", &[("address", some(p.mac))]);
    if let Some(vp) = &p.virtualport {
        format_virtualport(&mut w, vp);
    }
    if let Some(b) = &p.bandwidth {
        format_bandwidth_with(&mut w, b, &[("classID", p.class_id.map(|c| c.to_string()))]);
    }
    if let Some(v) = &p.vlan {
        format_vlan(&mut w, v);
    }
    if p.isolated.is_some() {
        w.empty("port", &[("isolated", yes_no(p.isolated))]);
    }
    if p.trust_guest_rx_filters.is_some() {
        w.empty(
            "rxfilters",
            &[("trustGuest", yes_no(p.trust_guest_rx_filters))],
        );
    }
    if let Some(plug) = &p.plug {
        format_plug(&mut w, plug);
    }
    w.close("networkport");
    w.out
}

fn format_plug(w: &mut Writer, plug: &Plug) {
    let kind = ("type", some(plug.kind()));
    match plug {
        Plug::Network {
            bridge,
            mac_table_manager: m,
        }
        | Plug::Bridge {
            bridge,
            mac_table_manager: m,
        } => w.empty(
            "plug",
            &[
                kind,
                ("bridge", some(bridge)),
                ("macTableManager", mac_table_manager(*m)),
            ],
        ),
        Plug::Direct { dev, mode } => w.empty(
            "plug",
            &[kind, ("dev", some(dev)), ("mode", some(mode.as_str()))],
        ),
        Plug::HostdevPci {
            managed,
            driver,
            address: a,
        } => {
            w.open("plug", &[kind, ("managed", yes_no(*managed))]);
            if let Some(d) = driver {
                w.empty("driver", &[("name", some(d))]);
            }
            w.empty(
                "address",
                &[
                    ("domain", some(format!("{:#06x}", a.domain))),
                    ("bus", some(format!("{:#04x}", a.bus))),
                    ("slot", some(format!("{:#04x}", a.slot))),
                    ("function", some(format!("{:#x}", a.function))),
                ],
            );
            w.close("plug");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
        <owner><name>memtest</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>";

    fn err(body: &str) -> ModelError {
        NetworkPort::from_xml(&format!("<networkport>{body}</networkport>"))
            .expect_err("must be refused")
    }

    #[test]
    fn errors_name_the_field() {
        let mac = "<mac address='52:54:00:7b:35:93'/>";
        assert_eq!(err(BASE).field, "mac");
        assert_eq!(
            err(&format!("{BASE}<mac address='01:00:00:00:00:01'/>")).field,
            "mac.address"
        );
        assert_eq!(err(&format!("<uuid>nope</uuid>{mac}")).field, "uuid");
        assert_eq!(
            err(&format!(
                "<uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
                 <owner><name>x</name><uuid>zz</uuid></owner>{mac}"
            ))
            .field,
            "owner.uuid"
        );
        assert_eq!(
            err(&format!(
                "{BASE}{mac}<plug type='direct' dev='eth0' mode='x'/>"
            ))
            .field,
            "plug.mode"
        );
        assert_eq!(
            err(&format!("{BASE}{mac}<plug type='usb'/>")).field,
            "plug.type"
        );
        assert_eq!(
            err(&format!("{BASE}{mac}<plug type='network'/>")).field,
            "plug.bridge"
        );
        assert_eq!(
            err(&format!(
                "{BASE}{mac}<bandwidth><inbound peak='1'/></bandwidth>"
            ))
            .field,
            "bandwidth.inbound"
        );
        assert_eq!(
            err(&format!("{BASE}{mac}<vlan><tag id='5000'/></vlan>")).field,
            "vlan.tag[0].id"
        );
        assert_eq!(err(&format!("{BASE}{mac}<extra/>")).field, "extra");
        let e = NetworkPort::from_xml("<network/>").expect_err("root");
        assert_eq!(e.kind, ErrorKind::Xml);
    }

    #[test]
    fn direct_mode_defaults_to_vepa_like_libvirt() {
        let p = NetworkPort::from_xml(&format!(
            "<networkport>{BASE}<mac address='52:54:00:7b:35:93'/>\
             <plug type='direct' dev='eth0'/></networkport>"
        ))
        .expect("parses");
        assert!(p
            .to_xml()
            .contains("<plug type='direct' dev='eth0' mode='vepa'/>"));
    }
}
