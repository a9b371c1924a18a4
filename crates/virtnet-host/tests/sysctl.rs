//! `/proc/sys/net` is per network namespace: checked in fresh namespaces
//! only, never writing outside one.

mod common;

use common::enter_netns;
use virtnet_host::sysctl;

#[test]
fn sysctl_is_per_namespace_and_writes_only_when_different() {
    enter_netns();
    assert_eq!(sysctl::read("net/ipv4/ip_forward").unwrap(), "0");
    assert!(sysctl::write("net/ipv4/ip_forward", "1").unwrap());
    assert!(!sysctl::write("net/ipv4/ip_forward", "1").unwrap());
    assert!(!sysctl::write("net/ipv4/ip_forward", "1\n").unwrap());
    assert_eq!(sysctl::read("net/ipv4/ip_forward").unwrap(), "1");

    // Another thread (inheriting this namespace) moves to its own fresh
    // namespace: it sees the default again.
    let other = std::thread::spawn(|| {
        assert_eq!(sysctl::read("net/ipv4/ip_forward").unwrap(), "1");
        enter_netns();
        sysctl::read("net/ipv4/ip_forward").unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(other, "0");
    assert_eq!(sysctl::read("net/ipv4/ip_forward").unwrap(), "1");

    let e = sysctl::read("net/ipv4/conf/nosuch0/forwarding").unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT));
    assert_eq!(
        e.to_string(),
        "read sysctl net/ipv4/conf/nosuch0/forwarding: No such file or directory (os error 2)"
    );
    assert_eq!(
        sysctl::write("../etc/passwd", "x").unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}
