//! The daemon's one error type.
//!
//! Two families of failure flow through the daemon: refusals of a request (an unknown network,
//! a conflict, an invalid field, a bad definition), which say what is wrong in the domain's
//! terms ([`Error::NotFound`], [`Error::Conflict`], [`Error::Invalid`], …), and failures of the
//! daemon itself (disk, store, kernel interfaces), which carry the context of what was being
//! done and the underlying cause. Only a front end maps them to its protocol's codes (the HTTP
//! API in `api/errors.rs`), so a second front end maps the same errors to its own.

use std::path::Path;

/// What a [`Error::NotFound`] looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A network, by name or UUID.
    Network,
    /// A guest port, by tap name.
    Port,
    /// A bridge in the kernel.
    Bridge,
    /// A guest (domain) with ports.
    Domain,
    /// A port the hypervisor daemon announced, by UUID (libvirt's `VIR_ERR_NO_NETWORK_PORT`).
    NetworkPort,
    /// A port forward, by protocol, port and listen address.
    Forward,
}

/// The message of a [`Error::NotFound`], in virsh's wording where virsh has one.
fn missing(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Network => match uuid::Uuid::parse_str(name) {
            Ok(uuid) => format!("Network not found: no network with matching uuid '{uuid}'"),
            Err(_) => format!("Network not found: no network with matching name '{name}'"),
        },
        Kind::Port => format!("no port named '{name}'"),
        Kind::Bridge => format!("bridge '{name}' does not exist"),
        Kind::Domain => format!("failed to get domain '{name}'"),
        Kind::Forward => format!("no forward of {name}"),
        Kind::NetworkPort => {
            format!("network port not found: Network port with UUID {name} does not exist")
        }
    }
}

/// The message of an [`Error::Exists`], in libvirt's wording where libvirt has one.
fn taken(kind: Kind, name: &str) -> String {
    match kind {
        Kind::NetworkPort => {
            format!("network port already exists: Network port with UUID {name} already exists")
        }
        _ => format!("{} '{name}' already exists", kind_word(kind)),
    }
}

/// A kind as a word for messages.
fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Network => "network",
        Kind::Port => "port",
        Kind::Bridge => "bridge",
        Kind::Domain => "domain",
        Kind::NetworkPort => "network port",
        Kind::Forward => "forward",
    }
}

/// Any failure inside virtnetd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the request names does not exist.
    #[error("{}", missing(*kind, name))]
    NotFound {
        /// What kind of thing.
        kind: Kind,
        /// Its name (or UUID) as the request gave it.
        name: String,
    },
    /// Something the request would create exists already (a front end may have its own code
    /// for it: libvirt's `VIR_ERR_NETWORK_PORT_EXIST`).
    #[error("{}", taken(*kind, name))]
    Exists {
        /// What kind of thing.
        kind: Kind,
        /// Its name (or UUID).
        name: String,
    },
    /// The request conflicts with the current state (an active network, a name taken…).
    #[error("{what}")]
    Conflict {
        /// What it conflicts with, as a sentence for the client.
        what: String,
    },
    /// A field of the request is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// An argument of the request itself (not of what it describes) is malformed.
    #[error("{field}: {reason}")]
    BadArgument {
        /// The argument.
        field: String,
        /// Why.
        reason: String,
    },
    /// The change is valid but virtnet cannot make it this way.
    #[error("{what}")]
    Unsupported {
        /// What cannot be done, and what to do instead.
        what: String,
    },
    /// A change that must name the version it replaces did not.
    #[error("{what}")]
    PreconditionRequired {
        /// What was missing.
        what: String,
    },
    /// The version the change names is not the current one.
    #[error(
        "network '{name}' was changed since it was read: If-Match {given} but the current ETag \
         is {current}"
    )]
    Stale {
        /// The network.
        name: String,
        /// The version the client named.
        given: String,
        /// The current version.
        current: String,
    },
    /// The daemon's own records contradict each other (a bug, or a damaged store).
    #[error("{what}")]
    Inconsistent {
        /// What is wrong.
        what: String,
    },
    /// A definition is invalid (XML, a field, a conflict with another network).
    #[error("{0}")]
    Model(#[from] virtnet_model::ModelError),
    /// Something the request needs does not exist, said as a sentence (a tap to adopt, a host
    /// interface) where no [`Kind`] fits.
    #[error("{what}")]
    Missing {
        /// What is missing, as a sentence for the client.
        what: String,
    },
    /// The request cannot be served as asked, said as a sentence (no single field to name).
    #[error("{what}")]
    Rejected {
        /// Why, as a sentence for the client.
        what: String,
    },
    /// The daemon could not do what was asked (not the client's fault), said as a sentence
    /// that already carries its cause.
    #[error("{what}")]
    Failed {
        /// What failed and why.
        what: String,
    },
    /// A file-system or socket operation failed (the message starts with the limit reached,
    /// when the cause is one: see [`crate::limits`]).
    #[error("{}", crate::limits::naming_limit(source, format!("{context}: {source}")))]
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
    /// The kernel refused or failed an operation (netlink, nftables, sysctl); the message
    /// starts with the limit reached, when the cause is one (see [`crate::limits`]).
    #[error("{}", crate::limits::naming_limit(source, format!("{context}: {source}")))]
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

    /// [`Error::Missing`].
    pub fn missing(what: impl Into<String>) -> Error {
        Error::Missing { what: what.into() }
    }

    /// [`Error::Rejected`].
    pub fn rejected(what: impl Into<String>) -> Error {
        Error::Rejected { what: what.into() }
    }

    /// [`Error::Failed`].
    pub fn failed(what: impl Into<String>) -> Error {
        Error::Failed { what: what.into() }
    }

    /// [`Error::NotFound`].
    pub fn not_found(kind: Kind, name: impl Into<String>) -> Error {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// [`Error::Conflict`].
    pub fn conflict(what: impl Into<String>) -> Error {
        Error::Conflict { what: what.into() }
    }

    /// [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// [`Error::Unsupported`].
    pub fn unsupported(what: impl Into<String>) -> Error {
        Error::Unsupported { what: what.into() }
    }

    /// True when the error is the daemon's fault rather than the client's.
    pub fn is_internal(&self) -> bool {
        // Exhaustive on purpose: a new variant must say whose fault it is.
        match self {
            Error::NotFound { .. }
            | Error::Exists { .. }
            | Error::Conflict { .. }
            | Error::Invalid { .. }
            | Error::BadArgument { .. }
            | Error::Unsupported { .. }
            | Error::PreconditionRequired { .. }
            | Error::Stale { .. }
            | Error::Missing { .. }
            | Error::Rejected { .. }
            | Error::Model(_)
            | Error::Plan(_) => false,
            Error::Inconsistent { .. }
            | Error::Failed { .. }
            | Error::Io { .. }
            | Error::Store { .. }
            | Error::Record { .. }
            | Error::Host { .. }
            | Error::Startup(_)
            | Error::NoSpace { .. }
            | Error::Damaged { .. }
            | Error::Task { .. } => true,
        }
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
