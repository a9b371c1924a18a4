//! The TFTP wire format (RFC 1350, RFC 2347 OACK): decoding never panics and never trusts a
//! length; encoding builds whole datagrams.

/// Read request.
pub(crate) const OP_RRQ: u16 = 1;
/// Write request.
pub(crate) const OP_WRQ: u16 = 2;
/// Data block.
pub(crate) const OP_DATA: u16 = 3;
/// Acknowledgement.
pub(crate) const OP_ACK: u16 = 4;
/// Error.
pub(crate) const OP_ERROR: u16 = 5;
/// Option acknowledgement (RFC 2347).
pub(crate) const OP_OACK: u16 = 6;

/// One RFC 2347 option as sent: (name, value), without their NULs.
pub(crate) type RawOption<'a> = (&'a [u8], &'a [u8]);

/// Options kept from one request; more are ignored (a request is one datagram anyway).
pub(crate) const MAX_OPTIONS: usize = 16;

/// RFC 1350 error codes used by the server.
pub(crate) mod code {
    /// Not defined, see error message.
    pub(crate) const UNDEFINED: u16 = 0;
    /// File not found.
    pub(crate) const NOT_FOUND: u16 = 1;
    /// Access violation.
    pub(crate) const ACCESS: u16 = 2;
    /// Illegal TFTP operation.
    pub(crate) const ILLEGAL: u16 = 4;
}

/// Transfer mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text: the server sends LF as CR LF and CR as CR NUL.
    Netascii,
}

impl Mode {
    /// `octet` or `netascii`, any case; `mail` and anything else is unsupported.
    pub(crate) fn parse(mode: &[u8]) -> Option<Mode> {
        if mode.eq_ignore_ascii_case(b"octet") {
            Some(Mode::Octet)
        } else if mode.eq_ignore_ascii_case(b"netascii") {
            Some(Mode::Netascii)
        } else {
            None
        }
    }
}

/// A decoded datagram, borrowing from the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// RRQ (`write == false`) or WRQ.
    Request {
        /// WRQ.
        write: bool,
        /// The file name, not empty, without its NUL.
        filename: &'a [u8],
        /// The mode string, as sent.
        mode: &'a [u8],
        /// RFC 2347 options (name, value) in order, at most [`MAX_OPTIONS`].
        options: Vec<RawOption<'a>>,
    },
    /// DATA.
    Data {
        /// Block number.
        block: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// ACK.
    Ack {
        /// Block number.
        block: u16,
    },
    /// ERROR (the message may lack its NUL: some clients omit it).
    Error {
        /// Error code.
        code: u16,
        /// Message, without NUL.
        message: &'a [u8],
    },
    /// OACK.
    Oack {
        /// Options (name, value).
        options: Vec<RawOption<'a>>,
    },
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Shorter than its fixed part.
    Truncated,
    /// Opcode not in 1..=6.
    UnknownOpcode(u16),
    /// A string lacks its terminating NUL.
    Unterminated,
    /// A request with an empty file name.
    EmptyFilename,
    /// An option name without a value.
    DanglingOption,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Splits off one NUL-terminated string.
fn cstr(bytes: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let nul = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::Unterminated)?;
    Ok((&bytes[..nul], &bytes[nul + 1..]))
}

/// Option pairs up to the end of the datagram. Trailing NUL padding (sent by some PXE ROMs) is
/// accepted: an empty option name ends the list.
fn options(mut rest: &[u8]) -> Result<Vec<RawOption<'_>>, ParseError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (name, after) = cstr(rest)?;
        if name.is_empty() {
            break;
        }
        if after.is_empty() {
            return Err(ParseError::DanglingOption);
        }
        let (value, after) = cstr(after)?;
        if out.len() < MAX_OPTIONS {
            out.push((name, value));
        }
        rest = after;
    }
    Ok(out)
}

/// Decodes one datagram.
pub(crate) fn parse(bytes: &[u8]) -> Result<Packet<'_>, ParseError> {
    let op = u16_at(bytes, 0).ok_or(ParseError::Truncated)?;
    let body = bytes.get(2..).unwrap_or_default();
    match op {
        OP_RRQ | OP_WRQ => {
            let (filename, rest) = cstr(body)?;
            if filename.is_empty() {
                return Err(ParseError::EmptyFilename);
            }
            let (mode, rest) = cstr(rest)?;
            Ok(Packet::Request {
                write: op == OP_WRQ,
                filename,
                mode,
                options: options(rest)?,
            })
        }
        OP_DATA => Ok(Packet::Data {
            block: u16_at(bytes, 2).ok_or(ParseError::Truncated)?,
            data: bytes.get(4..).unwrap_or_default(),
        }),
        OP_ACK => Ok(Packet::Ack {
            block: u16_at(bytes, 2).ok_or(ParseError::Truncated)?,
        }),
        OP_ERROR => {
            let code = u16_at(bytes, 2).ok_or(ParseError::Truncated)?;
            let msg = bytes.get(4..).unwrap_or_default();
            let message = match cstr(msg) {
                Ok((m, _)) => m,
                Err(_) => msg,
            };
            Ok(Packet::Error { code, message })
        }
        OP_OACK => Ok(Packet::Oack {
            options: options(body)?,
        }),
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

/// A DATA datagram.
pub(crate) fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&OP_DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An ERROR datagram; NUL bytes in `message` are dropped.
pub(crate) fn error(code: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&OP_ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend(message.bytes().filter(|&b| b != 0));
    out.push(0);
    out
}

/// An OACK datagram.
pub(crate) fn oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut out = OP_OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// An ACK datagram (what clients send; used by tests).
#[cfg(test)]
pub(crate) fn ack(block: u16) -> Vec<u8> {
    let mut out = OP_ACK.to_be_bytes().to_vec();
    out.extend_from_slice(&block.to_be_bytes());
    out
}

/// A request datagram (what clients send; used by tests).
#[cfg(test)]
pub(crate) fn request(
    write: bool,
    filename: &str,
    mode: &str,
    options: &[(&str, &str)],
) -> Vec<u8> {
    let op = if write { OP_WRQ } else { OP_RRQ };
    let mut out = op.to_be_bytes().to_vec();
    for s in [filename, mode]
        .into_iter()
        .chain(options.iter().flat_map(|(n, v)| [*n, *v]))
    {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rrq_with_options_round_trips() {
        let bytes = request(
            false,
            "pxelinux.0",
            "octet",
            &[("blksize", "1400"), ("tsize", "0")],
        );
        assert_eq!(
            parse(&bytes),
            Ok(Packet::Request {
                write: false,
                filename: b"pxelinux.0",
                mode: b"octet",
                options: vec![(&b"blksize"[..], &b"1400"[..]), (b"tsize", b"0")],
            })
        );
    }

    #[test]
    fn wrq_is_recognised() {
        let bytes = request(true, "up", "netascii", &[]);
        assert!(matches!(
            parse(&bytes),
            Ok(Packet::Request { write: true, .. })
        ));
    }

    #[test]
    fn trailing_nul_padding_is_accepted() {
        let mut bytes = request(false, "f", "octet", &[("tsize", "0")]);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        match parse(&bytes) {
            Ok(Packet::Request { options, .. }) => assert_eq!(options.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_requests_are_rejected() {
        assert_eq!(parse(&[]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0, 1]), Err(ParseError::Unterminated));
        assert_eq!(parse(b"\0\x01file"), Err(ParseError::Unterminated));
        assert_eq!(parse(b"\0\x01file\0octet"), Err(ParseError::Unterminated));
        assert_eq!(parse(b"\0\x01\0octet\0"), Err(ParseError::EmptyFilename));
        assert_eq!(
            parse(b"\0\x01f\0octet\0blksize\0"),
            Err(ParseError::DanglingOption)
        );
        assert_eq!(
            parse(b"\0\x01f\0octet\0blksize\x00512"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(parse(b"\0\x07"), Err(ParseError::UnknownOpcode(7)));
        assert_eq!(parse(b"\0\0"), Err(ParseError::UnknownOpcode(0)));
        assert_eq!(parse(b"\0\x04\x01"), Err(ParseError::Truncated));
    }

    #[test]
    fn options_beyond_the_cap_are_dropped() {
        let many: Vec<(String, String)> = (0..40).map(|i| (format!("o{i}"), "1".into())).collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        match parse(&request(false, "f", "octet", &refs)) {
            Ok(Packet::Request { options, .. }) => assert_eq!(options.len(), MAX_OPTIONS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ack_data_error_oack() {
        assert_eq!(parse(&ack(65535)), Ok(Packet::Ack { block: 65535 }));
        assert_eq!(
            parse(&data(7, b"abc")),
            Ok(Packet::Data {
                block: 7,
                data: b"abc"
            })
        );
        assert_eq!(
            parse(&data(1, b"")),
            Ok(Packet::Data {
                block: 1,
                data: b""
            })
        );
        assert_eq!(
            parse(&error(1, "file not found")),
            Ok(Packet::Error {
                code: 1,
                message: b"file not found"
            })
        );
        // No NUL after the message: still an error.
        assert_eq!(
            parse(b"\0\x05\0\x08nope"),
            Ok(Packet::Error {
                code: 8,
                message: b"nope"
            })
        );
        assert_eq!(error(0, "a\0b"), b"\0\x05\0\0ab\0");
        let o = oack(&[("blksize", "1400".into()), ("tsize", "42".into())]);
        assert_eq!(o, b"\0\x06blksize\x001400\0tsize\x0042\0");
        assert_eq!(
            parse(&o),
            Ok(Packet::Oack {
                options: vec![(&b"blksize"[..], &b"1400"[..]), (b"tsize", b"42")]
            })
        );
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(b"OCTET"), Some(Mode::Octet));
        assert_eq!(Mode::parse(b"NetAscii"), Some(Mode::Netascii));
        assert_eq!(Mode::parse(b"mail"), None);
        assert_eq!(Mode::parse(b""), None);
    }

    /// Fixed-seed random datagrams, half of them mutations of a valid request: the parser
    /// never panics, and whatever it accepts is consistent with its input.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = SmallRng::seed_from_u64(0x7f7f_0045);
        let valid = request(
            false,
            "boot/x.efi",
            "octet",
            &[("blksize", "1468"), ("tsize", "0")],
        );
        let (mut ok, mut bad) = (0u32, 0u32);
        for i in 0..5000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let len = rng.gen_range(0..600);
                let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                // Valid opcodes often enough to get past the first check.
                if len >= 2 && rng.gen_bool(0.7) {
                    v[0] = 0;
                    v[1] = rng.gen_range(0..8);
                }
                v
            } else {
                let mut v = valid.clone();
                for _ in 0..rng.gen_range(1..6) {
                    match rng.gen_range(0..3) {
                        0 if !v.is_empty() => {
                            let at = rng.gen_range(0..v.len());
                            v[at] = rng.gen();
                        }
                        1 if !v.is_empty() => {
                            let at = rng.gen_range(0..v.len());
                            v.truncate(at);
                        }
                        _ => v.push(rng.gen()),
                    }
                }
                v
            };
            match parse(&bytes) {
                Ok(Packet::Request {
                    filename,
                    mode,
                    options,
                    ..
                }) => {
                    ok += 1;
                    assert!(!filename.is_empty() && !filename.contains(&0));
                    assert!(!mode.contains(&0));
                    assert!(options.len() <= MAX_OPTIONS);
                    // Whatever parses also resolves (or is refused) without panicking.
                    let _ = crate::path::split(filename);
                    let _ = crate::options::negotiate(&options, 1234, crate::options::MAX_BLKSIZE);
                }
                Ok(_) => ok += 1,
                Err(_) => bad += 1,
            }
        }
        assert!(
            ok > 100 && bad > 100,
            "ok {ok} bad {bad}: the generator is too one-sided"
        );
    }
}
