//! The DHCPv6 wire format (RFC 8415 §8, §21), decoded and encoded here rather than with
//! `dhcproto`'s v6 module: the server reads a handful of options, and a decoder of its own
//! checks every length against the datagram, so hostile bytes end in `None`, never in a
//! panic or an unbounded allocation.
//!
//! A message is a type, a 24-bit transaction id and options (`code: u16, len: u16, value`).
//! Only the options the server uses are given types; the rest are skipped.

use std::net::Ipv6Addr;

/// SOLICIT.
pub const SOLICIT: u8 = 1;
/// ADVERTISE.
pub const ADVERTISE: u8 = 2;
/// REQUEST.
pub const REQUEST: u8 = 3;
/// CONFIRM.
pub const CONFIRM: u8 = 4;
/// RENEW.
pub const RENEW: u8 = 5;
/// REBIND.
pub const REBIND: u8 = 6;
/// REPLY.
pub const REPLY: u8 = 7;
/// RELEASE.
pub const RELEASE: u8 = 8;
/// DECLINE.
pub const DECLINE: u8 = 9;
/// INFORMATION-REQUEST.
pub const INFORMATION_REQUEST: u8 = 11;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_PREFERENCE: u16 = 7;
const OPT_STATUS_CODE: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_DNS_SERVERS: u16 = 23;
const OPT_DOMAIN_LIST: u16 = 24;
const OPT_INFORMATION_REFRESH_TIME: u16 = 32;
const OPT_CLIENT_FQDN: u16 = 39;

/// Longest DUID accepted (RFC 8415 §11.1: at most 128 octets).
pub const MAX_DUID: usize = 128;
/// At most this many IA_NAs of one message are served (a client has one per interface).
pub const MAX_IAS: usize = 8;
/// At most this many addresses of one IA_NA are read.
pub const MAX_ADDRS: usize = 8;

/// Status codes (RFC 8415 §21.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Success = 0,
    /// Failure, reason unspecified.
    UnspecFail = 1,
    /// No addresses available to assign to the IA.
    NoAddrsAvail = 2,
    /// The client's binding is unknown.
    NoBinding = 3,
    /// The address is not appropriate for the link.
    NotOnLink = 4,
}

/// An address of an IA_NA (option 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime, seconds (0xffffffff: infinite).
    pub preferred: u32,
    /// Valid lifetime, seconds (0xffffffff: infinite).
    pub valid: u32,
}

/// An identity association for non-temporary addresses (option 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaNa {
    /// The client's id of the association.
    pub iaid: u32,
    /// Renew time, seconds.
    pub t1: u32,
    /// Rebind time, seconds.
    pub t2: u32,
    /// Its addresses.
    pub addrs: Vec<IaAddr>,
    /// A status for the whole IA (replies only).
    pub status: Option<(Status, String)>,
}

/// A decoded client message: what the server reads of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Message type.
    pub kind: u8,
    /// Transaction id (24 bits).
    pub xid: [u8; 3],
    /// Client identifier (its DUID).
    pub client_id: Option<Vec<u8>>,
    /// Server identifier (a DUID).
    pub server_id: Option<Vec<u8>>,
    /// IA_NA options, in order (at most [`MAX_IAS`]).
    pub ias: Vec<IaNa>,
    /// Rapid commit asked for.
    pub rapid_commit: bool,
    /// The first label of the client's FQDN (option 39), printable ASCII only.
    pub hostname: Option<String>,
    /// Option codes the client asked for (ORO).
    pub oro: Vec<u16>,
}

/// A bounds-checked reader.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.bytes.get(..n)?, self.bytes.get(n..)?);
        self.bytes = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }

    /// The next option: `None` at the end, `Some(None)` when it runs past the end.
    fn option(&mut self) -> Option<Option<(u16, &'a [u8])>> {
        if self.bytes.is_empty() {
            return None;
        }
        let code = self.u16();
        let len = self.u16();
        Some(match (code, len) {
            (Some(code), Some(len)) => self.take(usize::from(len)).map(|v| (code, v)),
            _ => None,
        })
    }
}

fn ia_na(value: &[u8]) -> Option<IaNa> {
    let mut r = Reader { bytes: value };
    let (iaid, t1, t2) = (r.u32()?, r.u32()?, r.u32()?);
    let mut addrs = Vec::new();
    while let Some(opt) = r.option() {
        let (code, v) = opt?;
        if code == OPT_IAADDR && addrs.len() < MAX_ADDRS {
            let mut a = Reader { bytes: v };
            let ip = <[u8; 16]>::try_from(a.take(16)?).ok()?;
            let (preferred, valid) = (a.u32()?, a.u32()?);
            addrs.push(IaAddr {
                addr: Ipv6Addr::from(ip),
                preferred,
                valid,
            });
        }
    }
    Some(IaNa {
        iaid,
        t1,
        t2,
        addrs,
        status: None,
    })
}

/// The first label of a Client FQDN option (flags, then a name in DNS wire format; RFC 4704),
/// printable ASCII only.
fn fqdn_label(value: &[u8]) -> Option<String> {
    let len = usize::from(*value.get(1)?);
    let label = value.get(2..2 + len)?;
    let s: String = label
        .iter()
        .copied()
        .filter(|b| (0x21..0x7f).contains(b))
        .map(char::from)
        .collect();
    (!s.is_empty()).then_some(s)
}

/// Decodes a client message; `None` for anything malformed (short, an option running past
/// the end, a DUID longer than [`MAX_DUID`], a repeated client or server id) or sent by a
/// server or relay.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let mut r = Reader { bytes };
    let head = r.take(4)?;
    let kind = *head.first()?;
    if !matches!(
        kind,
        SOLICIT | REQUEST | CONFIRM | RENEW | REBIND | RELEASE | DECLINE | INFORMATION_REQUEST
    ) {
        return None;
    }
    let mut m = Message {
        kind,
        xid: [*head.get(1)?, *head.get(2)?, *head.get(3)?],
        ..Message::default()
    };
    while let Some(opt) = r.option() {
        let (code, v) = opt?;
        match code {
            OPT_CLIENTID | OPT_SERVERID => {
                if v.is_empty() || v.len() > MAX_DUID {
                    return None;
                }
                let slot = if code == OPT_CLIENTID {
                    &mut m.client_id
                } else {
                    &mut m.server_id
                };
                if slot.replace(v.to_vec()).is_some() {
                    return None;
                }
            }
            OPT_IA_NA if m.ias.len() < MAX_IAS => m.ias.push(ia_na(v)?),
            OPT_RAPID_COMMIT => m.rapid_commit = true,
            OPT_CLIENT_FQDN => m.hostname = fqdn_label(v),
            OPT_ORO => {
                m.oro = v
                    .chunks_exact(2)
                    .take(64)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            _ => {}
        }
    }
    Some(m)
}

/// A reply being built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    bytes: Vec<u8>,
}

fn put_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    // Values are built here from bounded parts (DUIDs ≤ 128 octets, ≤ MAX_ADDRS addresses,
    // names ≤ 255 octets), so they always fit a u16 length; a longer one would be cut.
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
}

fn status_value(status: Status, text: &str) -> Vec<u8> {
    let mut v = (status as u16).to_be_bytes().to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

/// A domain name in DNS wire format (RFC 1035 §3.1); labels longer than 63 octets are cut.
fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
    out
}

impl Reply {
    /// A reply of type `kind` to the transaction `xid`.
    pub fn new(kind: u8, xid: [u8; 3]) -> Reply {
        Reply {
            bytes: vec![kind, xid[0], xid[1], xid[2]],
        }
    }

    /// The message type.
    pub fn kind(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// Server and client identifiers.
    pub fn ids(mut self, server: &[u8], client: Option<&[u8]>) -> Reply {
        put_option(&mut self.bytes, OPT_SERVERID, server);
        if let Some(c) = client {
            put_option(&mut self.bytes, OPT_CLIENTID, c);
        }
        self
    }

    /// An IA_NA with its addresses or status.
    pub fn ia(mut self, ia: &IaNa) -> Reply {
        let mut v = Vec::new();
        v.extend_from_slice(&ia.iaid.to_be_bytes());
        v.extend_from_slice(&ia.t1.to_be_bytes());
        v.extend_from_slice(&ia.t2.to_be_bytes());
        for a in ia.addrs.iter().take(MAX_ADDRS) {
            let mut av = a.addr.octets().to_vec();
            av.extend_from_slice(&a.preferred.to_be_bytes());
            av.extend_from_slice(&a.valid.to_be_bytes());
            put_option(&mut v, OPT_IAADDR, &av);
        }
        if let Some((s, text)) = &ia.status {
            put_option(&mut v, OPT_STATUS_CODE, &status_value(*s, text));
        }
        put_option(&mut self.bytes, OPT_IA_NA, &v);
        self
    }

    /// A status code for the whole message.
    pub fn status(mut self, status: Status, text: &str) -> Reply {
        put_option(
            &mut self.bytes,
            OPT_STATUS_CODE,
            &status_value(status, text),
        );
        self
    }

    /// The rapid-commit option.
    pub fn rapid_commit(mut self) -> Reply {
        put_option(&mut self.bytes, OPT_RAPID_COMMIT, &[]);
        self
    }

    /// The server preference (255: choose this server at once).
    pub fn preference(mut self, p: u8) -> Reply {
        put_option(&mut self.bytes, OPT_PREFERENCE, &[p]);
        self
    }

    /// Recursive DNS servers (RFC 3646).
    pub fn dns_servers(mut self, servers: &[Ipv6Addr]) -> Reply {
        if !servers.is_empty() {
            let v: Vec<u8> = servers.iter().flat_map(|s| s.octets()).collect();
            put_option(&mut self.bytes, OPT_DNS_SERVERS, &v);
        }
        self
    }

    /// The domain search list (RFC 3646).
    pub fn domains(mut self, domains: &[String]) -> Reply {
        if !domains.is_empty() {
            let v: Vec<u8> = domains.iter().flat_map(|d| dns_name(d)).collect();
            put_option(&mut self.bytes, OPT_DOMAIN_LIST, &v);
        }
        self
    }

    /// How long stateless configuration stays valid (RFC 8415 §21.23).
    pub fn refresh_time(mut self, secs: u32) -> Reply {
        put_option(
            &mut self.bytes,
            OPT_INFORMATION_REFRESH_TIME,
            &secs.to_be_bytes(),
        );
        self
    }

    /// The datagram.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The datagram, borrowed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A server message as [`decode_reply`] reads it: type, every option, the IA_NAs.
pub type DecodedReply = (u8, Vec<(u16, Vec<u8>)>, Vec<IaNa>);

/// Decodes a server message's options for tests and tools: `(code, value)` pairs, and the
/// IA_NAs among them. `None` when malformed.
pub fn decode_reply(bytes: &[u8]) -> Option<DecodedReply> {
    let mut r = Reader { bytes };
    let kind = *r.take(4)?.first()?;
    let mut opts = Vec::new();
    let mut ias = Vec::new();
    while let Some(opt) = r.option() {
        let (code, v) = opt?;
        if code == OPT_IA_NA {
            let mut ia = ia_na(v)?;
            let mut inner = Reader {
                bytes: v.get(12..)?,
            };
            while let Some(o) = inner.option() {
                let (c, iv) = o?;
                if c == OPT_STATUS_CODE {
                    let s = u16::from_be_bytes([*iv.first()?, *iv.get(1)?]);
                    ia.status = Some((status_of(s), String::from_utf8_lossy(&iv[2..]).into()));
                }
            }
            ias.push(ia);
        }
        opts.push((code, v.to_vec()));
    }
    Some((kind, opts, ias))
}

fn status_of(code: u16) -> Status {
    match code {
        0 => Status::Success,
        2 => Status::NoAddrsAvail,
        3 => Status::NoBinding,
        4 => Status::NotOnLink,
        _ => Status::UnspecFail,
    }
}

/// Option codes, for [`decode_reply`]'s users.
pub mod code {
    /// Server identifier.
    pub const SERVER_ID: u16 = super::OPT_SERVERID;
    /// Status code.
    pub const STATUS_CODE: u16 = super::OPT_STATUS_CODE;
    /// Rapid commit.
    pub const RAPID_COMMIT: u16 = super::OPT_RAPID_COMMIT;
    /// DNS recursive name servers.
    pub const DNS_SERVERS: u16 = super::OPT_DNS_SERVERS;
    /// Domain search list.
    pub const DOMAIN_LIST: u16 = super::OPT_DOMAIN_LIST;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, v: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        put_option(&mut o, code, v);
        o
    }

    #[test]
    fn a_solicit_decodes_and_a_reply_round_trips() {
        let mut ia = Vec::new();
        ia.extend_from_slice(&7u32.to_be_bytes());
        ia.extend_from_slice(&[0; 8]);
        let mut p = vec![SOLICIT, 1, 2, 3];
        p.extend(opt(OPT_CLIENTID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        p.extend(opt(OPT_IA_NA, &ia));
        p.extend(opt(OPT_RAPID_COMMIT, &[]));
        p.extend(opt(
            OPT_CLIENT_FQDN,
            &[0, 5, b'g', b'u', b'e', b's', b't', 0],
        ));
        p.extend(opt(OPT_ORO, &[0, 23, 0, 24]));
        let m = decode(&p).expect("decodes");
        assert_eq!(m.xid, [1, 2, 3]);
        assert_eq!(m.ias.len(), 1);
        assert_eq!(m.ias[0].iaid, 7);
        assert!(m.rapid_commit);
        assert_eq!(m.hostname.as_deref(), Some("guest"));
        assert_eq!(m.oro, [23, 24]);
        let ia = IaNa {
            iaid: 7,
            t1: 10,
            t2: 20,
            addrs: vec![IaAddr {
                addr: "2001:db8::10".parse().expect("addr"),
                preferred: 40,
                valid: 40,
            }],
            status: None,
        };
        let r = Reply::new(REPLY, m.xid)
            .ids(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6], m.client_id.as_deref())
            .ia(&ia)
            .domains(&["example.org".into()]);
        let (kind, opts, ias) = decode_reply(r.bytes()).expect("decodes");
        assert_eq!(kind, REPLY);
        assert_eq!(ias, [ia]);
        let dom = opts
            .iter()
            .find(|(c, _)| *c == OPT_DOMAIN_LIST)
            .expect("domains");
        assert_eq!(dom.1, b"\x07example\x03org\x00");
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[SOLICIT, 0, 0]).is_none());
        // Server messages and relays are not served.
        assert!(decode(&[ADVERTISE, 0, 0, 0]).is_none());
        assert!(decode(&[12, 0, 0, 0]).is_none());
        // An option running past the end.
        assert!(decode(&[SOLICIT, 0, 0, 0, 0, 1, 0, 9, 1]).is_none());
        // A truncated option header.
        assert!(decode(&[SOLICIT, 0, 0, 0, 0]).is_none());
        // An IA_NA too short for its fixed part.
        let mut p = vec![SOLICIT, 0, 0, 0];
        p.extend(opt(OPT_IA_NA, &[0; 11]));
        assert!(decode(&p).is_none());
        // Two client ids, an empty one, an overlong one.
        let mut p = vec![REQUEST, 0, 0, 0];
        p.extend(opt(OPT_CLIENTID, &[1]));
        p.extend(opt(OPT_CLIENTID, &[2]));
        assert!(decode(&p).is_none());
        let mut p = vec![REQUEST, 0, 0, 0];
        p.extend(opt(OPT_CLIENTID, &[]));
        assert!(decode(&p).is_none());
        let mut p = vec![REQUEST, 0, 0, 0];
        p.extend(opt(OPT_CLIENTID, &[1; MAX_DUID + 1]));
        assert!(decode(&p).is_none());
    }
}
