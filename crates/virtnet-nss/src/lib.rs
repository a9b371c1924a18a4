//! Guest names on the host, as libvirt's `libnss_libvirt` gives them: with `virtnet` on the
//! `hosts:` line of `/etc/nsswitch.conf`, `getent hosts vm1`, `ping vm1` and `ssh vm1` resolve a
//! guest by the name it has on a virtnet network.
//!
//! virtnetd keeps one small file current, [`HOSTS_FILE`] (`/run/virtnet/guest-hosts`), in
//! the layout of `/etc/hosts`; this crate is both that file's format ([`HostsFile`]) and the
//! NSS module that reads it (`libnss_virtnet.so.2`, [`nss`]). Every process resolving a name
//! reads a file: no daemon round trip, nothing to wait for when virtnetd is down (the names
//! of the running networks stay), nothing a guest can reach.

pub mod nss;

use std::net::IpAddr;

/// Where virtnetd keeps the guest names (`<run-dir>/guest-hosts` with the default run
/// directory), and where the NSS module reads them.
pub const HOSTS_FILE: &str = "/run/virtnet/guest-hosts";

/// The file's name inside virtnetd's run directory.
pub const HOSTS_FILE_NAME: &str = "guest-hosts";

/// The guest names: one address with its names per line, as `/etc/hosts` has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    entries: Vec<(IpAddr, Vec<String>)>,
}

impl HostsFile {
    /// An empty file.
    pub fn new() -> HostsFile {
        HostsFile::default()
    }

    /// Adds `names` for `addr`. Names that cannot be a host name (empty, with blanks or
    /// control characters, a `#`) are left out, so that the file always parses back.
    pub fn add(&mut self, addr: IpAddr, names: impl IntoIterator<Item = String>) {
        let names: Vec<String> = names.into_iter().filter(|n| usable(n)).collect();
        if !names.is_empty() {
            self.entries.push((addr, names));
        }
    }

    /// The file's text: a comment, then one line per address, in the order added.
    pub fn render(&self) -> String {
        let mut out =
            String::from("# Guest names of virtnet's running networks (written by virtnetd).\n");
        for (addr, names) in &self.entries {
            out.push_str(&format!("{addr}\t{}\n", names.join(" ")));
        }
        out
    }

    /// Reads the file's text; lines that do not parse are skipped.
    pub fn parse(text: &str) -> HostsFile {
        let mut file = HostsFile::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            file.add(addr, fields.map(str::to_string));
        }
        file
    }

    /// The addresses of `name` (any letter case, a trailing dot ignored) in file order, and
    /// the name as the file spells it (the first match).
    pub fn lookup(&self, name: &str) -> Option<(String, Vec<IpAddr>)> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut canonical = None;
        let mut addrs = Vec::new();
        for (addr, names) in &self.entries {
            if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
                canonical.get_or_insert_with(|| n.clone());
                if !addrs.contains(addr) {
                    addrs.push(*addr);
                }
            }
        }
        canonical.map(|c| (c, addrs))
    }
}

/// A name the file can carry: printable, no blank, no comment sign, at most 253 bytes.
fn usable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_looks_names_up_like_hosts() {
        let mut f = HostsFile::new();
        f.add(
            "192.168.122.10".parse().unwrap(),
            ["vm1".to_string(), "vm1.lab.test".to_string()],
        );
        f.add("fd00::10".parse().unwrap(), ["VM1".to_string()]);
        f.add(
            "192.168.122.11".parse().unwrap(),
            ["bad name".to_string(), "#x".to_string(), String::new()],
        );
        f.add("192.168.122.12".parse().unwrap(), ["vm2".to_string()]);
        let text = f.render();
        assert!(text.starts_with("# "), "{text}");
        let back = HostsFile::parse(&text);
        assert_eq!(back, f);
        let (canon, addrs) = back.lookup("vm1.").unwrap();
        assert_eq!(canon, "vm1");
        assert_eq!(
            addrs,
            vec![
                "192.168.122.10".parse::<IpAddr>().unwrap(),
                "fd00::10".parse().unwrap()
            ]
        );
        assert_eq!(back.lookup("VM1.LAB.TEST").unwrap().1.len(), 1);
        assert!(back.lookup("vm3").is_none());
        assert!(back.lookup("bad").is_none());
        // Junk lines are skipped, comments cut.
        let junk = HostsFile::parse("nonsense\n10.0.0.1 a # b\n\n300.1.1.1 c\n");
        assert_eq!(junk.lookup("a").unwrap().1.len(), 1);
        assert!(junk.lookup("b").is_none() && junk.lookup("c").is_none());
    }
}
