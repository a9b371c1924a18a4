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
    verify(analyze, &path, "the unit");
    // Again with the fabric's drop-in (contrib/systemd/virtnetd.service.d/fabric.conf) next to
    // it, where systemd looks for drop-ins of a unit it loads from that directory.
    let dropins = dir.path().join("virtnetd.service.d");
    std::fs::create_dir(&dropins).expect("drop-in directory");
    let fabric = unit_path()
        .with_file_name("virtnetd.service.d")
        .join("fabric.conf");
    std::fs::copy(&fabric, dropins.join("fabric.conf")).expect("copy the fabric drop-in");
    verify(analyze, &path, "the unit with the fabric drop-in");
}

/// `systemd-analyze verify path`: unknown keys and bad values are only warnings to verify
/// (status 0), so any output fails.
fn verify(analyze: &str, path: &Path, what: &str) {
    let out = Command::new(analyze)
        .arg("verify")
        .arg(path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify, {what} ({}):\n{stderr}{}",
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

/// Socket activation (issue 16, the package's socket units): systemd binds the API sockets and
/// passes them to virtnetd (`LISTEN_FDS`/`LISTEN_PID`), here through systemd's own
/// `systemd-socket-activate`, which binds like a socket unit and execs the daemon on the first
/// connection. The daemon serves both passed sockets (before socket activation it found its
/// own socket answering, took it for another daemon and refused to start), does not bind new
/// ones in their place, and leaves them to systemd when it stops.
#[test]
fn virtnetd_serves_the_sockets_systemd_passes_and_leaves_them() {
    use std::os::unix::fs::MetadataExt;
    let ns = virtnet_testkit::Netns::new("sockact");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("run dir");
    let rw = run.join(virtnet_api::SOCKET_NAME);
    let ro = run.join(virtnet_api::RO_SOCKET_NAME);
    let log = dir.path().join("virtnetd.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let activator = ns.spawn_with(
        [
            "systemd-socket-activate".to_string(),
            "--listen".into(),
            path(&rw),
            "--listen".into(),
            path(&ro),
            "--".into(),
            path(&virtnet_testkit::virtnetd_bin()),
            "--state-dir".into(),
            path(&dir.path().join("state")),
            "--run-dir".into(),
            path(&run),
            "--host-config-root".into(),
            path(&dir.path().join("root")),
            "--no-libvirt-sockets".into(),
            "--log-level".into(),
            "debug".into(),
        ],
        |cmd| {
            cmd.stderr(log_file);
        },
    );
    let bound = virtnet_testkit::eventually(std::time::Duration::from_secs(10), || {
        rw.exists() && ro.exists()
    });
    assert!(
        bound,
        "systemd-socket-activate did not bind {}",
        rw.display()
    );
    let inode = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).expect("socket file");
    let (rw_inode, ro_inode) = (inode(&rw), inode(&ro));
    let cli = virtnet_testkit::virtnet_bin();
    // The first connection starts the daemon; the CLI waits for its answer in the backlog.
    for socket in [&rw, &ro] {
        let out = ns.exec([
            path(&cli),
            "--connect".into(),
            path(socket),
            "net-list".into(),
            "--all".into(),
        ]);
        assert!(
            out.status.success(),
            "net-list on {} failed: {}\n{}",
            socket.display(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        daemon_log
            .matches("serving a socket passed by systemd")
            .count(),
        2,
        "both sockets served from the passed descriptors:\n{daemon_log}"
    );
    assert_eq!(
        (inode(&rw), inode(&ro)),
        (rw_inode, ro_inode),
        "rebound:\n{daemon_log}"
    );
    // systemd-socket-activate exec'd the daemon: the child is virtnetd itself.
    let status = activator.terminate(std::time::Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "virtnetd did not stop cleanly ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        rw.exists() && ro.exists(),
        "the sockets belong to systemd: the daemon must not remove them"
    );
}
