#!/usr/bin/env bash
# virtnet's demo, end to end: build, then inside throwaway network namespaces (one standing for
# a KVM host, one for the internet) start virtnetd on a private state and run directory, define
# and start libvirt's default NAT network, attach a guest port, boot a tiny QEMU guest on it
# (Debian's kernel and a busybox initramfs, see tests/guest/build.sh), show what virsh would
# show about it and let the guest fetch a page from the "internet" through NAT.
#
#   bash scripts/run.sh                       (as root, Debian 12)
#
# Nothing touches the host's own network: every link, address, firewall table and process lives
# in namespaces this script creates, and the trap removes them, the processes it started (by
# PID) and its temporary directory, whatever happens.
#
# Environment:
#   VIRTNET_DEMO_GUEST=qemu|netns   the guest: a QEMU VM (default when qemu-system-x86_64 is
#                                   there) or a namespace running busybox udhcpc (the fallback)
#   VIRTNET_QEMU_ACCEL              QEMU's accelerator, default tcg (kvm:tcg where KVM works)
#   VIRTNET_GUEST_CACHE             where tests/guest/build.sh caches the guest image
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

section() { printf '\n=== %s ===\n' "$*"; }
note() { printf '  (%s)\n' "$*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

section "Build"
. scripts/setup.sh
cargo build --release --bins -q
bin=$PWD/target/release
echo "built $bin/virtnetd and $bin/virtnet"

work=$(mktemp -d /tmp/virtnet-demo.XXXXXX)
host="virtnet-demo-host-$$"
up="virtnet-demo-up-$$"
gns="virtnet-demo-guest-$$"
pids=()      # processes this script started, killed by PID in reverse order
daemon=
cleanup() {
  local rc=$? i pid
  trap - EXIT INT TERM
  exec 7>&- || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  ip netns del "$gns" 2>/dev/null || true
  ip netns del "$up" 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$work"
  if [ "$rc" -ne 0 ]; then echo "run.sh: failed (exit $rc); everything it made is removed" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $1 seconds for the command after it to succeed.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
# Shows a command, then runs it.
show() { echo "\$ $*"; "$@"; }
v() { echo "\$ virtnet $*"; "$bin/virtnet" "$@"; }
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

section "Namespaces: host $host, upstream $up"
#  host ns                                           upstream ns ("the internet")
#  virbr0 192.168.122.1/24 (made by virtnetd)
#  uplink0 203.0.113.2/24 ───────── veth ─────────── up0 203.0.113.1/24, HTTP :80
#  default via 203.0.113.1
ip netns add "$host"
ip netns add "$up"
ip -n "$host" link set lo up
ip -n "$up" link set lo up
# Made inside the upstream namespace with its peer placed directly in the host namespace: the
# veth never exists in the root namespace.
ip -n "$up" link add up0 type veth peer name uplink0 netns "$host"
ip -n "$up" addr add 203.0.113.1/24 dev up0
ip -n "$up" link set up0 up
ip -n "$host" addr add 203.0.113.2/24 dev uplink0
ip -n "$host" link set uplink0 up
ip -n "$host" route add default via 203.0.113.1
cat >"$work/http_server.py" <<'PY'
import http.server

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = ("you are %s\n" % self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("203.0.113.1", 80), Handler).serve_forever()
PY
ip netns exec "$up" "$py" "$work/http_server.py" 2>"$work/http.log" &
pids+=($!)
listening() { ip netns exec "$up" bash -c 'exec 3<>/dev/tcp/203.0.113.1/80' 2>/dev/null; }
wait_until 10 listening || { cat "$work/http.log" >&2; die "the upstream HTTP server did not start"; }
echo "host uplink0 203.0.113.2/24 <-> upstream up0 203.0.113.1/24, HTTP server on 203.0.113.1:80"

section "virtnetd (state $work/state, socket $work/run/virtnet.sock)"
ip netns exec "$host" "$bin/virtnetd" --state-dir "$work/state" --run-dir "$work/run" --libvirt-run-dir "$work/libvirt" 2>"$work/virtnetd.log" &
daemon=$!
pids+=("$daemon")
export VIRTNET_SOCKET="$work/run/virtnet.sock"
wait_until 10 test -S "$VIRTNET_SOCKET" || { cat "$work/virtnetd.log" >&2; die "virtnetd did not start"; }
echo "virtnetd running, pid $daemon"

section "The default NAT network"
v net-define examples/default.xml
v net-autostart default
v net-start default
v net-info default
v net-dumpxml default
v iface-bridges
show ip -n "$host" -br addr show virbr0
echo "\$ ip netns exec $host nft list set inet virtnet nat_nets4_24"
ip netns exec "$host" nft list set inet virtnet nat_nets4_24

section "A guest port"
# With -q, attach-interface prints the tap's name alone: what a management layer scripts.
echo "\$ tap=\$(virtnet attach-interface demo-vm network default --mac 52:54:00:de:00:01 -q)"
tap=$("$bin/virtnet" attach-interface demo-vm network default --mac 52:54:00:de:00:01 -q)
echo "tap=$tap"
v port-list
show ip -n "$host" -br link show master virbr0

section "The guest"
# QEMU on the tap when it is installed and the guest image builds, else a namespace.
mode=${VIRTNET_DEMO_GUEST:-}
image=
why="VIRTNET_DEMO_GUEST=$mode"
if [ -z "$mode" ] || [ "$mode" = qemu ]; then
  if ! command -v qemu-system-x86_64 >/dev/null; then
    [ "$mode" = qemu ] && die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
    mode=netns
    why="qemu-system-x86_64 is not installed"
  elif ! echo "building the guest image (tests/guest/build.sh; the first run downloads Debian's kernel and busybox-static)" ||
       ! image=$(bash tests/guest/build.sh 2>"$work/build.log" | tail -n1) ||
       [ ! -s "$image/vmlinuz" ] || [ ! -s "$image/initrd.gz" ]; then
    cat "$work/build.log" >&2
    [ "$mode" = qemu ] && die "tests/guest/build.sh failed"
    mode=netns
    why="the guest image did not build (tests/guest/build.sh, output above)"
  else
    mode=qemu
  fi
fi

console_in=$work/console.in
console=$work/console.log
guest_ip=
if [ "$mode" = qemu ]; then
  accel=${VIRTNET_QEMU_ACCEL:-tcg}
  echo "booting a QEMU guest (Debian's kernel, busybox initramfs, accel $accel) on $tap:"
  mkfifo "$console_in"
  : >"$console"
  # Held open read-write so QEMU never sees the end of its console input.
  exec 7<>"$console_in"
  boot_started=$SECONDS
  qemu_args=(-machine "q35,accel=$accel" -m 256 -nodefaults -display none -no-reboot
    -serial stdio -kernel "$image/vmlinuz" -initrd "$image/initrd.gz"
    -append "console=ttyS0 quiet panic=-1 virtnet.hostname=demo-vm"
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no"
    -device "virtio-net-pci,netdev=n0,mac=52:54:00:de:00:01,romfile=")
  echo "\$ ip netns exec $host qemu-system-x86_64 ${qemu_args[*]}"
  ip netns exec "$host" qemu-system-x86_64 "${qemu_args[@]}" \
    <"$console_in" >"$console" 2>"$work/qemu.log" &
  pids+=($!)
  qemu=$!
  # grep reads a process substitution, not a pipe: under pipefail, tr killed by SIGPIPE when
  # grep stops early on a long console would fail the whole test.
  seen() { grep -q -- "$1" <(tr -d '\r' <"$console"); }
  if ! wait_until 120 seen "VIRTNET ready"; then
    tr -d '\r' <"$console" >&2; cat "$work/qemu.log" >&2
    kill -0 "$qemu" 2>/dev/null || die "QEMU exited"
    die "the guest did not come up within 120 s"
  fi
  echo "guest console:"
  tr -d '\r' <"$console" | grep '^VIRTNET' | sed 's/^/  | /'
  echo "(booted and leased in $((SECONDS - boot_started)) s)"
  seen "VIRTNET lease" || die "the guest got no DHCP lease"
  guest_ip=$(tr -d '\r' <"$console" | sed -n 's/.*VIRTNET lease ip=\([0-9.]*\) .*/\1/p' | head -n1)
  next_id=1
  # Runs one line of shell in the guest through its console (protocol: tests/guest/build.sh).
  guest() {
    local id=$((next_id++))
    echo "guest\$ $1"
    echo "$id $1" >&7
    if ! wait_until "${2:-30}" seen "VIRTNET-END $id rc="; then
      tr -d '\r' <"$console" >&2
      die "the guest did not finish: $1"
    fi
    tr -d '\r' <"$console" |
      sed -n "/^VIRTNET-BEGIN $id\$/,/^VIRTNET-END $id rc=/p" | sed '1d;$d' | sed '/^$/d'
    grep -q "^VIRTNET-END $id rc=0" <(tr -d '\r' <"$console")
  }
else
  echo "no QEMU guest ($why): the guest is a network namespace running busybox udhcpc"
  echo "  a veth, not the tap, carries this guest: its host end is enslaved to virbr0 and its"
  echo "  guest end has the port's MAC 52:54:00:de:00:01, so leases and ARP still name $tap"
  ip netns add "$gns"
  ip -n "$gns" link set lo up
  ip -n "$gns" link add eth0 address 52:54:00:de:00:01 type veth peer name vguest0 netns "$host"
  ip -n "$host" link set vguest0 master virbr0 up
  ip -n "$gns" link set eth0 up
  cat >"$work/udhcpc.sh" <<'SH'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    echo "lease ip=$ip mask=$mask router=$router dns=$dns" ;;
esac
exit 0
SH
  chmod 755 "$work/udhcpc.sh"
  # The bridge port forwards only once STP (delay 0) has moved it through its states.
  fwd() { ip -n "$host" -d link show vguest0 | grep -q 'state forwarding'; }
  wait_until 10 fwd || true
  show ip netns exec "$gns" busybox udhcpc -i eth0 -f -q -n -t 10 -T 1 -x hostname:demo-vm -s "$work/udhcpc.sh" 2>&1 |
    grep -v '^udhcpc: \(started\|broadcasting\|sending\|sent\|no lease\)' || true
  guest_ip=$(ip -n "$gns" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}')
  [ -n "$guest_ip" ] || die "the namespace guest got no DHCP lease"
  guest() {
    echo "guest\$ $1"
    ip netns exec "$gns" busybox sh -c "$1"
  }
fi
echo "the guest leased $guest_ip"

section "What virtnet shows"
v net-list
v net-dhcp-leases default
v domiflist demo-vm
v domifaddr demo-vm
# The neighbour table knows the guest once the host talked to it.
echo "\$ ip netns exec $host busybox ping -c 1 -W 2 $guest_ip"
ip netns exec "$host" busybox ping -c 1 -W 2 "$guest_ip" | grep 'bytes from' || true
v domifaddr demo-vm --source arp

section "The guest reaches the internet through NAT"
if [ "$mode" = qemu ]; then
  guest "hostname; ip route; cat /etc/resolv.conf"
else
  guest "ip route"
fi
guest "wget -q -O - http://203.0.113.1/" 30 >"$work/fetched" || true
cat "$work/fetched"
grep -q "you are 203.0.113.2" "$work/fetched" ||
  die "the guest's request did not arrive from the host's uplink address (NAT)"
note "the upstream server saw the host's uplink address 203.0.113.2, not $guest_ip: masqueraded"

section "Cleaning up"
if [ "$mode" = qemu ]; then
  echo "stopping the guest (pid $qemu)"
  kill -TERM "$qemu" 2>/dev/null || true
  wait "$qemu" 2>/dev/null || true
fi
v detach-interface demo-vm network --mac 52:54:00:de:00:01
v net-destroy default
v net-list --all
kill -TERM "$daemon"
wait "$daemon" 2>/dev/null || true
echo "virtnetd stopped; the trap removes namespaces $host $up$([ "$mode" = netns ] && echo " $gns") and $work"
echo "demo finished in $((SECONDS - started)) s"
