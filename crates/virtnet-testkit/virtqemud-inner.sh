#!/usr/bin/env bash
# Runs a daemon of libvirt 9.0 (PROGRAM: virtqemud or virtnetworkd, built by
# scripts/build-libvirt.sh) isolated from the host, as bench/libvirtd-inner.sh runs libvirtd.
# crates/virtnet-testkit/src/virtqemud.rs starts it as
#   ip netns exec NS unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
#     bash virtqemud-inner.sh SCRATCH RUN_LIBVIRT LIBVIRT_DIR PID1 PROGRAM
# so it has the test's network namespace (the bridges and taps live there), its own PID
# namespace (bench/pid1.sh is PID 1: it reaps the QEMU processes libvirt daemonizes, and every
# process in it dies with it) and its own mount namespace in which:
#   /run           is an empty tmpfs (no host daemon's socket, no D-Bus, no machined);
#   /run/libvirt   is RUN_LIBVIRT, the test's directory: virtqemud serves virtqemud-sock there and
#                  looks for the network daemon at /run/libvirt/virtnetworkd-sock, as on a host
#                  (where virtnetworkd, or virtnetd, serves it);
#   /etc/libvirt   is SCRATCH/etc, holding only the configuration written below;
#   /var/lib, /var/cache, /var/log  are overlays whose upper layers are in SCRATCH: they look like
#                  the host's (the guest image and libvirt's build in /var/cache stay readable)
#                  but nothing written there reaches it.
set -euo pipefail
T=${1:?usage: virtqemud-inner.sh SCRATCH RUN_LIBVIRT LIBVIRT_DIR PID1 PROGRAM}
R=${2:?run dir}
L=${3:?libvirt dir}
PID1=${4:?pid1.sh}
PROG=${5:?program}

# /etc/libvirt (libvirt-clients ships it) is the mount point of the private configuration.
[ -d /etc/libvirt ] || { echo "virtqemud-inner: /etc/libvirt is missing (install libvirt-clients)" >&2; exit 1; }
mkdir -p "$T/etc/qemu" "$T/log" "$T/rl"
# RUN_LIBVIRT may itself be under /run: pin it before /run is replaced.
mount --bind "$R" "$T/rl"
for d in var/lib var/cache var/log; do
  k=${d//\//_}
  mkdir -p "$T/ovl/$k.up" "$T/ovl/$k.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ovl/$k.up,workdir=$T/ovl/$k.work" "/$d"
done
mount -t tmpfs -o mode=0755 vnt-virtqemud-run /run
mkdir -p /run/libvirt
mount --move "$T/rl" /run/libvirt
mount --bind "$T/etc" /etc/libvirt

cat >"/etc/libvirt/$PROG.conf" <<EOC
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "${VIRTQEMUD_LOG_LEVEL:-3}:file:$T/log/$PROG.log"
EOC
# Tests run as root in a private mount namespace: QEMU runs as root, libvirt changes no file's
# owner or label, uses no cgroups (no systemd/machined is reachable from here) and no mount
# namespace of its own per guest, and QEMU's stdout/stderr go to a plain file instead of virtlogd.
cat >/etc/libvirt/qemu.conf <<EOC
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOC
# The client library's configuration (virtqemud reaches network:///system through it): talk to
# the per-driver daemon's socket directly, as a split-daemon host does.
cat >/etc/libvirt/libvirt.conf <<EOC
remote_mode = "direct"
EOC

ip link set lo up
# pid1.sh is PID 1 (it reaps the QEMU and dnsmasq processes libvirt daemonizes). The daemon runs
# under a loop that starts it again when LibvirtDaemon::restart_daemon asked for it (it creates
# SCRATCH/restart, then sends the daemon SIGTERM): the guests' QEMU keep running meanwhile, as on
# a host where systemd restarts the daemon, and the new daemon reconnects to them.
exec bash "$PID1" bash -c 'while "$1"; [ -e "$2" ]; do rm -f "$2"; done' supervise \
  "$L/sbin/$PROG" "$T/restart"
