#!/usr/bin/env bash
# DNS queries per second of two virtnetd builds side by side (before/after a change to the DNS
# receive path): each build runs in its own network namespace with one NAT network whose DNS
# knows `printer` (a <host> record), and dnsperf (in that namespace) asks the gateway address
# for `printer A` for S seconds; the passes alternate A B B A ... so that a change in the
# machine's load hits both alike. Prints queries/s per pass and the median per build.
#
#   bash bench/dns_ab.sh DIR_A DIR_B [PASSES] [SECONDS]     (as root; DIR_* hold virtnetd, virtnet)
#
# Everything happens in namespaces this script creates; the trap stops the daemons it started
# (by PID) and removes the namespaces and temporary directories.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 passes=${3:-4} secs=${4:-10}
work=$(mktemp -d /tmp/vnbench-dnsab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" || true; fi; done
  ip netns del "vndnsab-A-$$" 2>/dev/null || true
  ip netns del "vndnsab-B-$$" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # label bindir
  local ns="vndnsab-$1-$$" d="$work/$1"
  mkdir -p "$d"
  cp "$2/virtnetd" "$2/virtnet" "$d/"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" "$d/virtnetd" --state-dir "$d/s" --run-dir "$d/r" --libvirt-run-dir "$d/r/libvirt" \
    --host-config-root "$d/h" --log-level warn 2>"$d/log" &
  pids+=($!)
  for _ in $(seq 200); do [ -S "$d/r/virtnet.sock" ] && break; sleep 0.05; done
  echo "<network><name>ab</name><forward mode='nat'/><bridge name='vbab'/><dns><host ip='10.77.0.7'><hostname>printer</hostname></host></dns><ip address='10.77.0.1' prefix='24'><dhcp><range start='10.77.0.2' end='10.77.0.254'/></dhcp></ip></network>" >"$d/n.xml"
  "$d/virtnet" -q --connect "$d/r/virtnet.sock" net-define "$d/n.xml" >/dev/null
  "$d/virtnet" -q --connect "$d/r/virtnet.sock" net-start ab >/dev/null
}
start A "$a"
start B "$b"
echo "printer A" >"$work/queries"
run() { # label -> queries/s
  ip netns exec "vndnsab-$1-$$" dnsperf -s 10.77.0.1 -d "$work/queries" -l "$secs" -c 8 -Q 200000 2>/dev/null |
    awk '/Queries per second/ {print $4}'
}
order=""
for i in $(seq "$passes"); do if [ $((i % 2)) -eq 1 ]; then order="$order A B"; else order="$order B A"; fi; done
for x in $order; do
  q=$(run "$x")
  echo "pass $x: $q queries/s"
  echo "$q" >>"$work/$x.qps"
done
median() { sort -n "$1" | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "median A ($a): $(median "$work/A.qps") queries/s"
echo "median B ($b): $(median "$work/B.qps") queries/s"
