//! virtnetd's typed errors as libvirt's: code, domain and message, so that `virsh` prints
//! what it prints against libvirt's own network driver.
//!
//! | virtnetd | libvirt code | domain |
//! |---|---|---|
//! | `NotFound` network | `VIR_ERR_NO_NETWORK` | `VIR_FROM_NETWORK` |
//! | `NotFound` network port | `VIR_ERR_NO_NETWORK_PORT` | `VIR_FROM_NETWORK` |
//! | `Conflict`, `Rejected`, `Stale`, `PreconditionRequired` | `VIR_ERR_OPERATION_INVALID` | `VIR_FROM_NETWORK` |
//! | `Model`: XML, fields / missing name / unsupported / clash | `VIR_ERR_XML_ERROR` / `VIR_ERR_NO_NAME` / `VIR_ERR_OPERATION_UNSUPPORTED` / `VIR_ERR_OPERATION_FAILED` | `VIR_FROM_NETWORK` |
//! | `Invalid`, `BadArgument` | `VIR_ERR_INVALID_ARG` | `VIR_FROM_NETWORK` |
//! | `Unsupported` | `VIR_ERR_OPERATION_UNSUPPORTED` | `VIR_FROM_NETWORK` |
//! | `Plan` | `VIR_ERR_CONFIG_UNSUPPORTED` | `VIR_FROM_NETWORK` |
//! | `Missing` | `VIR_ERR_OPERATION_FAILED` | `VIR_FROM_NETWORK` |
//! | daemon failures (I/O, store, kernel, …) | `VIR_ERR_INTERNAL_ERROR` | `VIR_FROM_NETWORK` |
//!
//! The message is libvirt's format for the code around virtnetd's sentence; a sentence that
//! already carries the prefix (virtnetd words several errors as virsh shows them) keeps one.

use virtnet_libvirt_rpc::{code, domain, RpcError};

use crate::error::{Error, Kind};

/// A libvirt error on its way to the client (boxed: it is large, and rare).
pub type Failure = Box<RpcError>;

/// A libvirt error: `code`'s format around `detail` (see [`RpcError::new`]).
pub fn error(code: i32, domain: i32, detail: impl Into<String>) -> Failure {
    Box::new(RpcError::new(code, domain, detail))
}

/// The libvirt error for a virtnetd error.
pub fn to_libvirt(error: &Error) -> Failure {
    if let Error::Model(e) = error {
        return model_error(e);
    }
    if error.is_internal() {
        return self::error(code::INTERNAL_ERROR, domain::NETWORK, error.to_string());
    }
    let code = match error {
        Error::NotFound {
            kind: Kind::Network,
            ..
        } => code::NO_NETWORK,
        Error::NotFound {
            kind: Kind::NetworkPort,
            ..
        } => code::NO_NETWORK_PORT,
        Error::NotFound {
            kind: Kind::Domain, ..
        } => code::NO_DOMAIN,
        Error::NotFound { .. } | Error::Missing { .. } => code::OPERATION_FAILED,
        Error::Exists {
            kind: Kind::NetworkPort,
            ..
        } => code::NETWORK_PORT_EXIST,
        Error::Exists { .. } => code::OPERATION_INVALID,
        Error::Conflict { .. }
        | Error::Rejected { .. }
        | Error::Stale { .. }
        | Error::PreconditionRequired { .. } => code::OPERATION_INVALID,
        Error::Model(_) => code::XML_ERROR,
        Error::Invalid { .. } | Error::BadArgument { .. } => code::INVALID_ARG,
        Error::Unsupported { .. } => code::OPERATION_UNSUPPORTED,
        Error::Plan(_) => code::CONFIG_UNSUPPORTED,
        // The daemon's own failures were answered above (`Error::is_internal`).
        _ => code::INTERNAL_ERROR,
    };
    self::error(code, domain::NETWORK, error.to_string())
}

/// A definition's error as libvirt's network driver reports the same fault: a missing name
/// is `VIR_ERR_NO_NAME` ("missing name information"), what libvirt does not do is
/// `VIR_ERR_OPERATION_UNSUPPORTED` with the reason alone, a clash with another network
/// `VIR_ERR_OPERATION_FAILED`, anything else `VIR_ERR_XML_ERROR` naming the field.
fn model_error(e: &virtnet_model::ModelError) -> Failure {
    use virtnet_model::ErrorKind;
    match e.kind {
        ErrorKind::Invalid if e.field == "name" && e.value.is_none() => {
            let mut error = RpcError::new(code::NO_NAME, domain::NETWORK, "");
            error.message = Some("missing name information".into());
            error.str1 = error.message.clone();
            error.str2 = None;
            Box::new(error)
        }
        ErrorKind::Unsupported => error(
            code::OPERATION_UNSUPPORTED,
            domain::NETWORK,
            e.reason.clone(),
        ),
        ErrorKind::Conflict => error(code::OPERATION_FAILED, domain::NETWORK, e.to_string()),
        ErrorKind::Xml | ErrorKind::Invalid => {
            error(code::XML_ERROR, domain::NETWORK, e.to_string())
        }
    }
}

/// `VIR_ERR_NO_NETWORK` for a handle whose UUID matches no network (libvirt's
/// `networkObjFromNetwork`).
pub fn no_network_with_uuid(uuid: &uuid::Uuid, name: &str) -> Failure {
    error(
        code::NO_NETWORK,
        domain::NETWORK,
        format!("no network with matching uuid '{uuid}' ({name})"),
    )
}

/// `VIR_ERR_OPERATION_DENIED` for a change asked on a read-only connection, worded as
/// libvirt's `virCheckReadOnlyGoto` (`operation forbidden: read only access prevents
/// virNetworkCreate`).
pub fn read_only(api: &str) -> Failure {
    error(
        code::OPERATION_DENIED,
        domain::NONE,
        format!("read only access prevents {api}"),
    )
}

/// `VIR_ERR_NO_SUPPORT` for a procedure virtnetd does not (yet) implement.
pub fn no_support(api: &str) -> Failure {
    error(code::NO_SUPPORT, domain::NETWORK, api)
}

/// `VIR_ERR_OPERATION_INVALID`, libvirt's wording (`Requested operation is not valid: …`).
pub fn invalid(detail: impl Into<String>) -> Failure {
    error(code::OPERATION_INVALID, domain::NETWORK, detail)
}

/// `VIR_ERR_RPC` about the message itself (undecodable body, wrong program).
pub fn rpc(detail: impl Into<String>) -> Failure {
    error(code::RPC, domain::RPC, detail)
}

/// `VIR_ERR_INTERNAL_ERROR` in `VIR_FROM_RPC` (libvirt's "connection not open").
pub fn internal(detail: impl Into<String>) -> Failure {
    error(code::INTERNAL_ERROR, domain::RPC, detail)
}
