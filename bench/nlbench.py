#!/usr/bin/env python3
"""The kernel's own cost of a bridge, without any process spawn: creates and deletes bridges
over one rtnetlink socket and times each request (send until the kernel's ACK) with
time.perf_counter. Run it inside a network namespace of your own:

    ip netns exec NS python3 bench/nlbench.py --cycles 200

Prints JSON: {"bare": {"add": [s...], "del": [s...]}, "configured": {...}}, where "bare" is a
bridge that is created and deleted, and "configured" one that is also set up with an IPv4
address before the (timed) delete, as a started network's bridge is. Times are in seconds.
"""
import argparse
import json
import os
import socket
import struct
import sys
import time

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR = 16, 17, 20
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1


def attr(kind, data):
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def ifinfomsg(index=0, flags=0, change=0):
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


class Rtnl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def request(self, msg_type, flags, payload):
        self.seq += 1
        header = struct.pack("=IHHII", 16 + len(payload), msg_type,
                             NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        self.sock.send(header + payload)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (error,) = struct.unpack_from("=i", data, offset + 16)
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    return
                offset += (length + 3) & ~3

    def add_bridge(self, name):
        linkinfo = attr(IFLA_INFO_KIND, b"bridge\0")
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     ifinfomsg() + attr(IFLA_IFNAME, name.encode() + b"\0")
                     + attr(IFLA_LINKINFO, linkinfo))
        return socket.if_nametoindex(name)

    def set_up(self, index):
        self.request(RTM_NEWLINK, 0, ifinfomsg(index, IFF_UP, IFF_UP))

    def add_address(self, index, address, prefix):
        raw = socket.inet_aton(address)
        msg = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, 0, index)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                     msg + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw))

    def delete(self, index):
        self.request(RTM_DELLINK, 0, ifinfomsg(index))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--name", default="vnbk0")
    args = parser.parse_args()
    nl = Rtnl()
    out = {"bare": {"add": [], "del": []}, "configured": {"add": [], "del": []}}
    for _ in range(args.cycles):
        for variant in ("bare", "configured"):
            t0 = time.perf_counter()
            index = nl.add_bridge(args.name)
            t1 = time.perf_counter()
            if variant == "configured":
                nl.set_up(index)
                nl.add_address(index, "10.254.0.1", 24)
            t2 = time.perf_counter()
            nl.delete(index)
            t3 = time.perf_counter()
            out[variant]["add"].append(t1 - t0)
            out[variant]["del"].append(t3 - t2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
