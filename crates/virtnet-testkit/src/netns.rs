//! Network namespaces owned by one test, and the processes the test starts inside them.
//!
//! Every change to networking a test makes goes through a [`Netns`]: commands run as
//! `ip netns exec <ns> ...` or `ip -n <ns> ...`, never in the root namespace, so a failing test
//! cannot disturb the machine it runs on. A namespace is removed when its last handle is
//! dropped, also while a panicking test unwinds, after every process in it is killed: the ones
//! the harness started and the ones that left them (a daemonizing `dhclient`, a server started
//! in the background by a script), found by `ip netns pids`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its named namespaces (`/var/run` is a link to `/run` on Debian).
const NETNS_DIR: &str = "/run/netns";

/// Prefix of every namespace the harness names; the owner's PID follows it.
const PREFIX: &str = "vnt-";

/// Numbers namespaces within this process, so names never repeat.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The stale-namespace sweep runs once per process, before the first namespace is made.
static SWEEP: Once = Once::new();

/// Locks a mutex even when a panicking thread poisoned it: cleanup must still happen.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process started by the harness inside a namespace.
///
/// The handle is shared with the namespace, which kills the process (by its PID, only while
/// it is still unreaped, so never a recycled PID) before the namespace is deleted.
#[derive(Debug, Clone)]
pub struct NsChild {
    child: Arc<Mutex<Child>>,
    pid: u32,
}

impl NsChild {
    /// The process id (of the program itself: `ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Access to the underlying [`Child`] (for its pipes, say). Keep the borrow short: the
    /// namespace's cleanup waits for the same lock.
    pub fn with_child<R>(&self, f: impl FnOnce(&mut Child) -> R) -> R {
        f(&mut lock(&self.child))
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// Waits at most `timeout` for the process to exit. Polls rather than blocking in
    /// `wait()` so the lock is never held for long.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` if the process has not been reaped yet; returns whether it was sent. An
    /// unreaped child still owns its PID, so the signal cannot reach anyone else.
    pub fn signal(&self, sig: i32) -> bool {
        let mut child = lock(&self.child);
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        // SAFETY: kill(2) on the PID of our own unreaped child; no memory is involved.
        unsafe { libc::kill(self.pid as libc::pid_t, sig) == 0 }
    }

    /// SIGKILL and reap.
    pub fn kill(&self) {
        let mut child = lock(&self.child);
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status.
    pub fn terminate(&self, grace: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_timeout(grace) {
            return Some(status);
        }
        self.kill();
        self.try_wait()
    }
}

/// What a namespace shares between its handles: its name and the processes started in it.
#[derive(Debug)]
struct Inner {
    name: String,
    children: Mutex<Vec<NsChild>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Processes first: a namespace with processes in it outlives `ip netns del` (it is only
        // unmounted), and those processes would keep its sockets and addresses alive.
        for child in lock(&self.children).drain(..) {
            child.kill();
        }
        kill_strays(&self.name);
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {}
            // Never panic here: Drop also runs while a failed test unwinds, and a second
            // panic would abort the whole test binary.
            Ok(out) => eprintln!(
                "virtnet-testkit: ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!(
                "virtnet-testkit: cannot run ip netns del {}: {e}",
                self.name
            ),
        }
    }
}

/// A uniquely named network namespace, `vnt-<pid>-<counter>-<role>`, with `lo` up.
///
/// Cloning gives another handle to the same namespace; it is deleted (after the processes
/// started in it are killed) when the last handle is dropped, so a [`crate::Daemon`] keeps
/// the namespace it runs in alive.
#[derive(Debug, Clone)]
pub struct Netns {
    inner: Arc<Inner>,
}

impl Netns {
    /// Creates a namespace for `role` (a short word such as `host`; cut to 8 characters so
    /// names stay readable in `ip netns list`). Panics when `ip netns add` fails: a test
    /// without its namespace cannot run.
    pub fn new(role: &str) -> Netns {
        SWEEP.call_once(Netns::sweep_stale);
        let role: String = role
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run `ip` (iproute2)");
        assert!(
            out.status.success(),
            "ip netns add {name} failed (the harness needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The handle exists before anything else can fail, so a later panic still deletes it.
        let ns = Netns {
            inner: Arc::new(Inner {
                name,
                children: Mutex::new(Vec::new()),
            }),
        };
        ns.ip_ok(["link", "set", "lo", "up"]);
        ns
    }

    /// Deletes namespaces `vnt-<pid>-*` whose `<pid>` is no longer alive: what a test run
    /// killed before its Drops ran leaves behind. Runs by itself once per process at the
    /// first [`Netns::new`]; namespaces of live processes (tests running in parallel in other
    /// binaries) are left alone. The harness's temporary directories (`vnt-lab-<pid>-*`,
    /// `vnt-daemon-<pid>-*`, `vnt-virtqemud-<pid>-*`) of dead processes go too.
    pub fn sweep_stale() {
        for name in stale_entries(Path::new(NETNS_DIR), &[PREFIX]) {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stdin(Stdio::null())
                .output();
        }
        let tmp = std::env::temp_dir();
        for name in stale_entries(
            &tmp,
            &[TMP_PREFIX_LAB, TMP_PREFIX_DAEMON, TMP_PREFIX_VIRTQEMUD],
        ) {
            let _ = std::fs::remove_dir_all(tmp.join(name));
        }
    }

    /// The namespace's name, for `ip netns exec` / `ip -n`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A [`Command`] running `args` inside the namespace (`ip netns exec <ns> args...`).
    ///
    /// Children get SIGKILL when the thread that spawned them dies (`PR_SET_PDEATHSIG`), so
    /// a test binary killed outright does not leave servers running in deleted namespaces.
    /// [`Netns::spawn`] starts processes from a thread that lives as long as the process, so
    /// they do not die with a short-lived test thread; a caller spawning this command itself
    /// ties the child to its own thread.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name()]).args(args);
        cmd.stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs `args` inside the namespace and returns what it printed, whatever its status.
    pub fn exec<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        let shown = format!("{cmd:?}");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
    }

    /// Runs `args` inside the namespace and returns its stdout; panics with the command,
    /// status, stdout and stderr when it fails (a test helper: failure is a test failure).
    pub fn run_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cmd = self.command(args);
        output_ok(cmd)
    }

    /// `ip -n <ns> args...`, whatever its status.
    pub fn ip<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.ip_command(args);
        let shown = format!("{cmd:?}");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
    }

    /// `ip -n <ns> args...`, returning stdout; panics with the details when it fails.
    pub fn ip_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        output_ok(self.ip_command(args))
    }

    /// The names of the namespace's links, sorted, without a veth's `@peer` suffix.
    pub fn link_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ip_ok(["-br", "link"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            // `vg0@if2`: a veth shows its peer's index.
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect();
        names.sort();
        names
    }

    /// A veth pair between two namespaces: `local` here, its peer `remote` in `peer`, both
    /// ends up. Panics on failure; deleting either namespace removes the pair.
    pub fn veth_to(&self, local: &str, peer: &Netns, remote: &str) {
        self.ip_ok([
            "link",
            "add",
            local,
            "type",
            "veth",
            "peer",
            "name",
            remote,
            "netns",
            peer.name(),
        ]);
        self.ip_ok(["link", "set", local, "up"]);
        peer.ip_ok(["link", "set", remote, "up"]);
    }

    fn ip_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", self.name()])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Sets a sysctl inside the namespace (`ip netns exec <ns> sysctl -w key=value`); the
    /// `net.*` keys are per namespace. Panics on failure.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run_ok(["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Starts `args` inside the namespace with stdin, stdout and stderr on /dev/null; the
    /// process is killed when the namespace goes away.
    pub fn spawn<I, S>(&self, args: I) -> NsChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn_with(args, |cmd| {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        })
    }

    /// Like [`Netns::spawn`], letting `configure` adjust the command (stdio, environment)
    /// before it starts. The command is always the namespace's own, so it cannot escape it.
    pub fn spawn_with<I, S>(&self, args: I, configure: impl FnOnce(&mut Command)) -> NsChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        configure(&mut cmd);
        let shown = format!("{cmd:?}");
        // Hold the list's lock across the spawn so a concurrent drop of the last handle
        // cannot miss this process.
        let mut children = lock(&self.inner.children);
        let child = spawn_from_keeper(cmd).unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let child = NsChild {
            pid: child.id(),
            child: Arc::new(Mutex::new(child)),
        };
        children.push(child.clone());
        child
    }

    /// Runs `f` on a thread that has entered this namespace (setns), so sockets it opens
    /// live there. Only that short-lived thread moves; panics if entering fails rather than
    /// running `f` in the root namespace.
    pub fn in_ns<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = Path::new(NETNS_DIR).join(self.name());
        let file =
            File::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) on a valid descriptor; it changes only this thread's
                // network namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns into {} failed: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Whether a TCP connection to `addr:port` opens from inside the namespace within
    /// `timeout`.
    pub fn tcp_connect_timeout(&self, addr: &str, port: u16, timeout: Duration) -> bool {
        let Some(sa) = socket_addr(addr, port) else {
            return false;
        };
        self.in_ns(|| TcpStream::connect_timeout(&sa, timeout).is_ok())
    }

    /// Whether a TCP connection to `addr:port` opens from inside the namespace (3 s limit).
    pub fn tcp_connect(&self, addr: &str, port: u16) -> bool {
        self.tcp_connect_timeout(addr, port, Duration::from_secs(3))
    }

    /// One ICMP echo to `addr` from inside the namespace (1 s limit): `ping` if installed
    /// (iputils-ping), else busybox's.
    pub fn ping(&self, addr: &str) -> bool {
        let mut args: Vec<&str> = if which("ping") {
            vec!["ping"]
        } else {
            vec!["busybox", "ping"]
        };
        args.extend(["-c", "1", "-W", "1", addr]);
        self.exec(args).status.success()
    }

    /// GET `url` from inside the namespace with a real client (python3's urllib, no proxy,
    /// 3 s timeout); the body on a 2xx answer, else the error. Names resolve through
    /// `/etc/netns/<ns>/resolv.conf` when present, as for any `ip netns exec` program.
    pub fn http_get(&self, url: &str) -> Result<String, String> {
        const CLIENT: &str = "import sys, urllib.request\n\
            o = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n\
            try:\n    sys.stdout.write(o.open(sys.argv[1], timeout=3).read().decode())\n\
            except Exception as e:\n    sys.stderr.write(str(e))\n    sys.exit(1)\n";
        let out = self.exec([python3(), "-c", CLIENT, url]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "GET {url} from {}: {}",
                self.name(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Starts a TCP listener on `port` (all IPv4 addresses) inside the namespace that accepts
    /// and closes connections; returns once it is listening.
    pub fn listen(&self, port: u16) -> NsChild {
        const LISTENER: &str = "import socket, sys\n\
            s = socket.socket()\n\
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind(('0.0.0.0', int(sys.argv[1])))\n\
            s.listen(64)\n\
            while True:\n    c, _ = s.accept()\n    c.close()\n";
        let child = self.spawn_with([python3(), "-c", LISTENER, &port.to_string()], |cmd| {
            cmd.stderr(Stdio::piped());
        });
        self.wait_listening(&child, "127.0.0.1", port, "listener");
        child
    }

    /// Waits (10 s at most) until `addr:port` accepts connections inside the namespace;
    /// panics with the server's stderr if `child` exits first or time runs out.
    pub(crate) fn wait_listening(&self, child: &NsChild, addr: &str, port: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.tcp_connect_timeout(addr, port, Duration::from_millis(200)) {
                return;
            }
            let exited = child.try_wait();
            if exited.is_some() || Instant::now() > deadline {
                let mut err = String::new();
                child.with_child(|c| {
                    // Killed first so its stderr reaches end of file.
                    if exited.is_none() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    if let Some(e) = c.stderr.as_mut() {
                        let _ = e.read_to_string(&mut err);
                    }
                });
                panic!(
                    "{what} on {addr}:{port} in {} did not start ({}): {err}",
                    self.name(),
                    exited.map_or("timed out".to_string(), |s| s.to_string())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long [`kill_strays`] waits for the processes it killed to be gone.
const STRAY_TIMEOUT: Duration = Duration::from_secs(10);

/// The processes whose network namespace is `name` (`ip netns pids`), but never this one (a
/// thread of the test may have entered the namespace).
pub fn netns_pids(name: &str) -> Vec<u32> {
    let out = match Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("virtnet-testkit: cannot run ip netns pids {name}: {e}");
            return Vec::new();
        }
    };
    let me = std::process::id();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != me)
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for its parent).
pub fn pid_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold ") ".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// SIGKILLs every process still in the namespace `name` and waits until they are gone.
///
/// Only the harness's own processes can be there: the namespace was made by this test and
/// nothing else enters it. Those the harness did not start itself are the ones that left
/// their parent: a daemonizing client (`dhclient` forks into the background once it has a
/// lease) or a job a script put in the background. Without this they would run on in a
/// namespace `ip netns del` only unmounts.
fn kill_strays(name: &str) {
    let deadline = Instant::now() + STRAY_TIMEOUT;
    loop {
        let left: Vec<u32> = netns_pids(name)
            .into_iter()
            .filter(|&p| pid_running(p))
            .collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("virtnet-testkit: processes {left:?} in {name} survived SIGKILL");
            return;
        }
        for pid in left {
            // SAFETY: kill(2) on a PID just listed in our own namespace; no memory involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Prefix of a [`crate::Lab`]'s temporary directory; the owner's PID follows it.
pub(crate) const TMP_PREFIX_LAB: &str = "vnt-lab-";

/// Prefix of a [`crate::Daemon`]'s temporary directory; the owner's PID follows it.
pub(crate) const TMP_PREFIX_DAEMON: &str = "vnt-daemon-";

/// Prefix of a [`crate::Virtqemud`]'s scratch directory; the owner's PID follows it.
pub(crate) const TMP_PREFIX_VIRTQEMUD: &str = "vnt-virtqemud-";

/// A temporary directory `<prefix><pid>-<label>-XXXXXX`: the PID lets
/// [`Netns::sweep_stale`] remove it once its owner is gone without a trace.
pub(crate) fn owned_temp_dir(prefix: &str, label: &str) -> tempfile::TempDir {
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-{label}-", std::process::id()))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary directory: {e}"))
}

/// Names in `dir` starting with one of `prefixes` followed by `<pid>-`, where that PID is
/// neither ours nor alive.
fn stale_entries(dir: &Path, prefixes: &[&str]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let pid = prefixes
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            pid.is_some_and(|pid| pid != me && !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect()
}

/// A spawn request for the keeper thread: the command and where to send the result.
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process. `PR_SET_PDEATHSIG` fires
/// when the *thread* that forked a child exits, so children spawned from a test's own thread
/// (or a scoped helper thread) would be killed as soon as that thread ends; from the keeper
/// they die only with the whole test binary, which is what the signal is for.
fn spawn_from_keeper(cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("vnt-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the spawner thread");
        Mutex::new(tx)
    });
    let (reply, result) = mpsc::channel();
    lock(keeper)
        .send((cmd, reply))
        .expect("the spawner thread is gone");
    result.recv().expect("the spawner thread is gone")
}

/// Runs `cmd`, returning stdout; panics with everything known when it fails.
fn output_ok(mut cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    if !out.status.success() {
        panic!(
            "{shown} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `addr:port` as a socket address, without name lookup (a lookup would use the root
/// namespace's resolver).
fn socket_addr(addr: &str, port: u16) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = addr.trim_matches(['[', ']']).parse().ok()?;
    (ip, port).to_socket_addrs().ok()?.next()
}

/// Whether `prog` is on `PATH`.
fn which(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(prog).is_file()))
}

/// The python3 to run helpers with: Debian's own when present, so the helpers do not depend
/// on whatever version manager shims the caller's `PATH`.
pub(crate) fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").is_file() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Writes `text` to `path` (a helper script), panicking with the path on failure.
pub(crate) fn write_file(path: &Path, text: &str) {
    File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
