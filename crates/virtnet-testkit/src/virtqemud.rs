//! The real hypervisor daemon: libvirt 9.0's split QEMU daemon `virtqemud`, built from Debian
//! 12's source package by `scripts/build-libvirt.sh` (Debian packages only the monolithic
//! libvirtd), run isolated in a test's network namespace.
//!
//! [`Virtqemud::start`] runs it as `virtqemud-inner.sh` (beside this crate's `Cargo.toml`)
//! describes: in the test's [`Netns`] (the bridges and the taps it creates for guests live
//! there), in a PID namespace of its own (`bench/pid1.sh` is PID 1 and reaps the QEMU processes
//! libvirt daemonizes; everything in it dies with it) and in a private mount namespace in which
//! `/run` is an empty tmpfs, `/run/libvirt` is a directory the test chooses, `/etc/libvirt` holds
//! only the harness's configuration and `/var/lib`, `/var/cache`, `/var/log` are overlays
//! writing into the harness's scratch directory. virtqemud then serves
//! `<run dir>/virtqemud-sock` and, for a guest NIC of type `network`, connects to
//! `/run/libvirt/virtnetworkd-sock` (libvirt spells it `/var/run/libvirt/…`) — which is
//! `<run dir>/virtnetworkd-sock` on the host, where a test's network daemon (virtnetd with
//! `--libvirt-run-dir <run dir>`) serves it.
//!
//! [`Virtnetworkd`] runs libvirt 9.0's own network daemon the same way, serving
//! `<run dir>/virtnetworkd-sock`: the reference to compare virtnetd with, and proof that a
//! guest with a NIC of type `network` boots under virtqemud when a network daemon answers.
//!
//! The daemon is killed (SIGKILL to the `unshare` holding the PID namespace, which takes every
//! process in it along) when the [`Virtqemud`] or [`Virtnetworkd`] is dropped, also while a
//! failed test unwinds; [`LibvirtDaemon::restart_daemon`] restarts the daemon alone.
//!
//! Guests: [`DomainSpec`] writes the domain XML of the test guest (`tests/guest/build.sh`:
//! kernel + initramfs booted directly, serial console logged into a file the test reads with
//! [`Virtqemud::wait_console`] and served on a unix socket [`Virtqemud::console_run`] writes
//! commands to), with its NIC on a bridge or on a libvirt network; the same guest through
//! `virt-install` with [`DomainSpec::virt_install_args`].
//!
//! A test of virtnetd as libvirt's network daemon runs both in one namespace, sharing the
//! directory virtnetd serves libvirt's sockets in:
//!
//! ```ignore
//! let ns = Netns::new("e2e");
//! let run = tempfile::tempdir()?; // becomes /run/libvirt for virtqemud
//! let virtnetd = Daemon::start_in_with(&ns, &["--libvirt-run-dir", &run.path().to_string_lossy()]);
//! virtnetd.define(&default_nat_network_xml); // + net-start
//! let qemud = Virtqemud::start(&ns, run.path());
//! let spec = DomainSpec::new(&qemud, "vm1", "52:54:00:12:34:56", Nic::Network("default".into()));
//! qemud.create(&spec); // virtqemud asks virtnetd for the port, plugs vnetN into its bridge
//! let lease = qemud.wait_lease("vm1", BOOT_TIMEOUT);
//! qemud.virsh_ok(&["domifaddr", "vm1", "--source", "lease"]);
//! qemud.console_run_ok("vm1", "wget -q -O - http://203.0.113.1/", timeout);
//! ```
//!
//! `$VIRTNET_LIBVIRT_DIR` names the build (set by `scripts/setup.sh`); without it the build
//! script runs once per process (a no-op when its cache is complete).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::netns::{owned_temp_dir, Netns, NsChild, TMP_PREFIX_VIRTQEMUD};
use crate::qemu::{guest_image, Lease};

/// How long [`LibvirtDaemon::start`] waits for the daemon to answer `virsh uri`: generous,
/// because the machine running the tests may be loaded (a start takes about a second).
pub const VIRTQEMUD_TIMEOUT: Duration = Duration::from_secs(120);

/// Debian's virsh (libvirt-clients 9.0), the client the tests drive the daemon with.
pub const VIRSH: &str = "/usr/bin/virsh";

/// Debian's virt-install (package `virtinst`, 4.1).
pub const VIRT_INSTALL: &str = "/usr/bin/virt-install";

/// The emulator the domains name: Debian's QEMU.
pub const QEMU_SYSTEM: &str = "/usr/bin/qemu-system-x86_64";

/// The libvirt 9.0 build (`scripts/build-libvirt.sh`'s cache): `$VIRTNET_LIBVIRT_DIR`, else
/// what the build script prints (it is run once per process). Panics with the script's output
/// when the build fails or holds no `sbin/virtqemud`.
pub fn libvirt_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("VIRTNET_LIBVIRT_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => run_build_script(),
        };
        assert!(
            dir.join("sbin/virtqemud").is_file(),
            "{} holds no sbin/virtqemud (see scripts/build-libvirt.sh)",
            dir.display()
        );
        dir
    })
    .as_path()
}

fn run_build_script() -> PathBuf {
    crate::run_build_script(&repo_path("scripts/build-libvirt.sh"))
}

/// A path relative to the repository's root.
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The libvirt domain type for the test guests: `qemu` (TCG emulation) unless
/// `$VIRTNET_QEMU_ACCEL` asks for KVM and `/dev/kvm` exists (see [`crate::qemu`] for why TCG is
/// the default even where `/dev/kvm` exists).
pub fn domain_type() -> &'static str {
    let wants_kvm = std::env::var("VIRTNET_QEMU_ACCEL").is_ok_and(|a| a.starts_with("kvm"));
    if wants_kvm && Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "qemu"
    }
}

/// A libvirt 9.0 daemon of the build (`virtqemud`, `virtnetworkd`) running isolated in a
/// test's namespace (see the module docs); [`Virtqemud`] and [`Virtnetworkd`] are the two the
/// tests use.
#[derive(Debug)]
pub struct LibvirtDaemon {
    // Declared first so the daemon dies before the directories it uses go.
    child: NsChild,
    ns: Netns,
    run_dir: PathBuf,
    program: &'static str,
    scheme: &'static str,
    // PID 1 of the daemon's PID namespace (as the host sees it) and its start time: its end
    // is the end of every process in that namespace.
    init: Mutex<Option<(u32, Option<u64>)>>,
    // Last: the scratch directory (configuration, overlays' upper layers, logs, consoles).
    scratch: tempfile::TempDir,
}

impl LibvirtDaemon {
    /// Starts `program` (`virtqemud`, `virtnetworkd`) of the build in `ns` with `run_dir` (an
    /// existing directory of the test's) as its `/run/libvirt`, and waits until
    /// `virsh -c <scheme>+unix:///system?socket=… uri` answers. Panics with the daemon's
    /// log when it does not come up.
    pub fn start(
        ns: &Netns,
        run_dir: &Path,
        program: &'static str,
        scheme: &'static str,
    ) -> LibvirtDaemon {
        assert!(
            run_dir.is_dir(),
            "the /run/libvirt of {program} must be an existing directory: {}",
            run_dir.display()
        );
        let run_dir = run_dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", run_dir.display()));
        let libvirt = libvirt_dir();
        let scratch = owned_temp_dir(TMP_PREFIX_VIRTQEMUD, &format!("{program}-{}", ns.name()));
        let out_path = scratch.path().join("inner.out");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a file handle: {e}"));
        let inner = Path::new(env!("CARGO_MANIFEST_DIR")).join("virtqemud-inner.sh");
        let pid1 = repo_path("bench/pid1.sh");
        let args: Vec<String> = crate::UNSHARE_ISOLATED
            .into_iter()
            .chain(["bash"])
            .map(String::from)
            .chain(
                [
                    inner.as_path(),
                    scratch.path(),
                    run_dir.as_path(),
                    libvirt,
                    pid1.as_path(),
                ]
                .iter()
                .map(|p| p.to_string_lossy().into_owned()),
            )
            .chain([program.to_string()])
            .collect();
        let child = ns.spawn_with(&args, |cmd| {
            cmd.stdout(out).stderr(err);
        });
        let daemon = LibvirtDaemon {
            child,
            ns: ns.clone(),
            run_dir,
            program,
            scheme,
            init: Mutex::new(None),
            scratch,
        };
        daemon.wait_ready();
        // unshare's only child is the namespace's PID 1 (it exists: the daemon answered).
        let init = first_child(daemon.child.pid());
        *lock(&daemon.init) = init.map(|pid| (pid, start_time(pid)));
        daemon
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + VIRTQEMUD_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait() {
                panic!(
                    "{} exited early ({status}):\n{}",
                    self.program,
                    self.diagnostics()
                );
            }
            if self.socket().exists() && self.virsh(&["uri"]).status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} did not answer:\n{}", self.program, self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The namespace the daemon runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The directory that is `/run/libvirt` for the daemon.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The daemon's read-write socket (`<run dir>/<program>-sock`).
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join(format!("{}-sock", self.program))
    }

    /// The URI clients on the host reach the daemon with:
    /// `<scheme>+unix:///system?socket=<run dir>/<program>-sock`.
    pub fn uri(&self) -> String {
        format!(
            "{}+unix:///system?socket={}",
            self.scheme,
            self.socket().display()
        )
    }

    /// A scratch directory that exists at the same path for the test and inside the daemon's
    /// namespaces (QEMU too): consoles, disks and other files of the test's guests go here.
    /// Removed on drop.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// Runs Debian's `virsh -c <uri> args...` and returns its output.
    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new(VIRSH)
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {VIRSH}: {e}"))
    }

    /// Like [`LibvirtDaemon::virsh`], panicking with virsh's stderr and the daemon's log unless
    /// it succeeds; returns its stdout.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's log (warnings and errors; `$VIRTQEMUD_LOG_LEVEL` 1 or 2 for more).
    pub fn log(&self) -> String {
        read_lossy(&self.scratch_dir().join(format!("log/{}.log", self.program)))
    }

    /// The daemon's log and what its wrapper printed, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- {} log:\n{}\n--- wrapper output:\n{}",
            self.program,
            self.log(),
            read_lossy(&self.scratch_dir().join("inner.out"))
        )
    }

    /// The PID (as the host sees it) of the running daemon, if one runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        crate::netns_pids(self.ns.name())
            .into_iter()
            .filter(|&pid| crate::pid_running(pid))
            .find(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == self.program)
            })
    }

    /// Restarts the daemon alone, as `systemctl restart virtqemud` does on a host: SIGTERM,
    /// and the wrapper starts it again; what it started (guests' QEMU, dnsmasq) is left alone
    /// and the new daemon reconnects to it. Returns once the new daemon answers
    /// `virsh uri`.
    pub fn restart_daemon(&self) {
        let old = self
            .daemon_pid()
            .unwrap_or_else(|| panic!("no {} runs:\n{}", self.program, self.diagnostics()));
        let marker = self.scratch_dir().join("restart");
        std::fs::write(&marker, b"")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
        // SAFETY: kill(2) on the daemon this harness started (found in its own namespace
        // just now); no memory is involved.
        unsafe { libc::kill(old as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + VIRTQEMUD_TIMEOUT;
        while crate::pid_running(old) {
            assert!(
                Instant::now() < deadline,
                "{} {old} did not stop on SIGTERM:\n{}",
                self.program,
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_ready();
    }

    /// Stops the daemon and every process it started (the guests' QEMU too): SIGKILL to the
    /// `unshare` holding its PID namespace, which ends the namespace.
    ///
    /// Returns once the namespace's PID 1 is gone: the kernel ends it only after every other
    /// process in the namespace was reaped, so nothing the daemon started is still exiting
    /// (a killed QEMU can take a moment to close its files and taps).
    pub fn stop(&self) {
        self.child.kill();
        let Some((pid, started)) = lock(&self.init).take() else {
            return;
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while crate::pid_running(pid) && start_time(pid) == started {
            if Instant::now() > deadline {
                eprintln!(
                    "virtnet-testkit: PID 1 ({pid}) of {}'s PID namespace survived SIGKILL",
                    self.program
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How long [`LibvirtDaemon::stop`] waits for the daemon's PID namespace to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The first child of process `pid`, from `/proc/PID/task/PID/children`.
fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// When process `pid` started (field 22 of /proc/PID/stat, clock ticks since boot): with the
/// PID, it names one process even when PIDs are reused (quickly, on a busy machine with
/// `pid_max` 32768).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Drop for LibvirtDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// libvirt 9.0's virtqemud running isolated in a test's namespace (see the module docs); the
/// daemon's own methods ([`LibvirtDaemon`]) are reached through `Deref`.
#[derive(Debug)]
pub struct Virtqemud {
    next_command: AtomicU32,
    // One connection per guest console, kept open: QEMU's socket chardev serves one client at
    // a time, and a client that disconnects and reconnects between commands can catch it
    // still holding the old connection and stall the guest's serial output.
    consoles: Mutex<HashMap<String, ConsoleConn>>,
    daemon: LibvirtDaemon,
}

impl std::ops::Deref for Virtqemud {
    type Target = LibvirtDaemon;
    fn deref(&self) -> &LibvirtDaemon {
        &self.daemon
    }
}

impl Virtqemud {
    /// Starts virtqemud in `ns` with `run_dir` (an existing directory of the test's) as its
    /// `/run/libvirt`, and waits until `virsh uri` answers through its socket. The network
    /// daemon it uses for NICs of type `network` is whatever serves
    /// `run_dir/virtnetworkd-sock`. Panics with the daemon's log when it does not come up.
    pub fn start(ns: &Netns, run_dir: &Path) -> Virtqemud {
        // The guest image is built before the daemon starts, so a test's first domain does
        // not wait for it.
        guest_image();
        Virtqemud {
            next_command: AtomicU32::new(1),
            consoles: Mutex::default(),
            daemon: LibvirtDaemon::start(ns, run_dir, "virtqemud", "qemu"),
        }
    }

    /// Runs Debian's `virt-install --connect <uri> args...` (its log goes to the scratch
    /// directory, not to the caller's home) and returns its output.
    pub fn virt_install(&self, args: &[String]) -> Output {
        Command::new(VIRT_INSTALL)
            .arg("--connect")
            .arg(self.uri())
            .args(args)
            .env("XDG_CACHE_HOME", self.scratch_dir().join("xdg-cache"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {VIRT_INSTALL} (package virtinst): {e}"))
    }

    /// Writes `xml` to the scratch directory and defines the domain from it
    /// (`virsh define`); panics when virsh refuses it.
    pub fn define(&self, name: &str, xml: &str) {
        let path = self.scratch_dir().join(format!("{name}.xml"));
        std::fs::write(&path, xml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self.virsh_ok(&["define", &path.to_string_lossy()]);
    }

    /// Defines the domain `spec` describes and starts it (`virsh define` + `virsh start`);
    /// panics with virsh's error when either fails. The guest then boots on its own: see
    /// [`Virtqemud::wait_lease`] and [`Virtqemud::console_run`].
    pub fn create(&self, spec: &DomainSpec) {
        self.define(&spec.name, &spec.xml());
        self.virsh_ok(&["start", &spec.name]);
    }

    /// libvirt's log of one domain's QEMU (`/var/log/libvirt/qemu/<name>.log` inside): the
    /// command line libvirt ran and QEMU's stderr.
    pub fn qemu_log(&self, domain: &str) -> String {
        read_lossy(
            &self
                .scratch_dir()
                .join(format!("ovl/var_log.up/libvirt/qemu/{domain}.log")),
        )
    }

    /// The file [`DomainSpec::xml`] logs the serial console of domain `name` into: everything
    /// the guest printed since QEMU started, whether or not anyone was connected. (QEMU logs a
    /// byte again when a write to a connected client has to be retried, so after
    /// [`Virtqemud::console_run`] connected, the connection's own copy is the exact one.)
    pub fn console_path(&self, name: &str) -> PathBuf {
        self.scratch_dir().join(format!("console-{name}.log"))
    }

    /// The unix socket QEMU serves the serial console of domain `name` on (what a test writes
    /// the guest's commands to; see [`Virtqemud::console_run`]).
    pub fn console_socket(&self, name: &str) -> PathBuf {
        self.scratch_dir().join(format!("console-{name}.sock"))
    }

    /// Runs `cmd` (one line of shell) in the test guest `name` through its serial console (the
    /// command protocol of `tests/guest/build.sh`) and returns its exit status and output.
    /// Waits for the guest's command loop first; panics with the console after `timeout`.
    pub fn console_run(&self, name: &str, cmd: &str, timeout: Duration) -> (i32, String) {
        assert!(
            !cmd.contains('\n') && cmd.len() < 3000,
            "one line of shell (under 3000 bytes) only: {cmd:?}"
        );
        self.wait_console(name, "VIRTNET ready", timeout);
        let id = self.next_command.fetch_add(1, Ordering::Relaxed);
        self.console_write(name, format!("{id} {cmd}\n").as_bytes());
        let end = format!("VIRTNET-END {id} rc=");
        let end_line = self.wait_console(name, &end, timeout);
        let rc = end_line
            .split(&end)
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        let begin = format!("VIRTNET-BEGIN {id}");
        // From the text the end was seen in: `wait_console` may find it in QEMU's log file
        // before the reading thread has received it (a loaded machine), and the stream read
        // then held no output at all.
        let text = [self.console_stream(name), self.console(name)]
            .into_iter()
            .find(|t| t.contains(&begin) && t.contains(&end))
            .unwrap_or_default();
        let output: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .skip_while(|l| *l != begin)
            .skip(1)
            .take_while(|l| !l.starts_with(&end))
            .collect();
        (rc, output.join("\n").trim_end().to_string())
    }

    /// Writes `bytes` to the console of `name` over the kept connection; connects (again)
    /// when there is none or the old one belonged to a QEMU that has gone (the guest was
    /// destroyed and started again).
    fn console_write(&self, name: &str, bytes: &[u8]) {
        let mut consoles = lock(&self.consoles);
        if let Some(console) = consoles.get_mut(name) {
            if console.conn.write_all(bytes).is_ok() {
                return;
            }
        }
        let socket = self.console_socket(name);
        let mut conn = UnixStream::connect(&socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
        // A thread reads what the guest prints from now on, so the socket's buffer never
        // fills (QEMU would hold the serial port until it drains). It ends at EOF: when QEMU
        // goes or the harness drops the connection.
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = conn
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a socket: {e}"));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                lock(&sink).extend_from_slice(&buf[..n]);
            }
        });
        conn.write_all(bytes)
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", socket.display()));
        consoles.insert(name.to_string(), ConsoleConn { conn, output });
    }

    /// What the guest `name` printed since the harness connected to its console (empty
    /// before the first [`Virtqemud::console_run`]).
    pub fn console_stream(&self, name: &str) -> String {
        lock(&self.consoles)
            .get(name)
            .map(|c| String::from_utf8_lossy(&lock(&c.output)).into_owned())
            .unwrap_or_default()
    }

    /// Like [`Virtqemud::console_run`], panicking (with the output and the console) unless the
    /// command exits 0; returns the output.
    pub fn console_run_ok(&self, name: &str, cmd: &str, timeout: Duration) -> String {
        let (rc, out) = self.console_run(name, cmd, timeout);
        assert!(
            rc == 0,
            "guest {name}: {cmd:?} exited {rc}:\n{out}\nconsole:\n{}",
            self.console(name)
        );
        out
    }

    /// The console of domain `name` so far (its log file).
    pub fn console(&self, name: &str) -> String {
        read_lossy(&self.console_path(name))
    }

    /// Waits until the console of domain `name` holds a (complete) line containing `pattern`,
    /// in what the harness's connection received or else in the log file, and returns that
    /// line; panics after `timeout` with the console and the logs.
    pub fn wait_console(&self, name: &str, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            for text in [self.console_stream(name), self.console(name)] {
                // Only whole lines: the guest may be in the middle of writing the last one.
                let complete = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
                if let Some(line) = complete.lines().find(|l| l.contains(pattern)) {
                    return line.trim_end_matches('\r').to_string();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no {pattern:?} on the console of {name} within {timeout:?}:\n{}\n\
                     --- qemu log:\n{}\n{}",
                    self.console(name),
                    self.qemu_log(name),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the test guest `name` to report its DHCP lease on its console.
    pub fn wait_lease(&self, name: &str, timeout: Duration) -> Lease {
        let line = self.wait_console(name, "VIRTNET lease ", timeout);
        Lease::parse(&line).unwrap_or_else(|| panic!("unparsable lease line: {line}"))
    }

    /// `virsh destroy NAME`, then waits (up to 20 s) until no QEMU runs in the namespace;
    /// panics when one still does.
    pub fn destroy(&self, name: &str) {
        self.virsh_ok(&["destroy", name]);
        assert!(
            crate::eventually(Duration::from_secs(20), || self.qemu_pids().is_empty()),
            "QEMU still runs after virsh destroy {name}: {:?}",
            self.qemu_pids()
        );
    }

    /// Hot-plugs a virtio NIC with `mac` on libvirt network `network` into the running guest
    /// `name` (`virsh attach-interface --type network --live`), then runs busybox `udhcpc` on
    /// the guest's new `eth1` and returns its lease.
    pub fn hotplug_network_nic(&self, name: &str, network: &str, mac: &str) -> Lease {
        self.virsh_ok(&[
            "attach-interface",
            name,
            "--type",
            "network",
            "--source",
            network,
            "--model",
            "virtio",
            "--mac",
            mac,
            "--live",
        ]);
        let leased = self.console_run_ok(
            name,
            "i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             ip link set eth1 up && udhcpc -i eth1 -f -q -n -t 10 -T 1 -s /etc/udhcpc.sh",
            crate::qemu::BOOT_TIMEOUT,
        );
        leased
            .lines()
            .find_map(Lease::parse)
            .unwrap_or_else(|| panic!("no lease on eth1:\n{leased}"))
    }

    /// The PIDs (as the host sees them) of the QEMU processes running in virtqemud's namespace.
    pub fn qemu_pids(&self) -> Vec<u32> {
        crate::netns_pids(self.ns().name())
            .into_iter()
            .filter(|&pid| crate::pid_running(pid))
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim().starts_with("qemu-system"))
            })
            .collect()
    }
}

/// libvirt 9.0's own network daemon, virtnetworkd, running isolated like [`Virtqemud`] (its
/// dnsmasq and firewall rules live in the test's namespace): the reference virtnetd's libvirt
/// front end can be compared with, and a network daemon for virtqemud before virtnetd serves
/// one. Its [`LibvirtDaemon`] methods are reached through `Deref`; `virsh` talks to it with
/// `network+unix:///system?socket=<run dir>/virtnetworkd-sock`.
#[derive(Debug)]
pub struct Virtnetworkd {
    daemon: LibvirtDaemon,
}

impl std::ops::Deref for Virtnetworkd {
    type Target = LibvirtDaemon;
    fn deref(&self) -> &LibvirtDaemon {
        &self.daemon
    }
}

impl Virtnetworkd {
    /// Starts virtnetworkd in `ns` serving `run_dir/virtnetworkd-sock` (`run_dir` is its
    /// `/run/libvirt`); waits until `virsh uri` answers. Panics with its log otherwise.
    pub fn start(ns: &Netns, run_dir: &Path) -> Virtnetworkd {
        Virtnetworkd {
            daemon: LibvirtDaemon::start(ns, run_dir, "virtnetworkd", "network"),
        }
    }
}

/// The harness's connection to a guest's console and what it received.
#[derive(Debug)]
struct ConsoleConn {
    conn: UnixStream,
    output: Arc<Mutex<Vec<u8>>>,
}

/// Locks a mutex even when a panicking thread poisoned it: cleanup and diagnostics must work.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Where a test guest's NIC is plugged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// `<interface type='bridge'><source bridge='…'/>`: a bridge in virtqemud's namespace.
    Bridge(String),
    /// `<interface type='network'><source network='…'/>`: a network of the network daemon
    /// serving `/run/libvirt/virtnetworkd-sock` (virtnet, through libvirt's RPC).
    Network(String),
}

/// The libvirt domain of the test guest (`tests/guest/build.sh`): 256 MiB, one vCPU, the
/// kernel and initramfs booted directly, one virtio NIC without option ROM, the serial
/// console on a unix socket (for commands) and logged into a file (for reading), free PCIe
/// slots for hot-plugged NICs.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    /// The domain's name.
    pub name: String,
    /// The hostname the guest sends with its DHCP requests (a DNS label).
    pub hostname: String,
    /// The NIC's MAC address.
    pub mac: String,
    /// Where the NIC is plugged.
    pub nic: Nic,
    /// The serial console's log file (see [`Virtqemud::console_path`]).
    pub console: PathBuf,
    /// The serial console's socket (see [`Virtqemud::console_socket`]).
    pub console_socket: PathBuf,
}

impl DomainSpec {
    /// A guest called `name` (also its hostname) on `nic`, its console where `daemon`
    /// reads it.
    pub fn new(daemon: &Virtqemud, name: &str, mac: &str, nic: Nic) -> DomainSpec {
        DomainSpec {
            name: name.to_string(),
            hostname: name.to_string(),
            mac: mac.to_string(),
            nic,
            console: daemon.console_path(name),
            console_socket: daemon.console_socket(name),
        }
    }

    /// The kernel command line: the guest's console, and its hostname for its init.
    pub fn cmdline(&self) -> String {
        format!(
            "console=ttyS0 quiet panic=-1 virtnet.hostname={}",
            self.hostname
        )
    }

    /// The arguments (after `--connect`) with which `virt-install` creates and starts the same
    /// guest: `--import --disk none --boot kernel=…,initrd=…,kernel_args=…`, the NIC as
    /// `--network bridge=…` or `--network network=…`, the console as `--serial file,path=…`,
    /// `--osinfo detect=on,require=off` (the initramfs is no OS libosinfo knows),
    /// `--noautoconsole` (virt-install returns once the guest runs).
    pub fn virt_install_args(&self) -> Vec<String> {
        let image = guest_image();
        let network = match &self.nic {
            Nic::Bridge(br) => format!("bridge={br}"),
            Nic::Network(net) => format!("network={net}"),
        };
        vec![
            "--name".into(),
            self.name.clone(),
            "--virt-type".into(),
            domain_type().into(),
            "--memory".into(),
            "256".into(),
            "--vcpus".into(),
            "1".into(),
            "--import".into(),
            "--disk".into(),
            "none".into(),
            "--boot".into(),
            format!(
                "kernel={},initrd={},kernel_args={}",
                image.kernel.display(),
                image.initrd.display(),
                self.cmdline()
            ),
            "--network".into(),
            format!("{network},mac={},model=virtio", self.mac),
            "--graphics".into(),
            "none".into(),
            "--serial".into(),
            format!(
                "unix,mode=bind,path={},log.file={},log.append=off",
                self.console_socket.display(),
                self.console.display()
            ),
            "--osinfo".into(),
            "detect=on,require=off".into(),
            "--noautoconsole".into(),
        ]
    }

    /// The domain XML.
    pub fn xml(&self) -> String {
        let image = guest_image();
        let source = match &self.nic {
            Nic::Bridge(br) => format!("<interface type='bridge'><source bridge='{br}'/>"),
            Nic::Network(net) => format!("<interface type='network'><source network='{net}'/>"),
        };
        format!(
            "<domain type='{ty}'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{QEMU_SYSTEM}</emulator>
    {source}
      <mac address='{mac}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <serial type='unix'>
      <source mode='bind' path='{socket}'/>
      <log file='{console}' append='off'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
    <!-- Free PCIe slots for NICs hot-plugged with virsh attach-interface (libvirt adds none
         of its own on q35; the guest sees them through ACPI, hence <acpi/> above). -->
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
  </devices>
</domain>
",
            ty = domain_type(),
            name = self.name,
            kernel = image.kernel.display(),
            initrd = image.initrd.display(),
            cmdline = self.cmdline(),
            mac = self.mac,
            console = self.console.display(),
            socket = self.console_socket.display(),
        )
    }
}
