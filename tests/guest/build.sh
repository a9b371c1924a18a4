#!/usr/bin/env bash
# Builds the tiny QEMU guest the end-to-end tests boot: Debian 12's kernel plus a busybox
# initramfs whose init leases an address with udhcpc and then obeys commands on the serial
# console. Everything comes from Debian packages fetched with `apt-get download` and unpacked
# with `dpkg-deb -x` in a temporary directory: nothing is installed on the machine.
#
# Usage: build.sh            prints the cache directory holding `vmlinuz` and `initrd.gz`
#
# The cache (`$VIRTNET_GUEST_CACHE`, default /var/cache/virtnet-guest) is rebuilt only when
# it is incomplete or when this script changed (its sha256 is recorded in `stamp`); runs in
# parallel wait for each other on a lock. Needs: apt-get, dpkg-deb, modinfo (kmod), cpio,
# gzip, xz (only if the modules are xz-compressed), flock (util-linux), sha256sum.
#
# The guest's serial console protocol (see crates/virtnet-testkit/src/qemu.rs):
#   VIRTNET boot hostname=NAME                      init started
#   VIRTNET lease ip=A mask=N router=R dns=D domain=X lease=S    udhcpc bound (udhcpc script)
#   VIRTNET dhcp-failed                             no lease after udhcpc's tries
#   VIRTNET ready                                   the command loop reads the console
# then, for each line `<id> <shell command>` written to the console:
#   VIRTNET-BEGIN <id>
#   <the command's stdout and stderr>
#   VIRTNET-END <id> rc=<exit status>
set -euo pipefail

CACHE="${VIRTNET_GUEST_CACHE:-/var/cache/virtnet-guest}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
HASH="$(sha256sum "$SELF" | cut -d' ' -f1)"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

fresh() {
  [ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/initrd.gz" ] && [ -f "$CACHE/stamp" ] &&
    [ "$(head -n1 "$CACHE/stamp")" = "$HASH" ]
}
if fresh; then
  echo "$CACHE"
  exit 0
fi

log() { echo "virtnet-guest: $*" >&2; }
for tool in apt-get apt-cache dpkg-deb modinfo cpio gzip; do
  command -v "$tool" >/dev/null || { log "$tool is missing"; exit 1; }
done

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# linux-image-amd64 is a metapackage: the kernel is its linux-image-6.1.*-amd64 dependency.
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }'
}
KPKG="$(kernel_pkg)"
if [ -z "$KPKG" ]; then
  log "apt knows no linux-image-amd64; running apt-get update"
  apt-get update -qq
  KPKG="$(kernel_pkg)"
fi
[ -n "$KPKG" ] || { log "cannot resolve linux-image-amd64 to a kernel package"; exit 1; }
log "downloading $KPKG and busybox-static"
# As root apt warns that it downloads unsandboxed (its _apt user cannot write here): harmless.
if ! apt-get download -q "$KPKG" busybox-static >download.log 2>&1; then
  log "apt-get download failed; running apt-get update and retrying"
  apt-get update -qq
  apt-get download -q "$KPKG" busybox-static >download.log 2>&1 ||
    { cat download.log >&2; exit 1; }
fi
dpkg-deb -x "$(ls ./"${KPKG}"_*.deb)" kernel
dpkg-deb -x "$(ls ./busybox-static_*.deb)" busybox

KVER="$(ls kernel/lib/modules)"
CONFIG="kernel/boot/config-$KVER"
MODDIR="kernel/lib/modules/$KVER"
[ -f "$CONFIG" ] || { log "no $CONFIG in $KPKG"; exit 1; }

# What the guest needs from the kernel: a PCI virtio transport and virtio-net (the NIC),
# AF_PACKET (udhcpc), the 8250 serial console, devtmpfs and a gzip initramfs. Built-in (=y)
# options need nothing; modules (=m) are copied with their dependencies; missing ones fail.
ROOTS=()
need() { # need CONFIG_X [module]: fail unless built in, or remember the module to load
  local value
  value="$(sed -n "s/^$1=//p" "$CONFIG")"
  case "$value" in
    y) ;;
    m) [ -n "${2:-}" ] || { log "$1 is a module; the guest needs it built in"; exit 1; }
       ROOTS+=("$2") ;;
    *) log "$1 is not enabled in $KPKG"; exit 1 ;;
  esac
}
need CONFIG_BLK_DEV_INITRD
need CONFIG_RD_GZIP
need CONFIG_DEVTMPFS
need CONFIG_SERIAL_8250_CONSOLE
need CONFIG_PACKET
need CONFIG_INET
need CONFIG_VIRTIO virtio
need CONFIG_VIRTIO_PCI virtio_pci
need CONFIG_VIRTIO_NET virtio_net

mkdir -p root/bin root/sbin root/usr/bin root/usr/sbin root/proc root/sys root/dev \
  root/etc root/tmp root/run root/root root/lib/modules
ko_path() { # the file of module $1 (names may use - or _)
  local alt="${1//_/-}" f
  f="$(find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$alt.ko" \
    -o -name "$alt.ko.xz" \) | head -n1)"
  [ -n "$f" ] || { log "module $1 is not in $KPKG"; exit 1; }
  echo "$f"
}
# Depth-first over `modinfo -F depends`, emitting each module after its dependencies.
ORDER=()
declare -A SEEN=()
visit() {
  local m="$1" f dep
  [ -z "${SEEN[$m]:-}" ] || return 0
  SEEN[$m]=1
  f="$(ko_path "$m")"
  for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
    visit "$dep"
  done
  case "$f" in
    *.xz) xz -dc "$f" >"root/lib/modules/$m.ko" ;; # busybox insmod reads no xz
    *) cp "$f" "root/lib/modules/$m.ko" ;;
  esac
  ORDER+=("$m")
}
for m in "${ROOTS[@]}"; do visit "$m"; done
printf '%s\n' "${ORDER[@]}" >root/lib/modules/order
log "kernel $KVER; modules: ${ORDER[*]:-none}"

cp busybox/bin/busybox root/bin/busybox
chmod 755 root/bin/busybox
ln -s busybox root/bin/sh

cat >root/init <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Only emergencies from the kernel on the console: its messages would split the markers.
dmesg -n 1
# The console is a terminal: without echo the commands written to it are not read back.
stty -echo 2>/dev/null

HOSTNAME=guest
for word in $(cat /proc/cmdline); do
  case "$word" in virtnet.hostname=*) HOSTNAME="${word#virtnet.hostname=}" ;; esac
done
hostname "$HOSTNAME"
echo "VIRTNET boot hostname=$HOSTNAME"

for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m.ko" || echo "VIRTNET error insmod $m"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
ip link set eth0 up || echo "VIRTNET error no eth0"

# udhcpc's messages (and its script's marker) go to the console too.
udhcpc -i eth0 -f -q -n -t 10 -T 1 -x "hostname:$HOSTNAME" -s /etc/udhcpc.sh ||
  echo "VIRTNET dhcp-failed"

echo "VIRTNET ready"
while read -r id cmd; do
  [ -n "$id" ] || continue
  echo "VIRTNET-BEGIN $id"
  sh -c "$cmd" </dev/null 2>&1
  rc=$?
  echo
  echo "VIRTNET-END $id rc=$rc"
done
echo "VIRTNET console closed"
poweroff -f
INIT
chmod 755 root/init

cat >root/etc/udhcpc.sh <<'SCRIPT'
#!/bin/sh
# udhcpc event script: applies the lease (address, default route, resolv.conf) and reports it.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do
      ip route replace default via "$r" dev "$interface"
      break
    done
    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "VIRTNET lease ip=$ip mask=$mask router=$router dns=$dns domain=$domain lease=$lease"
    ;;
esac
exit 0
SCRIPT
chmod 755 root/etc/udhcpc.sh
echo "127.0.0.1 localhost" >root/etc/hosts

(cd root && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >initrd.gz
cp "kernel/boot/vmlinuz-$KVER" vmlinuz
printf '%s\n%s\n' "$HASH" "$KPKG" >stamp
mv -f vmlinuz "$CACHE/vmlinuz"
mv -f initrd.gz "$CACHE/initrd.gz"
mv -f stamp "$CACHE/stamp"
log "built $(du -sh "$CACHE" --exclude='build.*' | cut -f1) in $CACHE"
echo "$CACHE"
