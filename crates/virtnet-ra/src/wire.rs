//! The ICMPv6 messages of router discovery (RFC 4861 §4.1, §4.2) with the options virtnet
//! sends: source link-layer address, MTU, prefix information (§4.6), RDNSS and DNSSL
//! (RFC 8106). Pure: bytes in, bytes out. The checksum is left 0: the kernel fills it in on
//! an ICMPv6 raw socket (RFC 3542 §3.1).

use std::net::Ipv6Addr;

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERT: u8 = 134;

const OPT_SOURCE_LL: u8 = 1;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its fixed part.
    #[error("message too short: {0} bytes")]
    TooShort(usize),
    /// Not the expected ICMPv6 type and code.
    #[error("ICMPv6 type {0} code {1} is not the expected message")]
    WrongType(u8, u8),
    /// An option with length 0 or running past the end (RFC 4861 §6.1: discard).
    #[error("option at offset {0} has a bad length")]
    BadOption(usize),
    /// A DNSSL domain that cannot be written as DNS labels.
    #[error("domain '{0}' is not a valid DNS name")]
    BadDomain(String),
}

/// A prefix information option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (host bits zero).
    pub prefix: Ipv6Addr,
    /// Its length.
    pub len: u8,
    /// L flag: the prefix is on-link.
    pub on_link: bool,
    /// A flag: hosts may form addresses in it by SLAAC.
    pub autonomous: bool,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
}

/// A router advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Cur Hop Limit advertised to hosts (0: unspecified).
    pub hop_limit: u8,
    /// M flag: addresses from DHCPv6.
    pub managed: bool,
    /// O flag: other configuration from DHCPv6.
    pub other: bool,
    /// Router lifetime in seconds; 0: not a default router.
    pub router_lifetime: u16,
    /// The sender's link-layer address.
    pub source_mac: Option<[u8; 6]>,
    /// The link MTU.
    pub mtu: Option<u32>,
    /// Prefix information options.
    pub prefixes: Vec<PrefixInfo>,
    /// Recursive DNS servers and their lifetime.
    pub rdnss: Option<(u32, Vec<Ipv6Addr>)>,
    /// DNS search list and its lifetime.
    pub dnssl: Option<(u32, Vec<String>)>,
}

/// A router solicitation, as far as a router needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solicit {
    /// The soliciting host's link-layer address, if it gave one.
    pub source_mac: Option<[u8; 6]>,
}

/// Appends an option: type, length in units of 8 bytes (the body is padded to fit).
fn push_option(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let total = (2 + body.len()).div_ceil(8) * 8;
    out.push(kind);
    // Option bodies here are bounded (a few addresses, names capped by DNS's 255 bytes each),
    // far below the 2,040 bytes a length byte can describe.
    out.push(u8::try_from(total / 8).unwrap_or(u8::MAX));
    out.extend_from_slice(body);
    out.resize(out.len() + total - 2 - body.len(), 0);
}

/// A domain name as DNS labels, ending with the root label.
fn dns_labels(name: &str) -> Result<Vec<u8>, WireError> {
    let bad = || WireError::BadDomain(name.to_string());
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad());
        }
        out.push(u8::try_from(label.len()).map_err(|_| bad())?);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(bad());
    }
    Ok(out)
}

impl Advert {
    /// The message's bytes (ICMPv6 header on, checksum 0).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = vec![ROUTER_ADVERT, 0, 0, 0, self.hop_limit];
        out.push(u8::from(self.managed) << 7 | u8::from(self.other) << 6);
        out.extend_from_slice(&self.router_lifetime.to_be_bytes());
        out.extend_from_slice(&[0; 8]); // reachable time, retrans timer: unspecified
        if let Some(mac) = self.source_mac {
            push_option(&mut out, OPT_SOURCE_LL, &mac);
        }
        if let Some(mtu) = self.mtu {
            let mut body = vec![0, 0];
            body.extend_from_slice(&mtu.to_be_bytes());
            push_option(&mut out, OPT_MTU, &body);
        }
        for p in &self.prefixes {
            let mut body = vec![
                p.len,
                u8::from(p.on_link) << 7 | u8::from(p.autonomous) << 6,
            ];
            body.extend_from_slice(&p.valid.to_be_bytes());
            body.extend_from_slice(&p.preferred.to_be_bytes());
            body.extend_from_slice(&[0; 4]);
            body.extend_from_slice(&p.prefix.octets());
            push_option(&mut out, OPT_PREFIX, &body);
        }
        if let Some((lifetime, servers)) = &self.rdnss {
            if !servers.is_empty() {
                let mut body = vec![0, 0];
                body.extend_from_slice(&lifetime.to_be_bytes());
                for s in servers {
                    body.extend_from_slice(&s.octets());
                }
                push_option(&mut out, OPT_RDNSS, &body);
            }
        }
        if let Some((lifetime, domains)) = &self.dnssl {
            if !domains.is_empty() {
                let mut body = vec![0, 0];
                body.extend_from_slice(&lifetime.to_be_bytes());
                for d in domains {
                    body.extend(dns_labels(d)?);
                }
                push_option(&mut out, OPT_DNSSL, &body);
            }
        }
        Ok(out)
    }

    /// Reads an advertisement (what a host sees: used by the tests and for diagnostics).
    pub fn decode(bytes: &[u8]) -> Result<Advert, WireError> {
        if bytes.len() < 16 {
            return Err(WireError::TooShort(bytes.len()));
        }
        if bytes[0] != ROUTER_ADVERT || bytes[1] != 0 {
            return Err(WireError::WrongType(bytes[0], bytes[1]));
        }
        let mut ad = Advert {
            hop_limit: bytes[4],
            managed: bytes[5] & 0x80 != 0,
            other: bytes[5] & 0x40 != 0,
            router_lifetime: u16::from_be_bytes([bytes[6], bytes[7]]),
            source_mac: None,
            mtu: None,
            prefixes: Vec::new(),
            rdnss: None,
            dnssl: None,
        };
        for (offset, kind, body) in options(bytes, 16)? {
            let be32 = |at: usize| {
                body.get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(WireError::BadOption(offset))
            };
            let addr = |at: usize| {
                body.get(at..at + 16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(Ipv6Addr::from)
                    .ok_or(WireError::BadOption(offset))
            };
            match kind {
                OPT_SOURCE_LL => ad.source_mac = mac_of(body),
                OPT_MTU => ad.mtu = Some(be32(2)?),
                OPT_PREFIX => ad.prefixes.push(PrefixInfo {
                    len: body[0],
                    on_link: body[1] & 0x80 != 0,
                    autonomous: body[1] & 0x40 != 0,
                    valid: be32(2)?,
                    preferred: be32(6)?,
                    prefix: addr(14)?,
                }),
                OPT_RDNSS => {
                    let servers = (6..body.len())
                        .step_by(16)
                        .map(addr)
                        .collect::<Result<_, _>>()?;
                    ad.rdnss = Some((be32(2)?, servers));
                }
                OPT_DNSSL => ad.dnssl = Some((be32(2)?, read_labels(&body[6..]))),
                _ => {}
            }
        }
        Ok(ad)
    }
}

/// The domain names in a DNSSL body (padding zeros end the list).
fn read_labels(mut body: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    while let Some((&len, rest)) = body.split_first() {
        let len = usize::from(len);
        if len == 0 {
            if labels.is_empty() {
                break;
            }
            names.push(labels.join("."));
            labels.clear();
            body = rest;
            continue;
        }
        let Some(label) = rest.get(..len) else { break };
        labels.push(String::from_utf8_lossy(label).into_owned());
        body = &rest[len..];
    }
    names
}

fn mac_of(body: &[u8]) -> Option<[u8; 6]> {
    body.get(..6).and_then(|b| <[u8; 6]>::try_from(b).ok())
}

/// One option of a message: its offset, type and body.
type RawOption<'a> = (usize, u8, &'a [u8]);

/// The options after the fixed part; an option of length 0 or running past the end
/// invalidates the message (RFC 4861 §6.1.1, §6.1.2).
fn options(bytes: &[u8], start: usize) -> Result<Vec<RawOption<'_>>, WireError> {
    let mut out = Vec::new();
    let mut at = start;
    while at < bytes.len() {
        let len = usize::from(*bytes.get(at + 1).ok_or(WireError::BadOption(at))?) * 8;
        if len == 0 || at + len > bytes.len() {
            return Err(WireError::BadOption(at));
        }
        out.push((at, bytes[at], &bytes[at + 2..at + len]));
        at += len;
    }
    Ok(out)
}

impl Solicit {
    /// Reads a router solicitation (RFC 4861 §6.1.1's checks that the payload can make; the
    /// hop limit of 255 is the caller's to check, from the packet's ancillary data).
    pub fn decode(bytes: &[u8]) -> Result<Solicit, WireError> {
        if bytes.len() < 8 {
            return Err(WireError::TooShort(bytes.len()));
        }
        if bytes[0] != ROUTER_SOLICIT || bytes[1] != 0 {
            return Err(WireError::WrongType(bytes[0], bytes[1]));
        }
        let mut source_mac = None;
        for (_, kind, body) in options(bytes, 8)? {
            if kind == OPT_SOURCE_LL {
                source_mac = mac_of(body);
            }
        }
        Ok(Solicit { source_mac })
    }

    /// The message's bytes (for tests that play a host).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        if let Some(mac) = self.source_mac {
            push_option(&mut out, OPT_SOURCE_LL, &mac);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Advert {
        Advert {
            hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 1800,
            source_mac: Some([0x52, 0x54, 0, 1, 2, 3]),
            mtu: Some(9000),
            prefixes: vec![PrefixInfo {
                prefix: "fd00:100::".parse().unwrap(),
                len: 64,
                on_link: true,
                autonomous: false,
                valid: 86400,
                preferred: 14400,
            }],
            rdnss: Some((1800, vec!["fd00:100::1".parse().unwrap()])),
            dnssl: Some((1800, vec!["lab.example".into(), "x".into()])),
        }
    }

    #[test]
    fn an_advert_has_rfc_4861_layout_and_round_trips() {
        let ad = sample();
        let b = ad.encode().unwrap();
        assert_eq!(&b[..8], &[134, 0, 0, 0, 64, 0xc0, 0x07, 0x08]);
        assert_eq!(b.len() % 8, 0);
        // Source link-layer option first: type 1, length 1 (8 bytes).
        assert_eq!(&b[16..24], &[1, 1, 0x52, 0x54, 0, 1, 2, 3]);
        // MTU: type 5, length 1, reserved, 9000.
        assert_eq!(&b[24..32], &[5, 1, 0, 0, 0, 0, 0x23, 0x28]);
        // Prefix: type 3, length 4, /64, L only.
        assert_eq!(&b[32..36], &[3, 4, 64, 0x80]);
        assert_eq!(Advert::decode(&b).unwrap(), ad);
    }

    #[test]
    fn autonomous_flag_and_no_router() {
        let mut ad = sample();
        ad.managed = false;
        ad.other = false;
        ad.router_lifetime = 0;
        ad.prefixes[0].autonomous = true;
        let b = ad.encode().unwrap();
        assert_eq!(&b[4..8], &[64, 0, 0, 0]);
        assert_eq!(b[35], 0xc0);
        assert_eq!(Advert::decode(&b).unwrap(), ad);
    }

    #[test]
    fn dnssl_is_written_as_labels() {
        assert_eq!(dns_labels("a.bc").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(dns_labels("a.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert!(dns_labels("a..b").is_err());
        assert!(dns_labels(&"x".repeat(64)).is_err());
    }

    #[test]
    fn solicitations_are_checked_like_rfc_4861_says() {
        let rs = Solicit {
            source_mac: Some([2, 0, 0, 0, 0, 1]),
        };
        assert_eq!(Solicit::decode(&rs.encode()).unwrap(), rs);
        assert_eq!(
            Solicit::decode(&[133, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Solicit { source_mac: None }
        );
        assert_eq!(
            Solicit::decode(&[133, 1, 0, 0, 0, 0, 0, 0]),
            Err(WireError::WrongType(133, 1))
        );
        assert_eq!(Solicit::decode(&[133, 0, 0]), Err(WireError::TooShort(3)));
        // An option of length 0 invalidates the message.
        let zero = [133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Solicit::decode(&zero), Err(WireError::BadOption(8)));
        // One running past the end, too.
        let long = [133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(Solicit::decode(&long), Err(WireError::BadOption(8)));
        assert!(Advert::decode(&[134, 0, 0]).is_err());
    }
}
