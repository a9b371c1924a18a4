//! Who may do what (issue 11, finding 10): a real virtnetd in a namespace, and real clients
//! (the `virtnet` CLI and a raw HTTP client in python3) run as root and as `nobody` through
//! `setpriv`. The read-only socket serves reads to anyone and refuses every change with 403;
//! the read-write socket checks the peer's credentials, so loosening its mode lets nobody in;
//! every change is logged with the uid and pid of who made it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use virtnet_testkit::{virtnet_bin, Daemon, Netns};

/// `nobody`/`nogroup` on Debian.
const NOBODY: u32 = 65534;

/// A network with a DHCP range, so that its leases can be listed.
fn network(name: &str, bridge: &str, prefix3: &str) -> String {
    format!(
        "<network><name>{name}</name><bridge name='{bridge}'/>\
         <ip address='{prefix3}.1' prefix='24'><dhcp><range start='{prefix3}.2' \
         end='{prefix3}.9'/></dhcp></ip></network>"
    )
}

/// A daemon whose directories other users may traverse (the testkit makes them 0700), so a
/// non-root client can reach its sockets and read the XML files the test writes there.
fn daemon(role: &str, extra: &[&str]) -> Daemon {
    let ns = Netns::new(role);
    let daemon = Daemon::start_in_with(&ns, extra);
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the daemon's directory");
    daemon
}

fn ro_socket(daemon: &Daemon) -> PathBuf {
    daemon.run_dir().join(virtnet_api::RO_SOCKET_NAME)
}

/// `setpriv` arguments that run a program as `uid`, primary group `gid`, supplementary
/// `groups` (none when empty).
fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Vec<String> {
    let mut args = vec![
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
    ];
    if groups.is_empty() {
        args.push("--clear-groups".into());
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        args.push(format!("--groups={}", list.join(",")));
    }
    args
}

/// Runs `virtnet --connect <socket> args...` in the daemon's namespace, as `user` (`setpriv`
/// arguments; empty: root). Returns the output and the CLI's pid (`ip netns exec` and
/// `setpriv` exec in place, so it is the pid the daemon sees).
fn cli_as(daemon: &Daemon, user: &[String], socket: &Path, args: &[&str]) -> (Output, u32) {
    let mut all: Vec<String> = user.to_vec();
    all.push(virtnet_bin().to_string_lossy().into_owned());
    all.push("--connect".into());
    all.push(socket.to_string_lossy().into_owned());
    all.extend(args.iter().map(|s| s.to_string()));
    let child = daemon
        .ns()
        .command(&all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run virtnet");
    let pid = child.id();
    (child.wait_with_output().expect("wait for virtnet"), pid)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A raw HTTP/1.1 request over the unix socket from python3, as `user`: the status and the
/// body, so the test sees the status code and the JSON error code themselves.
fn http_as(
    daemon: &Daemon,
    user: &[String],
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    const CLIENT: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        body = sys.argv[4].encode()\n\
        s.sendall(('%s %s HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n'\n\
          'Content-Type: application/xml\\r\\nContent-Length: %d\\r\\n\\r\\n'\n\
          % (sys.argv[2], sys.argv[3], len(body))).encode() + body)\n\
        data = b''\n\
        while True:\n    chunk = s.recv(65536)\n    if not chunk: break\n    data += chunk\n\
        sys.stdout.write(data.decode(errors='replace'))\n";
    let mut all: Vec<String> = user.to_vec();
    all.extend(
        [
            "/usr/bin/python3",
            "-c",
            CLIENT,
            &socket.to_string_lossy(),
            method,
            path,
            body,
        ]
        .map(String::from),
    );
    let out = daemon.ns().exec(&all);
    assert!(
        out.status.success(),
        "python3 client failed: {}",
        text(&out.stderr)
    );
    let answer = text(&out.stdout);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The JSON error code of an error body (chunked bodies hold the JSON on one line).
fn error_code(body: &str) -> String {
    body.lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no JSON error in {body:?}"))
}

fn network_names(daemon: &Daemon) -> String {
    daemon.cli_ok(&["--quiet", "net-list", "--all", "--name"])
}

#[test]
fn read_only_socket_serves_reads_to_anyone_and_refuses_every_change_with_403() {
    let mut daemon = daemon("rosock", &[]);
    let ro = ro_socket(&daemon);
    let meta = std::fs::metadata(&ro).expect("the read-only socket exists");
    assert_eq!(meta.mode() & 0o777, 0o666, "read-only socket mode");
    let net = daemon.define(&network("ro1", "vntro1", "10.91.1"));
    daemon.cli_ok(&["net-start", &net]);
    let nobody = as_user(NOBODY, NOBODY, &[]);

    // Reads, as nobody, with the CLI's --readonly (the read-only socket next to --connect).
    let rw = daemon.socket();
    for args in [
        vec!["--readonly", "net-list", "--all"],
        vec!["--readonly", "net-dumpxml", "ro1"],
        vec!["--readonly", "net-info", "ro1"],
        vec!["--readonly", "net-dhcp-leases", "ro1"],
        vec!["--readonly", "iface-bridges"],
        vec!["--readonly", "port-list"],
    ] {
        let (out, _) = cli_as(&daemon, &nobody, &rw, &args);
        assert!(
            out.status.success(),
            "virtnet {args:?} as nobody: {}",
            text(&out.stderr)
        );
    }
    let (out, _) = cli_as(&daemon, &nobody, &ro, &["net-dumpxml", "ro1"]);
    assert!(text(&out.stdout).contains("<name>ro1</name>"));
    let (status, _) = http_as(&daemon, &nobody, &ro, "GET", "/v1/events", "");
    assert_eq!(status, 200, "events on the read-only socket");

    // Changes: 403 read-only for nobody and for root alike, and nothing changes.
    let xml = network("ro2", "vntro2", "10.91.2");
    let file = daemon.dir().join("ro2.xml");
    std::fs::write(&file, &xml).expect("write ro2.xml");
    let (out, _) = cli_as(
        &daemon,
        &nobody,
        &rw,
        &["--readonly", "net-define", &file.to_string_lossy()],
    );
    assert!(!out.status.success(), "define through the read-only socket");
    assert!(
        text(&out.stderr).contains("read-only socket"),
        "{}",
        text(&out.stderr)
    );
    for user in [nobody.clone(), Vec::new()] {
        for (method, path, body) in [
            ("POST", "/v1/networks", xml.as_str()),
            ("POST", "/v1/networks/ro1/start", ""),
            ("DELETE", "/v1/networks/ro1", ""),
            ("POST", "/v1/destroy", "{\"networks\": [\"ro1\"]}"),
            ("PUT", "/v1/networks/ro1/autostart", "{\"autostart\": true}"),
            (
                "POST",
                "/v1/host-bridges",
                "{\"iface\": \"lo\", \"bridge\": \"br9\"}",
            ),
        ] {
            let (status, answer) = http_as(&daemon, &user, &ro, method, path, body);
            assert_eq!(status, 403, "{method} {path} as {user:?}: {answer}");
            assert_eq!(error_code(&answer), "read-only", "{answer}");
        }
    }
    assert_eq!(
        network_names(&daemon)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ro1"]
    );
    let (status, answer) = http_as(&daemon, &nobody, &ro, "GET", "/v1/networks/ro1", "");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("\"active\":true"),
        "ro1 still runs: {answer}"
    );
    // Both sockets go with the daemon.
    assert!(daemon.stop().success());
    assert!(!ro.exists() && !rw.exists(), "sockets left behind");
}

#[test]
fn read_write_socket_refuses_other_users_even_when_its_mode_is_loosened() {
    let daemon = daemon("rwsock", &[]);
    let rw = daemon.socket();
    assert_eq!(
        std::fs::metadata(&rw).expect("socket").mode() & 0o777,
        0o660
    );
    // An admin "fixing" access the wrong way: the file mode no longer protects the socket.
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let nobody = as_user(NOBODY, NOBODY, &[]);
    let xml = network("rw1", "vntrw1", "10.92.1");
    for (method, path, body) in [
        ("GET", "/v1/networks", ""),
        ("POST", "/v1/networks", xml.as_str()),
    ] {
        let (status, answer) = http_as(&daemon, &nobody, &rw, method, path, body);
        assert_eq!(status, 403, "{method} {path} as nobody: {answer}");
        assert_eq!(error_code(&answer), "forbidden", "{answer}");
    }
    let file = daemon.dir().join("rw1.xml");
    std::fs::write(&file, &xml).expect("write rw1.xml");
    let (out, _) = cli_as(
        &daemon,
        &nobody,
        &rw,
        &["net-define", &file.to_string_lossy()],
    );
    assert!(!out.status.success(), "define as nobody");
    assert!(
        text(&out.stderr).contains("uid 65534 may not use the read-write socket"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(network_names(&daemon).trim(), "", "nothing was defined");

    // Root is served on the same socket.
    let (status, answer) = http_as(&daemon, &[], &rw, "POST", "/v1/networks", &xml);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(network_names(&daemon).trim(), "rw1");
}

#[test]
fn socket_groups_admit_their_members_and_restrict_the_read_only_socket() {
    // nogroup administers; the read-only socket is for group 100 ("users") only.
    let daemon = daemon(
        "sockgrp",
        &["--socket-group", "65534", "--ro-socket-group", "100"],
    );
    let rw = daemon.socket();
    let ro = ro_socket(&daemon);
    let rw_meta = std::fs::metadata(&rw).expect("socket");
    assert_eq!((rw_meta.mode() & 0o777, rw_meta.gid()), (0o660, 65534));
    let ro_meta = std::fs::metadata(&ro).expect("read-only socket");
    assert_eq!((ro_meta.mode() & 0o777, ro_meta.gid()), (0o660, 100));

    let xml = |n: u32| {
        network(
            &format!("grp{n}"),
            &format!("vntgrp{n}"),
            &format!("10.93.{n}"),
        )
    };
    // A member by its primary group, then by a supplementary group (SO_PEERGROUPS).
    let primary = as_user(1000, NOBODY, &[]);
    let (status, answer) = http_as(&daemon, &primary, &rw, "POST", "/v1/networks", &xml(1));
    assert_eq!(status, 201, "{answer}");
    let supplementary = as_user(1000, 1000, &[7, NOBODY]);
    let (status, answer) = http_as(
        &daemon,
        &supplementary,
        &rw,
        "POST",
        "/v1/networks",
        &xml(2),
    );
    assert_eq!(status, 201, "{answer}");
    // Not a member: refused, though it may open the file (mode loosened).
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let stranger = as_user(1000, 1000, &[100]);
    let (status, answer) = http_as(&daemon, &stranger, &rw, "POST", "/v1/networks", &xml(3));
    assert_eq!((status, error_code(&answer).as_str()), (403, "forbidden"));
    // The stranger reads through the read-only socket, being in its group.
    let (status, answer) = http_as(&daemon, &stranger, &ro, "GET", "/v1/networks", "");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("grp1") && answer.contains("grp2"),
        "{answer}"
    );
    assert!(!answer.contains("grp3"), "{answer}");
}

#[test]
fn every_change_is_logged_with_the_callers_uid_pid_verb_and_object() {
    let daemon = daemon("audit", &[]);
    let rw = daemon.socket();
    let file = daemon.dir().join("aud1.xml");
    std::fs::write(&file, network("aud1", "vntaud1", "10.94.1")).expect("write aud1.xml");
    let (out, define_pid) = cli_as(&daemon, &[], &rw, &["net-define", &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, start_pid) = cli_as(&daemon, &[], &rw, &["net-start", "aud1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, list_pid) = cli_as(&daemon, &[], &rw, &["net-list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let nobody = as_user(NOBODY, NOBODY, &[]);
    let (out, refused_pid) = cli_as(&daemon, &nobody, &rw, &["net-destroy", "aud1"]);
    assert!(!out.status.success());

    let log = daemon.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("virtnetd::audit"))
        .collect();
    let line_of = |pid: u32| {
        audit
            .iter()
            .find(|l| l.contains(&format!(" pid={pid} ")))
            .unwrap_or_else(|| panic!("no audit line for pid {pid} in:\n{}", audit.join("\n")))
            .to_string()
    };
    let define = line_of(define_pid);
    for field in [
        "uid=0 ",
        "verb=POST /v1/networks ",
        "object=\"aud1\"",
        "status=201",
        " change",
    ] {
        assert!(define.contains(field), "{field} missing in {define}");
    }
    let start = line_of(start_pid);
    for field in [
        "uid=0 ",
        "verb=POST /v1/networks/:id/start ",
        "object=\"aud1\"",
        "status=200",
    ] {
        assert!(start.contains(field), "{field} missing in {start}");
    }
    let refused = line_of(refused_pid);
    for field in [
        "uid=65534 ",
        "verb=POST",
        "request refused",
        "code=Forbidden",
    ] {
        assert!(refused.contains(field), "{field} missing in {refused}");
    }
    // One line per change; reads are not audited.
    assert!(
        !audit
            .iter()
            .any(|l| l.contains(&format!(" pid={list_pid} "))),
        "a read was audited:\n{}",
        audit.join("\n")
    );
    assert_eq!(
        audit.iter().filter(|l| l.contains(" change")).count(),
        2,
        "{}",
        audit.join("\n")
    );
}

/// The read-only socket is open to every local user: one of them holding many connections
/// must not use up the daemon's file descriptors, and root must still get in.
#[test]
fn unprivileged_peers_cannot_use_up_the_daemons_connections() {
    use std::io::{BufRead, BufReader, Write};
    const HOLDER: &str = "import socket, sys\n\
        path, n = sys.argv[1], int(sys.argv[2])\n\
        def get(s):\n    \
            try:\n        \
                s.sendall(b'GET /v1/networks HTTP/1.1\\r\\nHost: l\\r\\nConnection: close\\r\\n\\r\\n')\n        \
                data = b''\n        \
                while True:\n            \
                    c = s.recv(65536)\n            \
                    if not c: return data\n            \
                    data += c\n    \
            except OSError:\n        \
                return b''\n\
        held = []\n\
        for i in range(n):\n    \
            s = socket.socket(socket.AF_UNIX); s.connect(path); held.append(s)\n\
        extra = socket.socket(socket.AF_UNIX); extra.connect(path)\n\
        print('extra', get(extra)[:12].decode(errors='replace') or 'closed', flush=True)\n\
        sys.stdin.readline()\n\
        for s in held: s.close()\n\
        import time\n\
        for attempt in range(400):\n    \
            again = socket.socket(socket.AF_UNIX); again.connect(path)\n    \
            answer = get(again)[:12].decode(errors='replace')\n    \
            if answer: break\n    \
            time.sleep(0.05)\n\
        print('again', answer or 'closed', flush=True)\n";
    let daemon = daemon("connlim", &[]);
    let ro = ro_socket(&daemon);
    let mut args = as_user(NOBODY, NOBODY, &[]);
    args.extend(
        [
            "/usr/bin/python3",
            "-c",
            HOLDER,
            &ro.to_string_lossy(),
            &virtnetd::server::MAX_UNPRIVILEGED_CONNECTIONS.to_string(),
        ]
        .map(String::from),
    );
    let mut holder = daemon
        .ns()
        .command(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the connection holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    let mut next_line = || {
        lines
            .next()
            .and_then(|l| l.ok())
            .unwrap_or_else(|| panic!("the holder ended early:\n{}", daemon.log()))
    };
    // The limit's worth of connections held open: the next one is closed unanswered.
    assert_eq!(next_line(), "extra closed");
    // Root is not limited, on either socket.
    for socket in [daemon.socket(), ro.clone()] {
        let (status, answer) = http_as(&daemon, &[], &socket, "GET", "/v1/networks", "");
        assert_eq!(status, 200, "root through {}: {answer}", socket.display());
    }
    // Once the holder lets go, it is served again (as soon as the daemon has seen the held
    // connections close).
    writeln!(holder.stdin.as_mut().expect("stdin")).expect("release the holder");
    assert_eq!(next_line(), "again HTTP/1.1 200");
    assert!(holder.wait().expect("holder exit").success());
    assert!(daemon
        .log()
        .contains("too many connections from unprivileged peers"));
}
