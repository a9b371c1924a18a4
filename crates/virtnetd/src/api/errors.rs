//! The HTTP API's view of the daemon's errors: each [`Error`] becomes an [`ApiError`] with
//! the stable code (and so the HTTP status) of its kind. This is the only place where the
//! domain's errors meet HTTP; another front end maps the same errors to its own codes.

use virtnet_api::{ApiError, ErrorCode};

use crate::error::Error;

/// The error as the API sends it: refusals with their code, daemon failures as `internal`.
pub fn to_api(error: &Error) -> ApiError {
    let refused = |code| ApiError::new(code, error.to_string());
    match error {
        Error::NotFound { .. } => refused(ErrorCode::NotFound),
        Error::Exists { .. } | Error::Conflict { .. } => refused(ErrorCode::Conflict),
        Error::Invalid { field, .. } => ApiError {
            field: Some(field.clone()),
            ..refused(ErrorCode::Invalid)
        },
        Error::BadArgument { .. } => refused(ErrorCode::BadRequest),
        Error::Unsupported { .. } => refused(ErrorCode::Unsupported),
        Error::PreconditionRequired { .. } => refused(ErrorCode::PreconditionRequired),
        Error::Stale { .. } => refused(ErrorCode::EtagMismatch),
        // Said as it is: the message already tells what is inconsistent.
        Error::Inconsistent { .. } => refused(ErrorCode::Internal),
        Error::Model(e) => ApiError::from(e.clone()),
        Error::Missing { .. } => refused(ErrorCode::NotFound),
        Error::Rejected { .. } => refused(ErrorCode::Invalid),
        // Said as it is: the sentence already carries the cause.
        Error::Failed { .. } => refused(ErrorCode::Internal),
        // The field path of a definition that cannot be realised reaches the client.
        Error::Plan(e) => ApiError {
            field: (!e.field.is_empty()).then(|| e.field.clone()),
            ..refused(ErrorCode::Invalid)
        },
        Error::NoSpace { .. } => refused(ErrorCode::NoSpace),
        Error::Io { .. }
        | Error::Store { .. }
        | Error::Record { .. }
        | Error::Host { .. }
        | Error::Startup(_)
        | Error::Damaged { .. }
        | Error::Task { .. } => {
            ApiError::new(ErrorCode::Internal, format!("internal error: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn refusals_keep_their_code_and_wording() {
        let e = to_api(&Error::not_found(Kind::Network, "x"));
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(
            e.message,
            "Network not found: no network with matching name 'x'"
        );
        let uuid = "11111111-2222-3333-4444-555555555555";
        let e = to_api(&Error::not_found(Kind::Network, uuid));
        assert_eq!(
            e.message,
            format!("Network not found: no network with matching uuid '{uuid}'")
        );
        let e = to_api(&Error::invalid("mac", "'x' is not a MAC address"));
        assert_eq!(
            (e.code, e.message.as_str(), e.field.as_deref()),
            (
                ErrorCode::Invalid,
                "mac: 'x' is not a MAC address",
                Some("mac")
            )
        );
        let e = to_api(&Error::Stale {
            name: "a".into(),
            given: "\"7\"".into(),
            current: "\"1\"".into(),
        });
        assert_eq!(e.code, ErrorCode::EtagMismatch);
        assert_eq!(
            e.message,
            "network 'a' was changed since it was read: If-Match \"7\" but the current ETag is \"1\""
        );
    }

    #[test]
    fn a_plan_error_keeps_its_field_path() {
        let e = to_api(&Error::Plan(virtnet_plan::PlanError {
            field: "bridge.name".into(),
            reason: "too long".into(),
        }));
        assert_eq!(e.code, ErrorCode::Invalid);
        assert_eq!(e.field.as_deref(), Some("bridge.name"));
    }
}
