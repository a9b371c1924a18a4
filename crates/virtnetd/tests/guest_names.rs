//! Guest names on the host (`libnss_virtnet.so.2`): virtnetd keeps `<run-dir>/guest-hosts`
//! current with the running networks' static hosts and leases, and `getent` — glibc itself,
//! through the NSS module, in a mount namespace with its own `nsswitch.conf` and the daemon's
//! run directory at `/run/virtnet` — resolves the guests by name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use virtnet_testkit::dhcp::udhcpc_script;
use virtnet_testkit::{Daemon, Lab};

fn network() -> String {
    "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
     <domain name='lab.test'/>\
     <dns><host ip='192.168.122.7'><hostname>printer</hostname></host></dns>\
     <ip address='192.168.122.1' prefix='24'><dhcp>\
       <range start='192.168.122.100' end='192.168.122.199'/>\
       <host mac='52:54:00:00:00:05' name='fixed' ip='192.168.122.5'/>\
     </dhcp></ip>\
     <ip family='ipv6' address='fd00:122::1' prefix='64'/></network>"
        .to_string()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hosts_file(daemon: &Daemon) -> String {
    std::fs::read_to_string(daemon.run_dir().join("guest-hosts")).unwrap_or_default()
}

/// The NSS module as glibc looks it up: `libnss_virtnet.so.2` in a directory of its own.
fn module_dir(tmp: &Path) -> PathBuf {
    let deps = std::env::current_exe()
        .expect("test binary")
        .parent()
        .expect("deps dir")
        .to_path_buf();
    let built = deps.join("libvirtnet_nss.so");
    let dir = tmp.join("nsslib");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&built, dir.join("libnss_virtnet.so.2"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    dir
}

/// `getent DATABASE NAME` with `hosts: virtnet` only, and the daemon's run directory where
/// the module reads it: the module, glibc's NSS and nothing of the host's own resolution.
fn getent(tmp: &Path, run_dir: &Path, database: &str, name: &str) -> (bool, String) {
    let conf = tmp.join("nsswitch.conf");
    std::fs::write(&conf, "passwd: files\ngroup: files\nhosts: virtnet\n").expect("write");
    let lib = module_dir(tmp);
    let script = format!(
        "set -e; mount -t tmpfs none /run; mkdir /run/virtnet; \
         mount --bind '{run}' /run/virtnet; mount --bind '{conf}' /etc/nsswitch.conf; \
         LD_LIBRARY_PATH='{lib}' exec getent {database} '{name}'",
        run = run_dir.display(),
        conf = conf.display(),
        lib = lib.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn getent_resolves_static_hosts_and_leased_guests_by_name() {
    let lab = Lab::new("nssnames");
    let daemon = Daemon::start_in(lab.host());
    let name = daemon.define(&network());
    daemon.cli_ok(&["net-start", &name]);
    wait_for("the static names", || {
        let f = hosts_file(&daemon);
        f.contains("192.168.122.5\tfixed fixed.lab.test") && f.contains("printer")
    });

    // A guest that asks for a lease under its own name.
    let guest = lab.guest_unattached();
    guest.attach("virbr0");
    guest.udhcpc(&udhcpc_script(lab.tmp_dir()), "web1");
    let addr = guest.ipv4_addrs()[0].to_string();
    wait_for("the leased name", || hosts_file(&daemon).contains("web1"));

    let tmp = lab.tmp_dir();
    let run = daemon.run_dir();
    let (ok, out) = getent(tmp, run, "ahostsv4", "web1");
    assert!(ok, "getent ahostsv4 web1: {out}");
    assert!(out.starts_with(&format!("{addr} ")), "{out}");
    let (ok, out) = getent(tmp, run, "hosts", "FIXED.lab.test");
    assert!(ok && out.starts_with("192.168.122.5 "), "{out}");
    let (ok, out) = getent(tmp, run, "ahostsv4", "printer.lab.test");
    assert!(ok && out.starts_with("192.168.122.7 "), "{out}");
    let (ok, out) = getent(tmp, run, "hosts", "nobody-here");
    assert!(!ok && out.is_empty(), "{out}");

    // A stopped network's names go with it.
    daemon.cli_ok(&["net-destroy", &name]);
    wait_for("the names removed", || {
        !hosts_file(&daemon).contains("fixed")
    });
    let (ok, _) = getent(tmp, run, "hosts", "web1");
    assert!(!ok, "web1 still resolves after its network stopped");
}
