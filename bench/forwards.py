#!/usr/bin/env python3
"""forwards: port forwards to a NAT guest, virtnet's DNAT maps against the iptables DNAT rules
that libvirt hook scripts write (one rule per forward), side by side in one run.

Two copies of the same topology, each in network namespaces of its own (removed at exit):

  upstream (203.0.113.1) ── uplink ── host (203.0.113.2) ── bridge ── guest
                                       virtnetd, or iptables-nft rules

  virtnet   virtnetd runs a NAT network 10.90.0.0/24 whose forwards are `<virtnet:forwards>`,
            applied as elements of the `fwd4_any` map (one hash lookup per new flow).
  iptables  a bridge 10.91.0.0/24 with masquerade, and per forward what a qemu hook script adds:
            `iptables -t nat -A PREROUTING -d 203.0.113.2 -p tcp --dport N -j DNAT --to G:P` and
            `iptables -A FORWARD -d G -p tcp --dport P -j ACCEPT` (iptables-nft, as Debian ships).

For each number of forwards installed (10, then 10,000; the filling is not timed: virtnet gets
them by `net-define` of a definition that holds them, iptables by one `iptables-restore`):
  add        latency of adding one more forward: virtnet's API call (POST
             /v1/networks/NET/forwards over the unix socket, the daemon's whole work: check,
             durable commit, map element), against the hook script's two `iptables` commands.
  rr         p50/p99 of short request/replies through the forward added last (a new TCP
             connection each: connect, 1-byte request, reply, close) from upstream.
  stream     iperf3 TCP throughput through a forward, upstream → guest.

Usage (as root): bench/forwards.py [--bin-dir target/release] [--requests 2000] [--adds 50]
                 [--seconds 5] [--out results.json]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIRST_PORT = 20000
GUEST_RR_PORT = 7000
GUEST_IPERF_PORT = 5201
HOST = "203.0.113.2"
UP = "203.0.113.1"

RR_SERVER = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', %d)); s.listen(512)
def serve(c):
    try:
        c.recv(16); c.sendall(b'r')
    finally:
        c.close()
while True:
    c, _ = s.accept()
    serve(c)
""" % GUEST_RR_PORT

RR_CLIENT = r"""
import socket, sys, time, json
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out, failed = [], 0
for _ in range(n):
    t0 = time.perf_counter()
    try:
        c = socket.create_connection((addr, port), timeout=2)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        c.sendall(b'q'); c.recv(16); c.close()
        out.append(time.perf_counter() - t0)
    except OSError:
        failed += 1
print(json.dumps({"times": out, "failed": failed}))
"""


def log(*args):
    print("forwards:", *args, file=sys.stderr, flush=True)


def run(*cmd, check=True, capture=False, input=None):
    p = subprocess.run(cmd, check=False, input=input, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    return p.stdout if capture else p.returncode


def nsx(ns, *cmd, **kw):
    return run("ip", "netns", "exec", ns, *cmd, **kw)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Side:
    """One topology: upstream, host and guest namespaces."""

    def __init__(self, tag, subnet):
        self.tag = tag
        self.up, self.host, self.guest = ("fwb-%s-%s" % (tag, r) for r in ("up", "host", "g"))
        self.subnet = subnet  # "10.90.0"
        self.guest_addr = subnet + ".7"
        self.procs = []
        for ns in (self.up, self.host, self.guest):
            run("ip", "netns", "add", ns)
            nsx(ns, "ip", "link", "set", "lo", "up")
        nsx(self.up, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "uplink0", "netns", self.host)
        nsx(self.up, "ip", "addr", "add", UP + "/24", "dev", "up0")
        nsx(self.up, "ip", "link", "set", "up0", "up")
        nsx(self.host, "ip", "addr", "add", HOST + "/24", "dev", "uplink0")
        nsx(self.host, "ip", "link", "set", "uplink0", "up")
        nsx(self.guest, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "vg0", "netns", self.host)
        nsx(self.guest, "ip", "addr", "add", self.guest_addr + "/24", "dev", "eth0")
        nsx(self.guest, "ip", "link", "set", "eth0", "up")
        nsx(self.host, "ip", "link", "set", "vg0", "up")

    def spawn(self, ns, *cmd, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def attach_guest(self, bridge):
        nsx(self.host, "ip", "link", "set", "vg0", "master", bridge)
        nsx(self.guest, "ip", "route", "replace", "default", "via", self.subnet + ".1")
        self.spawn(self.guest, sys.executable, "-c", RR_SERVER)
        self.spawn(self.guest, "iperf3", "-s", "-p", str(GUEST_IPERF_PORT))
        wait_port(self.guest, "127.0.0.1", GUEST_RR_PORT)
        wait_port(self.guest, "127.0.0.1", GUEST_IPERF_PORT)

    def targets(self, count):
        """(host port, guest port) of `count` forwards: all to the request/reply server but the
        second to last, which goes to iperf3."""
        out = []
        for i in range(count):
            gp = GUEST_IPERF_PORT if i == count - 2 else GUEST_RR_PORT
            out.append((FIRST_PORT + i, gp))
        return out

    def close(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in (self.guest, self.host, self.up):
            run("ip", "netns", "del", ns, check=False)


def wait_port(ns, addr, port, seconds=20):
    code = "import socket,sys\ns=socket.socket();s.settimeout(0.3)\nsys.exit(s.connect_ex((%r,%d)))" % (addr, port)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if nsx(ns, sys.executable, "-c", code, check=False) == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("nothing listens on %s:%d in %s" % (addr, port, ns))


class VirtnetSide(Side):
    def __init__(self, bin_dir, tmp):
        super().__init__("v", "10.90.0")
        self.dir = tempfile.mkdtemp(prefix="fwb-", dir=tmp)
        resolv = os.path.join(self.dir, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        self.sock = os.path.join(self.dir, "run", "virtnet.sock")
        self.cli = os.path.join(bin_dir, "virtnet")
        self.spawn(self.host, os.path.join(bin_dir, "virtnetd"), "--state-dir", os.path.join(self.dir, "state"),
                   "--run-dir", os.path.join(self.dir, "run"), "--no-libvirt-sockets",
                   "--resolv-conf", resolv, "--log-level", "warn")
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if time.time() > deadline:
                raise RuntimeError("virtnetd did not start")
            time.sleep(0.1)
        self.count = 0

    def virtnet(self, *args, input=None):
        return run(self.cli, "--connect", self.sock, *args, capture=True, input=input)

    def install(self, count):
        """The network with `count` forwards, defined and started (not timed). A definition
        holds at most ~9,990 forwards (the stored form's limit of 20,000 XML nodes), so above
        5,000 the first ones go to a second network, `fwdb2`: the maps, and so the packet
        path, hold all of them alike."""
        if self.count:
            for net in self.nets:
                self.virtnet("net-destroy", net)
                self.virtnet("net-undefine", net)
        targets = self.targets(count)
        split = max(0, count - 5000)
        self.nets = []
        if split:
            self.define("fwdb2", "vnb1", "10.92.0", "10.92.0.7", targets[:split])
        self.define("fwdb", "vnb0", "10.90.0", self.guest_addr, targets[split:])
        if self.count == 0:
            self.attach_guest("vnb0")
        else:
            nsx(self.host, "ip", "link", "set", "vg0", "master", "vnb0")
        self.count = count

    def define(self, name, bridge, subnet, guest, targets):
        forwards = "".join("<virtnet:forward proto='tcp' port='%d' to='%s' to-port='%d'/>" % (p, guest, g)
                           for p, g in targets)
        xml = ("<network xmlns:virtnet='urn:virtnet:network:1'><name>%s</name><forward mode='nat'/>"
               "<bridge name='%s' stp='off'/><ip address='%s.1' prefix='24'/>"
               "<virtnet:forwards>%s</virtnet:forwards></network>" % (name, bridge, subnet, forwards))
        path = os.path.join(self.dir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        self.virtnet("net-define", path)
        self.virtnet("net-start", name)
        self.nets.append(name)

    def api(self, method, path, body):
        data = json.dumps(body).encode()
        req = ("%s %s HTTP/1.1\r\nHost: virtnet\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % (method, path, len(data))).encode() + data
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.sendall(req)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        s.close()
        status = answer.split(b" ", 2)[1]
        if not status.startswith(b"2"):
            raise RuntimeError("%s %s: %s" % (method, path, answer.decode(errors="replace")))

    def add(self, port):
        body = {"proto": "tcp", "ports": {"start": port, "end": port}, "to": {"address": self.guest_addr},
                "to_port": GUEST_RR_PORT}
        t0 = time.perf_counter()
        self.api("POST", "/v1/networks/fwdb/forwards", body)
        return time.perf_counter() - t0

    def elements(self):
        out = nsx(self.host, "nft", "-j", "list", "map", "inet", "virtnet", "fwd4_any", capture=True)
        n = 0
        for item in json.loads(out)["nftables"]:
            n += len(item.get("map", {}).get("elem", []))
        return n


class IptablesSide(Side):
    def __init__(self):
        super().__init__("i", "10.91.0")
        h = self.host
        nsx(h, "ip", "link", "add", "ipb0", "type", "bridge", "stp_state", "0")
        nsx(h, "ip", "addr", "add", "10.91.0.1/24", "dev", "ipb0")
        nsx(h, "ip", "link", "set", "ipb0", "up")
        nsx(h, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # What libvirt's own iptables rules do for a NAT network, in short: replies in,
        # guests out, masquerade, everything else to the guests refused.
        for rule in (["-t", "nat", "-A", "POSTROUTING", "-s", "10.91.0.0/24", "!", "-d", "10.91.0.0/24", "-j", "MASQUERADE"],
                     ["-A", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
                     ["-A", "FORWARD", "-i", "ipb0", "-j", "ACCEPT"],
                     ["-P", "FORWARD", "DROP"]):
            nsx(h, "iptables", *rule)
        self.attach_guest("ipb0")
        self.count = 0

    def rules(self, port, guest_port):
        return (["-t", "nat", "-A", "PREROUTING", "-d", HOST, "-p", "tcp", "--dport", str(port),
                 "-j", "DNAT", "--to", "%s:%d" % (self.guest_addr, guest_port)],
                ["-A", "FORWARD", "-d", self.guest_addr, "-p", "tcp", "--dport", str(guest_port), "-j", "ACCEPT"])

    def install(self, count):
        """Appends the forwards up to `count` in one iptables-restore (not timed)."""
        nat, flt = [], []
        for port, gp in self.targets(count)[self.count:]:
            a, b = self.rules(port, gp)
            nat.append(" ".join(a[2:]))
            flt.append(" ".join(b))
        text = "*nat\n%s\nCOMMIT\n*filter\n%s\nCOMMIT\n" % ("\n".join(nat), "\n".join(flt))
        nsx(self.host, "iptables-restore", "--noflush", input=text)
        self.count = count

    def add(self, port):
        a, b = self.rules(port, GUEST_RR_PORT)
        t0 = time.perf_counter()
        nsx(self.host, "iptables", *a)
        nsx(self.host, "iptables", *b)
        return time.perf_counter() - t0


def rr(side, port, n):
    out = nsx(side.up, sys.executable, "-c", RR_CLIENT, HOST, str(port), str(n), capture=True)
    r = json.loads(out)
    if r["failed"] or not r["times"]:
        raise RuntimeError("%s: %d of %d request/replies failed" % (side.tag, r["failed"], n))
    return r["times"]


def stream(side, port, seconds):
    for attempt in range(3):
        out = nsx(side.up, "iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J",
                  capture=True, check=False)
        r = json.loads(out or "{}")
        if "sum_received" in r.get("end", {}):
            return r["end"]["sum_received"]["bits_per_second"]
        log("%s: iperf3 failed (%s), again" % (side.tag, r.get("error", out[:200])))
        time.sleep(1)
    raise RuntimeError("%s: iperf3 through port %d failed" % (side.tag, port))


def measure(side, level, args):
    # The network's forwards are ports FIRST_PORT.. FIRST_PORT+level-1; adds go after them.
    adds = [side.add(FIRST_PORT + level + i) for i in range(args.adds)]
    last = FIRST_PORT + level + args.adds - 1  # the forward added last
    side.count = level + args.adds
    times = rr(side, last, args.requests)
    bps = stream(side, FIRST_PORT + level - 2, args.seconds)
    return {
        "add_ms_p50": statistics.median(adds) * 1e3, "add_ms_p99": pct(adds, 0.99) * 1e3,
        "rr_us_p50": statistics.median(times) * 1e6, "rr_us_p99": pct(times, 0.99) * 1e6,
        "stream_gbit": bps / 1e9,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "target", "release"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--adds", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--levels", default="10,10000", help="numbers of forwards installed")
    ap.add_argument("--out")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("forwards: run as root (it makes network namespaces)")
    for tool in ("iperf3", "iptables", "iptables-restore", "nft"):
        if not shutil.which(tool):
            sys.exit("forwards: %s is missing" % tool)
    tmp = tempfile.mkdtemp(prefix="fwbench-")
    sides = []
    results = {}
    try:
        v = VirtnetSide(args.bin_dir, tmp)
        sides.append(v)
        i = IptablesSide()
        sides.append(i)
        levels = [int(x) for x in args.levels.split(",")]
        for level in levels:
            for side in (v, i):
                log("%s: installing %d forwards" % (side.tag, level))
                side.install(level)
            if level == levels[-1]:
                log("virtnet map holds %d elements" % v.elements())
            for side, name in ((v, "virtnet"), (i, "iptables")):
                log("%s: measuring with %d forwards" % (name, level))
                results["%s/%d" % (name, level)] = measure(side, level, args)
                if isinstance(side, IptablesSide):
                    side.count = level + args.adds
    finally:
        for s in sides:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print("\n| | forwards | add p50 | add p99 | request/reply p50 | p99 | TCP stream |")
    print("|---|---|---|---|---|---|---|")
    for key, r in results.items():
        name, level = key.split("/")
        print("| %s | %s | %.2f ms | %.2f ms | %.0f µs | %.0f µs | %.2f Gbit/s |" % (
            name, level, r["add_ms_p50"], r["add_ms_p99"], r["rr_us_p50"], r["rr_us_p99"], r["stream_gbit"]))


if __name__ == "__main__":
    main()
