//! RFC 2347 option negotiation for read requests: `blksize` (RFC 2348), `tsize` and `timeout`
//! (RFC 2349). Unknown or out-of-range options are ignored (left out of the OACK), as the
//! RFCs allow; when nothing is accepted no OACK is sent and the transfer starts with DATA 1.

use std::time::Duration;

/// The largest block size the server agrees to: a 1500-byte Ethernet MTU minus the IPv4 (20),
/// UDP (8) and TFTP (4) headers, so that no block is fragmented. Larger requests are capped to
/// it, as dnsmasq caps them to its MTU.
pub const MAX_BLKSIZE: u16 = 1468;
/// The block size without a `blksize` option.
pub(crate) const DEFAULT_BLKSIZE: usize = 512;

/// What was agreed for one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// Bytes per DATA block.
    pub(crate) blksize: usize,
    /// Retransmission interval asked for by the client.
    pub(crate) timeout: Option<Duration>,
    /// Accepted options, in the client's order, for the OACK (empty: no OACK).
    pub(crate) oack: Vec<(&'static str, String)>,
}

/// A decimal number of at most 10 ASCII digits (no sign, no spaces).
fn number(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Negotiates the options of a read request for a file of `file_size` bytes.
pub(crate) fn negotiate(
    options: &[(&[u8], &[u8])],
    file_size: u64,
    max_blksize: u16,
) -> Negotiated {
    let mut out = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: None,
        oack: Vec::new(),
    };
    let seen =
        |oack: &Vec<(&'static str, String)>, name: &str| oack.iter().any(|(n, _)| *n == name);
    for (name, value) in options {
        let n = number(value);
        if name.eq_ignore_ascii_case(b"blksize") {
            if seen(&out.oack, "blksize") {
                continue;
            }
            if let Some(v) = n.filter(|v| (8..=65464).contains(v)) {
                let v = v.min(u64::from(max_blksize.max(8)));
                out.blksize = v as usize;
                out.oack.push(("blksize", v.to_string()));
            }
        } else if name.eq_ignore_ascii_case(b"tsize") {
            if !seen(&out.oack, "tsize") && n.is_some() {
                out.oack.push(("tsize", file_size.to_string()));
            }
        } else if name.eq_ignore_ascii_case(b"timeout") {
            if seen(&out.oack, "timeout") {
                continue;
            }
            if let Some(v) = n.filter(|v| (1..=255).contains(v)) {
                out.timeout = Some(Duration::from_secs(v));
                out.oack.push(("timeout", v.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(opts: &[(&str, &str)]) -> Negotiated {
        let o: Vec<(&[u8], &[u8])> = opts
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        negotiate(&o, 3_000_000, MAX_BLKSIZE)
    }

    #[test]
    fn no_options_no_oack() {
        let n = neg(&[]);
        assert_eq!(n.blksize, 512);
        assert!(n.oack.is_empty());
        assert_eq!(n.timeout, None);
    }

    #[test]
    fn blksize_accepted_capped_or_ignored() {
        assert_eq!(neg(&[("blksize", "1400")]).blksize, 1400);
        assert_eq!(
            neg(&[("BLKSIZE", "8")]).oack,
            vec![("blksize", "8".to_string())]
        );
        let big = neg(&[("blksize", "65464")]);
        assert_eq!(big.blksize, 1468);
        assert_eq!(big.oack, vec![("blksize", "1468".to_string())]);
        for bad in ["7", "0", "65465", "99999999999", "-1", "12a", "", " 512"] {
            let n = neg(&[("blksize", bad)]);
            assert_eq!(n.blksize, 512, "{bad:?}");
            assert!(n.oack.is_empty(), "{bad:?}");
        }
        // First occurrence wins.
        assert_eq!(
            neg(&[("blksize", "1024"), ("blksize", "600")]).blksize,
            1024
        );
    }

    #[test]
    fn tsize_reports_the_file_size_and_timeout_is_bounded() {
        let n = neg(&[("tsize", "0"), ("timeout", "3"), ("unknown", "1")]);
        assert_eq!(
            n.oack,
            vec![
                ("tsize", "3000000".to_string()),
                ("timeout", "3".to_string())
            ]
        );
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert!(neg(&[("timeout", "0")]).oack.is_empty());
        assert!(neg(&[("timeout", "256")]).oack.is_empty());
        assert!(neg(&[("tsize", "x")]).oack.is_empty());
    }
}
