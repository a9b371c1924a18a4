//! The real hypervisor daemon: libvirt 9.0's `virtqemud` (built from Debian 12's source package
//! by `scripts/build-libvirt.sh`), run isolated by the testkit's [`Virtqemud`] with a
//! `/run/libvirt` of the test's, driven with Debian's `virsh` (and `virt-install`).
//!
//! These tests prove the harness: virtqemud answers through its socket, looks for the network
//! daemon at `/run/libvirt/virtnetworkd-sock` = the test's directory (where virtnetd serves
//! libvirt's protocol), and boots the test guest under TCG on a bridge, where it leases from a
//! DHCP server the test runs; `virsh destroy` leaves no process and no tap behind; Debian's
//! `virt-install` creates and starts the same guest through virtqemud's socket; a guest keeps
//! running across a restart of virtqemud; a failing test leaves nothing running. With libvirt's
//! own network daemon (virtnetworkd, same build) serving the test's `virtnetworkd-sock`, a guest
//! whose NIC is of type `network` boots and leases, a hot-plugged second NIC too, and
//! `virt-install --network network=default` creates such a guest: the path virtnetd will serve.

use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use virtnet_testkit::dhcp::lan_dhcp_server;
use virtnet_testkit::qemu::{guest_image, BOOT_TIMEOUT};
use virtnet_testkit::virtqemud::start_time;
use virtnet_testkit::{
    eventually, pid_running, DomainSpec, Lease, Netns, Nic, NsChild, Virtnetworkd, Virtqemud,
};

const BRIDGE: &str = "br0";
const BRIDGE_ADDR: &str = "10.77.0.1";
const VM_MAC: &str = "52:54:00:77:00:02";
/// How long a command on the guest's console may take (a ping to the bridge, an `ip`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A bridge `br0` (10.77.0.1/24) in `qemud`'s namespace with a DHCP server (dnsmasq) on it
/// leasing 10.77.0.10-50; returns the server and its lease file.
fn bridge_with_dhcp(qemud: &Virtqemud) -> (NsChild, PathBuf) {
    let ns = qemud.ns();
    ns.ip_ok(["link", "add", BRIDGE, "type", "bridge"]);
    ns.ip_ok(["addr", "add", &format!("{BRIDGE_ADDR}/24"), "dev", BRIDGE]);
    ns.ip_ok(["link", "set", BRIDGE, "up"]);
    let leases = qemud.scratch_dir().join("dnsmasq.leases");
    let dhcp = lan_dhcp_server(
        ns,
        BRIDGE,
        "10.77.0.10,10.77.0.50,255.255.255.0,1h",
        BRIDGE_ADDR,
        &leases,
    );
    (dhcp, leases)
}

/// Asserts `lease` is one of `bridge_with_dhcp`'s and that dnsmasq recorded it for `mac`.
fn assert_leased_on_bridge(lease: &Lease, leases: &Path, mac: &str) {
    let octets = lease.ip.octets();
    assert!(
        octets[..3] == [10, 77, 0] && (10..=50).contains(&octets[3]),
        "lease outside the DHCP range: {lease:?}"
    );
    assert_eq!(
        lease.routers,
        vec![BRIDGE_ADDR.parse::<Ipv4Addr>().expect("addr")]
    );
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(leases)
            .is_ok_and(|l| l.contains(mac))),
        "dnsmasq recorded no lease for {mac}"
    );
}

/// The tap `virsh domiflist` shows for `mac` on `BRIDGE`; asserts it is a port of the bridge.
fn bridge_tap(qemud: &Virtqemud, domain: &str, mac: &str) -> String {
    let iflist = qemud.virsh_ok(&["domiflist", domain]);
    let tap = iflist
        .lines()
        .find(|l| l.contains(mac))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no interface with {mac} in domiflist:\n{iflist}"))
        .to_string();
    assert!(tap.starts_with("vnet"), "{iflist}");
    assert!(
        iflist.contains("bridge") && iflist.contains(BRIDGE),
        "{iflist}"
    );
    let ports = qemud.ns().ip_ok(["-br", "link", "show", "master", BRIDGE]);
    assert!(
        ports.contains(&tap),
        "{tap} is not a port of {BRIDGE}: {ports}"
    );
    tap
}

/// `virsh destroy`, then asserts QEMU and the tap are gone and the domain is shut off.
fn destroy_and_check(qemud: &Virtqemud, domain: &str, tap: &str) {
    qemud.virsh_ok(&["destroy", domain]);
    assert!(
        eventually(Duration::from_secs(20), || qemud.qemu_pids().is_empty()),
        "QEMU still runs after virsh destroy: {:?}",
        qemud.qemu_pids()
    );
    assert!(
        eventually(Duration::from_secs(10), || !qemud
            .ns()
            .link_names()
            .iter()
            .any(|l| l == tap)),
        "{tap} outlived its guest: {:?}",
        qemud.ns().link_names()
    );
    let list = qemud.virsh_ok(&["list", "--all"]);
    assert!(
        list.lines()
            .any(|l| l.contains(domain) && l.contains("shut off")),
        "{list}"
    );
}

/// A namespace with virtqemud running in it and the test's `/run/libvirt` directory.
fn daemon(role: &str) -> (Virtqemud, tempfile::TempDir) {
    let ns = Netns::new(role);
    let run = tempfile::Builder::new()
        .prefix("vnt-run-libvirt-")
        .tempdir()
        .expect("temporary /run/libvirt");
    let qemud = Virtqemud::start(&ns, run.path());
    // virtqemud first: tuple fields drop in order, the daemon before its directory.
    (qemud, run)
}

/// Accepts (and at once closes) connections on `path` until `stop`, counting them: a stand-in
/// network daemon that proves who connects where.
fn counting_listener(
    path: &Path,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU32>, std::thread::JoinHandle<()>) {
    let listener = UnixListener::bind(path).expect("bind the stand-in virtnetworkd-sock");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    seen.fetch_add(1, Ordering::Relaxed);
                    drop(conn);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (count, thread)
}

#[test]
fn virtqemud_answers_virsh_and_looks_for_the_network_daemon_in_the_tests_run_dir() {
    let (qemud, run) = daemon("qemud");
    let version = qemud.virsh_ok(&["version"]);
    assert!(
        version.contains("Using API: QEMU 9.0.0") && version.contains("Running hypervisor: QEMU"),
        "virsh version through {}:\n{version}",
        qemud.socket().display()
    );
    assert!(
        qemud
            .socket()
            .starts_with(run.path().canonicalize().expect("run dir")),
        "virtqemud's socket is in the test's /run/libvirt"
    );
    let list = qemud.virsh_ok(&["list", "--all"]);
    assert!(list.contains("Name") && list.contains("State"), "{list}");

    // A guest NIC of type `network`: nobody serves the network daemon's socket yet, and the
    // error names where virtqemud looked (libvirt spells /run as /var/run).
    let spec = DomainSpec::new(&qemud, "netguest", VM_MAC, Nic::Network("default".into()));
    qemud.define("netguest", &spec.xml());
    let out = qemud.virsh(&["start", "netguest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a network NIC started without a network daemon"
    );
    assert!(
        err.contains("Failed to connect socket to '/var/run/libvirt/virtnetworkd-sock'"),
        "the error should name the network daemon's socket: {err}"
    );

    // That path is the test's directory: a listener there gets virtqemud's connection.
    let stop = Arc::new(AtomicBool::new(false));
    let (count, thread) = counting_listener(&run.path().join("virtnetworkd-sock"), stop.clone());
    let out = qemud.virsh(&["start", "netguest"]);
    stop.store(true, Ordering::Relaxed);
    thread.join().expect("listener thread");
    assert!(
        !out.status.success(),
        "the stand-in closes every connection"
    );
    assert!(
        count.load(Ordering::Relaxed) >= 1,
        "virtqemud never connected to <run dir>/virtnetworkd-sock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        qemud.qemu_pids().is_empty(),
        "no guest runs after the failed starts"
    );
}

#[test]
fn test_guest_boots_under_virtqemud_on_a_bridge_and_leases() {
    let (qemud, _run) = daemon("qemudbr");
    let (_dhcp, leases) = bridge_with_dhcp(&qemud);

    let spec = DomainSpec::new(&qemud, "brguest", VM_MAC, Nic::Bridge(BRIDGE.into()));
    let xml = spec.xml();
    assert!(
        xml.contains(&guest_image().kernel.display().to_string()),
        "{xml}"
    );
    qemud.define("brguest", &xml);
    qemud.virsh_ok(&["start", "brguest"]);
    assert_eq!(qemud.qemu_pids().len(), 1, "one QEMU runs the guest");

    let lease = qemud.wait_lease("brguest", BOOT_TIMEOUT);
    assert_leased_on_bridge(&lease, &leases, VM_MAC);
    // The console takes commands: the guest applied its lease and reaches the bridge.
    let shown = qemud.console_run_ok("brguest", "ip -4 -o addr show dev eth0", COMMAND_TIMEOUT);
    assert!(shown.contains(&format!("{}/24", lease.ip)), "{shown}");
    qemud.console_run_ok(
        "brguest",
        &format!("ping -c 1 -W 5 {BRIDGE_ADDR}"),
        COMMAND_TIMEOUT,
    );
    let (rc, _) = qemud.console_run("brguest", "false", COMMAND_TIMEOUT);
    assert_eq!(rc, 1, "the console reports a command's exit status");

    let tap = bridge_tap(&qemud, "brguest", VM_MAC);
    destroy_and_check(&qemud, "brguest", &tap);
}

#[test]
fn a_running_guest_survives_a_restart_of_virtqemud() {
    let (qemud, _run) = daemon("qemudrs");
    let (_dhcp, leases) = bridge_with_dhcp(&qemud);
    let spec = DomainSpec::new(&qemud, "rsguest", VM_MAC, Nic::Bridge(BRIDGE.into()));
    qemud.create(&spec);
    let lease = qemud.wait_lease("rsguest", BOOT_TIMEOUT);
    assert_leased_on_bridge(&lease, &leases, VM_MAC);
    let qemu = qemud.qemu_pids();
    let before = qemud.daemon_pid().expect("virtqemud runs");

    qemud.restart_daemon();
    let after = qemud.daemon_pid().expect("virtqemud runs again");
    assert_ne!(before, after, "a new virtqemud answers");
    assert_eq!(qemud.qemu_pids(), qemu, "the guest's QEMU kept running");
    let list = qemud.virsh_ok(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("rsguest") && l.contains("running")),
        "the new virtqemud reconnected to the guest:\n{list}"
    );
    qemud.console_run_ok(
        "rsguest",
        &format!("ping -c 1 -W 5 {BRIDGE_ADDR}"),
        COMMAND_TIMEOUT,
    );
    let tap = bridge_tap(&qemud, "rsguest", VM_MAC);
    destroy_and_check(&qemud, "rsguest", &tap);
}

#[test]
fn dropping_the_harness_while_a_test_panics_ends_virtqemud_its_guests_and_the_namespace() {
    let run = tempfile::tempdir().expect("temporary /run/libvirt");
    // What the failing test saw: its namespace, scratch directory and processes.
    type Seen = Option<(String, PathBuf, Vec<(u32, Option<u64>)>)>;
    let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let run_dir = run.path().to_path_buf();
    let result = std::thread::spawn(move || {
        let ns = Netns::new("qemudpn");
        let qemud = Virtqemud::start(&ns, &run_dir);
        let (_dhcp, _leases) = bridge_with_dhcp(&qemud);
        let spec = DomainSpec::new(&qemud, "pnguest", VM_MAC, Nic::Bridge(BRIDGE.into()));
        qemud.create(&spec);
        let mut pids = qemud.qemu_pids();
        pids.extend(qemud.daemon_pid());
        let pids: Vec<(u32, Option<u64>)> = pids.into_iter().map(|p| (p, start_time(p))).collect();
        *record.lock().expect("record") = Some((
            ns.name().to_string(),
            qemud.scratch_dir().to_path_buf(),
            pids,
        ));
        panic!("the test fails while its guest runs");
    })
    .join();
    assert!(result.is_err(), "the thread panicked");
    let (ns_name, scratch, pids) = seen
        .lock()
        .expect("record")
        .take()
        .expect("the thread got as far as starting the guest");
    assert_eq!(pids.len(), 2, "QEMU and virtqemud ran: {pids:?}");
    for (pid, started) in pids {
        // The same PID and start time is the same process (PIDs are reused).
        assert!(
            !(pid_running(pid) && start_time(pid) == started),
            "{pid} outlived the harness: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }
    assert!(
        !Path::new("/run/netns").join(&ns_name).exists(),
        "namespace {ns_name} outlived the harness"
    );
    assert!(
        !scratch.exists(),
        "{} outlived the harness",
        scratch.display()
    );
}

#[test]
fn virt_install_creates_the_test_guest_through_virtqemud() {
    let (qemud, _run) = daemon("qemudvi");
    let (_dhcp, leases) = bridge_with_dhcp(&qemud);
    let mac = "52:54:00:77:00:05";
    let spec = DomainSpec::new(&qemud, "viguest", mac, Nic::Bridge(BRIDGE.into()));
    let out = qemud.virt_install(&spec.virt_install_args());
    assert!(
        out.status.success(),
        "virt-install failed ({}):\n{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        qemud.diagnostics()
    );
    // virt-install defined a persistent domain booting the kernel directly, and started it.
    let xml = qemud.virsh_ok(&["dumpxml", "--inactive", "viguest"]);
    assert!(
        xml.contains(&format!(
            "<kernel>{}</kernel>",
            guest_image().kernel.display()
        )) && xml.contains(&format!("<source bridge='{BRIDGE}'/>")),
        "{xml}"
    );
    let lease = qemud.wait_lease("viguest", BOOT_TIMEOUT);
    assert_leased_on_bridge(&lease, &leases, mac);
    qemud.console_run_ok(
        "viguest",
        &format!("ping -c 1 -W 5 {BRIDGE_ADDR}"),
        COMMAND_TIMEOUT,
    );
    let tap = bridge_tap(&qemud, "viguest", mac);
    destroy_and_check(&qemud, "viguest", &tap);
}

/// libvirt's default network (as `default.xml` of libvirt-daemon-config-network).
const DEFAULT_NETWORK: &str = "<network><name>default</name><forward mode='nat'/>\
     <bridge name='virbr0' stp='on' delay='0'/>\
     <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
     <range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";

/// The port UUIDs `virsh net-port-list` prints.
fn port_uuids(list: &str) -> Vec<&str> {
    list.lines()
        .map(str::trim)
        .filter(|l| {
            l.len() == 36
                && l.matches('-').count() == 4
                && l.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        })
        .collect()
}

/// virtqemud and libvirt's own network daemon in one namespace, sharing the test's
/// `/run/libvirt`, with libvirt's default network defined and started. Fields drop in order:
/// the daemons before the directory.
struct Stack {
    qemud: Virtqemud,
    netd: Virtnetworkd,
    _run: tempfile::TempDir,
}

fn network_stack(role: &str) -> Stack {
    let ns = Netns::new(role);
    let run = tempfile::Builder::new()
        .prefix("vnt-run-libvirt-")
        .tempdir()
        .expect("temporary /run/libvirt");
    let netd = Virtnetworkd::start(&ns, run.path());
    let xml = netd.scratch_dir().join("default.xml");
    std::fs::write(&xml, DEFAULT_NETWORK).expect("write the network XML");
    netd.virsh_ok(&["net-define", &xml.to_string_lossy()]);
    netd.virsh_ok(&["net-start", "default"]);
    let qemud = Virtqemud::start(&ns, run.path());
    Stack {
        qemud,
        netd,
        _run: run,
    }
}

#[test]
fn a_network_nic_boots_and_leases_when_libvirts_network_daemon_serves_the_run_dir() {
    let stack = network_stack("qemudnet");
    let (qemud, netd) = (&stack.qemud, &stack.netd);

    let spec = DomainSpec::new(qemud, "netvm", VM_MAC, Nic::Network("default".into()));
    qemud.create(&spec);
    let lease = qemud.wait_lease("netvm", BOOT_TIMEOUT);
    let octets = lease.ip.octets();
    assert!(octets[..3] == [192, 168, 122], "{lease:?}");
    assert_eq!(lease.routers, vec![Ipv4Addr::new(192, 168, 122, 1)]);

    // The port virtqemud created on the network daemon, seen from both sides.
    let iflist = qemud.virsh_ok(&["domiflist", "netvm"]);
    assert!(
        iflist
            .lines()
            .any(|l| l.contains("network") && l.contains("default") && l.contains(VM_MAC)),
        "{iflist}"
    );
    let ports = netd.virsh_ok(&["net-port-list", "default"]);
    assert_eq!(port_uuids(&ports).len(), 1, "one port: {ports}");
    // virsh domifaddr --source lease: virtqemud asks the network daemon for the lease.
    assert!(
        eventually(Duration::from_secs(20), || qemud
            .virsh_ok(&["domifaddr", "netvm", "--source", "lease"])
            .contains(&lease.ip.to_string())),
        "domifaddr never showed {}: {}",
        lease.ip,
        qemud.virsh_ok(&["domifaddr", "netvm", "--source", "lease"])
    );

    // A second NIC hot-plugged on the same network gets a port and a lease too.
    let mac2 = "52:54:00:77:00:03";
    let lease2 = qemud.hotplug_network_nic("netvm", "default", mac2);
    assert!(
        lease2.ip.octets()[..3] == [192, 168, 122] && lease2.ip != lease.ip,
        "{lease2:?}"
    );

    // destroy deletes the ports on the network daemon.
    qemud.destroy("netvm");
    let ports = netd.virsh_ok(&["net-port-list", "default"]);
    assert!(
        port_uuids(&ports).is_empty(),
        "the port outlived its guest: {ports}"
    );
}

#[test]
fn virt_install_network_default_creates_a_guest_that_leases_from_the_network_daemon() {
    let stack = network_stack("qemudvin");
    let (qemud, netd) = (&stack.qemud, &stack.netd);

    let spec = DomainSpec::new(qemud, "vinet", VM_MAC, Nic::Network("default".into()));
    let args = spec.virt_install_args();
    assert!(
        args.iter().any(|a| a.starts_with("network=default,")),
        "{args:?}"
    );
    let out = qemud.virt_install(&args);
    assert!(
        out.status.success(),
        "virt-install failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        qemud.diagnostics()
    );
    let lease = qemud.wait_lease("vinet", BOOT_TIMEOUT);
    assert!(lease.ip.octets()[..3] == [192, 168, 122], "{lease:?}");
    assert_eq!(
        port_uuids(&netd.virsh_ok(&["net-port-list", "default"])).len(),
        1,
        "virtqemud created the guest's port on the network daemon"
    );
    qemud.virsh_ok(&["destroy", "vinet"]);
    assert!(
        port_uuids(&netd.virsh_ok(&["net-port-list", "default"])).is_empty(),
        "destroy deletes the port"
    );
}
