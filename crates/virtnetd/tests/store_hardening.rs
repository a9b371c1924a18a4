//! Issue 11, findings 1 and 2, reproduced the way they were found, against the real daemon:
//!
//! - definitions the API accepted whose stored (normalised) form was over the input limits
//!   kept virtnetd from ever starting again; one unreadable record stopped the daemon;
//! - one "disk full" broke the store until a restart (every later transaction failed, DHCP
//!   stopped acknowledging), and a truncated store file panicked with a backtrace.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{virtnet_bin, virtnetd_bin, Daemon, Lab, Netns, NsChild};

/// The NAT network the DHCP tests lease from.
const DEFAULT_NET: &str = "<network><name>default</name><forward mode='nat'/>\
    <bridge name='virbr0'/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
    <range start='192.168.122.100' end='192.168.122.199'/></dhcp></ip></network>";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `xml` to a file in the daemon's directory and runs `net-define` on it.
fn define_file(daemon: &Daemon, file: &str, xml: &str) -> Output {
    let path = daemon.dir().join(file);
    std::fs::write(&path, xml).expect("write the XML");
    daemon.cli(&["net-define", &path.to_string_lossy()])
}

/// `count` static hosts written without whitespace, in 10.0.0.0/8.
fn compact_hosts(count: u32) -> String {
    (0..count)
        .map(|i| {
            let a = i + 2;
            format!(
                "<host mac='52:54:00:{:02x}:{:02x}:{:02x}' ip='10.{}.{}.{}'/>",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff,
                (a >> 16) & 0xff,
                (a >> 8) & 0xff,
                a & 0xff
            )
        })
        .collect()
}

fn hosts_network(name: &str, hosts: u32) -> String {
    format!(
        "<network><name>{name}</name><bridge name='vb-{name}'/><ip address='10.0.0.1' \
         prefix='8'><dhcp>{}</dhcp></ip></network>",
        compact_hosts(hosts)
    )
}

/// Finding 1 as found: a `<description>` of 400,000 `>` (400 KB in, 1.6 MB stored as
/// `&gt;`) and 10,500 hosts without whitespace (508 KB in, more than 20,000 nodes once
/// indented) were accepted, and the next start failed with "stored network 'gt' is
/// unreadable". Now both are refused with the element and the limit named, nothing is
/// stored, and the daemon restarts with its other network.
#[test]
fn definitions_whose_stored_form_is_over_the_limits_are_refused_and_restart_works() {
    let ns = Netns::new("store1");
    let mut daemon = Daemon::start_in(&ns);
    daemon.define(DEFAULT_NET);

    let gt = format!(
        "<network><name>gt</name><description>{}</description></network>",
        ">".repeat(400_000)
    );
    let out = define_file(&daemon, "gt.xml", &gt);
    assert!(!out.status.success(), "accepted: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("description"), "{err}");
    assert!(err.contains("1048576"), "{err}");

    let hosts = hosts_network("hosts", 10_500);
    assert!(hosts.len() < 1024 * 1024 && !hosts.contains('\n'));
    let out = define_file(&daemon, "hosts.xml", &hosts);
    assert!(!out.status.success(), "accepted: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("ip[0].dhcp"), "{err}");
    assert!(err.contains("20000"), "{err}");

    // Nothing was stored: the restart reads the one network there is.
    daemon.restart();
    assert_eq!(
        daemon.cli_ok(&["net-list", "--all", "--name"]).trim(),
        "default"
    );
}

/// The largest number of compact hosts whose stored form is still within the limits.
fn most_hosts_storable() -> u32 {
    // What the daemon stores: the definition completed by `prepare` (UUID, MAC, bridge
    // defaults), which checks the stored form last.
    let fits = |n: u32| {
        virtnet_model::Network::from_xml(&hosts_network("upd", n))
            .and_then(|mut net| virtnet_model::define::prepare(&mut net, &[], &|_| false))
            .is_ok()
    };
    let (mut lo, mut hi) = (9_000u32, 10_500u32);
    assert!(fits(lo) && !fits(hi));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            lo = mid
        } else {
            hi = mid
        }
    }
    lo
}

/// Finding 1, `net-update`: adding hosts one by one to a network near the limit is accepted
/// while its stored form reads back, then refused naming the DHCP block and the limit; the
/// daemon restarts with the network as last accepted.
#[test]
fn net_update_cannot_push_a_network_past_the_limits() {
    let most = most_hosts_storable();
    let ns = Netns::new("store2");
    let mut daemon = Daemon::start_in(&ns);
    let out = define_file(&daemon, "upd.xml", &hosts_network("upd", most - 1));
    assert!(out.status.success(), "{}", stderr(&out));
    let host = |i: u32| {
        format!(
            "<host mac='52:54:01:00:00:{i:02x}' ip='10.200.0.{}'/>",
            i + 1
        )
    };
    let update = |i: u32| {
        daemon.cli(&[
            "net-update",
            "upd",
            "add",
            "ip-dhcp-host",
            &host(i),
            "--config",
        ])
    };
    let first = update(1);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = update(2);
    assert!(!second.status.success(), "accepted past the limit");
    let err = stderr(&second);
    assert!(err.contains("ip[0].dhcp"), "{err}");
    assert!(err.contains("20000"), "{err}");

    daemon.restart();
    let xml = daemon.cli_ok(&["net-dumpxml", "upd"]);
    assert_eq!(xml.matches("<host ").count() as u32, most);
}

/// Finding 1, the set-aside rule: a record that cannot be read (written here straight into
/// the stopped daemon's store) no longer stops the daemon. The other network runs and leases
/// to a guest, `net-list` keeps its stdout and warns about the record on stderr, and
/// `net-undefine` removes it.
#[test]
fn an_unreadable_record_is_set_aside_and_everything_else_runs() {
    let lab = Lab::new("unreadable");
    let mut daemon = Daemon::start_in(lab.host());
    daemon.define(DEFAULT_NET);
    daemon.cli_ok(&["net-autostart", "default"]);
    daemon.cli_ok(&["net-start", "default"]);
    daemon.stop();
    write_unreadable_record(&daemon, "gt");
    daemon.restart();

    let out = daemon.cli(&["net-list", "--all", "--name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "default");
    let warning = stderr(&out);
    assert!(
        warning.contains("warning: stored network 'gt' cannot be read"),
        "{warning}"
    );
    assert!(daemon.log().contains("stored network is unreadable"));

    // The other network was restored and serves DHCP.
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    guest.udhcpc(&udhcpc_script(lab.tmp_dir()), "vm1");
    assert_eq!(guest.ipv4_addrs().len(), 1);

    // The name stays taken until the record is removed.
    let out = define_file(&daemon, "gt.xml", "<network><name>gt</name></network>");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("net-undefine gt"), "{}", stderr(&out));
    daemon.cli_ok(&["net-undefine", "gt"]);
    let out = daemon.cli(&["net-list", "--all", "--name"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // Gone from the store, not only from this run's memory.
    daemon.restart();
    let out = daemon.cli(&["net-list", "--all", "--name"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "default");
}

/// Writes a network record that cannot be read into the store of the stopped `daemon`.
fn write_unreadable_record(daemon: &Daemon, name: &str) {
    let path = daemon.state_dir().join(virtnetd::store::DB_FILE);
    let (store, _, _) = virtnetd::store::Store::open(&path, None).expect("open the store");
    store
        .put_raw(name, b"{\"config\":\"<network><name>gt\",\"generation\":1}")
        .expect("write the bad record");
}

/// IPv4 addresses of `dev` in `ns`, as `ip -o` prints them.
fn ipv4_of(ns: &Netns, dev: &str) -> String {
    String::from_utf8_lossy(&ns.ip(["-4", "-o", "addr", "show", "dev", dev]).stdout).into_owned()
}

/// Finding 1, as seen: after a `kill -9` during `iface-bridge` the host stayed bridged,
/// because the daemon never got as far as the crash recovery. With an unreadable record in
/// the store the restarted daemon now undoes the half-made bridge all the same.
#[test]
fn an_unreadable_record_does_not_stop_the_iface_bridge_recovery() {
    let host = Netns::new("hbstore");
    let lan = Netns::new("hbslan");
    host.veth_to("eth0", &lan, "lan0");
    lan.ip_ok(["addr", "add", "198.51.100.1/24", "dev", "lan0"]);
    host.ip_ok(["addr", "add", "198.51.100.10/24", "dev", "eth0"]);
    let mut daemon = Daemon::start_in(&host);
    // The connectivity check of an address nobody has lasts seconds: kill virtnetd during it.
    let _cli = host.spawn([
        virtnet_bin().to_string_lossy().into_owned(),
        "--connect".into(),
        daemon.socket().to_string_lossy().into_owned(),
        "iface-bridge".into(),
        "eth0".into(),
        "br0".into(),
        "--check".into(),
        "198.51.100.77".into(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(ipv4_of(&host, "br0").contains("198.51.100.10") && ipv4_of(&host, "eth0").is_empty()) {
        assert!(
            Instant::now() < deadline,
            "eth0 was not bridged:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill9();
    write_unreadable_record(&daemon, "gt");
    daemon.restart();

    assert!(
        !host.ip(["link", "show", "br0"]).status.success(),
        "br0 is still there:\n{}",
        daemon.log()
    );
    assert!(
        ipv4_of(&host, "eth0").contains("198.51.100.10/24"),
        "{}",
        daemon.log()
    );
    assert!(lan.ping("198.51.100.10"));
    let out = daemon.cli(&["net-list", "--all"]);
    assert!(
        stderr(&out).contains("stored network 'gt' cannot be read"),
        "{}",
        stderr(&out)
    );
}

/// Finding 2: a truncated store file gave redb's assertion panic and a backtrace. Now it is
/// one line, `error: …`, and a non-zero exit.
#[test]
fn a_truncated_store_is_one_clean_error_line() {
    let ns = Netns::new("store3");
    let mut daemon = Daemon::start_in(&ns);
    daemon.define(DEFAULT_NET);
    daemon.stop();
    let path = daemon.state_dir().join(virtnetd::store::DB_FILE);
    let len = std::fs::metadata(&path).expect("store file").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the store");
    file.set_len(len / 2).expect("truncate");
    drop(file);

    let out = ns.exec([
        "timeout".into(),
        "60".into(),
        virtnetd_bin().to_string_lossy().into_owned(),
        "--state-dir".into(),
        daemon.state_dir().to_string_lossy().into_owned(),
        "--run-dir".into(),
        daemon.run_dir().to_string_lossy().into_owned(),
        "--libvirt-run-dir".into(),
        daemon.libvirt_run_dir().to_string_lossy().into_owned(),
        "--host-config-root".into(),
        daemon.host_config_root().to_string_lossy().into_owned(),
        "--log-level".into(),
        "off".into(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "started on a truncated store");
    assert_ne!(out.status.code(), Some(124), "hung on a truncated store");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: store "), "{err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A daemon on a small tmpfs state directory.

/// Size of the state directory's tmpfs.
const STATE_FS_SIZE: &str = "4m";

/// A virtnetd whose state directory is a small tmpfs mounted in a mount namespace of its own
/// (`unshare --mount --propagation private`), so the mount is seen by the daemon and by what
/// the test runs there with `nsenter`, and by nothing else.
struct SmallDisk {
    ns: Netns,
    child: NsChild,
    state: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl SmallDisk {
    fn start(ns: &Netns, dir: &Path) -> SmallDisk {
        let state = dir.join("state");
        let run = dir.join("run");
        let hostcfg = dir.join("hostcfg");
        for d in [&state, &run, &hostcfg] {
            std::fs::create_dir_all(d).expect("create directory");
        }
        let log = dir.join("virtnetd.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let args: Vec<String> = vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            format!(
                "mount -t tmpfs -o size={STATE_FS_SIZE},mode=0700 vnt-state \"$0\" && exec \"$@\""
            ),
            state.to_string_lossy().into_owned(),
            virtnetd_bin().to_string_lossy().into_owned(),
            "--state-dir".into(),
            state.to_string_lossy().into_owned(),
            "--run-dir".into(),
            run.to_string_lossy().into_owned(),
            "--libvirt-run-dir".into(),
            run.join("libvirt").to_string_lossy().into_owned(),
            "--host-config-root".into(),
            hostcfg.to_string_lossy().into_owned(),
            "--log-level".into(),
            "debug".into(),
        ];
        let child = ns.spawn_with(&args, |cmd| {
            cmd.stderr(log_file);
        });
        let disk = SmallDisk {
            ns: ns.clone(),
            child,
            state,
            socket: run.join(virtnet_api::SOCKET_NAME),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !disk.cli(&["net-list"]).status.success() {
            assert!(
                disk.child.try_wait().is_none(),
                "virtnetd exited:\n{}",
                disk.log()
            );
            assert!(Instant::now() < deadline, "not ready:\n{}", disk.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        disk
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec![
            virtnet_bin().to_string_lossy().into_owned(),
            "--connect".into(),
            self.socket.to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        self.ns.exec(all)
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "virtnet {args:?}: {}\n{}",
            stderr(&out),
            self.log()
        );
        stdout(&out)
    }

    /// Runs `cmd` with `sh -c` in the daemon's mount namespace (where the tmpfs is).
    fn in_mounts(&self, cmd: &str) -> Output {
        let pid = self.child.pid().to_string();
        self.ns.exec([
            "nsenter",
            "--target",
            pid.as_str(),
            "--mount",
            "--",
            "sh",
            "-c",
            cmd,
        ])
    }

    /// `POST /v1/networks` with `xml`: the HTTP status and the body.
    fn define(&self, xml: &str) -> (u16, String) {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to the API");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let head = format!(
            "POST /v1/networks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
            xml.len()
        );
        stream.write_all(head.as_bytes()).expect("send head");
        stream.write_all(xml.as_bytes()).expect("send body");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // The tmpfs goes with the daemon's mount namespace, when the daemon ends.
        self.child.terminate(Duration::from_secs(10));
    }
}

/// Finding 2 as found: after ENOSPC redb refused every later transaction, nothing reopened
/// it, defines answered 500 and DHCP stopped acknowledging, even after space was freed. Now:
/// while the state directory is full a define answers 507 `no-space` and no lease is
/// acknowledged; once the fill file is removed, defines work and a guest leases again, all
/// from the same daemon process.
#[test]
fn a_full_state_directory_answers_507_and_recovers_without_a_restart() {
    let lab = Lab::new("nospace");
    let disk = SmallDisk::start(lab.host(), lab.tmp_dir());
    let pid = disk.child.pid();
    let file = lab.tmp_dir().join("default.xml");
    std::fs::write(&file, DEFAULT_NET).expect("write XML");
    disk.cli_ok(&["net-define", &file.to_string_lossy()]);
    disk.cli_ok(&["net-start", "default"]);
    let script = udhcpc_script(lab.tmp_dir());

    // Fill the state directory: dd stops at ENOSPC.
    let fill = disk.state.join("fill");
    let out = disk.in_mounts(&format!(
        "dd if=/dev/zero of='{}' bs=64k 2>&1; df -k '{}'",
        fill.display(),
        disk.state.display()
    ));
    assert!(
        stdout(&out).contains("No space left"),
        "dd did not fill the state directory: {}",
        stdout(&out)
    );

    // A define fails with 507 and the no-space code, also through the CLI, clearly.
    let big = |name: &str| {
        format!(
            "<network><name>{name}</name><description>{}</description></network>",
            "x".repeat(200_000)
        )
    };
    let (status, body) = disk.define(&big("full1"));
    assert_eq!(status, 507, "{body}");
    let error: virtnet_api::ApiError = serde_json::from_str(&body).expect("an API error");
    assert_eq!(error.code, virtnet_api::ErrorCode::NoSpace);
    assert!(error
        .message
        .contains("no space left on the state directory"));
    let big_file = lab.tmp_dir().join("full2.xml");
    std::fs::write(&big_file, big("full2")).expect("write XML");
    let out = disk.cli(&["net-define", &big_file.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: no space left on the state directory"),
        "{}",
        stderr(&out)
    );

    // DHCP: the lease cannot be stored, so it is not acknowledged.
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    assert!(
        !guest.try_udhcpc(&script, 3),
        "a lease was acknowledged on a full disk:\n{}",
        disk.log()
    );

    // Free the space: the same daemon leases and defines again.
    let out = disk.in_mounts(&format!("rm -f '{}'", fill.display()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        guest.try_udhcpc(&script, 3),
        "no lease after space was freed:\n{}",
        disk.log()
    );
    assert_eq!(guest.ipv4_addrs().len(), 1);
    let (status, body) = disk.define(&big("full1"));
    assert!(status == 200 || status == 201, "{status} {body}");
    assert_eq!(disk.child.pid(), pid);
    assert!(disk.child.try_wait().is_none(), "the daemon exited");
    let list = disk.cli_ok(&["net-list", "--all", "--name"]);
    assert!(list.contains("full1") && list.contains("default"), "{list}");
}
