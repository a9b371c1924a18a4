#!/usr/bin/env bash
# Prints the path of a tarball of a clean Debian 12 root file system, made once per machine with
# `debootstrap --variant=minbase bookworm` (plus systemd, for systemctl and systemd-analyze, and
# libnftables1, virtnetd's one library dependency beyond libc: the package tests install into
# this root without network access) from the mirror apt is configured with, and cached under
# /var/cache/virtnet ($VIRTNET_CACHE_DIR). Used by crates/virtnetd/tests/debian_package.rs,
# which unpacks a fresh copy for every test.
set -euo pipefail
cache=${VIRTNET_CACHE_DIR:-/var/cache/virtnet}
tarball=$cache/debian12-minbase-systemd.tar
mkdir -p "$cache"
exec 9>"$cache/.debian-root.lock"
flock 9
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi
# The first Debian mirror of apt's sources (deb822 `URIs:` or one-line `deb URI bookworm`),
# not the security archive.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
  2>/dev/null | awk '
    /^[[:space:]]*#/ { next }
    $1 == "URIs:" && $2 ~ /\/debian\/?$/ { print $2; exit }
    $1 == "deb" && $3 ~ /^bookworm$/ && $2 ~ /\/debian\/?$/ { print $2; exit }' || true)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d "$cache/debian-root.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debian-root: debootstrap bookworm from $mirror (once; cached in $tarball)" >&2
if ! debootstrap --variant=minbase --include=systemd,libnftables1 bookworm "$work/root" "$mirror" \
  >"$work/log" 2>&1; then
  tail -n 30 "$work/log" >&2
  exit 1
fi
# No package lists or downloaded archives in the copy: smaller, and nothing stale.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*_Packages
tar -C "$work/root" --numeric-owner -cf "$work/root.tar" .
mv "$work/root.tar" "$tarball"
echo "$tarball"
