//! libvirt's own network driver, for comparisons: `/usr/sbin/libvirtd` (Debian 12's libvirt
//! 9.0) with only its network driver, isolated the way `bench/` runs it
//! (`bench/libvirtd-inner.sh`): its own network namespace (bridges, firewall rules, dnsmasq
//! live there), mount namespace (libvirt's directories are overlays on a tmpfs, `/run` is an
//! empty tmpfs) and PID namespace (everything in it dies with it). Only its sockets and logs
//! are on the host, in the harness's temporary directory. Also the `virsh` runner tests use
//! against either daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{owned_temp_dir, Netns, NsChild, TMP_PREFIX_DAEMON};

/// How long libvirtd may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The URI that reaches a network daemon's socket at `socket` (libvirt's remote driver
/// strips the transport and the query: the daemon sees `network:///system`).
pub fn network_uri(socket: &Path) -> String {
    format!("network+unix:///system?socket={}", socket.display())
}

/// Runs `virsh -c <socket's URI> args...` (Debian's virsh, in the test's own namespaces: the
/// socket is a file, reachable from any network namespace).
pub fn virsh(socket: &Path, args: &[&str]) -> Output {
    virsh_with(socket, &[], args)
}

/// Like [`virsh`], with options before the command (`-r`, `-q`).
pub fn virsh_with(socket: &Path, options: &[&str], args: &[&str]) -> Output {
    Command::new("virsh")
        .args(options)
        .arg("-c")
        .arg(network_uri(socket))
        .args(args)
        .stdin(Stdio::null())
        // No user configuration (aliases, default URI) changes what virsh does.
        .env("HOME", std::env::temp_dir())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("cannot run virsh (Debian package libvirt-clients)")
}

/// A libvirtd with only its network driver, in namespaces of its own. Dropping it stops it
/// (SIGTERM to its PID only; the kernel ends the rest of its PID namespace) and removes its
/// namespace and directory.
#[derive(Debug)]
pub struct Libvirtd {
    child: Option<NsChild>,
    // The namespace outlives the process in it; the directory outlives both.
    ns: Netns,
    tmp: tempfile::TempDir,
}

impl Libvirtd {
    /// Starts libvirtd and waits until `virsh net-list` answers on its socket.
    pub fn start(test: &str) -> Libvirtd {
        let ns = Netns::new("libvirt");
        let tmp = owned_temp_dir(TMP_PREFIX_DAEMON, &format!("libvirtd-{test}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/libvirtd-inner.sh");
        let log = std::fs::File::create(tmp.path().join("daemon.log")).expect("daemon log");
        let err = log.try_clone().expect("daemon log");
        let dir = tmp.path().to_string_lossy().into_owned();
        let script = script.to_string_lossy();
        let child = ns.spawn_with(
            crate::UNSHARE_ISOLATED
                .into_iter()
                .chain(["bash", script.as_ref(), dir.as_str()]),
            |cmd| {
                cmd.stdout(log).stderr(err);
            },
        );
        let daemon = Libvirtd {
            child: Some(child),
            ns,
            tmp,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_ref().and_then(NsChild::try_wait) {
                panic!("libvirtd exited early ({status}):\n{}", self.log());
            }
            if self.socket().exists()
                && virsh(&self.socket(), &["net-list", "--all"])
                    .status
                    .success()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("libvirtd did not answer:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The read-write socket (monolithic libvirtd's `libvirt-sock`).
    pub fn socket(&self) -> PathBuf {
        self.tmp.path().join("sock/libvirt-sock")
    }

    /// The read-only socket.
    pub fn ro_socket(&self) -> PathBuf {
        self.tmp.path().join("sock/libvirt-sock-ro")
    }

    /// The network namespace libvirtd's bridges live in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// What the harness and libvirtd logged.
    pub fn log(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.tmp.path().join(p)).unwrap_or_default();
        format!("{}\n{}", read("daemon.log"), read("log/libvirtd.log"))
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // `ip netns exec` execs unshare in place: this is unshare, whose --kill-child takes
            // PID 1 of libvirtd's PID namespace (and so all of it) with it.
            child.terminate(Duration::from_secs(15));
        }
    }
}
