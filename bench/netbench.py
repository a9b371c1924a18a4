#!/usr/bin/env python3
"""netbench: wall-clock time of `net-start` and `net-destroy`, libvirt 9 against virtnet, on one
machine, plus the kernel's own cost of a bridge.

Each implementation's daemon runs in a network namespace of its own (and its own PID and mount
namespaces), so every bridge, address, firewall rule and dnsmasq it makes stays there; the
namespaces are deleted at exit, Ctrl-C included. The CLIs (`virsh`, `virtnet`) run from here and
reach their daemon through its unix socket; each command is timed with time.perf_counter around
subprocess.run, so a figure includes the CLI's own process spawn, which is measured apart
(`--version`) for readers to subtract.

Phases (both implementations interleaved step by step, alternating which goes first):
  spawn   `virsh --version` / `virtnet --version`, and a daemon round trip (`net-list --all`)
  kernel  `ip link add name bX type bridge` / `ip link del bX` / `ip link show lo` (the spawn
          of ip itself), and bench/nlbench.py: the same add/delete over one netlink socket,
          no spawn at all
  single  one network: --cycles times net-destroy + net-start
  many    --networks networks defined and started one after the other (each start timed),
          then destroyed from the last to the first (each destroy timed)

Usage (as root):
  bench/netbench.py --impl both --cycles 50 --networks 500 --out results.json
  bench/netbench.py --report results.json          # the markdown table of a past run
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PREFIX = "vnbench-"
UNSHARE = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
           "--propagation", "private"]


_progress = {"drawn": False, "at": 0.0}


def progress_on():
    """A progress line only on a terminal, and not with -q (BENCH_QUIET=1) or TERM=dumb."""
    return (sys.stderr.isatty() and os.environ.get("BENCH_QUIET") != "1"
            and os.environ.get("TERM") != "dumb")


def progress(text, force=False):
    """Redraws the progress line on stderr (at most ten times a second unless forced)."""
    if not progress_on():
        return
    now = time.monotonic()
    if not force and now - _progress["at"] < 0.1:
        return
    _progress["at"] = now
    sys.stderr.write("\r\x1b[K" + text)
    sys.stderr.flush()
    _progress["drawn"] = True


def progress_clear():
    if _progress["drawn"]:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
        _progress["drawn"] = False


def log(*args):
    progress_clear()
    print("netbench:", *args, file=sys.stderr, flush=True)


class CmdError(Exception):
    pass


def timed(cmd, timeout=120):
    """Runs cmd, returns its wall-clock seconds; raises CmdError with its stderr on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CmdError("%s: exit %d: %s" % (" ".join(cmd), proc.returncode,
                                            proc.stderr.decode(errors="replace").strip()))
    return elapsed


def network_xml(name, bridge, third, fourth_net):
    """A NAT network with DHCP, as libvirt's default network, on 10.third.fourth_net.0/24."""
    base = "10.%d.%d" % (third, fourth_net)
    return ("<network>\n  <name>%s</name>\n  <forward mode='nat'/>\n"
            "  <bridge name='%s' stp='on' delay='0'/>\n"
            "  <ip address='%s.1' netmask='255.255.255.0'>\n    <dhcp>\n"
            "      <range start='%s.2' end='%s.254'/>\n    </dhcp>\n  </ip>\n</network>\n"
            % (name, bridge, base, base, base))


def ns_add(name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


def ns_del(name):
    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


def ns_processes(ns):
    """The command names of the processes in a network namespace (what a network costs in
    processes: libvirt runs a dnsmasq per network)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    names = []
    for pid in out.split():
        try:
            with open("/proc/%s/comm" % pid) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name not in ("bash", "unshare"):  # the harness's own (pid1.sh and its parent)
            names.append(name)
    return sorted(names)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Deletes vnbench-* namespaces left by a run whose process is gone (the name ends in its pid)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        try:
            owner = int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if owner != os.getpid() and not pid_alive(owner):
            log("deleting stale namespace", name)
            ns_del(name)


class Daemon:
    """A daemon run as `ip netns exec NS unshare ... PROGRAM`, stopped by PID."""

    label = ""

    def __init__(self, key, tmp):
        self.key = key
        self.ns = "%s%s-%d" % (PREFIX, key, os.getpid())
        self.dir = os.path.join(tmp, key)
        os.makedirs(self.dir)
        self.proc = None
        self.logfile = os.path.join(self.dir, "daemon.log")

    def spawn(self, argv):
        ns_add(self.ns)
        with open(self.logfile, "ab") as out:
            # A session of its own: a Ctrl-C at the terminal reaches only netbench, which then
            # stops the daemon itself.
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + UNSHARE + argv,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True)

    def wait_ready(self, probe, timeout=30):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CmdError("%s exited (%s): %s" % (self.label, self.proc.returncode,
                                                       self.log_tail()))
            try:
                timed(probe, timeout=10)
                return
            except (CmdError, subprocess.TimeoutExpired) as e:
                last = str(e)
            time.sleep(0.1)
        raise CmdError("%s did not answer within %ds: %s\n%s" % (self.label, timeout, last,
                                                                self.log_tail()))

    def log_tail(self, n=15):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            # ip netns exec execs unshare in place; unshare's child is PID 1 of the PID namespace
            # (bench/pid1.sh): TERM it, and the kernel kills the rest of the namespace with it.
            init = children(self.proc.pid)
            for pid in init:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for pid in init + [self.proc.pid]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait(timeout=15)
        self.proc = None
        ns_del(self.ns)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Libvirt(Daemon):
    label = "libvirt"

    def start(self):
        self.spawn(["bash", os.path.join(HERE, "libvirtd-inner.sh"), self.dir])
        sock = os.path.join(self.dir, "sock", "libvirt-sock")
        self.uri = "network:///system?socket=" + sock
        self.wait_ready(self.cli("net-list", "--all"))
        out = subprocess.run(["/usr/sbin/libvirtd", "--version"], capture_output=True, text=True)
        self.version = out.stdout.split()[-1] if out.stdout.split() else "?"

    def cli(self, *args):
        return ["virsh", "-q", "-c", self.uri] + list(args)

    def spawn_probe(self):
        return ["virsh", "--version"]


class Virtnet(Daemon):
    label = "virtnet"
    # The daemon's --log-level (bench/scale.py raises it to read the daemon's own timings).
    log_level = "warn"

    def __init__(self, key, tmp, bindir):
        super().__init__(key, tmp)
        self.bindir = bindir

    def start(self):
        virtnetd = os.path.join(self.bindir, "virtnetd")
        for b in (virtnetd, os.path.join(self.bindir, "virtnet")):
            if not os.access(b, os.X_OK):
                raise CmdError("%s not found: build it with "
                               "`cargo build --release -p virtnetd -p virtnet`" % b)
        state, run = os.path.join(self.dir, "state"), os.path.join(self.dir, "run")
        self.sock = os.path.join(run, "virtnet.sock")
        self.spawn(["bash", os.path.join(HERE, "pid1.sh"), virtnetd, "--state-dir", state,
                    "--run-dir", run, "--libvirt-run-dir", os.path.join(run, "libvirt"),
                    "--log-level", self.log_level])
        self.wait_ready(self.cli("net-list", "--all"))
        out = subprocess.run([os.path.join(self.bindir, "virtnet"), "--version"],
                             capture_output=True, text=True)
        self.version = out.stdout.split()[-1] if out.stdout.split() else "?"

    def cli(self, *args):
        return [os.path.join(self.bindir, "virtnet"), "-q", "--connect", self.sock] + list(args)

    def spawn_probe(self):
        return [os.path.join(self.bindir, "virtnet"), "--version"]


def interleaved(impls, step):
    """Yields the implementations in alternating order (ABBA...) for step number `step`."""
    return impls if step % 2 == 0 else list(reversed(impls))


class Results:
    """A run's result dict (`self.result`, with a "notes" list) and where it goes
    (`self.args.out`): shared by the benchmark drivers."""

    def note(self, text):
        log(text)
        self.result["notes"].append(text)

    def save(self):
        """Writes the result so far (atomically: a killed run leaves the last whole file)."""
        if self.args.out:
            with open(self.args.out + ".tmp", "w") as f:
                json.dump(self.result, f, indent=1)
            os.replace(self.args.out + ".tmp", self.args.out)


class Bench(Results):
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="vnbench.")
        self.daemons = []
        self.result = {
            "machine": machine(),
            "command": " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "params": {"cycles": args.cycles, "networks": args.networks,
                       "kernel_cycles": args.kernel_cycles, "budget_s": args.budget},
            "impls": {},
            "virtnet_build": build_info(args.bindir),
            "kernel": {},
            "notes": [],
        }

    INOTIFY = "/proc/sys/fs/inotify/max_user_instances"

    def raise_inotify(self):
        """libvirt's dnsmasq (one per network) takes an inotify instance each, and all of them
        count against root's fs.inotify.max_user_instances (128 by default, not a per-namespace
        limit): past ~128 networks net-start fails with 'failed to create inotify: Too many open
        files'. --inotify-instances N raises the limit for the run; cleanup restores it."""
        want = self.args.inotify_instances
        if not want:
            return
        with open(self.INOTIFY) as f:
            before = int(f.read())
        self.result["inotify_max_user_instances"] = {"before": before, "during": max(want, before)}
        if want > before:
            self.inotify_restore = before
            with open(self.INOTIFY, "w") as f:
                f.write(str(want))
            self.note("fs.inotify.max_user_instances raised from %d to %d for this run "
                      "(libvirt's dnsmasq takes one inotify instance per network)" % (before, want))

    def cleanup(self):
        stop_all(self.daemons)
        self.daemons = []
        for ns in getattr(self, "kernel_ns", []):
            ns_del(ns)
        shutil.rmtree(self.tmp, ignore_errors=True)
        restore = getattr(self, "inotify_restore", None)
        if restore is not None:
            with open(self.INOTIFY, "w") as f:
                f.write(str(restore))
            log("fs.inotify.max_user_instances restored to %d" % restore)
            self.inotify_restore = None

    def xml_file(self, name, bridge, third, fourth):
        path = os.path.join(self.tmp, name + ".xml")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(network_xml(name, bridge, third, fourth))
        return path

    # --- phases -------------------------------------------------------------------------------

    def start_daemons(self):
        impls = ["libvirt", "virtnet"] if self.args.impl == "both" else [self.args.impl]
        live = []
        for key in impls:
            d = Libvirt("lv", self.tmp) if key == "libvirt" else Virtnet("vn", self.tmp,
                                                                         self.args.bindir)
            self.daemons.append(d)
            r = self.result["impls"].setdefault(d.label, {"samples": {}, "errors": {}})
            try:
                d.start()
                r["version"] = d.version
                live.append(d)
                log("%s ready (%s) in namespace %s" % (d.label, d.version, d.ns))
            except (CmdError, subprocess.TimeoutExpired, OSError) as e:
                r["errors"]["daemon"] = str(e)
                self.note("%s: could not start its daemon, left out: %s" % (d.label, e))
        return live

    def record(self, d, key, value):
        self.result["impls"][d.label]["samples"].setdefault(key, []).append(value)

    def fail(self, d, phase, err):
        msg = str(err)
        self.result["impls"][d.label]["errors"][phase] = msg
        self.note("%s: %s failed, %s left out of this phase: %s" % (d.label, phase, d.label, msg))

    def phase_spawn(self, impls, n=20):
        log("spawn: %d x --version and net-list per CLI" % n)
        for i in range(n):
            for d in interleaved(impls, i):
                self.record(d, "spawn_version", timed(d.spawn_probe()))
                try:
                    self.record(d, "roundtrip_list", timed(d.cli("net-list", "--all")))
                except CmdError as e:
                    self.fail(d, "roundtrip", e)

    def phase_kernel(self):
        n = self.args.kernel_cycles
        ns = "%sk-%d" % (PREFIX, os.getpid())
        self.kernel_ns = [ns]
        ns_add(ns)
        k = self.result["kernel"]
        log("kernel: %d x ip link add/del, ip link show lo, netlink add/del" % n)
        for key in ("ip_link_add", "ip_link_del", "ip_link_show_lo"):
            k[key] = []
        for _ in range(n):
            k["ip_link_add"].append(timed(["ip", "-n", ns, "link", "add", "name", "vnbk1",
                                           "type", "bridge"]))
            k["ip_link_del"].append(timed(["ip", "-n", ns, "link", "del", "vnbk1"]))
            k["ip_link_show_lo"].append(timed(["ip", "-n", ns, "link", "show", "lo"]))
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                              os.path.join(HERE, "nlbench.py"), "--cycles", str(n)],
                             capture_output=True, text=True, check=True).stdout
        nl = json.loads(out)
        k["netlink_add"] = nl["bare"]["add"]
        k["netlink_del"] = nl["bare"]["del"]
        k["netlink_add_configured"] = nl["configured"]["add"]
        k["netlink_del_configured"] = nl["configured"]["del"]
        ns_del(ns)
        self.kernel_ns = []

    def phase_single(self, impls):
        cycles = self.args.cycles
        name, bridge = "bench-single", "virbr0"
        xml = self.xml_file(name, bridge, 255, 0)
        live = []
        for d in impls:
            try:
                timed(d.cli("net-define", xml))
                self.record(d, "single_first_start", timed(d.cli("net-start", name)))
                self.result["impls"][d.label]["processes_one_network"] = ns_processes(d.ns)
                live.append(d)
            except (CmdError, subprocess.TimeoutExpired) as e:
                self.fail(d, "single", e)
        log("single: %d x net-destroy + net-start (%s)" % (cycles,
                                                          ", ".join(d.label for d in live)))
        for i in range(cycles):
            for d in interleaved(live, i):
                if d.label in self.result["impls"] and "single" in \
                        self.result["impls"][d.label]["errors"]:
                    continue
                try:
                    self.record(d, "single_destroy", timed(d.cli("net-destroy", name)))
                    self.record(d, "single_start", timed(d.cli("net-start", name)))
                except (CmdError, subprocess.TimeoutExpired) as e:
                    self.fail(d, "single", e)
        for d in live:
            for verb in ("net-destroy", "net-undefine"):
                try:
                    timed(d.cli(verb, name))
                except (CmdError, subprocess.TimeoutExpired):
                    pass

    def phase_many(self, impls):
        n, budget = self.args.networks, self.args.budget
        used = {d.label: 0.0 for d in impls}
        started = {d.label: 0 for d in impls}
        live = list(impls)
        log("many: define + start %d networks each (budget %ds of command time per "
            "implementation)" % (n, budget))
        t_phase = time.monotonic()
        for i in range(1, n + 1):
            name, bridge = "bench-%04d" % i, "virbr%d" % i
            xml = self.xml_file(name, bridge, i // 250, i % 250)
            for d in interleaved(list(live), i):
                try:
                    t_def = timed(d.cli("net-define", xml))
                    t_start = timed(d.cli("net-start", name))
                except (CmdError, subprocess.TimeoutExpired) as e:
                    self.fail(d, "many", e)
                    live.remove(d)
                    continue
                self.record(d, "many_define", t_def)
                self.record(d, "many_start", t_start)
                started[d.label] = i
                used[d.label] += t_def + t_start
                if used[d.label] > budget:
                    self.note("%s: the start budget (%ds) ran out after %d networks"
                              % (d.label, budget, i))
                    live.remove(d)
            if not live:
                break
            if i % 50 == 0:
                log("many: %d networks (%s), %.0fs" % (
                    i, ", ".join("%s %.0fs" % (k, v) for k, v in used.items()),
                    time.monotonic() - t_phase))
                self.save()
        for d in impls:
            self.result["impls"][d.label]["networks_started"] = started[d.label]
        if self.args.no_many_destroy:
            return
        log("many: destroying from the last network to the first")
        top = max(started.values()) if started else 0
        for i in range(top, 0, -1):
            for d in interleaved(list(impls), i):
                if started[d.label] < i or "many_destroy" in \
                        self.result["impls"][d.label]["errors"]:
                    continue
                try:
                    # Stored in start order: many_destroy[k] is network k+1's destroy, done
                    # with k+1 networks active.
                    t = timed(d.cli("net-destroy", "bench-%04d" % i))
                    self.result["impls"][d.label]["samples"].setdefault(
                        "many_destroy", [None] * started[d.label])[i - 1] = t
                except (CmdError, subprocess.TimeoutExpired) as e:
                    self.fail(d, "many_destroy", e)

    def run(self):
        sweep_stale()
        self.raise_inotify()
        impls = self.start_daemons()
        self.save()
        if impls:
            self.phase_spawn(impls)
            self.save()
        if not self.args.skip_kernel:
            self.phase_kernel()
            self.save()
        if impls and self.args.cycles > 0:
            self.phase_single(impls)
            self.save()
        if impls and self.args.networks > 0:
            self.phase_many(impls)
        self.result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self.save()


def build_info(bindir):
    """Which virtnet was measured: the binaries' times and the work tree they came from."""
    info = {}
    for b in ("virtnetd", "virtnet"):
        path = os.path.join(bindir, b)
        if os.path.exists(path):
            info[b + "_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S",
                                               time.localtime(os.path.getmtime(path)))
    git = ["git", "-C", REPO]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no", "--", "crates"],
                           capture_output=True, text=True)
    if head.returncode == 0:
        info["git_head"] = head.stdout.strip()
        info["crates_modified"] = bool(dirty.stdout.strip())
    return info


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    debian = ""
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"kernel": platform.release(), "debian": debian, "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "hostname": socket.gethostname()}


# --- report ------------------------------------------------------------------------------------

def ms(x):
    return "—" if x is None else ("%.1f" % (x * 1e3) if x < 10 else "%.0f" % (x * 1e3))


def med(xs):
    xs = [x for x in (xs or []) if x is not None]
    return statistics.median(xs) if xs else None


def p90(xs):
    xs = sorted(x for x in (xs or []) if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def at(xs, k):
    """The k-th (1-based) sample, or None."""
    return xs[k - 1] if xs and len(xs) >= k else None


def window(xs, lo, hi):
    """Median of samples lo..hi (1-based, inclusive), clipped to what exists."""
    if not xs or len(xs) < lo:
        return None
    return med(xs[lo - 1:hi])


def report(result):
    impls = list(result["impls"].keys())
    k = result.get("kernel", {})
    m = result["machine"]
    lines = []
    w = lines.append
    w("Machine: %s, %s cores, %s GiB, Linux %s, Debian %s." % (
        m["cpu"] or "?", m["cores"], m["memory_gib"], m["kernel"], m["debian"]))
    w("")
    w("Milliseconds of wall clock per CLI command, spawn of the CLI included.")
    w("")
    head = "| | " + " | ".join(
        "%s %s" % (i, result["impls"][i].get("version", "")) for i in impls) + " |"
    w(head)
    w("|---" * (len(impls) + 1) + "|")
    kdel = med(k.get("netlink_del_configured"))

    def row(label, fn):
        cells = []
        for i in impls:
            s = result["impls"][i]["samples"]
            try:
                cells.append(fn(s))
            except (TypeError, ValueError, ZeroDivisionError):
                cells.append("—")
        w("| %s | %s |" % (label, " | ".join(cells)))

    def mp(key):
        return lambda s: "%s / %s" % (ms(med(s.get(key))), ms(p90(s.get(key)))) \
            if s.get(key) else "—"

    def rel(key, fn=med):
        return lambda s: "%.1f×" % (fn(s.get(key)) / kdel) if s.get(key) and kdel else "—"

    row("CLI spawn (`--version`), median / p90", mp("spawn_version"))
    row("daemon round trip (`net-list --all`), median / p90", mp("roundtrip_list"))
    n_single = max((len(result["impls"][i]["samples"].get("single_start", [])) for i in impls),
                   default=0)
    row("net-start, one network (%d cycles), median / p90" % n_single, mp("single_start"))
    row("net-destroy, one network, median / p90", mp("single_destroy"))
    row("net-destroy ÷ kernel bridge delete (median)", rel("single_destroy"))
    row("processes in the namespace with one network active",
        lambda s: "—")
    lines[-1] = "| processes in the namespace with one network active | %s |" % " | ".join(
        ", ".join(result["impls"][i].get("processes_one_network", [])) or "—" for i in impls)
    nets = {i: result["impls"][i].get("networks_started", 0) for i in impls}
    top = max(nets.values(), default=0)
    if top:
        marks = [x for x in (1, 100, 500) if x <= top]
        if top not in marks:
            marks.append(top)
        for x in marks:
            row("net-start of network #%d" % x, lambda s, x=x: ms(at(s.get("many_start"), x)))
        wins = [(lo, min(hi, top)) for lo, hi in ((1, 10), (96, 105), (491, 500)) if lo <= top]
        if top > 10 and wins[-1][1] != top:
            wins.append((top - 9, top))
        for lo, hi in wins:
            row("net-start, median of #%d–#%d" % (lo, hi),
                lambda s, lo=lo, hi=hi: ms(window(s.get("many_start"), lo, hi)))
        for x in marks:
            row("net-destroy of network #%d (with %d active)" % (x, x),
                lambda s, x=x: ms(at(s.get("many_destroy"), x)))
        for lo, hi in wins:
            row("net-destroy, median of #%d–#%d" % (lo, hi),
                lambda s, lo=lo, hi=hi: ms(window(s.get("many_destroy"), lo, hi)))
        row("networks started (of %d asked)" % result["params"]["networks"],
            lambda s: "—")
        lines[-1] = "| networks started (of %d asked) | %s |" % (
            result["params"]["networks"], " | ".join(str(nets[i]) for i in impls))
    for i in impls:
        for phase, err in result["impls"][i].get("errors", {}).items():
            first = err.strip().splitlines()[0] if err.strip() else err
            w("")
            w("**%s, %s failed**: `%s`" % (i, phase, first[:300]))
    if k:
        w("")
        w("Kernel baseline (a bare network namespace), milliseconds, median / p90 of %d:" %
          len(k.get("ip_link_del", [])))
        w("")
        w("| | median | p90 |")
        w("|---|---|---|")
        for key, label in (
                ("ip_link_add", "`ip link add name bX type bridge` (spawn included)"),
                ("ip_link_del", "`ip link del bX` (spawn included)"),
                ("ip_link_show_lo", "`ip link show lo` (the spawn of `ip`)"),
                ("netlink_add", "netlink RTM_NEWLINK bridge, in process"),
                ("netlink_del", "netlink RTM_DELLINK, bare bridge, in process"),
                ("netlink_del_configured",
                 "netlink RTM_DELLINK, bridge up with an IPv4 address, in process")):
            if k.get(key):
                w("| %s | %s | %s |" % (label, ms(med(k[key])), ms(p90(k[key]))))
    if result.get("notes"):
        w("")
        for note in result["notes"]:
            w("- " + note)
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description="net-start/net-destroy timings, libvirt vs virtnet",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--impl", choices=["libvirt", "virtnet", "both"], default="both")
    p.add_argument("--cycles", type=int, default=50, help="destroy+start cycles of one network")
    p.add_argument("--networks", type=int, default=500, help="networks defined and started")
    p.add_argument("--kernel-cycles", type=int, default=100)
    p.add_argument("--skip-kernel", action="store_true")
    p.add_argument("--no-many-destroy", action="store_true",
                   help="do not time the destroy of the many networks")
    p.add_argument("--budget", type=int, default=900,
                   help="seconds of define+start command time per implementation for the "
                        "many-networks phase; it stops there (default 900)")
    p.add_argument("--inotify-instances", type=int, metavar="N",
                   help="raise fs.inotify.max_user_instances to N for the run (restored at exit); "
                        "libvirt's per-network dnsmasq needs one instance each, and the default "
                        "128 stops libvirt at about 128 networks")
    p.add_argument("--bindir", default=os.path.join(REPO, "target", "release"),
                   help="where virtnetd and virtnet are (default target/release)")
    p.add_argument("--out", default="results.json")
    p.add_argument("--report", metavar="RESULTS", help="print the table of a results file")
    p.add_argument("--sweep", action="store_true",
                   help="only delete vnbench-* namespaces of runs that are gone, then exit")
    args = p.parse_args()
    if args.sweep:
        sweep_stale()
        return 0
    if args.report:
        with open(args.report) as f:
            print(report(json.load(f)))
        return 0
    if os.geteuid() != 0:
        sys.exit("netbench: run as root (it creates network namespaces)")
    return run_to_end(Bench(args), report)


def stop_all(daemons):
    """Stops every daemon of the list; a failure is logged and the others are still stopped."""
    for d in daemons:
        try:
            d.stop()
        except Exception as e:  # keep cleaning the others
            log("stopping %s: %s" % (d.label, e))


def run_to_end(bench, report):
    """Runs `bench`, SIGTERM and SIGHUP ending it as Ctrl-C does; whatever happens, cleans up
    and saves what was measured, then prints `report` of it. Returns the exit status."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    status = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.note("interrupted; the results so far are kept")
        status = 130
    except Exception as e:
        traceback.print_exc()
        bench.note("failed: %r" % e)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
        bench.save()
    print(report(bench.result))
    return status


if __name__ == "__main__":
    sys.exit(main())
