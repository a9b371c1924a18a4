//! # virtnet-ifname
//!
//! The one rule virtnet applies to network interface names (bridges, taps, uplinks, forward
//! devices), in one place, so that the model, the plan, the host layer and the host-config
//! writer agree: a name the definition accepts is a name every later step can use.
//!
//! The rule is Linux's (`dev_valid_name` in `net/core/dev.c`): 1 to 15 bytes (`IFNAMSIZ` - 1),
//! not `.` or `..`, no `/`, `:`, NUL or whitespace as the kernel's `isspace` sees it. virtnet
//! narrows it to what it can write without quoting into nftables strings, sysctl paths and file
//! names: printable ASCII only, and none of `"` and `\` (they end or escape an nftables string)
//! or `*` (an nftables wildcard: `iifname "br*"` matches every bridge).
//!
//! This crate has no dependencies, so the mechanism crates (`virtnet-host`, `virtnet-hostcfg`)
//! can use the rule without depending on the network model; `virtnet-model` re-exports it as
//! `virtnet_model::ifname`.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// Longest interface name in bytes: Linux's `IFNAMSIZ` (16) minus the terminating NUL.
pub const IFNAMSIZ_MAX: usize = 15;

/// Why a string is not an interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The empty string.
    Empty,
    /// More than [`IFNAMSIZ_MAX`] bytes; holds the length.
    TooLong(usize),
    /// `.` or `..`, which Linux refuses (they are directory names in sysfs).
    Dots,
    /// A byte Linux refuses: `/`, `:`, NUL or whitespace.
    Linux(char),
    /// A character Linux allows but virtnet cannot write unquoted (non-printable or non-ASCII,
    /// `"`, `\`, `*`).
    Unsafe(char),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Empty => f.write_str("interface name is empty"),
            Invalid::TooLong(n) => write!(
                f,
                "interface name is {n} bytes long; Linux allows at most {IFNAMSIZ_MAX}"
            ),
            Invalid::Dots => f.write_str("'.' and '..' are not valid interface names"),
            Invalid::Linux(c) => write!(
                f,
                "interface names must not contain '/', ':', NUL or whitespace (found {c:?})"
            ),
            Invalid::Unsafe(c) => write!(
                f,
                "interface names must be printable ASCII without '\"', '\\' or '*' (found {c:?})"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// Whether the kernel's `isspace` is true for byte `b` (`lib/ctype.c`: tab, newline, vertical
/// tab, form feed, carriage return, space, and 0xA0, non-breaking space in Latin-1).
fn kernel_isspace(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0xA0)
}

/// Checks `name` against the rule (see the crate documentation).
pub fn check(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::Empty);
    }
    if name.len() > IFNAMSIZ_MAX {
        return Err(Invalid::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(Invalid::Dots);
    }
    // Linux's own refusals first, byte by byte as the kernel reads the name.
    if let Some(b) = name
        .bytes()
        .find(|&b| b == b'/' || b == b':' || b == 0 || kernel_isspace(b))
    {
        return Err(Invalid::Linux(char::from(b)));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | '*'))
    {
        return Err(Invalid::Unsafe(c));
    }
    Ok(())
}

/// A network interface name that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

impl IfName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<IfName, Invalid> {
        let name = name.into();
        check(&name)?;
        Ok(IfName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for IfName {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<IfName, Invalid> {
        IfName::new(s)
    }
}

impl TryFrom<String> for IfName {
    type Error = Invalid;

    fn try_from(s: String) -> Result<IfName, Invalid> {
        IfName::new(s)
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole rule in one table: each name and whether it is accepted.
    #[test]
    fn the_rule() {
        let cases: &[(&str, bool)] = &[
            ("virbr0", true),
            ("eth0.100", true),
            ("br-lan_1@x+y", true),
            ("a", true),
            ("123456789012345", true),
            ("1234567890123456", false),
            ("", false),
            (".", false),
            ("..", false),
            ("...", true),
            (".hidden", true),
            ("a/b", false),
            ("a:b", false),
            ("a b", false),
            ("a\tb", false),
            ("a\nb", false),
            ("a\x0bb", false),
            ("a\x0cb", false),
            ("a\rb", false),
            ("a\0b", false),
            ("a\u{a0}b", false),
            ("br*", false),
            ("br\"0", false),
            ("br\\0", false),
            ("br\x01", false),
            ("br\x7f", false),
            ("brü", false),
            ("%d", true),
        ];
        for (name, ok) in cases {
            assert_eq!(check(name).is_ok(), *ok, "{name:?}: {:?}", check(name));
        }
    }

    #[test]
    fn reasons_say_what_is_wrong() {
        assert_eq!(check(""), Err(Invalid::Empty));
        assert_eq!(check(&"x".repeat(16)), Err(Invalid::TooLong(16)));
        assert_eq!(check(".."), Err(Invalid::Dots));
        assert_eq!(check("a:b"), Err(Invalid::Linux(':')));
        assert_eq!(check("a*"), Err(Invalid::Unsafe('*')));
        assert!(check(&"x".repeat(16))
            .unwrap_err()
            .to_string()
            .contains("15"));
    }

    #[test]
    fn ifname_wraps_only_valid_names() {
        let n: IfName = "virbr0".parse().expect("valid");
        assert_eq!(n.as_str(), "virbr0");
        assert_eq!(n.to_string(), "virbr0");
        assert!(IfName::new("a/b").is_err());
        assert!(IfName::try_from(String::from("ok0")).is_ok());
    }
}
