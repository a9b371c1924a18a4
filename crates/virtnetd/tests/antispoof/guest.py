#!/usr/bin/env python3
"""A test guest for anti-spoofing tests, standing for QEMU and a hostile guest kernel.

  relay TAP NETNS_PATH     attach to the host's tap TAP (as QEMU does), then create the tap
                           `eth0` in the namespace NETNS_PATH and copy frames both ways: the
                           namespace's own kernel is the guest's stack (DHCP, ping, TCP).
  sniff IFACE              print the name of every test marker seen on IFACE, one a line.
  udp IFACE SRC_MAC SRC_IP DST_MAC DST_IP SPORT DPORT NAME
                           send one IPv4/UDP frame carrying marker NAME, with any source.
  arp IFACE OP ETH_SRC SENDER_MAC SENDER_IP TARGET_IP NAME
                           send one ARP frame (OP 1 request, 2 reply; broadcast), marker in
                           its padding.
  ra IFACE SRC_MAC NAME    send one ICMPv6 router advertisement to ff02::1, marker in it.
Only python3's standard library: raw AF_PACKET sockets, /dev/net/tun, setns through libc.
"""
import ctypes
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MARK = b"VNSPOOF:"


def tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def relay(host_tap, ns_path):
    a = tap(host_tap)
    libc = ctypes.CDLL(None, use_errno=True)
    nsfd = os.open(ns_path, os.O_RDONLY)
    if libc.setns(nsfd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    b = tap("eth0")
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([a, b], [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            try:
                os.write(b if fd == a else a, data)
            except OSError:
                pass  # the other side is down: a frame lost, as on a wire


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ip4(text):
    return socket.inet_aton(text)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def marker(name):
    return MARK + name.encode() + b";"


def send(iface, frame):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    if len(frame) < 60:
        frame += b"\0" * (60 - len(frame))
    s.send(frame)


def udp(iface, src_mac, src_ip, dst_mac, dst_ip, sport, dport, name):
    payload = marker(name)
    u = struct.pack("!HHHH", int(sport), int(dport), 8 + len(payload), 0) + payload
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, ip4(src_ip), ip4(dst_ip))
    h = h[:10] + struct.pack("!H", checksum(h)) + h[12:]
    send(iface, mac(dst_mac) + mac(src_mac) + b"\x08\x00" + h + u)


def arp(iface, op, eth_src, sender_mac, sender_ip, target_ip, name):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, int(op))
    body += mac(sender_mac) + ip4(sender_ip) + b"\0" * 6 + ip4(target_ip)
    send(iface, b"\xff" * 6 + mac(eth_src) + b"\x08\x06" + body + marker(name))


def ra(iface, src_mac, name):
    m = mac(src_mac)
    lladdr = bytes([0xFE, 0x80] + [0] * 6) + bytes([m[0] ^ 2, m[1], m[2], 0xFF, 0xFE, m[3], m[4], m[5]])
    dst = bytes([0xFF, 0x02] + [0] * 13 + [1])
    icmp = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + marker(name)
    pseudo = lladdr + dst + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    h = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + lladdr + dst
    send(iface, b"\x33\x33\x00\x00\x00\x01" + m + b"\x86\xdd" + h + icmp)


def sniff(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    print("ready", flush=True)
    while True:
        data = s.recv(65536)
        at = data.find(MARK)
        if at >= 0:
            end = data.find(b";", at)
            print(data[at + len(MARK):end].decode(errors="replace"), flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"relay": relay, "sniff": sniff, "udp": udp, "arp": arp, "ra": ra}[cmd](*args)


if __name__ == "__main__":
    main()
