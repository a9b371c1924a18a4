//! `virNetMessageError`, the error codes and domains of `virterror.h` the network daemon
//! answers with, and the codec's own decode errors.

use crate::remote::{NonnullDomain, NonnullNetwork};
use crate::xdr_struct;

/// Why a frame or a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the type needs.
    #[error("message truncated: {needed} more bytes needed, {left} left")]
    Truncated {
        /// Bytes the next value needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// A string, opaque or list longer than the `.x` file allows.
    #[error("length {len} exceeds the protocol's limit of {max}")]
    TooLong {
        /// Length announced.
        len: u32,
        /// Limit.
        max: u32,
    },
    /// Bytes left after the body's last field.
    #[error("{0} unexpected bytes after the message body")]
    TrailingBytes(usize),
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    NotUtf8,
    /// An optional-data or union discriminant out of range.
    #[error("invalid discriminant {0}")]
    BadDiscriminant(i32),
    /// A header enum out of range.
    #[error("invalid message {0} {1}")]
    BadEnum(&'static str, i32),
    /// A frame's length word below the header's size.
    #[error("frame length {0} is shorter than a message header")]
    FrameTooShort(usize),
    /// A frame's length word beyond `VIR_NET_MESSAGE_MAX`.
    #[error("frame length {0} exceeds the maximum message size")]
    FrameTooLarge(usize),
    /// A frame whose length word disagrees with its size.
    #[error("frame length word says {said} bytes, frame has {got}")]
    LengthMismatch {
        /// Length word.
        said: usize,
        /// Actual size.
        got: usize,
    },
    /// A procedure this crate has no types for.
    #[error("unknown procedure: {0}")]
    UnknownProcedure(i32),
    /// A program this crate does not speak.
    #[error("unknown program {0:#x}")]
    UnknownProgram(u32),
}

/// `virErrorLevel`: `VIR_ERR_ERROR`.
pub const LEVEL_ERROR: i32 = 2;
/// `virErrorLevel`: `VIR_ERR_WARNING`.
pub const LEVEL_WARNING: i32 = 1;

/// Error domains (`virErrorDomain`).
pub mod domain {
    /// `VIR_FROM_NONE`.
    pub const NONE: i32 = 0;
    /// `VIR_FROM_XML`.
    pub const XML: i32 = 5;
    /// `VIR_FROM_RPC`.
    pub const RPC: i32 = 7;
    /// `VIR_FROM_REMOTE`.
    pub const REMOTE: i32 = 13;
    /// `VIR_FROM_NETWORK`.
    pub const NETWORK: i32 = 19;
    /// `VIR_FROM_ACCESS`.
    pub const ACCESS: i32 = 55;
}

/// Error codes (`virErrorNumber`).
pub mod code {
    /// `VIR_ERR_INTERNAL_ERROR`.
    pub const INTERNAL_ERROR: i32 = 1;
    /// `VIR_ERR_NO_SUPPORT`.
    pub const NO_SUPPORT: i32 = 3;
    /// `VIR_ERR_NO_CONNECT`.
    pub const NO_CONNECT: i32 = 5;
    /// `VIR_ERR_INVALID_ARG`.
    pub const INVALID_ARG: i32 = 8;
    /// `VIR_ERR_OPERATION_FAILED`.
    pub const OPERATION_FAILED: i32 = 9;
    /// `VIR_ERR_NO_NAME`.
    pub const NO_NAME: i32 = 21;
    /// `VIR_ERR_XML_ERROR`.
    pub const XML_ERROR: i32 = 27;
    /// `VIR_ERR_OPERATION_DENIED`.
    pub const OPERATION_DENIED: i32 = 29;
    /// `VIR_ERR_SYSTEM_ERROR`.
    pub const SYSTEM_ERROR: i32 = 38;
    /// `VIR_ERR_RPC`.
    pub const RPC: i32 = 39;
    /// `VIR_ERR_NO_DOMAIN`.
    pub const NO_DOMAIN: i32 = 42;
    /// `VIR_ERR_NO_NETWORK`.
    pub const NO_NETWORK: i32 = 43;
    /// `VIR_ERR_AUTH_FAILED`.
    pub const AUTH_FAILED: i32 = 45;
    /// `VIR_ERR_OPERATION_INVALID`.
    pub const OPERATION_INVALID: i32 = 55;
    /// `VIR_ERR_CONFIG_UNSUPPORTED`.
    pub const CONFIG_UNSUPPORTED: i32 = 67;
    /// `VIR_ERR_ARGUMENT_UNSUPPORTED`.
    pub const ARGUMENT_UNSUPPORTED: i32 = 74;
    /// `VIR_ERR_OPERATION_UNSUPPORTED`.
    pub const OPERATION_UNSUPPORTED: i32 = 84;
    /// `VIR_ERR_NETWORK_PORT_EXIST`.
    pub const NETWORK_PORT_EXIST: i32 = 106;
    /// `VIR_ERR_NO_NETWORK_PORT`.
    pub const NO_NETWORK_PORT: i32 = 107;
}

/// The format libvirt's `virErrorMsg` gives each code: the client shows `format % detail`.
pub fn code_format(code: i32) -> &'static str {
    match code {
        code::INTERNAL_ERROR => "internal error: %s",
        code::NO_SUPPORT => "this function is not supported by the connection driver: %s",
        code::NO_CONNECT => "no connection driver available for %s",
        code::INVALID_ARG => "invalid argument: %s",
        code::OPERATION_FAILED => "operation failed: %s",
        code::XML_ERROR => "XML error: %s",
        code::OPERATION_DENIED => "operation forbidden: %s",
        code::RPC => "RPC error: %s",
        code::NO_DOMAIN => "Domain not found: %s",
        code::NO_NETWORK => "Network not found: %s",
        code::AUTH_FAILED => "authentication failed: %s",
        code::OPERATION_INVALID => "Requested operation is not valid: %s",
        code::CONFIG_UNSUPPORTED => "unsupported configuration: %s",
        code::ARGUMENT_UNSUPPORTED => "argument unsupported: %s",
        code::OPERATION_UNSUPPORTED => "Operation not supported: %s",
        code::NETWORK_PORT_EXIST => "network port already exists: %s",
        code::NO_NETWORK_PORT => "network port not found: %s",
        _ => "%s",
    }
}

xdr_struct! {
    /// `virNetMessageError` (see `virterror.h` for the fields).
    pub struct RpcError {
        /// `virErrorNumber`.
        pub code: i32,
        /// `virErrorDomain`.
        pub domain: i32,
        /// The whole message, as the client prints it.
        pub message: Option<String>,
        /// `virErrorLevel`.
        pub level: i32,
        /// Unused.
        pub dom: Option<NonnullDomain>,
        /// The code's format (libvirt fills it so).
        pub str1: Option<String>,
        /// The detail.
        pub str2: Option<String>,
        /// Extra.
        pub str3: Option<String>,
        /// Extra.
        pub int1: i32,
        /// Extra.
        pub int2: i32,
        /// Unused.
        pub net: Option<NonnullNetwork>,
    }
}

impl RpcError {
    /// An error as libvirt reports one: `message` is the code's format around `detail`
    /// (`Network not found: no network with matching name 'x'`), `str1` the format, `str2`
    /// the detail. A detail that already starts with the format's prefix is not prefixed again.
    pub fn new(code: i32, domain: i32, detail: impl Into<String>) -> RpcError {
        let detail = detail.into();
        let format = code_format(code);
        let prefix = format.trim_end_matches("%s");
        let detail = match detail.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() => rest.to_string(),
            _ => detail,
        };
        RpcError {
            code,
            domain,
            message: Some(format.replacen("%s", &detail, 1)),
            level: LEVEL_ERROR,
            dom: None,
            str1: Some(format.to_string()),
            str2: Some(detail),
            str3: None,
            int1: -1,
            int2: -1,
            net: None,
        }
    }

    /// The message as the client prints it.
    pub fn text(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }
}
