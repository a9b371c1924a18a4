//! Lease commits per second, one write at a time versus group commit.
//!
//! `cargo run --release -p virtnetd --example lease_writes -- [NETWORKS] [WRITES] [DIR]`
//!
//! NETWORKS threads (default 50), one per network like each network's DHCP server, each write
//! WRITES leases (default 40) one after the other, every write durable before the next
//! (a DHCP server ACKs only after its lease is stored). The same load runs twice on a fresh
//! store in DIR (default: a scratch directory under the current one, so on a real disk, not
//! a tmpfs where fsync costs nothing):
//!
//! - `direct`: every write is its own durable transaction on the writer's thread, as
//!   virtnetd did before the lease writer ([`LeaseWriter::direct`]);
//! - `group`: every write goes through the one lease-writer thread, which commits whatever
//!   is queued in one transaction ([`LeaseWriter::start`]).
//!
//! Prints leases/s for each, and the ratio.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use virtnet_dhcp::Lease;
use virtnetd::services::LeaseWriter;
use virtnetd::store::Store;

fn lease(network: usize, n: usize) -> (String, Option<Lease>) {
    let mac = [0x52, 0x54, 0, network as u8, (n >> 8) as u8, n as u8];
    let lease = Lease {
        mac,
        client_id: None,
        ip: Ipv4Addr::new(10, network as u8, (n >> 8) as u8, n as u8),
        hostname: Some(format!("guest-{network}-{n}")),
        expires: Some(4_000_000_000),
    };
    let key = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    (key, Some(lease))
}

/// Runs the load through `writer`; leases per second.
fn run(writer: &LeaseWriter, networks: usize, writes: usize) -> Result<f64, String> {
    let start = Arc::new(Barrier::new(networks + 1));
    let mut threads = Vec::new();
    for net in 0..networks {
        let writer = writer.clone();
        let start = start.clone();
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let name = format!("net{net}");
            start.wait();
            for n in 0..writes {
                writer
                    .write(&name, vec![lease(net, n)])
                    .map_err(|e| format!("{name}: {e}"))?;
            }
            Ok(())
        }));
    }
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| "a writer thread panicked".to_string())??;
    }
    let secs = began.elapsed().as_secs_f64();
    Ok((networks * writes) as f64 / secs)
}

fn fresh_store(dir: &Path, name: &str) -> Result<Arc<Store>, String> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let (store, _, _) = Store::open(&path, None).map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| format!("argument {}: not a number: {s}", i + 1))
        })
    };
    let networks = num(0, 50)?.clamp(1, 250);
    let writes = num(1, 40)?.clamp(1, 60_000);
    let scratch;
    let dir = match args.get(2) {
        Some(d) => Path::new(d).to_path_buf(),
        None => {
            scratch = tempfile::tempdir_in(".").map_err(|e| e.to_string())?;
            scratch.path().to_path_buf()
        }
    };
    println!(
        "{networks} networks x {writes} durable lease writes each, store in {}",
        dir.display()
    );
    let direct = run(
        &LeaseWriter::direct(fresh_store(&dir, "direct.redb")?),
        networks,
        writes,
    )?;
    println!("direct (one commit per write): {direct:9.0} leases/s");
    let group = run(
        &LeaseWriter::start(fresh_store(&dir, "group.redb")?),
        networks,
        writes,
    )?;
    println!("group  (one lease writer):     {group:9.0} leases/s");
    println!("group / direct: {:.1}x", group / direct);
    Ok(())
}
