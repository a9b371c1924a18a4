//! Ethernet MAC addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet MAC address, printed lower-case as libvirt does (`52:54:00:e6:a2:c9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected six hexadecimal octets separated by ':' (e.g. 52:54:00:12:34:56)")]
pub struct MacParseError;

impl MacAddr {
    /// The OUI libvirt (and QEMU) use for guest and bridge MACs.
    pub const QEMU_OUI: [u8; 3] = [0x52, 0x54, 0x00];

    /// True for group (multicast/broadcast) addresses: the low bit of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 == 0x01
    }

    /// True for the all-zero address.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A random `52:54:00:xx:xx:xx` address, as libvirt generates for bridges and guests.
    pub fn random_qemu() -> MacAddr {
        let tail: [u8; 3] = rand::random();
        MacAddr([
            Self::QEMU_OUI[0],
            Self::QEMU_OUI[1],
            Self::QEMU_OUI[2],
            tail[0],
            tail[1],
            tail[2],
        ])
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `:` or `-` separated octets of one or two hex digits (libvirt accepts both).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in out.iter_mut() {
            let part = parts.next().ok_or(MacParseError)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacParseError);
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

impl MacAddr {
    /// The address as `52:54:00:aa:bb:cc`, in a fixed buffer. Listings and every metrics
    /// scrape print a MAC or two per port: through `write!` and six `{:02x}` that was most of
    /// the time a port's view took (issue 16: the scrape's cost).
    pub fn text(&self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b':'; 17];
        for (i, b) in self.0.iter().enumerate() {
            out[3 * i] = HEX[usize::from(b >> 4)];
            out[3 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        out
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        // Only ASCII hex digits and colons were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lower_case() {
        let m: MacAddr = "52:54:00:E6:A2:C9".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:e6:a2:c9");
        assert!(!m.is_multicast());
        // Every nibble value, both halves of a byte.
        let all = MacAddr([0x00, 0x0f, 0xf0, 0xff, 0x9a, 0xa9]);
        assert_eq!(all.to_string(), "00:0f:f0:ff:9a:a9");
        assert_eq!(
            format!("{all}"),
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                0, 15, 240, 255, 154, 169
            )
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "52:54:00:e6:a2",
            "52:54:00:e6:a2:c9:00",
            "zz:54:00:e6:a2:c9",
            "525:4:00:e6:a2:c9",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn multicast_bit() {
        let m: MacAddr = "01:00:5e:00:00:01".parse().unwrap();
        assert!(m.is_multicast());
        assert!(MacAddr::random_qemu().0.starts_with(&MacAddr::QEMU_OUI));
    }
}
