//! Decoding requests defensively.
//!
//! dhcproto's option decoder trusts lengths in places (`debug_assert!`s, `len - 1`, an
//! `unwrap()` on classless routes), so hostile bytes never reach it: the options area is walked
//! here first, every length checked against the datagram, and only the options the server
//! reads are passed on, each with a valid length. Everything else is dropped before decoding.

use dhcproto::v4::Message;
use dhcproto::{Decodable, Decoder};

/// Size of the fixed BOOTP header.
const HEADER: usize = 236;
/// The DHCP magic cookie.
const MAGIC: [u8; 4] = [99, 130, 83, 99];

/// The options the server reads, and which lengths are valid for each.
fn wanted(code: u8, len: usize) -> bool {
    match code {
        // Message type.
        53 => len == 1,
        // Requested address, server identifier.
        50 | 54 => len == 4,
        // Host name, client identifier, parameter request list.
        12 | 61 | 55 => len >= 1,
        // Rapid commit.
        80 => len == 0,
        _ => false,
    }
}

/// Decodes a datagram; `None` when it is not a well-formed DHCP message (short header, wrong
/// cookie, an option running past the end, a missing end).
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let header = bytes.get(..HEADER + 4)?;
    if header.get(HEADER..) != Some(&MAGIC[..]) {
        return None;
    }
    let mut clean = header.to_vec();
    let mut seen = [false; 256];
    let mut i = HEADER + 4;
    // A missing end option is tolerated at the end of the datagram (some clients pad
    // exactly to the end).
    while let Some(&code) = bytes.get(i) {
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*bytes.get(i + 1)?);
        let value = bytes.get(i + 2..i + 2 + len)?;
        i += 2 + len;
        let first = !std::mem::replace(&mut seen[usize::from(code)], true);
        if !first || !wanted(code, len) {
            continue;
        }
        let value: Vec<u8> = if code == 12 {
            // Host names are text; keep printable ASCII so decoding cannot fail on UTF-8.
            value
                .iter()
                .copied()
                .filter(|b| (0x20..0x7f).contains(b))
                .collect()
        } else {
            value.to_vec()
        };
        if value.is_empty() && code != 80 {
            continue;
        }
        clean.push(code);
        clean.push(u8::try_from(value.len()).ok()?);
        clean.extend_from_slice(&value);
    }
    clean.push(255);
    Message::decode(&mut Decoder::new(&clean)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(options: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(options);
        b
    }

    #[test]
    fn hostile_options_are_filtered_not_fatal() {
        // Classless static route with prefix 33 (dhcproto would unwrap a failing Ipv4Net),
        // a 0-length bulk-leasequery status (dhcproto computes len - 1), an FQDN of length 0.
        let p = packet(&[
            53, 1, 1, 121, 2, 33, 1, 151, 0, 81, 0, 12, 3, 0xff, b'a', 0x80, 255,
        ]);
        let m = decode(&p).expect("decodes");
        assert_eq!(m.opts().len(), 2);
        // Truncated option.
        assert!(decode(&packet(&[53, 1, 1, 61, 9, 1])).is_none());
        // Wrong length for a fixed-size option: dropped.
        let m = decode(&packet(&[53, 2, 1, 1, 255])).expect("decodes");
        assert!(m.opts().msg_type().is_none());
        // Short, wrong cookie.
        assert!(decode(&packet(&[])[..200]).is_none());
        let mut p = packet(&[53, 1, 1, 255]);
        p[HEADER] = 0;
        assert!(decode(&p).is_none());
    }
}
