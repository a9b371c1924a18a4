//! A guest behind a virtnet port, as QEMU drives one: a network namespace whose `eth0` is
//! joined to the port's tap by a relay process (`guest.py relay`, standing for QEMU). The
//! namespace's kernel is the guest's stack; `guest.py` also writes the raw frames a hostile
//! guest kernel would. Shared by the anti-spoofing and the metrics tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::write_script;
use virtnet_testkit::{Daemon, Lab, Netns, NsChild};

const TOOL: &str = include_str!("guest.py");

/// A guest: its namespace, its port's tap, the relay standing for QEMU and a directory of its
/// own.
pub struct TapGuest {
    pub ns: Netns,
    pub port: String,
    _relay: NsChild,
    pub dir: PathBuf,
}

/// `guest.py`, written once into the lab's directory.
pub fn tool(lab: &Lab) -> PathBuf {
    let path = lab.tmp_dir().join("guest.py");
    if !path.exists() {
        write_script(&path, TOOL);
    }
    path
}

/// Waits (up to 30 s: a Prometheus scrape interval and more) for `ok`.
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TapGuest {
    /// Attaches a port for guest `name` with MAC `mac` (and `flags`) to `network`, and brings
    /// up a guest namespace on it.
    pub fn attach(
        lab: &Lab,
        daemon: &Daemon,
        network: &str,
        name: &str,
        mac: &str,
        flags: &[&str],
    ) -> TapGuest {
        let mut args = vec!["attach-interface", name, "network", network, "--mac", mac];
        args.extend(flags);
        let out = daemon.cli_ok(&args);
        let port = out
            .lines()
            .find(|l| l.starts_with("vnet"))
            .unwrap_or_else(|| panic!("no tap name in {out:?}"))
            .trim()
            .to_string();
        TapGuest::relay_on(lab, name, &port, mac)
    }

    /// A guest namespace on the existing tap `port` (as QEMU opens it), with MAC `mac`.
    pub fn relay_on(lab: &Lab, name: &str, port: &str, mac: &str) -> TapGuest {
        let port = port.to_string();
        let ns = Netns::new(name);
        let dir = lab.tmp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("guest dir");
        let tool = tool(lab).to_string_lossy().into_owned();
        let ns_path = format!("/run/netns/{}", ns.name());
        let relay = lab
            .host()
            .spawn_with(["python3", &tool, "relay", &port, &ns_path], |c| {
                c.stdout(Stdio::null());
            });
        wait_for("the guest's eth0", || {
            ns.ip(["link", "show", "eth0"]).status.success()
        });
        ns.ip_ok(["link", "set", "eth0", "address", mac, "up"]);
        TapGuest {
            ns,
            port,
            _relay: relay,
            dir,
        }
    }
}
