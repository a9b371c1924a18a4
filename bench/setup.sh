#!/usr/bin/env bash
# Installs what the network benchmark needs on Debian 12 (run as root): libvirt 9 (monolithic
# libvirtd with its network driver, virsh), dnsmasq, iptables, firewalld (for the coexistence
# tests), python3. Idempotent, non-interactive,
# and starts no service: a policy-rc.d that exits 101 is in place for the install (the host's own one
# is kept if it already exists), and any libvirtd/virtlogd/dnsmasq the install started anyway is
# stopped by PID.
set -euo pipefail

need=()
command -v libvirtd >/dev/null || [ -x /usr/sbin/libvirtd ] || need+=(libvirt-daemon)
command -v virsh >/dev/null || need+=(libvirt-clients)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/sbin/iptables ] || need+=(iptables)
# The coexistence tests run a real firewalld in a test namespace, on a private bus: installed
# here, never started as a service (policy-rc.d below; stopped by PID if it started anyway).
[ -x /usr/sbin/firewalld ] || need+=(firewalld)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
[ ${#need[@]} -eq 0 ] && exit 0

echo "bench/setup: installing ${need[*]}" >&2
daemons() { ps -eo pid=,comm= | awk '$2 ~ /^(libvirtd|virtlogd|virtlockd|dnsmasq|virtnetworkd|firewalld)$/ {print $1}'; }
before=$(daemons)
prc=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$prc" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$prc"
  chmod 0755 "$prc"
  ours=1
fi
trap '[ "$ours" = 1 ] && rm -f "$prc"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: no qemu, lvm2, xen/vbox/lxc drivers; libvirt-daemon-system (which adds
# the systemd units, users and the default network) is deliberately not installed.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# Anything the install started that was not running before is ours to stop.
after=$(daemons)
for pid in $after; do
  if ! grep -qx "$pid" <<<"$before"; then
    echo "bench/setup: stopping $(cat /proc/$pid/comm 2>/dev/null) (pid $pid) started by the install" >&2
    kill "$pid" 2>/dev/null || true
  fi
done
