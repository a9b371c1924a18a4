//! Test support: every test moves its thread into a fresh network namespace
//! first, so nothing here can touch the host's root namespace.

#![allow(dead_code)]

use std::path::Path;

use virtnet_host::{BridgeSpec, Netlink};

fn netns_id() -> std::path::PathBuf {
    std::fs::read_link(Path::new("/proc/thread-self/ns/net"))
        .unwrap_or_else(|e| panic!("cannot read /proc/thread-self/ns/net: {e}"))
}

/// Moves the calling thread into a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`; the namespace is per thread). Panics if that
/// fails or the namespace did not change: a test must never go on in the
/// namespace it started in.
pub fn enter_netns() {
    let before = netns_id();
    // SAFETY: plain syscall, affects only the calling thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!(
            "unshare(CLONE_NEWNET) failed: {} — refusing to run in the current namespace",
            std::io::Error::last_os_error()
        );
    }
    let after = netns_id();
    assert_ne!(before, after, "still in the old network namespace");
}

/// A fresh namespace and a netlink socket in it.
pub fn netns() -> Netlink {
    enter_netns();
    Netlink::open().expect("open netlink in the test namespace")
}

/// A typical libvirt-like bridge spec.
pub fn spec(name: &str) -> BridgeSpec {
    BridgeSpec {
        name: name.to_string(),
        mac: None,
        mtu: None,
        alias: format!("virtnet:{name}"),
        stp: true,
        forward_delay_cs: 0,
        group: 0,
    }
}
