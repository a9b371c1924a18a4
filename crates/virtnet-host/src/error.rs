//! The one error type of this crate.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// Result alias used by every fallible function of this crate.
pub type Result<T, E = HostError> = std::result::Result<T, E>;

/// An operation on the host (kernel, `/proc/sys`, libnftables) that failed.
///
/// It says what was attempted (`op`, e.g. `"create bridge"`), on what
/// (`target`, e.g. `"virbr0"`) and why (`source`, an [`io::Error`] that keeps
/// the kernel's errno when there is one). When the kernel attached an extended
/// ACK message (netlink `NLMSGERR_ATTR_MSG`), it is kept as [`detail`].
///
/// Display form: `create bridge virbr0: File exists (os error 17)`, with
/// `: <detail>` appended when the kernel explained itself.
///
/// [`detail`]: HostError::detail
#[derive(Debug, thiserror::Error)]
pub struct HostError {
    op: Cow<'static, str>,
    target: String,
    #[source]
    source: io::Error,
    detail: Option<String>,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.op)?;
        if !self.target.is_empty() {
            write!(f, " {}", self.target)?;
        }
        write!(f, ": {}", self.source)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl HostError {
    /// An error from an I/O or kernel failure.
    pub fn new(
        op: impl Into<Cow<'static, str>>,
        target: impl Into<String>,
        source: io::Error,
    ) -> Self {
        HostError {
            op: op.into(),
            target: target.into(),
            source,
            detail: None,
        }
    }

    /// An error that carries only a message (no errno), e.g. nft's error text.
    pub fn msg(
        op: impl Into<Cow<'static, str>>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(op, target, io::Error::other(message.into()))
    }

    /// An error for a caller mistake (errno `EINVAL`), detected before the
    /// kernel is asked.
    pub(crate) fn invalid(
        op: impl Into<Cow<'static, str>>,
        target: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Self::new(op, target, io::Error::from_raw_os_error(libc::EINVAL))
            .with_detail(Some(why.into()))
    }

    pub(crate) fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    /// What was attempted, e.g. `"create bridge"`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// What it was attempted on, e.g. `"virbr0"` (may be empty).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The kernel's extended-ACK message or another explanation, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The underlying I/O error.
    pub fn io(&self) -> &io::Error {
        &self.source
    }

    /// The errno the kernel (or libc) reported, e.g. `libc::EEXIST`; `None`
    /// for errors that carry only a message (such as nft's).
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// True when the object already existed (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the object (or the device it lives on) does not exist
    /// (`ENOENT`, `ENODEV`, `ESRCH` or `EADDRNOTAVAIL`, which is what the kernel
    /// answers for a missing link, route or address).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_op_target_and_errno() {
        let e = HostError::new(
            "create bridge",
            "virbr0",
            io::Error::from_raw_os_error(libc::EEXIST),
        );
        assert_eq!(
            e.to_string(),
            "create bridge virbr0: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert!(e.is_exists());
        let e = e.with_detail(Some("kernel says".into()));
        assert_eq!(
            e.to_string(),
            "create bridge virbr0: File exists (os error 17): kernel says"
        );
        let m = HostError::msg("run nft script", "", "Error: syntax error");
        assert_eq!(m.to_string(), "run nft script: Error: syntax error");
        assert_eq!(m.errno(), None);
    }
}
