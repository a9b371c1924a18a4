#!/usr/bin/env bash
# Installs what building virtnet needs on Debian 12 (run as root). Idempotent and quiet when
# everything is already there.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
# virtnetd talks to nftables in process through libnftables (linked at build time).
[ -e /usr/include/nftables/libnftables.h ] || need_apt+=(libnftables-dev)
command -v nft >/dev/null || need_apt+=(nftables)
# Test guests use real DHCP clients and busybox tools; the upstream HTTP server is python3.
command -v busybox >/dev/null || need_apt+=(busybox)
command -v dhclient >/dev/null || need_apt+=(isc-dhcp-client)
command -v python3 >/dev/null || need_apt+=(python3)
# The packaging test verifies the systemd unit; the access test runs clients as nobody.
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# The Debian package (scripts/package.sh) is built with dpkg-deb and dpkg-shlibdeps; its tests
# (crates/virtnetd/tests/debian_package.rs) install it into a debootstrapped Debian 12 root and
# boot that root with systemd-nspawn; lintian checks the package by hand. No fakeroot:
# dpkg-deb --root-owner-group.
command -v dpkg-shlibdeps >/dev/null || need_apt+=(dpkg-dev)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
command -v lintian >/dev/null || need_apt+=(lintian)
# DNS tests ask with dig; the upstream namespace's DNS server (the "internet") is dnsmasq.
command -v dig >/dev/null || need_apt+=(bind9-dnsutils)
# Throughput benchmarks (bench/antispoof.sh, bench/fabric.sh) run iperf3 between namespaces
# (its debconf question, start as a daemon, defaults to no).
command -v iperf3 >/dev/null || need_apt+=(iperf3)
# IPv6 tests read the router advertisements guests see with rdisc6.
command -v rdisc6 >/dev/null || need_apt+=(ndisc6)
# The metrics test checks /metrics with Prometheus's own promtool and a real Prometheus server.
command -v promtool >/dev/null || need_apt+=(prometheus)
# A coexistence test watches the daemon's socket calls with strace.
command -v strace >/dev/null || need_apt+=(strace)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# The web console's test drives Debian's headless Chromium through its chromedriver (raw
# WebDriver from python3's standard library; no browser is downloaded).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# The end-to-end test boots a tiny Debian guest under QEMU (tests/guest/build.sh downloads the
# kernel and busybox-static packages itself and unpacks them without installing them).
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v xz >/dev/null || need_apt+=(xz-utils)
command -v modinfo >/dev/null || [ -x /usr/sbin/modinfo ] || [ -x /sbin/modinfo ] || need_apt+=(kmod)
# The libvirt front end's tests drive virtnetd with libvirt's own Python bindings (Debian's
# /usr/bin/python3); virsh and libvirtd come from bench/setup.sh below.
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || need_apt+=(python3-libvirt)
# The hypervisor-daemon tests drive virtqemud with Debian's virsh and virt-install.
[ -x /usr/bin/virsh ] || need_apt+=(libvirt-clients)
[ -x /usr/bin/virt-install ] || need_apt+=(virtinst)
# Rust >= 1.88 (Debian 12's own rustc is 1.63): rustup's stable toolchain, installed below
# when there is none.
need_rustup=
if ! command -v cargo >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  need_rustup=1
  command -v curl >/dev/null || need_apt+=(curl ca-certificates)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt_updated=1
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The fabric tests (crates/virtnetd/tests/fabric.rs) run FRR's zebra and bgpd (Debian's frr,
# 8.4) inside network namespaces only, as virtnetd's children. Installing frr must not start its
# service in the root namespace (zebra there would manage the machine's routes): a policy-rc.d
# forbids starting services during the install (removed afterwards when this script made it),
# and the unit is disabled so a reboot does not start it either.
if [ ! -x /usr/lib/frr/zebra ]; then
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  echo "setup: installing frr (its service is not started)" >&2
  frr_ok=1
  # One `apt-get update` per set-up: the one above, when it ran.
  [ -n "${apt_updated:-}" ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq || frr_ok=
  if [ -n "$frr_ok" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends frr >/dev/null \
      || frr_ok=
  fi
  if [ -n "$made_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ -z "$frr_ok" ]; then
    echo "setup: cannot install frr" >&2
    exit 1
  fi
  systemctl disable frr.service >/dev/null 2>&1 || true
fi
# virsh (libvirt-clients) and libvirtd with its network driver (libvirt-daemon), which the
# comparison tests run isolated: bench/setup.sh installs them and stops any daemon the install
# started.
bash "$(dirname "${BASH_SOURCE[0]}")/../bench/setup.sh"
if [ -n "$need_rustup" ]; then
  echo "setup: installing Rust (rustup, stable toolchain)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    --component rustfmt,clippy >/dev/null
fi
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found" >&2; exit 1; }
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 88 ] 2>/dev/null; then
  if command -v rustup >/dev/null; then
    rustup toolchain install stable --profile minimal -c rustfmt -c clippy >/dev/null
    rustup default stable >/dev/null
  else
    echo "setup: virtnet needs Rust >= 1.88, found $(rustc --version); install rustup" >&2
    exit 1
  fi
fi
# The hypervisor-daemon tests (crates/virtnetd/tests/virtqemud.rs) run libvirt 9.0's split QEMU
# daemon virtqemud, which Debian 12 does not package: build it from Debian's libvirt source
# package once per machine (cached under /var/cache/virtnet, outside the work tree; this is a
# no-op when the cache is complete). The test harness finds it through VIRTNET_LIBVIRT_DIR.
VIRTNET_LIBVIRT_DIR="$(bash "$(dirname "${BASH_SOURCE[0]}")/build-libvirt.sh")"
export VIRTNET_LIBVIRT_DIR
# The DHCPv6 tests run busybox's udhcpc6, which Debian 12's busybox leaves out: build busybox
# from Debian's source package with it, once per machine (cached as
# /var/cache/virtnet/busybox-<version>/busybox; the test finds it there or through
# VIRTNET_BUSYBOX).
VIRTNET_BUSYBOX="$(bash "$(dirname "${BASH_SOURCE[0]}")/build-busybox.sh")"
export VIRTNET_BUSYBOX
