//! Network namespaces per thread, for tests that run servers in process: the calling thread
//! `unshare`s a fresh namespace, so the runtime threads and child processes it starts live
//! there too, and the namespace goes with the thread. Nothing touches the root namespace.

use std::path::PathBuf;
use std::process::Command;

fn netns_id() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net")
        .unwrap_or_else(|e| panic!("cannot read /proc/thread-self/ns/net: {e}"))
}

/// Moves the calling thread into a new, empty network namespace (`unshare(CLONE_NEWNET)`).
/// Panics when that fails or the namespace did not change: a test must never go on in the
/// namespace it started in.
pub fn enter_thread_netns() {
    let before = netns_id();
    // SAFETY: plain syscall; it changes only the calling thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {} (run as root) — refusing to run in the current namespace",
        std::io::Error::last_os_error()
    );
    assert_ne!(before, netns_id(), "still in the old network namespace");
}

/// Runs `f` on a new thread inside a new network namespace whose `lo` is up and holds
/// `lo_addrs` (CIDR); a panic in `f` is passed on.
pub fn in_thread_netns<R: Send + 'static>(
    lo_addrs: &[&str],
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let addrs: Vec<String> = lo_addrs.iter().map(|a| a.to_string()).collect();
    let t = std::thread::spawn(move || {
        enter_thread_netns();
        ip(&["link", "set", "lo", "up"]);
        for a in &addrs {
            ip(&["addr", "add", a, "dev", "lo"]);
        }
        f()
    });
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn ip(args: &[&str]) {
    let st = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(st.success(), "ip {args:?}: {st}");
}
