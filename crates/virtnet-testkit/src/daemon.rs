//! A real `virtnetd` running inside a namespace, and the `virtnet` CLI pointed at it.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::netns::{owned_temp_dir, Netns, NsChild, TMP_PREFIX_DAEMON};

/// How long a daemon may take to answer after start, and to exit after SIGTERM.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding the workspace's binaries for the running profile: the test binary
/// lives in `<target>/<profile>/deps/`, and the binaries one level up.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("the test binary has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        return dir.parent().expect("deps has a parent").to_path_buf();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug")
}

/// Builds `virtnetd` and `virtnet` once per process with cargo, into the target directory and
/// profile of the running tests, so the binaries tested are always the work tree's.
fn build_once() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bin_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build", "--quiet", "-p", "virtnetd", "--bin", "virtnetd", "-p", "virtnet", "--bin",
            "virtnet",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let out = cmd
            .output()
            .expect("cannot run cargo to build the binaries");
        assert!(
            out.status.success(),
            "cargo build -p virtnetd -p virtnet failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A binary: `$<env>` when set, else built by [`build_once`]. Panics when it is missing.
fn bin(env: &str, name: &str) -> PathBuf {
    let path = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => build_once().join(name),
    };
    assert!(
        path.is_file(),
        "{name} is missing at {} (set {env} or build it)",
        path.display()
    );
    path
}

/// Path of `virtnetd`: `$VIRTNET_DAEMON_BIN`, else built once per process by cargo.
pub fn virtnetd_bin() -> PathBuf {
    bin("VIRTNET_DAEMON_BIN", "virtnetd")
}

/// Path of the `virtnet` CLI: `$VIRTNET_CLI_BIN`, else built once per process by cargo.
pub fn virtnet_bin() -> PathBuf {
    bin("VIRTNET_CLI_BIN", "virtnet")
}

/// A `virtnetd` running in a namespace with private state and run directories.
///
/// Dropping it sends SIGTERM, then SIGKILL after a timeout, to its own PID only; the
/// directories go with it.
#[derive(Debug)]
pub struct Daemon {
    ns: Netns,
    child: Option<NsChild>,
    state: PathBuf,
    run: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    // Last, so the directories outlive the process using them.
    tmp: tempfile::TempDir,
}

impl Daemon {
    /// Starts virtnetd in `ns` and waits until its socket answers.
    pub fn start_in(ns: &Netns) -> Daemon {
        Daemon::start_in_with(ns, &[])
    }

    /// Like [`Daemon::start_in`], with extra virtnetd arguments (kept for restarts).
    pub fn start_in_with(ns: &Netns, extra: &[&str]) -> Daemon {
        let tmp = owned_temp_dir(TMP_PREFIX_DAEMON, ns.name());
        let mut daemon = Daemon {
            ns: ns.clone(),
            child: None,
            state: tmp.path().join("state"),
            run: tmp.path().join("run"),
            log: tmp.path().join("virtnetd.log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tmp,
        };
        daemon.launch();
        daemon
    }

    fn launch(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log file");
        let bin = virtnetd_bin();
        let mut args: Vec<String> = vec![
            bin.to_string_lossy().into_owned(),
            "--state-dir".into(),
            self.state.to_string_lossy().into_owned(),
            "--run-dir".into(),
            self.run.to_string_lossy().into_owned(),
            "--log-level".into(),
            "debug".into(),
        ];
        // Never the host's own /etc: `iface-bridge` writes the network configuration it finds
        // under this root. Tests that want one put files in `Daemon::host_config_root`.
        if !self.extra.iter().any(|a| a == "--host-config-root") {
            args.push("--host-config-root".into());
            args.push(self.host_config_root().to_string_lossy().into_owned());
        }
        // Never /run/libvirt: each daemon serves libvirt's sockets in its own scratch
        // directory, so tests neither meet a host's libvirt nor each other.
        if !self
            .extra
            .iter()
            .any(|a| a == "--libvirt-run-dir" || a == "--no-libvirt-sockets")
        {
            args.push("--libvirt-run-dir".into());
            args.push(self.libvirt_run_dir().to_string_lossy().into_owned());
        }
        args.extend(self.extra.iter().cloned());
        let child = self.ns.spawn_with(&args, |cmd| {
            cmd.stderr(log);
        });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let child = self.child.as_ref().expect("daemon started");
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait() {
                panic!("virtnetd exited early ({status}):\n{}", self.log());
            }
            if answers(&self.socket()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("virtnetd did not become ready:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The namespace the daemon runs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The scratch filesystem root whose `etc/` stands for the host's network configuration
    /// (created empty: `iface-bridge` then finds no method and writes nothing).
    pub fn host_config_root(&self) -> PathBuf {
        let root = self.dir().join("hostcfg-root");
        let _ = std::fs::create_dir_all(&root);
        root
    }

    /// The API socket, `<run-dir>/virtnet.sock`.
    pub fn socket(&self) -> PathBuf {
        self.run.join("virtnet.sock")
    }

    /// Where the daemon serves libvirt's sockets (`--libvirt-run-dir`, in its scratch
    /// directory).
    pub fn libvirt_run_dir(&self) -> PathBuf {
        self.tmp.path().join("libvirt")
    }

    /// libvirt's read-write socket, `<libvirt-run-dir>/virtnetworkd-sock`.
    pub fn libvirt_socket(&self) -> PathBuf {
        self.libvirt_run_dir().join("virtnetworkd-sock")
    }

    /// libvirt's read-only socket, `<libvirt-run-dir>/virtnetworkd-sock-ro`.
    pub fn libvirt_ro_socket(&self) -> PathBuf {
        self.libvirt_run_dir().join("virtnetworkd-sock-ro")
    }

    /// The state directory (kept across restarts).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The daemon's private temporary directory (holding state, run and log), also a place
    /// for files a test hands to the CLI.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    /// Everything the daemon (all its runs) wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The PID of the running daemon, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .filter(|c| c.try_wait().is_none())
            .map(NsChild::pid)
    }

    /// Runs `virtnet --connect <socket> args...` inside the daemon's namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec![
            virtnet_bin().to_string_lossy().into_owned(),
            "--connect".into(),
            self.socket().to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        self.ns.exec(all)
    }

    /// Writes `xml` to `<dir>/<name>.xml` and runs `net-define` on it (panicking on failure);
    /// returns the network's name, read from its `<name>` element.
    pub fn define(&self, xml: &str) -> String {
        let name = xml
            .split("<name>")
            .nth(1)
            .and_then(|s| s.split("</name>").next())
            .expect("the XML names its network")
            .to_string();
        let file = self.dir().join(format!("{name}.xml"));
        std::fs::write(&file, xml).expect("write the network's XML");
        self.cli_ok(&["net-define", &file.to_string_lossy()]);
        name
    }

    /// Like [`Daemon::cli`], returning stdout; panics with stderr and the daemon log when the
    /// command fails.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        if !out.status.success() {
            panic!(
                "virtnet {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL (a crash: no cleanup runs) and reap.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.take() {
            child.kill();
        }
    }

    /// SIGTERM and wait for the exit; panics when the daemon does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.take().expect("the daemon is not running");
        child.signal(libc::SIGTERM);
        match child.wait_timeout(DAEMON_TIMEOUT) {
            Some(status) => status,
            None => {
                child.kill();
                panic!("virtnetd did not exit after SIGTERM:\n{}", self.log());
            }
        }
    }

    /// Stops the daemon if it runs (SIGTERM) and starts it again on the same directories in
    /// the same namespace; waits until it answers.
    pub fn restart(&mut self) {
        if self.pid().is_some() {
            self.stop();
        }
        self.launch();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            child.terminate(Duration::from_secs(10));
        }
    }
}

/// Whether the API at `socket` answers `GET /v1/networks` with 200.
fn answers(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v1/networks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
