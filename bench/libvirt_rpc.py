#!/usr/bin/python3
"""libvirt_rpc: virtnetd as libvirt's network daemon against libvirt 9.0's own network driver,
through the same clients in the same run (issue 13's benchmark).

Both daemons run as bench/netbench.py runs them (each in network, PID and mount namespaces of
its own, removed at exit): libvirtd with only its network driver, and virtnetd serving
libvirt's protocol on <run>/libvirt/virtnetworkd-sock. Measured, interleaved step by step
(ABBA):

  cycle   `virsh net-destroy` + `virsh net-start` of a NAT network (192.168.122.0/24 with
          DHCP), Debian's virsh against each socket: wall time of the pair, spawns included
  floor   two `virsh -c test:///default net-list` (libvirt's in-process test driver, no daemon):
          virsh's own cost, which bounds the first figure's ratio
  cycle-rpc  the same two calls from the Python bindings on an open connection (no virsh
          process, no connection set-up: what the daemon itself takes)
  rpc     the round trip of `virConnectListAllNetworks` from the Python bindings on an open
          connection (what `virsh net-list` asks, without virsh's process): p50/p99
  port    what libvirt's hypervisor daemon asks the network daemon per guest NIC: on an open
          connection, look the network up by name, `virNetworkPortCreateXML`, the port's XML
          (its plug), then at guest stop look the port up by UUID and delete it: p50/p99

Run as root with Debian's /usr/bin/python3 (python3-libvirt), after
`cargo build --release -p virtnetd -p virtnet`:
    /usr/bin/python3 bench/libvirt_rpc.py --cycles 30 --calls 2000 --ports 300 --out FILE.json
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import libvirt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netbench  # noqa: E402  (same directory: the daemons and namespaces)

NETWORK = """<network><name>default</name><forward mode='nat'/>
<bridge name='virbr0' stp='on' delay='0'/>
<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>
<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"""


def port_xml(i):
    return ("<networkport><uuid>%s</uuid><owner><name>vm%d</name><uuid>%s</uuid></owner>"
            "<mac address='52:54:00:%02x:%02x:%02x'/></networkport>"
            % (uuid.uuid4(), i, uuid.uuid4(), (i >> 16) & 255, (i >> 8) & 255, i & 255))


def quantiles(xs):
    xs = sorted(x * 1e3 for x in xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return {"n": len(xs), "p50": q(0.5), "p99": q(0.99), "mean": statistics.fmean(xs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=300)
    ap.add_argument("--out", default="bench/results/libvirt-rpc-%s.json"
                    % time.strftime("%Y-%m-%d", time.gmtime()))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("libvirt_rpc: run as root")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    netbench.sweep_stale()
    tmp = tempfile.mkdtemp(prefix="vnbench.")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for b in ("virtnetd", "virtnet"):  # private copies: a rebuild must not swap them
        shutil.copy2(os.path.join(repo, "target", "release", b), bindir)
    lv = netbench.Libvirt("libvirt", tmp)
    vn = netbench.Virtnet("virtnet", tmp, bindir)
    daemons = [lv, vn]
    result = {"command": "/usr/bin/python3 bench/libvirt_rpc.py " + " ".join(sys.argv[1:]),
              "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                          "load_before": os.getloadavg()}}
    try:
        for d in daemons:
            d.start()
        vn.uri = "network+unix:///system?socket=" + os.path.join(vn.dir, "run", "libvirt",
                                                                 "virtnetworkd-sock")
        xml = os.path.join(tmp, "default.xml")
        with open(xml, "w") as f:
            f.write(NETWORK)
        virsh = lambda d, *a: ["virsh", "-q", "-c", d.uri] + list(a)  # noqa: E731
        for d in daemons:
            netbench.timed(virsh(d, "net-define", xml))
            netbench.timed(virsh(d, "net-start", "default"))
        cycle = {d.label: [] for d in daemons}
        netbench.log("cycle: %d x net-destroy + net-start" % args.cycles)
        for i in range(args.cycles):
            for d in netbench.interleaved(daemons, i):
                t = netbench.timed(virsh(d, "net-destroy", "default"))
                t += netbench.timed(virsh(d, "net-start", "default"))
                cycle[d.label].append(t)
        # virsh's own cost, with libvirt's in-process test driver (no daemon at all): the
        # floor of the virsh figures, and so the ceiling of their ratio.
        floor = []
        for i in range(args.cycles):
            t = netbench.timed(["virsh", "-q", "-c", "test:///default", "net-list", "--all"])
            t += netbench.timed(["virsh", "-q", "-c", "test:///default", "net-list", "--all"])
            floor.append(t)
        result["virsh_floor_ms"] = quantiles(floor)
        conns = {d.label: libvirt.open(d.uri) for d in daemons}
        rpc = {d.label: [] for d in daemons}
        netbench.log("rpc: %d x listAllNetworks" % args.calls)
        for i in range(args.calls):
            for d in netbench.interleaved(daemons, i):
                t0 = time.perf_counter()
                conns[d.label].listAllNetworks(0)
                rpc[d.label].append(time.perf_counter() - t0)
        cycle_rpc = {d.label: [] for d in daemons}
        netbench.log("cycle-rpc: %d x destroy + create on an open connection" % args.cycles)
        for i in range(args.cycles):
            for d in netbench.interleaved(daemons, i):
                net = conns[d.label].networkLookupByName("default")
                t0 = time.perf_counter()
                net.destroy()
                net.create()
                cycle_rpc[d.label].append(time.perf_counter() - t0)
        port = {d.label: [] for d in daemons}
        netbench.log("port: %d x create + XML + lookup + delete" % args.ports)
        for i in range(args.ports):
            for d in netbench.interleaved(daemons, i):
                c = conns[d.label]
                t0 = time.perf_counter()
                net = c.networkLookupByName("default")
                p = net.portCreateXML(port_xml(i), 0)
                p.XMLDesc(0)
                net.portLookupByUUID(p.UUID()).delete(0)
                port[d.label].append(time.perf_counter() - t0)
        for c in conns.values():
            c.close()
        result["cycle_ms"] = {k: quantiles(v) for k, v in cycle.items()}
        result["cycle_rpc_ms"] = {k: quantiles(v) for k, v in cycle_rpc.items()}
        result["rpc_ms"] = {k: quantiles(v) for k, v in rpc.items()}
        result["port_ms"] = {k: quantiles(v) for k, v in port.items()}
        result["samples"] = {"cycle": cycle, "cycle_rpc": cycle_rpc, "rpc": rpc, "port": port}
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("| ms, p50 / p99 | libvirt 9.0 network driver | virtnetd | libvirt ÷ virtnet (p50) |")
    print("|---|---|---|---|")
    for key, label in (("cycle_ms", "`virsh net-destroy` + `net-start`"),
                       ("cycle_rpc_ms", "`virNetworkDestroy` + `virNetworkCreate`, open connection"),
                       ("rpc_ms", "`virConnectListAllNetworks` round trip"),
                       ("port_ms", "port create + XML + lookup + delete")):
        a, b = result[key]["libvirt"], result[key]["virtnet"]
        print("| %s | %.2f / %.2f | %.2f / %.2f | %.1f× |"
              % (label, a["p50"], a["p99"], b["p50"], b["p99"], a["p50"] / b["p50"]))
    f = result["virsh_floor_ms"]
    print("| two `virsh` commands with no daemon (test:///default), the floor of the first row "
          "| %.2f / %.2f | | ceiling of the first row's ratio: %.1f× |"
          % (f["p50"], f["p99"], result["cycle_ms"]["libvirt"]["p50"] / f["p50"]))
    print("\nload average before: %.2f %.2f %.2f; samples in %s"
          % (tuple(result["machine"]["load_before"]) + (args.out,)))


if __name__ == "__main__":
    main()
