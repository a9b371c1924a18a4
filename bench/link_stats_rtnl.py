#!/usr/bin/env python3
"""Which dump of every link's counters waits for RTNL (issue 16's slow scrapes), and what each
costs. Makes two network namespaces of its own and removes them at the end:

    python3 bench/link_stats_rtnl.py [--bridges 500 --taps 2000 --seconds 4]

"links": B bridges and T taps (each tap enslaved to a bridge, IPv6 off, as bench/metrics.sh
builds them): the links whose counters are read. "holder": a thread in this second namespace
creates a configured bridge (up, one IPv4 address) and deletes it, over and over, as
bench/rtnl_floor.py does: each deletion holds RTNL for milliseconds.

First ("rtnl_held"), each way below runs once while RTNL is held, deterministically, by a
thread of this script in "holder" (RtnlHeld: an ethtool ioctl whose answer the kernel writes,
under RTNL, to a page userfaultfd keeps missing), for at most 0.2 s: did it finish while the
lock was held? Then ("idle", "holder") a reader thread in "links" times each way, one after
the other, round robin, first with the holder process idle, then with it running:

  stats        RTM_GETSTATS, filter IFLA_STATS_LINK_64 (what virtnet read before)
  link         RTM_GETLINK dump, IFLA_EXT_MASK 0 (IFLA_STATS64 among every other attribute)
  link-tun     the same, filtered by IFLA_LINKINFO/IFLA_INFO_KIND "tun" (the taps only)
  link-one     RTM_GETLINK of one link, not a dump (rtnl_held only)
  stats-one    RTM_GETSTATS of one link (rtnl_held only)
  procnetdev   /proc/thread-self/net/dev (text)
  probe        a request that needs RTNL (set the lo link up): the reference for a wait

Prints JSON: whether each way finished while RTNL was held; per phase and way, the times
(wall ms: p50, p99, max, n; Python's parsing of the netlink headers included) and the bytes
of one reading.
"""
import argparse
import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_DELLINK, RTM_GETSTATS = 16, 18, 20, 17, 94
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_EXT_MASK = 18, 1, 29
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nlbench import Rtnl, attr, ifinfomsg  # noqa: E402  (same directory)


def enter(ns):
    """Moves the calling thread into network namespace `ns`."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def dump(sock, kind, body, buf):
    """Sends one dump request; reads it to NLMSG_DONE. Returns the bytes received."""
    header = struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    sock.send(header + body)
    total = 0
    view = memoryview(buf)
    while True:
        n = sock.recv_into(view)
        total += n
        offset = 0
        while offset + 16 <= n:
            length, typ = struct.unpack_from("=IH", buf, offset)
            if typ == NLMSG_DONE:
                return total
            if typ == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", buf, offset + 16)
                if err:
                    raise OSError(-err, os.strerror(-err))
                return total
            offset += (length + 3) & ~3


def ways():
    stats = struct.pack("=BxHII", 0, 0, 0, 1)  # if_stats_msg: filter_mask LINK_64
    link = ifinfomsg() + attr(IFLA_EXT_MASK, struct.pack("=I", 0))
    tun = link + attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"tun\0"))
    return {
        "stats": (RTM_GETSTATS, stats),
        "link": (RTM_GETLINK, link),
        "link-tun": (RTM_GETLINK, tun),
    }


def reader(ns, seconds, out, ready):
    enter(ns)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    probe = Rtnl()
    lo = socket.if_nametoindex("lo")
    buf = bytearray(1 << 20)
    times = {name: [] for name in list(ways()) + ["procnetdev", "probe"]}
    size = {}
    ready.set()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, (kind, body) in ways().items():
            t0 = time.perf_counter()
            size[name] = dump(sock, kind, body, buf)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with open("/proc/thread-self/net/dev", "rb") as f:
            size["procnetdev"] = len(f.read())
        times["procnetdev"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        probe.set_up(lo)
        times["probe"].append(time.perf_counter() - t0)
    for name, ts in times.items():
        ts = sorted(t * 1e3 for t in ts)
        out[name] = {
            "p50": round(ts[len(ts) // 2], 3),
            "p99": round(ts[min(len(ts) - 1, len(ts) * 99 // 100)], 3),
            "max": round(ts[-1], 3),
            "n": len(ts),
            "bytes": size.get(name, 0),
        }


def holder():
    """The holder process's loop (in its own namespace, a process of its own so that it does
    not share the reader's GIL): until stdin closes, configured bridges made and deleted."""
    os.set_blocking(0, False)
    nl, cycles = Rtnl(), 0
    while sys.stdin.buffer.read(1) != b"":
        index = nl.add_bridge("vnhold0")
        nl.set_up(index)
        nl.add_address(index, "10.254.0.1", 24)
        nl.delete(index)
        cycles += 1
    print(cycles)


class RtnlHeld:
    """Holds RTNL for as long as the caller wants, in namespace `ns`: a thread asks for the
    state of `lo`'s link with the ethtool ioctl (ETHTOOL_GLINK), whose answer the kernel writes
    to user memory while it holds RTNL; the answer's second half lies on a page registered
    with userfaultfd and not yet there, so the kernel's write waits (RTNL held) until release()
    closes the userfaultfd. Entered once the fault is reported: RTNL is held then."""

    def __init__(self, ns):
        self.ns = ns

    def __enter__(self):
        import mmap
        self.uffd = libc.syscall(323, os.O_CLOEXEC)  # userfaultfd(2)
        if self.uffd < 0:
            raise OSError(ctypes.get_errno(), "userfaultfd")
        api = (ctypes.c_uint64 * 3)(0xAA, 0, 0)
        if libc.ioctl(self.uffd, 0xC018AA3F, api) != 0:  # UFFDIO_API
            raise OSError(ctypes.get_errno(), "UFFDIO_API")
        self.mem = mmap.mmap(-1, 2 * mmap.PAGESIZE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.mem))
        page2 = base + mmap.PAGESIZE
        reg = (ctypes.c_uint64 * 4)(page2, mmap.PAGESIZE, 1, 0)  # MISSING mode
        if libc.ioctl(self.uffd, 0xC020AA00, reg) != 0:  # UFFDIO_REGISTER
            raise OSError(ctypes.get_errno(), "UFFDIO_REGISTER")
        struct.pack_into("=I", self.mem, mmap.PAGESIZE - 4, 0xA)  # ETHTOOL_GLINK
        self.result = None

        def ask():
            enter(self.ns)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            ifr = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + struct.pack("=Q", page2 - 4) + bytes(16))
            self.result = libc.ioctl(s.fileno(), 0x8946, ifr)  # SIOCETHTOOL
            s.close()

        self.thread = threading.Thread(target=ask)
        self.thread.start()
        msg = os.read(self.uffd, 32)  # struct uffd_msg: the kernel's fault, RTNL held
        assert msg[0] == 0x12, msg  # UFFD_EVENT_PAGEFAULT
        return self

    def __exit__(self, *exc):
        os.close(self.uffd)  # wakes the faulting write (-EFAULT): RTNL released
        self.thread.join()
        del self.mem


def locked(links, hold, wait):
    """Each way once while RTNL is held by RtnlHeld in `hold`: did it finish within `wait` s
    (while RTNL was still held)?"""
    out = {}
    for name in list(ways()) + ["link-one", "stats-one", "procnetdev", "probe"]:
        done = threading.Event()

        def run():
            enter(links)
            if name == "procnetdev":
                with open("/proc/thread-self/net/dev", "rb") as f:
                    f.read()
            elif name == "probe":
                Rtnl().set_up(socket.if_nametoindex("lo"))
            elif name.endswith("-one"):  # one link's, not a dump (the "doit" handlers)
                index = socket.if_nametoindex("lo")
                kind, body = (RTM_GETLINK, ifinfomsg(index)) if name == "link-one" else \
                    (RTM_GETSTATS, struct.pack("=BxHII", 0, 0, index, 1))
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
                sock.bind((0, 0))
                header = struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST, 1, 0)
                sock.send(header + body)
                sock.recv(65536)
            else:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
                sock.bind((0, 0))
                kind, body = ways()[name]
                dump(sock, kind, body, bytearray(1 << 20))
            done.set()

        with RtnlHeld(hold):
            t0 = time.perf_counter()
            t = threading.Thread(target=run)
            t.start()
            finished = done.wait(wait)
            out[name] = {"finished_while_held": finished,
                         "ms": round((time.perf_counter() - t0) * 1e3, 3)}
        t.join()
    return out


def phase(links, seconds, with_holder, hold_ns):
    out, ready = {}, threading.Event()
    r = threading.Thread(target=reader, args=(links, seconds, out, ready))
    r.start()
    ready.wait()
    h = None
    if with_holder:
        h = subprocess.Popen(["ip", "netns", "exec", hold_ns, sys.executable,
                              os.path.abspath(__file__), "--hold"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    r.join()
    if h:
        cycles, _ = h.communicate(b"")  # closes its stdin: it ends its loop
        out["holder_cycles"] = int(cycles or 0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bridges", type=int, default=500)
    p.add_argument("--taps", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hold:
        return holder()
    links, hold = f"vnstl-{os.getpid()}", f"vnsth-{os.getpid()}"
    try:
        for ns in (links, hold):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", links, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        batch = ["link set lo up"]
        batch += [f"link add vbs{b} type bridge" for b in range(args.bridges)]
        for t in range(args.taps):
            batch.append(f"tuntap add dev vts{t} mode tap")
            batch.append(f"link set vts{t} master vbs{t % max(args.bridges, 1)}")
        if args.bridges == 0:
            batch = [c for c in batch if "master" not in c]
        subprocess.run(["ip", "-n", links, "-batch", "-"], input="\n".join(batch).encode(),
                       check=True)
        result = {
            "rtnl_held": locked(links, hold, 0.2),
            "idle": phase(links, args.seconds, False, hold),
            "holder": phase(links, args.seconds, True, hold),
        }
        json.dump(result, sys.stdout, indent=1)
        print()
    finally:
        for ns in (links, hold):
            subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
