//! Framing and the message header (`virnetprotocol.x`, `rpc.rst`): every message is a 4-byte
//! big-endian length that counts itself, a 24-byte header, then the body.

use std::io::{Read, Write};

use crate::xdr::{Reader, Writer};
use crate::DecodeError;

/// `VIR_NET_MESSAGE_MAX`: the largest message libvirt sends or accepts, length word excluded.
pub const MESSAGE_MAX: usize = 33_554_432;
/// `VIR_NET_MESSAGE_LEN_MAX`: size of the length word.
pub const LEN_SIZE: usize = 4;
/// `VIR_NET_MESSAGE_HEADER_MAX`: size of the encoded header.
pub const HEADER_SIZE: usize = 24;
/// `VIR_NET_MESSAGE_INITIAL`: what libvirt allocates for a message before it knows its size.
pub const MESSAGE_INITIAL: usize = 65_536;

/// `virNetMessageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MessageType {
    /// `VIR_NET_CALL`: client → server, a procedure's arguments.
    Call = 0,
    /// `VIR_NET_REPLY`: server → client, its result or error.
    Reply = 1,
    /// `VIR_NET_MESSAGE`: either direction, unasked (events, keepalive).
    Message = 2,
    /// `VIR_NET_STREAM`: stream data (not used by networks).
    Stream = 3,
    /// `VIR_NET_CALL_WITH_FDS`.
    CallWithFds = 4,
    /// `VIR_NET_REPLY_WITH_FDS`.
    ReplyWithFds = 5,
    /// `VIR_NET_STREAM_HOLE`.
    StreamHole = 6,
}

impl MessageType {
    fn from_u32(v: u32) -> Result<MessageType, DecodeError> {
        Ok(match v {
            0 => MessageType::Call,
            1 => MessageType::Reply,
            2 => MessageType::Message,
            3 => MessageType::Stream,
            4 => MessageType::CallWithFds,
            5 => MessageType::ReplyWithFds,
            6 => MessageType::StreamHole,
            n => return Err(DecodeError::BadEnum("type", n as i32)),
        })
    }
}

/// `virNetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// `VIR_NET_OK`.
    Ok = 0,
    /// `VIR_NET_ERROR`: the body is a `virNetMessageError`.
    Error = 1,
    /// `VIR_NET_CONTINUE` (streams).
    Continue = 2,
}

impl Status {
    fn from_u32(v: u32) -> Result<Status, DecodeError> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Continue,
            n => return Err(DecodeError::BadEnum("status", n as i32)),
        })
    }
}

/// `virNetMessageHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Program (`REMOTE_PROGRAM`, `KEEPALIVE_PROGRAM`).
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure within the program.
    pub proc_: i32,
    /// Kind of message.
    pub kind: MessageType,
    /// The call's serial, echoed by its reply.
    pub serial: u32,
    /// Ok or error.
    pub status: Status,
}

impl Header {
    /// Decodes the header at the start of a frame's payload.
    pub fn decode(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        Ok(Header {
            prog: r.u32()?,
            vers: r.u32()?,
            proc_: r.i32()?,
            kind: MessageType::from_u32(r.u32()?)?,
            serial: r.u32()?,
            status: Status::from_u32(r.u32()?)?,
        })
    }

    /// Encodes the header.
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.prog);
        w.u32(self.vers);
        w.i32(self.proc_);
        w.u32(self.kind as u32);
        w.u32(self.serial);
        w.u32(self.status as u32);
    }

    /// The header of the reply to this call (same program, procedure and serial).
    pub fn reply(&self, status: Status) -> Header {
        Header {
            kind: MessageType::Reply,
            status,
            ..*self
        }
    }
}

/// Checks a frame's length word: the whole frame's size, length word included, within
/// `LEN_SIZE + HEADER_SIZE ..= LEN_SIZE + MESSAGE_MAX`. Returns the payload's size (what follows
/// the length word), so that a reader can refuse an oversized frame before allocating for it.
pub fn payload_len(prefix: [u8; LEN_SIZE]) -> Result<usize, DecodeError> {
    let total = u32::from_be_bytes(prefix) as usize;
    if total < LEN_SIZE + HEADER_SIZE {
        return Err(DecodeError::FrameTooShort(total));
    }
    if total > LEN_SIZE + MESSAGE_MAX {
        return Err(DecodeError::FrameTooLarge(total));
    }
    Ok(total - LEN_SIZE)
}

/// Splits a frame's payload (after the length word) into its header and body.
pub fn split_payload(payload: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let mut r = Reader::new(payload);
    let header = Header::decode(&mut r)?;
    Ok((header, r.rest()))
}

/// Splits a whole frame (length word included) into its header and body.
pub fn split_frame(frame: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let prefix: [u8; LEN_SIZE] = frame
        .get(..LEN_SIZE)
        .and_then(|p| p.try_into().ok())
        .ok_or(DecodeError::Truncated {
            needed: LEN_SIZE,
            left: frame.len(),
        })?;
    let len = payload_len(prefix)?;
    if frame.len() != LEN_SIZE + len {
        return Err(DecodeError::LengthMismatch {
            said: LEN_SIZE + len,
            got: frame.len(),
        });
    }
    split_payload(&frame[LEN_SIZE..])
}

/// Builds a whole frame from a header and an encoded body.
pub fn build_frame(header: &Header, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(0);
    header.encode(&mut w);
    w.raw(body);
    let mut frame = w.into_bytes();
    let len = (frame.len() as u32).to_be_bytes();
    frame[..LEN_SIZE].copy_from_slice(&len);
    frame
}

/// A failure to read a frame from a stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The length word is out of bounds: the stream cannot be resynchronised.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// Reads one frame's payload (header and body) from a blocking reader; the length is checked
/// before the payload is allocated.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0; LEN_SIZE];
    r.read_exact(&mut prefix)?;
    let len = payload_len(prefix)?;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// Writes a whole frame to a blocking writer.
pub fn write_frame(w: &mut impl Write, header: &Header, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&build_frame(header, body))
}
