//! The bridge ACL: `/etc/virtnet/bridge.conf`, in the syntax of QEMU's `/etc/qemu/bridge.conf`.
//!
//! ```text
//! # comment
//! allow virbr0        # this bridge may be used
//! allow all           # any bridge may be used
//! deny br-lab         # this one may not (a deny always wins, wherever it stands)
//! deny all
//! include /etc/virtnet/alice.conf
//! ```
//!
//! A bridge is allowed when some `allow` matches it and no `deny` does; an empty ACL allows
//! nothing. The files are read with the permissions of the user who ran the helper (see
//! [`crate::privilege`]), so an `include` of a file the user cannot read is skipped, as in
//! QEMU: that is how per-user or per-group rules are written (`include` a file of mode 0640
//! owned by the group allowed to use the bridges it lists).
//!
//! Differences from QEMU's parser, all on the safe side: a relative `include` is resolved
//! against the directory of the file that includes it (QEMU uses the working directory, which
//! the caller of a setuid program chooses); includes nest at most [`MAX_INCLUDE_DEPTH`] deep
//! (QEMU recurses until its stack overflows on a loop); a syntax error in an included file is
//! an error (QEMU ignores it after keeping the rules read before it); names longer than an
//! interface name can be are errors (QEMU truncates them).

use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// How deep `include`s may nest.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Longest interface name (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = virtnet_model::ifname::IFNAMSIZ_MAX;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `allow NAME`.
    Allow(String),
    /// `allow all`.
    AllowAll,
    /// `deny NAME`.
    Deny(String),
    /// `deny all`.
    DenyAll,
}

/// The rules of an ACL file and the files it includes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// The rules.
    pub rules: Vec<Rule>,
}

impl Acl {
    /// Reads `path` (and what it includes) with `read`. `read` failing on `path` itself is
    /// an error; on an included file it is skipped when the file is missing or unreadable
    /// (`NotFound`, `PermissionDenied`) and an error otherwise.
    pub fn load(path: &Path, read: &dyn Fn(&Path) -> io::Result<String>) -> Result<Acl, Error> {
        let text = read(path).map_err(|e| {
            Error::new(format!(
                "failed to parse default acl file `{}': {e}",
                path.display()
            ))
        })?;
        let mut acl = Acl::default();
        acl.parse_into(path, &text, read, 0)?;
        Ok(acl)
    }

    /// Parses `text` (the content of `path`) without reading any file: `include` lines are
    /// errors. For tests and for checking a file.
    pub fn parse(path: &Path, text: &str) -> Result<Acl, Error> {
        let mut acl = Acl::default();
        let no_files = |p: &Path| -> io::Result<String> {
            Err(io::Error::other(format!("cannot include {}", p.display())))
        };
        acl.parse_into(path, text, &no_files, MAX_INCLUDE_DEPTH)?;
        Ok(acl)
    }

    fn parse_into(
        &mut self,
        path: &Path,
        text: &str,
        read: &dyn Fn(&Path) -> io::Result<String>,
        depth: usize,
    ) -> Result<(), Error> {
        let at = |n: usize, msg: String| Error::new(format!("{}:{n}: {msg}", path.display()));
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((cmd, arg)) = line.split_once(|c: char| c.is_ascii_whitespace()) else {
                return Err(at(n, format!("invalid config line `{line}'")));
            };
            let arg = arg.trim();
            match cmd {
                "allow" | "deny" => {
                    let allow = cmd == "allow";
                    let rule = match (allow, arg) {
                        (true, "all") => Rule::AllowAll,
                        (false, "all") => Rule::DenyAll,
                        (_, name) => {
                            check_name(name).map_err(|e| at(n, e))?;
                            if allow {
                                Rule::Allow(name.to_string())
                            } else {
                                Rule::Deny(name.to_string())
                            }
                        }
                    };
                    self.rules.push(rule);
                }
                "include" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(at(
                            n,
                            format!("includes nest deeper than {MAX_INCLUDE_DEPTH} (a loop?)"),
                        ));
                    }
                    let target = resolve(path, arg);
                    match read(&target) {
                        Ok(text) => self.parse_into(&target, &text, read, depth + 1)?,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                            ) => {}
                        Err(e) => {
                            return Err(at(n, format!("cannot read `{}': {e}", target.display())))
                        }
                    }
                }
                other => return Err(at(n, format!("unknown command `{other}'"))),
            }
        }
        Ok(())
    }

    /// Whether `bridge` may be used: some `allow` matches and no `deny` does.
    pub fn allows(&self, bridge: &str) -> bool {
        let mut allowed = false;
        for rule in &self.rules {
            match rule {
                Rule::AllowAll => allowed = true,
                Rule::Allow(b) if b == bridge => allowed = true,
                Rule::DenyAll => return false,
                Rule::Deny(b) if b == bridge => return false,
                _ => {}
            }
        }
        allowed
    }
}

/// An include's path: absolute as written, relative ones against the including file's
/// directory.
fn resolve(including: &Path, arg: &str) -> PathBuf {
    let p = Path::new(arg);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    including.parent().unwrap_or_else(|| Path::new("/")).join(p)
}

/// Checks a bridge (interface) name with virtnet's one interface-name rule
/// ([`virtnet_model::ifname::check`]: Linux's, limited to printable ASCII without `"`, `\`, `*`).
pub fn check_name(name: &str) -> Result<(), String> {
    virtnet_model::ifname::check(name).map_err(|e| format!("`{name}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn acl(text: &str) -> Acl {
        Acl::parse(Path::new("/etc/virtnet/bridge.conf"), text).expect("parses")
    }

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p: &Path| {
            if p.to_string_lossy().contains("secret") {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            map.get(p)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn allow_deny_and_all() {
        let a = acl("# comment\n\n  allow virbr0  \nallow\tbr1\n");
        assert_eq!(
            a.rules,
            vec![Rule::Allow("virbr0".into()), Rule::Allow("br1".into())]
        );
        assert!(a.allows("virbr0") && a.allows("br1"));
        assert!(!a.allows("br2"));

        let a = acl("allow all\ndeny br-lab\n");
        assert!(a.allows("virbr0"));
        assert!(!a.allows("br-lab"));
        // A deny wins wherever it stands.
        let a = acl("deny virbr0\nallow virbr0\n");
        assert!(!a.allows("virbr0"));
        let a = acl("allow all\ndeny all\n");
        assert!(!a.allows("virbr0"));
        // Nothing allowed by default.
        assert!(!acl("").allows("virbr0"));
        assert!(!acl("# only a comment\n").allows("virbr0"));
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = Acl::parse(Path::new("/x.conf"), "allow virbr0\nallow\n").unwrap_err();
        assert_eq!(e.to_string(), "/x.conf:2: invalid config line `allow'");
        let e = Acl::parse(Path::new("/x.conf"), "permit virbr0\n").unwrap_err();
        assert_eq!(e.to_string(), "/x.conf:1: unknown command `permit'");
        let e = Acl::parse(Path::new("/x.conf"), "allow averyveryverylongname\n").unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
        assert!(Acl::parse(Path::new("/x.conf"), "allow ../x\n").is_err());
    }

    #[test]
    fn includes_are_read_relative_to_the_including_file_and_unreadable_ones_skipped() {
        let read = files(&[
            (
                "/etc/virtnet/bridge.conf",
                "allow virbr0\ninclude users.conf\ninclude /etc/virtnet/missing.conf\n\
                 include /etc/virtnet/secret.conf\n",
            ),
            ("/etc/virtnet/users.conf", "allow br-users\ndeny virbr9\n"),
        ]);
        let a = Acl::load(Path::new("/etc/virtnet/bridge.conf"), &read).expect("loads");
        assert_eq!(
            a.rules,
            vec![
                Rule::Allow("virbr0".into()),
                Rule::Allow("br-users".into()),
                Rule::Deny("virbr9".into())
            ]
        );
        assert!(a.allows("br-users"));
    }

    #[test]
    fn a_missing_main_file_an_include_loop_and_errors_in_includes_fail() {
        let read = files(&[]);
        let e = Acl::load(Path::new("/etc/virtnet/bridge.conf"), &read).unwrap_err();
        assert!(
            e.to_string().contains("failed to parse default acl file"),
            "{e}"
        );

        let read = files(&[("/a.conf", "allow x\ninclude /a.conf\n")]);
        let e = Acl::load(Path::new("/a.conf"), &read).unwrap_err();
        assert!(e.to_string().contains("nest deeper"), "{e}");

        let read = files(&[("/a.conf", "include /b.conf\n"), ("/b.conf", "bogus\n")]);
        let e = Acl::load(Path::new("/a.conf"), &read).unwrap_err();
        assert_eq!(e.to_string(), "/b.conf:1: invalid config line `bogus'");
    }

    #[test]
    fn interface_names() {
        assert!(check_name("virbr0").is_ok());
        assert!(check_name("a23456789012345").is_ok());
        for bad in [
            "",
            "a234567890123456",
            ".",
            "..",
            "a/b",
            "a b",
            "a:b",
            "a\0",
            "a*b",
            "a\"b",
            "br\u{e9}",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
