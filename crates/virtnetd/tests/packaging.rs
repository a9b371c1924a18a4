//! What ships around the daemon (issue 11, finding 9): the systemd unit passes
//! `systemd-analyze verify` and leaves writable every directory `iface-bridge` writes under
//! `ProtectSystem=strict`; `virtnetd --help` describes the daemon as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit as shipped.
fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd/virtnetd.service")
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every value of `key` in `section` of a unit file, in order (comments and other sections
/// skipped; an empty assignment resets the list, as systemd does).
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                let v = v.trim();
                if v.is_empty() {
                    out.clear();
                } else {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

/// The directories a unit makes writable: `ReadWritePaths=` (the `-` and `+` prefixes
/// dropped), `StateDirectory=` under /var/lib and `RuntimeDirectory=` under /run.
fn writable_dirs(unit: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = values(unit, "Service", "ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|p| PathBuf::from(p.trim_start_matches(['-', '+'])))
        .collect();
    for (key, base) in [("StateDirectory", "/var/lib"), ("RuntimeDirectory", "/run")] {
        for v in values(unit, "Service", key) {
            dirs.extend(v.split_whitespace().map(|d| Path::new(base).join(d)));
        }
    }
    dirs
}

#[test]
fn systemd_unit_leaves_every_directory_iface_bridge_writes_writable() {
    let unit = unit_text();
    assert_eq!(
        values(&unit, "Service", "ProtectSystem"),
        ["strict"],
        "the test is about the strict sandbox"
    );
    let writable = writable_dirs(&unit);
    let missing: Vec<&str> = virtnet_hostcfg::WRITTEN_DIRS
        .iter()
        .copied()
        .filter(|dir| !writable.iter().any(|w| Path::new(dir).starts_with(w)))
        .collect();
    assert!(
        missing.is_empty(),
        "ProtectSystem=strict makes these directories read-only, and iface-bridge writes \
         there: {missing:?} (writable: {writable:?})"
    );
    // The daemon's own directories are the ones it is told to use.
    let exec = values(&unit, "Service", "ExecStart").join(" ");
    for (flag, dir) in [
        ("--state-dir", virtnet_api::DEFAULT_STATE_DIR),
        ("--run-dir", virtnet_api::DEFAULT_RUN_DIR),
        ("--libvirt-run-dir", virtnetd::libvirt::DEFAULT_RUN_DIR),
    ] {
        assert!(exec.contains(&format!("{flag} {dir}")), "{exec}");
        assert!(writable.iter().any(|w| w == Path::new(dir)), "{dir}");
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("systemd-analyze is missing: scripts/setup.sh installs the systemd package");
    // The unit as shipped, but for the binary's path: verify checks that ExecStart's program
    // exists and is executable, and the test machine's is the one cargo built.
    let unit = unit_text();
    let daemon = virtnet_testkit::virtnetd_bin();
    let shipped = "ExecStart=/usr/local/sbin/virtnetd ";
    assert!(unit.contains(shipped), "the unit starts {shipped}");
    let local = unit.replace(shipped, &format!("ExecStart={} ", daemon.to_string_lossy()));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("virtnetd.service");
    std::fs::write(&path, local).expect("write the unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only warnings to verify (status 0): any output fails.
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {} ({}):\n{stderr}{}",
        unit_path().display(),
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn help_describes_the_daemon_as_it_is() {
    let out = Command::new(virtnet_testkit::virtnetd_bin())
        .arg("--help")
        .output()
        .expect("run virtnetd --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        !help.to_lowercase().contains("later"),
        "--help promises things for later:\n{help}"
    );
    for flag in ["--socket-group", "--ro-socket-group", "--run-dir"] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

/// The firewalld zone virtnet ships (issue 14): well-formed XML in firewalld's zone format,
/// named `virtnet` (the zone virtnetd looks for), target ACCEPT, nothing firewalld does not
/// know. firewalld itself is not installed here: its own parser does not run in this test.
#[test]
fn the_firewalld_zone_parses_and_accepts() {
    const ZONE_CHILDREN: [&str; 14] = [
        "short",
        "description",
        "interface",
        "source",
        "service",
        "port",
        "protocol",
        "icmp-block",
        "icmp-block-inversion",
        "masquerade",
        "forward-port",
        "source-port",
        "rule",
        "forward",
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/firewalld/virtnet.xml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let zone = doc.root_element();
    assert_eq!(zone.tag_name().name(), "zone");
    assert_eq!(zone.attribute("target"), Some("ACCEPT"));
    let short = zone
        .children()
        .find(|n| n.has_tag_name("short"))
        .and_then(|n| n.text());
    assert_eq!(short, Some("virtnet"));
    assert_eq!(path.file_stem().and_then(|s| s.to_str()), Some("virtnet"));
    for child in zone.children().filter(roxmltree::Node::is_element) {
        assert!(
            ZONE_CHILDREN.contains(&child.tag_name().name()),
            "firewalld knows no <{}> in a zone",
            child.tag_name().name()
        );
    }
}
