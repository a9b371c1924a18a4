#!/usr/bin/env bash
# Runs libvirtd 9 (network driver only) isolated from the host. netbench.py starts it as
#   ip netns exec NS unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
#     bash bench/libvirtd-inner.sh DIR
# so it has its own network namespace (bridges, iptables rules and dnsmasq live there), its own
# PID namespace (this script is PID 1: it reaps the dnsmasq processes libvirt daemonizes, and
# every process in it dies with it) and its own mount namespace, in which libvirt's
# directories are overlays whose upper layers are on a tmpfs that exists only in that namespace:
# /etc/libvirt, /var/lib, /var/cache and /var/log look like the host's but nothing written there
# reaches it, and /run is an empty tmpfs. Only DIR/sock (the sockets) and DIR/log are on the host.
set -euo pipefail
T=${1:?usage: libvirtd-inner.sh DIR}
mkdir -p "$T/ovl" "$T/sock" "$T/log"
mount -t tmpfs -o mode=0755 vnbench "$T/ovl"
for d in etc/libvirt var/lib var/cache var/log; do
  k=${d//\//_}
  mkdir -p "$T/ovl/$k.up" "$T/ovl/$k.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ovl/$k.up,workdir=$T/ovl/$k.work" "/$d"
done
mount -t tmpfs -o mode=0755 vnbench-run /run
# Only the network driver is loaded, as in a modular deployment's virtnetworkd (Debian 12's
# libvirt-daemon ships the monolithic libvirtd only). The QEMU driver would also refuse to
# start without the libvirt-qemu user, which only libvirt-daemon-system creates.
D=/usr/lib/x86_64-linux-gnu/libvirt/connection-driver
mkdir -p "$T/ovl/drivers"
cp "$D/libvirt_driver_network.so" "$T/ovl/drivers/"
mount --bind "$T/ovl/drivers" "$D"
cat >/etc/libvirt/libvirtd.conf <<EOC
unix_sock_dir = "$T/sock"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$T/log/libvirtd.log"
EOC
ip link set lo up
# This script is PID 1 of the PID namespace: pid1.sh runs libvirtd and reaps what it daemonizes.
exec bash "$(dirname "$0")/pid1.sh" /usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf
