//! virtnet's own FRR daemons: `zebra` and `bgpd` under FRR's pathspace `-N <name>`, children
//! of virtnetd in virtnetd's network namespace, ended by PID.
//!
//! Everything of the instance is under FRR's runtime directory of the pathspace,
//! `/var/run/frr/<name>/` (what `vtysh -N <name>` and FRR's own tools expect): the rendered
//! `zebra.conf` and `bgpd.conf`, the pid files, the vty sockets and zebra's `zserv.api`.
//! virtnetd creates it (owned by FRR's user, which the daemons drop to) and removes it when
//! it stops them; the daemons' output goes to `<run-dir>/frr/<daemon>.log`.
//!
//! The daemons outlive virtnetd, as the networks and guest taps do: a virtnetd that stops (or
//! is killed) leaves them running, so BGP sessions, the EVPN routes and the forwarding entries
//! zebra put in the kernel stay, and guests keep reaching other hosts while virtnetd restarts.
//! The next virtnetd adopts them by their pid files (checking that each PID is still that
//! daemon of that pathspace) when their configuration is the one it would write; otherwise it
//! ends them and starts its own. A change of the fabric changes bgpd in place where it can
//! (neighbours), else rewrites `bgpd.conf` and restarts `bgpd` alone (zebra and the kernel's
//! VXLAN devices stay; this host's guests lose the other hosts for the seconds it takes).

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::lock;

/// Where Debian's FRR installs its daemons.
pub const FRR_BIN_DIR: &str = "/usr/lib/frr";
/// FRR's runtime directory; a pathspace's is `<this>/<name>`.
pub const FRR_RUN_ROOT: &str = "/var/run/frr";
/// The user (and group) FRR's daemons drop to.
const FRR_USER: &str = "frr";
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long zebra gets to open its API socket before bgpd is started anyway.
const ZEBRA_READY: Duration = Duration::from_secs(10);
/// How long one `vtysh` question may take.
const VTYSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The two daemons virtnet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Zebra,
    Bgpd,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Zebra => "zebra",
            Daemon::Bgpd => "bgpd",
        }
    }
}

/// virtnet's FRR instance.
#[derive(Debug)]
pub struct Frr {
    pathspace: String,
    /// `/var/run/frr/<pathspace>`.
    dir: PathBuf,
    /// `<run-dir>/frr`: the daemons' logs.
    log_dir: PathBuf,
    procs: Mutex<Procs>,
}

/// The running daemons and the configuration bgpd runs with.
#[derive(Debug, Default)]
struct Procs {
    zebra: Option<Proc>,
    bgpd: Option<Proc>,
    bgpd_conf: Option<String>,
}

/// A running daemon: started by this virtnetd, or adopted from a previous one.
#[derive(Debug)]
enum Proc {
    /// Our child (reaped by us).
    Child(Child),
    /// A previous virtnetd's child, now the init process's: its PID and its start time
    /// (`/proc/<pid>/stat`), which tell it from a later process given the same PID.
    Adopted(i32, u64),
}

impl Proc {
    fn pid(&self) -> i32 {
        match self {
            Proc::Child(c) => c.id() as i32,
            Proc::Adopted(pid, _) => *pid,
        }
    }

    /// The process has not exited (a child is reaped when it has).
    fn alive(&mut self) -> bool {
        match self {
            Proc::Child(c) => matches!(c.try_wait(), Ok(None)),
            Proc::Adopted(pid, started) => pid_alive(*pid) && start_time(*pid) == Some(*started),
        }
    }
}

impl Frr {
    /// The instance of `pathspace`, logging under `<run_dir>/frr`. Starts nothing.
    pub fn new(pathspace: &str, run_dir: &Path) -> Frr {
        Frr {
            pathspace: pathspace.to_string(),
            dir: Path::new(FRR_RUN_ROOT).join(pathspace),
            log_dir: run_dir.join("frr"),
            procs: Mutex::new(Procs::default()),
        }
    }

    /// The pathspace.
    pub fn pathspace(&self) -> &str {
        &self.pathspace
    }

    /// Both daemons run (neither has exited).
    pub fn running(&self) -> bool {
        let mut procs = lock(&self.procs);
        alive(&mut procs.zebra) && alive(&mut procs.bgpd)
    }

    /// Makes the instance run `zebra_conf` and `bgpd_conf`: starts zebra if it does not run,
    /// and (re)starts bgpd when it does not run or its configuration changed.
    pub fn apply(&self, zebra_conf: &str, bgpd_conf: &str) -> Result<()> {
        let mut procs = lock(&self.procs);
        if procs.zebra.is_none() && procs.bgpd.is_none() {
            self.adopt(&mut procs, zebra_conf, bgpd_conf);
        }
        if !alive(&mut procs.zebra) {
            if let Some(owner) = self.other_owner() {
                return Err(Error::conflict(format!(
                    "FRR's pathspace '{}' is used by another virtnetd (PID {owner}): give each \
                     virtnetd its own --frr-pathspace",
                    self.pathspace
                )));
            }
            // A zebra that died took bgpd's connection with it: both start afresh.
            stop_proc(&mut procs.bgpd, Daemon::Bgpd);
            procs.bgpd_conf = None;
            self.prepare_dirs()?;
            self.write_conf(Daemon::Zebra, zebra_conf)?;
            procs.zebra = Some(Proc::Child(self.spawn(Daemon::Zebra)?));
            self.wait_for_zebra(&mut procs.zebra);
        }
        let same = procs.bgpd_conf.as_deref() == Some(bgpd_conf);
        if same && alive(&mut procs.bgpd) {
            return Ok(());
        }
        stop_proc(&mut procs.bgpd, Daemon::Bgpd);
        self.write_conf(Daemon::Bgpd, bgpd_conf)?;
        procs.bgpd = Some(Proc::Child(self.spawn(Daemon::Bgpd)?));
        procs.bgpd_conf = Some(bgpd_conf.to_string());
        tracing::info!(pathspace = %self.pathspace, "FRR's bgpd started with the fabric");
        Ok(())
    }

    /// Changes the running bgpd in place with `commands` (vtysh, one session) and records
    /// `bgpd_conf` as what it now runs (the file, for its next start). An error leaves the
    /// recorded configuration as it was, so a following [`Frr::apply`] restarts bgpd.
    pub fn reconfigure(&self, bgpd_conf: &str, commands: &[String]) -> Result<()> {
        let mut procs = lock(&self.procs);
        if !(alive(&mut procs.zebra) && alive(&mut procs.bgpd)) {
            return Err(Error::failed("FRR's daemons do not run"));
        }
        if !commands.is_empty() {
            let cmds: Vec<&str> = commands.iter().map(String::as_str).collect();
            self.vtysh_all(&cmds)?;
        }
        self.write_conf(Daemon::Bgpd, bgpd_conf)?;
        procs.bgpd_conf = Some(bgpd_conf.to_string());
        tracing::info!(pathspace = %self.pathspace, ?commands, "FRR's bgpd changed in place");
        Ok(())
    }

    /// At virtnetd's exit: leaves the daemons running for the next virtnetd to adopt (the
    /// fabric's routes and forwarding entries stay, as the networks do).
    pub fn leave_running(&self) {
        let mut procs = lock(&self.procs);
        let left: Vec<i32> = [procs.zebra.take(), procs.bgpd.take()]
            .into_iter()
            .flatten()
            .map(|p| p.pid())
            .collect();
        procs.bgpd_conf = None;
        if !left.is_empty() {
            tracing::info!(pathspace = %self.pathspace, pids = ?left,
                "FRR's daemons left running for the next virtnetd");
        }
    }

    /// Adopts the daemons a previous virtnetd of this pathspace left running when both run
    /// and their configuration files are what this one would write; otherwise ends what is
    /// left of them (and their runtime directory), so [`Frr::apply`] starts afresh.
    /// Daemons whose parent is another live virtnetd are that virtnetd's and left alone
    /// ([`Frr::apply`] then refuses to start).
    fn adopt(&self, procs: &mut Procs, zebra_conf: &str, bgpd_conf: &str) {
        if self.other_owner().is_some() {
            return;
        }
        let pids = (
            self.daemon_pid(Daemon::Zebra),
            self.daemon_pid(Daemon::Bgpd),
        );
        let same = |daemon: Daemon, text: &str| {
            fs::read_to_string(self.conf_file(daemon)).is_ok_and(|on_disk| on_disk == text)
        };
        let configured = same(Daemon::Zebra, zebra_conf) && same(Daemon::Bgpd, bgpd_conf);
        if let (Some(zebra), Some(bgpd), true) = (pids.0, pids.1, configured) {
            if let (Some(zebra_started), Some(bgpd_started)) = (start_time(zebra), start_time(bgpd))
            {
                procs.zebra = Some(Proc::Adopted(zebra, zebra_started));
                procs.bgpd = Some(Proc::Adopted(bgpd, bgpd_started));
                procs.bgpd_conf = Some(bgpd_conf.to_string());
                tracing::info!(pathspace = %self.pathspace, zebra, bgpd,
                    "FRR's daemons of the previous virtnetd adopted");
                return;
            }
        }
        self.end_stale();
    }

    /// Ends the daemons a previous virtnetd of this pathspace left running, found by their
    /// pid files, and removes their runtime directory: at start-up without a fabric, and
    /// when they cannot be adopted.
    ///
    /// Daemons whose parent is another live virtnetd are that virtnetd's: they are left alone
    /// (two virtnetd were given the same pathspace; [`Frr::apply`] then refuses to start).
    pub fn end_stale(&self) {
        if let Some(owner) = self.other_owner() {
            tracing::error!(pathspace = %self.pathspace, owner,
                "FRR's pathspace is used by another virtnetd: not touching it");
            return;
        }
        for daemon in [Daemon::Bgpd, Daemon::Zebra] {
            let Some(pid) = self.daemon_pid(daemon) else {
                continue;
            };
            tracing::warn!(pid, daemon = daemon.name(), pathspace = %self.pathspace,
                "ending an FRR daemon a previous virtnetd left running");
            if let Some(started) = start_time(pid) {
                stop_proc(&mut Some(Proc::Adopted(pid, started)), daemon);
            }
        }
        if self.dir.exists() {
            self.remove_dir();
        }
    }

    /// The PID of another live virtnetd whose child runs a daemon of this pathspace.
    fn other_owner(&self) -> Option<i32> {
        let me = std::process::id() as i32;
        [Daemon::Zebra, Daemon::Bgpd].into_iter().find_map(|d| {
            let parent = parent_pid(self.daemon_pid(d)?)?;
            let exe = fs::read_link(format!("/proc/{parent}/exe")).ok()?;
            let is_virtnetd = exe
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("virtnetd"));
            (parent != me && is_virtnetd).then_some(parent)
        })
    }

    /// Asks the instance `command` through `vtysh -N <pathspace>`; its standard output.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        self.vtysh_all(&[command])
    }

    /// Runs `commands` in one vtysh session (`-c` each, in order: `configure terminal` and
    /// the following commands share the session's mode).
    fn vtysh_all(&self, commands: &[&str]) -> Result<String> {
        let command = commands.join("; ");
        let mut cmd = Command::new("vtysh");
        cmd.args(["-N", &self.pathspace]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot run vtysh (is FRR installed?): {e}")))?;
        let out = wait_output(child, VTYSH_TIMEOUT)
            .map_err(|e| Error::failed(format!("vtysh -c '{command}': {e}")))?;
        if !out.status.success() {
            // vtysh also complains about the pathspace's missing vtysh.conf: keep the last line.
            let err = String::from_utf8_lossy(&out.stderr);
            let why = err.lines().last().unwrap_or("").trim().to_string();
            return Err(Error::failed(format!(
                "vtysh -c '{command}' failed ({}): {why}",
                out.status
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The PID in `daemon`'s pid file when that process is still `daemon` of this pathspace.
    fn daemon_pid(&self, daemon: Daemon) -> Option<i32> {
        let text = fs::read_to_string(self.pid_file(daemon)).ok()?;
        let pid: i32 = text.trim().parse().ok().filter(|&p| p > 1)?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let program = Path::new(std::str::from_utf8(args.first()?).ok()?);
        let is_daemon = program.file_name()? == daemon.name();
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"-N" && w[1] == self.pathspace.as_bytes());
        (is_daemon && ours).then_some(pid)
    }

    fn pid_file(&self, daemon: Daemon) -> PathBuf {
        self.dir.join(format!("{}.pid", daemon.name()))
    }

    fn conf_file(&self, daemon: Daemon) -> PathBuf {
        self.dir.join(format!("{}.conf", daemon.name()))
    }

    /// Creates the runtime directory (FRR's user writes its pid files and sockets there) and
    /// the log directory.
    fn prepare_dirs(&self) -> Result<()> {
        fs::create_dir_all(&self.log_dir)
            .map_err(|e| Error::io("cannot create", &self.log_dir, e))?;
        fs::create_dir_all(&self.dir).map_err(|e| Error::io("cannot create", &self.dir, e))?;
        let (uid, gid) = frr_user()?;
        std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid))
            .map_err(|e| Error::io("cannot give FRR's user", &self.dir, e))
    }

    /// Writes a daemon's configuration, mode 0644 whatever virtnetd's umask (its systemd unit
    /// has `UMask=0077`): the daemon reads it as FRR's user.
    fn write_conf(&self, daemon: Daemon, text: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.conf_file(daemon);
        let tmp = path.with_extension("conf.new");
        fs::write(&tmp, text).map_err(|e| Error::io("cannot write", &tmp, e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io("cannot make readable", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Starts one daemon in the foreground as virtnetd's child, its output to its log.
    fn spawn(&self, daemon: Daemon) -> Result<Child> {
        let program = Path::new(FRR_BIN_DIR).join(daemon.name());
        let log_path = self.log_dir.join(format!("{}.log", daemon.name()));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io("cannot open", &log_path, e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("cannot open", &log_path, e))?;
        let mut cmd = Command::new(&program);
        cmd.arg("-N")
            .arg(&self.pathspace)
            .arg("-f")
            .arg(self.conf_file(daemon))
            .arg("-i")
            .arg(self.pid_file(daemon))
            // No TCP vty: vtysh talks over the pathspace's unix sockets.
            .args(["-P", "0", "-u", FRR_USER, "-g", FRR_USER]);
        if daemon == Daemon::Zebra {
            // As Debian's /etc/frr/daemons: a netlink buffer for large route dumps.
            cmd.args(["-s", "90000000"]);
        }
        // Its own process group: a terminal's ^C to virtnetd is virtnetd's to handle.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd.spawn().map_err(|e| {
            Error::failed(format!(
                "cannot start FRR's {} ({}): {e} (is Debian's frr package installed?)",
                daemon.name(),
                program.display()
            ))
        })?;
        tracing::info!(pid = child.id(), daemon = daemon.name(), pathspace = %self.pathspace,
            "FRR daemon started");
        Ok(child)
    }

    /// Waits (bounded) until zebra's API socket exists, so bgpd connects at once.
    fn wait_for_zebra(&self, zebra: &mut Option<Proc>) {
        let socket = self.dir.join("zserv.api");
        let deadline = Instant::now() + ZEBRA_READY;
        while !socket.exists() && Instant::now() < deadline && alive(zebra) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn remove_dir(&self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove FRR's runtime directory");
            }
        }
    }
}

/// FRR's user and group ids.
fn frr_user() -> Result<(u32, u32)> {
    let name = CString::new(FRR_USER).map_err(|e| Error::failed(e.to_string()))?;
    // SAFETY: getpwnam reads a NUL-terminated name; the record is copied out at once, and
    // virtnetd calls it only under the instance's lock.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(Error::failed(
            "FRR's user 'frr' does not exist: install Debian's frr package",
        ));
    }
    // SAFETY: pw is a valid passwd record (checked non-null above).
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// The daemon runs (has not exited).
fn alive(proc: &mut Option<Proc>) -> bool {
    proc.as_mut().is_some_and(Proc::alive)
}

/// Ends a daemon: SIGTERM to its PID, SIGKILL when it has not exited within the grace
/// period; a child is reaped.
fn stop_proc(proc: &mut Option<Proc>, daemon: Daemon) {
    let Some(mut p) = proc.take() else {
        return;
    };
    if !p.alive() {
        return;
    }
    // SAFETY: kill(2) on the daemon's PID: our child not reaped yet, or a PID just checked
    // to be that daemon of this pathspace (`Frr::daemon_pid`), so not a reused one.
    unsafe { libc::kill(p.pid(), libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !p.alive() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(
        pid = p.pid(),
        daemon = daemon.name(),
        "FRR daemon ignored SIGTERM: killing it"
    );
    // SAFETY: as above.
    unsafe { libc::kill(p.pid(), libc::SIGKILL) };
    if let Proc::Child(c) = &mut p {
        let _ = c.wait();
    }
}

/// The parent of `pid` (field 4 of `/proc/<pid>/stat`).
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// When `pid` started (field 22 of `/proc/<pid>/stat`, clock ticks after boot).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // `rest` starts at field 3 (the state).
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The process exists and is not a zombie.
fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits for `child` at most `timeout`, collecting its output; kills it when it takes longer.
fn wait_output(mut child: Child, timeout: Duration) -> io::Result<std::process::Output> {
    use std::io::Read;
    // vtysh's answers are small (well under a pipe's 64 KiB for one host's summary), but read
    // on threads anyway so a large one cannot block it while we wait.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}
