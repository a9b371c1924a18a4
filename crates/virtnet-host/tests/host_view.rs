//! The followed view of routes and addresses, and the chain-header listing, against the real
//! kernel, each test in its own network namespace.

mod common;

use std::net::IpAddr;

use common::{enter_netns, netns, spec};
use virtnet_host::{ChainHeader, HostView, Nftables};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn has_address(view: &HostView, index: u32, addr: IpAddr) -> bool {
    view.addresses()
        .iter()
        .any(|a| a.ifindex == index && a.addr == addr)
}

fn has_route_on(view: &HostView, index: u32, dest: IpAddr) -> bool {
    view.routes()
        .iter()
        .any(|r| r.oif == Some(index) && r.dest == dest)
}

#[test]
fn the_view_follows_what_the_kernel_announces() {
    let mut nl = netns();
    let mut view = HostView::open().unwrap();
    let br = nl.create_bridge(&spec("vb0")).unwrap();
    // The first refresh dumps: what existed before is in.
    nl.add_address(br, ip("10.9.0.1"), 24).unwrap();
    view.refresh(&mut nl).unwrap();
    assert!(has_address(&view, br, ip("10.9.0.1")), "{view:?}");

    // Later changes arrive as notifications.
    nl.add_address(br, ip("10.9.1.1"), 24).unwrap();
    nl.del_address(br, ip("10.9.0.1"), 24).unwrap();
    view.refresh(&mut nl).unwrap();
    assert!(has_address(&view, br, ip("10.9.1.1")));
    assert!(!has_address(&view, br, ip("10.9.0.1")));
    assert!(
        has_route_on(&view, br, ip("10.9.1.0")),
        "prefix route of the new address: {:?}",
        view.routes()
    );
    assert!(!has_route_on(&view, br, ip("10.9.0.0")));

    // The kernel flushes a deleted link's IPv4 routes without a word: forget_links drops
    // them, and the deletion's own announcements do not bring them back.
    view.forget_links(&[br]);
    nl.delete_link(br).unwrap();
    view.refresh(&mut nl).unwrap();
    assert!(!has_address(&view, br, ip("10.9.1.1")));
    assert!(!has_route_on(&view, br, ip("10.9.1.0")));

    // After invalidate, the next refresh dumps again and agrees with the kernel.
    view.invalidate();
    view.refresh(&mut nl).unwrap();
    let dumped: std::collections::HashSet<_> = nl.addresses().unwrap().into_iter().collect();
    assert_eq!(view.addresses(), &dumped);
}

#[test]
fn chain_headers_list_base_chains_with_hook_and_policy() {
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    assert_eq!(nft.chain_headers().unwrap(), vec![]);
    nft.run(
        "add table ip filter\n\
         add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }\n\
         add chain ip filter helper\n",
    )
    .unwrap();
    let mut chains = nft.chain_headers().unwrap();
    chains.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        chains,
        vec![
            ChainHeader::base("ip", "filter", "FORWARD", "forward", "drop"),
            ChainHeader::regular("ip", "filter", "helper"),
        ]
    );
    // The context is back to text output afterwards.
    assert!(nft.run("list tables").unwrap().contains("table ip filter"));
}
