//! firewalld: virtnet's bridges go into a zone whose target is ACCEPT, virtnet's own
//! (`virtnet`, shipped as `contrib/firewalld/virtnet.xml`) or else libvirt's (`libvirt`), so
//! that firewalld's `inet firewalld` table lets guest traffic through to virtnet's table,
//! which decides. This is firewalld's own interface for it (as libvirt does), not an edit of
//! its table, so it does not wait for `--firewall-integration`.
//!
//! Talks to firewalld through `firewall-cmd`, its documented client of the
//! `org.fedoraproject.FirewallD1` D-Bus API (`--state`, `--get-zones`,
//! `--get-zone-of-interface`, `--zone=Z --change-interface`, `--remove-interface`): no D-Bus
//! library in the daemon, and nothing at all happens on hosts without firewalld. Runtime
//! bindings only: a `firewall-cmd --reload` drops them, and the ruleset watcher puts them
//! back when firewalld's table is re-created.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The zone virtnet ships.
pub const ZONE: &str = "virtnet";
/// libvirt's zone, used when virtnet's is not installed.
pub const LIBVIRT_ZONE: &str = "libvirt";
/// firewalld's nftables table: when it is re-created, firewalld reloaded.
pub const TABLE: &str = "firewalld";

/// firewalld as found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No `firewall-cmd` in the daemon's `PATH`.
    NotInstalled,
    /// `firewall-cmd --state` says it is not running.
    NotRunning,
    /// Running, with the zone for virtnet's bridges (`None`: neither zone is installed).
    Running { zone: Option<String> },
}

impl State {
    /// As `virtnet doctor` shows it.
    pub fn label(&self) -> &'static str {
        match self {
            State::NotInstalled => "not installed",
            State::NotRunning => "not running",
            State::Running { .. } => "running",
        }
    }
}

/// Looks for firewalld: `firewall-cmd` in `PATH`; then, only when firewalld's nftables table
/// exists (`table_present`: a running firewalld keeps one, and looking costs nothing, while
/// firewall-cmd is a Python program that takes a good part of a second to start), `--state`
/// and the zones.
pub fn detect(table_present: bool) -> State {
    let Some(cmd) = find_in_path("firewall-cmd") else {
        return State::NotInstalled;
    };
    if !table_present {
        return State::NotRunning;
    }
    if run(&cmd, &["--state"]).is_none_or(|o| o.trim() != "running") {
        return State::NotRunning;
    }
    let zones = run(&cmd, &["--get-zones"]).unwrap_or_default();
    let has = |z: &str| zones.split_whitespace().any(|n| n == z);
    let zone = [ZONE, LIBVIRT_ZONE]
        .into_iter()
        .find(|z| has(z))
        .map(str::to_string);
    State::Running { zone }
}

/// Puts `bridge` into `zone` unless it is there already (runtime binding). False when
/// firewall-cmd fails.
pub fn bind(zone: &str, bridge: &str) -> bool {
    let Some(cmd) = find_in_path("firewall-cmd") else {
        return false;
    };
    let current = run(&cmd, &[&format!("--get-zone-of-interface={bridge}")]);
    if current.as_deref().map(str::trim) == Some(zone) {
        return true;
    }
    run(
        &cmd,
        &[
            &format!("--zone={zone}"),
            &format!("--change-interface={bridge}"),
        ],
    )
    .is_some()
}

/// Takes `bridge` out of `zone` (runtime binding). Failures are ignored: the bridge is going
/// away, and firewalld forgets bindings of interfaces that are gone.
pub fn unbind(zone: &str, bridge: &str) {
    if let Some(cmd) = find_in_path("firewall-cmd") {
        let _ = run(
            &cmd,
            &[
                &format!("--zone={zone}"),
                &format!("--remove-interface={bridge}"),
            ],
        );
    }
}

/// Runs firewall-cmd; its standard output when it succeeded.
fn run(cmd: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An executable `name` in `PATH`.
pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// firewalld is not installed on the machines these tests run on: detection must say so
    /// and leave the host alone (no zone, no command run).
    #[test]
    fn detection_is_off_without_firewalld() {
        if find_in_path("firewall-cmd").is_some() {
            return;
        }
        assert_eq!(detect(true), State::NotInstalled);
        assert_eq!(detect(true).label(), "not installed");
        assert!(!bind(ZONE, "virbr0"));
    }
}
