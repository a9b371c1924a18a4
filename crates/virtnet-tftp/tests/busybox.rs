//! The server against the real busybox `tftp` client, each test inside a network namespace of
//! its own: the test thread `unshare`s a new namespace (192.168.122.1/24 on its `lo`), so the
//! runtime's worker threads and the busybox children started from it live there too, and the
//! namespace disappears with the thread. Nothing touches the root namespace. Needs root, `ip`
//! and `busybox`.

use std::net::IpAddr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use virtnet_tftp::{TftpServer, TftpStats};

const SERVER: &str = "192.168.122.1";

/// Runs `f` on a fresh thread inside a fresh network namespace, with a server on
/// 192.168.122.1:69 serving `root`.
fn with_server<F: FnOnce(&TftpServer, &Path) + Send + 'static>(root: PathBuf, f: F) {
    virtnet_testkit::in_thread_netns(&["192.168.122.1/24"], move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let ip: IpAddr = SERVER.parse().expect("ip");
        let srv = {
            let _g = rt.enter();
            TftpServer::start(&root, Some("lo"), ip, 69).expect("start")
        };
        f(&srv, &root);
        srv.stop();
    });
}

fn tftp_cmd(remote: &str, local: &Path, blksize: Option<u32>) -> Command {
    let mut cmd = Command::new("busybox");
    cmd.args(["tftp", "-g", "-r", remote, "-l"]).arg(local);
    if let Some(b) = blksize {
        cmd.args(["-b", &b.to_string()]);
    }
    cmd.arg(SERVER);
    cmd
}

fn tftp_get(remote: &str, local: &Path, blksize: Option<u32>) -> Output {
    tftp_cmd(remote, local, blksize).output().expect("busybox")
}

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A root (under a temp dir, with `outside` beside it) holding `files`, world-readable.
fn root_with(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    // tempdir makes a 0700 directory; the server serves only what others may reach.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = dir.path().join("tftproot");
    std::fs::create_dir(&root).expect("mkdir");
    for (name, body) in files {
        let p = root.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, body).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    (dir, root)
}

fn assert_got(out: &Output, local: &Path, want: &[u8]) {
    assert!(
        out.status.success(),
        "busybox failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(local).expect("local file");
    assert_eq!(got.len(), want.len(), "size");
    assert!(got == want, "contents differ");
}

fn assert_refused(out: &Output, code: u32) {
    assert!(!out.status.success(), "busybox succeeded but should not");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("({code})")),
        "expected server error ({code}), got: {err}"
    );
}

/// Waits until the counters settle on `pred` (the server counts after the last ACK arrives,
/// which can be just after busybox exits).
fn wait_stats(srv: &TftpServer, pred: impl Fn(&TftpStats) -> bool) -> TftpStats {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = srv.stats();
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "stats never matched: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn small_exact_multiple_and_large_files() {
    let small = b"PXE boot stub\n".to_vec();
    let exact = pseudo_random(512 * 4, 1);
    let exact1400 = pseudo_random(1400 * 3, 2);
    let large = pseudo_random(3 * 1024 * 1024 + 17, 3);
    let (_dir, root) = root_with(&[
        ("pxelinux.0", small.clone()),
        ("exact.bin", exact.clone()),
        ("boot/exact1400.bin", exact1400.clone()),
        ("images/vmlinuz", large.clone()),
        ("empty", Vec::new()),
    ]);
    with_server(root, move |srv, _root| {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let l = |n: &str| out_dir.path().join(n);
        assert_got(&tftp_get("pxelinux.0", &l("a"), None), &l("a"), &small);
        assert_got(&tftp_get("/pxelinux.0", &l("a2"), None), &l("a2"), &small);
        // 4 full blocks, then an empty DATA 5 ends the transfer.
        assert_got(&tftp_get("exact.bin", &l("b"), None), &l("b"), &exact);
        assert_got(
            &tftp_get("boot/exact1400.bin", &l("c"), Some(1400)),
            &l("c"),
            &exact1400,
        );
        assert_got(
            &tftp_get("images/vmlinuz", &l("d"), Some(1400)),
            &l("d"),
            &large,
        );
        // blksize beyond the cap: negotiated down to 1468, busybox follows the OACK.
        assert_got(
            &tftp_get("images/vmlinuz", &l("e"), Some(8192)),
            &l("e"),
            &large,
        );
        assert_got(&tftp_get("empty", &l("f"), None), &l("f"), b"");
        let s = wait_stats(srv, |s| s.files_sent == 7);
        assert_eq!(s.requests, 7, "{s:?}");
        assert_eq!((s.errors, s.refused, s.malformed), (0, 0, 0), "{s:?}");
    });
}

#[test]
fn block_numbers_wrap_past_32_mib() {
    // 512-byte blocks: 33 MiB is 67 584 blocks, past 65 535.
    let big = pseudo_random(33 * 1024 * 1024 + 100, 4);
    let (_dir, root) = root_with(&[("huge.img", big.clone())]);
    with_server(root, move |srv, _root| {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let l = out_dir.path().join("huge");
        assert_got(&tftp_get("huge.img", &l, None), &l, &big);
        wait_stats(srv, |s| s.files_sent == 1);
    });
}

#[test]
fn missing_files_escapes_and_writes_are_refused() {
    let (dir, root) = root_with(&[("ok", b"fine".to_vec()), ("private", b"no".to_vec())]);
    let outside = dir.path().join("outside-secret");
    std::fs::write(&outside, b"secret").expect("write");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    symlink(&outside, root.join("link-out")).expect("symlink");
    symlink("/etc", root.join("etc")).expect("symlink");
    std::fs::create_dir(root.join("subdir")).expect("mkdir");
    with_server(root, move |srv, root| {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let l = out_dir.path().join("x");
        assert_refused(&tftp_get("nope", &l, None), 1);
        assert_refused(&tftp_get("subdir", &l, None), 1);
        assert_refused(&tftp_get("../outside-secret", &l, None), 2);
        assert_refused(&tftp_get("../etc/passwd", &l, None), 2);
        assert_refused(&tftp_get("/../../etc/passwd", &l, None), 2);
        assert_refused(&tftp_get("a/../../outside-secret", &l, None), 2);
        assert_refused(&tftp_get("link-out", &l, None), 2);
        assert_refused(&tftp_get("etc/passwd", &l, Some(1400)), 2);
        assert_refused(&tftp_get("private", &l, None), 2);
        let abs = outside.display().to_string();
        assert_refused(&tftp_get(&abs, &l, None), 1);
        // Nothing secret reached the client.
        if let Ok(got) = std::fs::read(&l) {
            assert!(!got.starts_with(b"secret") && !got.starts_with(b"root:"));
        }
        // Write requests: ERROR 2, and nothing is created in the root.
        let up = out_dir.path().join("upload");
        std::fs::write(&up, b"evil").expect("write");
        let out = Command::new("busybox")
            .args(["tftp", "-p", "-l"])
            .arg(&up)
            .args(["-r", "planted", SERVER])
            .output()
            .expect("busybox");
        assert_refused(&out, 2);
        assert!(!root.join("planted").exists());
        // The absolute path of the root itself is accepted as dnsmasq does.
        let l2 = out_dir.path().join("ok");
        let abs_ok = format!("{}/ok", root.display());
        assert_got(&tftp_get(&abs_ok, &l2, None), &l2, b"fine");
        let s = wait_stats(srv, |s| s.files_sent == 1);
        assert_eq!(s.refused, 11, "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
    });
}

#[test]
fn concurrent_downloads() {
    let a = pseudo_random(2 * 1024 * 1024 + 3, 5);
    let b = pseudo_random(1024 * 1024 + 512 * 7, 6);
    let (_dir, root) = root_with(&[("a.img", a.clone()), ("b.img", b.clone())]);
    with_server(root, move |srv, _root| {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let (la, lb, la2) = (
            out_dir.path().join("a"),
            out_dir.path().join("b"),
            out_dir.path().join("a2"),
        );
        let ca = tftp_cmd("a.img", &la, None).output_later();
        let cb = tftp_cmd("b.img", &lb, Some(1024)).output_later();
        let ca2 = tftp_cmd("a.img", &la2, Some(1468)).output_later();
        let (oa, ob, oa2) = (ca.wait(), cb.wait(), ca2.wait());
        assert_got(&oa, &la, &a);
        assert_got(&ob, &lb, &b);
        assert_got(&oa2, &la2, &a);
        wait_stats(srv, |s| s.files_sent == 3);
    });
}

/// Spawns a command now, collects its output later.
trait OutputLater {
    fn output_later(&mut self) -> Later;
}

struct Later(std::process::Child);

impl OutputLater for Command {
    fn output_later(&mut self) -> Later {
        Later(
            self.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("busybox"),
        )
    }
}

impl Later {
    fn wait(self) -> Output {
        self.0.wait_with_output().expect("wait")
    }
}
