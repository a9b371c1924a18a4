//! Links: dump, bridge create/update, batched delete.

use std::collections::HashSet;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    BridgeStpState, InfoBridge, InfoData, InfoKind, InfoMacVtap, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NlError};
use crate::error::{HostError, Result};

/// A network interface as the kernel reports it (`RTM_NEWLINK` of a dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (`ifi_index`).
    pub index: u32,
    /// Interface name (`IFLA_IFNAME`).
    pub name: String,
    /// Link kind (`IFLA_INFO_KIND`): `"bridge"`, `"veth"`, `"tun"`, ...;
    /// `None` for devices without rtnl link ops (e.g. `lo`, most NICs).
    pub kind: Option<String>,
    /// Interface alias (`IFLA_IFALIAS`); `None` when unset or empty.
    pub alias: Option<String>,
    /// Ethernet address (`IFLA_ADDRESS`) when it is 6 bytes long.
    pub mac: Option<[u8; 6]>,
    /// MTU (`IFLA_MTU`).
    pub mtu: u32,
    /// Administratively up (`IFF_UP` in `ifi_flags`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`); a bridge without ports has none.
    pub lower_up: bool,
    /// Index of the master device (`IFLA_MASTER`), e.g. the bridge of a port.
    pub master: Option<u32>,
    /// Link group (`IFLA_GROUP`), 0 = default.
    pub group: u32,
    /// Bridge attributes when `kind` is `"bridge"`.
    pub bridge: Option<BridgeInfo>,
}

/// Bridge attributes (`IFLA_INFO_DATA` of a `bridge` link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    /// Spanning tree enabled (`IFLA_BR_STP_STATE` != 0).
    pub stp: bool,
    /// The spanning tree is run by a user-space daemon (`IFLA_BR_STP_STATE` 2: in the initial
    /// namespace the kernel hands STP to `/sbin/bridge-stp`, mstpd, when that accepts it).
    pub user_stp: bool,
    /// Forward delay in centiseconds (`IFLA_BR_FORWARD_DELAY`, kernel clock_t
    /// with USER_HZ = 100): libvirt's `delay='2'` seconds is 200.
    pub forward_delay_cs: u32,
    /// Bridge id in `brctl show` form: priority as 4 hex digits, a dot, the
    /// MAC as 12 hex digits, e.g. `"8000.525400aabbcc"`.
    pub bridge_id: String,
}

/// The modes of a macvtap device (libvirt's `<forward mode>` for direct connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvtapMode {
    /// Guests on the same NIC talk to each other directly.
    Bridge,
    /// Everything goes out to the adjacent switch (802.1Qbg).
    Vepa,
    /// Guests on the same NIC cannot talk to each other.
    Private,
    /// The NIC is given to one guest.
    Passthrough,
}

/// Changes to a guest port, for [`Netlink::set_port`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSettings {
    /// New MAC address.
    pub mac: Option<[u8; 6]>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// New alias.
    pub alias: Option<String>,
    /// New bridge: `Some(Some(index))` enslaves, `Some(None)` releases.
    pub master: Option<Option<u32>>,
    /// Administrative state.
    pub up: Option<bool>,
    /// The bridge port's `isolated` flag (`IFLA_BRPORT_ISOLATED`): an isolated port reaches
    /// only ports that are not isolated (the bridge itself, an uplink). Applied after the
    /// other settings, since it needs the link to be on a bridge already.
    pub isolated: Option<bool>,
}

/// The desired state of a bridge, for [`Netlink::create_bridge`] and
/// [`Netlink::update_bridge`]. The bridge is always brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Fixed MAC address; `None` lets the kernel pick a random one.
    pub mac: Option<[u8; 6]>,
    /// MTU; `None` keeps the kernel default (1500).
    pub mtu: Option<u32>,
    /// Interface alias, e.g. `"virtnet:default"`; empty means none.
    pub alias: String,
    /// Enable the kernel spanning tree.
    pub stp: bool,
    /// Forward delay in centiseconds (seconds × 100; the kernel's unit for
    /// `IFLA_BR_FORWARD_DELAY`). While STP runs the kernel keeps the delay in
    /// 200..=3000 (2..=30 s) and clamps it when STP starts, so libvirt's
    /// default `stp='on' delay='0'` reads back as 200: see
    /// [`BridgeSpec::effective_forward_delay_cs`].
    pub forward_delay_cs: u32,
    /// Link group set in the creating message (0: the default group). Unlike the alias, the
    /// group is applied atomically with the creation, so a caller can mark its links as its
    /// own even if it crashes before the alias is set.
    pub group: u32,
}

/// Kernel limits of the forward delay while STP runs (`BR_MIN_FORWARD_DELAY`,
/// `BR_MAX_FORWARD_DELAY`), in centiseconds.
const STP_DELAY_RANGE: (u32, u32) = (200, 3000);

impl BridgeSpec {
    /// The forward delay the kernel will actually hold for this spec: with
    /// STP on, `forward_delay_cs` clamped into 200..=3000; else unchanged.
    /// Compare observed [`BridgeInfo::forward_delay_cs`] with this.
    pub fn effective_forward_delay_cs(&self) -> u32 {
        if self.stp {
            self.forward_delay_cs
                .clamp(STP_DELAY_RANGE.0, STP_DELAY_RANGE.1)
        } else {
            self.forward_delay_cs
        }
    }
}

impl Link {
    pub(super) fn from_message(m: LinkMessage) -> Option<Link> {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            kind: None,
            alias: None,
            mac: None,
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            lower_up: m.header.flags.contains(LinkFlags::LowerUp),
            master: None,
            group: 0,
            bridge: None,
        };
        let mut br_data = None;
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::IfAlias(a) if !a.is_empty() => l.alias = Some(a),
                LinkAttribute::Address(a) => l.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(v) => l.mtu = v,
                LinkAttribute::Controller(v) if v != 0 => l.master = Some(v),
                LinkAttribute::Group(g) => l.group = g,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                            LinkInfo::Data(InfoData::Bridge(d)) => br_data = Some(d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(d) = br_data {
            let mut b = BridgeInfo {
                stp: false,
                user_stp: false,
                forward_delay_cs: 0,
                bridge_id: String::new(),
            };
            for a in d {
                match a {
                    InfoBridge::StpState(s) => {
                        b.stp = s != BridgeStpState::Disabled;
                        b.user_stp = s == BridgeStpState::UserStp;
                    }
                    InfoBridge::ForwardDelay(v) => b.forward_delay_cs = v,
                    InfoBridge::BridgeId(id) => {
                        b.bridge_id = format!("{:04x}.{}", id.priority, hex(&id.address))
                    }
                    _ => {}
                }
            }
            l.bridge = Some(b);
        }
        (!l.name.is_empty()).then_some(l)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stp_state(on: bool) -> BridgeStpState {
    if on {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    }
}

fn bridge_info(data: Vec<InfoBridge>) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(data)),
    ])
}

/// virtnet's one interface-name rule ([`virtnet_ifname::check`]), before a name reaches the
/// kernel.
pub(super) fn validate_name(op: &'static str, name: &str) -> Result<()> {
    virtnet_ifname::check(name).map_err(|reason| HostError::invalid(op, name, reason.to_string()))
}

impl Netlink {
    /// Lists every link of the namespace (`RTM_GETLINK` dump).
    pub fn links(&mut self) -> Result<Vec<Link>> {
        self.dump_links(LinkMessage::default())
            .map_err(|e| e.ctx("list links", ""))
    }

    fn dump_links(&mut self, request: LinkMessage) -> Result<Vec<Link>, NlError> {
        self.dump_map(RouteNetlinkMessage::GetLink(request), |m| match m {
            RouteNetlinkMessage::NewLink(l) => Link::from_message(l),
            _ => None,
        })
    }

    /// Looks up one link by name; `Ok(None)` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        validate_name("get link", name)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(m, "get link", name.to_string())
    }

    /// Looks up one link by index; `Ok(None)` when there is none.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.get_link(m, "get link", format!("#{index}"))
    }

    fn get_link(
        &mut self,
        m: LinkMessage,
        op: &'static str,
        target: String,
    ) -> Result<Option<Link>> {
        let seq_msg = RouteNetlinkMessage::GetLink(m);
        // A plain GET answers with the link or an error; read it like a dump
        // reply terminated by the single message.
        match self.get_one(seq_msg) {
            Ok(Some(RouteNetlinkMessage::NewLink(l))) => Ok(Link::from_message(l)),
            Ok(_) => Ok(None),
            Err(e) if matches!(e.errno(), Some(libc::ENODEV)) => Ok(None),
            Err(e) => Err(e.ctx(op, target)),
        }
    }

    pub(super) fn get_one(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>, NlError> {
        use netlink_packet_core::NetlinkPayload;
        let seq = self.send(msg, 0)?;
        let mut out = None;
        let mut err = None;
        self.read_until(|s, hflags, payload| {
            if s != seq {
                return Ok(false);
            }
            match payload {
                NetlinkPayload::InnerMessage(m) => {
                    out = Some(m);
                    Ok(true)
                }
                NetlinkPayload::Error(e) => {
                    if e.code.is_some() {
                        err = Some(NlError {
                            io: e.to_io(),
                            ext: super::ext_ack_message(hflags, &e.header),
                        });
                    }
                    Ok(true)
                }
                _ => Ok(true),
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Creates a bridge and brings it up. Returns the new interface index.
    ///
    /// One `RTM_NEWLINK` with `NLM_F_CREATE|NLM_F_EXCL` carries kind `bridge`,
    /// `IFLA_ADDRESS` (so the kernel never changes the MAC when ports come and
    /// go, and the bridge id uses it), `IFLA_MTU`, `IFLA_BR_FORWARD_DELAY`,
    /// `IFLA_BR_STP_STATE`, and `IFF_UP` in `ifi_flags`/`ifi_change` (the
    /// kernel applies flags right after registering the device, so the bridge
    /// is up when the ACK arrives).
    ///
    /// The alias needs a second `RTM_NEWLINK`: the kernel ignores
    /// `IFLA_IFALIAS` when it creates a link (it is handled only by
    /// `do_setlink`), as the tests show. A crash between the two messages
    /// leaves a bridge without alias; if setting the alias fails, the new
    /// bridge is deleted again.
    ///
    /// The effective forward delay is sent
    /// ([`BridgeSpec::effective_forward_delay_cs`]), as the kernel would
    /// clamp it anyway when STP starts.
    ///
    /// Fails with `EEXIST` when a link of that name exists.
    pub fn create_bridge(&mut self, spec: &BridgeSpec) -> Result<u32> {
        const OP: &str = "create bridge";
        validate_name(OP, &spec.name)?;
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mac) = spec.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if spec.group != 0 {
            m.attributes.push(LinkAttribute::Group(spec.group));
        }
        m.attributes.push(bridge_info(vec![
            InfoBridge::ForwardDelay(spec.effective_forward_delay_cs()),
            InfoBridge::StpState(stp_state(spec.stp)),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.ctx(OP, &spec.name))?;
        let link = self.link(&spec.name)?.ok_or_else(|| {
            HostError::new(
                OP,
                &spec.name,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
            .with_detail(Some("bridge vanished right after creation".into()))
        })?;
        if !spec.alias.is_empty() {
            let mut m = LinkMessage::default();
            m.header.index = link.index;
            m.attributes
                .push(LinkAttribute::IfAlias(spec.alias.clone()));
            if let Err(e) = self.request(RouteNetlinkMessage::NewLink(m), 0) {
                let _ = self.delete_link(link.index);
                return Err(e.ctx("set alias of new bridge", &spec.name));
            }
        }
        Ok(link.index)
    }

    /// Creates a veth pair `name` ⇄ `peer`, both ends up, optionally with
    /// `name` enslaved to bridge `master` (`IFLA_MASTER`). Returns the index
    /// of `name`. Fails with `EEXIST` if either name is taken.
    ///
    /// Mostly for test harnesses (namespaces wired to a bridge) and for
    /// connecting host-side services.
    pub fn create_veth(&mut self, name: &str, peer: &str, master: Option<u32>) -> Result<u32> {
        const OP: &str = "create veth";
        validate_name(OP, name)?;
        validate_name(OP, peer)?;
        // The peer is brought up afterwards: the kernel configures it before
        // the pair is linked, and opening a veth without peer is ENOTCONN.
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(br) = master {
            m.attributes.push(LinkAttribute::Controller(br));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.ctx(OP, name))?;
        let link = self.link(name)?.ok_or_else(|| {
            HostError::new(OP, name, std::io::Error::from_raw_os_error(libc::ENODEV))
        })?;
        let mut up = LinkMessage::default();
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        up.attributes.push(LinkAttribute::IfName(peer.to_string()));
        if let Err(e) = self.request(RouteNetlinkMessage::SetLink(up), 0) {
            let _ = self.delete_link(link.index);
            return Err(e.ctx("set veth peer up", peer));
        }
        Ok(link.index)
    }

    /// Brings an existing bridge to `spec`: MAC, MTU (when given), alias,
    /// STP, forward delay, and up. Only what differs is sent, so a second call
    /// changes nothing; returns whether anything was changed.
    ///
    /// The name is not changed: `ifindex` must name a bridge called
    /// `spec.name` (else `EINVAL`); a missing link is `ENODEV`.
    ///
    /// The forward delay compared and sent is the effective one
    /// ([`BridgeSpec::effective_forward_delay_cs`]), so a spec with STP on and
    /// delay 0 is satisfied by the kernel's 200. Turning STP off is sent
    /// before the rest, because the kernel checks a new forward delay against
    /// 200..=3000 cs (`ERANGE`) while STP is still on.
    pub fn update_bridge(&mut self, ifindex: u32, spec: &BridgeSpec) -> Result<bool> {
        const OP: &str = "update bridge";
        let cur = self.link_by_index(ifindex)?.ok_or_else(|| {
            HostError::new(
                OP,
                &spec.name,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
        let Some(br) = cur.bridge.as_ref() else {
            return Err(HostError::invalid(
                OP,
                &spec.name,
                format!("link #{ifindex} ({}) is not a bridge", cur.name),
            ));
        };
        if cur.name != spec.name {
            return Err(HostError::invalid(
                OP,
                &spec.name,
                format!("link #{ifindex} is named {}", cur.name),
            ));
        }
        let mut changed = false;
        if br.stp && !spec.stp {
            let mut m = LinkMessage::default();
            m.header.index = ifindex;
            m.attributes
                .push(bridge_info(vec![InfoBridge::StpState(stp_state(false))]));
            self.request(RouteNetlinkMessage::NewLink(m), 0)
                .map_err(|e| e.ctx(OP, &spec.name))?;
            changed = true;
        }
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        if !cur.up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        if let Some(mac) = spec.mac {
            if cur.mac != Some(mac) {
                m.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
        }
        if let Some(mtu) = spec.mtu {
            if cur.mtu != mtu {
                m.attributes.push(LinkAttribute::Mtu(mtu));
            }
        }
        if cur.alias.as_deref().unwrap_or("") != spec.alias {
            // An empty IFLA_IFALIAS removes the alias.
            m.attributes
                .push(LinkAttribute::IfAlias(spec.alias.clone()));
        }
        let mut data = Vec::new();
        let delay = spec.effective_forward_delay_cs();
        if br.forward_delay_cs != delay {
            data.push(InfoBridge::ForwardDelay(delay));
        }
        if !br.stp && spec.stp {
            data.push(InfoBridge::StpState(stp_state(true)));
        }
        if !data.is_empty() {
            m.attributes.push(bridge_info(data));
        }
        if cur.up && m.attributes.is_empty() {
            return Ok(changed);
        }
        self.request(RouteNetlinkMessage::NewLink(m), 0)
            .map_err(|e| e.ctx(OP, &spec.name))?;
        Ok(true)
    }

    /// Creates a macvtap device `name` on the host NIC `parent` (libvirt's direct modes:
    /// `bridge`, `vepa`, `private`, `passthrough`) with the guest's MAC, up. QEMU opens it
    /// through `/dev/tap<ifindex>`. Returns its index.
    pub fn create_macvtap(
        &mut self,
        name: &str,
        parent: u32,
        mode: MacvtapMode,
        mac: [u8; 6],
    ) -> Result<u32> {
        const OP: &str = "create macvtap";
        validate_name(OP, name)?;
        let mode = match mode {
            MacvtapMode::Bridge => MacVlanMode::Bridge,
            MacvtapMode::Vepa => MacVlanMode::Vepa,
            MacvtapMode::Private => MacVlanMode::Private,
            MacvtapMode::Passthrough => MacVlanMode::Passthrough,
        };
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Link(parent));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVtap),
            LinkInfo::Data(InfoData::MacVtap(vec![InfoMacVtap::Mode(mode)])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.ctx(OP, name))?;
        let link = self.link(name)?.ok_or_else(|| {
            HostError::new(OP, name, std::io::Error::from_raw_os_error(libc::ENODEV))
        })?;
        Ok(link.index)
    }

    /// Configures a guest port (a tap or any other link) in one `RTM_SETLINK`: its MAC, MTU,
    /// alias, bridge (`IFLA_MASTER`; `Some(None)` takes it off its bridge) and link state.
    /// Fields left `None` are not touched.
    pub fn set_port(&mut self, ifindex: u32, port: &PortSettings) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        if let Some(up) = port.up {
            m.header.flags = if up {
                LinkFlags::Up
            } else {
                LinkFlags::empty()
            };
            m.header.change_mask = LinkFlags::Up;
        }
        if let Some(mac) = port.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = port.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(alias) = &port.alias {
            m.attributes.push(LinkAttribute::IfAlias(alias.clone()));
        }
        if let Some(master) = port.master {
            m.attributes
                .push(LinkAttribute::Controller(master.unwrap_or(0)));
        }
        self.request(RouteNetlinkMessage::SetLink(m), 0)
            .map_err(|e| e.ctx("configure port", format!("#{ifindex}")))?;
        if let Some(isolated) = port.isolated {
            self.set_port_isolated(ifindex, isolated)?;
        }
        Ok(())
    }

    /// Sets the bridge port flag `isolated` of link `ifindex`, which must be on a bridge. The
    /// kernel takes bridge-port settings only from `RTM_NEWLINK` (its slave data), as
    /// `ip link set … type bridge_slave isolated on` sends them.
    pub fn set_port_isolated(&mut self, ifindex: u32, isolated: bool) -> Result<()> {
        use netlink_packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind, LinkInfo};
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(
                isolated,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), 0)
            .map_err(|e| e.ctx("set bridge port isolation", format!("#{ifindex}")))
    }

    /// Indexes of the links enslaved to `master` (`RTM_GETLINK` dump filtered by `IFLA_MASTER`
    /// in the kernel).
    pub fn ports_of(&mut self, master: u32) -> Result<Vec<u32>> {
        Ok(self
            .port_links_of(master)?
            .into_iter()
            .map(|l| l.index)
            .collect())
    }

    /// The links enslaved to `master`, as [`Netlink::ports_of`] finds them.
    fn port_links_of(&mut self, master: u32) -> Result<Vec<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::Controller(master));
        let links = self
            .dump_links(m)
            .map_err(|e| e.ctx("list ports", format!("of #{master}")))?;
        Ok(links
            .into_iter()
            // An old kernel ignores the filter: check the answer.
            .filter(|l| l.master == Some(master))
            .collect())
    }

    /// Takes a link out of service so that deleting it can wait: removes its addresses, sets
    /// it down, takes its ports off it and renames it to `name` with alias `alias`, in one
    /// pipelined batch of requests.
    ///
    /// Why: deleting a bridge blocks the deleting thread for the kernel's RCU barriers (tens of
    /// milliseconds, see [`Netlink::delete_links`]). A parked link no longer holds its name,
    /// addresses, routes, ports or traffic, so a caller can report the link gone and delete it
    /// later on another thread. The addresses are removed explicitly: a link that is down keeps
    /// its IPv4 addresses and their local routes, so the host would go on answering on them
    /// and they would still count as in use.
    ///
    /// The addresses go before the link goes down: removing an address removes its own routes
    /// one by one, while a link that goes down with routes on it makes the kernel walk its
    /// whole routing table to flush them (2 to 5 ms with 4,000 configured bridges on the host,
    /// 0.1 ms the other way round; `bench/scale.sh`'s kernel floor).
    ///
    /// Returns `Ok(false)` when the link no longer exists.
    pub fn park_link(&mut self, ifindex: u32, name: &str, alias: &str) -> Result<bool> {
        const OP: &str = "park link";
        validate_name(OP, name)?;
        let target = || format!("#{ifindex} as {name}");
        let mut batch: Vec<RouteNetlinkMessage> = self
            .addresses_of(ifindex)?
            .iter()
            .map(|a| RouteNetlinkMessage::DelAddress(super::addr::delete_message(a)))
            .collect();
        let down_at = batch.len();
        let mut down = LinkMessage::default();
        down.header.index = ifindex;
        down.header.change_mask = LinkFlags::Up;
        batch.push(RouteNetlinkMessage::SetLink(down));
        for port in self.port_links_of(ifindex)? {
            let mut m = LinkMessage::default();
            m.header.index = port.index;
            m.attributes.push(LinkAttribute::Controller(0));
            // A tap leaves the bridge down: up on no bridge it would be a routed interface
            // of the host for whatever the guest writes (the tun driver refuses writes to a
            // tap that is down). Other ports (an admin's veth) are only taken off.
            if port.kind.as_deref() == Some("tun") {
                m.header.change_mask = LinkFlags::Up;
            }
            batch.push(RouteNetlinkMessage::SetLink(m));
        }
        batch.push(RouteNetlinkMessage::SetLink(rename_message(
            ifindex, name, alias,
        )));
        let results = self
            .request_many(batch, 0)
            .map_err(|e| e.ctx(OP, target()))?;
        let last = results.len() - 1;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(()) => {}
                // The link went away meanwhile: nothing left to park.
                Err(e) if (i == down_at || i == last) && e.errno() == Some(libc::ENODEV) => {
                    return Ok(false)
                }
                // A port or an address that went away meanwhile is fine.
                Err(e)
                    if i != down_at
                        && i != last
                        && matches!(e.errno(), Some(libc::ENODEV | libc::EADDRNOTAVAIL)) => {}
                Err(e) => return Err(e.ctx(OP, target())),
            }
        }
        Ok(true)
    }

    /// Takes a guest's tap out of service: off its bridge and down, then renamed to `name`
    /// with alias `alias` (a link must be down to be renamed), in one pipelined batch of two
    /// requests. [`Netlink::park_link`] without its look-ups: a tap has no ports, and no
    /// addresses (IPv6 is off on it, IPv4 is never given to it), so a `detach-interface`
    /// dumps no link or address table.
    ///
    /// Returns `Ok(false)` when the link no longer exists.
    pub fn park_port(&mut self, ifindex: u32, name: &str, alias: &str) -> Result<bool> {
        const OP: &str = "park port";
        validate_name(OP, name)?;
        let mut off = LinkMessage::default();
        off.header.index = ifindex;
        off.header.change_mask = LinkFlags::Up;
        off.attributes.push(LinkAttribute::Controller(0));
        let rename = rename_message(ifindex, name, alias);
        let results = self
            .request_many(
                vec![
                    RouteNetlinkMessage::SetLink(off),
                    RouteNetlinkMessage::SetLink(rename),
                ],
                0,
            )
            .map_err(|e| e.ctx(OP, format!("#{ifindex} as {name}")))?;
        for r in results {
            match r {
                Ok(()) => {}
                // The link went away meanwhile: nothing left to park.
                Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(false),
                Err(e) => return Err(e.ctx(OP, format!("#{ifindex} as {name}"))),
            }
        }
        Ok(true)
    }

    /// Deletes one link by index (`RTM_DELLINK`). A link that is already gone
    /// (`ENODEV`) counts as deleted.
    pub fn delete_link(&mut self, ifindex: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        match self.request(RouteNetlinkMessage::DelLink(m), 0) {
            Err(e) if e.errno() != Some(libc::ENODEV) => {
                Err(e.ctx("delete link", format!("#{ifindex}")))
            }
            _ => Ok(()),
        }
    }

    /// Deletes several links with ONE wait for the kernel.
    ///
    /// Every deletion of a network device waits for RCU grace periods (tens
    /// of milliseconds), so N single `RTM_DELLINK`s cost N waits. Instead the
    /// links are first moved to a fresh link group (`IFLA_GROUP`, a random
    /// number no link in the namespace uses; these `RTM_SETLINK`s are cheap
    /// and pipelined), then one `RTM_DELLINK` with `ifi_index = 0` and
    /// `IFLA_GROUP` deletes the whole group (`rtnl_group_dellink` →
    /// `unregister_netdevice_many`: one wait).
    ///
    /// Links that vanished meanwhile (`ENODEV`) are skipped: the index is not
    /// reused by the kernel, so nothing else can be hit. One link is deleted
    /// directly. If the group delete fails (e.g. `EOPNOTSUPP` for a device
    /// that cannot be deleted, like `lo`), the links get their old group back
    /// (best effort) and nothing is deleted.
    pub fn delete_links(&mut self, ifindexes: &[u32]) -> Result<()> {
        const OP: &str = "delete links";
        let mut seen = HashSet::new();
        let idx: Vec<u32> = ifindexes
            .iter()
            .copied()
            .filter(|i| seen.insert(*i))
            .collect();
        match idx.as_slice() {
            [] => return Ok(()),
            [one] => return self.delete_link(*one),
            _ => {}
        }
        let target = || {
            idx.iter()
                .map(|i| format!("#{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let links = self.links()?;
        let used: HashSet<u32> = links.iter().map(|l| l.group).collect();
        let group = loop {
            let g = random_u32() | 0x8000_0000;
            if !used.contains(&g) {
                break g;
            }
        };
        let old_group = |i: u32| links.iter().find(|l| l.index == i).map(|l| l.group);
        let set_group = |i: u32, g: u32| {
            let mut m = LinkMessage::default();
            m.header.index = i;
            m.attributes.push(LinkAttribute::Group(g));
            RouteNetlinkMessage::SetLink(m)
        };
        let results = self
            .request_many(idx.iter().map(|&i| set_group(i, group)).collect(), 0)
            .map_err(|e| e.ctx(OP, target()))?;
        let mut moved = Vec::new();
        let mut first_err = None;
        for (&i, r) in idx.iter().zip(results) {
            match r {
                Ok(()) => moved.push(i),
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                Err(e) => {
                    first_err.get_or_insert(e.ctx("delete link", format!("#{i} (set group)")));
                }
            }
        }
        let outcome = match first_err {
            Some(e) => Err(e),
            None if moved.is_empty() => return Ok(()),
            None => {
                let mut m = LinkMessage::default();
                m.attributes.push(LinkAttribute::Group(group));
                match self.request(RouteNetlinkMessage::DelLink(m), 0) {
                    Ok(()) => return Ok(()),
                    // Everything in the group vanished meanwhile.
                    Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(()),
                    Err(e) => Err(e.ctx(OP, target())),
                }
            }
        };
        // Failure: put the links back where they were.
        let restore = moved
            .iter()
            .map(|&i| set_group(i, old_group(i).unwrap_or(0)))
            .collect();
        let _ = self.request_many(restore, 0);
        outcome
    }
}

/// A random number from the kernel (`getrandom`), or a time-based fallback.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: writes at most 4 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 4 {
        return u32::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(0x5eed);
    t ^ std::process::id().rotate_left(16)
}

/// The request that renames link `ifindex` to `name` with alias `alias` (the link must be down).
fn rename_message(ifindex: u32, name: &str, alias: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_formatting() {
        assert_eq!(hex(&[0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]), "525400aabbcc");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("x", "virbr0").is_ok());
        assert!(validate_name("x", "").is_err());
        assert!(validate_name("x", "a/b").is_err());
        assert!(validate_name("x", "0123456789abcdef").is_err());
        // Issue 12: the shared rule, which this copy lacked (it took `*`, `"` and `:`).
        for bad in ["br*", "br\"0", "br:0", "br\\0"] {
            assert!(validate_name("x", bad).is_err(), "{bad:?}");
        }
    }
}
