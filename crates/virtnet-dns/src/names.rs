//! Small helpers on DNS names: normalised lookup keys, reverse (`.arpa`) names, hostname labels.

use std::net::IpAddr;

use hickory_proto::rr::Name;

/// Parses a configured name (UTF-8, IDN allowed) into a fully qualified [`Name`].
pub(crate) fn parse_name(s: &str) -> Option<Name> {
    let s = s.trim();
    if s.is_empty() || s == "." {
        return None;
    }
    let mut name = Name::from_utf8(s).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The lookup key of a name: lower-case ASCII (punycode), no trailing dot; the root is `""`.
pub(crate) fn key(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// The key of a configured name, `None` when it is not a valid DNS name.
pub(crate) fn key_of(s: &str) -> Option<String> {
    parse_name(s).map(|n| key(&n))
}

/// `a.b.c.d.in-addr.arpa` / nibble `….ip6.arpa` of an address, as a key.
pub(crate) fn arpa_key(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push(nibble(byte & 0x0f));
                s.push('.');
                s.push(nibble(byte >> 4));
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

fn nibble(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0f), 16).unwrap_or('0')
}

/// The reverse zones (keys) that exactly cover `addr/prefix`.
///
/// Reverse zones are cut on octet (IPv4) or nibble (IPv6) boundaries; a prefix between two
/// boundaries is covered by all the zones of the next longer boundary (a /23 by two /24 zones),
/// at most 128 zones for IPv4 and 8 for IPv6.
pub(crate) fn ptr_zones(addr: &IpAddr, prefix: u8) -> Vec<String> {
    match addr {
        IpAddr::V4(v4) => {
            let prefix = prefix.min(32);
            let bits = u32::from(*v4);
            let boundary = prefix.div_ceil(8) * 8;
            let extra = boundary - prefix;
            let base = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - prefix))
            };
            let octets = usize::from(boundary / 8);
            (0..(1u32 << extra))
                .map(|i| {
                    let net = if boundary == 0 {
                        0
                    } else {
                        base | (i << (32 - boundary))
                    };
                    let o = net.to_be_bytes();
                    let mut labels: Vec<String> =
                        o[..octets].iter().rev().map(|b| b.to_string()).collect();
                    labels.push("in-addr".into());
                    labels.push("arpa".into());
                    labels.join(".")
                })
                .collect()
        }
        IpAddr::V6(v6) => {
            let prefix = prefix.min(128);
            let bits = u128::from(*v6);
            let boundary = prefix.div_ceil(4) * 4;
            let extra = boundary - prefix;
            let base = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - prefix))
            };
            let nibbles = usize::from(boundary / 4);
            (0..(1u128 << extra))
                .map(|i| {
                    let net = if boundary == 0 {
                        0
                    } else {
                        base | (i << (128 - boundary))
                    };
                    let mut labels: Vec<String> = (0..nibbles)
                        .rev()
                        .map(|k| {
                            let shift = 124 - 4 * k;
                            nibble(((net >> shift) & 0xf) as u8).to_string()
                        })
                        .collect();
                    labels.push("ip6".into());
                    labels.push("arpa".into());
                    labels.join(".")
                })
                .collect()
        }
    }
}

/// True when `name` is `domain` or below it (keys, label-wise).
pub(crate) fn in_domain(name: &str, domain: &str) -> bool {
    if domain.is_empty() {
        return true;
    }
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
            && !name[..name.len() - domain.len() - 1].ends_with('\\'))
}

/// The number of labels of a key (`""` has none).
pub(crate) fn label_count(key: &str) -> usize {
    if key.is_empty() {
        0
    } else {
        // Escaped dots (`\.`) inside a label do not separate labels.
        let bytes = key.as_bytes();
        1 + (0..bytes.len())
            .filter(|&i| bytes[i] == b'.' && (i == 0 || bytes[i - 1] != b'\\'))
            .count()
    }
}

/// A host name a DHCP client may register: one label of letters, digits, `-` and `_`, 1–63
/// bytes, not starting or ending with `-`.
pub(crate) fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arpa_keys() {
        assert_eq!(
            arpa_key(&"192.168.122.1".parse().unwrap()),
            "1.122.168.192.in-addr.arpa"
        );
        assert_eq!(
            arpa_key(&"2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn zones() {
        assert_eq!(
            ptr_zones(&"192.168.122.1".parse().unwrap(), 24),
            vec!["122.168.192.in-addr.arpa"]
        );
        assert_eq!(
            ptr_zones(&"192.168.122.1".parse().unwrap(), 23),
            vec!["122.168.192.in-addr.arpa", "123.168.192.in-addr.arpa"]
        );
        assert_eq!(
            ptr_zones(&"10.1.2.3".parse().unwrap(), 8),
            vec!["10.in-addr.arpa"]
        );
        // libvirt's ptr-domains-auto.conf
        assert_eq!(
            ptr_zones(&"2001:db8:ac10:fe01::1".parse().unwrap(), 64),
            vec!["1.0.e.f.0.1.c.a.8.b.d.0.1.0.0.2.ip6.arpa"]
        );
        assert_eq!(ptr_zones(&"2001:db8::".parse().unwrap(), 62).len(), 4);
    }

    #[test]
    fn domains() {
        assert!(in_domain("a.example.com", "example.com"));
        assert!(in_domain("example.com", "example.com"));
        assert!(!in_domain("aexample.com", "example.com"));
        assert!(!in_domain("a\\.example.com", "example.com"));
        assert!(in_domain("anything", ""));
        assert_eq!(label_count(""), 0);
        assert_eq!(label_count("host"), 1);
        assert_eq!(label_count("a\\.b.c"), 2);
    }
}
