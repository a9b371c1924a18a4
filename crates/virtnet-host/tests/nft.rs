//! In-process libnftables against the kernel, in fresh network namespaces.

mod common;

use common::enter_netns;
use virtnet_host::Nftables;

fn tables(nft: &mut Nftables) -> String {
    nft.run("list tables").unwrap()
}

#[test]
fn script_is_one_atomic_transaction() {
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    assert_eq!(tables(&mut nft).trim(), "");

    // The last command fails: nothing of the script may stay.
    let bad = "add table inet t\n\
               add chain inet t c { type filter hook forward priority 0; policy accept; }\n\
               add rule inet t c ip saddr 10.0.0.0/8 accept\n\
               add rule inet t nochain accept\n";
    let e = nft.run(bad).unwrap_err();
    assert_eq!(e.errno(), None);
    let msg = e.to_string();
    println!("nft error: {msg}");
    assert!(
        msg.starts_with("run nft script `add table inet t`: Error:"),
        "{msg}"
    );
    // (nft 1.0.6 may point its caret at another line of the batch.)
    assert!(msg.contains("No such file or directory"), "{msg}");
    assert!(!msg.ends_with('\n'));
    assert_eq!(tables(&mut nft).trim(), "", "failed script left nothing");

    // The same script without the bad line applies entirely.
    let good: String = bad.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(nft.run(&good).unwrap(), "");
    assert_eq!(tables(&mut nft).trim(), "table inet t");
    let listing = nft.run("list table inet t").unwrap();
    assert!(listing.contains("chain c {"), "{listing}");
    assert!(listing.contains("ip saddr 10.0.0.0/8 accept"), "{listing}");

    nft.set_json(true);
    let json = nft.run("list tables").unwrap();
    assert!(json.starts_with("{\"nftables\":"), "{json}");
    nft.set_json(false);

    nft.run("delete table inet t").unwrap();
    assert_eq!(tables(&mut nft).trim(), "");
}

#[test]
fn syntax_error_and_nul_are_errors_not_panics() {
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    let e = nft.run("add tabel inet t").unwrap_err();
    assert!(e.to_string().contains("syntax error"), "{e}");
    let e = nft.run("add table inet t\0").unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL));
    assert_eq!(tables(&mut nft).trim(), "");
}

#[test]
fn context_is_movable_between_threads() {
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    nft.run("add table inet moved").unwrap();
    // Moved to a thread that enters yet another namespace: the context keeps
    // acting where it was created.
    let out = std::thread::spawn(move || {
        enter_netns();
        let l = nft.run("list tables").unwrap();
        let mut here = Nftables::new().unwrap();
        (l, here.run("list tables").unwrap())
    })
    .join()
    .unwrap();
    println!(
        "moved context sees {:?}; a new one there sees {:?}",
        out.0, out.1
    );
    assert_eq!(out.0.trim(), "table inet moved");
    assert_eq!(out.1.trim(), "");
}

/// `NftSets::has_table` asks the kernel for that one table (issue 18: the ruleset watcher's
/// check went through libnftables' `list tables`, which dumps every set element of every table
/// first, after every change virtnet made). Present, absent, another family's table of that
/// name, and a table holding many elements (answered all the same, with its description only).
#[test]
fn has_table_finds_one_table_by_family_and_name() {
    use virtnet_host::nft_set::{NFPROTO_BRIDGE, NFPROTO_INET};
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    let mut sets = virtnet_host::NftSets::open().unwrap();
    assert!(!sets.has_table(NFPROTO_INET, "virtnet").unwrap());
    nft.run("add table bridge virtnet\n").unwrap();
    assert!(!sets.has_table(NFPROTO_INET, "virtnet").unwrap());
    assert!(sets.has_table(NFPROTO_BRIDGE, "virtnet").unwrap());
    let elements: Vec<String> = (0..20_000)
        .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
        .collect();
    nft.run(&format!(
        "add table inet virtnet\nadd set inet virtnet s {{ type ipv4_addr; }}\n\
         add element inet virtnet s {{ {} }}\n",
        elements.join(", ")
    ))
    .unwrap();
    assert!(sets.has_table(NFPROTO_INET, "virtnet").unwrap());
    assert!(!sets.has_table(NFPROTO_INET, "other").unwrap());
    // The handle is the kernel's, as `nft -a list tables` shows it; a table made again gets
    // a new one (how coexistence notices that firewalld re-created its table).
    nft.set_json(true);
    let listed = nft.run("list tables inet\n").unwrap_or_default();
    nft.set_json(false);
    let handle = sets.table_handle(NFPROTO_INET, "virtnet").unwrap().unwrap();
    assert!(
        listed.contains(&format!("\"handle\": {handle}")),
        "{listed} vs {handle}"
    );
    nft.run("delete table inet virtnet\n").unwrap();
    assert!(!sets.has_table(NFPROTO_INET, "virtnet").unwrap());
    assert_eq!(sets.table_handle(NFPROTO_INET, "virtnet").unwrap(), None);
    nft.run("add table inet virtnet\n").unwrap();
    let again = sets.table_handle(NFPROTO_INET, "virtnet").unwrap().unwrap();
    assert_ne!(again, handle);
}

/// One element looked up by key (what is asked before deleting an element a rule may or may
/// not have added): present, absent, in a dynamic set a rule fills, and with no set or table.
#[test]
fn has_element_looks_up_one_key() {
    use virtnet_host::nft_set::{key_bytes, Field, NFPROTO_BRIDGE};
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    let mut sets = virtnet_host::NftSets::open().unwrap();
    let key = |name: &str| key_bytes(&[Field::Ifname(name.to_string())]);
    assert!(!sets
        .has_element(NFPROTO_BRIDGE, "t", "drops", &key("vnet0"))
        .unwrap());
    nft.run(
        "add table bridge t
         add set bridge t drops { type ifname; flags dynamic; counter; }
         add element bridge t drops { \"vnet0\" }
",
    )
    .unwrap();
    assert!(sets
        .has_element(NFPROTO_BRIDGE, "t", "drops", &key("vnet0"))
        .unwrap());
    assert!(!sets
        .has_element(NFPROTO_BRIDGE, "t", "drops", &key("vnet1"))
        .unwrap());
    assert!(!sets
        .has_element(NFPROTO_BRIDGE, "t", "other", &key("vnet0"))
        .unwrap());
}

/// The kernel's announcements of a transaction on one table name that table only: the
/// transaction's closing `NFT_MSG_NEWGEN` (whose attribute 1 is the generation number) is no
/// table. It used to be read as one, so every transaction of virtnet's own tables looked like
/// another firewall's change and set off the coexistence checks.
#[test]
fn watch_names_only_the_tables_a_transaction_touched() {
    use virtnet_host::nft_watch::NftWatch;
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    nft.run("add table inet own\nadd set inet own s { type ipv4_addr ; }")
        .unwrap();
    let mut watch = NftWatch::open().unwrap();
    nft.run("add element inet own s { 192.0.2.1 }").unwrap();
    assert!(watch.wait(std::time::Duration::from_secs(5)).unwrap());
    while watch.wait(std::time::Duration::from_millis(50)).unwrap() {}
    let changed = watch.take_tables();
    let got: Vec<_> = changed.tables.iter().cloned().collect();
    assert_eq!(got, vec![(1u8, "own".to_string())]);
    assert!(!changed.beyond(&[(1, "own")]));
    nft.run("delete table inet own").unwrap();
}

/// This process's open nfnetlink (`NETLINK_NETFILTER`) sockets in the calling thread's
/// namespace.
fn nfnetlink_sockets() -> usize {
    let table = std::fs::read_to_string("/proc/thread-self/net/netlink").unwrap();
    let inodes: std::collections::HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"12")).then(|| f.last().map(|s| s.to_string()))?
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(
                t.strip_prefix("socket:[")?
                    .trim_end_matches(']')
                    .to_string(),
            )
        })
        .filter(|i| inodes.contains(i))
        .count()
}

/// The counters' dumps keep their nfnetlink socket: the kernel answers the close of one by
/// taking nftables' commit mutex and flushing the clean-up of deleted elements (an RCU grace
/// period), which stalled every nftables transaction on the host once per scrape. One socket
/// serves dump after dump, each answer whole; a thread in another namespace gets its own.
#[test]
fn counter_dumps_keep_one_nfnetlink_socket_per_namespace() {
    use virtnet_host::nft_counters::named_counters;
    use virtnet_host::nft_set::NFPROTO_INET;
    enter_netns();
    let mut nft = Nftables::new().unwrap();
    nft.run("add table inet t1\nadd counter inet t1 c1\n")
        .unwrap();
    let before = nfnetlink_sockets();
    let one = || named_counters(NFPROTO_INET, "t1").unwrap();
    assert_eq!(one(), [("c1".to_string(), 0)]);
    assert_eq!(nfnetlink_sockets(), before + 1, "the dump's socket is kept");
    for _ in 0..5 {
        assert_eq!(one(), [("c1".to_string(), 0)]);
    }
    assert_eq!(nfnetlink_sockets(), before + 1, "and used again");
    std::thread::spawn(|| {
        enter_netns();
        let mut nft = Nftables::new().unwrap();
        nft.run("add table inet t2\nadd counter inet t2 c2\n")
            .unwrap();
        assert!(named_counters(NFPROTO_INET, "t1").unwrap().is_empty());
        assert_eq!(
            named_counters(NFPROTO_INET, "t2").unwrap(),
            [("c2".to_string(), 0)]
        );
    })
    .join()
    .unwrap();
    assert_eq!(one(), [("c1".to_string(), 0)]);
}
