#!/usr/bin/env python3
"""ipv6bench: virtnet's router advertisements and DHCPv6 server side by side with dnsmasq as
libvirt 9 runs it (issue 15), in one run. Started by bench/ipv6.sh.

Each implementation's daemon runs in a network namespace of its own (and its own PID and mount
namespaces: bench/netbench.py's Libvirt and Virtnet), with the same two networks defined:
  s6  NAT + 10.203.0.0/24 + fd00:5a::/64 without DHCPv6: SLAAC (autonomous prefix)
  b6  NAT + 10.202.0.0/24 + fd00:b6::/64 with a DHCPv6 range (the RA says managed/other)
and a guest namespace per implementation whose veth pairs are ports of those bridges. The
guest side is bench/ipv6probe.py, run in the guest namespace; the load phases' client is
bench/dhcp6load (the probe's load mode in Rust, --load-client rust, the default) or the probe
itself (--load-client python). Phases (implementations
alternating ABBA where they repeat):
  rs      --rs-samples RS -> RA on s6, one port
  slaac   --slaac-samples new guests on s6: link up -> kernel's first RS -> RA -> SLAAC address
  dhcp6   --dhcp6-samples SOLICIT -> ADVERTISE -> REQUEST -> REPLY on b6, one port
  load    --load-ports ports x --per-port DUIDs at once on b6: two passes on fresh ports, a
          third on the first pass's ports (its leases kept), the third's clients again
          ("known": same DUIDs, coming back for the addresses they hold), a fourth on fresh
          ports spread over --spread-bridges networks (b6, b6x1, ...)
  memory  RSS/PSS growth with --networks more IPv6 networks (RA + DHCPv6 + DNS each)
Everything is removed at exit (Ctrl-C and SIGTERM included); processes are stopped by PID.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netbench  # noqa: E402
from netbench import (CmdError, Libvirt, Virtnet, build_info, interleaved, log,  # noqa: E402
                      machine, ns_add, ns_del, run_to_end, stop_all, timed)
import tempfile  # noqa: E402

PROBE = os.path.join(HERE, "ipv6probe.py")
DHCP6LOAD = os.path.join(HERE, "dhcp6load", "target", "release", "dhcp6load")


def bench_xml(name, bridge, v4, v6, dhcp6):
    dhcp = ("<dhcp><range start='%s1:0' end='%s1:ffff'/></dhcp>" % (v6, v6)) if dhcp6 else ""
    return ("<network><name>%s</name><forward mode='nat'/><bridge name='%s' stp='off'/>"
            "<domain name='%s.test' localOnly='yes'/>"
            "<ip address='%s.1' prefix='24'/>"
            "<ip family='ipv6' address='%s1' prefix='64'>%s</ip></network>\n"
            % (name, bridge, name, v4, v6, dhcp))


def mem_xml(i):
    """Memory network i: IPv6 only, isolated, with a DHCPv6 range (RA + DHCPv6 + DNS)."""
    return ("<network><name>m6n%d</name><bridge name='vbm6n%d' stp='off'/>"
            "<ip family='ipv6' address='fd00:77:%x::1' prefix='64'><dhcp>"
            "<range start='fd00:77:%x::100' end='fd00:77:%x::1ff'/></dhcp></ip></network>\n"
            % (i, i, i, i, i))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Bench(netbench.Results):
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="vnbench.")
        self.daemons = []
        self.guests = {}
        self.result = {"machine": machine(), "command": " ".join(sys.argv),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                       "params": {k: v for k, v in vars(args).items()},
                       "virtnet_build": build_info(args.bindir), "impls": {}, "notes": []}

    def cleanup(self):
        stop_all(self.daemons)
        self.daemons = []
        for g in self.guests.values():
            ns_del(g)
        self.guests = {}
        subprocess.run(["rm", "-rf", self.tmp])

    # --- set-up ---------------------------------------------------------------------------------

    def start(self):
        impls = ["libvirt", "virtnet"] if self.args.impl == "both" else [self.args.impl]
        for k in impls:
            d = Libvirt(k, self.tmp) if k == "libvirt" else Virtnet(k, self.tmp, self.args.bindir)
            self.daemons.append(d)
            d.start()
            r = self.result["impls"].setdefault(k, {})
            r["version"] = d.version
            if k == "libvirt":
                out = subprocess.run(["/usr/sbin/dnsmasq", "--version"], capture_output=True,
                                     text=True).stdout.split()
                r["dnsmasq"] = out[2] if len(out) > 2 else "?"
            nets = [("s6", "vs6", "10.203.0", "fd00:5a::", False),
                    ("b6", "vb6", "10.202.0", "fd00:b6::", True)]
            nets += [("b6x%d" % i, "vb6x%d" % i, "10.204.%d" % i, "fd00:b7:%x::" % i, True)
                     for i in range(1, self.args.spread_bridges)]
            for name, br, v4, v6, dhcp6 in nets:
                path = os.path.join(self.tmp, "%s-%s.xml" % (k, name))
                with open(path, "w") as f:
                    f.write(bench_xml(name, br, v4, v6, dhcp6))
                timed(d.cli("net-define", path))
                timed(d.cli("net-start", name))
            self.make_guest(d)
            log("%s: networks s6, b6 started in %s, guest namespace %s" % (k, d.ns, self.guests[k]))
        return self.daemons

    def make_guest(self, d):
        """Guest namespace for daemon d: ports r0 (RS), sN (SLAAC, left down), d0 (DHCPv6
        latency), lN (load, two passes) on the daemon's bridges."""
        a = self.args
        g = "%sg6%s-%d" % (netbench.PREFIX, d.key[:2], os.getpid())
        ns_add(g)
        self.guests[d.key] = g
        # Before the links exist: no DAD (the address is usable at once), no delay before the
        # first solicitation, no SLAAC except on the SLAAC ports (set below).
        sh(["ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.default.router_solicitation_delay=0",
            "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.all.accept_ra=0"])
        ports = [("r0", "vs6", True)] + [("s%d" % i, "vs6", False)
                                         for i in range(a.slaac_samples)]
        ports += [("d0", "vb6", True)] + [("l%d" % i, "vb6", True)
                                         for i in range(2 * a.load_ports)]
        # Spread-load ports: port j on bridge j mod --spread-bridges (vb6, vb6x1, ...).
        bridges = ["vb6"] + ["vb6x%d" % i for i in range(1, a.spread_bridges)]
        ports += [("x%d" % j, bridges[j % len(bridges)], True) for j in range(a.load_ports)]
        gb, hb = [], []
        for n, br, up in ports:
            gb.append("link add %s type veth peer name p%s netns %s" % (n, n, d.ns))
            hb += ["link set p%s master %s" % (n, br), "link set p%s up" % n]
        with open(os.path.join(self.tmp, g + ".batch"), "w") as f:
            f.write("\n".join(gb) + "\n")
        sh(["ip", "-n", g, "-batch", f.name])
        with open(os.path.join(self.tmp, d.ns + ".batch"), "w") as f:
            f.write("\n".join(hb) + "\n")
        sh(["ip", "-n", d.ns, "-batch", f.name])
        sysctls = []
        for n, _br, up in ports:
            if n.startswith("s"):
                sysctls += ["net.ipv6.conf.%s.accept_ra=1" % n, "net.ipv6.conf.%s.autoconf=1" % n]
        if sysctls:
            sh(["ip", "netns", "exec", g, "sysctl", "-qw"] + sysctls)
        ups = ["link set %s up" % n for n, _br, up in ports if up]
        with open(os.path.join(self.tmp, g + ".up"), "w") as f:
            f.write("\n".join(ups) + "\n")
        sh(["ip", "-n", g, "-batch", f.name])
        time.sleep(1)  # link-local addresses (no DAD) and the ports' carrier

    def probe(self, k, *args, timeout=900):
        cmd = ["ip", "netns", "exec", self.guests[k], sys.executable, PROBE] + list(args)
        if args[0] == "load" and self.args.load_client == "rust":
            # The same clients and messages in Rust (bench/dhcp6load): the load phases are
            # not bounded by the probe's own interpreter.
            cmd = ["ip", "netns", "exec", self.guests[k], DHCP6LOAD] + list(args[1:])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if os.environ.get("PROBE_DEBUG"):
            sys.stderr.write(p.stderr[-3000:])
        if p.returncode != 0:
            raise CmdError("%s: %s" % (" ".join(args[:1]), p.stderr.strip()[-800:]))
        return json.loads(p.stdout)

    # --- phases ---------------------------------------------------------------------------------

    def run(self):
        a = self.args
        self.result["loadavg_start"] = os.getloadavg()
        self.result["load_client"] = a.load_client
        live = [d.key for d in self.start()]
        R = self.result["impls"]
        for i, k in enumerate(interleaved(live, 0)):
            log("%s: RS -> RA, %d samples" % (k, a.rs_samples))
            R[k]["rs"] = self.probe(k, "rs", "--iface", "r0", "--samples", str(a.rs_samples),
                                    "--gap-ms", "100", "--timeout-ms", "1000")
        self.save()
        for k in interleaved(live, 1):
            log("%s: new guest, first RS -> SLAAC address, %d samples" % (k, a.slaac_samples))
            R[k]["slaac"] = self.probe(
                k, "slaac", "--prefix", "fd00:5a::", "--gap-ms", "200", "--timeout-ms", "10000",
                "--ifaces", ",".join("s%d" % i for i in range(a.slaac_samples)))
        self.save()
        for k in interleaved(live, 0):
            log("%s: DHCPv6 SOLICIT -> REPLY, %d samples" % (k, a.dhcp6_samples))
            R[k]["dhcp6"] = self.probe(k, "dhcp6", "--iface", "d0", "--samples",
                                       str(a.dhcp6_samples), "--gap-ms", "30",
                                       "--seed", str(10 + live.index(k)))
        self.save()
        # Passes 1 and 2 on ports never used (every client a new source address, as new
        # guests are: dnsmasq first resolves each one's MAC), pass 3 back on pass 1's ports
        # (neighbours known, pass 1's leases released, paced) with new DUIDs, --warm-per-port
        # of them: 2 messages each, within virtnet's per-bridge burst of 400 when <= 200.
        for ps in (0, 1, 2):
            per = a.per_port if ps < 2 else a.warm_per_port
            for k in interleaved(live, ps):
                first = (ps % 2) * a.load_ports
                ifs = ",".join("l%d" % i for i in range(first, first + a.load_ports))
                log("%s: DHCPv6 leases/s, pass %d: %d ports x %d DUIDs" % (k, ps + 1, a.load_ports,
                                                                          per))
                time.sleep(3)  # a token bucket the previous pass emptied refills (2 s at 200/s)
                seed = str(20 + 2 * ps + live.index(k))
                keep = ["--keep"] if ps == 2 else []
                R[k].setdefault("load", []).append(self.probe(
                    k, "load", "--ifaces", ifs, "--clients-per-port", str(per),
                    "--timeout-ms", "30000", "--seed", seed, *keep))
                self.save()
                if ps == 2:
                    # Known clients: pass 3's clients (same ports, DUIDs and IAIDs, leases
                    # kept) come back with SOLICIT/REQUEST, as after a guest reboot, and get
                    # the addresses they hold; their leases are released afterwards.
                    log("%s: DHCPv6 leases/s, pass 3's %d clients again (known)"
                        % (k, a.load_ports * per))
                    time.sleep(3)
                    R[k]["known"] = self.probe(
                        k, "load", "--ifaces", ifs, "--clients-per-port", str(per),
                        "--timeout-ms", "30000", "--seed", seed)
                    self.save()
        # Pass 4: the same number of new guests as pass 1, spread over --spread-bridges
        # networks (each with its own dnsmasq in libvirt, its own token bucket in virtnet).
        if a.spread_bridges > 1:
            for k in interleaved(live, 1):
                ifs = ",".join("x%d" % i for i in range(a.load_ports))
                log("%s: DHCPv6 leases/s, pass 4: %d ports x %d DUIDs over %d networks"
                    % (k, a.load_ports, a.per_port, a.spread_bridges))
                time.sleep(3)
                R[k]["load"].append(self.probe(
                    k, "load", "--ifaces", ifs, "--clients-per-port", str(a.per_port),
                    "--timeout-ms", "30000", "--seed", str(30 + live.index(k))))
                self.save()
        self.result["loadavg_before_memory"] = os.getloadavg()
        for d in self.daemons:
            self.memory(d)
            self.save()

    def memory(self, d):
        a = self.args
        log("%s: memory, %d IPv6 networks" % (d.key, a.networks))
        time.sleep(1)
        before = mem_by_comm(d.ns)
        started = 0
        for i in range(a.networks):
            path = os.path.join(self.tmp, "%s-m%d.xml" % (d.key, i))
            with open(path, "w") as f:
                f.write(mem_xml(i))
            try:
                timed(d.cli("net-define", path))
                timed(d.cli("net-start", "m6n%d" % i))
                started += 1
            except CmdError as e:
                self.note("%s: m6n%d: %s" % (d.key, i, e))
        time.sleep(3)
        after = mem_by_comm(d.ns)
        per = {}
        for who in after:
            b = before.get(who, {"procs": 0, "rss_kb": 0, "pss_kb": 0})
            if started:
                per[who] = {x: round((after[who][x] - b[x]) / started, 2)
                            for x in ("procs", "rss_kb", "pss_kb")}
        self.result["impls"][d.key]["memory"] = {"networks_started": started, "before": before,
                                                 "after": after, "per_network": per}


def mem_by_comm(ns):
    """{comm: {procs, rss_kb, pss_kb}} over the processes of network namespace ns."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    res = {}
    for pid in out.split():
        try:
            comm = open("/proc/%s/comm" % pid).read().strip()
            rss = pss = 0
            for line in open("/proc/%s/status" % pid):
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            for line in open("/proc/%s/smaps_rollup" % pid):
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
        except OSError:
            continue
        if comm in ("bash", "unshare"):
            continue
        r = res.setdefault(comm, {"procs": 0, "rss_kb": 0, "pss_kb": 0})
        r["procs"] += 1
        r["rss_kb"] += rss
        r["pss_kb"] += pss
    return res


# --- report ---------------------------------------------------------------------------------------

def report(res):
    L, V = res["impls"].get("libvirt", {}), res["impls"].get("virtnet", {})

    def get(d, *path):
        for p in path:
            if isinstance(d, list):
                d = d[p] if isinstance(p, int) and p < len(d) else None
            elif isinstance(d, dict):
                d = d.get(p)
            if d is None:
                return None
        return d

    def f(x, nd=2):
        return "–" if x is None else "%.*f" % (nd, x)

    def ratio(lv, vv, higher):
        if not lv or not vv:
            return "–"
        return "%.1f×" % ((vv / lv) if higher else (lv / vv))

    rows = ["| | libvirt 9 + dnsmasq | virtnet | virtnet better by |", "|---|---|---|---|"]

    def row(name, path, nd=2, higher=False):
        lv, vv = get(L, *path), get(V, *path)
        rows.append("| %s | %s | %s | %s |" % (name, f(lv, nd), f(vv, nd), ratio(lv, vv, higher)))

    for q in ("p50", "p99"):
        row("RS → RA, %s (ms)" % q, ("rs", "rs_to_ra_ms", q))
    for q in ("p50", "p99"):
        row("new guest: first RS → RA, %s (ms)" % q, ("slaac", "rs_to_ra_ms", q))
    for q in ("p50", "p99"):
        row("new guest: first RS → SLAAC address, %s (ms)" % q, ("slaac", "rs_to_addr_ms", q))
    for q in ("p50", "p99"):
        row("DHCPv6 SOLICIT → REPLY (4 messages), %s (ms)" % q, ("dhcp6", "solicit_to_reply_ms", q))
    row("DHCPv6 SOLICIT → ADVERTISE, p50 (ms)", ("dhcp6", "solicit_to_advertise_ms", "p50"))
    row("DHCPv6 REQUEST → REPLY, p50 (ms)", ("dhcp6", "request_to_reply_ms", "p50"))
    for ps, what in ((0, "new ports"), (1, "new ports"), (2, "pass 1's ports again"),
                     (3, "new ports over %s networks" % res["params"].get("spread_bridges"))):
        row("DHCPv6 leases/s, pass %d (%s)" % (ps + 1, what), ("load", ps, "leases_per_s"), 0, True)
        row("DHCPv6 SOLICIT → REPLY under load, pass %d, p50 (ms)" % (ps + 1),
            ("load", ps, "solicit_to_reply_ms", "p50"))
    row("DHCPv6 leases/s, pass 3's clients again (known: same DUIDs, leases held)",
        ("known", "leases_per_s"), 0, True)
    row("DHCPv6 SOLICIT → REPLY, known clients, p50 (ms)", ("known", "solicit_to_reply_ms", "p50"))
    for who_l, who_v in (("dnsmasq", "virtnetd"),):
        for x in ("rss_kb", "pss_kb"):
            lv = get(L, "memory", "per_network", who_l, x)
            vv = get(V, "memory", "per_network", who_v, x)
            rows.append("| memory per IPv6 network, %s (KiB; libvirt: its dnsmasq) | %s | %s | %s |"
                        % (x[:3].upper(), f(lv, 0), f(vv, 0), ratio(lv, vv, False)))
    lv = get(L, "memory", "per_network", "libvirtd", "rss_kb")
    rows.append("| libvirtd RSS growth per network (KiB) | %s | – | |" % f(lv, 0))
    extra = []
    for k, r in res["impls"].items():
        extra.append("%s (%s): rs lost %s; slaac lost %s; dhcp6 failed %s retransmits %s; load %s; "
                     "memory networks started %s" % (
                         k, r.get("version"), get(r, "rs", "lost"), get(r, "slaac", "lost"),
                         get(r, "dhcp6", "failed"), get(r, "dhcp6", "retransmits"),
                         [{x: l.get(x) for x in ("clients", "leases", "failed", "retransmits",
                                                 "seconds", "solicits_sent_ms")}
                          for l in r.get("load", [])],
                         get(r, "memory", "networks_started")))
        kn = r.get("known") or {}
        extra.append("%s known clients: %s" % (k, {x: kn.get(x) for x in (
            "clients", "leases", "failed", "retransmits", "seconds", "solicits_sent_ms")}))
    extra.append("load client: %s (solicits_sent_ms: the time the client took to send its "
                 "first SOLICITs, before reading any answer)" % res.get("load_client", "python"))
    extra.append("load average: at start %s, before the memory phase %s" % (
        res.get("loadavg_start"), res.get("loadavg_before_memory")))
    return "\n".join(rows) + "\n\n" + "\n".join(extra) + "\nnotes: %s\n" % res.get("notes")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--impl", choices=["libvirt", "virtnet", "both"], default="both")
    p.add_argument("--rs-samples", type=int, default=200)
    p.add_argument("--slaac-samples", type=int, default=40)
    p.add_argument("--dhcp6-samples", type=int, default=200)
    p.add_argument("--load-ports", type=int, default=32)
    p.add_argument("--per-port", type=int, default=8,
                   help="DUIDs per port (virtnet binds at most 8 per source address)")
    p.add_argument("--warm-per-port", type=int, default=6,
                   help="DUIDs per port in pass 3 (pass 1's ports again)")
    p.add_argument("--spread-bridges", type=int, default=4,
                   help="networks the fourth load pass spreads its ports over (1: no pass 4)")
    p.add_argument("--networks", type=int, default=30)
    p.add_argument("--load-client", choices=["rust", "python"], default="rust",
                   help="the leases/s phases' client: bench/dhcp6load (built by ipv6.sh) or "
                        "ipv6probe.py's load mode (same clients and messages)")
    p.add_argument("--bindir", default=os.path.join(netbench.REPO, "target", "release"))
    p.add_argument("--out", default="bench/results/ipv6.json")
    p.add_argument("--report", metavar="RESULTS")
    a = p.parse_args()
    if a.report:
        with open(a.report) as f:
            print(report(json.load(f)))
        return 0
    if os.geteuid() != 0:
        sys.exit("ipv6bench: run as root")
    return run_to_end(Bench(a), report)


if __name__ == "__main__":
    sys.exit(main())
