//! virtnet's FRR instances in tests: a pathspace per test host, and its clean-up.
//!
//! virtnetd leaves its FRR daemons running when it stops (the next virtnetd adopts them, so a
//! restart keeps BGP and the kernel's EVPN entries), so a test that ends must end them itself:
//! [`FrrPathspace`] does it when dropped, by the PIDs in the pathspace's pid files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::pid_running;

/// FRR's runtime directory; a pathspace's is `<this>/<name>`.
const FRR_RUN_ROOT: &str = "/var/run/frr";

/// A pathspace name for one test host, unique on the machine, and the clean-up of its FRR
/// daemons and runtime directory when dropped.
#[derive(Debug)]
pub struct FrrPathspace {
    name: String,
    dir: PathBuf,
}

impl FrrPathspace {
    /// A pathspace for host `host` of this test process (`vn<tag><pid>-<host>`).
    pub fn new(tag: &str, host: &str) -> FrrPathspace {
        let name = format!("vn{tag}{}-{host}", std::process::id());
        let dir = Path::new(FRR_RUN_ROOT).join(&name);
        FrrPathspace { name, dir }
    }

    /// The name, for `virtnetd --frr-pathspace`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/frr/<name>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PID in `daemon`'s pid file (`zebra`, `bgpd`), if any.
    pub fn pid(&self, daemon: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("{daemon}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Ends the pathspace's daemons (SIGTERM, SIGKILL after 5 s) and removes its directory.
    pub fn end(&self) {
        for daemon in ["bgpd", "zebra"] {
            let Some(pid) = self
                .pid(daemon)
                .filter(|&p| is_daemon_of(p, daemon, &self.name))
            else {
                continue;
            };
            end_pid(pid);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for FrrPathspace {
    fn drop(&mut self) {
        self.end();
    }
}

/// Whether `pid` is FRR's `daemon` run with `-N pathspace` (not a reused PID).
fn is_daemon_of(pid: u32, daemon: &str, pathspace: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let named = args
        .first()
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|p| Path::new(p).file_name().map(|n| n == daemon))
        .unwrap_or(false);
    named
        && args
            .windows(2)
            .any(|w| w[0] == b"-N" && w[1] == pathspace.as_bytes())
}

fn end_pid(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) on a PID just checked to be this test's FRR daemon.
    unsafe { libc::kill(raw, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_running(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(raw, libc::SIGKILL) };
    }
}
