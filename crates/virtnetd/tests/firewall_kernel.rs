//! The generated nftables scripts, loaded into a real kernel: every example network and every
//! libvirt firewall test input is installed, re-installed (idempotent), removed twice (safe
//! after a crash) and rebuilt, each in a private network namespace.

use std::path::PathBuf;

use virtnet_host::{NftSets, Nftables, SetChange};
use virtnet_model::{Bridge, Network};
use virtnet_plan::firewall::{
    groups_script, rebuild_script, remove_table_script, start_script, stop_any_script, stop_script,
    TABLE_NAME,
};
use virtnet_plan::{plan, NetworkFirewall};
use virtnet_testkit::{canonical_nft_table, enter_thread_netns, read_corpus_file, shared_dir};
use virtnetd::kernel::raw_elements;

fn firewalls() -> Vec<(String, NetworkFirewall)> {
    let mut out = Vec::new();
    for dir in [
        "examples",
        "conformance/libvirt-9.0/firewall",
        "conformance/libvirt-nftables",
    ] {
        let dir = shared_dir().join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        for f in files {
            let Ok(mut net) = Network::from_xml(&read_corpus_file(&f)) else {
                continue;
            };
            if !net.forward.mode.has_own_bridge() {
                continue;
            }
            if net.bridge_name().is_none() {
                net.bridge.get_or_insert_with(Bridge::default).name = Some("virbr0".into());
            }
            let p = plan(&net).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if let Some(fw) = p.firewall {
                out.push((f.display().to_string(), fw));
            }
        }
    }
    assert!(out.len() >= 15, "only {} firewalls", out.len());
    out
}

/// A table without networks that holds the prefix groups `fw` needs, as virtnetd prepares it
/// before the first network of a prefix length starts.
fn empty_table_for(fw: &NetworkFirewall) -> String {
    rebuild_script(&[]) + &groups_script(&fw.groups())
}

/// The table as nft lists it, in canonical form (see `canonical_nft_table`).
fn table(nft: &mut Nftables) -> String {
    let text = nft
        .run("list table inet virtnet")
        .unwrap_or_else(|e| panic!("list: {e}"));
    canonical_nft_table(&text)
}

#[test]
fn every_generated_firewall_loads_and_unloads_cleanly() {
    enter_thread_netns();
    let mut nft = Nftables::new().expect("libnftables");
    for (name, fw) in firewalls() {
        let run = |nft: &mut Nftables, what: &str, script: &str| {
            nft.run(script)
                .unwrap_or_else(|e| panic!("{name}: {what}: {e}\n{script}"));
        };
        run(&mut nft, "empty table", &empty_table_for(&fw));
        let empty = table(&mut nft);
        run(&mut nft, "start", &start_script(&fw));
        let started = table(&mut nft);
        assert!(started.contains(&format!("\"{}\"", fw.bridge)), "{name}");
        // A second start fails as a whole and changes nothing (the daemon then rebuilds).
        assert!(nft.run(&start_script(&fw)).is_err(), "{name}: second start");
        assert_eq!(
            table(&mut nft),
            started,
            "{name}: failed start changed the table"
        );
        run(&mut nft, "stop", &stop_script(&fw));
        assert_eq!(table(&mut nft), empty, "{name}: stop left something");
        assert!(nft.run(&stop_script(&fw)).is_err(), "{name}: second stop");
        run(&mut nft, "stop whatever is left", &stop_any_script(&fw));
        assert_eq!(
            table(&mut nft),
            empty,
            "{name}: stop_any changed an empty table"
        );
        run(&mut nft, "start after stop_any", &start_script(&fw));
        run(
            &mut nft,
            "stop_any of a running network",
            &stop_any_script(&fw),
        );
        assert_eq!(table(&mut nft), empty, "{name}: stop_any left something");
        run(&mut nft, "start once more", &start_script(&fw));
        run(&mut nft, "stop once more", &stop_script(&fw));
        run(&mut nft, "rebuild", &rebuild_script(&[&fw]));
        assert_eq!(
            table(&mut nft),
            started,
            "{name}: rebuild differs from start"
        );
        run(&mut nft, "remove", &remove_table_script());
        run(&mut nft, "remove again", &remove_table_script());
    }
}

/// virtnetd adds and removes a network's elements over nfnetlink itself (`nft_set.rs`); the
/// result must be exactly what nft makes of the same elements in text.
#[test]
fn raw_set_elements_equal_what_nft_installs() {
    enter_thread_netns();
    let mut nft = Nftables::new().expect("libnftables");
    let mut sets = NftSets::open().expect("nfnetlink");
    let mut checked = 0;
    for (name, fw) in firewalls() {
        let Some(raw) = raw_elements(&fw) else {
            assert!(
                fw.has_nat_chain(),
                "{name}: no raw form without a NAT chain"
            );
            continue;
        };
        nft.run(&empty_table_for(&fw)).expect("empty table");
        let empty = table(&mut nft);
        nft.run(&start_script(&fw)).expect("nft start");
        let by_nft = table(&mut nft);
        nft.run(&empty_table_for(&fw)).expect("empty table");
        sets.apply(TABLE_NAME, SetChange::Create, &raw)
            .unwrap_or_else(|e| panic!("{name}: raw create: {e}"));
        assert_eq!(
            table(&mut nft),
            by_nft,
            "{name}: raw elements differ from nft's"
        );
        // Exclusive: a second create fails as a whole and changes nothing.
        assert!(sets.apply(TABLE_NAME, SetChange::Create, &raw).is_err());
        assert_eq!(
            table(&mut nft),
            by_nft,
            "{name}: failed create changed the table"
        );
        // nft's own stop removes what was added raw, and the raw delete what nft added.
        nft.run(&stop_script(&fw))
            .unwrap_or_else(|e| panic!("{name}: nft stop: {e}"));
        assert_eq!(table(&mut nft), empty);
        nft.run(&start_script(&fw)).expect("nft start");
        sets.apply(TABLE_NAME, SetChange::Delete, &raw)
            .unwrap_or_else(|e| panic!("{name}: raw delete: {e}"));
        assert_eq!(table(&mut nft), empty, "{name}: raw delete left something");
        assert!(sets.apply(TABLE_NAME, SetChange::Delete, &raw).is_err());
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} networks checked");
}

#[test]
fn other_tables_are_never_touched() {
    enter_thread_netns();
    let mut nft = Nftables::new().expect("libnftables");
    let theirs = "add table inet admin\nadd chain inet admin forward { type filter hook forward priority 0 ; policy accept ; }\nadd rule inet admin forward counter\n";
    nft.run(theirs).expect("admin table");
    let before = nft.run("list table inet admin").expect("list admin");
    let all: Vec<(String, NetworkFirewall)> = firewalls();
    let examples: Vec<&NetworkFirewall> = all
        .iter()
        .filter(|(n, _)| n.contains("/examples/"))
        .map(|(_, f)| f)
        .collect();
    nft.run(&rebuild_script(&examples)).expect("rebuild");
    for fw in &examples {
        nft.run(&stop_script(fw)).expect("stop");
    }
    nft.run(&remove_table_script()).expect("remove");
    assert_eq!(
        nft.run("list table inet admin").expect("list admin"),
        before
    );
}
