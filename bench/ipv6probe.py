#!/usr/bin/env python3
"""ipv6probe: the guest side of bench/ipv6.py, run inside a guest network namespace
(`ip netns exec G python3 bench/ipv6probe.py MODE ...`); prints one JSON object on stdout.

Modes:
  rs      router solicitation -> router advertisement latency: a raw ICMPv6 socket on one
          interface sends RS to ff02::2 (hop limit 255, source link-layer option) and times the
          first RA that arrives on that interface after it; --samples N, --gap-ms between samples.
  slaac   a new guest's first RS -> usable SLAAC address: for each interface given (down, its
          peer already a port of the bridge), sets it up and timestamps, from one packet socket,
          the kernel's own first outgoing RS and the first RA coming in, and, from rtnetlink,
          the address in --prefix appearing without the tentative flag (the namespace has
          accept_dad=0 and router_solicitation_delay=0, so the kernel solicits at once).
  dhcp6   DHCPv6 SOLICIT -> ADVERTISE -> REQUEST -> REPLY of never-seen DUIDs (DUID-LL), one
          client at a time on one interface, each lease RELEASEd afterwards; --samples N.
  load    DHCPv6 leases per second: --clients-per-port DUIDs on each of the interfaces given,
          all started at once, full four-message exchange each, retransmitting after 1 s
          (RFC 8415's SOL_TIMEOUT/REQ_TIMEOUT), leases/s = leases / time to the last REPLY.
Timestamps are time.perf_counter_ns() in this process around send and receive.
"""
import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

ICMP6_FILTER = 1
SO_BINDTODEVICE = 25
ETH_P_IPV6 = 0x86DD
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR = 20
IFA_ADDRESS, IFA_FLAGS = 1, 8
IFA_F_TENTATIVE = 0x40

# DHCPv6 (RFC 8415)
SOLICIT, ADVERTISE, REQUEST, REPLY, RELEASE = 1, 2, 3, 7, 8
OPT_CLIENTID, OPT_SERVERID, OPT_IA_NA, OPT_IAADDR, OPT_ORO, OPT_ELAPSED = 1, 2, 3, 5, 6, 8
OPT_STATUS = 13
ALL_DHCP = "ff02::1:2"


def now():
    return time.perf_counter_ns()


def ifindex(name):
    return socket.if_nametoindex(name)


def mac_of(name):
    with open("/sys/class/net/%s/address" % name) as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def link_local(name):
    """The interface's fe80:: address from /proc/net/if_inet6 (scope 0x20), or None."""
    with open("/proc/net/if_inet6") as f:
        for line in f:
            addr, _idx, _plen, scope, _flags, dev = line.split()
            if dev == name and scope == "20":
                return socket.inet_ntop(socket.AF_INET6, bytes.fromhex(addr))
    return None


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = max(1, min(len(v), -(-len(v) * p // 100)))
    return v[int(k) - 1]


def summary(ms):
    return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99),
            "min": min(ms) if ms else None, "max": max(ms) if ms else None}


# --- RS -> RA -------------------------------------------------------------------------------

def rs_socket(iface):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
    # The ICMPv6 filter: a set bit blocks that type; pass router advertisements (134) only.
    words = [0xFFFFFFFF] * 8
    words[134 >> 5] &= ~(1 << (134 & 31)) & 0xFFFFFFFF
    s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex(iface))
    return s


def drain(s):
    while select.select([s], [], [], 0)[0]:
        try:
            s.recv(65535, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break


def mode_rs(a):
    s = rs_socket(a.iface)
    # type 133, code 0, checksum (the kernel fills it in), reserved; source link-layer option
    rs = struct.pack("!BBHI", 133, 0, 0, 0) + struct.pack("!BB", 1, 1) + mac_of(a.iface)
    dest = ("ff02::2", 0, 0, ifindex(a.iface))
    got, lost = [], 0
    for _ in range(a.samples):
        drain(s)
        t0 = now()
        s.sendto(rs, dest)
        deadline = t0 + int(a.timeout_ms * 1e6)
        ok = False
        while True:
            left = (deadline - now()) / 1e9
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            data = s.recv(65535)
            if data and data[0] == 134:
                got.append((now() - t0) / 1e6)
                ok = True
                break
        lost += 0 if ok else 1
        time.sleep(a.gap_ms / 1000)
    print(json.dumps({"rs_to_ra_ms": summary(got), "lost": lost, "samples_ms": got}))


# --- first RS -> SLAAC address ----------------------------------------------------------------

def nl_addr_events(data, prefix):
    """(ifindex, usable) for each RTM_NEWADDR in data whose address is in prefix (bytes, /64)."""
    out = []
    off = 0
    while off + 16 <= len(data):
        length, typ = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        if typ == RTM_NEWADDR:
            fam, _plen, flags, _scope, idx = struct.unpack_from("=BBBBI", data, off + 16)
            addr, xflags = None, flags
            a = off + 24
            while a + 4 <= off + length:
                alen, atyp = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                val = data[a + 4:a + alen]
                if atyp == IFA_ADDRESS:
                    addr = val
                elif atyp == IFA_FLAGS and len(val) >= 4:
                    xflags = struct.unpack("=I", val[:4])[0]
                a += (alen + 3) & ~3
            if fam == socket.AF_INET6 and addr and addr[:8] == prefix:
                out.append((idx, not (xflags & IFA_F_TENTATIVE)))
        off += (length + 3) & ~3
    return out


def packet_time_ns(ancdata):
    """The kernel's receive timestamp (SCM_TIMESTAMPNS, CLOCK_REALTIME) of a packet, or now."""
    for level, typ, data in ancdata:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("=qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


def mode_slaac(a):
    """Times in CLOCK_REALTIME ns: packets by their kernel timestamp, the address event when
    read (this loop runs while the kernel works: `ip link set up` is not waited for)."""
    prefix = socket.inet_pton(socket.AF_INET6, a.prefix)[:8]
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    nl.bind((0, RTMGRP_IPV6_IFADDR))
    nl.setblocking(False)
    # ETH_P_ALL: a packet socket bound to one protocol sees only incoming frames, and the
    # kernel's own RS is outgoing.
    pk = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    pk.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    pk.setblocking(False)
    rows, lost, rows_lost = [], 0, []
    for iface in a.ifaces:
        idx = ifindex(iface)
        t_up = time.time_ns()
        up = subprocess.Popen(["ip", "link", "set", iface, "up"])
        t_rs = t_ra = t_addr = None
        deadline = time.monotonic() + a.timeout_ms / 1000
        while (t_addr is None or t_rs is None) and time.monotonic() < deadline:
            select.select([nl, pk], [], [], 0.05)
            while True:  # every queued packet, oldest first
                try:
                    data, anc, _flags, addr = pk.recvmsg(65535, 256)
                except BlockingIOError:
                    break
                # addr: (ifname, proto, pkttype, ...); data: the IPv6 packet (SOCK_DGRAM).
                # Only the guest solicits and only the router advertises on this link: the
                # ICMPv6 type alone tells the direction.
                if (addr[0] == iface and addr[1] == ETH_P_IPV6 and len(data) > 40
                        and data[6] == 58):
                    if data[40] == 133 and t_rs is None:
                        t_rs = packet_time_ns(anc)
                    elif data[40] == 134 and t_ra is None:
                        t_ra = packet_time_ns(anc)
            while True:
                try:
                    raw = nl.recv(65535)
                except BlockingIOError:
                    break
                t = time.time_ns()
                for ev_idx, usable in nl_addr_events(raw, prefix):
                    if ev_idx == idx and usable and t_addr is None:
                        t_addr = t
        up.wait()
        if t_rs is None or t_addr is None:
            lost += 1
            rows_lost.append({"iface": iface, "rs_seen": t_rs is not None,
                              "ra_seen": t_ra is not None, "addr_seen": t_addr is not None})
            continue
        rows.append({"up_to_rs_ms": (t_rs - t_up) / 1e6,
                     "rs_to_ra_ms": None if t_ra is None else (t_ra - t_rs) / 1e6,
                     "rs_to_addr_ms": (t_addr - t_rs) / 1e6})
        time.sleep(a.gap_ms / 1000)

    def col(k):
        return [r[k] for r in rows if r[k] is not None]
    print(json.dumps({"rs_to_addr_ms": summary(col("rs_to_addr_ms")),
                      "rs_to_ra_ms": summary(col("rs_to_ra_ms")),
                      "up_to_rs_ms": summary(col("up_to_rs_ms")), "lost": lost,
                      "lost_samples": rows_lost, "samples": rows}))


# --- DHCPv6 ----------------------------------------------------------------------------------

def opt(code, body):
    return struct.pack("!HH", code, len(body)) + body


def parse_opts(data):
    out = {}
    off = 0
    while off + 4 <= len(data):
        code, ln = struct.unpack_from("!HH", data, off)
        out.setdefault(code, data[off + 4:off + 4 + ln])
        off += 4 + ln
    return out


class Client:
    """One DHCPv6 client (a DUID-LL and an IA_NA) of a port's socket."""

    def __init__(self, port, n, seed):
        mac = struct.pack("!BBBBBB", 0x52, 0x54, seed & 0xFF, (n >> 16) & 0xFF,
                          (n >> 8) & 0xFF, n & 0xFF)
        self.duid = struct.pack("!HH", 3, 1) + mac
        self.iaid = n & 0xFFFFFFFF
        self.port = port
        self.xid = os.urandom(3)
        self.state = SOLICIT
        self.server = None
        self.ia = None
        self.t_start = self.t_adv = self.t_req = self.t_reply = None
        self.sent_at = None
        self.retransmits = 0

    def message(self, kind):
        body = opt(OPT_CLIENTID, self.duid) + opt(OPT_ELAPSED, b"\0\0")
        if kind == SOLICIT:
            body += opt(OPT_IA_NA, struct.pack("!III", self.iaid, 0, 0))
            body += opt(OPT_ORO, struct.pack("!H", 23))
        else:
            body += opt(OPT_SERVERID, self.server) + opt(OPT_IA_NA, self.ia)
            if kind == REQUEST:
                body += opt(OPT_ORO, struct.pack("!H", 23))
        return bytes([kind]) + self.xid + body

    def send(self, kind):
        self.port.sock.sendto(self.message(kind), self.port.dest)
        self.sent_at = now()


class Port:
    """One guest interface: a UDP socket on [its link-local]:546, bound to the device."""

    def __init__(self, iface):
        idx = ifindex(iface)
        ll = link_local(iface)
        if ll is None:
            raise SystemExit("ipv6probe: %s has no link-local address" % iface)
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((ll, 546, 0, idx))
        s.setblocking(False)
        self.sock = s
        self.dest = (ALL_DHCP, 547, 0, idx)
        self.clients = {}


def has_address(ia_body):
    """True when an IA_NA body (iaid, t1, t2, options) holds an IAADDR and no error status."""
    opts = parse_opts(ia_body[12:])
    st = opts.get(OPT_STATUS)
    if st and struct.unpack("!H", st[:2])[0] != 0:
        return False
    return OPT_IAADDR in opts


def run_clients(ports, clients, timeout_ms, retransmit_ms=1000):
    """Drives every client to a REPLY with an address (or the timeout); returns when all are done."""
    by_fd = {p.sock.fileno(): p for p in ports}
    poll = select.poll()
    for fd in by_fd:
        poll.register(fd, select.POLLIN)
    t0 = now()
    for c in clients:
        c.t_start = now()
        c.send(SOLICIT)
    pending = set(id(c) for c in clients)
    byid = {id(c): c for c in clients}
    deadline = t0 + int(timeout_ms * 1e6)
    naks = 0
    while pending and now() < deadline:
        for fd, _ in poll.poll(50):
            p = by_fd[fd]
            while True:
                try:
                    data = p.sock.recv(65535)
                except BlockingIOError:
                    break
                t = now()
                if len(data) < 4:
                    continue
                c = p.clients.get(data[1:4])
                if c is None:
                    continue
                opts = parse_opts(data[4:])
                if data[0] == ADVERTISE and c.state == SOLICIT:
                    ia = opts.get(OPT_IA_NA)
                    if OPT_SERVERID not in opts or not ia or not has_address(ia):
                        continue
                    c.t_adv, c.server, c.ia = t, opts[OPT_SERVERID], ia
                    c.state = REQUEST
                    c.t_req = now()
                    c.send(REQUEST)
                elif data[0] == REPLY and c.state == REQUEST:
                    ia = opts.get(OPT_IA_NA)
                    if not ia or not has_address(ia):
                        naks += 1
                        continue
                    c.t_reply, c.ia, c.state = t, ia, REPLY
                    pending.discard(id(c))
        t = now()
        for cid in list(pending):
            c = byid[cid]
            if (t - c.sent_at) / 1e6 >= retransmit_ms:
                c.retransmits += 1
                c.send(c.state)
    return t0, naks


def release_all(ports, clients, wait_ms=500, rate=0):
    """RELEASEs every lease; `rate` > 0 paces them (messages per second), so that a server's
    rate limit does not drop them and leave the bindings behind."""
    for c in clients:
        if c.state == REPLY:
            c.xid = os.urandom(3)
            c.port.clients[c.xid] = c
            c.send(RELEASE)
            if rate > 0:
                time.sleep(1 / rate)
    time.sleep(wait_ms / 1000)
    for p in ports:
        while True:
            try:
                p.sock.recv(65535)
            except BlockingIOError:
                break


def make_clients(ports, per_port, seed):
    clients = []
    n = 0
    for p in ports:
        for _ in range(per_port):
            c = Client(p, n, seed)
            p.clients[c.xid] = c
            clients.append(c)
            n += 1
    return clients


def mode_dhcp6(a):
    port = Port(a.iface)
    s2r, s2a, r2r, fails, retrans = [], [], [], 0, 0
    for n in range(a.samples):
        port.clients = {}
        c = make_clients([port], 1, a.seed)[0]
        c.iaid = n
        c.duid = c.duid[:-3] + struct.pack("!I", n)[1:]
        run_clients([port], [c], a.timeout_ms)
        retrans += c.retransmits
        if c.t_reply is None:
            fails += 1
        else:
            s2r.append((c.t_reply - c.t_start) / 1e6)
            s2a.append((c.t_adv - c.t_start) / 1e6)
            r2r.append((c.t_reply - c.t_req) / 1e6)
        release_all([port], [c], a.gap_ms)
    print(json.dumps({"solicit_to_reply_ms": summary(s2r), "solicit_to_advertise_ms": summary(s2a),
                      "request_to_reply_ms": summary(r2r), "failed": fails,
                      "retransmits": retrans, "samples_ms": s2r}))


def mode_load(a):
    ports = [Port(i) for i in a.ifaces]
    clients = make_clients(ports, a.clients_per_port, a.seed)
    t0, naks = run_clients(ports, clients, a.timeout_ms)
    done = [c for c in clients if c.t_reply is not None]
    last = max((c.t_reply for c in done), default=t0)
    secs = (last - t0) / 1e9
    lat = [(c.t_reply - c.t_start) / 1e6 for c in done]
    if not a.keep:
        release_all(ports, clients, 500, a.release_rate)
    print(json.dumps({"clients": len(clients), "leases": len(done),
                      "failed": len(clients) - len(done), "naks": naks,
                      "retransmits": sum(c.retransmits for c in clients),
                      "seconds": secs, "leases_per_s": len(done) / secs if secs > 0 else None,
                      "solicit_to_reply_ms": summary(lat)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["rs", "slaac", "dhcp6", "load"])
    p.add_argument("--iface")
    p.add_argument("--ifaces", type=lambda s: s.split(","), default=[])
    p.add_argument("--prefix", default="::")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--gap-ms", type=float, default=100)
    p.add_argument("--timeout-ms", type=float, default=2000)
    p.add_argument("--clients-per-port", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--release-rate", type=float, default=100,
                   help="RELEASEs per second after a load pass (0: all at once)")
    p.add_argument("--keep", action="store_true",
                   help="load: keep the leases (no RELEASE), so a later run with the same "
                        "--seed, ports and --clients-per-port comes back as known clients")
    a = p.parse_args()
    {"rs": mode_rs, "slaac": mode_slaac, "dhcp6": mode_dhcp6, "load": mode_load}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
