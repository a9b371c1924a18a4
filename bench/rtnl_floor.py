#!/usr/bin/env python3
"""The floor of bench/concurrency.sh: how long the kernel holds the RTNL lock for one link
deletion. Run it inside a network namespace of your own:

    ip netns exec NS python3 bench/rtnl_floor.py --cycles 15

Each cycle creates a configured bridge (up, one IPv4 address, as a started network's bridge)
and deletes it over one rtnetlink socket, while a second thread sends a cheap request that
needs RTNL (set a probe bridge up, which it already is) back to back over another socket. The
longest a probe request waited during the deletion is the time RTNL was held for it (plus one
probe's own cost, measured idle and printed too). Prints JSON, times in milliseconds:
{"delete_ms": [...], "rtnl_hold_ms": [...], "probe_idle_ms": [...]}.
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nlbench import Rtnl  # noqa: E402  (same directory)


def probe_loop(nl, index, stop, out):
    while not stop.is_set():
        t0 = time.perf_counter()
        nl.set_up(index)
        out.append(time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=15)
    args = parser.parse_args()
    nl, probe_nl = Rtnl(), Rtnl()
    probe = probe_nl.add_bridge("vnprobe0")
    probe_nl.set_up(probe)
    idle = []
    for _ in range(200):
        t0 = time.perf_counter()
        probe_nl.set_up(probe)
        idle.append(time.perf_counter() - t0)
    out = {"delete_ms": [], "rtnl_hold_ms": [], "probe_idle_ms": sorted(x * 1e3 for x in idle)}
    for _ in range(args.cycles):
        index = nl.add_bridge("vnfloor0")
        nl.set_up(index)
        nl.add_address(index, "10.254.0.1", 24)
        stalls, stop = [], threading.Event()
        t = threading.Thread(target=probe_loop, args=(probe_nl, probe, stop, stalls))
        t.start()
        time.sleep(0.005)
        t0 = time.perf_counter()
        nl.delete(index)
        out["delete_ms"].append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.005)
        stop.set()
        t.join()
        out["rtnl_hold_ms"].append(max(stalls) * 1e3 if stalls else 0.0)
    nl.delete(probe)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
