//! Keeps `<run-dir>/guest-hosts` current: the guest names of the running networks, which the
//! NSS module `libnss_virtnet.so.2` (crate `virtnet-nss`) answers `getent hosts vm1` and
//! `ssh vm1` from, as libvirt's `libnss_libvirt` answers from dnsmasq's lease files.
//!
//! A name is a lease's host name (the static host's, else the one the guest sent), a DHCP
//! `<host name=…>` or a DNS `<host><hostname>` of a running network; with the network's
//! `<domain name=…>` the qualified name too. The file is rewritten — written beside and
//! renamed over, so a reader sees the old file or the new one — after every lease change and
//! every network start, stop, definition or undefinition (a burst coalesced), and checked
//! every [`REFRESH`] for what announces nothing (a `net-update` of a static host); it is only
//! written when its text changes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use virtnet_model::Network;
use virtnet_nss::HostsFile;

use crate::state::AppState;

/// How long a burst of changes may go on before the file is written once. A write reads
/// every running network's leases, so under a storm of leases on thousands of networks it
/// runs at most this often.
const SETTLE: Duration = Duration::from_millis(500);
/// The longest the file goes without a look, whatever was announced.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Keeps `path` current for as long as the daemon serves.
pub async fn keep_current(state: Arc<AppState>, path: PathBuf) {
    let mut lifecycle = state.events.lifecycle.subscribe();
    let mut after = state.events.after(None).next;
    let mut written = None;
    loop {
        let (st, p) = (Arc::clone(&state), path.clone());
        let text = tokio::task::spawn_blocking(move || render(&st)).await;
        match text {
            Ok(text) if written.as_ref() != Some(&text) => match write(&p, &text) {
                Ok(()) => written = Some(text),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot write the guest names")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the guest names task failed"),
        }
        tokio::select! {
            batch = state.events.wait_after(Some(after), REFRESH) => after = batch.next,
            _ = lifecycle.recv() => {}
        }
        tokio::time::sleep(SETTLE).await;
        // What else came meanwhile is in the next file.
        while lifecycle.try_recv().is_ok() {}
        after = state.events.after(Some(after)).next;
    }
}

/// The file's text for the running networks.
fn render(state: &AppState) -> String {
    let mut names: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for summary in state.networks.list().into_iter().filter(|n| n.active) {
        let Ok(net) = state.networks.live_definition(&summary.name) else {
            continue;
        };
        let mut add = |addr: IpAddr, name: &str| {
            let entry = names.entry(addr).or_default();
            for n in qualified(&net, name) {
                if !entry.contains(&n) {
                    entry.push(n);
                }
            }
        };
        for (addr, name) in static_names(&net) {
            add(addr, &name);
        }
        for lease in state
            .networks
            .leases(&summary.name, None)
            .unwrap_or_default()
        {
            if let (Some(name), Ok(addr)) = (&lease.hostname, lease.ip_address.parse()) {
                add(addr, name);
            }
        }
    }
    let mut file = HostsFile::new();
    for (addr, names) in names {
        file.add(addr, names);
    }
    file.render()
}

/// The network's static names: DHCP hosts with a name, DNS hosts.
fn static_names(net: &Network) -> Vec<(IpAddr, String)> {
    let mut out = Vec::new();
    for ip in &net.ips {
        for host in ip.dhcp.iter().flat_map(|d| &d.hosts) {
            if let Some(name) = &host.name {
                out.push((host.ip, name.clone()));
            }
        }
    }
    for host in net.dns.iter().flat_map(|d| &d.hosts) {
        for name in &host.hostnames {
            out.push((host.ip, name.clone()));
        }
    }
    out
}

/// `name`, and `name.<domain>` when the network has a domain and the name has no dot.
fn qualified(net: &Network, name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if let Some(domain) = &net.domain {
        if !name.contains('.') && !domain.name.is_empty() {
            out.push(format!("{name}.{}", domain.name));
        }
    }
    out
}

/// Writes `text` beside `path` and renames it over `path` (mode 0644: every process reads it).
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, path)
}
