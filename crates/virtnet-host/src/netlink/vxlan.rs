//! VXLAN devices: the data plane of a network stretched across hosts.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVxlan, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::validate_name;
use super::Netlink;
use crate::error::{HostError, Result};

/// A VXLAN device to create, for [`Netlink::create_vxlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Interface name.
    pub name: String,
    /// VXLAN network identifier (`IFLA_VXLAN_ID`), 1 to 16777215.
    pub vni: u32,
    /// The VTEP source address (`IFLA_VXLAN_LOCAL` or `IFLA_VXLAN_LOCAL6`).
    pub local: IpAddr,
    /// The lower link facing the other hosts (`IFLA_VXLAN_LINK`), if known.
    pub underlay: Option<u32>,
    /// UDP destination port (`IFLA_VXLAN_PORT`).
    pub dstport: u16,
    /// MTU; `None` lets the kernel derive it from the lower link.
    pub mtu: Option<u32>,
    /// The bridge the device is enslaved to.
    pub master: u32,
    /// Interface alias (`virtnet:<network>`); empty means none.
    pub alias: String,
    /// Link group set in the creating message (see [`super::BridgeSpec::group`]).
    pub group: u32,
}

impl Netlink {
    /// Creates a VXLAN device, enslaved to `spec.master` and up; returns its index.
    ///
    /// The device does not learn remote VTEPs from the packets it receives (`nolearning`,
    /// `IFLA_VXLAN_LEARNING` 0): with BGP EVPN the control plane installs every remote MAC
    /// and the flood list, and a learnt entry would race them. For the same reason its bridge
    /// port does not learn either (`IFLA_BRPORT_LEARNING` 0, FRR's advice for EVPN): frames
    /// to a MAC the control plane has not announced are flooded to the VTEPs of the flood list.
    ///
    /// One `RTM_NEWLINK` with `NLM_F_CREATE|NLM_F_EXCL` carries name, MTU, group, master,
    /// `IFF_UP` and the VXLAN attributes; the alias and the bridge-port flag need their own
    /// messages (the kernel applies neither at creation); if they fail the device is deleted
    /// again. Fails with `EEXIST` when the name is taken or another device of this namespace
    /// has the VNI on the same port.
    pub fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<u32> {
        const OP: &str = "create vxlan";
        validate_name(OP, &spec.name)?;
        let mut data = vec![InfoVxlan::Id(spec.vni)];
        data.push(match spec.local {
            IpAddr::V4(a) => InfoVxlan::Local(a),
            IpAddr::V6(a) => InfoVxlan::Local6(a),
        });
        if let Some(link) = spec.underlay {
            data.push(InfoVxlan::Link(link));
        }
        data.push(InfoVxlan::Port(spec.dstport));
        data.push(InfoVxlan::Learning(false));
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if spec.group != 0 {
            m.attributes.push(LinkAttribute::Group(spec.group));
        }
        m.attributes.push(LinkAttribute::Controller(spec.master));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.ctx(OP, &spec.name))?;
        let link = self.link(&spec.name)?.ok_or_else(|| {
            HostError::new(
                OP,
                &spec.name,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
            .with_detail(Some("vxlan device vanished right after creation".into()))
        })?;
        if let Err(e) = self.finish_vxlan(link.index, spec) {
            let _ = self.delete_link(link.index);
            return Err(e);
        }
        Ok(link.index)
    }

    /// The alias and the bridge port's `learning off` of a new VXLAN device.
    fn finish_vxlan(&mut self, index: u32, spec: &VxlanSpec) -> Result<()> {
        if !spec.alias.is_empty() {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.attributes
                .push(LinkAttribute::IfAlias(spec.alias.clone()));
            self.request(RouteNetlinkMessage::NewLink(m), 0)
                .map_err(|e| e.ctx("set alias of new vxlan", &spec.name))?;
        }
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Learning(
                false,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), 0)
            .map_err(|e| e.ctx("turn off learning on the vxlan port", &spec.name))
    }
}
