//! Test harness: a real `virtnetd` on a private state and run directory, and the real `virtnet`
//! binary pointed at its socket.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `virtnet` binary under test.
pub fn virtnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_virtnet"))
}

/// Path of the `virtnetd` binary: `$VIRTNET_DAEMON_BIN`, else built next to `virtnet` (same
/// target directory and profile) by `cargo build -p virtnetd`, so the daemon tested is always
/// the one in the work tree. Fails the test, never skips it, when there is no daemon.
pub fn daemon_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("VIRTNET_DAEMON_BIN") {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "VIRTNET_DAEMON_BIN={} does not exist",
                bin.display()
            );
            return bin;
        }
        let bin_dir = virtnet_bin()
            .parent()
            .expect("the virtnet binary has a directory")
            .to_path_buf();
        let bin = bin_dir.join("virtnetd");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "virtnetd", "--bin", "virtnetd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target_dir) = bin_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
        let out = cmd.output().expect("cannot run cargo to build virtnetd");
        assert!(
            out.status.success(),
            "building the daemon (cargo build -p virtnetd) failed; the CLI tests need the real \
             virtnetd binary at {}:\n{}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            bin.is_file(),
            "the virtnetd binary is missing at {} (build it with `cargo build -p virtnetd`, or \
             set VIRTNET_DAEMON_BIN)",
            bin.display()
        );
        bin
    })
}

pub use virtnet_testkit::shared_dir;

/// One of the shared example definitions.
pub fn example(name: &str) -> PathBuf {
    let p = shared_dir().join("examples").join(name);
    assert!(
        p.is_file(),
        "shared example {} is missing (set VIRTNET_SHARED_DIR)",
        p.display()
    );
    p
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// What `out` says: its stdout, stderr and exit code (-1 when killed).
    pub fn from_output(out: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Asserts success with exactly this stdout and nothing on stderr.
    #[track_caller]
    pub fn ok(&self, stdout: &str) -> &Run {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "stdout: {}",
            self.stdout
        );
        assert_eq!(self.stdout, stdout);
        self
    }

    /// Asserts failure (exit 1) with exactly this stderr and stdout.
    #[track_caller]
    pub fn fails(&self, stderr: &str, stdout: &str) -> &Run {
        assert_eq!(
            self.code, 1,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stderr, stderr);
        assert_eq!(self.stdout, stdout);
        self
    }
}

/// Runs `virtnet ARGS` against a socket nobody listens on: only what is checked before a
/// request is sent can succeed or fail there.
pub fn offline(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(virtnet_bin())
        .env("VIRTNET_SOCKET", dir.path().join("none.sock"))
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("run virtnet");
    Run::from_output(out)
}

/// A running daemon with its own directories.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `virtnetd --state-dir <tmp>/state --run-dir <tmp>/run` and waits for its socket.
    pub fn start() -> Daemon {
        let bin = daemon_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::create_dir_all(&run).expect("run dir");
        let log = dir.path().join("virtnetd.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // A private, empty network namespace per daemon (`unshare --net` execs virtnetd, so
        // the PID is the daemon's): started networks never reach the host's kernel.
        let child = Command::new("unshare")
            .args(["--net", "--"])
            .arg(bin)
            .arg("--state-dir")
            .arg(&state)
            .arg("--run-dir")
            .arg(&run)
            // Never the host's /run/libvirt.
            .arg("--libvirt-run-dir")
            .arg(run.join("libvirt"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut daemon = Daemon {
            child: Some(child),
            socket: run.join("virtnet.sock"),
            dir,
            log,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "virtnetd exited with {status} before listening on {}:\n{}",
                        self.socket.display(),
                        self.log()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "virtnetd did not listen on {} within 30 s:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A `virtnet` command aimed at this daemon, with a clean environment for the editor.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(virtnet_bin());
        cmd.env("VIRTNET_SOCKET", &self.socket)
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .env("TMPDIR", self.dir.path())
            .stdin(Stdio::null())
            .args(args);
        cmd
    }

    /// Runs `virtnet ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.cmd(args).output().expect("run virtnet"))
    }

    /// Runs `virtnet ARGS` with `EDITOR` set.
    pub fn run_with_editor(&self, editor: &str, args: &[&str]) -> Run {
        Run::from_output(
            self.cmd(args)
                .env("EDITOR", editor)
                .output()
                .expect("run virtnet"),
        )
    }

    /// Writes a file in the test's directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// Writes an executable shell script and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.file(name, &format!("#!/bin/sh\nset -e\n{body}\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The vshTable header of `net-list` for a name column `width` wide (at least 4).
pub fn list_header(name_width: usize, state_width: usize) -> String {
    let name_width = name_width.max(4);
    let state_width = state_width.max(5);
    format!(
        " {:<nw$}   {:<sw$}   Autostart   Persistent\n{}\n",
        "Name",
        "State",
        "-".repeat(name_width + 3 + state_width + 3 + 12 + 13),
        nw = name_width,
        sw = state_width
    )
}
