//! Test support: every test moves its thread into a fresh network namespace
//! first, so nothing here can touch the host's root namespace.

#![allow(dead_code)]

use virtnet_host::{BridgeSpec, Netlink};

/// Moves the calling thread into a new, empty network namespace (see
/// [`virtnet_testkit::enter_thread_netns`]).
pub fn enter_netns() {
    virtnet_testkit::enter_thread_netns();
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
