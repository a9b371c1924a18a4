//! What one set-element deletion costs the kernel, by set type and by the element's position,
//! with N elements in each set (default 500): the measurement behind BENCHMARKS.md's note on
//! nf_tables' concatenated-interval (pipapo) sets.
//!
//!     cargo run --release -p virtnet-host --example set_cost [N]      (as root)
//!
//! Runs in a network namespace of its own (`virtnet_testkit::enter_thread_netns`); needs `nft`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use virtnet_host::nft_set::{key_bytes, Field, INTERVAL_END};
use virtnet_host::{NftSets, SetChange, SetElement};

fn element(set: &str, key: Vec<u8>, key_end: Option<Vec<u8>>, flags: u32) -> SetElement {
    SetElement {
        set: set.into(),
        key,
        key_end,
        flags,
        data: None,
    }
}

fn subnet(i: u32, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8, last)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).map_or(Ok(500), |a| a.parse())?;
    virtnet_testkit::enter_thread_netns();
    let mut script = String::from(
        "add table inet t\n\
         add set inet t hash { type ifname ; }\n\
         add set inet t rbtree { type ipv4_addr ; flags interval ; }\n\
         add set inet t pipapo { type ifname . ipv4_addr ; flags interval ; }\n",
    );
    for i in 0..n {
        let net = format!("{}/24", subnet(i, 0));
        script += &format!(
            "add element inet t hash {{ \"vb{i}\" }}\n\
             add element inet t rbtree {{ {net} }}\n\
             add element inet t pipapo {{ \"vb{i}\" . {net} }}\n"
        );
    }
    let file = std::env::temp_dir().join(format!("set_cost-{}.nft", std::process::id()));
    std::fs::write(&file, script)?;
    let loaded = std::process::Command::new("nft")
        .arg("-f")
        .arg(&file)
        .status();
    let _ = std::fs::remove_file(&file);
    if !loaded?.success() {
        return Err("nft -f failed".into());
    }
    let mut sets = NftSets::open()?;
    println!("{n} elements per set; median of 5 delete+re-add rounds per cell, microseconds");
    println!("| element position | hash | rbtree | pipapo |\n|---|---|---|---|");
    for i in [0, n / 4, n / 2, 3 * n / 4, n - 1] {
        let name = Field::Ifname(format!("vb{i}"));
        let cases = [
            vec![element(
                "hash",
                key_bytes(std::slice::from_ref(&name)),
                None,
                0,
            )],
            vec![
                element("rbtree", key_bytes(&[Field::Ipv4(subnet(i, 0))]), None, 0),
                element(
                    "rbtree",
                    key_bytes(&[Field::Ipv4(Ipv4Addr::from(u32::from(subnet(i, 255)) + 1))]),
                    None,
                    INTERVAL_END,
                ),
            ],
            vec![element(
                "pipapo",
                key_bytes(&[name.clone(), Field::Ipv4(subnet(i, 0))]),
                Some(key_bytes(&[name.clone(), Field::Ipv4(subnet(i, 255))])),
                0,
            )],
        ];
        let mut row = format!("| #{} |", i + 1);
        for els in &cases {
            let mut times: Vec<Duration> = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                sets.apply("t", SetChange::Delete, els)?;
                times.push(t.elapsed());
                sets.apply("t", SetChange::Create, els)?;
            }
            times.sort();
            row += &format!(" {} |", times[2].as_micros());
        }
        println!("{row}");
    }
    Ok(())
}
