//! Several virtnet hosts in one BGP EVPN fabric (issue 17), for tests of overlay networks:
//! each host a namespace with its own virtnetd running its own FRR (its own `--frr-pathspace`),
//! all on one underlay switch (a bridge in a namespace of its own, 10.200.0.0/24, host `i`
//! at 10.200.0.`i+1` on its `under0`), iBGP EVPN in a full mesh. Guests are banks of veth
//! interfaces in one namespace per host, each on its own bridge port, leasing with busybox
//! `udhcpc` all at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dhcp::write_script;
use crate::netns::{owned_temp_dir, TMP_PREFIX_LAB};
use crate::{Daemon, FrrPathspace, Netns, NsChild};

/// The AS of the tests' fabric.
const ASN: &str = "65000";
/// How long the fabric may take to come up: a bound for a broken setup, not a measure.
const CONVERGE: Duration = Duration::from_secs(120);

/// One host of the fabric.
#[derive(Debug)]
pub struct FabricHost {
    // Dropped first: the daemon stops before its namespace goes.
    daemon: Daemon,
    ns: Netns,
    underlay: String,
    // Last: ends the FRR daemons virtnetd leaves running when it stops.
    pathspace: FrrPathspace,
}

impl FabricHost {
    /// The host's virtnetd.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The host's FRR pathspace (its daemons' pid files).
    pub fn pathspace(&self) -> &FrrPathspace {
        &self.pathspace
    }

    /// The host's virtnetd, to restart it.
    pub fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The host's underlay (VTEP) address.
    pub fn underlay(&self) -> &str {
        &self.underlay
    }

    /// Defines and starts a network from `xml`; returns its name.
    pub fn start_network(&self, xml: &str) -> String {
        let name = self.daemon.define(xml);
        self.daemon.cli_ok(&["net-start", &name]);
        name
    }

    /// `vxlan`'s forwarding table (`bridge fdb show dev VXLAN`), as text.
    pub fn fdb(&self, vxlan: &str) -> String {
        self.ns.run_ok(["bridge", "fdb", "show", "dev", vxlan])
    }

    /// Whether `vxlan`'s forwarding table sends `mac` to the VTEP `vtep`.
    pub fn mac_behind(&self, vxlan: &str, mac: &str, vtep: &str) -> bool {
        self.fdb(vxlan)
            .lines()
            .any(|l| l.starts_with(mac) && l.contains(vtep))
    }

    /// `vtysh -N <pathspace> -c <command>` in the host's namespace, as an operator runs it.
    pub fn vtysh(&self, command: &str) -> String {
        self.ns
            .run_ok(["vtysh", "-N", self.pathspace.name(), "-c", command])
    }

    /// zebra's entry for `mac` in VNI `vni` (`show evpn mac vni VNI mac MAC json`), keyed by
    /// the MAC as zebra prints it.
    pub fn evpn_mac(&self, vni: u32, mac: &str) -> serde_json::Value {
        let shown = self.vtysh(&format!("show evpn mac vni {vni} mac {mac} json"));
        serde_json::from_str(&shown)
            .unwrap_or_else(|e| panic!("vtysh printed no JSON ({e}): {shown}"))
    }

    /// The remote VTEPs `vxlan`'s flood entries (zebra's, from type-3 routes) point to.
    pub fn flood_destinations(&self, vxlan: &str) -> Vec<String> {
        self.fdb(vxlan)
            .lines()
            .filter(|l| l.starts_with("00:00:00:00:00:00 dst "))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect()
    }

    /// The network's current leases (`net-dhcp-leases --json`): (address, MAC, host name).
    pub fn leases(&self, network: &str) -> Vec<(String, String, Option<String>)> {
        let out = self.daemon.cli_ok(&["net-dhcp-leases", network, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("net-dhcp-leases --json: {e}: {out}"));
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        let s = |k: &str| l[k].as_str().map(str::to_string);
                        (
                            s("ipAddress").unwrap_or_default(),
                            s("mac").unwrap_or_default(),
                            s("hostname"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `count` guest interfaces on `bridge`: one namespace, `count` veths (`eth0`…), each on a
    /// bridge port of its own (`vb<tag><i>` here), with the MACs `mac(i)`.
    pub fn guest_bank(
        &self,
        tag: &str,
        bridge: &str,
        count: usize,
        mac: impl Fn(usize) -> String,
    ) -> GuestBank {
        let ns = Netns::new(&format!("gb{tag}"));
        let mut ports = Vec::new();
        for i in 0..count {
            let (inside, outside) = (format!("eth{i}"), format!("vb{tag}{i}"));
            ns.ip_ok([
                "link",
                "add",
                &inside,
                "address",
                &mac(i),
                "type",
                "veth",
                "peer",
                "name",
                &outside,
                "netns",
                self.ns.name(),
            ]);
            ns.ip_ok(["link", "set", &inside, "up"]);
            self.ns
                .ip_ok(["link", "set", &outside, "master", bridge, "up"]);
            ports.push(outside);
        }
        GuestBank {
            ns,
            host: self.ns.clone(),
            ports,
            tmp: owned_temp_dir(TMP_PREFIX_LAB, &format!("bank-{tag}")),
        }
    }
}

/// Guests as interfaces `eth0`… of one namespace, each on its own port of a host's bridge.
#[derive(Debug)]
pub struct GuestBank {
    ns: Netns,
    host: Netns,
    ports: Vec<String>,
    tmp: tempfile::TempDir,
}

/// udhcpc's event script for a bank: applies the lease to its interface and logs
/// `bound IFACE IP` to `<script>.log`.
const BANK_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  bound|renew)\n    \
ip addr flush dev \"$interface\"\n    ip addr add \"$ip/$mask\" dev \"$interface\"\n    \
echo \"$1 $interface $ip\" >> \"$0.log\"\n    ;;\n  deconfig) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n";

impl GuestBank {
    /// The bank's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Removes interface `i` (its host port with it), as a guest leaving the host does.
    pub fn remove(&self, i: usize) {
        self.host.ip_ok(["link", "del", &self.ports[i]]);
    }

    /// Runs one busybox `udhcpc` per interface in `which`, all started together, each sending
    /// the host name `hostname(i)` and, when `requested(i)` gives one, asking for that address
    /// (`-r`); waits for all. Returns what each obtained, by interface: `None` for no lease.
    pub fn lease_all(
        &self,
        which: &[usize],
        hostname: impl Fn(usize) -> String,
        requested: impl Fn(usize) -> Option<String>,
    ) -> Vec<(usize, Option<String>)> {
        let script = self.tmp.path().join("bank.sh");
        write_script(&script, BANK_SCRIPT);
        let children: Vec<(usize, NsChild)> = which
            .iter()
            .map(|&i| {
                let mut args: Vec<String> = [
                    "busybox", "udhcpc", "-f", "-q", "-n", "-t", "10", "-T", "2", "-A", "1",
                ]
                .map(String::from)
                .to_vec();
                args.extend(["-i".into(), format!("eth{i}")]);
                args.extend(["-x".into(), format!("hostname:{}", hostname(i))]);
                if let Some(r) = requested(i) {
                    args.extend(["-r".into(), r]);
                }
                args.extend(["-s".into(), script.to_string_lossy().into_owned()]);
                (i, self.ns.spawn(args))
            })
            .collect();
        for (_, c) in &children {
            let _ = c.wait_timeout(Duration::from_secs(60));
        }
        let log = std::fs::read_to_string(script.with_extension("sh.log")).unwrap_or_default();
        which
            .iter()
            .map(|&i| {
                let iface = format!("eth{i}");
                let ip = log
                    .lines()
                    .rev()
                    .find_map(|l| {
                        let mut w = l.split_whitespace().skip(1);
                        (w.next() == Some(iface.as_str())).then(|| w.next().map(str::to_string))
                    })
                    .flatten();
                (i, ip)
            })
            .collect()
    }

    /// The event script's log directory (for messages).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Leases an address for interface 0 (host name `name`); panics when it gets none.
    pub fn lease_one(&self, name: &str) -> String {
        self.lease_all(&[0], |_| name.to_string(), |_| None)[0]
            .1
            .clone()
            .unwrap_or_else(|| panic!("{name} got no lease"))
    }

    /// Whether one ping (busybox, 1 s) from the bank reaches `addr`.
    pub fn reaches(&self, addr: &str) -> bool {
        self.ns
            .exec(["busybox", "ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }

    /// Starts pinging `addr` every 50 ms (busybox `ping -i 0.05`), the way an outage is
    /// counted; its output goes to `<dir>/<name>`. Returns after the first second of pings.
    pub fn start_pings(&self, addr: &str, name: &str) -> Pings {
        let out = self.tmp.path().join(name);
        let file = std::fs::File::create(&out)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
        let child = self
            .ns
            .spawn_with(["busybox", "ping", "-i", "0.05", addr], |cmd| {
                cmd.stdout(std::process::Stdio::from(file));
            });
        std::thread::sleep(Duration::from_secs(1));
        Pings { child, out }
    }
}

/// Pings running every 50 ms ([`GuestBank::start_pings`]).
#[derive(Debug)]
pub struct Pings {
    child: NsChild,
    out: PathBuf,
}

/// What a run of pings saw.
#[derive(Debug)]
pub struct PingCount {
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received.
    pub received: u32,
    /// busybox ping's whole output.
    pub output: String,
}

impl PingCount {
    /// The requests that got no reply.
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received)
    }
}

impl Pings {
    /// Lets a last second of pings run, stops them (SIGINT: ping prints its summary) and
    /// returns the counts; panics when there is no summary.
    pub fn stop(self) -> PingCount {
        std::thread::sleep(Duration::from_secs(1));
        self.child.signal(libc::SIGINT);
        self.child.wait_timeout(Duration::from_secs(5));
        let output = std::fs::read_to_string(&self.out).unwrap_or_default();
        let line = output
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary in {output:?}"));
        // `N packets transmitted, M packets received, X% packet loss`
        let numbers: Vec<u32> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        PingCount {
            sent: numbers.first().copied().unwrap_or(0),
            received: numbers.get(1).copied().unwrap_or(0),
            output,
        }
    }
}

/// Hosts in one fabric. Dropping it stops every virtnetd and removes every namespace.
#[derive(Debug)]
pub struct Fabric {
    hosts: Vec<FabricHost>,
    _switch: Netns,
}

impl Fabric {
    /// `n` hosts (1..=250) on one underlay switch, each with its virtnetd and FRR set into a
    /// full iBGP EVPN mesh with the others (`fabric-set --peer` each other host).
    pub fn new(test: &str, n: u8) -> Fabric {
        let switch = Netns::new("fsw");
        switch.ip_ok(["link", "add", "sw", "type", "bridge"]);
        switch.ip_ok(["link", "set", "sw", "up"]);
        let addr = |i: u8| format!("10.200.0.{}", i + 1);
        let mut hosts = Vec::new();
        for i in 0..n {
            let ns = Netns::new(&format!("fh{i}"));
            let port = format!("p{i}");
            switch.veth_to(&port, &ns, "under0");
            switch.ip_ok(["link", "set", &port, "master", "sw"]);
            let underlay = addr(i);
            ns.ip_ok(["addr", "add", &format!("{underlay}/24"), "dev", "under0"]);
            let pathspace = FrrPathspace::new(test, &i.to_string());
            let daemon = Daemon::start_in_with(&ns, &["--frr-pathspace", pathspace.name()]);
            let mut args: Vec<String> = [
                "fabric-set",
                "--asn",
                ASN,
                "--router-id",
                &underlay,
                "--underlay",
                "under0",
            ]
            .map(String::from)
            .to_vec();
            for j in (0..n).filter(|j| *j != i) {
                args.extend(["--peer".into(), addr(j)]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            daemon.cli_ok(&args);
            hosts.push(FabricHost {
                daemon,
                ns,
                underlay,
                pathspace,
            });
        }
        Fabric {
            hosts,
            _switch: switch,
        }
    }

    /// The hosts, in order of their underlay addresses.
    pub fn hosts(&self) -> &[FabricHost] {
        &self.hosts
    }

    /// Host `i`, to restart its daemon.
    pub fn host_mut(&mut self, i: usize) -> &mut FabricHost {
        &mut self.hosts[i]
    }

    /// [`Fabric::new`] with network `xml` started on every host, once its `vxlan` floods to
    /// every other host ([`Fabric::wait_full_mesh`]).
    pub fn with_network(test: &str, n: u8, xml: &str, vxlan: &str) -> Fabric {
        let fabric = Fabric::new(test, n);
        for host in fabric.hosts() {
            host.start_network(xml);
        }
        fabric.wait_full_mesh(vxlan);
        fabric
    }

    /// Waits until every host's `vxlan` floods to every other host (the type-3 routes went
    /// round), and then until each host's DHCP server could have read them (its follower
    /// re-reads every second); panics after a generous bound.
    pub fn wait_full_mesh(&self, vxlan: &str) {
        let deadline = Instant::now() + CONVERGE;
        for h in &self.hosts {
            loop {
                let floods = h.flood_destinations(vxlan);
                let all = self
                    .hosts
                    .iter()
                    .filter(|o| o.underlay != h.underlay)
                    .all(|o| floods.contains(&o.underlay));
                if all {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} floods only to {floods:?}; its log:\n{}",
                    h.underlay,
                    h.daemon.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
