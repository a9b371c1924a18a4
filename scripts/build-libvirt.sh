#!/usr/bin/env bash
# Builds libvirt 9.0's split QEMU daemon `virtqemud` (and `virtnetworkd`) from Debian 12's own
# source package, once per machine, for the tests that run the real hypervisor daemon against
# virtnetd (Debian 12 ships only the monolithic libvirtd, which cannot hand its network driver to
# another daemon). Run as root. Prints the cache directory; `$CACHE/sbin/virtqemud` is the daemon.
#
# Usage: build-libvirt.sh        (VIRTNET_LIBVIRT_CACHE_ROOT overrides /var/cache/virtnet)
#
# Layout: the build is configured with --prefix=$CACHE, so the binaries look for their driver
# modules, helpers (libexec) and data (cpu_map, schemas) inside the cache, and find their own
# libvirt.so through the rpath libvirt's meson adds for a prefix other than /usr (Debian's
# libvirt0 in /usr/lib is never picked up by mistake). The paths a daemon shares with the host
# are the system ones: sysconfdir /etc, localstatedir /var, runstatedir /run, so virtqemud reads
# /etc/libvirt/qemu.conf and reaches the network daemon at /run/libvirt/virtnetworkd-sock, as on
# a real split-daemon host; the test harness (crates/virtnet-testkit/src/virtqemud.rs) gives it
# a private mount namespace in which those paths are the test's own directories. That is why
# the install goes through `meson install --destdir` into a staging directory of which only the
# $CACHE part is kept: installing for real would write libvirt's default files into the host's
# /etc/libvirt, /var/lib/libvirt and /run. (An uninstalled run from the build tree would need
# the whole build tree, ~10x the size, and libvirt's ./run wrapper's environment overrides.)
#
# The cache directory is named after a hash of the build options below, so changing them builds
# anew beside the old one; it is complete when `.complete` exists, and then this script only
# prints it (no apt, no network). Concurrent runs wait for each other on a lock.
set -euo pipefail

ROOT="${VIRTNET_LIBVIRT_CACHE_ROOT:-/var/cache/virtnet}"
VERSION=9.0.0
# Only what the tests need: the QEMU driver (virtqemud), the network driver (virtnetworkd, kept
# to compare against), the remote driver (virtqemud reaches the network daemon through it) and
# the daemons themselves. Every other feature, driver and storage backend is off
# (auto_features=disabled); docs and tests are not built.
OPTIONS=(
  -Dauto_features=disabled
  -Ddriver_qemu=enabled -Ddriver_network=enabled -Ddriver_libvirtd=enabled -Ddriver_remote=enabled
  -Dyajl=enabled -Dlibnl=enabled -Dcapng=enabled
  -Ddocs=disabled -Dtests=disabled -Dinit_script=none
  -Dqemu_user=root -Dqemu_group=root
  -Dqemu_moddir=/usr/lib/x86_64-linux-gnu/qemu -Dqemu_datadir=/usr/share/qemu
  -Dremote_default_mode=direct
  --sysconfdir=/etc --localstatedir=/var -Drunstatedir=/run
  --buildtype=release
)
HASH="$(printf '%s\n' "$VERSION" "${OPTIONS[@]}" | sha256sum | cut -c1-12)"
CACHE="$ROOT/libvirt-9.0-$HASH"

complete() { [ -f "$CACHE/.complete" ] && [ -x "$CACHE/sbin/virtqemud" ]; }
if complete; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$ROOT"
exec 9>"$ROOT/.libvirt-build.lock"
flock 9
if complete; then
  echo "$CACHE"
  exit 0
fi

log() { echo "build-libvirt: $*" >&2; }
START=$SECONDS

# Build dependencies (the issue's list), plus dpkg-dev for `apt-get source` to unpack with and
# libxml2-utils (xmllint, which libvirt's meson requires).
DEPS=(meson ninja-build gcc pkg-config dpkg-dev libxml2-dev libglib2.0-dev libgnutls28-dev
  libtirpc-dev python3-docutils xsltproc libxml2-utils libnl-3-dev libnl-route-3-dev libjson-c-dev libyajl-dev
  libpciaccess-dev libcap-ng-dev libudev-dev libdevmapper-dev)
# `apt-get source` needs deb-src entries: scripts/debian-sources.sh sees to them.
. "$(dirname "${BASH_SOURCE[0]}")/debian-sources.sh"
install_build_deps scripts/build-libvirt.sh "${DEPS[@]}"

WORK="$(mktemp -d "$ROOT/libvirt-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
log "fetching Debian's libvirt source package"
fetch_source() { download_source libvirt; }
fetch_source
if ! ls libvirt_"$VERSION"-*.dsc >/dev/null 2>&1; then
  log "apt's source lists look stale; running apt-get update"
  apt-get update -qq
  fetch_source
fi
DSC="$(ls libvirt_"$VERSION"-*.dsc 2>/dev/null | head -n1)"
[ -n "$DSC" ] || { log "apt-get source did not fetch libvirt $VERSION (got: $(ls))"; exit 1; }
# Debian's patches are applied: this is the libvirt Debian 12 ships.
dpkg-source -q -x "$DSC" src >/dev/null

log "building $DSC (meson + ninja, $(nproc) jobs)"
# Debian's own python3 and tools, not whatever a user's PATH puts first (pyenv shims).
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
meson setup build src --prefix="$CACHE" "${OPTIONS[@]}" >"$WORK/meson-setup.log" 2>&1 ||
  { tail -n 40 "$WORK/meson-setup.log" >&2; exit 1; }
ninja -C build -j "$(nproc)" >"$WORK/ninja.log" 2>&1 || { tail -n 40 "$WORK/ninja.log" >&2; exit 1; }
meson install -C build --no-rebuild --quiet --destdir "$WORK/stage" >"$WORK/install.log" 2>&1 ||
  { tail -n 40 "$WORK/install.log" >&2; exit 1; }

# Keep only the prefix part (see the layout note above), plus libvirt's default configuration
# files for reference under etc-default/.
rm -rf "$CACHE"
mkdir -p "$(dirname "$CACHE")"
mv "$WORK/stage$CACHE" "$CACHE"
[ -d "$WORK/stage/etc" ] && mv "$WORK/stage/etc" "$CACHE/etc-default"
echo "$DSC" >"$CACHE/.source"
touch "$CACHE/.complete"
log "built in $((SECONDS - START)) s"
echo "$CACHE"
