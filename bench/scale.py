#!/usr/bin/env python3
"""scale: thousands of networks and guest ports on one host (issue 18), virtnet against the
kernel's own cost and against libvirt 9, in one run. bench/scale.sh runs it; see there.

Phases, each in network namespaces of its own (deleted at exit, Ctrl-C included):
  kernel   the floor: bridge creation and deletion with `ip link add/del` (spawn included) and
           over one rtnetlink socket in process (add; down + address removal, what a destroy
           does synchronously; delete), at 1 bridge and again with N-1 configured bridges
           (up, one IPv4 address each) beside it
  virtnet  N networks defined and started one after the other (each start timed; RSS, open
           descriptors and `net-list --all` at the checkpoints); P guest ports attached
           (`attach-interface`, each timed; RSS after); a guest namespace on a veth port pings
           its gateway every 50 ms across a SIGTERM + restart of virtnetd (time until the
           restarted daemon answers = reconcile, and the pings lost); the networks destroyed
           from the last to the first, ports attached (each timed; --detach detaches the
           ports first)
  libvirt  the same starts with Debian's libvirtd + dnsmasq (bench/libvirtd-inner.sh) until the
           first failure (its error recorded), memory = libvirtd + every dnsmasq, then destroyed

Usage (as root): bench/scale.py --networks 4000 --ports 10000 --out results.json
                 bench/scale.py --report results.json          # the markdown table
                 bench/scale.py --plot results.json out.png    # needs matplotlib
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import netbench  # noqa: E402  (the daemons, namespaces and timing helpers)
import nlbench  # noqa: E402  (rtnetlink in process)
from netbench import CmdError, children, log, ns_add, ns_del, timed  # noqa: E402

RTM_DELADDR = 21
# iputils' ping if installed, else busybox's (both print "seq=N" and the same summary).
PING = ["ping"] if shutil.which("ping") else ["busybox", "ping"]


def pct(xs, q):
    """The q-quantile (0..1) of xs by nearest rank, None when empty."""
    xs = sorted(x for x in (xs or []) if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def stats(xs):
    """p50 and p99 in milliseconds, and the sample count."""
    p50, p99 = pct(xs, 0.5), pct(xs, 0.99)
    return {"p50_ms": None if p50 is None else round(p50 * 1e3, 3),
            "p99_ms": None if p99 is None else round(p99 * 1e3, 3),
            "n": len([x for x in xs if x is not None])}


def windows(xs, marks):
    """Stats of the ten samples ending at each mark (#1-10, #491-500, ...), 1-based."""
    out = {}
    for m in marks:
        lo, hi = max(1, m - 9), min(m, len(xs))
        if m == 1:
            lo, hi = 1, min(10, len(xs))
        if hi >= lo:
            out["%d-%d" % (lo, hi)] = stats(xs[lo - 1:hi])
    return out


def buckets(xs, size=100):
    """(first network of the bucket, p50, p99) per bucket of `size` samples, for the plot."""
    out = []
    for lo in range(0, len(xs), size):
        chunk = [x for x in xs[lo:lo + size] if x is not None]
        if chunk:
            out.append([lo + 1, pct(chunk, 0.5), pct(chunk, 0.99)])
    return out


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def network_xml(name, i):
    """Network i on 10.(i/250).(i%250).0/24, bridge virbr<i>: netbench's NAT + DHCP network."""
    return netbench.network_xml(name, "virbr%d" % i, i // 250, i % 250)


def gateway(i):
    return "10.%d.%d.1" % (i // 250, i % 250)


# --- kernel floor (runs inside its own namespace: `--kernel-worker`) ---------------------------

class Rtnl(nlbench.Rtnl):
    """nlbench's socket, with what a destroy does before the deletion."""

    def add_configured(self, name, address):
        """A bridge as an IPv4-only network's: IPv6 off before it goes up (virtnet writes the
        same sysctl, so the bridge gets no IPv6 routes), up, one IPv4 address."""
        index = self.add_bridge(name)
        with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % name, "w") as f:
            f.write("1")
        self.set_up(index)
        self.add_address(index, address, 24)
        return index

    def set_down(self, index):
        self.request(nlbench.RTM_NEWLINK, 0, nlbench.ifinfomsg(index, 0, nlbench.IFF_UP))

    def del_address(self, index, address, prefix):
        raw = socket.inet_aton(address)
        msg = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, 0, index)
        self.request(RTM_DELADDR, 0, msg + nlbench.attr(nlbench.IFA_LOCAL, raw)
                     + nlbench.attr(nlbench.IFA_ADDRESS, raw))


def kernel_cycles(nl, cycles, out):
    """`cycles` times: ip link add/del of a bare bridge (spawn included), and in process: a
    bridge created, configured (up, address), parked (down, address removed) and deleted."""
    for key in ("ip_link_add", "ip_link_del", "nl_add", "nl_park", "nl_park_addr_first",
                "nl_del"):
        out.setdefault(key, [])
    for _ in range(cycles):
        out["ip_link_add"].append(timed(["ip", "link", "add", "name", "vnbk1", "type", "bridge"]))
        out["ip_link_del"].append(timed(["ip", "link", "del", "vnbk1"]))
        t0 = time.perf_counter()
        index = nl.add_configured("vnbk2", "10.254.0.1")
        t1 = time.perf_counter()
        nl.set_down(index)
        nl.del_address(index, "10.254.0.1", 24)
        t2 = time.perf_counter()
        nl.delete(index)
        t3 = time.perf_counter()
        # The other order: the address first (its routes go one by one), then down (no route
        # left on the link for the kernel to flush).
        index = nl.add_configured("vnbk3", "10.254.1.1")
        t4 = time.perf_counter()
        nl.del_address(index, "10.254.1.1", 24)
        nl.set_down(index)
        out["nl_park_addr_first"].append(time.perf_counter() - t4)
        nl.delete(index)
        out["nl_add"].append(t1 - t0)
        out["nl_park"].append(t2 - t1)
        out["nl_del"].append(t3 - t2)


def kernel_worker(bridges, cycles):
    nl = Rtnl()
    result = {"at_1": {}, "at_n": {}, "fill_add": [], "bridges": bridges}
    kernel_cycles(nl, cycles, result["at_1"])
    for i in range(1, bridges):
        t0 = time.perf_counter()
        nl.add_configured("vnbf%d" % i, gateway(i))
        result["fill_add"].append(time.perf_counter() - t0)
    kernel_cycles(nl, cycles, result["at_n"])
    json.dump(result, sys.stdout)


# --- the benchmark -----------------------------------------------------------------------------

class ScaleVirtnet(netbench.Virtnet):
    """virtnetd that can be stopped with SIGTERM and started again in the same namespace."""

    def spawn(self, argv):
        self.argv = argv
        super().spawn(argv)

    def respawn(self):
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + netbench.UNSHARE
                                         + self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)

    def pid(self):
        for p in descendants(self.proc.pid):
            if comm(p) == "virtnetd":
                return p
        return None

    def memory(self):
        pid = self.pid()
        return {"rss_kib": proc_rss_kib(pid), "fds": proc_fds(pid)} if pid else {}


class ScaleLibvirt(netbench.Libvirt):
    def memory(self):
        """libvirtd's and every dnsmasq's RSS, libvirtd's descriptors."""
        rss, dnsmasq, fds = 0, 0, None
        for p in descendants(self.proc.pid):
            name = comm(p)
            if name == "libvirtd":
                rss += proc_rss_kib(p) or 0
                fds = proc_fds(p)
            elif name == "dnsmasq":
                dnsmasq += 1
                rss += proc_rss_kib(p) or 0
        return {"rss_kib": rss, "fds": fds, "dnsmasq_processes": dnsmasq}


class Scale(netbench.Results):
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="vnscale.")
        self.daemons = []
        self.namespaces = []
        self.pings = []
        self.stopped = []  # daemons stopped already, whose logs --keep-logs still copies
        self.result = {
            "machine": netbench.machine(),
            "command": " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "load_at_start": os.getloadavg(),
            "params": {"networks": args.networks, "ports": args.ports,
                       "checkpoints": self.checkpoints(), "kernel_cycles": args.kernel_cycles},
            "virtnet_build": netbench.build_info(args.bindir),
            "kernel": {}, "virtnet": {}, "libvirt": {}, "notes": [],
        }

    def checkpoints(self):
        n = self.args.networks
        return sorted({c for c in (1, 500, 1000, 2000, 4000) if c <= n} | {n})

    def cleanup(self):
        if self.args.keep_logs:
            for d in self.daemons + self.stopped:
                try:
                    shutil.copy(d.logfile, "%s.%s.log" % (self.args.keep_logs, d.key))
                except OSError:
                    pass
        for p in self.pings:
            if p.poll() is None:
                p.kill()
                p.wait()
        netbench.stop_all(self.daemons)
        self.daemons = []
        for ns in self.namespaces:
            ns_del(ns)
        self.namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def xml(self, i):
        path = os.path.join(self.tmp, "n%d.xml" % i)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(network_xml("bench-%04d" % i, i))
        return path

    # --- kernel --------------------------------------------------------------------------------

    def phase_kernel(self):
        ns = "%sk-%d" % (netbench.PREFIX, os.getpid())
        self.namespaces.append(ns)
        ns_add(ns)
        n = self.args.networks
        log("kernel: %d cycles at 1 bridge, %d bridges made, %d cycles at %d" % (
            self.args.kernel_cycles, n - 1, self.args.kernel_cycles, n))
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                              "--kernel-worker", "--networks", str(n),
                              "--kernel-cycles", str(self.args.kernel_cycles)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise CmdError("kernel worker: %s" % out.stderr.strip()[-2000:])
        raw = json.loads(out.stdout)
        k = self.result["kernel"]
        k["bridges"] = raw["bridges"]
        for at in ("at_1", "at_n"):
            k[at] = {key: stats(v) for key, v in raw[at].items()}
        k["fill_add"] = windows(raw["fill_add"], self.checkpoints())
        k["fill_add_buckets"] = buckets(raw["fill_add"])
        t0 = time.monotonic()
        ns_del(ns)
        self.namespaces.remove(ns)
        self.wait_rtnl_quiet()
        # The kernel tears the namespace's bridges down in the background, holding RTNL: the
        # next phase must not start under it.
        k["namespace_teardown_s"] = round(time.monotonic() - t0, 3)

    def wait_rtnl_quiet(self, limit_s=600):
        """Waits until making a namespace (which takes RTNL) is quick twice in a row."""
        probe = "%sprobe-%d" % (netbench.PREFIX, os.getpid())
        quick, deadline = 0, time.monotonic() + limit_s
        while quick < 2 and time.monotonic() < deadline:
            t = time.monotonic()
            ns_add(probe)
            ns_del(probe)
            quick = quick + 1 if time.monotonic() - t < 0.1 else 0
            time.sleep(0.2)

    # --- virtnet -------------------------------------------------------------------------------

    def checkpoint(self, d, r, count, label=None):
        mem = d.memory()
        lists = []
        for _ in range(10):
            lists.append(timed(d.cli("net-list", "--all")))
        mem["net_list_all"] = stats(lists)
        mem["networks"] = count
        if label:
            mem["at"] = label
        r["checkpoints"].append(mem)
        log("%s: %s" % (d.label, mem))
        self.save()

    def start_networks(self, d, r, limit):
        """Defines and starts networks 1..limit; stops at the first failure (recorded)."""
        marks = set(self.checkpoints())
        started = 0
        r.setdefault("define", [])
        r.setdefault("start", [])
        t_phase = time.monotonic()
        for i in range(1, limit + 1):
            try:
                r["define"].append(timed(d.cli("net-define", self.xml(i))))
                r["start"].append(timed(d.cli("net-start", "bench-%04d" % i)))
            except (CmdError, subprocess.TimeoutExpired) as e:
                r["failed_at"] = i
                r["error"] = str(e)
                self.note("%s: network #%d failed: %s" % (d.label, i, e))
                if started:
                    self.checkpoint(d, r, started, "last started")
                break
            started = i
            netbench.progress("%s: networks %d/%d" % (d.label, i, limit))
            if i in marks:
                self.checkpoint(d, r, i)
            if i % 250 == 0:
                log("%s: %d networks, %.0fs" % (d.label, i, time.monotonic() - t_phase))
        r["networks_started"] = started
        return started

    def destroy_networks(self, d, r, started):
        r["destroy"] = [None] * started
        for i in range(started, 0, -1):
            try:
                # destroy[k] is network k+1's destroy, done with k+1 networks active.
                r["destroy"][i - 1] = timed(d.cli("net-destroy", "bench-%04d" % i))
            except (CmdError, subprocess.TimeoutExpired) as e:
                r["destroy_error"] = str(e)
                self.note("%s: destroy of #%d failed: %s" % (d.label, i, e))
                return
            netbench.progress("%s: destroying, %d left" % (d.label, i - 1))
            if i % 500 == 0:
                log("%s: destroyed down to %d" % (d.label, i))

    def mac(self, i):
        return "52:54:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)

    def attach_ports(self, d, r, started):
        r["port_attach"] = []
        for i in range(1, self.args.ports + 1):
            net = "bench-%04d" % ((i - 1) % started + 1)
            try:
                r["port_attach"].append(timed(d.cli("attach-interface", "bench-vm%d" % i,
                                                    "network", net, "--mac", self.mac(i))))
            except CmdError as e:
                # A stall of the whole host's RTNL (another namespace with thousands of links
                # being torn down) can outlast the CLI's 60 s: noted, and the run goes on.
                r["port_attach"].append(None)
                r.setdefault("port_attach_errors", []).append("#%d: %s" % (i, e))
                self.note("virtnet: attach of port #%d failed: %s" % (i, e))
            netbench.progress("virtnet: ports %d/%d" % (i, self.args.ports))
            if i % 2000 == 0:
                log("virtnet: %d ports" % i)

    def detach_ports(self, d, r):
        r["port_detach"] = []
        for i in range(1, len(r["port_attach"]) + 1):
            netbench.progress("virtnet: detaching ports %d/%d" % (i, len(r["port_attach"])))
            r["port_detach"].append(timed(d.cli("detach-interface", "bench-vm%d" % i, "network",
                                                "--mac", self.mac(i))))

    def guest(self, d):
        """A guest namespace on network #1's bridge through a veth; returns its ping process."""
        g = "%sg-%d" % (netbench.PREFIX, os.getpid())
        ns_add(g)
        self.namespaces.append(g)
        run = lambda *a: subprocess.run(list(a), check=True)  # noqa: E731
        run("ip", "-n", d.ns, "link", "add", "vnbg0", "type", "veth", "peer", "name", "eth0",
            "netns", g)
        run("ip", "-n", d.ns, "link", "set", "vnbg0", "master", "virbr1", "up")
        run("ip", "-n", g, "addr", "add", "10.0.1.250/24", "dev", "eth0")
        run("ip", "-n", g, "link", "set", "eth0", "up")
        for _ in range(100):
            if subprocess.run(["ip", "netns", "exec", g] + PING + ["-c1", "-W1", gateway(1)],
                              stdout=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise CmdError("the guest cannot ping its gateway %s" % gateway(1))
        p = subprocess.Popen(["ip", "netns", "exec", g] + PING + ["-i", "0.05", gateway(1)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.pings.append(p)
        return p

    def restart(self, d, r):
        ping = self.guest(d)
        time.sleep(1)
        pid = d.pid()
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        d.proc.wait(timeout=300)
        t1 = time.monotonic()
        d.respawn()
        d.wait_ready(d.cli("net-list", "--all"), timeout=600)
        t2 = time.monotonic()
        time.sleep(2)
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
        seqs = [int(s) for s in re.findall(r"seq=(\d+)", out)]
        gaps = [b - a - 1 for a, b in zip(seqs, seqs[1:]) if b - a > 1]
        r["restart"] = {
            "stop_s": round(t1 - t0, 3),
            "reconcile_s": round(t2 - t1, 3),
            "pings_sent": int(m.group(1)) if m else None,
            "pings_lost": int(m.group(1)) - int(m.group(2)) if m else None,
            "longest_gap": max(gaps, default=0),
            "summary": out.strip().splitlines()[-2:] if out.strip() else [],
        }
        log("virtnet restart: %s" % r["restart"])

    def phase_virtnet(self):
        d = ScaleVirtnet("vn", self.tmp, self.args.bindir)
        d.log_level = self.args.log_level
        self.daemons.append(d)
        r = self.result["virtnet"]
        r["checkpoints"] = []
        d.start()
        r["version"] = d.version
        self.checkpoint(d, r, 0)
        try:
            started = self.start_networks(d, r, self.args.networks)
            self.save()
            if started and self.args.ports:
                self.attach_ports(d, r, started)
                self.checkpoint(d, r, started, "%d ports" % self.args.ports)
                self.restart(d, r)
                self.checkpoint(d, r, started, "after restart")
                if self.args.detach:
                    self.detach_ports(d, r)
                self.save()
            self.destroy_networks(d, r, started)
        finally:
            self.summarise(r)
            self.save()
        d.stop()
        self.daemons.remove(d)
        self.stopped.append(d)

    # --- libvirt -------------------------------------------------------------------------------

    def phase_libvirt(self):
        d = ScaleLibvirt("lv", self.tmp)
        self.daemons.append(d)
        r = self.result["libvirt"]
        r["checkpoints"] = []
        try:
            d.start()
        except (CmdError, subprocess.TimeoutExpired, OSError) as e:
            r["error"] = "daemon: %s" % e
            self.note("libvirt: could not start its daemon: %s" % e)
            return
        r["version"] = d.version
        with open("/proc/sys/fs/inotify/max_user_instances") as f:
            r["inotify_max_user_instances"] = int(f.read())
        self.checkpoint(d, r, 0)
        started = self.start_networks(d, r, self.args.libvirt_networks or self.args.networks)
        self.destroy_networks(d, r, started)
        self.summarise(r)
        self.save()
        d.stop()
        self.daemons.remove(d)
        self.stopped.append(d)

    def summarise(self, r):
        marks = self.checkpoints()
        for key in ("define", "start", "destroy", "port_attach", "port_detach"):
            xs = r.get(key) or []
            if not xs:
                continue
            r[key + "_stats"] = {"all": stats(xs), "windows": windows(xs, marks + [len(xs)])}
            r[key + "_buckets"] = buckets(xs)
            first, last = pct(xs[:10], 0.5), pct(xs[-10:], 0.5)
            if first and last:
                r[key + "_last10_over_first10"] = round(last / first, 3)

    def run(self):
        netbench.sweep_stale()
        # A namespace with thousands of links torn down just before (a previous run's) holds
        # RTNL for a minute: measure nothing under it.
        self.wait_rtnl_quiet()
        if not self.args.skip_kernel:
            self.phase_kernel()
            self.save()
        if not self.args.skip_virtnet:
            self.phase_virtnet()
        if not self.args.skip_libvirt:
            self.wait_rtnl_quiet()
            self.phase_libvirt()
        self.result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self.result["load_at_end"] = os.getloadavg()
        self.save()


# --- report and plot ---------------------------------------------------------------------------

def fmt(x):
    return "—" if x is None else ("%.1f" % x if x < 100 else "%.0f" % x)


def report(res):
    w = []
    m = res["machine"]
    w.append("Machine: %s, %s cores, %s GiB, Linux %s; load average at start %s, at end %s." % (
        m["cpu"], m["cores"], m["memory_gib"], m["kernel"],
        "/".join("%.1f" % x for x in res.get("load_at_start", [])),
        "/".join("%.1f" % x for x in res.get("load_at_end", []))))
    w.append("")
    k = res.get("kernel", {})
    if k:
        n = k["bridges"]
        w.append("Kernel floor (a namespace of its own), ms p50 / p99:")
        w.append("")
        w.append("| | 1 bridge | %d bridges |" % n)
        w.append("|---|---|---|")
        for key, label in (("ip_link_add", "`ip link add … type bridge` (spawn included)"),
                           ("ip_link_del", "`ip link del` (spawn included)"),
                           ("nl_add", "netlink: bridge add, IPv6 off, up, IPv4 address"),
                           ("nl_park", "netlink: down, then address removal"),
                           ("nl_park_addr_first", "netlink: address removal, then down"),
                           ("nl_del", "netlink: delete of a configured bridge")):
            a, b = k["at_1"].get(key, {}), k["at_n"].get(key, {})
            w.append("| %s | %s / %s | %s / %s |" % (label, fmt(a.get("p50_ms")),
                                                      fmt(a.get("p99_ms")), fmt(b.get("p50_ms")),
                                                      fmt(b.get("p99_ms"))))
        w.append("")
    for impl in ("virtnet", "libvirt"):
        r = res.get(impl) or {}
        if not r.get("checkpoints"):
            continue
        w.append("**%s %s** — %d networks started%s." % (
            impl, r.get("version", ""), r.get("networks_started", 0),
            (" (then: `%s`)" % r["error"].splitlines()[0][:300]) if r.get("error") else ""))
        w.append("")
        w.append("| networks | start p50 / p99 (ms, 10 before) | destroy p50 / p99 (ms) | "
                 "RSS (MiB) | descriptors | `net-list --all` p50 (ms) |")
        w.append("|---|---|---|---|---|---|")
        sw = (r.get("start_stats") or {}).get("windows", {})
        dw = (r.get("destroy_stats") or {}).get("windows", {})
        for c in r["checkpoints"]:
            n = c["networks"]
            key = "1-10" if n == 1 else "%d-%d" % (n - 9, n)
            s, dd = sw.get(key, {}), dw.get(key, {})
            label = "%d%s" % (n, (" (%s)" % c["at"]) if c.get("at") else "")
            w.append("| %s | %s / %s | %s / %s | %s | %s | %s |" % (
                label, fmt(s.get("p50_ms")), fmt(s.get("p99_ms")), fmt(dd.get("p50_ms")),
                fmt(dd.get("p99_ms")),
                fmt(c["rss_kib"] / 1024) if c.get("rss_kib") else "—", c.get("fds", "—"),
                fmt(c["net_list_all"]["p50_ms"])))
        w.append("")
        for key in ("start", "destroy"):
            ratio = r.get(key + "_last10_over_first10")
            if ratio:
                w.append("- %s: median of the last ten ÷ median of the first ten = %.2f" % (
                    key, ratio))
        for key in ("port_attach", "port_detach"):
            st = (r.get(key + "_stats") or {}).get("all")
            if st:
                w.append("- %s: %d ports, p50 %s ms, p99 %s ms per port" % (
                    key.replace("_", " "), st["n"], fmt(st["p50_ms"]), fmt(st["p99_ms"])))
        if r.get("restart"):
            rr = r["restart"]
            w.append("- restart: SIGTERM to exit %.2f s; start to first answer (reconcile) "
                     "%.2f s; pings every 50 ms: %s sent, %s lost" % (
                         rr["stop_s"], rr["reconcile_s"], rr["pings_sent"], rr["pings_lost"]))
        w.append("")
    for note in res.get("notes", []):
        w.append("- " + note)
    return "\n".join(w)


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 2, figsize=(13, 9))
    colors = {"virtnet": "tab:blue", "libvirt": "tab:red"}
    for impl in ("virtnet", "libvirt"):
        r = res.get(impl) or {}
        c = colors[impl]
        for a, key, title in ((ax[0][0], "start_buckets", "net-start (CLI wall clock)"),
                              (ax[0][1], "destroy_buckets", "net-destroy (CLI wall clock)")):
            b = r.get(key) or []
            if b:
                xs = [x[0] for x in b]
                a.plot(xs, [x[1] * 1e3 for x in b], "-", color=c, label=impl + " p50")
                a.plot(xs, [x[2] * 1e3 for x in b], ":", color=c, label=impl + " p99")
            a.set_title(title + ", per 100 networks")
            a.set_xlabel("active networks")
            a.set_ylabel("ms")
        cps = [p for p in r.get("checkpoints", [])
               if p.get("rss_kib") and p.get("at") in (None, "last started")]
        if cps:
            ax[1][0].plot([p["networks"] for p in cps], [p["rss_kib"] / 1024 for p in cps], "o-",
                          color=c, label=impl + (" (libvirtd + all dnsmasq)"
                                                 if impl == "libvirt" else " (virtnetd)"))
            ax[1][1].plot([p["networks"] for p in cps], [p["fds"] for p in cps], "o-", color=c,
                          label=impl + (" (libvirtd)" if impl == "libvirt" else " (virtnetd)"))
        if r.get("failed_at"):
            for a in (ax[0][0], ax[1][0]):
                a.axvline(r["failed_at"], color=c, linestyle="--", linewidth=0.8)
                a.annotate("%s stops at #%d" % (impl, r["failed_at"]), (r["failed_at"], 0),
                           xytext=(5, 5), textcoords="offset points", color=c, fontsize=8)
    k = res.get("kernel") or {}
    if k:
        for a, key in ((ax[0][0], "ip_link_add"), (ax[0][1], "ip_link_del")):
            xs = [1, k["bridges"]]
            ys = [k["at_1"][key]["p50_ms"], k["at_n"][key]["p50_ms"]]
            a.plot(xs, ys, "s--", color="gray", label="kernel: `ip %s` p50" % key[3:].replace(
                "_", " "))
    ax[1][0].set_title("memory (RSS)")
    ax[1][0].set_xlabel("active networks")
    ax[1][0].set_ylabel("MiB")
    ax[1][0].set_yscale("log")
    ax[1][1].set_title("open descriptors")
    ax[1][1].set_xlabel("active networks")
    for row in ax:
        for a in row:
            a.grid(True, alpha=0.3)
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize=8)
            a.set_ylim(bottom=0 if a.get_yscale() == "linear" else None)
    fig.suptitle("virtnet vs libvirt at scale (issue 18), %s" % res.get("started", ""))
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--networks", type=int, default=4000)
    p.add_argument("--ports", type=int, default=10000)
    p.add_argument("--libvirt-networks", type=int, help="libvirt's ceiling (default --networks)")
    p.add_argument("--kernel-cycles", type=int, default=30)
    p.add_argument("--log-level", default="warn", help="virtnetd's --log-level")
    p.add_argument("--detach", action="store_true",
                   help="detach every port before the destroys (each detach-interface lists "
                        "the guest's ports: slow with 10,000 guarded ports); by default the "
                        "networks are destroyed with their ports attached")
    p.add_argument("--keep-logs", metavar="PREFIX", help="copy the daemons' logs to PREFIX.vn.log, "
                   "PREFIX.lv.log")
    p.add_argument("--skip-kernel", action="store_true")
    p.add_argument("--skip-virtnet", action="store_true")
    p.add_argument("--skip-libvirt", action="store_true")
    p.add_argument("--bindir", default=os.path.join(netbench.REPO, "target", "release"))
    p.add_argument("--out", default="scale.json")
    p.add_argument("--report", metavar="RESULTS")
    p.add_argument("--plot", nargs=2, metavar=("RESULTS", "PNG"))
    p.add_argument("--kernel-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.kernel_worker:
        kernel_worker(args.networks, args.kernel_cycles)
        return 0
    if args.report:
        with open(args.report) as f:
            print(report(json.load(f)))
        return 0
    if args.plot:
        with open(args.plot[0]) as f:
            plot(json.load(f), args.plot[1])
        return 0
    if os.geteuid() != 0:
        sys.exit("scale: run as root (it creates network namespaces)")
    return netbench.run_to_end(Scale(args), report)


if __name__ == "__main__":
    sys.exit(main())
