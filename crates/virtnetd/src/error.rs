//! The daemon's one error type.
//!
//! Two families of failure flow through the daemon: refusals meant for the client (a bad
//! definition, a conflict, an unknown network), which carry a ready [`ApiError`], and failures of
//! the daemon itself (disk, store, kernel interfaces), which carry the context of what was being
//! done and the underlying cause. The API maps the second family to `internal` (500) and logs
//! it in full.

use std::path::Path;

use virtnet_api::{ApiError, ErrorCode};

/// Any failure inside virtnetd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused; the error is sent to the client as is.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The redb store failed.
    #[error("{context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record could not be encoded or decoded.
    #[error("{context}: {source}")]
    Record {
        /// Which record.
        context: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The kernel refused or failed an operation (netlink, nftables, sysctl).
    #[error("{context}: {source}")]
    Host {
        /// What virtnet was doing.
        context: String,
        /// The kernel's answer.
        #[source]
        source: virtnet_host::HostError,
    },
    /// A definition cannot be realised in the kernel.
    #[error("{0}")]
    Plan(#[from] virtnet_plan::PlanError),
    /// The daemon cannot start as configured (state directory locked, socket in use…).
    #[error("{0}")]
    Startup(String),
    /// The state directory's file system is full: the store cannot commit (HTTP 507).
    #[error(
        "no space left on the state directory {}: the change was not made; free space there \
         (virtnetd recovers by itself)",
        dir.display()
    )]
    NoSpace {
        /// The state directory.
        dir: std::path::PathBuf,
    },
    /// The store file is damaged in a way its database refuses to open.
    #[error(
        "store {} is damaged and cannot be opened ({message}); move it aside to start with an \
         empty store, or restore it from a backup",
        path.display()
    )]
    Damaged {
        /// The store file.
        path: std::path::PathBuf,
        /// What the database reported.
        message: String,
    },
    /// A background task died (a bug, or the runtime is shutting down).
    #[error("{context}: {message}")]
    Task {
        /// What the task was doing.
        context: String,
        /// Why it ended.
        message: String,
    },
}

/// Result alias for the daemon.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(what: &str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }

    /// A store error with context.
    pub fn store(context: impl Into<String>, source: impl Into<redb::Error>) -> Error {
        Error::Store {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }

    /// A client-facing refusal.
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Api(ApiError::new(code, message))
    }

    /// The error as the API sends it: refusals as they are, daemon failures as `internal`.
    pub fn to_api(&self) -> ApiError {
        match self {
            Error::Api(e) => e.clone(),
            Error::Plan(e) => ApiError::new(ErrorCode::Invalid, e.to_string()),
            Error::NoSpace { .. } => ApiError::new(ErrorCode::NoSpace, self.to_string()),
            other => ApiError::new(ErrorCode::Internal, format!("internal error: {other}")),
        }
    }

    /// True when the error is the daemon's fault rather than the client's.
    pub fn is_internal(&self) -> bool {
        match self {
            Error::Api(e) => e.code == ErrorCode::Internal,
            Error::Plan(_) => false,
            _ => true,
        }
    }
}

impl From<virtnet_model::ModelError> for Error {
    fn from(e: virtnet_model::ModelError) -> Error {
        Error::Api(ApiError::from(e))
    }
}

/// Extension to attach a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Wraps the error with "`what` `path`".
    fn with_path(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}
