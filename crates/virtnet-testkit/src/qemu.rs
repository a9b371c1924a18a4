//! A real QEMU guest for end-to-end tests: Debian 12's kernel and a busybox initramfs, built
//! (and cached) by `tests/guest/build.sh`, booted on a tap in a test's namespace.
//!
//! The guest's init leases an address with `udhcpc`, reports it on the serial console and then
//! runs the shell commands written to the console (see the protocol in `build.sh`). QEMU runs
//! inside the namespace holding the tap, with the console on its stdin and stdout; it is killed
//! by its PID when the [`QemuGuest`] is dropped (and with the namespace, whatever happens).
//!
//! `$VIRTNET_QEMU_ACCEL` chooses the accelerator: `tcg` (emulation) by default, because a
//! `/dev/kvm` that exists can still be unusable (nested virtualisation: on the development VMs
//! QEMU's KVM guest hangs, or aborts setting MSRs with `-cpu host`), and `kvm:tcg` would pick
//! it; the guest boots in about a second emulated anyway. Set `kvm:tcg` where KVM works.
//! `$VIRTNET_GUEST_CACHE` says where the guest is cached.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::netns::{Netns, NsChild};

/// How long [`QemuGuest::lease`] and [`QemuGuest::wait_ready`] wait: boot (well under 10 s
/// even emulated) plus udhcpc's ten one-second tries, with room for a loaded machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Marker the guest's init prints first.
const BOOT_MARKER: &str = "VIRTNET boot";
/// Marker printed once the command loop reads the console.
const READY_MARKER: &str = "VIRTNET ready";
/// Marker of a lease (printed by the udhcpc script).
const LEASE_MARKER: &str = "VIRTNET lease ";
/// Marker of a failed DHCP exchange.
const DHCP_FAILED_MARKER: &str = "VIRTNET dhcp-failed";

/// The kernel and initramfs built by `tests/guest/build.sh`.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The Debian kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The busybox initramfs (`initrd.gz`).
    pub initrd: PathBuf,
}

/// Runs `tests/guest/build.sh` once per process (it returns at once when its cache is fresh)
/// and returns the image; panics with the script's output when it fails.
pub fn guest_image() -> &'static GuestImage {
    static IMAGE: OnceLock<GuestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guest/build.sh");
        let dir = crate::run_build_script(&script);
        let image = GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.gz"),
        };
        assert!(
            image.kernel.is_file() && image.initrd.is_file(),
            "{} printed {}, which holds no vmlinuz and initrd.gz",
            script.display(),
            dir.display()
        );
        image
    })
}

/// What the guest's DHCP client was given, parsed from its `VIRTNET lease` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The routers offered (option 3).
    pub routers: Vec<Ipv4Addr>,
    /// The DNS servers offered (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// The domain name offered (option 15), if any.
    pub domain: Option<String>,
    /// The lease time in seconds (option 51), if given.
    pub lease_secs: Option<u64>,
}

impl Lease {
    /// Parses `VIRTNET lease ip=A mask=N router=R dns=D1 D2 domain=X lease=S` (lists are
    /// space-separated, so a value runs until the next `key=`).
    pub fn parse(line: &str) -> Option<Lease> {
        let rest = &line[line.find(LEASE_MARKER)? + LEASE_MARKER.len()..];
        let mut fields: Vec<(String, String)> = Vec::new();
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if k.chars().all(|c| c.is_ascii_lowercase()) => {
                    fields.push((k.to_string(), v.to_string()))
                }
                _ => {
                    let last = fields.last_mut()?;
                    last.1.push(' ');
                    last.1.push_str(word);
                }
            }
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let addrs = |key: &str| -> Vec<Ipv4Addr> {
            get(key)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect()
        };
        Some(Lease {
            ip: get("ip")?.parse().ok()?,
            prefix: get("mask")?.parse().ok()?,
            routers: addrs("router"),
            dns: addrs("dns"),
            domain: get("domain"),
            lease_secs: get("lease").and_then(|s| s.parse().ok()),
        })
    }
}

/// The serial console as read so far: complete lines (with the time each arrived, counted
/// from QEMU's start), the unfinished last line, and whether QEMU closed it.
#[derive(Debug, Default)]
struct ConsoleText {
    lines: Vec<(Duration, String)>,
    partial: String,
    closed: bool,
}

#[derive(Debug, Default)]
struct Console {
    text: Mutex<ConsoleText>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Console {
    /// Appends what a reader thread read; `prefix` marks QEMU's own stderr lines.
    fn feed(&self, chunk: &str, prefix: &str, started: Instant) {
        let mut text = lock(&self.text);
        for ch in chunk.chars() {
            match ch {
                '\r' => {}
                '\n' => {
                    let line = std::mem::take(&mut text.partial);
                    text.lines
                        .push((started.elapsed(), format!("{prefix}{line}")));
                }
                c => text.partial.push(c),
            }
        }
        self.changed.notify_all();
    }

    fn close(&self) {
        let mut text = lock(&self.text);
        if !text.partial.is_empty() {
            let line = std::mem::take(&mut text.partial);
            text.lines.push((Duration::ZERO, line));
        }
        text.closed = true;
        self.changed.notify_all();
    }

    fn log(&self) -> String {
        let text = lock(&self.text);
        let mut out = String::new();
        for (at, line) in &text.lines {
            out.push_str(&format!("[{:7.3}] {line}\n", at.as_secs_f64()));
        }
        if !text.partial.is_empty() {
            out.push_str(&format!("[  ...  ] {}\n", text.partial));
        }
        out
    }
}

/// How [`QemuGuest::boot_with`] starts QEMU.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Words before `qemu-system-x86_64` (for example `setpriv --reuid=… --`, or a shell that
    /// prepares a mount namespace and ends with `exec "$@"`); empty: QEMU itself.
    pub wrapper: Vec<String>,
    /// Extra environment for QEMU (which passes it on to its helpers and scripts).
    pub env: Vec<(String, String)>,
    /// Extra arguments after QEMU's own (for example `-incoming tcp:0:4444`).
    pub args: Vec<String>,
}

/// A QEMU guest booted on a tap, driven through its serial console.
#[derive(Debug)]
pub struct QemuGuest {
    hostname: String,
    // Declared before the namespace handle so QEMU is killed first (Drop does it anyway).
    child: NsChild,
    stdin: Mutex<Option<ChildStdin>>,
    console: Arc<Console>,
    next_id: AtomicU32,
    _ns: Netns,
}

impl QemuGuest {
    /// Boots the guest inside `ns` on the existing tap `tap` with MAC `mac`; the guest sends
    /// `hostname` with its DHCP requests. Returns once QEMU runs (the guest then boots on its
    /// own: see [`QemuGuest::wait_ready`] and [`QemuGuest::lease`]). Builds the image on the
    /// first call in a process; panics when that or starting QEMU fails.
    pub fn boot(ns: &Netns, tap: &str, mac: &str, hostname: &str) -> QemuGuest {
        QemuGuest::boot_with(
            ns,
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            mac,
            hostname,
            &Launch::default(),
        )
    }

    /// Like [`QemuGuest::boot`], with the NIC's backend given as QEMU's whole `-netdev` value
    /// (its id must be `n0`: `bridge,id=n0,br=virbr0,helper=…`, `tap,id=n0,ifname=…,script=…`)
    /// and QEMU started as `launch` says (a wrapper command, extra environment). The QEMU
    /// process must keep the wrapper's PID (the wrapper ends with `exec`), so that
    /// [`QemuGuest::pid`] and the kill on drop reach QEMU.
    pub fn boot_with(
        ns: &Netns,
        netdev: &str,
        mac: &str,
        hostname: &str,
        launch: &Launch,
    ) -> QemuGuest {
        assert!(
            !hostname.is_empty()
                && hostname
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "the guest's hostname must be a DNS label: {hostname:?}"
        );
        let image = guest_image();
        let accel = std::env::var("VIRTNET_QEMU_ACCEL").unwrap_or_else(|_| "tcg".into());
        let append = format!("console=ttyS0 quiet panic=-1 virtnet.hostname={hostname}");
        let mut args: Vec<String> = launch.wrapper.clone();
        args.extend([
            "qemu-system-x86_64".to_string(),
            "-machine".into(),
            format!("q35,accel={accel}"),
            "-m".into(),
            "256".into(),
            // No default devices (VGA, NIC, monitor): only the serial console and our NIC.
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            "stdio".into(),
            "-kernel".into(),
            image.kernel.to_string_lossy().into_owned(),
            "-initrd".into(),
            image.initrd.to_string_lossy().into_owned(),
            "-append".into(),
            append,
            "-netdev".into(),
            netdev.to_string(),
            "-device".into(),
            // No option ROM: the kernel is loaded directly, iPXE would only cost boot time.
            format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        ]);
        args.extend(launch.args.iter().cloned());
        let started = Instant::now();
        let child = ns.spawn_with(&args, |cmd| {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .envs(launch.env.iter().map(|(k, v)| (k, v)));
        });
        let (stdin, stdout, stderr) =
            child.with_child(|c| (c.stdin.take(), c.stdout.take(), c.stderr.take()));
        let console = Arc::new(Console::default());
        let stdout = stdout.expect("QEMU's stdout is piped");
        let stderr = stderr.expect("QEMU's stderr is piped");
        spawn_reader(stdout, "", &console, started, true);
        spawn_reader(stderr, "qemu: ", &console, started, false);
        QemuGuest {
            hostname: hostname.to_string(),
            child,
            stdin: Mutex::new(stdin),
            console,
            next_id: AtomicU32::new(1),
            _ns: ns.clone(),
        }
    }

    /// The hostname the guest was booted with.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// QEMU's PID.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Everything the console showed so far (and QEMU's stderr, prefixed `qemu: `), each line
    /// with the seconds since QEMU started: for failure messages.
    pub fn console_log(&self) -> String {
        self.console.log()
    }

    /// Waits until a console line contains `pattern` and returns that line (the first such
    /// line since boot). Panics with the console log when `timeout` passes or QEMU exits.
    pub fn wait_for(&self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_timed(pattern, timeout).1
    }

    /// Like [`QemuGuest::wait_for`], also returning when (since QEMU's start) the line came.
    pub fn wait_for_timed(&self, pattern: &str, timeout: Duration) -> (Duration, String) {
        match self.wait_any(&[pattern], timeout) {
            Ok((at, line)) => (at, line),
            Err(why) => panic!(
                "guest {}: no console line with {pattern:?}: {why}\nconsole:\n{}",
                self.hostname,
                self.console_log()
            ),
        }
    }

    /// The first line containing any of `patterns`, or why there is none.
    fn wait_any(&self, patterns: &[&str], timeout: Duration) -> Result<(Duration, String), String> {
        let deadline = Instant::now() + timeout;
        let mut text = lock(&self.console.text);
        loop {
            if let Some((at, line)) = text
                .lines
                .iter()
                .find(|(_, l)| patterns.iter().any(|p| l.contains(p)))
            {
                return Ok((*at, line.clone()));
            }
            if text.closed {
                let status = self.child.wait_timeout(Duration::from_secs(1));
                return Err(format!("QEMU exited ({status:?})"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("timed out after {timeout:?}"));
            }
            text = self
                .console
                .changed
                .wait_timeout(text, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the guest's command loop reads the console (after its DHCP attempt);
    /// returns how long that took since QEMU started.
    pub fn wait_ready(&self) -> Duration {
        self.wait_for_timed(READY_MARKER, BOOT_TIMEOUT).0
    }

    /// How long the kernel took to start the guest's init (since QEMU started); waits for it.
    pub fn boot_time(&self) -> Duration {
        self.wait_for_timed(BOOT_MARKER, BOOT_TIMEOUT).0
    }

    /// The lease the guest obtained; waits for it. Panics with the console log when the
    /// guest's DHCP client gave up (or nothing happened within [`BOOT_TIMEOUT`]).
    pub fn lease(&self) -> Lease {
        let line = match self.wait_any(&[LEASE_MARKER, DHCP_FAILED_MARKER], BOOT_TIMEOUT) {
            Ok((_, line)) if line.contains(LEASE_MARKER) => line,
            Ok(_) => panic!(
                "guest {} got no DHCP lease\nconsole:\n{}",
                self.hostname,
                self.console_log()
            ),
            Err(why) => panic!(
                "guest {}: no lease: {why}\nconsole:\n{}",
                self.hostname,
                self.console_log()
            ),
        };
        Lease::parse(&line).unwrap_or_else(|| {
            panic!(
                "guest {}: cannot parse the lease marker {line:?}\nconsole:\n{}",
                self.hostname,
                self.console_log()
            )
        })
    }

    /// Runs `cmd` (one line of shell) in the guest through its console and returns its exit
    /// status and output (stdout and stderr, trailing whitespace trimmed). Waits for the
    /// command loop first. Panics with the console log when `timeout` passes.
    pub fn run(&self, cmd: &str, timeout: Duration) -> (i32, String) {
        assert!(
            !cmd.contains('\n') && cmd.len() < 3000,
            "one line of shell (under 3000 bytes) only: {cmd:?}"
        );
        self.wait_ready();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut stdin = lock(&self.stdin);
            let pipe = stdin.as_mut().expect("the console's input is open");
            if let Err(e) = pipe
                .write_all(format!("{id} {cmd}\n").as_bytes())
                .and_then(|()| pipe.flush())
            {
                panic!(
                    "guest {}: cannot write to the console: {e}\nconsole:\n{}",
                    self.hostname,
                    self.console_log()
                );
            }
        }
        let begin = format!("VIRTNET-BEGIN {id}");
        let end = format!("VIRTNET-END {id} rc=");
        let end_line = match self.wait_any(&[&end], timeout) {
            Ok((_, line)) => line,
            Err(why) => panic!(
                "guest {}: command {cmd:?} did not finish: {why}\nconsole:\n{}",
                self.hostname,
                self.console_log()
            ),
        };
        let rc = end_line
            .split(&end)
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        let text = lock(&self.console.text);
        let output: Vec<&str> = text
            .lines
            .iter()
            .map(|(_, l)| l.as_str())
            .skip_while(|l| *l != begin)
            .skip(1)
            .take_while(|l| !l.starts_with(&end))
            .filter(|l| !l.starts_with("qemu: "))
            .collect();
        (rc, output.join("\n").trim_end().to_string())
    }

    /// Like [`QemuGuest::run`], panicking (with the output and console log) unless the
    /// command exits 0; returns the output.
    pub fn run_ok(&self, cmd: &str, timeout: Duration) -> String {
        let (rc, out) = self.run(cmd, timeout);
        if rc != 0 {
            panic!(
                "guest {}: {cmd:?} exited {rc}:\n{out}\nconsole:\n{}",
                self.hostname,
                self.console_log()
            );
        }
        out
    }
}

impl QemuGuest {
    /// Boots QEMU as the destination of a live migration (`-incoming tcp:0:PORT`) inside
    /// `ns` on tap `tap`, for the guest `hostname` with MAC `mac`. It runs nothing until the
    /// source migrates into it ([`QemuGuest::migrate_to`]); its console then continues the
    /// guest's (its command loop runs already: [`QemuGuest::run`] does not wait for a boot).
    pub fn incoming(ns: &Netns, tap: &str, mac: &str, hostname: &str, port: u16) -> QemuGuest {
        let guest = QemuGuest::boot_with(
            ns,
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            mac,
            hostname,
            &Launch {
                args: vec!["-incoming".into(), format!("tcp:0:{port}")],
                ..Launch::default()
            },
        );
        // The guest booted elsewhere: mark its console as past the boot and ready.
        guest.console.feed(
            &format!("{BOOT_MARKER} (migrated in)\n{READY_MARKER} (migrated in)\n"),
            "",
            Instant::now(),
        );
        guest
    }

    /// Boots like [`QemuGuest::boot`], with a human monitor on the unix socket `monitor` so
    /// that the guest can be migrated ([`QemuGuest::migrate_to`]).
    pub fn boot_migratable(
        ns: &Netns,
        tap: &str,
        mac: &str,
        hostname: &str,
        monitor: &Path,
    ) -> QemuGuest {
        QemuGuest::boot_with(
            ns,
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            mac,
            hostname,
            &Launch {
                args: vec![
                    "-monitor".into(),
                    format!("unix:{},server=on,wait=off", monitor.display()),
                ],
                ..Launch::default()
            },
        )
    }

    /// Live-migrates the guest through the human monitor at `monitor` to `uri` (`tcp:ADDR:PORT`,
    /// a QEMU started with [`QemuGuest::incoming`]) and waits until QEMU reports the migration
    /// completed; panics with the monitor's answers when it fails or takes longer than
    /// `timeout`. The source QEMU then stays paused.
    pub fn migrate_to(&self, monitor: &Path, uri: &str, timeout: Duration) {
        let mut hmp = std::os::unix::net::UnixStream::connect(monitor).unwrap_or_else(|e| {
            panic!(
                "cannot connect to QEMU's monitor {}: {e}",
                monitor.display()
            )
        });
        let _ = hmp.set_read_timeout(Some(Duration::from_millis(200)));
        let mut answers = String::new();
        let mut ask = |cmd: &str, answers: &mut String| {
            hmp.write_all(format!("{cmd}\n").as_bytes())
                .unwrap_or_else(|e| panic!("monitor: {cmd}: {e}"));
            std::thread::sleep(Duration::from_millis(100));
            let mut buf = [0u8; 8192];
            while let Ok(n) = hmp.read(&mut buf) {
                if n == 0 {
                    break;
                }
                answers.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        ask(&format!("migrate -d {uri}"), &mut answers);
        let deadline = Instant::now() + timeout;
        loop {
            let before = answers.len();
            ask("info migrate", &mut answers);
            let latest = &answers[before..];
            if latest.contains("Migration status: completed") {
                return;
            }
            assert!(
                !latest.contains("Migration status: failed") && Instant::now() < deadline,
                "guest {}: migration to {uri} did not complete:\n{answers}",
                self.hostname
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for QemuGuest {
    fn drop(&mut self) {
        // Closing the console ends the guest's command loop; QEMU itself is killed by PID.
        lock(&self.stdin).take();
        self.child.kill();
    }
}

/// Reads `pipe` on a thread into `console` until end of file.
fn spawn_reader(
    pipe: impl Read + Send + 'static,
    prefix: &'static str,
    console: &Arc<Console>,
    started: Instant,
    closes: bool,
) {
    let console = Arc::clone(console);
    std::thread::Builder::new()
        .name("vnt-qemu-console".into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => console.feed(&String::from_utf8_lossy(&buf), prefix, started),
                }
            }
            if closes {
                console.close();
            }
        })
        .expect("cannot start a console reader thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_marker_parses_with_lists_and_empty_fields() {
        let lease = Lease::parse(
            "VIRTNET lease ip=192.168.122.150 mask=24 router=192.168.122.1 \
             dns=192.168.122.1 10.0.0.53 domain=example.test lease=3600",
        )
        .expect("parses");
        assert_eq!(lease.ip, Ipv4Addr::new(192, 168, 122, 150));
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.routers, vec![Ipv4Addr::new(192, 168, 122, 1)]);
        assert_eq!(
            lease.dns,
            vec![Ipv4Addr::new(192, 168, 122, 1), Ipv4Addr::new(10, 0, 0, 53)]
        );
        assert_eq!(lease.domain.as_deref(), Some("example.test"));
        assert_eq!(lease.lease_secs, Some(3600));

        let bare = Lease::parse("VIRTNET lease ip=10.0.0.5 mask=8 router= dns= domain= lease=")
            .expect("parses");
        assert!(bare.routers.is_empty() && bare.dns.is_empty());
        assert_eq!(bare.domain, None);
        assert_eq!(Lease::parse("VIRTNET dhcp-failed"), None);
    }
}
