//! The reaper against a real kernel, in a private network namespace: queued links are deleted
//! in the background, one that cannot go does not keep the others, and dropping the reaper
//! finishes what was queued.

use virtnet_host::{BridgeSpec, Netlink};
use virtnetd::reaper::{Batching, Reaper};

/// Moves this test thread into a new network namespace; netlink there.
fn private_netns() -> Netlink {
    virtnet_testkit::enter_thread_netns();
    Netlink::open().expect("netlink in the test namespace")
}

fn bridge(nl: &mut Netlink, name: &str) -> u32 {
    nl.create_bridge(&BridgeSpec {
        name: name.into(),
        mac: None,
        mtu: None,
        alias: format!("virtnet:{name}"),
        stp: false,
        forward_delay_cs: 0,
        group: 0,
    })
    .expect("create bridge")
}

fn names(nl: &mut Netlink) -> Vec<String> {
    let mut n: Vec<String> = nl
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    n.sort();
    n
}

#[test]
fn queued_links_are_deleted_and_one_that_cannot_go_keeps_no_other() {
    for batching in [Batching::Together, Batching::OneByOne] {
        queued_links_are_deleted(batching);
    }
}

fn queued_links_are_deleted(batching: Batching) {
    let mut nl = private_netns();
    let reaper = Reaper::spawn(batching).expect("reaper");
    let a = bridge(&mut nl, "vb-a");
    let b = bridge(&mut nl, "vb-b");
    reaper.delete(vec![a]).expect("queued");
    reaper.wait_idle();
    assert_eq!(names(&mut nl), ["lo", "vb-b"]);
    // `lo` (index 1) cannot be deleted: a batch fails and the others go one by one; one by
    // one, only `lo` stays.
    let c = bridge(&mut nl, "vb-c");
    reaper.delete(vec![b, 1, c]).expect("queued");
    reaper.wait_idle();
    assert_eq!(names(&mut nl), ["lo"]);
    reaper.delete(Vec::new()).expect("nothing to queue");
    reaper.wait_idle();
}

#[test]
fn dropping_the_reaper_finishes_what_was_queued() {
    let mut nl = private_netns();
    let reaper = Reaper::spawn(Batching::OneByOne).expect("reaper");
    let queued: Vec<u32> = (0..3)
        .map(|i| bridge(&mut nl, &format!("vb-{i}")))
        .collect();
    reaper.delete(queued).expect("queued");
    drop(reaper);
    assert_eq!(names(&mut nl), ["lo"]);
}

/// Issue 18: a reaper deleting while requests kept coming made each request wait for the
/// deletion under way (both hold RTNL), and back-to-back destroys grew with the host's links.
/// Now nothing is deleted while a kernel request runs, and what was deferred goes once the
/// kernel layer is quiet.
#[test]
fn nothing_is_deleted_while_a_kernel_request_runs() {
    let mut nl = private_netns();
    let reaper = Reaper::spawn(Batching::OneByOne).expect("reaper");
    let doomed = bridge(&mut nl, "vb-busy");
    let request = virtnetd::reaper::busy();
    reaper.delete(vec![doomed]).expect("queued");
    // However long the request runs (here several quiet periods), the link stays.
    std::thread::sleep(virtnetd::reaper::QUIET * 3);
    assert_eq!(names(&mut nl), ["lo", "vb-busy"]);
    drop(request);
    reaper.wait_idle();
    assert_eq!(names(&mut nl), ["lo"]);
}
