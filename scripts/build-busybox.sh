#!/usr/bin/env bash
# Builds busybox from Debian 12's own source package with `udhcpc6`, the DHCPv6 client Debian's
# busybox binary leaves out (its applet list has udhcpc and udhcpd only), once per machine, for
# the DHCPv6 test that runs it (crates/virtnetd/tests/dhcp6.rs). Run as root. Prints the path of
# the binary: $ROOT/busybox-<Debian version>/busybox.
#
# Usage: build-busybox.sh        (VIRTNET_BUSYBOX_CACHE_ROOT overrides /var/cache/virtnet)
#
# Configuration: busybox's `make defconfig` plus CONFIG_UDHCPC6=y (and its RFC 3646 DNS and
# RFC 4704 FQDN options), minus CONFIG_TC (it does not build against newer kernel headers and no
# test needs it). Debian's patches are applied (dpkg-source -x), so this is Debian 12's busybox
# with one more applet. The cache is complete when `.complete` exists; then this script only
# prints the path (no apt, no network). Concurrent runs wait for each other on a lock. The
# deb-src entry for the configured mirror is added as scripts/build-libvirt.sh adds it (same
# file, same contents).
set -euo pipefail

ROOT="${VIRTNET_BUSYBOX_CACHE_ROOT:-/var/cache/virtnet}"
log() { echo "build-busybox: $*" >&2; }

# The version is Debian's (epoch dropped): the cache follows the source package.
VERSION="$(apt-cache showsrc busybox 2>/dev/null | awk '/^Version:/ {print $2; exit}' | sed 's/^[0-9]*://')"
if [ -z "$VERSION" ]; then
  # No deb-src yet (first run): the binary package's version, less a binNMU suffix (+bN),
  # is the source's.
  VERSION="$(apt-cache policy busybox 2>/dev/null | awk '/Candidate:/ {print $2}' | sed -e 's/^[0-9]*://' -e 's/+b[0-9]*$//')"
fi
[ -n "$VERSION" ] || { log "cannot tell Debian's busybox version (apt-cache knows no busybox)"; exit 1; }
CACHE="$ROOT/busybox-$VERSION"
BIN="$CACHE/busybox"

complete() { [ -f "$CACHE/.complete" ] && [ -x "$BIN" ]; }
if complete; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$ROOT"
exec 9>"$ROOT/.busybox-build.lock"
flock 9
if complete; then
  echo "$BIN"
  exit 0
fi
START=$SECONDS

DEPS=(gcc make libc6-dev dpkg-dev)
# `apt-get source` needs deb-src entries: scripts/debian-sources.sh sees to them.
. "$(dirname "${BASH_SOURCE[0]}")/debian-sources.sh"
install_build_deps scripts/build-busybox.sh "${DEPS[@]}"

WORK="$(mktemp -d "$ROOT/busybox-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "fetching Debian's busybox source package"
fetch_source() { download_source busybox; }
fetch_source
if ! ls busybox_*.dsc >/dev/null 2>&1; then
  log "apt's source lists look stale; running apt-get update"
  apt-get update -qq
  fetch_source
fi
DSC="$(ls busybox_*.dsc 2>/dev/null | head -n1)"
[ -n "$DSC" ] || { log "apt-get source did not fetch busybox (got: $(ls))"; exit 1; }
dpkg-source -q -x "$DSC" src >/dev/null

cd src
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
make -s defconfig >"$WORK/config.log" 2>&1 || { tail -n 40 "$WORK/config.log" >&2; exit 1; }
set_opt() { # name value: replaces "CONFIG_X=..." or "# CONFIG_X is not set"
  sed -i -E "/^(# )?CONFIG_$1[= ]/d" .config
  if [ "$2" = n ]; then echo "# CONFIG_$1 is not set" >>.config; else echo "CONFIG_$1=$2" >>.config; fi
}
set_opt UDHCPC6 y
set_opt FEATURE_UDHCPC6_RFC3646 y
set_opt FEATURE_UDHCPC6_RFC4704 y
set_opt FEATURE_UDHCPC6_RFC4833 n
set_opt FEATURE_UDHCPC6_RFC5970 n
set_opt TC n
set_opt FEATURE_TC_INGRESS n
# Options new to the edited config take their defaults (`yes` ends on SIGPIPE: not a failure).
{ yes '' || true; } | make -s oldconfig >>"$WORK/config.log" 2>&1 || { tail -n 40 "$WORK/config.log" >&2; exit 1; }
grep -q '^CONFIG_UDHCPC6=y' .config || { log "CONFIG_UDHCPC6 did not stick"; exit 1; }
log "building $DSC ($(nproc) jobs)"
make -s -j "$(nproc)" busybox >"$WORK/make.log" 2>&1 || { tail -n 40 "$WORK/make.log" >&2; exit 1; }
./busybox udhcpc6 --help >/dev/null 2>&1 || ./busybox --list | grep -qx udhcpc6 ||
  { log "the built busybox has no udhcpc6"; exit 1; }

rm -rf "$CACHE"
mkdir -p "$CACHE"
install -m 0755 busybox "$BIN"
cp .config "$CACHE/config"
echo "$DSC" >"$CACHE/.source"
touch "$CACHE/.complete"
log "built in $((SECONDS - START)) s"
echo "$BIN"
