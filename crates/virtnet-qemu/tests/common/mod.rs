//! Shared by the integration tests: a lab with virtnetd running the NAT network `default` on
//! virbr0, the helper run exactly as QEMU runs it, and a setuid copy of the helper with a
//! private mount namespace that shows it the test's daemon and ACL at their fixed paths.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use virtnet_api::client::Client;
use virtnet_testkit::{Daemon, Lab, Netns};

/// The helper binary cargo built for these tests.
pub const HELPER: &str = env!("CARGO_BIN_EXE_virtnet-bridge-helper");
/// The script binaries.
pub const IFUP: &str = env!("CARGO_BIN_EXE_virtnet-ifup");
/// See [`IFUP`].
pub const IFDOWN: &str = env!("CARGO_BIN_EXE_virtnet-ifdown");

/// nobody / nogroup.
pub const NOBODY: u32 = 65534;

/// The NAT network the tests attach to.
pub fn nat_network() -> String {
    "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
     <domain name='example.test'/>\
     <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
       <range start='192.168.122.100' end='192.168.122.199'/>\
     </dhcp></ip></network>"
        .to_string()
}

/// A lab whose host runs virtnetd with `default` (virbr0) started.
pub fn lab_with_default(name: &str) -> (Lab, Daemon) {
    let lab = Lab::new(name);
    let daemon = Daemon::start_in(lab.host());
    let net = daemon.define(&nat_network());
    daemon.cli_ok(&["net-start", &net]);
    (lab, daemon)
}

/// A client of the test daemon.
pub fn client(daemon: &Daemon) -> Client {
    Client::new(daemon.socket())
}

/// What one helper run gave: its output, and the descriptor QEMU would have received.
pub struct HelperRun {
    /// Exit status, stdout and stderr.
    pub output: Output,
    /// The descriptor sent, if any.
    pub fd: Option<OwnedFd>,
}

impl HelperRun {
    /// stderr, for messages.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Runs `argv` (a helper and its leading words) in `ns` as QEMU does: a socket pair, the
/// child's end passed as `--fd=N` (appended with `--use-vnet` and `--br=`), then waits for one
/// descriptor and the exit.
pub fn run_helper(ns: &Netns, argv: &[String], bridge: &str, env: &[(&str, &str)]) -> HelperRun {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let child_fd = theirs.as_raw_fd();
    let mut args: Vec<String> = argv.to_vec();
    args.extend([
        "--use-vnet".to_string(),
        format!("--fd={child_fd}"),
        format!("--br={bridge}"),
    ]);
    let mut cmd = ns.command(&args);
    cmd.env_remove("VIRTNET_SOCKET")
        .env_remove("VIRTNET_BRIDGE_CONF")
        .env_remove("VIRTNET_DOMAIN")
        .env_remove("VIRTNET_MAC")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: fcntl is async-signal-safe; it clears close-on-exec on the child's end only.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(child_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("start the helper");
    drop(theirs);
    let fd = virtnet_qemu::tun::recv_fd(ours.as_raw_fd()).expect("recvmsg");
    let output = child.wait_with_output().expect("wait for the helper");
    HelperRun { output, fd }
}

/// Waits until `ns` has no link `name` (a non-persistent tap whose descriptors closed).
pub fn wait_link_gone(ns: &Netns, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !ns.ip(["link", "show", name]).status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `ip -d link show NAME` in `ns`.
pub fn link_details(ns: &Netns, name: &str) -> String {
    ns.ip_ok(["-d", "link", "show", name])
}

/// A setuid-root copy of the helper and what it needs to run against the test daemon.
pub struct SetuidHelper {
    /// The directory (mode 0755) holding everything.
    pub dir: tempfile::TempDir,
    /// The setuid copy.
    pub helper: PathBuf,
    /// The ACL, shown as /etc/virtnet/bridge.conf.
    pub acl: PathBuf,
    /// The test daemon's socket, shown as /run/virtnet/virtnet.sock.
    pub socket: PathBuf,
}

impl SetuidHelper {
    /// Copies the helper (root, 4755) into a fresh directory; `acl` is the ACL's text.
    pub fn new(daemon: &Daemon, acl: &str) -> SetuidHelper {
        let dir = tempfile::Builder::new()
            .prefix("vnt-qemu-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        let helper = dir.path().join("virtnet-bridge-helper");
        std::fs::copy(HELPER, &helper).expect("copy the helper");
        std::os::unix::fs::chown(&helper, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o4755))
            .expect("chmod u+s");
        // /etc for the mount namespace: links to the real entries, plus virtnet/.
        let etc = dir.path().join("etc");
        let orig = dir.path().join("etc-orig");
        std::fs::create_dir_all(etc.join("virtnet")).expect("mkdir etc/virtnet");
        std::fs::create_dir(&orig).expect("mkdir etc-orig");
        for entry in std::fs::read_dir("/etc").expect("read /etc").flatten() {
            let name = entry.file_name();
            if name == "virtnet" {
                continue;
            }
            std::os::unix::fs::symlink(orig.join(&name), etc.join(&name)).expect("symlink");
        }
        std::fs::set_permissions(etc.join("virtnet"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod etc/virtnet");
        let acl_path = etc.join("virtnet/bridge.conf");
        std::fs::write(&acl_path, acl).expect("write the ACL");
        std::fs::set_permissions(&acl_path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the ACL");
        SetuidHelper {
            helper,
            acl: acl_path,
            socket: daemon.socket(),
            dir,
        }
    }

    /// A file beside the ACL (as /etc/virtnet/NAME) with `mode`.
    pub fn etc_file(&self, name: &str, text: &str, mode: u32) {
        let p = self.dir.path().join("etc/virtnet").join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Words that run the rest of a command line in a private mount namespace where
    /// /etc/virtnet and /run/virtnet/virtnet.sock are the test's, as `uid`:`gid` with no
    /// supplementary groups (`None`: as root). The last word `exec`s, so the PID stays.
    pub fn wrapper(&self, user: Option<(u32, u32)>) -> Vec<String> {
        let d = self.dir.path().display();
        let script = format!(
            "set -e; mount --make-rprivate /; mount --bind /etc {d}/etc-orig; \
             mount --bind {d}/etc /etc; mount -t tmpfs tmpfs /run; mkdir -p /run/virtnet; \
             ln -s {sock} /run/virtnet/virtnet.sock; exec \"$@\"",
            sock = self.socket.display()
        );
        let mut w: Vec<String> = ["unshare", "-m", "sh", "-c", &script, "sh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some((uid, gid)) = user {
            w.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_string(),
                "--".to_string(),
            ]);
        }
        w
    }

    /// The helper's path, as a string.
    pub fn helper_path(&self) -> String {
        self.helper.to_string_lossy().into_owned()
    }
}

/// Whether a path exists (for the QEMU e2e skip checks).
pub fn exists(p: &str) -> bool {
    Path::new(p).exists()
}
