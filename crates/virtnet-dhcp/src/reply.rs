//! Building reply messages: header fields and the options of OFFER, ACK and NAK.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};

use crate::config::DhcpConfig;

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 on the bridge (clients without an address yet, NAKs).
    Broadcast,
    /// `ciaddr`:68 (renewing clients, INFORM).
    Unicast(Ipv4Addr),
}

/// A message to send, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The reply (a BOOTREPLY).
    pub msg: Message,
    /// Its destination.
    pub dest: Destination,
}

impl Reply {
    /// The DHCP message type of the reply.
    pub fn message_type(&self) -> Option<MessageType> {
        self.msg.opts().msg_type()
    }

    /// The wire form.
    pub fn encode(&self) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
        let mut buf = Vec::with_capacity(576);
        self.msg.encode(&mut Encoder::new(&mut buf))?;
        Ok(buf)
    }
}

/// What the address part of a reply carries.
pub(crate) struct Grant<'a> {
    pub(crate) yiaddr: Ipv4Addr,
    /// Lease seconds; `None` infinite.
    pub(crate) lease_secs: Option<u32>,
    pub(crate) hostname: Option<&'a str>,
}

/// The reply skeleton: BOOTREPLY echoing xid, flags, giaddr and chaddr.
pub(crate) fn skeleton(
    req: &Message,
    mac: &[u8; 6],
    kind: MessageType,
    cfg: &DhcpConfig,
) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(mac);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(cfg.server));
    m
}

/// A NAK for `req`.
pub(crate) fn nak(req: &Message, mac: &[u8; 6], cfg: &DhcpConfig, why: &str) -> Reply {
    let mut m = skeleton(req, mac, MessageType::Nak, cfg);
    m.opts_mut().insert(DhcpOption::Message(why.to_string()));
    Reply {
        msg: m,
        dest: Destination::Broadcast,
    }
}

/// The first label of a host name: what goes into option 12 (the domain goes in option 15).
fn short_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The network options every OFFER/ACK (and INFORM's ACK) carries, plus the lease part when
/// `grant` is given.
pub(crate) fn fill(m: &mut Message, cfg: &DhcpConfig, grant: Option<&Grant<'_>>) {
    let o = m.opts_mut();
    o.insert(DhcpOption::SubnetMask(cfg.netmask()));
    if cfg.prefix < 31 {
        o.insert(DhcpOption::BroadcastAddr(cfg.broadcast()));
    }
    if let Some(r) = cfg.router {
        o.insert(DhcpOption::Router(vec![r]));
    }
    if let Some(d) = cfg.dns {
        o.insert(DhcpOption::DomainNameServer(vec![d]));
    }
    if let Some(d) = cfg
        .domain
        .as_deref()
        .filter(|d| !d.is_empty() && d.len() <= 255)
    {
        o.insert(DhcpOption::DomainName(d.to_string()));
    }
    if let Some(mtu) = cfg.mtu.filter(|&m| m >= 68) {
        o.insert(DhcpOption::InterfaceMtu(mtu));
    }
    if let Some(b) = &cfg.boot {
        if let Some(name) = &b.server_name {
            o.insert(DhcpOption::TFTPServerName(name.as_bytes().to_vec()));
        } else if let Some(s) = b.server {
            o.insert(DhcpOption::TFTPServerName(s.to_string().into_bytes()));
        }
        o.insert(DhcpOption::BootfileName(b.file.as_bytes().to_vec()));
    }
    if let Some(g) = grant {
        match g.lease_secs {
            Some(secs) => {
                o.insert(DhcpOption::AddressLeaseTime(secs));
                o.insert(DhcpOption::Renewal(secs / 2));
                o.insert(DhcpOption::Rebinding(
                    u32::try_from(u64::from(secs) * 7 / 8).unwrap_or(u32::MAX),
                ));
            }
            None => {
                o.insert(DhcpOption::AddressLeaseTime(u32::MAX));
            }
        }
        if let Some(h) = g.hostname.map(short_name).filter(|h| !h.is_empty()) {
            o.insert(DhcpOption::Hostname(h.to_string()));
        }
    }
    if let Some(b) = &cfg.boot {
        if let Some(s) = b.server {
            m.set_siaddr(s);
        }
        if b.file.len() < 128 {
            m.set_fname_str(&b.file);
        }
        if let Some(name) = b.server_name.as_deref().filter(|n| n.len() < 64) {
            m.set_sname_str(name);
        }
    }
    if let Some(g) = grant {
        m.set_yiaddr(g.yiaddr);
    }
}
