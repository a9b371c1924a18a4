#!/usr/bin/env bash
# What an idle network and an idle guest port cost the daemon: a release virtnetd in a fresh
# network namespace, N NAT networks with DHCP (and so DNS) defined and started one by one with
# the CLI, and at each checkpoint the daemon's resident memory (VmRSS and Pss from
# /proc/PID/smaps_rollup), its open descriptors and its threads. Then, optionally, P guest ports
# (`virtnet attach-interface`, taps on the networks' bridges, spread round robin) with the same
# figures at the end, and the size of the store file. Prints one table row per checkpoint and the marginal cost per network.
#
# Everything happens in a network namespace this script creates; the trap stops the daemon it
# started (by PID, waiting for it) and removes the namespace and its temporary directory.
#
#   bash bench/scale_memory.sh [CHECKPOINTS] [PORTS]     (as root, after cargo build --release)
#
# CHECKPOINTS is a space-separated, increasing list of network counts (default "0 500 1000");
# PORTS defaults to 0. VIRTNET_BIN names another directory holding virtnetd and virtnet (a
# build of another commit, for before/after). VIRTNETD_ENV (e.g. "MALLOC_ARENA_MAX=2") is put in the daemon's
# environment, to compare allocator settings side by side; VIRTNET_BENCH_SMAPS=1 lists the
# largest resident mappings at each checkpoint on stderr; VIRTNET_BENCH_BARE=1 starts the
# networks without DHCP and DNS (what the services cost is the difference). VIRTNETD_WRAP
# prefixes the daemon's command (e.g. "heaptrack -o /tmp/vn"; the table then measures the
# wrapper, not the daemon: only its profile counts).
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoints=${1:-"0 500 1000"}
ports=${2:-0}
src=${VIRTNET_BIN:-target/release} # VIRTNET_BIN: where virtnetd and virtnet are (another build)
[ -x "$src/virtnetd" ] && [ -x "$src/virtnet" ] ||
  { echo "scale_memory.sh: run cargo build --release -p virtnetd -p virtnet first" >&2; exit 1; }

ns="vnbench-mem-$$"
work=$(mktemp -d /tmp/vnbench-mem.XXXXXX)
daemon=
cleanup() {
  local rc=$?
  # A failed run shows the end of the daemon's log (it goes with the directory).
  if [ "$rc" -ne 0 ] && [ -f "$work/log" ]; then tail -n 40 "$work/log" >&2; fi
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -TERM "$daemon"; wait "$daemon" || true; fi
  # With VIRTNETD_WRAP the PID above is the wrapper's: the daemon it started is still in the
  # namespace (only this script's processes are): stop it too, and wait for it.
  local p left
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    left=$(ip netns pids "$ns" 2>/dev/null | wc -l)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies: a rebuild during the run must not swap the binaries under it.
cp "$src/virtnetd" "$src/virtnet" "$work/"
bin=$work
ip netns add "$ns"
ip -n "$ns" link set lo up
# shellcheck disable=SC2086 # VIRTNETD_ENV is a list of VAR=value words
ip netns exec "$ns" env ${VIRTNETD_ENV:-} ${VIRTNETD_WRAP:-} "$bin/virtnetd" --state-dir "$work/s" --run-dir "$work/r" \
  --libvirt-run-dir "$work/r/libvirt" --host-config-root "$work/hostcfg" \
  --log-level "${VIRTNET_BENCH_LOG:-warn}" 2>"$work/log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/r/virtnet.sock" ] && break; sleep 0.05; done
[ -S "$work/r/virtnet.sock" ] || { cat "$work/log" >&2; exit 1; }
v() { "$bin/virtnet" -q --connect "$work/r/virtnet.sock" "$@"; }

net() { # index: defines and starts network n<index> on bridge vb<index>, 10.x.y.0/24
  local i=$1 a=$(($1 / 250)) b=$(($1 % 250))
  local services="<ip address='10.$a.$b.1' prefix='24'><dhcp><range start='10.$a.$b.2' end='10.$a.$b.254'/></dhcp></ip>"
  # VIRTNET_BENCH_BARE=1: no DHCP and no DNS, to tell the services' share from the rest.
  [ -z "${VIRTNET_BENCH_BARE:-}" ] || services="<dns enable='no'/><ip address='10.$a.$b.1' prefix='24'/>"
  echo "<network><name>n$i</name><forward mode='nat'/><bridge name='vb$i' stp='on' delay='0'/>$services</network>" >"$work/n.xml"
  v net-define "$work/n.xml" >/dev/null
  v net-start "n$i" >/dev/null
}

kib() { awk -v k="$1" '$1 == k":" {print $2}' "$2"; }
measure() { # label -> one table row
  sleep 2 # let the last starts' transient buffers go back
  local rss pss fds threads
  rss=$(kib VmRSS "/proc/$daemon/status")
  pss=$(kib Pss "/proc/$daemon/smaps_rollup")
  threads=$(kib Threads "/proc/$daemon/status")
  fds=$(find "/proc/$daemon/fd" -mindepth 1 | wc -l)
  store=$(du -k "$work/s/virtnet.redb" | cut -f1)
  echo "| $1 | $rss | $pss | $fds | $threads | $store |"
  echo "${2:-$1} $rss $pss $fds" >>"$work/points"
  # VIRTNET_BENCH_SMAPS=1: where the resident memory is (the largest mappings).
  if [ -n "${VIRTNET_BENCH_SMAPS:-}" ]; then
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6); size = $1 } $1 == "Rss:" && $2 > 256 { print "   ", $2, "KiB", name, size }' \
      "/proc/$daemon/smaps" | sort -k1,1nr | head -n 12 >&2
  fi
}

echo "| networks (ports) | VmRSS KiB | Pss KiB | open fds | threads | store file KiB |"
echo "|---|---|---|---|---|---|"
started=0
for cp in $checkpoints; do
  while [ "$started" -lt "$cp" ]; do
    started=$((started + 1))
    net "$started"
  done
  measure "$started"
done
if [ "$ports" -gt 0 ]; then
  [ "$started" -gt 0 ] || { echo "scale_memory.sh: ports need at least one network" >&2; exit 2; }
  for i in $(seq 1 "$ports"); do
    v attach-interface "mem-vm$i" network "n$(( (i - 1) % started + 1 ))" \
      --mac "$(printf '52:54:00:%02x:%02x:%02x' $((i / 65536)) $((i / 256 % 256)) $((i % 256)))" >/dev/null
  done
  measure "$started ($ports ports)" ports
fi
# The marginal cost of the last step: (RSS difference) / (networks or ports added).
awk 'NR > 1 && $1 != p1 { printf "per network from %s to %s: VmRSS %.1f KiB, Pss %.1f KiB, fds %.2f\n", p1, $1, ($2 - p2) / ($1 - p1), ($3 - p3) / ($1 - p1), ($4 - p4) / ($1 - p1) }
     { p1 = $1; p2 = $2; p3 = $3; p4 = $4 }' <(grep -v '^ports' "$work/points")
if [ "$ports" -gt 0 ]; then
  tail -n 2 "$work/points" | awk -v n="$ports" 'NR == 1 { r = $2; p = $3; f = $4 }
    NR == 2 { printf "per port: VmRSS %.1f KiB, Pss %.1f KiB, fds %.2f\n", ($2 - r) / n, ($3 - p) / n, ($4 - f) / n }'
fi
